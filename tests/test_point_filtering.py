"""The point-based filter: invariant features, patches that cover the cloud, the network, bad input,
and the shipped weights (invariance to units and placement, better than the tuned baselines)."""


import numpy as np
import pytest
from synthetic_clouds import moved, surface_with_specks

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras

from pcfilter_lib import filters
from pcfilter_lib.data import patches
from pcfilter_lib.geometry import point_features
from pcfilter_lib.io import model_cards
from pcfilter_lib.io.clouds import cloud_scan, scan_cloud
from pcfilter_lib.models.pointnet import build_pointnet_segmentation
from pcfilter_lib.recipes import point_filter as point_recipe

needs_weights = pytest.mark.skipif(not filters.SHIPPED_POINT_MODEL.is_file(),
                                   reason="pcfilter_lib/weights/pointnet_filter.keras is missing; train it with "
                                          "data_scripts/train_reference_models.py --target pointfilter")


def test_features_do_not_depend_on_units_or_placement():
    points, _ = surface_with_specks()
    reference = point_features.local_statistics(point_features.neighbourhoods(points))
    for other in (points * 1000, moved(points), moved(points, scale=1000)):
        hood = point_features.neighbourhoods(other)
        np.testing.assert_allclose(point_features.local_statistics(hood), reference, atol=2e-3)
    hood = point_features.neighbourhoods(points)
    assert hood.spacing > 0 and np.isclose(np.median(hood.distances[:, 0]), 1.0)


def test_statistics_separate_floating_points_from_the_surface():
    points, label = surface_with_specks()
    stats = point_features.local_statistics(point_features.neighbourhoods(points))
    within = stats[:, point_features.STATISTICS.index("within_2s")]
    assert within[label == 1].mean() > 3 * within[label == 0].mean()
    assert stats.shape == (len(points), len(point_features.STATISTICS)) and np.isfinite(stats).all()


def test_closed_form_eigenvalues_match_numpy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 3, 3))
    covariance = a @ a.transpose(0, 2, 1)
    keys = {"xx": (0, 0), "yy": (1, 1), "zz": (2, 2), "xy": (0, 1), "xz": (0, 2), "yz": (1, 2)}
    values, normal = point_features._symmetric_eigen({k: covariance[:, i, j] for k, (i, j) in keys.items()})
    expected, vectors = point_features._eigen(covariance)
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.abs(np.einsum("ni,ni->n", normal, vectors[:, :, 2])), 1, atol=1e-6)


def test_patches_cover_every_point_and_follow_the_cloud_when_it_moves():
    points, _ = surface_with_specks()
    hood = point_features.neighbourhoods(points)
    patches = point_features.seed_patches(hood, 128)
    assert patches.shape[1] == 128 and set(np.unique(patches)) == set(range(len(points)))
    moved_hood = point_features.neighbourhoods(moved(points, 1000))
    assert np.array_equal(np.sort(point_features.seed_patches(moved_hood, 128), 1), np.sort(patches, 1))
    local = point_features.patch_coordinates(hood, patches)
    np.testing.assert_allclose(point_features.patch_coordinates(moved_hood, patches), local, atol=1e-2)
    small = point_features.neighbourhoods(points[:50])
    assert point_features.seed_patches(small, 128).shape[1] == 50  # a patch never exceeds the cloud


def test_bad_clouds_get_clear_errors():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        point_features.finite_points(np.zeros((5, 2)))
    for empty in (np.zeros((0, 3)), np.full((3, 3), np.nan)):
        with pytest.raises(ValueError, match="with finite coordinates: there are no points"):
            point_features.finite_points(empty)
    for n in (1, 2):
        with pytest.raises(ValueError, match=f"holds {n} point.*at least {point_features.MIN_POINTS}"):
            point_features.neighbourhoods(np.random.default_rng(0).random((n, 3)))
    with pytest.raises(ValueError, match="coincides"):
        point_features.neighbourhoods(np.ones((10, 3)))


def test_segmentation_network_without_transforms_reads_features_and_saves(tmp_path):
    model = build_pointnet_segmentation(1, 64, width=0.125, channels=27, transforms=False)
    assert model.output_shape == (None, 64, 1)
    assert not any("tnet" in layer.name for layer in model.layers)
    x = np.random.default_rng(0).normal(size=(2, 64, 27)).astype("float32")
    y = np.asarray(model(x))
    assert ((y > 0) & (y < 1)).all()
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(keras.models.load_model(tmp_path / "m.keras")(x)), y, atol=1e-6)


