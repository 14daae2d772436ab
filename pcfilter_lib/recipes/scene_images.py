"""Images and geometry together, after 3DMV (Dai and Niessner 2018): a 2D network's features of the scans'
images carried back along the camera rays into the voxels, beside the fused geometry.

* ``ImageBudget`` with ``FULL`` and ``FAST``: the 2D network's size and training budget.
* ``image_inputs``: a view's channels, intensity, depth and a measured flag.
* ``train_image_network`` trains ``models.scene_cnn.build_image_network`` to label every pixel with
  the class of the surface it sees (the simulator knows it even where no depth was measured): the
  2D network is trained first and then frozen, as 3DMV trains its 2D stream before the 3D one.
* ``backproject`` writes per-pixel values into the voxel each pixel's measured point falls in, the
  maximum over the pixels and the views that land there (``geometry.voxels.pixel_voxels``); voxels no
  pixel reaches get zeros. ``image_feature_grids`` does it for every scene with the frozen features.
* ``run_scene_images`` trains the scene U-Net on three inputs at one budget, geometry only, image
  features only and both (each group of channels through a 3D convolution of its own, then joined),
  and scores them on whole test scenes beside the 2D network alone (its class probabilities
  back-projected, background where no pixel lands): the ablation the lecture quotes from 3DMV.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import keras
import numpy as np
from keras import ops

from pcfilter_lib.data import scene_voxels
from pcfilter_lib.geometry.voxels import pixel_voxels
from pcfilter_lib.labels import SEMANTIC_BACKGROUND, SEMANTIC_NAMES
from pcfilter_lib.models import scene_cnn
from pcfilter_lib.nn.fit import TrainResult, fit
from pcfilter_lib.nn.losses import ClassWeightedCrossentropy, inverse_frequency_weights
from pcfilter_lib.recipes import scene_segmentation as seg

CLASSES = len(SEMANTIC_NAMES)
CHANNELS = 3  # intensity, depth, measured
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


def run_scene_images(recipe: seg.SceneRecipe, data_dir: str | os.PathLike, budget: ImageBudget = FULL,
                     progress: bool = False, models: dict | None = None) -> dict:
    """The 3DMV ablation on the recipe's scene set: the 2D network, then the scene U-Net on three inputs.

    Args:
        recipe: the scene set and the U-Net's budget (``recipes.scene_segmentation``).
        data_dir: the data folder that holds (or receives) the scene set.
        budget: the 2D network's budget.
        progress: show progress bars.
        models: a dict that receives the trained networks (``image`` and one per input of ``INPUTS``).

    Returns:
        ``recipe`` and ``budget`` (their settings), ``image`` (the 2D network's pixel accuracy on the
        test views, training seconds, parameters and the time to back-project one scene), ``image_only``
        (its back-projected probabilities scored as a voxel prediction) and one entry per input of
        ``INPUTS``, each the ``segmentation_scores`` plus ``train_seconds``, ``first_loss``,
        ``final_loss`` and ``parameters``.
    """
    folder = seg.ensure_scene_grids(data_dir, recipe, progress)
    grids = {split: scene_voxels.load_scene_grids(folder, split) for split in ("train", "test")}
    views = {split: scene_voxels.load_scene_views(folder, split) for split in ("train", "test")}
    train_views = image_inputs(views["train"])
    image = train_image_network(train_views.reshape(-1, *train_views.shape[2:]),
                                views["train"]["semantic"].reshape(-1, *train_views.shape[2:4]), budget,
                                recipe.weight_power, recipe.seed)
    test_views = image_inputs(views["test"])
    predicted = np.argmax(_per_view(image.model, test_views.reshape(-1, *test_views.shape[2:])), axis=-1)
    pixel_accuracy = float(np.mean(predicted == views["test"]["semantic"].reshape(predicted.shape)))
    start = time.perf_counter()
    features = {split: image_feature_grids(image.model, views[split]) for split in ("train", "test")}
    backprojection_seconds = (time.perf_counter() - start) / sum(len(f) for f in features.values())
    alone = image_feature_grids(image.model, views["test"], probabilities=True)
    report = {"recipe": asdict(recipe), "budget": asdict(budget),
              "image": {"pixel_accuracy": pixel_accuracy,
                        "train_seconds": image.seconds, "parameters": int(image.model.count_params()),
                        "backprojection_seconds": backprojection_seconds,
                        "voxels_reached": float(np.mean(features["test"].any(axis=-1)))},
              "image_only": seg.segmentation_scores(lambda p: p, np.stack([image_only_prediction(a) for a in alone]),
                                                    grids["test"]["labels"])}
    if models is not None:
        models["image"] = image.model
    geometry = {split: scene_voxels.scene_features(grids[split]["tsdf"], grids[split]["state"])
                for split in ("train", "test")}
    for which in INPUTS:
        train_x, streams = joined_inputs(geometry["train"], features["train"], which)
        test_x, _ = joined_inputs(geometry["test"], features["test"], which)
        result = seg.train_scene_unet(train_x, grids["train"]["labels"], recipe, recipe.seed, streams=streams)
        if models is not None:
            models[which] = result.model
        scores = seg.segmentation_scores(lambda scene, model=result.model: scene_cnn.predict_scene(model, scene),
                                         test_x, grids["test"]["labels"])
        report[which] = {**scores, "train_seconds": result.seconds, "first_loss": result.history["loss"][0],
                         "final_loss": result.history["loss"][-1], "parameters": int(result.model.count_params())}
    return report
