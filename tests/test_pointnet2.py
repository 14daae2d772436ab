"""PointNet++: each operation and layer against a plain NumPy reference, the models (build, one training
step, save and load), and the same numbers on the JAX backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras

from pcfilter_lib.models import pointnet2

ROOT = Path(__file__).resolve().parent.parent
TINY_LEVELS = [{"radius": 0.5, "num_neighbors": 8, "mlp": (8, 16)},
               {"radius": (0.6, 1.0), "num_neighbors": (4, 6), "mlp": ((8,), (16,))}]  # single-, then multi-scale


def _points(b=2, n=40, c=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(b, n, c)).astype(np.float32)


def _np(x):
    return keras.ops.convert_to_numpy(x)


# NumPy references ---------------------------------------------------------------------------------


def fps_reference(points, s):
    picked, nearest = [0], np.full(len(points), np.inf)
    for _ in range(s - 1):
        nearest = np.minimum(nearest, np.sum((points - points[picked[-1]]) ** 2, axis=1))
        picked.append(int(np.argmax(nearest)))
    return np.array(picked)


def ball_query_reference(points, centroids, radius, k):
    out = np.empty((len(centroids), k), int)
    for s, c in enumerate(centroids):
        d2 = np.sum((points - c) ** 2, axis=1)
        inside = np.flatnonzero(d2 <= radius**2)[:k]
        inside = inside if len(inside) else np.array([np.argmin(d2)])
        out[s] = np.concatenate([inside, np.full(k - len(inside), inside[0])])
    return out


def shared_mlp_reference(x, mlp):
    for dense, bn in zip(mlp.dense, mlp.norm, strict=True):
        x = x @ _np(dense.kernel)
        x = (x - _np(bn.moving_mean)) / np.sqrt(_np(bn.moving_variance) + bn.epsilon) * _np(bn.gamma) + _np(bn.beta)
        x = np.maximum(x, 0)
    return x


def interpolate_reference(xyz, sparse_xyz, sparse_features, k=3):
    out = np.empty((len(xyz), sparse_features.shape[1]))
    for i, p in enumerate(xyz):
        d2 = np.sum((sparse_xyz - p) ** 2, axis=1)
        near = np.argsort(d2)[:k]
        w = 1 / np.maximum(d2[near], 1e-10)
        out[i] = (w / w.sum()) @ sparse_features[near]
    return out


def randomise_batch_norm(layer, seed=0):
    """Give every batch normalisation of ``layer`` non-trivial statistics and scales."""
    rng = np.random.default_rng(seed)
    for sub in layer._flatten_layers():
        if isinstance(sub, keras.layers.BatchNormalization):
            n = sub.gamma.shape[0]
            sub.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 0.2, n), rng.normal(0, 0.2, n),
                             rng.uniform(0.5, 2, n)])


# Operations -------------------------------------------------------------------------------------


def test_farthest_point_sampling_matches_the_reference_and_spreads_out():
    x = _points(n=60)
    picked = _np(pointnet2.farthest_point_sample(x, 12))
    assert picked.shape == (2, 12) and picked.dtype == np.int32
    for b in range(2):
        np.testing.assert_array_equal(picked[b], fps_reference(x[b], 12))
    # A cluster of 50 points at one corner and 10 spread out: sampling picks the spread ones.
    rng = np.random.default_rng(1)
    cloud = np.concatenate([rng.normal(0, 0.01, (50, 3)), rng.uniform(-1, 1, (10, 3))]).astype(np.float32)
    from_cluster = np.sum(_np(pointnet2.farthest_point_sample(cloud[None], 8))[0] < 50)
    assert from_cluster <= 2  # the first pick and at most one more


def test_ball_query_takes_the_first_points_in_reach_and_pads_with_the_first():
    x = _points(n=50)
    centroids = x[:, [3, 17, 30]]
    centroids[1, 2] = 5.0  # out of reach of every point: falls back to the nearest
    for radius, k in ((0.3, 4), (0.6, 8), (3.5, 50)):
        got = _np(pointnet2.ball_query(x, centroids, radius, k))
        for b in range(2):
            d2 = np.sum((x[b][None] - centroids[b][:, None]) ** 2, axis=-1)
            assert np.min(np.abs(d2 - radius**2)) > 1e-5  # no point on the sphere: float order cannot matter
            np.testing.assert_array_equal(got[b], ball_query_reference(x[b], centroids[b], radius, k))
    assert np.all(got[1, 2] == got[1, 2, 0])


def test_grouping_gives_relative_coordinates_then_features():
    xyz, features = _points(n=30), _points(n=30, c=5, seed=1)
    centroids = xyz[:, :4]
    indices = _np(pointnet2.ball_query(xyz, centroids, 0.8, 6))
    got = _np(pointnet2.group(xyz, features, centroids, indices))
    assert got.shape == (2, 4, 6, 8)
    for b in range(2):
        expected = np.concatenate([xyz[b][indices[b]] - centroids[b][:, None], features[b][indices[b]]], axis=-1)
        np.testing.assert_allclose(got[b], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_np(pointnet2.group(xyz, None, centroids, indices)), got[..., :3], atol=1e-6)


def test_three_nn_interpolation_matches_the_reference_and_reproduces_sampled_points():
    xyz, sparse_xyz, sparse_features = _points(n=25), _points(n=7, seed=1), _points(n=7, c=4, seed=2)
    got = _np(pointnet2.three_nn_interpolate(xyz, sparse_xyz, sparse_features))
    for b in range(2):
        np.testing.assert_allclose(got[b], interpolate_reference(xyz[b], sparse_xyz[b], sparse_features[b]),
                                   rtol=1e-4, atol=1e-5)
    # At the sparse points themselves the interpolation returns their own features.
    at_samples = _np(pointnet2.three_nn_interpolate(sparse_xyz, sparse_xyz, sparse_features))
    np.testing.assert_allclose(at_samples, sparse_features, rtol=1e-3, atol=1e-4)


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
    # From one sparse point (the global feature) every point gets that feature.
    one = _np(pointnet2.three_nn_interpolate(xyz, sparse_xyz[:, :1], sparse_features[:, :1]))
    np.testing.assert_allclose(one, np.broadcast_to(sparse_features[:, :1], one.shape), rtol=1e-6)


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
    model.compile("adam", "sparse_categorical_crossentropy")
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


def test_jax_backend_gives_the_same_numbers(tmp_path):
    """The same file, loaded under JAX, predicts what TensorFlow predicts; FPS and ball query agree."""
    keras.utils.set_random_seed(1)
    model = _tiny_classifier()
    x = _points(b=3, n=32, seed=9)
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x)
    script = (
        "import json, keras, numpy as np\n"
        "from pcfilter_lib.models import pointnet2\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        f"model = keras.models.load_model({str(tmp_path / 'm.keras')!r})\n"
        "print(json.dumps({'backend': keras.backend.backend(),\n"
        "    'fps': keras.ops.convert_to_numpy(pointnet2.farthest_point_sample(x, 9)).tolist(),\n"
        "    'ball': keras.ops.convert_to_numpy(pointnet2.ball_query(x, x[:, :5], 0.7, 6)).tolist(),\n"
        "    'pred': model.predict(x, verbose=0).tolist()}))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax"
    np.testing.assert_array_equal(out["fps"], _np(pointnet2.farthest_point_sample(x, 9)))
    np.testing.assert_array_equal(out["ball"], _np(pointnet2.ball_query(x, x[:, :5], 0.7, 6)))
    np.testing.assert_allclose(out["pred"], _predict(model, x), rtol=1e-4, atol=1e-5)
