"""Per-point statistics from one k-nearest-neighbour search, fast enough to run beside SOR: the input
of the neighbour filter (``filters.neighbour_filter``).

Each point gets the twelve statistics of ``point_features.OWN`` over its k nearest neighbours
(distances, the share within 2 and 4 spacings, the distance to their centroid and to their plane, the
shape of their spread) and then the mean of the same twelve over those neighbours: the 24 columns of
``point_features.STATISTICS``, as ``point_features.local_statistics`` defines them for the patch
filter. What differs is how they are computed, for millions of points:

* one float32 search (``neighbours.nearest_neighbours_float32``), k = ``NEIGHBOURS`` = 12;
* every neighbourhood mean as a sparse product: the k neighbours of a block of m points form an
  (m, N) matrix with 1/k at each neighbour, whose product with the coordinates and their pairwise
  products (float64, centred on the median, so no digits cancel) gives each neighbourhood's centroid
  and covariance, and whose product with the twelve statistics gives their mean over the neighbours;
  no (N, k, ...) array is ever formed;
* blocks of ``CHUNK`` points, worked on by ``THREADS`` threads (NumPy and SciPy release the GIL), so
  that memory beyond a few numbers per point stays bounded.

Lengths are in units of the cloud's spacing (the median distance from a point to its nearest other
point, coincident points left out) and capped at ``CAP`` spacings: a point that far from its
neighbours is far, however far, so a point at 1e30 gets the statistics of one at 256 spacings, which
the filter learned to remove. Nothing changes when the cloud is moved, turned or scaled, up to float32
rounding. A point more than ``REACH`` times the cloud's radius (the median distance from the median)
from its median is not searched at all (float32 cannot measure distances between such points).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from pcfilter_lib.geometry.neighbours import nearest_neighbours_float32
from pcfilter_lib.geometry.point_features import MIN_POINTS, OWN, STATISTICS, _median_spacing, _symmetric_eigen
from pcfilter_lib.geometry.points import check_points

NEIGHBOURS = 12  # k: 16 gave the filter 0.001 more mean IoU on simulated scans, 8 gave 0.005 less
FEATURES = STATISTICS  # a point's twelve statistics of OWN, then their mean over its neighbours
CAP = 256.0  # in spacings: longer lengths count as this long
REACH = 1e15  # in radii of the cloud: farther points are not searched (their float32 distances overflow)
CHUNK = 32768  # points per block of work
THREADS = 2


@dataclass
class NeighbourStatistics:
    """A cloud's nearest neighbours and the statistics of ``OWN`` of each point, for its features.

    Attributes:
        searched: (N,) bool, the points within ``REACH`` of the cloud's median, which the arrays
            below describe, in order (M of them).
        spacing: the median distance from a point to its nearest other point, in the cloud's unit.
        indices: (M, k + 1) uint32 the k + 1 nearest searched points of each, nearest first: the
            point itself (or one coinciding with it), then its k neighbours.
        own: (M, 12) float32 the statistics of ``OWN`` of each point's neighbourhood.
        threads: threads that ``map`` runs blocks of points on.
    """

    searched: np.ndarray
    spacing: float
    indices: np.ndarray
    own: np.ndarray
    threads: int = THREADS

    def features(self, rows: slice) -> np.ndarray:
        """(m, 24) float32 features of the points ``rows`` (of the searched ones), in the order of
        ``FEATURES``: their own statistics, then the mean of those over their neighbours."""
        own = self.own[rows]
        out = np.empty((len(own), 2 * own.shape[1]), np.float32)
        out[:, :own.shape[1]] = own
        out[:, own.shape[1]:] = _neighbourhood_mean(self.indices[rows, 1:], len(self.own)) @ self.own
        return out

    def map(self, function: Callable[[np.ndarray], np.ndarray], chunk: int = CHUNK) -> np.ndarray:
        """``function`` applied to the features of every block of ``chunk`` searched points.

        Args:
            function: (m, 24) float32 features -> (m, ...) array, such as the filter's network.
            chunk: points per block; memory holds about ``threads`` blocks' features at a time.

        Returns:
            (M, ...) the results of the blocks, in the order of the points.
        """
        return np.concatenate(_blocks(len(self.own), chunk, self.threads,
                                      lambda rows: function(self.features(rows))))


def neighbour_statistics(points, k: int = NEIGHBOURS, chunk: int = CHUNK, threads: int = THREADS
                         ) -> NeighbourStatistics:
    """Find each point's k nearest neighbours in one search and measure its neighbourhood.

    Args:
        points: a finite (N, 3) cloud in any unit, N >= ``MIN_POINTS``.
        k: neighbours per point (at most N - 1 are used).
        chunk: points per block of work.
        threads: threads working on the blocks.

    Returns:
        The cloud's ``NeighbourStatistics``.

    Raises:
        ValueError: the array is not (N, 3) or not finite, the cloud has fewer than ``MIN_POINTS``
            points within ``REACH``, or every point coincides with another.
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
        raise ValueError(f"only {searched.sum()} of the cloud's points lie within {REACH:.0e} times its radius of "
                         f"its median; the neighbour filter needs at least {MIN_POINTS}")
    centred /= radius
    scaled = centred if searched.all() else centred[searched]
    n, k = len(scaled), min(k, len(scaled) - 1)
    # Each point (usually) finds itself first: its neighbours are columns 1 to k.
    found, distances = nearest_neighbours_float32(scaled.astype(np.float32), k + 1)
    spacing = _median_spacing(distances[:, 1])
    moments = np.empty((n, 3 + len(_PAIRS)))
    own = np.empty((n, len(OWN)), np.float32)

    def fill_moments(rows: slice) -> None:
        moments[rows, :3] = scaled[rows]
        np.multiply(scaled[rows][:, _FIRST], scaled[rows][:, _SECOND], out=moments[rows, 3:])

    def measure(rows: slice) -> None:
        own[rows] = _own_statistics(scaled[rows], found[rows, 1:], distances[rows, 1:], moments, spacing)

    _blocks(n, chunk, threads, fill_moments)
    _blocks(n, chunk, threads, measure)
    return NeighbourStatistics(searched, spacing * radius, found, own, threads)


