"""The one fit helper and the one result type of every training in the library and the book.

``fit`` checks its arguments, trains a compiled Keras model with ``EpochTimer`` (seconds per epoch,
optional progress bar), optionally scores it on held-out data, and returns a ``TrainResult``.
``train_segmentation`` and ``train_classifier`` compile the two kinds of model the chapters train
and call it; the recipes compile their own (learning-rate schedules, losses) and call it too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np

from pcfilter_lib.nn import keras_metrics
from pcfilter_lib.nn.callbacks import EpochTimer


@dataclass
class TrainResult:
    """What one training did.

    Attributes:
        model: The trained Keras model.
        history: Per-epoch logs under their Keras names (``loss``, ``val_mean_iou``, ...), one float per epoch.
        seconds: Wall-clock seconds of the whole ``fit`` call (graph tracing and validation included).
        epoch_seconds: Wall-clock seconds of each epoch, in order.
        test: Scores on held-out data measured once after training (Keras names); empty if none was given.
    """

    model: keras.Model
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)
    test: dict[str, float] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        """Epochs trained."""
        return len(self.epoch_seconds)

    @property
    def elapsed(self) -> list[float]:
        """Cumulative seconds at the end of each epoch: the x axis of accuracy against training time."""
        return np.cumsum(self.epoch_seconds).tolist()

    @property
    def seconds_per_epoch(self) -> float:
        """Median seconds of the epochs after the first, whose time also covers tracing the graph
        (the first epoch's time when it is the only one)."""
        steady = self.epoch_seconds[1:] or self.epoch_seconds
        return float(np.median(steady)) if steady else float("nan")


def _unpack(data, name: str) -> tuple | None:
    """``(x, y, sample_weight)`` of an array tuple ``(x, y)`` / ``(x, y, sample_weight)``; None for a
    dataset (``tf.data``, ``PyDataset``, generator), which yields its own batches."""
    if data is None:
        raise ValueError(f"{name} is None: pass (x, y) or (x, y, sample_weight) arrays, or a dataset of batches")
    if not isinstance(data, tuple | list):
        return None
    if len(data) not in (2, 3):
        raise ValueError(f"{name} must be (x, y) or (x, y, sample_weight), got a sequence of {len(data)} items")
    x, y, weight = (*data, None) if len(data) == 2 else tuple(data)
    lengths = {part: len(a) for part, a in zip(("x", "y", "sample_weight"), (x, y, weight), strict=True)
               if hasattr(a, "shape")}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{name}: x, y and sample_weight must hold the same number of samples, got "
                         + ", ".join(f"{part} {n}" for part, n in lengths.items()))
    if 0 in lengths.values():
        raise ValueError(f"{name} holds no samples")
    return x, y, weight


def _batch_spec(train, arrays: tuple | None):
    """Something with the shapes and dtypes of a training batch, for ``_build_state``: the arrays
    themselves, a ``PyDataset``'s first batch (read by index, which leaves its order alone), a
    ``tf.data`` dataset's element spec; None for other inputs (generators)."""
    if arrays is not None:
        return arrays
    if isinstance(train, keras.utils.PyDataset):
        batch = train[0]
        return tuple(batch) if isinstance(batch, list) else batch
    return getattr(train, "element_spec", None)


def _build_state(model: keras.Model, batch) -> None:
    """Create the variables of a training step before the first one: the compiled metrics' and
    loss's, and the optimizer's. Without a distribution strategy, Keras' TensorFlow trainer creates
    them inside the first traced step, and TensorFlow then traces the whole step a second time. With
    many weights the trace is the costly part of the first step (measured for chapter 7's YOVO with
    Ranger on two cores: 34 s with two traces, 14 s with one). Keras' own symbolic build, which it
    runs before ``fit`` under a distribution strategy, does it from the batch's shapes alone."""
    strategy = getattr(model, "distribute_strategy", None)  # TensorFlow backend only
    symbolic_build = getattr(model, "_symbolic_build", None)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        if symbolic_build is not None and batch is not None:
            symbolic_build(data_batch=batch)
        elif model.optimizer is not None and not model.optimizer.built and model.built:
            model.optimizer.build(model.trainable_variables)


try:  # Keras' data adapters are not public API; without them, fit hands Keras its inputs as they are
    from keras.src.trainers import data_adapters as _adapters

    get_data_adapter, DataAdapter = _adapters.get_data_adapter, _adapters.data_adapter.DataAdapter
except (ImportError, AttributeError):
    get_data_adapter, DataAdapter = None, object


