"""What the false points of a labelled cloud look like, in numbers a simulator can be compared by.

Real and simulated artefacts differ in kind, not only in amount: a few isolated points far from any
surface (what density filters catch), or dense false surfaces beside the true ones (what they cannot
see). ``outlier_statistics`` measures, for an (N, 3) cloud and its per-point outlier flags:

- **amount**: the share of points that are false;
- **clusters**: connected components of false points, two of them linked when they lie within
  ``link`` point spacings: how many, how large, and the share of false points that stand alone;
- **distance**: of each false point to the nearest true point, in point spacings (median, 90th
  percentile): a ghost surface floating far off, or a fringe hugging the true one;
- **density**: neighbours (of either label) within ``radius`` spacings of a false and of a true
  point, and the share of a false point's k nearest neighbours that are false too.

Every length is in units of the cloud's point spacing (the median distance from a point to its
nearest neighbour, as ``point_features.neighbourhoods`` measures it), so scans in metres, in
millimetres or thinned compare alike.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

from pcfilter_lib.geometry.point_features import NEIGHBOURS, neighbourhoods

LINK = 2.0  # false points closer than this many spacings belong to one cluster
RADIUS = 4.0  # the radius of the local density, in spacings


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    """Median and 90th percentile of ``values`` (None for none)."""
    if values.size == 0:
        return {"median": None, "p90": None}
    return {"median": float(np.median(values)), "p90": float(np.percentile(values, 90))}


def outlier_clusters(points: np.ndarray, link: float = LINK) -> np.ndarray:
    """(M,) cluster id of each of ``points`` (M, 3): connected components of the graph that links
    two points closer than ``link`` (the same length unit as the points). Ids run 0..C-1."""
    points = np.asarray(points, np.float64)
    if len(points) == 0:
        return np.zeros(0, np.int64)
    pairs = cKDTree(points).query_pairs(link, output_type="ndarray")
    graph = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(points),) * 2)
    return csgraph.connected_components(graph, directed=False)[1]


def outlier_statistics(points, outlier, link: float = LINK, radius: float = RADIUS,
                       k: int = NEIGHBOURS) -> dict:
    """Statistics of the false points of a labelled cloud (see the module docstring).

    Args:
        points: (N, 3) finite coordinates, any length unit, N >= 4.
        outlier: (N,) bool, True for a false point (an artefact, label 0 of a scan).
        link: the distance, in spacings, within which two false points belong to one cluster.
        radius: the radius, in spacings, of the local density.
        k: the number of nearest neighbours whose share of false points is measured.

    Returns:
        a flat dict: ``points``, ``outliers``, ``outlier_fraction``, ``spacing`` (cloud units);
        ``clusters`` (count), ``cluster_size_median``, ``cluster_size_p90``, ``cluster_size_max``,
        ``isolated_share`` (share of false points alone in their cluster), ``largest_cluster_share``;
        ``distance_median`` and ``distance_p90`` (false point to nearest true point, spacings);
        ``density_outlier`` and ``density_true`` (mean neighbours within ``radius`` spacings),
        ``density_ratio`` (the first over the second); ``outlier_neighbour_share`` (mean share of
        a false point's ``k`` nearest neighbours that are false). Values that need false (or true)
        points are None when the cloud has none.

    Raises:
        ValueError: the shapes disagree, or the cloud has too few points for a spacing.
    """
    points = np.asarray(points, np.float64)
    outlier = np.asarray(outlier, bool)
    if points.ndim != 2 or points.shape[1] != 3 or outlier.shape != (len(points),):
        raise ValueError(f"points must be (N, 3) with one outlier flag each, got {points.shape} and {outlier.shape}")
    if link <= 0 or radius <= 0:
        raise ValueError(f"link and radius are lengths in spacings and must be positive, got {link} and {radius}")
    hood = neighbourhoods(points, k)
    scaled = hood.points  # spacing units
    n, m = len(points), int(outlier.sum())
    stats: dict = {"points": n, "outliers": m, "outlier_fraction": m / n, "spacing": hood.spacing}

    labels = outlier_clusters(scaled[outlier], link)
    sizes = np.bincount(labels) if m else np.zeros(0, np.int64)
    size = _percentiles(sizes.astype(np.float64))
    stats.update(clusters=int(sizes.size), cluster_size_median=size["median"], cluster_size_p90=size["p90"],
                 cluster_size_max=int(sizes.max()) if m else None,
                 isolated_share=float((sizes == 1).sum() / m) if m else None,
                 largest_cluster_share=float(sizes.max() / m) if m else None)

    true = ~outlier
    if m and true.any():
        distance = cKDTree(scaled[true]).query(scaled[outlier], k=1)[0]
    else:
        distance = np.zeros(0)
    spread = _percentiles(distance)
    stats.update(distance_median=spread["median"], distance_p90=spread["p90"])

    counts = cKDTree(scaled).query_ball_point(scaled, r=radius, return_length=True) - 1  # not the point itself
    density_outlier = float(counts[outlier].mean()) if m else None
    density_true = float(counts[true].mean()) if true.any() else None
    stats.update(density_outlier=density_outlier, density_true=density_true,
                 density_ratio=density_outlier / density_true if m and density_true else None,
                 outlier_neighbour_share=float(outlier[hood.indices[outlier]].mean()) if m else None)
    return stats
