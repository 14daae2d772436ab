"""Classical artefact filters: ``keep_mask(scan, method, **params)``, and ``BaselineFilter`` for the
``filters.base.Filter`` interface.

- ``sor``: Open3D statistical outlier removal: a point goes when its mean distance to its
  ``nb_neighbors`` nearest neighbours exceeds the global mean by ``std_ratio`` standard deviations.
- ``ror``: Open3D radius outlier removal: a point goes when fewer than ``nb_points`` others lie within
  ``radius`` metres.
- ``morph``: the baseline of the original 2020 work: erosion (5x5) then dilation (7x7) of the
  validity mask, which removes thin structures and isolated specks in the image grid.

Each returns an (H, W) bool mask, True where a measured point is kept. ``tune`` picks a method's
parameters by grid search on validation scans. The names, default parameters and grids live in
``filters.methods`` (light enough for the command line's parser) and are re-exported here.

Lengths and point spacing: the ROR radius is a length, tuned in metres on scans of one scanner.
A ``BaselineFilter`` with a ``reference_spacing`` (what ``baseline_filter`` gives for the tuned
parameters) measures each scan's or cloud's own point spacing (``geometry.point_features.point_spacing``,
as the point filter does) and scales the radius by it, so that the radius stays the same number of
point spacings on a coarser scan, a thinned cloud or a cloud in millimetres. SOR needs no scaling:
its neighbourhood is a number of neighbours and its cut is relative to the cloud's own mean distance.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import open3d as o3d
from scipy import ndimage

from pcfilter_lib.filters.base import check_threshold
from pcfilter_lib.filters.methods import DEFAULTS, GRIDS, LENGTHS, METHODS
from pcfilter_lib.geometry.neighbour_search import NeighbourIndex
from pcfilter_lib.geometry.point_features import point_spacing
from pcfilter_lib.io.model_cards import WEIGHTS, read_model_card
from pcfilter_lib.nn import scores
from pcfilter_lib.simulate.scanner import ScannerConfig


def _measured(scan: Mapping) -> tuple[np.ndarray, np.ndarray]:
    valid = np.asarray(scan["valid"], bool) & np.isfinite(np.asarray(scan["xyz"])).all(axis=-1)
    return valid, np.asarray(scan["xyz"], np.float64)[valid]


def _open3d_keep(scan: Mapping, remove) -> np.ndarray:
    valid, points = _measured(scan)
    keep = np.zeros(valid.shape, bool)
    if len(points) == 0:
        return keep
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    _, kept = remove(cloud)
    flat = np.zeros(len(points), bool)
    flat[np.asarray(kept, dtype=np.int64)] = True
    keep[valid] = flat
    return keep


def _check_sor(nb_neighbors, std_ratio) -> None:
    if nb_neighbors < 1 or std_ratio <= 0:
        raise ValueError(f"sor needs nb_neighbors >= 1 and std_ratio > 0, got {nb_neighbors}, {std_ratio}")


def _check_ror(nb_points, radius) -> None:
    if nb_points < 1 or radius <= 0:
        raise ValueError(f"ror needs nb_points >= 1 and radius > 0 (metres), got {nb_points}, {radius}")


def statistical_outlier_removal(scan: Mapping, nb_neighbors: int = DEFAULTS["sor"]["nb_neighbors"],
                                std_ratio: float = DEFAULTS["sor"]["std_ratio"]) -> np.ndarray:
    _check_sor(nb_neighbors, std_ratio)
    return _open3d_keep(scan, lambda c: c.remove_statistical_outlier(int(nb_neighbors), float(std_ratio)))


def radius_outlier_removal(scan: Mapping, nb_points: int = DEFAULTS["ror"]["nb_points"],
                           radius: float = DEFAULTS["ror"]["radius"]) -> np.ndarray:
    _check_ror(nb_points, radius)
    return _open3d_keep(scan, lambda c: c.remove_radius_outlier(int(nb_points), float(radius)))


def _sor_decisions(squared: np.ndarray, nb_neighbors: int, std_ratio: float) -> np.ndarray:
    """Open3D's statistical outlier removal from each point's squared distances to its nearest points
    (itself first), as the KD-tree computed them: the same decisions to the last bit."""
    k = min(int(nb_neighbors), len(squared))
    means = np.cumsum(np.sqrt(squared[:, :k]), axis=1)[:, -1] / k  # cumsum adds in order, as Open3D
    return sor_keep(means, sor_threshold(lambda: [means], std_ratio))


def _sequential_sum(total: float, values: np.ndarray) -> float:
    """``total`` plus ``values`` added one after the other, in double (as a C++ loop adds them)."""
    return float(np.add.accumulate(np.concatenate(([total], values)))[-1]) if len(values) else total


def sor_threshold(means: Callable[[], Iterable[np.ndarray]], std_ratio: float) -> float:
    """Steps 2 and 3 of Open3D's ``remove_statistical_outlier``: the distance below which a point is kept.

    Args:
        means: called twice: the per-point mean distances (step 1, e.g. ``classical_tiles.sor_tile``'s)
            of every point, in the cloud's order, in chunks.
        std_ratio: Open3D's parameter.

    Returns:
        Open3D's ``cloud_mean + std_ratio * std_dev``, bit for bit (NaN for a cloud of one point).
    """
    total, count = 0.0, 0
    for chunk in means():
        total = _sequential_sum(total, np.where(chunk > 0, chunk, 0.0))  # x + 0.0 is x
        count += len(chunk)
    mean = total / count
    squares = 0.0
    for chunk in means():
        squares = _sequential_sum(squares, np.where(chunk > 0, (chunk - mean) * (chunk - mean), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        deviation = np.sqrt(np.float64(squares) / np.float64(count - 1))  # Bessel's correction
    return float(mean + std_ratio * deviation)


def sor_keep(means: np.ndarray, threshold: float) -> np.ndarray:
    """Step 4 of Open3D's ``remove_statistical_outlier``: (n,) bool, True where a point is kept."""
    return (means > 0) & (means < threshold)


def _grid_keep_masks(scan: Mapping, method: str, combos: Sequence[Mapping]) -> list[np.ndarray]:
    """``keep_mask(scan, method, **params)`` for each parameter combination, with one neighbour search for
    all of them: SOR's nearest max(nb_neighbors) points (a smaller k reads the first columns), ROR's
    nearest max(nb_points) + 1 (more than nb_points strictly within a radius among them is what Open3D
    asks of all points). Open3D's KD-tree and arithmetic, so the masks are Open3D's exactly."""
    if method not in ("sor", "ror"):
        return [keep_mask(scan, method, **params) for params in combos]
    combos = [{**DEFAULTS[method], **params} for params in combos]
    for params in combos:
        (_check_sor if method == "sor" else _check_ror)(**params)
    valid, points = _measured(scan)
    if not len(points):
        return [np.zeros(valid.shape, bool) for _ in combos]
    largest = max(int(p["nb_neighbors"]) if method == "sor" else int(p["nb_points"]) + 1 for p in combos)
    _, squared = NeighbourIndex(points).query(points, min(largest, len(points)), squared=True)
    masks = []
    for params in combos:
        if method == "sor":
            kept = _sor_decisions(squared, params["nb_neighbors"], params["std_ratio"])
        else:  # itself included, as Open3D counts
            radius = float(params["radius"])
            kept = (squared < radius * radius).sum(axis=1) > int(params["nb_points"])
        keep = np.zeros(valid.shape, bool)
        keep[valid] = kept
        masks.append(keep)
    return masks


def morphological(scan: Mapping, erosion: int = DEFAULTS["morph"]["erosion"],
                  dilation: int = DEFAULTS["morph"]["dilation"]) -> np.ndarray:
    if erosion < 1 or dilation < 1:
        raise ValueError(f"morph needs positive structuring element sizes, got {erosion}, {dilation}")
    valid, _ = _measured(scan)
    opened = ndimage.binary_erosion(valid, np.ones((erosion, erosion), bool))
    opened = ndimage.binary_dilation(opened, np.ones((dilation, dilation), bool))
    return opened & valid


_FILTERS = {"sor": statistical_outlier_removal, "ror": radius_outlier_removal, "morph": morphological}


def keep_mask(scan: Mapping, method: str, **params) -> np.ndarray:
    """(H, W) bool: True where ``method`` keeps the measured point. Missing parameters take
    ``DEFAULTS[method]``."""
    if method not in _FILTERS:
        raise ValueError(f"unknown method {method!r}: choose one of {METHODS}")
    return _FILTERS[method](scan, **{**DEFAULTS[method], **params})


def evaluate(scans: Iterable[Mapping], method: str, **params) -> dict[str, float]:
    """Metrics of ``method`` pooled over ``scans`` (counts summed, then the ratios)."""
    totals = np.zeros(4, np.int64)
    for scan in scans:
        totals += _counts(scan, keep_mask(scan, method, **params))
    return _pooled(totals)


def _counts(scan: Mapping, keep: np.ndarray) -> np.ndarray:
    return scores.confusion_counts(scan["label"], keep.astype(np.float32), threshold=0.5)


def _pooled(totals: np.ndarray) -> dict[str, float]:
    return {"tp": int(totals[0]), "fn": int(totals[1]), "fp": int(totals[2]), "tn": int(totals[3]),
            **scores.confusion_metrics(*totals)}


def tune(scans: Sequence[Mapping], method: str, grid: Mapping[str, Sequence] | None = None,
         metric: str = "mean_iou") -> tuple[dict, list[dict]]:
    """Grid search on validation ``scans``: the best parameters by ``metric`` and every row tried (each row
    as ``evaluate`` gives it; SOR and ROR search each scan's neighbours once for the whole grid)."""
    grid = GRIDS[method] if grid is None else grid
    if not scans:
        raise ValueError("tuning needs at least one validation scan")
    if method not in _FILTERS:
        raise ValueError(f"unknown method {method!r}: choose one of {METHODS}")
    names = list(grid)
    combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[n] for n in names))]
    totals = np.zeros((len(combos), 4), np.int64)
    for scan in scans:
        for row, keep in enumerate(_grid_keep_masks(scan, method, combos)):
            totals[row] += _counts(scan, keep)
    rows = [{**params, **_pooled(counts)} for params, counts in zip(combos, totals, strict=True)]
    best = max(rows, key=lambda row: row[metric])
    return {name: best[name] for name in names}, rows