class UntunedAdapter(DataAdapter):
    """Keras' own data adapter for an input, whose ``tf.data`` pipeline runs with autotuning off.

    Keras feeds arrays and a ``PyDataset`` to TensorFlow through a pipeline that ends in an autotuned
    prefetch. On two cores its background thread and TensorFlow's two compute threads then wait for one
    another: PointNet's training step (batch 32, 512 points, width 0.25) took 85 ms instead of 61 on an AMD
    EPYC (AVX-512) with two cores, at the same CPU time. The batches, their order and the epoch hooks stay Keras'
    own, so a run gives the numbers it gave before, only sooner.
    """

    def __init__(self, inner):
        self.inner = inner

    def get_tf_dataset(self):
        dataset = self.inner.get_tf_dataset()
        options = type(dataset.options())()  # a fresh tf.data.Options, merged into the pipeline's own
        options.autotune.enabled = False
        return dataset.with_options(options)

    def get_numpy_iterator(self):
        return self.inner.get_numpy_iterator()

    def get_jax_iterator(self):
        return self.inner.get_jax_iterator()

    def get_torch_dataloader(self):
        return self.inner.get_torch_dataloader()

    num_batches = property(lambda self: self.inner.num_batches)
    batch_size = property(lambda self: self.inner.batch_size)
    has_partial_batch = property(lambda self: self.inner.has_partial_batch)
    partial_batch_size = property(lambda self: self.inner.partial_batch_size)

    def on_epoch_begin(self):
        self.inner.on_epoch_begin()

    def on_epoch_end(self):
        self.inner.on_epoch_end()


def _untuned(data, batch_size: int | None, shuffle: bool):
    """``data`` (arrays as ``(x, y, sample_weight)``, or a ``PyDataset``) in an ``UntunedAdapter`` on the
    TensorFlow backend; anything else (a ``tf.data`` pipeline keeps its own options) as it is."""
    if (get_data_adapter is None or keras.backend.backend() != "tensorflow"
            or not isinstance(data, tuple | keras.utils.PyDataset)):
        return data
    if isinstance(data, tuple):
        x, y, weight = data
        inner = get_data_adapter(x, y, weight, batch_size=batch_size or 32, shuffle=shuffle)
    else:
        inner = get_data_adapter(data, shuffle=shuffle)
    return UntunedAdapter(inner)


