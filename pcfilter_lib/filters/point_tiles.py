"""The point filter on a cloud of any size, in tiles, in bounded memory.

A cloud larger than one tile is cut by a grid over its two widest axes (``filters.tile_store``) into cells of about
``tile_points`` points, kept on disk in one file per cell. Each cell is filtered with a halo: the
points of the neighbouring cells within a margin around it. The margin starts at ``MARGIN`` point
spacings and grows until everything the cell's decisions read is that of the whole cloud, checked
from the distances, not assumed:

* the patches that hold each of the cell's points (``filters.points.cover_patches`` draws the seeds
  from a hash of each point's index among the cloud's finite points, round by round, so that whether
  a point is a seed depends only on the points near it; the rounds track which points certainly get
  the whole cloud's patches);
* the k nearest neighbours of every member of those patches and of the members' neighbours (the
  features), which must lie inside the loaded region.

Lengths are measured in the spacing of the whole cloud (the median distance from a point to its
nearest neighbour) and coordinates centred on the whole cloud's median, both found in passes over the
cells before the filtering, so that a tile's coordinates round as the whole cloud's do and its
features are those of the whole cloud; ``tests/test_tiles.py`` checks the features and the decisions.
A patch holds only its members within ``filters.points.HOLD`` spacings of its seed, so a seed
beyond that distance from a tile's point never changes it, however far its patch reaches.

A cloud of at most one tile goes through ``PointFilter.keep_probability_points`` unchanged. Memory
holds one tile with its halo, the (N,) float32 probabilities and the (N,) nearest distances of the
spacing pass; the points stay on disk.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from pcfilter_lib.filters.points import HOLD, Cover, cover_patches
from pcfilter_lib.filters.tile_store import TILE_POINTS, CellRunner, TileStore, serial_cells, tiled_probability
from pcfilter_lib.filters.tile_store import cloud_spacing as _cloud_spacing
from pcfilter_lib.geometry.point_features import Neighbourhoods, neighbourhoods

MARGIN = 48  # the first halo's width, in point spacings (a patch of 256 points spans about 20 on a surface)




def tiled_keep_probability(point_filter, chunks: Callable[[], Iterable[np.ndarray]], tile_points: int = TILE_POINTS,
                           folder: str | Path | None = None,
                           progress: Callable[[int], None] | None = None,
                           cells: CellRunner = serial_cells) -> np.ndarray:
    """P(keep) of every point of a cloud read in chunks, filtered tile by tile.

    Args:
        point_filter: a ``filters.points.PointFilter``.
        chunks: called (up to three times) to read the cloud again: an iterable of (n, 3) arrays
            of coordinates, in the cloud's order; NaN or infinite rows are allowed.
        tile_points: points per tile; a cloud of at most this many finite points is filtered at once.
        folder: where the cells' files go (a temporary folder, removed at the end, by default).
        progress: called with the number of points each finished tile held.
        cells: how the tiles' tasks run (``tile_store.serial_cells``: one after the other, here).

    Returns:
        (N,) float32 P(keep), 0 for points with NaN or infinite coordinates.

    Raises:
        ValueError: the cloud has fewer than ``MIN_POINTS`` finite points.
    """
    def cell_filters(store: TileStore, centre: np.ndarray, low: np.ndarray, high: np.ndarray, runner: CellRunner):
        spacing = _cloud_spacing(store, centre, runner)  # the patch seeds hash the indices among the finite points
        return functools.partial(_filter_cell, point_filter, store, spacing=spacing, centre=centre)

    return tiled_probability(point_filter.keep_probability_points, cell_filters, chunks, tile_points, folder, progress,
                             cells)


def _shortfall(hood: Neighbourhoods, cover: Cover, core: np.ndarray, room: np.ndarray) -> float:
    """How much wider (in spacings) the halo must grow for the tile's decisions to be the whole cloud's;
    0 when they are. They are when every core point has the whole cloud's patches (``cover.exact``) and
    every member of those patches and every neighbour of a member has its k nearest neighbours within
    its ``room`` (in spacings: the distance to the edge of the loaded region)."""
    if not cover.exact[core].all():
        return HOLD / 2
    members = np.unique(cover.patches[(core[cover.patches] & cover.held).any(axis=1)])
    needed = np.unique(np.concatenate([members, hood.indices[members].ravel()]))
    return float(np.max(hood.distances[needed, -1] - room[needed], initial=0.0))


def _filter_cell(point_filter, store: TileStore, cell: int, spacing: float,
                 centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices among the finite points, P(keep)) of one cell's points, from the cell with a halo wide
    enough that everything they read is the whole cloud's (``_shortfall``). A patch that crosses the halo's
    edge (a lone point's reaches far) gets a box of its own instead of a wider halo all round."""
    margin, extra, axes = MARGIN * spacing, {}, list(store.grid.axes)
    while True:
        xyz, index, core, room = store.load(cell, margin, list(extra.values()))
        if len(xyz) <= point_filter.neighbours and not np.isinf(room).all():  # too few to judge: look farther
            margin *= 2
            continue
        hood = neighbourhoods(xyz, point_filter.neighbours, spacing=spacing, centre=centre)
        room = room / spacing  # hood's lengths are in spacings
        cover = cover_patches(hood, index, point_filter.patch_size, room)
        if np.isinf(room).all():
            break
        # A patch far wider than one on a surface, whose seed may hold the cell's points: a box of its own.
        low, high = store.grid.box(cell, HOLD * spacing)
        near = np.all((xyz[cover.wide][:, axes] >= low) & (xyz[cover.wide][:, axes] <= high), axis=1)
        lone = (cover.radius > 4 * HOLD) & near
        wide = {int(index[s]): (xyz[s, axes] - h, xyz[s, axes] + h) for s, h in
                zip(cover.wide[lone], (1.25 * cover.radius[lone] + HOLD) * spacing, strict=True)
                if int(index[s]) not in extra}
        if wide and not cover.exact[core].all():
            extra.update(wide)
            continue
        short = _shortfall(hood, cover, core, room)
        if short <= 0:
            break
        margin = max(margin + (1.25 * short + 1) * spacing, 1.5 * margin)  # few retries: each redoes the tile
    reading = (core[cover.patches] & cover.held).any(axis=1)  # the patches the cell's points read
    return index[core], point_filter.hood_probability(hood, cover.patches[reading], cover.held[reading])[core]


