"""Scene grids: scans of bins fused into a TSDF with a ternary state and a semantic class per voxel."""

import numpy as np
import pytest

from pcfilter_lib.data import scene_voxels as sv
from pcfilter_lib.geometry.depth_fusion import FREE, OCCUPIED, UNKNOWN, View, pixel_voxels
from pcfilter_lib.io.files import read_manifest
from pcfilter_lib.labels import KEEP, SEMANTIC_BACKGROUND, SEMANTIC_CODES
from pcfilter_lib.simulate.measurement import simulate_view, viewpoint
from pcfilter_lib.simulate.scanner import ScannerConfig
from pcfilter_lib.simulate.scene import make_scene

SMALL = ScannerConfig(width=64, height=48)
PARTS = (3, 4)
RES = 24


@pytest.fixture(scope="module")
def two_views():
    return sv.make_scene_grid(4, 0, SMALL, resolution=RES, n_views=2, n_parts=PARTS)


def test_arrays_and_grid(two_views):
    g = two_views
    assert g["tsdf"].shape == g["state"].shape == g["labels"].shape == g["instance"].shape == (RES,) * 3
    assert g["tsdf"].dtype == np.float16 and np.abs(g["tsdf"].astype(np.float32)).max() <= 1
    assert set(np.unique(g["state"])) <= {FREE, OCCUPIED, UNKNOWN}
    assert g["poses"].shape == (2, 4, 4)
    assert np.isclose(g["voxel_size"] * RES, sv.GRID_SIDE)
    assert (g["labels"] == SEMANTIC_CODES["support"]).any() and (g["labels"] > SEMANTIC_CODES["support"]).any()
    assert np.array_equal(g["labels"] == SEMANTIC_BACKGROUND, g["instance"] == 255)


def test_labels_are_present_where_the_surface_is(two_views):
    # The true surface point of every correctly measured pixel of the first view lies in a labelled voxel
    # of that pixel's class.
    scene = make_scene(np.random.default_rng([4, 0]), n_parts=PARTS)
    scan = simulate_view(scene, SMALL, np.random.default_rng([4, 0, 0]), viewpoint())
    good = scan["label"] == KEEP
    pose = scan["pose"].astype(np.float64)
    world = scan["clean_xyz"][good] @ pose[:3, :3].T + pose[:3, 3]
    grid = sv.scene_grid(RES)
    ijk, inside = grid.index(world)
    voxel_labels = two_views["labels"][tuple(ijk[inside].T)]
    assert (voxel_labels != SEMANTIC_BACKGROUND).mean() > 0.995
    pixel_classes = scene.surface_classes()[scan["surface"][good][inside]]
    assert (voxel_labels == pixel_classes).mean() > 0.8  # where parts touch the bin, the part wins the voxel


def test_known_and_unknown_follow_the_views(two_views):
    one = sv.make_scene_grid(4, 0, SMALL, resolution=RES, n_views=1, n_parts=PARTS)
    known_one, known_two = one["state"] != UNKNOWN, two_views["state"] != UNKNOWN
    assert np.array_equal(one["labels"], two_views["labels"])  # the same scene
    assert not (known_one & ~known_two).any() and known_two.sum() > known_one.sum()  # a second view only adds
    # Every measured point of the first view falls in an occupied voxel.
    scene = make_scene(np.random.default_rng([4, 0]), n_parts=PARTS)
    scan = simulate_view(scene, SMALL, np.random.default_rng([4, 0, 0]), viewpoint())
    pose = scan["pose"].astype(np.float64)
    world = scan["xyz"][scan["valid"]] @ pose[:3, :3].T + pose[:3, 3]
    ijk, inside = sv.scene_grid(RES).index(world)
    assert (one["state"][tuple(ijk[inside].T)] == OCCUPIED).all()
    # Under the table nothing is seen from above (but for a ray whose false, too deep point was measured);
    # free space lies in front of the surface.
    assert (one["state"][:, :, :sv.FLOOR_VOXELS - 1] == FREE).mean() < 0.01
    tsdf = two_views["tsdf"].astype(np.float32)
    assert (tsdf[two_views["state"] == FREE] > 0).mean() > 0.95
    assert (tsdf[~known_two] == 0).mean() > 0.5


