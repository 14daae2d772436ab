"""Scan datasets for Keras: a ``keras.utils.PyDataset`` and a ``tf.data`` pipeline, both yielding
``(x, y, sample_weight)`` batches from scan ``.npz`` files.

* ``x`` (B, H', W', C) float32: the channels of the original work, intensity, depth, nx, ny, nz,
  then (with ``validity``) a 0/1 channel marking pixels with a point. Intensity and depth are
  min-max normalised over the scan's points to [0, 1]; normals are mapped from [-1, 1] to [0, 1];
  every channel is 0 where there is no point. ``scan_inputs`` also gives the ``GEOMETRIC`` channels,
  which hold no absolute depth and measure lengths in local point spacings, for filters that must
  work on any scanner.
* ``y`` (B, H', W', 1) float32: the keep mask, 1 for true geometry, 0 for artefacts (and no point).
* ``sample_weight`` (B, H', W') float32: 1 where there is a point, 0 elsewhere and on the padding.

H', W' are the scan's sides (after rotation) padded up to a multiple of ``multiple`` (the U-Net's
2 ** depth). Augmentation: random horizontal and vertical flips and intensity jitter (gamma and
noise) per scan, and one random 90-degree rotation per batch; augmented batches are padded to
squares so that every batch has the same shape.
Both pipelines build each batch with ``make_batch`` and give the same batches for the same seed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from pcfilter_lib.geometry.pixel_neighbourhoods import STATISTICS, pixel_statistics
from pcfilter_lib.io.scan import load_scan
from pcfilter_lib.labels import KEEP, NO_POINT

CHANNELS = ("intensity", "depth", "nx", "ny", "nz", "valid")  # the original work's five, then validity
# Channels that mean the same on any scanner: no absolute depth, lengths in local point spacings.
GEOMETRIC = ("intensity", "nx", "ny", "nz", "valid", *STATISTICS)
CHANNEL_SETS = {"original": CHANNELS, "geometric": GEOMETRIC}


def channels_for(count: int) -> tuple[str, ...]:
    """The channels a U-Net with ``count`` input channels reads: 5 or 6 the original ones (without or
    with validity), 9 ``GEOMETRIC``.

    Raises:
        ValueError: no channel set has that many channels.
    """
    known = {5: CHANNELS[:5], 6: CHANNELS, len(GEOMETRIC): GEOMETRIC}
    if count not in known:
        raise ValueError(f"a scan filter reads 5, 6 or {len(GEOMETRIC)} input channels, not {count}")
    return known[count]


def _min_max(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    lo, hi = values.min(where=valid, initial=np.inf), values.max(where=valid, initial=-np.inf)
    return np.where(valid, (values - lo) / (hi - lo) if hi > lo else 0.5, 0.0)


def scan_inputs(scan: dict, channels: Sequence[str] = CHANNELS, out: np.ndarray | None = None) -> np.ndarray:
    """The U-Net's input channels of a scan.

    Args:
        scan: a scan dict with ``valid``, ``intensity``, ``xyz`` and ``normals``.
        channels: the channel names, in order (``CHANNELS``, ``CHANNELS[:5]`` or ``GEOMETRIC``).
        out: a zeroed (H, W, len(channels)) float32 array to fill (a view into a padded batch)
            instead of a new one.

    Returns:
        (H, W, len(channels)) float32, 0 wherever there is no point: intensity and depth min-max
        scaled to [0, 1] over the scan's points, the normal mapped from [-1, 1] to [0, 1], validity
        0/1, and the neighbourhood statistics of ``geometry.pixel_neighbourhoods``.

    Raises:
        ValueError: an unknown channel name.
    """
    unknown = sorted(set(channels) - set(CHANNELS) - set(GEOMETRIC))
    if unknown:
        raise ValueError(f"unknown input channels {unknown}; known: {sorted(set(CHANNELS + GEOMETRIC))}")
    valid = np.asarray(scan["valid"], bool)
    shape = (*valid.shape, len(channels))
    if out is not None and (out.shape != shape or out.dtype != np.float32):
        raise ValueError(f"out must be {shape} float32, got {out.shape} {out.dtype}")
    x = np.zeros(shape, np.float32) if out is None else out
    if not valid.any():
        return x
    statistics = pixel_statistics(scan["xyz"], valid) if set(channels) & set(STATISTICS) else None
    normals = np.nan_to_num(np.asarray(scan["normals"], np.float32))  # a point without neighbours: (0, 0, 0)
    for i, name in enumerate(channels):
        if name == "intensity":
            x[..., i] = _min_max(np.asarray(scan["intensity"], np.float32), valid)
        elif name == "depth":
            x[..., i] = _min_max(np.asarray(scan["xyz"], np.float32)[..., 2], valid)
        elif name in ("nx", "ny", "nz"):
            x[..., i] = np.where(valid, (normals[..., "xyz".index(name[1])] + 1) / 2, 0.0)
        elif name == "valid":
            x[..., i] = valid
        else:
            x[..., i] = statistics[..., STATISTICS.index(name)]
    return x


def scan_targets(scan: dict) -> tuple[np.ndarray, np.ndarray]:
    """The training targets of a scan.

    Args:
        scan: a scan dict with ``label`` (1 keep, 0 artefact, 255 no point).

    Returns:
        ``(y, weight)``: the keep mask (H, W, 1) float32, 1 for true geometry; and the sample
        weight (H, W) float32, 1 where there is a point and 0 elsewhere.
    """
    label = np.asarray(scan["label"])
    return (label == KEEP).astype(np.float32)[..., None], (label != NO_POINT).astype(np.float32)


def load_example(path, channels: Sequence[str] = CHANNELS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training example, read from a scan file.

    Args:
        path: a scan ``.npz``.
        channels: the input channels (``scan_inputs``).

    Returns:
        ``(x, y, weight)`` unpadded: ``scan_inputs`` and ``scan_targets`` of the scan.
    """
    scan = load_scan(path, arrays=())
    return (scan_inputs(scan, channels), *scan_targets(scan))


