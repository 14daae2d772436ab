"""Resolution against accuracy, memory and time of a 3D network, and the eigenbasis of a partial scan."""

from dataclasses import replace

import keras
import numpy as np
import pytest

from pcfilter_lib.data import scene_voxels as sv
from pcfilter_lib.experiments import scene_structure as st
from pcfilter_lib.geometry.depth_fusion import FREE, OCCUPIED, UNKNOWN
from pcfilter_lib.models import scene_cnn
from pcfilter_lib.recipes.scene_segmentation import SceneRecipe, train_scene_unet


def test_coarsen_keeps_surfaces_and_states():
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[0, 0, 0] = 5  # one fine voxel of a part in a block of empty ones
    labels[2:, 2:, 2:] = 1
    labels[3, 3, 3] = 4
    state = np.full((4, 4, 4), UNKNOWN, np.uint8)
    state[0, 0, 0] = FREE
    state[2, 2, 2] = OCCUPIED
    tsdf = np.arange(64, dtype=np.float32).reshape(4, 4, 4) / 64
    t, s, lab = sv.coarsen(tsdf, state, labels, 2)
    assert t.shape == s.shape == lab.shape == (2, 2, 2)
    assert lab[0, 0, 0] == 5 and lab[1, 1, 1] == 1 and lab[0, 1, 0] == 0
    assert s[0, 0, 0] == FREE and s[1, 1, 1] == OCCUPIED and s[1, 0, 0] == UNKNOWN
    assert np.isclose(t[0, 0, 0], tsdf[:2, :2, :2].mean())
    with pytest.raises(ValueError, match="multiples"):
        sv.coarsen(tsdf, state, labels, 3)


def test_activation_memory_grows_with_the_cube_of_the_side():
    small, large = st.unet_activation_floats(16, (8, 16)), st.unet_activation_floats(32, (8, 16))
    assert large == 8 * small


def test_activation_count_is_every_layer_output_of_the_network():
    model = scene_cnn.build_scene_unet(filters=(4, 8, 16))
    outputs = keras.Model(model.input, [layer.output for layer in model.layers[1:]])(np.zeros((1, 16, 16, 16, 3)))
    assert sum(int(np.prod(o.shape[1:])) for o in outputs) == st.unet_activation_floats(16, (4, 8, 16))


def test_resolution_study_returns_a_row_per_resolution():
    rng = np.random.default_rng(0)
    n, side = 3, 16
    labels = np.zeros((n, side, side, side), np.uint8)
    state = np.full(labels.shape, FREE, np.uint8)
    for i in range(n):
        lo = rng.integers(0, side - 6, size=3)
        box = (i, *(slice(a, a + 5) for a in lo))
        labels[box], state[box] = 3, OCCUPIED
    tsdf = np.where(state == OCCUPIED, 0.0, 1.0).astype(np.float32)
    grids = {"tsdf": tsdf, "state": state, "labels": labels}
    recipe = SceneRecipe("test", "unused", 3, side, 1, (8, 8), unet_filters=(4, 8), epochs=2, chunks=8, batch_size=4)
    rows = st.resolution_study(grids, grids, recipe, resolutions=(8, 16))
    assert [r["resolution"] for r in rows] == [8, 16]
    assert rows[1]["input_bytes"] == 8 * rows[0]["input_bytes"]
    assert all(0 <= r["mean_iou"] <= 1 and r["seconds_per_scene"] > 0 and r["train_seconds"] > 0 for r in rows)
    with pytest.raises(ValueError, match="divide"):
        st.resolution_study(grids, grids, recipe, resolutions=(12,))
    # The U-Net already trained at the grids' own resolution, with the study's chunks, is not trained again.
    half = replace(recipe, chunk=side // 2)
    unet = train_scene_unet(sv.scene_features(tsdf, state), labels, half, seed=0)
    again = st.resolution_study(grids, grids, half, resolutions=(8, 16), trained=(unet.model, 123.0))
    assert again[1]["train_seconds"] == 123.0 and again[0]["train_seconds"] != 123.0


def test_eigenbasis_of_a_partial_scan_of_a_part():
    result = st.eigenbasis_under_partial_scan(k=6)
    assert result["seen_vertices"] < result["vertices"]
    assert result["eigenvalues_full"].shape == result["eigenvalues_partial"].shape == (6,)
    assert result["principal_angles_deg"].shape == (6,) and result["mean_angle_deg"] > 5
