"""Section 8b's study of shape completion: the completion network (3D-EPN's task,
``recipes.shape_completion``) scored on the test objects, and the lecture's claim that completion
features help classification, tested with three classifiers of the partial grids (their own encoder,
the completion network's frozen encoder, or both).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict

import numpy as np

from pcfilter_lib.models.saved import shipped_or_trained
from pcfilter_lib.recipes import shape_completion as sc


def run_shape_completion(recipe: sc.CompletionRecipe, data_dir: str | os.PathLike, progress: bool = False,
                         models: dict | None = None, shipped_path: str | os.PathLike | None = sc.SHIPPED) -> dict:
    """Make the set, train the completion network (or load the shipped one), score it, then train and score
    the three classifiers.

    Args:
        recipe: the set and the budgets.
        data_dir: the data folder that holds (or receives) the set.
        progress: show progress bars.
        models: a dict that receives the networks (``completion`` and each classifier's name).
        shipped_path: a completion network to load instead of training, used only if it learnt from this
            very set at this budget (``models.saved.shipped_network``); None always trains.

    Returns:
        ``recipe``, ``objects`` (train, test), ``data_seconds``, ``completion`` (``completion_scores`` of
        the test split with ``train_seconds`` (the card's, if shipped), ``first_loss``, ``final_loss``,
        ``parameters`` and ``shipped``) and ``classifiers``: per ``CLASSIFIERS`` name, ``accuracy`` (test),
        ``train_accuracy`` (last epoch), ``train_seconds`` and ``trainable`` parameters.
    """
    start = time.perf_counter()
    folder = sc.ensure_completion_grids(data_dir, recipe, progress)
    train, test, train_x, test_x = sc.split_inputs(folder)
    data_seconds = time.perf_counter() - start
    run, from_card = shipped_or_trained(shipped_path, folder, sc.completion_settings(recipe), "completion network",
                                        lambda: sc.train_completion(train_x, train["target"], recipe, recipe.seed))
    net, history = run.model, run.history
    scores = sc.completion_scores(test, sc.predict_fields(net, test_x), recipe.surface_voxels)
    report = {"recipe": asdict(recipe), "objects": {"train": len(train_x), "test": len(test_x)},
              "data_seconds": data_seconds,
              "completion": {**scores, "train_seconds": run.seconds, "first_loss": history["loss"][0],
                             "final_loss": history["loss"][-1], "parameters": int(net.count_params()),
                             "shipped": from_card},
              "classifiers": {}}
    if models is not None:
        models["completion"] = net
    for name, setting in sc.CLASSIFIERS.items():
        trained = sc.train_classifier(train_x, train["labels"], recipe, net if setting["features"] else None,
                                      own=setting["own"], seed=recipe.seed, desc=name)
        if models is not None:
            models[name] = trained.model
        weights = trained.model.trainable_weights
        report["classifiers"][name] = {
            "accuracy": sc.accuracy(trained.model, test_x, test["labels"]),
            "train_accuracy": trained.history["accuracy"][-1], "train_seconds": trained.seconds,
            "trainable": int(sum(np.prod(w.shape) for w in weights))}
    return report
