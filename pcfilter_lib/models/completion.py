"""Shape completion with a 3D encoder-decoder, after 3D-EPN (Dai, Qi and Niessner, CVPR 2017), and
classifiers that read its features.

* ``build_completion_net``: a partial scan's grid (distance, known flag; ``data.completion_grids``)
  -> the complete shape's distance field. Strided 4x4x4 convolutions halve the grid level by level
  down to a bottleneck (the layer named ``FEATURES``), transposed convolutions double it back, and
  every level of the decoder also reads the encoder's level of the same size (skip connections, as
  3D-EPN's U-Net-like decoder). A sigmoid keeps the distance in [0, 1] truncation units.
* ``completion_encoder``: the completion network's input -> its bottleneck, for other networks to reuse.
* ``build_shape_classifier``: a 3D CNN classifier of the same grids; its encoder has the completion
  network's layout, trained for the class, and it can read the (frozen) bottleneck of a trained
  completion network instead of, or beside, its own: the lecture's test of whether completion
  features help classification.
* ``SurfaceIoU``: the IoU of the surfaces (voxels nearer than a threshold) of predicted and true
  distance fields, as a Keras metric.
"""

from __future__ import annotations

import keras
from keras import layers, ops

FEATURES = "features"  # the name of the completion network's bottleneck layer
CHANNELS = 2  # input channels: distance, known (data.completion_grids.CHANNELS)


@keras.saving.register_keras_serializable(package="pcfilter")
class SurfaceIoU(keras.metrics.Metric):
    """IoU of the voxels that predicted and true distance fields put on the surface, over all grids seen.

    Args:
        threshold: a voxel is on the surface where its distance is below this (the field's unit;
            1/3 is one voxel for fields in units of 3 voxels).
    """

    def __init__(self, threshold: float = 1 / 3, name: str = "surface_iou", **kwargs):
        super().__init__(name=name, **kwargs)
        if not float(threshold) > 0:
            raise ValueError(f"threshold must be positive, got {threshold}")
        self.threshold = float(threshold)
        self.both = self.add_variable(shape=(), initializer="zeros", name="both")
        self.either = self.add_variable(shape=(), initializer="zeros", name="either")

    def update_state(self, y_true, y_pred, sample_weight=None):
        true = ops.cast(ops.abs(y_true) < self.threshold, "float32")
        pred = ops.cast(ops.abs(y_pred) < self.threshold, "float32")
        self.both.assign_add(ops.sum(true * pred))
        self.either.assign_add(ops.sum(ops.maximum(true, pred)))

    def result(self):
        return ops.where(self.either > 0, self.both / ops.maximum(self.either, 1.0), 1.0)

    def reset_state(self):
        self.both.assign(0.0)
        self.either.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


def _check(resolution: int, filters: tuple[int, ...]) -> None:
    if not filters or int(resolution) % 2 ** len(filters) or int(resolution) < 2 ** len(filters):
        raise ValueError(f"the grid's side must be a multiple of 2^levels ({len(filters)} levels: {filters}); "
                         f"got {resolution}")


def encoder_levels(x, filters: tuple[int, ...], prefix: str) -> tuple[list, object]:
    """The encoder: per level a strided 4x4x4 convolution (halving the grid), batch norm and ReLU, then
    a 3x3x3 convolution at the coarsest size (the bottleneck).

    Returns:
        (the output of every level, finest first; the bottleneck).
    """
    skips = []
    for level, f in enumerate(filters):
        x = layers.Conv3D(f, 4, strides=2, padding="same", name=f"{prefix}down{level + 1}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{prefix}down{level + 1}_norm")(x)
        x = layers.ReLU(name=f"{prefix}down{level + 1}_relu")(x)
        skips.append(x)
    return skips, layers.Conv3D(filters[-1], 3, padding="same", activation="relu", name=f"{prefix}{FEATURES}")(x)


def build_completion_net(resolution: int = 32, filters: tuple[int, ...] = (16, 32, 64), channels: int = CHANNELS,
                         name: str = "completion_net") -> keras.Model:
    """The encoder-decoder: (B, R, R, R, channels) partial grids -> (B, R, R, R) distances in [0, 1].

    Args:
        resolution: R, voxels per side, a multiple of 2^len(filters).
        filters: channels of each encoder level, finest first (the decoder mirrors them).
        channels: input channels.
        name: the model's name.

    Raises:
        ValueError: a resolution the levels cannot halve.
    """
    _check(resolution, filters)
    inputs = keras.Input((resolution, resolution, resolution, channels), name="partial")
    skips, x = encoder_levels(inputs, filters, "")
    for level in reversed(range(len(filters))):
        x = layers.Concatenate(name=f"up{level + 1}_skip")([x, skips[level]])
        width = filters[level - 1] if level else filters[0]
        x = layers.Conv3DTranspose(width, 4, strides=2, padding="same", name=f"up{level + 1}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"up{level + 1}_norm")(x)
        x = layers.ReLU(name=f"up{level + 1}_relu")(x)
        if level == 0:
            x = layers.Concatenate(name="input_skip")([x, inputs])
    x = layers.Conv3D(1, 3, padding="same", activation="sigmoid", name="distance")(x)
    outputs = layers.Reshape((resolution, resolution, resolution), name="field")(x)
    return keras.Model(inputs, outputs, name=name)


def completion_encoder(model: keras.Model) -> keras.Model:
    """The part of a ``build_completion_net`` network from its input to its bottleneck ``FEATURES``."""
    try:
        features = model.get_layer(FEATURES).output
    except ValueError as error:
        raise ValueError(f"{model.name} has no layer {FEATURES!r}; give a network of build_completion_net") from error
    return keras.Model(model.inputs, features, name=f"{model.name}_encoder")


def build_shape_classifier(resolution: int = 32, classes: int = 10, filters: tuple[int, ...] = (16, 32, 64),
                           channels: int = CHANNELS, completion: keras.Model | None = None, own: bool = True,
                           hidden: int = 128, dropout: float = 0.3, name: str = "shape_classifier") -> keras.Model:
    """A 3D CNN classifier of partial grids: (B, R, R, R, channels) -> (B, classes) probabilities.

    Args:
        resolution: R.
        classes: K.
        filters: its own encoder's channels per level (the completion network's layout).
        channels: input channels.
        completion: a trained ``build_completion_net`` network whose bottleneck, frozen, the
            classifier reads (beside its own encoder's, or alone with ``own=False``).
        own: give the classifier its own encoder, trained for the class.
        hidden: units of the fully connected layer.
        dropout: rate before and after it.
        name: the model's name.

    Raises:
        ValueError: neither an encoder of its own nor a completion network, or a bad resolution.
    """
    _check(resolution, filters)
    if not own and completion is None:
        raise ValueError("a classifier needs its own encoder (own=True) or a completion network's, or both")
    inputs = keras.Input((resolution, resolution, resolution, channels), name="partial")
    streams = []
    if own:
        streams.append(layers.Flatten(name="own_flat")(encoder_levels(inputs, filters, "own_")[1]))
    if completion is not None:
        encoder = completion_encoder(completion)
        encoder.trainable = False
        streams.append(layers.Flatten(name="completion_flat")(encoder(inputs, training=False)))
    x = streams[0] if len(streams) == 1 else layers.Concatenate(name="joined")(streams)
    x = layers.Dropout(dropout, name="flat_dropout")(x)
    x = layers.Dense(hidden, activation="relu", name="hidden")(x)
    x = layers.Dropout(dropout, name="hidden_dropout")(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
