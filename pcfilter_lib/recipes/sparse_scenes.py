"""Section 8c's networks: the submanifold sparse U-Net (``models.sparse_scene``) and chapter 8's dense
3D U-Net, each on the chapter's scene set at its resolution R and on the same scenes fused at 2R.

* ``SparseRecipe`` with ``FULL`` and ``FAST``: the sparse network's size and budget.
* ``doubled`` is chapter 8's ``SceneRecipe`` at twice the resolution: the same seed, so the same
  scenes and the same scans, fused into a grid of 2R voxels a side (its own folder), and the dense
  U-Net's budget at 2R: chunks of half the scene as at R, and as many voxels in a batch (an eighth
  as many chunks, each eight times as large), so a step does about the same work at both resolutions.
* ``train_sparse_unet`` trains the sparse network one scene per step, over all the scene's active
  sites, with chapter 8's class-weighted cross-entropy (the weights from the sites' classes).
* ``scene_networks`` gives the four networks of the section, each the shipped one where its card
  records this scene set and budget, else trained here; ``train_reference_sparse_scenes`` trains the
  three that chapter 8 does not ship (sparse at R and 2R, dense at 2R) and saves them with cards.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np

from pcfilter_lib.data import scene_voxels
from pcfilter_lib.io.model_cards import WEIGHTS, ModelCard, provenance
from pcfilter_lib.models import scene_cnn, sparse_scene
from pcfilter_lib.models.saved import save_for_inference, shipped_or_trained
from pcfilter_lib.nn.fit import TrainResult
from pcfilter_lib.nn.losses import ClassWeightedCrossentropy, inverse_frequency_weights
from pcfilter_lib.recipes import scene_segmentation as seg
from pcfilter_lib.recipes.common import environment, rounded

TARGET = "sparsescenes"  # data_scripts/train_reference_models.py --target that trains the three below


@dataclass(frozen=True)
class SparseRecipe:
    """The sparse network's size and budget (its scene set and seed are the ``SceneRecipe``'s).

    Attributes:
        filters: channels per level, finest first (chapter 8's dense U-Net has (8, 16, 32)).
        kernel: side of every convolution's kernel.
        epochs: passes over the training scenes, one scene per step.
        learning_rate: Adam's step size.
        weight_power: class weights are (median frequency / frequency) ** weight_power over the
            training sites' classes (``nn.losses.inverse_frequency_weights``).
        eager: run every step eagerly instead of tracing it into a graph. Every scene has its own
            number of sites, so Keras traces the step twice (once for the first shapes, once for
            any); for a quick run's few small steps that costs more than it saves (3 s of 6, 12 steps).
    """

    filters: tuple[int, ...] = (8, 16, 32)
    kernel: int = 3
    epochs: int = 8
    learning_rate: float = 2e-3
    weight_power: float = 0.5
    eager: bool = False


FULL = SparseRecipe()
FAST = SparseRecipe(filters=(8, 16), epochs=2, learning_rate=3e-3, eager=True)


def doubled(recipe: seg.SceneRecipe) -> seg.SceneRecipe:
    """``recipe``'s scene set fused at twice the resolution, and the dense U-Net's budget there (see
    the module docstring)."""
    return replace(recipe, folder=f"{recipe.folder}_{2 * recipe.resolution}", resolution=2 * recipe.resolution,
                   chunk=2 * recipe.chunk, chunks=max(1, recipe.chunks // 8), batch_size=max(1, recipe.batch_size // 8))


def shipped_paths(scene: seg.SceneRecipe) -> dict[str, Path]:
    """The shipped files of the section's networks on ``scene``'s set (R) and its double (2R): keys
    ``dense R``, ``dense 2R``, ``sparse R`` and ``sparse 2R``; ``dense R`` is chapter 8's U-Net."""
    r, r2 = scene.resolution, 2 * scene.resolution
    return {"dense R": seg.SHIPPED["unet"], "dense 2R": WEIGHTS / f"scene_unet_{r2}.keras",
            "sparse R": WEIGHTS / f"sparse_scene_unet_{r}.keras",
            "sparse 2R": WEIGHTS / f"sparse_scene_unet_{r2}.keras"}


def sparse_inputs(grids: dict, levels: int, kernel: int = 3) -> list[dict[str, np.ndarray]]:
    """The sparse network's input of every scene of ``load_scene_grids``' arrays."""
    out = []
    for tsdf, state in zip(grids["tsdf"], grids["state"], strict=True):
        features = scene_voxels.scene_features(tsdf, state)
        out.append(sparse_scene.scene_inputs(features, sparse_scene.active_sites(state), levels, kernel))
    return out


def train_sparse_unet(grids: dict, recipe: SparseRecipe = FULL, seed: int = 0) -> TrainResult:
    """Train ``models.sparse_scene.build_sparse_unet`` on the training scenes, one whole scene a step.

    Args:
        grids: the training split as ``data.scene_voxels.load_scene_grids`` returns it.
        recipe: the network's size and budget.
        seed: the weights' and the scene order's seed.

    Returns:
        The ``nn.fit.TrainResult``: its ``history`` holds the mean ``loss`` of every epoch.
    """
    keras.utils.set_random_seed(seed)
    inputs = sparse_inputs(grids, len(recipe.filters), recipe.kernel)
    labels = [grid[tuple(sparse_scene.active_sites(state).T)] for grid, state in
              zip(grids["labels"], grids["state"], strict=True)]
    weights = inverse_frequency_weights(np.concatenate(labels), sparse_scene.CLASSES, power=recipe.weight_power)
    model = sparse_scene.build_sparse_unet(filters=recipe.filters, kernel=recipe.kernel)
    # No XLA: every scene has its own number of sites, and XLA would compile the step again for each.
    model.compile(optimizer=keras.optimizers.Adam(recipe.learning_rate), loss=ClassWeightedCrossentropy(weights),
                  jit_compile=False, run_eagerly=recipe.eager)
    order = np.random.default_rng([seed, 3])
    history, epoch_seconds = [], []
    start = time.perf_counter()
    for _ in range(recipe.epochs):
        begin = time.perf_counter()
        # One batch is one whole scene: the rulebooks index its rows, so it cannot be cut into batches.
        losses = [float(model.train_on_batch(inputs[n], labels[n])) for n in order.permutation(len(inputs))]
        history.append(float(np.mean(losses)))
        epoch_seconds.append(time.perf_counter() - begin)
    return TrainResult(model, {"loss": history}, time.perf_counter() - start, epoch_seconds)


def sparse_settings(scene: seg.SceneRecipe, recipe: SparseRecipe) -> dict:
    """What a sparse network's card records as its settings."""
    return {"network": "sparse", "resolution": scene.resolution, "seed": scene.seed, **asdict(recipe)}


def scene_networks(scene: seg.SceneRecipe, sparse: SparseRecipe, data_dir: str | os.PathLike,
                   progress: bool = False, shipped: bool = True) -> dict[str, tuple[TrainResult, bool]]:
    """The section's four networks on ``scene``'s set at R and on ``doubled(scene)``'s at 2R.

    Args:
        scene: chapter 8's scene set and dense budget at R.
        sparse: the sparse network's budget.
        data_dir: the data folder that holds (or receives) both scene sets.
        progress: show progress bars while a scene set is made.
        shipped: load a shipped network where its card records this scene set and budget.

    Returns:
        Keyed ``dense R``, ``dense 2R``, ``sparse R``, ``sparse 2R``: the ``nn.fit.TrainResult`` (the
        card's history and seconds, if shipped) and whether it was the shipped network.
    """
    paths = shipped_paths(scene) if shipped else {}
    runs = {}
    for tag, recipe in (("R", scene), ("2R", doubled(scene))):
        # The test scenes only: the training scenes are made when a network is trained here.
        folder = seg.ensure_scene_grids(data_dir, recipe, progress, splits=("test",))
        cache = {}

        def training(recipe=recipe, cache=cache) -> dict:
            if not cache:
                folder = seg.ensure_scene_grids(data_dir, recipe, progress, splits=("train",))
                cache.update(scene_voxels.load_scene_grids(folder, "train"))
            return cache

        def dense(recipe=recipe, training=training) -> TrainResult:
            grids = training()
            return seg.train_scene_unet(scene_voxels.scene_features(grids["tsdf"], grids["state"]), grids["labels"],
                                        recipe, recipe.seed)

        runs[f"dense {tag}"] = shipped_or_trained(paths.get(f"dense {tag}"), folder,
                                                  seg.network_settings(recipe, "unet"), f"dense U-Net at {tag}", dense)
        runs[f"sparse {tag}"] = shipped_or_trained(
            paths.get(f"sparse {tag}"), folder, sparse_settings(recipe, sparse), f"sparse U-Net at {tag}",
            lambda recipe=recipe, training=training: train_sparse_unet(training(), sparse, recipe.seed))
    return runs


def train_reference_sparse_scenes(out: str | os.PathLike, data_dir: str | os.PathLike,
                                  scene: seg.SceneRecipe = seg.CHAPTER_FULL, sparse: SparseRecipe = FULL,
                                  progress: bool = True) -> list[ModelCard]:
    """Train the sparse U-Net at R and 2R and the dense U-Net at 2R as ``scene_networks`` does and
    save them under ``shipped_paths``' names in ``out``; returns their cards (``command`` left for the
    caller), each with its test scores at its own resolution (``recipes.scene_segmentation.segmentation_scores``)."""
    cards = []
    paths = shipped_paths(scene)
    for tag, recipe in (("R", scene), ("2R", doubled(scene))):
        started = time.perf_counter()
        folder = seg.ensure_scene_grids(data_dir, recipe, progress)
        train = scene_voxels.load_scene_grids(folder, "train")
        test = scene_voxels.load_scene_grids(folder, "test")
        test_x = scene_voxels.scene_features(test["tsdf"], test["state"])
        names = ("dense", "sparse") if tag == "2R" else ("sparse",)
        for name in names:
            if name == "dense":
                result = seg.train_scene_unet(scene_voxels.scene_features(train["tsdf"], train["state"]),
                                              train["labels"], recipe, recipe.seed)
                settings, predict = seg.network_settings(recipe, "unet"), scene_cnn.predict_scene
            else:
                result = train_sparse_unet(train, sparse, recipe.seed)
                settings, predict = sparse_settings(recipe, sparse), sparse_scene.predict_scene
            scores = seg.segmentation_scores(lambda x, net=result.model, run=predict: run(net, x), test_x,
                                             test["labels"])
            path = save_for_inference(result.model, Path(out) / paths[f"{name} {tag}"].name)
            cards.append(ModelCard(
                model=path.name, target=TARGET,
                load_with="import pcfilter_lib.models; keras.models.load_model(path)",
                data={**provenance(folder), "train_scenes": len(train["labels"]), "test_scenes": len(test_x)},
                settings=settings,
                test=rounded({key: value for key, value in scores.items()
                              if key not in ("confusion", "seconds_per_scene")}, 4),
                parameters=int(result.model.count_params()), file_bytes=path.stat().st_size,
                training_seconds=round(result.seconds, 1), wall_seconds=round(time.perf_counter() - started, 1),
                history=rounded(result.history, 4), environment=environment()))
    return cards
