"""Shape completion: partial grids fused from the scanned ModelNet stand-in, the encoder-decoder and
its classifiers, and the recipe's scores."""

from dataclasses import replace

import keras
import numpy as np
import pytest

from pcfilter_lib.data import completion_grids as cg
from pcfilter_lib.experiments.completion_study import run_shape_completion
from pcfilter_lib.models import completion
from pcfilter_lib.recipes import shape_completion as sc

RECIPE = replace(sc.FAST, filters=(4, 8), epochs=1, classifier_epochs=1, batch_size=2)


@pytest.fixture(scope="module")
def grids(tmp_path_factory):
    """Two chairs and a table at 16 voxels: two for training, one for testing."""
    folder = cg.write_completion_grids(tmp_path_factory.mktemp("completion"), {"chair": (1, 1), "table": (1, 0)},
                                       resolution=16)
    return folder, cg.load_completion_grids(folder, "train"), cg.load_completion_grids(folder, "test")


def test_partial_grid_lies_on_the_complete_shape(grids):
    folder, train, test = grids
    assert train["tsdf"].shape == (2, 16, 16, 16) and list(train["labels"]) == [0, 1]
    assert train["classes"] == ["chair", "table"] and list(test["labels"]) == [0]
    for tsdf, known, target in zip(train["tsdf"], train["known"], train["target"], strict=True):
        assert 0.02 < known.mean() < 0.9  # one view sees part of the grid, never all of it
        assert np.all(tsdf[~known] == 0) and target.min() >= 0 and target.max() <= 1
        seen = cg.surface_voxels(tsdf, known=known)
        # the scanned surface is the object's: within two voxels of the complete mesh, noise and all
        assert seen.sum() > 20 and np.mean(target[seen] < 2 / cg.TRUNCATION) > 0.9
        assert cg.surface_voxels(target).sum() > 2 * seen.sum()  # and the scan misses much of it
    # resuming leaves the files as they are; another recipe of the generator is refused without replace
    before = sorted((p.name, p.stat().st_mtime_ns) for p in folder.rglob("*.npz"))
    cg.write_completion_grids(folder, {"chair": (1, 1), "table": (1, 0)}, resolution=16)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in folder.rglob("*.npz")) == before
    with pytest.raises(ValueError, match="other data"):
        cg.write_completion_grids(folder, {"chair": (1, 1)}, resolution=16)


def test_features_surfaces_and_bad_input():
    tsdf = np.array([[[0.2, -0.9, 0.0]]], np.float32)
    known = np.array([[[True, True, False]]])
    features = cg.completion_features(tsdf, known)
    assert np.allclose(features[..., 0], [[[0.2, 0.9, 1.0]]]) and np.allclose(features[..., 1], known)
    assert cg.surface_voxels(tsdf, known=known).tolist() == [[[True, False, False]]]
    assert cg.surface_iou(np.array([[1, 1, 0, 0]], bool), np.array([[1, 0, 1, 0]], bool)).tolist() == [1 / 3]
    with pytest.raises(ValueError, match="same shape"):
        cg.completion_features(tsdf, known[..., :2])
    with pytest.raises(ValueError, match="classes"):
        cg.write_completion_grids("unused", {"piano": (1, 1)})
    with pytest.raises(ValueError, match="multiple of 2"):
        completion.build_completion_net(20, (4, 8, 8))


def test_scores_of_a_perfect_and_of_the_partial_field(grids):
    _, _, test = grids
    perfect = sc.completion_scores(test, test["target"])
    assert perfect["completed"]["l1"] == 0 and perfect["completed"]["iou"] == 1
    assert perfect["completed"]["precision"] == perfect["completed"]["recall"] == 1
    seen = perfect["partial"]
    assert seen["l1"] > 0 and 0 < seen["iou"] < 1 and 0 < seen["recall"] < seen["precision"] <= 1


def test_training_save_load_and_frozen_completion_features(grids, tmp_path):
    _, train, test = grids
    x = cg.completion_features(train["tsdf"], train["known"])
    result = sc.train_completion(x, train["target"], RECIPE)
    net = result.model
    assert net.output_shape == (None, 16, 16, 16) and result.epochs == 1
    fields = sc.predict_fields(net, cg.completion_features(test["tsdf"], test["known"]))
    assert fields.shape == (1, 16, 16, 16) and 0 <= fields.min() and fields.max() <= 1
    path = tmp_path / "completion.keras"
    net.save(path)
    loaded = keras.models.load_model(path)  # the registered metric comes back with the compiled model
    assert np.allclose(sc.predict_fields(loaded, x), sc.predict_fields(net, x), atol=1e-5)
    assert keras.saving.get_registered_object("pcfilter>SurfaceIoU") is completion.SurfaceIoU
    metric = completion.SurfaceIoU.from_config(completion.SurfaceIoU(0.5).get_config())
    metric.update_state(np.array([0.1, 0.2, 0.9, 0.9]), np.array([0.1, 0.9, 0.3, 0.9]))
    assert metric.threshold == 0.5 and float(metric.result()) == pytest.approx(1 / 3)
    before = [w.copy() for w in completion.completion_encoder(net).get_weights()]
    classifier = sc.train_classifier(x, train["labels"], RECIPE, completion_net=net, own=False).model
    assert all(np.array_equal(a, b) for a, b in zip(before, completion.completion_encoder(net).get_weights(),
                                                    strict=True))
    assert classifier.output_shape == (None, len(sc.CLASSES))
    assert 0 <= sc.accuracy(classifier, x, train["labels"]) <= 1


@pytest.mark.usefixtures("eager_steps")
def test_the_recipe_loads_a_completion_network_trained_on_its_set_at_its_budget(tmp_path):
    # one object of each of the ten classes to train on, in 8^3 grids and all in one batch: one small step per
    # epoch for each network
    tiny = replace(RECIPE, folder="tiny_completion", train_per_class=1, test_per_class=1, resolution=8, batch_size=10)
    card = sc.train_reference_completion(tmp_path / "weights", tmp_path, tiny, progress=False)
    path = tmp_path / "weights" / card.model
    card.write(path.with_suffix(".json"))
    assert card.target == "completion" and "classifier_epochs" not in card.settings
    models = {}
    report = run_shape_completion(tiny, tmp_path, models=models, shipped_path=path)
    done = report["completion"]
    assert done["shipped"] and done["train_seconds"] == card.training_seconds
    assert done["completed"]["l1"] == pytest.approx(card.test["completed"]["l1"], abs=1e-4)
    assert set(report["classifiers"]) == set(sc.CLASSIFIERS)
    assert models["completion"].output_shape == (None, *[tiny.resolution] * 3)
    assert not run_shape_completion(replace(tiny, epochs=2), tmp_path, shipped_path=path)["completion"]["shipped"]
