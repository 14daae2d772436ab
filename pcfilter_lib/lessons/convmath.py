"""Convolution as linear algebra, in NumPy and SciPy.

A 2D convolution layer is a linear map: it can be written as one (sparse, doubly block Toeplitz)
matrix acting on the flattened input. This module builds that matrix in the conventions of Keras
(cross-correlation, kernel layout ``(kh, kw, c_in, c_out)``, TensorFlow's "same" padding), plus the
small pieces of arithmetic the convolution chapter checks against Keras: output sizes, receptive
fields, max pooling that remembers its indices, and parameter, multiplication and FLOP counts of
plain, depthwise-separable and bottleneck convolutions.

Flattening is row-major over ``(H, W, C)``: pixel ``(y, x)`` channel ``c`` of an ``(H, W, C)`` image
is entry ``(y * W + x) * C + c`` of the vector, which is what ``image.reshape(-1)`` gives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

PADDINGS = ("valid", "same")


def _positive_pair(value, name: str) -> tuple[int, int]:
    """Turn an int or a pair of ints into a pair of positive ints, or raise ValueError."""
    pair = (value, value) if np.ndim(value) == 0 else tuple(value)
    is_int = [isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair]
    if len(pair) != 2 or not all(is_int):
        raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {value!r}")
    if min(pair) < 1:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_padding(padding: str) -> str:
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    return padding


def conv_output_length(size: int, kernel: int, stride: int = 1, padding: str = "valid",
                       dilation: int = 1) -> tuple[int, int]:
    """Output length along one axis and the zero padding added before the input.

    "valid" adds no padding and needs the dilated kernel, ``(kernel - 1) * dilation + 1`` wide, to
    fit in the input. "same" follows TensorFlow: ``ceil(size / stride)`` outputs, with the padding
    split so that the extra zero (if the total is odd) goes after the input.

    Args:
        size: input length, in pixels.
        kernel: kernel length, in taps.
        stride: step between neighbouring outputs, in input pixels.
        padding: "valid" or "same".
        dilation: spacing of the kernel taps, in input pixels.

    Returns:
        ``(outputs, padding_before)``: the output length and the zeros added before the input.

    Raises:
        ValueError: an argument is not positive, the padding is unknown, or the dilated kernel does
            not fit in the input with "valid" padding.
    """
    _check_padding(padding)
    for name, v in (("size", size), ("kernel", kernel), ("stride", stride), ("dilation", dilation)):
        if v < 1:
            raise ValueError(f"{name} must be positive, got {v}")
    extent = (kernel - 1) * dilation + 1
    if padding == "valid":
        if extent > size:
            raise ValueError(
                f"the kernel spans {extent} pixels (size {kernel}, dilation {dilation}) but the input "
                f"is only {size} wide with 'valid' padding: use a smaller kernel or padding='same'"
            )
        return (size - extent) // stride + 1, 0
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + extent - size, 0)
    return out, total // 2


def conv2d_output_shape(kernel_shape: Sequence[int], input_shape: Sequence[int], stride=1, padding: str = "valid",
                        dilation=1) -> tuple[int, int, int]:
    """The output shape of a 2D convolution, as Keras computes it.

    Args:
        kernel_shape: ``(kh, kw, c_in, c_out)``, the Keras layout.
        input_shape: ``(H, W)`` or ``(H, W, c_in)``.
        stride: an int or a ``(rows, cols)`` pair.
        padding: "valid" or "same".
        dilation: an int or a ``(rows, cols)`` pair.

    Returns:
        ``(H_out, W_out, c_out)``.

    Raises:
        ValueError: the input's channels differ from the kernel's ``c_in``, or a size is invalid.
    """
    kh, kw, c_in, c_out = kernel_shape
    h, w, c = _input_hwc(input_shape)
    if c != c_in:
        raise ValueError(f"channel mismatch: the kernel expects {c_in} input channels but the input has {c}")
    (sh, sw), (dh, dw) = _positive_pair(stride, "stride"), _positive_pair(dilation, "dilation")
    h_out, _ = conv_output_length(h, kh, sh, padding, dh)
    w_out, _ = conv_output_length(w, kw, sw, padding, dw)
    return h_out, w_out, c_out


def _input_hwc(input_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"input_shape must be (H, W) or (H, W, C) with positive sizes, got {tuple(input_shape)!r}")
    return shape


def _as_kernel(kernel) -> np.ndarray:
    k = np.asarray(kernel)
    if k.ndim == 2:  # a single-channel (kh, kw) kernel, as on a blackboard
        k = k[:, :, None, None]
    if k.ndim != 4 or min(k.shape) < 1:
        raise ValueError(f"kernel must have shape (kh, kw) or (kh, kw, c_in, c_out), got {k.shape}")
    if not np.issubdtype(k.dtype, np.floating):
        k = k.astype(np.float64)
    if not np.all(np.isfinite(k)):
        raise ValueError("kernel contains NaN or infinite values")
    return k


def conv2d_matrix(kernel, input_shape: Sequence[int], stride=1, padding: str = "valid", dilation=1,
                  sparse: bool = False):
    """The matrix ``M`` with ``M @ x.reshape(-1) == conv2d(x).reshape(-1)``.

    Args:
        kernel: weights in Keras layout ``(kh, kw, c_in, c_out)``; a 2D ``(kh, kw)`` kernel means one
            input and one output channel.
        input_shape: ``(H, W, c_in)`` or ``(H, W)``.
        stride: an int or a ``(rows, cols)`` pair, positive.
        padding: "valid" (no padding) or "same" (TensorFlow's zero padding).
        dilation: an int or a ``(rows, cols)`` pair, positive.
        sparse: return a ``scipy.sparse.csr_matrix`` instead of a dense array.

    Returns:
        An array of shape ``(H_out * W_out * c_out, H * W * c_in)``. Row ``(i * W_out + j) * c_out + o``
        holds the weights with which output pixel ``(i, j)`` channel ``o`` reads the input: the
        cross-correlation of deep-learning frameworks, no kernel flip.

    Raises:
        ValueError: the kernel is not finite or has another shape, the channels do not match, or the
            kernel does not fit in the input.
    """
    k = _as_kernel(kernel)
    kh, kw, c_in, c_out = k.shape
    h, w, c = _input_hwc(input_shape)
    h_out, w_out, _ = conv2d_output_shape(k.shape, (h, w, c), stride, padding, dilation)
    (sh, sw), (dh, dw) = _positive_pair(stride, "stride"), _positive_pair(dilation, "dilation")
    _, pad_top = conv_output_length(h, kh, sh, padding, dh)
    _, pad_left = conv_output_length(w, kw, sw, padding, dw)

    # Every (output pixel, kernel tap) pair reads one input pixel; taps that land in the zero padding
    # read nothing and are dropped.
    i, j, a, b = np.meshgrid(np.arange(h_out), np.arange(w_out), np.arange(kh), np.arange(kw), indexing="ij")
    y = i * sh - pad_top + a * dh
    x = j * sw - pad_left + b * dw
    inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    i, j, a, b, y, x = (v[inside][:, None, None] for v in (i, j, a, b, y, x))
    ci = np.arange(c_in)[None, :, None]
    co = np.arange(c_out)[None, None, :]
    rows = (i * w_out + j) * c_out + co
    cols = (y * w + x) * c_in + ci
    rows, cols = np.broadcast_arrays(rows, cols)
    values = k[a, b, ci, co]
    matrix = sp.csr_matrix(
        (values.ravel(), (rows.ravel(), cols.ravel())), shape=(h_out * w_out * c_out, h * w * c_in)
    )
    return matrix if sparse else matrix.toarray()


def receptive_field(layers: Sequence[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """Receptive field size and jump after each layer of a stack of convolutions or poolings.

    After layer ``l`` one output pixel sees ``r_l = r_{l-1} + (kernel - 1) * dilation * j_{l-1}``
    input pixels, and neighbouring outputs are ``j_l = j_{l-1} * stride`` input pixels apart
    (``r_0 = j_0 = 1``).

    Args:
        layers: ``(kernel, stride, dilation)`` of each layer along one axis, first layer first.

    Returns:
        ``(r_l, j_l)`` after each layer, in input pixels.

    Raises:
        ValueError: a layer is not three positive ints.
    """
    size, jump, out = 1, 1, []
    for n, layer in enumerate(layers):
        if len(layer) != 3 or min(layer) < 1:
            raise ValueError(f"layer {n} must be (kernel, stride, dilation) of positive ints, got {layer!r}")
        kernel, stride, dilation = layer
        size += (kernel - 1) * dilation * jump
        jump *= stride
        out.append((size, jump))
    return out


def max_pool_with_argmax(x, pool_size: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping max pooling that remembers where each maximum came from (as in SegNet).

    Windows are ``pool_size`` square with the same stride; rows and columns that do not fill a
    window are dropped, as by ``keras.layers.MaxPooling2D``.

    Args:
        x: the input, ``(H, W)`` or ``(H, W, C)``.
        pool_size: the side of the windows, in pixels.

    Returns:
        ``(values, indices)``, both ``(H // p, W // p[, C])``: the maxima and, for each, the flat
        row-major index into ``x`` of where it was; of tied values the first in row-major window
        order wins. TensorFlow's ``max_pool_with_argmax`` numbers them the same way.

    Raises:
        ValueError: ``x`` has another number of axes, or the window does not fit.
    """
    arr = np.asarray(x)
    squeeze = arr.ndim == 2
    if squeeze:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"x must have shape (H, W) or (H, W, C), got {np.shape(x)}")
    p = _positive_pair(pool_size, "pool_size")[0]
    h, w, c = arr.shape
    ho, wo = h // p, w // p
    if ho == 0 or wo == 0:
        raise ValueError(f"a {p}x{p} pooling window does not fit in an input of {h}x{w}")
    windows = arr[: ho * p, : wo * p].reshape(ho, p, wo, p, c).transpose(0, 2, 4, 1, 3).reshape(ho, wo, c, p * p)
    best = windows.argmax(axis=-1)
    values = np.take_along_axis(windows, best[..., None], axis=-1)[..., 0]
    rows = np.arange(ho)[:, None, None] * p + best // p
    cols = np.arange(wo)[None, :, None] * p + best % p
    indices = (rows * w + cols) * c + np.arange(c)
    if squeeze:
        return values[..., 0], indices[..., 0]
    return values, indices


