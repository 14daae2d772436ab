"""What a 3D network's resolution costs and buys, and how a partial scan changes a surface's spectrum.

* ``resolution_study`` trains the same fully convolutional 3D U-Net (``models.scene_cnn``) on the same
  scenes at several resolutions (the grids of ``data.scene_voxels`` coarsened block by block) and
  returns one row per resolution: accuracy (IoU scored at the finest resolution, so that a coarse
  voxel that smears a thin part over its neighbours is charged for it), memory (the dense input and
  the activations of one whole-scene pass) and time (training, and inference per scene). The lecture's
  point: memory and compute grow with the cube of the resolution, and detail needs resolution.
* ``eigenbasis_under_partial_scan`` compares the low-frequency Laplace-Beltrami eigenbasis of a
  procedural part (``simulate.scene.part_mesh``) with that of the part as one scan sees it
  (``geometry.laplacian``): why spectral convolutions defined on one surface do not carry over to a
  partial scan of it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import keras
import numpy as np

from pcfilter_lib.data import scene_voxels
from pcfilter_lib.geometry.laplacian import basis_change, cotangent_laplacian, laplace_beltrami_basis, visible_submesh
from pcfilter_lib.labels import SEMANTIC_BACKGROUND
from pcfilter_lib.models import scene_cnn
from pcfilter_lib.nn.scores import class_confusion
from pcfilter_lib.recipes.scene_segmentation import CLASSES, SceneRecipe, class_iou, train_scene_unet
from pcfilter_lib.simulate.scene import part_mesh


def unet_activation_floats(side: int, filters: Sequence[int], classes: int = CLASSES, channels: int = 3) -> int:
    """Floats the U-Net of ``models.scene_cnn.build_scene_unet`` (one input stream) holds in its layers'
    outputs for one grid of ``side`` voxels a side (padded to the pooling multiple), the memory a
    forward pass needs at least: the padded input and the stream's copy of it (``channels`` each) and
    the stream's convolution; per level, two convolutions and a pooling on the way down, and a
    transposed convolution, the concatenation (twice the channels) and two convolutions on the way up;
    the output's K classes twice (the probabilities and their crop). Every layer's output is counted:
    ``tests/test_scene_structure.py`` sums the built network's."""
    levels = len(filters)
    side = -(-side // 2 ** (levels - 1)) * 2 ** (levels - 1)
    total = (2 * classes + 2 * channels + filters[0]) * side ** 3
    for level, f in enumerate(filters):
        voxels = (side // 2 ** level) ** 3
        total += voxels * f * (2 if level == levels - 1 else 2 + 1 + 2 + 2) + (0 if level == levels - 1 else
                                                                               voxels // 8 * f)
    return int(total)


def _upsample(grid: np.ndarray, factor: int) -> np.ndarray:
    for axis in (-3, -2, -1):
        grid = np.repeat(grid, factor, axis=axis)
    return grid


def resolution_study(train: dict, test: dict, recipe: SceneRecipe, resolutions: Sequence[int] = (16, 32, 64),
                     seed: int = 0, trained: tuple[keras.Model, float] | None = None) -> list[dict]:
    """Train and score one 3D U-Net at several resolutions of the same scenes.

    Args:
        train: training grids as ``data.scene_voxels.load_scene_grids`` returns them (``tsdf``,
            ``state``, ``labels``, (N, R, R, R)).
        test: test grids, the same way.
        recipe: the budget (``epochs``, ``chunks``, ``batch_size``, ``learning_rate``, ``unet_filters``);
            chunks span half the scene at every resolution.
        resolutions: voxels per side to try; each must divide R.
        seed: the chunks' and weights' seed.
        trained: a U-Net that ``train_scene_unet`` already trained on the grids at their own resolution
            with ``recipe`` and ``seed``, and its training seconds (``run_scene_segmentation``'s): the
            row of that resolution uses it instead of training the same network again, when its chunks
            (``recipe.chunk``) are the study's (half the scene).

    Returns:
        One row per resolution: ``resolution``, ``voxel_mm``, ``parameters``, ``input_bytes`` (dense
        float32 input of one scene), ``activation_bytes`` (``unet_activation_floats`` times 4),
        ``train_seconds``, ``seconds_per_scene``, ``mean_iou`` and ``iou`` per class (scored at R).

    Raises:
        ValueError: a resolution does not divide R or is below 8.
    """
    fine = train["labels"].shape[-1]
    rows = []
    for resolution in resolutions:
        if resolution < 8 or fine % resolution:
            raise ValueError(f"resolution {resolution} must be at least 8 and divide the grids' {fine} voxels")
        factor = fine // resolution
        coarse = [scene_voxels.coarsen(g["tsdf"], g["state"], g["labels"], factor) for g in (train, test)]
        (train_tsdf, train_state, train_labels), (test_tsdf, test_state, _) = coarse
        budget = SceneRecipe(**{**recipe.__dict__, "chunk": max(8, resolution // 2)})
        if trained is not None and factor == 1 and budget == recipe:
            model, train_seconds = trained
        else:
            result = train_scene_unet(scene_voxels.scene_features(train_tsdf, train_state), train_labels, budget,
                                      seed)
            model, train_seconds = result.model, result.seconds
        features = scene_voxels.scene_features(test_tsdf, test_state)
        confusion = np.zeros((CLASSES, CLASSES), np.int64)
        seconds = []
        for scene, truth in zip(features, test["labels"], strict=True):
            start = time.perf_counter()
            predicted = np.argmax(scene_cnn.predict_scene(model, scene), axis=-1)
            seconds.append(time.perf_counter() - start)
            confusion += class_confusion(truth.ravel(), _upsample(predicted, factor).ravel(), CLASSES)
        iou = class_iou(confusion)
        surface = [c for c in range(CLASSES) if confusion[c].sum() > 0 and c != SEMANTIC_BACKGROUND]
        rows.append({"resolution": int(resolution), "voxel_mm": 1000 * scene_voxels.GRID_SIDE / resolution,
                     "parameters": int(model.count_params()), "input_bytes": 4 * 3 * resolution ** 3,
                     "activation_bytes": 4 * unet_activation_floats(resolution, recipe.unet_filters),
                     "train_seconds": train_seconds, "seconds_per_scene": float(np.median(seconds)),
                     "mean_iou": float(np.mean(iou[surface])) if surface else float("nan"),
                     "iou": {int(c): float(iou[c]) for c in surface}})
    return rows


BLOB = {"radius": 0.04, "squash": 0.9, "bumps": [[0.0, 0.6, 0.8, 0.15], [0.8, -0.6, 0.0, -0.1], [0.0, 0.0, -1.0, 0.1]]}


def eigenbasis_under_partial_scan(kind: str = "blob", params: dict | None = None, k: int = 8,
                                  eye=(0.05, 0.0, 0.25)) -> dict:
    """The Laplace-Beltrami eigenbasis of a procedural part against that of its partial scan.

    Args:
        kind: a part type of ``simulate.scene.part_mesh`` with a fine, even triangulation ("blob",
            "sphere", "torus").
        params: its parameters; ``BLOB`` (a bumpy fruit of 4 cm radius) for the default.
        k: eigenpairs compared.
        eye: the scanner's position (metres), the part centred at the origin.

    Returns:
        ``vertices`` and ``seen_vertices``, ``eigenvalues_full`` and ``eigenvalues_partial`` (k,),
        and the keys of ``geometry.laplacian.basis_change`` (relative eigenvalue shift, principal
        angles between the bases, their mean).
    """
    vertices, triangles = part_mesh(kind, BLOB if params is None and kind == "blob" else params or {})
    full = laplace_beltrami_basis(vertices, triangles, k)
    seen_vertices, seen_triangles, kept = visible_submesh(vertices, triangles, eye)
    partial = laplace_beltrami_basis(seen_vertices, seen_triangles, k)
    mass = cotangent_laplacian(seen_vertices, seen_triangles)[1].diagonal()
    change = basis_change(full, partial, kept, mass)
    return {"vertices": len(vertices), "seen_vertices": len(seen_vertices), "eigenvalues_full": full[0],
            "eigenvalues_partial": partial[0], **change}
