"""Neighbourhood statistics of an organised scan, measured over its pixel grid in units of the
local point spacing, so that they mean the same on any scanner, at any resolution and distance.

A pixel's point spacing is its depth times the scan's angular pitch: the median, over pairs of
neighbouring pixels that both hold a point, of their 3D distance divided by their depth
(``angular_pitch``). A neighbour two pixels away on a surface facing the camera then lies two
spacings off, whatever the scanner. ``pixel_statistics`` gives, for every pixel with a point, the
channels of ``STATISTICS``, each squashed into [-1, 1] or [0, 1]:

* ``step``: depth minus the median depth of the 3x3 neighbours, in spacings (signed);
* ``gap``: 3D distance to the nearest of the 3x3 neighbours, in spacings;
* ``support``: share of the 5x5 window's 24 neighbours whose point lies within ``SUPPORT`` times
  its pixel distance: neighbours that continue the same surface;
* ``holes``: share of the 5x5 window's 24 pixels with no point.

Isolated false points have a large ``gap``; a mixed pixel between a near and a far surface has a
large ``gap`` and little ``support``; a ghost floating before a surface has a large ``step``.
"""

from __future__ import annotations

import functools
import os

import numpy as np

STATISTICS = ("step", "gap", "support", "holes")
RADIUS = 2  # the window is (2 RADIUS + 1) pixels wide
SUPPORT = 3.0  # a neighbour continues the surface within this many spacings per pixel of offset
SCALE = float(np.log1p(100.0))  # lengths are squashed as log1p(length) / SCALE: 100 spacings -> 1


def _check(xyz, valid) -> tuple[np.ndarray, np.ndarray]:
    xyz = np.asarray(xyz, np.float32)
    valid = np.asarray(valid, bool)
    if xyz.ndim != 3 or xyz.shape[-1] != 3 or valid.shape != xyz.shape[:2]:
        raise ValueError(f"an organised scan needs xyz of shape (H, W, 3) and valid of shape (H, W); "
                         f"got {xyz.shape} and {valid.shape}")
    with np.errstate(invalid="ignore", over="ignore"):  # a sum is NaN or infinite if a coordinate is
        finite = np.isfinite(xyz[..., 0] + xyz[..., 1] + xyz[..., 2])
    return xyz, valid & finite & (xyz[..., 2] > 0)


def angular_pitch(xyz, valid) -> float:
    """The scan's angular pitch: the median of (3D distance / depth) over horizontally neighbouring
    pixels that both hold a point (on every fourth row, which is plenty for a median).

    Args:
        xyz: (H, W, 3) points in the camera frame (depth along +z).
        valid: (H, W) bool, pixels with a point.

    Returns:
        The pitch in radians per pixel; NaN when no two neighbouring pixels hold points.
    """
    return _pitch(*_check(xyz, valid))


def _pitch(xyz: np.ndarray, valid: np.ndarray) -> float:
    a, b = xyz[::4, :-1], xyz[::4, 1:]
    both = valid[::4, :-1] & valid[::4, 1:]
    ratio = np.sqrt(((a - b) ** 2).sum(axis=-1)) / np.where(both, a[..., 2], 1.0)
    ratio = ratio[both]
    return float(np.median(ratio)) if len(ratio) else float("nan")


