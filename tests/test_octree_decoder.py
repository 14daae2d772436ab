"""The octree decoder of section 7c: its gather and scatter against NumPy loops, shapes, saving, training."""

import keras
import numpy as np
import pytest

from pcfilter_lib.experiments import octree_study
from pcfilter_lib.lessons.coarse_to_fine import cell_states
from pcfilter_lib.models import octree_decoder as od


def _refine_loop(layer, features, cells):
    """RefineCells in plain loops: the 3 x 3 x 3 neighbourhood of each cell, zeros outside."""
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in (layer.kernel, layer.bias))
    out_kernel, out_bias = (keras.ops.convert_to_numpy(w) for w in (layer.out_kernel, layer.out_bias))
    out = np.zeros((len(cells), 8), dtype=np.float64)
    for m, (b, i, j, k) in enumerate(cells):
        hidden = bias.astype(np.float64).copy()
        for o, (di, dj, dk) in enumerate(od.OFFSETS):
            x, y, z = i + di, j + dj, k + dk
            if all(0 <= v < s for v, s in zip((x, y, z), features.shape[1:4], strict=True)):
                hidden += features[b, x, y, z] @ kernel[o]
        out[m] = np.maximum(hidden, 0) @ out_kernel + out_bias
    return out


def test_refine_cells_matches_a_loop():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2, 4, 3, 5, 3)).astype(np.float32)
    cells = np.array([[0, 0, 0, 0], [0, 3, 2, 4], [1, 1, 1, 2], [1, 2, 0, 4]], dtype=np.int32)
    layer = od.RefineCells(hidden=6)
    got = keras.ops.convert_to_numpy(layer(features, cells))
    assert got.shape == (4, 8)
    np.testing.assert_allclose(got, _refine_loop(layer, features, cells), rtol=1e-5, atol=1e-5)


