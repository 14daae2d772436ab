"""The neighbour filter on a cloud of any size, in tiles, in bounded memory.

A point's P(keep) reads the k nearest neighbours of every point within ``NeighbourFilter.reach_hops``
hops of it (7 for the shipped filter: three hops of features, then four of the first stage's
P(keep)). A tile (``filters.tile_store``) is filtered with a halo that starts at
``NEIGHBOUR_MARGIN`` spacings and grows until every point within that many hops of the tile's own
points finds its k nearest inside the loaded region (its distance to the region's edge exceeds its
k-th distance), checked from the distances, not assumed. The points are measured in the whole
cloud's ``CloudFrame`` (its exact median, a power-of-two scale and its spacing, found in passes over
the cells), so a tile's statistics are the whole cloud's bit for bit and so are its decisions;
``tests/test_tiles.py`` checks them. Points whose neighbours lie farther than the halo is wide get
a box of their own in the halo instead of a wider halo all round.

Seven hops reach far where a scan is sparse (far background, grazing surfaces: tens of median
spacings between neighbours), so on simulated bins the halo of a tile often grows to hold as many
points as the tile itself, after a few retries that each redo the tile. Clouds of at most
``NEIGHBOUR_TILE_POINTS`` points are filtered in one pass.

Nothing here imports TensorFlow or Keras.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from pcfilter_lib.filters.neighbours import NeighbourFilter
from pcfilter_lib.filters.tile_store import CellRunner, TileStore, nearest_in_cells, serial_cells, tiled_probability
from pcfilter_lib.geometry.neighbour_statistics import CloudFrame
from pcfilter_lib.geometry.neighbours import nearest_neighbours_float32
from pcfilter_lib.geometry.point_features import _median_spacing

NEIGHBOUR_TILE_POINTS = 1_000_000  # points per tile, about 0.4 kB each: the halo often holds as many again
NEIGHBOUR_MARGIN = 24  # the first halo, in spacings: 7 hops of 12 neighbours span about 15 on a surface
LONE_BOXES = 1024  # at most this many points of a tile get a box of their own instead of a wider halo


def tiled_neighbour_probability(scan_filter: NeighbourFilter, chunks: Callable[[], Iterable[np.ndarray]],
                                tile_points: int = NEIGHBOUR_TILE_POINTS, folder: str | Path | None = None,
                                progress: Callable[[int], None] | None = None,
                                cells: CellRunner = serial_cells) -> np.ndarray:
    """P(keep) of every point of a cloud read in chunks, filtered tile by tile; the same as
    ``scan_filter.keep_probability_points`` on the whole cloud.

    Args:
        scan_filter: a ``NeighbourFilter``.
        chunks: called (up to three times) to read the cloud again: an iterable of (n, 3) arrays of
            coordinates, in the cloud's order; NaN or infinite rows are allowed.
        tile_points: points per tile; a cloud of at most this many finite points is filtered at once.
        folder: where the cells' files go (a temporary folder by default).
        progress: called with the number of points each finished tile held.
        cells: how the tiles' tasks run (``tile_store.serial_cells``: one after the other, here).

    Returns:
        (N,) float32 P(keep), 0 for points with NaN or infinite coordinates.
    """
    def cell_filters(store: TileStore, centre: np.ndarray, low: np.ndarray, high: np.ndarray, runner: CellRunner):
        frame = _neighbour_frame(store, centre, low, high, runner)
        return functools.partial(_filter_neighbour_cell, scan_filter, store, frame=frame)

    return tiled_probability(scan_filter.keep_probability_points, cell_filters, chunks, tile_points, folder, progress,
                             cells)


def _neighbour_frame(store: TileStore, centre: np.ndarray, low: np.ndarray, high: np.ndarray,
                     cells: CellRunner = serial_cells) -> CloudFrame:
    """The whole cloud's ``CloudFrame``: its median, a power-of-two scale and its spacing measured as
    ``neighbour_statistics`` measures it (the median positive float32 nearest distance), cell by cell."""
    extent = float(np.max(np.abs(np.r_[low - centre, high - centre])))
    scale = 2.0 ** round(math.log2(extent)) if extent > 0 else 1.0

    nearest = nearest_in_cells(store, functools.partial(_scaled_nearest, centre, scale), cells).astype(np.float32)
    return CloudFrame(centre, scale, _median_spacing(nearest) * scale)


def _scaled_nearest(centre: np.ndarray, scale: float, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each point's float32 distance to its nearest other point in the frame (centre, scale), and the
    same in the cloud's units (``_neighbour_frame``)."""
    found = nearest_neighbours_float32(((xyz - centre) / scale).astype(np.float32), 2)[1][:, 1]
    return found, found * scale


def _filter_neighbour_cell(scan_filter: NeighbourFilter, store: TileStore, cell: int,
                           frame: CloudFrame) -> tuple[np.ndarray, np.ndarray]:
    """(indices among the finite points, P(keep)) of one cell's points, from the cell with a halo wide
    enough that every point within ``reach_hops`` hops of them has its k nearest neighbours inside the
    loaded region (its ``room`` exceeds its k-th distance). A few lone points whose neighbours lie far
    get a box of their own; otherwise the halo grows."""
    margin, extra, axes = NEIGHBOUR_MARGIN * frame.spacing, {}, list(store.grid.axes)
    while True:
        xyz, index, core, room = store.load(cell, margin, list(extra.values()))
        everything = np.isinf(room).all()
        if len(xyz) <= scan_filter.neighbours and not everything:  # too few to judge: look farther
            margin *= 2
            continue
        prob, statistics = scan_filter.region_probability(xyz, frame)
        if everything:
            break
        read = core.copy()
        neighbours = statistics.neighbours()
        for _ in range(scan_filter.reach_hops):
            read[neighbours[read].ravel()] = True
        short = read & (statistics.farthest >= room)
        if not short.any():
            break
        # A point whose neighbours lie farther than the halo is wide gets a box of its own.
        lone = short & (statistics.farthest > 2 * margin)
        new = [p for p in np.flatnonzero(lone) if int(index[p]) not in extra]
        if 0 < len(new) <= LONE_BOXES - len(extra):
            extra.update({int(index[p]): (xyz[p, axes] - 1.25 * statistics.farthest[p],
                                          xyz[p, axes] + 1.25 * statistics.farthest[p]) for p in new})
        rest = short & ~lone if 0 < len(new) <= LONE_BOXES or not new else short
        if rest.any() or not new:
            gap = float(np.max(statistics.farthest[rest] - room[rest], initial=0.0))
            margin = max(margin + 1.25 * gap + frame.spacing, 2 * margin)  # few retries: each redoes the tile
    return index[core], prob[core]
