"""Per-point statistics from one k-nearest-neighbour search, fast enough to run beside SOR: the input
of the neighbour filter (``filters.neighbours``).

Each point gets the twelve statistics of ``point_features.OWN`` over its k nearest neighbours
(distances, the share within 2 and 4 spacings, the distance to their centroid and to their plane, the
shape of their spread), as ``point_features.local_statistics`` defines them for the patch filter, and
then their mean over its neighbours (``around_*``, the columns ``point_features.STATISTICS`` adds),
over the neighbours' neighbours (``around2_*``) and over theirs (``around3_*``): ``FEATURES``, 48
columns, which reach about six spacings (a hundred-odd points of a surface) from each point, all from
the one search. What differs from the patch filter's features is how they are computed, for millions
of points:

* one float32 search (``neighbour_search.nearest_neighbours_float32``), k = ``NEIGHBOURS`` = 12;
* every neighbourhood mean as a sparse product: the k neighbours of a block of m points form an
  (m, M) matrix with 1/k at each neighbour (``NeighbourStatistics.means``, made once), whose product
  with the coordinates and their pairwise products (float64, centred on the median, so no digits
  cancel) gives each neighbourhood's centroid and covariance, and whose product with any per-point
  values gives their mean over the neighbours (``neighbour_mean``); no (M, k, ...) array is formed;
* blocks of ``CHUNK`` points, worked on by ``THREADS`` threads (NumPy and SciPy release the GIL), each
  with one BLAS thread, so that memory beyond a few numbers per point stays bounded.

Lengths are in units of the cloud's spacing (the median distance from a point to its nearest other
point, coincident points left out) and capped at ``CAP`` spacings: a point that far from its
neighbours is far, however far, so a point a million spacings away gets the statistics of one at 256
spacings, which the filter learned to remove. Nothing changes when the cloud is moved, turned or scaled, up to float32
rounding. A point more than ``REACH`` times the cloud's radius (the median distance from the median)
from its median is not searched at all (float32 cannot measure distances between such points).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from pcfilter_lib.geometry.neighbour_search import nearest_neighbours_float32
from pcfilter_lib.geometry.point_checks import check_points
from pcfilter_lib.geometry.point_features import MIN_POINTS, OWN, _median_spacing, _symmetric_eigen

NEIGHBOURS = 12  # k: 8 cost a filter on three hops 0.007 mean IoU on simulated 640x480 scans (16: +0.001 on one hop)
HOPS = 3  # the statistics are averaged over 1, 2 and 3 hops of neighbours
FEATURES = OWN + tuple(f"around{hop if hop > 1 else ''}_{name}" for hop in range(1, HOPS + 1) for name in OWN)
CAP = 256.0  # in spacings: longer lengths count as this long
REACH = 1e15  # in radii of the cloud: farther points are not searched (their float32 distances overflow)
CHUNK = 32768  # points per block of work
THREADS = 2


@dataclass(frozen=True)
class CloudFrame:
    """How a cloud's points are measured: what ``neighbour_statistics`` finds for a whole cloud, which
    ``filters.neighbour_tiles`` finds in passes over its tiles and measures every tile in.

    Attributes:
        centre: (3,) float64 the cloud's median, subtracted from every point.
        scale: a power of two the centred coordinates are divided by before the float32 search (any
            power of two gives the same statistics, bit for bit: dividing by it is exact).
        spacing: the cloud's spacing (``point_features._median_spacing`` of the float32 nearest
            distances, times ``scale``), in the cloud's unit.
    """

    centre: np.ndarray
    scale: float
    spacing: float


@dataclass
class NeighbourStatistics:
    """A cloud's neighbourhoods: the statistics of ``OWN`` of each point and the means over neighbours.

    Attributes:
        searched: (N,) bool, the points within ``REACH`` of the cloud's median, which everything
            below describes, in order (M of them).
        spacing: the median distance from a point to its nearest other point, in the cloud's unit.
        own: (M, 12) float32 the statistics of ``OWN`` of each point's neighbourhood.
        means: for each block of points (``blocks``), the (m, M) float32 sparse matrix that averages
            over each point's k nearest other points.
        blocks: the rows of each block, in order.
        threads: threads that the blocks are worked on by.
        farthest: (M,) float64 the distance from each point to its k-th nearest other point, in the
            cloud's unit: how far its statistics look.
    """

    searched: np.ndarray
    spacing: float
    own: np.ndarray
    means: list[sparse.csr_matrix]
    blocks: list[slice]
    threads: int = THREADS
    farthest: np.ndarray | None = None
    _features: list[np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.own)

    def neighbours(self) -> np.ndarray:
        """(M, k) int32 the indices of each point's k nearest other points, nearest first."""
        return np.concatenate([mean.indices for mean in self.means]).reshape(len(self), -1)

    def map(self, function: Callable[[slice], np.ndarray]) -> np.ndarray:
        """``function(rows)`` for every block of points, on ``threads`` threads.

        Args:
            function: rows (a slice of the M points) -> (m, ...) array, such as the filter's network
                on the features of those rows.

        Returns:
            (M, ...) the results of the blocks, in the order of the points.
        """
        return np.concatenate(_run(self.blocks, self.threads, function))

    def neighbour_mean(self, values: np.ndarray) -> np.ndarray:
        """(M, C) float32: the mean of ``values`` (M, C) over each point's k nearest other points."""
        values = np.ascontiguousarray(values, np.float32)
        return np.concatenate(_run(self.means, self.threads, lambda mean: mean @ values))

    def hop_means(self, values: np.ndarray, hops: int = HOPS) -> list[np.ndarray]:
        """``values`` (M, C), then their mean over the neighbours, over the neighbours' neighbours...

        Returns:
            ``hops`` + 1 (M, C) float32 arrays: the values and their means over 1 to ``hops`` hops.
        """
        means = [np.ascontiguousarray(values, np.float32)]
        for _ in range(hops):
            means.append(self.neighbour_mean(means[-1]))
        return means

    def features(self) -> list[np.ndarray]:
        """The columns of ``FEATURES`` in groups: the (M, 12) statistics of ``OWN`` and their means over
        1 to ``HOPS`` hops (see ``gather`` for the rows of a block); computed once, then kept."""
        if self._features is None:
            self._features = self.hop_means(self.own)
        return self._features


