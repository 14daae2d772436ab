"""Training the point-based artefact filter on the points of simulated scans, and measuring it.

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

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np

from pcfilter_lib import filters
from pcfilter_lib.data.patches import select_features, training_patches
from pcfilter_lib.filters.baselines import BaselineFilter
from pcfilter_lib.filters.evaluation import evaluate_filter
from pcfilter_lib.filters.thresholds import choose_threshold
from pcfilter_lib.geometry import point_features
from pcfilter_lib.io.clouds import scan_cloud
from pcfilter_lib.models.pointnet import build_pointnet_segmentation
from pcfilter_lib.nn import losses, metrics
from pcfilter_lib.nn.fit import fit
from pcfilter_lib.recipes.unet_filter import TrainedFilter

FRACTIONS = (1.0, 0.5, 0.25)  # densities trained on and tested at
# The shipped network: PointNet segmentation at width 0.1875, without T-Nets, on patches of 256 points.
NETWORK = {"width": 0.1875, "dropout": 0.1, "patch_size": 256}
# Open3D baselines tuned for unorganised clouds at each density; radii in metres, as for the scans.
GRIDS = {"sor": {"nb_neighbors": [5, 10, 20, 40], "std_ratio": [0.5, 1.0, 2.0, 3.0]},
         "ror": {"nb_points": [1, 2, 4, 8, 16], "radius": [0.002, 0.003, 0.005, 0.008, 0.012]}}


def train_point_filter(inputs: np.ndarray, labels: np.ndarray, val_clouds: Sequence[Mapping], feature_set: str,
                       epochs: int, batch_size: int = 32, learning_rate: float = 2e-3, seed: int = 0,
                       alpha: float = 0.25, gamma: float = 2.0, progress: bool = False) -> TrainedFilter:
    """Train a point filter on patches (``training_patches``) with the focal loss and Adam (cosine
    decay to 5%), then choose its threshold on ``val_clouds``.

    Returns a ``TrainedFilter``: the ``TrainResult`` of ``nn.fit.fit`` (model, history per epoch,
    seconds) with the ``PointFilter`` at the chosen threshold, the threshold sweep and the settings."""
    keras.utils.set_random_seed(seed)
    x = select_features(inputs, feature_set)
    model = build_pointnet_segmentation(1, NETWORK["patch_size"], width=NETWORK["width"], dropout=NETWORK["dropout"],
                                        channels=x.shape[-1], transforms=False, name="pointnet_filter")
    steps = epochs * int(np.ceil(len(x) / batch_size))
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps,
                                                                                         alpha=0.05)),
                  loss=losses.BinaryFocalLoss(alpha=alpha, gamma=gamma),
                  weighted_metrics=metrics.segmentation_metrics())
    run = fit(model, (x, labels, np.ones(labels.shape, np.float32)), epochs=epochs, batch_size=batch_size,
              progress=progress)
    point_filter = filters.PointFilter(model, feature_set=feature_set, patch_size=NETWORK["patch_size"])
    point_filter.threshold, sweep = choose_threshold(point_filter, val_clouds)
    settings = {"feature_set": feature_set, "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                "seed": seed, "loss": {"name": "focal", "alpha": alpha, "gamma": gamma}, **NETWORK}
    return TrainedFilter(**vars(run), filter=point_filter, threshold=point_filter.threshold, sweep=sweep,
                         settings=settings)


def reference_settings() -> dict:
    """Sizes of the reference run by mode: scans used, patches per cloud, the share of patches and the
    epochs of the ablation's short runs, epochs of the final run."""
    from pcfilter_lib import config

    return config.choose(
        full={"train_scans": 80, "patches_per_cloud": 160, "compare_share": 0.4, "compare_epochs": 3, "epochs": 32,
              "batch_size": 32, "learning_rate": 2e-3},
        fast={"train_scans": 8, "patches_per_cloud": 16, "compare_share": 1.0, "compare_epochs": 1, "epochs": 2,
              "batch_size": 32, "learning_rate": 2e-3})


