"""Neighbourhood features of an unorganised cloud, the input of the point filter (``filters.points``).

Every length is measured in the cloud's own point spacing (the median distance from a point to its
nearest neighbour), so metres, millimetres or a thinned cloud look alike. ``local_statistics`` gives
each point statistics of its k nearest neighbours and their mean over those neighbours;
``seed_patches`` covers the cloud with overlapping patches; ``patch_inputs`` turns patches into the
network's input for a feature set of ``FEATURE_SETS``; ``combine`` averages the per-patch predictions
of each point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pcfilter_lib.geometry.neighbour_search import NeighbourIndex, nearest_neighbours
from pcfilter_lib.geometry.point_checks import check_points

NEIGHBOURS = 16  # k of the local statistics
MIN_POINTS = 4  # fewer points carry no neighbourhood to judge them by
# The largest coordinate magnitude whose distances can be measured: beyond it the squared distance
# between two points (three squared differences of up to twice the magnitude) overflows double precision.
COORDINATE_LIMIT = float(np.sqrt(np.finfo(np.float64).max / 12))
# The same in single precision, in which the U-Net's pixel features are computed (about 5.3e18).
FLOAT32_COORDINATE_LIMIT = float(np.sqrt(np.finfo(np.float32).max / 12))
OWN = ("nearest", "fourth", "kth", "mean_distance", "within_2s", "within_4s", "centroid_offset", "plane_distance",
       "spread", "linearity", "planarity", "scattering")
STATISTICS = OWN + tuple(f"around_{name}" for name in OWN)  # a point's own, then its neighbours' mean
COORDINATES = ("u", "v", "w")
FEATURE_SETS = {"coordinates": COORDINATES, "statistics": STATISTICS, "both": COORDINATES + STATISTICS}


def finite_points(points) -> tuple[np.ndarray, np.ndarray]:
    """A cloud as float64 and the mask of its usable points.

    Args:
        points: (N, 3) coordinates, possibly with NaN or infinite rows (points a scanner missed).

    Returns:
        ``(points, finite)``: the (N, 3) float64 array and the (N,) bool mask of rows whose
        coordinates are all finite.

    Raises:
        ValueError: from ``geometry.point_checks.check_points``, when the array is not (N, 3) or has no
            finite point at all.
    """
    points = np.asarray(points, dtype=np.float64)
    finite = np.isfinite(points).all(axis=-1) if points.ndim == 2 else np.ones(len(points), bool)
    check_points(points[finite], "the cloud's points with finite coordinates")
    return points, finite


@dataclass
class Neighbourhoods:
    """The cloud centred and divided by its spacing, with its neighbour search and k nearest neighbours.

    Attributes:
        points: (N, 3) float64, in units of the spacing, centred on the median.
        spacing: the median distance from a point to its nearest neighbour, in the cloud's units.
        search: the ``NeighbourIndex`` of the centred points in the cloud's units (query with points
            times ``spacing``).
        distances: (N, k) distances to the k nearest other points, ascending, in spacing units.
        indices: (N, k) int64 indices of those neighbours.
    """

    points: np.ndarray  # (N, 3) float64, in units of the spacing, centred on the median
    spacing: float  # in the cloud's own units
    search: NeighbourIndex  # over the centred points (cloud units): query points * spacing
    distances: np.ndarray  # (N, k) to the k nearest other points, ascending, in spacing units
    indices: np.ndarray  # (N, k)

    def nearest(self, queries: np.ndarray, k: int) -> np.ndarray:
        """The k nearest points of the cloud to each query point.

        Args:
            queries: (M, 3) points in spacing units, like ``points``.
            k: how many neighbours.

        Returns:
            (M, k) int64 indices into ``points``, nearest first.
        """
        return self.search.query(queries * self.spacing, k)[0]


def neighbourhoods(points, k: int = NEIGHBOURS, spacing: float | None = None,
                   centre: np.ndarray | None = None) -> Neighbourhoods:
    """Measure a cloud's spacing and find every point's k nearest neighbours.

    Args:
        points: a finite (N, 3) cloud in any unit, N >= ``MIN_POINTS``.
        k: neighbours per point (at most N - 1 are used).
        spacing: the unit of length to use instead of this cloud's own spacing (a tile of a larger
            cloud is measured in the spacing of the whole cloud).
        centre: (3,) the point to centre on instead of this cloud's median (a tile is centred on the
            whole cloud's, so that its coordinates, and the features made from them, round alike).

    Returns:
        The ``Neighbourhoods`` of the cloud; lengths in them are in units of its spacing.

    Raises:
        ValueError: the cloud has fewer than ``MIN_POINTS`` points, or every point coincides with
            another so that there is no spacing to measure.
    """
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n < MIN_POINTS:
        raise ValueError(f"the cloud holds {n} point{'s' * (n != 1)}; the point filter needs at least "
                         f"{MIN_POINTS} to compare each point with its neighbours")
    k = min(k, n - 1)
    # The median, not the mean: a few points far away (1e30) must not swamp the others' precision.
    centred = _centred(points, centre)
    search = NeighbourIndex(centred)
    found, distances = search.query(centred, k + 1)  # each point itself (usually) first
    indices, distances = np.ascontiguousarray(found[:, 1:]), distances[:, 1:]
    spacing = _median_spacing(distances[:, 0]) if spacing is None else float(spacing)
    return Neighbourhoods(centred / spacing, spacing, search, distances / spacing, indices)


def _centred(points: np.ndarray, centre: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) float64 points less their median (or ``centre``), checked to lie within ``COORDINATE_LIMIT``."""
    centred = points - (np.median(points, axis=0) if centre is None else np.asarray(centre, np.float64))
    if np.abs(centred).max() > COORDINATE_LIMIT:
        raise ValueError(f"the cloud spans more than ±{COORDINATE_LIMIT:.1e}: distances between its points overflow; "
                         "drop the points that lie that far away")
    return centred


