"""Segmentation from views fused on the measured points: which pixel of each view saw a point, the views'
probabilities gathered there and fused by mean or maximum, points no view saw left unlabelled and scored as
misses, and the whole run on a tiny scene set."""

import numpy as np
import pytest

from pcfilter_lib.data import scene_voxels as sv
from pcfilter_lib.experiments import scene_comparisons as sc
from pcfilter_lib.geometry.depth_fusion import View
from pcfilter_lib.labels import SEMANTIC_NAMES, SEMANTIC_SUPPORT, SEMANTIC_TABLE
from pcfilter_lib.models import scene_cnn
from pcfilter_lib.recipes import scene_images as si
from pcfilter_lib.recipes import scene_points as sp
from pcfilter_lib.recipes import scene_segmentation as seg

K = len(SEMANTIC_NAMES)
TABLE, SUPPORT = SEMANTIC_TABLE, SEMANTIC_SUPPORT  # two surface classes
TINY = seg.SceneRecipe("tiny", "scenes", n_scenes=3, resolution=16, n_views=2, scan_size=(48, 36), n_parts=(3, 4),
                       split=(2 / 3, 0.0, 1 / 3))


def probabilities(*rows):
    """(len(rows), K) probabilities with the given (class, probability) pairs, 0 elsewhere."""
    out = np.zeros((len(rows), K), np.float32)
    for r, pairs in enumerate(rows):
        for c, p in pairs:
            out[r, c] = p
    return out


def test_mean_and_max_fuse_known_views_and_leave_unseen_points_unlabelled():
    nan = np.full(K, np.nan, np.float32)
    a, b = TABLE, SUPPORT
    # Point 0: three views; the first is sure of a, the other two lean to b. Point 1: only view 1. Point 2: none.
    per_view = np.stack([
        probabilities([(a, 0.95), (b, 0.05)], [(a, 0.2), (b, 0.8)], [(a, 0.2), (b, 0.8)]),
        np.stack([nan, probabilities([(a, 0.3), (b, 0.7)])[0], nan]),
        np.stack([nan, nan, nan])])
    mean, top = si.fuse_views(per_view, "mean"), si.fuse_views(per_view, "max")
    assert np.allclose(mean[0, [a, b]], [0.45, 0.55]) and np.argmax(mean[0]) == b
    assert np.allclose(top[0, [a, b]], [0.95, 0.8]) and np.argmax(top[0]) == a  # the confident view wins
    assert np.allclose(mean[1, [a, b]], [0.3, 0.7]) and np.allclose(top[1], mean[1])
    assert np.isnan(mean[2]).all() and np.isnan(top[2]).all()  # unseen: no label, not background
    with pytest.raises(ValueError, match="unknown fusion"):
        si.fuse_views(per_view, "median")


def test_point_view_probabilities_gathers_each_views_pixel():
    rng = np.random.default_rng(0)
    views = rng.random((2, 3, 4, K)).astype(np.float32)
    pixels = np.array([[5, -1], [0, 11], [-1, -1]])
    out = si.point_view_probabilities(views, pixels)
    assert out.shape == (3, 2, K)
    assert np.array_equal(out[0, 0], views[0].reshape(-1, K)[5]) and np.array_equal(out[1, 1], views[1, 2, 3])
    assert np.isnan(out[0, 1]).all() and np.isnan(out[2]).all()
    with pytest.raises(ValueError, match="same V"):
        si.point_view_probabilities(views, pixels[:, :1])


def camera_views(depth, poses, voxel_size=0.01):
    """``load_scene_views``-like arrays of one scene from (V, H, W) depths and (V, 4, 4) poses."""
    intrinsics = np.array([[10.0, 0, 2.0], [0, 10.0, 2.0], [0, 0, 1]])
    return {"depth": np.asarray(depth, np.float32)[None], "poses": np.asarray(poses, np.float32)[None],
            "intrinsics": np.broadcast_to(intrinsics, (len(depth), 3, 3))[None], "voxel_size": np.array([voxel_size])}