def test_a_small_training_run_learns_something_and_wraps_as_a_filter(tmp_path):
    clouds = [cloud_scan(*surface_with_specks(seed=s)) for s in range(4)]
    inputs, labels = patches.training_patches(clouds[:3], 12, 256)
    channels = len(point_features.FEATURE_SETS["both"])
    assert inputs.shape == (36, 256, channels) and labels.shape == (36, 256, 1)
    assert (labels == 0).any(axis=(1, 2)).sum() >= 18  # half the patches hold an artefact
    run = point_recipe.train_point_filter(inputs, labels, clouds[3:], "statistics", epochs=3,
                                         batch_size=18)  # two steps an epoch, as at 32, of one shape: one trace
    point_filter = run.filter
    assert 0 < run.threshold < 1 and point_filter.feature_set == "statistics"
    assert run.model is point_filter.model and run.epochs == len(run.history["loss"]) == 3
    result = filters.evaluate_filter(point_filter, clouds[3:])
    assert result["scans"] == 1 and result["tp"] + result["fn"] == 3000
    prob = point_filter.keep_probability_points(np.r_[clouds[3]["xyz"][0], [[np.nan, 0, 0]]])
    assert prob.shape == (3041,) and prob[-1] == 0 and ((prob[:-1] >= 0) & (prob[:-1] <= 1)).all()
    path = tmp_path / "pf.keras"
    point_filter.model.save(path)
    loaded = filters.load_filter(path, threshold=0.3, organised=False)
    assert isinstance(loaded, filters.PointFilter) and loaded.threshold == 0.3
    with pytest.raises(ValueError, match="feature set"):
        filters.PointFilter(point_filter.model, feature_set="both")



@pytest.mark.usefixtures("eager_steps")
def test_pointnet2_is_the_other_network_a_point_filter_can_train(tmp_path):
    clouds = [cloud_scan(*surface_with_specks(seed=s)) for s in range(3)]
    inputs, labels = patches.training_patches(clouds[:2], 8, 256)
    run = point_recipe.train_point_filter(inputs, labels, clouds[2:], "both", epochs=1, network="pointnet2")
    assert run.filter.name == run.model.name == "pointnet2_filter" and run.settings["network"] == "pointnet2"
    assert run.model.output_shape == (None, 256, 1) and 0 < run.threshold < 1
    assert filters.evaluate_filter(run.filter, clouds[2:])["scans"] == 1
    with pytest.raises(ValueError, match="unknown network 'dgcnn'"):
        point_recipe.build_network("dgcnn", 27)


# The shipped filter

@pytest.fixture(scope="module")
def test_clouds():
    from pcfilter_lib.simulate.dataset import make_scan
    from pcfilter_lib.simulate.scanner import ScannerConfig

    scans = [make_scan(2024, i, ScannerConfig(width=320, height=240)) for i in range(3)]
    return [scan_cloud(scan) for scan in scans]


@needs_weights
def test_shipped_point_filter_records_how_it_was_made():
    manifest = model_cards.read_model_card(filters.SHIPPED_POINT_MODEL)
    from pcfilter_lib.simulate.dataset import VERSION

    assert manifest.data["version"] == VERSION, "retrain the point filter: the simulator has changed since"
    assert manifest.command.startswith("python data_scripts/train_reference_models.py --target pointfilter")
    assert manifest.settings["feature_set"] in point_features.FEATURE_SETS
    assert set(manifest.details["ablation"]) == set(point_features.FEATURE_SETS)
    assert set(manifest.details["densities"]) == {str(f) for f in point_recipe.FRACTIONS}
    assert manifest.file_bytes == filters.SHIPPED_POINT_MODEL.stat().st_size


@pytest.fixture(scope="module")
def shipped_filters():
    """The filters of the real-scan comparison by name (``reference_filters``: the card's tuned baselines as
    it builds them, ROR's radius in point spacings), the shipped point filter among them, loaded once."""
    from pcfilter_lib.filters.labelled_clouds import reference_filters

    return {name: candidate for name, _, candidate in reference_filters()}


@needs_weights
def test_shipped_point_filter_ignores_units_and_placement(test_clouds, shipped_filters):
    point_filter = shipped_filters["point filter"]  # filters.point_filter(): the shipped one at its card's threshold
    cloud = test_clouds[0]
    points, label = cloud["xyz"][0].astype(np.float64), cloud["label"]
    reference = filters.evaluate_filter(point_filter, [cloud])
    for other in (points * 1000, moved(points), moved(points, 1000, seed=5)):
        result = filters.evaluate_filter(point_filter, [cloud_scan(other, label[0])])
        for name in ("mean_iou", "balanced_accuracy", "recall"):
            assert abs(result[name] - reference[name]) < 0.01 * reference[name], (name, result[name], reference[name])


@needs_weights
def test_shipped_point_filter_beats_the_tuned_baselines_on_fixed_clouds(test_clouds, shipped_filters):
    learned = filters.evaluate_filter(shipped_filters["point filter"], test_clouds)
    for name in ("SOR, tuned", "ROR, tuned"):
        baseline = filters.evaluate_filter(shipped_filters[name], test_clouds)
        assert learned["mean_iou"] > baseline["mean_iou"], (name, learned["mean_iou"], baseline["mean_iou"])
    assert learned["recall"] > 0.98
