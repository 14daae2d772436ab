"""Kernel point convolution (KPConv, Thomas et al. 2019): a convolution whose kernel lives at points
in space.

An image kernel holds one weight matrix per pixel offset. A cloud has no pixel offsets, so KPConv
places ``K`` *kernel points* x_k in a ball around the centre and gives each its own weight matrix
W_k (C x F). A neighbour y_j of the centre x, at offset z = y_j - x, lends its features f_j to every
kernel point near it, in proportion to a linear correlation
``h(z, x_k) = max(0, 1 - norm(z - x_k) / sigma)``::

    g(x) = sum_j sum_k h(y_j - x, x_k) f_j W_k

The weights are interpolated from the kernel points to wherever the neighbours happen to lie, so
the operation is defined for any number and placement of neighbours, as a continuous kernel. This
is the rigid KPConv: the kernel points stay where ``kernel_points`` puts them (the paper also
learns per-point shifts, the deformable version).

``KPConv`` finds the neighbours with ``nn.point_ops.nearest`` (the k nearest, where the paper takes
a radius; the correlation is zero beyond the kernel's reach either way) and picks its centres by
farthest-point sampling, like PointNet++'s set abstraction, so a stack of them makes a pyramid.
Written in ``keras.ops``; the layer is registered for ``keras.models.load_model``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops

from pcfilter_lib.models.dgcnn import pooled_head
from pcfilter_lib.nn.point_ops import farthest_point_sample, gather, nearest
from pcfilter_lib.nn.widths import scaled_channels

# Levels of the classifier: centres (None: every point), neighbourhood radius (unit-sphere clouds),
# neighbours and output channels (scaled by the width).
LEVELS = ((None, 0.15, 16, 64), (128, 0.3, 16, 128), (32, 0.6, 16, 256))
EMBEDDING = 512
HEAD = (256, 128)
EXTENT = 2 / 3  # distance of the kernel points from the centre, in units of the radius
SIGMA = 0.5  # reach of each kernel point's correlation, in units of the radius


def kernel_points(extent: float = EXTENT) -> np.ndarray:
    """The 15 kernel points of the rigid kernel, in units of the neighbourhood radius: the centre,
    the six points on the axes and the eight cube corners, all but the centre at ``extent``. They
    cover the ball evenly enough for a fixed kernel (the paper spreads 15 points by repulsion)."""
    axes = np.concatenate([np.eye(3), -np.eye(3)])
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) / np.sqrt(3)
    return np.concatenate([np.zeros((1, 3)), axes, corners]).astype(np.float32) * extent


@keras.saving.register_keras_serializable(package="pcfilter")
class KPConv(layers.Layer):
    """A rigid kernel point convolution: ``[xyz (B, N, 3), features (B, N, C)]`` ->
    ``[centres (B, S, 3), features (B, S, filters)]``.

    ``num_samples`` centres are picked by farthest-point sampling (None: every point is a centre,
    S = N). Each centre's ``num_neighbors`` nearest points lend their features to the kernel points
    (``kernel_points`` times ``radius``) by the linear correlation with reach ``sigma`` (in units of
    the radius); one (K C) x F product then applies every kernel point's weights at once.

    The correlations are summed over the neighbours, as in the paper, so the output grows with the
    number of neighbours in reach; the batch normalisation after the layer takes the scale out.
    """

    def __init__(self, filters: int, radius: float, num_neighbors: int = 16, num_samples: int | None = None,
                 sigma: float = SIGMA, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.radius = float(radius)
        self.num_neighbors = int(num_neighbors)
        self.num_samples = None if num_samples is None else int(num_samples)
        self.sigma = float(sigma)
        if self.filters < 1 or self.radius <= 0 or self.num_neighbors < 1 or self.sigma <= 0:
            raise ValueError(f"KPConv needs positive filters, radius, neighbours and sigma, got {filters}, {radius}, "
                             f"{num_neighbors} and {sigma}")
        if self.num_samples is not None and self.num_samples < 1:
            raise ValueError(f"num_samples must be at least 1 (or None for every point), got {num_samples}")

    def build(self, input_shape):
        xyz_shape, feature_shape = input_shape
        n = xyz_shape[1]
        if n is not None and max(self.num_neighbors, self.num_samples or 0) > n:
            raise ValueError(f"clouds of {n} points cannot give {self.num_neighbors} neighbours and "
                             f"{self.num_samples} centres")
        count = len(kernel_points())
        self.kernel = self.add_weight(name="kernel", shape=(count * int(feature_shape[-1]), self.filters),
                                      initializer="glorot_uniform")

    def _correlations(self, xyz):
        """The centres (B, S, 3), their neighbours (B, S, k) and each neighbour's correlation with
        each kernel point (B, S, k, K)."""
        centres = xyz if self.num_samples is None else gather(xyz, farthest_point_sample(xyz, self.num_samples))
        neighbours, _ = nearest(ops.stop_gradient(centres), ops.stop_gradient(xyz), self.num_neighbors)
        offsets = (gather(xyz, neighbours) - centres[:, :, None, :]) / self.radius  # (B, S, k, 3)
        kernel = ops.convert_to_tensor(kernel_points(), dtype=offsets.dtype)
        distance = ops.sqrt(ops.sum(ops.square(offsets[..., None, :] - kernel), axis=-1) + 1e-12)
        return centres, neighbours, ops.relu(1.0 - distance / self.sigma)

    def load(self, xyz):
        """(B, S) the total correlation each centre's neighbours bring to its kernel points: what the
        layer multiplies a constant input feature of one by, summed over the kernel points. It grows
        with the number of neighbours within the kernel's reach."""
        return ops.sum(self._correlations(ops.convert_to_tensor(xyz, "float32"))[2], axis=(2, 3))

    def call(self, inputs):
        xyz, features = inputs
        centres, neighbours, correlation = self._correlations(xyz)
        lent = ops.einsum("bsjk,bsjc->bskc", correlation, ops.cast(gather(features, neighbours), correlation.dtype))
        shape = ops.shape(lent)
        flat = ops.reshape(lent, (shape[0], shape[1], -1))  # (B, S, K C)
        return [centres, ops.matmul(flat, ops.cast(self.kernel, flat.dtype))]

    def compute_output_shape(self, input_shape):
        xyz_shape = input_shape[0]
        s = xyz_shape[1] if self.num_samples is None else self.num_samples
        return [(xyz_shape[0], s, 3), (xyz_shape[0], s, self.filters)]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "radius": self.radius,
                "num_neighbors": self.num_neighbors, "num_samples": self.num_samples, "sigma": self.sigma}


