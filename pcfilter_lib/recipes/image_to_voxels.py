"""One image to voxels (chapter 7): the YOVO reference run and how a network is scored.

* ``VoxelRecipe`` with ``FULL`` and ``FAST``: the data set (images of the procedural ModelNet10
  shapes paired with their 32^3 grids, ``data.image_voxels``), the network's settings, the optimiser
  and the epochs.
* ``train_reference_yovo`` trains the shipped network (``weights/yovo_modelnet10.keras``) and writes
  its model card, with the threshold chosen on the validation images.
* ``iou_by_class`` scores a network on a split: the mean 3D IoU per shape, per class and threshold;
  ``choose_threshold`` picks the best on validation data.

The chapter's study of the network (its baselines, parts and ablation) is
``experiments.yovo_study``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from pcfilter_lib.data import image_voxels
from pcfilter_lib.io.model_cards import WEIGHTS, ModelCard, provenance
from pcfilter_lib.models import yovo
from pcfilter_lib.models.saved import save_for_inference
from pcfilter_lib.nn import optimizers, scores
from pcfilter_lib.nn.fit import TrainResult, fit
from pcfilter_lib.recipes.common import environment, rounded

THRESHOLDS = (0.2, 0.3, 0.4, 0.5)  # the thesis' IoU thresholds
SHIPPED = WEIGHTS / "yovo_modelnet10.keras"


@dataclass(frozen=True)
class VoxelRecipe:
    """How the image-to-voxels network is trained.

    Attributes:
        name: "full" or "fast" (or your own).
        folder: the data set's folder inside the data folder.
        counts: examples per split.
        data_seed: the seed the data set is drawn from.
        image_size: image side, pixels.
        epochs: passes over the training images.
        batch_size: images per step.
        learning_rate: the optimiser's step size.
        optimizer: a name of ``nn.optimizers.OPTIMIZERS``.
        beta_2: decay of the optimiser's running mean of squared gradients. 0.99 instead of
            Adam's 0.999 shortens RAdam's warm-up to a few hundred steps, which suits short runs.
        model: keyword arguments of ``models.yovo.build_yovo`` (activation, regulariser, ...).
        whole_batches: train on whole batches only (``ImageVoxelSequence``), so that the training
            step is traced once: the saving that matters in a short run.
        track_iou: compute the IoU at 0.3 and 0.5 in every training step (and log it per epoch);
            a short run spares itself the cost and scores the network afterwards.
    """

    name: str
    folder: str
    counts: dict
    data_seed: int = 0
    image_size: int = 64
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 2e-3
    optimizer: str = "ranger"
    beta_2: float = 0.99
    model: dict = field(default_factory=dict)
    whole_batches: bool = False
    track_iou: bool = True


FULL = VoxelRecipe("full", "image_voxels", {"train": 6000, "val": 500, "test": 1000}, epochs=12)
FAST = VoxelRecipe("fast", "image_voxels_fast", {"train": 200, "val": 50, "test": 100}, epochs=2)


def ensure_dataset(data_dir: str | os.PathLike, recipe: VoxelRecipe = FULL, progress: bool = False) -> Path:
    """The recipe's data set inside ``data_dir``, written (or finished) if needed."""
    return image_voxels.write_dataset(Path(data_dir) / recipe.folder, recipe.counts, seed=recipe.data_seed,
                                      image_size=recipe.image_size, progress=progress)


def make_optimizer(recipe: VoxelRecipe) -> keras.optimizers.Optimizer:
    """The recipe's optimiser, with its learning rate and ``beta_2``."""
    return optimizers.make_optimizer(recipe.optimizer, recipe.learning_rate, beta_2=recipe.beta_2)


def build(recipe: VoxelRecipe, prior: float, seed: int = 0) -> keras.Model:
    """A compiled YOVO network of the recipe, its outputs starting at occupancy ``prior``."""
    keras.utils.set_random_seed(seed)
    model = yovo.build_yovo(image_size=recipe.image_size, prior=prior, **recipe.model)
    return yovo.compile_yovo(model, make_optimizer(recipe), thresholds=(0.3, 0.5) if recipe.track_iou else ())


