"""Callbacks of the library's trainings.

``EpochTimer``, the progress and timing callback of every training in the library and the book, is
tqdm's own Keras callback (``tqdm.keras.TqdmCallback``, which works with Keras 3) restricted to its
bar over epochs, plus a clock: it records the wall-clock seconds of every epoch, and the bar, when
shown, carries the loss and the main metrics of the epoch in its postfix. ``SoftThreshold`` is the
proximal step of an L1 penalty, which sets weights exactly to zero.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import keras
from tqdm.keras import TqdmCallback

# Logs shown in the bar's postfix when an epoch holds them; the other metrics would make it too long.
SHOWN = ("loss", "accuracy", "mean_iou", "val_loss", "val_accuracy", "val_mean_iou")


class EpochTimer(TqdmCallback):
    """Records the seconds of each epoch in ``epoch_seconds``; with ``progress`` also shows a tqdm bar
    over the epochs (silent otherwise).

    Args:
        epochs: Epochs of the ``fit`` call (the bar's length).
        progress: Show the bar (on stderr, or as a widget in a notebook).
        shown: Names of the logs to put in the bar's postfix, where present.
        desc: The bar's label.
    """

    def __init__(self, epochs: int, progress: bool = False, shown: Sequence[str] = SHOWN, desc: str = "training"):
        super().__init__(epochs=epochs, verbose=0, desc=desc, disable=not progress)
        # TqdmCallback binds its own epoch-end update to the instance; the class method below replaces it.
        self.__dict__.pop("on_epoch_end", None)
        self.shown = tuple(shown)
        self.epoch_seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._start)
        logs = logs or {}
        self.epoch_bar.set_postfix({k: f"{float(logs[k]):.4g}" for k in self.shown if k in logs}, refresh=False)
        self.epoch_bar.update()


class SoftThreshold(keras.callbacks.Callback):
    """L1 by proximal steps: after every training step, ``w <- sign(w) * max(|w| - tau, 0)`` on kernels,
    with ``tau = eta * alpha``, the step's learning rate ``eta`` times the penalty ``alpha``.

    A gradient step on the penalty ``alpha * |w|`` moves every weight by the same amount towards
    zero, so a weight the loss does not need hops across zero and back and almost never rests on
    it. The proximal gradient method instead takes the step on the loss alone and then applies the
    proximal operator of the penalty, the soft threshold, which sets every weight within ``tau`` of
    zero exactly to zero; for a step of size ``eta``, ``tau = eta * alpha``. The threshold therefore
    follows the optimizer's learning rate, read before every step (a schedule's value at that
    step): a fixed ``tau`` would keep pulling at full strength while a schedule anneals the loss's
    steps towards zero. A weight stays at zero until the loss's gradient pushes it out by more than
    ``tau`` per step.

    By default only the ``Dense`` layers whose output does not go straight into batch
    normalisation are thresholded. Batch normalisation divides out the scale of the layer before
    it, so the loss cannot resist a penalty that shrinks all of that layer's weights: the threshold
    shrinks them step after step, the optimizer's steps (whose size does not shrink with them) grow
    relative to the weights, and training ends in an unstable regime that inference-mode statistics
    cannot follow. Name such layers in ``layers`` to threshold them all the same.

    Args:
        alpha: weight of the L1 penalty, >= 0.
        layers: names of the layers whose ``kernel`` is thresholded (None: every ``Dense`` layer not
            followed directly by ``BatchNormalization``).
    """

    def __init__(self, alpha: float, layers: Sequence[str] | None = None):
        super().__init__()
        if not alpha >= 0:
            raise ValueError(f"alpha must be a number >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.layer_names = None if layers is None else tuple(layers)
        self.taus: list[float] = []  # the threshold of every step so far, in order
        self._kernels: list = []
        self._tau = 0.0

    def get_config(self) -> dict:
        """The arguments that rebuild this callback: ``SoftThreshold(**config)``."""
        return {"alpha": self.alpha, "layers": None if self.layer_names is None else list(self.layer_names)}

    def on_train_begin(self, logs=None):
        if self.layer_names is None:
            chosen = [layer for layer in self.model.layers
                      if isinstance(layer, keras.layers.Dense) and not feeds_batch_norm(self.model, layer)]
        else:
            chosen = [self.model.get_layer(name) for name in self.layer_names]
        self._kernels = [layer.kernel for layer in chosen]
        if not self._kernels:
            raise ValueError(f"model {self.model.name!r} has no Dense layer outside batch normalisation to "
                             "threshold; name the layers to threshold them anyway")
        self.taus = []

    def on_train_batch_begin(self, batch, logs=None):
        # The optimizer's learning rate now is the one of the step about to be taken.
        self._tau = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)) * self.alpha

    def on_train_batch_end(self, batch, logs=None):
        tau = self._tau
        self.taus.append(tau)
        for kernel in self._kernels:
            kernel.assign(keras.ops.sign(kernel) * keras.ops.maximum(keras.ops.abs(kernel) - tau, 0.0))


def feeds_batch_norm(model: keras.Model, layer: keras.layers.Layer) -> bool:
    """Whether ``layer``'s output is the input of a ``BatchNormalization`` layer of ``model``."""
    try:
        output = layer.output
    except (AttributeError, ValueError):  # a layer not called in a functional graph
        return False
    return any(isinstance(other, keras.layers.BatchNormalization) and other.input is output
               for other in model.layers)
