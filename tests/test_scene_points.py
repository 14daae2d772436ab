"""The point network on scanned scenes: the scenes' measured points and clouds, the voxel networks'
predictions carried to the points, a real training, and scores on every measured point."""

import json
from dataclasses import replace

import keras
import numpy as np
import pytest

from pcfilter_lib.data import scene_voxels as sv
from pcfilter_lib.experiments.scene_comparisons import run_scene_points
from pcfilter_lib.geometry.depth_fusion import pixel_voxels
from pcfilter_lib.geometry.voxel_grids import Grid
from pcfilter_lib.labels import SEMANTIC_BACKGROUND, SEMANTIC_SUPPORT
from pcfilter_lib.models import scene_cnn
from pcfilter_lib.recipes import scene_points as sp
from pcfilter_lib.recipes import scene_segmentation as seg

TINY = seg.SceneRecipe("tiny", "scenes", n_scenes=3, resolution=16, n_views=2, scan_size=(48, 36), n_parts=(3, 4),
                       split=(2 / 3, 0.0, 1 / 3))
BUDGET = replace(sp.FAST, clouds=2 * sp.FAST.batch_size, epochs=2)  # FAST's network and clouds, two steps an epoch
K = sp.CLASSES


@pytest.fixture(scope="module")
def scene_set(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    folder = seg.ensure_scene_grids(data, TINY)
    return data, folder, sv.load_scene_views(folder, "train"), sv.load_scene_views(folder, "test")


def test_scene_points_are_the_measured_pixels_inside_the_grid(scene_set):
    _, _, views, _ = scene_set
    scenes = sp.scene_points(views)
    assert len(scenes) == 2
    for n, scene in enumerate(scenes):
        grid = sv.scene_grid_of(views, n)
        voxels = [pixel_voxels(sv.scene_view(views, n, v), grid) for v in range(2)]
        inside = np.concatenate([(vox >= 0).ravel() for vox in voxels])
        assert scene.index == n and scene.grid == grid
        assert scene.points.shape == (inside.sum(), 3) and scene.classes.shape == (inside.sum(),)
        assert np.array_equal(scene.classes, views["semantic"][n].reshape(-1)[inside])
        assert grid.index(scene.points)[1].all()
        coordinates = scene.coordinates()
        assert coordinates.dtype == np.float32 and np.abs(coordinates).max() <= 1.0 + 1e-6
        assert scene.classes.max() > SEMANTIC_SUPPORT  # the parts are seen


def test_normalise_points_maps_the_grid_to_the_unit_cube():
    grid = Grid((1.0, -2.0, 0.5), 0.5, (4, 4, 4))
    corners = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, 2.5], [2.0, -1.0, 1.5]])
    assert np.allclose(sp.normalise_points(corners, grid), [[-1, -1, -1], [1, 1, 1], [0, 0, 0]])


def test_scene_clouds_shapes_ranges_and_draws(scene_set):
    _, _, views, _ = scene_set
    clouds, classes = sp.scene_clouds(views, 300, np.random.default_rng(0))
    assert clouds.shape == (2, 300, 3) and clouds.dtype == np.float32
    assert classes.shape == (2, 300) and classes.dtype == np.uint8
    assert np.abs(clouds).max() <= 1.0 + 1e-6 and classes.max() < K
    scenes = sp.scene_points(views)
    again, _ = sp.scene_clouds(scenes, 300, np.random.default_rng(0))
    assert np.array_equal(clouds, again)  # the same draws from the views or from their points
    assert len(np.unique(clouds[0], axis=0)) == 300  # no point twice where the scene has enough
    many = len(scenes[0].points) + 50
    big, _ = sp.scene_clouds(scenes[:1], many, np.random.default_rng(1))
    assert big.shape == (1, many, 3)  # with replacement where it has fewer


