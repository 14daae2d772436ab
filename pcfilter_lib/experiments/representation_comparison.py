"""Section 2b's comparison of three representations of the same meshes (``recipes.representations``):
VoxNet on voxels, PointNet on points and a multi-view CNN on 1 to 12 rendered views, every network
scored on the whole test split.

At full size the networks are shipped: ``runs`` loads each one whose card records this ModelNet10 set
and this recipe, with the history, training time and epoch times the card holds, scores it on the test
split, and trains the others (fast mode, the real ModelNet10, another recipe). ``runs_by_share`` does
the same for the data-share study: VoxNet and the 12-view CNN on growing shares of the training shapes.
"""

from __future__ import annotations

import os
from pathlib import Path

from pcfilter_lib.io.model_cards import WEIGHTS
from pcfilter_lib.models.saved import shipped_network
from pcfilter_lib.nn.fit import TrainResult
from pcfilter_lib.recipes.representations import (
    SHARES,
    Inputs,
    RepresentationRecipe,
    ShareStudy,
    card_settings,
    names,
    share_path,
    share_run,
    share_settings,
    shipped_path,
    test_accuracy,
    train_network,
)


def runs(root: str | os.PathLike, recipe: RepresentationRecipe, inputs: Inputs, progress: bool = False,
         weights: str | os.PathLike = WEIGHTS) -> dict[str, tuple[TrainResult, bool]]:
    """Every network of the comparison, by name: the shipped one where its card records the ModelNet10
    set in ``root`` and this recipe (its history, training seconds and epoch times standing for the
    run's, its test accuracy measured here), else trained here; and whether it was shipped."""
    return {name: _shipped_or_trained(root, name, recipe, inputs, shipped_path(name, weights),
                                      card_settings(recipe, name), progress=progress) for name in names(recipe)}


def _shipped_or_trained(root: str | os.PathLike, name: str, recipe: RepresentationRecipe, inputs: Inputs, path,
                        settings: dict, seed: int = 0, progress: bool = False) -> tuple[TrainResult, bool]:
    """Network ``name``: the one at ``path`` if its card records ``root``'s data set and ``settings`` (its
    test accuracy measured on ``inputs``), else trained here; and whether it was shipped."""
    found = shipped_network(path, root, settings, f"section 2b's {Path(path).stem}")
    if found is None:
        return train_network(name, recipe, inputs, seed=seed, progress=progress), False
    model, card = found
    return TrainResult(model, card.history, card.training_seconds, list(card.details["epoch_seconds"]),
                       {"accuracy": test_accuracy(model, name, recipe, inputs)}), True


def runs_by_share(root: str | os.PathLike, recipe: RepresentationRecipe, inputs: Inputs,
                  study: ShareStudy = SHARES, whole: dict | None = None, progress: bool = False,
                  weights: str | os.PathLike = WEIGHTS) -> dict[tuple[str, float], tuple[TrainResult, bool]]:
    """Each network of ``study`` on each of its shares of the training shapes, by (name, share): the
    run of ``whole`` (``runs``' result) on all of them where given, else the shipped network whose card
    records ``root``'s data set, this recipe and the share, else trained here for at least the gradient
    steps of the run on all shapes (``recipes.representations.share_run``); and whether it was shipped."""
    out = {}
    for share in study.shares:
        if share == 1 and whole is not None and all(name in whole for name in study.networks):
            out.update({(name, share): whole[name] for name in study.networks})
            continue
        longer, subset = share_run(recipe, inputs, share, study)
        for name in study.networks:
            out[name, share] = _shipped_or_trained(root, name, longer, subset, share_path(name, share, weights),
                                                   share_settings(longer, name, share, study), study.seed,
                                                   progress)
    return out