def augment_example(x, y, w, rng: np.random.Generator, jitter: float = 0.15):
    """Augment one example: random flips and a jitter of its intensity.

    Args:
        x: (H, W, C) input channels, intensity first.
        y: (H, W, 1) keep mask.
        w: (H, W) sample weight; only pixels with weight > 0 are jittered.
        rng: the generator the draws come from.
        jitter: the strength: a gamma in [1, 1 + jitter] or its inverse, and Gaussian noise of
            standard deviation jitter / 10, the result clipped to [0, 1].

    Returns:
        ``(x, y, w)`` augmented: the same flips applied to all three, new contiguous arrays.
    """
    if rng.random() < 0.5:
        x, y, w = x[:, ::-1], y[:, ::-1], w[:, ::-1]
    if rng.random() < 0.5:
        x, y, w = x[::-1], y[::-1], w[::-1]
    x = x.copy()
    valid = w > 0
    gamma = (1 + jitter * rng.random()) ** rng.choice([-1, 1])
    noisy = x[..., 0] ** gamma + rng.normal(0, jitter / 10, x.shape[:2])
    x[..., 0] = np.where(valid, np.clip(noisy, 0, 1), 0)
    return x, np.ascontiguousarray(y), np.ascontiguousarray(w)


def collate(examples, multiple: int, turns: int = 0, square: bool = False):
    """Stack examples of different sizes into one batch.

    Args:
        examples: ``(x, y, w)`` triples.
        multiple: each side is padded to a multiple of this (the U-Net's ``multiple_of``), and to
            the largest example of the batch.
        turns: quarter turns (counter-clockwise) applied to every example first.
        square: pad to a square, so that batches keep one shape whatever their rotation.

    Returns:
        ``(x, y, w)`` float32 batches, (B, H', W', C), (B, H', W', 1) and (B, H', W'); the padding
        has weight 0.
    """
    rotated = [[np.rot90(a, turns, axes=(0, 1)) for a in example] for example in examples]
    height = max(math.ceil(x.shape[0] / multiple) * multiple for x, _, _ in rotated)
    width = max(math.ceil(x.shape[1] / multiple) * multiple for x, _, _ in rotated)
    if square:
        height = width = max(height, width)
    batch = []
    for arrays in rotated:
        padded = []
        for a in arrays:
            a, _ = pad_to_multiple(a, multiple)
            padded.append(np.pad(a, [(0, height - a.shape[0]), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2)))
        batch.append(padded)
    return tuple(np.stack([b[i] for b in batch]).astype(np.float32) for i in range(3))


