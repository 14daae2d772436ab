"""4D convolution from 3D ones, against a direct sum, and the d-dimensional counts against Keras."""

import keras
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from pcfilter_lib.lessons import convmath
from pcfilter_lib.lessons.convmath import conv_nd_flops, conv_nd_params
from pcfilter_lib.models.conv4d import conv4d


def test_conv4d_equals_the_direct_sum():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 4, 6, 3, 2)).astype("float32")
    kernel = rng.normal(size=(3, 2, 3, 1, 2, 4)).astype("float32")
    bias = rng.normal(size=4).astype("float32")
    windows = sliding_window_view(x, kernel.shape[:4], axis=(1, 2, 3, 4))
    direct = np.einsum("ntdhwcabef,abefco->ntdhwo", windows, kernel) + bias
    out = keras.ops.convert_to_numpy(conv4d(x, kernel, bias))
    assert out.shape == (2, 3, 3, 4, 3, 4)
    np.testing.assert_allclose(out, direct, rtol=1e-4, atol=1e-4)


def test_a_kernel_one_step_long_is_a_3d_convolution_per_step():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 3, 5, 5, 5, 2)).astype("float32")
    kernel = rng.normal(size=(1, 3, 3, 3, 2, 3)).astype("float32")
    layer = keras.layers.Conv3D(3, 3, use_bias=False)
    layer.build((None, 5, 5, 5, 2))
    layer.set_weights([kernel[0]])
    out = keras.ops.convert_to_numpy(conv4d(x, kernel))
    for t in range(3):
        np.testing.assert_allclose(out[0, t], keras.ops.convert_to_numpy(layer(x[:, t]))[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_counts_match_keras_and_convmath(dims):
    layer = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)[dims - 1](7, 3)
    layer.build((None, *(9,) * dims, 5))
    assert conv_nd_params(3, dims, 5, 7) == layer.count_params()
    if dims == 2:
        assert conv_nd_params((3, 2), 2, 5, 7) == convmath.conv2d_params((3, 2), 5, 7)
        assert conv_nd_flops((6, 4), (3, 2), 2, 5, 7) == convmath.conv2d_flops((6, 4), (3, 2), 5, 7)


def test_each_dimension_multiplies_weights_by_k_and_flops_by_k_n():
    for dims in (1, 2, 3):
        assert conv_nd_params(3, dims + 1, 4, 4, bias=False) == 3 * conv_nd_params(3, dims, 4, 4, bias=False)
        assert conv_nd_flops(10, 3, dims + 1, 4, 4) == 30 * conv_nd_flops(10, 3, dims, 4, 4)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="need x"):
        conv4d(np.zeros((1, 3, 3, 3, 2)), np.zeros((1, 1, 1, 1, 2, 1)))
    with pytest.raises(ValueError, match="larger than the input"):
        conv4d(np.zeros((1, 2, 3, 3, 3, 1)), np.zeros((3, 1, 1, 1, 1, 1)))
    with pytest.raises(ValueError, match="positive sizes"):
        conv_nd_params((3, 3), 3, 1, 1)
