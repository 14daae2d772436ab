"""Images and geometry together, after 3DMV (Dai and Niessner 2018): a 2D network's features of the scans'
images carried back along the camera rays into the voxels, beside the fused geometry.

* ``ImageBudget`` with ``FULL`` and ``FAST``: the 2D network's size and training budget.
* ``image_inputs``: a view's channels, intensity, depth and a measured flag.
* ``train_image_network`` trains ``models.scene_cnn.build_image_network`` to label every pixel with
  the class of the surface it sees (the simulator knows it even where no depth was measured): the
  2D network is trained first and then frozen, as 3DMV trains its 2D stream before the 3D one.
* ``backproject`` writes per-pixel values into the voxel each pixel's measured point falls in, the
  maximum over the pixels and the views that land there (``geometry.depth_fusion.pixel_voxels``); voxels no
  pixel reaches get zeros. ``image_feature_grids`` does it for every scene with the frozen features.
* ``view_probabilities``, ``points_seen``, ``point_view_probabilities`` and ``fuse_views`` label
  measured points from views instead of voxels, as multi-view segmentation does: each view's per-pixel
  class probabilities go to the points that view saw (a point projects into a pixel whose measured
  depth agrees with it), and are fused over the views by mean or maximum; a point no view saw stays
  unlabelled (NaN), where MVCNN's pooling of a whole view's feature keeps no link to any point.
* ``train_reference_image_network`` trains the shipped 2D network (``SHIPPED``, longer than a chapter
  can afford) on the full-size chapter's scene set; ``shipped_image_network`` loads it when a scene
  set is the one it learnt from.
* ``geometry_inputs`` and ``ablation_inputs`` give the scene U-Net's input for each row of the
  ablation: geometry only, image features only, or both (each group of channels through a 3D
  convolution of its own, then joined).
* ``train_reference_scene_unet`` trains the U-Net on image features, or on geometry and image
  features, from the shipped 2D network (``SHIPPED_UNETS``), as the ablation the lecture quotes from
  3DMV does (``experiments.scene_comparisons.run_scene_images``), which loads them instead of
  training when they learnt from the same set, budget and 2D network.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
from keras import ops

from pcfilter_lib.data import scene_voxels
from pcfilter_lib.geometry.depth_fusion import pixel_voxels
from pcfilter_lib.io.files import sha256
from pcfilter_lib.io.model_cards import WEIGHTS, ModelCard, learnt_from, provenance, read_model_card
from pcfilter_lib.labels import SEMANTIC_BACKGROUND, SEMANTIC_NAMES
from pcfilter_lib.models import scene_cnn
from pcfilter_lib.models.saved import load_saved_model, save_for_inference
from pcfilter_lib.nn.fit import TrainResult, fit
from pcfilter_lib.nn.losses import ClassWeightedCrossentropy, inverse_frequency_weights
from pcfilter_lib.nn.scores import class_confusion
from pcfilter_lib.recipes import scene_segmentation as seg
from pcfilter_lib.recipes.common import environment, rounded

CLASSES = len(SEMANTIC_NAMES)
INPUTS = {"geometry": "geometry only", "images": "image features only", "both": "geometry + image features"}


@dataclass(frozen=True)
class ImageBudget:
    """The 2D network and how long it trains.

    Attributes:
        filters: channels of its full- and half-resolution levels.
        features: channels of the per-pixel features that are back-projected.
        epochs: passes over the training views.
        batch_size: views per step.
        learning_rate: Adam's step size.
    """

    filters: tuple[int, int] = (16, 32)
    features: int = 8
    epochs: int = 12
    batch_size: int = 4
    learning_rate: float = 3e-3


FULL = ImageBudget()
FAST = ImageBudget(filters=(8, 16), features=4, epochs=4)
REFERENCE = ImageBudget(epochs=40)  # the shipped network, trained once (``train_reference_image_network``)
SHIPPED = WEIGHTS / "scene_image_network.keras"
# The U-Nets of the two inputs with image features, trained once at the chapter's budget on the features
# of the shipped 2D network (``train_reference_scene_unet``); the geometry-only one is ``seg.SHIPPED["unet"]``.
SHIPPED_UNETS = {"images": WEIGHTS / "scene_unet_images.keras", "both": WEIGHTS / "scene_unet_both.keras"}


def image_inputs(views: Mapping[str, np.ndarray]) -> np.ndarray:
    """The 2D network's input of every view: (..., H, W) intensity and depth -> (..., H, W, 3) float32
    channels intensity, depth in metres and a flag for a measured pixel (intensity and depth are 0
    where nothing was measured)."""
    depth = np.asarray(views["depth"], np.float32)
    intensity = np.asarray(views["intensity"], np.float32)
    if depth.shape != intensity.shape or depth.ndim < 2:
        raise ValueError(f"depth {depth.shape} and intensity {intensity.shape} must be images of one shape")
    measured = np.isfinite(depth)
    return np.stack([np.where(measured, np.nan_to_num(intensity), 0.0), np.where(measured, depth, 0.0),
                     measured], axis=-1).astype(np.float32)


def train_image_network(inputs: np.ndarray, semantic: np.ndarray, budget: ImageBudget, weight_power: float = 0.5,
                        seed: int = 0) -> TrainResult:
    """Train the 2D stream to label every pixel with its surface's class.

    Args:
        inputs: (M, H, W, 3) views (``image_inputs``, scenes and views flattened together).
        semantic: (M, H, W) class codes.
        budget: the network and its budget.
        weight_power: class weights as in the voxel networks (``nn.losses.inverse_frequency_weights``).
        seed: the weights' and the batches' seed.

    Returns:
        The ``nn.fit.TrainResult``.
    """
    inputs, semantic = np.asarray(inputs, np.float32), np.asarray(semantic)
    if inputs.ndim != 4 or semantic.shape != inputs.shape[:3]:
        raise ValueError(f"need views (M, H, W, C) and classes (M, H, W), got {inputs.shape} and {semantic.shape}")
    keras.utils.set_random_seed(seed)
    model = scene_cnn.build_image_network(CLASSES, inputs.shape[-1], budget.filters, budget.features)
    weights = inverse_frequency_weights(semantic, CLASSES, power=weight_power)
    model.compile(optimizer=keras.optimizers.Adam(budget.learning_rate), loss=ClassWeightedCrossentropy(weights))
    return fit(model, (inputs, semantic), epochs=budget.epochs, batch_size=budget.batch_size, desc="image network")


def backproject(values: np.ndarray, voxels: np.ndarray, size: int) -> np.ndarray:
    """Carry per-pixel values into the voxels their points fall in, keeping the maximum where several land.

    Args:
        values: (V, H, W, F) one scene's per-pixel values (features or probabilities), from V views.
        voxels: (V, H, W) each pixel's flat voxel index, -1 where it has none (``pixel_voxels``).
        size: voxels in the grid.

    Returns:
        (size, F) float32: the maximum over every pixel of every view landing in a voxel, 0 where none does.
    """
    values, voxels = np.asarray(values, np.float32), np.asarray(voxels)
    if voxels.shape != values.shape[:-1]:
        raise ValueError(f"values {values.shape} and voxel indices {voxels.shape} must cover the same pixels")
    flat, index = values.reshape(-1, values.shape[-1]), voxels.ravel()
    hit = index >= 0
    flat, index = flat[hit], index[hit]
    out = np.zeros((int(size), values.shape[-1]), np.float32)
    if len(index):
        order = np.argsort(index, kind="stable")
        index, flat = index[order], flat[order]
        starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
        out[index[starts]] = np.maximum.reduceat(flat, starts, axis=0)
    return out


def scene_pixel_voxels(views: Mapping[str, np.ndarray], scene: int) -> np.ndarray:
    """(V, H, W) flat voxel indices of scene ``scene``'s pixels (``load_scene_views`` arrays)."""
    grid = scene_voxels.scene_grid_of(views, scene)
    return np.stack([pixel_voxels(scene_voxels.scene_view(views, scene, v), grid)
                     for v in range(views["depth"].shape[1])])