def max_unpool(values, indices, output_shape: Sequence[int]) -> np.ndarray:
    """SegNet's unpooling: put pooled values back where their maxima were, zeros elsewhere.

    Args:
        values: the values to place, any shape.
        indices: flat row-major indices into the output, the shape of ``values`` (as
            ``max_pool_with_argmax`` gives them).
        output_shape: the shape of the unpooled array, such as the shape of the pooled input.

    Returns:
        An array of ``output_shape`` and the dtype of ``values``.

    Raises:
        ValueError: the shapes of ``values`` and ``indices`` differ, or an index is out of range.
    """
    values, indices = np.asarray(values), np.asarray(indices)
    if values.shape != indices.shape:
        raise ValueError(f"values {values.shape} and indices {indices.shape} must have the same shape")
    size = int(np.prod(output_shape))
    if indices.size and (indices.min() < 0 or indices.max() >= size):
        raise ValueError(f"indices must lie in [0, {size}) for output shape {tuple(output_shape)}")
    out = np.zeros(size, dtype=values.dtype)
    out[indices.ravel()] = values.ravel()
    return out.reshape(output_shape)


def _per_axis(value, dims: int, what: str) -> tuple[int, ...]:
    values = (value,) * dims if isinstance(value, int) else tuple(int(v) for v in value)
    if len(values) != dims or min(values) < 1:
        raise ValueError(f"{what} needs {dims} positive sizes, got {value!r}")
    return values