def test_points_seen_needs_the_pixel_and_a_matching_depth():
    depth = np.ones((1, 4, 4))
    depth[0, 1, 1] = np.nan  # a pixel that measured nothing
    views = camera_views(depth, np.eye(4)[None])
    points = np.array([[0.0, 0.0, 1.0],  # on the measured surface, pixel (row 2, column 2)
                       [0.0, 0.0, 1.5],  # behind it: hidden
                       [0.0, 0.0, -1.0],  # behind the camera
                       [1.0, 0.0, 1.0],  # outside the image
                       [-0.1, -0.1, 1.0],  # in the pixel with no depth
                       [0.0, 0.0, 1.005]])  # within the tolerance of the surface
    assert si.points_seen(points, views, 0).ravel().tolist() == [10, -1, -1, -1, -1, 10]
    assert si.points_seen(points, views, 0, tolerance=1.0)[1, 0] == 10  # a looser tolerance lets it through
    # The view and pixel that measured a point count as seeing it whatever the projection says.
    forced = si.points_seen(points, views, 0, view=np.zeros(6, int), pixel=np.arange(6))
    assert forced.ravel().tolist() == list(range(6))


def test_a_views_own_points_project_back_to_their_pixels():
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.8, 1.2, (2, 4, 4))
    turn = np.eye(4)
    turn[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    turn[:3, 3] = [0.3, -0.2, 0.1]
    views = camera_views(depth, np.stack([np.eye(4), turn]))
    for v in range(2):
        xyz = View.from_depth(depth[v], views["intrinsics"][0, v], views["poses"][0, v]).world_xyz()
        assert np.array_equal(si.points_seen(xyz.reshape(-1, 3), views, 0)[:, v], np.arange(16))


def test_fused_point_scores_count_unlabelled_points_as_misses():
    confusion = np.zeros((K, K), np.int64)
    confusion[TABLE, TABLE], confusion[TABLE, SUPPORT], confusion[SUPPORT, SUPPORT] = 6, 2, 4
    unseen = np.zeros(K, np.int64)
    unseen[SUPPORT] = 4
    scores = sc.fused_point_scores(confusion, unseen)
    assert scores["iou"] == pytest.approx({SEMANTIC_NAMES[TABLE]: 6 / 8, SEMANTIC_NAMES[SUPPORT]: 4 / 10})
    assert scores["mean_iou"] == pytest.approx((6 / 8 + 4 / 10) / 2)
    assert scores["labelled"] == pytest.approx(12 / 16) and scores["points"] == 16
    assert scores["accuracy"] == pytest.approx(10 / 16)
    with pytest.raises(ValueError, match="unseen counts"):
        sc.fused_point_scores(confusion, unseen[:3])


@pytest.fixture(scope="module")
def scene_set(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    folder = seg.ensure_scene_grids(data, TINY)
    return data, folder


def test_scene_points_know_the_view_and_pixel_that_measured_them(scene_set):
    _, folder = scene_set
    views = sv.load_scene_views(folder, "test")
    for scene in sp.scene_points(views):
        for v in range(TINY.n_views):
            mine = scene.view == v
            xyz = sv.scene_view(views, scene.index, v).world_xyz().reshape(-1, 3)
            assert np.array_equal(scene.points[mine], xyz[scene.pixel[mine]])
            assert np.array_equal(scene.classes[mine], views["semantic"][scene.index, v].ravel()[scene.pixel[mine]])


def test_run_view_fusion_scores_every_measured_point(scene_set):
    data, folder = scene_set
    model = scene_cnn.build_image_network(K, 3, (4, 8), 2)  # untrained: the bookkeeping is under test
    report = sc.run_view_fusion(TINY, data, model)
    scenes = sp.scene_points(sv.load_scene_views(folder, "test"))
    assert report["views"] == TINY.n_views and report["points"] == sum(len(s.points) for s in scenes)
    assert set(report["seen_by"]) == {1, 2} and sum(report["seen_by"].values()) == pytest.approx(1.0)
    assert 0 <= report["agree_right"] + report["agree_wrong"] <= 1
    for name in sc.VIEW_FUSIONS:
        assert report[name]["points"] == report["points"]
    assert report["measuring"]["labelled"] == report["mean"]["labelled"] == report["max"]["labelled"] == 1.0
    # The first view alone sees only some of the points the second one measured.
    assert report["first"]["labelled"] < 1.0
    assert report["first"]["labelled"] >= report["seen_by"][2]
