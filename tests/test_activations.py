"""Mish and DropBlock: values, the blocks DropBlock drops and how many, inference, saving."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras

from pcfilter_lib.nn.activations import DropBlock, Mish, block_seed_probability, make_activation, mish


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_mish_matches_a_numpy_reference_and_keras():
    x = np.concatenate([np.linspace(-30, 30, 601), [-1e4, 1e4, 0.0]]).astype(np.float32)
    reference = x.astype(np.float64) * np.tanh(np.logaddexp(0.0, x.astype(np.float64)))  # stable softplus
    np.testing.assert_allclose(_numpy(mish(x)), reference, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_numpy(Mish()(x)), _numpy(keras.activations.mish(x)), rtol=1e-6, atol=1e-7)
    # Its minimum, about -0.309 near x = -1.19: negative inputs still pass a little signal.
    assert reference.min() == pytest.approx(-0.3088, abs=1e-3)


def test_make_activation_names():
    assert isinstance(make_activation("mish"), Mish)
    assert isinstance(make_activation("relu"), keras.layers.ReLU)
    with pytest.raises(ValueError, match="unknown activation"):
        make_activation("swish")


def _drop(layer, x):
    return _numpy(layer(x, training=True))


def test_dropblock_is_the_identity_at_inference_and_at_rate_zero():
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 4)).astype(np.float32)
    np.testing.assert_array_equal(_numpy(DropBlock(0.3, 3, seed=1)(x, training=False)), x)
    np.testing.assert_array_equal(_numpy(DropBlock(0.0, 3, seed=1)(x, training=True)), x)


def _expected_drop(rate, block, spatial):
    """Exact expected dropped share: a cell is dropped unless every valid centre covering it stays off."""
    gamma = block_seed_probability(rate, block, spatial)
    before, after = (block - 1) // 2, block - 1 - (block - 1) // 2
    counts = []
    for s in spatial:
        c = np.arange(s)
        # centres j cover [j - after, j + before] and must satisfy after <= j <= s - 1 - before
        counts.append(np.minimum(s - 1 - before, c + after) - np.maximum(after, c - before) + 1)
    covering = np.prod(np.meshgrid(*counts, indexing="ij"), axis=0)
    return float(np.mean(1 - (1 - gamma) ** covering))


@pytest.mark.parametrize("spatial, block, rate", [((32, 32), 3, 0.1), ((16, 16, 16), 3, 0.15), ((20, 20), 2, 0.2)])
def test_dropblock_drops_whole_blocks_at_the_expected_rate(spatial, block, rate):
    x = np.ones((16, *spatial, 8), np.float32)
    y = _drop(DropBlock(rate, block, seed=3), x)
    dropped = y == 0
    # Every dropped cell belongs to a whole block x block (x block) square of dropped cells.
    structure = np.ones((1, *(block,) * len(spatial), 1), bool)
    np.testing.assert_array_equal(ndimage.binary_opening(dropped, structure=structure), dropped)
    expected = _expected_drop(rate, block, spatial)
    assert expected == pytest.approx(rate, rel=0.25)  # the paper's gamma aims at `rate`, less the overlaps
    assert dropped.mean() == pytest.approx(expected, abs=0.15 * expected)
    # The kept values are scaled so that the total stays the same.
    assert y.sum() == pytest.approx(x.sum(), rel=1e-5)
    assert len(np.unique(y[~dropped])) == 1


def test_dropblock_masks_differ_between_channels_and_calls():
    x = np.ones((1, 24, 24, 2), np.float32)
    layer = DropBlock(0.2, 3, seed=5)
    first, second = _drop(layer, x) == 0, _drop(layer, x) == 0
    assert not np.array_equal(first[..., 0], first[..., 1])
    assert not np.array_equal(first, second)


def test_dropblock_refuses_blocks_larger_than_the_map_and_bad_settings():
    with pytest.raises(ValueError, match="does not fit"):
        DropBlock(0.1, 5)(np.ones((1, 4, 4, 1), np.float32), training=True)
    with pytest.raises(ValueError, match="rate"):
        DropBlock(1.0, 3)
    with pytest.raises(ValueError, match="block_size"):
        DropBlock(0.1, 0)
    with pytest.raises(ValueError, match=r"\(B, H, W, C\)"):
        DropBlock(0.1, 1)(np.ones((2, 3), np.float32))


def test_layers_save_and_load_without_custom_objects(tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = DropBlock(0.1, 2, seed=0, name="drop")(x)
    outputs = Mish(name="mish")(x)
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.get_layer("drop"), DropBlock) and loaded.get_layer("drop").block_size == 2
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
