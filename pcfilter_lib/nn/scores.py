"""Scores of predictions in NumPy: confusion-matrix metrics for binary masks (label 1 = keep = true
geometry = positive), threshold sweeps and choice, ROC AUC, and the IoU of voxel grids and classes.

This module imports no Keras, so the command line, the filters' evaluation and the benchmarks score
clouds without starting TensorFlow. The same measures as Keras metrics, which a network reports while
it trains, are in ``nn.keras_metrics``: one formula table, ``_ratios``, serves both the one-shot
``confusion_metrics`` here and the streaming metrics there, so the two cannot disagree.

A rate whose denominator is zero is undefined on the data, and is NaN, never a vacuous 1.0 (or
0.0): the recall of true points on a cloud without true points, the precision of a filter that kept
nothing, the false omission rate of one that removed nothing. ``balanced_accuracy`` and ``mean_iou``
average over the classes that occur (in the truth for balanced accuracy, in truth or prediction for
IoU), so a scan without artefacts is judged by its true points alone rather than flattered by a
perfect score for the absent class; with no points at all they are NaN too. ``undefined`` lists the
NaN values of a result, and ``defined_or_none`` turns them into None (``null`` in JSON).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

from pcfilter_lib.labels import ARTEFACT, KEEP

NAMES = ("accuracy", "balanced_accuracy", "precision", "recall", "tnr", "f1", "false_omission_rate",
         "iou_keep", "iou_artefact", "mean_iou")


def _ratios(tp, fn, fp, tn, xp, names=NAMES):
    """The metrics ``names`` (default: all) from the four counts, with ``xp`` NumPy or ``keras.ops`` (float64
    counts). Only the formulas asked for are evaluated: in a traced Keras metric each is graph work."""

    def rate(numerator, denominator):
        safe = xp.where(denominator > 0, denominator, xp.ones_like(denominator))
        return xp.where(denominator > 0, numerator / safe, xp.ones_like(denominator) * float("nan"))

    def mean_present(a, b, a_present, b_present):
        """The mean of the values of the classes present; a class's value is defined when it is."""
        a_present, b_present = xp.cast(a_present, "float64"), xp.cast(b_present, "float64")
        count = a_present + b_present
        total = xp.where(a_present > 0, a, 0.0) + xp.where(b_present > 0, b, 0.0)
        return xp.where(count > 0, total / xp.where(count > 0, count, 1.0), float("nan"))

    formulas = {
        "accuracy": lambda: rate(tp + tn, tp + tn + fp + fn),
        "balanced_accuracy": lambda: mean_present(formulas["recall"](), formulas["tnr"](), tp + fn > 0, tn + fp > 0),
        "precision": lambda: rate(tp, tp + fp),
        "recall": lambda: rate(tp, tp + fn),
        "tnr": lambda: rate(tn, tn + fp),
        "f1": lambda: rate(2 * tp, 2 * tp + fp + fn),
        "false_omission_rate": lambda: rate(fn, fn + tn),
        "iou_keep": lambda: rate(tp, tp + fp + fn),
        "iou_artefact": lambda: rate(tn, tn + fp + fn),
        "mean_iou": lambda: mean_present(formulas["iou_keep"](), formulas["iou_artefact"](),
                                         tp + fp + fn > 0, tn + fp + fn > 0),
    }
    return {name: formulas[name]() for name in names}


class _NumpyOps:
    """The few array functions ``_ratios`` needs, in NumPy."""

    where = staticmethod(np.where)
    ones_like = staticmethod(np.ones_like)

    @staticmethod
    def cast(x, dtype):
        return np.asarray(x, dtype=dtype)


def confusion_metrics(tp, fn, fp, tn) -> dict[str, float]:
    """Every metric of ``NAMES`` from the four confusion counts (label 1 = keep = positive).

    Args:
        tp: true points kept.
        fn: true points removed.
        fp: artefacts kept.
        tn: artefacts removed.

    Returns:
        Accuracy, balanced accuracy, precision, recall (the share of true points kept), TNR (the
        share of artefacts removed), F1, false omission rate, the IoU of each class and mean IoU,
        as floats keyed by name; NaN where the data leave one undefined (see the module notes).

    Raises:
        ValueError: a count is negative or not finite.
    """
    counts = [np.float64(c) for c in (tp, fn, fp, tn)]
    if any(c < 0 or not np.isfinite(c) for c in counts):
        raise ValueError(f"counts must be finite and non-negative, got tp={tp}, fn={fn}, fp={fp}, tn={tn}")
    return {name: float(value) for name, value in _ratios(*counts, _NumpyOps).items()}


