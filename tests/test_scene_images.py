"""Images and geometry together (3DMV): the 2D stream, back-projection into the voxels, the joined U-Net
and the ablation on a small scene set."""

from dataclasses import replace

import keras
import numpy as np
import pytest

from pcfilter_lib.data import scene_voxels
from pcfilter_lib.experiments.scene_comparisons import run_scene_images
from pcfilter_lib.geometry.depth_fusion import OCCUPIED
from pcfilter_lib.models import scene_cnn
from pcfilter_lib.recipes import scene_images as si
from pcfilter_lib.recipes import scene_segmentation as seg

K = scene_cnn.CLASSES
TINY = replace(seg.FAST, folder="tiny_scenes", n_scenes=3, resolution=16, n_views=2, scan_size=(48, 36),
               n_parts=(3, 4), split=(0.67, 0.0, 0.33), chunk=8, unet_filters=(4, 8), epochs=1, chunks=8,
               batch_size=4)
TINY_BUDGET = replace(si.FAST, epochs=1, batch_size=2)



def test_backproject_keeps_the_maximum_and_leaves_the_rest_empty():
    values = np.zeros((2, 2, 3, 2), np.float32)
    values[0, 0, 0] = (1.0, 5.0)
    values[1, 1, 2] = (3.0, 2.0)  # lands in the same voxel from the second view
    values[0, 1, 1] = (9.0, 9.0)  # no point: ignored
    voxels = np.full((2, 2, 3), -1)
    voxels[0, 0, 0] = voxels[1, 1, 2] = 4
    voxels[0, 0, 1] = 0
    out = si.backproject(values, voxels, 6)
    assert out.shape == (6, 2)
    assert np.array_equal(out[4], (3.0, 5.0)) and np.array_equal(out[0], (0.0, 0.0))
    assert not out[[1, 2, 3, 5]].any()
    with pytest.raises(ValueError, match="same pixels"):
        si.backproject(values, voxels[:1], 6)


def test_image_inputs_zero_what_was_not_measured():
    depth = np.array([[0.8, np.nan]], np.float32)
    intensity = np.array([[0.5, 0.7]], np.float32)
    x = si.image_inputs({"depth": depth, "intensity": intensity})
    assert x.shape == (1, 2, 3)
    assert np.allclose(x[0, 0], (0.5, 0.8, 1.0)) and np.array_equal(x[0, 1], (0.0, 0.0, 0.0))


def test_image_network_any_size_and_its_features():
    model = scene_cnn.build_image_network(K, filters=(4, 8), features=3)
    for h, w in ((12, 16), (9, 13)):
        image = np.random.default_rng(0).random((1, h, w, 3), np.float32)
        assert model(image).shape == (1, h, w, K)
        assert scene_cnn.image_features(model)(image).shape == (1, h, w, 3)


def test_joined_unet_streams_and_round_trip(tmp_path):
    model = scene_cnn.build_scene_unet(K, 5, (4, 8), streams=(3, 2))
    grid = np.random.default_rng(1).random((1, 9, 8, 8, 5), np.float32)
    path = tmp_path / "joined.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    assert np.allclose(model(grid), again(grid), atol=1e-6)
    assert {"stream1", "stream2", "streams_joined"} <= {layer.name for layer in model.layers}
    with pytest.raises(ValueError, match="add up"):
        scene_cnn.build_scene_unet(K, 5, (4, 8), streams=(3, 3))
    with pytest.raises(ValueError, match="unknown input"):
        si.joined_inputs(grid, grid, "colour")


