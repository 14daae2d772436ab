"""Section 2b's three networks on three representations of the same meshes: VoxNet on 32^3 surface
occupancy, PointNet on points sampled from the surfaces and a multi-view CNN on rendered depth views
(trained once per number of views), all on the same training meshes and scored on the whole test split.

At full size the networks are shipped (``representation_<name>.keras``, trained once by
``data_scripts/train_reference_models.py --target representations`` with exactly this code,
``train_reference``); the chapter's comparison (``experiments.representation_comparison.runs``) loads
each one whose card records its ModelNet10 set and recipe and trains the others.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from pcfilter_lib.data import modelnet, voxel_sets
from pcfilter_lib.io.model_cards import WEIGHTS, ModelCard, provenance
from pcfilter_lib.models.mvcnn import build_mvcnn
from pcfilter_lib.models.pointnet import build_pointnet
from pcfilter_lib.models.saved import save_for_inference
from pcfilter_lib.models.voxnet import build_voxnet
from pcfilter_lib.nn.fit import TrainResult, train_classifier
from pcfilter_lib.recipes.common import environment, rounded


@dataclass(frozen=True)
class RepresentationRecipe:
    """The inputs and the training budget of the comparison.

    Attributes:
        train_per_class: training meshes per class (None: all of them).
        epochs: passes over the training meshes, the same for every network.
        batch_size: shapes per step.
        num_points: points sampled per cloud for PointNet.
        pointnet_width: PointNet's channel multiplier.
        view_counts: the numbers of views a multi-view CNN is trained on, each evenly spaced around the
            shape among ``views`` rendered ones.
        views: depth views rendered per mesh.
        resolution: side of the voxel grids and of the depth images.
    """

    train_per_class: int | None
    epochs: int
    batch_size: int
    num_points: int
    pointnet_width: float = 0.25
    view_counts: tuple[int, ...] = (1, 3, 6, 12)
    views: int = 12
    resolution: int = 32


CHAPTER = RepresentationRecipe(train_per_class=80, epochs=12, batch_size=32, num_points=1024)
FAST = RepresentationRecipe(train_per_class=None, epochs=6, batch_size=16, num_points=512, view_counts=(1, 3, 12))


@dataclass
class Inputs:
    """The three representations of the training meshes and of the test split, and the labels.

    Attributes:
        classes: the class names.
        train_labels, test_labels: (N,) class indices.
        voxels: training and test surface occupancy grids, (N, R, R, R, 1) float32.
        clouds: training and test clouds, (N, num_points, 3).
        views: training and test depth images, (N, views, R, R, 1).
    """

    classes: tuple[str, ...]
    train_labels: np.ndarray
    test_labels: np.ndarray
    voxels: tuple[np.ndarray, np.ndarray]
    clouds: tuple[np.ndarray, np.ndarray]
    views: tuple[np.ndarray, np.ndarray]


def make_inputs(root: str | os.PathLike, recipe: RepresentationRecipe, progress: bool = False) -> Inputs:
    """Voxelise, sample and render the training meshes (at most ``train_per_class`` per class) and the
    whole test split of the ModelNet10 set in ``root``."""
    paths, labels, classes = {}, {}, None
    for split, limit in (("train", recipe.train_per_class), ("test", None)):
        paths[split], labels[split], classes = modelnet.list_files(root, split, limit)
    voxels = tuple(voxel_sets.voxelize_files(paths[s], recipe.resolution, progress=progress)[..., None]
                   .astype(np.float32) for s in ("train", "test"))
    clouds = []
    for split, limit in (("train", recipe.train_per_class), ("test", None)):
        loaded = modelnet.load_split(root, split, num_points=recipe.num_points, limit_per_class=limit,
                                     progress=progress)
        if not np.array_equal(loaded.labels, labels[split]):
            raise ValueError(f"the clouds of {root}'s {split} split are not in the order of its mesh files")
        clouds.append(loaded.points)
    views = tuple(voxel_sets.render_files(paths[s], n_views=recipe.views, size=recipe.resolution,
                                          progress=progress)[..., None] for s in ("train", "test"))
    return Inputs(tuple(classes), np.asarray(labels["train"]), np.asarray(labels["test"]), voxels, tuple(clouds),
                  views)


def names(recipe: RepresentationRecipe) -> list[str]:
    """The networks of the comparison: "voxnet", "pointnet" and "mvcnn<views>" per view count."""
    return ["voxnet", "pointnet", *(f"mvcnn{v}" for v in recipe.view_counts)]


def chosen_views(n_views: int, views: int = 12) -> np.ndarray:
    """The indices of ``n_views`` views evenly spaced around the shape among ``views``."""
    return np.arange(0, views, views // n_views)[:n_views]


def _network(name: str, recipe: RepresentationRecipe, inputs: Inputs) -> tuple[Callable[[], keras.Model], tuple]:
    """A function building network ``name`` and its (training, test) inputs."""
    num_classes = len(inputs.classes)
    if name == "voxnet":
        return (lambda: build_voxnet(num_classes, recipe.resolution)), inputs.voxels
    if name == "pointnet":
        return (lambda: build_pointnet(num_classes, recipe.num_points, width=recipe.pointnet_width)), inputs.clouds
    if name.startswith("mvcnn") and int(name[5:]) in recipe.view_counts:
        chosen = chosen_views(int(name[5:]), recipe.views)
        return (lambda: build_mvcnn(num_classes, size=recipe.resolution)), tuple(v[:, chosen] for v in inputs.views)
    raise ValueError(f"no network {name!r} in this comparison; there are {names(recipe)}")


def train_network(name: str, recipe: RepresentationRecipe, inputs: Inputs, seed: int = 0,
                  progress: bool = False) -> TrainResult:
    """Build network ``name`` from ``seed`` and train it on its representation of the training meshes
    (Adam, ``recipe.epochs``), scored on the test split afterwards (``TrainResult.test``)."""
    build, (train_x, test_x) = _network(name, recipe, inputs)
    keras.utils.set_random_seed(seed)
    return train_classifier(build(), (train_x, inputs.train_labels), (test_x, inputs.test_labels), recipe.epochs,
                            recipe.batch_size, progress=progress)


def shipped_path(name: str, weights: str | os.PathLike = WEIGHTS) -> Path:
    """The file in ``weights`` of network ``name``."""
    return Path(weights) / f"representation_{name}.keras"


def card_settings(recipe: RepresentationRecipe, name: str, seed: int = 0) -> dict:
    """What the card of network ``name`` records as its settings."""
    return {**asdict(recipe), "network": name, "seed": seed}


def test_accuracy(model: keras.Model, name: str, recipe: RepresentationRecipe, inputs: Inputs) -> float:
    """The share of the test shapes that ``model`` (network ``name``) classifies right."""
    _, (_, test_x) = _network(name, recipe, inputs)
    scores = model.predict(test_x, batch_size=64, verbose=0)
    return float(np.mean(np.argmax(scores, axis=1) == inputs.test_labels))


def train_reference(out: str | os.PathLike, data_dir: str | os.PathLike, recipe: RepresentationRecipe = CHAPTER,
                    modelnet_size: str = "full", progress: bool = True) -> list[ModelCard]:
    """Train every network of the comparison as ``runs`` would and save each (``shipped_path``); returns
    their cards (``command`` left for the caller)."""
    started = time.perf_counter()
    root, kind = modelnet.ensure_dataset(data_dir, modelnet_size, progress=progress)
    inputs = make_inputs(root, recipe, progress)
    cards = []
    for name in names(recipe):
        run = train_network(name, recipe, inputs, progress=progress)
        path = save_for_inference(run.model, Path(out) / shipped_path(name).name)
        cards.append(ModelCard(
            model=path.name, target="representations",
            load_with="import pcfilter_lib.models; keras.models.load_model(path)",
            data={"kind": kind, **provenance(root, classes=list(inputs.classes), train=len(inputs.train_labels),
                                             test=len(inputs.test_labels))},
            settings=card_settings(recipe, name), test=rounded(run.test, 4),
            details={"epoch_seconds": rounded(run.epoch_seconds, 3)},
            parameters=int(run.model.count_params()), file_bytes=path.stat().st_size,
            training_seconds=round(run.seconds, 1), wall_seconds=round(time.perf_counter() - started, 1),
            history=rounded(run.history, 4), environment=environment()))
    return cards
