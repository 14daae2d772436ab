"""The scene segmentation networks: the sliding-window column network and the fully convolutional
3D U-Net, their save / load round trip, a real training step, and the recipe's scores."""

import json
import subprocess
import sys
from dataclasses import replace

import keras
import numpy as np
import pytest

from pcfilter_lib.data.scene_voxels import column_windows
from pcfilter_lib.experiments.scene_comparisons import run_scene_segmentation, scene_network, weight_power_runs
from pcfilter_lib.models import scene_cnn
from pcfilter_lib.nn.losses import ClassWeightedCrossentropy, inverse_frequency_weights
from pcfilter_lib.recipes import scene_segmentation as seg

K = scene_cnn.CLASSES


def _scene(rng, side=(12, 10, 16)):
    """A toy scene: free space with a few occupied boxes whose class is known."""
    features = np.zeros((*side, 3), np.float32)
    labels = np.zeros(side, np.uint8)
    features[..., 1] = 1.0
    features[..., 0] = 1.0
    for code in (3, 5):
        lo = rng.integers(0, np.array(side) - 4)
        box = tuple(slice(a, a + 3) for a in lo)
        labels[box] = code
        features[box] = (0.0, 0.0, 1.0 if code == 3 else 0.5)
    return features, labels


def test_column_network_shapes_and_sliding_window():
    model = scene_cnn.build_column_cnn(16, context=5, filters=(4, 8), hidden=16)
    assert model.output_shape == (None, 16, K)
    features, _ = _scene(np.random.default_rng(0))
    probabilities = scene_cnn.predict_columns(model, features, batch_size=37)
    assert probabilities.shape == (12, 10, 16, K)
    assert np.allclose(probabilities.sum(-1), 1, atol=1e-5)
    direct = model(np.ascontiguousarray(column_windows(features, 5)[7, 3][None]), training=False)
    assert np.allclose(probabilities[7, 3], keras.ops.convert_to_numpy(direct)[0], atol=1e-5)


def test_unet_runs_on_scenes_of_any_size():
    model = scene_cnn.build_scene_unet(filters=(4, 8, 8))
    for side in ((8, 8, 8), (12, 10, 16), (9, 13, 7)):
        out = scene_cnn.predict_scene(model, np.zeros((*side, 3), np.float32))
        assert out.shape == (*side, K)
        assert np.allclose(out.sum(-1), 1, atol=1e-5)


