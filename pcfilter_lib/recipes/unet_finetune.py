"""Fine-tuning the U-Net filter on a few labelled organised scans of the user's own scanner.

The simulator cannot know every scanner, and the U-Net learnt only from simulation. A user with a
few labelled organised scans (PTX with its ``.outliers``, an organised ``.ply``/``.pcd`` with labels,
or a pcfilter scan ``.npz``) can adapt it:

1. A **held-out block** is cut from every scan: the band of image columns beyond the ``1 - holdout``
   quantile of the columns of its points (the right-hand end of the image). A band, not random
   pixels: random pixels would have their neighbours among the training pixels and flatter the
   result. The band and the rest become two scans of their own, so no training crop sees the band.
2. The network (the shipped U-Net, or one given) trains further on square crops of the training
   part: half of them centred on an artefact, the rest on a random point (most of a real scan's
   image holds no point), each flipped, turned and its intensity jittered
   (``data.crops.CropSequence``), with the focal loss weighing both classes alike, Adam at half the
   recipe's from-scratch learning rate, decayed by cosine. ``layers="decoder"`` freezes the encoder.
3. The threshold is chosen on the held-out blocks (best balanced accuracy, with an optional floor on
   the share of true points kept), and the network is measured there before and after.

The result is a ``.keras`` U-Net like the shipped one: ``pcfilter filter --model FILE.keras`` runs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import keras
import numpy as np

from pcfilter_lib.data.crops import CropSequence
from pcfilter_lib.data.scans import augment_example, scan_inputs, scan_targets
from pcfilter_lib.filters.pixels import UNetFilter, predict_keep, unet_filter
from pcfilter_lib.io.labelled_scans import split_scans
from pcfilter_lib.labels import KEEP
from pcfilter_lib.nn.fit import fit
from pcfilter_lib.nn.losses import make_loss
from pcfilter_lib.recipes.common import environment
from pcfilter_lib.recipes.finetune import summary

LAYER_CHOICES = ("all", "decoder")
EAGER_STEPS = 10  # up to this many steps run eagerly: tracing the training step would take longer
THRESHOLDS = tuple(np.round(np.linspace(0.02, 0.98, 49), 2).tolist())  # the thresholds tried, as elsewhere


@dataclass(frozen=True)
class UNetFinetuneSettings:
    """How the U-Net is fine-tuned.

    Attributes:
        holdout: share of each scan's point columns, at the right-hand end, kept aside to choose the
            threshold and to measure.
        steps: training steps (batches).
        crop: side of a square training crop, in pixels. On a real circuit board, trained on one half
            and measured on the other (``benchmarks/unet_finetune_real.py``), 800 steps of 96-pixel
            crops ranked the measured half at a ROC AUC of about 0.85 both ways, where 400 steps of
            64-pixel crops reached 0.79 one way; 1200 steps, or 800 of six 128-pixel crops, did no
            better (its ``--steps``, ``--crop``, ``--batch-size``). The board's false surfaces are
            blobs of hundreds of pixels: a crop must hold one with the true surface around it.
        batch_size: crops per step.
        learning_rate: Adam's initial step size (cosine decay to 5%).
        artefact_share: share of the crops centred on an artefact (the others on a random point).
        alpha: the focal loss's weight of the keep class. 0.5 weighs both classes alike: half the
            crops are already centred on artefacts, and on a real circuit board (18.9% artefacts)
            the simulated recipe's 0.25, which weighs artefacts three times more on top, ranked the
            held-out half worse (``benchmarks/unet_finetune_real.py``).
        gamma: the focal loss's focusing exponent.
        layers: "all" trains every layer; "decoder" freezes the encoder and the bottleneck.
        min_recall: share of the held-out true points the chosen threshold must keep (0: the best
            balanced accuracy, whatever it keeps).
        seed: seed of the crops and of the dropout.
    """

    holdout: float = 0.2
    steps: int = 800
    crop: int = 96
    batch_size: int = 8
    learning_rate: float = 1e-3
    artefact_share: float = 0.5
    alpha: float = 0.5
    gamma: float = 2.0
    layers: str = "all"
    min_recall: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if not 0.05 <= self.holdout <= 0.5:
            raise ValueError(f"the held-out share must lie between 0.05 and 0.5, got {self.holdout}")
        if not 1 <= self.steps <= 100_000:
            raise ValueError(f"steps must lie between 1 and 100000, got {self.steps}")
        if self.crop < 16 or self.crop % 16:
            raise ValueError(f"the crop side must be a multiple of 16 of at least 16 pixels, got {self.crop}")
        if self.layers not in LAYER_CHOICES:
            raise ValueError(f"layers must be one of {LAYER_CHOICES}, got {self.layers!r}")
        if not 0 <= self.min_recall < 1:
            raise ValueError(f"the kept share of true points must lie in [0, 1), got {self.min_recall}")


def pad_to(example: tuple, size: int) -> tuple:
    """``(x, y, w)`` padded with empty pixels (weight 0) on the bottom and right up to ``size`` a side."""
    h, w = example[0].shape[:2]
    pad = ((0, max(size - h, 0)), (0, max(size - w, 0)))
    return tuple(np.pad(a, pad + ((0, 0),) * (a.ndim - 2)) for a in example)


class PointCrops(CropSequence):
    """``CropSequence`` whose crops that are not centred on an artefact are centred on a random point,
    not anywhere: a real scan's object may fill a small part of its image."""

    def __init__(self, examples: Sequence[tuple], **kwargs):
        super().__init__(examples, **kwargs)
        self.points = [np.argwhere(w > 0) for _, _, w in self.examples]

    def crop(self, rng: np.random.Generator):
        i = int(rng.integers(len(self.examples)))
        x, y, w = self.examples[i]
        h, wd, s = x.shape[0], x.shape[1], self.size
        centres = self.artefacts[i] if len(self.artefacts[i]) and rng.random() < self.artefact_share else self.points[i]
        cy, cx = centres[rng.integers(len(centres))]
        top, left = int(np.clip(cy - s // 2, 0, h - s)), int(np.clip(cx - s // 2, 0, wd - s))
        window = (slice(top, top + s), slice(left, left + s))
        x, y, w = augment_example(x[window], y[window], w[window], rng)
        turns = int(rng.integers(4))
        return tuple(np.ascontiguousarray(np.rot90(a, turns, axes=(0, 1))) for a in (x, y, w))


def scores_of(scan_filter: UNetFilter, scans: Sequence[Mapping]) -> tuple[np.ndarray, np.ndarray]:
    """(P(keep), keep) of every point of ``scans``, pooled."""
    probs = predict_keep(scan_filter.model, scans, scan_filter.channels)
    valid = [np.asarray(s["valid"], bool) for s in scans]
    return (np.concatenate([p[v] for p, v in zip(probs, valid, strict=True)]),
            np.concatenate([np.asarray(s["label"])[v] == KEEP for s, v in zip(scans, valid, strict=True)]))


def measure(scan_filter: UNetFilter, scans: Sequence[Mapping], threshold: float | None = None) -> dict:
    """``recipes.finetune.summary`` of the filter on ``scans`` at ``threshold`` (default: its own)."""
    return summary(*scores_of(scan_filter, scans), scan_filter.threshold if threshold is None else threshold)


def balanced_threshold(prob: np.ndarray, keep: np.ndarray, min_recall: float = 0.0) -> float:
    """The threshold with the best balanced accuracy of P(keep) ``prob`` against ``keep``, among those
    that keep at least ``min_recall`` of the true points (the lowest tried if none does).

    Balanced accuracy, unlike mean IoU, does not depend on the share of artefacts, which differs from
    one part of a real scan to another: a threshold chosen on one part carries over to the rest. The
    thresholds tried are ``THRESHOLDS`` and the quantiles of ``prob`` in steps of 0.1%: a network
    fine-tuned on a scan with few artefacts may give them all P(keep) above 0.98 and still rank them
    below every true point.
    """
    prob, keep = np.asarray(prob, np.float64), np.asarray(keep, bool)
    candidates = np.unique(np.concatenate([THRESHOLDS, np.quantile(prob, np.linspace(0, 1, 1001))]))
    candidates = candidates[(candidates > 0) & (candidates < 1)]
    true, artefact = np.sort(prob[keep]), np.sort(prob[~keep])
    recall = 1 - np.searchsorted(true, candidates, side="left") / max(len(true), 1)  # share with P >= threshold
    removed = np.searchsorted(artefact, candidates, side="left") / max(len(artefact), 1)
    if not len(true):
        recall = np.ones_like(candidates)
    if not len(artefact):
        removed = np.ones_like(candidates)
    score = np.where(recall >= min_recall, 0.5 * (recall + removed), -1.0)
    return float(candidates[int(np.argmax(score))])


def freeze_encoder(model) -> int:
    """Make the encoder and bottleneck layers (``down*``, ``bottleneck*``) untrainable; their count."""
    frozen = 0
    for layer in model.layers:
        if layer.name.startswith(("down", "bottleneck")) and layer.weights:
            layer.trainable = False
            frozen += 1
    return frozen


@dataclass
class UNetFinetuneRun:
    """What ``finetune_unet`` did.

    Attributes:
        filter: the fine-tuned ``UNetFilter`` at the threshold chosen on the held-out blocks.
        before: ``measure`` of the starting filter on the held-out blocks, at its own threshold.
        after: ``measure`` of the fine-tuned filter there, at the chosen threshold.
        history: the training loss and metrics (``nn.fit.fit``).
        seconds: seconds of training proper.
        training_points: points of the training parts.
        settings: the ``UNetFinetuneSettings`` as a dict.
        environment: the versions and machine it ran on (``recipes.common.environment``).
    """

    filter: UNetFilter
    before: dict
    after: dict
    history: dict = field(default_factory=dict)
    seconds: float = 0.0
    training_points: int = 0
    settings: dict = field(default_factory=dict)
    environment: dict = field(default_factory=environment)


def load_start(path=None) -> UNetFilter:
    """The U-Net filter to start from: a ``.keras`` file (``filters.unet_filter``), or the shipped one."""
    return unet_filter(path)


def train_parts(start: UNetFilter, train: Sequence[Mapping], settings: UNetFinetuneSettings,
                progress: bool = False) -> tuple[dict, float]:
    """Train ``start.model`` further, in place, on crops of the ``train`` scans; (history, seconds)."""
    keras.utils.set_random_seed(settings.seed)
    examples = [pad_to((scan_inputs(s, start.channels), *scan_targets(s)), settings.crop) for s in train]
    epochs = max(1, min(10, settings.steps // 20))  # a loss per epoch for the card's history
    data = PointCrops(examples, size=settings.crop, crops=-(-settings.steps // epochs) * settings.batch_size,
                      batch_size=settings.batch_size, artefact_share=settings.artefact_share, seed=settings.seed)
    model = start.model
    if settings.layers == "decoder":
        freeze_encoder(model)
    schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, epochs * len(data), alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=1.0),
                  loss=make_loss("focal", alpha=settings.alpha, gamma=settings.gamma), jit_compile=False,
                  run_eagerly=settings.steps <= EAGER_STEPS)
    run = fit(model, data, epochs=epochs, progress=progress, desc="fine-tuning the U-Net")
    for layer in model.layers:
        layer.trainable = True
    return run.history, run.seconds


def finetune_parts(train: Sequence[Mapping], held: Sequence[Mapping], start: UNetFilter,
                   settings: UNetFinetuneSettings = UNetFinetuneSettings(), progress: bool = False) -> UNetFinetuneRun:
    """Fine-tune ``start`` (in place) on the ``train`` scans, choose its threshold on the ``held`` scans
    and measure it there before and after (``settings.holdout`` is not used: the parts are given).

    Args:
        train: labelled scans to train on (``io.labelled_scans``).
        held: labelled scans the network never trains on, where the threshold is chosen.
        start: the U-Net filter to start from.
        settings: the ``UNetFinetuneSettings``.
        progress: show a progress bar.

    Returns:
        The ``UNetFinetuneRun``.
    """
    before = measure(start, held)
    history, seconds = train_parts(start, train, settings, progress)
    prob, keep = scores_of(start, held)
    threshold = balanced_threshold(prob, keep, settings.min_recall)
    tuned = UNetFilter(f"{start.name}_finetuned", start.model, threshold)
    return UNetFinetuneRun(tuned, before, summary(prob, keep, threshold), history, seconds,
                           int(sum(int(np.asarray(s["valid"]).sum()) for s in train)), asdict(settings))


def finetune_unet(scans: Sequence[Mapping], start: UNetFilter, settings: UNetFinetuneSettings = UNetFinetuneSettings(),
                  progress: bool = False) -> UNetFinetuneRun:
    """Fine-tune ``start`` (in place) on labelled organised scans and choose its threshold on their
    held-out blocks.

    Args:
        scans: labelled scans (``io.labelled_scans``): ``xyz``, ``valid``, ``intensity``, ``normals``,
            ``label``; each is cut into a training part and a held-out block (``split_scans``).
        start: the U-Net filter to start from (the shipped one, or one fine-tuned before).
        settings: the ``UNetFinetuneSettings``.
        progress: show a progress bar.

    Returns:
        The ``UNetFinetuneRun``.

    Raises:
        ValueError: the training parts or the held-out blocks hold only one class.
    """
    train, held = split_scans(scans, settings.holdout)
    return finetune_parts(train, held, start, settings, progress)
