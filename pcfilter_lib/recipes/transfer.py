"""Training and transfer learning for PointNet classifiers.

The workflow of the chapter: split the classes into a pretraining group and a new group, pretrain
on the first, save the model, load it again, freeze the feature extractor, replace the head for
the new classes, fine-tune the head alone, and optionally everything at a lower learning rate.
Every training run goes through ``nn.fit.fit`` and records its wall-clock time per epoch in its
``TrainResult``, so accuracy can be plotted against time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from pcfilter_lib.data.modelnet import Clouds, PointCloudDataset, select_classes, take_fraction
from pcfilter_lib.io.files import atomic_write_with
from pcfilter_lib.models import pointnet
from pcfilter_lib.nn.fit import TrainResult, fit


@dataclass(frozen=True)
class ExperimentSettings:
    """Sizes of the chapter's PointNet experiments; the caller picks ``FULL`` or ``FAST`` (e.g. with
    ``config.choose(full=transfer.FULL, fast=transfer.FAST)``).

    Attributes:
        num_points: Points sampled per cloud.
        width: PointNet's channel multiplier (1.0 is the paper's network).
        epochs: Epochs of a training from scratch.
        head_epochs: Epochs of training a new head.
        batch_size: Clouds per step.
        limit_per_class: Meshes read per class (None: all).
    """

    num_points: int
    width: float
    epochs: int
    head_epochs: int
    batch_size: int
    limit_per_class: int | None


FULL = ExperimentSettings(num_points=512, width=0.25, epochs=25, head_epochs=8, batch_size=32, limit_per_class=None)
FAST = ExperimentSettings(num_points=256, width=0.125, epochs=2, head_epochs=2, batch_size=16, limit_per_class=12)


def split_classes(classes, new: int | list[str] = 5) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(pretraining classes, new classes): by default the last five of the sorted names are new."""
    classes = tuple(classes)
    new_classes = tuple(classes[-new:]) if isinstance(new, int) else tuple(new)
    unknown = [c for c in new_classes if c not in classes]
    if unknown or not new_classes or len(new_classes) >= len(classes):
        raise ValueError(f"new classes {new_classes} must be a proper, non-empty subset of {classes}")
    return tuple(c for c in classes if c not in new_classes), new_classes


def compile_classifier(model: keras.Model, learning_rate: float = 1e-3, steps: int | None = None) -> keras.Model:
    """Adam with cross-entropy on integer labels; with ``steps`` the learning rate decays to 0 on a cosine."""
    rate = keras.optimizers.schedules.CosineDecay(learning_rate, steps) if steps else learning_rate
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def train(model: keras.Model, train_set: Clouds, val_set: Clouds | None = None, epochs: int = 20,
          batch_size: int = 32, learning_rate: float = 1e-3, augment: bool = True, seed: int = 0,
          progress: bool = False) -> TrainResult:
    """Compile and fit ``model`` on ``train_set`` with augmentation, validating on ``val_set`` every epoch.

    Args:
        model: A PointNet classifier (or any model on (B, N, 3) clouds with softmax outputs).
        train_set: The training clouds and their integer labels.
        val_set: Clouds scored after every epoch (``val_loss``, ``val_accuracy``); None or empty for none.
        epochs: Passes over ``train_set``; the learning rate decays on a cosine to zero over them.
        batch_size: Clouds per step.
        learning_rate: Adam's initial step size.
        augment: Rotate, scale and jitter the training clouds (``PointCloudDataset``).
        seed: Seed of the batch order and augmentation.
        progress: Show a bar over the epochs.

    Returns:
        The ``TrainResult`` (history, seconds in all and per epoch).
    """
    data = PointCloudDataset(train_set, batch_size, shuffle=True, augment=augment, seed=seed)
    val = PointCloudDataset(val_set, batch_size, shuffle=False) if val_set is not None and len(val_set) else None
    compile_classifier(model, learning_rate, steps=epochs * len(data))
    return fit(model, data, validation=val, epochs=epochs, progress=progress)


def predict(model: keras.Model, clouds: Clouds, batch_size: int = 64) -> np.ndarray:
    """Predicted class index per cloud (N,).

    Calls the model batch by batch in inference mode rather than ``model.predict``, which would
    compile a new graph function for every model an experiment builds.
    """
    batches = PointCloudDataset(clouds, batch_size, shuffle=False)
    scores = [keras.ops.convert_to_numpy(model(batches[i][0], training=False)) for i in range(len(batches))]
    return np.argmax(np.concatenate(scores), axis=1)


def accuracy(model: keras.Model, clouds: Clouds) -> float:
    return float(np.mean(predict(model, clouds) == clouds.labels))


