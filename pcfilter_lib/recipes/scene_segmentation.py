"""3D semantic segmentation of scanned scenes: the sliding-window column network and the fully
convolutional 3D U-Net (``models.scene_cnn``) trained briefly on the grids of ``data.scene_voxels``.

* ``SceneRecipe`` with ``FULL`` and ``FAST``: the scene set (scenes, resolution, views, scanner size)
  and each network's budget.
* ``ensure_scene_grids`` makes (or resumes) the scene set in the data folder.
* ``train_column_network`` and ``train_scene_unet`` train on random column chunks and random cubic
  chunks of the training scenes, with a class-weighted cross-entropy (empty space outnumbers the
  parts by two orders of magnitude).
* ``segmentation_scores`` runs a network on whole test scenes and gives the IoU of every class, the
  mean IoU over the surface classes present and the seconds per scene (``confusion_scores`` turns any
  confusion matrix into the same scores: ``recipes.scene_points`` counts points instead of voxels).
* ``train_reference_scene_network`` trains one of the two at the full-size chapter's budget on its
  scene set and saves it with its card (``SHIPPED``); ``train_reference_weight_power`` trains the
  U-Net of the chapter's exercise on the class weights. The chapter's comparison
  (``experiments.scene_comparisons.run_scene_segmentation``) loads a shipped network instead of
  training it when it learnt from the same set at the same budget.

The IoU counts every voxel of the test grids: a voxel's class is that of the true surface through it,
and background where there is none, seen by the scanner or not.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np

from pcfilter_lib.data import scene_voxels
from pcfilter_lib.io.model_cards import WEIGHTS, ModelCard, provenance
from pcfilter_lib.labels import SEMANTIC_BACKGROUND, SEMANTIC_NAMES, SEMANTIC_SUPPORT
from pcfilter_lib.models import scene_cnn
from pcfilter_lib.models.saved import save_for_inference
from pcfilter_lib.nn.fit import TrainResult, fit
from pcfilter_lib.nn.losses import ClassWeightedCrossentropy, inverse_frequency_weights
from pcfilter_lib.nn.scores import class_confusion
from pcfilter_lib.recipes.common import environment, rounded
from pcfilter_lib.simulate.scanner import ScannerConfig

CLASSES = len(SEMANTIC_NAMES)


@dataclass(frozen=True)
class SceneRecipe:
    """The scene set and the training budget of both networks.

    Attributes:
        name: "full" or "fast" (or your own).
        folder: the scene set's folder inside the data folder.
        n_scenes: scenes in all; ``split`` shares them out (train, val, test).
        resolution: voxels per side of a grid.
        n_views: scans fused per scene.
        scan_size: (width, height) of every scan, pixels.
        n_parts: (fewest, most) parts per bin.
        seed: the seed of the scene set and of the training draws.
        context: side of a column's context chunk, voxels (odd; ScanNet: 31 at 62 high).
        column_filters: channels per level of the column network.
        chunk: side of the U-Net's training chunks, voxels.
        unet_filters: channels per level of the U-Net.
        epochs: passes over the chunks of each network.
        columns: column chunks cut for the column network.
        chunks: cubic chunks cut for the U-Net.
        batch_size: chunks per step.
        learning_rate: Adam's step size.
        weight_power: class weights are (median frequency / frequency) ** weight_power
            (``nn.losses.inverse_frequency_weights``): 0 weighs every voxel alike, 1 every class alike.
    """

    name: str
    folder: str
    n_scenes: int
    resolution: int
    n_views: int
    scan_size: tuple[int, int]
    n_parts: tuple[int, int] = (4, 12)
    split: tuple[float, float, float] = (0.8, 0.0, 0.2)
    seed: int = 0
    context: int = 15
    column_filters: tuple[int, ...] = (16, 32, 32)
    chunk: int = 32
    unet_filters: tuple[int, ...] = (8, 16, 32)
    epochs: int = 8
    columns: int = 2000
    chunks: int = 256
    batch_size: int = 16
    learning_rate: float = 2e-3
    weight_power: float = 0.5

    def scanner(self) -> ScannerConfig:
        """The scanner of every scan."""
        return ScannerConfig(width=self.scan_size[0], height=self.scan_size[1])


FULL = SceneRecipe("full", "scene_voxels", n_scenes=30, resolution=64, n_views=3, scan_size=(320, 240))
# Chapter 8 at full size: half the column chunks of FULL, so that the chapter stays within its minutes.
CHAPTER_FULL = replace(FULL, columns=1000)
# Both networks trained once at CHAPTER_FULL's budget on its scene set (``train_reference_scene_network``).
SHIPPED = {"column": WEIGHTS / "scene_column_network.keras", "unet": WEIGHTS / "scene_unet.keras"}
FAST = SceneRecipe("fast", "scene_voxels_fast", n_scenes=5, resolution=32, n_views=2, scan_size=(96, 72),
                   n_parts=(4, 8), context=7, column_filters=(8, 16, 16), chunk=16, unet_filters=(8, 16), epochs=3,
                   columns=192, chunks=48, batch_size=16, learning_rate=3e-3)


def ensure_scene_grids(data_dir: str | os.PathLike, recipe: SceneRecipe, progress: bool = False,
                       splits=scene_voxels.SPLITS) -> Path:
    """The recipe's scene set in ``data_dir``/``recipe.folder``, made or resumed as needed (a folder of
    another recipe of the same generator is made again); with ``splits``, only those splits' scenes."""
    folder = Path(data_dir) / recipe.folder
    return scene_voxels.write_scene_grids(folder, recipe.n_scenes, recipe.seed, recipe.scanner(), recipe.resolution,
                                          recipe.n_views, recipe.split, recipe.n_parts, progress=progress,
                                          replace=True, splits=splits)


