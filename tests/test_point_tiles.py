"""The point filter in tiles decides as the in-memory filter does, and reads every neighbourhood whole.

The cloud is two simulated 120x90 scans side by side (about 19 000 points) cut into tiles of a few
thousand points, so that most points lie near a tile's edge: the same logic as a 1M-point cloud in
tiles of 250 000 points, in seconds instead of minutes.
"""

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

from pcfilter_lib import filters
from pcfilter_lib.filters import point_tiles, tile_store
from pcfilter_lib.geometry import point_features
from pcfilter_lib.simulate.dataset import make_scan
from pcfilter_lib.simulate.scanner import ScannerConfig

needs_weights = pytest.mark.skipif(not filters.SHIPPED_POINT_MODEL.is_file(),
                                   reason="pcfilter_lib/weights/pointnet_filter.keras is missing")


@pytest.fixture(scope="module")
def cloud():
    parts = []
    for index in range(2):
        scan = make_scan(0, index, ScannerConfig(width=120, height=90))
        points = np.asarray(scan["xyz"], np.float64)[np.asarray(scan["valid"], bool)]
        parts.append(points + [index * 1.1 * np.ptp(points[:, 0]), 0, 0])
    points = np.concatenate(parts)
    points[[5, 500]] = np.nan  # points without coordinates get P(keep) 0 in both
    return points


def chunks_of(points, size=7000):
    return lambda: (points[i:i + size] for i in range(0, len(points), size))


@needs_weights
def test_tiles_decide_as_the_whole_cloud_does(cloud):
    point_filter = filters.point_filter()
    whole = point_filter.keep_probability_points(cloud)
    cells = []
    tiled = point_tiles.tiled_keep_probability(point_filter, chunks_of(cloud), tile_points=5000, progress=cells.append)
    assert len(cells) >= 3
    differ = (whole >= point_filter.threshold) != (tiled >= point_filter.threshold)
    assert differ.mean() <= 1e-4, f"{differ.sum()} of {len(cloud)} decisions differ"
    np.testing.assert_allclose(tiled, whole, atol=1e-5)  # the same patches and features: float noise only
    assert tiled[[5, 500]].tolist() == [0, 0]
    # one tile is the in-memory filter itself
    np.testing.assert_array_equal(point_tiles.tiled_keep_probability(point_filter, chunks_of(cloud), len(cloud)), whole)


def test_a_tile_with_its_halo_has_the_features_of_the_whole_cloud(cloud, tmp_path):
    finite = cloud[np.isfinite(cloud).all(1)]
    hood = point_features.neighbourhoods(finite)
    whole = point_features.local_statistics(hood)
    grid = tile_store.TileGrid.cover(finite.min(0), finite.max(0), len(finite), 3000)
    store = tile_store.TileStore(tmp_path, grid)
    store.add(finite, np.arange(len(finite)))
    assert store.counts.sum() == len(finite) and (store.counts > 0).sum() > 4
    cell = int(np.argmax(store.counts))
    centre = tile_store.cloud_centre(store, finite.min(0), finite.max(0))
    assert centre.tolist() == np.median(finite, axis=0).tolist()
    assert point_tiles._cloud_spacing(store, centre) == hood.spacing
    index, values = point_tiles._filter_cell(_StatisticsOnly(), store, cell, hood.spacing, centre)
    assert len(index) == store.counts[cell] and len(index) < len(finite) / 2
    np.testing.assert_allclose(values, whole[index], rtol=1e-5, atol=1e-6)


class _StatisticsOnly:
    """A stand-in for the network's reading: each point's own local statistics, so that the tile's
    features can be compared with the whole cloud's."""

    neighbours, patch_size = point_features.NEIGHBOURS, 256

    def hood_probability(self, hood, patches, held=None):
        return point_features.local_statistics(hood)


def test_the_median_is_found_exactly_in_passes_over_the_cells(tmp_path, monkeypatch):
    monkeypatch.setattr(tile_store, "SELECT_LIMIT", 50)  # many narrowing passes on a small cloud
    rng = np.random.default_rng(1)
    for points in (rng.normal(size=(1001, 3)) * [1, 1e-9, 1e6], np.round(rng.normal(size=(2000, 3)), 1)):
        points[7] = [1e30, -1e30, 0]  # one point very far away
        grid = tile_store.TileGrid.cover(points.min(0), points.max(0), len(points), 300)
        store = tile_store.TileStore(tmp_path / str(len(points)), grid)
        store.folder.mkdir()
        store.add(points, np.arange(len(points)))
        centre = tile_store.cloud_centre(store, points.min(0), points.max(0))
        assert centre.tolist() == np.median(points, axis=0).tolist()


def test_ranks_are_selected_exactly_whatever_the_column_rank_and_range(monkeypatch):
    monkeypatch.setattr(tile_store, "SELECT_LIMIT", 40)  # several narrowing passes
    rng = np.random.default_rng(3)
    blocks = [np.round(rng.normal(size=(n, 2)), 2) for n in (300, 1, 0, 700)]  # with ties and an empty block
    values = np.concatenate(blocks)
    wanted = [(c, r, values[:, c].min(), values[:, c].max()) for c in (0, 1) for r in (0, 1, 499, 500, 1000)]
    assert tile_store.select_ranks(lambda: iter(blocks), wanted) == [float(np.sort(values[:, c])[r])
                                                                     for c, r, _, _ in wanted]
    column = [b[:, 0] for b in blocks]  # one column as (n,) blocks; a rank among the values in [-1, 1]
    inside = np.sort(values[:, 0][(values[:, 0] >= -1) & (values[:, 0] <= 1)])
    assert tile_store.select_ranks(lambda: iter(column), [(0, 3, -1, 1)]) == [float(inside[3])]


