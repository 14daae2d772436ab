"""The k nearest neighbours in a cloud, NumPy arrays in and out: the one neighbour search behind the
point filter's features (``geometry.point_features``) and the tiled filter (``filters.point_tiles``).

``NeighbourIndex`` builds a KD-tree over a cloud once and answers any number of queries;
``nearest_neighbours`` does both for one query. The search is Open3D's ``NearestNeighborSearch``
(nanoflann's KD-tree, queried on every core), in float64. Speed, one million points, k = 17 (16
neighbours and the point itself), build and query, best of three interleaved runs on two shared
cores: Open3D took 10.5 s of CPU (a uniform cube) and 8.5 s (a noisy surface), SciPy's ``cKDTree``
with ``workers=-1`` 9.7 s and 7.6 s, about a tenth less; their wall-clock times (15 to 27 s each on
that busy machine) varied more than they differed.
Open3D stays because the filter's features, spacing and decisions were made with its distances:
``cKDTree``'s differ in the last bits and would change them. The build is under a tenth of the
time; the query grows with k.

``nearest_neighbours_float32`` is the search of the neighbour filter (``filters.neighbour_filter``),
whose features are float32 anyway: SciPy's ``cKDTree`` queried on every core, its answer kept as
float32 distances and uint32 indices. The cloud's own points, or some of them (``rows``: a tile's
points among its halo's), are asked in the tree's leaf order, whatever order they are stored in: on a
shuffled 600 000-point cloud, 500 000 of its points took 4.3 s asked so and 10.0 s in the shuffled
order (a scan stored row by row is in a good order already); each point's answer is the same.
pykdtree's float32 tree answered k = 13 on a 1.09-million-point cloud about twice as fast, but its
wheel brings a second OpenMP runtime into processes that load Open3D's, and a chapter's kernel that
had loaded both crashed once inside Open3D; one runtime per process is safer.
"""

from __future__ import annotations

import os

import numpy as np
from scipy.spatial import cKDTree

QUERY_BLOCK = 1 << 18  # query points per call of the float32 search


def search_threads() -> int:
    """Threads of a KD-tree query (SciPy's ``workers``): ``OMP_NUM_THREADS`` when it is set to a positive
    number, as the workers of ``pcfilter ... --jobs`` set it to 1, so that N workers use N cores; else
    every core (-1)."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else -1


class NeighbourIndex:
    """A KD-tree over a cloud, built once, to find the k nearest of its points to any query points.

    Args:
        points: (N, 3) finite coordinates in any unit, N >= 1.

    Attributes:
        points: the (N, 3) float64 coordinates searched.

    Raises:
        ValueError: ``points`` is not a non-empty (N, 3) array.
    """

    def __init__(self, points):
        import open3d as o3d  # deferred: the command line imports this module before it needs Open3D

        self.points = _coordinates(points, "points")
        if not len(self.points):
            raise ValueError("cannot search an empty cloud for neighbours")
        self._search = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(self.points))
        self._search.knn_index()

    def __len__(self) -> int:
        return len(self.points)

    def query(self, queries, k: int, squared: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest of the indexed points to each query point, nearest first.

        A query point that is one of the indexed points usually finds itself first (at distance 0;
        among coincident points, any of them may come first).

        Args:
            queries: (M, 3) points, in the unit of the indexed ones.
            k: neighbours per query point, 1 <= k <= N.
            squared: return the squared distances as the KD-tree computed them, for comparisons
                that must match Open3D's own to the last bit.

        Returns:
            ``(indices, distances)``: (M, k) int64 indices into the indexed points and (M, k)
            float64 distances to them (or their squares), ascending, in the points' unit.

        Raises:
            ValueError: ``queries`` is not (M, 3), or ``k`` is out of range.
        """
        queries = _coordinates(queries, "queries")
        if not 1 <= k <= len(self.points):
            raise ValueError(f"cannot find {k} nearest of {len(self.points)} points: k must lie in "
                             f"[1, {len(self.points)}]")
        if not len(queries):
            return np.zeros((0, k), np.int64), np.zeros((0, k))
        found, squares = self._search.knn_search(queries, k)
        squares = squares.numpy()
        return found.numpy().astype(np.int64, copy=False), squares if squared else np.sqrt(squares)


