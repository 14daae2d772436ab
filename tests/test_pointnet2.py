"""PointNet++: each layer against a plain NumPy reference (the operations are tested in test_point_ops),
the models (build, one training step, save and load), and the same numbers on the JAX backend."""

from __future__ import annotations

import jax_backend
import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras
from test_point_ops import ball_query_reference, fps_reference, interpolate_reference

from pcfilter_lib.models import pointnet2

TINY_LEVELS = [{"radius": 0.5, "num_neighbors": 8, "mlp": (8, 16)},
               {"radius": (0.6, 1.0), "num_neighbors": (4, 6), "mlp": ((8,), (16,))}]  # single-, then multi-scale


def _points(b=2, n=40, c=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(b, n, c)).astype(np.float32)


def _np(x):
    return keras.ops.convert_to_numpy(x)


# NumPy references (the operations' come from test_point_ops) -------------------------------------


def shared_mlp_reference(x, mlp):
    for dense, bn in zip(mlp.dense, mlp.norm, strict=True):
        x = x @ _np(dense.kernel)
        x = (x - _np(bn.moving_mean)) / np.sqrt(_np(bn.moving_variance) + bn.epsilon) * _np(bn.gamma) + _np(bn.beta)
        x = np.maximum(x, 0)
    return x


def randomise_batch_norm(layer, seed=0):
    """Give every batch normalisation of ``layer`` non-trivial statistics and scales."""
    rng = np.random.default_rng(seed)
    for sub in layer._flatten_layers():
        if isinstance(sub, keras.layers.BatchNormalization):
            n = sub.gamma.shape[0]
            sub.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 0.2, n), rng.normal(0, 0.2, n),
                             rng.uniform(0.5, 2, n)])


# Layers -----------------------------------------------------------------------------------------


def test_set_abstraction_single_and_multi_scale_match_the_reference():
    xyz, features = _points(n=40), _points(n=40, c=2, seed=3)
    for radius, k, mlp in ((0.6, 8, (8, 16)), ((0.4, 0.9), (4, 10), ((8,), (6, 12)))):
        layer = pointnet2.SetAbstraction(10, radius, k, mlp)
        layer([xyz, features])
        randomise_batch_norm(layer)
        centroids, out = (_np(t) for t in layer([xyz, features], training=False))
        radii, ks = np.atleast_1d(radius), np.atleast_1d(k)
        assert out.shape == (2, 10, sum(scale.widths[-1] for scale in layer.scales))
        for b in range(2):
            picked = fps_reference(xyz[b], 10)
            np.testing.assert_allclose(centroids[b], xyz[b][picked], atol=1e-7)
            expected = []
            for r, kk, scale in zip(radii, ks, layer.scales, strict=True):
                idx = ball_query_reference(xyz[b], xyz[b][picked], r, kk)
                grouped = np.concatenate([xyz[b][idx] - xyz[b][picked][:, None], features[b][idx]], axis=-1)
                expected.append(shared_mlp_reference(grouped, scale).max(axis=1))
            np.testing.assert_allclose(out[b], np.concatenate(expected, axis=-1), rtol=1e-4, atol=1e-5)


def test_set_abstraction_of_all_points_is_a_pointnet():
    xyz, features = _points(n=20), _points(n=20, c=4, seed=5)
    layer = pointnet2.SetAbstraction(None, mlp=(8, 12))
    layer([xyz, features])
    randomise_batch_norm(layer)
    centroid, out = (_np(t) for t in layer([xyz, features], training=False))
    assert centroid.shape == (2, 1, 3) and not centroid.any()
    expected = shared_mlp_reference(np.concatenate([xyz, features], -1), layer.scales[0]).max(axis=1)
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-4, atol=1e-5)


def test_feature_propagation_matches_the_reference():
    xyz, skip = _points(n=30), _points(n=30, c=3, seed=6)
    sparse_xyz, sparse_features = _points(n=8, seed=7), _points(n=8, c=5, seed=8)
    layer = pointnet2.FeaturePropagation((16, 8))
    layer([xyz, sparse_xyz, sparse_features, skip])
    randomise_batch_norm(layer)
    got = _np(layer([xyz, sparse_xyz, sparse_features, skip], training=False))
    assert got.shape == (2, 30, 8)
    for b in range(2):
        x = np.concatenate([skip[b], interpolate_reference(xyz[b], sparse_xyz[b], sparse_features[b])], axis=-1)
        np.testing.assert_allclose(got[b], shared_mlp_reference(x, layer.shared), rtol=1e-4, atol=1e-5)


