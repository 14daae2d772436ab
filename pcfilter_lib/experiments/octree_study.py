"""Section 7c's comparison of an octree-generating decoder with a dense one (``models.octree_decoder``).

The training set, the budget and the networks are ``recipes.octree_generation``'s (re-exported
here: ``OctreeRecipe``, ``FULL``, ``FAST``, ``make_sets``, ``train_pair``, ``decode``). ``compare``
scores the two trained decoders on the held-out shapes: the mean IoU (``nn.scores.voxel_iou_per_shape``)
at 64^3, the share of coarse cells refined, how the states were predicted, the decoder's weights
and the floats its activations take, and the time per shape. It also scores the octree decoder
given the *true* states (it refines the true mixed cells and fills the others from their true
state), which separates the errors of its states from those of its children.
"""

from __future__ import annotations

import numpy as np

from pcfilter_lib.models import octree_decoder as od
from pcfilter_lib.nn.scores import voxel_iou_per_shape
from pcfilter_lib.recipes.octree_generation import (  # noqa: F401  (re-exported for the section)
    FAST,
    FULL,
    OctreeRecipe,
    decode,
    make_sets,
    train_pair,
)


def compare(models: dict, test: dict, batch_size: int = 8) -> dict:
    """Score both trained decoders on the held-out shapes (see the module's docstring).

    Args:
        models: ``train_pair``'s result, or a dict with ``dense`` and ``octree`` models.
        test: ``make_sets``' test set.
        batch_size: shapes per call when timing.

    Returns:
        ``rows``, one per decoder (``dense``, ``octree``, ``octree, true states``), each with ``iou``,
        ``refined_share``, ``weights``, ``floats`` (``od.activation_floats``), ``seconds``; and the
        predictions ``dense``, ``octree`` and ``octree_states``, and ``state_confusion`` (3, 3)
        (rows the true state, columns the predicted, in ``od.EMPTY``, ``od.FULL``, ``od.MIXED``).
    """
    dense_model = models["dense"]["model"] if isinstance(models["dense"], dict) else models["dense"]
    octree_model = models["octree"]["model"] if isinstance(models["octree"], dict) else models["octree"]
    true = test["fine"] > 0.5
    cells = test["states"][0].size
    for model in (dense_model, octree_model):  # a first call builds the graph; time the second
        decode(model, test["grid"][:1])
    dense = decode(dense_model, test["grid"], batch_size)
    octree = decode(octree_model, test["grid"], batch_size)
    oracle = decode(octree_model, test["grid"], batch_size, true_states=test["states"])
    rows = []
    for name, model, result in (("dense", dense_model, dense), ("octree", octree_model, octree),
                                ("octree, true states", octree_model, oracle)):
        refined = float(np.mean(result["refined"])) if "refined" in result else float(cells)
        rows.append({"decoder": name, "iou": float(np.mean(voxel_iou_per_shape(true, result["fine"], (0.5,)))),
                     "refined_share": refined / cells, "refined_cells": refined,
                     "weights": od.decoder_weights(model), "floats": od.activation_floats(model, refined),
                     "seconds": result["seconds"]})
    confusion = np.zeros((3, 3), dtype=np.int64)
    np.add.at(confusion, (test["states"].ravel(), octree["states"].ravel()), 1)
    return {"rows": rows, "dense": dense["fine"], "octree": octree["fine"], "octree_states": octree["states"],
            "state_confusion": confusion}
