"""PU-Net (Yu, Li, Fu, Cohen-Or and Heng 2018): point-cloud upsampling by a factor r.

Reading top to bottom like the paper's figure, for a patch of N points (B, N, 3):

1. **Patch feature extraction**: PointNet++ set abstraction at several levels. Level 1 groups the
   k nearest points of every input point; each further level picks half as many centres by
   farthest point sampling and groups around them. A shared MLP (dense layers on each neighbour's
   coordinates relative to its centre and its features) and a max over the neighbours give each
   centre a feature. Every coarser level's features are interpolated back to the N input points
   (inverse-distance weights of the 3 nearest centres) and, with the coordinates and level 1's
   features, concatenated: a multi-level feature per point.
2. **Feature expansion**: r separate small MLPs turn each point's feature into r new features;
   stacked along the point axis they make (B, r*N, C). Output point j*N + i (branch j) comes
   from input point i.
3. **Coordinate regression**: a shared MLP maps each expanded feature to three coordinates.

Differences from the paper, for training on two CPU cores in minutes: k nearest neighbours instead
of ball queries, three levels of narrower MLPs (the paper's reference code had four, of up to 512
channels), and by default a *residual* output: each output point is its input point plus a
regressed offset, which a small network learns much faster than absolute positions (set
``residual=False`` for the paper's absolute coordinates). Train it with ``losses.UpsamplingLoss``
(Chamfer distance plus repulsion) on ``data.surface_patches.upsampling_patches``.
``upsample`` runs a trained network over a whole cloud, patch by patch; ``load_upsampler`` loads
the shipped one (``SHIPPED_UPSAMPLER``, trained by ``recipes.upsampling``).
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from pcfilter_lib.data.surface_patches import normalise_patches
from pcfilter_lib.geometry.point_checks import check_points
from pcfilter_lib.geometry.point_features import neighbourhoods, seed_patches
from pcfilter_lib.io.model_cards import SHIPPED_UPSAMPLER  # x4, trained at a 640x480 scan's density
from pcfilter_lib.models.saved import load_saved_model
from pcfilter_lib.nn.point_ops import farthest_point_sample, gather, group, interpolate, nearest


@keras.saving.register_keras_serializable(package="pcfilter")
class SamplePoints(layers.Layer):
    """Farthest point sampling: clouds (B, N, 3) -> ``n`` well-spread points of each (B, n, 3)."""

    def __init__(self, n: int, **kwargs):
        super().__init__(**kwargs)
        if n < 1:
            raise ValueError(f"SamplePoints needs n >= 1, got {n}")
        self.n = int(n)

    def call(self, xyz):
        return gather(xyz, farthest_point_sample(xyz, self.n))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "n": self.n}


@keras.saving.register_keras_serializable(package="pcfilter")
class GroupNeighbours(layers.Layer):
    """PointNet++ grouping: ``[xyz (B, N, 3), centres (B, M, 3)]`` or ``[xyz, centres, features
    (B, N, C)]`` -> (B, M, k, 3 [+ C]): each centre's ``k`` nearest points of ``xyz``, as coordinates
    relative to the centre, followed by their features."""

    def __init__(self, k: int, **kwargs):
        super().__init__(**kwargs)
        if k < 1:
            raise ValueError(f"GroupNeighbours needs k >= 1, got {k}")
        self.k = int(k)

    def call(self, inputs):
        xyz, centres, *features = inputs
        indices, _ = nearest(centres, xyz, self.k)
        return group(xyz, features[0] if features else None, centres, indices)

    def compute_output_shape(self, input_shapes):
        channels = 3 + (input_shapes[2][-1] if len(input_shapes) > 2 else 0)
        return (input_shapes[1][0], input_shapes[1][1], self.k, channels)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


@keras.saving.register_keras_serializable(package="pcfilter")
class NeighbourMax(layers.Layer):
    """Max over the neighbours axis: (B, M, k, C) -> (B, M, C) (PointNet's symmetric pooling)."""

    def call(self, grouped):
        return ops.max(grouped, axis=2)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[3])


