"""3D CNNs that label every voxel of a scanned scene with a semantic class.

Two ways the lecture presents, on the grids of ``data.scene_voxels`` (channels: TSDF, free, occupied):

* ``build_column_cnn``, the sliding window of ScanNet (Dai et al. 2017): the input is a chunk of
  context around one vertical column of voxels (there 31 x 31 voxels across and 62 high, 1.5 m by
  3 m; here ``context`` x ``context`` x Z, scaled down) and the output is the class scores of every
  voxel of the centre column. Convolutions and pooling shrink the chunk, fully connected layers map
  what is left to Z x K scores. The network is slid over every column of a scene
  (``predict_columns``): one forward pass per column.
* ``build_scene_unet``, fully convolutional: a 3D U-Net trained on random cubic chunks that, since
  convolutions do not care where they are, then runs on a whole scene in one pass
  (``predict_scene``). Its two registered layers pad any grid to a multiple of the pooling factor and
  crop the result back, so a scene of any size goes in.

And the image stream of 3DMV (Dai and Niessner 2018): ``build_image_network``, a small 2D U-Net that
labels every pixel of a scan's images (intensity, depth) and whose last hidden layer, the per-pixel
features, is carried back along the camera rays into the voxels (``recipes.scene_images``). With
``streams`` the scene U-Net reads several groups of channels (geometry, back-projected image
features), each through a 3D convolution of its own before they are joined.

All end in a softmax over the K classes of ``labels.SEMANTIC_NAMES``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from pcfilter_lib.data.scene_voxels import FEATURES, column_windows
from pcfilter_lib.labels import SEMANTIC_NAMES

CLASSES = len(SEMANTIC_NAMES)


@keras.saving.register_keras_serializable(package="pcfilter")
class PadToMultiple(layers.Layer):
    """Pad a grid (B, X, Y, Z, C) with zeros at the far end of each spatial axis up to the next
    multiple of ``multiple``, so that every pooling of a U-Net halves a whole number of voxels."""

    def __init__(self, multiple: int, **kwargs):
        super().__init__(**kwargs)
        if int(multiple) < 1:
            raise ValueError(f"multiple must be at least 1, got {multiple}")
        self.multiple = int(multiple)

    def call(self, x):
        shape = ops.shape(x)
        pads = [(0, 0)] + [(0, (-shape[a]) % self.multiple) for a in (1, 2, 3)] + [(0, 0)]
        return ops.pad(x, pads)

    def compute_output_shape(self, input_shape):
        def up(n):
            return None if n is None else -(-n // self.multiple) * self.multiple

        return (input_shape[0], up(input_shape[1]), up(input_shape[2]), up(input_shape[3]), input_shape[4])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="pcfilter")
class CropLike(layers.Layer):
    """Crop a grid to the spatial size of a reference: ([x (B, X', Y', Z', K), reference (B, X, Y, Z, C)])
    -> (B, X, Y, Z, K), keeping the near corner (undoes ``PadToMultiple``)."""

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(reference)
        return x[:, :shape[1], :shape[2], :shape[3], :]

    def compute_output_shape(self, input_shapes):
        x, reference = input_shapes
        return (x[0], *reference[1:4], x[4])


@keras.saving.register_keras_serializable(package="pcfilter")
class ChannelSlice(layers.Layer):
    """Channels ``start`` to ``stop`` (exclusive) of the last axis: one stream of a joined input."""

    def __init__(self, start: int, stop: int, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= int(start) < int(stop):
            raise ValueError(f"a channel slice needs 0 <= start < stop, got {start} and {stop}")
        self.start, self.stop = int(start), int(stop)

    def call(self, x):
        return x[..., self.start:self.stop]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.stop - self.start)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


def conv_block(x, filters: int, name: str):
    """Two 3x3x3 same-padded convolutions with ReLU: one level of either network.

    Args:
        x: (B, X, Y, Z, C) features.
        filters: output channels.
        name: prefix of the layers' names.

    Returns:
        (B, X, Y, Z, filters).
    """
    for i in (1, 2):
        x = layers.Conv3D(filters, 3, padding="same", activation="relu", name=f"{name}_conv{i}")(x)
    return x


def build_column_cnn(height: int, context: int = 15, classes: int = CLASSES, channels: int = FEATURES,
                     filters: tuple[int, ...] = (16, 32), hidden: int = 128, dropout: float = 0.2,
                     name: str = "column_cnn") -> keras.Model:
    """The sliding-window network: a column's context chunk -> class probabilities of its centre column.

    Args:
        height: Z, voxels of the column (the grid's height).
        context: odd side of the chunk across the column, voxels (ScanNet: 31).
        classes: K.
        channels: values per voxel.
        filters: channels of each level; every level but the last halves the chunk (2x2x2 max pool).
        hidden: units of the fully connected layer.
        dropout: rate before the output layer.
        name: the model's name.

    Returns:
        A ``keras.Model`` (B, context, context, height, channels) -> (B, height, classes).

    Raises:
        ValueError: ``context`` is not odd or too small for the pooling, or ``height`` < 4.
    """
    if context < 3 or context % 2 == 0 or context < 2 ** (len(filters) - 1):
        raise ValueError(f"context must be odd, at least 3 and at least 2^(levels - 1), got {context}")
    if height < 4 or classes < 2 or not filters:
        raise ValueError(f"need height >= 4, classes >= 2 and one level at least, got {height}, {classes}, {filters}")
    inputs = keras.Input((context, context, height, channels), name="column_context")
    x = inputs
    for level, f in enumerate(filters):
        x = conv_block(x, f, f"level{level + 1}")
        if level < len(filters) - 1:
            x = layers.MaxPooling3D(2, name=f"level{level + 1}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(hidden, activation="relu", name="hidden")(x)
    x = layers.Dropout(dropout, name="hidden_dropout")(x)
    x = layers.Dense(height * classes, name="column_scores")(x)
    x = layers.Reshape((height, classes), name="per_voxel")(x)
    outputs = layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def build_scene_unet(classes: int = CLASSES, channels: int = FEATURES, filters: tuple[int, ...] = (8, 16, 32),
                     streams: tuple[int, ...] | None = None, name: str = "scene_unet") -> keras.Model:
    """A small fully convolutional 3D U-Net: grids of any size -> class probabilities per voxel.

    Args:
        classes: K.
        channels: values per voxel.
        filters: channels per level, finest first; each level after the first halves the grid.
        streams: channel counts of the input's groups, in order, summing to ``channels``: each group
            passes through a 3x3x3 convolution of its own (``filters[0]`` channels) before the groups
            are concatenated, as 3DMV joins its geometry and image streams. None: one group of all
            channels, so that a network on geometry alone is the same network with one stream.
        name: the model's name.

    Returns:
        A ``keras.Model`` (B, X, Y, Z, channels) -> (B, X, Y, Z, classes), any X, Y, Z.

    Raises:
        ValueError: fewer than two levels or fewer than two classes, or streams that do not add up.
    """
    if len(filters) < 2 or classes < 2:
        raise ValueError(f"a U-Net needs at least two levels and two classes, got {filters} and {classes}")
    streams = (channels,) if streams is None else tuple(int(n) for n in streams)
    if sum(streams) != channels or min(streams, default=0) < 1:
        raise ValueError(f"the streams' channels {streams} must be positive and add up to {channels}")
    inputs = keras.Input((None, None, None, channels), name="scene")
    x = PadToMultiple(2 ** (len(filters) - 1), name="pad")(inputs)
    ends = np.cumsum((0, *streams))
    stems = [layers.Conv3D(filters[0], 3, padding="same", activation="relu", name=f"stream{i + 1}_conv")(
                 ChannelSlice(int(a), int(b), name=f"stream{i + 1}")(x))
             for i, (a, b) in enumerate(zip(ends[:-1], ends[1:], strict=True))]
    x = stems[0] if len(stems) == 1 else layers.Concatenate(name="streams_joined")(stems)
    skips = []
    for level, f in enumerate(filters[:-1]):
        x = conv_block(x, f, f"down{level + 1}")
        skips.append(x)
        x = layers.MaxPooling3D(2, name=f"down{level + 1}_pool")(x)
    x = conv_block(x, filters[-1], "bottom")
    for level in reversed(range(len(filters) - 1)):
        x = layers.Conv3DTranspose(filters[level], 2, strides=2, name=f"up{level + 1}_transpose")(x)
        x = layers.Concatenate(name=f"up{level + 1}_skip")([x, skips[level]])
        x = conv_block(x, filters[level], f"up{level + 1}")
    x = layers.Conv3D(classes, 1, activation="softmax", name="probabilities")(x)
    outputs = CropLike(name="crop")([x, inputs])
    return keras.Model(inputs, outputs, name=name)


def build_image_network(classes: int = CLASSES, channels: int = 3, filters: tuple[int, int] = (16, 32),
                        features: int = 8, name: str = "image_network") -> keras.Model:
    """The 2D stream of 3DMV, small: a two-level U-Net that labels every pixel of an image.

    Args:
        classes: K.
        channels: values per pixel (intensity, depth, measured flag).
        filters: channels of the full-resolution and the half-resolution level.
        features: channels of the last hidden layer (``image_features``), the per-pixel features
            that are back-projected into the voxels.
        name: the model's name.

    Returns:
        A ``keras.Model`` (B, H, W, channels) -> (B, H, W, classes), any H, W.
    """
    if classes < 2 or features < 1 or min(filters) < 1:
        raise ValueError(f"need classes >= 2 and positive widths, got {classes}, {filters}, {features}")
    inputs = keras.Input((None, None, channels), name="image")
    x = inputs
    for i in (1, 2):
        x = layers.Conv2D(filters[0], 3, padding="same", activation="relu", name=f"full_conv{i}")(x)
    skip = x
    x = layers.MaxPooling2D(2, padding="same", name="half_pool")(x)  # odd sides: rounded up, cropped below
    for i in (1, 2):
        x = layers.Conv2D(filters[1], 3, padding="same", activation="relu", name=f"half_conv{i}")(x)
    x = layers.UpSampling2D(2, name="up")(x)
    x = CropLike2D(name="crop_up")([x, skip])
    x = layers.Concatenate(name="skip")([x, skip])
    x = layers.Conv2D(filters[0], 3, padding="same", activation="relu", name="up_conv")(x)
    x = layers.Conv2D(features, 1, activation="relu", name="image_features")(x)
    outputs = layers.Conv2D(classes, 1, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="pcfilter")
class CropLike2D(layers.Layer):
    """Crop an image batch to the height and width of a reference, keeping the top-left corner."""

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(reference)
        return x[:, :shape[1], :shape[2], :]

    def compute_output_shape(self, input_shapes):
        x, reference = input_shapes
        return (x[0], *reference[1:3], x[3])


def image_features(model: keras.Model) -> keras.Model:
    """The part of a ``build_image_network`` model up to its per-pixel features (shared layers)."""
    return keras.Model(model.input, model.get_layer("image_features").output, name=f"{model.name}_features")


def predict_columns(model: keras.Model, features: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Slide the column network over every column of one scene.

    Args:
        model: a ``build_column_cnn`` network.
        features: (X, Y, Z, C) the scene's input (``data.scene_voxels.scene_features``).
        batch_size: columns per forward pass (rounded to whole rows of the grid).

    Returns:
        (X, Y, Z, K) float32 class probabilities.

    Raises:
        ValueError: the scene's height or channels differ from the network's input.
    """
    _, context, _, height, channels = model.input_shape
    if np.ndim(features) != 4 or features.shape[2:] != (height, channels):
        raise ValueError(f"the network reads columns of {height} voxels with {channels} channels; got a scene of "
                         f"shape {np.shape(features)}")
    windows = column_windows(np.asarray(features, np.float32), context)  # (X, Y, cx, cy, Z, C), a view
    nx, ny = features.shape[:2]
    out = np.empty((nx, ny, height, model.output_shape[-1]), np.float32)
    rows = max(1, batch_size // ny)  # whole rows of columns per pass: only they are copied out of the view
    for start in range(0, nx, rows):
        batch = windows[start:start + rows].reshape(-1, *windows.shape[2:])
        scores = np.asarray(model.predict_on_batch(batch))  # compiled once: faster than an eager call per batch
        out[start:start + rows] = scores.reshape(-1, ny, height, out.shape[-1])
    return out


def predict_scene(model: keras.Model, features: np.ndarray) -> np.ndarray:
    """Run the fully convolutional network on one whole scene in one pass.

    Args:
        model: a ``build_scene_unet`` network.
        features: (X, Y, Z, C) the scene's input.

    Returns:
        (X, Y, Z, K) float32 class probabilities.
    """
    if np.ndim(features) != 4 or features.shape[-1] != model.input_shape[-1]:
        raise ValueError(f"the network reads grids with {model.input_shape[-1]} channels, (X, Y, Z, C); got shape "
                         f"{np.shape(features)}")
    return ops.convert_to_numpy(model(np.asarray(features, np.float32)[None], training=False))[0]