def save_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save a model atomically as a ``.keras`` file."""
    path = Path(path)
    atomic_write_with(path, model.save)
    return path


def load_model(path: str | os.PathLike) -> keras.Model:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved model at {path}")
    return keras.models.load_model(path)


def replace_head(model: keras.Model, num_classes: int, freeze_features: bool = True, dropout: float = 0.3,
                 name: str | None = None) -> keras.Model:
    """A new classifier: ``model``'s feature extractor (frozen by default) and a fresh head for ``num_classes``.

    The layers are shared with ``model``, not copied: load a fresh copy of the pretrained model for
    every new experiment.
    """
    extractor = pointnet.feature_extractor(model)
    set_trainable(extractor, not freeze_features)
    width = model.get_layer("head_fc0_dense").units / 512 if "head_fc0_dense" in {lay.name for lay in model.layers} \
        else 1.0
    momentum = next(lay.momentum for lay in model.layers if isinstance(lay, keras.layers.BatchNormalization))
    outputs = pointnet.classification_head(extractor.output, num_classes, width, momentum, dropout, prefix="new_head")
    return keras.Model(extractor.input, outputs, name=name or f"{model.name}_transfer")


def set_trainable(model: keras.Model, trainable: bool, keep_batchnorm_frozen: bool = True) -> None:
    """(Un)freeze every layer; when unfreezing, batch-norm layers stay frozen by default, so that
    their running statistics from pretraining are kept (they then run in inference mode)."""
    for layer in model.layers:
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable and not (keep_batchnorm_frozen and is_bn)


def fine_tune(model: keras.Model, train_set: Clouds, val_set: Clouds | None, head_epochs: int,
              full_epochs: int = 0, learning_rate: float = 1e-3, full_learning_rate: float = 1e-4,
              seed: int = 0, progress: bool = False) -> list[TrainResult]:
    """Train the head of a ``replace_head`` model, then (``full_epochs`` > 0) everything at a lower rate;
    ``progress`` shows a bar over the epochs of each."""
    runs = [train(model, train_set, val_set, head_epochs, learning_rate=learning_rate, seed=seed,
                  progress=progress)]
    if full_epochs:
        set_trainable(model, True)
        runs.append(train(model, train_set, val_set, full_epochs, learning_rate=full_learning_rate, seed=seed + 1,
                          progress=progress))
    return runs


@dataclass
class TransferResult:
    """One data fraction of the transfer experiment: accuracies on the test set and the training seconds."""

    fraction: float
    train_size: int
    scratch_accuracy: float
    scratch_seconds: float
    transfer_accuracy: float
    transfer_seconds: float
    scratch_run: TrainResult
    transfer_run: TrainResult


def compare_transfer(pretrained: str | os.PathLike, train_set: Clouds, val_set: Clouds, test_set: Clouds,
                     new_classes, fractions=(0.1, 0.25, 1.0), scratch_epochs: int = 20, head_epochs: int = 5,
                     build=None, seed: int = 0, progress=None, bars: bool = False) -> list[TransferResult]:
    """For each fraction of the new classes' training data: train a fresh PointNet (``build(num_classes)``)
    from scratch, and a new head on the frozen pretrained feature extractor; test both.

    ``progress`` (e.g. ``print``) is called with a line after each fraction; ``bars`` shows a progress
    bar over the epochs of every training run.
    """
    new_train, new_val, new_test = (select_classes(c, new_classes) for c in (train_set, val_set, test_set))
    build = build or (lambda n: pointnet.build_pointnet(n))
    results = []
    for fraction in fractions:
        subset = take_fraction(new_train, fraction, seed=seed)
        keras.utils.set_random_seed(seed)
        scratch = build(len(new_classes))
        scratch_run = train(scratch, subset, new_val, scratch_epochs, seed=seed, progress=bars)
        keras.utils.set_random_seed(seed)
        model = replace_head(load_model(pretrained), len(new_classes))
        head_run = fine_tune(model, subset, new_val, head_epochs, seed=seed, progress=bars)[0]
        result = TransferResult(fraction, len(subset), accuracy(scratch, new_test), scratch_run.seconds,
                                accuracy(model, new_test), head_run.seconds, scratch_run, head_run)
        results.append(result)
        if progress:
            progress(f"{fraction:.0%} of the data ({len(subset)} clouds): from scratch {result.scratch_accuracy:.3f} "
                     f"in {result.scratch_seconds:.0f} s, new head {result.transfer_accuracy:.3f} "
                     f"in {result.transfer_seconds:.0f} s")
    return results
