"""3D semantic segmentation of scanned scenes by a point network, and the scores that put it beside the
voxel networks of ``recipes.scene_segmentation``: every network's predictions scored on the same
measured points.

* ``scene_points`` gives every scene's measured points (all views, world frame) with the class of the
  surface each pixel sees, and the view and pixel that measured each; ``normalise_points`` puts them
  in the network's frame and ``scene_clouds`` samples a fixed number of them per scene.
* ``PointBudget`` with ``FULL`` and ``FAST``: the point network's size and training budget.
* ``train_point_network`` trains ``models.pointnet.build_pointnet_segmentation`` (without T-Nets: the
  scenes share one frame) on random subsets of the training scenes' points, with the class-weighted
  cross-entropy of the voxel networks.
* ``point_predictor`` and ``class_grid_predictor`` turn the point network and a voxel network's
  predicted classes into one kind of predictor: a scene's points -> their class probabilities; each
  point takes the class of the voxel it falls in (``voxel_predictions_at_points``).
* ``point_scores`` runs a predictor on every measured point of the test scenes and gives the scores of
  ``scene_segmentation.segmentation_scores`` (same keys), so that all networks share one table.
* ``train_reference_point_network`` trains the shipped point network (``SHIPPED``); the chapter's
  comparison with the voxel networks is ``experiments.scene_comparisons.run_scene_points``.

The truth of a point is the class of its pixel (``view_semantic``), not the label of its voxel: near
the boundary between two surfaces a voxel holds one class while some of its points show the other,
so even a voxel network that predicted every voxel's label perfectly scores below 1 here.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
from keras import ops

from pcfilter_lib.data import scene_voxels
from pcfilter_lib.geometry.voxel_grids import Grid
from pcfilter_lib.io.model_cards import WEIGHTS, ModelCard
from pcfilter_lib.labels import SEMANTIC_NAMES
from pcfilter_lib.models.pointnet import build_pointnet_segmentation
from pcfilter_lib.models.saved import save_for_inference
from pcfilter_lib.nn.fit import TrainResult, fit
from pcfilter_lib.nn.losses import ClassWeightedCrossentropy, inverse_frequency_weights
from pcfilter_lib.nn.scores import class_confusion
from pcfilter_lib.recipes.scene_segmentation import SceneRecipe, confusion_scores, ensure_scene_grids, scene_card

CLASSES = len(SEMANTIC_NAMES)


# Points of the scenes ---------------------------------------------------------------------------------


@dataclass
class ScenePoints:
    """The measured points of one scene.

    Attributes:
        index: the scene's place in its split (the order of ``load_scene_views`` and ``load_scene_grids``).
        points: (P, 3) float64 world coordinates of the measured pixels of all views whose point lies
            inside the scene's grid.
        classes: (P,) uint8 class of the surface each of those pixels sees.
        grid: the scene's ``Grid``.
        view: (P,) int64 the view that measured each point (None where not known).
        pixel: (P,) int64 the flat index of the pixel, in that view's (H, W) image, that measured it.
    """

    index: int
    points: np.ndarray
    classes: np.ndarray
    grid: Grid
    view: np.ndarray | None = None
    pixel: np.ndarray | None = None

    def coordinates(self) -> np.ndarray:
        """The points in the network's frame (``normalise_points``), (P, 3) float32."""
        return normalise_points(self.points, self.grid)


def normalise_points(points: np.ndarray, grid: Grid) -> np.ndarray:
    """World points -> the network's frame: minus the grid's centre, divided by half the grid's longest
    side, so that the grid spans [-1, 1] along its longest side (every axis for the cubic scene grids).

    Args:
        points: (..., 3) world coordinates.
        grid: the scene's ``Grid``.

    Returns:
        (..., 3) float32.

    Raises:
        ValueError: ``points`` are not (..., 3).
    """
    points = np.asarray(points, np.float64)
    if points.ndim < 1 or points.shape[-1] != 3:
        raise ValueError(f"points must be (..., 3) coordinates, got shape {points.shape}")
    sides = np.asarray(grid.shape, np.float64) * grid.voxel_size
    centre = np.asarray(grid.origin, np.float64) + sides / 2
    return ((points - centre) / (sides.max() / 2)).astype(np.float32)