def gather(columns: list[np.ndarray], rows: slice | np.ndarray) -> np.ndarray:
    """(m, C) float32: the ``rows`` (a slice or indices) of several (M, c) arrays side by side."""
    return np.concatenate([column[rows] for column in columns], axis=1)


def neighbour_statistics(points, k: int = NEIGHBOURS, chunk: int = CHUNK, threads: int = THREADS,
                         timings: dict | None = None) -> NeighbourStatistics:
    """Find each point's k nearest neighbours in one search and measure its neighbourhood.

    Args:
        points: a finite (N, 3) cloud in any unit, N >= ``MIN_POINTS``.
        k: neighbours per point (at most N - 1 are used).
        chunk: points per block of work.
        threads: threads working on the blocks.
        timings: if given, receives the seconds of the ``search`` and of the ``statistics`` after it.

    Returns:
        The cloud's ``NeighbourStatistics``.

    Raises:
        ValueError: the array is not (N, 3) or not finite, the cloud has fewer than ``MIN_POINTS``
            points (within ``REACH``), or every point coincides with another.
    """
    points = check_points(points, "the cloud's points")
    if len(points) < MIN_POINTS:
        raise ValueError(f"the cloud holds {len(points)} point{'s' * (len(points) != 1)}; the neighbour filter needs "
                         f"at least {MIN_POINTS} to compare each point with its neighbours")
    centred = points - np.median(points, axis=0)
    norms = np.sqrt(np.einsum("ni,ni->n", centred, centred))
    positive = norms[norms > 0]
    if not positive.size:
        raise ValueError("every point of the cloud coincides with another; there is no spacing to measure")
    # A power of two near the cloud's radius: dividing by it is exact, and it keeps float32 in range.
    radius = 2.0 ** round(math.log2(float(np.median(positive))))
    searched = norms <= REACH * radius
    if searched.sum() < MIN_POINTS:
        raise ValueError(f"only {searched.sum()} of the cloud's points lie within {REACH:.0e} times its radius "
                         f"of its median; the neighbour filter needs at least {MIN_POINTS}")
    centred /= radius
    scaled = centred if searched.all() else centred[searched]
    n, k = len(scaled), min(k, len(scaled) - 1)
    # Each point (usually) finds itself first: its neighbours are columns 1 to k.
    start = time.perf_counter()
    found, distances = nearest_neighbours_float32(scaled.astype(np.float32), k + 1)
    searched_at = time.perf_counter()
    spacing = _median_spacing(distances[:, 1])
    blocks = [slice(start, min(start + chunk, n)) for start in range(0, n, max(1, chunk))]
    moments = np.empty((n, MOMENTS))
    own = np.empty((n, len(OWN)), np.float32)

    def fill_moments(rows: slice) -> None:
        point_moments(scaled[rows], out=moments[rows])

    def measure(rows: slice) -> sparse.csr_matrix:
        mean = _neighbourhood_mean(found[rows, 1:], n)
        own[rows] = _own_statistics(scaled[rows], mean_moments(mean, moments), distances[rows, 1:], spacing)
        return mean

    _run(blocks, threads, fill_moments)
    means = _run(blocks, threads, measure)
    if timings is not None:
        timings.update(search=searched_at - start, statistics=time.perf_counter() - searched_at)
    return NeighbourStatistics(searched, spacing * radius, own, means, blocks, threads,
                               farthest=distances[:, -1].astype(np.float64) * radius)


