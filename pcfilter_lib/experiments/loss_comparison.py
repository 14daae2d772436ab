"""Chapter 3's comparison of segmentation losses (``recipes.segmentation_losses``): one U-Net per loss
(BCE, class-weighted BCE, focal, soft Dice), each from the same initial weights, trained on the same
synthetic scratch images for the same epochs.

At full size the four networks are shipped: ``compare`` loads each one whose card records these images
and this recipe, with the history and training time the card holds, and trains the others (fast mode,
another recipe).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pcfilter_lib.data.synthetic2d import SegmentationSet
from pcfilter_lib.io.model_cards import WEIGHTS
from pcfilter_lib.models.saved import shipped_or_trained
from pcfilter_lib.nn.fit import TrainResult
from pcfilter_lib.recipes.segmentation_losses import (
    KEYS,
    LossRecipe,
    card_settings,
    images_record,
    shipped_path,
    train_one,
)


def compare(recipe: LossRecipe, images: dict[str, SegmentationSet], seed: int = 0, progress: bool = False,
            weights: str | os.PathLike = WEIGHTS,
            names: Sequence[str] = tuple(KEYS)) -> dict[str, tuple[TrainResult, bool]]:
    """The run of each loss of ``names``, by name, and whether it is the shipped network: the one in
    ``weights`` where its card records these images and this recipe (its history and training seconds
    stand for the run's), otherwise trained here by ``train_one``."""
    record = images_record(images)
    return {name: shipped_or_trained(shipped_path(name, weights), None, card_settings(recipe, name, seed),
                                     f"U-Net trained with the {name} loss",
                                     lambda name=name: train_one(recipe, images, name, seed, progress), **record)
            for name in names}