def undefined(result: dict) -> list[str]:
    """The names of ``NAMES`` whose value in ``result`` is NaN: undefined on the data (a class
    without points, or a filter that kept or removed nothing)."""
    return [name for name in NAMES if name in result and result[name] is not None and np.isnan(result[name])]


def defined_or_none(result: dict) -> dict:
    """``result`` with each NaN metric of ``NAMES`` as None, which JSON writes as ``null``."""
    return {key: None if key in NAMES and value is not None and np.isnan(value) else value
            for key, value in result.items()}


def why_undefined(result: dict, labels: dict[str, str] | None = None) -> str | None:
    """One line saying which metrics of ``result`` (with its counts tp, fn, fp, tn) are undefined
    and why, or None when all are defined; ``labels`` renames metrics as a table shows them."""
    names = [(labels or {}).get(name, name) for name in undefined(result)]
    if not names:
        return None
    tp, fn, fp, tn = (result[key] for key in ("tp", "fn", "fp", "tn"))
    causes = [text for present, text in ((tp + fn > 0, "no true points"), (fp + tn > 0, "no artefacts"),
                                         (tp + fp > 0, "nothing kept"), (fn + tn > 0, "nothing removed"))
              if not present]
    return (f"{', '.join(names)} undefined: the data hold {' and '.join(causes)} (0 / 0), so "
            "given as n/a (null in JSON), not as a score")


def _selected(y_true, y_prob, mask):
    """Truth (bool, keep) and probabilities of the pixels that count: label 0 or 1, inside ``mask``."""
    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob)
    if y_prob.shape != y_true.shape and y_prob.shape[-1:] == (1,):
        y_prob = y_prob[..., 0]
    if y_true.shape != y_prob.shape:
        raise ValueError(f"y_true {y_true.shape} and y_prob {y_prob.shape} must have the same shape")
    keep = (y_true == ARTEFACT) | (y_true == KEEP)
    if mask is not None:
        keep &= np.broadcast_to(np.asarray(mask, bool), y_true.shape)
    return y_true[keep] == KEEP, y_prob[keep]


def confusion_counts(y_true, y_prob, mask=None, threshold: float = 0.5) -> tuple[int, int, int, int]:
    """The confusion counts of thresholded probabilities against labels.

    Args:
        y_true: labels of any shape: 1 keep, 0 artefact; any other value (255, no point) is ignored.
        y_prob: P(keep) of the same shape, or with a trailing axis of 1.
        mask: optional bool array broadcastable to ``y_true``; only its True pixels count.
        threshold: a pixel is predicted "keep" where ``y_prob >= threshold``.

    Returns:
        ``(tp, fn, fp, tn)`` as ints.

    Raises:
        ValueError: the shapes of ``y_true`` and ``y_prob`` differ.
    """
    truth, prob = _selected(y_true, y_prob, mask)
    predicted = prob >= threshold
    tp = int(np.count_nonzero(truth & predicted))
    fn = int(np.count_nonzero(truth & ~predicted))
    fp = int(np.count_nonzero(~truth & predicted))
    return tp, fn, fp, int(truth.size - tp - fn - fp)


def evaluate_masks(y_true, y_prob, mask=None, threshold: float = 0.5) -> dict[str, float]:
    """``confusion_metrics`` of thresholded predictions, with the counts included.

    Args:
        y_true: labels (1 keep, 0 artefact, others ignored), any shape.
        y_prob: P(keep) of the same shape, or with a trailing axis of 1.
        mask: optional bool array broadcastable to ``y_true``.
        threshold: the decision threshold on ``y_prob``.

    Returns:
        tp, fn, fp, tn and every metric of ``NAMES``, keyed by name.
    """
    tp, fn, fp, tn = confusion_counts(y_true, y_prob, mask, threshold)
    return {"tp": tp, "fn": fn, "fp": fp, "tn": tn, **confusion_metrics(tp, fn, fp, tn)}


