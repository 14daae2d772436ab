"""U-Net for per-pixel segmentation of images and organised scans (Ronneberger et al. 2015).

The network reads top to bottom like the paper's figure: an encoder of ``depth`` levels (two
convolutions, then 2x2 max pooling), a bottleneck, and a decoder that upsamples, concatenates the
encoder's feature map of the same level (the skip connection) and convolves twice. The defaults are
those of the original 2020 artefact filter: 8, 16, 32 and 48 filters on four levels and 64 at the
bottleneck, LeakyReLU, 2x2 transposed convolutions, one sigmoid output (probability of "keep").

The input is ``(None, None, channels)``: any height and width that are multiples of ``2 ** depth``.
``pad_to_multiple`` / ``crop_to`` let the network run on images of any size.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

DEFAULT_FILTERS = (8, 16, 32, 48, 64)
UPSAMPLING = ("transpose", "resize")


def _activation(name: str, label: str):
    if name == "leaky_relu":
        return layers.LeakyReLU(name=label)
    return layers.Activation(name, name=label)


def conv_block(x, filters: int, kernel_size: int, activation: str, batch_norm: bool, dropout: float, name: str):
    """Two same-padded convolutions, each followed by (batch norm and) the activation: one U-Net level.

    Args:
        x: the input feature map, (B, H, W, C).
        filters: output channels of both convolutions.
        kernel_size: side of the square kernels, in pixels.
        activation: "leaky_relu" or the name of any Keras activation.
        batch_norm: whether a batch normalisation follows each convolution (which then has no bias).
        dropout: rate of a dropout layer after the block; 0 for none.
        name: prefix of the layers' names, such as "down1".

    Returns:
        The block's output, (B, H, W, filters).
    """
    for i in (1, 2):
        x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=not batch_norm, name=f"{name}_conv{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = _activation(activation, f"{name}_act{i}")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def upsample(x, filters: int, mode: str, name: str):
    """Double the resolution of a feature map for the decoder.

    "transpose" learns a 2x2 transposed convolution with stride 2; "resize" upsamples bilinearly and
    then convolves with a 3x3 kernel, which avoids the checkerboard patterns that transposed
    convolutions can produce.

    Args:
        x: the feature map, (B, H, W, C).
        filters: output channels.
        mode: "transpose" or "resize" (``UPSAMPLING``).
        name: prefix of the layers' names, such as "up3".

    Returns:
        The upsampled map, (B, 2H, 2W, filters).
    """
    if mode == "transpose":
        return layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"{name}_up")(x)
    x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_resize")(x)
    return layers.Conv2D(filters, 3, padding="same", name=f"{name}_up")(x)


def build_unet(input_channels: int = 5, num_classes: int = 1, depth: int = 4,
               filters: Sequence[int] = DEFAULT_FILTERS, kernel_size: int = 3, activation: str = "leaky_relu",
               batch_norm: bool = False, dropout: float = 0.0, upsampling: str = "transpose",
               name: str = "unet") -> keras.Model:
    """Build a U-Net for images of any size whose sides are multiples of ``2 ** depth``.

    Args:
        input_channels: channels of the input image (5 for a scan: intensity, depth and the three
            normal components; 6 with the validity channel).
        num_classes: 1 gives one sigmoid output (B, H, W, 1), the probability of "keep"; K > 1
            gives K softmax outputs (B, H, W, K).
        depth: number of pooling levels; H and W must be multiples of ``2 ** depth``.
        filters: ``depth + 1`` filter counts, one per level and the last for the bottleneck.
        kernel_size: side of every block's square kernels, in pixels.
        activation: "leaky_relu" or the name of any Keras activation.
        batch_norm: batch normalisation after every convolution of the blocks.
        dropout: dropout rate after each block; 0 for none.
        upsampling: "transpose" (learned 2x2 transposed convolutions) or "resize" (bilinear, then a
            3x3 convolution).
        name: the model's name.

    Returns:
        A functional ``keras.Model`` from (B, H, W, input_channels) to (B, H, W, num_classes),
        with a float32 output layer so that it also works under mixed precision.

    Raises:
        ValueError: ``filters`` does not hold ``depth + 1`` positive counts, or another argument is
            out of range.
    """
    filters = tuple(int(f) for f in filters)
    if depth < 1 or len(filters) != depth + 1 or min(filters) < 1:
        raise ValueError(f"filters needs depth + 1 = {depth + 1} positive counts, got {filters} (depth {depth})")
    if input_channels < 1 or num_classes < 1:
        raise ValueError(f"input_channels and num_classes must be >= 1, got {input_channels}, {num_classes}")
    if upsampling not in UPSAMPLING:
        raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {upsampling!r}")
    if kernel_size < 1 or not 0.0 <= dropout < 1.0:
        raise ValueError(f"kernel_size must be >= 1 and 0 <= dropout < 1, got {kernel_size}, {dropout}")
    block = dict(kernel_size=kernel_size, activation=activation, batch_norm=batch_norm, dropout=dropout)

    inputs = keras.Input((None, None, input_channels), name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = conv_block(x, filters[level], name=f"down{level + 1}", **block)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level + 1}_pool")(x)
    x = conv_block(x, filters[depth], name="bottleneck", **block)
    for level in reversed(range(depth)):
        x = upsample(x, filters[level], upsampling, name=f"up{level + 1}")
        x = layers.Concatenate(name=f"up{level + 1}_skip")([x, skips[level]])
        x = conv_block(x, filters[level], name=f"up{level + 1}", **block)
    if num_classes == 1:
        outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="keep_probability")(x)
    else:
        outputs = layers.Conv2D(num_classes, 1, activation="softmax", dtype="float32", name="class_probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def multiple_of(model: keras.Model) -> int:
    """The side multiple a U-Net built by ``build_unet`` needs, for ``data.scans.pad_to_multiple``.

    Args:
        model: a U-Net from ``build_unet`` (or any model whose pooling layers halve the sides).

    Returns:
        2 to the power of the number of ``MaxPooling2D`` layers: 16 for the default depth of 4.
    """
    return 2 ** sum(isinstance(layer, layers.MaxPooling2D) for layer in model.layers)