def load_features(folder: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A split's network inputs (N, R, R, R, 3) float32 and labels (N, R, R, R) uint8."""
    grids = scene_voxels.load_scene_grids(folder, split)
    return scene_voxels.scene_features(grids["tsdf"], grids["state"]), grids["labels"]


def _compile(model: keras.Model, labels: np.ndarray, recipe: SceneRecipe) -> keras.Model:
    weights = inverse_frequency_weights(labels, CLASSES, power=recipe.weight_power)
    model.compile(optimizer=keras.optimizers.Adam(recipe.learning_rate), loss=ClassWeightedCrossentropy(weights))
    return model


def train_column_network(features: np.ndarray, labels: np.ndarray, recipe: SceneRecipe, seed: int = 0
                         ) -> TrainResult:
    """Train the sliding-window network (``models.scene_cnn.build_column_cnn``) on random column chunks.

    Args:
        features: (N, X, Y, Z, 3) training scenes' inputs.
        labels: (N, X, Y, Z) their classes.
        recipe: the budget and sizes.
        seed: the chunks' and the weights' seed.

    Returns:
        The ``nn.fit.TrainResult``.
    """
    keras.utils.set_random_seed(seed)
    x, y = scene_voxels.random_columns(features, labels, recipe.context, recipe.columns,
                                       np.random.default_rng([seed, 1]))
    model = scene_cnn.build_column_cnn(features.shape[3], recipe.context, CLASSES, filters=recipe.column_filters)
    _compile(model, y, recipe)
    return fit(model, (x, y), epochs=recipe.epochs, batch_size=recipe.batch_size, desc="column network")


def train_scene_unet(features: np.ndarray, labels: np.ndarray, recipe: SceneRecipe, seed: int = 0,
                     streams: tuple[int, ...] | None = None) -> TrainResult:
    """Train the fully convolutional 3D U-Net (``models.scene_cnn.build_scene_unet``) on random cubic chunks.

    Args:
        features: (N, X, Y, Z, C) training scenes' inputs (C = 3: ``scene_voxels.scene_features``).
        labels: (N, X, Y, Z) their classes.
        recipe: the budget and sizes.
        seed: the chunks' and the weights' seed (the chunks' places do not depend on the channels).
        streams: groups of the input's channels with a convolution of their own (``build_scene_unet``).

    Returns:
        The ``nn.fit.TrainResult``.
    """
    keras.utils.set_random_seed(seed)
    x, y = scene_voxels.random_chunks(features, labels, recipe.chunk, recipe.chunks, np.random.default_rng([seed, 2]))
    model = scene_cnn.build_scene_unet(CLASSES, features.shape[-1], recipe.unet_filters, streams)
    _compile(model, y, recipe)
    return fit(model, (x, y), epochs=recipe.epochs, batch_size=recipe.batch_size, desc="scene U-Net")


def class_iou(confusion: np.ndarray) -> np.ndarray:
    """IoU of every class from a confusion matrix (rows true, columns predicted): TP / (TP + FP + FN),
    NaN for a class neither present nor predicted."""
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def segmentation_scores(predict: Callable[[np.ndarray], np.ndarray], features: np.ndarray, labels: np.ndarray,
                        keep: list | None = None) -> dict:
    """Score a network on whole scenes.

    Args:
        predict: one scene's (X, Y, Z, 3) input -> its (X, Y, Z, K) class probabilities.
        features: (N, X, Y, Z, 3) test scenes.
        labels: (N, X, Y, Z) their classes.
        keep: a list that receives each scene's predicted classes (X, Y, Z) uint8.

    Returns:
        ``iou`` {class name: IoU} for the classes present in the labels, ``mean_iou`` over the present
        classes other than background, ``part_iou`` of the voxels of any part whatever its type (does
        the network find the parts at all?), ``accuracy`` over the voxels of the surface classes,
        ``seconds_per_scene`` (median) and ``confusion`` (K, K) counts.
    """
    if len(features) == 0:
        raise ValueError("segmentation scores need at least one scene")
    confusion = np.zeros((CLASSES, CLASSES), np.int64)
    seconds = []
    for scene, truth in zip(features, labels, strict=True):
        start = time.perf_counter()
        predicted = np.argmax(predict(scene), axis=-1)
        seconds.append(time.perf_counter() - start)
        confusion += class_confusion(truth.ravel(), predicted.ravel(), CLASSES)
        if keep is not None:
            keep.append(predicted.astype(np.uint8))
    return confusion_scores(confusion, seconds)


def confusion_scores(confusion: np.ndarray, seconds: Sequence[float]) -> dict:
    """The scores of ``segmentation_scores`` from a (K, K) confusion matrix (rows true,
    columns predicted) and the seconds of each scene: ``iou`` {class name: IoU} for the classes present,
    ``mean_iou`` over the present classes other than background, ``part_iou`` of any part whatever its
    type, ``accuracy`` over the samples of the surface classes, ``seconds_per_scene`` (median) and
    ``confusion``."""
    confusion = np.asarray(confusion, np.int64)
    iou = class_iou(confusion)
    present = [c for c in range(CLASSES) if confusion[c].sum() > 0]
    surface = [c for c in present if c != SEMANTIC_BACKGROUND]
    on_surface = confusion[surface].sum()
    part = np.arange(CLASSES) > SEMANTIC_SUPPORT
    part_hits = confusion[np.ix_(part, part)].sum()
    part_union = confusion[part].sum() + confusion[:, part].sum() - part_hits
    return {"iou": {SEMANTIC_NAMES[c]: float(iou[c]) for c in present},
            "mean_iou": float(np.mean(iou[surface])) if surface else float("nan"),
            "part_iou": float(part_hits / part_union) if part_union else float("nan"),
            "accuracy": float(confusion[surface, surface].sum() / on_surface) if on_surface else float("nan"),
            "seconds_per_scene": float(np.median(seconds)), "confusion": confusion.tolist()}


def network_settings(recipe: SceneRecipe, network: str) -> dict:
    """What a scene network's card records as its settings: the recipe and which network (or input)."""
    return {"network": network, **asdict(recipe)}


def trained_entry(run: TrainResult, scores: dict, shipped: bool) -> dict:
    """A network's entry in a scene report: its ``segmentation_scores`` and how it was trained."""
    return {**scores, "train_seconds": run.seconds, "first_loss": run.history["loss"][0],
            "final_loss": run.history["loss"][-1], "parameters": int(run.model.count_params()), "shipped": shipped}


def scene_card(model_path: Path, target: str, folder: Path, settings: dict, result: TrainResult, scores: dict,
               started: float, **data) -> ModelCard:
    """The card of a shipped scene network (``command`` left for the caller)."""
    return ModelCard(
        model=model_path.name, target=target,
        load_with="import pcfilter_lib.models.scene_cnn; keras.models.load_model(path)",
        data={**provenance(folder), **data}, settings=settings,
        test=rounded({key: value for key, value in scores.items() if key != "confusion"}, 4),
        parameters=int(result.model.count_params()), file_bytes=model_path.stat().st_size,
        training_seconds=round(result.seconds, 1), wall_seconds=round(time.perf_counter() - started, 1),
        history=rounded(result.history, 4), environment=environment())


# Each voxel network by name: how it trains, how it predicts a whole scene, and its shipped target.
NETWORKS = {"column": (train_column_network, scene_cnn.predict_columns, "scenecolumn"),
            "unet": (train_scene_unet, scene_cnn.predict_scene, "sceneunet")}


def train_reference_scene_network(out: str | os.PathLike, data_dir: str | os.PathLike, network: str,
                                  recipe: SceneRecipe = CHAPTER_FULL, progress: bool = True) -> ModelCard:
    """Train ``network`` ("column" or "unet") as ``run_scene_segmentation`` does, on ``recipe``'s scene set,
    and save it as ``out/<name of SHIPPED[network]>``; returns its card (``command`` left for the caller)."""
    if network not in NETWORKS:
        raise ValueError(f"unknown scene network {network!r}; choose one of {tuple(NETWORKS)}")
    started = time.perf_counter()
    folder = ensure_scene_grids(data_dir, recipe, progress)
    train_x, train_y = load_features(folder, "train")
    test_x, test_y = load_features(folder, "test")
    train, predict, target = NETWORKS[network]
    result = train(train_x, train_y, recipe, recipe.seed)
    scores = segmentation_scores(lambda scene: predict(result.model, scene), test_x, test_y)
    path = save_for_inference(result.model, Path(out) / SHIPPED[network].name)
    return scene_card(path, target, folder, network_settings(recipe, network), result, scores, started,
                      train_scenes=len(train_x), test_scenes=len(test_x))


# Chapter 8's exercise on the loss's class weights: the U-Net at three weight powers, each with half the
# chapter's epochs and chunks (a quarter of its steps); at full size the three networks are shipped.
WEIGHT_POWERS = (0.0, 0.5, 1.0)


def exercise_budget(recipe: SceneRecipe) -> SceneRecipe:
    """The exercise's budget at full size: half of ``recipe``'s epochs and chunks."""
    return replace(recipe, epochs=recipe.epochs // 2, chunks=recipe.chunks // 2)


def weight_power_path(power: float, weights: str | os.PathLike = WEIGHTS) -> Path:
    """The file in ``weights`` of the exercise's U-Net trained with class weights to the ``power``."""
    return Path(weights) / f"scene_unet_power_{round(power * 100):03d}.keras"


def train_reference_weight_power(out: str | os.PathLike, data_dir: str | os.PathLike, power: float,
                                 recipe: SceneRecipe = CHAPTER_FULL, progress: bool = True) -> ModelCard:
    """Train the exercise's U-Net with class weights to the ``power`` as ``weight_power_runs`` does at full
    size (``exercise_budget(recipe)``) and save it as ``out/<weight_power_path name>``; returns its card
    (``command`` left for the caller)."""
    if power not in WEIGHT_POWERS:
        raise ValueError(f"the exercise's weight powers are {WEIGHT_POWERS}, not {power}")
    started = time.perf_counter()
    budget = replace(exercise_budget(recipe), weight_power=power)
    folder = ensure_scene_grids(data_dir, budget, progress)
    train_x, train_y = load_features(folder, "train")
    test_x, test_y = load_features(folder, "test")
    result = train_scene_unet(train_x, train_y, budget, budget.seed)
    scores = segmentation_scores(lambda scene: scene_cnn.predict_scene(result.model, scene), test_x, test_y)
    path = save_for_inference(result.model, weight_power_path(power, out))
    return scene_card(path, f"sceneunetpower{round(power * 100):03d}", folder, network_settings(budget, "unet"),
                      result, scores, started, train_scenes=len(train_x), test_scenes=len(test_x))