def make_batch(files: Sequence[Path], picked: Sequence[int], multiple: int, augment: bool, seed: int, epoch: int,
               batch_index: int, validity: bool = True):
    """One batch (x, y, weight) of the scans ``files[picked]``: the single place both pipelines use.

    Augmentation draws come from ``(seed, epoch, file index)`` per scan and ``(seed, epoch, batch)``
    for the rotation, so a batch does not depend on which worker or thread makes it. Augmented
    batches are padded to squares: Keras fixes a PyDataset's batch shape from its first batches, so
    a quarter turn must not change it.

    Args:
        files: the scan files of the dataset.
        picked: the indices into ``files`` of this batch's scans.
        multiple: the side multiple the U-Net needs.
        augment: flip, jitter and turn the scans.
        seed: the run's seed.
        epoch: the epoch, which changes the draws.
        batch_index: the batch's index in the epoch.
        validity: add the validity channel.

    Returns:
        ``(x, y, weight)`` as ``collate`` makes them.
    """
    examples = []
    for i in picked:
        example = load_example(files[i], CHANNELS if validity else CHANNELS[:5])
        if augment:
            example = augment_example(*example, np.random.default_rng([seed, epoch, int(i)]))
        examples.append(example)
    turns = int(np.random.default_rng([seed, epoch, len(files) + batch_index]).integers(4)) if augment else 0
    return collate(examples, multiple, turns, square=augment)


def _check_files(files) -> list[Path]:
    files = [Path(f) for f in files]
    if not files:
        raise ValueError("a scan pipeline needs at least one scan file")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"scan files missing: {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    return files


def epoch_order(n: int, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    """The order of the scans in one epoch.

    Args:
        n: the number of scans.
        shuffle: shuffle them; otherwise keep the file order.
        seed: the run's seed.
        epoch: the epoch; each gets its own order.

    Returns:
        (n,) int indices.
    """
    return np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)