def threshold_sweep(y_true, y_prob, mask=None, thresholds: Sequence[float] | None = None) -> dict[str, np.ndarray]:
    """Every metric at each of many thresholds, as arrays keyed by name.

    One sort of the probabilities serves all thresholds, so a sweep costs about one evaluation.

    Args:
        y_true: labels (1 keep, 0 artefact, others ignored), any shape.
        y_prob: P(keep) of the same shape, or with a trailing axis of 1.
        mask: optional bool array broadcastable to ``y_true``.
        thresholds: the T thresholds to try; default 0.05, 0.10, ..., 0.95.

    Returns:
        ``threshold``, ``tp``, ``fn``, ``fp``, ``tn`` and every metric of ``NAMES``, each a (T,)
        array in the order of the thresholds.
    """
    thresholds = np.round(np.arange(0.05, 0.951, 0.05), 2) if thresholds is None else np.asarray(thresholds, float)
    truth, prob = _selected(y_true, y_prob, mask)
    order = np.sort(prob[truth]), np.sort(prob[~truth])
    # Predicted keep = prob >= t; the count below t comes from a binary search in the sorted values.
    fn = np.searchsorted(order[0], thresholds, side="left").astype(np.float64)
    tn = np.searchsorted(order[1], thresholds, side="left").astype(np.float64)
    tp, fp = truth.sum() - fn, (~truth).sum() - tn
    table = _ratios(tp, fn, fp, tn, _NumpyOps)
    return {"threshold": thresholds, "tp": tp, "fn": fn, "fp": fp, "tn": tn, **table}


def best_threshold(sweep: dict[str, np.ndarray], metric: str = "mean_iou", low: float = 0.0,
                   high: float = 1.0) -> float:
    """The threshold with the highest ``metric`` in a ``threshold_sweep`` of validation data.

    Args:
        sweep: the result of ``threshold_sweep``.
        metric: the name (one of ``NAMES``) to maximise.
        low: the lowest threshold allowed.
        high: the highest threshold allowed.

    Returns:
        The best threshold in [low, high]; ties go to the one nearest 0.5.

    Raises:
        ValueError: the metric is unknown, or no threshold of the sweep lies in [low, high].
    """
    if metric not in NAMES:
        raise ValueError(f"metric must be one of {NAMES}, got {metric!r}")
    t = np.asarray(sweep["threshold"])
    inside = (t >= low) & (t <= high)
    if not inside.any():
        raise ValueError(f"no threshold of the sweep lies in [{low}, {high}]")
    values = np.asarray(sweep[metric], np.float64)
    scores = np.where(inside & ~np.isnan(values), values, -np.inf)  # an undefined value is never the best
    if not np.isfinite(scores.max()):
        raise ValueError(f"{metric} is undefined at every threshold in [{low}, {high}] (a class without points)")
    best = np.flatnonzero(scores == scores.max())
    return float(t[best[np.argmin(np.abs(t[best] - 0.5))]])


def keep_threshold(y_true, y_prob, min_recall: float = 0.995,
                   thresholds: Sequence[float] | None = None) -> tuple[float, dict[str, np.ndarray]]:
    """The decision threshold of a learned filter, chosen on validation data: the best mean IoU
    among the thresholds that keep at least ``min_recall`` of the true points.

    Losing true geometry is worse than keeping a few artefacts, hence the floor on the recall.

    Args:
        y_true: validation labels (1 keep, 0 artefact, others ignored).
        y_prob: the filter's P(keep) of the same points.
        min_recall: the share of true points a threshold must keep.
        thresholds: the thresholds to try; default 0.02, 0.04, ..., 0.98.

    Returns:
        ``(threshold, sweep)``: the chosen threshold (the lowest one tried if none keeps enough)
        and the ``threshold_sweep`` it came from.
    """
    thresholds = np.round(np.arange(0.02, 0.985, 0.02), 2) if thresholds is None else np.asarray(thresholds)
    sweep = threshold_sweep(y_true, y_prob, thresholds=thresholds)
    allowed = sweep["threshold"][sweep["recall"] >= min_recall]
    high = float(allowed.max()) if allowed.size else float(sweep["threshold"].min())
    return best_threshold(sweep, "mean_iou", high=high), sweep


