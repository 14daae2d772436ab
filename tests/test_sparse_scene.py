"""Section 8c's sparse U-Net: its levels, its output on a tiny scene, its layers against their dense
equivalents, saving and loading, its memory count, the study's resolution mapping, and the shipped
networks (their cards and the predictions recorded when they were trained)."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from pcfilter_lib.data.scene_voxels import scene_features
from pcfilter_lib.experiments import sparse_study
from pcfilter_lib.geometry.depth_fusion import FREE, OCCUPIED, UNKNOWN
from pcfilter_lib.io.model_cards import SHIPPED_TARGETS, read_model_card
from pcfilter_lib.labels import SEMANTIC_BACKGROUND
from pcfilter_lib.models import sparse_scene
from pcfilter_lib.models.saved import load_saved_model, save_for_inference
from pcfilter_lib.nn.sparse_layers import SparseMaxPool, SparseUnpool, SubmanifoldConv3D
from pcfilter_lib.recipes import scene_segmentation as seg
from pcfilter_lib.recipes import sparse_scenes

RECORDED = Path(__file__).parent / "data" / "sparse_scene_outputs.npz"


def tiny_scene(side: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A scene's (side^3, 3) features with a floor and a box occupied, free above, unknown below."""
    rng = np.random.default_rng(seed)
    state = np.full((side,) * 3, FREE, np.uint8)
    state[..., :2] = UNKNOWN
    state[..., 2] = OCCUPIED
    state[3:7, 4:9, 3:6] = OCCUPIED
    tsdf = np.where(state == OCCUPIED, rng.uniform(-0.3, 0.3, state.shape), 1.0).astype(np.float32)
    return scene_features(tsdf, state), state


def test_site_levels_halve_the_sites_and_point_every_site_at_its_parent():
    _, state = tiny_scene()
    coords = sparse_scene.active_sites(state)
    sites, parents = sparse_scene.site_levels(coords, 3)
    assert len(sites) == 3 and len(parents) == 2 and len(sites[0]) == np.count_nonzero(state == OCCUPIED)
    for fine, coarse, parent in zip(sites[:-1], sites[1:], parents, strict=True):
        np.testing.assert_array_equal(coarse[parent], fine // 2)
        assert len(np.unique(coarse, axis=0)) == len(coarse)


def test_the_network_labels_every_site_and_only_the_sites():
    features, state = tiny_scene()
    model = sparse_scene.build_sparse_unet(filters=(4, 8))
    coords = sparse_scene.active_sites(state)
    probabilities = sparse_scene.predict_sites(model, sparse_scene.scene_inputs(features, coords, 2))
    assert probabilities.shape == (len(coords), sparse_scene.CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    grid = sparse_scene.predict_scene(model, features)
    np.testing.assert_allclose(grid[tuple(coords.T)], probabilities, rtol=1e-5, atol=1e-6)
    outside = state != OCCUPIED
    assert np.all(grid[outside][:, SEMANTIC_BACKGROUND] == 1.0)
    with pytest.raises(ValueError, match="two levels"):
        sparse_scene.build_sparse_unet(filters=(4,))


def test_the_sparse_layers_equal_their_dense_equivalents_at_the_sites():
    features, state = tiny_scene()
    coords = sparse_scene.active_sites(state)
    inputs = sparse_scene.scene_inputs(features, coords, 2)
    rules = [inputs[f"rules0_{r}"] for r in sparse_scene.RULES]
    conv = SubmanifoldConv3D(4, activation="relu", kernel_initializer="random_normal")
    sparse = keras.ops.convert_to_numpy(conv([inputs["features"], *rules]))  # non-negative after the ReLU
    dense_conv = keras.layers.Conv3D(4, 3, padding="same", activation="relu")
    dense_conv.build((1, *features.shape))
    dense_conv.set_weights([keras.ops.convert_to_numpy(w) for w in conv.weights])
    grid = np.where(state[..., None] == OCCUPIED, features, 0.0)[None]
    dense = keras.ops.convert_to_numpy(dense_conv(grid))
    np.testing.assert_allclose(sparse, dense[0][tuple(coords.T)], rtol=1e-4, atol=1e-5)
    # Max pooling: over the occupied voxels of each 2x2x2 block, as MaxPooling3D over the grid that
    # holds the sites' (non-negative) features and zeros elsewhere.
    masked = np.zeros_like(dense)
    masked[0][tuple(coords.T)] = sparse
    pooled = SparseMaxPool()([sparse, inputs["parent1"], inputs["sites1"]])
    dense_pooled = keras.ops.convert_to_numpy(keras.layers.MaxPooling3D(2)(masked))[0]
    coarse = inputs["sites1"]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pooled), dense_pooled[tuple(coarse.T)], rtol=1e-6)
    # Unpooling: every site gets its parent's features, as UpSampling3D at the sites.
    up = keras.ops.convert_to_numpy(SparseUnpool()([pooled, inputs["parent1"]]))
    dense_up = keras.ops.convert_to_numpy(keras.layers.UpSampling3D(2)(dense_pooled[None]))[0]
    np.testing.assert_allclose(up, dense_up[tuple(coords.T)], rtol=1e-6)


