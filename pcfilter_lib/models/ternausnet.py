"""TernausNet (Iglovikov and Shvets 2018): a U-Net whose encoder is the convolutional part of VGG11.

VGG11 is configuration A of Simonyan and Zisserman's VGG networks: eight 3x3 convolutions with ReLU
in five stages of 1, 1, 2, 2 and 2 convolutions (64, 128, 256, 512 and 512 filters), each stage
closed by a 2x2 max pooling; its three dense layers are left out. TernausNet's decoder goes up one
level at a time: a 3x3 convolution, then a 3x3 transposed convolution with stride 2 that doubles the
size, each followed by ReLU, and the encoder's map of the new size concatenated to the result. A
last 3x3 convolution and a 1x1 convolution give the output. ``num_filters`` (32, as in the paper)
sets the decoder's widths.

The paper's point is that the encoder starts from weights trained on ImageNet. This module builds
the architecture only, with random weights: Keras ships no VGG11, and the project downloads no
weights. The input is ``(None, None, channels)``: any height and width that are multiples of 32.
Standard Keras layers only, so a saved model loads with ``keras.models.load_model`` alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

# Filters of each VGG11 stage's convolutions (configuration A, without its dense layers).
VGG11_STAGES: tuple[tuple[int, ...], ...] = ((64,), (128,), (256, 256), (512, 512), (512, 512))
# (middle, out) widths, in units of num_filters, of the centre block and the decoder blocks from
# the deepest up: a 3x3 convolution to ``middle``, then a transposed convolution to ``out``.
DECODER_WIDTHS: tuple[tuple[int, int], ...] = ((16, 8), (16, 8), (16, 4), (8, 2), (4, 1))


def vgg_encoder(x, stages: Sequence[Sequence[int]] = VGG11_STAGES, name: str = "enc"):
    """VGG's convolutional stages: 3x3 convolutions with ReLU, each stage ending before its pooling.

    Args:
        x: the input image, (B, H, W, C).
        stages: the filters of each stage's convolutions (``VGG11_STAGES`` by default).
        name: prefix of the layers' names; stage s is ``{name}{s}``, counted from 1.

    Returns:
        ``(pooled, skips)``: the last stage's pooled map, (B, H / 2**S, W / 2**S, filters) for S
        stages, and the list of each stage's output before its pooling, shallowest first.
    """
    skips = []
    for s, filters in enumerate(stages, start=1):
        for i, f in enumerate(filters, start=1):
            x = layers.Conv2D(f, 3, padding="same", activation="relu", name=f"{name}{s}_conv{i}")(x)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"{name}{s}_pool")(x)
    return x, skips


def decoder_block(x, middle: int, out: int, name: str):
    """One TernausNet decoder step: a 3x3 convolution, then a 3x3 transposed convolution (stride 2).

    Args:
        x: the feature map, (B, H, W, C).
        middle: filters of the convolution.
        out: filters of the transposed convolution.
        name: prefix of the layers' names, such as "dec4".

    Returns:
        (B, 2H, 2W, out) features, after ReLU.
    """
    x = layers.Conv2D(middle, 3, padding="same", activation="relu", name=f"{name}_conv")(x)
    return layers.Conv2DTranspose(out, 3, strides=2, padding="same", activation="relu", name=f"{name}_up")(x)


def build_ternausnet(input_channels: int = 3, num_classes: int = 1, num_filters: int = 32,
                     name: str = "ternausnet") -> keras.Model:
    """Build TernausNet (TernausNet-11): the VGG11 encoder, a centre block and five decoder levels.

    Args:
        input_channels: channels of the input image (3 for the RGB images VGG11 was trained on).
        num_classes: 1 gives one sigmoid output (B, H, W, 1); K > 1 gives K softmax outputs.
        num_filters: the decoder's base width (32 in the paper).
        name: the model's name.

    Returns:
        A functional ``keras.Model`` from (B, H, W, input_channels) to (B, H, W, num_classes), with
        random weights; H and W must be multiples of 32.

    Raises:
        ValueError: a count is smaller than 1.
    """
    if min(input_channels, num_classes, num_filters) < 1:
        raise ValueError(f"input_channels, num_classes and num_filters must be >= 1, got "
                         f"{input_channels}, {num_classes}, {num_filters}")
    inputs = keras.Input((None, None, input_channels), name="image")
    x, skips = vgg_encoder(inputs)
    middle, out = DECODER_WIDTHS[0]
    x = decoder_block(x, middle * num_filters, out * num_filters, name="centre")
    for level, (middle, out) in zip(range(len(skips), 1, -1), DECODER_WIDTHS[1:], strict=True):
        x = layers.Concatenate(name=f"dec{level}_skip")([x, skips[level - 1]])
        x = decoder_block(x, middle * num_filters, out * num_filters, name=f"dec{level}")
    x = layers.Concatenate(name="dec1_skip")([x, skips[0]])
    x = layers.Conv2D(num_filters, 3, padding="same", activation="relu", name="dec1_conv")(x)
    activation = "sigmoid" if num_classes == 1 else "softmax"
    outputs = layers.Conv2D(num_classes, 1, activation=activation, dtype="float32", name="output")(x)
    return keras.Model(inputs, outputs, name=name)
