"""Segmentation losses for binary masks (label 1 = keep / true geometry, 0 = artefact).

Every loss takes a per-pixel ``sample_weight`` that works as a mask: pixels of weight 0 (no point
in the scan, padding) contribute nothing, and the loss is the weighted *mean* over the remaining
pixels, so padding an image or changing its masked pixels changes nothing. Soft Dice and Jaccard
need the weights inside their sums, which Keras' generic reduction cannot do, so all losses share
one ``__call__`` that applies the weights itself. Only ``keras.ops`` is used: the losses run on
every Keras backend, and all are registered for ``keras.models.load_model``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from pcfilter_lib.labels import ARTEFACT, KEEP
from pcfilter_lib.nn.point_ops import gather, nearest, squared_distances

EPSILON = 1e-7


def _scale_for_replicas(value):
    """Divide by the number of replicas under a TensorFlow distribution strategy, as Keras' own
    losses do, so that summing the replicas' gradients gives the gradient of the mean."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # only on the TensorFlow backend: the losses run on every backend

        if tf.distribute.has_strategy() and tf.distribute.in_cross_replica_context() is False:
            value = value / tf.distribute.get_strategy().num_replicas_in_sync
    return value


class MaskedLoss(keras.losses.Loss):
    """Base class: prepares shapes and weights, then calls ``weighted(y_true, y_pred, weight)``.

    Calling a loss as ``loss(y_true, y_pred, sample_weight)`` takes the 0/1 labels ``y_true``,
    (B, H, W) or (B, H, W, 1); the probabilities of the keep class ``y_pred`` (sigmoid outputs),
    (B, H, W, 1) or (B, H, W); and an optional ``sample_weight`` that broadcasts to (B, H, W),
    0 on pixels that must not count. It returns the scalar loss, divided by the number of replicas
    under a TensorFlow distribution strategy as Keras' own losses are.
    """

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        y_true = ops.convert_to_tensor(y_true, dtype=self.dtype)
        if len(y_pred.shape) == 4 and y_pred.shape[-1] == 1:
            y_pred = ops.squeeze(y_pred, axis=-1)
        if len(y_true.shape) == 4 and y_true.shape[-1] == 1:
            y_true = ops.squeeze(y_true, axis=-1)
        if sample_weight is None:
            weight = ops.ones_like(y_pred)
        else:
            weight = ops.convert_to_tensor(sample_weight, dtype=self.dtype)
            if len(weight.shape) == 4 and weight.shape[-1] == 1:
                weight = ops.squeeze(weight, axis=-1)
            weight = ops.broadcast_to(weight, ops.shape(y_pred))
        return _scale_for_replicas(self.weighted(y_true, y_pred, weight))

    def call(self, y_true, y_pred):  # Keras' per-element path; every loss here goes through __call__
        return self(y_true, y_pred)

    def weighted(self, y_true, y_pred, weight):
        """The loss itself, which every subclass defines.

        Args:
            y_true: 0/1 labels, (B, H, W).
            y_pred: probabilities of the keep class, (B, H, W).
            weight: per-pixel weights, (B, H, W); 0 leaves a pixel out.

        Returns:
            The scalar loss.

        Raises:
            NotImplementedError: on the base class.
        """
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name}


def _weighted_mean(values, weight):
    return ops.divide_no_nan(ops.sum(values * weight), ops.sum(weight))


def _log_terms(y_pred):
    """log p and log (1 - p), with p clipped so that both stay finite (and so do their gradients)."""
    p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
    return ops.log(p), ops.log(1.0 - p)


@keras.saving.register_keras_serializable(package="pcfilter")
class BinaryCrossentropy(MaskedLoss):
    """Binary cross-entropy -[y log p + (1 - y) log(1 - p)], averaged over the unmasked pixels.

    Args:
        name: the loss's name in Keras logs.
        **kwargs: passed on to ``keras.losses.Loss`` (such as ``dtype``).
    """

    def __init__(self, name="bce", **kwargs):
        super().__init__(name=name, **kwargs)

    def weighted(self, y_true, y_pred, weight):
        log_p, log_q = _log_terms(y_pred)
        return _weighted_mean(-(y_true * log_p + (1.0 - y_true) * log_q), weight)


