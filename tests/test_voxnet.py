"""VoxNet-like 3D CNN: shapes, parameter count, learning a separable task, saving and loading."""

from __future__ import annotations

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras

from pcfilter_lib.models.voxnet import build_voxnet


def _grids(n=32, resolution=16, seed=0):
    """Half the grids hold a solid cube, half a thin plate: a task a 3D CNN learns at once."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, resolution, resolution, resolution, 1), np.float32)
    y = np.arange(n) % 2
    for i in range(n):
        a, b, c = rng.integers(2, resolution - 9, size=3)
        if y[i]:
            x[i, a:a + 7, b:b + 7, c:c + 7] = 1
        else:
            x[i, a:a + 8, b:b + 8, c] = 1
    return x, y


def test_shapes_and_parameters_match_the_paper_layout():
    model = build_voxnet(10, 32)
    assert model.output_shape == (None, 10)
    # conv 5^3 x 32 (4,032) + conv 3^3 x 32 x 32 (27,680) + dense 6^3*32 -> 128 (884,864) + 128 -> 10 (1,290)
    assert model.count_params() == 4032 + 27680 + 884864 + 1290
    assert model.get_layer("block1_conv").output.shape[1:4] == (14, 14, 14)
    probabilities = model(np.zeros((2, 32, 32, 32, 1), np.float32))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.sum(probabilities, axis=1)), 1, rtol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="14"):
        build_voxnet(10, 8)
    with pytest.raises(ValueError, match="num_classes"):
        build_voxnet(1)


def test_learns_cubes_from_plates_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    x, y = _grids()
    model = build_voxnet(2, 16, filters=8, hidden=16)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    before = model.evaluate(x, y, verbose=0)[0]
    model.fit(x, y, epochs=8, batch_size=8, verbose=0)
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert loss < before and accuracy >= 0.9
    path = tmp_path / "voxnet.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x[:4], verbose=0), model.predict(x[:4], verbose=0), atol=1e-6)