def scene_points(views: Mapping[str, np.ndarray]) -> list[ScenePoints]:
    """Every scene's measured points and their pixels' classes.

    A scene's points are the measured pixels (finite depth) of all its views, carried to the world
    frame; the few that fall outside the scene's grid (the table beyond its margin) are left out, so
    that every network, point or voxel, is scored on the same points. Each point keeps the view and
    the pixel that measured it.

    Args:
        views: ``data.scene_voxels.load_scene_views``'s arrays.

    Returns:
        One ``ScenePoints`` per scene, in order.

    Raises:
        ValueError: the arrays miss a key or hold no scene.
    """
    missing = [key for key in ("depth", "semantic", "intrinsics", "poses", "origin", "voxel_size", "resolution")
               if key not in views]
    if missing:
        raise ValueError(f"views need the arrays of load_scene_views; missing {missing}")
    if len(views["depth"]) == 0:
        raise ValueError("views hold no scene")
    scenes = []
    for n in range(len(views["depth"])):
        grid = scene_voxels.scene_grid_of(views, n)
        points, classes, pixels, measuring = [], [], [], []
        for v in range(views["depth"].shape[1]):
            xyz = scene_voxels.scene_view(views, n, v).world_xyz().reshape(-1, 3)
            measured = np.flatnonzero(np.isfinite(xyz).all(axis=1))
            _, inside = grid.index(xyz[measured])
            pixel = measured[inside]
            points.append(xyz[pixel])
            classes.append(views["semantic"][n, v].reshape(-1)[pixel])
            pixels.append(pixel.astype(np.int64))
            measuring.append(np.full(len(pixel), v, np.int64))
        scenes.append(ScenePoints(n, np.concatenate(points), np.concatenate(classes).astype(np.uint8), grid,
                                  np.concatenate(measuring), np.concatenate(pixels)))
    return scenes