def test_voxel_predictions_at_points_index_the_right_voxel():
    grid = Grid((0.0, 0.0, 0.0), 1.0, (2, 3, 4))
    labels = np.arange(24).reshape(2, 3, 4) % K
    probabilities = np.eye(K, dtype=np.float32)[labels]
    rng = np.random.default_rng(0)
    ijk = np.stack([rng.integers(0, n, 50) for n in grid.shape], axis=1)
    points = ijk + rng.uniform(0.01, 0.99, (50, 3))
    at_points = sp.voxel_predictions_at_points(probabilities, points, grid)
    assert at_points.shape == (50, K)
    assert np.array_equal(at_points.argmax(-1), labels[ijk[:, 0], ijk[:, 1], ijk[:, 2]])


def test_every_point_is_scored_and_the_truth_scores_one(scene_set):
    _, _, _, views = scene_set
    scenes = sp.scene_points(views)
    perfect = sp.point_scores(lambda s: np.eye(K, dtype=np.float32)[s.classes], scenes)
    assert perfect["points"] == sum(len(s.points) for s in scenes) == np.sum(perfect["confusion"])
    assert perfect["mean_iou"] == perfect["part_iou"] == perfect["accuracy"] == 1.0
    assert set(perfect) - {"points"} == {"iou", "mean_iou", "part_iou", "accuracy", "seconds_per_scene",
                                         "confusion"}
    # A voxel network that predicts each voxel's label exactly: every point gets its voxel's label,
    # which is its pixel's class except near boundaries between surfaces.
    grids = sv.load_scene_grids(scene_set[1], "test")
    labels = grids["labels"]
    voxels = sp.point_scores(sp.class_grid_predictor(labels), scenes)
    hits, surface = [], []
    for scene in scenes:
        ijk, _ = scene.grid.index(scene.points)
        hits.append(labels[scene.index][tuple(ijk.T)] == scene.classes)
        surface.append(scene.classes != SEMANTIC_BACKGROUND)
    hits, surface = np.concatenate(hits), np.concatenate(surface)
    assert voxels["points"] == perfect["points"] and hits.mean() > 0.6
    assert np.isclose(voxels["accuracy"], hits[surface].mean())


def test_training_gives_a_finite_loss_and_a_predictor_of_every_point(scene_set):
    _, _, train_views, test_views = scene_set
    result = sp.train_point_network(sp.scene_points(train_views), BUDGET, seed=0)
    assert result.epochs == 2 and np.isfinite(result.history["loss"]).all()
    assert result.model.output_shape == (None, None, K)
    scene = sp.scene_points(test_views)[0]
    predict = sp.point_predictor(result.model, 100)
    probabilities = predict(scene)
    assert probabilities.shape == (len(scene.points), K) and np.allclose(probabilities.sum(-1), 1, atol=1e-4)
    assert np.array_equal(probabilities, predict(scene))  # the chunks are drawn from the seed
    # Points in a chunk of their own are predicted as one cloud of the network.
    few = scene.coordinates()[:60]
    alone = sp.predict_points(result.model, few, 60, np.random.default_rng(0))
    direct = keras.ops.convert_to_numpy(result.model(few[None], training=False))[0]
    assert np.allclose(alone, direct, atol=1e-5)


def test_draws_differ_between_epochs_and_repeat_with_the_seed(scene_set):
    scenes = sp.scene_points(scene_set[2])
    draws = sp.CloudDraws(scenes, 64, 10, 4, seed=1)
    assert len(draws) == 3 and draws[2][0].shape == (2, 64, 3)
    first = draws[0][0]
    assert np.array_equal(first, sp.CloudDraws(scenes, 64, 10, 4, seed=1)[0][0])
    draws.on_epoch_end()
    assert not np.array_equal(first, draws[0][0])


