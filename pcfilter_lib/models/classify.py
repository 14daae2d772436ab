"""Classifiers of point clouds (PointNet, PointNet++, DGCNN, or any Keras model on (B, N, 3) clouds with
softmax outputs): compiled, trained, scored and given a new head.

These are the general helpers that the reference ModelNet10 classifiers (``recipes.classifiers``), the
transfer learning of chapter 4 (``recipes.transfer``, ``experiments.transfer_strategies``) and the
classifiers' speed (``timing.classifier_speed``) share:

* ``compile_classifier`` and ``train``: Adam with cross-entropy on integer labels and a cosine schedule,
  fitted through ``nn.fit.fit`` on augmented batches (``data.modelnet.PointCloudDataset``), so that every
  run records its wall-clock time per epoch in its ``TrainResult``;
* ``predict``, ``accuracy`` and ``mean_loss``: scores on a set of clouds, in inference mode, and
  ``accuracy_when_thinned`` on the same clouds thinned unevenly (chapter 4b's density test);
* ``global_features``, ``head_on_features``, ``replace_head`` and ``set_trainable``: a network's feature
  extractor read, frozen or unfrozen, and a fresh head put on it;
* ``with_batch_statistics``: a copy whose batch-norm statistics are those of one batch;
* ``save_model``: a model saved atomically.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import keras
import numpy as np

from pcfilter_lib.data import modelnet
from pcfilter_lib.data.modelnet import Clouds, PointCloudDataset
from pcfilter_lib.io.files import atomic_write_with
from pcfilter_lib.models import pointnet
from pcfilter_lib.nn.fit import TrainResult, fit

# XLA compiles a classifier's step once (a few seconds on a CPU) and then runs PointNet's steps about a
# quarter faster on two cores; Keras leaves it off on CPU-only machines, so runs long enough to repay
# the compilation ask for it.
XLA_FROM_STEPS = 200

# Inference through a traced graph from this many clouds on (see _outputs): on two CPU cores, 908 test
# clouds of 512 points took 2.2 s eagerly and 1.4 s through model.predict, tracing included, 0.7 s without;
# a model scored once breaks even at about 400 clouds, one scored again and again far below.
GRAPH_FROM_CLOUDS = 256


def compile_classifier(model: keras.Model, learning_rate: float = 1e-3, steps: int | None = None) -> keras.Model:
    """Adam with cross-entropy on integer labels; with ``steps`` the learning rate decays to 0 on a cosine,
    and from ``XLA_FROM_STEPS`` steps on (TensorFlow or JAX) the training step is compiled with XLA."""
    rate = keras.optimizers.schedules.CosineDecay(learning_rate, steps) if steps else learning_rate
    xla = bool(steps and steps >= XLA_FROM_STEPS and keras.backend.backend() in ("tensorflow", "jax"))
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=xla or "auto")
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


def _outputs(model: keras.Model, clouds: Clouds, batch_size: int) -> np.ndarray:
    """``model``'s outputs for every cloud, batch by batch in inference mode.

    From ``GRAPH_FROM_CLOUDS`` clouds on, through ``model.predict``, whose graph function is traced once
    per model (about 0.7 s for PointNet) and then runs a batch about three times as fast as calling the
    model eagerly; below that, eagerly, which costs less than tracing for every model an experiment
    builds.
    """
    batches = PointCloudDataset(clouds, batch_size, shuffle=False)
    inputs = [batches[i][0] for i in range(len(batches))]
    if len(clouds) >= GRAPH_FROM_CLOUDS:
        return model.predict(np.concatenate(inputs), batch_size=batch_size, verbose=0)
    return np.concatenate([keras.ops.convert_to_numpy(model(x, training=False)) for x in inputs])


def predict(model: keras.Model, clouds: Clouds, batch_size: int = 64) -> np.ndarray:
    """Predicted class index per cloud (N,)."""
    return np.argmax(_outputs(model, clouds, batch_size), axis=1)


def accuracy(model: keras.Model, clouds: Clouds) -> float:
    return float(np.mean(predict(model, clouds) == clouds.labels))


def accuracy_when_thinned(models: dict[str, keras.Model], clouds: modelnet.Clouds, num_points: int,
                          strengths: tuple[float, ...], seed: int = 0) -> dict[str, list[float]]:
    """Test accuracy of each model on ``clouds`` thinned unevenly (``modelnet.thin_unevenly``) to
    ``num_points`` at each strength; the same thinned clouds for every model.

    Args:
        models: name -> classifier.
        clouds: dense test clouds (more points than ``num_points``).
        num_points: points kept per cloud.
        strengths: the fall-offs to test (0: a uniform subset).
        seed: seed of the thinning.

    Returns:
        name -> one accuracy per strength.
    """
    scores: dict[str, list[float]] = {name: [] for name in models}
    for strength in strengths:
        thinned = dataclasses.replace(clouds, points=modelnet.thin_unevenly(clouds.points, num_points, strength, seed))
        for name, model in models.items():
            scores[name].append(accuracy(model, thinned))
    return scores


def mean_loss(model: keras.Model, clouds: Clouds) -> float:
    """Mean cross-entropy of ``model``'s class probabilities on ``clouds``, in inference mode."""
    probabilities = np.clip(_outputs(model, clouds, 64), 1e-7, 1.0)
    return float(-np.mean(np.log(probabilities[np.arange(len(clouds)), clouds.labels])))


