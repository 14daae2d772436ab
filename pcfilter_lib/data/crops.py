"""Training examples for the U-Net filter: random square crops of simulated scans.

Whole 640x480 scans are slow to train on with a CPU, and most of each scan is plain true geometry.
``CropSequence`` therefore cuts square crops from the training scans, centring a share of them on a
random artefact pixel, so that artefacts are not too rare in a batch; it flips, turns and jitters
each crop. A fully convolutional U-Net trained on crops runs on whole scans unchanged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import keras
import numpy as np
from tqdm.auto import tqdm

from pcfilter_lib.data.scans import CHANNELS, augment_example, load_example


class CropSequence(keras.utils.PyDataset):
    """Batches of random square crops (x, y, weight) from in-memory training examples.

    ``examples`` are (x (H, W, C), y (H, W, 1), weight (H, W)) as from ``load_example``. Each epoch
    draws ``crops`` crops of side ``size``; with probability ``artefact_share`` a crop is centred on
    a random artefact pixel of its scan, otherwise anywhere. Every crop is flipped, jittered
    (``augment_example``) and turned by a random multiple of 90 degrees. Draws come from
    ``(seed, epoch, batch)``, so a run is reproducible.

    Args:
        examples: the training examples.
        size: the side of the crops, in pixels (at most the smallest scan's side).
        crops: crops per epoch.
        batch_size: crops per batch.
        artefact_share: the probability that a crop is centred on an artefact.
        seed: the seed of every draw.
        **kwargs: passed on to ``keras.utils.PyDataset``.

    Raises:
        ValueError: there is no example, a setting is out of range, or a scan is smaller than the
            crop.
    """

    def __init__(self, examples: Sequence[tuple], size: int = 128, crops: int = 1024, batch_size: int = 16,
                 artefact_share: float = 0.5, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if not examples:
            raise ValueError("a crop sequence needs at least one training example")
        if size < 1 or crops < 1 or batch_size < 1 or not 0 <= artefact_share <= 1:
            raise ValueError(f"bad crop settings: size {size}, crops {crops}, batch {batch_size}, "
                             f"artefact_share {artefact_share}")
        small = [x.shape[:2] for x, _, _ in examples if min(x.shape[:2]) < size]
        if small:
            raise ValueError(f"crop size {size} is larger than a training scan of {small[0]} pixels")
        self.examples, self.size, self.crops, self.batch_size = list(examples), size, crops, batch_size
        self.artefact_share, self.seed, self.epoch = artefact_share, seed, 0
        self.artefacts = [np.argwhere((w > 0) & (y[..., 0] == 0)) for _, y, w in self.examples]

    def __len__(self) -> int:
        return math.ceil(self.crops / self.batch_size)

    def crop(self, rng: np.random.Generator):
        """One augmented crop.

        Args:
            rng: the generator the draws come from.

        Returns:
            ``(x, y, w)`` of (size, size, C), (size, size, 1) and (size, size).
        """
        i = int(rng.integers(len(self.examples)))
        x, y, w = self.examples[i]
        h, wd, s = x.shape[0], x.shape[1], self.size
        if len(self.artefacts[i]) and rng.random() < self.artefact_share:
            cy, cx = self.artefacts[i][rng.integers(len(self.artefacts[i]))]
            top, left = int(np.clip(cy - s // 2, 0, h - s)), int(np.clip(cx - s // 2, 0, wd - s))
        else:
            top, left = int(rng.integers(h - s + 1)), int(rng.integers(wd - s + 1))
        window = (slice(top, top + s), slice(left, left + s))
        x, y, w = augment_example(x[window], y[window], w[window], rng)
        turns = int(rng.integers(4))
        return tuple(np.ascontiguousarray(np.rot90(a, turns, axes=(0, 1))) for a in (x, y, w))

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range ({len(self)} batches)")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        n = min(self.batch_size, self.crops - index * self.batch_size)
        crops = [self.crop(rng) for _ in range(n)]
        return tuple(np.stack([c[k] for c in crops]).astype(np.float32) for k in range(3))

    def on_epoch_end(self):
        self.epoch += 1


def load_examples(files: Sequence[str | os.PathLike], channels: Sequence[str] = CHANNELS,
                  progress: bool = False) -> list[tuple]:
    """Load the training examples of many scan files into memory.

    Args:
        files: scan ``.npz`` files.
        channels: the input channels (``data.scans.scan_inputs``).
        progress: show a progress bar.

    Returns:
        One unpadded ``(x, y, weight)`` per file (``data.scans.load_example``).
    """

    return [load_example(f, channels) for f in tqdm(files, desc="loading scans", unit="scan", disable=not progress)]