def nearest_neighbours(points, k: int, queries=None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest points of a cloud to each of its own points (or to each query point).

    Each point of the cloud is usually its own nearest (distance 0): ask for k + 1 and drop the
    first column for the k nearest *other* points. Build a ``NeighbourIndex`` instead to query one
    cloud more than once.

    Args:
        points: (N, 3) finite coordinates in any unit.
        k: neighbours per point, 1 <= k <= N.
        queries: (M, 3) points to find neighbours of, or None for the cloud's own points.

    Returns:
        ``(indices, distances)``: (N, k) or (M, k) int64 indices into ``points`` and float64
        distances, ascending, in the points' unit.

    Raises:
        ValueError: for arrays that are not (N, 3) or a ``k`` out of range.
    """
    index = NeighbourIndex(points)
    return index.query(index.points if queries is None else queries, k)


def nearest_neighbours_float32(points, k: int, queries=None, rows=None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest points of a cloud to each of its own points (or to each query point), in float32.

    The same answer as ``nearest_neighbours`` up to float32 rounding: distances and the order of
    neighbours at nearly equal distances may differ in the last bits. Float32 keeps about seven
    digits, so centre a cloud that lies far from the origin first (a cloud a thousand spacings from
    its centre keeps its offsets to a ten-thousandth of a spacing).

    Args:
        points: (N, 3) finite coordinates in any unit, N >= 1.
        k: neighbours per point, 1 <= k <= N.
        queries: (M, 3) points to find neighbours of, or None for the cloud's own points (each then
            usually finds itself first, at distance 0).
        rows: (M,) distinct indices of the cloud's own points to find neighbours of, instead of
            ``queries`` (the answer of ``queries=points[rows]``, found faster).

    Returns:
        ``(indices, distances)``: (N, k) or (M, k) uint32 indices into ``points`` (half the memory
        of int64) and float32 distances, ascending, in the points' unit.

    Raises:
        ValueError: for arrays that are not (N, 3), coordinates that are not finite in float32, or a
            ``k`` out of range.
    """
    points = _coordinates(points, "points", np.float32)
    if not 1 <= k <= len(points):
        raise ValueError(f"cannot find {k} nearest of {len(points)} points: k must lie in [1, {len(points)}]")
    tree = cKDTree(points)
    if queries is not None:
        queries, order = _coordinates(queries, "queries", np.float32), None
    elif rows is None:
        # The cloud's own points are asked in the tree's leaf order: neighbouring queries then walk the
        # same branches while they are in cache (1.8 times faster on a shuffled cloud).
        queries, order = points, tree.indices
    else:  # the leaf order of the chosen points, as positions among them
        rows = np.asarray(rows, np.int64)
        position = np.full(len(points), -1, np.int64)
        position[rows] = np.arange(len(rows))
        order = position[tree.indices]
        queries, order = points[rows], order[order >= 0]
    found, lengths = np.empty((len(queries), k), np.uint32), np.empty((len(queries), k), np.float32)
    for start in range(0, len(queries), QUERY_BLOCK):  # SciPy answers in float64 and int64: a block at a time
        block = slice(start, start + QUERY_BLOCK) if order is None else order[start:start + QUERY_BLOCK]
        distances, indices = tree.query(queries[block], k, workers=search_threads())
        found[block], lengths[block] = indices.reshape(-1, k), distances.reshape(-1, k)
    return found, lengths


def _coordinates(points, name: str, dtype=np.float64) -> np.ndarray:
    """``points`` as a C-contiguous, finite (N, 3) array of ``dtype``, or a one-line ValueError."""
    with np.errstate(over="ignore"):  # a coordinate beyond float32's range becomes infinite, reported below
        points = np.ascontiguousarray(points, dtype=dtype)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"{name} must be an (N, 3) array of coordinates, got shape {points.shape}")
    if not np.isfinite(points).all():
        beyond = f" or beyond {np.dtype(dtype).name}'s range" if dtype != np.float64 else ""
        raise ValueError(f"{name} hold NaN or infinite coordinates{beyond}; drop those points first")
    return points
