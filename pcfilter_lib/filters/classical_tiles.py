"""SOR and ROR on a cloud of any size, in tiles, keeping exactly the points Open3D keeps on the whole cloud.

What Open3D computes (``cpp/open3d/geometry/PointCloud.cpp``, ``KDTreeFlann.cpp`` and nanoflann):

- ``remove_radius_outlier(nb_points, radius)`` keeps a point when more than ``nb_points`` points,
  itself included, lie at a squared distance below ``radius * radius``. Those points lie within the
  radius of it on each axis, so a tile loaded with a halo a little wider than the radius
  (``filters.tile_store``) holds all of them, and Open3D's own filter on the tile and its halo gives
  the tile's points the whole cloud's counts (``ror_tile``).
- ``remove_statistical_outlier(nb_neighbors, std_ratio)``:

  1. each point's mean distance: the square roots of the squared distances to its ``nb_neighbors``
     nearest points, itself included (distance 0), summed in double from the nearest one on, over
     their number. nanoflann's squared distance is ``(dx * dx + dy * dy) + dz * dz`` with d = p - q;
  2. the cloud's mean: the means above 0 summed one after the other in the cloud's order, over the
     number of points (a point whose neighbours all coincide with it counts, with mean 0);
  3. the standard deviation: ``(m_i - mean) ** 2`` of the points with m_i > 0, summed one after the
     other in the cloud's order, over (points - 1), square-rooted;
  4. a point is kept when ``0 < m_i < mean + std_ratio * std`` (strictly).

  ``sor_tile`` does step 1 for one tile's points: their k nearest found by a k-d tree over the tile
  and a halo that grows until every point's k-th distance lies inside it (checked from the distances;
  a few sparse points whose neighbours lie far get a box of their own), then the squared distances
  recomputed as nanoflann computes them, sorted, square-rooted and summed in Open3D's order, so that
  every mean is Open3D's bit for bit. ``sor_threshold`` (``baselines``', as is ``sor_keep``) does steps 2
  and 3 from the means in the cloud's order (sums one element after the other, ``np.add.accumulate``,
  chunk after chunk), so the threshold is Open3D's bit for bit too, and ``sor_keep`` does step 4.
  ``tests/test_classical_tiles.py`` checks the kept points against Open3D on whole clouds.

``tiled_classical_keep`` runs them on a cloud read in chunks: the tiles one after the other, or as tasks
on a cluster (each ``(store, cell) -> (indices among the finite points, results)``, independent of the
others; ``tile_store.CellRunner``), the per-point means of SOR kept in a file (8 bytes per point, on
disk) in the cloud's order whatever order the tiles finish in, for the two ordered sums, which run
here, after every tile: the threshold, and so every decision, is that of one pass. Memory holds one
tile with its halo and a few bytes per point.
"""

from __future__ import annotations

import functools
import math
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import open3d as o3d
from scipy.spatial import cKDTree

from pcfilter_lib.filters.baselines import BaselineFilter, sor_keep, sor_threshold
from pcfilter_lib.filters.methods import DEFAULTS, LENGTHS, TILED_METHODS
from pcfilter_lib.filters.tile_store import (
    CellRunner,
    TileGrid,
    TileStore,
    cloud_bounds,
    cloud_centre,
    cloud_spacing,
    serial_cells,
    store_cloud,
)
from pcfilter_lib.geometry.neighbour_search import search_threads

CLASSICAL_TILE_POINTS = 250_000  # points per tile of SOR and ROR (larger ones: sparse points widen the halo more)
CLASSICAL_WHOLE_POINTS = 2_000_000  # a cloud up to this size goes in one pass: faster, about 0.35 GB a million
LONE_BOXES = 64  # at most this many points of a tile get a box of their own instead of a wider halo
QUERY_ROWS = 1 << 16  # points whose k nearest are sought at once (k x 16 bytes each)
SAFETY = 1e-9  # relative: a distance this much beyond the edge of the loaded region is still within it
CHUNK = 1 << 20  # per-point means summed at once


def _slack(store: TileStore) -> float:
    """A length far above the rounding of the grid's coordinates (box sides, cells)."""
    return 1e-12 * float(np.max(np.abs(np.r_[store.grid.low, store.grid.high])))


