"""Convolutions in any number of dimensions: a 4D convolution built from 3D ones, and their cost.

A 4D convolution slides a ``kt x kd x kh x kw`` kernel over a sequence of volumes, such as a voxel
grid that changes over time. Keras has no 4D convolution layer, but one is a sum of 3D
convolutions: the output at time ``t`` is the sum over ``tau`` of the 3D convolution of the volume at
``t + tau`` with the kernel's slice ``tau``. ``conv4d`` computes it that way with ``keras.ops``.
What a convolution costs in d dimensions is counted by ``lessons.convmath.conv_nd_params`` and
``conv_nd_flops``.
"""

from __future__ import annotations

from keras import ops


def conv4d(x, kernel, bias=None):
    """A 4D convolution (cross-correlation, as in Keras's layers), stride 1 and "valid" padding.

    Args:
        x: (B, T, D, H, W, c_in) inputs, such as B sequences of T volumes.
        kernel: (kt, kd, kh, kw, c_in, c_out) weights.
        bias: optional (c_out,) biases.

    Returns:
        (B, T - kt + 1, D - kd + 1, H - kh + 1, W - kw + 1, c_out) outputs, a tensor.

    Raises:
        ValueError: the ranks or the channels do not fit, or the kernel is larger than the input.
    """
    x = ops.convert_to_tensor(x, "float32")
    kernel = ops.convert_to_tensor(kernel, "float32")
    if len(x.shape) != 6 or len(kernel.shape) != 6 or x.shape[-1] != kernel.shape[4]:
        raise ValueError(f"need x (B, T, D, H, W, c_in) and a kernel (kt, kd, kh, kw, c_in, c_out), got "
                         f"{tuple(x.shape)} and {tuple(kernel.shape)}")
    batch, steps = x.shape[0], x.shape[1]
    if any(n < k for n, k in zip(x.shape[1:5], kernel.shape[:4], strict=True)):
        raise ValueError(f"the kernel {tuple(kernel.shape[:4])} is larger than the input {tuple(x.shape[1:5])}")
    kt = kernel.shape[0]
    t_out = steps - kt + 1
    out = None
    for tau in range(kt):
        frames = ops.reshape(x[:, tau:tau + t_out], (-1, *x.shape[2:]))  # every (sequence, time) as a volume
        y = ops.conv(frames, kernel[tau], strides=1, padding="valid")
        y = ops.reshape(y, (batch, t_out, *y.shape[1:]))
        out = y if out is None else out + y
    return out if bias is None else out + ops.convert_to_tensor(bias, "float32")
