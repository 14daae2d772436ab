"""Section 2b's comparison of three representations of the same meshes (``recipes.representations``):
VoxNet on voxels, PointNet on points and a multi-view CNN on 1 to 12 rendered views, every network
scored on the whole test split.

At full size the networks are shipped: ``runs`` loads each one whose card records this ModelNet10 set
and this recipe, with the history, training time and epoch times the card holds, scores it on the test
split, and trains the others (fast mode, the real ModelNet10, another recipe).
"""

from __future__ import annotations

import os

from pcfilter_lib.io.model_cards import WEIGHTS
from pcfilter_lib.models.saved import shipped_network
from pcfilter_lib.nn.fit import TrainResult
from pcfilter_lib.recipes.representations import (
    Inputs,
    RepresentationRecipe,
    card_settings,
    names,
    shipped_path,
    test_accuracy,
    train_network,
)


def runs(root: str | os.PathLike, recipe: RepresentationRecipe, inputs: Inputs, progress: bool = False,
         weights: str | os.PathLike = WEIGHTS) -> dict[str, tuple[TrainResult, bool]]:
    """Every network of the comparison, by name: the shipped one where its card records the ModelNet10
    set in ``root`` and this recipe (its history, training seconds and epoch times standing for the
    run's, its test accuracy measured here), else trained here; and whether it was shipped."""
    out = {}
    for name in names(recipe):
        found = shipped_network(shipped_path(name, weights), root, card_settings(recipe, name), f"section 2b's {name}")
        if found is None:
            out[name] = train_network(name, recipe, inputs, progress=progress), False
        else:
            model, card = found
            out[name] = TrainResult(model, card.history, card.training_seconds, list(card.details["epoch_seconds"]),
                                    {"accuracy": test_accuracy(model, name, recipe, inputs)}), True
    return out