def _sample(count: int, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """``n_points`` indices into ``count`` points: without replacement where there are enough."""
    return rng.choice(count, n_points, replace=count < n_points)


def scene_clouds(views: Mapping[str, np.ndarray] | Sequence[ScenePoints], n_points: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """One cloud of ``n_points`` measured points per scene, in the network's frame.

    Args:
        views: ``load_scene_views``'s arrays, or ``scene_points``' list.
        n_points: points per cloud, drawn without replacement (with replacement in a scene that has
            fewer).
        rng: the draws.

    Returns:
        ``(clouds, classes)``: (N, n_points, 3) float32 coordinates (``normalise_points``: the grid spans
        [-1, 1]) and (N, n_points) uint8 classes of the points' pixels.

    Raises:
        ValueError: ``n_points`` < 1, or a scene has no measured point.
    """
    if n_points < 1:
        raise ValueError(f"a cloud needs n_points >= 1, got {n_points}")
    scenes = scene_points(views) if isinstance(views, Mapping) else list(views)
    clouds = np.empty((len(scenes), n_points, 3), np.float32)
    classes = np.empty((len(scenes), n_points), np.uint8)
    for c, scene in enumerate(scenes):
        if len(scene.points) == 0:
            raise ValueError(f"scene {scene.index} has no measured point inside its grid")
        pick = _sample(len(scene.points), n_points, rng)
        clouds[c], classes[c] = normalise_points(scene.points[pick], scene.grid), scene.classes[pick]
    return clouds, classes


# The point network ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointBudget:
    """The point network's size and training budget.

    Attributes:
        name: "full" or "fast" (or your own).
        points: points per training cloud, and per cloud when a whole scene is predicted in chunks.
        clouds: clouds drawn per epoch, each a random subset of one random training scene.
        epochs: passes, each over freshly drawn clouds.
        batch_size: clouds per step.
        width: factor on the channels of every PointNet layer.
        learning_rate: Adam's step size.
    """

    name: str
    points: int = 2048
    clouds: int = 256
    epochs: int = 8
    batch_size: int = 16
    width: float = 0.25
    learning_rate: float = 2e-3

    def __post_init__(self):
        if min(self.points, self.clouds, self.epochs, self.batch_size) < 1 or self.width <= 0 \
                or self.learning_rate <= 0:
            raise ValueError(f"a point budget needs points, clouds, epochs and batch_size >= 1 and a positive width "
                             f"and learning rate, got {self}")


# Measured on two busy cores with the FAST scene set: FULL trains in 19 s (the training time does not grow with
# the number of scenes: every epoch draws the same number of clouds). FAST takes 72 steps, where 192 steps
# (384 clouds, 4 epochs) took 12 s of chapter 8's quick run.
FULL = PointBudget("full", points=2048, clouds=256, epochs=8, batch_size=16, width=0.25, learning_rate=2e-3)
FAST = PointBudget("fast", points=512, clouds=192, epochs=3, batch_size=8, width=0.25, learning_rate=3e-3)


class CloudDraws(keras.utils.PyDataset):
    """Batches (clouds, classes) of random subsets of the training scenes' points.

    Each epoch draws ``clouds`` clouds; a cloud is ``points`` points of one scene drawn uniformly, in the
    network's frame. Draws come from ``(seed, epoch, batch)``, so a run is reproducible.

    Args:
        scenes: the training scenes (``scene_points``).
        points: points per cloud.
        clouds: clouds per epoch.
        batch_size: clouds per batch.
        seed: the seed of every draw.
        **kwargs: passed on to ``keras.utils.PyDataset``.

    Raises:
        ValueError: no scene, a scene without points, or a setting below 1.
    """

    def __init__(self, scenes: Sequence[ScenePoints], points: int, clouds: int, batch_size: int, seed: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        if not scenes:
            raise ValueError("cloud draws need at least one training scene")
        if min(points, clouds, batch_size) < 1:
            raise ValueError(f"need points, clouds and batch_size >= 1, got {points}, {clouds}, {batch_size}")
        empty = [s.index for s in scenes if len(s.points) == 0]
        if empty:
            raise ValueError(f"scene {empty[0]} has no measured point inside its grid")
        self.scenes = list(scenes)
        self.coordinates = [s.coordinates() for s in self.scenes]
        self.points, self.clouds, self.batch_size, self.seed, self.epoch = points, clouds, batch_size, seed, 0

    def __len__(self) -> int:
        return math.ceil(self.clouds / self.batch_size)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range ({len(self)} batches)")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        n = min(self.batch_size, self.clouds - index * self.batch_size)
        x = np.empty((n, self.points, 3), np.float32)
        y = np.empty((n, self.points), np.uint8)
        for c in range(n):
            s = int(rng.integers(len(self.scenes)))
            pick = _sample(len(self.coordinates[s]), self.points, rng)
            x[c], y[c] = self.coordinates[s][pick], self.scenes[s].classes[pick]
        return x, y

    def on_epoch_end(self):
        self.epoch += 1


def train_point_network(scenes: Sequence[ScenePoints], budget: PointBudget = FULL, weight_power: float = 0.5,
                        seed: int = 0, progress: bool = False) -> TrainResult:
    """Train PointNet segmentation on random subsets of the training scenes' points.

    The class weights are those of the voxel networks, (median frequency / frequency) ** ``weight_power``
    (``nn.losses.inverse_frequency_weights``), here over the training points' classes.

    Args:
        scenes: the training scenes (``scene_points``).
        budget: sizes and budget.
        weight_power: the class weights' power (``SceneRecipe.weight_power``).
        seed: the weights' and the draws' seed.
        progress: show a bar over the epochs.

    Returns:
        The ``nn.fit.TrainResult``; the model maps (B, N, 3) clouds to (B, N, K) probabilities.
    """
    draws = CloudDraws(scenes, budget.points, budget.clouds, budget.batch_size, seed)
    keras.utils.set_random_seed(seed)
    model = build_pointnet_segmentation(CLASSES, width=budget.width, transforms=False, name="scene_pointnet")
    weights = inverse_frequency_weights(np.concatenate([s.classes for s in draws.scenes]), CLASSES,
                                        power=weight_power)
    model.compile(optimizer=keras.optimizers.Adam(budget.learning_rate), loss=ClassWeightedCrossentropy(weights))
    return fit(model, draws, epochs=budget.epochs, progress=progress, desc="point network")


# Predictors: a scene's points -> their class probabilities ----------------------------------------------


def predict_points(model: keras.Model, coordinates: np.ndarray, n_points: int, rng: np.random.Generator,
                   batch_size: int = 16) -> np.ndarray:
    """Run a point network on every point of one scene, in clouds of ``n_points`` points.

    The points are shuffled and cut into clouds of ``n_points``, each a random subset of the scene as in
    training; the last cloud is filled up with other random points of the scene, whose predictions are
    dropped.

    Args:
        model: a segmentation network, (B, N, 3) -> (B, N, K).
        coordinates: (P, 3) the scene's points in the network's frame.
        n_points: points per cloud.
        rng: the shuffle.
        batch_size: clouds per forward pass.

    Returns:
        (P, K) float32 class probabilities, in the order of ``coordinates``.

    Raises:
        ValueError: ``coordinates`` are not (P, 3), or ``n_points`` or ``batch_size`` < 1.
    """
    coordinates = np.asarray(coordinates, np.float32)
    if coordinates.ndim != 2 or coordinates.shape[1] != 3:
        raise ValueError(f"a scene's points are (P, 3), got shape {coordinates.shape}")
    if n_points < 1 or batch_size < 1:
        raise ValueError(f"need n_points >= 1 and batch_size >= 1, got {n_points} and {batch_size}")
    count, classes = len(coordinates), int(model.output_shape[-1])
    if count == 0:
        return np.zeros((0, classes), np.float32)
    chunks = math.ceil(count / n_points)
    order = np.concatenate([rng.permutation(count), rng.integers(0, count, chunks * n_points - count)])
    clouds = coordinates[order].reshape(chunks, n_points, 3)
    scores = np.concatenate([ops.convert_to_numpy(model(clouds[b:b + batch_size], training=False))
                             for b in range(0, chunks, batch_size)])
    out = np.empty((count, classes), np.float32)
    out[order[:count]] = scores.reshape(-1, classes)[:count]
    return out


def voxel_predictions_at_points(probabilities: np.ndarray, points: np.ndarray, grid: Grid) -> np.ndarray:
    """The class probabilities of the voxel each point falls in.

    Args:
        probabilities: (X, Y, Z, K) a voxel network's output for one scene.
        points: (P, 3) world coordinates, all inside ``grid``.
        grid: the scene's ``Grid`` (its shape is X, Y, Z).

    Returns:
        (P, K) float32.

    Raises:
        ValueError: the probabilities do not match the grid, the points are not (P, 3), or a point lies
            outside the grid.
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 4 or probabilities.shape[:3] != tuple(grid.shape):
        raise ValueError(f"voxel probabilities must be (X, Y, Z, K) with X, Y, Z = {tuple(grid.shape)}, got shape "
                         f"{probabilities.shape}")
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (P, 3), got shape {points.shape}")
    ijk, inside = grid.index(points)
    if not inside.all():
        raise ValueError(f"{int((~inside).sum())} of {len(points)} points lie outside the grid; a voxel network says "
                         "nothing about them")
    return probabilities[ijk[:, 0], ijk[:, 1], ijk[:, 2]].astype(np.float32)


Predictor = Callable[[ScenePoints], np.ndarray]


def point_predictor(model: keras.Model, n_points: int, seed: int = 0, batch_size: int = 16) -> Predictor:
    """A point network as a predictor: ``ScenePoints`` -> (P, K) probabilities (``predict_points``, its
    shuffle drawn from ``(seed, scene index)``)."""
    def predict(scene: ScenePoints) -> np.ndarray:
        rng = np.random.default_rng([seed, scene.index])
        return predict_points(model, scene.coordinates(), n_points, rng, batch_size)
    return predict


def class_grid_predictor(classes: np.ndarray) -> Predictor:
    """Voxel classes a network already predicted, as a predictor: ``ScenePoints`` -> (P, K) one-hot rows of
    the class of each point's voxel.

    Args:
        classes: (N, X, Y, Z) predicted classes of the split's scenes, in the order of the ``ScenePoints``'
            indices (``run_scene_segmentation``'s ``predictions``).
    """
    classes = np.asarray(classes)
    if classes.ndim != 4:
        raise ValueError(f"predicted classes must be (N, X, Y, Z), got shape {classes.shape}")

    def predict(scene: ScenePoints) -> np.ndarray:
        one_hot = np.eye(CLASSES, dtype=np.float32)[classes[scene.index]]
        return voxel_predictions_at_points(one_hot, scene.points, scene.grid)
    return predict


# Scores -------------------------------------------------------------------------------------------------


def point_scores(predict: Predictor, scenes: Sequence[ScenePoints]) -> dict:
    """Score a predictor on every measured point of the test scenes.

    Args:
        predict: ``ScenePoints`` -> (P, K) class probabilities (``point_predictor``, ``class_grid_predictor``).
        scenes: the test scenes (``scene_points``).

    Returns:
        The keys of ``scene_segmentation.segmentation_scores`` (``confusion_scores``), counted over points
        instead of voxels, plus ``points`` (points scored). ``seconds_per_scene`` is the median time of
        one ``predict`` call: a voxel network's pass over the whole grid (the look-up of the points'
        voxels included), the point network's passes over the scene's points.

    Raises:
        ValueError: no scene, or a prediction of the wrong shape.
    """
    if not scenes:
        raise ValueError("point scores need at least one scene")
    confusion = np.zeros((CLASSES, CLASSES), np.int64)
    seconds = []
    for scene in scenes:
        start = time.perf_counter()
        probabilities = np.asarray(predict(scene))
        seconds.append(time.perf_counter() - start)
        if probabilities.shape != (len(scene.points), CLASSES):
            raise ValueError(f"scene {scene.index}: the prediction must be (P, K) = ({len(scene.points)}, {CLASSES}), "
                             f"got shape {probabilities.shape}")
        confusion += class_confusion(scene.classes, np.argmax(probabilities, axis=-1), CLASSES)
    return {**confusion_scores(confusion, seconds), "points": int(confusion.sum())}


# The whole comparison -----------------------------------------------------------------------------------


# The point network trained once on the full-size chapter's scene set at the FULL budget.
SHIPPED = WEIGHTS / "scene_point_network.keras"


def point_settings(recipe: SceneRecipe, budget: PointBudget) -> dict:
    """What the point network's card records as its settings: the scene recipe and the budget."""
    return {"network": "point", "budget": asdict(budget), **asdict(recipe)}


def train_reference_point_network(out: str | os.PathLike, data_dir: str | os.PathLike, recipe: SceneRecipe,
                                  budget: PointBudget = FULL, progress: bool = True) -> ModelCard:
    """Train the point network as ``run_scene_points`` does on ``recipe``'s scene set at ``budget`` and save
    it as ``out/scene_point_network.keras``; returns its card (``command`` left for the caller)."""
    started = time.perf_counter()
    folder = ensure_scene_grids(data_dir, recipe, progress)
    train = scene_points(scene_voxels.load_scene_views(folder, "train"))
    test = scene_points(scene_voxels.load_scene_views(folder, "test"))
    result = train_point_network(train, budget, recipe.weight_power, recipe.seed, progress)
    scores = point_scores(point_predictor(result.model, budget.points, recipe.seed, budget.batch_size), test)
    path = save_for_inference(result.model, Path(out) / SHIPPED.name)
    card = scene_card(path, "scenepoints", folder, point_settings(recipe, budget), result, scores, started,
                      train_scenes=len(train), test_scenes=len(test))
    card.load_with = "import pcfilter_lib.models.pointnet; keras.models.load_model(path)"
    return card