class ScanSequence(keras.utils.PyDataset):
    """Batches of scans read lazily from ``files``; ``len()`` batches per epoch.

    With ``shuffle`` the order changes every epoch (seeded); with ``augment`` each scan is flipped
    and jittered and each batch turned by a random multiple of 90 degrees. Indexing gives the
    ``(x, y, weight)`` of ``make_batch``.

    Args:
        files: the scan files.
        batch_size: scans per batch.
        multiple: the side multiple the U-Net needs.
        augment: augment the scans.
        shuffle: a new order every epoch.
        seed: the seed of the order and the augmentation.
        validity: add the validity channel.
        **kwargs: ``workers``, ``use_multiprocessing`` or ``max_queue_size``, for
            ``keras.utils.PyDataset``.

    Raises:
        ValueError: there are no files, or a size is not positive.
        FileNotFoundError: a file is missing.
    """

    def __init__(self, files: Sequence[str | os.PathLike], batch_size: int = 1, multiple: int = 16,
                 augment: bool = False, shuffle: bool = False, seed: int = 0, validity: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.files = _check_files(files)
        if batch_size < 1 or multiple < 1:
            raise ValueError(f"batch_size and multiple must be positive, got {batch_size} and {multiple}")
        self.batch_size, self.multiple, self.augment, self.shuffle = batch_size, multiple, augment, shuffle
        self.seed, self.validity, self.epoch = seed, validity, 0
        self.order = epoch_order(len(self.files), shuffle, seed, 0)

    def __len__(self) -> int:
        return math.ceil(len(self.files) / self.batch_size)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range ({len(self)} batches)")
        picked = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        return make_batch(self.files, picked, self.multiple, self.augment, self.seed, self.epoch, index, self.validity)

    def on_epoch_end(self):
        self.epoch += 1
        self.order = epoch_order(len(self.files), self.shuffle, self.seed, self.epoch)


def scan_dataset(files: Sequence[str | os.PathLike], batch_size: int = 1, multiple: int = 16, augment: bool = False,
                 shuffle: bool = False, seed: int = 0, validity: bool = True, epochs: int = 1):
    """The batches of ``ScanSequence`` for ``epochs`` epochs in a row as a ``tf.data.Dataset``.

    Batches are made in parallel (``map`` with ``num_parallel_calls=AUTOTUNE``, order kept) and
    prefetched. For training, pass ``epochs`` and ``steps_per_epoch = ceil(len(files) / batch_size)``.

    Args:
        files: the scan files.
        batch_size: scans per batch.
        multiple: the side multiple the U-Net needs.
        augment: augment the scans.
        shuffle: a new order every epoch.
        seed: the seed of the order and the augmentation.
        validity: add the validity channel.
        epochs: how many epochs the dataset runs through.

    Returns:
        A ``tf.data.Dataset`` of ``(x, y, weight)`` batches.

    Raises:
        ValueError: there are no files, or a size is not positive.
        FileNotFoundError: a file is missing.
    """
    import tensorflow as tf  # tf.data only here: importing the module needs no TensorFlow on other Keras backends

    files = _check_files(files)
    if batch_size < 1 or multiple < 1 or epochs < 1:
        raise ValueError(f"batch_size, multiple and epochs must be positive, got {batch_size}, {multiple}, {epochs}")
    n_batches = math.ceil(len(files) / batch_size)
    rows = []  # epoch, batch index, then the file indices of the batch (-1 = none)
    for epoch in range(epochs):
        order = np.r_[epoch_order(len(files), shuffle, seed, epoch), np.full(n_batches * batch_size - len(files), -1)]
        for b in range(n_batches):
            rows.append([epoch, b, *order[b * batch_size:(b + 1) * batch_size]])
    channels = 6 if validity else 5

    def build(row):
        epoch, index, *picked = (int(v) for v in row)
        return make_batch(files, [i for i in picked if i >= 0], multiple, augment, seed, epoch, index, validity)

    def build_op(row):
        x, y, w = tf.numpy_function(build, [row], [tf.float32] * 3)
        return (tf.ensure_shape(x, (None, None, None, channels)), tf.ensure_shape(y, (None, None, None, 1)),
                tf.ensure_shape(w, (None, None, None)))

    dataset = tf.data.Dataset.from_tensor_slices(np.array(rows, np.int64))
    dataset = dataset.map(build_op, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def pad_to_multiple(image: np.ndarray, multiple: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad the first two axes of ``image`` (H, W, ...) up to multiples of ``multiple``.

    Padding goes after the image (bottom and right), so ``crop_to(padded, image.shape[:2])`` undoes
    it.

    Args:
        image: (H, W, ...) any array.
        multiple: the side multiple, such as the U-Net's ``multiple_of``.

    Returns:
        ``(padded, mask)``: the (H', W', ...) padded array and an (H', W') bool mask, True on the
        original pixels.

    Raises:
        ValueError: the image has fewer than two axes or an empty side, or ``multiple`` < 1.
    """
    image = np.asarray(image)
    if image.ndim < 2 or min(image.shape[:2]) < 1:
        raise ValueError(f"image must have shape (H, W, ...) with H, W >= 1, got {image.shape}")
    if multiple < 1:
        raise ValueError(f"multiple must be positive, got {multiple}")
    h, w = image.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    padded = np.pad(image, [(0, ph), (0, pw)] + [(0, 0)] * (image.ndim - 2))
    mask = np.zeros(padded.shape[:2], dtype=bool)
    mask[:h, :w] = True
    return padded, mask


def crop_to(array: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
    """Undo ``pad_to_multiple``.

    Args:
        array: (H', W', ...) a padded image or the network's output on it.
        shape_hw: (H, W), the original size.

    Returns:
        The top-left (H, W, ...) part, a view of ``array``.
    """
    h, w = shape_hw
    return array[:h, :w]
