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

from pcfilter_lib.nn.widths import scaled_channels

GLOBAL_FEATURE = "global_feature"
POINT_FEATURES = "point_features"


@keras.saving.register_keras_serializable(package="pcfilter")
class OrthogonalRegularizer(keras.regularizers.Regularizer):
    """The T-Net penalty: weight * mean over the batch of ||I - A A^T||_F^2.

    It is zero exactly when every transform A is orthogonal (a rotation or a reflection), so it keeps
    a T-Net from squashing the cloud. Registered with Keras, so saved models load without
    ``custom_objects``.

    Args:
        num_features: k, the side of the transforms.
        weight: the factor of the penalty in the loss.

    Calling it on a batch of flattened transforms A, (B, k * k), returns the scalar penalty (float32,
    also under mixed precision).
    """

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


def conv_bn(x, filters: int, name: str, momentum: float):
    """One shared MLP layer: the same dense map on every point (a 1x1 convolution), batch norm, ReLU.

    Args:
        x: per-point features, (B, N, C).
        filters: output channels.
        name: prefix of the layers' names.
        momentum: batch-normalisation momentum (the weight of the old running statistics).

    Returns:
        (B, N, filters) features; the points never mix.
    """
    x = layers.Conv1D(filters, 1, use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def dense_bn(x, units: int, name: str, momentum: float, regularizer=None):
    """A dense layer without bias, batch norm and ReLU, for the T-Nets and the classification head.

    Args:
        x: features, (B, F).
        units: output features.
        name: prefix of the layers' names.
        momentum: batch-normalisation momentum.
        regularizer: penalty on the dense layer's kernel (``keras.regularizers.L1(...)``, ``L2``), or None.

    Returns:
        (B, units) features.
    """
    x = layers.Dense(units, use_bias=False, kernel_regularizer=regularizer, name=f"{name}_dense")(x)
    x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def tnet(x, k: int, name: str, width: float, momentum: float, reg_weight: float):
    """A mini-PointNet that predicts a k x k transform of each cloud and applies it.

    The last layer starts at zero weights and an identity bias, so training begins from the identity;
    the orthogonality regulariser keeps the transform close to a rotation.

    Args:
        x: per-point inputs or features, (B, N, k).
        k: side of the transform; the channels of ``x``.
        name: prefix of the layers' names, such as "input_tnet".
        width: factor on every layer's channels (at least 8 each).
        momentum: batch-normalisation momentum.
        reg_weight: weight of the ``OrthogonalRegularizer``.

    Returns:
        ``x`` multiplied by the predicted transform, (B, N, k).
    """
    t = x
    for i, filters in enumerate((64, 128, 1024)):
        t = conv_bn(t, scaled_channels(filters, width), f"{name}_mlp{i}", momentum)
    t = layers.GlobalMaxPooling1D(name=f"{name}_pool")(t)
    for i, units in enumerate((512, 256)):
        t = dense_bn(t, scaled_channels(units, width), f"{name}_fc{i}", momentum)
    t = layers.Dense(k * k, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(np.eye(k).ravel()),
                     activity_regularizer=OrthogonalRegularizer(k, reg_weight), name=f"{name}_matrix")(t)
    t = layers.Reshape((k, k), name=f"{name}_reshape")(t)
    return layers.Dot(axes=(2, 1), name=f"{name}_apply")([x, t])


def point_features(inputs, width: float, momentum: float, reg_weight: float, transforms: bool = True):
    """The shared trunk of the classifier and the segmentation network, before the max pool.

    Input T-Net, a shared MLP to 64 channels, feature T-Net, a shared MLP to 1024 channels (each
    count times ``width``, at least 8).

    Args:
        inputs: the clouds, (B, N, C): coordinates, maybe followed by other per-point features.
        width: factor on every layer's channels.
        momentum: batch-normalisation momentum.
        reg_weight: weight of the T-Nets' ``OrthogonalRegularizer``.
        transforms: False leaves out both T-Nets, for inputs that are already in a canonical frame.

    Returns:
        ``(local, point)``: the local features after the feature T-Net, (B, N, 64w), and the
        point features that the max pool summarises, (B, N, 1024w).
    """
    x = tnet(inputs, int(inputs.shape[-1]), "input_tnet", width, momentum, reg_weight) if transforms else inputs
    x = conv_bn(x, scaled_channels(64, width), "mlp1_0", momentum)
    x = conv_bn(x, scaled_channels(64, width), "mlp1_1", momentum)
    local = tnet(x, scaled_channels(64, width), "feature_tnet", width, momentum, reg_weight) if transforms else x
    x = conv_bn(local, scaled_channels(64, width), "mlp2_0", momentum)
    x = conv_bn(x, scaled_channels(128, width), "mlp2_1", momentum)
    x = layers.Conv1D(scaled_channels(1024, width), 1, use_bias=False, name="mlp2_2_conv")(x)
    x = layers.BatchNormalization(momentum=momentum, name="mlp2_2_bn")(x)
    x = layers.Activation("relu", name=POINT_FEATURES)(x)
    return local, x


def classification_head(features, num_classes: int, width: float = 1.0, momentum: float = 0.9,
                        dropout: float = 0.3, prefix: str = "head", regularizer=None):
    """The classifier on top of the global feature: two dense layers with dropout, then softmax.

    Args:
        features: the global feature, (B, F).
        num_classes: number of classes.
        width: factor on the dense layers' units (512 and 256).
        momentum: batch-normalisation momentum.
        dropout: dropout rate after each dense layer.
        prefix: prefix of the layers' names; transfer learning gives a new head a new one.
        regularizer: penalty on every dense kernel of the head, the term alpha * Omega(w) added to
            the loss (``keras.regularizers.L2(alpha)``: alpha times the sum of the squared weights;
            ``L1(alpha)``: alpha times the sum of their absolute values), or None.

    Returns:
        Class probabilities, (B, num_classes).
    """
    x = features
    for i, units in enumerate((512, 256)):
        x = dense_bn(x, scaled_channels(units, width), f"{prefix}_fc{i}", momentum, regularizer)
        x = layers.Dropout(dropout, name=f"{prefix}_dropout{i}")(x)
    return layers.Dense(num_classes, activation="softmax", kernel_regularizer=regularizer,
                        name=f"{prefix}_scores")(x)


def build_head(feature_dim: int, num_classes: int, width: float = 1.0, momentum: float = 0.9,
               dropout: float = 0.3, regularizer=None, name: str = "head") -> keras.Model:
    """PointNet's classification head alone, as a model on global features (B, feature_dim).

    Trained on features computed once by a frozen extractor (``feature_extractor``), it learns in
    seconds what a new head on the whole network learns in minutes: the extractor's forward pass is
    not repeated every epoch (and the clouds are not augmented).

    Args:
        feature_dim: F, the global feature's length (1024 * width of the extractor).
        num_classes, width, momentum, dropout, regularizer: as ``classification_head``.
        name: the model's name.

    Returns:
        A functional ``keras.Model`` from (B, F) to class probabilities (B, num_classes).
    """
    inputs = keras.Input((feature_dim,), name="global_feature")
    return keras.Model(inputs, classification_head(inputs, num_classes, width, momentum, dropout,
                                                   regularizer=regularizer), name=name)


def build_pointnet(num_classes: int = 10, num_points: int | None = None, width: float = 1.0, momentum: float = 0.9,
                   dropout: float = 0.3, reg_weight: float = 1e-3, head_regularizer=None,
                   name: str = "pointnet") -> keras.Model:
    """PointNet classifier: clouds (B, N, 3) -> class probabilities (B, num_classes).

    Args:
        num_classes: number of classes.
        num_points: N, or None for clouds of any size.
        width: factor on every layer's channels; 1 is the paper's network (about 3.5 million
            parameters for ten classes).
        momentum: batch-normalisation momentum; 0 reproduces the keras.io example's setting, in
            which the running statistics are those of the last training batch only.
        dropout: dropout rate in the classification head.
        reg_weight: weight of the T-Nets' orthogonality penalty.
        head_regularizer: penalty on the head's dense kernels (``classification_head``), or None.
        name: the model's name.

    Returns:
        A functional ``keras.Model``; its layer ``GLOBAL_FEATURE`` is the max-pooled global feature
        that ``feature_extractor`` and transfer learning cut at.

    Raises:
        ValueError: ``width`` is not in (0, 4] or ``momentum`` not in [0, 1).
    """
    if not 0 < width <= 4:
        raise ValueError(f"width must lie in (0, 4], got {width}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
    inputs = keras.Input((num_points, 3), name="points")
    _, x = point_features(inputs, width, momentum, reg_weight)
    x = layers.GlobalMaxPooling1D(name=GLOBAL_FEATURE)(x)
    return keras.Model(inputs, classification_head(x, num_classes, width, momentum, dropout,
                                                   regularizer=head_regularizer), name=name)


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
    computed once per cloud instead of once per point.

    Args:
        num_parts: 1 gives one sigmoid probability per point (a binary segmentation, as in the
            point filter); more parts give a softmax over them.
        num_points: N, or None for clouds of any size.
        width: factor on every layer's channels.
        momentum: batch-normalisation momentum.
        dropout: dropout rate before the last layer.
        reg_weight: weight of the T-Nets' orthogonality penalty.
        channels: per-point inputs; more than 3 feeds extra features after (or instead of) the
            coordinates.
        transforms: False drops both T-Nets, for inputs already in a canonical frame.
        name: the model's name.

    Returns:
        A functional ``keras.Model`` with a float32 output, (B, N, num_parts).
    """
    inputs = keras.Input((num_points, channels), name="points")
    local, x = point_features(inputs, width, momentum, reg_weight, transforms)
    global_feature = layers.GlobalMaxPooling1D(keepdims=True, name=GLOBAL_FEATURE)(x)
    first = scaled_channels(512, width)
    from_local = layers.Conv1D(first, 1, use_bias=False, name="seg_mlp0_local")(local)
    from_global = layers.Conv1D(first, 1, use_bias=False, name="seg_mlp0_global")(global_feature)  # (B, 1, F)
    x = layers.Add(name="seg_mlp0_conv")([from_local, TileToPoints(name="tile_global")([local, from_global])])
    x = layers.BatchNormalization(momentum=momentum, name="seg_mlp0_bn")(x)
    x = layers.Activation("relu", name="seg_mlp0_relu")(x)
    for i, filters in enumerate((256, 128), start=1):
        x = conv_bn(x, scaled_channels(filters, width), f"seg_mlp{i}", momentum)
    x = layers.Dropout(dropout, name="seg_dropout")(x)
    activation = "sigmoid" if num_parts == 1 else "softmax"
    outputs = layers.Conv1D(num_parts, 1, activation=activation, name="seg_scores", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def feature_extractor(model: keras.Model) -> keras.Model:
    """The part of a PointNet classifier up to its global feature, sharing the classifier's layers.

    Args:
        model: a classifier from ``build_pointnet`` (or one loaded from a file).

    Returns:
        A ``keras.Model`` from the clouds (B, N, 3) to the global feature (B, F), F = 1024 * width.
    """
    return keras.Model(model.input, model.get_layer(GLOBAL_FEATURE).output, name=f"{model.name}_features")


def critical_points(model: keras.Model, cloud: np.ndarray) -> np.ndarray:
    """The points of a cloud that decide a PointNet's prediction.

    A point is critical when it wins a max pool in at least one channel: the global pool or one of
    those inside the two T-Nets. The cloud reduced to these points gives exactly the same global
    feature, and so the same prediction.

    Args:
        model: a PointNet from ``build_pointnet`` (any model whose ``GlobalMaxPooling1D`` layers pool
            over the points).
        cloud: the points, (N, 3).

    Returns:
        The sorted, unique int64 indices of the critical points, (M,) with M <= N.
    """
    pools = [layer for layer in model.layers if isinstance(layer, layers.GlobalMaxPooling1D)]
    per_point = keras.Model(model.input, [pool.input for pool in pools])
    outputs = per_point(np.asarray(cloud, np.float32)[None], training=False)
    winners = [np.argmax(keras.ops.convert_to_numpy(out)[0], axis=0) for out in outputs]
    return np.unique(np.concatenate(winners))
