"""SOR and ROR in tiles keep exactly the points Open3D keeps on the whole cloud.

The clouds are small (a few thousand points) and cut into tiles of a few hundred, so that most points
lie near a tile's edge: clusters sit on the tiles' corners and edges, specks float high above the
ground (their neighbours lie beyond the first halo), a sparse strip has points metres apart, and some
points are repeated (a point repeated at least k times has mean distance 0, which Open3D removes).
"""

import numpy as np
import open3d as o3d
import pytest

from pcfilter_lib import cli
from pcfilter_lib.filters import baselines, classical_tiles, tile_store
from pcfilter_lib.io.clouds import CloudWriter

TILE = 600


def awkward_cloud(seed: int) -> np.ndarray:
    """About 5 000 points over a 10 x 10 box: a ground patch, clusters on the tiles' corners and
    edges, specks high above, a sparse strip, repeated points and a few NaN rows."""
    rng = np.random.default_rng(seed)
    ground = np.c_[rng.uniform(0, 10, (3500, 2)) * [1, 0.6], rng.normal(0, 0.01, 3500)]
    corners = np.array([[0, 0, 0], [10, 10, 0]], float)
    specks = np.c_[rng.uniform(1, 9, (6, 2)) * [1, 0.6], rng.uniform(2, 5, 6)]
    sparse = np.c_[np.linspace(0.5, 9.5, 8), rng.uniform(7, 9.5, 8), np.zeros(8)]
    count = 3500 + 2 + 6 + 8 + 36 * 25 + 30 + 3 * 40
    grid = tile_store.TileGrid.cover(np.zeros(3), np.array([10, 10, 0.05]), count, TILE)
    clusters = []
    for i in range(1, grid.shape[0]):
        for j in range(1, min(grid.shape[1], 7)):
            centre = np.r_[i * grid.size, j * grid.size][[grid.axes.index(0), grid.axes.index(1)]]
            if centre[1] > 6:
                continue
            points = np.c_[centre + rng.normal(0, 0.05, (25, 2)), rng.normal(0, 0.02, 25)]
            points[0, :2] = centre  # one on the corner itself, one on an edge
            points[1, 0] = centre[0]
            clusters.append(points)
    clusters = np.concatenate(clusters)[:36 * 25]
    repeated = np.concatenate([np.repeat(ground[:1], 30, axis=0), np.repeat(ground[1:4], 40, axis=0)])
    cloud = np.concatenate([ground, corners, specks, sparse, clusters, repeated])
    cloud = cloud[rng.permutation(len(cloud))]
    cloud[[7, 70]] = np.nan
    return cloud + [1000.0, -250.0, 3.0]  # away from the origin, as site coordinates are


def chunks_of(points, size=1500):
    return lambda: (points[i:i + size] for i in range(0, len(points), size))


def open3d_keep(points, method, **params):
    """Open3D's decisions on the whole cloud (NaN rows: False), through the project's baselines."""
    valid = np.isfinite(points).all(axis=1)
    return baselines.keep_mask({"xyz": points[None], "valid": valid[None]}, method, **params)[0]


def tiled_keep(points, method, tmp_path, tile_points=TILE, **params):
    scan_filter = baselines.BaselineFilter(method, method, params)
    done = []
    keep = classical_tiles.tiled_classical_keep(scan_filter, chunks_of(points), tile_points, tmp_path, done.append)
    assert sum(done) == len(points) and len(done) > 5  # the cloud went in tiles
    return keep


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sor_in_tiles_keeps_what_open3d_keeps_on_the_whole_cloud(seed, tmp_path):
    cloud = awkward_cloud(seed)
    for nb_neighbors, std_ratio in ((20, 2.0), (10, 0.5), (40, 1.0), (3, 3.0)):
        whole = open3d_keep(cloud, "sor", nb_neighbors=nb_neighbors, std_ratio=std_ratio)
        tiled = tiled_keep(cloud, "sor", tmp_path, nb_neighbors=nb_neighbors, std_ratio=std_ratio)
        assert tiled.dtype == np.float32
        np.testing.assert_array_equal(tiled.astype(bool), whole, err_msg=f"k={nb_neighbors}, ratio={std_ratio}")
        assert not tiled[[7, 70]].any()
        if nb_neighbors <= 30:  # the point repeated 30 times has mean distance 0: Open3D removes it
            assert (~whole[np.isfinite(cloud).all(1)]).sum() >= 30