def _median_spacing(nearest: np.ndarray) -> float:
    """The median of the positive nearest-neighbour distances: coincident points have no spacing."""
    positive = nearest[nearest > 0]
    if positive.size == 0:
        raise ValueError("every point of the cloud coincides with another; there is no spacing to measure")
    return float(np.median(positive))


def point_spacing(points) -> float:
    """A cloud's point spacing as ``neighbourhoods`` measures it, without the rest of its work.

    Args:
        points: a finite (N, 3) cloud, N >= 2, in any unit.

    Returns:
        the median distance from a point to its nearest other point (coincident points left out),
        in the cloud's unit: the unit in which the baselines measure lengths on clouds.

    Raises:
        ValueError: fewer than two points, or every point coincides with another.
    """
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 2:
        raise ValueError(f"the cloud holds {len(points)} point(s); a spacing needs at least 2")
    _, distances = nearest_neighbours(_centred(points), 2)
    return _median_spacing(distances[:, 1])


def _eigen(covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending, clipped at 0) and eigenvectors (columns, same order) of (..., 3, 3)."""
    values, vectors = np.linalg.eigh(covariance)
    return np.clip(values[..., ::-1], 0, None), vectors[..., ::-1]


def _symmetric_eigen(c: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (N, 3), descending and clipped at 0, and the unit eigenvector of the smallest
    (N, 3) of many symmetric 3x3 matrices given by their entries ``c["xx"], c["xy"], ...``.

    The closed form (trigonometric solution of the characteristic cubic) is several times faster
    than a batched ``eigh`` for hundreds of thousands of neighbourhoods. The eigenvector is the
    longest of the cross products of the rows of A - smallest * I, each normal to the smallest's
    plane; it is worked out one component at a time, with no (N, 3, 3) temporaries."""
    xx, yy, zz, xy, xz, yz = (c[key] for key in ("xx", "yy", "zz", "xy", "xz", "yz"))
    q = (xx + yy + zz) / 3
    off = xy ** 2 + xz ** 2 + yz ** 2
    p = np.sqrt(np.maximum(((xx - q) ** 2 + (yy - q) ** 2 + (zz - q) ** 2 + 2 * off) / 6, 1e-30))
    a, b, d = (xx - q) / p, (yy - q) / p, (zz - q) / p
    e, f, g = xy / p, xz / p, yz / p
    half_det = (a * (b * d - g * g) - e * (e * d - g * f) + f * (e * g - b * f)) / 2
    phi = np.arccos(np.clip(half_det, -1, 1)) / 3
    largest = q + 2 * p * np.cos(phi)
    smallest = q + 2 * p * np.cos(phi + 2 * np.pi / 3)
    values = np.stack([largest, 3 * q - largest - smallest, smallest], axis=1)
    rows = ((xx - smallest, xy, xz), (xy, yy - smallest, yz), (xz, yz, zz - smallest))  # A - smallest * I
    crosses = [_cross(rows[0], rows[1]), _cross(rows[0], rows[2]), _cross(rows[1], rows[2])]
    # |v|^2 summed in the order of NumPy's reduction in np.linalg.norm, so the normal is bit for bit the same.
    norms = [np.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) for v in crosses]
    best = np.where(norms[1] > norms[0], 1, 0)  # argmax: the first of equal norms wins
    best = np.where(norms[2] > np.where(best == 1, norms[1], norms[0]), 2, best)
    length = np.maximum(np.choose(best, norms), 1e-30)
    normal = np.stack([np.choose(best, [v[i] for v in crosses]) / length for i in range(3)], axis=1)
    return np.clip(values, 0, None), normal