@dataclass
class BaselineFilter:
    """A classical filter of ``METHODS`` with its parameters, behind the ``filters.base.Filter``
    interface (its keep probability is its 0/1 decision)."""

    name: str
    method: str
    params: dict = field(default_factory=dict)
    threshold: float = 0.5
    reference_spacing: float | None = None  # the point spacing the lengths of params were chosen for

    def scan_params(self, scan: Mapping) -> dict:
        """``params`` for one scan: with a ``reference_spacing``, each length (``LENGTHS``) scaled by
        the scan's own point spacing over the reference one; otherwise ``params`` as they are."""
        params = dict(self.params)
        _, points = _measured(scan)
        if self.reference_spacing is None or not LENGTHS[self.method] or len(points) < 2:
            return params
        try:
            scale = point_spacing(points) / self.reference_spacing
        except ValueError:  # every point coincides: there is no spacing to scale by
            return params
        return {k: v * scale if k in LENGTHS[self.method] else v for k, v in params.items()}

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}: choose one of {METHODS}")
        self.threshold = check_threshold(self.threshold)

    def keep_probability(self, scan: Mapping) -> np.ndarray:
        """(H, W) float32: 1 where the filter keeps a measured point, else 0."""
        return self.keep_mask(scan).astype(np.float32)

    def keep_probabilities(self, scans: Sequence[Mapping]) -> list[np.ndarray]:
        """``keep_probability`` of each scan."""
        return [self.keep_probability(scan) for scan in scans]

    def keep_mask(self, scan: Mapping) -> np.ndarray:
        """(H, W) bool: True where the scan has a point and the filter keeps it."""
        return keep_mask(scan, self.method, **self.scan_params(scan))

    __call__ = keep_mask