def test_layers_reject_bad_settings():
    for bad in ({"num_samples": 0, "radius": 0.2, "num_neighbors": 8},
                {"num_samples": 8, "radius": (0.2, 0.4), "num_neighbors": 8},
                {"num_samples": 8, "radius": -1.0, "num_neighbors": 8}):
        with pytest.raises(ValueError):
            pointnet2.SetAbstraction(mlp=(8,), **bad)
    with pytest.raises(ValueError, match="centroids"):
        pointnet2.SetAbstraction(50, 0.2, 8, (8,))(keras.Input((20, 3)))
    with pytest.raises(ValueError, match="decreasing"):
        pointnet2.build_pointnet2(4, 64, samples=(8, 16))
    with pytest.raises(ValueError, match="channels"):
        pointnet2.build_pointnet2(4, 64, channels=2)


# Models -----------------------------------------------------------------------------------------


def _predict(model, x):
    return _np(model(x, training=False))  # eager: no graph to trace for a single call


def _tiny_classifier():
    return pointnet2.build_pointnet2(3, 32, samples=(12, 4), levels=TINY_LEVELS, width=0.25)


def test_classifier_trains_one_step_and_round_trips_through_a_file(tmp_path):
    keras.utils.set_random_seed(0)
    model = _tiny_classifier()
    assert model.output_shape == (None, 3)
    model.compile("adam", "sparse_categorical_crossentropy")
    x = _points(b=6, n=32)
    before = [w.copy() for w in model.get_weights()]
    loss = float(np.ravel(model.train_on_batch(x, np.arange(6) % 3))[0])
    assert np.isfinite(loss)
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    model.save(tmp_path / "pointnet2.keras")
    loaded = keras.models.load_model(tmp_path / "pointnet2.keras")
    np.testing.assert_allclose(_predict(loaded, x), _predict(model, x), rtol=1e-5, atol=1e-6)


def test_segmentation_model_scores_every_point_and_round_trips(tmp_path):
    model = pointnet2.build_pointnet2_segmentation(4, 32, channels=5, samples=(12, 4), levels=TINY_LEVELS)
    x = _points(b=2, n=32, c=5)
    y = _predict(model, x)
    assert y.shape == (2, 32, 4)
    np.testing.assert_allclose(y.sum(-1), 1, rtol=1e-5)
    # One step, eagerly: tracing it would take seconds (the classifier above trains in graph mode).
    model.compile("adam", "sparse_categorical_crossentropy", run_eagerly=True)
    assert np.isfinite(float(np.ravel(model.train_on_batch(x, np.zeros((2, 32))))[0]))
    model.save(tmp_path / "seg.keras")
    loaded = keras.models.load_model(tmp_path / "seg.keras")
    np.testing.assert_allclose(_predict(loaded, x), _predict(model, x), rtol=1e-5, atol=1e-6)
    binary = pointnet2.build_pointnet2_segmentation(1, 32, samples=(12, 4), levels=TINY_LEVELS)
    assert binary.output_shape == (None, 32, 1)


def test_default_models_are_small_and_msg_is_wider():
    ssg, msg = pointnet2.build_pointnet2(10, 512), pointnet2.build_pointnet2(10, 512, msg=True)
    assert ssg.count_params() < msg.count_params() < 200_000
    assert msg.get_layer("sa1").output[1].shape == (None, 128, sum(m[-1] for m in msg.get_layer("sa1").mlp))
    assert pointnet2.build_pointnet2(10, 512, width=1.0).count_params() > 10 * ssg.count_params()


def _jax_inputs(folder):
    keras.utils.set_random_seed(1)
    _tiny_classifier().save(folder / "m.keras")
    np.save(folder / "x.npy", _points(b=3, n=32, seed=9))


jax_backend.declare("pointnet2", __file__, _jax_inputs, """
    from pcfilter_lib.models import pointnet2
    model = keras.models.load_model(folder / "m.keras")
    out = {"backend": keras.backend.backend(), "pred": model.predict(np.load(folder / "x.npy"), verbose=0).tolist()}
""")


def test_jax_backend_gives_the_same_numbers(request):
    """The same file, loaded under JAX, predicts what TensorFlow predicts (test_point_ops compares the
    operations)."""
    folder, out = jax_backend.numbers("pointnet2", request)
    assert out["backend"] == "jax"
    model = keras.models.load_model(folder / "m.keras")
    np.testing.assert_allclose(out["pred"], _predict(model, np.load(folder / "x.npy")), rtol=1e-4, atol=1e-5)