def test_saving_and_loading_gives_the_same_network(tmp_path):
    features, _ = tiny_scene()
    keras.utils.set_random_seed(1)
    model = sparse_scene.build_sparse_unet(filters=(4, 8, 8))
    path = save_for_inference(model, tmp_path / "sparse.keras")
    again = load_saved_model(path)
    np.testing.assert_allclose(sparse_scene.predict_scene(again, features), sparse_scene.predict_scene(model, features),
                               rtol=1e-6, atol=1e-7)


def test_the_memory_count_is_every_layer_output_and_the_input():
    features, state = tiny_scene()
    filters = (4, 8, 8)
    model = sparse_scene.build_sparse_unet(filters=filters)
    coords = sparse_scene.active_sites(state)
    inputs = sparse_scene.scene_inputs(features, coords, 3)
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    outputs = keras.Model(model.input, [layer.output for layer in layers])(inputs)
    counted = sum(int(np.prod(o.shape)) for o in outputs) + inputs["features"].size
    sites = [len(a) for a in sparse_scene.site_levels(coords, 3)[0]]
    assert sparse_scene.activation_floats(sites, filters) == counted


def test_predictions_are_carried_between_resolutions():
    classes = np.zeros((4, 4, 4), np.uint8)
    classes[1, 2, 3] = 5
    up = sparse_study.upsample(classes, 2)
    assert up.shape == (8, 8, 8) and np.all(up[2:4, 4:6, 6:8] == 5) and (up == 5).sum() == 8
    np.testing.assert_array_equal(sparse_study.downsample(up, 2), classes)
    thin = np.zeros((4, 4, 4), np.uint8)
    thin[0, 0, 0] = 3  # one surface voxel of eight: the coarse voxel keeps the surface's class
    assert sparse_study.downsample(thin, 2)[0, 0, 0] == 3
    # The 2R grid starts three of its voxels above the R grid: fine voxel k lies in coarse (k + 3) // 2.
    shift = sparse_study.grid_shift(2)
    assert shift == 3
    shifted = sparse_study.upsample(classes, 2, shift)
    assert shifted.shape == (8, 8, 8) and np.all(shifted[2:4, 4:6, 3:5] == 5) and (shifted == 5).sum() == 8
    back = sparse_study.downsample(shifted, 2, shift)
    np.testing.assert_array_equal(back[..., 1:], classes[..., 1:])  # coarse layer 0 lies below the fine grid


def test_the_doubled_recipe_keeps_the_scenes_and_the_work_of_a_step():
    full = sparse_scenes.doubled(seg.CHAPTER_FULL)
    assert (full.resolution, full.chunk, full.seed) == (128, 64, seg.CHAPTER_FULL.seed)
    assert full.batch_size * full.chunk ** 3 == seg.CHAPTER_FULL.batch_size * seg.CHAPTER_FULL.chunk ** 3
    assert full.folder != seg.CHAPTER_FULL.folder


@pytest.mark.parametrize("key", ["dense 2R", "sparse R", "sparse 2R"])
def test_the_shipped_networks_have_cards_and_give_their_recorded_predictions(key):
    path = sparse_scenes.shipped_paths(seg.CHAPTER_FULL)[key]
    assert SHIPPED_TARGETS[path.name] == sparse_scenes.TARGET
    card = read_model_card(path)
    assert card.model == path.name and card.command and card.test and card.file_bytes == path.stat().st_size
    # The section loads it only where its card records the settings the recipe would train with.
    kind, tag = key.split()
    scene = seg.CHAPTER_FULL if tag == "R" else sparse_scenes.doubled(seg.CHAPTER_FULL)
    settings = (seg.network_settings(scene, "unet") if kind == "dense" else
                sparse_scenes.sparse_settings(scene, sparse_scenes.FULL))
    assert card.settings == json.loads(json.dumps(settings))
    model = load_saved_model(path)
    with np.load(RECORDED) as recorded:
        predicted = sparse_study.PREDICT[kind](model, recorded["input"])
        np.testing.assert_allclose(predicted, recorded[path.stem], rtol=1e-4, atol=1e-5)