def test_refine_all_cells_is_the_dense_head():
    """Refining every cell is the dense decoder's head: a 3x3x3 convolution, ReLU, a 1x1x1 one."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(1, 4, 4, 4, 3)).astype(np.float32)
    layer = od.RefineCells(hidden=5)
    cells = np.argwhere(np.ones((1, 4, 4, 4), bool)).astype(np.int32)
    got = keras.ops.convert_to_numpy(layer(features, cells)).reshape(1, 4, 4, 4, 8)
    conv = keras.layers.Conv3D(5, 3, padding="same", activation="relu")
    conv.build(features.shape)
    conv.set_weights([layer.conv_kernel(), keras.ops.convert_to_numpy(layer.bias)])
    hidden = keras.ops.convert_to_numpy(conv(features))
    want = hidden @ keras.ops.convert_to_numpy(layer.out_kernel) + keras.ops.convert_to_numpy(layer.out_bias)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_assemble_matches_a_loop():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 3, 3, 3, 3)).astype(np.float32)
    cells = np.array([[0, 1, 2, 0], [1, 0, 0, 2]], dtype=np.int32)
    children = rng.normal(size=(2, 8)).astype(np.float32)
    got = keras.ops.convert_to_numpy(od.assemble(logits, children, cells))
    want = np.zeros((2, 6, 6, 6), dtype=np.float32)
    states = logits.argmax(-1)
    for b, i, j, k in np.ndindex(states.shape):
        want[b, 2 * i:2 * i + 2, 2 * j:2 * j + 2, 2 * k:2 * k + 2] = float(states[b, i, j, k] == od.FULL)
    for (b, i, j, k), child in zip(cells, children, strict=True):
        for n, (a, c, d) in enumerate(np.ndindex(2, 2, 2)):
            assert n == 4 * a + 2 * c + d
            want[b, 2 * i + a, 2 * j + c, 2 * k + d] = 1 / (1 + np.exp(-child[n]))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_space_and_depth_are_inverse():
    fine = np.random.default_rng(3).random((2, 4, 6, 2)).astype(np.float32)
    blocks = keras.ops.convert_to_numpy(od.space_to_depth(fine))
    assert blocks.shape == (2, 2, 3, 1, 8)
    assert blocks[1, 1, 2, 0, 4 * 1 + 2 * 0 + 1] == fine[1, 3, 4, 1]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(od.depth_to_space(blocks)), fine)


def test_targets_agree_with_cell_states():
    fine = np.random.default_rng(4).random((2, 8, 8, 8)) < 0.5
    fine[0, :2, :2, :2] = True
    t = od.targets(fine)
    assert t["grid"].shape == (2, 4, 4, 4, 1) and t["fine"].shape == (2, 8, 8, 8)
    for n in range(2):
        np.testing.assert_array_equal(t["states"][n], cell_states(fine[n]))
    np.testing.assert_array_equal(t["refine"], t["states"] == od.MIXED)


def _tiny_set(n=4, side=8):
    rng = np.random.default_rng(5)
    fine = np.zeros((n, 2 * side, 2 * side, 2 * side), dtype=bool)
    for s in range(n):
        centre, radius = rng.uniform(5, 11, 3), rng.uniform(3, 5)
        grid = np.indices(fine.shape[1:]).transpose(1, 2, 3, 0) + 0.5
        fine[s] = np.linalg.norm(grid - centre, axis=-1) < radius
    return od.targets(fine)


def test_shapes_and_save_load(tmp_path):
    data = _tiny_set()
    octree = od.OctreeAutoencoder(side=8, code=8, width=4, hidden=6)
    out = octree({"grid": data["grid"]})
    assert out["states"].shape == (4, 8, 8, 8, 3) and out["fine"].shape == (4, 16, 16, 16)
    assert out["children"].shape[1] == 8 and out["cells"].shape[1] == 4
    forced = octree({"grid": data["grid"], "refine": data["refine"]})
    assert forced["cells"].shape[0] == int(data["refine"].sum())
    octree.save(tmp_path / "octree.keras")
    again = keras.models.load_model(tmp_path / "octree.keras")
    assert isinstance(again, od.OctreeAutoencoder) and again.hidden == 6
    inputs = {"grid": data["grid"], "refine": data["refine"]}
    np.testing.assert_allclose(octree.predict_on_batch(data["grid"]),
                               keras.ops.convert_to_numpy(octree({"grid": data["grid"]})["fine"]), atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(inputs)["fine"]),
                               keras.ops.convert_to_numpy(octree(inputs)["fine"]), atol=1e-6)
    dense = od.build_dense_autoencoder(side=8, code=8, width=4, hidden=6)
    assert dense(data["grid"]).shape == (4, 16, 16, 16)
    dense.save(tmp_path / "dense.keras")
    loaded = keras.models.load_model(tmp_path / "dense.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(data["grid"])),
                               keras.ops.convert_to_numpy(dense(data["grid"])), atol=1e-6)
    # the heads have the same weights but the octree's three states
    assert od.decoder_weights(octree) - od.decoder_weights(dense) == 4 * 3 + 3


def test_octree_trains_and_counts():
    data = _tiny_set()
    keras.utils.set_random_seed(0)
    model = od.OctreeAutoencoder(side=8, code=8, width=4, hidden=6)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    history = model.fit({"grid": data["grid"], "refine": data["refine"]},
                        {"states": data["states"], "fine": data["fine"]}, batch_size=2, epochs=8, verbose=0)
    loss = history.history["loss"]
    assert loss[-1] < 0.95 * loss[0]
    floats = od.activation_floats(model, refined=10)
    assert floats["head"] == 8 ** 3 * 3 + 10 * (4 + 6 + 8)
    assert floats["total"] == floats["trunk"] + floats["head"] + 16 ** 3


def test_recipes():
    assert octree_study.FAST.train < octree_study.FULL.train
    with pytest.raises(ValueError):
        od.OctreeAutoencoder(side=12)


def test_full_size_loads_the_shipped_pair():
    """The shipped decoders' cards record FULL's recipe and data, so a full-size run trains nothing."""
    from pcfilter_lib.recipes import octree_generation

    runs = octree_generation.train_pair(octree_generation.FULL, train=None)
    assert all(run["shipped"] for run in runs.values())
    assert isinstance(runs["octree"]["model"], od.OctreeAutoencoder)
