"""Chapter 8's comparisons of networks on scanned scenes, all on one scene set and scored on the same
test scenes:

* ``scene_network`` trains one of them, the sliding-window column network or the 3D U-Net
  (``recipes.scene_segmentation``), briefly, or loads the shipped one where its card records this
  scene set and budget: the one place where both sections on scenes get their voxel networks;
* ``run_scene_segmentation`` takes both from ``scene_network`` and scores them on whole test scenes;
* ``weight_power_runs``, the chapter's exercise: the U-Net with its class weights raised to several
  powers (the shipped networks where they match);
* ``run_scene_images``, the ablation the lecture quotes from 3DMV (``recipes.scene_images``): the
  2D network alone, then the U-Net on geometry only, image features only and both;
* ``run_scene_points``: the point network (``recipes.scene_points``) beside the voxel networks' classes,
  scored on the same measured points;
* ``run_view_fusion``: the 2D network's per-pixel probabilities carried to the measured points of the
  test scenes from every view that saw them and fused there (``recipes.scene_images.fuse_views``),
  scored on the same points as the point network (``fused_point_scores``).

Each returns a report of plain numbers for the chapter's tables; the networks themselves go into the
``models`` dict a caller passes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace

import keras
import numpy as np

from pcfilter_lib.data import scene_voxels
from pcfilter_lib.io.files import sha256
from pcfilter_lib.io.model_cards import WEIGHTS, read_model_card
from pcfilter_lib.labels import SEMANTIC_BACKGROUND, SEMANTIC_NAMES, SEMANTIC_SUPPORT
from pcfilter_lib.models import scene_cnn
from pcfilter_lib.models.saved import shipped_or_trained
from pcfilter_lib.nn.fit import TrainResult
from pcfilter_lib.nn.scores import class_confusion
from pcfilter_lib.recipes import scene_images as si
from pcfilter_lib.recipes import scene_points as sp
from pcfilter_lib.recipes import scene_segmentation as seg


def weight_power_runs(budget: seg.SceneRecipe, data_dir: str | os.PathLike, powers: Sequence[float] = seg.WEIGHT_POWERS,
                      weights: str | os.PathLike | None = WEIGHTS,
                      progress: bool = False) -> dict[float, tuple[TrainResult, bool]]:
    """The U-Net trained on ``budget``'s scene set at ``budget``'s epochs and chunks, once per power of the
    class weights: each the shipped network in ``weights`` where its card records this scene set and budget
    (its history and seconds stand for the run's), otherwise trained here; and whether it was shipped.
    ``weights`` None always trains."""
    folder = seg.ensure_scene_grids(data_dir, budget, progress)
    train_x, train_y = seg.load_features(folder, "train")
    runs = {}
    for power in powers:
        recipe = replace(budget, weight_power=power)
        runs[power] = shipped_or_trained(
            seg.weight_power_path(power, weights) if weights else None, folder, seg.network_settings(recipe, "unet"),
            "scene U-Net", lambda recipe=recipe: seg.train_scene_unet(train_x, train_y, recipe, recipe.seed))
    return runs


def scene_network(recipe: seg.SceneRecipe, data_dir: str | os.PathLike, name: str, progress: bool = False,
                  shipped: dict | None = seg.SHIPPED,
                  training: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[TrainResult, bool]:
    """One voxel network of the recipe's scene set, as ``run_scene_segmentation`` gets it: the shipped one
    where its card records this very scene set and budget, otherwise trained here.

    Args:
        recipe: the scene set and the budgets.
        data_dir: the data folder that holds (or receives) the scene set.
        name: ``column`` or ``unet`` (``recipes.scene_segmentation.NETWORKS``).
        progress: show progress bars while the scene set is made.
        shipped: per network, a model file to load instead of training (``models.saved.shipped_network``);
            None always trains.
        training: the training scenes' inputs and labels (``recipes.scene_segmentation.load_features``),
            when the caller has them already; None reads them from the scene set.

    Returns:
        The ``nn.fit.TrainResult`` (the card's history and seconds, if shipped) and whether it was the
        shipped network.

    Raises:
        ValueError: ``name`` is not a network of ``recipes.scene_segmentation.NETWORKS``.
    """
    if name not in seg.NETWORKS:
        raise ValueError(f"unknown scene network {name!r}; choose one of {tuple(seg.NETWORKS)}")
    folder = seg.ensure_scene_grids(data_dir, recipe, progress)
    train = seg.NETWORKS[name][0]

    def trained() -> TrainResult:
        train_x, train_y = training if training is not None else seg.load_features(folder, "train")
        return train(train_x, train_y, recipe, recipe.seed)

    return shipped_or_trained((shipped or {}).get(name), folder, seg.network_settings(recipe, name),
                              f"scene {name} network", trained)


def run_scene_segmentation(recipe: seg.SceneRecipe, data_dir: str | os.PathLike, progress: bool = False,
                           models: dict | None = None, predictions: dict | None = None,
                           shipped: dict | None = seg.SHIPPED) -> dict:
    """Make the scene set, train both networks briefly (or load the shipped ones) and score them on the
    test scenes.

    Args:
        recipe: the scene set and the budgets.
        data_dir: the data folder that holds (or receives) the scene set.
        progress: show progress bars.
        models: a dict that receives the trained networks under ``column`` and ``unet`` (to draw their
            predictions); the report itself holds numbers only.
        predictions: a dict that receives each network's predicted classes of the test scenes, (N, X, Y,
            Z) uint8, under the same names (``run_scene_points`` scores them on the measured points).
        shipped: per network, a model file to load instead of training, used only if it learnt from this
            very scene set at this budget (``models.saved.shipped_network``); None always trains.

    Returns:
        ``recipe`` (its settings), ``scenes`` (train and test counts) and, per network (``column``,
        ``unet``), the ``segmentation_scores`` plus ``train_seconds`` (the card's, if shipped),
        ``final_loss``, ``first_loss``, ``parameters`` and ``shipped``.
    """
    folder = seg.ensure_scene_grids(data_dir, recipe, progress)
    train_x, train_y = seg.load_features(folder, "train")
    test_x, test_y = seg.load_features(folder, "test")
    report = {"recipe": asdict(recipe), "scenes": {"train": len(train_x), "test": len(test_x)}}
    for name, (_, predict, _) in seg.NETWORKS.items():
        run, from_card = scene_network(recipe, data_dir, name, shipped=shipped, training=(train_x, train_y))
        model = run.model
        if models is not None:
            models[name] = model
        kept = []
        scores = seg.segmentation_scores(lambda scene, net=model, run=predict: run(net, scene), test_x, test_y, kept)
        if predictions is not None:
            predictions[name] = np.stack(kept)
        report[name] = seg.trained_entry(run, scores, from_card)
    return report


def run_scene_images(recipe: seg.SceneRecipe, data_dir: str | os.PathLike, budget: si.ImageBudget = si.FULL,
                     progress: bool = False, models: dict | None = None,
                     shipped_path: str | os.PathLike | None = si.SHIPPED,
                     geometry: tuple[keras.Model, dict] | None = None,
                     shipped_unets: dict | None = si.SHIPPED_UNETS) -> dict:
    """The 3DMV ablation on the recipe's scene set: the 2D network, then the scene U-Net on three inputs.

    Args:
        recipe: the scene set and the U-Net's budget (``recipes.scene_segmentation``).
        data_dir: the data folder that holds (or receives) the scene set.
        budget: the 2D network's budget, when it is trained here.
        progress: show progress bars.
        models: a dict that receives the networks (``image`` and one per input of ``INPUTS``).
        shipped_path: a 2D network to load instead of training one, used only if it learnt from this
            very scene set (``shipped_image_network``); None always trains.
        geometry: a U-Net that ``recipes.scene_segmentation.run_scene_segmentation`` trained on this
            recipe and its report entry, to stand as the geometry-only row (the same network, chunks
            and seed this function would use) instead of training it again.
        shipped_unets: per input, a U-Net to load instead of training it, used only if it learnt from
            this very scene set at this budget on the features of the very 2D network used here (the
            shipped one: its file's sha256 is on the U-Net's card); None always trains.

    Returns:
        ``recipe`` and ``budget`` (their settings), ``image`` (the 2D network's ``pixel_scores`` on the
        test views, whether it was the shipped one, its training seconds (the card's, if shipped),
        parameters, feature channels and the time to back-project one scene), ``image_only``
        (its back-projected probabilities scored as a voxel prediction) and one entry per input of
        ``INPUTS``, each the ``segmentation_scores`` plus ``train_seconds`` (the card's, if shipped),
        ``first_loss``, ``final_loss``, ``parameters`` and ``shipped``.
    """
    folder = seg.ensure_scene_grids(data_dir, recipe, progress)
    grids = {split: scene_voxels.load_scene_grids(folder, split) for split in ("train", "test")}
    views = {split: scene_voxels.load_scene_views(folder, split) for split in ("train", "test")}
    shipped = si.shipped_image_network(folder, shipped_path) if shipped_path else None
    if shipped is None:
        train_x, train_y = si.flat_views(views["train"])
        trained = si.train_image_network(train_x, train_y, budget, recipe.weight_power, recipe.seed)
        image_model, image_seconds = trained.model, trained.seconds
    else:
        image_model, image_seconds = shipped, read_model_card(shipped_path).training_seconds
    start = time.perf_counter()
    features = {split: si.image_feature_grids(image_model, views[split]) for split in ("train", "test")}
    backprojection_seconds = (time.perf_counter() - start) / sum(len(f) for f in features.values())
    alone = si.image_feature_grids(image_model, views["test"], probabilities=True)
    report = {"recipe": asdict(recipe), "budget": asdict(budget),
              "image": {**si.pixel_scores(image_model, *si.flat_views(views["test"])), "shipped": shipped is not None,
                        "train_seconds": image_seconds, "parameters": int(image_model.count_params()),
                        "features": int(image_model.get_layer("image_features").filters),
                        "backprojection_seconds": backprojection_seconds,
                        "voxels_reached": float(np.mean(features["test"].any(axis=-1)))},
              "image_only": seg.segmentation_scores(lambda p: p, np.stack([si.image_only_prediction(a) for a in alone]),
                                                    grids["test"]["labels"])}
    if models is not None:
        models["image"] = image_model
    image_sha = sha256(shipped_path) if shipped is not None else None
    geometry_x = si.geometry_inputs(grids)
    for which in si.INPUTS:
        if which == "geometry" and geometry is not None:
            model, report[which] = geometry[0], dict(geometry[1])
            if model.input_shape[-1] != geometry_x["train"].shape[-1]:
                raise ValueError(f"the geometry U-Net reads {model.input_shape[-1]} channels, not the "
                                 f"{geometry_x['train'].shape[-1]} of the scene features")
        else:
            inputs, streams = si.ablation_inputs(geometry_x, features, which)
            # Only U-Nets that read the features of this very 2D network (the shipped one) stand for training.
            path = (shipped_unets or {}).get(which) if image_sha else None
            run, from_card = shipped_or_trained(
                path, folder, seg.network_settings(recipe, which), f"scene U-Net ({si.INPUTS[which]})",
                lambda x=inputs["train"], s=streams: seg.train_scene_unet(x, grids["train"]["labels"], recipe,
                                                                          recipe.seed, streams=s),
                image_network_sha256=image_sha)
            model = run.model
            scores = seg.segmentation_scores(lambda scene, net=model: scene_cnn.predict_scene(net, scene),
                                             inputs["test"], grids["test"]["labels"])
            report[which] = seg.trained_entry(run, scores, from_card)
        if models is not None:
            models[which] = model
    return report


VOXEL_NETWORKS = ("column", "unet")  # the names run_scene_segmentation gives its networks


def run_scene_points(recipe: seg.SceneRecipe, data_dir: str | os.PathLike, budget: sp.PointBudget = sp.FULL,
                     voxel_classes: Mapping[str, np.ndarray] | None = None, progress: bool = False,
                     models: dict | None = None, shipped: str | os.PathLike | None = sp.SHIPPED) -> dict:
    """Train the point network on the recipe's scene set (or load the shipped one) and score it, and the
    voxel networks if given, on the same measured points of the test scenes.

    Args:
        recipe: the scene set (``scene_segmentation.SceneRecipe``); its ``seed`` and ``weight_power`` are
            used for training too.
        data_dir: the data folder that holds (or receives) the scene set.
        budget: the point network's budget.
        voxel_classes: the test scenes' classes as voxel networks predicted them (N, X, Y, Z), under
            ``column`` and / or ``unet`` (``run_scene_segmentation``'s ``predictions``): scored on the
            points without running the networks again, so their ``seconds_per_scene`` is NaN (a
            network's time a scene is measured where it predicted them).
        progress: show progress bars.
        models: a dict that receives the trained point network under ``point``.
        shipped: a model file to load instead of training, used only if its card records this scene set
            and budget (``models.saved.shipped_network``; its history and seconds stand for the run's);
            None always trains.

    Returns:
        ``recipe`` and ``budget`` (their settings), ``scenes`` (train and test counts), ``points``
        (measured points of the train and test scenes), ``point`` (``point_scores`` plus
        ``train_seconds``, ``first_loss``, ``final_loss``, ``parameters`` and ``shipped``) and the
        ``point_scores`` of every voxel network's classes given, under its name. Numbers only.

    Raises:
        ValueError: a voxel network under an unknown name.
    """
    unknown = sorted(set(voxel_classes or {}) - set(VOXEL_NETWORKS))
    if unknown:
        raise ValueError(f"voxel networks go under {sorted(VOXEL_NETWORKS)}, got {unknown}")
    folder = seg.ensure_scene_grids(data_dir, recipe, progress)
    train = sp.scene_points(scene_voxels.load_scene_views(folder, "train"))
    test = sp.scene_points(scene_voxels.load_scene_views(folder, "test"))
    report = {"recipe": asdict(recipe), "budget": asdict(budget), "scenes": {"train": len(train), "test": len(test)},
              "points": {"train": sum(len(s.points) for s in train), "test": sum(len(s.points) for s in test)}}
    result, loaded = shipped_or_trained(shipped, folder, sp.point_settings(recipe, budget), "scene point network",
                                        lambda: sp.train_point_network(train, budget, recipe.weight_power, recipe.seed,
                                                                       progress))
    if models is not None:
        models["point"] = result.model
    scores = sp.point_scores(sp.point_predictor(result.model, budget.points, recipe.seed, budget.batch_size), test)
    report["point"] = {**scores, "train_seconds": result.seconds, "first_loss": result.history["loss"][0],
                       "final_loss": result.history["loss"][-1], "parameters": int(result.model.count_params()),
                       "shipped": loaded}
    for name, classes in (voxel_classes or {}).items():
        report[name] = {**sp.point_scores(sp.class_grid_predictor(classes), test), "seconds_per_scene": float("nan")}
    return report


def fused_point_scores(confusion: np.ndarray, unseen: np.ndarray) -> dict:
    """Scores of labels on points where some points got none: those count as missed.

    Args:
        confusion: (K, K) counts of the labelled points (rows true, columns predicted).
        unseen: (K,) counts of the points of each true class that got no label (no view saw them).

    Returns:
        The keys of ``recipes.scene_segmentation.confusion_scores`` but the seconds (``iou`` of the classes
        present, ``mean_iou`` over the surface classes present, ``part_iou``, ``accuracy`` over the
        surface classes, ``confusion``), an unlabelled point being a miss of its class and a false alarm of
        none, plus ``labelled``, the share of points that got a label, and ``points``.

    Raises:
        ValueError: the shapes do not match.
    """
    confusion, unseen = np.asarray(confusion, np.int64), np.asarray(unseen, np.int64)
    k = len(SEMANTIC_NAMES)
    if confusion.shape != (k, k) or unseen.shape != (k,):
        raise ValueError(f"need a ({k}, {k}) confusion and ({k},) unseen counts, got {confusion.shape} and "
                         f"{unseen.shape}")
    full = np.zeros((k + 1, k + 1), np.int64)  # one more column: no label
    full[:k, :k], full[:k, k] = confusion, unseen
    iou = seg.class_iou(full)[:k]
    present = [c for c in range(k) if full[c].sum() > 0]
    surface = [c for c in present if c != SEMANTIC_BACKGROUND]
    part = np.r_[np.arange(k) > SEMANTIC_SUPPORT, False]
    hits = full[np.ix_(part, part)].sum()
    union = full[part].sum() + full[:, part].sum() - hits
    total = int(full.sum())
    return {"iou": {SEMANTIC_NAMES[c]: float(iou[c]) for c in present},
            "mean_iou": float(np.mean(iou[surface])) if surface else float("nan"),
            "part_iou": float(hits / union) if union else float("nan"),
            "accuracy": float(full[surface, surface].sum() / full[surface].sum()) if surface else float("nan"),
            "labelled": float(confusion.sum() / total) if total else float("nan"), "points": total,
            "confusion": confusion.tolist()}


# The labellings of the points that run_view_fusion scores: one view or all, fused by mean or maximum.
VIEW_FUSIONS = {"measuring": "the view that measured the point", "first": "the first view only (from above)",
                "mean": "all views, mean", "max": "all views, maximum"}


def run_view_fusion(recipe: seg.SceneRecipe, data_dir: str | os.PathLike, image_model: keras.Model | None = None,
                    tolerance: float | None = None, progress: bool = False) -> dict:
    """Segment the measured points of the test scenes from the views: the 2D network's per-pixel class
    probabilities carried to every point each view saw (``recipes.scene_images.points_seen``) and
    fused there, scored on the points of ``run_scene_points``.

    Args:
        recipe: the scene set.
        data_dir: the data folder that holds (or receives) the scene set.
        image_model: the 2D network (``run_scene_images``' ``models["image"]``); None loads the shipped
            one, which must have learnt from this scene set.
        tolerance: how far (metres) a view's measured depth may lie from a point for the view to count as
            seeing it; None takes the voxel size.
        progress: show progress bars while the scene set is made.

    Returns:
        ``views`` (per scene), ``points`` (scored), ``seen_by`` {number of views: share of the points seen by
        exactly that many}, ``agree_right`` and ``agree_wrong`` (of the points seen by more than one view,
        the shares where every view that saw it gives it the same most likely class, the right one or a
        wrong one: fusing changes neither) and, per labelling of ``VIEW_FUSIONS``, its ``fused_point_scores``.

    Raises:
        ValueError: no 2D network is given and the shipped one did not learn from this scene set.
    """
    folder = seg.ensure_scene_grids(data_dir, recipe, progress)
    if image_model is None:
        image_model = si.shipped_image_network(folder)
        if image_model is None:
            raise ValueError(f"the shipped 2D network did not learn from the scene set in {folder}; pass one")
    views = scene_voxels.load_scene_views(folder, "test")
    scenes = sp.scene_points(views)
    k, n_views = len(SEMANTIC_NAMES), views["depth"].shape[1]
    counts = {name: (np.zeros((k, k), np.int64), np.zeros(k, np.int64)) for name in VIEW_FUSIONS}
    seen_by = np.zeros(n_views + 1, np.int64)
    agreed = np.zeros(2, np.int64)  # points seen by several views on which they all agree: right, wrong
    for scene in scenes:
        pixels = si.points_seen(scene.points, views, scene.index, tolerance, scene.view, scene.pixel)
        per_view = si.point_view_probabilities(si.view_probabilities(image_model, views, scene.index), pixels)
        seen_by += np.bincount((pixels >= 0).sum(axis=1), minlength=n_views + 1)
        top = np.where(pixels >= 0, np.argmax(np.nan_to_num(per_view, nan=-1.0), axis=-1), -1)
        several = (pixels >= 0).sum(axis=1) > 1
        agree = several & ((top == top.max(axis=1, keepdims=True)) | (top < 0)).all(axis=1)
        right = top.max(axis=1) == scene.classes
        agreed += [np.sum(agree & right), np.sum(agree & ~right)]
        labellings = {"measuring": per_view[np.arange(len(pixels)), scene.view], "first": per_view[:, 0],
                      **{how: si.fuse_views(per_view, how) for how in si.FUSIONS}}
        for name, probabilities in labellings.items():
            labelled = np.isfinite(probabilities).all(axis=1)
            confusion, unseen = counts[name]
            confusion += class_confusion(scene.classes[labelled], np.argmax(probabilities[labelled], axis=1), k)
            unseen += np.bincount(scene.classes[~labelled], minlength=k)
    total, several = int(seen_by.sum()), int(seen_by[2:].sum())
    return {"views": n_views, "points": total,
            "seen_by": {n: float(seen_by[n] / total) for n in range(1, n_views + 1)},
            "agree_right": float(agreed[0] / several) if several else float("nan"),
            "agree_wrong": float(agreed[1] / several) if several else float("nan"),
            **{name: fused_point_scores(*counts[name]) for name in VIEW_FUSIONS}}