@keras.saving.register_keras_serializable(package="pcfilter")
class Interpolate(layers.Layer):
    """Feature propagation: ``[xyz (B, N, 3), centres (B, M, 3), features (B, M, C)]`` -> (B, N, C),
    each point's feature the mean of its 3 nearest centres' features weighted by 1 / (distance + 1e-8)
    (the inverse distance, not PointNet++'s inverse squared distance: the shipped model learnt with it)."""

    def call(self, inputs):
        xyz, centres, features = inputs
        return interpolate(xyz, centres, features, 3, power=1, epsilon=1e-8)

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], input_shapes[0][1], input_shapes[2][-1])


def set_abstraction(xyz, features, n_centres: int | None, k: int, widths: tuple[int, ...], name: str):
    """One PointNet++ level: centres (all points if ``n_centres`` is None, else farthest point
    samples), their k-neighbourhoods, a shared MLP and a max. Returns (centres, features)."""
    centres = xyz if n_centres is None else SamplePoints(n_centres, name=f"{name}_sample")(xyz)
    x = GroupNeighbours(k, name=f"{name}_group")([xyz, centres] + ([features] if features is not None else []))
    for i, width in enumerate(widths):
        x = layers.Dense(width, activation="relu", name=f"{name}_mlp{i + 1}")(x)
    return centres, NeighbourMax(name=f"{name}_max")(x)


def build_punet(patch_points: int = 256, ratio: int = 4, neighbours: int = 16,
                level_widths: tuple[tuple[int, ...], ...] = ((16, 16, 32), (32, 32, 64), (64, 64, 128)),
                propagation_width: int = 32, expansion_widths: tuple[int, int] = (64, 32),
                regression_width: int = 32, residual: bool = True, name: str = "punet") -> keras.Model:
    """Patches (B, N, 3) -> upsampled patches (B, r * N, 3), in the patches' normalised coordinates.

    Args:
        patch_points: N, points per input patch.
        ratio: r, output points per input point.
        neighbours: k of every grouping.
        level_widths: the shared MLP of each set-abstraction level; level l >= 2 has N / 2^(l-1)
            centres.
        propagation_width: channels of each interpolated coarse level.
        expansion_widths: the two layers of each of the r expansion MLPs.
        regression_width: the hidden layer of the coordinate regression.
        residual: add each output point's input point to the regressed coordinates.
        name: the model's name.

    Raises:
        ValueError: for sizes that leave a level with fewer centres than ``neighbours``.
    """
    if ratio < 2:
        raise ValueError(f"ratio must be at least 2, got {ratio}")
    smallest = patch_points // 2 ** (len(level_widths) - 1)
    if not level_widths or smallest < max(neighbours, 3):
        raise ValueError(f"{len(level_widths)} levels of patches of {patch_points} points leave {smallest} centres "
                         f"at the coarsest level, fewer than the {neighbours} neighbours to group; use larger patches "
                         "or fewer levels")
    xyz = keras.Input((patch_points, 3), name="points")
    centres, features = set_abstraction(xyz, None, None, neighbours, level_widths[0], "level1")
    per_point = [xyz, features]
    for level, widths in enumerate(level_widths[1:], start=2):
        centres, features = set_abstraction(centres, features, patch_points // 2 ** (level - 1), neighbours, widths,
                                            f"level{level}")
        up = Interpolate(name=f"level{level}_interpolate")([xyz, centres, features])
        per_point.append(layers.Dense(propagation_width, activation="relu", name=f"level{level}_propagate")(up))
    point_features = layers.Concatenate(name="point_features")(per_point)

    branches = []
    for j in range(ratio):
        x = layers.Dense(expansion_widths[0], activation="relu", name=f"expand{j + 1}_a")(point_features)
        branches.append(layers.Dense(expansion_widths[1], activation="relu", name=f"expand{j + 1}_b")(x))
    expanded = layers.Concatenate(axis=1, name="expanded")(branches)

    x = layers.Dense(regression_width, activation="relu", name="regress_hidden")(expanded)
    coordinates = layers.Dense(3, name="regress_xyz")(x)
    if residual:
        repeated = layers.Concatenate(axis=1, name="repeat_inputs")([xyz] * ratio)
        coordinates = layers.Add(name="upsampled")([repeated, coordinates])
    else:
        coordinates = layers.Identity(name="upsampled")(coordinates)
    return keras.Model(xyz, coordinates, name=name)


