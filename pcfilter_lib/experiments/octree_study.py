"""Section 7c's comparison of an octree-generating decoder with a dense one (``models.octree_decoder``).

* ``OctreeRecipe`` with ``FULL`` and ``FAST``: the shapes, the networks' sizes and the budget.
* ``make_sets`` voxelises procedural ModelNet10 shapes at 64^3 (``data.voxel_sets.procedural_grids``)
  for training and for a held-out test, and derives both networks' inputs and targets.
* ``train_pair`` trains the dense and the octree autoencoder from the same seed and budget.
* ``compare`` scores them on the held-out shapes: the mean IoU at 64^3, the share of coarse cells
  refined, how the states were predicted, the decoder's weights and the floats its activations
  take, and the time per shape. It also scores the octree decoder given the *true* states (it
  refines the true mixed cells and fills the others from their true state), which separates the
  errors of its states from those of its children.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np

from pcfilter_lib.data.voxel_sets import procedural_grids
from pcfilter_lib.models import octree_decoder as od


@dataclass(frozen=True)
class OctreeRecipe:
    """The data and budget of the comparison.

    Attributes:
        train: training shapes.
        test: held-out shapes.
        code: channels of the 4^3 code.
        width: features per coarse cell at the trunk's end.
        hidden: features of the head's hidden layer (both decoders).
        epochs: passes over the training shapes.
        batch_size: shapes per step.
        learning_rate: Adam's step size.
        seed: the seed of the training shapes (the test shapes take ``seed + 1``) and of the weights.
    """

    train: int = 240
    test: int = 60
    code: int = 32
    width: int = 8
    hidden: int = 16
    epochs: int = 12
    batch_size: int = 16
    learning_rate: float = 3e-3
    seed: int = 0


FULL = OctreeRecipe()
FAST = OctreeRecipe(train=40, test=10, epochs=3, batch_size=8)


def make_sets(recipe: OctreeRecipe) -> tuple[dict, dict]:
    """The training and test sets: ``models.octree_decoder.targets`` of 64^3 solid grids."""
    train = od.targets(procedural_grids(recipe.train, recipe.seed, 64))
    test = od.targets(procedural_grids(recipe.test, recipe.seed + 1, 64))
    return train, test


def _sizes(recipe: OctreeRecipe) -> dict:
    return {"code": recipe.code, "width": recipe.width, "hidden": recipe.hidden}


def train_pair(recipe: OctreeRecipe, train: dict) -> dict:
    """Train both autoencoders with the same seed, budget and optimiser.

    Returns:
        ``dense`` and ``octree``, each a dict of ``model``, ``loss`` (per epoch) and ``seconds``.
    """
    out = {}
    for name in ("dense", "octree"):
        keras.utils.set_random_seed(recipe.seed)
        optimizer = keras.optimizers.Adam(recipe.learning_rate)
        if name == "dense":
            model = od.build_dense_autoencoder(**_sizes(recipe))
            model.compile(optimizer=optimizer, loss=keras.losses.BinaryCrossentropy(from_logits=True),
                          jit_compile=False)
            x, y = train["grid"], train["fine"]
        else:
            model = od.OctreeAutoencoder(**_sizes(recipe))
            model.compile(optimizer=optimizer, jit_compile=False)
            x = {"grid": train["grid"], "refine": train["refine"]}
            y = {"states": train["states"], "fine": train["fine"]}
        start = time.perf_counter()
        history = model.fit(x, y, batch_size=recipe.batch_size, epochs=recipe.epochs, verbose=0, shuffle=True)
        out[name] = {"model": model, "loss": [float(v) for v in history.history["loss"]],
                     "seconds": time.perf_counter() - start}
    return out


def iou_per_shape(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """The IoU of each pair of (N, ...) bool grids (1 where both are empty)."""
    predicted, true = np.asarray(predicted, bool), np.asarray(true, bool)
    axes = tuple(range(1, predicted.ndim))
    union = np.logical_or(predicted, true).sum(axis=axes)
    both = np.logical_and(predicted, true).sum(axis=axes)
    return np.where(union > 0, both / np.maximum(union, 1), 1.0)


def decode(model, grids: np.ndarray, batch_size: int = 8, true_states: np.ndarray | None = None) -> dict:
    """Run a trained autoencoder on (N, S, S, S, 1) grids, a batch at a time, and time it.

    Args:
        model: a dense or octree autoencoder.
        grids: the inputs.
        batch_size: shapes per call.
        true_states: for the octree, (N, S, S, S) true states to use instead of its own: it refines the
            true mixed cells and fills the others from their true state.

    Returns:
        ``fine`` (N, 2S, 2S, 2S) bool, ``seconds`` per shape, and for the octree ``states`` (N, S, S, S)
        int8 and ``refined`` (N,) cells refined per shape.
    """
    octree = isinstance(model, od.OctreeAutoencoder)
    fine, states, refined, seconds = [], [], [], 0.0
    for start in range(0, len(grids), batch_size):
        batch = grids[start:start + batch_size]
        begin = time.perf_counter()
        if octree:
            inputs = {"grid": batch}
            if true_states is not None:
                inputs["refine"] = true_states[start:start + batch_size] == od.MIXED
            out = model(inputs)
            if true_states is not None:
                given = 10.0 * np.eye(3, dtype=np.float32)[true_states[start:start + batch_size]]
                out["states"] = given
                out["fine"] = od.assemble(given, out["children"], out["cells"])
            fine.append(keras.ops.convert_to_numpy(out["fine"]) > 0.5)
            seconds += time.perf_counter() - begin
            states.append(np.argmax(keras.ops.convert_to_numpy(out["states"]), axis=-1).astype(np.int8))
            cells = keras.ops.convert_to_numpy(out["cells"])
            refined.append(np.bincount(cells[:, 0], minlength=len(batch)))
        else:
            fine.append(keras.ops.convert_to_numpy(model(batch)) > 0)
            seconds += time.perf_counter() - begin
    result = {"fine": np.concatenate(fine), "seconds": seconds / len(grids)}
    if octree:
        result.update(states=np.concatenate(states), refined=np.concatenate(refined))
    return result


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
        rows.append({"decoder": name, "iou": float(np.mean(iou_per_shape(result["fine"], true))),
                     "refined_share": refined / cells, "refined_cells": refined,
                     "weights": od.decoder_weights(model), "floats": od.activation_floats(model, refined),
                     "seconds": result["seconds"]})
    confusion = np.zeros((3, 3), dtype=np.int64)
    np.add.at(confusion, (test["states"].ravel(), octree["states"].ravel()), 1)
    return {"rows": rows, "dense": dense["fine"], "octree": octree["fine"], "octree_states": octree["states"],
            "state_confusion": confusion}