def test_the_recipe_scores_all_networks_on_the_same_points(scene_set):
    data, folder, _, _ = scene_set
    # The classes two voxel networks gave the test scene, as run_scene_segmentation keeps them.
    features, _ = seg.load_features(folder, "test")
    unet = scene_cnn.build_scene_unet(filters=(4, 8))
    classes = {"unet": np.argmax(scene_cnn.predict_scene(unet, features[0]), axis=-1)[None],
               "column": np.zeros((1, *features.shape[1:4]), np.uint8)}
    models = {}
    report = run_scene_points(TINY, data, BUDGET, voxel_classes=classes, models=models)
    json.dumps(report)  # numbers only
    assert report["scenes"] == {"train": 2, "test": 1} and models["point"].name == "scene_pointnet"
    for name in ("point", "column", "unet"):
        assert report[name]["points"] == report["points"]["test"] > 0
        assert 0 <= report[name]["mean_iou"] <= 1
    assert report["point"]["seconds_per_scene"] > 0 and report["point"]["parameters"] > 0
    assert np.isnan(report["unet"]["seconds_per_scene"])  # timed where the classes were predicted
    assert np.isfinite(report["point"]["final_loss"]) and report["point"]["train_seconds"] > 0
    # Every point of the all-background column answer is scored as background.
    confusion = np.array(report["column"]["confusion"])
    assert confusion[:, SEMANTIC_BACKGROUND].sum() == confusion.sum()
    with pytest.raises(ValueError, match="voxel networks go under"):
        run_scene_points(TINY, data, BUDGET, voxel_classes={"columns": classes["unet"]})


def test_bad_input(scene_set):
    _, _, views, _ = scene_set
    scenes = sp.scene_points(views)
    with pytest.raises(ValueError, match="n_points >= 1"):
        sp.scene_clouds(views, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="missing"):
        sp.scene_points({"depth": views["depth"]})
    grid = Grid((0.0, 0.0, 0.0), 1.0, (2, 2, 2))
    with pytest.raises(ValueError, match="X, Y, Z = \\(2, 2, 2\\)"):
        sp.voxel_predictions_at_points(np.zeros((2, 2, 3, K)), np.zeros((1, 3)), grid)
    with pytest.raises(ValueError, match="outside the grid"):
        sp.voxel_predictions_at_points(np.zeros((2, 2, 2, K)), np.array([[0.5, 0.5, 2.5]]), grid)
    with pytest.raises(ValueError, match="\\(P, 3\\)"):
        sp.voxel_predictions_at_points(np.zeros((2, 2, 2, K)), np.zeros((4, 2)), grid)
    with pytest.raises(ValueError, match="\\(P, 3\\)"):
        sp.predict_points(None, np.zeros((4, 2)), 8, np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least one scene"):
        sp.point_scores(lambda s: s, [])
    with pytest.raises(ValueError, match="must be \\(P, K\\)"):
        sp.point_scores(lambda s: np.zeros((1, K)), scenes)
    with pytest.raises(ValueError, match="points, clouds, epochs and batch_size >= 1"):
        sp.PointBudget("bad", points=0)
    with pytest.raises(ValueError, match="voxel networks go under"):
        run_scene_points(TINY, "unused", BUDGET, voxel_classes={"voxnet": None})


def test_the_shipped_point_network_is_loaded_for_its_scene_set_and_budget_only(scene_set, tmp_path):
    data, *_ = scene_set
    card = sp.train_reference_point_network(tmp_path, data, TINY, BUDGET, progress=False)
    path = tmp_path / card.model
    card.write(path.with_suffix(".json"))
    assert card.model == sp.SHIPPED.name and card.target == "scenepoints"
    report = run_scene_points(TINY, data, BUDGET, shipped=path)
    assert report["point"]["shipped"] and report["point"]["train_seconds"] == card.training_seconds
    assert report["point"]["mean_iou"] == pytest.approx(card.test["mean_iou"], abs=1e-4)
    other = replace(BUDGET, epochs=BUDGET.epochs + 1)
    assert not run_scene_points(TINY, data, other, shipped=path)["point"]["shipped"]