def test_the_ablation_on_a_tiny_scene_set(tmp_path):
    models = {}
    report = run_scene_images(TINY, tmp_path, TINY_BUDGET, models=models, shipped_path=None)
    assert set(si.INPUTS) | {"image", "image_only"} <= set(report)
    for which in si.INPUTS:
        assert 0 <= report[which]["mean_iou"] <= 1 and np.isfinite(report[which]["final_loss"])
    assert models["geometry"].input_shape[-1] == 3 and models["images"].input_shape[-1] == si.FAST.features
    assert models["both"].input_shape[-1] == 3 + si.FAST.features
    assert 0 <= report["image"]["pixel_accuracy"] <= 1 and report["image"]["parameters"] > 0
    # Features land only where a measured point fell, i.e. in occupied voxels.
    folder = tmp_path / TINY.folder
    views = scene_voxels.load_scene_views(folder, "test")
    grids = scene_voxels.load_scene_grids(folder, "test")
    features = si.image_feature_grids(models["image"], views)
    reached = features.any(axis=-1)
    assert reached.any() and (grids["state"][reached] == OCCUPIED).all()


@pytest.mark.usefixtures("eager_steps")
def test_a_reference_network_is_used_only_on_the_scene_set_it_learnt_from(tmp_path):
    card = si.train_reference_image_network(tmp_path / "weights", tmp_path, TINY, TINY_BUDGET, progress=False)
    path = tmp_path / "weights" / card.model
    card.write(path.with_suffix(".json"))
    assert card.target == "sceneimages" and 0 <= card.test["pixel_accuracy"] <= 1
    assert card.data["parameters"]["n"] == TINY.n_scenes and card.file_bytes == path.stat().st_size
    assert si.shipped_image_network(tmp_path / TINY.folder, path) is not None
    other = replace(TINY, folder="other_scenes", seed=1)
    seg.ensure_scene_grids(tmp_path, other)
    assert si.shipped_image_network(tmp_path / other.folder, path) is None  # another seed: train anew
    assert si.shipped_image_network(tmp_path / TINY.folder, tmp_path / "none.keras") is None
    # A U-Net of the ablation trained on that 2D network's features is loaded in its place ...
    unet_card = si.train_reference_scene_unet(tmp_path / "weights", tmp_path, "both", TINY, path, progress=False)
    unet_path = tmp_path / "weights" / unet_card.model
    unet_card.write(unet_path.with_suffix(".json"))
    assert unet_card.target == "sceneunetboth" and unet_card.settings["network"] == "both"
    shipped, models = {"both": unet_path}, {}
    report = run_scene_images(TINY, tmp_path, TINY_BUDGET, models=models, shipped_path=path, shipped_unets=shipped)
    assert report["image"]["shipped"] and report["image"]["train_seconds"] == card.training_seconds
    assert report["both"]["shipped"] and not report["images"]["shipped"]
    assert report["both"]["train_seconds"] == unet_card.training_seconds
    assert report["both"]["mean_iou"] == pytest.approx(unet_card.test["mean_iou"], abs=1e-4)
    # ... but not beside a 2D network trained here (the geometry row, which reads no image, taken from the
    # run above instead of trained again), nor at another budget (fewer chunks: one step per network).
    geometry = (models["geometry"], report["geometry"])
    assert not run_scene_images(TINY, tmp_path, TINY_BUDGET, shipped_path=None, geometry=geometry,
                                shipped_unets=shipped)["both"]["shipped"]
    shorter = replace(TINY, chunks=4)
    assert not run_scene_images(shorter, tmp_path, TINY_BUDGET, shipped_path=path,
                                shipped_unets=shipped)["both"]["shipped"]
    with pytest.raises(ValueError, match="did not learn from the scene set"):
        si.train_reference_scene_unet(tmp_path / "w2", tmp_path, "images", other, path, progress=False)


@pytest.mark.usefixtures("eager_steps")
def test_the_chapter_u_net_stands_as_the_geometry_row(tmp_path):
    folder = seg.ensure_scene_grids(tmp_path, TINY)
    train_x, train_y = seg.load_features(folder, "train")
    unet = seg.train_scene_unet(train_x, train_y, TINY, TINY.seed)
    entry = {"mean_iou": 0.5, "train_seconds": unet.seconds}
    models = {}
    report = run_scene_images(TINY, tmp_path, TINY_BUDGET, models=models, shipped_path=None,
                              geometry=(unet.model, entry))
    assert report["geometry"] == entry and models["geometry"] is unet.model
    assert report["both"]["parameters"] > unet.model.count_params()  # a second stream
