"""Section 7c's two autoencoders of 64^3 grids, the octree-generating decoder and the dense one
(``models.octree_decoder``), trained and shipped.

* ``OctreeRecipe`` with ``FULL`` and ``FAST``: the shapes, the networks' sizes and the budget.
* ``make_sets`` voxelises procedural ModelNet10 shapes at 64^3 (``data.voxel_sets.procedural_grids``)
  for training and for a held-out test, and derives both networks' inputs and targets.
* ``train_pair`` trains the dense and the octree autoencoder from the same seed and budget, or loads
  the shipped ones (``SHIPPED``) where their cards say they are what it would train (``FULL``).
* ``decode`` runs a trained autoencoder a batch at a time and times it; ``nn.scores.voxel_iou_per_shape`` scores it.
* ``train_reference_octree`` trains both at ``FULL``'s budget and saves them with their cards.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from pcfilter_lib.data.voxel_sets import procedural_grids
from pcfilter_lib.io.model_cards import WEIGHTS, ModelCard
from pcfilter_lib.models import octree_decoder as od
from pcfilter_lib.models.saved import save_for_inference, shipped_network
from pcfilter_lib.nn.scores import voxel_iou_per_shape
from pcfilter_lib.recipes.common import environment, rounded

GENERATOR = "pcfilter.voxel_sets.procedural_grids"
# trained once at FULL's budget (``train_reference_octree``)
SHIPPED = {"dense": WEIGHTS / "octree_study_dense.keras", "octree": WEIGHTS / "octree_study_octree.keras"}


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
FAST = OctreeRecipe(train=24, test=10, epochs=3, batch_size=8)


def make_sets(recipe: OctreeRecipe) -> tuple[dict, dict]:
    """The training and test sets: ``models.octree_decoder.targets`` of 64^3 solid grids."""
    train = od.targets(procedural_grids(recipe.train, recipe.seed, 64))
    test = od.targets(procedural_grids(recipe.test, recipe.seed + 1, 64))
    return train, test


def _sizes(recipe: OctreeRecipe) -> dict:
    return {"code": recipe.code, "width": recipe.width, "hidden": recipe.hidden}


def train_pair(recipe: OctreeRecipe, train: dict, shipped: bool = True) -> dict:
    """Train both autoencoders with the same seed, budget and optimiser, or load the shipped ones.

    Args:
        recipe: the budget and sizes.
        train: ``make_sets``' training set, made with ``recipe``.
        shipped: load a shipped network where its card records the same recipe and data.

    Returns:
        ``dense`` and ``octree``, each a dict of ``model``, ``loss`` (per epoch), ``seconds`` (of
        training) and ``shipped`` (whether it was loaded).
    """
    out = {}
    for name in ("dense", "octree"):
        if shipped:
            found = shipped_network(SHIPPED[name], None, settings(recipe, name), f"section 7c's {name} decoder",
                                    **data_record(recipe))
            if found is not None:
                model, card = found
                out[name] = {"model": model, "loss": card.history["loss"], "seconds": card.training_seconds,
                             "shipped": True}
                continue
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
                     "seconds": time.perf_counter() - start, "shipped": False}
    return out


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


def settings(recipe: OctreeRecipe, name: str) -> dict:
    """A network's settings as its card records them: the recipe and which decoder."""
    return {**dataclasses.asdict(recipe), "decoder": name}


def data_record(recipe: OctreeRecipe) -> dict:
    """The training data as a card records it (made in memory, so described by its recipe)."""
    return {"generator": GENERATOR, "seed": recipe.seed, "train": recipe.train, "resolution": 64}


def train_reference_octree(out: str | os.PathLike, recipe: OctreeRecipe = FULL) -> list[ModelCard]:
    """Train both autoencoders as ``train_pair`` does and save them (``SHIPPED``'s names in ``out``);
    returns their cards (``command`` left for the caller), the test IoU at 64^3 on ``recipe.test``
    held-out shapes."""
    started = time.perf_counter()
    train, test = make_sets(recipe)
    runs = train_pair(recipe, train, shipped=False)
    cards = []
    for name, run in runs.items():
        result = decode(run["model"], test["grid"])
        iou = float(np.mean(voxel_iou_per_shape(test["fine"] > 0.5, result["fine"], (0.5,))))
        path = save_for_inference(run["model"], Path(out) / SHIPPED[name].name)
        cards.append(ModelCard(
            model=path.name, target="octree",
            load_with="import pcfilter_lib.models; keras.models.load_model(path)",
            data={**data_record(recipe), "test": recipe.test}, settings=settings(recipe, name),
            test=rounded({"mean_iou": iou}, 4), parameters=int(run["model"].count_params()),
            file_bytes=path.stat().st_size, training_seconds=round(run["seconds"], 1),
            wall_seconds=round(time.perf_counter() - started, 1), history=rounded({"loss": run["loss"]}, 4),
            environment=environment()))
    return cards