# Batcher's odd-even merge network: 19 compare-exchanges sort 8 values, element by element.
_SORT8 = ((0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (1, 2), (5, 6), (0, 4), (3, 7), (1, 5),
          (2, 6), (1, 4), (3, 6), (2, 4), (3, 5), (3, 4))
BUCKET = 32  # scans are padded (with pixels without a point) to multiples of this: fewer shapes to compile
# Scans of more pixels than this (a whole 2064 x 1544 sensor) are done in bands of rows, so that the
# temporary images stay small; BAND_ROWS + 2 RADIUS is a multiple of BUCKET.
BAND_PIXELS = 1 << 20
BAND_ROWS = 8 * BUCKET - 2 * RADIUS


def _statistics(xyz, valid, pitch):
    """``pixel_statistics`` in ``keras.ops`` for a checked scan (points zeroed where not valid) and its
    pitch: two dozen shifted copies of the image and element-wise arithmetic, which a compiler fuses
    into a few passes over the pixels."""
    from keras import ops  # deferred: importing Keras starts the backend

    r, n = RADIUS, (2 * RADIUS + 1) ** 2 - 1
    h, w = valid.shape
    depth = xyz[..., 2]
    spacing = ops.where(valid, depth * pitch, 1.0)
    reach = SUPPORT * SUPPORT * spacing * spacing  # per squared pixel of offset
    points, present = ops.pad(xyz, ((r, r), (r, r), (0, 0))), ops.pad(valid, ((r, r), (r, r)))
    support, count = ops.zeros_like(depth), ops.zeros_like(depth)
    nearest = ops.full_like(depth, np.inf)  # squared distance to the nearest 3x3 neighbour
    ring, ring_present = [], []  # the 3x3 neighbours' depths (+inf where none) and presence
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy == dx == 0:
                continue
            other, there = points[r + dy:r + dy + h, r + dx:r + dx + w], present[r + dy:r + dy + h, r + dx:r + dx + w]
            both = valid & there
            squared = ops.sum(ops.square(xyz - other), axis=-1)
            support = support + ops.cast(both & (squared <= (dy * dy + dx * dx) * reach), "float32")
            count = count + ops.cast(there, "float32")
            if max(abs(dy), abs(dx)) == 1:
                nearest = ops.minimum(nearest, ops.where(both, squared, np.inf))
                ring.append(ops.where(there, other[..., 2], np.inf))
                ring_present.append(there)
    for i, j in _SORT8:  # missing depths sort last as +inf
        ring[i], ring[j] = ops.minimum(ring[i], ring[j]), ops.maximum(ring[i], ring[j])
    k = sum(ops.cast(p, "int32") for p in ring_present)
    ring = ops.stack(ring)
    low = ops.take_along_axis(ring, (ops.maximum(k - 1, 0) // 2)[None], axis=0)[0]
    high = ops.take_along_axis(ring, ops.minimum(k // 2, 7)[None], axis=0)[0]
    step = ops.where(k > 0, (depth - (low + high) / 2) / spacing, 0.0)
    gap = ops.where(ops.isfinite(nearest), ops.minimum(ops.log1p(ops.sqrt(nearest) / spacing) / SCALE, 1.0), 1.0)
    out = ops.stack([ops.clip(ops.sign(step) * ops.log1p(ops.abs(step)) / SCALE, -1.0, 1.0), gap,
                     support / n, (n - count) / n], axis=-1)
    return ops.where(valid[..., None], out, 0.0)


def _xla_optimised() -> bool:
    """Whether XLA optimises the programs it compiles in this process: not where ``XLA_FLAGS`` sets its
    backend's optimisation level to 0, as fast mode's ``runtime.setup`` does (``runtime.xla_optimisation``)."""
    return "--xla_backend_optimization_level=0" not in os.environ.get("XLA_FLAGS", "").split()


@functools.cache
def _compiled(shape: tuple[int, int]):
    """``_statistics`` compiled for padded scans of one ``shape`` with the Keras backend in use (XLA
    on TensorFlow and JAX); left as it is on other backends. On TensorFlow each shape gets its own
    concrete function, traced once, which TensorFlow does not count as retracing. Where XLA compiles
    without its optimisation passes (fast mode's ``XLA_FLAGS``, ``_xla_optimised``), TensorFlow
    runs the traced graph without XLA instead: unoptimised XLA code took 0.22 s a 320x240 scan against
    0.05 s for the plain graph (0.01 s optimised), which a chapter calling it dozens of times pays for."""
    import keras  # deferred: importing Keras starts the backend

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf  # deferred: the backend's own compiler

        specs = (tf.TensorSpec((*shape, 3), tf.float32), tf.TensorSpec(shape, tf.bool), tf.TensorSpec((), tf.float32))
        return tf.function(_statistics, jit_compile=_xla_optimised(), autograph=False).get_concrete_function(*specs)
    if backend == "jax":
        import jax  # deferred: the backend's own compiler

        return jax.jit(_statistics)
    return _statistics


def pixel_statistics(xyz, valid) -> np.ndarray:
    """The channels of ``STATISTICS`` for every pixel of an organised scan.

    The pitch is a NumPy median; the rest runs compiled (``_compiled``) on the scan padded to
    multiples of ``BUCKET``: about 15 ms for a 640x480 scan on two CPU cores once its size has been
    compiled (0.5-1.5 s, once per padded size and process). A scan of more than ``BAND_PIXELS``
    pixels goes in bands of ``BAND_ROWS`` rows (``_banded``), with the same result in a fraction of
    the memory.

    Args:
        xyz: (H, W, 3) points in the camera frame (depth along +z); ignored where not ``valid``.
        valid: (H, W) bool, pixels with a point.

    Returns:
        (H, W, 4) float32 in the order of ``STATISTICS``; 0 wherever there is no point.

    Raises:
        ValueError: the arrays do not have the shapes of an organised scan.
    """
    xyz, valid = _check(xyz, valid)
    h, w = valid.shape
    pitch = _pitch(xyz, valid)
    if not np.isfinite(pitch) or pitch <= 0:  # no point has a neighbour: each is as isolated as can be
        out = np.zeros((h, w, len(STATISTICS)), np.float32)
        out[..., 1] = out[..., 3] = valid
        return out
    if h * w <= BAND_PIXELS:
        pad = ((0, -h % BUCKET), (0, -w % BUCKET))  # after the image: a pixel without a point, like outside it
        points = np.pad(np.where(valid[..., None], xyz, np.float32(0)), (*pad, (0, 0)))
        out = _compiled(points.shape[:2])(points, np.pad(valid, pad), np.float32(pitch))
        return np.asarray(out)[:h, :w]
    return _banded(xyz, valid, np.float32(pitch))


def prepare_statistics(shape: tuple[int, int]) -> None:
    """Compile ``pixel_statistics`` for scans of ``shape`` (H, W) ahead of the first one, by running it
    once on a band (or scan) without points; ``filter`` does this while a second process reads the scan."""
    h, w = shape
    rows = h + -h % BUCKET if h * w <= BAND_PIXELS else BAND_ROWS + 2 * RADIUS
    padded = (rows, w + -w % BUCKET)
    _compiled(padded)(np.zeros((*padded, 3), np.float32), np.zeros(padded, bool), np.float32(1))


def _banded(xyz: np.ndarray, valid: np.ndarray, pitch: np.float32) -> np.ndarray:
    """``pixel_statistics`` of a large scan, ``BAND_ROWS`` rows at a time: each band is computed with
    the ``RADIUS`` rows above and below it that its windows reach, so every pixel sees the same
    neighbours as in one pass (rows beyond the image hold no point, as outside it), while the
    compiled function's temporary images stay the size of one band instead of the whole scan."""
    h, w = valid.shape
    bands = -(-h // BAND_ROWS)
    rows = bands * BAND_ROWS + 2 * RADIUS  # the image, with RADIUS rows without a point above and below
    pad = ((RADIUS, rows - h - RADIUS), (0, -w % BUCKET))
    points = np.pad(np.where(valid[..., None], xyz, np.float32(0)), (*pad, (0, 0)))
    present = np.pad(valid, pad)
    band = _compiled((BAND_ROWS + 2 * RADIUS, points.shape[1]))
    out = np.empty((bands * BAND_ROWS, w, len(STATISTICS)), np.float32)
    for i in range(bands):
        window = slice(i * BAND_ROWS, (i + 1) * BAND_ROWS + 2 * RADIUS)
        part = np.asarray(band(points[window], present[window], pitch))
        out[i * BAND_ROWS:(i + 1) * BAND_ROWS] = part[RADIUS:RADIUS + BAND_ROWS, :w]
    return out[:h]