def conv_nd_params(kernel_size: int | Sequence[int], dims: int, c_in: int, c_out: int, bias: bool = True) -> int:
    """Trainable parameters of a d-dimensional convolution.

    ``k1 * ... * kd * c_in * c_out`` weights plus ``c_out`` biases, whatever the input's size.

    Args:
        kernel_size: an int for a kernel of that side in every dimension, or d sides.
        dims: d, the number of dimensions the kernel slides along.
        c_in: input channels.
        c_out: output channels (filters).
        bias: whether the layer has biases.

    Returns:
        The number of parameters; it does not depend on the input's size.
    """
    volume = 1
    for k in _per_axis(kernel_size, dims, "kernel_size"):
        volume *= k
    return volume * c_in * c_out + (c_out if bias else 0)


def conv_nd_flops(output_size: int | Sequence[int], kernel_size: int | Sequence[int], dims: int, c_in: int,
                  c_out: int) -> int:
    """Floating-point operations of a d-dimensional convolution, a multiply-add counted as two.

    Each of the output's ``n1 * ... * nd * c_out`` values is a dot product of ``k1 * ... * kd * c_in``
    numbers; biases and activations are left out.

    Args:
        output_size: an int for an output of that side in every dimension, or d sides.
        kernel_size: an int or d kernel sides.
        dims: d.
        c_in: input channels.
        c_out: output channels.

    Returns:
        ``2 * (outputs) * c_out * (kernel volume) * c_in`` for one input.
    """
    outputs = 1
    for n in _per_axis(output_size, dims, "output_size"):
        outputs *= n
    return 2 * outputs * c_out * (conv_nd_params(kernel_size, dims, c_in, 1, bias=False))


