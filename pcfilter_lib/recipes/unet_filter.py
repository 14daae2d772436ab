"""Training the U-Net artefact filter on simulated scans: random crops, a loss for rare artefacts, and
a decision threshold chosen on whole validation scans.

Whole 640x480 scans are slow to train on with a CPU, and most of each scan is plain true geometry.
``CropSequence`` therefore cuts square crops from the training scans, centring a share of them on a
random artefact pixel, so that artefacts are not too rare in a batch; it flips, turns and jitters
each crop. A fully convolutional U-Net trained on crops runs on whole scans unchanged. Validation,
threshold choice and testing use whole scans.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from pcfilter_lib.data.crops import CropSequence, load_examples
from pcfilter_lib.filters import baselines
from pcfilter_lib.filters.base import Filter
from pcfilter_lib.filters.baselines import BaselineFilter
from pcfilter_lib.filters.evaluation import evaluate_all, evaluate_filter, tune_baselines
from pcfilter_lib.filters.thresholds import choose_threshold
from pcfilter_lib.filters.unet import UNetFilter
from pcfilter_lib.models.unet import build_unet
from pcfilter_lib.nn import metrics
from pcfilter_lib.nn.fit import TrainResult, fit
from pcfilter_lib.nn.losses import make_loss

# The shipped filter: the original network (8-16-32-48-64 filters, four levels) reading the five
# channels of the original work plus the 0/1 validity channel.
UNET = {"input_channels": 6, "depth": 4, "filters": (8, 16, 32, 48, 64)}


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


def train_filter(train_files: Sequence[Path], val_scans: Sequence[Mapping], loss: str = "focal", epochs: int = 10,
                 crop: int = 128, crops: int = 2048, batch_size: int = 16, learning_rate: float = 2e-3,
                 alpha: float = 0.25, gamma: float = 2.0, seed: int = 0, examples: Sequence[tuple] | None = None,
                 jit_compile: bool | str = "auto", progress: bool = False, verbose: int = 0) -> TrainedFilter:
    """Train a U-Net filter (``UNET``) on crops of ``train_files`` with the named ``loss`` and Adam
    (learning rate decayed by cosine to 5% over the run), then choose its threshold on ``val_scans``.
    ``jit_compile=False`` skips XLA: slower steps, but no compile time (for short runs).

    Returns a ``TrainedFilter``: the ``TrainResult`` of ``nn.fit.fit`` (model, history per epoch,
    seconds) with the ``UNetFilter`` at the chosen threshold, the threshold sweep and the settings.
    """
    keras.utils.set_random_seed(seed)
    if examples is None:
        examples = load_examples(train_files, validity=UNET["input_channels"] == 6, progress=progress)
    data = CropSequence(examples, size=crop, crops=crops, batch_size=batch_size, seed=seed)
    model = build_unet(input_channels=UNET["input_channels"], depth=UNET["depth"], filters=UNET["filters"],
                       name="unet_filter")
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * len(data), alpha=0.05)
    labels = None
    if loss == "weighted_bce":  # class frequencies as the network sees them: in the crops
        batches = [data[i] for i in range(min(len(data), 8))]
        labels = np.concatenate([y[..., 0][w > 0] for _, y, w in batches])
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=make_loss(loss, labels, alpha, gamma),
                  weighted_metrics=metrics.segmentation_metrics(), jit_compile=jit_compile)
    run = fit(model, data, epochs=epochs, verbose=verbose, progress=progress)
    threshold, sweep = choose_threshold(UNetFilter("unet", model), val_scans)
    settings = {"loss": loss, "epochs": epochs, "crop": crop, "crops_per_epoch": crops, "batch_size": batch_size,
                "learning_rate": learning_rate, "seed": seed, "unet": {**UNET, "filters": list(UNET["filters"])}}
    if loss == "focal":
        settings.update(alpha=alpha, gamma=gamma)
    return TrainedFilter(**vars(run), filter=UNetFilter("unet", model=model, threshold=threshold), threshold=threshold,
                         sweep=sweep, settings=settings)


# The reference filter -----------------------------------------------------------------------------


def default_scans(progress: bool = True) -> Path:
    """The default simulated dataset, made (or resumed) if needed: ``scans`` in the data folder with 100
    scans of 640x480 (``scans_fast``: 24 of 160x120 in fast mode), seed 0, split 0.8/0.1/0.1."""
    from pcfilter_lib import config
    from pcfilter_lib.simulate import dataset
    from pcfilter_lib.simulate.scanner import ScannerConfig

    n, (width, height), name = config.choose(full=(100, (640, 480), "scans"), fast=(24, (160, 120), "scans_fast"))
    folder = config.data_dir() / name
    dataset.write_dataset(folder, n, 0, ScannerConfig(width=width, height=height), progress=progress)
    return folder


def reference_settings() -> dict:
    """Sizes of the reference run by mode (``config.choose``): the short loss comparison and the final run."""
    from pcfilter_lib import config

    return config.choose(
        full={"compare_epochs": 4, "compare_crops": 1024, "epochs": 12, "crops": 2048, "crop": 128,
              "batch_size": 16, "learning_rate": 2e-3},
        fast={"compare_epochs": 1, "compare_crops": 64, "epochs": 2, "crops": 128, "crop": 64,
              "batch_size": 16, "learning_rate": 2e-3})


def train_reference_filter(out: str | os.PathLike, seed: int = 0, epochs: int | None = None,
                           losses_to_compare: Sequence[str] = ("focal", "weighted_bce"), progress: bool = True) -> dict:
    """Train the shipped U-Net filter and return its manifest (without the command line).

    1. Compare ``losses_to_compare`` in short runs; the one with the best validation mean IoU wins.
    2. Train the final network with the winner; choose its threshold on the validation scans.
    3. Tune the three baselines on the validation scans (grid search).
    4. Measure all four filters on the test scans; save ``out/unet_filter.keras``.
    """
    from pcfilter_lib.data.scans import split_files
    from pcfilter_lib.io.files import atomic_write_with, read_manifest, sha256
    from pcfilter_lib.io.scan import load_scan

    s = reference_settings()
    epochs = epochs or s["epochs"]
    folder = default_scans(progress)
    train_files, val_files, test_files = (split_files(folder, split) for split in ("train", "val", "test"))
    val_scans = [load_scan(f, arrays=()) for f in val_files]
    examples = load_examples(train_files, progress=progress)
    common = dict(crop=s["crop"], batch_size=s["batch_size"], learning_rate=s["learning_rate"], seed=seed,
                  examples=examples, progress=progress)

    comparison = {}
    for loss in losses_to_compare:
        run = train_filter(train_files, val_scans, loss, s["compare_epochs"], crops=s["compare_crops"], **common)
        val = evaluate_filter(run.filter, val_scans)
        comparison[loss] = {"threshold": run.threshold, "seconds": round(run.seconds, 1),
                            "history": run.history, "validation": _rounded(val)}
        if progress:
            print(f"loss {loss}: validation mean IoU {val['mean_iou']:.4f} at threshold {run['threshold']}", flush=True)
    winner = max(comparison, key=lambda name: comparison[name]["validation"]["mean_iou"])

    final = train_filter(train_files, val_scans, winner, epochs, crops=s["crops"], **common)
    tuned = tune_baselines(val_scans)
    test_scans = [load_scan(f, arrays=()) for f in test_files]
    filters = [final.filter] + [BaselineFilter(m, method=m, params=tuned[m]["params"]) for m in baselines.METHODS]
    test = evaluate_all(filters, test_scans)
    validation = evaluate_filter(final.filter, val_scans)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "unet_filter.keras"
    atomic_write_with(path, final.model.save)
    manifest = read_manifest(folder) or {}
    return {
        "model": path.name,
        "load_with": "import pcfilter_lib.nn.losses, pcfilter_lib.nn.metrics; keras.models.load_model(path)",
        "threshold": final.threshold,
        "loss": {"name": winner, **{k: v for k, v in final.settings.items() if k in ("alpha", "gamma")}},
        "data": {"folder": folder.name, "generator": manifest.get("generator"), "version": manifest.get("version"),
                 "seed": manifest.get("seed"), "parameters": manifest.get("parameters"),
                 "manifest_sha256": sha256(folder / "manifest.json"),
                 "scans": {"train": len(train_files), "val": len(val_files), "test": len(test_files)}},
        "settings": {**final.settings, "compare_epochs": s["compare_epochs"], "compare_crops": s["compare_crops"]},
        "parameters": int(final.model.count_params()),
        "file_bytes": path.stat().st_size,
        "training_seconds": round(final.seconds, 1),
        "history": final.history,
        "loss_comparison": comparison,
        "validation": _rounded(validation),
        "baselines": {m: {"params": tuned[m]["params"], "validation": _rounded(tuned[m]["validation"]),
                          "test": _rounded(test[m])} for m in baselines.METHODS},
        "test": _rounded(test["unet"]),
    }


def _rounded(values):
    if isinstance(values, dict):
        return {k: _rounded(v) for k, v in values.items()}
    if isinstance(values, float):
        return round(values, 6)
    return values