def neighbour_features(points, k: int = NEIGHBOURS, chunk: int = CHUNK, threads: int = THREADS
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The features of ``FEATURES`` of every point of a cloud (see ``neighbour_statistics``).

    Returns:
        ``(features, searched)``: (M, 24) float32 features of the M searched points and the (N,)
        bool mask of those points.
    """
    statistics = neighbour_statistics(points, k, chunk, threads)
    return statistics.map(lambda features: features, chunk), statistics.searched


def _blocks(n: int, chunk: int, threads: int, work: Callable[[slice], object]) -> list:
    """``work(rows)`` for consecutive blocks of ``chunk`` of n rows, on ``threads`` threads; the results in order."""
    starts = range(0, n, max(1, chunk))
    rows = [slice(start, min(start + chunk, n)) for start in starts]
    if threads <= 1 or len(rows) == 1:
        return [work(r) for r in rows]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(work, rows))


def _neighbourhood_mean(indices: np.ndarray, n: int, dtype=np.float32) -> sparse.csr_matrix:
    """The (m, n) sparse matrix that averages over each row's k neighbours (``indices`` (m, k))."""
    m, k = indices.shape
    return sparse.csr_matrix((np.full(m * k, 1 / k, dtype), indices.reshape(-1).astype(np.int32),
                              np.arange(0, m * k + 1, k, dtype=np.int64)), shape=(m, n))


# The moments averaged over each neighbourhood: x, y, z, then these products of two coordinates, named
# by the entry of the covariance matrix they give.
_PAIRS = {"xx": (0, 0), "yy": (1, 1), "zz": (2, 2), "xy": (0, 1), "xz": (0, 2), "yz": (1, 2)}
_FIRST, _SECOND = [i for i, _ in _PAIRS.values()], [j for _, j in _PAIRS.values()]


def _own_statistics(points: np.ndarray, indices: np.ndarray, distances: np.ndarray, moments: np.ndarray,
                    spacing: float) -> np.ndarray:
    """The statistics of ``OWN`` of m points (see ``point_features.local_statistics``).

    Args:
        points: (m, 3) float64 the points, centred like ``moments``.
        indices: (m, k) their neighbours.
        distances: (m, k) float32 the distances to them, ascending.
        moments: (N, 9) float64 x, y, z and their products of ``_PAIRS`` of every point of the cloud.
        spacing: the cloud's spacing, in the unit of ``points``.

    Returns:
        (m, 12) float32.
    """
    k = indices.shape[1]
    mean = _neighbourhood_mean(indices, len(moments), np.float64) @ moments  # (m, 9)
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
