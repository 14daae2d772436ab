"""A synthetic 2D segmentation task with the difficulty of artefact filtering: thin, rare targets.

Each image shows a textured surface with a few thin scratches (the rare class, label 0, like an
artefact) among round blemishes that look similar but are not scratches (label 1, keep), plus sensor
noise and missing pixels (weight 0, like pixels without a point in a scan). About 2-4% of the valid
pixels are scratches, so a model that keeps everything scores ~97% accuracy while finding nothing:
the task shows why the choice of loss and metric matters before any scan is involved.

Channels: 0 = intensity, 1 = validity (1 where the pixel was measured).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from pcfilter_lib.labels import ARTEFACT, KEEP


@dataclass
class SegmentationSet:
    """A set of synthetic segmentation examples.

    Attributes:
        images: (N, H, W, 2) float32: intensity, then validity.
        labels: (N, H, W) uint8: 1 keep, 0 scratch.
        weights: (N, H, W) float32: 0 where the pixel is missing.
    """

    images: np.ndarray
    labels: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def scratch_fraction(self) -> float:
        """The share of scratch pixels among the valid pixels, in [0, 1]."""
        valid = self.weights > 0
        return float((self.labels[valid] == ARTEFACT).mean())


def _smooth_noise(rng, size: int, scale: int) -> np.ndarray:
    """Low-frequency texture: coarse random grid, bilinearly upsampled, in [0, 1]."""
    coarse = rng.random((scale + 1, scale + 1))
    axis = np.linspace(0, scale, size)
    i0 = np.minimum(axis.astype(int), scale - 1)
    t = axis - i0
    rows = coarse[i0] * (1 - t)[:, None] + coarse[i0 + 1] * t[:, None]
    return rows[:, i0] * (1 - t)[None, :] + rows[:, i0 + 1] * t[None, :]


def _curve_samples(rng, size: int) -> np.ndarray:
    """(M, 2) samples of one random quadratic Bezier curve across part of an image of ``size`` pixels."""
    p0, p1, p2 = rng.uniform(-0.1, 1.1, size=(3, 2)) * size
    t = np.linspace(0, 1, 4 * size)[:, None]
    curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    start = rng.uniform(0, 0.4)
    stop = rng.uniform(start + 0.4, 1.0)
    return curve[int(start * len(curve)): int(stop * len(curve))]


def _curve_distance(rng, size: int, grid: np.ndarray) -> np.ndarray:
    """Distance of every pixel (``grid``, (size * size, 2)) to the nearest sample of one random curve."""
    return cKDTree(_curve_samples(rng, size)).query(grid)[0].reshape(size, size)


def make_scratches(n: int, size: int = 64, seed: int = 0) -> SegmentationSet:
    """Make a synthetic segmentation set: thin scratches among look-alike blemishes, with holes.

    Args:
        n: the number of images.
        size: their side, in pixels.
        seed: the same seed gives the same images; image i depends only on (seed, i).

    Returns:
        A ``SegmentationSet`` of n images of size x size pixels.

    Raises:
        ValueError: n < 1 or size < 8.
    """
    if n < 1 or size < 8:
        raise ValueError(f"need n >= 1 and size >= 8, got n={n}, size={size}")
    yy, xx = np.mgrid[0:size, 0:size]
    grid = np.stack([yy.ravel(), xx.ravel()], axis=1).astype(np.float64)
    images = np.zeros((n, size, size, 2), np.float32)
    labels = np.full((n, size, size), KEEP, np.uint8)
    weights = np.ones((n, size, size), np.float32)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        surface = 0.35 + 0.3 * _smooth_noise(rng, size, rng.integers(3, 8))
        # Round blemishes: keep class, similar contrast to scratches.
        for _ in range(rng.integers(2, 7)):
            cy, cx = rng.uniform(0, size, 2)
            radius = rng.uniform(1.5, 4.0)
            spot = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
            surface += rng.choice([-1, 1]) * rng.uniform(0.1, 0.3) * spot
        # Scratches: thin curves, darker or brighter, anti-aliased; their core is the rare class.
        scratch = np.zeros((size, size), bool)
        for _ in range(rng.integers(1, 4)):
            distance = _curve_distance(rng, size, grid)
            width = rng.uniform(0.6, 1.3)
            surface += rng.choice([-1, 1], p=[0.7, 0.3]) * rng.uniform(0.15, 0.35) * np.exp(-(distance / width) ** 2)
            scratch |= distance <= width
        surface += rng.normal(0, 0.04, (size, size))
        # Missing pixels: a few rectangular holes, as where a scanner measured nothing.
        valid = np.ones((size, size), bool)
        for _ in range(rng.integers(0, 4)):
            h, w = rng.integers(3, size // 4, 2)
            y0, x0 = rng.integers(0, size - h), rng.integers(0, size - w)
            valid[y0: y0 + h, x0: x0 + w] = False
        images[i, ..., 0] = np.where(valid, np.clip(surface, 0, 1), 0)
        images[i, ..., 1] = valid
        labels[i][scratch] = ARTEFACT
        weights[i] = valid
    return SegmentationSet(images, labels, weights)
