"""The neighbour filter on a cloud of any size, in tiles, in bounded memory.

A point's P(keep) reads the statistics of every point within ``NeighbourFilter.reach_hops`` hops of
it (7 for the shipped filter: three hops of features, then four of the first stage's P(keep)), and
each of those statistics reads that point's k nearest neighbours. The tiles (``filters.tile_store``)
are filtered in two passes, so that the neighbour search, most of the filter's time, is done once per
point, never again for a halo:

1. **Search.** Each tile's own points find their k nearest neighbours among the tile and a thin halo
   (a point whose k-th distance reaches past the halo is searched again, with boxes loaded around such
   points); their indices among the cloud's points and their distances are kept on disk beside the
   tile's points. The cloud's spacing, the median of every point's nearest distance, comes out of the
   same pass.
2. **Networks.** Each tile is loaded with a halo that must hold every point within ``reach_hops`` hops
   of its own points and each of those points' neighbours: checked from the kept neighbour lists, not
   assumed. Where it does not, boxes are added around the points whose neighbours are missing, as far
   as their remaining hops probably reach, and the tile is loaded again (no search again). The
   statistics, their hop means and the networks then run on those points only.

The networks compute each point's P(keep) the same way whatever the tile (``DenseNetwork`` runs a
fixed number of rows per matrix product), and the far points (``neighbours.far_points``) are found
from the kept k-th distances and the whole cloud's spacing, so the tiles give the one pass's
probabilities, on the test clouds bit for bit. On the large benchmark clouds a few points in a million
differ by one float32 step (4 of 1 million in tiles of 250 000), and no decision changes.

On 10 million points in tiles of 500 000 (a grid of simulated scans, ``benchmarks/filter_speed.py``),
each tile was loaded twice in its search and three times in its second pass; on 2 million points in
tiles of 250 000, 1.9 and 1.6 times, and the halos added 0.3% to the points the networks see. Tiles of
250 000 points keep ``pcfilter filter``'s peak resident memory on 10 million points at 0.36 GB (0.89 GB
in tiles of 500 000); its time there went from 146 s to 177 s on two busy shared cores (on 2 million
points, in memory, 33 s to 30 s).

The points are measured in the whole cloud's ``CloudFrame`` (its exact median and a power-of-two
scale), so a tile's statistics are the whole cloud's bit for bit; ``tests/test_point_tiles.py`` checks
the probabilities. Clouds of at most ``NEIGHBOUR_WHOLE_POINTS`` points are filtered in one pass.

Nothing here imports TensorFlow or Keras.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from pcfilter_lib.filters.neighbours import NeighbourFilter
from pcfilter_lib.filters.tile_store import (
    BLOCKS,
    CellRunner,
    TileStore,
    select_ranks,
    serial_cells,
    tiled_probability,
)
from pcfilter_lib.geometry.neighbour_search import nearest_neighbours_float32
from pcfilter_lib.geometry.neighbour_statistics import (
    CloudFrame,
    neighbourhood_moments,
    statistics_from_moments,
)

NEIGHBOUR_TILE_POINTS = 250_000  # points per tile: about 0.6 kB each with the halo while the networks run
NEIGHBOUR_WHOLE_POINTS = 1_000_000  # clouds up to this size go in one pass (0.55 GB; in tiles 2.6 times slower)
NEIGHBOUR_MARGIN = 24  # the networks' first halo, in spacings: 7 hops of 12 neighbours span about 15 on a surface
SEARCH_MARGIN = 1 / 32  # the search's first halo, in tile sides
HOOD = "hood"  # the name of the files of each point's neighbours, beside the tiles'
LOOKUP_ROWS = 1 << 16  # rows whose neighbours are looked up at once in the second pass
NEAREST = "nearest"  # ... and of each point's positive distance to its nearest other point, for the spacing


def tiled_neighbour_probability(scan_filter: NeighbourFilter, chunks: Callable[[], Iterable[np.ndarray]],
                                tile_points: int = NEIGHBOUR_TILE_POINTS, folder: str | Path | None = None,
                                progress: Callable[[int], None] | None = None, cells: CellRunner = serial_cells,
                                whole_points: int | None = NEIGHBOUR_WHOLE_POINTS) -> np.ndarray:
    """P(keep) of every point of a cloud read in chunks, filtered tile by tile; the same as
    ``scan_filter.keep_probability_points`` on the whole cloud.

    Args:
        scan_filter: a ``NeighbourFilter``.
        chunks: called (up to three times) to read the cloud again: an iterable of (n, 3) arrays of
            coordinates, in the cloud's order; NaN or infinite rows are allowed.
        tile_points: points per tile.
        folder: where the tiles' files go (a temporary folder by default).
        progress: called with a number of points as each pass over a tile finishes (half of the
            tile's points after its search, the rest after its networks; all points in the end).
        cells: how the tiles' tasks run (``tile_store.serial_cells``: one after the other, here).
        whole_points: a cloud of at most this many finite points is filtered in one pass (None:
            ``tile_points``).

    Returns:
        (N,) float32 P(keep), 0 for points with NaN or infinite coordinates.
    """
    searched = Counter()  # tiles whose search was reported, by their number of points

    def report_search(points: int) -> None:
        searched[points] += 1
        if progress:
            progress(points // 2)

    def report_networks(points: int) -> None:  # tiled_probability reports each tile's points
        if searched[points]:
            searched[points] -= 1
            points -= points // 2
        if progress:
            progress(points)

    def cell_filters(store: TileStore, centre: np.ndarray, low: np.ndarray, high: np.ndarray, runner: CellRunner):
        frame, hood = _search_cells(store, centre, low, high, scan_filter.neighbours, report_search, runner)
        return functools.partial(_filter_neighbour_cell, scan_filter, store, frame=frame, hood=hood)

    return tiled_probability(scan_filter.keep_probability_points, cell_filters, chunks, tile_points, folder,
                             report_networks, cells, whole_points)


def _search_cells(store: TileStore, centre: np.ndarray, low: np.ndarray, high: np.ndarray, k: int,
                  report: Callable[[int], None], cells: CellRunner) -> tuple[CloudFrame, np.dtype]:
    """The first pass: every point's k nearest other points, kept beside each cell's points, and the
    whole cloud's ``CloudFrame`` (its spacing as ``neighbour_statistics`` measures it: the median of the
    positive float32 nearest distances, found in passes over the kept distances).

    Returns:
        the frame and the dtype of the kept records (``neighbours``: indices among the cloud's finite
        points, nearest first; ``distances``: float32, in the frame's scaled unit).
    """
    extent = float(np.max(np.abs(np.r_[low - centre, high - centre])))
    scale = 2.0 ** round(math.log2(extent)) if extent > 0 else 1.0
    index_type = np.int32 if store.counts.sum() < np.iinfo(np.int32).max else np.int64
    hood = np.dtype([("neighbours", index_type, (k,)), ("distances", np.float32, (k,))])
    order = [int(c) for c in np.flatnonzero(store.counts)]
    task = functools.partial(_search_and_keep, store, centre, scale, k, hood)
    found = list(cells(task, order, lambda cell: report(int(store.counts[cell]))))
    count = sum(n for n, _, _ in found)
    if not count:
        raise ValueError("every point of the cloud coincides with another; there is no spacing to measure")

    def nearest():
        for cell in order:
            yield np.fromfile(store.folder / f"{cell}.{NEAREST}", np.float32)

    least, most = min(part[1] for part in found), max(part[2] for part in found)
    middle = select_ranks(nearest, [(0, rank, least, most) for rank in sorted({(count - 1) // 2, count // 2})])
    spacing = float(np.mean(np.array(middle, np.float32)))  # as np.median of the float32 distances
    return CloudFrame(centre, scale, spacing * scale), hood


def _search_and_keep(store: TileStore, centre: np.ndarray, scale: float, k: int, hood: np.dtype,
                     cell: int) -> tuple[int, float, float]:
    """One cell's task in the first pass: its points' neighbours kept beside them (``HOOD``), and their
    positive nearest distances (``NEAREST``). Returns how many are positive, the least and the most."""
    found, distances = _search_cell(store, cell, centre, scale, k)
    records = np.empty(len(found), hood)
    records["neighbours"], records["distances"] = found[:, 1:], distances[:, 1:]
    store.attach(cell, HOOD, records)
    positive = distances[:, 1][distances[:, 1] > 0]
    positive.tofile(store.folder / f"{cell}.{NEAREST}")
    if not len(positive):
        return 0, np.inf, -np.inf
    return len(positive), float(positive.min()), float(positive.max())


def _search_cell(store: TileStore, cell: int, centre: np.ndarray, scale: float, k: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The k + 1 nearest points (each point usually first) of every point of one cell, among the whole
    cloud: (indices among the finite points (m, k + 1), float32 distances in the scaled unit). A point
    whose k-th distance reaches past the loaded region is searched again with a box around it loaded."""
    margin, extra = SEARCH_MARGIN * store.grid.size, {}
    m = int(store.counts[cell])
    found, lengths = np.empty((m, k + 1), np.int64), np.empty((m, k + 1), np.float32)
    todo = np.arange(m)  # the cell's points still to search, in the cloud's order
    while True:
        xyz, index, core, room = store.load(cell, margin, list(extra.values()))
        everything = np.isinf(room).all()
        if len(xyz) <= k and not everything:  # too few to search: look farther
            margin *= 2
            continue
        scaled = ((xyz - centre) / scale).astype(np.float32)
        queries = np.flatnonzero(core)[todo]
        near, far = nearest_neighbours_float32(scaled, k + 1, rows=queries)
        farthest = far[:, -1].astype(np.float64) * scale
        done = np.ones(len(todo), bool) if everything else farthest < room[queries]
        found[todo[done]], lengths[todo[done]] = index[near[done]], far[done]
        if done.all():
            return found, lengths
        todo, short = todo[~done], queries[~done]
        _cover(extra, store, xyz[short], farthest[~done])
        del xyz, index, core, room, scaled, near, far  # before loading again


def _filter_neighbour_cell(scan_filter: NeighbourFilter, store: TileStore, cell: int, frame: CloudFrame,
                           hood: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The second pass on one cell: (indices among the finite points, P(keep)) of its points, from the
    points within ``reach_hops`` hops of them, loaded with each of their neighbours."""
    margin, extra = NEIGHBOUR_MARGIN * frame.spacing, {}
    while True:
        xyz, index, core, kept = store.load_attached(cell, margin, list(extra.values()), HOOD, hood)
        # from the cloud's indices to the region's (-1: not loaded), over the span of the region's indices
        lookup = np.full(int(index[-1] - index[0]) + 1, -1, hood["neighbours"].base)
        lookup[index - index[0]] = np.arange(len(index))
        local = np.empty(kept["neighbours"].shape, lookup.dtype)
        for start in range(0, len(local), LOOKUP_ROWS):  # a block at a time: no (n, k) int64 arrays
            wanted = kept["neighbours"][start:start + LOOKUP_ROWS] - index[0]
            part = lookup[np.clip(wanted, 0, len(lookup) - 1)]
            part[(wanted < 0) | (wanted >= len(lookup))] = -1
            local[start:start + LOOKUP_ROWS] = part
        del lookup
        complete = (local >= 0).all(axis=1)
        used, frontier = core.copy(), core & complete  # used: the points whose statistics the cell reads
        hops_left = np.where(core, scan_filter.reach_hops, 0)  # how many hops more each used point reads
        for hop in range(scan_filter.reach_hops - 1, -1, -1):
            reached = np.zeros(len(index), bool)
            reached[local[frontier].ravel()] = True
            reached &= ~used
            used |= reached
            hops_left[reached] = hop
            frontier = reached & complete
        short = used & ~complete
        if not short.any():
            break
        # Where one point's neighbours lie beyond the region, so probably do the next hops': load as far
        # as the hops it has left reach at its own k-th distance, up to the first halo's width more.
        farthest = kept["distances"][short, -1].astype(np.float64) * frame.scale
        _cover(extra, store, xyz[short], farthest + np.minimum(farthest * hops_left[short], 3 * margin))
        del xyz, index, core, kept, local, complete, used, frontier, reached, hops_left  # before loading again
    rows = np.flatnonzero(used)
    # Each array is let go as soon as it is read for the last time: the networks run with the statistics only.
    renumber = np.zeros(len(index), local.dtype)  # neighbours outside the used points are never read
    renumber[rows] = np.arange(len(rows))
    scaled = (xyz - frame.centre) / frame.scale
    neighbours, distances = local[rows], kept["distances"][rows]
    del xyz, local, kept
    moments = neighbourhood_moments(neighbours, scaled)
    neighbours = renumber[neighbours]
    scaled = scaled[rows]
    del renumber
    statistics = statistics_from_moments(scaled, neighbours, distances, moments, frame.spacing / frame.scale,
                                         frame.scale, scan_filter.chunk, scan_filter.threads)
    del scaled, neighbours, distances, moments
    prob = scan_filter.statistics_probability(statistics)
    own = core[rows]
    return index[rows[own]], prob[own]


def _cover(extra: dict, store: TileStore, xyz: np.ndarray, farthest: np.ndarray) -> None:
    """Add to ``extra`` the boxes that hold the k nearest neighbours of points whose neighbours may lie
    beyond the loaded region (each within ``farthest`` of its point, with a quarter to spare): one box
    per block of the grid (``tile_store.BLOCKS`` a side per cell) the points fall in, grown if it is
    there already, so the region grows where it must and only there."""
    axes = list(store.grid.axes)
    planar, reach = xyz[:, axes], 1.25 * farthest[:, None]
    side = store.grid.size / BLOCKS
    keys = ((planar - store.grid.low[axes]) // side).astype(np.int64)
    keys, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.reshape(-1)
    low = np.full((len(keys), 2), np.inf)
    high = np.full((len(keys), 2), -np.inf)
    np.minimum.at(low, group, planar - reach)
    np.maximum.at(high, group, planar + reach)
    for key, box_low, box_high in zip(map(tuple, keys), low, high, strict=True):
        if key in extra:
            box_low, box_high = np.minimum(extra[key][0], box_low), np.maximum(extra[key][1], box_high)
        extra[key] = (box_low, box_high)
