"""Training loops shared by the chapters and the reference-model scripts."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np

from pcfilter_lib.nn import metrics


@dataclass
class TrainResult:
    """A trained model, its per-epoch history (Keras names: loss, val_mean_iou, ...) and the
    wall-clock seconds that training took."""

    model: keras.Model
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0


def train_segmentation(model: keras.Model | Callable[[], keras.Model], loss: keras.losses.Loss, train,
                       validation=None, epochs: int = 10, batch_size: int = 16, learning_rate: float = 1e-3,
                       verbose: int = 0, strategy=None) -> TrainResult:
    """Compile a segmentation model with Adam, ``loss`` and the confusion metrics, and fit it.

    ``model`` is a Keras model or a function that builds one. With a ``tf.distribute`` ``strategy``
    (e.g. ``MirroredStrategy`` over several GPUs) it must be a function, because the model's
    variables have to be created inside ``strategy.scope()``; ``batch_size`` is then the global
    batch, split between the replicas. ``train`` and ``validation`` are ``(x, y, sample_weight)``
    tuples of arrays, or a ``tf.data`` dataset / ``PyDataset`` yielding such batches
    (``batch_size`` then comes from the dataset).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if strategy is not None and isinstance(model, keras.Model):
        raise ValueError("with a strategy, pass a function that builds the model, so that its variables "
                         "are created inside strategy.scope()")
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        if not isinstance(model, keras.Model):
            model = model()
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss,
                      weighted_metrics=metrics.segmentation_metrics())
    if isinstance(train, tuple):
        x, y, weight = train
        fit_args = dict(x=x, y=y, sample_weight=weight, batch_size=batch_size)
    else:
        fit_args = dict(x=train)
    start = time.perf_counter()
    history = model.fit(**fit_args, validation_data=validation, epochs=epochs, verbose=verbose)
    return TrainResult(model, {k: [float(v) for v in values] for k, values in history.history.items()},
                       time.perf_counter() - start)


def train_classifier(model, train: tuple, test: tuple, epochs: int, batch_size: int = 32,
                     learning_rate: float = 1e-3) -> dict:
    """Fit a classifier (sparse categorical cross-entropy, Adam) on ``train`` = (x, y) and score it on
    ``test``. Returns test accuracy, parameter count, input bytes per sample, the seconds of each
    epoch and the median of the epochs after the first (which also traces the graph)."""
    import time

    import keras

    class _Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    seconds: list[float] = []
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    x, y = train
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[_Clock()])
    _, accuracy = model.evaluate(*test, batch_size=batch_size, verbose=0)
    steady = seconds[1:] or seconds
    return {"accuracy": float(accuracy), "parameters": int(model.count_params()),
            "input_bytes": int(np.asarray(x[0], np.float32).nbytes), "epoch_seconds": seconds,
            "seconds_per_epoch": float(np.median(steady)), "train_accuracy": float(history.history["accuracy"][-1])}
