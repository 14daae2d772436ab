"""A conditional random field (CRF) over a grid of per-pixel class scores, by mean-field inference.

A segmentation network scores every pixel on its own. A CRF adds what the scores leave out: that
neighbouring pixels tend to share a label. Its energy has a *unary* term per pixel, minus the log
of the network's probability of the label, and a *pairwise* Potts term that costs ``weight`` for
every pair of neighbours with different labels. Mean-field inference approximates the labels'
distribution by independent per-pixel distributions ``Q`` and updates them all at once, ``iterations``
times::

    Q_i(l) is proportional to p_i(l) * exp(weight * sum of Q_j(l) over the neighbours j of i)

so a pixel is pulled towards the labels its neighbours believe in. Every step is a convolution and
a softmax in ``keras.ops``, differentiable, which is how a CRF can be trained together with the
network under it. Dense CRFs connect every pair of pixels, with weights that fall with distance and
with difference in colour; this one connects the 4 or 8 nearest neighbours only.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

NEIGHBOURHOODS = (4, 8)


def neighbour_kernel(neighbours: int = 8) -> np.ndarray:
    """The 3x3 kernel that sums a pixel's 4 or 8 nearest neighbours (the pixel itself excluded).

    Args:
        neighbours: 4 (the pixels sharing a side) or 8 (the corners too).

    Returns:
        A (3, 3) float32 array of ones and zeros.

    Raises:
        ValueError: ``neighbours`` is neither 4 nor 8.
    """
    if neighbours not in NEIGHBOURHOODS:
        raise ValueError(f"neighbours must be one of {NEIGHBOURHOODS}, got {neighbours}")
    kernel = np.ones((3, 3), np.float32) if neighbours == 8 else np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.float32)
    kernel[1, 1] = 0.0
    return kernel


def mean_field_potts(probabilities, weight: float = 1.0, iterations: int = 5, valid=None, neighbours: int = 8,
                     eps: float = 1e-6):
    """Mean-field inference of a grid CRF with a Potts pairwise term, starting from the unary scores.

    Args:
        probabilities: per-pixel class probabilities, (H, W, K) or (B, H, W, K); their logarithm
            is the negative unary energy.
        weight: the Potts weight, the energy of one pair of neighbours with different labels; 0
            leaves the probabilities as they are.
        iterations: mean-field updates.
        valid: optional (H, W) or (B, H, W) mask of the pixels that take part; the others (no point
            measured there, say) neither pull on their neighbours nor change.
        neighbours: 4 or 8 neighbours per pixel.
        eps: the smallest probability taken into the logarithm.

    Returns:
        The approximate marginals ``Q``, a tensor of the input's shape; every pixel's row sums to 1.

    Raises:
        ValueError: ``iterations`` or ``weight`` is negative, or ``neighbours`` is neither 4 nor 8.
    """
    if iterations < 0 or weight < 0:
        raise ValueError(f"iterations and weight must be >= 0, got {iterations}, {weight}")
    p = ops.convert_to_tensor(probabilities, "float32")
    single = len(p.shape) == 3
    if single:
        p = p[None]
    k = int(p.shape[-1])
    mask = ops.ones_like(p[..., :1]) if valid is None else ops.cast(ops.convert_to_tensor(valid), "float32")
    if valid is not None:
        mask = mask[None, ..., None] if single else mask[..., None]
    kernel = ops.convert_to_tensor(np.repeat(neighbour_kernel(neighbours)[:, :, None, None], k, axis=2))
    log_unary = ops.log(ops.clip(p, eps, 1.0))
    q = p
    for _ in range(iterations):
        support = ops.depthwise_conv(q * mask, kernel, strides=1, padding="same")  # sum of Q_j(l) over j
        q = mask * ops.softmax(log_unary + weight * support, axis=-1) + (1.0 - mask) * p
    return q[0] if single else q


def noisy_view_scores(labels: np.ndarray, num_classes: int, views: int, noise: float,
                      rng: np.random.Generator, signal: float = 1.0) -> np.ndarray:
    """Class probabilities that several independent, noisy predictors give for the same pixels.

    A stand-in for the per-view networks of a multi-view segmentation whose scores were projected
    back onto the same surface points: each view's logits are ``signal`` on the true class plus
    Gaussian noise of standard deviation ``noise`` on every class, drawn anew for every view and
    pixel, and a softmax turns them into probabilities.

    Args:
        labels: (H, W) integer true classes, below ``num_classes``.
        num_classes: K, the number of classes.
        views: how many views predict.
        noise: standard deviation of the logits' noise.
        rng: the random generator.
        signal: the logit added to the true class.

    Returns:
        (views, H, W, K) float32 probabilities.
    """
    labels = np.asarray(labels)
    logits = signal * np.eye(num_classes, dtype=np.float32)[labels]
    logits = logits[None] + rng.normal(0.0, noise, (views, *labels.shape, num_classes)).astype(np.float32)
    return keras.ops.convert_to_numpy(ops.softmax(logits, axis=-1))