@pytest.mark.parametrize("seed", [0, 1])
def test_ror_in_tiles_keeps_what_open3d_keeps_on_the_whole_cloud(seed, tmp_path):
    cloud = awkward_cloud(seed)
    finite = cloud[np.isfinite(cloud).all(1)]
    # Radii equal to the distance between two points: Open3D counts only points strictly closer.
    nearest = np.argsort(np.sum((finite - finite[100]) ** 2, axis=1))[8]
    exact = float(np.sqrt(np.sum((finite[100] - finite[nearest]) ** 2)))
    for nb_points, radius in ((4, 0.1), (16, 0.2), (1, 0.05), (8, exact), (7, exact)):
        whole = open3d_keep(cloud, "ror", nb_points=nb_points, radius=radius)
        tiled = tiled_keep(cloud, "ror", tmp_path, nb_points=nb_points, radius=radius)
        np.testing.assert_array_equal(tiled.astype(bool), whole, err_msg=f"nb_points={nb_points}, radius={radius}")


def test_the_halo_grows_for_specks_and_sparse_points(tmp_path):
    cloud = awkward_cloud(0)
    finite = cloud[np.isfinite(cloud).all(1)]
    grid = tile_store.TileGrid.cover(finite.min(0), finite.max(0), len(finite), TILE)
    store = tile_store.TileStore(tmp_path, grid)
    store.add(finite, np.arange(len(finite)))
    loads = []
    load = store.load
    store.load = lambda cell, margin, extra=(): loads.append((cell, margin, len(extra))) or load(cell, margin, extra)
    means = np.empty(len(finite))
    for cell in np.flatnonzero(store.counts):
        index, values = classical_tiles.sor_tile(store, int(cell), 20)
        means[index] = values
    cells = [cell for cell, _, _ in loads]
    assert any(extra for _, _, extra in loads)  # some specks got boxes of their own
    assert len(cells) > len(set(cells))  # some tiles were loaded again with a wider halo
    # The means are Open3D's: its k-d tree's squared distances, summed from the nearest in order.
    tree = o3d.geometry.KDTreeFlann(o3d.geometry.PointCloud(o3d.utility.Vector3dVector(finite)))
    for p in np.random.default_rng(0).choice(len(finite), 300, replace=False):
        _, _, squared = tree.search_knn_vector_3d(finite[p], 20)
        total = 0.0
        for distance in np.sqrt(np.asarray(squared)):
            total += distance
        assert means[p] == total / 20


def test_thresholds_that_fall_on_a_point_s_mean_decide_as_open3d(tmp_path):
    """The std ratio is set so that the threshold lands within a rounding of a point's own mean: only
    the same means, sums and order of operations as Open3D's give the same decision on that point."""
    cloud = awkward_cloud(3)
    finite = cloud[np.isfinite(cloud).all(1)]
    grid = tile_store.TileGrid.cover(finite.min(0), finite.max(0), len(finite), TILE)
    store = tile_store.TileStore(tmp_path, grid)
    store.add(finite, np.arange(len(finite)))
    means = np.empty(len(finite))
    for cell in np.flatnonzero(store.counts):
        index, values = classical_tiles.sor_tile(store, int(cell), 10)
        means[index] = values
    positive = means[means > 0]
    mean = positive.sum() / len(means)
    std = np.sqrt(np.sum((positive - mean) ** 2) / (len(means) - 1))
    above = np.sort(means[means > mean])
    for target in above[np.linspace(0, len(above) - 1, 25).astype(int)]:
        for ratio in ((target - mean) / std * (1 + e) for e in (-1e-15, 0, 1e-15)):
            if ratio <= 0:
                continue
            threshold = classical_tiles.sor_threshold(lambda: iter([means[:2000], means[2000:]]), ratio)
            whole = open3d_keep(finite, "sor", nb_neighbors=10, std_ratio=ratio)
            np.testing.assert_array_equal(classical_tiles.sor_keep(means, threshold), whole)


