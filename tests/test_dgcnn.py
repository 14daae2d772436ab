"""DGCNN: EdgeConv against a plain NumPy reference (the kNN is tested in test_point_ops), the dynamic and
the fixed graph, the model (build, one training step, save and load, order of the points), and the same
numbers under JAX."""

from __future__ import annotations

import jax_backend
import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras
from test_point_ops import nearest_reference

from pcfilter_lib.models import dgcnn


def _points(b=2, n=24, c=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(b, n, c)).astype(np.float32)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def edgeconv_reference(layer, x, graph=None):
    """max over j in kNN(i) of MLP([x_i, x_j - x_i]) with inference-mode batch norm, one cloud (N, C)."""
    graph = x if graph is None else graph
    neighbours = nearest_reference(graph, graph, layer.k)
    edges = np.concatenate([np.repeat(x[:, None], layer.k, axis=1), x[neighbours] - x[:, None]], axis=-1)
    kernels = [_np(layer.kernel)] + [_np(d.kernel) for d in layer.dense]
    h = edges
    for kernel, bn in zip(kernels, layer.norm, strict=True):
        h = h @ kernel
        h = (h - _np(bn.moving_mean)) / np.sqrt(_np(bn.moving_variance) + bn.epsilon) * _np(bn.gamma) + _np(bn.beta)
        h = np.where(h > 0, h, layer.negative_slope * h)
    return h.max(axis=1)


def randomise_batch_norm(layer, seed=0):
    rng = np.random.default_rng(seed)
    for sub in layer._flatten_layers():
        if isinstance(sub, keras.layers.BatchNormalization):
            n = sub.gamma.shape[0]
            sub.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 0.2, n), rng.normal(0, 0.2, n),
                             rng.uniform(0.5, 2, n)])


@pytest.mark.parametrize("filters", [16, (12, 8)])
def test_edgeconv_matches_the_reference(filters):
    x = _points(n=20, c=4, seed=1)
    layer = dgcnn.EdgeConv(filters, k=5)
    layer(x)
    randomise_batch_norm(layer)
    got = _np(layer(x, training=False))
    assert got.shape == (2, 20, layer.filters[-1])
    for b in range(2):
        np.testing.assert_allclose(got[b], edgeconv_reference(layer, x[b]), rtol=1e-4, atol=1e-5)


def test_edgeconv_on_a_fixed_graph_uses_that_graph():
    x, xyz = _points(n=20, c=6, seed=2), _points(n=20, seed=3)
    layer = dgcnn.EdgeConv(8, k=4)
    layer([x, xyz])
    randomise_batch_norm(layer)
    fixed, dynamic = _np(layer([x, xyz], training=False)), _np(layer(x, training=False))
    for b in range(2):
        np.testing.assert_allclose(fixed[b], edgeconv_reference(layer, x[b], xyz[b]), rtol=1e-4, atol=1e-5)
    assert not np.allclose(fixed, dynamic)  # the feature-space graph differs from the spatial one


def test_settings_are_checked():
    with pytest.raises(ValueError):
        dgcnn.EdgeConv(0)
    with pytest.raises(ValueError, match="k = 30"):
        dgcnn.EdgeConv(8, k=30)(keras.Input((20, 3)))
    with pytest.raises(ValueError, match="k = 30"):
        dgcnn.build_dgcnn(4, num_points=20, k=30)
    with pytest.raises(ValueError, match="width"):
        dgcnn.build_dgcnn(4, width=0)


def test_model_trains_one_step_ignores_point_order_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    model = dgcnn.build_dgcnn(3, 24, k=6, width=0.125)
    assert model.output_shape == (None, 3)
    # One step, eagerly: tracing it would take seconds. Building the model has run every layer on symbolic
    # clouds of any batch size already.
    model.compile("adam", "sparse_categorical_crossentropy", run_eagerly=True)
    x = _points(b=6, n=24, seed=4)
    before = [w.copy() for w in model.get_weights()]
    assert np.isfinite(float(np.ravel(model.train_on_batch(x, np.arange(6) % 3))[0]))
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    y = _np(model(x, training=False))
    order = np.random.default_rng(5).permutation(24)
    np.testing.assert_allclose(_np(model(x[:, order], training=False)), y, rtol=1e-4, atol=1e-6)
    model.save(tmp_path / "dgcnn.keras")
    loaded = keras.models.load_model(tmp_path / "dgcnn.keras")
    np.testing.assert_allclose(_np(loaded(x, training=False)), y, rtol=1e-5, atol=1e-6)
    static = dgcnn.build_dgcnn(3, 24, k=6, width=0.125, dynamic=False)
    assert static.count_params() == model.count_params()
    assert static.get_layer("edgeconv1").input[1].shape == (None, 24, 3)


def test_default_model_is_small():
    model = dgcnn.build_dgcnn(10, 512)
    assert model.count_params() < 200_000  # about as many weights as the small PointNet and PointNet++
    assert dgcnn.build_dgcnn(10, 512, width=1.0).count_params() > 10 * model.count_params()
    assert [model.get_layer(f"edgeconv{i}").filters[-1] for i in range(4)] == [16, 16, 32, 64]


def _jax_inputs(folder):
    keras.utils.set_random_seed(1)
    dgcnn.build_dgcnn(3, 24, k=6, width=0.125).save(folder / "m.keras")
    np.save(folder / "x.npy", _points(b=3, n=24, seed=6))


jax_backend.declare("dgcnn", __file__, _jax_inputs, """
    from pcfilter_lib.models import dgcnn
    model = keras.models.load_model(folder / "m.keras")
    out = {"backend": keras.backend.backend(), "pred": model.predict(np.load(folder / "x.npy"), verbose=0).tolist()}
""")


def test_jax_backend_gives_the_same_numbers(request):
    folder, out = jax_backend.numbers("dgcnn", request)
    assert out["backend"] == "jax"
    model = keras.models.load_model(folder / "m.keras")
    np.testing.assert_allclose(out["pred"], _np(model(np.load(folder / "x.npy"), training=False)), rtol=1e-4,
                               atol=1e-5)
