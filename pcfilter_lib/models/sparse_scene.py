"""A submanifold sparse U-Net that labels the occupied voxels of a scanned scene (Graham et al. 2018).

Chapter 8's dense 3D U-Net (``models.scene_cnn.build_scene_unet``) computes at every voxel of the
grid, most of them empty air. This network computes only at the *active sites*: the voxels of a
scene grid (``data.scene_voxels``) where a measured point fell, its ``OCCUPIED`` voxels, a shell one
or two voxels thick. Every site reads the dense network's three input channels (TSDF, free,
occupied) there, so that the two networks see the same numbers where both look.

* ``active_sites`` picks the sites of a scene; ``site_levels`` builds the coarser levels of a U-Net
  over them (a coarse site wherever the halved coordinates of a fine site fall, and for every fine
  site the row of its coarse parent); ``scene_inputs`` gathers a scene's features at the sites and
  the rulebook of every level (``geometry.sparse_grids.submanifold_rules``): the network's input.
* ``build_sparse_unet``: per level two submanifold convolutions (``nn.sparse_layers.SubmanifoldConv3D``),
  ``SparseMaxPool`` down and ``SparseUnpool`` with a per-site linear map up, skip connections as in
  the dense U-Net, and a softmax over the classes at every site. The sites never grow, so the
  network labels exactly the sites it was given.
* ``predict_sites`` runs it on one scene's inputs; ``predict_scene`` writes the sites' probabilities
  into a whole grid, every other voxel certain background (a voxel where nothing was measured is
  left as empty space: the network cannot say what it never saw).
* ``activation_floats`` counts the floats of its layers' outputs for given numbers of sites, the
  dense U-Net's ``experiments.scene_structure.unet_activation_floats`` for the sparse network.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops

from pcfilter_lib.data.scene_voxels import FEATURES
from pcfilter_lib.geometry.depth_fusion import OCCUPIED
from pcfilter_lib.geometry.sparse_grids import submanifold_rules
from pcfilter_lib.labels import SEMANTIC_BACKGROUND, SEMANTIC_NAMES
from pcfilter_lib.nn.sparse_layers import SparseMaxPool, SparseUnpool, SubmanifoldConv3D

CLASSES = len(SEMANTIC_NAMES)
RULES = ("inputs", "outputs", "offsets")  # the three arrays of a rulebook, in submanifold_rules' order


def active_sites(state: np.ndarray) -> np.ndarray:
    """The active sites of one scene: (M, 3) int32 coordinates of its ``OCCUPIED`` voxels, in
    row-major order, from its (X, Y, Z) ternary state grid."""
    if np.ndim(state) != 3:
        raise ValueError(f"a scene's state is an (X, Y, Z) grid, got shape {np.shape(state)}")
    return np.argwhere(np.asarray(state) == OCCUPIED).astype(np.int32)


def site_levels(coords: np.ndarray, levels: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The sites of ``levels`` levels, each with half the resolution of the one before.

    Args:
        coords: (M, 3) distinct integer coordinates of the finest level's sites.
        levels: the number of levels, at least 1.

    Returns:
        ``(sites, parents)``: ``levels`` (M_l, 3) int32 arrays of coordinates, finest first, and
        ``levels - 1`` (M_l,) int32 arrays, the row in level l + 1 of every site of level l.

    Raises:
        ValueError: ``levels`` < 1 or ``coords`` is not (M, 3).
    """
    coords = np.asarray(coords)
    if levels < 1 or coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(f"need levels >= 1 and (M, 3) coordinates, got {levels} and shape {coords.shape}")
    sites, parents = [coords.astype(np.int32)], []
    for _ in range(levels - 1):
        coarse, parent = np.unique(sites[-1] // 2, axis=0, return_inverse=True)
        sites.append(coarse.astype(np.int32))
        parents.append(parent.ravel().astype(np.int32))
    return sites, parents


def scene_inputs(features: np.ndarray, coords: np.ndarray, levels: int, kernel: int = 3) -> dict[str, np.ndarray]:
    """The network's input for one scene.

    Args:
        features: (X, Y, Z, C) the scene's voxel features (``data.scene_voxels.scene_features``).
        coords: (M, 3) its active sites (``active_sites``).
        levels: the network's levels (``len(filters)`` of ``build_sparse_unet``).
        kernel: the side of its convolutions' kernels.

    Returns:
        ``features`` (M, C) float32; per level l, ``rules{l}_inputs``, ``rules{l}_outputs`` and
        ``rules{l}_offsets`` (its rulebook); for every level l after the first, ``sites{l}`` (M_l, 3)
        and ``parent{l}``, the row in level l of every site of level l - 1.
    """
    features = np.asarray(features, np.float32)
    sites, parents = site_levels(coords, levels)
    out = {"features": features[tuple(sites[0].T)]}
    for level, at in enumerate(sites):
        rules = submanifold_rules(at, kernel)
        out.update({f"rules{level}_{name}": array for name, array in zip(RULES, rules, strict=True)})
        if level:
            out[f"sites{level}"], out[f"parent{level}"] = at, parents[level - 1]
    return out


def _block(x, rules, filters: int, kernel: int, name: str):
    for i in (1, 2):
        x = SubmanifoldConv3D(filters, kernel, activation="relu", name=f"{name}_conv{i}")([x, *rules])
    return x


def build_sparse_unet(classes: int = CLASSES, channels: int = FEATURES, filters: Sequence[int] = (16, 32, 32),
                      kernel: int = 3, name: str = "sparse_scene_unet") -> keras.Model:
    """The submanifold sparse U-Net: the active sites' features -> their class probabilities.

    The layout follows the dense U-Net's: a first convolution, then per level two convolutions
    (``filters[l]`` channels), a max pooling to the next level's sites after every level but the
    last; on the way up an unpooling, a per-site linear map to the level's channels (where the dense
    network has its transposed convolution), the skip connection and two convolutions; a per-site
    softmax at the end.

    Args:
        classes: K.
        channels: values per site.
        filters: channels per level, finest first.
        kernel: odd side of every convolution's kernel.
        name: the model's name.

    Returns:
        A ``keras.Model`` reading the dict of ``scene_inputs`` (any number of sites) and giving
        (M, classes) probabilities.

    Raises:
        ValueError: fewer than two levels or two classes.
    """
    if len(filters) < 2 or classes < 2:
        raise ValueError(f"a U-Net needs at least two levels and two classes, got {tuple(filters)} and {classes}")
    levels = len(filters)
    inputs = {"features": keras.Input((channels,), name="features")}
    for level in range(levels):
        for rule in RULES:
            key = f"rules{level}_{rule}"
            inputs[key] = keras.Input((), dtype="int32", name=key)
        if level:
            inputs[f"sites{level}"] = keras.Input((3,), dtype="int32", name=f"sites{level}")
            inputs[f"parent{level}"] = keras.Input((), dtype="int32", name=f"parent{level}")
    rules = [[inputs[f"rules{level}_{rule}"] for rule in RULES] for level in range(levels)]
    x = SubmanifoldConv3D(filters[0], kernel, activation="relu", name="stem")([inputs["features"], *rules[0]])
    skips = []
    for level, f in enumerate(filters[:-1]):
        x = _block(x, rules[level], f, kernel, f"down{level + 1}")
        skips.append(x)
        x = SparseMaxPool(name=f"down{level + 1}_pool")([x, inputs[f"parent{level + 1}"], inputs[f"sites{level + 1}"]])
    x = _block(x, rules[-1], filters[-1], kernel, "bottom")
    for level in reversed(range(levels - 1)):
        x = SparseUnpool(name=f"up{level + 1}_unpool")([x, inputs[f"parent{level + 1}"]])
        x = layers.Dense(filters[level], name=f"up{level + 1}_project")(x)
        x = layers.Concatenate(name=f"up{level + 1}_skip")([x, skips[level]])
        x = _block(x, rules[level], filters[level], kernel, f"up{level + 1}")
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def network_levels(model: keras.Model) -> int:
    """The number of levels of a ``build_sparse_unet`` network (read off its inputs)."""
    return sum(1 for name in model.input if name.endswith("_offsets"))


def predict_sites(model: keras.Model, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The (M, K) float32 class probabilities of one scene's sites (``scene_inputs``)."""
    return ops.convert_to_numpy(model(inputs, training=False))


def predict_scene(model: keras.Model, features: np.ndarray) -> np.ndarray:
    """Run the sparse network on one whole scene and write its sites' probabilities into the grid.

    Args:
        model: a ``build_sparse_unet`` network.
        features: (X, Y, Z, C) the scene's input (``data.scene_voxels.scene_features``); the sites
            are the voxels whose occupied channel (the last) is set, the ``OCCUPIED`` voxels.

    Returns:
        (X, Y, Z, K) float32 probabilities: the network's at the sites, background (probability 1)
        everywhere else; the same form as ``models.scene_cnn.predict_scene``'s.
    """
    if np.ndim(features) != 4 or np.shape(features)[-1] != model.input["features"].shape[-1]:
        raise ValueError(f"the network reads grids with {model.input['features'].shape[-1]} channels, (X, Y, Z, C); "
                         f"got shape {np.shape(features)}")
    coords = np.argwhere(np.asarray(features)[..., -1] > 0.5).astype(np.int32)
    out = np.zeros((*np.shape(features)[:3], model.output_shape[-1]), np.float32)
    out[..., SEMANTIC_BACKGROUND] = 1.0
    if len(coords):
        out[tuple(coords.T)] = predict_sites(model, scene_inputs(features, coords, network_levels(model)))
    return out


def activation_floats(sites: Sequence[int], filters: Sequence[int], classes: int = CLASSES,
                      channels: int = FEATURES) -> int:
    """Floats in the outputs of the layers of ``build_sparse_unet`` for one scene, whose levels hold
    ``sites`` active sites (finest first, one count per level): the input features, the first
    convolution, two convolutions per level on the way down and a pooling after every level but the
    last; per level on the way up an unpooling (the coarser level's channels), a linear map, the
    concatenation (twice the channels) and two convolutions; the K probabilities.
    ``tests/test_sparse_scene.py`` checks it against the built network's outputs.

    Not counted: a ``SubmanifoldConv3D`` holds, while it runs, its (M, kernel^3 * filters) products
    and the rows it gathers from them, larger than its output but freed once the layer is done.
    """
    if len(sites) != len(filters):
        raise ValueError(f"one site count per level: {len(sites)} counts for {len(filters)} levels")
    total = sites[0] * (channels + filters[0] + classes)
    for level, (m, f) in enumerate(zip(sites, filters, strict=True)):
        if level == len(filters) - 1:
            total += 2 * m * f
        else:
            total += 2 * m * f + sites[level + 1] * f + m * (filters[level + 1] + f + 2 * f + 2 * f)
    return int(total)
