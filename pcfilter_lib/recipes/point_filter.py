"""Training the point-based artefact filter on the points of simulated scans, and measuring it.

The scans mix bins, circuit boards and fruit, each taken with its own scanner
(``recipes.common.SCANS_MIXED_FULL``), so that the filter meets dense ghost surfaces and isolated
decoding errors and cannot learn one scanner's point spacing or noise.

Each training scan is reduced to its measured points (the grid is thrown away) and, as
augmentation, randomly subsampled to 100%, 50% and 25% of them, since clouds met in practice are
often thinned. For each version the features of ``point_filtering`` are computed once and a share
of its patches is kept, half of them patches holding an artefact, so that artefacts are not too rare
in a batch. An ablation trains one short run per feature set; the best on the validation clouds is
trained in full. The threshold is chosen on whole validation clouds like the U-Net's: the best mean
IoU among thresholds keeping at least 99.5% of the true points. Open3D statistical and radius
outlier removal are tuned on the same validation clouds at each density.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from pcfilter_lib import filters
from pcfilter_lib.data.patches import select_features, training_patches
from pcfilter_lib.filters.baselines import BaselineFilter
from pcfilter_lib.filters.evaluation import evaluate_filter, tune_baselines
from pcfilter_lib.filters.thresholds import choose_threshold
from pcfilter_lib.geometry import point_features
from pcfilter_lib.io.clouds import scan_cloud
from pcfilter_lib.io.files import atomic_write_with
from pcfilter_lib.io.model_cards import ModelCard, provenance
from pcfilter_lib.io.scan import load_scan
from pcfilter_lib.models.pointnet import build_pointnet_segmentation
from pcfilter_lib.models.pointnet2 import build_pointnet2_segmentation
from pcfilter_lib.nn import keras_metrics, losses
from pcfilter_lib.nn.fit import fit
from pcfilter_lib.recipes.common import (
    SCANS_MIXED_FAST,
    SCANS_MIXED_FULL,
    SPACING_GRIDS,
    ScanSet,
    TrainedFilter,
    ensure_scans,
    environment,
    in_spacings,
    rounded,
)
from pcfilter_lib.simulate.dataset import split_files

FRACTIONS = (1.0, 0.5, 0.25)  # densities trained on and tested at
# The shipped network: PointNet segmentation at width 0.1875, without T-Nets, on patches of 256 points.
NETWORK = {"width": 0.1875, "dropout": 0.1, "patch_size": 256}
NETWORKS = ("pointnet", "pointnet2")
# PointNet++ on a patch: 64 then 16 centroids. A patch's coordinates are in point spacings divided
# by 8 (``point_features.patch_inputs``), so the radii are 2 and 4 spacings.
POINTNET2 = {"width": 0.25, "samples": (64, 16),
             "levels": ({"radius": 0.25, "num_neighbors": 16, "mlp": (64, 64, 128)},
                        {"radius": 0.5, "num_neighbors": 32, "mlp": (128, 128, 256)})}
def build_network(network: str, channels: int) -> keras.Model:
    """The point filter's network on patches of ``NETWORK["patch_size"]`` points with ``channels``
    features: "pointnet" (the shipped kind, ``NETWORK``) or "pointnet2" (``POINTNET2``)."""
    if network == "pointnet2":
        return build_pointnet2_segmentation(1, NETWORK["patch_size"], channels=channels, dropout=NETWORK["dropout"],
                                            name="pointnet2_filter", **POINTNET2)
    if network != "pointnet":
        raise ValueError(f"unknown network {network!r}: choose one of {', '.join(NETWORKS)}")
    return build_pointnet_segmentation(1, NETWORK["patch_size"], width=NETWORK["width"], dropout=NETWORK["dropout"],
                                       channels=channels, transforms=False, name="pointnet_filter")


def train_point_filter(inputs: np.ndarray, labels: np.ndarray, val_clouds: Sequence[Mapping], feature_set: str,
                       epochs: int, batch_size: int = 32, learning_rate: float = 2e-3, seed: int = 0,
                       alpha: float = 0.25, gamma: float = 2.0, network: str = "pointnet",
                       progress: bool = False) -> TrainedFilter:
    """Train a point filter on patches (``training_patches``) with the focal loss and Adam (cosine
    decay to 5%), then choose its threshold on ``val_clouds``.

    ``network`` picks the network (``build_network``). Returns a ``TrainedFilter``: the
    ``TrainResult`` of ``nn.fit.fit`` (model, history per epoch, seconds) with the ``PointFilter`` at
    the chosen threshold, the threshold sweep and the settings."""
    keras.utils.set_random_seed(seed)
    x = select_features(inputs, feature_set)
    model = build_network(network, x.shape[-1])
    steps = epochs * int(np.ceil(len(x) / batch_size))
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps,
                                                                                         alpha=0.05)),
                  loss=losses.BinaryFocalLoss(alpha=alpha, gamma=gamma),
                  weighted_metrics=keras_metrics.segmentation_metrics())
    run = fit(model, (x, labels, np.ones(labels.shape, np.float32)), epochs=epochs, batch_size=batch_size,
              progress=progress)
    point_filter = filters.PointFilter(model, feature_set=feature_set, patch_size=NETWORK["patch_size"],
                                       name=model.name)
    point_filter.threshold, sweep = choose_threshold(point_filter, val_clouds)
    settings = {"feature_set": feature_set, "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                "seed": seed, "loss": {"name": "focal", "alpha": alpha, "gamma": gamma}, "network": network,
                **(NETWORK if network == "pointnet" else {**NETWORK, **POINTNET2})}
    return TrainedFilter(**vars(run), filter=point_filter, threshold=point_filter.threshold, sweep=sweep,
                         settings=settings)


@dataclass(frozen=True)
class PointFilterRecipe:
    """Sizes of the point filter's reference run.

    Attributes:
        scans: the simulated scans whose points it learns from.
        train_scans: how many of the training scans are used.
        patches_per_cloud: training patches drawn from each cloud (each scan at each density).
        compare_share: share of the patches the ablation's short runs see.
        compare_epochs: epochs of each short run of the ablation.
        epochs: epochs of the final run.
        batch_size: patches per step.
        learning_rate: Adam's initial step size (cosine decay to 5%).
    """

    scans: ScanSet
    train_scans: int
    patches_per_cloud: int
    compare_share: float
    compare_epochs: int
    epochs: int
    batch_size: int = 32
    learning_rate: float = 2e-3


FULL = PointFilterRecipe(SCANS_MIXED_FULL, train_scans=120, patches_per_cloud=160, compare_share=0.3,
                         compare_epochs=3, epochs=20)
FAST = PointFilterRecipe(SCANS_MIXED_FAST, train_scans=8, patches_per_cloud=16, compare_share=1.0, compare_epochs=1,
                         epochs=2)


def clouds_at_densities(scans: Sequence[Mapping], seed: int = 0) -> dict[float, list[dict]]:
    """The measured points of each scan as a cloud at each density of ``FRACTIONS`` (thinned at random)."""
    return {f: [scan_cloud(scan, f, seed=seed + i) for i, scan in enumerate(scans)] for f in FRACTIONS}


def feature_ablation(inputs: np.ndarray, labels: np.ndarray, val_clouds: Sequence[Mapping],
                     settings: PointFilterRecipe, seed: int = 0, progress: bool = False) -> dict[str, dict]:
    """A short run per feature set of ``point_features.FEATURE_SETS`` on a random share of the patches.

    Returns:
        {feature set: {"channels", "threshold", "seconds", "validation"}}; the winner is the set with
        the best validation mean IoU.
    """
    share = int(len(inputs) * settings.compare_share)
    subset = np.sort(np.random.default_rng(seed).permutation(len(inputs))[:share])
    ablation = {}
    for feature_set in point_features.FEATURE_SETS:
        run = train_point_filter(inputs[subset], labels[subset], val_clouds, feature_set, settings.compare_epochs,
                                 batch_size=settings.batch_size, learning_rate=settings.learning_rate, seed=seed,
                                 progress=progress)
        result = evaluate_filter(run.filter, val_clouds)
        ablation[feature_set] = {"channels": len(point_features.FEATURE_SETS[feature_set]),
                                 "threshold": run.threshold, "seconds": round(run.seconds, 1),
                                 "validation": rounded(result)}
        if progress:
            print(f"features {feature_set}: validation mean IoU {result['mean_iou']:.4f}", flush=True)
    return ablation


def compare_at_densities(point_filter, val: Mapping[float, list], test: Mapping[float, list],
                         progress: bool = False) -> dict[str, dict]:
    """SOR and ROR tuned on the validation clouds at each density (ROR's radius in point spacings), then
    every filter on the test clouds. ``point_filter`` is one learned filter or a list of them (each
    needs its own ``name``).

    Returns:
        {"1.0": {"baselines": {method: {"params", "validation"}}, "test": {filter: metrics}}, ...}.
    """
    densities = {}
    for fraction in FRACTIONS:
        tuned = tune_baselines([in_spacings(c) for c in val[fraction]], SPACING_GRIDS)
        learned = list(point_filter) if isinstance(point_filter, Sequence) else [point_filter]
        candidates = learned + [BaselineFilter(m, m, tuned[m]["params"], reference_spacing=1.0)
                                 for m in SPACING_GRIDS]
        densities[str(fraction)] = {
            "baselines": {m: {"params": tuned[m]["params"], "validation": rounded(tuned[m]["validation"])}
                          for m in SPACING_GRIDS},
            "test": {f.name: rounded(evaluate_filter(f, test[fraction])) for f in candidates}}
        if progress:
            row = densities[str(fraction)]["test"]
            print(f"{fraction:.0%} of the points: " + ", ".join(f"{k} {v['mean_iou']:.4f}" for k, v in row.items()),
                  flush=True)
    return densities


@dataclass(frozen=True)
class PatchData:
    """What the point filter learns from and is measured on (``prepare_data``).

    Attributes:
        folder: the simulated scans' folder.
        train_files, val_files, test_files: the scan files of each split used.
        inputs: (M, P, 27) training patches of the feature set "both".
        labels: (M, P, 1) their labels, 1 keep and 0 artefact.
        val: the validation scans' clouds at each density of ``FRACTIONS``.
        test: the test scans' clouds at each density.
    """

    folder: Path
    train_files: list
    val_files: list
    test_files: list
    inputs: np.ndarray
    labels: np.ndarray
    val: dict
    test: dict


def prepare_data(data_dir: str | os.PathLike, settings: PointFilterRecipe = FULL, seed: int = 0,
                 progress: bool = False) -> PatchData:
    """The recipe's scans (made if missing), the training patches of their points at every density
    and the validation and test clouds."""
    folder = ensure_scans(data_dir, settings.scans, progress)
    train_files = split_files(folder, "train")[:settings.train_scans]
    val_files, test_files = split_files(folder, "val"), split_files(folder, "test")
    train_clouds = [scan_cloud(load_scan(f, arrays=()), fraction, seed=seed + i)
                    for i, f in enumerate(train_files) for fraction in FRACTIONS]
    inputs, labels = training_patches(train_clouds, settings.patches_per_cloud, NETWORK["patch_size"], seed=seed,
                                      progress=progress)
    val = clouds_at_densities([load_scan(f, arrays=()) for f in val_files], seed)
    test = clouds_at_densities([load_scan(f, arrays=()) for f in test_files], seed)
    return PatchData(Path(folder), train_files, val_files, test_files, inputs, labels, val, test)


def train_reference_point_filter(out: str | os.PathLike, data_dir: str | os.PathLike,
                                 settings: PointFilterRecipe = FULL, seed: int = 0,
                                 progress: bool = True) -> ModelCard:
    """Train the shipped point filter and save ``out/pointnet_filter.keras``.

    1. Features and patches of the training scans' points at each density of ``FRACTIONS``.
    2. Ablation: a short run per feature set; the best validation mean IoU (full density) wins.
    3. The winner trained in full; threshold chosen on the validation clouds.
    4. SOR and ROR tuned on the validation clouds at each density; all measured on the test clouds.

    Args:
        out: the output folder (created if needed).
        data_dir: the data folder holding (or receiving) the simulated scans.
        settings: ``FULL`` or ``FAST``, or any ``PointFilterRecipe``.
        seed: seed of the thinning, the patches and the weights.
        progress: show progress bars and a line per stage.

    Returns:
        the model card (its ``command`` is left for the caller to fill in).
    """
    start = time.perf_counter()
    data = prepare_data(data_dir, settings, seed, progress)
    folder, inputs, labels, val, test = data.folder, data.inputs, data.labels, data.val, data.test
    train_files, val_files, test_files = data.train_files, data.val_files, data.test_files
    ablation = feature_ablation(inputs, labels, val[1.0], settings, seed, progress)
    winner = max(ablation, key=lambda name: ablation[name]["validation"]["mean_iou"])
    final = train_point_filter(inputs, labels, val[1.0], winner, settings.epochs, batch_size=settings.batch_size,
                               learning_rate=settings.learning_rate, seed=seed, progress=progress)
    densities = compare_at_densities(final.filter, val, test, progress)
    path = Path(out) / "pointnet_filter.keras"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(path, final.model.save)
    return ModelCard(
        model=path.name, target="pointfilter", load_with="pcfilter_lib.filters.point_filter(path)",
        data=provenance(folder, scans={"train": len(train_files), "val": len(val_files), "test": len(test_files)},
                        fractions=list(FRACTIONS), training_patches=int(len(inputs))),
        settings={"feature_set": winner, "patch_size": NETWORK["patch_size"], "neighbours": point_features.NEIGHBOURS,
                  "width": NETWORK["width"], "dropout": NETWORK["dropout"],
                  "loss": {"name": "focal", "alpha": 0.25, "gamma": 2.0}, "seed": seed,
                  **dataclasses.asdict(settings)},
        test=densities["1.0"]["test"][final.filter.name], validation=ablation[winner]["validation"],
        threshold=final.threshold, parameters=int(final.model.count_params()), file_bytes=path.stat().st_size,
        training_seconds=round(final.seconds, 1), wall_seconds=round(time.perf_counter() - start, 1),
        history=final.history, environment=environment(),
        details={"ablation": ablation, "densities": densities, "baseline_lengths": "point spacings",
                 **threshold_rules(final.sweep)})


def threshold_rules(sweep: Mapping) -> dict:
    """What a model card records of the validation sweep behind its threshold rules: the sweep itself
    (threshold, balanced accuracy, mean IoU, keep-recall) and ``balanced_threshold``, the threshold with
    the best balanced accuracy (``filters.point_filter(threshold_rule="balanced")``)."""
    keys = {"threshold": "threshold", "balanced_accuracy": "balanced_accuracy", "mean_iou": "mean_iou",
            "keep_recall": "recall"}
    table = {name: [round(float(v), 6) for v in sweep[key]] for name, key in keys.items()}
    best = int(np.argmax(sweep["balanced_accuracy"]))
    return {"threshold_sweep": table, "balanced_threshold": float(sweep["threshold"][best])}