def test_save_and_load_without_importing_the_module(tmp_path):
    model = scene_cnn.build_scene_unet(filters=(4, 8))
    weights = inverse_frequency_weights(np.array([0, 0, 0, 3, 5]), K)
    model.compile(optimizer="adam", loss=ClassWeightedCrossentropy(weights))
    path = tmp_path / "unet.keras"
    model.save(path)
    x = np.random.default_rng(0).normal(size=(1, 6, 10, 8, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", keras.ops.convert_to_numpy(model(x)))
    code = ("import keras, numpy as np, sys\n"
            "import pcfilter_lib.models\n"
            "assert 'pcfilter_lib.recipes.scene_segmentation' not in sys.modules\n"
            f"m = keras.models.load_model({str(path)!r})\n"
            f"x = np.load({str(tmp_path / 'x.npy')!r}); y = np.load({str(tmp_path / 'y.npy')!r})\n"
            "assert np.allclose(keras.ops.convert_to_numpy(m(x)), y, atol=1e-6)\n"
            "assert m.loss.class_weights[3] > 0\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    column = scene_cnn.build_column_cnn(8, context=3, filters=(4,), hidden=8)
    column.save(tmp_path / "column.keras")
    again = keras.models.load_model(tmp_path / "column.keras")
    probe = np.ones((2, 3, 3, 8, 3), np.float32)
    assert np.allclose(keras.ops.convert_to_numpy(again(probe)), keras.ops.convert_to_numpy(column(probe)))


def test_a_short_training_lowers_the_loss():
    rng = np.random.default_rng(1)
    scenes = [_scene(rng) for _ in range(2)]
    features = np.stack([s[0] for s in scenes])
    labels = np.stack([s[1] for s in scenes])
    recipe = seg.SceneRecipe("test", "unused", 2, 16, 1, (8, 8), context=5, column_filters=(4, 8), chunk=8,
                             unet_filters=(4, 8), epochs=6, columns=64, chunks=16, batch_size=8, learning_rate=1e-2)
    for train in (seg.train_column_network, seg.train_scene_unet):
        result = train(features, labels, recipe, seed=0)
        loss = result.history["loss"]
        assert loss[-1] < 0.8 * loss[0], (train.__name__, loss)
    scores = seg.segmentation_scores(lambda s: scene_cnn.predict_scene(result.model, s), features, labels)
    assert set(scores["iou"]) == {"background", "cylinder", "box"}
    assert 0 <= scores["mean_iou"] <= 1 and scores["seconds_per_scene"] > 0
    assert scores["part_iou"] >= max(scores["iou"]["cylinder"], scores["iou"]["box"]) - 1e-9


def test_class_iou_and_weights():
    confusion = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    iou = seg.class_iou(confusion)
    assert np.allclose(iou[:2], [5 / 8, 3 / 6]) and np.isnan(iou[2])
    truth = np.array([0, 3, 3, 4, 4, 0])[None, None, None]  # one scene of six voxels, two part types
    predicted = np.eye(seg.CLASSES)[[0, 4, 3, 4, 0, 3]][None, None, None]  # types swapped, one part missed
    scores = seg.segmentation_scores(lambda s: predicted[0], truth[..., None].repeat(3, -1).astype(float), truth)
    assert np.isclose(scores["part_iou"], 3 / 5) and np.isclose(scores["iou"]["cylinder"], 1 / 3)
    weights = inverse_frequency_weights(np.array([0] * 90 + [1] * 10), 3)
    assert weights[2] == 0 and weights[1] > weights[0] > 0
    loss = ClassWeightedCrossentropy([1.0, 0.0])
    y_pred = np.array([[[0.9, 0.1], [0.5, 0.5]]], np.float32)
    value = float(loss(np.array([[0, 1]]), y_pred))
    assert np.isclose(value, -np.log(0.9), rtol=1e-5)  # the weight-0 class does not count


def test_bad_input():
    with pytest.raises(ValueError, match="context must be odd"):
        scene_cnn.build_column_cnn(16, context=4)
    with pytest.raises(ValueError, match="two levels"):
        scene_cnn.build_scene_unet(filters=(8,))
    with pytest.raises(ValueError, match="not all zero"):
        ClassWeightedCrossentropy([0.0, 0.0])
    with pytest.raises(ValueError, match="must lie in 0..2"):
        inverse_frequency_weights(np.array([0, 5]), 3)
    model = scene_cnn.build_column_cnn(8, context=3, filters=(4,), hidden=8)
    with pytest.raises(ValueError, match="columns of 8 voxels"):
        scene_cnn.predict_columns(model, np.zeros((4, 4, 6, 3), np.float32))
    with pytest.raises(ValueError, match="at least one scene"):
        seg.segmentation_scores(lambda s: s, np.zeros((0, 2, 2, 2, 3)), np.zeros((0, 2, 2, 2)))


@pytest.mark.usefixtures("eager_steps")
def test_the_recipe_makes_scenes_trains_both_networks_and_reports(tmp_path):
    recipe = seg.SceneRecipe("tiny", "scenes", n_scenes=3, resolution=16, n_views=1, scan_size=(32, 24),
                             n_parts=(2, 3), split=(2 / 3, 0.0, 1 / 3), context=5, column_filters=(4, 8), chunk=8,
                             unet_filters=(4, 8), epochs=1, columns=16, chunks=8, batch_size=8)
    models = {}
    report = run_scene_segmentation(recipe, tmp_path, models=models)
    assert report["scenes"] == {"train": 2, "test": 1}
    assert models["column"].name == "column_cnn" and models["unet"].name == "scene_unet"
    json.dumps(report)  # numbers only: the networks stay out of the report
    for name in ("column", "unet"):
        assert {"background", "table", "support"} <= set(report[name]["iou"])
        assert report[name]["seconds_per_scene"] > 0 and report[name]["parameters"] > 0
        assert np.isfinite(report[name]["final_loss"])
    assert (tmp_path / "scenes" / "manifest.json").is_file()
    assert not report["unet"]["shipped"]
    # A network trained once by the reference recipe is loaded instead, on the same set at the same budget.
    card = seg.train_reference_scene_network(tmp_path / "weights", tmp_path, "unet", recipe, progress=False)
    path = tmp_path / "weights" / card.model
    card.write(path.with_suffix(".json"))
    assert card.model == seg.SHIPPED["unet"].name and card.target == "sceneunet"
    again = run_scene_segmentation(recipe, tmp_path, shipped={"unet": path})
    assert again["unet"]["shipped"] and not again["column"]["shipped"]
    assert again["unet"]["train_seconds"] == card.training_seconds
    assert again["unet"]["mean_iou"] == pytest.approx(card.test["mean_iou"], abs=1e-4)
    other = run_scene_segmentation(replace(recipe, epochs=2), tmp_path, shipped={"unet": path})
    assert not other["unet"]["shipped"]  # another budget trains its own
    # Section 8b takes the U-Net alone, from the same place as the comparison.
    unet, loaded = scene_network(recipe, tmp_path, "unet", shipped={"unet": path})
    assert loaded and unet.seconds == card.training_seconds and unet.history == card.history
    with pytest.raises(ValueError, match="unknown scene network"):
        scene_network(recipe, tmp_path, "voxnet")
    with pytest.raises(ValueError, match="unknown scene network"):
        seg.train_reference_scene_network(tmp_path, tmp_path, "voxnet", recipe)


@pytest.mark.usefixtures("eager_steps")
def test_the_exercises_weight_power_networks_are_loaded_for_their_scene_set_and_budget_only(tmp_path):
    recipe = seg.SceneRecipe("tiny", "scenes", n_scenes=3, resolution=16, n_views=1, scan_size=(32, 24),
                             n_parts=(2, 3), split=(2 / 3, 0.0, 1 / 3), context=5, column_filters=(4, 8), chunk=8,
                             unet_filters=(4, 8), epochs=2, columns=16, chunks=16, batch_size=8)
    budget = seg.exercise_budget(recipe)
    assert (budget.epochs, budget.chunks, budget.weight_power) == (1, 8, recipe.weight_power)
    card = seg.train_reference_weight_power(tmp_path / "weights", tmp_path, 1.0, recipe, progress=False)
    path = seg.weight_power_path(1.0, tmp_path / "weights")
    card.write(path.with_suffix(".json"))
    assert card.model == "scene_unet_power_100.keras" and card.target == "sceneunetpower100"
    assert card.settings["weight_power"] == 1.0 and card.settings["epochs"] == 1
    runs = weight_power_runs(budget, tmp_path, powers=(0.0, 1.0), weights=tmp_path / "weights")
    (zero, zero_shipped), (one, one_shipped) = runs[0.0], runs[1.0]
    assert one_shipped and one.seconds == card.training_seconds and one.history == card.history
    assert not zero_shipped and len(zero.history["loss"]) == 1  # no file for it: trained here
    (again, shipped), = weight_power_runs(budget, tmp_path, powers=(1.0,), weights=None).values()
    assert not shipped and again.model is not one.model
    with pytest.raises(ValueError, match="weight powers"):
        seg.train_reference_weight_power(tmp_path, tmp_path, 2.0, recipe)