def with_batch_statistics(model: keras.Model, points, copy: keras.Model | None = None) -> keras.Model:
    """A copy of ``model`` whose batch-norm running statistics are those of one batch alone.

    Batch-norm momentum 0 leaves exactly these after a training step on ``points``: each layer's mean
    and variance over that batch, as the training-mode forward pass computes them. Training never
    reads the running statistics, so a network trained with momentum 0 is ``model`` with the
    statistics of its last training batch (up to that step's own weight update).

    Args:
        model: A trained classifier (it is not changed).
        points: One batch of clouds (B, N, 3), as training would see it (augmented).
        copy: A copy an earlier call returned, to be reused: its weights are reset from ``model`` and
            its traced inference function is kept, which saves tracing it again for every batch tried.
    """
    if copy is None:
        copy = keras.models.clone_model(model)
        for layer in copy.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum, layer.trainable = 0.0, True  # a frozen layer would not update its statistics
    copy.set_weights(model.get_weights())
    copy(keras.ops.convert_to_tensor(points), training=True)
    return copy


def global_features(model: keras.Model, clouds: Clouds, batch_size: int = 64) -> np.ndarray:
    """The global feature (N, F) of every cloud under ``model``'s feature extractor, in inference mode.

    Args:
        model: a classifier with a layer named ``global_feature`` (PointNet, PointNet++ and DGCNN
            all have one); its layers up to that one are used.
        clouds: the clouds.
        batch_size: clouds per forward pass.
    """
    return _outputs(pointnet.feature_extractor(model), clouds, batch_size)


def head_on_features(model: keras.Model, train_set: Clouds, val_set: Clouds, test: Clouds, epochs: int,
                     width: float = 0.25, dropout: float = 0.3, batch_size: int = 32, learning_rate: float = 1e-3,
                     seed: int = 0) -> tuple[float, TrainResult]:
    """A new head (``pointnet.build_head``) trained on the frozen global features of ``model``.

    The features of every cloud are computed once (``global_features``), so the extractor's forward
    pass is not repeated every epoch; this compares how well different extractors' features serve a
    new task at the cost of a few seconds of training.

    Returns:
        (test accuracy, the head's ``TrainResult``).
    """
    x = [global_features(model, clouds) for clouds in (train_set, val_set, test)]
    keras.utils.set_random_seed(seed)
    head = pointnet.build_head(x[0].shape[1], len(train_set.classes), width=width, dropout=dropout)
    compile_classifier(head, learning_rate, steps=epochs * -(-len(train_set) // batch_size))
    run = fit(head, (x[0], train_set.labels), validation=(x[1], val_set.labels), epochs=epochs,
              batch_size=batch_size)
    scores = keras.ops.convert_to_numpy(head(x[2], training=False))
    return float(np.mean(np.argmax(scores, axis=1) == test.labels)), run


def save_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save a model atomically as a ``.keras`` file."""
    path = Path(path)
    atomic_write_with(path, model.save)
    return path


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