def ror_tile(store: TileStore, cell: int, nb_points: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Open3D's ``remove_radius_outlier`` for one cell's points.

    Args:
        store: the cloud's cells.
        cell: the cell.
        nb_points, radius: Open3D's parameters (a point is kept with more than ``nb_points`` points,
            itself included, closer than ``radius``).

    Returns:
        (indices among the cloud's finite points, (n,) bool kept) of the cell's points.
    """
    margin = radius * (1 + SAFETY) + _slack(store)
    while True:
        xyz, index, core, room = store.load(cell, margin)
        # Every point within the radius of a core point must be loaded: checked, not assumed (rounding).
        if (room[core] > radius * (1 + SAFETY)).all() or np.isinf(room).all():
            break
        margin *= 2
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    _, kept = cloud.remove_radius_outlier(int(nb_points), float(radius))
    keep = np.zeros(len(xyz), bool)
    keep[np.asarray(kept, dtype=np.int64)] = True
    return index[core], keep[core]


def open3d_mean_distances(points: np.ndarray, neighbours: np.ndarray, query: np.ndarray) -> np.ndarray:
    """(n,) each query point's mean distance to its neighbours as Open3D's SOR computes it.

    Args:
        points: (N, 3) float64 coordinates.
        neighbours: (n, k) indices into ``points`` of each query point's k nearest (itself included),
            in any order.
        query: (n,) indices into ``points`` of the query points.
    """
    d = points[query][:, None, :] - points[neighbours]  # query minus point, as nanoflann
    squared = d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1]
    squared += d[..., 2] * d[..., 2]  # nanoflann's order: (dx^2 + dy^2) + dz^2, in double
    squared.sort(axis=1)  # KNN results come nearest first
    distance = np.sqrt(squared)
    total = distance[:, 0].copy()  # 0.0 + d0 is d0
    for column in distance.T[1:]:  # one after the other, as std::accumulate
        total += column
    return total / neighbours.shape[1]


def _first_sor_margin(store: TileStore, cell: int, k: int) -> float:
    """The first halo of a cell: twice the radius of a disc holding k points at the cell's density."""
    density = store.counts[cell] / store.grid.size ** 2
    return 2 * math.sqrt(k / (math.pi * density)) + _slack(store)


def sor_tile(store: TileStore, cell: int, nb_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """Step 1 of Open3D's ``remove_statistical_outlier`` for one cell's points: each one's mean distance to
    its ``nb_neighbors`` nearest points (itself included), bit for bit Open3D's on the whole cloud.

    The halo starts at ``_first_sor_margin``. A point is done when its k-th distance lies inside the
    loaded region (within its ``room``): its k nearest there are its k nearest in the whole cloud.
    Until every point is done the halo grows and only the points not yet done are sought again; a
    point whose neighbours lie beyond a quarter of a cell (a sparse region) gets a box of its own
    instead, up to ``LONE_BOXES`` of them.

    Returns:
        (indices among the cloud's finite points, (n,) float64 mean distances) of the cell's points.
    """
    k = min(int(nb_neighbors), int(store.counts.sum()))  # nanoflann finds at most every point
    margin, extra, axes = _first_sor_margin(store, cell, k), {}, list(store.grid.axes)
    n = int(store.counts[cell])
    kth, means, done = np.full(n, np.inf), np.empty(n), np.zeros(n, bool)  # the cell's points, in index order
    while True:
        xyz, index, core, room = store.load(cell, margin, list(extra.values()))
        everything = bool(np.isinf(room).all())
        if len(xyz) < k and not everything:  # too few to judge: look farther
            margin *= 2
            continue
        tree, query = cKDTree(xyz, balanced_tree=False, compact_nodes=False), np.flatnonzero(core)
        pending = np.flatnonzero(~done)
        for start in range(0, len(pending), QUERY_ROWS):
            mine = pending[start:start + QUERY_ROWS]
            distance, neighbours = tree.query(xyz[query[mine]], k, workers=search_threads())
            kth[mine] = distance.reshape(len(mine), k)[:, -1]
            means[mine] = open3d_mean_distances(xyz, neighbours.reshape(len(mine), k), query[mine])
        if everything:
            break
        done |= kth * (1 + SAFETY) < room[query]
        if done.all():
            break
        # The halo grows to hold the k nearest of the points not done (the k-th distance found so far is
        # at least the true one), up to a quarter of a cell; a point whose neighbours lie farther gets a
        # box of its own (each box costs a pass over the loaded points, so only a few).
        short = ~done
        wanted = margin + 1.25 * (kth - room[query]) + _slack(store)
        cap = max(2 * margin, store.grid.size / 4)
        new = [p for p in np.flatnonzero(short & (wanted > cap)) if int(index[query[p]]) not in extra]
        if 0 < len(new) <= LONE_BOXES - len(extra):
            extra.update({int(index[query[p]]): (xyz[query[p], axes] - 1.25 * kth[p] - _slack(store),
                                                  xyz[query[p], axes] + 1.25 * kth[p] + _slack(store))
                          for p in new})
            short[new] = False
        if short.any():
            margin = max(float(np.max(wanted[short])), 2 * margin)
    return index[core], means


def tile_params(scan_filter: BaselineFilter, store: TileStore, low: np.ndarray, high: np.ndarray,
                cells: CellRunner = serial_cells) -> dict:
    """``scan_filter.scan_params`` of the whole stored cloud: lengths scaled by its spacing, measured in
    passes over the cells, bit for bit ``point_spacing`` of the cloud in memory."""
    params, defaults = dict(scan_filter.params), DEFAULTS[scan_filter.method]
    if scan_filter.reference_spacing is None or not LENGTHS[scan_filter.method]:
        return {**defaults, **params}
    try:
        scale = cloud_spacing(store, cloud_centre(store, low, high), cells) / scan_filter.reference_spacing
    except ValueError:  # every point coincides: there is no spacing to scale by
        return {**defaults, **params}
    return {**defaults, **{k: v * scale if k in LENGTHS[scan_filter.method] else v for k, v in params.items()}}


def tiled_classical_keep(scan_filter: BaselineFilter, chunks: Callable[[], Iterable[np.ndarray]],
                         tile_points: int = CLASSICAL_TILE_POINTS, folder: str | Path | None = None,
                         progress: Callable[[int], None] | None = None,
                         whole_points: int | None = None, cells: CellRunner = serial_cells) -> np.ndarray:
    """SOR or ROR of every point of a cloud read in chunks, tile by tile: what ``scan_filter`` keeps of
    the whole cloud in memory (Open3D on all its finite points), point for point.

    Args:
        scan_filter: a ``BaselineFilter`` of a method of ``TILED_METHODS``.
        chunks: called (a few times) to read the cloud again: an iterable of (n, 3) arrays of
            coordinates, in the cloud's order; NaN or infinite rows are allowed.
        tile_points: points per tile.
        folder: where the cells' files go (a temporary folder, removed at the end, by default).
        progress: called with the number of points each finished tile held.
        whole_points: a cloud of at most this many finite points is filtered at once (default
            ``tile_points``).
        cells: how the tiles' tasks run (``tile_store.serial_cells``: one after the other, here).

    Returns:
        (N,) float32: 1 where a point is kept, 0 where it is removed or has NaN or infinite coordinates.
    """
    if scan_filter.method not in TILED_METHODS:
        raise ValueError(f"--method {scan_filter.method} cannot run in tiles; the methods that can are "
                         f"{', '.join(TILED_METHODS)}")
    count, finite_count, low, high = cloud_bounds(chunks)
    if finite_count <= (tile_points if whole_points is None else whole_points):
        points = np.concatenate([np.asarray(c).reshape(-1, 3) for c in chunks()]) if count else np.zeros((0, 3))
        valid = np.isfinite(points).all(axis=1)
        keep = scan_filter.keep_mask({"xyz": points[None], "valid": valid[None]})[0]
        if progress:
            progress(count)
        return keep.astype(np.float32)
    with tempfile.TemporaryDirectory(dir=folder, prefix="pcfilter-tiles-") as tmp:
        store, finite = store_cloud(Path(tmp), chunks, TileGrid.cover(low, high, finite_count, tile_points))
        params = tile_params(scan_filter, store, low, high, cells)
        found = [int(cell) for cell in np.flatnonzero(store.counts)]
        done = (lambda cell: progress(int(store.counts[cell]))) if progress else None
        finite_keep = np.zeros(finite_count, bool)
        if scan_filter.method == "ror":
            task = functools.partial(ror_tile, store, nb_points=params["nb_points"], radius=params["radius"])
            for index, keep in cells(task, found, done):
                finite_keep[index] = keep
        else:
            means = np.lib.format.open_memmap(Path(tmp) / "means.npy", "w+", np.float64, (finite_count,))
            task = functools.partial(sor_tile, store, nb_neighbors=params["nb_neighbors"])
            for index, values in cells(task, found, done):
                means[index] = values
            in_order = lambda: (means[start:start + CHUNK] for start in range(0, finite_count, CHUNK))  # noqa: E731
            threshold = sor_threshold(in_order, params["std_ratio"])
            for start in range(0, finite_count, CHUNK):
                finite_keep[start:start + CHUNK] = sor_keep(means[start:start + CHUNK], threshold)
            del means
        if progress and count > finite_count:
            progress(count - finite_count)
        prob = np.zeros(count, np.float32)
        prob[finite] = finite_keep
        return prob
