"""Dynamic graph CNN (DGCNN, Wang et al. 2019): convolution on k-nearest-neighbour graphs of points.

A point cloud has no grid, but each point has neighbours. **EdgeConv** builds the graph of each
point's k nearest neighbours and computes, for every edge (i, j), a feature
h([x_i, x_j - x_i]) from the centre and the offset to the neighbour (a shared MLP), then takes the
max over the neighbours j. ``x_i`` keeps the global position, ``x_j - x_i`` the local shape, and
the max makes the result independent of the neighbours' order, as in PointNet.

The graph is *dynamic*: each EdgeConv layer recomputes the kNN in the space of its own input
features, so after the first layer (where neighbours are near in space) points that are far apart
but look alike (two legs of a chair) become neighbours. ``build_dgcnn(dynamic=False)`` keeps the
spatial graph in every layer, for comparison.

Written in ``keras.ops`` (TensorFlow, JAX, PyTorch); the layer is registered for
``keras.models.load_model``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers, ops

from pcfilter_lib.nn.point_ops import gather, nearest
from pcfilter_lib.nn.widths import scaled_channels

EDGE_WIDTHS = (64, 64, 128, 256)  # the paper's four EdgeConv layers for classification
EMBEDDING = 1024
HEAD = (512, 256)


@keras.saving.register_keras_serializable(package="pcfilter")
class EdgeConv(layers.Layer):
    """Edge convolution: features (B, N, C) -> (B, N, filters[-1]).

    Input: one tensor ``x``, whose kNN graph is used (the dynamic graph), or ``[x, graph]``, where
    the kNN is computed on ``graph`` (B, N, D) instead (a fixed graph, such as the coordinates).
    The edge MLP has one layer per entry of ``filters``, each a linear map, batch normalisation
    and LeakyReLU(``negative_slope``); then a max over the ``k`` neighbours.

    The first linear map is W [x_i; x_j - x_i] with W (2C, F). It is computed as
    x_i (W_1 - W_2) + x_j W_2 (W_1, W_2 its upper and lower halves): two (N, C) x (C, F) products
    and a gather of F-channel rows, instead of a product over all N k edges.
    """

    def __init__(self, filters: int | Sequence[int], k: int = 20, momentum: float = 0.9,
                 negative_slope: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        self.filters = (int(filters),) if isinstance(filters, int) else tuple(int(f) for f in filters)
        self.k = int(k)
        if not self.filters or min(self.filters) < 1 or self.k < 1:
            raise ValueError(f"EdgeConv needs positive filters and k, got {filters} and {k}")
        self.momentum = float(momentum)
        self.negative_slope = float(negative_slope)
        self.dense = [layers.Dense(f, use_bias=False, name=f"dense{i}") for i, f in enumerate(self.filters[1:], 1)]
        self.norm = [layers.BatchNormalization(momentum=self.momentum, name=f"bn{i}") for i in range(len(self.filters))]

    def build(self, input_shape):
        several = isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple))
        shape = tuple(input_shape[0] if several else input_shape)
        if shape[1] is not None and self.k > shape[1]:
            raise ValueError(f"k = {self.k} neighbours need clouds of at least {self.k} points, got {shape[1]}")
        channels = int(shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(2 * channels, self.filters[0]),
                                      initializer="glorot_uniform")
        edges = (shape[0], shape[1], self.k)
        self.norm[0].build(edges + (self.filters[0],))
        for dense, norm, f_in in zip(self.dense, self.norm[1:], self.filters[:-1], strict=True):
            dense.build(edges + (f_in,))
            norm.build(edges + (dense.units,))

    def call(self, inputs, training=None):
        x, graph = (inputs[0], inputs[1]) if isinstance(inputs, (list, tuple)) else (inputs, inputs)
        # (B, N, k), each point its own nearest (distance 0, as in the authors' code): that edge carries x_i alone
        neighbours, _ = nearest(ops.stop_gradient(graph), ops.stop_gradient(graph), self.k)
        c = x.shape[-1]
        kernel = ops.cast(self.kernel, x.dtype)
        to_neighbour = ops.matmul(x, kernel[c:])  # x_j W_2, gathered per edge below
        to_centre = ops.matmul(x, kernel[:c]) - to_neighbour  # x_i (W_1 - W_2)
        h = to_centre[:, :, None, :] + gather(to_neighbour, neighbours)  # (B, N, k, F)
        h = ops.leaky_relu(self.norm[0](h, training=training), self.negative_slope)
        for dense, norm in zip(self.dense, self.norm[1:], strict=True):
            h = ops.leaky_relu(norm(dense(h), training=training), self.negative_slope)
        return ops.max(h, axis=2)

    def compute_output_shape(self, input_shape):
        several = isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple))
        shape = tuple(input_shape[0] if several else input_shape)
        return shape[:-1] + (self.filters[-1],)

    def get_config(self):
        return {**super().get_config(), "filters": list(self.filters), "k": self.k, "momentum": self.momentum,
                "negative_slope": self.negative_slope}


def build_dgcnn(num_classes: int = 10, num_points: int | None = 1024, channels: int = 3, k: int = 20,
                width: float = 0.25, dynamic: bool = True, momentum: float = 0.9, dropout: float = 0.5,
                name: str = "dgcnn") -> keras.Model:
    """DGCNN classifier: clouds (B, N, channels) -> class probabilities (B, num_classes).

    Four EdgeConv layers, each on the previous one's output (the paper's 64, 64, 128, 256
    channels scaled by ``width``); their outputs are concatenated (features of every scale),
    lifted by a shared layer to the embedding, pooled by max and by mean over the points, and
    classified by two dense layers with dropout. The default width 0.25 gives about as many
    weights as the small PointNet and PointNet++, so that an epoch of ModelNet10 at 512 points
    takes minutes on two CPU cores.
    ``dynamic=False`` computes every layer's kNN from the coordinates (the first three channels).

    Args:
        num_classes: number of classes.
        num_points: points per cloud N, or None for any number (at least k).
        channels: 3 for coordinates alone, more for extra per-point features.
        k: neighbours per point (20 in the paper).
        width: scale of every layer's width (1.0: the paper's).
        dynamic: recompute the graph in each layer's feature space (False: the spatial graph).
        momentum: batch-normalisation momentum (Keras convention).
        dropout: dropout rate in the head.
        name: the model's name.

    Returns:
        An uncompiled ``keras.Model``.

    Raises:
        ValueError: if width, k or channels are out of range.
    """
    if not 0 < width <= 4:
        raise ValueError(f"width must lie in (0, 4], got {width}")
    if channels < 3:
        raise ValueError(f"the first 3 channels are the coordinates, so channels must be >= 3, got {channels}")
    if num_points is not None and k > num_points:
        raise ValueError(f"k = {k} neighbours need at least {k} points, got num_points = {num_points}")
    inputs = keras.Input((num_points, channels), name="points")
    xyz = inputs[..., :3]
    x, scales = inputs, []
    for i, filters in enumerate(EDGE_WIDTHS):
        x = EdgeConv(scaled_channels(filters, width), k, momentum, name=f"edgeconv{i}")(x if dynamic else [x, xyz])
        scales.append(x)
    x = layers.Concatenate(name="multi_scale")(scales)
    outputs = pooled_head(x, num_classes, width, momentum, dropout, 0.2, EMBEDDING, HEAD)
    return keras.Model(inputs, outputs, name=name)


def pooled_head(x, num_classes: int, width: float, momentum: float, dropout: float, negative_slope: float,
                embedding: int, head: Sequence[int]):
    """Per-point features (B, N, C) -> class probabilities (B, num_classes): a shared layer to the
    embedding, max and mean pooling over the points, and dense layers with dropout (DGCNN's head,
    also KPConv's), each layer scaled by ``width``, with batch norm and LeakyReLU(``negative_slope``)."""
    x = layers.Dense(scaled_channels(embedding, width), use_bias=False, name="embedding_dense")(x)
    x = layers.BatchNormalization(momentum=momentum, name="embedding_bn")(x)
    x = layers.LeakyReLU(negative_slope, name="embedding_relu")(x)
    x = layers.Concatenate(name="global_feature")([layers.GlobalMaxPooling1D(name="max_pool")(x),
                                                   layers.GlobalAveragePooling1D(name="mean_pool")(x)])
    for i, units in enumerate(head):
        x = layers.Dense(scaled_channels(units, width), use_bias=False, name=f"head_fc{i}_dense")(x)
        x = layers.BatchNormalization(momentum=momentum, name=f"head_fc{i}_bn")(x)
        x = layers.LeakyReLU(negative_slope, name=f"head_fc{i}_relu")(x)
        x = layers.Dropout(dropout, name=f"head_dropout{i}")(x)
    return layers.Dense(num_classes, activation="softmax", name="head_scores", dtype="float32")(x)
