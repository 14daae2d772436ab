"""Streaming Keras metrics of keep/artefact segmentation, which a network reports while it trains. The
same measures in NumPy, which evaluation and the benchmarks use without Keras, are in ``nn.scores``.

``ConfusionMetric`` accumulates exact confusion counts batch by batch and reports the same formulas as
``nn.scores.confusion_metrics`` (one table, ``nn.scores._ratios``), so the two cannot disagree.
"""

from __future__ import annotations

import keras
from keras import ops

from pcfilter_lib.labels import ARTEFACT, KEEP
from pcfilter_lib.nn.scores import NAMES, _ratios


@keras.saving.register_keras_serializable(package="pcfilter")
class ConfusionMetric(keras.metrics.Metric):
    """A streaming confusion-matrix metric: accumulates exact integer counts batch by batch.

    ``metric`` names one value of ``confusion_metrics`` (default mean IoU). Pixels are left out when
    their label is neither 0 nor 1 (255 marks "no point" in scans) or their ``sample_weight`` is 0.
    Keras hands sample weights only to ``weighted_metrics``, so compile with
    ``weighted_metrics=segmentation_metrics()``. The result equals ``confusion_metrics`` on the
    concatenated data, whatever the batching.

    Args:
        metric: the name of the value to report, one of ``NAMES``.
        threshold: a pixel is predicted "keep" where P(keep) >= threshold.
        name: the metric's name in Keras logs (default: ``metric``).
        **kwargs: passed on to ``keras.metrics.Metric``.

    Raises:
        ValueError: the metric name is unknown.
    """

    def __init__(self, metric: str = "mean_iou", threshold: float = 0.5, name=None, **kwargs):
        if metric not in NAMES:
            raise ValueError(f"metric must be one of {NAMES}, got {metric!r}")
        super().__init__(name=name or metric, **kwargs)
        self.metric = metric
        self.threshold = float(threshold)
        self.counts = self.add_variable(shape=(4,), initializer="zeros", dtype="int64", name="counts")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.convert_to_tensor(y_true)
        if sample_weight is None:
            selected = ops.ones(ops.shape(ops.reshape(y_true, (-1,))), dtype="bool")
        else:
            weight = ops.convert_to_tensor(sample_weight)
            if len(weight.shape) == len(y_true.shape) + 1:  # (B, H, W, 1) weights for (B, H, W) labels
                weight = ops.squeeze(weight, axis=-1)
            elif len(weight.shape) + 1 == len(y_true.shape):  # (B, H, W) weights for (B, H, W, 1) labels
                weight = ops.expand_dims(weight, axis=-1)
            selected = ops.greater(ops.reshape(ops.broadcast_to(weight, ops.shape(y_true)), (-1,)), 0)
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        selected = ops.logical_and(selected, ops.logical_or(ops.equal(labels, ARTEFACT), ops.equal(labels, KEEP)))
        truth = ops.equal(labels, KEEP)
        predicted = ops.greater_equal(ops.cast(ops.reshape(y_pred, (-1,)), "float32"), self.threshold)

        def count(condition):
            return ops.sum(ops.cast(ops.logical_and(condition, selected), "int64"))

        batch = ops.stack([count(truth & predicted), count(truth & ~predicted),
                           count(~truth & predicted), count(~truth & ~predicted)])
        self.counts.assign(self.counts + batch)

    def result(self):
        tp, fn, fp, tn = (ops.cast(self.counts[i], "float64") for i in range(4))
        return ops.cast(_ratios(tp, fn, fp, tn, ops, (self.metric,))[self.metric], "float32")

    def reset_state(self):
        self.counts.assign(ops.zeros((4,), dtype="int64"))

    def get_config(self):
        return {**super().get_config(), "metric": self.metric, "threshold": self.threshold}


def segmentation_metrics(threshold: float = 0.5) -> list[ConfusionMetric]:
    """Metrics for a keep/artefact segmentation model: ``model.compile(..., weighted_metrics=...)``.

    Args:
        threshold: the decision threshold of every metric.

    Returns:
        ``ConfusionMetric`` objects for mean IoU, balanced accuracy, F1, recall and TNR.
    """
    return [ConfusionMetric(name, threshold) for name in ("mean_iou", "balanced_accuracy", "f1", "recall", "tnr")]
