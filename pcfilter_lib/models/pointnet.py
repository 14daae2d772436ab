"""PointNet (Qi et al. 2017) for classification and segmentation, in the Keras functional API.

The network reads top to bottom as in the paper's figure: an input T-Net aligns the cloud, a
shared MLP (1x1 convolutions) lifts every point to 64 features, a feature T-Net aligns those, a
second shared MLP lifts them to 1024, and a max pool over the points (a symmetric function, so
the order of the points does not matter) gives the global feature. A classification head maps it
to class scores; the segmentation variant concatenates it to every point's features and predicts
a label per point. ``width`` scales every layer (0.5 halves the channels), ``momentum`` is the
batch-normalisation momentum (Keras convention: the weight of the old running statistics).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

GLOBAL_FEATURE = "global_feature"
POINT_FEATURES = "point_features"


@keras.saving.register_keras_serializable(package="pcfilter")
class OrthogonalRegularizer(keras.regularizers.Regularizer):
    """weight * mean over the batch of ||I - A A^T||_F^2 for flattened k x k transforms A (B, k*k)."""

    def __init__(self, num_features: int, weight: float = 1e-3):
        self.num_features = int(num_features)
        self.weight = float(weight)

    def __call__(self, x):
        k = self.num_features
        a = ops.reshape(ops.cast(x, "float32"), (-1, k, k))  # float32 even under mixed precision
        aat = ops.matmul(a, ops.transpose(a, (0, 2, 1)))
        residual = ops.eye(k, dtype=aat.dtype) - aat
        return self.weight * ops.mean(ops.sum(ops.square(residual), axis=(1, 2)))

    def get_config(self):
        return {"num_features": self.num_features, "weight": self.weight}


def _ch(filters: int, width: float) -> int:
    return max(8, int(round(filters * width)))


def conv_bn(x, filters: int, name: str, momentum: float):
    """Shared MLP layer: a 1x1 convolution applied to every point, batch norm, ReLU."""
    x = layers.Conv1D(filters, 1, use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def dense_bn(x, units: int, name: str, momentum: float):
    x = layers.Dense(units, use_bias=False, name=f"{name}_dense")(x)
    x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def tnet(x, k: int, name: str, width: float, momentum: float, reg_weight: float):
    """A mini-PointNet that predicts a k x k transform and applies it: (B, N, k) -> (B, N, k).

    The last layer starts at zero weights and an identity bias, so training begins from the identity;
    the orthogonality regulariser keeps the transform close to a rotation.
    """
    t = x
    for i, filters in enumerate((64, 128, 1024)):
        t = conv_bn(t, _ch(filters, width), f"{name}_mlp{i}", momentum)
    t = layers.GlobalMaxPooling1D(name=f"{name}_pool")(t)
    for i, units in enumerate((512, 256)):
        t = dense_bn(t, _ch(units, width), f"{name}_fc{i}", momentum)
    t = layers.Dense(k * k, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(np.eye(k).ravel()),
                     activity_regularizer=OrthogonalRegularizer(k, reg_weight), name=f"{name}_matrix")(t)
    t = layers.Reshape((k, k), name=f"{name}_reshape")(t)
    return layers.Dot(axes=(2, 1), name=f"{name}_apply")([x, t])


def point_features(inputs, width: float, momentum: float, reg_weight: float, transforms: bool = True):
    """The shared trunk: (B, N, C) -> local features (B, N, 64w) and point features (B, N, 1024w).

    ``transforms=False`` leaves out both T-Nets, for inputs that are already in a canonical frame."""
    x = tnet(inputs, int(inputs.shape[-1]), "input_tnet", width, momentum, reg_weight) if transforms else inputs
    x = conv_bn(x, _ch(64, width), "mlp1_0", momentum)
    x = conv_bn(x, _ch(64, width), "mlp1_1", momentum)
    local = tnet(x, _ch(64, width), "feature_tnet", width, momentum, reg_weight) if transforms else x
    x = conv_bn(local, _ch(64, width), "mlp2_0", momentum)
    x = conv_bn(x, _ch(128, width), "mlp2_1", momentum)
    x = layers.Conv1D(_ch(1024, width), 1, use_bias=False, name="mlp2_2_conv")(x)
    x = layers.BatchNormalization(momentum=momentum, name="mlp2_2_bn")(x)
    x = layers.Activation("relu", name=POINT_FEATURES)(x)
    return local, x


def classification_head(features, num_classes: int, width: float = 1.0, momentum: float = 0.9,
                        dropout: float = 0.3, prefix: str = "head"):
    """Global feature (B, F) -> class probabilities (B, num_classes): two dense layers with dropout."""
    x = features
    for i, units in enumerate((512, 256)):
        x = dense_bn(x, _ch(units, width), f"{prefix}_fc{i}", momentum)
        x = layers.Dropout(dropout, name=f"{prefix}_dropout{i}")(x)
    return layers.Dense(num_classes, activation="softmax", name=f"{prefix}_scores")(x)


def build_pointnet(num_classes: int = 10, num_points: int | None = None, width: float = 1.0, momentum: float = 0.9,
                   dropout: float = 0.3, reg_weight: float = 1e-3, name: str = "pointnet") -> keras.Model:
    """PointNet classifier: clouds (B, N, 3) -> class probabilities (B, num_classes).

    ``num_points`` may be None (any number of points). ``momentum=0`` reproduces the keras.io
    example's setting, in which the running statistics are those of the last batch only.
    """
    if not 0 < width <= 4:
        raise ValueError(f"width must lie in (0, 4], got {width}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
    inputs = keras.Input((num_points, 3), name="points")
    _, x = point_features(inputs, width, momentum, reg_weight)
    x = layers.GlobalMaxPooling1D(name=GLOBAL_FEATURE)(x)
    return keras.Model(inputs, classification_head(x, num_classes, width, momentum, dropout), name=name)


@keras.saving.register_keras_serializable(package="pcfilter")
class TileToPoints(layers.Layer):
    """Repeat a global feature (B, 1, F) for every point of a cloud (B, N, C): -> (B, N, F)."""

    def call(self, inputs):
        points, feature = inputs
        return feature + ops.zeros_like(points[..., :1])  # (B, 1, F) + (B, N, 1) broadcasts to (B, N, F)

    def compute_output_shape(self, input_shapes):
        points, feature = input_shapes
        return (points[0], points[1], feature[2])


def build_pointnet_segmentation(num_parts: int, num_points: int | None = None, width: float = 1.0,
                                momentum: float = 0.9, dropout: float = 0.3, reg_weight: float = 1e-3,
                                channels: int = 3, transforms: bool = True,
                                name: str = "pointnet_segmentation") -> keras.Model:
    """PointNet segmentation: clouds (B, N, channels) -> per-point probabilities (B, N, num_parts).

    Each point's 64-channel local feature is concatenated with the global feature (repeated for
    every point), then a shared MLP scores every point. The first layer of that MLP is computed in
    an equivalent, cheaper form: W [local; global] = W_l local + W_g global, where W_g global is
    computed once per cloud instead of once per point. ``num_parts=1`` gives one sigmoid
    probability per point (a binary segmentation), more parts a softmax. ``channels`` > 3 feeds
    extra per-point features; ``transforms=False`` drops the T-Nets.
    """
    inputs = keras.Input((num_points, channels), name="points")
    local, x = point_features(inputs, width, momentum, reg_weight, transforms)
    global_feature = layers.GlobalMaxPooling1D(keepdims=True, name=GLOBAL_FEATURE)(x)
    first = _ch(512, width)
    from_local = layers.Conv1D(first, 1, use_bias=False, name="seg_mlp0_local")(local)
    from_global = layers.Conv1D(first, 1, use_bias=False, name="seg_mlp0_global")(global_feature)  # (B, 1, F)
    x = layers.Add(name="seg_mlp0_conv")([from_local, TileToPoints(name="tile_global")([local, from_global])])
    x = layers.BatchNormalization(momentum=momentum, name="seg_mlp0_bn")(x)
    x = layers.Activation("relu", name="seg_mlp0_relu")(x)
    for i, filters in enumerate((256, 128), start=1):
        x = conv_bn(x, _ch(filters, width), f"seg_mlp{i}", momentum)
    x = layers.Dropout(dropout, name="seg_dropout")(x)
    activation = "sigmoid" if num_parts == 1 else "softmax"
    outputs = layers.Conv1D(num_parts, 1, activation=activation, name="seg_scores", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def feature_extractor(model: keras.Model) -> keras.Model:
    """The part of a PointNet classifier up to the global feature: (B, N, 3) -> (B, F)."""
    return keras.Model(model.input, model.get_layer(GLOBAL_FEATURE).output, name=f"{model.name}_features")


def critical_points(model: keras.Model, cloud: np.ndarray) -> np.ndarray:
    """Indices of the points of ``cloud`` (N, 3) that win a max pool in at least one channel.

    The max pools are the global one and those inside the two T-Nets. The prediction depends on
    these points only: the cloud reduced to them gives exactly the same global feature.
    """
    pools = [layer for layer in model.layers if isinstance(layer, layers.GlobalMaxPooling1D)]
    per_point = keras.Model(model.input, [pool.input for pool in pools])
    outputs = per_point(np.asarray(cloud, np.float32)[None], training=False)
    winners = [np.argmax(keras.ops.convert_to_numpy(out)[0], axis=0) for out in outputs]
    return np.unique(np.concatenate(winners))