def conv2d_params(kernel_size, c_in: int, c_out: int, bias: bool = True) -> int:
    """Trainable parameters of a Conv2D layer: ``kh * kw * c_in * c_out`` weights plus ``c_out`` biases.

    Args:
        kernel_size: an int or a ``(kh, kw)`` pair.
        c_in: input channels.
        c_out: output channels (filters).
        bias: whether the layer has biases.

    Returns:
        The number of parameters; it does not depend on the image size.
    """
    return conv_nd_params(_positive_pair(kernel_size, "kernel_size"), 2, c_in, c_out, bias)


def conv2d_flops(output_hw, kernel_size, c_in: int, c_out: int) -> int:
    """Floating-point operations of a Conv2D forward pass, a multiply-add counted as two.

    Each of the ``H_out * W_out * c_out`` outputs is a ``kh * kw * c_in``-long dot product; biases
    and activations are left out, as is usual.

    Args:
        output_hw: ``(H_out, W_out)``, or an int for a square output.
        kernel_size: an int or a ``(kh, kw)`` pair.
        c_in: input channels.
        c_out: output channels.

    Returns:
        ``2 * H_out * W_out * c_out * kh * kw * c_in`` for one image.
    """
    return conv_nd_flops(_positive_pair(output_hw, "output_hw"), _positive_pair(kernel_size, "kernel_size"), 2,
                         c_in, c_out)


def dense_params(n_in: int, n_out: int, bias: bool = True) -> int:
    """Trainable parameters of a Dense layer: ``n_in * n_out`` weights plus ``n_out`` biases.

    Args:
        n_in: input features.
        n_out: output features.
        bias: whether the layer has biases.

    Returns:
        The number of parameters.
    """
    return n_in * n_out + (n_out if bias else 0)


def dense_flops(n_in: int, n_out: int) -> int:
    """Floating-point operations of a Dense forward pass (one input vector), multiply-add as two.

    Args:
        n_in: input features.
        n_out: output features.

    Returns:
        ``2 * n_in * n_out``.
    """
    return 2 * n_in * n_out


def conv2d_multiplications(output_hw, kernel_size, c_in: int, c_out: int) -> int:
    """Multiplications of a Conv2D forward pass: ``kh * kw * c_in`` for each of the
    ``H_out * W_out * c_out`` outputs (half of ``conv2d_flops``, which counts the additions too).

    Args:
        output_hw: ``(H_out, W_out)``, or an int for a square output.
        kernel_size: an int or a ``(kh, kw)`` pair.
        c_in: input channels.
        c_out: output channels.

    Returns:
        ``kh * kw * c_in * H_out * W_out * c_out`` for one image.
    """
    return conv2d_flops(output_hw, kernel_size, c_in, c_out) // 2