def _cross(u, v) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cross product of two fields of 3-vectors given as three (N,) components each."""
    return u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]


def _neighbour_offsets(hood: Neighbourhoods) -> np.ndarray:
    """(3, N, k) float32: each coordinate of the offsets from every point to its k neighbours."""
    coordinates = np.ascontiguousarray(hood.points.T, dtype=np.float32)  # (3, N)
    return np.stack([np.take(axis, hood.indices) - axis[:, None] for axis in coordinates])


def _neighbour_sum(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """(N, C) sum over each point's k neighbours (``indices`` (N, k)) of ``values`` (N, C), added
    one neighbour after the other, the order in which the features were defined."""
    total = np.zeros_like(values)
    for j in range(indices.shape[1]):
        total += np.take(values, indices[:, j], axis=0)
    return total


def local_statistics(hood: Neighbourhoods) -> np.ndarray:
    """The point filter's per-point features: statistics of each point's k nearest neighbours.

    All lengths are in units of the spacing; the log1p of a length keeps far outliers from
    dominating. The twelve statistics of ``OWN``, in order:

    * ``nearest``, ``fourth``, ``kth``, ``mean_distance``: log1p of the distance to the nearest, the
      fourth and the k-th neighbour and of the mean distance to the k;
    * ``within_2s``, ``within_4s``: the share of the k neighbours within 2 and 4 spacings (what
      radius outlier removal counts);
    * ``centroid_offset``: log1p of the distance from the point to its neighbours' centroid;
    * ``plane_distance``: log1p of its distance to their best-fit plane (through the centroid,
      normal to the direction of least spread);
    * ``spread``: log1p of the root of the sum of the covariance eigenvalues l1 >= l2 >= l3;
    * ``linearity``, ``planarity``, ``scattering``: (l1 - l2) / l1, (l2 - l3) / l1 and l3 / l1.

    Then ``around_*``: the mean of each of the twelve over the point's k neighbours.

    Args:
        hood: the cloud's ``Neighbourhoods``.

    Returns:
        (N, 24) float32, the columns in the order of ``STATISTICS``. None of them changes when the
        cloud is moved, turned or scaled.
    """
    d, indices = hood.distances, hood.indices
    k = d.shape[1]
    axes = _neighbour_offsets(hood)  # (3, N, k), from the point to its neighbours
    mean = np.empty((len(d), 3), np.float32)  # the centroid, seen from the point
    for i, axis in enumerate(axes):
        total = axis[:, 0].copy()
        for j in range(1, k):  # one neighbour after the other, as the mean over them was defined
            total += axis[:, j]
        mean[:, i] = total / k
    entries = {key: np.einsum("nk,nk->n", axes[i], axes[j]) / k - mean[:, i] * mean[:, j]
               for key, (i, j) in {"xx": (0, 0), "yy": (1, 1), "zz": (2, 2), "xy": (0, 1), "xz": (0, 2),
                                   "yz": (1, 2)}.items()}
    del axes
    values, normal = _symmetric_eigen(entries)
    largest = np.maximum(values[:, 0], 1e-12)
    plane = np.abs(np.einsum("ni,ni->n", mean, normal))
    columns = [np.log1p(c) for c in (d[:, 0], d[:, min(3, k - 1)], d[:, -1], d.mean(axis=1))]
    columns += [np.count_nonzero(d <= 2, axis=1) / k, np.count_nonzero(d <= 4, axis=1) / k]
    columns += [np.log1p(np.linalg.norm(mean, axis=1)), np.log1p(plane), np.log1p(np.sqrt(values.sum(1)))]
    columns += [(values[:, 0] - values[:, 1]) / largest, (values[:, 1] - values[:, 2]) / largest,
                values[:, 2] / largest]
    out = np.empty((len(d), 2 * len(columns)), np.float32)
    for i, column in enumerate(columns):
        out[:, i] = column
    own = out[:, :len(columns)]
    out[:, len(columns):] = _neighbour_sum(own, indices) / k  # the neighbours' mean
    return out


def seed_patches(hood: Neighbourhoods, patch_size: int, seed: int = 0, overlap: float = 1.0) -> np.ndarray:
    """Cover a cloud with overlapping patches, each a seed point's nearest neighbours.

    Seeds are drawn at random (from ``seed`` only, so the same cloud moved, turned or rescaled gets the
    same patches), ``overlap`` x N / P of them at first; points no patch holds yet are the candidates
    for the seeds of the next round, until every point is covered.

    Args:
        hood: the cloud's ``Neighbourhoods``.
        patch_size: points per patch; P = min(patch_size, N).
        seed: seed of the random choice of patch centres.
        overlap: how many times, on average, the first round covers each point.

    Returns:
        (M, P) int64 point indices, one row per patch; every point is in at least one.
    """
    n = len(hood.points)
    size = min(patch_size, n)
    rng = np.random.default_rng(seed)
    covered = np.zeros(n, bool)
    patches = []
    candidates = np.arange(n)
    # Each round covers at least its seeds, so at most N rounds; the bound guards the loop regardless.
    for _ in range(n + 1):
        if not candidates.size:
            return np.concatenate(patches)
        count = max(int(np.ceil(overlap * candidates.size / size)), min(candidates.size, 16))
        seeds = rng.choice(candidates, size=min(count, candidates.size), replace=False)
        members = hood.nearest(hood.points[seeds], size)
        # Among more than P coincident points the search may return others than the seed: the seed
        # then takes the place of the farthest member, so that every round covers its seeds.
        missing = ~(members == seeds[:, None]).any(axis=1)
        members[missing, -1] = seeds[missing]
        patches.append(members)
        covered[members.ravel()] = True
        candidates = np.flatnonzero(~covered)
    raise RuntimeError(f"seed_patches did not cover the cloud's {n} points in {n} rounds")


def patch_coordinates(hood: Neighbourhoods, patches: np.ndarray, members: int | None = None) -> np.ndarray:
    """Each patch's points in the patch's own PCA frame, so that moving or turning the cloud changes
    nothing.

    The axes are the patch's principal directions, largest spread first, each pointed so that the
    third moment of the points along it is not negative.

    Args:
        hood: the cloud's ``Neighbourhoods``.
        patches: (M, P) point indices from ``seed_patches``.
        members: the patch's own points are its first ``members`` columns and the rest repeat them
            (``filters.points.pad_patches``); the frame comes from those alone, so that padding
            changes no coordinate. None: all P.

    Returns:
        (M, P, 3) float32 coordinates in spacing units, centred on each patch's mean.
    """
    xyz = hood.points[patches]  # (M, P, 3)
    own = xyz[:, :members]
    centred = xyz - own.mean(axis=1, keepdims=True)
    own_centred = centred[:, :members]
    covariance = np.einsum("mpi,mpj->mij", own_centred, own_centred) / own.shape[1]
    _, vectors = _eigen(covariance)
    local = np.einsum("mpi,mij->mpj", centred, vectors)
    # third moment >= 0 on every axis
    sign = np.where(np.sum(local[:, :members] ** 3, axis=1, keepdims=True) < 0, -1.0, 1.0)
    return (local * sign).astype(np.float32)


def patch_inputs(hood: Neighbourhoods, patches: np.ndarray, feature_set: str,
                 statistics: np.ndarray | None = None, members: int | None = None) -> np.ndarray:
    """The network input of each patch.

    Args:
        hood: the cloud's ``Neighbourhoods``.
        patches: (M, P) point indices from ``seed_patches``.
        feature_set: "coordinates" (PCA-frame coordinates, clipped to +-50 spacings and divided by
            8), "statistics" (``local_statistics``) or "both" (coordinates first).
        statistics: the cloud's ``local_statistics``, if already computed.
        members: for padded patches, the number of their own points (``patch_coordinates``).

    Returns:
        (M, P, F) float32 with F = 3, 24 or 27 (``len(FEATURE_SETS[feature_set])``).

    Raises:
        ValueError: the feature set is unknown.
    """
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}: choose one of {sorted(FEATURE_SETS)}")
    parts = []
    if feature_set in ("coordinates", "both"):
        parts.append(np.clip(patch_coordinates(hood, patches, members), -50, 50) / 8.0)
    if feature_set in ("statistics", "both"):
        statistics = local_statistics(hood) if statistics is None else statistics
        parts.append(statistics[patches])
    return np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]


def combine(patches: np.ndarray, probability: np.ndarray, n: int) -> np.ndarray:
    """Each point's probability: the mean over the patches that hold it.

    Args:
        patches: (M, P) point indices.
        probability: (M, P) the network's probability for each patch's points.
        n: N, the number of points of the cloud.

    Returns:
        (N,) float32; 0 for a point in no patch.
    """
    total = np.bincount(patches.ravel(), weights=probability.ravel(), minlength=n)
    count = np.bincount(patches.ravel(), minlength=n)
    return (total / np.maximum(count, 1)).astype(np.float32)
