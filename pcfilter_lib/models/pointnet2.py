"""PointNet++ (Qi et al. 2017, NeurIPS): PointNet applied to local neighbourhoods, hierarchically.

PointNet pools over the whole cloud at once, so no feature sees local structure, and a cloud
whose density varies confuses it. PointNet++ stacks *set abstraction* levels, each of which

1. picks ``S`` centroids by **farthest-point sampling** (each new centroid is the point farthest
   from those already picked, so they spread evenly over the shape whatever its density),
2. gathers, by **ball query**, up to ``K`` points within radius ``r`` of each centroid,
3. **groups** them: each neighbour's coordinates relative to its centroid, then its features,
4. runs a small PointNet on every group: a shared MLP, then a max over the ``K`` neighbours.

*Multi-scale grouping* (MSG) does steps 2-4 at several radii and concatenates the results, so a
sparse region still gets a well-filled ball at the larger radius. The last level groups all
remaining points (a global PointNet). For segmentation, **feature propagation** carries the
features back up: each point of the denser level interpolates the features of its three nearest
points of the sparser level (weights 1 / squared distance), concatenates its own features from
the way down (a skip link, as in a U-Net) and runs a shared MLP.

The operations (sampling, ball query, grouping, interpolation) are those of ``nn.point_ops``, in
``keras.ops``, so the layers run on the TensorFlow, JAX and PyTorch backends; every layer is
registered, so ``keras.models.load_model`` needs no ``custom_objects``.
Coordinates are (B, N, 3) float32, features (B, N, C); indices are int32.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers, ops

from pcfilter_lib.nn.point_ops import ball_query, farthest_point_sample, gather, group, interpolate
from pcfilter_lib.nn.widths import scaled_channels

# The paper's widths for ModelNet40 with 1024 points; the builders scale them by ``width``.
SSG_LEVELS = ({"radius": 0.2, "num_neighbors": 32, "mlp": (64, 64, 128)},
              {"radius": 0.4, "num_neighbors": 64, "mlp": (128, 128, 256)})
MSG_LEVELS = ({"radius": (0.1, 0.2, 0.4), "num_neighbors": (16, 32, 128),
               "mlp": ((32, 32, 64), (64, 64, 128), (64, 96, 128))},
              {"radius": (0.2, 0.4, 0.8), "num_neighbors": (32, 64, 128),
               "mlp": ((64, 64, 128), (128, 128, 256), (128, 128, 256))})
GLOBAL_MLP = (256, 512, 1024)
HEAD = (512, 256)
FP_MLPS = ((256, 256), (256, 128), (128, 128, 128))  # from the coarsest level to the input points


# Layers -------------------------------------------------------------------------------------------


def _several(inputs) -> bool:
    """Whether ``inputs`` is a list of tensors or shapes (rather than one tensor or one shape)."""
    return isinstance(inputs, (list, tuple)) and any(isinstance(v, (list, tuple)) or hasattr(v, "shape")
                                                      for v in inputs)


def _split(inputs, count: int, name: str):
    """``inputs`` (one, or a list of ``count - 1`` or ``count``) as a list of ``count``, None-padded."""
    parts = list(inputs) if _several(inputs) else [inputs]
    if len(parts) not in (count - 1, count):
        raise ValueError(f"{name} takes {count - 1} or {count} inputs, got {len(parts)}")
    return parts + [None] * (count - len(parts))


@keras.saving.register_keras_serializable(package="pcfilter")
class SharedMLP(layers.Layer):
    """The same small MLP on every point or group member: (..., C) -> (..., widths[-1]).

    Each layer is a dense map without bias, batch normalisation over all leading axes, and ReLU
    (a 1x1 convolution in the paper's terms).
    """

    def __init__(self, widths: Sequence[int], momentum: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        self.widths = tuple(int(w) for w in widths)
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"a shared MLP needs at least one positive width, got {widths}")
        self.momentum = float(momentum)
        self.dense = [layers.Dense(w, use_bias=False, name=f"dense{i}") for i, w in enumerate(self.widths)]
        self.norm = [layers.BatchNormalization(momentum=self.momentum, name=f"bn{i}") for i in range(len(self.widths))]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for dense, norm, w in zip(self.dense, self.norm, self.widths, strict=True):
            dense.build(shape)
            shape = shape[:-1] + (w,)
            norm.build(shape)

    def call(self, x, training=None):
        for dense, norm in zip(self.dense, self.norm, strict=True):
            x = ops.relu(norm(dense(x), training=training))
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.widths[-1],)

    def get_config(self):
        return {**super().get_config(), "widths": list(self.widths), "momentum": self.momentum}


@keras.saving.register_keras_serializable(package="pcfilter")
class SetAbstraction(layers.Layer):
    """One PointNet++ level: ``[xyz (B, N, 3), features (B, N, C)]`` or ``xyz`` alone
    -> ``[centroids (B, S, 3), features (B, S, F)]``.

    ``num_samples`` centroids are picked by farthest-point sampling; around each, a ball query of
    every radius in ``radius`` takes up to ``num_neighbors`` points (at most N), and that scale's shared MLP
    (``mlp``) and a max over the group give its features; the scales are concatenated, so F is
    the sum of their last widths. One radius is single-scale grouping, several multi-scale.
    ``num_samples=None`` groups all points around the origin (one centroid, the global feature).
    """

    def __init__(self, num_samples: int | None, radius: float | Sequence[float] = (), num_neighbors=(),
                 mlp: Sequence = (64,), momentum: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        self.num_samples = None if num_samples is None else int(num_samples)
        scalar = isinstance(mlp[0], (int, float))
        mlps = [mlp] if scalar else list(mlp)
        if self.num_samples is None:
            self.radius, self.num_neighbors = (), ()
            if len(mlps) != 1:
                raise ValueError(f"grouping all points takes one MLP, got {len(mlps)}")
        else:
            self.radius = tuple(float(r) for r in (radius if isinstance(radius, (list, tuple)) else [radius]))
            k = num_neighbors if isinstance(num_neighbors, (list, tuple)) else [num_neighbors]
            self.num_neighbors = tuple(int(v) for v in k)
            if self.num_samples < 1 or not len(self.radius) == len(self.num_neighbors) == len(mlps):
                raise ValueError(f"set abstraction needs num_samples >= 1 and one radius, neighbour count and MLP "
                                 f"per scale, got {num_samples}, {radius}, {num_neighbors} and {len(mlps)} MLPs")
            if min(self.radius) <= 0 or min(self.num_neighbors) < 1:
                raise ValueError(f"radii and neighbour counts must be positive, got {radius} and {num_neighbors}")
        self.mlp = [tuple(int(w) for w in m) for m in mlps]
        self.momentum = float(momentum)
        self.scales = [SharedMLP(m, momentum, name=f"scale{i}") for i, m in enumerate(self.mlp)]

    def build(self, input_shape):
        xyz_shape, feature_shape = _split(input_shape, 2, "SetAbstraction")
        n = xyz_shape[1]
        if n is not None and self.num_samples is not None and self.num_samples > n:
            raise ValueError(f"clouds of {n} points cannot give {self.num_samples} centroids: lower num_samples")
        channels = 3 + (0 if feature_shape is None else int(feature_shape[-1]))
        for scale in self.scales:
            scale.build((xyz_shape[0], self.num_samples or 1, None, channels))

    def call(self, inputs, training=None):
        xyz, features = _split(inputs, 2, "SetAbstraction")
        if self.num_samples is None:  # one group of every point, centroid at the origin
            grouped = xyz if features is None else ops.concatenate([xyz, ops.cast(features, xyz.dtype)], axis=-1)
            out = ops.max(self.scales[0](grouped[:, None], training=training), axis=2)
            return [ops.zeros_like(xyz[:, :1]), out]
        centroids = gather(xyz, farthest_point_sample(xyz, self.num_samples))
        outputs = []
        n = xyz.shape[1]
        for radius, k, scale in zip(self.radius, self.num_neighbors, self.scales, strict=True):
            k = k if n is None else min(k, n)  # a group of all N points has the same max as one padded to K
            grouped = group(xyz, features, centroids, ball_query(xyz, centroids, radius, k))
            outputs.append(ops.max(scale(grouped, training=training), axis=2))
        return [centroids, outputs[0] if len(outputs) == 1 else ops.concatenate(outputs, axis=-1)]

    def compute_output_shape(self, input_shape):
        xyz_shape = _split(input_shape, 2, "SetAbstraction")[0]
        s = self.num_samples or 1
        return [(xyz_shape[0], s, 3), (xyz_shape[0], s, sum(m[-1] for m in self.mlp))]

    def get_config(self):
        return {**super().get_config(), "num_samples": self.num_samples, "radius": list(self.radius),
                "num_neighbors": list(self.num_neighbors), "mlp": [list(m) for m in self.mlp],
                "momentum": self.momentum}


@keras.saving.register_keras_serializable(package="pcfilter")
class FeaturePropagation(layers.Layer):
    """One PointNet++ upsampling step: ``[xyz (B, N, 3), sparse_xyz (B, S, 3), sparse_features
    (B, S, C2)]`` plus optionally ``skip_features (B, N, C1)`` -> features (B, N, mlp[-1]).

    The sparse features are interpolated to every point of ``xyz`` (inverse squared distance over
    the ``num_neighbors`` nearest), concatenated after the skip features, and passed through a
    shared MLP.
    """

    def __init__(self, mlp: Sequence[int], num_neighbors: int = 3, momentum: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        self.mlp = tuple(int(w) for w in mlp)
        self.num_neighbors = int(num_neighbors)
        if self.num_neighbors < 1:
            raise ValueError(f"num_neighbors must be positive, got {num_neighbors}")
        self.momentum = float(momentum)
        self.shared = SharedMLP(self.mlp, momentum, name="mlp")

    def build(self, input_shape):
        xyz, _, sparse, skip = _split(input_shape, 4, "FeaturePropagation")
        channels = int(sparse[-1]) + (0 if skip is None else int(skip[-1]))
        self.shared.build((xyz[0], xyz[1], channels))

    def call(self, inputs, training=None):
        xyz, sparse_xyz, sparse_features, skip = _split(inputs, 4, "FeaturePropagation")
        x = interpolate(xyz, sparse_xyz, sparse_features, self.num_neighbors)
        if skip is not None:
            x = ops.concatenate([ops.cast(skip, x.dtype), x], axis=-1)
        return self.shared(x, training=training)

    def compute_output_shape(self, input_shape):
        xyz = input_shape[0]
        return (xyz[0], xyz[1], self.mlp[-1])

    def get_config(self):
        return {**super().get_config(), "mlp": list(self.mlp), "num_neighbors": self.num_neighbors,
                "momentum": self.momentum}


# Models -------------------------------------------------------------------------------------------


def _scaled(mlp, width: float):
    if isinstance(mlp[0], (int, float)):
        return tuple(scaled_channels(w, width) for w in mlp)
    return tuple(_scaled(m, width) for m in mlp)


def _check(num_points, channels: int, width: float, samples: Sequence[int], radii: Sequence) -> tuple[int, ...]:
    if not 0 < width <= 4:
        raise ValueError(f"width must lie in (0, 4], got {width}")
    if channels < 3:
        raise ValueError(f"the first 3 channels are the coordinates, so channels must be >= 3, got {channels}")
    samples = tuple(int(s) for s in samples)
    if len(samples) != len(radii) or min(samples) < 1 or list(samples) != sorted(samples, reverse=True):
        raise ValueError(f"samples must give one decreasing, positive centroid count per level ({len(radii)}), "
                         f"got {samples}")
    if num_points is not None and samples[0] > num_points:
        raise ValueError(f"{samples[0]} centroids cannot be sampled from {num_points} points: lower samples")
    return samples


def _inputs(num_points, channels: int):
    inputs = keras.Input((num_points, channels), name="points")
    return inputs, inputs[..., :3], (inputs[..., 3:] if channels > 3 else None)


def _encoder(xyz, features, samples, levels, width: float, momentum: float, global_mlp=GLOBAL_MLP):
    """The set abstraction levels and the global one: lists of (xyz, features) from input to global."""
    out = [(xyz, features)]
    for i, (s, level) in enumerate(zip(samples, levels, strict=True), start=1):
        sa = SetAbstraction(s, level["radius"], level["num_neighbors"], _scaled(level["mlp"], width), momentum,
                            name=f"sa{i}")
        out.append(tuple(sa([xyz, features] if features is not None else xyz)))
        xyz, features = out[-1]
    sa = SetAbstraction(None, mlp=_scaled(global_mlp, width), momentum=momentum, name=f"sa{len(levels) + 1}")
    out.append(tuple(sa([xyz, features])))
    return out


def build_pointnet2(num_classes: int = 10, num_points: int | None = 1024, channels: int = 3, msg: bool = False,
                    width: float = 0.25, samples: Sequence[int] = (128, 32), momentum: float = 0.9,
                    dropout: float = 0.4, levels: Sequence[dict] | None = None,
                    name: str = "pointnet2") -> keras.Model:
    """PointNet++ classifier: clouds (B, N, channels) -> class probabilities (B, num_classes).

    Two set abstraction levels (``samples`` centroids each; the paper uses (512, 128) for 1024
    points) with the paper's radii, neighbour counts and MLPs, single-scale (``msg=False``) or
    multi-scale grouping, then a global level and a head of two dense layers with dropout.
    ``width`` scales every MLP (the default 0.25 keeps it small enough to train on a laptop CPU;
    1.0 is the paper's network). Channels beyond the first three (normals, say) are features.
    ``levels`` replaces the paper's radii, neighbour counts and MLPs: one dict per level with keys
    ``radius``, ``num_neighbors`` and ``mlp``, in the form ``SetAbstraction`` takes.

    Args:
        num_classes: number of classes.
        num_points: points per cloud N, or None for any number (at least ``samples[0]``).
        channels: 3 for coordinates alone, more for extra per-point features.
        msg: multi-scale grouping instead of single-scale.
        width: scale of every MLP width (1.0: the paper's).
        samples: centroids per set abstraction level, decreasing.
        momentum: batch-normalisation momentum (Keras convention).
        dropout: dropout rate in the head.
        levels: radii, neighbour counts and MLPs per level (default: the paper's).
        name: the model's name.

    Returns:
        An uncompiled ``keras.Model``.

    Raises:
        ValueError: if width, channels or samples are out of range.
    """
    levels = list(levels or (MSG_LEVELS if msg else SSG_LEVELS))
    samples = _check(num_points, channels, width, samples, levels)
    inputs, xyz, features = _inputs(num_points, channels)
    x = layers.Flatten(name="global_feature")(_encoder(xyz, features, samples, levels, width, momentum)[-1][1])
    for i, units in enumerate(HEAD):
        x = layers.Dense(scaled_channels(units, width), use_bias=False, name=f"head_fc{i}_dense")(x)
        x = layers.BatchNormalization(momentum=momentum, name=f"head_fc{i}_bn")(x)
        x = layers.Activation("relu", name=f"head_fc{i}_relu")(x)
        x = layers.Dropout(dropout, name=f"head_dropout{i}")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="head_scores", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def build_pointnet2_segmentation(num_parts: int, num_points: int | None = None, channels: int = 3,
                                 msg: bool = False, width: float = 0.25, samples: Sequence[int] = (128, 32),
                                 momentum: float = 0.9, dropout: float = 0.4, levels: Sequence[dict] | None = None,
                                 name: str = "pointnet2_segmentation") -> keras.Model:
    """PointNet++ segmentation: clouds (B, N, channels) -> per-point probabilities (B, N, num_parts).

    The classifier's encoder, then one feature propagation step per level back to the input
    points (the global feature to the second level, the second to the first, the first to the
    input, whose extra channels are the last skip link), a shared layer with dropout and a
    per-point score. ``num_parts=1`` gives one sigmoid probability per point, more a softmax.
    The radii are in the cloud's units: scale ``levels`` to the data (the defaults suit clouds
    normalised to the unit sphere). The arguments are those of ``build_pointnet2``, with
    ``num_parts`` for ``num_classes``.

    Returns:
        An uncompiled ``keras.Model``.

    Raises:
        ValueError: if width, channels or samples are out of range.
    """
    levels = list(levels or (MSG_LEVELS if msg else SSG_LEVELS))
    samples = _check(num_points, channels, width, samples, levels)
    inputs, xyz, features = _inputs(num_points, channels)
    encoded = _encoder(xyz, features, samples, levels, width, momentum)
    _, x = encoded[-1]
    steps = len(encoded) - 1
    fp_mlps = [FP_MLPS[0]] * max(0, steps - len(FP_MLPS)) + list(FP_MLPS[-steps:])
    for i, mlp in zip(range(steps, 0, -1), fp_mlps, strict=True):
        (dense_xyz, skip), (sparse_xyz, _) = encoded[i - 1], encoded[i]
        fp = FeaturePropagation(_scaled(mlp, width), momentum=momentum, name=f"fp{i}")
        x = fp([dense_xyz, sparse_xyz, x] + ([skip] if skip is not None else []))
    x = layers.Dense(scaled_channels(128, width), use_bias=False, name="seg_fc_dense")(x)
    x = layers.BatchNormalization(momentum=momentum, name="seg_fc_bn")(x)
    x = layers.Activation("relu", name="seg_fc_relu")(x)
    x = layers.Dropout(dropout, name="seg_dropout")(x)
    activation = "sigmoid" if num_parts == 1 else "softmax"
    outputs = layers.Dense(num_parts, activation=activation, name="seg_scores", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)
