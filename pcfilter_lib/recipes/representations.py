"""Section 2b's three networks on three representations of the same meshes: VoxNet on 32^3 surface
occupancy, PointNet on points sampled from the surfaces and a multi-view CNN on rendered depth views
(trained once per number of views), all on the same training meshes and scored on the whole test split.

At full size the networks are shipped (``representation_<name>.keras``, trained once by
``data_scripts/train_reference_models.py --target representations`` with exactly this code,
``train_reference``); the chapter's comparison (``experiments.representation_comparison.runs``) loads
each one whose card records its ModelNet10 set and recipe and trains the others.

The data-share study trains VoxNet and the 12-view CNN again on nested, stratified shares of those
training meshes (``share_indices``), each for at least the gradient steps of the run on all of them
(``share_recipe``), so that a smaller share means fewer shapes, not less training. Its networks below
the whole set are shipped as ``representation_<name>_share<percent>.keras`` (``--target
representationshares``, ``train_share_reference``); at the whole set it reuses the comparison's.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
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
# Fast mode: 3 epochs (24 steps) and the fewest and most views; 6 epochs and a 3-view network made
# the comparison and the share study (at 4 times the epochs) two thirds of the section's test time.
FAST = RepresentationRecipe(train_per_class=None, epochs=3, batch_size=16, num_points=512, view_counts=(1, 12))


@dataclass(frozen=True)
class ShareStudy:
    """Which networks learn from which shares of the training meshes.

    Attributes:
        shares: shares of the training meshes of every class, rising, the last 1 (all of them).
        networks: the networks trained on each share (names of ``names``).
        seed: the seed of the shapes drawn and of the networks' weights.
    """

    shares: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    networks: tuple[str, ...] = ("voxnet", "mvcnn12")
    seed: int = 0

    def __post_init__(self):
        if list(self.shares) != sorted(set(self.shares)) or self.shares[-1] != 1 or self.shares[0] <= 0:
            raise ValueError(f"shares rise from above 0 to 1, got {self.shares}")


SHARES = ShareStudy()
SHARES_FAST = ShareStudy(shares=(0.25, 1.0))


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


def _card(path: Path, target: str, run: TrainResult, settings: dict, root: Path, kind: str, inputs: Inputs,
          started: float) -> ModelCard:
    """The card of the network at ``path`` that ``run`` trained on ``inputs`` (``command`` left for the
    caller)."""
    return ModelCard(
        model=path.name, target=target, load_with="import pcfilter_lib.models; keras.models.load_model(path)",
        data={"kind": kind, **provenance(root, classes=list(inputs.classes), train=len(inputs.train_labels),
                                         test=len(inputs.test_labels))},
        settings=settings, test=rounded(run.test, 4), details={"epoch_seconds": rounded(run.epoch_seconds, 3)},
        parameters=int(run.model.count_params()), file_bytes=path.stat().st_size,
        training_seconds=round(run.seconds, 1), wall_seconds=round(time.perf_counter() - started, 1),
        history=rounded(run.history, 4), environment=environment())


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
        cards.append(_card(path, "representations", run, card_settings(recipe, name), root, kind, inputs, started))
    return cards


def share_indices(labels: np.ndarray, share: float, seed: int = 0) -> np.ndarray:
    """The rows of the training shapes in a ``share`` of them, sorted: in every class
    ``max(1, round(share * n))`` of its ``n`` shapes, the first ones of one random order per class drawn
    from ``seed``, so that a smaller share's shapes are among every larger share's."""
    if not 0 < share <= 1:
        raise ValueError(f"a share of the training shapes lies in (0, 1], got {share}")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        chosen.append(rows[:max(1, round(share * len(rows)))])
    return np.sort(np.concatenate(chosen))


def share_recipe(recipe: RepresentationRecipe, n_all: int, n_share: int) -> RepresentationRecipe:
    """``recipe`` with the epochs that give a run on ``n_share`` training shapes at least the gradient
    steps of ``recipe.epochs`` epochs on all ``n_all``."""
    steps = recipe.epochs * math.ceil(n_all / recipe.batch_size)
    return replace(recipe, epochs=math.ceil(steps / math.ceil(n_share / recipe.batch_size)))


def share_inputs(inputs: Inputs, rows: np.ndarray) -> Inputs:
    """``inputs`` with only the training shapes at ``rows`` (the test split unchanged)."""
    return replace(inputs, train_labels=inputs.train_labels[rows],
                   **{key: (getattr(inputs, key)[0][rows], getattr(inputs, key)[1])
                      for key in ("voxels", "clouds", "views")})


def share_run(recipe: RepresentationRecipe, inputs: Inputs, share: float,
              study: ShareStudy = SHARES) -> tuple[RepresentationRecipe, Inputs]:
    """The recipe (epochs for the same gradient steps) and the inputs of the run on ``share`` of the
    training shapes of ``inputs``."""
    rows = share_indices(inputs.train_labels, share, study.seed)
    return share_recipe(recipe, len(inputs.train_labels), len(rows)), share_inputs(inputs, rows)


def share_path(name: str, share: float, weights: str | os.PathLike = WEIGHTS) -> Path:
    """The file in ``weights`` of network ``name`` trained on ``share`` of the training shapes: the
    comparison's (``shipped_path``) for all of them."""
    if share == 1:
        return shipped_path(name, weights)
    return Path(weights) / f"representation_{name}_share{round(100 * share):03d}.keras"


def share_settings(recipe: RepresentationRecipe, name: str, share: float, study: ShareStudy = SHARES) -> dict:
    """What the card of network ``name`` trained on ``share`` of the training shapes records as its
    settings: the comparison's for all of them, else those of the longer recipe with the share."""
    if share == 1:
        return card_settings(recipe, name, study.seed)
    return {**card_settings(recipe, name, study.seed), "share": share}


def train_share_reference(out: str | os.PathLike, data_dir: str | os.PathLike,
                          recipe: RepresentationRecipe = CHAPTER, study: ShareStudy = SHARES,
                          modelnet_size: str = "full", progress: bool = True) -> list[ModelCard]:
    """Train each network of ``study`` on each share below 1 as ``runs_by_share`` would and save it
    (``share_path``); returns their cards (``command`` left for the caller)."""
    started = time.perf_counter()
    root, kind = modelnet.ensure_dataset(data_dir, modelnet_size, progress=progress)
    inputs = make_inputs(root, recipe, progress)
    cards = []
    for share in study.shares[:-1]:
        longer, subset = share_run(recipe, inputs, share, study)
        for name in study.networks:
            run = train_network(name, longer, subset, seed=study.seed, progress=progress)
            path = save_for_inference(run.model, Path(out) / share_path(name, share).name)
            cards.append(_card(path, "representationshares", run, share_settings(longer, name, share, study),
                               root, kind, subset, started))
    return cards
