"""Artefact statistics on small clouds built so that every number is known in advance."""

import numpy as np
import pytest

from pcfilter_lib.geometry.outlier_statistics import outlier_clusters, outlier_statistics

H = 0.002  # the grid spacing of the true surface (m)


def plane(n: int = 30, z: float = 0.0, step: float = H, origin=(0.0, 0.0)) -> np.ndarray:
    """An n x n grid of points with spacing ``step`` at height ``z``, shaken by 0.1% of a step so that
    no two distances tie exactly (a count within a radius would then hang on rounding)."""
    u, v = np.meshgrid(np.arange(n) * step + origin[0], np.arange(n) * step + origin[1], indexing="ij")
    grid = np.c_[u.ravel(), v.ravel(), np.full(n * n, z)]
    return grid + np.random.default_rng(n).uniform(-1e-3, 1e-3, grid.shape) * step


def lattice_count(radius: float) -> int:
    """Points of the unit square lattice within ``radius`` of a lattice point, itself excluded."""
    r = int(radius)
    u, v = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1))
    return int((u ** 2 + v ** 2 <= radius ** 2).sum()) - 1


def test_isolated_points_far_above_a_surface():
    surface = plane()
    # five specks 20 spacings up, 4.2 or more apart: each one's nearest points are the other four
    specks = np.array([[12, 12, 20], [18, 12, 20], [12, 18, 20], [18, 18, 20], [15, 15, 20]], float) * H
    stats = outlier_statistics(np.r_[surface, specks], np.r_[np.zeros(len(surface), bool), np.ones(5, bool)])
    assert stats["points"] == 905 and stats["outliers"] == 5
    assert stats["outlier_fraction"] == pytest.approx(5 / 905)
    assert stats["spacing"] == pytest.approx(H, rel=1e-2)
    assert stats["clusters"] == 5 and stats["cluster_size_max"] == 1 and stats["isolated_share"] == 1.0
    assert stats["distance_median"] == pytest.approx(20, rel=1e-2)
    assert stats["distance_p90"] == pytest.approx(20, rel=1e-2)
    assert stats["density_outlier"] == 0 and stats["density_ratio"] == 0
    # interior points see the whole disc of the lattice, border points less of it
    assert 0.5 * lattice_count(4) < stats["density_true"] < lattice_count(4)
    assert stats["outlier_neighbour_share"] == pytest.approx(4 / 16)


def test_a_dense_ghost_sheet_beside_the_surface():
    surface = plane()
    ghost = plane(10, z=3 * H, origin=(10 * H, 10 * H))
    stats = outlier_statistics(np.r_[surface, ghost], np.r_[np.zeros(len(surface), bool), np.ones(100, bool)])
    assert stats["clusters"] == 1 and stats["cluster_size_max"] == 100 and stats["isolated_share"] == 0.0
    assert stats["largest_cluster_share"] == 1.0
    assert stats["distance_median"] == pytest.approx(3, rel=1e-2)  # straight down onto the surface
    # a ghost point counts its own sheet and the surface beneath it: denser than the surface alone
    assert stats["density_ratio"] > 1
    assert stats["outlier_neighbour_share"] > 0.5


def test_lengths_are_in_spacings_so_units_do_not_matter():
    rng = np.random.default_rng(0)
    cloud = np.r_[plane(), rng.random((20, 3)) * 30 * H + [0, 0, 2 * H]]
    outlier = np.r_[np.zeros(900, bool), np.ones(20, bool)]
    metres, millimetres = outlier_statistics(cloud, outlier), outlier_statistics(cloud * 1000 + 5, outlier)
    assert millimetres["spacing"] == pytest.approx(1000 * metres["spacing"])
    for key in metres:
        if key != "spacing":
            assert millimetres[key] == pytest.approx(metres[key]), key


def test_clusters_link_only_points_within_the_link_distance():
    points = np.array([[0, 0, 0], [1.5, 0, 0], [3.0, 0, 0], [10, 0, 0], [10, 2.5, 0]], float)
    ids = outlier_clusters(points, link=2.0)
    assert len(set(ids[:3])) == 1 and len(set(ids)) == 3  # a chain, then two points too far apart
    assert len(set(outlier_clusters(points, link=3.0))) == 2
    assert outlier_clusters(np.zeros((0, 3))).size == 0


def test_clouds_without_false_points_and_bad_input():
    stats = outlier_statistics(plane(5), np.zeros(25, bool))
    assert stats["outliers"] == 0 and stats["clusters"] == 0
    assert stats["distance_median"] is None and stats["density_ratio"] is None and stats["density_true"] > 0
    with pytest.raises(ValueError, match="one outlier flag each"):
        outlier_statistics(plane(5), np.zeros(24, bool))
    with pytest.raises(ValueError, match="must be positive"):
        outlier_statistics(plane(5), np.zeros(25, bool), link=0)