def _per_view(model: keras.Model, inputs: np.ndarray) -> np.ndarray:
    return ops.convert_to_numpy(model(inputs, training=False))


def image_feature_grids(model: keras.Model, views: Mapping[str, np.ndarray], probabilities: bool = False
                        ) -> np.ndarray:
    """Every scene's back-projected image features: (N, R, R, R, F) float32.

    Args:
        model: a trained ``build_image_network``.
        views: ``load_scene_views`` arrays of N scenes.
        probabilities: back-project the class probabilities instead of the features (the 2D network alone).
    """
    stream = model if probabilities else scene_cnn.image_features(model)
    inputs = image_inputs(views)
    grids = []
    for n in range(len(inputs)):
        side = int(views["resolution"][n])
        values = _per_view(stream, inputs[n])
        grids.append(backproject(values, scene_pixel_voxels(views, n), side ** 3).reshape(side, side, side, -1))
    return np.stack(grids)


def image_only_prediction(probabilities: np.ndarray) -> np.ndarray:
    """Class probabilities of voxels from back-projected 2D probabilities (R, R, R, K): background where no
    pixel landed."""
    out = np.array(probabilities, np.float32)
    empty = ~out.any(axis=-1)
    out[empty, SEMANTIC_BACKGROUND] = 1.0
    return out