def test_patches_cover_every_point_from_draws_that_follow_each_point():
    points = np.random.default_rng(2).random((3000, 3)) * [40, 40, 0.1]
    hood = point_features.neighbourhoods(points)
    index = np.arange(len(points))
    cover = filters.points.cover_patches(hood, index, 64)
    assert cover.patches.shape[1] == 64 and set(np.unique(cover.patches)) == set(index) and cover.exact.all()
    assert (cover.patches[:, 0] == cover.seeds).all()
    moved = point_features.neighbourhoods(points @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]]).T * 3 + 100)
    np.testing.assert_array_equal(filters.points.cover_patches(moved, index, 64).seeds, cover.seeds)
    # the same points under other indices get other seeds
    assert not np.array_equal(filters.points.cover_patches(hood, index + 1, 64).seeds, cover.seeds)
    # on a part of the cloud, the points near its edge are not known to have the whole cloud's patches
    distance = np.linalg.norm(hood.points[cover.patches] - hood.points[cover.seeds][:, None], axis=2)
    assert (cover.held == (distance <= filters.points.HOLD)).all()
    room = (40 - points[:, 0]) / hood.spacing
    part = filters.points.cover_patches(hood, index, 64, room=room)
    assert not part.exact[room < filters.points.HOLD].any() and part.exact[room > 3 * filters.points.HOLD].all()


@pytest.mark.skipif(not filters.SHIPPED_NEIGHBOUR_MODEL.is_file(), reason="the shipped neighbour filter is missing")
def test_the_neighbour_filter_in_tiles_gives_the_whole_cloud_s_probabilities_bit_for_bit(cloud):
    from pcfilter_lib.filters.neighbour_tiles import tiled_neighbour_probability

    scan_filter = filters.neighbour_filter()
    finite = cloud[np.isfinite(cloud).all(1)]
    width = np.ptp(finite, axis=0).max()
    lone = np.median(finite, axis=0) + [[0.1 * width, 0, 0.15 * width], [-0.2 * width, 0.05 * width, 0.1 * width]]
    points = np.concatenate([cloud, lone])  # two specks high above: their neighbours lie in other tiles
    whole = scan_filter.keep_probability_points(points)
    cells = []
    tiled = tiled_neighbour_probability(scan_filter, chunks_of(points), tile_points=3000, progress=cells.append,
                                        whole_points=3000)
    assert len(cells) >= 5 and sum(cells) == len(points)
    np.testing.assert_array_equal(tiled, whole)
    assert tiled[[5, 500]].tolist() == [0, 0] and (tiled[-2:] < scan_filter.threshold).all()


@pytest.mark.skipif(not filters.SHIPPED_NEIGHBOUR_MODEL.is_file(), reason="the shipped neighbour filter is missing")
def test_pcfilter_filter_writes_the_same_files_in_tiles_and_in_one_pass(cloud, tmp_path, capsys):
    from pcfilter_lib.cli import main
    from pcfilter_lib.io.clouds import CloudWriter

    with CloudWriter(tmp_path / "cloud.xyz", len(cloud), np.float64) as writer:
        writer.write(cloud)
    outputs = []
    for name, tile in (("whole", []), ("tiled", ["--tile-points", "4000"])):
        out = [tmp_path / f"{name}_{part}" for part in ("kept.ply", "removed.xyz", "scores.ply")]
        status = main(["filter", str(tmp_path / "cloud.xyz"), "-o", str(out[0]), "--removed", str(out[1]),
                       "--scores", str(out[2]), "--model", "neighbours", "--quiet", *tile])
        assert status == 0, capsys.readouterr().err
        outputs.append([path.read_bytes() for path in out])
    assert outputs[0] == outputs[1]


def test_a_store_sorted_into_blocks_loads_the_points_it_loaded_before(cloud, tmp_path):
    finite = cloud[np.isfinite(cloud).all(1)]
    count, _, low, high = tile_store.cloud_bounds(chunks_of(finite))
    grid = tile_store.TileGrid.cover(low, high, count, 3000)
    whole = tile_store.TileStore(tmp_path / "whole", grid)
    (tmp_path / "whole").mkdir()
    whole.add(finite, np.arange(len(finite)))
    blocked, _ = tile_store.store_cloud(tmp_path, chunks_of(finite), grid)
    assert blocked.blocks and not whole.blocks
    spacing = point_features.point_spacing(finite)
    far = finite[0, list(grid.axes)]
    for cell in np.flatnonzero(blocked.counts)[:4]:
        for margin, extra in ((3 * spacing, []), (40 * spacing, [(far - 5 * spacing, far + 5 * spacing)])):
            for got, expected in zip(blocked.load(int(cell), margin, extra), whole.load(int(cell), margin, extra),
                                     strict=True):
                np.testing.assert_array_equal(got, expected)


@pytest.mark.skipif(not filters.SHIPPED_NEIGHBOUR_MODEL.is_file(), reason="the shipped neighbour filter is missing")
def test_the_neighbour_networks_give_a_row_the_same_bits_in_any_batch():
    network = filters.neighbour_filter().networks[0]
    rows = np.random.default_rng(0).normal(size=(5000, network.features)).astype(np.float32)
    whole = network(rows)
    for start, stop in ((0, 1), (3, 104), (999, 5000), (4095, 4999)):
        np.testing.assert_array_equal(network(rows[start:stop]), whole[start:stop])
