"""The reference ModelNet10 classifiers (PointNet, PointNet++, DGCNN): one recipe, model cards,
rebuilding from weights, and the measures of their comparison (speed, uneven density, new heads)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras

from pcfilter_lib.data import procedural_modelnet
from pcfilter_lib.data.modelnet import Clouds
from pcfilter_lib.models import classify
from pcfilter_lib.recipes import classifiers
from pcfilter_lib.timing import classifier_speed


def _clouds(n=24, points=64, classes=3, seed=0) -> Clouds:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, points, 3)).astype(np.float32)
    x /= np.linalg.norm(x, axis=-1).max(axis=1)[:, None, None]
    labels = (np.arange(n) % classes).astype(np.int32)
    x[:, :, 0] += 0.3 * labels[:, None]  # learnable: the class shifts the cloud
    return Clouds(x, labels, tuple("abc"[:classes]), tuple(f"c{i}" for i in range(n)))


def _tiny(architecture: str) -> classifiers.ClassifierRecipe:
    return dataclasses.replace(classifiers.FAST[architecture], width=0.125, k=8)


@pytest.mark.parametrize("architecture", classifiers.ARCHITECTURES)
def test_shipped_classifier_is_rebuilt_from_its_card(architecture, tmp_path):
    path = classifiers.SHIPPED[architecture]
    if not path.exists():
        pytest.skip(f"not trained yet: python data_scripts/train_reference_models.py --target {architecture}")
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["file_bytes"] == path.stat().st_size < 5_000_000
    assert card["settings"].get("modelnet") == "full" and card["test"]["accuracy"] >= 0.7
    assert (card["data"]["generator"], card["data"]["version"]) == (procedural_modelnet.GENERATOR,
                                                                    procedural_modelnet.VERSION)
    recipe = classifiers.card_recipe(path)
    assert recipe.architecture == architecture and recipe.epochs == card["settings"]["epochs"]
    fresh, saved = classifiers.build_from_weights(path), keras.models.load_model(path)
    x = np.random.default_rng(4).normal(size=(2, recipe.num_points, 3)).astype(np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fresh(x, training=False)),
                               keras.ops.convert_to_numpy(saved(x, training=False)), rtol=1e-5, atol=1e-6)


@pytest.mark.usefixtures("eager_steps")
def test_the_reference_run_is_loaded_only_for_its_data_recipe_and_seed(tmp_path):
    from pcfilter_lib import config
    from pcfilter_lib.data import modelnet

    recipe = dataclasses.replace(classifiers.FAST["pointnet"], epochs=1, num_points=64, width=0.125)
    card = classifiers.train_reference_classifier(tmp_path, config.data_dir(), recipe, progress=False)
    path = tmp_path / card.model
    card.write(path.with_suffix(".json"))
    root, _ = modelnet.ensure_dataset(config.data_dir(), "fast")
    clouds = modelnet.load_split(root, "train", recipe.num_points)
    train_set, val_set = modelnet.split_validation(clouds, recipe.validation_fraction, seed=0)
    run, loaded = classifiers.reference_run(root, recipe, train_set, val_set, path=path)
    assert loaded and run.seconds == card.training_seconds and run.history == card.history
    saved = keras.models.load_model(path)
    assert all(np.array_equal(a, b) for a, b in zip(run.model.get_weights(), saved.get_weights(), strict=True))
    assert run.model(clouds.points[:2, :40]).shape == (2, 10)  # clouds of any size
    few = Clouds(train_set.points[:8], train_set.labels[:8], train_set.classes, train_set.names[:8])
    run, loaded = classifiers.reference_run(root, recipe, few, None, seed=1, path=path)
    assert not loaded and len(run.history["loss"]) == 1  # another seed trains its own


def test_build_from_weights_explains_what_is_missing_or_wrong(tmp_path):
    shipped = classifiers.SHIPPED["pointnet"]
    assert classifiers.build_from_weights(shipped) is not classifiers.build_from_weights(shipped)
    with pytest.raises(FileNotFoundError, match="saved classifier .*absent.keras does not exist; check the path"):
        classifiers.build_from_weights(tmp_path / "absent.keras")
    alone = tmp_path / "alone.keras"
    alone.write_bytes(shipped.read_bytes())
    with pytest.raises(FileNotFoundError, match="no model card alone.json"):
        classifiers.build_from_weights(alone)
    card = json.loads(shipped.with_suffix(".json").read_text())
    card["settings"]["width"] = 0.5  # a card that describes another network
    alone.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="do not fit the PointNet its card describes"):
        classifiers.build_from_weights(alone)


def test_unknown_architectures_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown architecture 'voxnet'"):
        classifiers.ClassifierRecipe("full", 1, architecture="voxnet")
    model = classifiers.build_classifier(_tiny("pointnet"), 3, 64)
    path = classify.save_model(model, tmp_path / "odd.keras")
    card = {"model": "odd.keras", "target": "odd", "load_with": "", "data": {"classes": ["a", "b", "c"]},
            "settings": {"architecture": "voxnet"}, "test": {}}
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="names the architecture 'voxnet'"):
        classifiers.build_from_weights(path)
    with pytest.raises(FileNotFoundError, match="no model card"):
        classifiers.card_recipe(tmp_path / "other.keras")


@pytest.mark.parametrize("architecture", classifiers.ARCHITECTURES)
def test_every_architecture_is_built_with_the_recipes_settings(architecture):
    recipe = _tiny(architecture)
    model = classifiers.build_classifier(recipe, 3, 256)
    assert model.name == f"{architecture}_modelnet10" and model.output_shape == (None, 3)
    assert model.get_layer("global_feature") is not None  # where transfer cuts the head off
    dropouts = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts and set(dropouts) == {recipe.dropout}
    if architecture == "pointnet2":  # multi-scale grouping: three radii per level
        multi = classifiers.build_classifier(dataclasses.replace(recipe, msg=True), 3, 256)
        assert multi.get_layer("sa1").get_config()["radius"] != model.get_layer("sa1").get_config()["radius"]


@pytest.mark.usefixtures("eager_steps")  # checks that speeds are measured, not their values
def test_speed_is_measured_on_one_batch_without_training_the_model():
    clouds = _clouds()
    recipe = _tiny("pointnet")
    model = classifiers.build_classifier(recipe, 3, 64)
    before = [w.copy() for w in model.get_weights()]
    speed = classifier_speed.measure_speed(model, recipe, clouds, batch_size=8, repeats=1)
    assert speed.per_cloud > 0 and speed.per_step > 0 and speed.batch_size == 8
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    with pytest.raises(ValueError, match="a batch of 32 clouds"):
        classifier_speed.measure_speed(model, recipe, clouds.take(range(4)))


def test_thinned_accuracy_scores_every_model_on_the_same_clouds():
    clouds = _clouds(points=128)
    model = classifiers.build_classifier(_tiny("pointnet"), 3)
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    scores = classify.accuracy_when_thinned({"one": model, "twin": twin}, clouds, 64, (0.0, 2.0), seed=3)
    assert scores["one"] == scores["twin"] and len(scores["one"]) == 2
    assert all(0.0 <= s <= 1.0 for s in scores["one"])


def test_a_head_on_frozen_features_learns_and_leaves_the_extractor_alone():
    keras.utils.set_random_seed(0)  # the extractor's random weights: otherwise whatever ran before left them
    # 54 steps as 9 in each of 6 epochs: Keras' cost per epoch exceeds that of a step of the head.
    train, val = _clouds(144, seed=0), _clouds(12, seed=1)
    model = classifiers.build_classifier(_tiny("pointnet"), 3)
    before = [w.copy() for w in model.get_weights()]
    accuracy, run = classify.head_on_features(model, train, val, val, epochs=6, width=0.125, batch_size=16)
    assert 0.0 <= accuracy <= 1.0 and len(run.history["val_accuracy"]) == 6
    assert run.history["accuracy"][-1] > 0.5  # three shifted classes are easy on the training clouds
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
