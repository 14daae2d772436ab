"""A VoxNet-like 3D CNN (Maturana and Scherer 2015) that classifies occupancy grids.

As in the paper's figure: a 5^3 convolution with stride 2, a 3^3 convolution, a 2^3 max pool, one
hidden dense layer and the class scores; leaky ReLUs and dropout after each stage. On a 32^3 grid
that is about 0.9 million parameters, most of them in the dense layer. Standard Keras layers only,
so a saved model loads with ``keras.models.load_model`` alone.
"""

from __future__ import annotations

import keras
from keras import layers


def conv_block(x, filters: int, kernel: int, strides: int, dropout: float, name: str):
    """One VoxNet stage: a 3D convolution (valid padding), leaky ReLU (slope 0.1), dropout.

    Args:
        x: the grid's features, (B, X, Y, Z, C).
        filters: output channels.
        kernel: side of the cubic kernel, in voxels.
        strides: step of the convolution, in voxels.
        dropout: dropout rate.
        name: prefix of the layers' names.

    Returns:
        (B, X', Y', Z', filters) features.
    """
    x = layers.Conv3D(filters, kernel, strides=strides, name=f"{name}_conv")(x)
    x = layers.LeakyReLU(negative_slope=0.1, name=f"{name}_lrelu")(x)
    return layers.Dropout(dropout, name=f"{name}_dropout")(x)


def build_voxnet(num_classes: int = 10, resolution: int = 32, channels: int = 1, filters: int = 32,
                 hidden: int = 128, dropout: tuple[float, float, float] = (0.2, 0.3, 0.4),
                 name: str = "voxnet") -> keras.Model:
    """VoxNet classifier: occupancy grids (B, R, R, R, channels) -> class probabilities (B, num_classes).

    Args:
        num_classes: number of classes.
        resolution: R, voxels per side of the input grids.
        channels: values per voxel (1 for occupancy).
        filters: channels of both convolutions.
        hidden: units of the hidden dense layer.
        dropout: the rates after the first convolution, after the pooling and after the hidden layer.
        name: the model's name.

    Returns:
        A functional ``keras.Model``.

    Raises:
        ValueError: ``resolution`` < 14 (the convolutions and the pool would leave nothing) or
            ``num_classes`` < 2.
    """
    if resolution < 14:
        raise ValueError(f"VoxNet needs a grid of at least 14^3 voxels, got {resolution}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    inputs = keras.Input((resolution, resolution, resolution, channels), name="voxels")
    x = conv_block(inputs, filters, 5, 2, dropout[0], "block1")
    x = conv_block(x, filters, 3, 1, 0.0, "block2")
    x = layers.MaxPooling3D(2, name="block2_pool")(x)
    x = layers.Dropout(dropout[1], name="block2_dropout_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(hidden, activation="relu", name="hidden")(x)
    x = layers.Dropout(dropout[2], name="hidden_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name=name)