def train_reference_point_filter(out: str | os.PathLike, seed: int = 0, epochs: int | None = None,
                                 progress: bool = True) -> dict:
    """Train the shipped point filter and return its manifest (without the command line).

    1. Features and patches of the training scans' points at each density of ``FRACTIONS``.
    2. Ablation: a short run per feature set on a share of the patches; the best validation mean IoU
       (full density) wins.
    3. The winner trained in full; threshold chosen on the validation clouds.
    4. SOR and ROR tuned on the validation clouds at each density; all measured on the test clouds.
    5. Saved as ``out/pointnet_filter.keras``.
    """
    from pcfilter_lib.data.scans import split_files
    from pcfilter_lib.filters.evaluation import tune_baselines
    from pcfilter_lib.io.files import atomic_write_with, read_manifest, sha256
    from pcfilter_lib.io.scan import load_scan
    from pcfilter_lib.recipes.unet_filter import _rounded, default_scans

    s = reference_settings()
    epochs = epochs or s["epochs"]
    folder = default_scans(progress)
    train_files = split_files(folder, "train")[:s["train_scans"]]
    val_files, test_files = split_files(folder, "val"), split_files(folder, "test")
    train_clouds = [scan_cloud(load_scan(f, arrays=()), fraction, seed=seed + i)
                    for i, f in enumerate(train_files) for fraction in FRACTIONS]
    inputs, labels = training_patches(train_clouds, s["patches_per_cloud"], NETWORK["patch_size"], seed=seed,
                                      progress=progress)
    val_scans = [load_scan(f, arrays=()) for f in val_files]
    test_scans = [load_scan(f, arrays=()) for f in test_files]
    val = {f: [scan_cloud(scan, f, seed=seed + i) for i, scan in enumerate(val_scans)] for f in FRACTIONS}
    test = {f: [scan_cloud(scan, f, seed=seed + i) for i, scan in enumerate(test_scans)] for f in FRACTIONS}
    common = dict(batch_size=s["batch_size"], learning_rate=s["learning_rate"], seed=seed, progress=progress)

    ablation = {}
    share = int(len(inputs) * s["compare_share"])  # the short runs see a random share of the patches
    subset = np.sort(np.random.default_rng(seed).permutation(len(inputs))[:share])
    for feature_set in point_features.FEATURE_SETS:
        run = train_point_filter(inputs[subset], labels[subset], val[1.0], feature_set, s["compare_epochs"], **common)
        result = evaluate_filter(run.filter, val[1.0])
        ablation[feature_set] = {"channels": len(point_features.FEATURE_SETS[feature_set]),
                                 "threshold": run.threshold, "seconds": round(run.seconds, 1),
                                 "validation": _rounded(result)}
        if progress:
            print(f"features {feature_set}: validation mean IoU {result['mean_iou']:.4f}", flush=True)
    winner = max(ablation, key=lambda name: ablation[name]["validation"]["mean_iou"])

    final = train_point_filter(inputs, labels, val[1.0], winner, epochs, **common)
    point_filter = final.filter
    densities = {}
    for fraction in FRACTIONS:
        tuned = tune_baselines(val[fraction], GRIDS)
        filters = [point_filter] + [BaselineFilter(m, method=m, params=tuned[m]["params"]) for m in GRIDS]
        densities[str(fraction)] = {
            "baselines": {m: {"params": tuned[m]["params"], "validation": _rounded(tuned[m]["validation"])}
                          for m in GRIDS},
            "test": {f.name: _rounded(evaluate_filter(f, test[fraction])) for f in filters}}
        if progress:
            row = densities[str(fraction)]["test"]
            print(f"{fraction:.0%} of the points: " + ", ".join(f"{k} {v['mean_iou']:.4f}" for k, v in row.items()),
                  flush=True)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "pointnet_filter.keras"
    atomic_write_with(path, point_filter.model.save)
    manifest = read_manifest(folder) or {}
    return {
        "model": path.name,
        "load_with": "pcfilter_lib.filters.point_filter(path)",
        "threshold": final.threshold,
        "data": {"folder": folder.name, "generator": manifest.get("generator"), "version": manifest.get("version"),
                 "seed": manifest.get("seed"), "manifest_sha256": sha256(folder / "manifest.json"),
                 "scans": {"train": len(train_files), "val": len(val_files), "test": len(test_files)},
                 "fractions": list(FRACTIONS), "training_patches": int(len(inputs))},
        "settings": {"feature_set": winner, "patch_size": NETWORK["patch_size"],
                     "neighbours": point_features.NEIGHBOURS, "width": NETWORK["width"],
                     "dropout": NETWORK["dropout"], "loss": {"name": "focal", "alpha": 0.25, "gamma": 2.0},
                     "epochs": epochs, "seed": seed, **{k: v for k, v in s.items() if k != "epochs"}},
        "parameters": int(point_filter.model.count_params()),
        "file_bytes": path.stat().st_size,
        "training_seconds": round(final.seconds, 1),
        "history": final.history,
        "ablation": ablation,
        "densities": densities,
        "test": densities["1.0"]["test"][point_filter.name],
    }
