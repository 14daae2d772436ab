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


def _median_of_present(values: list[np.ndarray], present: list[np.ndarray]) -> np.ndarray:
    """The element-wise median of up to 8 arrays, each element taking only the ``present`` ones; NaN
    where none is. A sorting network of ``np.minimum`` and ``np.maximum`` (missing values sort last as
    +inf) then a per-element pick of the middle: far faster than ``np.nanmedian`` over a stacked axis."""
    ordered = np.empty((len(values), *np.shape(values[0])), np.float32)
    for row, x, p in zip(ordered, values, present, strict=True):
        np.copyto(row, np.float32(np.inf))
        np.copyto(row, x, where=p)
    for i, j in _SORT8:
        low = np.minimum(ordered[i], ordered[j])
        np.maximum(ordered[i], ordered[j], out=ordered[j])
        ordered[i] = low
    count = sum(p.astype(np.intp) for p in present)
    low = np.take_along_axis(ordered, (np.maximum(count - 1, 0) // 2)[None], axis=0)[0]
    high = np.take_along_axis(ordered, np.minimum(count // 2, 7)[None], axis=0)[0]
    return np.where(count > 0, (low + high) / 2, np.float32(np.nan))


def _pair(dy: int, dx: int, h: int, w: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """The slices of the pixels p and of their neighbours p + (dy, dx) that both lie in the image."""
    return ((slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))),
            (slice(max(0, dy), h + min(0, dy)), slice(max(0, dx), w + min(0, dx))))


def _box_count(mask: np.ndarray, r: int) -> np.ndarray:
    """How many pixels of ``mask`` lie in the (2r + 1)-wide window around each pixel (outside: none)."""
    padded = np.pad(mask.astype(np.int32), ((r + 1, r), (r + 1, r))).cumsum(axis=0).cumsum(axis=1)
    k = 2 * r + 1
    return padded[k:, k:] - padded[:-k, k:] - padded[k:, :-k] + padded[:-k, :-k]


def pixel_statistics(xyz, valid) -> np.ndarray:
    """The channels of ``STATISTICS`` for every pixel of an organised scan.

    Each pair of neighbouring pixels is measured once and counted for both of its pixels, and
    distances are compared squared, so that a 640x480 scan takes a few tens of milliseconds.

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
    out = np.zeros((h, w, len(STATISTICS)), np.float32)
    pitch = _pitch(xyz, valid)
    if not np.isfinite(pitch) or pitch <= 0:  # no point has a neighbour: each is as isolated as can be
        out[..., 1] = out[..., 3] = valid
        return out
    r = RADIUS
    planes = [np.where(valid, xyz[..., k], 0.0).astype(np.float32) for k in range(3)]
    spacing = np.where(valid, planes[2] * np.float32(pitch), np.float32(1.0))
    spacing_squared = spacing * spacing
    nearest = np.full((h, w), np.inf, np.float32)  # squared distance to the nearest 3x3 neighbour
    support = np.zeros((h, w), np.uint8)
    half = [(dy, dx) for dy in range(0, r + 1) for dx in range(-r, r + 1) if dy > 0 or dx > 0]
    # The support radius squared, per squared pixel offset: one array for each of the few offsets' lengths.
    reach = {d: np.float32(SUPPORT * SUPPORT * d) * spacing_squared for d in {dy * dy + dx * dx for dy, dx in half}}
    for dy, dx in half:
        a, b = _pair(dy, dx, h, w)
        both = valid[a] & valid[b]
        difference = planes[0][a] - planes[0][b]
        squared = difference * difference
        for plane in planes[1:]:
            np.subtract(plane[a], plane[b], out=difference)
            difference *= difference
            squared += difference
        within = reach[dy * dy + dx * dx]
        support[a] += both & (squared <= within[a])
        support[b] += both & (squared <= within[b])
        if max(abs(dy), abs(dx)) == 1:
            squared = np.where(both, squared, np.float32(np.inf))
            np.minimum(nearest[a], squared, out=nearest[a])
            np.minimum(nearest[b], squared, out=nearest[b])
    # The median depth of the 3x3 neighbours that hold a point.
    depth, present = np.pad(planes[2], 1), np.pad(valid, 1)
    windows = [(slice(1 + dy, 1 + dy + h), slice(1 + dx, 1 + dx + w))
               for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    median = _median_of_present([depth[s] for s in windows], [present[s] for s in windows])
    step = np.nan_to_num((planes[2] - median) / spacing, nan=0.0)
    n = (2 * r + 1) ** 2 - 1
    out[..., 0] = np.clip(np.sign(step) * np.log1p(np.abs(step)) / SCALE, -1, 1)
    out[..., 1] = np.where(np.isfinite(nearest), np.minimum(np.log1p(np.sqrt(nearest) / spacing) / SCALE, 1), 1.0)
    out[..., 2] = support / np.float32(n)
    out[..., 3] = (n - (_box_count(valid, r) - valid)) / n
    out[~valid] = 0.0
    return out
