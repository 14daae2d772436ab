"""The NumPy k-nearest-neighbour search (``geometry.neighbour_search``) against brute force."""

import numpy as np
import pytest

from pcfilter_lib.geometry import neighbour_search
from pcfilter_lib.geometry.neighbour_search import NeighbourIndex, nearest_neighbours, nearest_neighbours_float32


def brute_force(points, queries, k):
    d = np.linalg.norm(queries[:, None] - points[None], axis=-1)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(d, order, 1)


def test_every_point_finds_itself_then_its_nearest_as_brute_force_does():
    points = np.random.default_rng(0).normal(size=(500, 3)) * [10, 1, 0.1] + 1e3
    indices, distances = nearest_neighbours(points, 17)
    expected, expected_distances = brute_force(points, points, 17)
    assert indices.dtype == np.int64 and distances.dtype == np.float64 and indices.shape == (500, 17)
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(indices[:, 0], np.arange(500))


def test_an_index_answers_query_points_and_every_k():
    rng = np.random.default_rng(1)
    points, queries = rng.uniform(size=(300, 3)), rng.uniform(-0.2, 1.2, size=(40, 3))
    index = NeighbourIndex(points)
    assert len(index) == 300
    for k in (1, 5, 300):
        indices, distances = index.query(queries, k)
        expected, expected_distances = brute_force(points, queries, k)
        np.testing.assert_array_equal(indices, expected)
        np.testing.assert_allclose(distances, expected_distances, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(nearest_neighbours(points, 5, queries)[0], index.query(queries, 5)[0])
    empty = index.query(np.zeros((0, 3)), 4)
    assert empty[0].shape == empty[1].shape == (0, 4)


def test_bad_input_gets_a_one_line_reason():
    points = np.random.default_rng(2).uniform(size=(10, 3))
    with pytest.raises(ValueError, match="k must lie in"):
        nearest_neighbours(points, 11)
    with pytest.raises(ValueError, match="k must lie in"):
        nearest_neighbours(points, 0)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        nearest_neighbours(points[:, :2], 2)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        NeighbourIndex(points).query(points[0], 2)
    with pytest.raises(ValueError, match="NaN"):
        nearest_neighbours(np.r_[points, [[np.nan, 0, 0]]], 2)
    with pytest.raises(ValueError, match="empty"):
        NeighbourIndex(np.zeros((0, 3)))


def test_the_float32_search_finds_what_brute_force_finds():
    rng = np.random.default_rng(3)
    points = (rng.normal(size=(400, 3)) * [10, 1, 0.1]).astype(np.float32)
    indices, distances = nearest_neighbours_float32(points, 13)
    expected, expected_distances = brute_force(points.astype(np.float64), points.astype(np.float64), 13)
    assert indices.dtype == np.uint32 and distances.dtype == np.float32 and indices.shape == (400, 13)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(indices[:, 0], np.arange(400))
    # each neighbour lies at the distance reported (neighbours nearly as far may come in either order)
    true = np.linalg.norm(points[indices].astype(np.float64) - points[:, None], axis=-1)
    np.testing.assert_allclose(true, distances, rtol=1e-5, atol=1e-5)
    assert (indices == expected).mean() > 0.99
    queries = rng.uniform(-3, 3, size=(50, 3))
    found, found_distances = nearest_neighbours_float32(points, 1, queries)
    nearest, nearest_distances = brute_force(points.astype(np.float64), queries, 1)
    assert found.shape == (50, 1)
    np.testing.assert_array_equal(found, nearest)
    np.testing.assert_allclose(found_distances, nearest_distances, rtol=1e-5)
    # some of the cloud's own points, asked in the tree's order, get the answer of asking for their coordinates
    rows = rng.permutation(400)[:150]
    for mine, asked in zip(nearest_neighbours_float32(points, 13, rows=rows),
                           nearest_neighbours_float32(points, 13, points[rows]), strict=True):
        np.testing.assert_array_equal(mine, asked)


def test_the_float32_search_refuses_bad_input_in_one_line():
    points = np.random.default_rng(4).uniform(size=(10, 3))
    with pytest.raises(ValueError, match="k must lie in"):
        nearest_neighbours_float32(points, 11)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        nearest_neighbours_float32(points[:, :2], 2)
    with pytest.raises(ValueError, match="beyond float32's range"):
        nearest_neighbours_float32(np.r_[points, [[1e39, 0, 0]]], 2)
    with pytest.raises(ValueError, match="NaN"):
        nearest_neighbours_float32(points, 2, queries=[[np.nan, 0, 0]])
    with pytest.raises(ValueError, match="k must lie in"):
        nearest_neighbours_float32(np.zeros((0, 3)), 1)


@pytest.mark.parametrize(("setting", "threads"), [(None, -1), ("1", 1), ("3", 3), ("0", -1), ("many", -1)])
def test_the_search_follows_omp_num_threads_as_the_cluster_workers_set_it(setting, threads, monkeypatch):
    if setting is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", setting)
    assert neighbour_search.search_threads() == threads
