"""A submanifold sparse 3D convolution as a trainable Keras layer (Graham et al. 2018), in ``keras.ops``.

A scanned scene fills a thin shell of its voxel grid. ``SubmanifoldConv3D`` works on that shell
only: its input is the features of the M active sites, (M, C_in), and the rulebook of those sites
(``geometry.sparse_grids.submanifold_rules``: for every rule, an input row, an output row and a
kernel offset). Its output is the features of the same sites, (M, filters), so the active set never
grows through a stack of layers, and one rulebook serves them all. The work, as in any sparse
convolution library, is gather, multiply, scatter-add:

1. multiply every site's features by every offset's weight matrix at once: (M, C_in) times
   (C_in, K * filters), K = kernel^3;
2. gather, for every rule, the product of its input row with its offset's matrix;
3. add the gathered rows into their output rows (``keras.ops.segment_sum``).

Step 1 computes K products per site where the rules may need fewer (a site on a surface has about
nine active neighbours of its 27): the price of one matrix product instead of K small ones. At the
active sites the layer gives what a dense ``Conv3D`` with padding "same" gives on a grid holding the
same features (and zeros elsewhere), with the same kernel layout, which the tests check, together
with the NumPy layer of ``lessons.sparse_conv``.

A submanifold convolution never changes its sites, so a network that should see far needs coarser
levels, as a U-Net pools: ``SparseMaxPool`` takes, for every site of a coarser level (the sites
whose coordinates halved are distinct), the largest feature of its children, and ``SparseUnpool``
hands every child its parent's features back. Both read ``parent``, the coarse row of every fine
site (``models.sparse_scene.site_levels``). The layers are registered for
``keras.models.load_model``.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="pcfilter")
class SubmanifoldConv3D(keras.layers.Layer):
    """A submanifold sparse 3D convolution: features of M active sites in, of the same sites out.

    Call it on ``[features, inputs, outputs, offsets]``: the (M, C_in) features and the three (R,)
    int32 arrays of ``geometry.sparse_grids.submanifold_rules`` for the same sites and kernel.

    Args:
        filters: output channels.
        kernel_size: odd side of the cubic kernel.
        activation: applied to the output (a Keras activation name or function).
        use_bias: add a bias per output channel.
        kernel_initializer: initialiser of the (k, k, k, C_in, filters) kernel, laid out as a
            ``Conv3D`` kernel.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Raises:
        ValueError: ``kernel_size`` is not a positive odd number or ``filters`` is not positive.
    """

    def __init__(self, filters: int, kernel_size: int = 3, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        if filters < 1:
            raise ValueError(f"filters must be positive, got {filters}")
        self.filters, self.kernel_size, self.use_bias = int(filters), int(kernel_size), bool(use_bias)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        channels = int(input_shape[0][-1])
        k = self.kernel_size
        self.kernel = self.add_weight(name="kernel", shape=(k, k, k, channels, self.filters),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias else None

    def call(self, inputs):
        features, rule_inputs, rule_outputs, rule_offsets = inputs
        offsets = self.kernel_size ** 3
        channels = ops.shape(features)[-1]
        # (K, C_in, F) -> (C_in, K * F): every offset's matrix side by side, one product for all.
        weights = ops.reshape(ops.transpose(ops.reshape(self.kernel, (offsets, channels, self.filters)), (1, 0, 2)),
                              (channels, offsets * self.filters))
        products = ops.reshape(ops.matmul(features, weights), (-1, self.filters))  # row = site * K + offset
        rows = ops.cast(rule_inputs, "int32") * offsets + ops.cast(rule_offsets, "int32")
        gathered = ops.take(products, rows, axis=0)
        out = ops.segment_sum(gathered, ops.cast(rule_outputs, "int32"), num_segments=ops.shape(features)[0])
        if self.bias is not None:
            out = out + self.bias
        return self.activation(out)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.filters)

    def get_config(self) -> dict:
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "activation": keras.activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


@keras.saving.register_keras_serializable(package="pcfilter")
class SparseMaxPool(keras.layers.Layer):
    """Max pooling from the active sites of one level to those of the next coarser one.

    Call it on ``[features, parent, coarse_sites]``: the (M, C) features of the fine sites, the (M,)
    int32 coarse row of every fine site, and the (M_c, 3) coarse sites (only their number is read).
    Returns (M_c, C): per coarse site, the channel-wise maximum over its children, as a dense
    ``MaxPooling3D`` gives over the occupied voxels of each 2x2x2 block.
    """

    def call(self, inputs):
        features, parent, coarse_sites = inputs
        return ops.segment_max(features, ops.cast(parent, "int32"), num_segments=ops.shape(coarse_sites)[0])

    def compute_output_shape(self, input_shape):
        return (input_shape[2][0], input_shape[0][-1])


@keras.saving.register_keras_serializable(package="pcfilter")
class SparseUnpool(keras.layers.Layer):
    """The way back up: every fine site gets the features of its coarse parent.

    Call it on ``[coarse_features, parent]``: (M_c, C) and the (M,) int32 coarse row of every fine
    site. Returns (M, C), as a dense nearest-neighbour ``UpSampling3D`` gives at the fine sites.
    """

    def call(self, inputs):
        coarse, parent = inputs
        return ops.take(coarse, ops.cast(parent, "int32"), axis=0)

    def compute_output_shape(self, input_shape):
        return (input_shape[1][0], input_shape[0][-1])