def view_probabilities(model: keras.Model, views: Mapping[str, np.ndarray], scene: int) -> np.ndarray:
    """The 2D network's class probabilities for every pixel of one scene's views: (V, H, W, K) float32.

    Args:
        model: a trained ``build_image_network``.
        views: ``load_scene_views`` arrays.
        scene: the scene's index in them.
    """
    inputs = image_inputs({"depth": views["depth"][scene], "intensity": views["intensity"][scene]})
    return _per_view(model, inputs).astype(np.float32)


def points_seen(points: np.ndarray, views: Mapping[str, np.ndarray], scene: int, tolerance: float | None = None,
                view: np.ndarray | None = None, pixel: np.ndarray | None = None) -> np.ndarray:
    """Which pixel of each view saw each point: a point is seen by a view where it projects into a pixel
    whose measured depth (along the camera's z axis) agrees with the point's to within ``tolerance``.

    Args:
        points: (P, 3) world coordinates.
        views: ``load_scene_views`` arrays.
        scene: the scene's index in them.
        tolerance: metres; None takes the scene's voxel size.
        view, pixel: (P,) the view and flat pixel index that measured each point, if known
            (``recipes.scene_points.ScenePoints``): that pixel then counts as seeing it, whatever the
            rounding of its projection.

    Returns:
        (P, V) int64 flat pixel indices into each view's (H, W) image, -1 where the view did not see the
        point (behind it, outside its image, hidden by a nearer surface or on a pixel with no depth).

    Raises:
        ValueError: ``points`` are not (P, 3), or ``view`` and ``pixel`` do not match them.
    """
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (P, 3), got shape {points.shape}")
    depth = np.asarray(views["depth"][scene], np.float64)
    n_views, height, width = depth.shape
    tolerance = float(views["voxel_size"][scene]) if tolerance is None else float(tolerance)
    out = np.full((len(points), n_views), -1, np.int64)
    for v in range(n_views):
        K = np.asarray(views["intrinsics"][scene, v], np.float64)
        pose = np.asarray(views["poses"][scene, v], np.float64)
        camera = (points - pose[:3, 3]) @ pose[:3, :3]  # world -> camera: the pose's inverse
        z = camera[:, 2]
        ahead = z > 1e-9
        safe = np.where(ahead, z, 1.0)
        u = np.floor(K[0, 0] * camera[:, 0] / safe + K[0, 2])
        r = np.floor(K[1, 1] * camera[:, 1] / safe + K[1, 2])
        inside = ahead & (u >= 0) & (u < width) & (r >= 0) & (r < height)
        flat = np.where(inside, r * width + u, 0).astype(np.int64)
        measured = depth[v].ravel()[flat]
        with np.errstate(invalid="ignore"):
            seen = inside & np.isfinite(measured) & (np.abs(measured - z) <= tolerance)
        out[seen, v] = flat[seen]
    if view is not None or pixel is not None:
        view, pixel = np.asarray(view, np.int64), np.asarray(pixel, np.int64)
        if view.shape != (len(points),) or pixel.shape != (len(points),):
            raise ValueError(f"view and pixel must be ({len(points)},), got {view.shape} and {pixel.shape}")
        out[np.arange(len(points)), view] = pixel
    return out