def neighbour_features(points, k: int = NEIGHBOURS, chunk: int = CHUNK, threads: int = THREADS
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The features of ``FEATURES`` of every point of a cloud (see ``neighbour_statistics``).

    Returns:
        ``(features, searched)``: (M, 48) float32 features of the M searched points and the (N,)
        bool mask of those points.
    """
    statistics = neighbour_statistics(points, k, chunk, threads)
    columns = statistics.features()
    return statistics.map(lambda rows: gather(columns, rows)), statistics.searched


def _run(blocks: list, threads: int, work: Callable) -> list:
    """``work(block)`` for each block (of rows, or its matrix), on ``threads`` threads; the results in order.

    BLAS runs on one thread meanwhile: these threads are the parallelism. OpenBLAS's own threads on
    the small products of the filter's networks made them three times slower on two busy cores."""
    with threadpool_limits(limits=1, user_api="blas"):
        if threads <= 1 or len(blocks) == 1:
            return [work(block) for block in blocks]
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(work, blocks))


def _neighbourhood_mean(indices: np.ndarray, n: int) -> sparse.csr_matrix:
    """The (m, n) float32 sparse matrix that averages over each row's k neighbours (``indices`` (m, k))."""
    m, k = indices.shape
    return sparse.csr_matrix((np.full(m * k, 1 / k, np.float32), indices.reshape(-1).astype(np.int32),
                              np.arange(0, m * k + 1, k, dtype=np.int32)), shape=(m, n))


# The moments averaged over each neighbourhood: x, y, z, then these products of two coordinates, named
# by the entry of the covariance matrix they give.
_PAIRS = {"xx": (0, 0), "yy": (1, 1), "zz": (2, 2), "xy": (0, 1), "xz": (0, 2), "yz": (1, 2)}
_FIRST, _SECOND = [i for i, _ in _PAIRS.values()], [j for _, j in _PAIRS.values()]
MOMENTS = 3 + len(_PAIRS)


