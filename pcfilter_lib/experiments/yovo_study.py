"""Chapter 7's study of the YOVO network (``recipes.image_to_voxels``): what its IoU is judged by, what
each of its parts adds, and what each of its choices buys.

* ``CHAPTER_FULL`` and ``CHAPTER_FAST``: the chapter's own image set and the ablation's budget.
* ``mean_shape_scores`` scores two guesses that never look at the picture (the mean training grid,
  and the mean grid of the true class), the baselines a network's IoU is judged by.
* ``part_outputs`` reads a trained network's intermediate volumes (each level's decoder alone, their
  plain average, the aggregator's merge, the refined output), so that what each part adds can be
  measured on the network as it was trained; ``level_weights`` gives the share each level supplies.
* ``ablate`` trains variants (``VARIANTS``: ReLU for Mish, dropout for DropBlock, Adam for Ranger, no
  aggregator, no refiner, another seed) with one budget and scores them the same way.
  ``benchmarks/yovo_ablation.py`` runs the full-size chapter's ablation once and records it
  (``ablation_record``); ``recorded_ablation`` reads that record back for the same recipe, images and
  variants.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from pcfilter_lib.data import image_voxels
from pcfilter_lib.io.model_cards import provenance, same_data
from pcfilter_lib.models import yovo
from pcfilter_lib.nn.fit import graph_optimiser_off
from pcfilter_lib.recipes.common import environment, rounded
from pcfilter_lib.recipes.image_to_voxels import VoxelRecipe, choose_threshold, iou_by_class, predict, train

# A mean grid holds the share of training shapes that occupy each voxel: any share may be the best cut.
BASELINE_THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))


# Chapter 7's own set and ablation budget. Example i of a split depends on the seed alone, so the
# chapter's test images are the first of the reference set's (and its training images the first
# of the reference network's). The ablation trains seven networks, so its budget sets the chapter's
# minutes: 400 images for 2 epochs in batches of 16 (50 steps) keep the full-size chapter to about
# six minutes on two shared CPU cores, where 1,200 images for 3 epochs in batches of 32 took ten.
CHAPTER_FULL = VoxelRecipe("chapter", "image_voxels_chapter7", {"train": 400, "val": 300, "test": 500}, epochs=2,
                           batch_size=16, learning_rate=5e-3, whole_batches=True, track_iou=False)
# Fast mode's ablation: 25 steps (one epoch of 200 images in batches of 8) leave every network predicting
# empty space (test IoU 0), as do Ranger's warm-up in 12 steps of 32 and 30 steps of 4; 50 steps reach IoUs
# of about 0.2. Batches of 2 from 50 images give those 50 steps in less time than batches of 4 from 100
# (24 s against 31 s per network on two loaded cores, most of it tracing the step) with the same IoUs, and
# 30 validation and 50 test images (3 and 5 per class) halve the chapter's scoring of its networks.
CHAPTER_FAST = VoxelRecipe("chapter fast", "image_voxels_chapter7_fast_small", {"train": 50, "val": 30, "test": 50},
                           epochs=2, batch_size=2, learning_rate=5e-3, whole_batches=True, track_iou=False)


# The ablation: each variant changes one thing of the reference network; the same network from
# another seed shows how far two runs differ by chance alone.
VARIANTS = {
    "YOVO (Mish, DropBlock, Ranger)": {},
    "the same, another seed": {"seed": 1},
    "ReLU instead of Mish": {"model": {"activation": "relu"}},
    "dropout instead of DropBlock": {"model": {"regulariser": "dropout"}},
    "Adam instead of Ranger": {"optimizer": "adam"},
    "no context aggregator": {"model": {"use_aggregator": False}},
    "no refiner": {"model": {"use_refiner": False}},
}


def mean_shape_scores(train_set: image_voxels.ImageVoxels, val_set: image_voxels.ImageVoxels,
                      test_set: image_voxels.ImageVoxels, thresholds=BASELINE_THRESHOLDS) -> dict[str, dict]:
    """Two guesses that ignore the image, scored like a network: what a network must beat.

    "mean training grid" predicts, for every picture, the share of training grids that occupy each
    voxel; "mean grid of the true class" is told the class (which a network must read from the
    picture) and predicts that class's mean grid. The grids lie in the shapes' own frame, so a mean
    grid is a blurred typical shape. Each guess gets its threshold on ``val_set`` (from ``thresholds``,
    ``choose_threshold``) and is scored on ``test_set`` at it.

    Returns:
        {guess: {"threshold", "test_iou", "per_class" {class: IoU}}}.
    """
    overall = train_set.voxels.mean(axis=0, dtype=np.float32)
    by_class = np.stack([train_set.voxels[train_set.labels == k].mean(axis=0, dtype=np.float32)
                         if np.any(train_set.labels == k) else overall for k in range(len(train_set.classes))])
    guesses = {"mean training grid": lambda data: np.broadcast_to(overall, data.voxels.shape),
               "mean grid of the true class": lambda data: by_class[data.labels]}
    out = {}
    for name, guess in guesses.items():
        threshold = choose_threshold(iou_by_class(guess(val_set), val_set, thresholds))
        test = iou_by_class(guess(test_set), test_set, [threshold])
        out[name] = {"threshold": threshold, "test_iou": test["mean"][0],
                     "per_class": {c: v[0] for c, v in test["per_class"].items()}}
    return out


def part_outputs(model: keras.Model, images: np.ndarray, batch_size: int = 32) -> dict[str, np.ndarray]:
    """The volumes a trained YOVO network (with aggregator and refiner) builds on the way, each
    (N, 32, 32, 32): every level's decoder alone ("level 1" is the finest image features), the
    plain mean of the levels (no aggregator, no refiner), the aggregator's merge (no refiner) and
    the final output.

    Raises:
        ValueError: the network lacks the aggregator or the refiner.
    """
    names = {layer.name for layer in model.layers}
    if not {"context_weights", "refiner_out"} <= names:
        raise ValueError(f"model {model.name!r} needs its context aggregator and refiner to be taken apart")
    levels = sorted(n for n in names if n.startswith("decoder") and n.endswith("_volume"))
    outputs = [model.get_layer(n).output for n in levels] + [model.get_layer("merged_volume").output,
                                                             model.output]
    probe = keras.Model(model.input, outputs)
    volumes = [v[..., 0] for v in probe.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)]
    out = {f"level {k + 1} alone": v for k, v in enumerate(volumes[:len(levels)])}
    out["mean of the levels"] = np.mean(volumes[:len(levels)], axis=0)
    out["aggregated"] = volumes[-2]
    out["aggregated and refined"] = volumes[-1]
    return out


def level_weights(model: keras.Model, data: image_voxels.ImageVoxels, chunk: int = 128) -> np.ndarray:
    """How much each level supplies to the merged volume: the aggregator's weight of every level,
    averaged over each shape's truly occupied voxels, (N, T) rows summing to 1 (``chunk`` images
    at a time, to bound the memory of the weights)."""
    out = []
    for start in range(0, len(data), chunk):
        weights = yovo.context_weights(model, data.images[start:start + chunk].astype(np.float32))
        occupied = data.voxels[start:start + chunk, ..., None]
        out.append((weights * occupied).sum(axis=(1, 2, 3)) / np.maximum(occupied.sum(axis=(1, 2, 3)), 1))
    return np.concatenate(out)


@dataclass
class VariantResult:
    """One network of an ablation: what changed, how it trained and how it scores.

    Attributes:
        name: the variant's name.
        parameters: the number of weights.
        seconds: training time.
        seconds_per_epoch: the median of the epochs after the first (whose time also covers
            tracing the training step).
        history: per-epoch logs (``loss``, and ``iou_0.3``... if the recipe tracks them).
        threshold: chosen on the validation images.
        validation_iou: mean IoU on the validation images at each of ``THRESHOLDS``.
        test_iou: mean IoU on the test images at ``threshold``.
    """

    name: str
    parameters: int
    seconds: float
    seconds_per_epoch: float
    history: dict
    threshold: float
    validation_iou: list
    test_iou: float


def variant_recipe(recipe: VoxelRecipe, changes: dict, seed: int = 0) -> tuple[VoxelRecipe, int]:
    """One variant of ``VARIANTS``: ``recipe`` with ``changes`` applied (``model`` keywords are merged into
    the recipe's, the other fields replaced) and its seed (``changes["seed"]``, else ``seed``)."""
    changes = dict(changes)
    run_seed = changes.pop("seed", seed)
    model = {**recipe.model, **changes.pop("model", {})}
    return dataclasses.replace(recipe, **changes, model=model), run_seed


def ablate(recipe: VoxelRecipe, train_set, val_set, test_set, variants: dict = VARIANTS, seed: int = 0,
           progress: bool = False) -> list[VariantResult]:
    """Train each variant (changes to ``recipe``: ``optimizer``, ``model`` keywords..., or another
    ``seed``) on the same images for the same epochs, from ``seed`` unless it names its own; choose
    its threshold on ``val_set`` and score it on ``test_set`` (both once, after training)."""
    results = []
    for name, changes in variants.items():
        variant, run_seed = variant_recipe(recipe, changes, seed)
        with graph_optimiser_off():  # a short run: optimising its step costs more than it saves
            run = train(variant, train_set, seed=run_seed, progress=progress, desc=name)
        validation = iou_by_class(predict(run.model, val_set.images), val_set)
        threshold = choose_threshold(validation)
        test = iou_by_class(predict(run.model, test_set.images), test_set, [threshold])
        results.append(VariantResult(name, int(run.model.count_params()), run.seconds, run.seconds_per_epoch,
                                     run.history, threshold, validation["mean"], test["mean"][0]))
    return results


def ablation_record(results: list[VariantResult], recipe: VoxelRecipe, folder: str | os.PathLike,
                    variants: dict = VARIANTS, seed: int = 0) -> dict:
    """An ablation as ``benchmarks/yovo_ablation.py`` records it (JSON): the recipe, the data set's
    provenance, the variants, the seed, the library's environment and every network's ``VariantResult``."""
    return {"recipe": dataclasses.asdict(recipe), "data": provenance(folder), "variants": variants, "seed": seed,
            "environment": environment(), "results": [rounded(dataclasses.asdict(r), 6) for r in results]}


def recorded_ablation(path: str | os.PathLike, recipe: VoxelRecipe, folder: str | os.PathLike,
                      variants: dict = VARIANTS, seed: int = 0) -> tuple[list[VariantResult], dict] | None:
    """The ablation recorded at ``path`` (``ablation_record``) and the whole record, if it ran this recipe
    with these variants and seed on a data set of the same recipe as ``folder``'s (``same_data``); else None
    (no record, fast mode, another recipe), and the caller runs ``ablate``."""
    path = Path(path)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    expected = json.loads(json.dumps({"recipe": dataclasses.asdict(recipe), "variants": variants, "seed": seed}))
    if any(record.get(key) != value for key, value in expected.items()) or not same_data(record["data"], folder):
        return None
    return [VariantResult(**r) for r in record["results"]], record
