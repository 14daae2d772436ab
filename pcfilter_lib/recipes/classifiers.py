"""The reference ModelNet10 classifiers: PointNet, PointNet++, DGCNN and KPConv, each shipped as
``<architecture>_modelnet10.keras`` with its model card.

Every architecture learns all ten classes of the data folder's ModelNet10 (the real data set if
``<data folder>/ModelNet10`` exists, otherwise the procedural stand-in, generated if missing) with
the same recipe: the same clouds, augmentation, validation split, optimiser, schedule and number
of epochs, so that their accuracy, size and training time compare fairly. A tenth of the training
clouds is held out for validation; the test split is scored once, at the end.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from pcfilter_lib.data import modelnet
from pcfilter_lib.io.model_cards import (
    WEIGHTS,
    ModelCard,
    card_path,
    check_model_file,
    learnt_from,
    provenance,
    read_model_card,
)
from pcfilter_lib.models import classify, dgcnn, kpconv, pointnet, pointnet2
from pcfilter_lib.nn import scores
from pcfilter_lib.nn.fit import TrainResult
from pcfilter_lib.recipes.common import environment, rounded

ARCHITECTURES = ("pointnet", "pointnet2", "dgcnn", "kpconv")
NAMES = {"pointnet": "PointNet", "pointnet2": "PointNet++", "dgcnn": "DGCNN", "kpconv": "KPConv"}


@dataclass(frozen=True)
class ClassifierRecipe:
    """Settings of one reference classifier's run.

    Attributes:
        modelnet: size of the procedural stand-in when the real data set is absent ("full" or "fast").
        epochs: training epochs.
        architecture: "pointnet", "pointnet2" (single-scale grouping), "dgcnn" or "kpconv" (rigid kernels).
        num_points: points sampled per mesh.
        width: multiplier of every layer's width (0.25: a quarter-width network).
        momentum: batch-norm momentum.
        dropout: dropout in the classification head.
        k: neighbours of each point in DGCNN's graphs (unused by the others).
        msg: multi-scale grouping in PointNet++ (unused by the others).
        batch_size: clouds per step.
        learning_rate: Adam's initial step size (cosine decay to zero).
        validation_fraction: share of the training clouds held out for validation.
    """

    modelnet: str
    epochs: int
    architecture: str = "pointnet"
    num_points: int = 512
    width: float = 0.25
    momentum: float = 0.9
    dropout: float = 0.3
    k: int = 20
    msg: bool = False
    batch_size: int = 32
    learning_rate: float = 1e-3
    validation_fraction: float = 0.1

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; choose one of {', '.join(ARCHITECTURES)}")


# Quarter-width networks on 512 points, each with its paper's dropout. On two CPU cores an epoch of
# PointNet takes about 15-25 s, of PointNet++ 25-60 s and of DGCNN, whose k-nearest-neighbour
# graphs in every layer cost most, 100-170 s: DGCNN gets 10 epochs instead of 25 to stay within an
# hour (its schedule still decays to zero). KPConv, whose neighbours are a kNN of the centres, takes
# about as long as PointNet++.
_DROPOUT = {"pointnet": 0.3, "pointnet2": 0.4, "dgcnn": 0.5, "kpconv": 0.5}
_EPOCHS = {"pointnet": 25, "pointnet2": 25, "dgcnn": 10, "kpconv": 25}
FULL = {a: ClassifierRecipe("full", epochs=_EPOCHS[a], architecture=a, dropout=d) for a, d in _DROPOUT.items()}
FAST = {a: ClassifierRecipe("fast", epochs=2, architecture=a, dropout=d) for a, d in _DROPOUT.items()}
SHIPPED = {a: WEIGHTS / f"{a}_modelnet10.keras" for a in ARCHITECTURES}


def build_classifier(settings: ClassifierRecipe, num_classes: int, num_points: int | None = None,
                     name: str | None = None) -> keras.Model:
    """An untrained classifier of ``settings.architecture`` with the recipe's width, momentum and dropout.

    Args:
        settings: the recipe.
        num_classes: number of classes.
        num_points: points per cloud, or None for clouds of any size.
        name: the model's name (default ``<architecture>_modelnet10``).
    """
    s, name = settings, name or f"{settings.architecture}_modelnet10"
    common = {"width": s.width, "momentum": s.momentum, "dropout": s.dropout, "name": name}
    if s.architecture == "pointnet2":
        return pointnet2.build_pointnet2(num_classes, num_points, msg=s.msg, **common)
    if s.architecture == "dgcnn":
        return dgcnn.build_dgcnn(num_classes, num_points, k=s.k, **common)
    if s.architecture == "kpconv":
        return kpconv.build_kpconv(num_classes, num_points, **common)
    return pointnet.build_pointnet(num_classes, num_points, **common)


def card_recipe(path: str | os.PathLike) -> ClassifierRecipe:
    """The recipe a saved reference classifier was trained with, read from the model card beside it.

    Settings the card does not hold come from the architecture's ``FULL`` recipe; a card that names
    no architecture is PointNet's.

    Raises:
        FileNotFoundError: no model card beside ``path``.
        ValueError: the card names an unknown architecture.
    """
    path = Path(path)
    card = read_model_card(path)
    if card is None:
        raise FileNotFoundError(f"no model card {card_path(path).name} beside {path}: it says how to build the "
                                "network the weights belong to")
    architecture = card.settings.get("architecture", "pointnet")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"the card of {path} names the architecture {architecture!r}; pcfilter builds "
                         f"{', '.join(ARCHITECTURES)}")
    fields = {f.name for f in dataclasses.fields(ClassifierRecipe)}
    return dataclasses.replace(FULL[architecture], **{k: v for k, v in card.settings.items() if k in fields})


def _train(recipe: ClassifierRecipe, train_set: modelnet.Clouds, val_set: modelnet.Clouds, seed: int,
           progress: bool, num_points: int | None = None) -> TrainResult:
    """A reference classifier's training run: seeded weights, ``classify.train`` with the recipe's budget."""
    keras.utils.set_random_seed(seed)
    model = build_classifier(recipe, len(train_set.classes), num_points)
    return classify.train(model, train_set, val_set, recipe.epochs, recipe.batch_size, recipe.learning_rate,
                          seed=seed, progress=progress)


def reference_run(root: str | os.PathLike, recipe: ClassifierRecipe, train_set: modelnet.Clouds,
                  val_set: modelnet.Clouds, seed: int = 0, progress: bool = False,
                  path: str | os.PathLike | None = None) -> tuple[TrainResult, bool]:
    """The reference classifier's run on the ModelNet10 set in ``root``, and whether it was loaded.

    Where the shipped network of ``recipe``'s architecture learnt from this data set (the procedural
    stand-in of the same version and parameters) with this recipe and seed, it is that run: its weights
    (in a network that takes clouds of any size, ``build_from_weights``) with its card's history and
    training seconds. Otherwise the network is trained here as ``train_reference_classifier`` trains it.

    Args:
        root: the data set's folder.
        recipe: the run's recipe (``FULL["pointnet"]``, or smaller ones that always train).
        train_set, val_set: ``root``'s training clouds split by ``modelnet.split_validation`` with
            the recipe's validation fraction and ``seed``, as the reference run splits them.
        seed: seed of the weights, the batch order and the augmentation.
        progress: show a bar over the epochs of a run trained here.
        path: the saved reference network (default: the one pcfilter ships for the architecture).
    """
    path = SHIPPED[recipe.architecture] if path is None else path
    card = read_model_card(path)
    if learnt_from(card, root) and card_recipe(path) == recipe and card.settings.get("seed") == seed:
        return TrainResult(build_from_weights(path), card.history, card.training_seconds), True
    return _train(recipe, train_set, val_set, seed, progress), False


def build_from_weights(path: str | os.PathLike = SHIPPED["pointnet"]) -> keras.Model:
    """A freshly built classifier with the weights of a saved reference model loaded into it.

    The network is built by ``build_classifier`` with the recipe (``card_recipe``) and classes of
    the model card beside ``path``, then ``load_weights`` copies the saved weights in: the lab's way
    of starting from a pretrained model. Each call returns a new, independent model.

    Raises:
        FileNotFoundError: no model file, or no model card beside it.
        ValueError: the card names an unknown architecture, or the saved weights do not fit the
            network it describes.
    """
    path = check_model_file(path, "saved classifier")
    settings = card_recipe(path)
    card = read_model_card(path)
    model = build_classifier(settings, len(card.data["classes"]), name=Path(card.model).stem)
    try:
        model.load_weights(path)
    except ValueError as error:
        raise ValueError(f"the weights in {path} do not fit the {NAMES[settings.architecture]} its card "
                         f"describes ({error})") from error
    return model


def train_reference_classifier(out: str | os.PathLike, data_dir: str | os.PathLike,
                               settings: ClassifierRecipe = FULL["pointnet"], seed: int = 0,
                               progress: bool = True) -> ModelCard:
    """Train one architecture on all ten classes and save ``out/<architecture>_modelnet10.keras``.

    Args:
        out: the output folder (created if needed).
        data_dir: the data folder holding (or receiving) ModelNet10.
        settings: an entry of ``FULL`` or ``FAST``, or any ``ClassifierRecipe``.
        seed: seed of the validation split, the weights and the batch order.
        progress: show progress bars and a line per stage.

    Returns:
        the model card (its ``command`` is left for the caller to fill in).
    """
    start = time.perf_counter()
    root, kind = modelnet.ensure_dataset(data_dir, settings.modelnet, progress=progress)
    s = settings
    train_all = modelnet.load_split(root, "train", s.num_points, seed=0, progress=progress)
    test = modelnet.load_split(root, "test", s.num_points, seed=0, progress=progress)
    train_set, val_set = modelnet.split_validation(train_all, s.validation_fraction, seed=seed)
    if progress:
        print(f"training {NAMES[s.architecture]} on {len(train_set)} clouds, validating on {len(val_set)}, "
              f"{s.epochs} epochs", flush=True)
    run = _train(s, train_set, val_set, seed, progress, s.num_points)
    model = run.model
    predicted = classify.predict(model, test)
    confusion = scores.class_confusion(test.labels, predicted, len(test.classes))
    path = classify.save_model(model, Path(out) / f"{s.architecture}_modelnet10.keras")
    per_class = {c: float(confusion[k, k] / max(1, confusion[k].sum())) for k, c in enumerate(test.classes)}
    return ModelCard(
        model=path.name, target=s.architecture,
        load_with=f"import pcfilter_lib.models.{s.architecture}; keras.models.load_model(path)",
        data={"kind": kind, **provenance(root, classes=list(test.classes), train=len(train_set),
                                         validation=len(val_set), test=len(test))},
        settings={**dataclasses.asdict(s), "seed": seed},
        test=rounded({"accuracy": float(np.mean(predicted == test.labels)), "per_class_accuracy": per_class,
                      "confusion": confusion.tolist()}, 4),
        validation=rounded({k: v[-1] for k, v in run.history.items() if k.startswith("val_")}, 4),
        parameters=int(model.count_params()), file_bytes=path.stat().st_size,
        training_seconds=round(run.seconds, 1), wall_seconds=round(time.perf_counter() - start, 1),
        history=rounded(run.history, 4), environment=environment())