def upsample(points, model: keras.Model, overlap: float = 2.0, batch_size: int = 32, seed: int = 0) -> np.ndarray:
    """Upsample a whole cloud (P, 3) with a trained PU-Net: P * r points (float64, same unit).

    The cloud is covered by patches of the model's N points, each a random centre's N nearest
    neighbours (``geometry.point_features.seed_patches``: random centres follow the cloud's density,
    so dense and sparse parts are covered alike; about ``overlap`` patches hold each point, and
    points left out get centres of their own). Each patch is normalised (``normalise_patches``),
    upsampled and put back. Every input point takes its r output points from the patch in which it
    is nearest the centre, where the network saw the most context around it, so each point
    contributes exactly r points.

    Args:
        points: the cloud (P, 3), P >= N, finite.
        model: a trained PU-Net (``build_punet``): (B, N, 3) -> (B, r * N, 3).
        overlap: how many patches hold each point on average in the first round.
        batch_size: patches per forward pass.
        seed: seed of the random choice of patch centres.

    Raises:
        ValueError: for a cloud of fewer points than a patch or ``overlap`` below 1.
    """
    points = check_points(points)
    n = model.input_shape[1]
    ratio = model.output_shape[1] // n
    if len(points) < n:
        raise ValueError(f"the cloud has {len(points)} points, fewer than the model's patch of {n}; "
                         "upsample a denser cloud or train a model on smaller patches")
    if overlap < 1:
        raise ValueError(f"overlap must be at least 1, got {overlap}")
    patches = seed_patches(neighbourhoods(points, k=1), n, seed=seed, overlap=overlap)  # (S, N), nearest first
    rank = np.broadcast_to(np.arange(n), patches.shape)
    order = np.lexsort((rank.ravel(), patches.ravel()))  # by point, then by its place in the patch
    ids = patches.ravel()[order]
    first = np.r_[True, ids[1:] != ids[:-1]]
    owner = np.divmod(order[first], n)  # (patch, position) of each point, in point order
    # A patch of coinciding points has no shape to normalise or upsample: its points stay where they are.
    clouds = points[patches]
    flat = np.ptp(clouds, axis=1).max(axis=1) == 0
    outputs = np.repeat(clouds[:, None], ratio, axis=1)  # (S, r, N, 3)
    if not flat.all():
        inputs, _, shift, scale = normalise_patches(clouds[~flat])
        predicted = model.predict(inputs, batch_size=batch_size, verbose=0).astype(np.float64)
        outputs[~flat] = predicted.reshape(-1, ratio, n, 3) * scale[:, :, None] + shift[:, :, None]
    return outputs[owner[0], :, owner[1]].reshape(-1, 3)


def load_upsampler(path: str | os.PathLike | None = None) -> keras.Model:
    """A trained PU-Net for ``upsample``: the file at ``path``, or the shipped one (``SHIPPED_UPSAMPLER``).

    Raises:
        FileNotFoundError: there is no such file.
        ValueError: Keras cannot read it, or it is no upsampler ((B, N, 3) -> (B, r * N, 3)).
    """
    path = Path(SHIPPED_UPSAMPLER if path is None else path)
    model = load_saved_model(path, "upsampling model")
    shapes = model.input_shape, model.output_shape
    if not (isinstance(shapes[0], tuple) and len(shapes[0]) == 3 and shapes[0][-1] == 3 and len(shapes[1]) == 3
            and shapes[1][-1] == 3 and shapes[0][1] and shapes[1][1] % shapes[0][1] == 0
            and shapes[1][1] > shapes[0][1]):
        raise ValueError(f"{path} maps {shapes[0]} to {shapes[1]}; an upsampler maps patches (B, N, 3) to "
                         "(B, r * N, 3)")
    return model
