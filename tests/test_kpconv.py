"""KPConv: the layer against a plain NumPy sum over neighbours and kernel points, the kernel's shape,
the model (build, one training step, save and load, order of the points), and the same numbers under
JAX."""

from __future__ import annotations

import jax_backend
import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras
from test_point_ops import nearest_reference

from pcfilter_lib.models import kpconv


def _points(b=2, n=24, c=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(b, n, c)).astype(np.float32)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def kpconv_reference(layer, xyz, features):
    """g(x) = sum_j sum_k max(0, 1 - |y_j - x - r x_k| / (r sigma)) f_j W_k for every point x of one
    cloud (every point a centre), written as loops."""
    kernel_points = kpconv.kernel_points() * layer.radius
    weights = _np(layer.kernel).reshape(len(kernel_points), features.shape[-1], layer.filters)
    neighbours = nearest_reference(xyz, xyz, layer.num_neighbors)
    out = np.zeros((len(xyz), layer.filters))
    for i, row in enumerate(neighbours):
        for j in row:
            for k, point in enumerate(kernel_points):
                h = max(0.0, 1 - np.linalg.norm(xyz[j] - xyz[i] - point) / (layer.radius * layer.sigma))
                out[i] += h * features[j] @ weights[k]
    return out


def test_kernel_points_fill_a_ball_evenly():
    points = kpconv.kernel_points()
    assert points.shape == (15, 3)
    np.testing.assert_allclose(np.linalg.norm(points[1:], axis=1), 2 / 3, rtol=1e-6)
    np.testing.assert_allclose(points.sum(axis=0), 0, atol=1e-6)  # symmetric about the centre


def test_kpconv_matches_the_reference():
    layer = kpconv.KPConv(5, radius=0.6, num_neighbors=6)
    xyz, features = _points(n=20, seed=1), _points(n=20, c=4, seed=2)
    centres, out = layer([xyz, features])
    np.testing.assert_array_equal(_np(centres), xyz)
    for b in range(2):
        np.testing.assert_allclose(_np(out)[b], kpconv_reference(layer, xyz[b], features[b]), rtol=1e-4, atol=1e-5)
    # The load is the output for a constant feature of one and identity weights, summed over the kernel.
    ones = kpconv.KPConv(15, radius=0.6, num_neighbors=6)
    ones.build(((None, 20, 3), (None, 20, 1)))
    ones.kernel.assign(np.eye(15, dtype=np.float32))
    np.testing.assert_allclose(_np(ones.load(xyz)), _np(ones([xyz, np.ones((2, 20, 1), np.float32)])[1]).sum(-1),
                               rtol=1e-5)


def test_sampled_centres_come_from_the_cloud_and_settings_are_checked():
    layer = kpconv.KPConv(3, radius=0.5, num_neighbors=4, num_samples=7)
    xyz = _points(n=20, seed=3)
    centres, out = layer([xyz, np.ones((2, 20, 1), np.float32)])
    assert _np(out).shape == (2, 7, 3)
    for b in range(2):
        assert all(any(np.allclose(c, p) for p in xyz[b]) for c in _np(centres)[b])
    with pytest.raises(ValueError, match="positive"):
        kpconv.KPConv(3, radius=0)
    with pytest.raises(ValueError, match="cannot give"):
        kpconv.KPConv(3, radius=0.5, num_neighbors=30)([xyz, xyz])
    with pytest.raises(ValueError, match="cannot pick"):
        kpconv.build_kpconv(3, 24, levels=((None, 0.2, 4, 8), (32, 0.4, 4, 8)))


def test_model_trains_one_step_ignores_point_order_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    levels = ((None, 0.3, 6, 16), (12, 0.6, 6, 32))
    model = kpconv.build_kpconv(3, 24, levels=levels, width=0.5)
    assert model.output_shape == (None, 3)
    model.compile("adam", "sparse_categorical_crossentropy", run_eagerly=True)
    x = _points(b=6, n=24, seed=4)
    before = [w.copy() for w in model.get_weights()]
    assert np.isfinite(float(np.ravel(model.train_on_batch(x, np.arange(6) % 3))[0]))
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    # Farthest-point sampling starts at the first point: keep it first, shuffle the rest.
    order = np.r_[0, 1 + np.random.default_rng(5).permutation(23)]
    y = _np(model(x, training=False))
    np.testing.assert_allclose(_np(model(x[:, order], training=False)), y, rtol=1e-4, atol=1e-6)
    model.save(tmp_path / "kpconv.keras")
    loaded = keras.models.load_model(tmp_path / "kpconv.keras")
    np.testing.assert_allclose(_np(loaded(x, training=False)), y, rtol=1e-5, atol=1e-6)


def test_default_model_is_small():
    model = kpconv.build_kpconv(10, 512)
    assert model.count_params() < 200_000  # about as many weights as the other quarter-width classifiers
    assert [model.get_layer(f"kpconv{i}").filters for i in range(3)] == [16, 32, 64]


def _jax_inputs(folder):
    keras.utils.set_random_seed(1)
    kpconv.build_kpconv(3, 24, levels=((None, 0.3, 6, 16), (12, 0.6, 6, 32)), width=0.5).save(folder / "m.keras")
    np.save(folder / "x.npy", _points(b=3, n=24, seed=6))


jax_backend.declare("kpconv", __file__, _jax_inputs, """
    from pcfilter_lib.models import kpconv
    model = keras.models.load_model(folder / "m.keras")
    out = {"backend": keras.backend.backend(), "pred": model.predict(np.load(folder / "x.npy"), verbose=0).tolist()}
""")


def test_jax_backend_gives_the_same_numbers(request):
    folder, out = jax_backend.numbers("kpconv", request)
    assert out["backend"] == "jax"
    model = keras.models.load_model(folder / "m.keras")
    np.testing.assert_allclose(out["pred"], _np(model(np.load(folder / "x.npy"), training=False)), rtol=1e-4,
                               atol=1e-5)