def test_resuming_an_interrupted_run_gives_the_same_files(tmp_path, monkeypatch):
    options = dict(resolution=16, n_views=1, split=(0.5, 0.0, 0.5), n_parts=(1, 2))
    whole = sv.write_scene_grids(tmp_path / "whole", 3, 7, SMALL, **options)
    make = sv.make_scene_grid

    def interrupted(seed, index, *args):
        if index == 1:
            raise KeyboardInterrupt
        return make(seed, index, *args)

    monkeypatch.setattr(sv, "make_scene_grid", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sv.write_scene_grids(tmp_path / "resumed", 3, 7, SMALL, **options)
    assert list(read_manifest(tmp_path / "resumed")["files"]) == ["train/scene_00000.npz"]
    monkeypatch.setattr(sv, "make_scene_grid", make)
    sv.write_scene_grids(tmp_path / "resumed", 3, 7, SMALL, **options)
    assert read_manifest(tmp_path / "resumed") == read_manifest(whole)
    for name in read_manifest(whole)["files"]:
        assert (whole / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes()
    with pytest.raises(ValueError, match="holds no scenes"):
        sv.load_scene_grids(whole, "val")
    test = sv.load_scene_grids(whole, "test")
    assert test["tsdf"].shape == (2, 16, 16, 16) and test["tsdf"].dtype == np.float32
    # The test split alone first (as where every network is shipped), then the rest: the same set.
    part = sv.write_scene_grids(tmp_path / "part", 3, 7, SMALL, **options, splits=("test",))
    assert sorted(read_manifest(part)["files"]) == ["test/scene_00001.npz", "test/scene_00002.npz"]
    with pytest.raises(ValueError, match="holds 0 of its 1 scenes"):
        sv.load_scene_grids(part, "train")
    sv.write_scene_grids(part, 3, 7, SMALL, **options, splits=("train",))
    assert read_manifest(part)["files"] == read_manifest(whole)["files"]
    with pytest.raises(ValueError, match="unknown split 'tests'"):
        sv.write_scene_grids(part, 3, 7, SMALL, **options, splits=("tests",))


def test_features_and_chunks(two_views):
    features = sv.scene_features(two_views["tsdf"], two_views["state"])
    assert features.shape == (RES, RES, RES, 3)
    assert np.array_equal(features[..., 2] == 1, two_views["state"] == OCCUPIED)
    labels = two_views["labels"][None]
    rng = np.random.default_rng(0)
    x, y = sv.random_chunks(features[None], labels, 8, 5, rng)
    assert x.shape == (5, 8, 8, 8, 3) and y.shape == (5, 8, 8, 8)
    xc, yc = sv.random_columns(features[None], labels, 5, 4, rng)
    assert xc.shape == (4, 5, 5, RES, 3) and yc.shape == (4, RES)
    windows = sv.column_windows(features, 5)
    assert windows.shape == (RES, RES, 5, 5, RES, 3)
    i, j = 3, 17
    assert np.array_equal(windows[i, j], sv.column_chunk(features, i, j, 5))
    assert np.array_equal(windows[i, j][2, 2], features[i, j])
    assert np.array_equal(sv.column_chunk(features, 0, 0, 5)[:2], np.zeros((2, 5, RES, 3)))  # padded: unknown


def test_bad_input(tmp_path, two_views):
    with pytest.raises(ValueError, match="at least one view"):
        sv.make_scene_grid(0, 0, SMALL, resolution=RES, n_views=0)
    with pytest.raises(ValueError, match="at least 8 voxels"):
        sv.scene_grid(4)
    with pytest.raises(ValueError, match="number of scenes"):
        sv.write_scene_grids(tmp_path / "x", 0, 0, SMALL)
    with pytest.raises(ValueError, match="parts per bin"):
        sv.write_scene_grids(tmp_path / "x", 2, 0, SMALL, n_parts=(3, 1))
    with pytest.raises(ValueError, match="holds no scene grids"):
        sv.load_scene_grids(tmp_path, "train")
    with pytest.raises(ValueError, match="positive odd"):
        sv.column_windows(np.zeros((4, 4, 4, 3)), 4)
    with pytest.raises(ValueError, match="same shape"):
        sv.scene_features(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="size <="):
        sv.random_chunks(np.zeros((1, 4, 4, 4, 3)), np.zeros((1, 4, 4, 4)), 5, 1, np.random.default_rng(0))


def test_views_are_kept_and_give_back_the_points(two_views):
    # The stored depth, intrinsics and pose give back the scanner's measured points, and the pixels'
    # classes agree with the voxels their points fall in.
    scene = make_scene(np.random.default_rng([4, 0]), n_parts=PARTS)
    scan = simulate_view(scene, SMALL, np.random.default_rng([4, 0, 0]), viewpoint())
    g = two_views
    assert g["view_depth"].shape == g["view_intensity"].shape == g["view_semantic"].shape == (2, 48, 64)
    view = View.from_depth(g["view_depth"][0], g["view_intrinsics"][0], g["poses"][0])
    assert np.array_equal(np.isfinite(view.xyz[..., 2]), scan["valid"])
    assert np.allclose(view.xyz[scan["valid"]], scan["xyz"][scan["valid"]], atol=1e-6)
    grid = sv.scene_grid(RES)
    voxels = pixel_voxels(view, grid)
    hit = voxels >= 0
    assert hit[scan["valid"]].mean() > 0.95 and not hit[~scan["valid"]].any()
    assert (g["state"].ravel()[voxels[hit]] == OCCUPIED).all()
    assert (g["labels"].ravel()[voxels[hit]] == g["view_semantic"][0][hit]).mean() > 0.8


def test_load_scene_views(tmp_path):
    folder = sv.write_scene_grids(tmp_path / "scenes", 2, 4, SMALL, resolution=RES, n_views=2, split=(0.5, 0, 0.5),
                                  n_parts=PARTS)
    views = sv.load_scene_views(folder, "test")
    assert views["depth"].shape == (1, 2, 48, 64) and views["intensity"].dtype == np.float32
    assert sv.scene_grid_of(views, 0) == sv.scene_grid(RES)
    one = sv.scene_view(views, 0, 1)
    assert one.xyz.shape == (48, 64, 3) and np.isfinite(one.xyz).any()
    with pytest.raises(ValueError, match="no scene grids"):
        sv.load_scene_views(tmp_path, "test")


def test_first_views(tmp_path):
    folder = sv.write_scene_grids(tmp_path / "scenes", 2, 4, SMALL, resolution=RES, n_views=2, split=(0.5, 0, 0.5),
                                  n_parts=PARTS)
    views = sv.load_scene_views(folder, "train")
    one = sv.first_views(views, 1)
    assert one["depth"].shape == (1, 1, 48, 64) and one["poses"].shape == (1, 1, 4, 4)
    assert np.array_equal(one["depth"][:, 0], views["depth"][:, 0], equal_nan=True)
    with pytest.raises(ValueError, match="choose 1 to 2"):
        sv.first_views(views, 3)
