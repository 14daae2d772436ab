"""Shape completion of single scanned objects (3D-EPN's task) and the lecture's claim that completion
features help classification.

* ``CompletionRecipe`` with ``FULL`` and ``FAST``: the objects per class, the grid and each network's budget.
* ``ensure_completion_grids`` makes (or resumes) the set in the data folder (``data.completion_grids``).
* ``train_completion`` trains ``models.completion.build_completion_net`` with an L1 loss on the
  truncated distance over the whole grid, as 3D-EPN (XLA off: on a CPU it compiled
  this network's 3D convolutions into a step many times slower).
* ``completion_scores`` compares the completed field and the partial input with the complete
  shape's: L1 (all voxels, and the voxels the scan never saw) and the IoU of the surface voxels.
* ``train_classifier`` trains a classifier of the partial grids with its own encoder, with the frozen
  encoder of the completion network, or with both (``models.completion.build_shape_classifier``).
* ``train_reference_completion`` trains the completion network at ``FULL``'s budget and saves it with
  its card (``SHIPPED``); the chapter's study (``experiments.completion_study.run_shape_completion``)
  loads it instead of training when it learnt from the same set at the same budget.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
from keras import ops

from pcfilter_lib.data import completion_grids
from pcfilter_lib.data.completion_grids import TRUNCATION, completion_features, surface_iou, surface_voxels
from pcfilter_lib.data.procedural_modelnet import CLASSES
from pcfilter_lib.io.model_cards import WEIGHTS, ModelCard, provenance
from pcfilter_lib.models import completion
from pcfilter_lib.models.saved import save_for_inference
from pcfilter_lib.nn.fit import TrainResult, fit
from pcfilter_lib.recipes.common import environment, rounded

CLASSIFIERS = {"partial only": {"own": True, "features": False},
               "completion features": {"own": False, "features": True},
               "both": {"own": True, "features": True}}


@dataclass(frozen=True)
class CompletionRecipe:
    """The completion set and the training budgets.

    Attributes:
        name: "full" or "fast" (or your own).
        folder: the set's folder inside the data folder.
        train_per_class: training objects of each ModelNet10 class.
        test_per_class: test objects of each class.
        resolution: voxels per side.
        filters: channels per encoder level of every network.
        epochs: passes of the completion network over the training set.
        classifier_epochs: passes of each classifier.
        batch_size: grids per step.
        learning_rate: Adam's step size.
        surface_voxels: a voxel is on the surface where its distance is below this many voxels.
        seed: the scanned set's seed and that of the weights.
    """

    name: str
    folder: str
    train_per_class: int
    test_per_class: int
    resolution: int = 32
    filters: tuple[int, ...] = (16, 32, 64)
    epochs: int = 10
    classifier_epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 2e-3
    surface_voxels: float = 1.0
    seed: int = 0

    def counts(self) -> dict[str, tuple[int, int]]:
        """Class -> (train, test) objects."""
        return {name: (self.train_per_class, self.test_per_class) for name in CLASSES}


FULL = CompletionRecipe("full", "completion_grids", train_per_class=40, test_per_class=20)
FAST = CompletionRecipe("fast", "completion_grids_fast", train_per_class=4, test_per_class=2, resolution=16,
                        filters=(8, 16), epochs=6, classifier_epochs=6, batch_size=8, learning_rate=3e-3)
SHIPPED = WEIGHTS / "completion_network.keras"  # trained once at FULL's budget (``train_reference_completion``)


def ensure_completion_grids(data_dir: str | os.PathLike, recipe: CompletionRecipe, progress: bool = False) -> Path:
    """The recipe's set in ``data_dir``/``recipe.folder``, made or resumed as needed (a folder of another
    recipe of the same generator is made again)."""
    return completion_grids.write_completion_grids(Path(data_dir) / recipe.folder, recipe.counts(), recipe.seed,
                                                   recipe.resolution, progress=progress, replace=True)


def train_completion(x: np.ndarray, target: np.ndarray, recipe: CompletionRecipe, seed: int = 0) -> TrainResult:
    """Train the completion network on partial grids ``x`` (N, R, R, R, 2) and complete distances (N, R, R, R)
    with an L1 loss over every voxel; returns the ``nn.fit.TrainResult``."""
    keras.utils.set_random_seed(seed)
    model = completion.build_completion_net(recipe.resolution, recipe.filters)
    model.compile(optimizer=keras.optimizers.Adam(recipe.learning_rate), loss="mean_absolute_error",
                  metrics=[completion.SurfaceIoU(recipe.surface_voxels / TRUNCATION)], jit_compile=False)
    return fit(model, (x, target), epochs=recipe.epochs, batch_size=recipe.batch_size, desc="completion network")


def predict_fields(model: keras.Model, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """The completed distance fields (N, R, R, R) float32 of partial grids ``x`` (N, R, R, R, 2)."""
    return np.concatenate([ops.convert_to_numpy(model(x[i:i + batch_size], training=False))
                           for i in range(0, len(x), batch_size)])


def completion_scores(partial: dict, completed: np.ndarray, within: float = 1.0) -> dict:
    """Score completed fields and the partial inputs against the complete shapes.

    Args:
        partial: a split of ``data.completion_grids.load_completion_grids`` (``tsdf``, ``known``, ``target``).
        completed: (N, R, R, R) predicted distances, truncation units.
        within: surface voxels are nearer than this many voxels.

    Returns:
        Per source (``partial``, ``completed``): ``l1`` over every voxel and ``l1_unknown`` over the
        voxels the scan never saw (truncation units; the partial field counts an unknown voxel as far,
        distance 1), ``iou`` (mean over the grids) of the surface voxels, and over all grids together
        ``precision`` (the share of its surface voxels on the true surface) and ``recall`` (the share
        of the true surface voxels it has); plus ``known_share``.
    """
    target, known = partial["target"], partial["known"]
    as_field = completion_features(partial["tsdf"], known)[..., 0]
    true_surface = surface_voxels(target, within)
    report = {"known_share": float(known.mean())}
    for name, field, surface in (("partial", as_field, surface_voxels(partial["tsdf"], within, known)),
                                 ("completed", completed, surface_voxels(completed, within))):
        error = np.abs(field - target)
        both = float((surface & true_surface).sum())
        report[name] = {"l1": float(error.mean()), "l1_unknown": float(error[~known].mean()),
                        "iou": float(surface_iou(surface, true_surface).mean()),
                        "precision": both / max(float(surface.sum()), 1.0),
                        "recall": both / max(float(true_surface.sum()), 1.0)}
    return report


def train_classifier(x: np.ndarray, labels: np.ndarray, recipe: CompletionRecipe, completion_net=None,
                     own: bool = True, seed: int = 0, desc: str = "classifier") -> TrainResult:
    """Train a ``models.completion.build_shape_classifier`` (own encoder, the frozen completion encoder,
    or both) with cross-entropy; returns the ``nn.fit.TrainResult``."""
    keras.utils.set_random_seed(seed)
    model = completion.build_shape_classifier(recipe.resolution, len(CLASSES), recipe.filters,
                                              completion=completion_net, own=own)
    model.compile(optimizer=keras.optimizers.Adam(recipe.learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    return fit(model, (x, labels), epochs=recipe.classifier_epochs, batch_size=recipe.batch_size, desc=desc)


def predict_classes(model: keras.Model, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """The most probable class (N,) of each grid of ``x`` (N, R, R, R, 2)."""
    scores = np.concatenate([ops.convert_to_numpy(model(x[i:i + batch_size], training=False))
                             for i in range(0, len(x), batch_size)])
    return np.argmax(scores, axis=1)


def accuracy(model: keras.Model, x: np.ndarray, labels: np.ndarray, batch_size: int = 32) -> float:
    """The share of grids whose most probable class is the true one."""
    return float(np.mean(predict_classes(model, x, batch_size) == labels))


def completion_settings(recipe: CompletionRecipe) -> dict:
    """What the completion network's card records as its settings: the recipe but the classifiers' budget."""
    return {key: value for key, value in asdict(recipe).items() if key != "classifier_epochs"}


def split_inputs(folder: Path) -> tuple[dict, dict, np.ndarray, np.ndarray]:
    """The set's training and test grids, and the completion network's inputs of each."""
    train = completion_grids.load_completion_grids(folder, "train")
    test = completion_grids.load_completion_grids(folder, "test")
    return train, test, completion_features(train["tsdf"], train["known"]), completion_features(test["tsdf"],
                                                                                               test["known"])


def train_reference_completion(out: str | os.PathLike, data_dir: str | os.PathLike, recipe: CompletionRecipe = FULL,
                               progress: bool = True) -> ModelCard:
    """Train the completion network as ``run_shape_completion`` does and save ``out/completion_network.keras``;
    returns its card (``command`` left for the caller)."""
    started = time.perf_counter()
    folder = ensure_completion_grids(data_dir, recipe, progress)
    train, test, train_x, test_x = split_inputs(folder)
    result = train_completion(train_x, train["target"], recipe, recipe.seed)
    scores = completion_scores(test, predict_fields(result.model, test_x), recipe.surface_voxels)
    path = save_for_inference(result.model, Path(out) / SHIPPED.name)
    return ModelCard(
        model=path.name, target="completion",
        load_with="import pcfilter_lib.models.completion; keras.models.load_model(path)",
        data=provenance(folder, train_objects=len(train_x), test_objects=len(test_x)),
        settings=completion_settings(recipe), test=rounded(scores, 4), parameters=int(result.model.count_params()),
        file_bytes=path.stat().st_size, training_seconds=round(result.seconds, 1),
        wall_seconds=round(time.perf_counter() - started, 1), history=rounded(result.history, 4),
        environment=environment())