def tuned_params(method: str, model_path: str | os.PathLike = WEIGHTS / "unet_filter.keras") -> dict:
    """The parameters of ``method`` tuned on validation scans, as recorded in a model card (by default
    the shipped U-Net's); ``DEFAULTS`` when the card records none."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {METHODS}")
    card = read_model_card(model_path)
    recorded = card.details.get("baselines", {}).get(method, {}).get("params") if card else None
    return dict(recorded) if recorded else dict(DEFAULTS[method])


def tuned_spacing(model_path: str | os.PathLike = WEIGHTS / "unet_filter.keras") -> float:
    """The point spacing (m) of the scans on which ``tuned_params`` were chosen; 1.0 when the card says
    its baselines' lengths are in point spacings.

    It is the pixel footprint at the scanner's working distance, distance / (focal x width), of the
    scanner recorded in the model card (the simulator's default scanner without a card); the median
    nearest-neighbour distance of simulated scans lies within 1% of it (1.07 against 1.08 mm at
    640x480, 4.22 against 4.31 mm at 160x120).
    """
    card = read_model_card(model_path)
    if card and card.details.get("baseline_lengths") == "point spacings":  # tuned on clouds of many scanners
        return 1.0
    recorded = card.data.get("parameters", {}).get("scanner", {}) if card else {}
    default = ScannerConfig()
    distance, focal, width = (recorded.get(key, getattr(default, key)) for key in ("distance", "focal", "width"))
    return float(distance) / (float(focal) * float(width))


def baseline_filter(method: str, params: Mapping | None = None,
                    reference_spacing: float | None = None) -> BaselineFilter:
    """A classical filter.

    Args:
        method: one of ``METHODS``.
        params: its parameters; by default the tuned ones of ``tuned_params``, whose lengths are
            then scaled to each input's point spacing (``reference_spacing`` = ``tuned_spacing()``).
        reference_spacing: the point spacing for which the lengths of ``params`` hold; None with
            explicit ``params`` uses them as given, in the input's units.

    Returns:
        the ``BaselineFilter``.
    """
    if params is None:
        params, reference_spacing = tuned_params(method), tuned_spacing()
    return BaselineFilter(name=method, method=method, params=dict(params), reference_spacing=reference_spacing)