def point_view_probabilities(probabilities: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Each view's class probabilities at the points it saw.

    Args:
        probabilities: (V, H, W, K) per-pixel probabilities of one scene's views (``view_probabilities``).
        pixels: (P, V) the pixel of each view that saw each point, -1 where none did (``points_seen``).

    Returns:
        (P, V, K) float32, NaN where the view did not see the point.

    Raises:
        ValueError: the two do not have the same views.
    """
    probabilities, pixels = np.asarray(probabilities, np.float32), np.asarray(pixels, np.int64)
    if probabilities.ndim != 4 or pixels.ndim != 2 or pixels.shape[1] != probabilities.shape[0]:
        raise ValueError(f"need probabilities (V, H, W, K) and pixels (P, V) of the same V, got "
                         f"{probabilities.shape} and {pixels.shape}")
    flat = probabilities.reshape(probabilities.shape[0], -1, probabilities.shape[-1])
    out = flat[np.arange(pixels.shape[1]), np.maximum(pixels, 0)]  # (P, V, K)
    out[pixels < 0] = np.nan
    return out


FUSIONS = ("mean", "max")


def fuse_views(per_view: np.ndarray, how: str = "mean") -> np.ndarray:
    """Fuse the views' class probabilities of points into one per point.

    Args:
        per_view: (P, V, K) probabilities, NaN where a view did not see the point
            (``point_view_probabilities``).
        how: ``mean`` (the average over the views that saw the point) or ``max`` (each class's largest
            probability over them, as MVCNN pools over views).

    Returns:
        (P, K) float32, NaN in the rows of points no view saw: they are unseen, not labelled.

    Raises:
        ValueError: ``how`` is not one of ``FUSIONS``, or ``per_view`` is not (P, V, K).
    """
    if how not in FUSIONS:
        raise ValueError(f"unknown fusion {how!r}; choose one of {FUSIONS}")
    per_view = np.asarray(per_view, np.float32)
    if per_view.ndim != 3:
        raise ValueError(f"per-view probabilities must be (P, V, K), got shape {per_view.shape}")
    seen = np.isfinite(per_view).all(axis=-1)
    count = seen.sum(axis=1)
    if how == "mean":
        fused = np.where(seen[..., None], per_view, 0.0).sum(axis=1) / np.maximum(count, 1)[:, None]
    else:
        fused = np.where(seen[..., None], per_view, -np.inf).max(axis=1, initial=-np.inf)
    fused[count == 0] = np.nan
    return fused.astype(np.float32)


def joined_inputs(geometry: np.ndarray, images: np.ndarray, which: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """A U-Net input of the ablation and its streams: ``geometry`` (N, X, Y, Z, 3), ``images`` (N, X, Y, Z,
    F), ``which`` one of ``INPUTS``."""
    if which == "geometry":
        return geometry, (geometry.shape[-1],)
    if which == "images":
        return images, (images.shape[-1],)
    if which == "both":
        return np.concatenate([geometry, images], axis=-1), (geometry.shape[-1], images.shape[-1])
    raise ValueError(f"unknown input {which!r}; choose one of {tuple(INPUTS)}")


def flat_views(views: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``load_scene_views`` arrays as the 2D network's inputs (M, H, W, 3) and classes (M, H, W), the scenes'
    views one after the other."""
    inputs = image_inputs(views)
    return inputs.reshape(-1, *inputs.shape[2:]), views["semantic"].reshape(-1, *inputs.shape[2:4])


def pixel_scores(model: keras.Model, inputs: np.ndarray, semantic: np.ndarray) -> dict:
    """The 2D network on views: ``pixel_accuracy`` and ``pixel_iou`` {class name: IoU} of the classes present."""
    confusion = np.zeros((CLASSES, CLASSES), np.int64)
    for start in range(0, len(inputs), 8):
        predicted = np.argmax(_per_view(model, inputs[start:start + 8]), axis=-1)
        confusion += class_confusion(semantic[start:start + 8].ravel(), predicted.ravel(), CLASSES)
    iou = seg.class_iou(confusion)
    present = [c for c in range(CLASSES) if confusion[c].sum() > 0]
    return {"pixel_accuracy": float(np.trace(confusion) / confusion.sum()),
            "pixel_iou": {SEMANTIC_NAMES[c]: float(iou[c]) for c in present}}


def train_reference_image_network(out: str | os.PathLike, data_dir: str | os.PathLike,
                                  recipe: seg.SceneRecipe = seg.CHAPTER_FULL, budget: ImageBudget = REFERENCE,
                                  seed: int = 0, progress: bool = True) -> ModelCard:
    """Train the shipped 2D network on the training views of ``recipe``'s scene set and save
    ``out/scene_image_network.keras``; returns its model card (``command`` left for the caller)."""
    start = time.perf_counter()
    folder = seg.ensure_scene_grids(data_dir, recipe, progress)
    train_x, train_y = flat_views(scene_voxels.load_scene_views(folder, "train"))
    test_x, test_y = flat_views(scene_voxels.load_scene_views(folder, "test"))
    run = train_image_network(train_x, train_y, budget, recipe.weight_power, seed)
    path = save_for_inference(run.model, Path(out) / SHIPPED.name)
    return ModelCard(
        model=path.name, target="sceneimages",
        load_with="import pcfilter_lib.models.scene_cnn; keras.models.load_model(path)",
        data=provenance(folder, train_views=len(train_x), test_views=len(test_x)),
        settings={**asdict(budget), "weight_power": recipe.weight_power, "seed": seed},
        test=rounded(pixel_scores(run.model, test_x, test_y), 4), parameters=int(run.model.count_params()),
        file_bytes=path.stat().st_size, training_seconds=round(run.seconds, 1),
        wall_seconds=round(time.perf_counter() - start, 1), history=rounded(run.history, 4),
        environment=environment())


def shipped_image_network(folder: str | os.PathLike, path: str | os.PathLike = SHIPPED) -> keras.Model | None:
    """The shipped 2D network if it learnt from a scene set of the same recipe as the one in ``folder``
    (``io.model_cards.learnt_from``), else None: another set (fast mode, another seed) trains its own.
    Its budget is not compared: it trained longer than a chapter can (``REFERENCE``)."""
    if not learnt_from(read_model_card(path), folder):
        return None
    return load_saved_model(path, "2D image network")


def geometry_inputs(grids: dict) -> dict:
    """Each split's scene features (``scene_voxels.scene_features``)."""
    return {split: scene_voxels.scene_features(grid["tsdf"], grid["state"]) for split, grid in grids.items()}


def ablation_inputs(geometry: dict, features: dict, which: str) -> tuple[dict, tuple[int, ...]]:
    """Each split's input of one row of the ablation, and its streams."""
    joined = {split: joined_inputs(geometry[split], features[split], which) for split in geometry}
    return {split: x for split, (x, _) in joined.items()}, joined["train"][1]


def train_reference_scene_unet(out: str | os.PathLike, data_dir: str | os.PathLike, which: str,
                               recipe: seg.SceneRecipe = seg.CHAPTER_FULL, image_path: str | os.PathLike = SHIPPED,
                               progress: bool = True) -> ModelCard:
    """Train the scene U-Net on input ``which`` ("images" or "both") of ``recipe``'s scene set, with the
    features of the shipped 2D network (``image_path``, which must have learnt from this set), as
    ``run_scene_images`` does, and save it as ``out/<name of SHIPPED_UNETS[which]>``; returns its card
    (``command`` left for the caller)."""
    if which not in SHIPPED_UNETS:
        raise ValueError(f"unknown input {which!r}; choose one of {tuple(SHIPPED_UNETS)}")
    started = time.perf_counter()
    folder = seg.ensure_scene_grids(data_dir, recipe, progress)
    image_model = shipped_image_network(folder, image_path)
    if image_model is None:
        raise ValueError(f"the 2D network {image_path} did not learn from the scene set in {folder}; train it first "
                         "with 'python data_scripts/train_reference_models.py --target sceneimages'")
    grids = {split: scene_voxels.load_scene_grids(folder, split) for split in ("train", "test")}
    features = {split: image_feature_grids(image_model, scene_voxels.load_scene_views(folder, split))
                for split in grids}
    inputs, streams = ablation_inputs(geometry_inputs(grids), features, which)
    result = seg.train_scene_unet(inputs["train"], grids["train"]["labels"], recipe, recipe.seed, streams=streams)
    scores = seg.segmentation_scores(lambda scene: scene_cnn.predict_scene(result.model, scene), inputs["test"],
                                     grids["test"]["labels"])
    path = save_for_inference(result.model, Path(out) / SHIPPED_UNETS[which].name)
    target = {"images": "sceneunetimages", "both": "sceneunetboth"}[which]
    return seg.scene_card(path, target, folder, seg.network_settings(recipe, which), result, scores, started,
                          train_scenes=len(inputs["train"]), test_scenes=len(inputs["test"]),
                          image_network_sha256=sha256(image_path))


