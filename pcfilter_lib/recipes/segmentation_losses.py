"""Chapter 3's segmentation losses: one U-Net per loss (BCE, class-weighted BCE, focal, soft Dice), each
from the same initial weights, trained on the same synthetic scratch images
(``data.synthetic2d.make_scratches``) for the same epochs (``train_one``).

At full size the four networks are shipped (``unet_loss_<key>.keras``, trained once by
``data_scripts/train_reference_models.py --target unetloss<key>`` with exactly this code,
``train_reference``, its threshold chosen by ``inner_threshold``); the chapter's comparison
(``experiments.loss_comparison.compare``) loads each one whose card records its images and recipe and
trains the others.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from pcfilter_lib.data.synthetic2d import SegmentationSet, make_scratches
from pcfilter_lib.io.model_cards import WEIGHTS, ModelCard
from pcfilter_lib.models.saved import save_for_inference
from pcfilter_lib.models.unet import build_unet
from pcfilter_lib.nn import fit as training
from pcfilter_lib.nn import losses, scores
from pcfilter_lib.nn.fit import TrainResult
from pcfilter_lib.recipes.common import environment, rounded


@dataclass(frozen=True)
class LossRecipe:
    """The images and the training budget of the comparison.

    Attributes:
        size: side of the square images in pixels (a multiple of 16, the U-Net's four poolings).
        train, validation, test: images per split (seeds 1, 2 and 3 of ``make_scratches``).
        epochs: passes over the training images.
        batch_size: images per step.
        learning_rate: Adam's step size.
    """

    size: int
    train: int
    validation: int
    test: int
    epochs: int
    batch_size: int = 16
    learning_rate: float = 2e-3


CHAPTER = LossRecipe(size=64, train=1400, validation=400, test=400, epochs=20)
# Fast mode: 32-pixel images, 96 for training (12 steps in all) and 32 each to validate and test;
# 48 pixels and 160, 64 and 64 images made the four trainings over half of chapter 3's test time.
FAST = LossRecipe(size=32, train=96, validation=32, test=32, epochs=2)
SPLIT_SEEDS = {"train": 1, "validation": 2, "test": 3}
# The losses in the chapter's order, with the key of each one's file and training target.
KEYS = {"BCE": "bce", "weighted BCE": "weightedbce", "focal": "focal", "Dice": "dice"}


def make_images(recipe: LossRecipe) -> dict[str, SegmentationSet]:
    """The recipe's training, validation and test images, by split name."""
    return {split: make_scratches(getattr(recipe, split), recipe.size, seed=seed)
            for split, seed in SPLIT_SEEDS.items()}


def candidates(train: SegmentationSet) -> dict[str, keras.losses.Loss]:
    """The four losses, by name; the weighted BCE's class weights balance ``train``'s valid pixels."""
    keep_weight, artefact_weight = losses.class_balanced_weights(train.labels, train.weights > 0)
    return {"BCE": losses.BinaryCrossentropy(),
            "weighted BCE": losses.WeightedBinaryCrossentropy(keep_weight, artefact_weight),
            "focal": losses.BinaryFocalLoss(alpha=0.25, gamma=2.0),
            "Dice": losses.SoftDiceLoss(classes="both")}


def shipped_path(name: str, weights: str | os.PathLike = WEIGHTS) -> Path:
    """The file in ``weights`` of the network trained with loss ``name``."""
    return Path(weights) / f"unet_loss_{KEYS[name]}.keras"


def images_record(images: dict[str, SegmentationSet]) -> dict:
    """What a card records of the images: the generator, each split's size and seed, and the sha256 of
    the labels and weights of all three splits (the images themselves may differ in their last bits
    between processors)."""
    digest = hashlib.sha256()
    for split in SPLIT_SEEDS:
        digest.update(np.ascontiguousarray(images[split].labels).tobytes())
        digest.update(np.ascontiguousarray(images[split].weights).tobytes())
    return {"generator": "pcfilter_lib.data.synthetic2d.make_scratches",
            "splits": {split: {"images": len(images[split]), "size": int(images[split].images.shape[1]),
                               "seed": seed} for split, seed in SPLIT_SEEDS.items()},
            "labels_sha256": digest.hexdigest()}


def card_settings(recipe: LossRecipe, name: str, seed: int = 0) -> dict:
    """What the card of the network trained with loss ``name`` records as its settings."""
    return {**asdict(recipe), "loss": name, "input_channels": 2, "seed": seed}


def train_one(recipe: LossRecipe, images: dict[str, SegmentationSet], name: str, seed: int = 0,
              progress: bool = False) -> TrainResult:
    """Train a fresh U-Net with loss ``name`` on the training images, scored on the validation images
    after each epoch. The global seed is set first, so every loss starts from the same weights."""
    loss = candidates(images["train"])[name]
    keras.utils.set_random_seed(seed)
    model = build_unet(input_channels=2)
    train, val = images["train"], images["validation"]
    return training.train_segmentation(
        model, loss, (train.images, train.labels, train.weights),
        validation=(val.images, val.labels, val.weights), epochs=recipe.epochs,
        batch_size=recipe.batch_size, learning_rate=recipe.learning_rate, progress=progress)


def inner_threshold(labels, probability, mask, metric: str = "mean_iou", finest: float = 1e-4
                    ) -> tuple[float, dict[str, np.ndarray]]:
    """The threshold with the best ``metric`` on validation data, from a grid grown until the choice
    lies strictly inside it; and the sweep of that grid.

    The grid starts as ``nn.scores.threshold_sweep``'s, 0.05 to 0.95. A loss that pushes the
    probabilities towards one class (class weights do) can put its best threshold at an end of that
    grid, where the end, not the data, made the choice. Then the grid gains a threshold halfway
    between its end and 0 (or 1), again and again, until the best threshold has a neighbour on both
    sides, or the new end is within ``finest`` of 0 or 1.

    Args:
        labels: 1 keep, 0 artefact, any shape.
        probability: P(keep), the shape of ``labels`` or with a trailing axis of 1.
        mask: the pixels that count (bool, broadcastable to ``labels``).
        metric: the name (one of ``nn.scores.NAMES``) to maximise.
        finest: the closest an end of the grid may come to 0 or 1.

    Returns:
        The chosen threshold and the ``threshold_sweep`` of the final grid.
    """
    grid = list(np.round(np.arange(0.05, 0.951, 0.05), 2))
    while True:
        sweep = scores.threshold_sweep(labels, probability, mask, thresholds=grid)
        chosen = scores.best_threshold(sweep, metric)
        if chosen == grid[0] and grid[0] / 2 >= finest:
            grid.insert(0, grid[0] / 2)
        elif chosen == grid[-1] and (1 - grid[-1]) / 2 >= finest:
            grid.append(1 - (1 - grid[-1]) / 2)
        else:
            return float(chosen), sweep


def train_reference(out: str | os.PathLike, name: str, recipe: LossRecipe = CHAPTER, seed: int = 0,
                    progress: bool = True) -> ModelCard:
    """Train the network of loss ``name`` as ``compare`` does and save it in ``out`` (``shipped_path``'s
    name); returns its card (``command`` left for the caller). Its threshold is chosen on the validation
    images for the best mean IoU (``inner_threshold``), and its test scores are measured there."""
    if name not in KEYS:
        raise ValueError(f"unknown loss {name!r}; the comparison's losses are {list(KEYS)}")
    started = time.perf_counter()
    images = make_images(recipe)
    run = train_one(recipe, images, name, seed, progress)
    val, test = images["validation"], images["test"]
    threshold, sweep = inner_threshold(val.labels, run.model.predict(val.images, verbose=0), val.weights > 0)
    tested = scores.evaluate_masks(test.labels, run.model.predict(test.images, verbose=0), test.weights > 0,
                                   threshold)
    path = save_for_inference(run.model, shipped_path(name, out))
    return ModelCard(
        model=path.name, target=f"unetloss{KEYS[name]}",
        load_with="import pcfilter_lib.models; keras.models.load_model(path)",
        data=images_record(images), settings=card_settings(recipe, name, seed),
        test=rounded({key: float(tested[key]) for key in ("mean_iou", "balanced_accuracy", "f1", "accuracy")}, 4),
        validation=rounded({"mean_iou": float(sweep["mean_iou"][list(sweep["threshold"]).index(threshold)])}, 4),
        threshold=float(threshold),
        parameters=int(run.model.count_params()), file_bytes=path.stat().st_size,
        training_seconds=round(run.seconds, 1), wall_seconds=round(time.perf_counter() - started, 1),
        history=rounded(run.history, 4), environment=environment())
