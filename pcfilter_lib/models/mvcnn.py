"""A small multi-view CNN (the MVCNN idea of Su et al. 2015): one 2D CNN with shared weights reads
every view of a shape, a max pool across the views merges them, and a small head classifies.

The view pool is an element-wise maximum, so the network accepts any number of views (and any
order) at run time; a model trained on V views can be asked about fewer. The views are folded into
the batch for the shared CNN and unfolded after it by two small registered layers.
"""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="pcfilter")
class FoldViews(layers.Layer):
    """Stack the views of every shape into the batch: (B, V, H, W, C) -> (B * V, H, W, C), so that one
    2D CNN reads all of them with the same weights (a reshape, cheaper than a per-view loop)."""

    def call(self, views):
        shape = ops.shape(views)
        return ops.reshape(views, (-1, shape[2], shape[3], shape[4]))

    def compute_output_shape(self, input_shape):
        b, v = input_shape[0], input_shape[1]
        return (None if b is None or v is None else b * v, *input_shape[2:])


@keras.saving.register_keras_serializable(package="pcfilter")
class UnfoldViews(layers.Layer):
    """Undo ``FoldViews`` on per-view features: ((B * V, F), views (B, V, ...)) -> (B, V, F)."""

    def call(self, inputs):
        features, views = inputs
        shape = ops.shape(views)
        return ops.reshape(features, (shape[0], shape[1], features.shape[-1]))

    def compute_output_shape(self, input_shapes):
        features, views = input_shapes
        return (views[0], views[1], features[-1])


def view_encoder(size: int, channels: int = 1, filters: tuple[int, ...] = (16, 32, 64), momentum: float = 0.5,
                 name: str = "view_cnn") -> keras.Model:
    """The shared 2D CNN that reads every view.

    Each stage is a 3x3 convolution, batch norm, ReLU and a 2x2 max pool; a global average pool
    gives the feature vector.

    Args:
        size: the side of the views, in pixels.
        channels: channels of the views (1 for depth).
        filters: output channels of each stage.
        momentum: the weight of batch norm's old running statistics: 0.5 lets them follow the
            weights within a few steps, so that even a short training evaluates well (Keras' 0.99
            needs hundreds of steps).
        name: the model's name.

    Returns:
        A ``keras.Model`` from one image (B, size, size, channels) to a feature vector
        (B, filters[-1]).
    """
    inputs = keras.Input((size, size, channels), name="view")
    x = inputs
    for i, f in enumerate(filters):
        x = layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=momentum, name=f"bn{i}")(x)
        x = layers.Activation("relu", name=f"relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    outputs = layers.GlobalAveragePooling2D(name="features")(x)
    return keras.Model(inputs, outputs, name=name)


def build_mvcnn(num_classes: int = 10, size: int = 32, channels: int = 1, filters: tuple[int, ...] = (16, 32, 64),
                hidden: int = 64, dropout: float = 0.3, num_views: int | None = None, momentum: float = 0.5,
                name: str = "mvcnn") -> keras.Model:
    """Multi-view CNN: views (B, V, size, size, channels) -> class probabilities (B, num_classes).

    Args:
        num_classes: number of classes.
        size: the side of the views, in pixels.
        channels: channels of the views (1 for depth).
        filters: output channels of the shared CNN's stages.
        hidden: units of the hidden dense layer after the view pool.
        dropout: dropout rate after it.
        num_views: V, or None for any number of views at run time.
        momentum: batch-normalisation momentum of the shared CNN.
        name: the model's name.

    Returns:
        A functional ``keras.Model``.

    Raises:
        ValueError: the views are too small for the pools, or ``num_classes`` < 2.
    """
    if size < 2 ** len(filters):
        raise ValueError(f"images of {size} pixels are too small for {len(filters)} 2x2 pools")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    inputs = keras.Input((num_views, size, size, channels), name="views")
    folded = FoldViews(name="fold_views")(inputs)
    features = view_encoder(size, channels, filters, momentum, name="shared_cnn")(folded)
    per_view = UnfoldViews(name="unfold_views")([features, inputs])
    pooled = layers.GlobalMaxPooling1D(name="view_pool")(per_view)  # max over the views axis
    x = layers.Dense(hidden, activation="relu", name="hidden")(pooled)
    x = layers.Dropout(dropout, name="hidden_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name=name)