@keras.saving.register_keras_serializable(package="pcfilter")
class WeightedBinaryCrossentropy(MaskedLoss):
    """Cross-entropy with a weight per class: ``keep_weight`` for label 1, ``artefact_weight`` for 0.

    Setting the weights inversely to the class frequencies (``class_balanced_weights``) makes the
    rare class count as much as the common one.

    Args:
        keep_weight: factor on the loss of pixels labelled 1 (keep).
        artefact_weight: factor on the loss of pixels labelled 0 (artefact).
        name: the loss's name in Keras logs.
        **kwargs: passed on to ``keras.losses.Loss``.

    Raises:
        ValueError: a weight is negative.
    """

    def __init__(self, keep_weight=1.0, artefact_weight=1.0, name="weighted_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        if keep_weight < 0 or artefact_weight < 0:
            raise ValueError(f"class weights must be >= 0, got {keep_weight} and {artefact_weight}")
        self.keep_weight = float(keep_weight)
        self.artefact_weight = float(artefact_weight)

    def weighted(self, y_true, y_pred, weight):
        log_p, log_q = _log_terms(y_pred)
        losses = -(self.keep_weight * y_true * log_p + self.artefact_weight * (1.0 - y_true) * log_q)
        return _weighted_mean(losses, weight)

    def get_config(self):
        return {**super().get_config(), "keep_weight": self.keep_weight, "artefact_weight": self.artefact_weight}


@keras.saving.register_keras_serializable(package="pcfilter")
class BinaryFocalLoss(MaskedLoss):
    """Focal loss of Lin et al. (2017): ``-alpha_t (1 - p_t)^gamma log p_t``.

    ``p_t`` is the predicted probability of the true class; ``alpha_t`` is ``alpha`` for label 1 and
    ``1 - alpha`` for label 0. ``gamma`` > 0 shrinks the loss of pixels that are already right, so
    training concentrates on the hard, rare ones. With ``gamma = 0`` and ``alpha = 0.5`` it is half
    the cross-entropy. The original filter used alpha 0.06-0.08 and gamma 3-5 with label 1 = keep.

    Args:
        alpha: weight of the keep class (label 1); the artefact class gets ``1 - alpha``.
        gamma: focusing exponent; 0 gives (alpha-weighted) cross-entropy.
        name: the loss's name in Keras logs.
        **kwargs: passed on to ``keras.losses.Loss``.

    Raises:
        ValueError: ``alpha`` is outside [0, 1] or ``gamma`` is negative.
    """

    def __init__(self, alpha=0.25, gamma=2.0, name="focal", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= alpha <= 1.0 or gamma < 0:
            raise ValueError(f"focal loss needs 0 <= alpha <= 1 and gamma >= 0, got alpha={alpha}, gamma={gamma}")
        self.alpha = float(alpha)
        self.gamma = float(gamma)

    def weighted(self, y_true, y_pred, weight):
        p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
        p_t = y_true * p + (1.0 - y_true) * (1.0 - p)
        alpha_t = y_true * self.alpha + (1.0 - y_true) * (1.0 - self.alpha)
        losses = -alpha_t * ops.power(1.0 - p_t, self.gamma) * ops.log(p_t)
        return _weighted_mean(losses, weight)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma}


class _OverlapLoss(MaskedLoss):
    """Shared part of the soft Dice and Jaccard losses: soft overlaps over the whole batch.

    ``classes`` chooses what is scored: "keep" (label 1), "artefact" (label 0), or "both" (the mean
    of the two, like mean IoU; the default, because with rare artefacts the keep class alone is
    almost always near-perfect). ``smooth`` keeps the ratio defined when a class is absent.
    """

    CLASSES = ("both", "keep", "artefact")

    def __init__(self, classes="both", smooth=1.0, **kwargs):
        super().__init__(**kwargs)
        if classes not in self.CLASSES:
            raise ValueError(f"classes must be one of {self.CLASSES}, got {classes!r}")
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0, got {smooth}")
        self.classes = classes
        self.smooth = float(smooth)

    def weighted(self, y_true, y_pred, weight):
        scores = []
        if self.classes in ("both", "keep"):
            scores.append(self.score(y_true, y_pred, weight))
        if self.classes in ("both", "artefact"):
            scores.append(self.score(1.0 - y_true, 1.0 - y_pred, weight))
        return 1.0 - sum(scores) / len(scores)

    def get_config(self):
        return {**super().get_config(), "classes": self.classes, "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="pcfilter")
class SoftDiceLoss(_OverlapLoss):
    """1 - soft Dice: ``(2 sum(w p y) + s) / (sum(w p) + sum(w y) + s)``, sums over the whole batch.

    Args:
        classes: "both" (the mean over keep and artefact, the default), "keep" or "artefact".
        smooth: s, which keeps the ratio defined when a class is absent.
        name: the loss's name in Keras logs.
        **kwargs: passed on to ``keras.losses.Loss``.

    Raises:
        ValueError: ``classes`` is unknown or ``smooth`` negative.
    """

    def __init__(self, classes="both", smooth=1.0, name="dice", **kwargs):
        super().__init__(classes=classes, smooth=smooth, name=name, **kwargs)

    def score(self, y, p, w):
        overlap = ops.sum(w * p * y)
        return (2.0 * overlap + self.smooth) / (ops.sum(w * p) + ops.sum(w * y) + self.smooth)


@keras.saving.register_keras_serializable(package="pcfilter")
class SoftJaccardLoss(_OverlapLoss):
    """1 - soft Jaccard (IoU): ``(sum(w p y) + s) / (sum(w p) + sum(w y) - sum(w p y) + s)``.

    Args:
        classes: "both" (the mean over keep and artefact, the default), "keep" or "artefact".
        smooth: s, which keeps the ratio defined when a class is absent.
        name: the loss's name in Keras logs.
        **kwargs: passed on to ``keras.losses.Loss``.

    Raises:
        ValueError: ``classes`` is unknown or ``smooth`` negative.
    """

    def __init__(self, classes="both", smooth=1.0, name="jaccard", **kwargs):
        super().__init__(classes=classes, smooth=smooth, name=name, **kwargs)

    def score(self, y, p, w):
        overlap = ops.sum(w * p * y)
        return (overlap + self.smooth) / (ops.sum(w * p) + ops.sum(w * y) - overlap + self.smooth)


def class_balanced_weights(labels, mask=None) -> tuple[float, float]:
    """Class weights inversely proportional to the class frequencies, for ``WeightedBinaryCrossentropy``.

    Args:
        labels: any array of 0/1 labels (1 keep, 0 artefact); other values are not counted.
        mask: bool array of the same shape selecting the pixels that count; None counts all.

    Returns:
        ``(keep_weight, artefact_weight)``, each total / (2 * count of its class): their mean over
        the counted pixels is 1, so the loss keeps its scale.

    Raises:
        ValueError: one of the classes does not occur.
    """
    labels = np.asarray(labels)
    selected = labels[np.asarray(mask, dtype=bool)] if mask is not None else labels.ravel()
    n_keep, n_artefact = int((selected == KEEP).sum()), int((selected == ARTEFACT).sum())
    if n_keep == 0 or n_artefact == 0:
        raise ValueError(f"both classes must be present to balance them (keep {n_keep}, artefact {n_artefact})")
    total = n_keep + n_artefact
    return total / (2 * n_keep), total / (2 * n_artefact)


LOSSES = ("focal", "weighted_bce", "bce")


def make_loss(name: str, labels: np.ndarray | None = None, alpha: float = 0.25, gamma: float = 2.0):
    """The training loss by name, as the training recipes and the command line choose it.

    Args:
        name: "focal", "weighted_bce" or "bce" (``LOSSES``).
        labels: 0/1 labels whose class frequencies set the weights of "weighted_bce", such as those
            of some training batches; not needed by the others.
        alpha: the focal loss's weight of the keep class.
        gamma: the focal loss's focusing exponent.

    Returns:
        A ``BinaryFocalLoss``, ``WeightedBinaryCrossentropy`` or ``BinaryCrossentropy``.

    Raises:
        ValueError: the name is unknown, or "weighted_bce" gets no labels.
    """
    if name == "focal":
        return BinaryFocalLoss(alpha=alpha, gamma=gamma)
    if name == "weighted_bce":
        if labels is None:
            raise ValueError("weighted_bce needs training labels to count the classes")
        keep_weight, artefact_weight = class_balanced_weights(labels)
        return WeightedBinaryCrossentropy(keep_weight, artefact_weight)
    if name == "bce":
        return BinaryCrossentropy()
    raise ValueError(f"unknown loss {name!r}: choose one of {LOSSES}")


# Many classes: semantic segmentation of scenes ---------------------------------------------------------


@keras.saving.register_keras_serializable(package="pcfilter")
class ClassWeightedCrossentropy(keras.losses.Loss):
    """Cross-entropy over K classes with a weight per class, for scenes where empty space outnumbers
    every object class by far: -sum_i w[y_i] log p_i[y_i] / sum_i w[y_i] over all voxels i of the batch.

    Args:
        class_weights: K non-negative weights, one per class (0 leaves a class out of the loss).

    Calling it takes ``y_true`` (B, ...) integer classes (or (B, ..., 1)) and ``y_pred`` (B, ..., K)
    softmax probabilities, and returns the scalar weighted mean.

    Raises:
        ValueError: the weights are empty, negative, not finite or all zero.
    """

    def __init__(self, class_weights, name: str = "class_weighted_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        weights = np.asarray(class_weights, np.float64).ravel()
        if weights.size == 0 or not np.isfinite(weights).all() or weights.min() < 0 or weights.sum() <= 0:
            raise ValueError(f"class_weights must be finite, non-negative and not all zero, got {weights.tolist()}")
        self.class_weights = [float(w) for w in weights]

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        y_true = ops.convert_to_tensor(y_true)
        k = len(self.class_weights)
        if len(y_true.shape) == len(y_pred.shape):
            y_true = ops.squeeze(y_true, axis=-1)
        classes = ops.cast(y_true, "int32")
        one_hot = ops.one_hot(classes, k, dtype=self.dtype)
        weight = ops.sum(one_hot * ops.convert_to_tensor(self.class_weights, dtype=self.dtype), axis=-1)
        if sample_weight is not None:
            weight = weight * ops.cast(sample_weight, self.dtype)
        log_p = ops.log(ops.clip(ops.sum(one_hot * y_pred, axis=-1), EPSILON, 1.0))
        return _scale_for_replicas(-_weighted_mean(log_p, weight))

    def call(self, y_true, y_pred):
        return self(y_true, y_pred)

    def get_config(self):
        return {"name": self.name, "class_weights": self.class_weights}


def inverse_frequency_weights(labels, classes: int, power: float = 0.5, ceiling: float = 50.0) -> np.ndarray:
    """Class weights (K,) float64 from training labels: (median frequency / frequency) ** ``power`` over
    the classes present, clipped at ``ceiling``; 0 for classes absent from ``labels``.

    Raises:
        ValueError: ``labels`` hold no sample, or a class outside 0..classes - 1.
    """
    labels = np.asarray(labels).ravel()
    if labels.size == 0:
        raise ValueError("class weights need some labels")
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"labels must lie in 0..{classes - 1}, got {labels.min()}..{labels.max()}")
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    present = counts > 0
    frequency = counts / counts.sum()
    weights = np.zeros(classes)
    weights[present] = np.minimum((np.median(frequency[present]) / frequency[present]) ** power, ceiling)
    return weights


# Point sets: the losses of point-cloud upsampling (PU-Net) ----------------------------------------


def chamfer_distance(a, b):
    """Chamfer distance per cloud (B,) between point sets ``a`` (B, N, 3) and ``b`` (B, M, 3): the
    mean squared distance from each point of ``a`` to its nearest point of ``b``, plus the same from
    ``b`` to ``a``. The first term is small when ``a`` lies on ``b``; the second when ``a`` covers
    ``b``. Squared distances, in squared coordinate units.

    The (B, N, M) distance matrix only picks the nearest partners; the distances to them are
    computed again from the coordinates, so the gradient flows through (B, N + M) pairs rather than
    the whole matrix (the same gradient as that of the minima, at a fraction of the cost)."""
    a_to_b = gather(b, ops.argmin(ops.stop_gradient(squared_distances(a, b)), axis=2))
    b_to_a = gather(a, ops.argmin(ops.stop_gradient(squared_distances(b, a)), axis=2))  # a row-wise search is faster
    return (ops.mean(ops.sum(ops.square(a - a_to_b), axis=-1), axis=1)
            + ops.mean(ops.sum(ops.square(b - b_to_a), axis=-1), axis=1))


def repulsion_loss(points, h: float, k: int = 4):
    """PU-Net's repulsion term per cloud (B,) for ``points`` (B, N, 3): the mean over every point and
    its ``k`` nearest other points, at distance r, of ``-r exp(-r^2 / h^2)``.

    Points much closer than ``h`` push each other apart (the term falls as r grows); points much
    farther than ``h`` are left alone. Choose ``h`` near the spacing the points should have. The
    loss is negative by construction (Yu et al. 2018 write it as a sum of eta(r) w(r) with
    eta(r) = -r, w(r) = exp(-r^2 / h^2)).
    """
    if h <= 0 or k < 1:
        raise ValueError(f"repulsion needs h > 0 and k >= 1, got h={h}, k={k}")
    indices, _ = nearest(ops.stop_gradient(points), ops.stop_gradient(points), k + 1)
    offsets = gather(points, indices[:, :, 1:]) - points[:, :, None, :]  # drop each point itself
    squared = ops.maximum(ops.sum(ops.square(offsets), axis=-1), 1e-12)  # keeps the root's gradient finite
    return ops.mean(-ops.sqrt(squared) * ops.exp(-squared / h**2), axis=(1, 2))


@keras.saving.register_keras_serializable(package="pcfilter")
class UpsamplingLoss(keras.losses.Loss):
    """``chamfer_distance(target, prediction) + repulsion_weight * repulsion_loss(prediction, h, k)``.

    ``y_true`` is the dense target patch (B, M, 3) and ``y_pred`` the upsampled one (B, M', 3).
    PU-Net's reference code weighted its reconstruction term 100 to 1 against repulsion, the default
    0.01 here.
    """

    def __init__(self, h: float, repulsion_weight: float = 0.01, k: int = 4, name="upsampling", **kwargs):
        super().__init__(name=name, **kwargs)
        if h <= 0 or repulsion_weight < 0 or k < 1:
            raise ValueError(f"need h > 0, repulsion_weight >= 0 and k >= 1, got {h}, {repulsion_weight}, {k}")
        self.h, self.repulsion_weight, self.k = float(h), float(repulsion_weight), int(k)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        loss = chamfer_distance(y_true, y_pred)
        if self.repulsion_weight:
            loss = loss + self.repulsion_weight * repulsion_loss(y_pred, self.h, self.k)
        return loss

    def get_config(self):
        return {"name": self.name, "h": self.h, "repulsion_weight": self.repulsion_weight, "k": self.k}
