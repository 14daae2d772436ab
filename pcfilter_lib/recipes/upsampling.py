"""Training the PU-Net upsampler on patches of the simulator's true surfaces, and measuring it.

The upsampler is meant for filtered scans, so it learns at their density. The recipe simulates
scans of bins, circuit boards and fruit with the default 640x480 scanner and measures their point
spacing ``s`` (the median distance from a true point to its nearest neighbour; about 1 mm at the
scanner's working distance). Training pairs come from the scenes' true meshes
(``data.surface_patches.upsampling_patches``): a dense target of r*N evenly spread surface points
at spacing ``s / sqrt(r)`` and its input, N of them at random, so that an input patch holds as many
points per unit area as a scan. Validation and test patches come from the meshes of the validation
and test scans, which no training patch touches.

The card records the Chamfer distance of the network's output to the dense target on the
validation and test patches, beside that of the trivial answer (each input point repeated r times):
a network that learnt nothing about the surface between the points scores no better than that.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from pcfilter_lib.data.surface_patches import expected_spacing, upsampling_patches
from pcfilter_lib.geometry.point_features import point_spacing
from pcfilter_lib.io.files import atomic_write_with
from pcfilter_lib.io.model_cards import ModelCard, provenance
from pcfilter_lib.io.scan import load_scan
from pcfilter_lib.labels import KEEP
from pcfilter_lib.models.punet import SHIPPED_UPSAMPLER, build_punet
from pcfilter_lib.nn import losses
from pcfilter_lib.nn.fit import fit
from pcfilter_lib.recipes.common import MIXED, ScanSet, ensure_scans, environment, rounded
from pcfilter_lib.simulate.dataset import split_files

# Scenes of the three families under the default 640x480 scanner: the density the upsampler meets.
SCANS_UPSAMPLING_FULL = ScanSet("scans_upsampling", 40, 640, 480, seed=3, families=MIXED)
SCANS_UPSAMPLING_FAST = ScanSet("scans_upsampling_fast", 10, 640, 480, seed=3, families=MIXED)


@dataclass(frozen=True)
class UpsamplingRecipe:
    """Sizes of the PU-Net's reference run.

    Attributes:
        scans: the simulated scans whose meshes the patches come from and whose spacing they copy.
        train_patches, val_patches, test_patches: pairs drawn from the meshes of each split.
        epochs: passes over the training patches.
        patch_points: N, points of an input patch.
        ratio: r, the upsampling factor.
        neighbours: k of the network's groupings.
        batch_size: patches per step.
        learning_rate: Adam's initial step size (cosine decay to 5%).
        repulsion_weight: weight of the repulsion term beside the Chamfer distance.
    """

    scans: ScanSet
    train_patches: int
    val_patches: int
    test_patches: int
    epochs: int
    patch_points: int = 256
    ratio: int = 4
    neighbours: int = 16
    batch_size: int = 16
    learning_rate: float = 1e-3
    repulsion_weight: float = 0.01


FULL = UpsamplingRecipe(SCANS_UPSAMPLING_FULL, train_patches=2400, val_patches=240, test_patches=240, epochs=12)
FAST = UpsamplingRecipe(SCANS_UPSAMPLING_FAST, train_patches=48, val_patches=16, test_patches=16, epochs=1,
                        patch_points=64, neighbours=8)


def scan_spacing(files) -> float:
    """The median over scans of each scan's point spacing, measured on its true points (what a
    perfect filter keeps), in metres."""
    spacings = []
    for path in files:
        scan = load_scan(path, arrays=())
        keep = np.asarray(scan["valid"], bool) & (np.asarray(scan["label"]) == KEEP)
        spacings.append(point_spacing(np.asarray(scan["xyz"])[keep]))
    return float(np.median(spacings))


def _meshes(files) -> list[tuple[np.ndarray, np.ndarray]]:
    """(vertices, triangles) of the true scene of each simulated scan (world frame, metres)."""
    scans = [load_scan(f, arrays=("mesh_vertices", "mesh_triangles")) for f in files]
    return [(np.asarray(s["mesh_vertices"], np.float64), np.asarray(s["mesh_triangles"], np.int64)) for s in scans]


def chamfer_scores(model: keras.Model, inputs: np.ndarray, targets: np.ndarray, batch_size: int = 32) -> dict:
    """Mean Chamfer distance (``nn.losses.chamfer_distance``, normalised patch units squared) to the
    dense targets (S, r*N, 3) of the network's output for ``inputs`` (S, N, 3) and of the trivial
    answer, each input point repeated r times."""
    ratio = targets.shape[1] // inputs.shape[1]
    predicted = model.predict(inputs, batch_size=batch_size, verbose=0)
    repeated = np.tile(inputs, (1, ratio, 1))

    def mean_chamfer(points):
        values = [keras.ops.convert_to_numpy(losses.chamfer_distance(targets[i:i + batch_size],
                                                                     points[i:i + batch_size]))
                  for i in range(0, len(targets), batch_size)]
        return float(np.concatenate(values).mean())

    network, trivial = mean_chamfer(predicted), mean_chamfer(repeated)
    return {"chamfer": network, "chamfer_repeated_input": trivial, "chamfer_ratio": network / trivial,
            "patches": int(len(inputs))}


def train_reference_upsampler(out: str | os.PathLike, data_dir: str | os.PathLike,
                              settings: UpsamplingRecipe = FULL, seed: int = 0, progress: bool = True) -> ModelCard:
    """Train the shipped PU-Net and save ``out/punet_upsampling.keras``.

    1. Simulate (or reuse) the scans; measure their point spacing on the training scans.
    2. Draw training, validation and test patches from the true meshes of each split.
    3. Train ``build_punet`` with ``UpsamplingLoss`` (Chamfer plus repulsion, ``h`` the expected
       spacing of r*N points on a normalised patch) and Adam with cosine decay.
    4. Score the network and the repeated-input answer on validation and test patches.

    Args:
        out: the output folder (created if needed).
        data_dir: the data folder holding (or receiving) the simulated scans.
        settings: ``FULL`` or ``FAST``, or any ``UpsamplingRecipe``.
        seed: seed of the patches and the weights.
        progress: show progress bars and a line per stage.

    Returns:
        the model card (its ``command`` is left for the caller to fill in).
    """
    start = time.perf_counter()
    folder = ensure_scans(data_dir, settings.scans, progress)
    files = {split: split_files(folder, split) for split in ("train", "val", "test")}
    spacing = scan_spacing(files["train"])
    target_spacing = spacing / np.sqrt(settings.ratio)
    sizes = {"train": settings.train_patches, "val": settings.val_patches, "test": settings.test_patches}
    patches = {split: upsampling_patches(_meshes(files[split]), sizes[split], target_spacing,
                                         patch_points=settings.patch_points, ratio=settings.ratio,
                                         seed=seed + i)
               for i, split in enumerate(sizes)}
    if progress:
        print(f"point spacing {spacing * 1e3:.3f} mm; patches " + ", ".join(f"{k} {len(v[0])}"
                                                                           for k, v in patches.items()), flush=True)

    keras.utils.set_random_seed(seed)
    model = build_punet(settings.patch_points, settings.ratio, settings.neighbours, name="punet_upsampling")
    h = expected_spacing(settings.ratio * settings.patch_points)
    steps = settings.epochs * int(np.ceil(settings.train_patches / settings.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=losses.UpsamplingLoss(h=h, repulsion_weight=settings.repulsion_weight))
    run = fit(model, patches["train"], epochs=settings.epochs, validation=patches["val"],
              batch_size=settings.batch_size, progress=progress, desc="PU-Net")
    validation = chamfer_scores(model, *patches["val"])
    test = chamfer_scores(model, *patches["test"])
    if progress:
        print(f"test Chamfer {test['chamfer']:.6f} against {test['chamfer_repeated_input']:.6f} for the input "
              "repeated", flush=True)

    path = Path(out) / SHIPPED_UPSAMPLER.name
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(path, model.save)
    return ModelCard(
        model=path.name, target="punet", load_with="pcfilter_lib.models.punet.load_upsampler(path)",
        data=provenance(folder, scans={k: len(v) for k, v in files.items()}, patches=sizes),
        settings={"spacing_m": round(spacing, 9), "target_spacing_m": round(float(target_spacing), 9),
                  "repulsion_h": round(h, 6), "seed": seed, **dataclasses.asdict(settings)},
        test=rounded(test), validation=rounded(validation), parameters=int(model.count_params()),
        file_bytes=path.stat().st_size, training_seconds=round(run.seconds, 1),
        wall_seconds=round(time.perf_counter() - start, 1), history=rounded(run.history), environment=environment(),
        details={"chamfer_unit": "squared distance in normalised patch coordinates (input centred, farthest input "
                                 "point at distance 1)",
                 "spacing": "median over training scans of the median nearest-neighbour distance of true points"})
