"""ScanComplete's two steps for generating a voxel grid (Dai et al. 2018), counted on real grids:
interleaved groups of voxels predicted one after another, and a hierarchy from coarse to fine.

* **Interleaved groups** (``interleaved_groups``): an autoregressive network predicts a voxel given
  the ones predicted before it, as PixelCNN does pixel by pixel. Voxel by voxel, a 32^3 grid would take
  32768 passes. Split instead by the parity of each index, a grid falls into 2^d groups (8 in 3D, 4 in
  2D) that tile it in 2 x 2 x 2 blocks; no voxel has a neighbour, across a face, an edge or a corner,
  in its own group (``neighbours_in_group``), so a whole group can be predicted in one pass, given the
  groups before it. ``predicted_neighbours`` counts how many of a voxel's neighbours each group finds
  already predicted.
* **Coarse to fine** (``cell_states``, ``refinement``): a coarse level predicts the grid at a lower
  resolution and hands its answer to the next, finer one. A coarse cell whose finer voxels are all
  empty, or all occupied, has settled them; only the voxels of *mixed* cells remain to be decided
  there. ScanComplete predicts every voxel of every level all the same (its levels are dense
  convolutional networks); an octree-generating decoder refines only the mixed cells.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

EMPTY, FULL, MIXED = 0, 1, 2  # the states of a coarse cell


def interleaved_groups(shape: Sequence[int]) -> np.ndarray:
    """The group of every voxel (or pixel): the parities of its indices read as a binary number.

    Args:
        shape: the grid's sides, any number of axes d.

    Returns:
        An int array of ``shape`` with values 0 to 2^d - 1; along each axis the parity of the index is
        one bit, the first axis the highest, so in 3D voxel (i, j, k) is in group
        ``4 (i mod 2) + 2 (j mod 2) + (k mod 2)``.

    Raises:
        ValueError: a side is not positive.
    """
    shape = tuple(int(s) for s in shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"a grid needs positive sides, got {shape}")
    groups = np.zeros(shape, dtype=np.int64)
    for axis, side in enumerate(shape):
        parity = (np.arange(side) % 2).reshape([-1 if a == axis else 1 for a in range(len(shape))])
        groups = groups + (parity << (len(shape) - 1 - axis))
    return groups


def _offsets(ndim: int) -> list[tuple[int, ...]]:
    """Every offset to a neighbour across a face, an edge or a corner: 3^d - 1 of them."""
    return [o for o in itertools.product((-1, 0, 1), repeat=ndim) if any(o)]


def _shifted(values: np.ndarray, offset: Sequence[int], fill) -> np.ndarray:
    """``values`` at index + offset for every index, ``fill`` where that falls outside the grid."""
    out = np.full(values.shape, fill, dtype=values.dtype)
    src = tuple(slice(max(o, 0), s + min(o, 0)) for o, s in zip(offset, values.shape, strict=True))
    dst = tuple(slice(max(-o, 0), s + min(-o, 0)) for o, s in zip(offset, values.shape, strict=True))
    out[dst] = values[src]
    return out


def neighbours_in_group(groups: np.ndarray) -> np.ndarray:
    """For every cell, how many of its neighbours (across faces, edges and corners) share its group.

    Args:
        groups: an int grid of group numbers, such as ``interleaved_groups``.

    Returns:
        An int grid of the same shape; all zeros when every group can be predicted in one pass.
    """
    groups = np.asarray(groups)
    count = np.zeros(groups.shape, dtype=np.int64)
    for offset in _offsets(groups.ndim):
        count += _shifted(groups, offset, -1) == groups
    return count


def predicted_neighbours(groups: np.ndarray, order: Sequence[int] | None = None) -> dict[int, int]:
    """How many of a voxel's 3^d - 1 neighbours are already predicted when its group's turn comes.

    Counted on the grid itself, for the cells with all their neighbours inside it.

    Args:
        groups: an int grid of group numbers with at least 3 cells along every axis.
        order: the groups in the order they are predicted; None takes them by number.

    Returns:
        For each group, in ``order``: the number of predicted neighbours of its cells, which is the same
        for all of them (checked).

    Raises:
        ValueError: the grid is too small to hold an inner cell, ``order`` is not an arrangement of the
            grid's groups, or cells of one group see different counts.
    """
    groups = np.asarray(groups)
    if min(groups.shape) < 3:
        raise ValueError(f"need at least 3 cells along every axis to count all neighbours, got {groups.shape}")
    names = sorted(int(g) for g in np.unique(groups))
    order = names if order is None else [int(g) for g in order]
    if sorted(order) != names:
        raise ValueError(f"order must list each of the groups {names} once, got {order}")
    rank = np.empty(max(names) + 1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    ranks = rank[groups]
    earlier = np.zeros(groups.shape, dtype=np.int64)
    for offset in _offsets(groups.ndim):
        earlier += _shifted(ranks, offset, len(order)) < ranks
    inner = earlier[tuple(slice(1, -1) for _ in groups.shape)]
    inner_groups = groups[tuple(slice(1, -1) for _ in groups.shape)]
    counts = {}
    for g in order:
        seen = np.unique(inner[inner_groups == g])
        if len(seen) != 1:
            raise ValueError(f"the cells of group {g} see different numbers of predicted neighbours: {seen}")
        counts[g] = int(seen[0])
    return counts


def cell_states(occupancy, factor: int = 2) -> np.ndarray:
    """The state of each coarse cell of ``factor`` ^ 3 voxels: ``EMPTY``, ``FULL`` or ``MIXED``.

    Args:
        occupancy: (X, Y, Z) bool, each side a multiple of ``factor``.
        factor: voxels per coarse cell along each axis.

    Returns:
        (X / factor, Y / factor, Z / factor) int8 states.

    Raises:
        ValueError: a side is not a multiple of ``factor``.
    """
    occupancy = np.asarray(occupancy, dtype=bool)
    if occupancy.ndim != 3 or factor < 1 or any(s % factor for s in occupancy.shape):
        raise ValueError(f"need a 3D grid whose sides are multiples of {factor}, got shape {occupancy.shape}")
    x, y, z = (s // factor for s in occupancy.shape)
    blocks = occupancy.reshape(x, factor, y, factor, z, factor)
    anything, everything = blocks.any(axis=(1, 3, 5)), blocks.all(axis=(1, 3, 5))
    return np.where(everything, FULL, np.where(anything, MIXED, EMPTY)).astype(np.int8)


def refinement(occupancy, levels: int) -> list[dict[str, int]]:
    """What each level of a coarse-to-fine hierarchy has left to decide, from the coarsest level down.

    Level 0 is the grid shrunk by 2^(levels - 1), the last the grid itself; each level halves the voxel
    size of the one before. A voxel of a level is *open* when its parent cell at the level above is
    mixed (``cell_states``, measured on the true grid); every voxel of the coarsest level is open.

    Args:
        occupancy: (X, Y, Z) bool, each side a multiple of 2^(levels - 1).
        levels: the number of levels, at least 1.

    Returns:
        One dict per level: ``side`` (its first side), ``voxels`` (all of its voxels, what a dense level
        predicts) and ``open`` (those left to decide).

    Raises:
        ValueError: ``levels`` < 1 or the sides do not divide.
    """
    occupancy = np.asarray(occupancy, dtype=bool)
    if levels < 1:
        raise ValueError(f"need at least one level, got {levels}")
    shrink = 2 ** (levels - 1)
    rows = []
    for level in range(levels):
        factor = 2 ** (levels - 1 - level)
        voxels = occupancy.size // factor ** 3
        if level == 0:
            # the coarsest level decides all of its voxels (and checks that the sides divide)
            open_ = cell_states(occupancy, shrink).size
        else:
            open_ = 8 * int(np.count_nonzero(cell_states(occupancy, 2 * factor) == MIXED))
        rows.append({"side": occupancy.shape[0] // factor, "voxels": voxels, "open": open_})
    return rows