def train(recipe: VoxelRecipe, train_set: image_voxels.ImageVoxels, val_set: image_voxels.ImageVoxels | None = None,
          seed: int = 0, progress: bool = False, desc: str = "YOVO") -> TrainResult:
    """Build and train the recipe's network on ``train_set`` (scored on ``val_set`` after each epoch).
    The sigmoid outputs start at the training grids' share of occupied voxels."""
    model = build(recipe, float(train_set.voxels.mean()), seed)
    batches = image_voxels.ImageVoxelSequence(train_set, recipe.batch_size, seed=seed,
                                              whole_batches=recipe.whole_batches)
    validation = None if val_set is None else image_voxels.ImageVoxelSequence(val_set, recipe.batch_size,
                                                                               shuffle=False)
    return fit(model, batches, epochs=recipe.epochs, validation=validation, progress=progress, desc=desc)


def predict(model: keras.Model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Occupancy probabilities (N, 32, 32, 32) for images (N, S, S, 3) uint8."""
    return model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)[..., 0]


def iou_by_class(probability: np.ndarray, data: image_voxels.ImageVoxels,
                 thresholds=THRESHOLDS) -> dict:
    """Mean 3D IoU of the shapes of ``data`` at each threshold: per class and over all shapes.

    Args:
        probability: (N, 32, 32, 32) predicted occupancy for ``data``'s images.
        data: the split, with its true grids and labels.
        thresholds: the thresholds t (occupied where probability >= t).

    Returns:
        ``thresholds``, ``per_shape`` (N, T), ``per_class`` {class: [T means]} and ``mean`` [T means
        over all shapes]; the means leave out shapes whose IoU is undefined (empty truth and
        prediction, NaN).
    """
    per_shape = scores.voxel_iou_per_shape(data.voxels, probability, thresholds)
    per_class = {c: np.nanmean(per_shape[data.labels == k], axis=0).tolist() for k, c in enumerate(data.classes)
                 if np.any(data.labels == k)}
    return {"thresholds": list(thresholds), "per_shape": per_shape, "per_class": per_class,
            "mean": np.nanmean(per_shape, axis=0).tolist()}


def choose_threshold(scores: dict) -> float:
    """The threshold with the best mean IoU in ``iou_by_class`` scores of validation data."""
    return float(scores["thresholds"][int(np.argmax(scores["mean"]))])


def train_reference_yovo(out: str | os.PathLike, data_dir: str | os.PathLike, recipe: VoxelRecipe = FULL,
                         seed: int = 0, progress: bool = True) -> ModelCard:
    """Train the reference network and save ``out/yovo_modelnet10.keras``.

    Args:
        out: the output folder (created if needed).
        data_dir: the data folder holding (or receiving) the recipe's image/voxel set.
        recipe: ``FULL``, ``FAST`` or any ``VoxelRecipe``.
        seed: seed of the weights and the batch order.
        progress: show progress bars.

    Returns:
        the model card (its ``command`` is left for the caller to fill in).
    """
    start = time.perf_counter()
    folder = ensure_dataset(data_dir, recipe, progress)
    train_set, val_set, test_set = (image_voxels.load_split(folder, s) for s in image_voxels.SPLITS)
    if progress:
        print(f"training YOVO on {len(train_set)} images, validating on {len(val_set)}, {recipe.epochs} epochs",
              flush=True)
    run = train(recipe, train_set, val_set, seed=seed, progress=progress)
    validation = iou_by_class(predict(run.model, val_set.images), val_set)
    threshold = choose_threshold(validation)
    test = iou_by_class(predict(run.model, test_set.images), test_set)
    path = save_for_inference(run.model, Path(out) / SHIPPED.name)
    k = test["thresholds"].index(threshold)
    return ModelCard(
        model=path.name, target="yovo",
        load_with="import pcfilter_lib.models.yovo; keras.models.load_model(path)",
        data=provenance(folder, train=len(train_set), validation=len(val_set), test=len(test_set),
                        classes=list(train_set.classes)),
        settings={**dataclasses.asdict(recipe), "seed": seed},
        test=rounded({"mean_iou": test["mean"][k], "mean_iou_by_threshold": dict(zip(map(str, THRESHOLDS),
                                                                                    test["mean"], strict=True)),
                      "per_class_iou": {c: v[k] for c, v in test["per_class"].items()}}, 4),
        validation=rounded({"mean_iou_by_threshold": dict(zip(map(str, THRESHOLDS), validation["mean"],
                                                              strict=True))}, 4),
        threshold=threshold, parameters=int(run.model.count_params()), file_bytes=path.stat().st_size,
        training_seconds=round(run.seconds, 1), wall_seconds=round(time.perf_counter() - start, 1),
        history=rounded(run.history, 4), environment=environment())
