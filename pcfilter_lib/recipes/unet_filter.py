"""Training the U-Net artefact filter on simulated scans: random crops, a loss for rare artefacts, and
a decision threshold chosen on whole validation scans.

Whole 640x480 scans are slow to train on with a CPU, and most of each scan is plain true geometry.
``CropSequence`` therefore cuts square crops from the training scans, centring a share of them on a
random artefact pixel, so that artefacts are not too rare in a batch; it flips, turns and jitters
each crop. A fully convolutional U-Net trained on crops runs on whole scans unchanged. Validation,
threshold choice and testing use whole scans.
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

from pcfilter_lib.data.crops import CropSequence, load_examples
from pcfilter_lib.data.scans import CHANNEL_SETS
from pcfilter_lib.filters import baselines
from pcfilter_lib.filters.baselines import BaselineFilter
from pcfilter_lib.filters.evaluation import evaluate_all, evaluate_filter, tune_baselines
from pcfilter_lib.filters.pixels import UNetFilter
from pcfilter_lib.filters.thresholds import choose_threshold
from pcfilter_lib.io.files import atomic_write_with
from pcfilter_lib.io.model_cards import ModelCard, provenance
from pcfilter_lib.io.scan import load_scan
from pcfilter_lib.models.unet import build_unet
from pcfilter_lib.nn import keras_metrics
from pcfilter_lib.nn.fit import fit
from pcfilter_lib.nn.losses import make_loss
from pcfilter_lib.recipes.common import (
    SCANS_MIXED_FAST,
    SCANS_MIXED_LARGE,
    SPACING_GRIDS,
    ScanSet,
    TrainedFilter,
    ensure_scans,
    environment,
    in_spacings,
    rounded,
)
from pcfilter_lib.simulate.dataset import split_files

# The shipped filter: the original network (8-16-32-48-64 filters, four levels) reading the channels
# that mean the same on any scanner (``data.scans.GEOMETRIC``): no absolute depth, lengths in local
# point spacings. "original" (the 2020 work's five channels and validity) is the ablation.
UNET = {"channels": "geometric", "depth": 4, "filters": (8, 16, 32, 48, 64)}
# Classical baselines tuned beside it: SOR and ROR as for the point filter (ROR's radius in point
# spacings, since every scan has its own scanner), and the morphology of the 2020 work.
BASELINE_GRIDS = {**SPACING_GRIDS, "morph": baselines.GRIDS["morph"]}


def train_filter(train_files: Sequence[Path], val_scans: Sequence[Mapping], loss: str = "focal", epochs: int = 10,
                 crop: int = 128, crops: int = 2048, batch_size: int = 16, learning_rate: float = 2e-3,
                 alpha: float = 0.25, gamma: float = 2.0, seed: int = 0, examples: Sequence[tuple] | None = None,
                 jit_compile: bool | str = "auto", progress: bool = False, verbose: int = 0,
                 channels: str = UNET["channels"], clipnorm: float | None = 1.0, eager: bool = False) -> TrainedFilter:
    """Train a U-Net filter (``UNET``) on crops of ``train_files`` with the named ``loss`` and Adam
    (learning rate decayed by cosine to 5% over the run; each step's gradient clipped to norm
    ``clipnorm``, without which long runs at this rate can blow up after a few epochs), then choose
    its threshold on ``val_scans``.
    ``jit_compile=False`` skips XLA: slower steps, but no compile time (for short runs). ``eager=True`` runs
    every step eagerly, without tracing it into a graph: for a few steps that is quicker still (chapter 5's
    quick run, three steps a network: 3 s instead of 6).
    ``channels`` names the input channel set (``data.scans.CHANNEL_SETS``); ``examples``, when given,
    must hold those channels.

    Returns a ``TrainedFilter``: the ``TrainResult`` of ``nn.fit.fit`` (model, history per epoch,
    seconds) with the ``UNetFilter`` at the chosen threshold, the threshold sweep and the settings.
    """
    keras.utils.set_random_seed(seed)
    names = CHANNEL_SETS[channels]
    if examples is None:
        examples = load_examples(train_files, names, progress=progress)
    data = CropSequence(examples, size=crop, crops=crops, batch_size=batch_size, seed=seed)
    model = build_unet(input_channels=len(names), depth=UNET["depth"], filters=UNET["filters"], name="unet_filter")
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * len(data), alpha=0.05)
    labels = None
    if loss == "weighted_bce":  # class frequencies as the network sees them: in the crops
        batches = [data[i] for i in range(min(len(data), 8))]
        labels = np.concatenate([y[..., 0][w > 0] for _, y, w in batches])
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=clipnorm),
                  loss=make_loss(loss, labels, alpha, gamma), weighted_metrics=keras_metrics.segmentation_metrics(),
                  jit_compile=jit_compile, run_eagerly=eager)
    run = fit(model, data, epochs=epochs, verbose=verbose, progress=progress)
    threshold, sweep = choose_threshold(UNetFilter("unet", model), val_scans)
    settings = {"loss": loss, "epochs": epochs, "crop": crop, "crops_per_epoch": crops, "batch_size": batch_size,
                "learning_rate": learning_rate, "clipnorm": clipnorm, "seed": seed,
                "unet": {**UNET, "channels": channels, "input_channels": list(names), "filters": list(UNET["filters"])}}
    if loss == "focal":
        settings.update(alpha=alpha, gamma=gamma)
    return TrainedFilter(**vars(run), filter=UNetFilter("unet", model=model, threshold=threshold), threshold=threshold,
                         sweep=sweep, settings=settings)


# The reference filter -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UNetRecipe:
    """Sizes of the U-Net filter's reference run.

    Attributes:
        scans: the simulated scans it learns from.
        compare_epochs: epochs of each short run of the loss comparison.
        compare_crops: crops per epoch in the loss comparison.
        epochs: epochs of the final run.
        crops: crops per epoch of the final run.
        crop: side of a square training crop in pixels.
        batch_size: crops per step.
        learning_rate: Adam's initial step size (cosine decay to 5%).
        losses: the losses compared; the best on validation scans trains the final run.
    """

    scans: ScanSet
    compare_epochs: int
    compare_crops: int
    epochs: int
    crops: int
    crop: int
    batch_size: int = 16
    learning_rate: float = 2e-3
    losses: tuple[str, ...] = ("focal", "weighted_bce")


# Bins, boards and fruit, each scan with its own scanner: the point filter's mixed scans, continued to
# 400; training on crops, more scans cost no time, only show more scenes and scanners. Fast scans are
# a quarter of the size, down to 80x60 pixels, hence the smaller crops.
FULL = UNetRecipe(SCANS_MIXED_LARGE, compare_epochs=4, compare_crops=1024, epochs=64, crops=2048, crop=128,
                  learning_rate=1e-3)
FAST = UNetRecipe(SCANS_MIXED_FAST, compare_epochs=1, compare_crops=64, epochs=2, crops=128, crop=48)


def compare_losses(train_files: Sequence[Path], val_scans: Sequence[Mapping], settings: UNetRecipe,
                   examples: Sequence[tuple], seed: int = 0, progress: bool = False,
                   channels: str = UNET["channels"]) -> dict[str, dict]:
    """A short run per loss of ``settings.losses``, each scored on the validation scans; ``examples``
    hold the ``channels`` set.

    Returns:
        {loss: {"threshold", "seconds", "history", "validation"}}; the winner is the loss with the
        best validation mean IoU.
    """
    comparison = {}
    for loss in settings.losses:
        run = train_filter(train_files, val_scans, loss, settings.compare_epochs, crop=settings.crop,
                           crops=settings.compare_crops, batch_size=settings.batch_size,
                           learning_rate=settings.learning_rate, seed=seed, examples=examples, progress=progress,
                           channels=channels)
        val = evaluate_filter(run.filter, val_scans)
        comparison[loss] = {"threshold": run.threshold, "seconds": round(run.seconds, 1), "history": run.history,
                            "validation": rounded(val)}
        if progress:
            print(f"loss {loss}: validation mean IoU {val['mean_iou']:.4f} at threshold {run.threshold}", flush=True)
    return comparison


def train_reference_filter(out: str | os.PathLike, data_dir: str | os.PathLike, settings: UNetRecipe = FULL,
                           seed: int = 0, progress: bool = True, channels: str = UNET["channels"]) -> ModelCard:
    """Train the shipped U-Net filter and save ``out/unet_filter.keras``.

    1. Compare ``settings.losses`` in short runs; the best validation mean IoU wins.
    2. Train the final network with the winner; choose its threshold on the validation scans.
    3. Tune the three baselines on the validation scans (grid search, lengths in point spacings).
    4. Measure all four filters on the test scans.

    Args:
        out: the output folder (created if needed).
        data_dir: the data folder holding (or receiving) the simulated scans.
        settings: ``FULL`` or ``FAST``, or any ``UNetRecipe``.
        seed: seed of the weights and of the crops.
        progress: show progress bars and a line per stage.
        channels: the input channel set (``data.scans.CHANNEL_SETS``); "original" trains the ablation.

    Returns:
        the model card (its ``command`` is left for the caller to fill in).
    """
    if channels not in CHANNEL_SETS:
        raise ValueError(f"unknown channel set {channels!r}: choose one of {sorted(CHANNEL_SETS)}")
    start = time.perf_counter()
    folder = ensure_scans(data_dir, settings.scans, progress)
    train_files, val_files, test_files = (split_files(folder, split) for split in ("train", "val", "test"))
    val_scans = [load_scan(f, arrays=()) for f in val_files]
    examples = load_examples(train_files, CHANNEL_SETS[channels], progress=progress)
    comparison = compare_losses(train_files, val_scans, settings, examples, seed, progress, channels)
    winner = max(comparison, key=lambda name: comparison[name]["validation"]["mean_iou"])
    final = train_filter(train_files, val_scans, winner, settings.epochs, crop=settings.crop, crops=settings.crops,
                         batch_size=settings.batch_size, learning_rate=settings.learning_rate, seed=seed,
                         examples=examples, progress=progress, channels=channels)
    tuned = tune_baselines([in_spacings(scan) for scan in val_scans], BASELINE_GRIDS)
    test_scans = [load_scan(f, arrays=()) for f in test_files]
    candidates = [final.filter] + [BaselineFilter(m, m, tuned[m]["params"], reference_spacing=1.0)
                                   for m in BASELINE_GRIDS]
    test = evaluate_all(candidates, test_scans)
    path = Path(out) / "unet_filter.keras"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(path, final.model.save)
    loss = {"name": winner, **{k: v for k, v in final.settings.items() if k in ("alpha", "gamma")}}
    return ModelCard(
        model=path.name, target="unet", load_with="pcfilter_lib.filters.unet_filter(path)",
        data=provenance(folder, scans={"train": len(train_files), "val": len(val_files), "test": len(test_files)}),
        settings={**final.settings, "compare_epochs": settings.compare_epochs,
                  "compare_crops": settings.compare_crops, "scans": dataclasses.asdict(settings.scans)},
        test=rounded(test["unet"]), validation=rounded(evaluate_filter(final.filter, val_scans)),
        threshold=final.threshold, parameters=int(final.model.count_params()), file_bytes=path.stat().st_size,
        training_seconds=round(final.seconds, 1), wall_seconds=round(time.perf_counter() - start, 1),
        history=final.history, environment=environment(),
        details={"loss": loss, "loss_comparison": comparison, "baseline_lengths": "point spacings",
                 "baselines": {m: {"params": tuned[m]["params"], "validation": rounded(tuned[m]["validation"]),
                                   "test": rounded(test[m])} for m in BASELINE_GRIDS}})