def build_kpconv(num_classes: int = 10, num_points: int | None = 512, channels: int = 3,
                 levels: Sequence[Sequence] = LEVELS, width: float = 0.25, momentum: float = 0.9,
                 dropout: float = 0.5, name: str = "kpconv") -> keras.Model:
    """KPConv classifier: clouds (B, N, channels) -> class probabilities (B, num_classes).

    One ``KPConv`` per entry of ``levels`` (centres, radius, neighbours, channels), each followed by
    batch normalisation and LeakyReLU(0.1): the first on every point with a constant feature of one
    (where the geometry enters only through the kernel, as in the paper), the next ones on fewer
    centres and larger radii. Then a shared layer to the embedding, max and mean pooling over the
    last centres, and a head of two dense layers with dropout. Channels beyond the first three
    (normals, say) join the constant as input features.

    Args:
        num_classes: number of classes.
        num_points: points per cloud N, or None for any number (at least the largest neighbour count).
        channels: 3 for coordinates alone, more for extra per-point features.
        levels: (num_samples or None, radius, num_neighbors, channels) per level, radii in the
            clouds' units (ModelNet clouds fill the unit sphere).
        width: scale of every layer's width.
        momentum: batch-normalisation momentum (Keras convention).
        dropout: dropout rate in the head.
        name: the model's name.

    Returns:
        An uncompiled ``keras.Model``.

    Raises:
        ValueError: if width or channels are out of range, or a level asks for more centres than
            the level before it gives.
    """
    if not 0 < width <= 4:
        raise ValueError(f"width must lie in (0, 4], got {width}")
    if channels < 3:
        raise ValueError(f"the first 3 channels are the coordinates, so channels must be >= 3, got {channels}")
    before = num_points
    for samples, *_ in levels:
        if samples is not None and before is not None and samples > before:
            raise ValueError(f"a level cannot pick {samples} centres from {before} points")
        before = before if samples is None else samples
    inputs = keras.Input((num_points, channels), name="points")
    xyz = inputs[..., :3]
    ones = ops.ones_like(inputs[..., :1])
    x = ones if channels == 3 else ops.concatenate([ones, inputs[..., 3:]], axis=-1)
    for i, (samples, radius, k, filters) in enumerate(levels):
        xyz, x = KPConv(scaled_channels(filters, width), radius, k, samples, name=f"kpconv{i}")([xyz, x])
        x = layers.BatchNormalization(momentum=momentum, name=f"kpconv{i}_bn")(x)
        x = layers.LeakyReLU(0.1, name=f"kpconv{i}_relu")(x)
    outputs = pooled_head(x, num_classes, width, momentum, dropout, 0.1, EMBEDDING, HEAD)
    return keras.Model(inputs, outputs, name=name)
