"""The reference PointNet classifier on ModelNet10: the shipped ``pointnet_modelnet10.keras``.

PointNet learns all ten classes of the data folder's ModelNet10: the real data set if
``<data folder>/ModelNet10`` exists, otherwise the procedural stand-in (generated if missing). A
tenth of the training clouds is held out for validation; the test split is scored once, at the end.
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
from pcfilter_lib.io.model_cards import WEIGHTS, ModelCard, card_path, read_model_card
from pcfilter_lib.models import pointnet
from pcfilter_lib.nn import metrics
from pcfilter_lib.recipes import transfer
from pcfilter_lib.recipes.common import environment, provenance, rounded


@dataclass(frozen=True)
class PointNetRecipe:
    """Settings of the reference PointNet run.

    Attributes:
        modelnet: size of the procedural stand-in when the real data set is absent ("full" or "fast").
        epochs: training epochs.
        num_points: points sampled per mesh.
        width: multiplier of every layer's width (0.25: a quarter-width network).
        momentum: batch-norm momentum.
        dropout: dropout before the last layer.
        batch_size: clouds per step.
        learning_rate: Adam's initial step size (cosine decay to zero).
        validation_fraction: share of the training clouds held out for validation.
    """

    modelnet: str
    epochs: int
    num_points: int = 512
    width: float = 0.25
    momentum: float = 0.9
    dropout: float = 0.3
    batch_size: int = 32
    learning_rate: float = 1e-3
    validation_fraction: float = 0.1


# A quarter-width network on 512 points trains on two CPU cores in about ten minutes.
FULL = PointNetRecipe("full", epochs=25)
FAST = PointNetRecipe("fast", epochs=2)
SHIPPED = WEIGHTS / "pointnet_modelnet10.keras"


def build_from_weights(path: str | os.PathLike = SHIPPED) -> keras.Model:
    """A freshly built PointNet with the weights of a saved reference model loaded into it.

    The network is built by ``pointnet.build_pointnet`` with the settings and classes of the model
    card beside ``path`` (the recipe's defaults where a setting is missing), then ``load_weights``
    copies the saved weights in: the lab's way of starting from a pretrained model. Each call
    returns a new, independent model.

    Raises:
        FileNotFoundError: no model file, or no model card beside it.
        ValueError: the saved weights do not fit the network the card describes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved PointNet at {path}")
    card = read_model_card(path)
    if card is None:
        raise FileNotFoundError(f"no model card {card_path(path).name} beside {path}: it says how to build the "
                                "network the weights belong to")
    s = {**dataclasses.asdict(FULL), **card.settings}
    model = pointnet.build_pointnet(len(card.data["classes"]), width=s["width"], momentum=s["momentum"],
                                    dropout=s["dropout"], name=Path(card.model).stem)
    try:
        model.load_weights(path)
    except ValueError as error:
        raise ValueError(f"the weights in {path} do not fit the PointNet its card describes ({error})") from error
    return model


def train_reference_pointnet(out: str | os.PathLike, data_dir: str | os.PathLike, settings: PointNetRecipe = FULL,
                             seed: int = 0, progress: bool = True) -> ModelCard:
    """Train PointNet on all ten classes and save ``out/pointnet_modelnet10.keras``.

    Args:
        out: the output folder (created if needed).
        data_dir: the data folder holding (or receiving) ModelNet10.
        settings: ``FULL`` or ``FAST``, or any ``PointNetRecipe``.
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
    keras.utils.set_random_seed(seed)
    model = pointnet.build_pointnet(len(train_all.classes), s.num_points, width=s.width, momentum=s.momentum,
                                    dropout=s.dropout, name="pointnet_modelnet10")
    if progress:
        print(f"training PointNet ({model.count_params()} parameters) on {len(train_set)} clouds, "
              f"validating on {len(val_set)}, {s.epochs} epochs", flush=True)
    run = transfer.train(model, train_set, val_set, s.epochs, s.batch_size, s.learning_rate, seed=seed,
                         progress=progress)
    predicted = transfer.predict(model, test)
    confusion = metrics.class_confusion(test.labels, predicted, len(test.classes))
    path = transfer.save_model(model, Path(out) / "pointnet_modelnet10.keras")
    per_class = {c: float(confusion[k, k] / max(1, confusion[k].sum())) for k, c in enumerate(test.classes)}
    return ModelCard(
        model=path.name, target="pointnet",
        load_with="import pcfilter_lib.models.pointnet; keras.models.load_model(path)",
        data={"kind": kind, **provenance(root, classes=list(test.classes), train=len(train_set),
                                         validation=len(val_set), test=len(test))},
        settings={**dataclasses.asdict(s), "seed": seed},
        test=rounded({"accuracy": float(np.mean(predicted == test.labels)), "per_class_accuracy": per_class,
                      "confusion": confusion.tolist()}, 4),
        validation=rounded({k: v[-1] for k, v in run.history.items() if k.startswith("val_")}, 4),
        parameters=int(model.count_params()), file_bytes=path.stat().st_size,
        training_seconds=round(run.seconds, 1), wall_seconds=round(time.perf_counter() - start, 1),
        history=rounded(run.history, 4), environment=environment())
