"""The U-Net artefact filter for organised scans: a fully convolutional network that gives each
pixel P(keep) from the scan's image channels (``data.scans.scan_inputs``).

``unet_filter`` loads a saved model, by default the shipped ``weights/unet_filter.keras``, with the
threshold chosen on validation scans and recorded in its model card.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcfilter_lib.data.scans import CHANNELS, channels_for, crop_to, scan_inputs
from pcfilter_lib.filters.base import check_threshold
from pcfilter_lib.filters.evaluation import evaluate_filter
from pcfilter_lib.geometry.pixel_neighbourhoods import STATISTICS, prepare_statistics
from pcfilter_lib.io.model_cards import WEIGHTS, read_model_card
from pcfilter_lib.models.saved import load_saved_model
from pcfilter_lib.models.unet import multiple_of

SHIPPED_MODEL = WEIGHTS / "unet_filter.keras"
STRIP_PIXELS = 3 << 18  # images of more pixels go through the network in strips of rows (predict_in_strips)
HALO = 128  # rows computed above and below each strip: more than the U-Net's receptive field reaches


@dataclass
class UNetFilter:
    """A trained U-Net and its threshold, behind the ``filters.base.Filter`` interface.

    Calling the filter on a scan is ``keep_mask``.

    Args:
        name: a short name for tables and progress bars.
        model: a Keras segmentation model from (B, H, W, 5, 6 or 9) channels (``data.scans.channels_for``)
            to P(keep) (B, H, W, 1).
        threshold: P(keep) at or above which a point is kept, strictly between 0 and 1.

    Raises:
        ValueError: the threshold is out of range.
    """

    name: str
    model: object
    threshold: float = 0.5

    def __post_init__(self):
        self.threshold = check_threshold(self.threshold)

    @property
    def channels(self) -> tuple[str, ...]:
        """The input channels the model reads (``data.scans.channels_for``)."""
        return channels_for(int(self.model.input_shape[-1]))

    @property
    def validity(self) -> bool:
        """Whether the model reads the 0/1 validity channel."""
        return "valid" in self.channels

    def keep_probability(self, scan: Mapping) -> np.ndarray:
        """The network's probability that each point is true geometry.

        Args:
            scan: a scan dict with ``valid``, ``intensity``, ``xyz`` and ``normals``.

        Returns:
            (H, W) float32 P(keep) of each pixel; 0 where there is no point.
        """
        return self.keep_probabilities([scan])[0]

    def prepare(self, shape: tuple[int, int]) -> None:
        """Compile the network and its input features for scans of ``shape`` (H, W) ahead of the
        first scan, on an image without points (one strip of it for a large scan); ``filter`` does
        this while a second process reads the scan."""
        multiple = multiple_of(self.model)
        h, w = (-(-side // multiple) * multiple for side in shape)
        plan = _strips(h, w, multiple)
        rows = h if plan is None else plan[1]
        self.model.predict_on_batch(np.zeros((1, rows, w, len(self.channels)), np.float32))
        if set(self.channels) & set(STATISTICS):
            prepare_statistics(shape)

    def keep_probabilities(self, scans: Sequence[Mapping]) -> list[np.ndarray]:
        """``keep_probability`` of each scan; scans of one size share a network call.

        Args:
            scans: scan dicts.

        Returns:
            One (H, W) float32 array per scan.
        """
        return predict_keep(self.model, scans, self.channels)

    def keep_mask(self, scan: Mapping) -> np.ndarray:
        """The filter's decision for each point.

        Args:
            scan: a scan dict.

        Returns:
            (H, W) bool: True where the scan has a point and P(keep) reaches the threshold.
        """
        return self.keep_probability(scan) >= self.threshold

    __call__ = keep_mask


def predict_keep(model, scans: Sequence[Mapping], channels: Sequence[str] = CHANNELS,
                 batch_size: int = 4) -> list[np.ndarray]:
    """P(keep) of each scan from a U-Net.

    Args:
        model: a Keras U-Net taking (B, H, W, C) channels.
        scans: scan dicts; scans of one size are batched together.
        channels: the C channels it reads (``data.scans.scan_inputs``).
        batch_size: scans per network call.

    Returns:
        one (H, W) float32 array per scan: the network's output on the scan's channels, padded to
        the network's multiple and cropped back, and 0 where there is no point.
    """
    multiple = multiple_of(model)
    out: list[np.ndarray | None] = [None] * len(scans)
    by_shape: dict[tuple, list[int]] = {}
    for i, scan in enumerate(scans):
        by_shape.setdefault(np.shape(scan["valid"]), []).append(i)
    for indices in by_shape.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            # Filled in place, scan by scan: one copy of the channels (a whole sensor's are 0.1 GB), with
            # zeros after the image, as data.scans.pad_to_multiple pads.
            rows, columns = np.shape(scans[chunk[0]]["valid"])
            h, w = (-(-side // multiple) * multiple for side in (rows, columns))
            batch = np.zeros((len(chunk), h, w, len(channels)), np.float32)
            for j, i in enumerate(chunk):
                scan_inputs(scans[i], channels, out=batch[j, :rows, :columns])
            prob = predict_in_strips(model, batch, multiple)
            del batch
            for i, p in zip(chunk, prob, strict=True):
                p = crop_to(p, np.shape(scans[i]["valid"]))[..., 0]
                out[i] = np.where(np.asarray(scans[i]["valid"], bool), p, 0.0).astype(np.float32)
    return out


def predict_in_strips(model, batch: np.ndarray, multiple: int) -> np.ndarray:
    """The model's output on a batch of padded images; an image of more than ``STRIP_PIXELS`` pixels
    goes in strips of rows, each computed with ``HALO`` rows above and below it.

    A U-Net's output at a pixel depends only on the pixels within its receptive field (about 90 rows
    and columns for the shipped 4-level network, at most 122), so each strip's rows come out as in one
    pass up to rounding, while the network's feature maps, the bulk of its memory, stay the size of
    one strip. Every strip has the same size (those at the ends are moved inwards), so the network
    is traced once.

    Args:
        model: the network.
        batch: (B, H, W, C) images whose sides are multiples of ``multiple``.
        multiple: the network's side multiple (``models.unet.multiple_of``); ``HALO`` is one of it.

    Returns:
        (B, H, W, K) its output.
    """
    b, h, w = batch.shape[:3]
    plan = _strips(h, w, multiple)
    if plan is None:
        return np.asarray(model.predict_on_batch(batch))
    rows, window = plan
    out = None
    for i in range(b):
        for core in range(0, h, rows):
            start = min(max(core - HALO, 0), h - window)
            part = np.asarray(model.predict_on_batch(batch[i:i + 1, start:start + window]))[0]
            if out is None:
                out = np.empty((b, h, w, part.shape[-1]), part.dtype)
            stop = min(core + rows, h)
            out[i, core:stop] = part[core - start:stop - start]
    return out


def _strips(h: int, w: int, multiple: int) -> tuple[int, int] | None:
    """(rows of output, rows computed) of each strip of ``predict_in_strips`` for padded images of
    h x w pixels, or None where they go through the network whole."""
    count = -(-h * w // STRIP_PIXELS)
    share = -(-h // count)
    rows = -(-share // multiple) * multiple
    if count <= 1 or HALO % multiple or rows + 2 * HALO >= h:
        return None
    return rows, rows + 2 * HALO


def wrap_unet(model, path: Path, threshold: float | None = None) -> UNetFilter:
    """Wrap a loaded U-Net as a filter, with the threshold of its model card.

    Args:
        model: the loaded Keras model.
        path: the file it came from; its model card lies beside it and its stem names the filter.
        threshold: overrides the card's threshold; 0.5 when neither is there.

    Returns:
        The ``UNetFilter``.

    Raises:
        ValueError: the model does not take (B, H, W, 5, 6 or 9) input.
    """
    if len(model.input_shape) != 4:
        raise ValueError(f"{path}: a scan filter takes (B, H, W, C) input, this model takes {model.input_shape}")
    try:
        channels_for(int(model.input_shape[-1]))
    except ValueError as error:
        raise ValueError(f"{path}: {error}; this model takes {model.input_shape}") from None
    if threshold is None:
        card = read_model_card(path)
        threshold = card.threshold if card and card.threshold is not None else 0.5
    return UNetFilter(name=Path(path).stem, model=model, threshold=threshold)


def unet_filter(path: str | os.PathLike | None = None, threshold: float | None = None) -> UNetFilter:
    """Load a U-Net filter.

    Args:
        path: a ``.keras`` file; None gives the shipped ``weights/unet_filter.keras``.
        threshold: overrides the threshold of the model card.

    Returns:
        The ``UNetFilter`` (see ``wrap_unet``).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: it is not a loadable Keras model, or not a U-Net of 5, 6 or 9 input channels.
    """
    path = Path(SHIPPED_MODEL if path is None else path)
    return wrap_unet(load_saved_model(path), path, threshold)


class _ChannelReplaced:
    """A U-Net's model with one input channel replaced by a constant before every prediction.

    It offers what ``filters.pixels.predict_keep`` uses of a Keras model (``input_shape``, ``layers``
    and ``predict_on_batch``), so the ablated filter runs the same code as the filter itself.
    """

    def __init__(self, model, channel: int):
        self.model, self.channel = model, channel
        self.input_shape, self.layers = model.input_shape, model.layers
        self.names = channels_for(int(model.input_shape[-1]))

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        x = np.array(x, dtype=np.float32)  # a copy: (B, H, W, C) channels of data.scans.scan_inputs
        if self.names[self.channel] == "valid":
            x[..., self.channel] = 1.0  # every pixel claims a point
        else:
            # A pixel holds a point where its validity channel is 1, or (five channels) where its normal
            # channels are not all 0: (n + 1) / 2 of a unit normal never is.
            normal = [self.names.index(n) for n in ("nx", "ny", "nz")]
            points = (x[..., self.names.index("valid")] > 0.5 if "valid" in self.names
                      else (x[..., normal] > 0).any(axis=-1))
            for image, mask in zip(x, points, strict=True):
                if mask.any():
                    image[..., self.channel] = np.where(mask, image[..., self.channel][mask].mean(), 0.0)
        return self.model.predict_on_batch(x)


def channel_ablation(unet: UNetFilter, scans: Sequence[Mapping], progress: bool = False) -> dict[str, dict]:
    """How much a U-Net filter relies on each input channel: its metrics with one channel at a time
    carrying no information.

    A value channel (intensity, depth, a normal component) is replaced, scan by scan, by its mean
    over the scan's points; pixels without a point keep 0, as in training. The validity channel,
    which is 1 on every point anyway, is set to 1 on every pixel, so the holes no longer show in it.
    The filter keeps its threshold.

    Args:
        unet: the filter to probe (its channels: ``data.scans.channels_for``).
        scans: labelled scan dicts, as for ``evaluate_filter``.
        progress: show a progress bar per evaluation.

    Returns:
        ``{"none": ..., channel name: ...}``: the ``evaluate_filter`` result with every channel
        intact, then one per channel the model reads, in the model's order.
    """
    results = {"none": evaluate_filter(unet, scans, progress)}
    for channel, name in enumerate(unet.channels):
        ablated = UNetFilter(f"{unet.name} without {name}", _ChannelReplaced(unet.model, channel), unet.threshold)
        results[name] = evaluate_filter(ablated, scans, progress)
    return results
