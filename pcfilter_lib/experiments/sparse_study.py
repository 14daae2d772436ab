"""Section 8c's study: does sparsity buy resolution, and does resolution buy accuracy?

* ``layer_agreement`` runs the trainable ``nn.sparse_layers.SubmanifoldConv3D`` on a scene's active
  sites beside the NumPy layer of ``lessons.sparse_conv`` and a dense ``Conv3D`` with the same
  weights, and gives their largest differences at the sites.
* ``run_sparse_study`` takes the four networks of ``recipes.sparse_scenes.scene_networks`` (the dense
  and the sparse U-Net, each at chapter 8's resolution R and at 2R, on the same scenes) and scores
  every one on the same test scenes at both resolutions: a prediction at R is carried to 2R by
  giving each of a voxel's eight children its class, and one at 2R to R by ``data.scene_voxels.coarsen``'s
  rule for labels (the most frequent surface class of the 2x2x2 block, background only where the
  block holds none). The two grids are not nested block for block: each bottom lies three of its
  own voxels below the bin floor, so the blocks are shifted by three fine voxels in height
  (``grid_shift``). Every voxel of the grid counts, as in chapter 8; the sparse network calls every
  voxel outside its sites background. With the scores go the network's weights, the floats of its
  layers' outputs for one scene (``experiments.scene_structure.unet_activation_floats``,
  ``models.sparse_scene.activation_floats``), its training seconds and its milliseconds per test
  scene.
"""

from __future__ import annotations

import os
import time

import keras
import numpy as np

from pcfilter_lib.data import scene_voxels
from pcfilter_lib.experiments.scene_structure import unet_activation_floats
from pcfilter_lib.geometry.depth_fusion import OCCUPIED
from pcfilter_lib.labels import SEMANTIC_BACKGROUND
from pcfilter_lib.lessons import sparse_conv
from pcfilter_lib.models import scene_cnn, sparse_scene
from pcfilter_lib.nn.scores import class_confusion
from pcfilter_lib.nn.sparse_layers import SubmanifoldConv3D
from pcfilter_lib.recipes import scene_segmentation as seg
from pcfilter_lib.recipes import sparse_scenes as ss
from pcfilter_lib.simulate.dataset import split_sizes

ORDER = ("dense R", "dense 2R", "sparse R", "sparse 2R")


def layer_agreement(features: np.ndarray, coords: np.ndarray, filters: int = 8, seed: int = 0) -> dict:
    """One ``SubmanifoldConv3D`` (random weights) on the sites ``coords`` of the grid ``features``,
    against the NumPy layer of ``lessons.sparse_conv`` and a dense ``Conv3D`` with the same weights on
    the grid that holds the sites' features and zeros elsewhere.

    Args:
        features: (X, Y, Z, C) a scene's voxel features.
        coords: (M, 3) its active sites.
        filters: output channels.
        seed: the weights' seed.

    Returns:
        ``sites``, ``rules`` (entries of the rulebook), ``numpy`` and ``dense``: the largest absolute
        difference of the Keras layer's output from each, and ``scale``, its largest absolute output.
    """
    keras.utils.set_random_seed(seed)
    coords = np.asarray(coords)
    site_features = np.asarray(features, np.float32)[tuple(coords.T)]
    rules = sparse_scene.scene_inputs(features, coords, 1)
    layer = SubmanifoldConv3D(filters, kernel_initializer="random_normal")
    out = keras.ops.convert_to_numpy(layer([site_features, *(rules[f"rules0_{r}"] for r in sparse_scene.RULES)]))
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in layer.weights)
    lesson, _ = sparse_conv.conv3d(sparse_conv.SparseVoxels.from_coords(coords, site_features), kernel, bias)
    grid = np.zeros(np.shape(features)[:3] + (site_features.shape[1],), np.float32)
    grid[tuple(coords.T)] = site_features
    dense = keras.layers.Conv3D(filters, 3, padding="same")
    dense.build(grid[None].shape)
    dense.set_weights([kernel, bias])
    expected = keras.ops.convert_to_numpy(dense(grid[None]))[0][tuple(coords.T)]
    return {"sites": len(coords), "rules": len(rules["rules0_inputs"]),
            "numpy": float(np.abs(out - lesson.features).max()), "dense": float(np.abs(out - expected).max()),
            "scale": float(np.abs(out).max())}


def grid_shift(factor: int) -> int:
    """How many voxels of the finer grid its bottom lies above the coarser one's, for grids of
    ``data.scene_voxels.scene_grid`` whose resolutions differ by ``factor``: each grid's bottom lies
    ``FLOOR_VOXELS`` of *its own* voxels below the bin floor, so the finer grid starts
    ``FLOOR_VOXELS * (factor - 1)`` fine voxels higher. Fine voxel k lies in coarse voxel
    (k + shift) // factor."""
    return scene_voxels.FLOOR_VOXELS * (factor - 1)


def upsample(classes: np.ndarray, factor: int, shift: int = 0) -> np.ndarray:
    """(..., X, Y, Z) classes -> (..., fX, fY, fZ): fine voxel (i, j, k) takes the class of coarse
    voxel (i // f, j // f, (k + shift) // f); background above the coarse grid's top."""
    for axis in (-3, -2, -1):
        classes = np.repeat(classes, factor, axis=axis)
    if shift:
        top = np.full((*classes.shape[:-1], shift), SEMANTIC_BACKGROUND, classes.dtype)
        classes = np.concatenate([classes, top], axis=-1)[..., shift:]
    return classes