def point_moments(scaled: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(n, ``MOMENTS``) float64: x, y, z of each point and the products of two coordinates of ``_PAIRS``,
    whose means over a neighbourhood give its centroid and covariance (``mean_moments``).

    Args:
        scaled: (n, 3) float64 coordinates, centred on the cloud's median and divided by a power of two.
        out: where to write them, or None for a new array.
    """
    out = np.empty((len(scaled), MOMENTS)) if out is None else out
    out[:, :3] = scaled
    for column, (i, j) in enumerate(_PAIRS.values(), start=3):
        np.multiply(scaled[:, i], scaled[:, j], out=out[:, column])
    return out


def mean_moments(mean: sparse.csr_matrix, moments: np.ndarray) -> np.ndarray:
    """(m, ``MOMENTS``) float64: the ``point_moments`` averaged over each of m neighbourhoods.

    Args:
        mean: the (m, M) ``_neighbourhood_mean`` of the neighbourhoods (float32 weights 1/k).
        moments: (M, ``MOMENTS``) the ``point_moments`` of the points its columns number.
    """
    # float64 weights sharing the float32 matrix's indices: the moments keep their precision
    return sparse.csr_matrix((mean.data.astype(np.float64), mean.indices, mean.indptr), shape=mean.shape) @ moments


def neighbourhood_moments(neighbours: np.ndarray, scaled: np.ndarray) -> np.ndarray:
    """(m, ``MOMENTS``) float64 the ``mean_moments`` of m points over their neighbours.

    Args:
        neighbours: (m, k) indices into ``scaled`` of each point's k nearest other points, nearest first.
        scaled: (M, 3) float64 coordinates, centred and scaled as for the search.
    """
    return mean_moments(_neighbourhood_mean(neighbours, len(scaled)), point_moments(scaled))


def statistics_from_moments(scaled: np.ndarray, neighbours: np.ndarray, distances: np.ndarray,
                            moments: np.ndarray, spacing: float, scale: float, chunk: int = CHUNK,
                            threads: int = THREADS) -> NeighbourStatistics:
    """The ``NeighbourStatistics`` of points whose neighbours were searched and averaged before: what
    ``neighbour_statistics`` computes after its search, from what the search left (``filters.neighbour_tiles``
    keeps it on disk between its two passes over a cloud's tiles).

    Args:
        scaled: (M, 3) float64 the points, centred and divided by ``scale`` as for the search.
        neighbours: (M, k) indices among these M points of each point's k nearest other points, nearest first.
        distances: (M, k) float32 the distances to them, in the unit of ``scaled``.
        moments: (M, ``MOMENTS``) float64 each point's ``mean_moments`` over its neighbours.
        spacing: the cloud's spacing, in the unit of ``scaled``.
        scale: the power of two the coordinates were divided by.
        chunk, threads: as for ``neighbour_statistics``.
    """
    n = len(scaled)
    blocks = [slice(start, min(start + chunk, n)) for start in range(0, n, max(1, chunk))]
    own = np.empty((n, len(OWN)), np.float32)

    def measure(rows: slice) -> sparse.csr_matrix:
        own[rows] = _own_statistics(scaled[rows], moments[rows], distances[rows], spacing)
        return _neighbourhood_mean(neighbours[rows], n)

    means = _run(blocks, threads, measure)
    return NeighbourStatistics(np.ones(n, bool), spacing * scale, own, means, blocks, threads,
                               farthest=distances[:, -1].astype(np.float64) * scale)


def _own_statistics(points: np.ndarray, mean: np.ndarray, distances: np.ndarray, spacing: float) -> np.ndarray:
    """The statistics of ``OWN`` of m points (see ``point_features.local_statistics``).

    Args:
        points: (m, 3) float64 the points, centred and scaled like the moments.
        mean: (m, ``MOMENTS``) float64 their ``mean_moments``.
        distances: (m, k) float32 the distances to their neighbours, ascending.
        spacing: the cloud's spacing, in the unit of ``points``.

    Returns:
        (m, 12) float32.
    """
    k = distances.shape[1]
    covariance = mean[:, 3:] - mean[:, _FIRST] * mean[:, _SECOND]  # (m, 6) in the order of _PAIRS
    covariance *= 1 / spacing ** 2
    np.clip(covariance, -CAP ** 2, CAP ** 2, out=covariance)
    covariance = covariance.T.astype(np.float32)
    values, normal = _symmetric_eigen(dict(zip(_PAIRS, covariance, strict=True)))
    offset = ((mean[:, :3] - points) * (1 / spacing)).T.astype(np.float32)  # (3, m) point -> centroid
    d = np.minimum(distances * np.float32(1 / spacing), np.float32(CAP))
    share = np.full(k, 1 / k, np.float32)
    out = np.empty((len(points), len(OWN)), np.float32)
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = d[:, 0], d[:, min(3, k - 1)], d[:, -1], d @ share
    out[:, 4], out[:, 5] = (d <= 2) @ share, (d <= 4) @ share
    out[:, 6] = np.sqrt(offset[0] * offset[0] + offset[1] * offset[1] + offset[2] * offset[2])
    out[:, 7] = np.abs(offset[0] * normal[:, 0] + offset[1] * normal[:, 1] + offset[2] * normal[:, 2])
    out[:, 8] = np.sqrt(values[:, 0] + values[:, 1] + values[:, 2])
    np.minimum(out[:, 6:9], CAP, out=out[:, 6:9])
    for lengths in (out[:, 0:4], out[:, 6:9]):  # the log1p of a length keeps far points from dominating
        np.log1p(lengths, out=lengths)
    largest = np.maximum(values[:, 0], 1e-12)
    out[:, 9] = (values[:, 0] - values[:, 1]) / largest
    out[:, 10] = (values[:, 1] - values[:, 2]) / largest
    out[:, 11] = values[:, 2] / largest
    return out
