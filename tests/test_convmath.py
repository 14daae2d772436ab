"""convmath against Keras: the matrix of a convolution, its transpose, pooling and the counts."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import assume, given
from hypothesis import strategies as st

from pcfilter_lib.lessons import convmath

RNG = np.random.default_rng(0)


def keras_conv2d(x, kernel, stride, padding, dilation):
    layer = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[:2], strides=stride, padding=padding,
                                dilation_rate=dilation, use_bias=False)
    layer.build((None, *x.shape))
    layer.set_weights([kernel])
    return keras.ops.convert_to_numpy(layer(x[None]))[0]


def keras_conv2d_transpose(y, kernel, stride, padding, dilation):
    layer = keras.layers.Conv2DTranspose(kernel.shape[2], kernel.shape[:2], strides=stride, padding=padding,
                                         dilation_rate=dilation, use_bias=False)
    layer.build((None, *y.shape))
    layer.set_weights([kernel])
    return keras.ops.convert_to_numpy(layer(y[None]))[0]


conv_cases = st.fixed_dictionaries({
    "h": st.integers(1, 9), "w": st.integers(1, 9), "c_in": st.integers(1, 3), "c_out": st.integers(1, 3),
    "kh": st.integers(1, 4), "kw": st.integers(1, 4), "stride": st.integers(1, 3), "dilation": st.integers(1, 3),
    "padding": st.sampled_from(["valid", "same"]),
})


def _fits(case):
    if case["stride"] > 1 and case["dilation"] > 1:
        return False  # Keras does not combine the two
    if case["padding"] == "valid":
        return all((k - 1) * case["dilation"] + 1 <= n for k, n in ((case["kh"], case["h"]), (case["kw"], case["w"])))
    return True


def _random(case):
    x = RNG.uniform(-1, 1, size=(case["h"], case["w"], case["c_in"])).astype("float32")
    kernel = RNG.uniform(-1, 1, size=(case["kh"], case["kw"], case["c_in"], case["c_out"])).astype("float32")
    return x, kernel


@given(conv_cases, st.booleans())
def test_matrix_equals_keras_conv2d(case, sparse):
    assume(_fits(case))
    x, kernel = _random(case)
    matrix = convmath.conv2d_matrix(kernel, x.shape, case["stride"], case["padding"], case["dilation"], sparse=sparse)
    expected = keras_conv2d(x, kernel, case["stride"], case["padding"], case["dilation"])
    assert matrix.shape == (expected.size, x.size)
    np.testing.assert_allclose(matrix @ x.ravel(), expected.ravel(), atol=1e-5, rtol=1e-5)


@given(conv_cases)
def test_transposed_matrix_equals_keras_conv2d_transpose(case):
    assume(_fits(case))
    h_out, w_out, c_out = convmath.conv2d_output_shape(
        (case["kh"], case["kw"], case["c_in"], case["c_out"]), (case["h"], case["w"], case["c_in"]),
        case["stride"], case["padding"], case["dilation"])
    # TensorFlow's CPU kernel of the transposed convolution refuses dilation rates above 1.
    assume(case["dilation"] == 1 or tf.config.list_physical_devices("GPU"))
    # The transposed layer maps back to the input size only when no input row or column was skipped,
    # and (with "valid" padding) when the kernel is at least as wide as the stride: Keras makes the
    # output max(kernel, stride) wide at the last position.
    extent_h, extent_w = ((k - 1) * case["dilation"] + 1 for k in (case["kh"], case["kw"]))
    if case["padding"] == "valid":
        assume((case["h"] - extent_h) % case["stride"] == 0 and (case["w"] - extent_w) % case["stride"] == 0)
        assume(min(extent_h, extent_w) >= case["stride"])
    else:
        assume(case["h"] % case["stride"] == 0 and case["w"] % case["stride"] == 0)
    x, kernel = _random(case)
    y = RNG.uniform(-1, 1, size=(h_out, w_out, c_out)).astype("float32")
    matrix = convmath.conv2d_matrix(kernel, x.shape, case["stride"], case["padding"], case["dilation"])
    expected = keras_conv2d_transpose(y, kernel, case["stride"], case["padding"], case["dilation"])
    assert expected.shape == x.shape
    np.testing.assert_allclose(matrix.T @ y.ravel(), expected.ravel(), atol=1e-5, rtol=1e-5)


def test_matrix_of_the_blackboard_example():
    matrix = convmath.conv2d_matrix(np.array([[1, 2], [3, 4]]), (3, 3))
    expected = np.array([[1, 2, 0, 3, 4, 0, 0, 0, 0],
                         [0, 1, 2, 0, 3, 4, 0, 0, 0],
                         [0, 0, 0, 1, 2, 0, 3, 4, 0],
                         [0, 0, 0, 0, 1, 2, 0, 3, 4]])
    np.testing.assert_array_equal(matrix, expected)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: convmath.conv2d_matrix(np.ones((3, 3)), (8, 8), stride=0), "stride must be positive"),
    (lambda: convmath.conv2d_matrix(np.ones((3, 3)), (8, 8), dilation=-1), "dilation must be positive"),
    (lambda: convmath.conv2d_matrix(np.ones((5, 5)), (4, 9)), "larger|only 4 wide"),
    (lambda: convmath.conv2d_matrix(np.ones((3, 3)), (9, 9), dilation=5), "spans 11 pixels"),
    (lambda: convmath.conv2d_matrix(np.ones((3, 3, 2, 1)), (8, 8, 3)), "channel mismatch"),
    (lambda: convmath.conv2d_matrix(np.ones((3, 3)), (8, 8), padding="full"), "padding must be one of"),
    (lambda: convmath.conv2d_matrix(np.ones((3, 3, 1)), (8, 8)), "kernel must have shape"),
    (lambda: convmath.conv2d_matrix(np.full((3, 3), np.nan), (8, 8)), "NaN"),
    (lambda: convmath.conv2d_matrix(np.ones((3, 3)), (0, 8)), "positive sizes"),
    (lambda: convmath.conv2d_matrix(np.ones((3, 3)), (8, 8), stride=1.5), "stride must be"),
    (lambda: convmath.max_pool_with_argmax(np.ones((1, 5)), 2), "does not fit"),
    (lambda: convmath.receptive_field([(3, 0, 1)]), "layer 0"),
    (lambda: convmath.max_unpool(np.ones((2, 2)), np.full((2, 2), 99), (4, 4)), "indices must lie"),
])
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_receptive_field_of_known_stacks():
    assert convmath.receptive_field([(3, 1, 1)] * 3) == [(3, 1), (5, 1), (7, 1)]
    assert convmath.receptive_field([(3, 1, 1), (2, 2, 1), (3, 1, 1)]) == [(3, 1), (4, 2), (8, 2)]
    assert convmath.receptive_field([(3, 1, d) for d in (1, 2, 4)])[-1] == (15, 1)


@given(st.integers(2, 12), st.integers(2, 12), st.integers(1, 4), st.integers(1, 3))
def test_max_pool_with_argmax_matches_keras_and_tensorflow(h, w, c, pool):
    assume(h >= pool and w >= pool)
    x = RNG.normal(size=(h, w, c)).astype("float32")
    values, indices = convmath.max_pool_with_argmax(x, pool)
    np.testing.assert_array_equal(values, keras.ops.convert_to_numpy(keras.layers.MaxPooling2D(pool)(x[None]))[0])
    _, tf_indices = tf.nn.max_pool_with_argmax(x[None], pool, pool, "VALID", include_batch_in_index=False)
    np.testing.assert_array_equal(indices, tf_indices.numpy()[0])
    np.testing.assert_array_equal(x.ravel()[indices], values)


def test_unpooling_puts_values_back_where_the_maxima_were():
    x = np.array([[1, 2, 6, 3], [3, 5, 2, 1], [1, 2, 2, 1], [7, 3, 4, 8]], dtype=float)
    values, indices = convmath.max_pool_with_argmax(x, 2)
    np.testing.assert_array_equal(values, [[5, 6], [7, 8]])
    unpooled = convmath.max_unpool(np.array([[1, 2], [3, 4]], dtype=float), indices, x.shape)
    np.testing.assert_array_equal(unpooled, [[0, 0, 2, 0], [0, 1, 0, 0], [0, 0, 0, 0], [3, 0, 0, 4]])


@pytest.mark.parametrize(("size", "k", "c_in", "c_out"), [(8, 3, 1, 1), (12, 5, 3, 4), (6, 1, 2, 7)])
def test_parameter_and_flop_counts(size, k, c_in, c_out):
    model = keras.Sequential([keras.Input((size, size, c_in)), keras.layers.Conv2D(c_out, k)])
    assert model.count_params() == convmath.conv2d_params(k, c_in, c_out)
    dense = keras.Sequential([keras.Input((size * size * c_in,)), keras.layers.Dense(c_out)])
    assert dense.count_params() == convmath.dense_params(size * size * c_in, c_out)
    # With 'valid' padding every tap reads a real pixel: FLOPs are two per stored matrix entry.
    matrix = convmath.conv2d_matrix(np.ones((k, k, c_in, c_out)), (size, size, c_in), sparse=True)
    out = size - k + 1
    assert convmath.conv2d_flops((out, out), k, c_in, c_out) == 2 * matrix.nnz
    assert convmath.dense_flops(size * size * c_in, c_out) == 2 * size * size * c_in * c_out


def depthwise_kernel(k, c_in, multiplier=1):
    """A (k, k, c_in, c_in * m) kernel of ones that reads channel c only into its own m outputs:
    a depthwise convolution written as an ordinary one."""
    kernel = np.zeros((k, k, c_in, c_in * multiplier))
    for c in range(c_in):
        kernel[:, :, c, c * multiplier:(c + 1) * multiplier] = 1.0
    return kernel


def multiplications(kernel, input_shape):
    """Multiplications of a 'valid' convolution, counted as the non-zero entries of its matrix."""
    matrix = convmath.conv2d_matrix(kernel, input_shape, sparse=True)
    matrix.eliminate_zeros()
    return matrix.nnz


def test_the_theses_separable_example_counts_1152_against_192_plus_288():
    # A 5x5x3 input, 2x2 kernels, six output channels: a 4x4x6 output.
    plain = convmath.conv2d_multiplications(4, 2, 3, 6)
    depthwise, pointwise = convmath.separable_conv2d_multiplications(4, 2, 3, 6)
    assert (plain, depthwise, pointwise) == (1152, 192, 288)
    assert plain == multiplications(np.ones((2, 2, 3, 6)), (5, 5, 3))
    assert depthwise == multiplications(depthwise_kernel(2, 3), (5, 5, 3))
    assert pointwise == multiplications(np.ones((1, 1, 3, 6)), (4, 4, 3))


@pytest.mark.parametrize(("k", "c_in", "c_out", "m", "size"), [(3, 3, 6, 1, 9), (2, 4, 5, 2, 7), (5, 1, 8, 3, 11)])
def test_separable_counts_match_keras_and_the_matrices(k, c_in, c_out, m, size):
    layer = keras.layers.SeparableConv2D(c_out, k, depth_multiplier=m)
    model = keras.Sequential([keras.Input((size, size, c_in)), layer])
    assert model.count_params() == convmath.separable_conv2d_params(k, c_in, c_out, m)
    assert convmath.separable_conv2d_params(k, c_in, c_out, m, bias=False) == model.count_params() - c_out
    out = size - k + 1
    depthwise, pointwise = convmath.separable_conv2d_multiplications(out, k, c_in, c_out, m)
    assert depthwise == multiplications(depthwise_kernel(k, c_in, m), (size, size, c_in))
    assert pointwise == multiplications(np.ones((1, 1, c_in * m, c_out)), (out, out, c_in * m))


@pytest.mark.parametrize(("channels", "reduced", "k"), [(64, 16, 3), (8, 2, 3), (12, 4, 5)])
def test_bottleneck_count_matches_a_keras_block(channels, reduced, k):
    x = keras.Input((10, 10, channels))
    h = keras.layers.Conv2D(reduced, 1, activation="relu")(x)
    h = keras.layers.Conv2D(reduced, k, padding="same", activation="relu")(h)
    h = keras.layers.Conv2D(channels, 1)(h)
    block = keras.Model(x, keras.layers.Add()([x, h]))
    assert block.count_params() == convmath.bottleneck_params(channels, reduced, k)


def keras_causal_field(kernel_size, dilations, length=40):
    """The receptive field of the last output of a stack of causal Conv1D layers, measured: with
    kernels of ones, the inputs that reach it are the impulses with a non-zero response there."""
    model = keras.Sequential([keras.Input((length, 1))] + [
        keras.layers.Conv1D(1, kernel_size, padding="causal", dilation_rate=d, use_bias=False,
                            kernel_initializer="ones") for d in dilations])
    impulses = np.eye(length, dtype="float32")[..., None]  # impulse j in batch row j
    response = keras.ops.convert_to_numpy(model(impulses))[:, -1, 0]
    return int(np.count_nonzero(response))


@pytest.mark.parametrize(("k", "dilations"), [(2, (1, 2, 4, 8)), (3, (1, 2, 4)), (2, (1, 1, 1))])
def test_causal_receptive_fields_match_keras(k, dilations):
    fields = convmath.causal_receptive_fields(k, dilations)
    assert fields == [keras_causal_field(k, dilations[:n + 1]) for n in range(len(dilations))]


def test_wavenet_fields_double_and_bad_counts_are_refused():
    assert convmath.causal_receptive_fields(2, [2 ** n for n in range(5)]) == [2, 4, 8, 16, 32]
    with pytest.raises(ValueError, match="dilation must be positive"):
        convmath.causal_receptive_fields(2, [1, 0])
    with pytest.raises(ValueError, match="depth_multiplier must be positive"):
        convmath.separable_conv2d_params(3, 4, 4, depth_multiplier=0)