def separable_conv2d_multiplications(output_hw, kernel_size, c_in: int, c_out: int,
                                     depth_multiplier: int = 1) -> tuple[int, int]:
    """Multiplications of a depthwise-separable convolution, as ``(depthwise, pointwise)``.

    The depthwise step filters each input channel on its own with ``depth_multiplier`` kernels of
    ``kh x kw``; the pointwise step is a 1x1 convolution from the ``c_in * depth_multiplier``
    channels it leaves to ``c_out``. The YOVO thesis' example, a 2x2 kernel from 3 to 6 channels on
    a 4x4 output, costs ``(192, 288)``, 480 in all, against 1,152 for the plain convolution.

    Args:
        output_hw: ``(H_out, W_out)``, or an int for a square output.
        kernel_size: an int or a ``(kh, kw)`` pair.
        c_in: input channels.
        c_out: output channels.
        depth_multiplier: depthwise kernels per input channel.

    Returns:
        ``(kh * kw * c_in * m * H_out * W_out, c_in * m * H_out * W_out * c_out)``.
    """
    h_out, w_out = _positive_pair(output_hw, "output_hw")
    kh, kw = _positive_pair(kernel_size, "kernel_size")
    m = _positive_pair(depth_multiplier, "depth_multiplier")[0]
    return kh * kw * c_in * m * h_out * w_out, c_in * m * h_out * w_out * c_out


def separable_conv2d_params(kernel_size, c_in: int, c_out: int, depth_multiplier: int = 1,
                            bias: bool = True) -> int:
    """Trainable parameters of ``keras.layers.SeparableConv2D``: ``kh * kw * c_in * m`` depthwise
    weights, ``c_in * m * c_out`` pointwise weights and ``c_out`` biases (the depthwise step has
    none).

    Args:
        kernel_size: an int or a ``(kh, kw)`` pair.
        c_in: input channels.
        c_out: output channels.
        depth_multiplier: depthwise kernels per input channel (``m``).
        bias: whether the layer has biases.

    Returns:
        The number of parameters.
    """
    kh, kw = _positive_pair(kernel_size, "kernel_size")
    m = _positive_pair(depth_multiplier, "depth_multiplier")[0]
    return kh * kw * c_in * m + c_in * m * c_out + (c_out if bias else 0)


def bottleneck_params(channels: int, reduced: int, kernel_size=3, bias: bool = True) -> int:
    """Trainable parameters of a residual bottleneck block (He et al.): a 1x1 convolution from
    ``channels`` down to ``reduced``, a ``kernel_size`` convolution from ``reduced`` to ``reduced``,
    a 1x1 convolution back up to ``channels``, and the input added to the output (the skip
    connection has no weights). Batch normalisation, if any, is not counted.

    Args:
        channels: the block's input and output channels.
        reduced: the channels of the middle convolution.
        kernel_size: the middle convolution's kernel, an int or a ``(kh, kw)`` pair.
        bias: whether the convolutions have biases.

    Returns:
        The number of parameters.
    """
    return (conv2d_params(1, channels, reduced, bias) + conv2d_params(kernel_size, reduced, reduced, bias)
            + conv2d_params(1, reduced, channels, bias))


def causal_receptive_fields(kernel_size: int, dilations: Sequence[int]) -> list[int]:
    """Receptive field, in time steps, after each layer of a stack of causal 1D convolutions
    (stride 1, as in WaveNet): ``r_l = r_{l-1} + (kernel_size - 1) * d_l`` with ``r_0 = 1``.

    With ``kernel_size`` 2 and dilations 1, 2, 4, ... the field doubles with every layer: 2, 4,
    8, ... steps, while each layer adds only ``kernel_size`` weights per channel pair.

    Args:
        kernel_size: the kernel's length.
        dilations: each layer's dilation, first layer first.

    Returns:
        The receptive field after each layer.

    Raises:
        ValueError: a kernel size or dilation below 1.
    """
    k = _positive_pair(kernel_size, "kernel_size")[0]
    return [size for size, _ in receptive_field([(k, 1, _positive_pair(d, "dilation")[0]) for d in dilations])]