def test_ror_scaled_by_the_cloud_s_spacing_and_one_tile_match_the_whole_cloud(tmp_path):
    cloud = awkward_cloud(4)
    scan_filter = baselines.BaselineFilter("ror", "ror", {"nb_points": 6, "radius": 2.0}, reference_spacing=1.0)
    scan = {"xyz": cloud[None], "valid": np.isfinite(cloud).all(1)[None]}
    whole = scan_filter.keep_mask(scan)[0]
    tiled = classical_tiles.tiled_classical_keep(scan_filter, chunks_of(cloud), TILE, tmp_path)
    np.testing.assert_array_equal(tiled.astype(bool), whole)
    # a cloud of at most one tile is filtered at once, by the same filter
    sor = baselines.BaselineFilter("sor", "sor", {})
    np.testing.assert_array_equal(classical_tiles.tiled_classical_keep(sor, chunks_of(cloud), len(cloud)),
                                  sor.keep_mask(scan)[0].astype(np.float32))


def test_only_sor_and_ror_run_in_tiles():
    with pytest.raises(ValueError, match="morph cannot run in tiles"):
        classical_tiles.tiled_classical_keep(baselines.BaselineFilter("morph", "morph"), chunks_of(np.zeros((9, 3))))


@pytest.mark.parametrize("suffix, parts, options", [
    (".xyz", ("kept.ply", "removed.xyz", "scores.ply"), []),
    (".ply", ("kept.pcd", "removed.ply", "scores.ply"), []),
    (".ply", ("kept.las", "removed.laz", "scores.las"), ["--classify"])])
def test_pcfilter_filter_writes_the_same_files_in_tiles_and_in_one_pass(suffix, parts, options, tmp_path, capsys,
                                                                      monkeypatch):
    calls, tiled = [], classical_tiles.tiled_classical_keep
    monkeypatch.setattr(classical_tiles, "tiled_classical_keep", lambda *a, **k: calls.append(1) or tiled(*a, **k))
    cloud = awkward_cloud(5)
    precision = np.float64 if suffix == ".xyz" else np.float32
    with CloudWriter(tmp_path / f"cloud{suffix}", len(cloud), precision) as writer:
        writer.write(cloud.astype(precision), np.arange(len(cloud), dtype=np.float32) % 7)
    for method in ("sor", "ror"):
        outputs, lines = [], []
        for name, tile in (("whole", []), ("tiled", ["--tile-points", "1000"])):
            calls.clear()
            out = [tmp_path / f"{method}_{name}_{part}" for part in parts]
            assert cli.main(["filter", str(tmp_path / f"cloud{suffix}"), "-o", str(out[0]), "--removed", str(out[1]),
                             "--scores", str(out[2]), "--method", method, "--quiet", *tile, *options]) == 0
            assert len(calls) == (name == "tiled")  # the one-pass run reads the cloud whole, as before
            outputs.append([path.read_bytes() for path in out])
            lines.append(capsys.readouterr().out.replace(f"_{name}_", "_"))
        assert outputs[0] == outputs[1] and lines[0] == lines[1]
        assert f"{method}: kept" in lines[0] and "dropped 2 points with NaN" in lines[0]
    if parts[0].endswith(".las"):  # a LAS input is always streamed: in tiles, or whole when it fits one tile
        source, outputs = tmp_path / "sor_whole_kept.las", []
        calls.clear()
        for tile in ("1000", "5000000"):
            out = tmp_path / f"again_{tile}.laz"
            assert cli.main(["filter", str(source), "-o", str(out), "--method", "sor", "--quiet", "--tile-points",
                             tile]) == 0
            outputs.append(out.read_bytes())
        assert outputs[0] == outputs[1] and len(calls) == 2