def roc_auc(y_true, score, mask=None) -> float:
    """Area under the ROC curve of ``score`` (e.g. P(keep)) against ``y_true`` (1 = keep = positive,
    0 = artefact; other labels such as 255 ignored) over the points where ``mask`` is true.

    It is the probability that a random true point scores higher than a random artefact (ties count
    half): how well the score *ranks* points, whatever threshold is later applied. Computed from the
    ranks of the scores (Mann-Whitney U), so it costs one sort.

    Args:
        y_true: labels, any shape.
        score: the same shape (or with a trailing axis of 1); higher means "keep".
        mask: optional bool array broadcastable to ``y_true``.

    Returns:
        the AUC in [0, 1]: 1 ranks every true point above every artefact, 0.5 is chance.

    Raises:
        ValueError: the selected points lack one of the two classes (the AUC is then undefined).
    """

    truth, score = _selected(y_true, score, mask)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if positives == 0 or negatives == 0:
        raise ValueError(f"ROC AUC needs both true points (label 1) and artefacts (label 0); got {positives} and "
                         f"{negatives}")
    ranks = rankdata(np.asarray(score, np.float64))  # average ranks for ties
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def voxel_iou(truth: np.ndarray, probability: np.ndarray, thresholds: Sequence[float] = (0.2, 0.3, 0.4, 0.5)
              ) -> dict[float, float]:
    """3D intersection over union of a thresholded voxel prediction against the true occupancy.

    Computed with ``threshold_sweep``, scoring occupied voxels as the positive class ``KEEP``.

    Args:
        truth: (X, Y, Z) bool occupancy.
        probability: (X, Y, Z) probability that each voxel is occupied.
        thresholds: the thresholds t; a voxel is predicted occupied where ``probability >= t``.

    Returns:
        ``{t: IoU of the occupied class}`` for each threshold.

    Raises:
        ValueError: the two grids differ in shape.
    """
    truth, probability = np.asarray(truth), np.asarray(probability)
    if truth.shape != probability.shape:
        raise ValueError(f"truth {truth.shape} and probability {probability.shape} must have the same shape")
    occupied = np.where(truth.astype(bool), KEEP, ARTEFACT).astype(np.uint8)  # occupied voxels are the positives
    sweep = threshold_sweep(occupied, probability, thresholds=list(thresholds))
    return {float(t): float(iou) for t, iou in zip(sweep["threshold"], sweep["iou_keep"], strict=True)}


def class_confusion(labels, predicted, classes: int) -> np.ndarray:
    """The confusion matrix of a classifier.

    Args:
        labels: (N,) true class indices.
        predicted: (N,) predicted class indices.
        classes: the number of classes.

    Returns:
        (classes, classes) int counts: row = true class, column = predicted class.
    """
    confusion = np.zeros((classes, classes), dtype=int)
    np.add.at(confusion, (np.asarray(labels), np.asarray(predicted)), 1)
    return confusion


def voxel_iou_per_shape(truth: np.ndarray, probability: np.ndarray,
                        thresholds: Sequence[float] = (0.2, 0.3, 0.4, 0.5)) -> np.ndarray:
    """The 3D IoU of every shape of a batch at each threshold: what single-view reconstruction
    papers average over a test set (each object counts once, whatever its volume).

    Args:
        truth: (N, X, Y, Z) or (N, X, Y, Z, 1) bool occupancy.
        probability: predicted occupancy probabilities of the same shape.
        thresholds: the T thresholds; a voxel is predicted occupied where ``probability >= t``.

    Returns:
        (N, T) float64 IoU; NaN for a shape whose truth and prediction are both empty (0 / 0:
        undefined, not a perfect score).

    Raises:
        ValueError: the arrays differ in shape or hold no shape axis.
    """
    truth, probability = np.asarray(truth, bool), np.asarray(probability)
    if truth.shape != probability.shape or truth.ndim < 2:
        raise ValueError(f"truth {truth.shape} and probability {probability.shape} must have the same shape, "
                         "(N, X, Y, Z) with one grid per shape")
    truth, probability = truth.reshape(len(truth), -1), probability.reshape(len(probability), -1)
    out = np.empty((len(truth), len(thresholds)))
    for k, t in enumerate(thresholds):
        predicted = probability >= t
        inter = np.count_nonzero(predicted & truth, axis=1)
        union = np.count_nonzero(predicted | truth, axis=1)
        out[:, k] = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return out
