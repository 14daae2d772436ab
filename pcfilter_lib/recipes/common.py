"""What the reference recipes share: the default simulated scan sets they learn from, the software
environment and numbers rounded for a model card, the baselines' grids in point spacings, and the
result of training a filter. (A data set's provenance on a card is ``io.model_cards.provenance``; the
shipped network a run would train is loaded by ``models.saved.shipped_network``.)"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from pcfilter_lib.filters.base import Filter
from pcfilter_lib.geometry import point_features
from pcfilter_lib.nn.fit import TrainResult
from pcfilter_lib.simulate import dataset
from pcfilter_lib.simulate.scanner import ScannerConfig, realistic


@dataclass(frozen=True)
class ScanSet:
    """A simulated data set of scans: its folder name in the data folder, size and seed.

    Attributes:
        folder: the folder's name inside the data folder.
        scans: how many scans (split 0.8 / 0.1 / 0.1 into train, val and test).
        width: image width in pixels.
        height: image height in pixels.
        seed: the simulator's seed.
        families: (scene family, share) pairs (``simulate.families.FAMILIES``).
        randomise: draw the scanner per scan (``simulate.families.draw_scanner``; its image sizes are
            scaled by ``width`` / 640).
        realistic: switch on the scanner's realism effects (``simulate.scanner.realistic``: the
            physics fitted to the real development scans' statistics).
    """

    folder: str
    scans: int
    width: int
    height: int
    seed: int = 0
    families: tuple[tuple[str, float], ...] = (("bin", 1.0),)
    randomise: bool = False
    realistic: bool = False

    def scanner(self) -> ScannerConfig:
        """The base scanner of the set's scans."""
        config = ScannerConfig(width=self.width, height=self.height)
        return realistic(config) if self.realistic else config


SCANS_FULL = ScanSet("scans", 100, 640, 480)
SCANS_FAST = ScanSet("scans_fast", 24, 160, 120)
# Bins, circuit boards and fruit, each scan with its own scanner: what the point filter learns from.
MIXED = (("bin", 0.4), ("board", 0.35), ("fruit", 0.25))
SCANS_MIXED_FULL = ScanSet("scans_mixed", 150, 640, 480, seed=1, families=MIXED, randomise=True)
SCANS_MIXED_FAST = ScanSet("scans_mixed_fast", 24, 160, 120, seed=1, families=MIXED, randomise=True)
# The same draws continued to 400 scans (the first 150 are those above): the U-Net's data.
SCANS_MIXED_LARGE = ScanSet("scans_mixed_400", 400, 640, 480, seed=1, families=MIXED, randomise=True)
# The same mix at a quarter of the pixels, from another seed: the neighbour filter learns from both sizes.
SCANS_MIXED_SMALL = ScanSet("scans_mixed_320", 100, 320, 240, seed=4, families=MIXED, randomise=True)
SCANS_MIXED_SMALL_FAST = ScanSet("scans_mixed_small_fast", 12, 80, 60, seed=4, families=MIXED, randomise=True)


def ensure_scans(data_dir: str | os.PathLike, scan_set: ScanSet = SCANS_FULL, progress: bool = True) -> Path:
    """The folder of ``scan_set`` inside ``data_dir``, simulated (or resumed) if needed, full-size
    scans in a process per CPU core; a folder left by another simulator version is made again.

    Args:
        data_dir: the data folder (``pcfilter_lib.config.data_dir()``).
        scan_set: which scans (``SCANS_FULL`` or ``SCANS_FAST``).
        progress: show a progress bar while simulating.

    Returns:
        the folder, holding ``manifest.json`` and ``train``, ``val`` and ``test`` scans.
    """
    folder = Path(data_dir) / scan_set.folder
    # Starting the processes (a second or two) pays off on full-size scans, not on fast mode's small ones.
    big = scan_set.width * scan_set.height >= 320 * 240
    dataset.write_dataset(folder, scan_set.scans, scan_set.seed, scan_set.scanner(), progress=progress,
                          families=dict(scan_set.families), randomise=scan_set.randomise, replace=True,
                          tasks=dataset.in_processes() if big else dataset.one_after_another)
    return folder


def environment() -> dict:
    """Python, TensorFlow, Keras and NumPy versions and the machine, for a model card."""
    versions = {name: metadata.version(name) for name in ("tensorflow", "keras", "numpy")}
    return {"python": platform.python_version(), "machine": platform.machine(), **versions}


def rounded(values, digits: int = 6):
    """``values`` with every float rounded to ``digits`` (dicts and lists are walked)."""
    if isinstance(values, dict):
        return {k: rounded(v, digits) for k, v in values.items()}
    if isinstance(values, list | tuple):
        return [rounded(v, digits) for v in values]
    if isinstance(values, float):
        return round(values, digits)
    return values


# Open3D baselines tuned on scans or clouds from many scanners: the ROR radius is tuned in units of
# each cloud's own point spacing (``in_spacings``).
SPACING_GRIDS = {"sor": {"nb_neighbors": [5, 10, 20, 40], "std_ratio": [0.5, 1.0, 2.0, 3.0]},
                 "ror": {"nb_points": [1, 2, 4, 8, 16], "radius": [1.5, 2.0, 3.0, 4.0, 6.0, 8.0]}}


def in_spacings(cloud: Mapping) -> dict:
    """The cloud with its coordinates divided by its own point spacing (median nearest-neighbour
    distance), so that lengths tuned on it are in spacings."""
    xyz = np.asarray(cloud["xyz"])
    valid = np.asarray(cloud["valid"], bool)
    return {**cloud, "xyz": xyz / point_features.point_spacing(xyz[valid])}


@dataclass(kw_only=True)
class TrainedFilter(TrainResult):
    """The ``TrainResult`` of a filter recipe (U-Net or point filter), plus the filter it made.

    Attributes:
        filter: The trained network as a filter, with the chosen threshold.
        threshold: The keep-probability threshold chosen on the validation data.
        sweep: The validation scores at every candidate threshold (``choose_threshold``).
        settings: The recipe's settings, as a model card records them.
    """

    filter: Filter
    threshold: float
    sweep: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
