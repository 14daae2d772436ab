"""The one progress and timing callback of every training in the library and the book.

``EpochTimer`` is tqdm's own Keras callback (``tqdm.keras.TqdmCallback``, which works with Keras 3)
restricted to its bar over epochs, plus a clock: it records the wall-clock seconds of every epoch,
and the bar, when shown, carries the loss and the main metrics of the epoch in its postfix.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

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