def downsample(classes: np.ndarray, factor: int, shift: int = 0) -> np.ndarray:
    """(..., X, Y, Z) classes -> (..., X/f, Y/f, Z/f) by ``data.scene_voxels.coarsen``'s rule for labels,
    over the blocks of fine voxels that ``upsample`` with the same ``shift`` gives each coarse voxel
    (background below the fine grid's bottom; fine voxels above the coarse grid's top are dropped)."""
    z = classes.shape[-1]
    if shift:
        pad = [(0, 0)] * (classes.ndim - 1) + [(shift, -(z + shift) % factor)]
        classes = np.pad(classes, pad, constant_values=SEMANTIC_BACKGROUND)
    zeros = np.zeros(classes.shape, np.float32)
    return scene_voxels.coarsen(zeros, zeros.astype(np.uint8), classes, factor)[2][..., :z // factor]


PREDICT = {"dense": scene_cnn.predict_scene, "sparse": sparse_scene.predict_scene}


def run_sparse_study(scene: seg.SceneRecipe, sparse: ss.SparseRecipe, data_dir: str | os.PathLike,
                     progress: bool = False, shipped: bool = True, models: dict | None = None) -> dict:
    """Get the four networks (shipped where their cards match) and score them on the test scenes.

    Args:
        scene: chapter 8's scene set and dense budget at R (``doubled`` gives 2R's).
        sparse: the sparse network's budget.
        data_dir: the data folder that holds (or receives) both scene sets.
        progress: show progress bars while a scene set is made.
        shipped: load shipped networks where their cards record this scene set and budget.
        models: a dict that receives the four networks under ``ORDER``'s names.

    Returns:
        ``resolutions`` (R, 2R), ``scenes`` (train and test counts), ``sites`` (per resolution: the
        mean number of active sites of a test scene, their share of the grid, and ``coverage``, the
        share of the true surface voxels that are active sites, all that the sparse network can
        label) and ``rows``, one per network in ``ORDER``: ``network``, ``kind``, ``resolution``,
        ``parameters``, ``activation_floats`` (mean over the test scenes for the sparse network),
        ``train_seconds``, ``shipped``, ``ms_per_scene`` (median, the sparse network's rulebooks
        included), and ``mean_iou``, ``part_iou``, ``accuracy`` (over the true surface voxels) and
        ``iou`` (per class) scored at R (``at_r``) and at 2R (``at_2r``).
    """
    runs = ss.scene_networks(scene, sparse, data_dir, progress, shipped)
    tests, features, sites = {}, {}, {}
    for tag, recipe in (("R", scene), ("2R", ss.doubled(scene))):
        folder = seg.ensure_scene_grids(data_dir, recipe, progress, splits=("test",))
        tests[tag] = scene_voxels.load_scene_grids(folder, "test")
        features[tag] = scene_voxels.scene_features(tests[tag]["tsdf"], tests[tag]["state"])
        coords = [sparse_scene.active_sites(state) for state in tests[tag]["state"]]
        surface = tests[tag]["labels"] != SEMANTIC_BACKGROUND
        active = np.stack([s == OCCUPIED for s in tests[tag]["state"]])
        sites[tag] = {"resolution": recipe.resolution, "sites": float(np.mean([len(c) for c in coords])),
                      "share": float(active.mean()), "coverage": float((surface & active).sum() / surface.sum())}
    train_scenes = split_sizes(scene.n_scenes, scene.split)["train"]
    rows = []
    for name in ORDER:
        run, from_card = runs[name]
        kind, tag = name.split()
        model = run.model
        if models is not None:
            models[name] = model
        predict = PREDICT[kind]
        predict(model, features[tag][0][:16, :16, :16])  # the first call sets the network up: untimed
        confusions = {"R": np.zeros((seg.CLASSES, seg.CLASSES), np.int64)}
        confusions["2R"] = confusions["R"].copy()
        seconds = []
        for n, x in enumerate(features[tag]):
            start = time.perf_counter()
            classes = np.argmax(predict(model, x), axis=-1).astype(np.uint8)
            seconds.append(time.perf_counter() - start)
            at = ({"R": classes, "2R": upsample(classes, 2, grid_shift(2))} if tag == "R" else
                  {"R": downsample(classes, 2, grid_shift(2)), "2R": classes})
            for where in ("R", "2R"):
                confusions[where] += class_confusion(tests[where]["labels"][n].ravel(), at[where].ravel(), seg.CLASSES)
        side = sites[tag]["resolution"]
        if kind == "dense":
            floats = unet_activation_floats(side, scene.unet_filters)
        else:
            floats = float(np.mean([sparse_scene.activation_floats([int(m) for m in np.atleast_1d(levels)],
                                                                   sparse.filters)
                                    for levels in _level_counts(tests[tag]["state"], len(sparse.filters))]))
        scores = {where: seg.confusion_scores(confusions[where], seconds) for where in ("R", "2R")}
        rows.append({"network": name, "kind": kind, "resolution": side, "parameters": int(model.count_params()),
                     "activation_floats": floats, "train_seconds": float(run.seconds), "shipped": bool(from_card),
                     "ms_per_scene": 1000 * float(np.median(seconds)),
                     "at_r": {k: scores["R"][k] for k in ("mean_iou", "part_iou", "accuracy", "iou")},
                     "at_2r": {k: scores["2R"][k] for k in ("mean_iou", "part_iou", "accuracy", "iou")}})
    return {"resolutions": (scene.resolution, 2 * scene.resolution),
            "scenes": {"train": train_scenes, "test": len(tests["R"]["labels"])}, "sites": sites, "rows": rows}


def _level_counts(states: np.ndarray, levels: int) -> list[list[int]]:
    """Per scene, the number of active sites of each of ``levels`` levels."""
    return [[len(a) for a in sparse_scene.site_levels(sparse_scene.active_sites(s), levels)[0]] for s in states]
