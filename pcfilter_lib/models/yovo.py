"""YOVO ("You Only Voxelize Once"): one colour image in, a 32^3 occupancy grid out.

A small Keras version of the architecture of the YOVO thesis (a Pix2Vox-like network), reading
top to bottom like its figure:

1. **Encoder**: a MobileNetV2-style backbone of inverted-residual blocks (1x1 expansion, 3x3
   depthwise convolution, linear 1x1 projection, a shortcut when the shape allows), then three
   *levels* taken from its last three stages (FPN-like: fine, middle and coarse features). Each
   level brings its map to 2x2 with two 3x3 convolutions, each followed by DropBlock (or dropout)
   and the activation, and a 1x1 convolution whose channels become the depth axis of a 2^3 volume
   (as in the thesis and Pix2Vox: on so coarse a grid the first transposed convolution mixes
   every part of the picture into every voxel).
2. **Decoder** (one per level): four ``Conv3DTranspose`` layers with stride 2 take the volume from
   2^3 to 32^3; a 1x1x1 convolution with a sigmoid gives occupancy probabilities. The features of the
   last transposed convolution, with the volume appended, are the level's *context*.
3. **Context aggregator**: a small 3D CNN (shared by the levels) scores every voxel of every
   context; a softmax over the levels turns the scores into weights, per voxel,

       s_t(i, j, k) = exp(p_t(i, j, k)) / sum_u exp(p_u(i, j, k)),

   and the merged volume is sum_t s_t v_t. Each level can thus be trusted where it is good (flat
   faces, thin parts...). Without the aggregator the volumes are averaged.
4. **Refiner**: a 3D U-Net: three strided 3D convolutions (32^3 -> 4^3), three dense layers with
   dropout, three transposed convolutions back up with additive skip connections, a sigmoid; the
   output is the mean of the merged and the refined volume (Pix2Vox's refiner adds its result to its
   input the same way), so the refiner learns a correction.

Differences from the thesis, all for a network that trains on two CPU cores in minutes: 64x64
images instead of 224x224, a backbone of four small stages instead of 14 MobileNetV2 blocks, levels
of 32 rather than 256 channels, decoders of (32, 16, 8, 4) rather than (512, 128, 32, 8) channels,
one learning rate for all parts, levels that end at 2x2 rather than in the thesis' (8, 8, 256) maps,
and a refiner whose output is averaged with its input (Pix2Vox's code does this; in the thesis the
refiner's sigmoid output is the volume). The thesis used ReLU6 in the backbone, DropBlock and ELU
after the first two convolutions of each level, Mish after the third and Mish in the decoders and
the refiner; here the backbone keeps ReLU6 and ``activation`` chooses Mish or ReLU everywhere else,
and ``regulariser`` chooses DropBlock or plain dropout in the levels, for the ablations.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from pcfilter_lib.nn import keras_metrics
from pcfilter_lib.nn.activations import ACTIVATIONS, DropBlock, make_activation
from pcfilter_lib.nn.widths import scaled_channels

GRID = 32  # side of the output occupancy grid, voxels
REGULARISERS = ("dropblock", "dropout", "none")
# MobileNetV2 stages as (expansion t, output channels c, blocks n, stride s of the first block).
BACKBONE = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 2, 2))


@keras.saving.register_keras_serializable(package="pcfilter")
class WeightedSum(layers.Layer):
    """Per-voxel weighted sum over the last axis: ([weights, volumes], both (B, D, H, W, T)) ->
    (B, D, H, W, 1)."""

    def call(self, inputs):
        weights, volumes = inputs
        return ops.sum(weights * volumes, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shapes):
        return (*input_shapes[1][:-1], 1)


def inverted_residual(x, filters: int, stride: int, expansion: int, momentum: float, name: str):
    """MobileNetV2 block: 1x1 expansion (ReLU6), 3x3 depthwise convolution (ReLU6), linear 1x1
    projection; the input is added back when stride and channels leave the shape unchanged."""
    h = x
    if expansion != 1:
        h = layers.Conv2D(x.shape[-1] * expansion, 1, use_bias=False, name=f"{name}_expand")(h)
        h = layers.BatchNormalization(momentum=momentum, name=f"{name}_expand_bn")(h)
        h = layers.ReLU(6.0, name=f"{name}_expand_relu6")(h)
    h = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_depthwise")(h)
    h = layers.BatchNormalization(momentum=momentum, name=f"{name}_depthwise_bn")(h)
    h = layers.ReLU(6.0, name=f"{name}_depthwise_relu6")(h)
    h = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project")(h)
    h = layers.BatchNormalization(momentum=momentum, name=f"{name}_project_bn")(h)
    if stride == 1 and x.shape[-1] == filters:
        h = layers.Add(name=f"{name}_add")([x, h])
    return h


def backbone(image, width: float, momentum: float) -> list:
    """The inverted-residual encoder: (B, S, S, 3) images -> the outputs of its last three stages
    (S/4, S/8 and S/16 pixels wide). ``width`` scales every stage's channels."""
    x = layers.Conv2D(scaled_channels(16, width), 3, strides=2, padding="same", use_bias=False, name="stem")(image)
    x = layers.BatchNormalization(momentum=momentum, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu6")(x)
    outputs = []
    for s, (t, c, n, stride) in enumerate(BACKBONE):
        for b in range(n):
            x = inverted_residual(x, scaled_channels(c, width), stride if b == 0 else 1, t, momentum,
                                  f"stage{s + 1}_block{b + 1}")
        outputs.append(x)
    return outputs[-3:]


def regularise(x, regulariser: str, rate: float, block_size: int, name: str):
    """DropBlock, element-wise dropout, or nothing, at the same rate."""
    if regulariser == "dropblock":
        return DropBlock(rate, min(block_size, x.shape[1]), name=f"{name}_dropblock")(x)
    if regulariser == "dropout":
        return layers.Dropout(rate, name=f"{name}_dropout")(x)
    return x


def level(x, start: int, channels: int, depth_channels: int, activation: str, regulariser: str, rate: float,
          block_size: int, momentum: float, name: str):
    """One abstraction level: a backbone map -> a (start, start, start, depth_channels) volume. Two
    3x3 convolutions (stride 2 while the map is wider than ``start``, then an average pool if still
    wider), each with batch norm, the regulariser and the activation; then a 1x1 convolution to
    start * depth_channels channels with the activation, reshaped so that channels become depth."""
    for i in range(2):
        stride = 2 if x.shape[1] > start else 1
        x = layers.Conv2D(channels, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv{i + 1}")(x)
        x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn{i + 1}")(x)
        x = regularise(x, regulariser, rate, block_size, f"{name}_{i + 1}")
        x = make_activation(activation, f"{name}_act{i + 1}")(x)
    if x.shape[1] > start:
        x = layers.AveragePooling2D(x.shape[1] // start, name=f"{name}_pool")(x)
    x = layers.Conv2D(start * depth_channels, 1, name=f"{name}_to_volume")(x)
    x = make_activation(activation, f"{name}_act3")(x)
    return layers.Reshape((start, start, start, depth_channels), name=f"{name}_volume")(x)


def decoder(x, channels: tuple[int, ...], activation: str, momentum: float, name: str, bias: float = 0.0):
    """Transposed 3D convolutions (kernel 4, stride 2) up to 32^3, each followed by the
    activation (and batch norm, except at 32^3 where it would cost more than the convolution on a
    CPU), then a 1x1x1 convolution with a sigmoid. Returns the occupancy probabilities
    (B, 32, 32, 32, 1) and the context (the last features with the volume appended)."""
    for i, c in enumerate(channels):
        last = i == len(channels) - 1
        x = layers.Conv3DTranspose(c, 4, strides=2, padding="same", use_bias=last, name=f"{name}_up{i + 1}")(x)
        if not last:
            x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn{i + 1}")(x)
        x = make_activation(activation, f"{name}_act{i + 1}")(x)
    volume = layers.Conv3D(1, 1, activation="sigmoid", bias_initializer=keras.initializers.Constant(bias),
                           name=f"{name}_volume")(x)
    context = layers.Concatenate(name=f"{name}_context")([x, volume])
    return volume, context


def context_aggregator(volumes: list, contexts: list, channels: int, activation: str):
    """Merge the decoded volumes by per-voxel softmax weights over the levels' scores. One scoring
    network, shared by the levels, reads each voxel's context (two 1x1x1 convolutions: the context
    features already mix a neighbourhood through the decoder's 4x4x4 kernels). The weights are the
    output of the layer named ``context_weights``, (B, 32, 32, 32, T): the levels are the last axis."""
    hidden = layers.Conv3D(channels, 1, name="aggregator_hidden")
    act = make_activation(activation, "aggregator_act")
    score = layers.Conv3D(1, 1, name="aggregator_score")
    scores = [score(act(hidden(context))) for context in contexts]
    weights = layers.Softmax(axis=-1, name="context_weights")(layers.Concatenate(name="scores")(scores))
    return WeightedSum(name="merged_volume")([weights, layers.Concatenate(name="volumes")(volumes)])


def refiner(volume, channels: tuple[int, int, int], hidden: int, dropout: float, activation: str,
            momentum: float, bias: float = 0.0):
    """The 3D U-Net refiner: (B, 32, 32, 32, 1) -> the mean of its input and its own sigmoid output."""
    skips, x = [], volume
    for i, c in enumerate(channels):
        x = layers.Conv3D(c, 4, strides=2, padding="same", use_bias=False, name=f"refiner_down{i + 1}")(x)
        x = layers.BatchNormalization(momentum=momentum, name=f"refiner_down_bn{i + 1}")(x)
        x = make_activation(activation, f"refiner_down_act{i + 1}")(x)
        skips.append(x)
    bottom = tuple(x.shape[1:])
    h = layers.Flatten(name="refiner_flatten")(x)
    for i, units in enumerate((hidden, hidden, h.shape[-1])):
        h = layers.Dense(units, name=f"refiner_dense{i + 1}")(h)
        h = make_activation(activation, f"refiner_dense_act{i + 1}")(h)
        if i < 2:
            h = layers.Dropout(dropout, name=f"refiner_dense_dropout{i + 1}")(h)
    x = layers.Add(name="refiner_skip_bottom")([skips[-1], layers.Reshape(bottom, name="refiner_unflatten")(h)])
    for i, c in enumerate(reversed(channels[:-1])):
        x = layers.Conv3DTranspose(c, 4, strides=2, padding="same", use_bias=False, name=f"refiner_up{i + 1}")(x)
        x = layers.BatchNormalization(momentum=momentum, name=f"refiner_up_bn{i + 1}")(x)
        x = make_activation(activation, f"refiner_up_act{i + 1}")(x)
        x = layers.Add(name=f"refiner_skip{i + 1}")([skips[-2 - i], x])
    x = layers.Conv3DTranspose(1, 4, strides=2, padding="same", activation="sigmoid",
                               bias_initializer=keras.initializers.Constant(bias), name="refiner_out")(x)
    return layers.Average(name="voxels")([volume, x])


def build_yovo(image_size: int = 64, width: float = 1.0, level_channels: int = 32, depth_channels: int = 64,
               decoder_channels: tuple[int, ...] = (32, 16, 8, 4), use_aggregator: bool = True,
               use_refiner: bool = True, activation: str = "mish", regulariser: str = "dropblock",
               drop_rate: float = 0.05, block_size: int = 2, aggregator_channels: int = 4,
               refiner_channels: tuple[int, int, int] = (8, 16, 32),
               refiner_hidden: int = 128, refiner_dropout: float = 0.1, momentum: float = 0.9,
               prior: float = 0.5, name: str = "yovo") -> keras.Model:
    """The YOVO network: colour images (B, S, S, 3), values 0-255 -> occupancy probabilities
    (B, 32, 32, 32, 1), indexed [x, y, z] in the shape's own frame (z up).

    Args:
        image_size: S, a power of two from 64 up.
        width: multiplier of the backbone's channels.
        level_channels: channels of the levels' 3x3 convolutions.
        depth_channels: channels of each level's starting volume.
        decoder_channels: channels of the transposed convolutions, one per doubling; four start
            the decoders at 2^3, three at 4^3, two at 8^3.
        use_aggregator: merge the levels with the context aggregator (False: average them).
        use_refiner: apply the 3D U-Net refiner.
        activation: "mish" or "relu", everywhere but the backbone (ReLU6) and the sigmoids.
        regulariser: "dropblock", "dropout" or "none", in the levels, at ``drop_rate``.
        drop_rate: share dropped by the regulariser (the thesis: 0.05).
        block_size: DropBlock's block side, capped at the map size (the thesis: 1 to 2).
        aggregator_channels: channels of the aggregator's scoring network.
        refiner_channels: channels of the refiner's three downsampling convolutions.
        refiner_hidden: units of the refiner's first two dense layers.
        refiner_dropout: dropout after them (the thesis: 0.1).
        momentum: batch-norm momentum; 0.9 lets the running statistics follow a short training.
        prior: the occupancy every sigmoid output starts at (its bias is the logit of ``prior``).
            The share of occupied voxels in the training grids spares the first epochs the work of
            learning that most voxels are empty.
        name: the model's name.

    Raises:
        ValueError: for an image size that is not a power of two of at least 64, an unknown
            activation or regulariser, or decoders that would start on a grid wider than the
            coarsest image map (image_size / 16).
    """
    if image_size < 64 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two of at least 64, got {image_size}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {ACTIVATIONS}")
    if regulariser not in REGULARISERS:
        raise ValueError(f"unknown regulariser {regulariser!r}; choose one of {REGULARISERS}")
    if not 0.0 < prior < 1.0:
        raise ValueError(f"prior must be an occupancy strictly between 0 and 1, got {prior}")
    if not 2 <= len(decoder_channels) <= 4:
        raise ValueError(f"decoder_channels needs 2 to 4 entries (one per doubling up to 32^3), got "
                         f"{decoder_channels}")
    start = GRID // 2 ** len(decoder_channels)
    if start > image_size // 16:
        raise ValueError(f"{len(decoder_channels)} decoder layers start at {start}^3, more than the {image_size // 16} "
                         f"pixels of the coarsest map of a {image_size}-pixel image; give more decoder channels")
    image = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(image)

    features = backbone(x, width, momentum)
    starts = [level(f, start, level_channels, depth_channels, activation, regulariser, drop_rate, block_size, momentum,
                    f"level{i + 1}") for i, f in enumerate(features)]
    bias = float(np.log(prior / (1.0 - prior)))
    decoded = [decoder(s, decoder_channels, activation, momentum, f"decoder{i + 1}", bias)
               for i, s in enumerate(starts)]
    volumes, contexts = [v for v, _ in decoded], [c for _, c in decoded]
    if use_aggregator:
        merged = context_aggregator(volumes, contexts, aggregator_channels, activation)
    else:
        merged = layers.Average(name="merged_volume")(volumes)
    if use_refiner:
        out = refiner(merged, refiner_channels, refiner_hidden, refiner_dropout, activation, momentum, bias)
    else:
        out = layers.Identity(name="voxels")(merged)
    return keras.Model(image, out, name=name)


PARTS = {"stem": "encoder", "stage": "encoder", "level": "levels", "decoder": "decoders",
         "aggregator": "context aggregator", "refiner": "refiner"}


def parameters_by_part(model: keras.Model) -> dict[str, int]:
    """The weights of a YOVO network by part (encoder, levels, decoders, context aggregator,
    refiner), in the order of the thesis' figure; parts the network lacks are left out."""
    counts = dict.fromkeys(PARTS.values(), 0)  # one entry a part, in the figure's order
    for layer in model.layers:
        part = next((p for prefix, p in PARTS.items() if layer.name.startswith(prefix)), None)
        if part is not None:
            counts[part] += sum(int(np.prod(w.shape)) for w in layer.weights)
    return {part: n for part, n in counts.items() if n}


def voxel_metrics(thresholds=(0.3, 0.5)) -> list:
    """Streaming IoU of the occupied voxels at each threshold, named ``iou_0.3``..., for ``compile``."""
    return [keras_metrics.ConfusionMetric("iou_keep", t, name=f"iou_{t:g}") for t in thresholds]


def compile_yovo(model: keras.Model, optimizer: keras.optimizers.Optimizer, thresholds=(0.3, 0.5),
                 **kwargs) -> keras.Model:
    """Compile with the voxel-wise binary cross-entropy of the thesis (the mean over all voxels of
    -[y ln p + (1 - y) ln(1 - p)]) and ``voxel_metrics`` at ``thresholds`` (none for an empty
    tuple: they cost time in every step); ``kwargs`` go to ``compile`` (e.g. ``run_eagerly``).
    Returns the model."""
    model.compile(optimizer=optimizer, loss=keras.losses.BinaryCrossentropy(),
                  metrics=voxel_metrics(thresholds) if thresholds else None, **kwargs)
    return model


def context_weights(model: keras.Model, images) -> np.ndarray:
    """The aggregator's per-voxel weights (B, 32, 32, 32, T) for ``images``, from a model built
    with ``use_aggregator=True``.

    Raises:
        ValueError: if the model has no context aggregator.
    """
    names = {layer.name for layer in model.layers}
    if "context_weights" not in names:
        raise ValueError(f"model {model.name!r} has no context aggregator (built with use_aggregator=False)")
    probe = keras.Model(model.input, model.get_layer("context_weights").output)
    return probe.predict(images, verbose=0)
