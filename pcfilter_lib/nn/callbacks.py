"""The one progress and timing callback of every training in the library and the book.
"""

from __future__ import annotations

import keras


class _EpochBar(keras.callbacks.Callback):
    """A tqdm bar over epochs showing the training loss and mean IoU."""

    def __init__(self, epochs: int):
        super().__init__()
        from tqdm.auto import tqdm

        self.bar = tqdm(total=epochs, desc="training", unit="epoch")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.bar.set_postfix(loss=f"{logs.get('loss', float('nan')):.4f}", iou=f"{logs.get('mean_iou', 0):.3f}")
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()