@contextlib.contextmanager
def graph_optimiser_off():
    """TensorFlow's graph optimiser (Grappler) off inside the block and as it was afterwards.

    For short training runs, where optimising the traced training step costs more than it saves:
    in chapter 7's ablation, 50 steps of YOVO on two CPU cores, it took about 3 s of each network's
    first epoch of 17 to 20 s and left the later epochs as fast. Graphs traced inside the block keep
    running unoptimised after it. Another backend is left alone.
    """
    if keras.backend.backend() != "tensorflow":
        yield
        return
    import tensorflow as tf  # the TensorFlow backend has imported it already

    before = bool(tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer"))
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": before})


def fit(model: keras.Model, train, *, epochs: int, validation=None, test=None, batch_size: int | None = None,
        callbacks: Sequence[keras.callbacks.Callback] = (), progress: bool = False, verbose: int | str = 0,
        shuffle: bool = True, desc: str = "training") -> TrainResult:
    """Train a compiled ``model`` for ``epochs`` and time it; the one training loop of the library.

    Args:
        model: A compiled Keras model (``model.compile`` sets its optimizer, loss and metrics).
        train: Arrays ``(x, y)`` or ``(x, y, sample_weight)`` with samples along axis 0, or a dataset
            (``tf.data.Dataset``, ``keras.utils.PyDataset``) yielding such batches.
        epochs: Passes over ``train``, >= 1.
        validation: Data in the same forms, scored after every epoch (``val_*`` in the history); None for none.
        test: Data in the same forms, scored once after training into ``TrainResult.test``; None for none.
        batch_size: Samples per step for array input (None: Keras' default of 32); a dataset sets its own.
        callbacks: More Keras callbacks; an ``EpochTimer`` always runs first.
        progress: Show a tqdm bar over the epochs with the loss and main metrics.
        verbose: Keras' own per-epoch log (0 silent); not together with ``progress``.
        shuffle: Shuffle the samples (arrays) or the batch order (``PyDataset``) every epoch.
        desc: Label of the progress bar.

    Returns:
        The ``TrainResult``: model, history (one float per epoch per log), seconds of the whole call and of
        each epoch, and the ``test`` scores.

    Raises:
        ValueError: If the model is not compiled, ``epochs`` < 1, data are malformed or of unequal lengths,
            ``batch_size`` is given with a dataset, or both ``progress`` and ``verbose`` are asked for.
        TypeError: If ``model`` is not a Keras model or a callback not a ``keras.callbacks.Callback``.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    if not getattr(model, "compiled", False):
        raise ValueError(f"model {model.name!r} is not compiled: call model.compile(optimizer, loss) before fit")
    if isinstance(epochs, bool) or not isinstance(epochs, int | np.integer) or epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs!r}")
    arrays = _unpack(train, "train")
    if validation is not None:
        _unpack(validation, "validation")
    test_arrays = _unpack(test, "test") if test is not None else None
    if batch_size is not None:
        if arrays is None:
            raise ValueError("batch_size is set by the dataset: leave it None, or pass arrays")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if progress and verbose:
        raise ValueError("choose the progress bar (progress=True) or Keras' log (verbose), not both")
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.Callback):
            raise TypeError(f"callbacks must be keras.callbacks.Callback objects, got {type(callback).__name__}")

    timer = EpochTimer(int(epochs), progress, desc=desc)
    start = time.perf_counter()
    _build_state(model, _batch_spec(train, arrays))
    source = _untuned(arrays if arrays is not None else train, batch_size, shuffle)
    if source is arrays:
        x, y, weight = arrays
        inputs = dict(x=x, y=y, sample_weight=weight, batch_size=batch_size)
    else:
        inputs = dict(x=source)
    if validation is not None:
        held_out = _unpack(validation, "validation")
        validation = _untuned(held_out if held_out is not None else validation, batch_size, False)
        if isinstance(validation, tuple) and validation[2] is None:
            validation = validation[:2]
    history = model.fit(**inputs, validation_data=validation, epochs=int(epochs), verbose=verbose, shuffle=shuffle,
                        callbacks=[timer, *callbacks])
    seconds = time.perf_counter() - start
    scores = {}
    if test is not None:
        if test_arrays is not None:
            x, y, weight = test_arrays
            inputs = dict(x=x, y=y, sample_weight=weight, batch_size=batch_size)
        else:
            inputs = dict(x=test)
        scores = {k: float(v) for k, v in model.evaluate(**inputs, verbose=0, return_dict=True).items()}
    return TrainResult(model, {k: [float(v) for v in values] for k, values in history.history.items()}, seconds,
                       timer.epoch_seconds, scores)


def train_segmentation(model: keras.Model | Callable[[], keras.Model], loss: keras.losses.Loss, train,
                       validation=None, epochs: int = 10, batch_size: int = 16, learning_rate: float = 1e-3,
                       verbose: int = 0, strategy=None, progress: bool = False) -> TrainResult:
    """Compile a segmentation model with Adam, ``loss`` and the confusion metrics, and ``fit`` it.

    Args:
        model: A Keras model or a function that builds one. With a ``strategy`` it must be a function,
            because the model's variables have to be created inside ``strategy.scope()``.
        loss: The loss (e.g. ``losses.BinaryFocalLoss``).
        train: ``(x, y, sample_weight)`` arrays, or a ``tf.data`` dataset / ``PyDataset`` of such
            batches (``batch_size`` then comes from the dataset).
        validation: Data in the same forms, scored every epoch; None for none.
        epochs: Passes over ``train``.
        batch_size: Samples per step for array input; with a strategy the global batch, split between replicas.
        learning_rate: Adam's step size.
        verbose: Keras' per-epoch log.
        strategy: A ``tf.distribute`` strategy (e.g. ``MirroredStrategy`` over several devices), or None.
        progress: Show a bar over the epochs.

    Returns:
        The ``TrainResult`` of ``fit``.

    Raises:
        ValueError: If ``epochs`` < 1 or a strategy comes with a built model (and as ``fit``).
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
                      weighted_metrics=keras_metrics.segmentation_metrics())
    arrays = isinstance(train, tuple | list)
    return fit(model, train, validation=validation, epochs=epochs, batch_size=batch_size if arrays else None,
               verbose=verbose, progress=progress)


def train_classifier(model: keras.Model, train: tuple, test: tuple, epochs: int, batch_size: int = 32,
                     learning_rate: float = 1e-3, progress: bool = False) -> TrainResult:
    """Compile a classifier (Adam, cross-entropy on integer labels, accuracy) and ``fit`` it on ``train``,
    scoring it on ``test`` after training.

    Args:
        model: A Keras classifier with softmax outputs (B, classes).
        train: ``(x, y)``: inputs (N, ...) and integer class labels (N,).
        test: ``(x, y)`` held out, scored once after training.
        epochs: Passes over ``train``.
        batch_size: Samples per step.
        learning_rate: Adam's step size.
        progress: Show a bar over the epochs.

    Returns:
        The ``TrainResult``; ``test`` holds ``loss`` and ``accuracy`` on ``test``, ``seconds_per_epoch`` the
        median epoch time after the first.

    Raises:
        ValueError: As ``fit``.
    """
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    return fit(model, train, test=test, epochs=epochs, batch_size=batch_size, progress=progress)
