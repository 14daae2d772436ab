"""The Keras point operations (``nn.point_ops``), each against a plain NumPy version, and the same
numbers on the JAX backend. The NumPy versions serve the layer tests of PointNet++ and DGCNN too."""

from __future__ import annotations

import jax_backend
import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras

from pcfilter_lib.data.surface_patches import farthest_point_indices
from pcfilter_lib.nn import point_ops


def _points(b=2, n=40, c=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(b, n, c)).astype(np.float32)


def _np(x):
    return keras.ops.convert_to_numpy(x)


# NumPy versions, one cloud (no batch axis) at a time, in float64 --------------------------------------


def squared_distances_reference(a, b):
    return np.sum((a[:, None].astype(np.float64) - b[None]) ** 2, axis=-1)


def nearest_reference(query, points, k):
    return np.argsort(squared_distances_reference(query, points), axis=1, kind="stable")[:, :k]


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


def interpolate_reference(xyz, sparse_xyz, sparse_features, k=3, power=2, epsilon=1e-10):
    out = np.empty((len(xyz), sparse_features.shape[1]))
    for i, p in enumerate(xyz):
        d2 = np.sum((sparse_xyz - p) ** 2, axis=1)
        near = np.argsort(d2)[:k]
        w = 1 / (np.sqrt(d2[near]) ** power + epsilon)
        out[i] = (w / w.sum()) @ sparse_features[near]
    return out


# Operations ---------------------------------------------------------------------------------------


def test_squared_distances_match_brute_force_and_are_never_negative():
    a, b = _points(n=30, c=5), _points(n=50, c=5, seed=1)
    got = _np(point_ops.squared_distances(a, b))
    assert got.shape == (2, 30, 50)
    for i in range(2):
        np.testing.assert_allclose(got[i], squared_distances_reference(a[i], b[i]), rtol=1e-5, atol=1e-5)
    far = (a + 1000).astype(np.float32)  # rounding of |a|^2 - 2 a.b + |b|^2 would go below zero
    assert _np(point_ops.squared_distances(far, far)).min() == 0


def test_nearest_finds_the_k_nearest_in_order_and_each_point_itself_first():
    query, points = _points(n=30, c=5), _points(n=50, c=5, seed=1)
    indices, squared = (_np(t) for t in point_ops.nearest(query, points, 4))
    assert indices.shape == squared.shape == (2, 30, 4) and indices.dtype == np.int32
    for b in range(2):
        expected = nearest_reference(query[b], points[b], 4)
        np.testing.assert_array_equal(indices[b], expected)
        np.testing.assert_allclose(squared[b], np.take_along_axis(squared_distances_reference(query[b], points[b]),
                                                                  expected, 1), rtol=1e-4, atol=1e-5)
    own = _np(point_ops.nearest(points, points, 6)[0])
    np.testing.assert_array_equal(own[..., 0], np.broadcast_to(np.arange(50), (2, 50)))
    with pytest.raises(ValueError, match="lower k"):
        point_ops.nearest(query, points[:, :3], 4)


def test_gather_picks_rows_of_each_cloud():
    values = _points(n=20, c=4)
    indices = np.random.default_rng(2).integers(0, 20, size=(2, 5, 3))
    got = _np(point_ops.gather(values, indices))
    assert got.shape == (2, 5, 3, 4)
    np.testing.assert_array_equal(got, np.stack([values[b][indices[b]] for b in range(2)]))
    np.testing.assert_array_equal(_np(point_ops.gather(values, indices[:, :, 0])), got[:, :, 0])


def test_farthest_point_sampling_matches_the_reference_and_spreads_out():
    x = _points(n=60)
    picked = _np(point_ops.farthest_point_sample(x, 12))
    assert picked.shape == (2, 12) and picked.dtype == np.int32
    for b in range(2):
        np.testing.assert_array_equal(picked[b], fps_reference(x[b], 12))
    np.testing.assert_array_equal(picked, farthest_point_indices(x, 12))  # the data side's NumPy sampling
    # A cluster of 50 points at one corner and 10 spread out: sampling picks the spread ones.
    rng = np.random.default_rng(1)
    cloud = np.concatenate([rng.normal(0, 0.01, (50, 3)), rng.uniform(-1, 1, (10, 3))]).astype(np.float32)
    from_cluster = np.sum(_np(point_ops.farthest_point_sample(cloud[None], 8))[0] < 50)
    assert from_cluster <= 2  # the first pick and at most one more
    with pytest.raises(ValueError, match="lower num_samples"):
        point_ops.farthest_point_sample(x, 61)


def test_farthest_point_sampling_of_far_or_half_precision_clouds():
    # Squared distances beyond 1e10 (a cloud 1e6 units across) are still told apart ...
    x = _points(n=60) * 1e6
    np.testing.assert_array_equal(_np(point_ops.farthest_point_sample(x, 12))[0], fps_reference(x[0], 12))
    # ... and float16 clouds are measured in float32, where float16 squares would overflow to inf and tie.
    far = _points(n=60) * 300
    np.testing.assert_array_equal(_np(point_ops.farthest_point_sample(far.astype(np.float16), 12)),
                                  _np(point_ops.farthest_point_sample(far.astype(np.float16).astype(np.float32), 12)))


def test_ball_query_takes_the_first_points_in_reach_and_pads_with_the_first():
    x = _points(n=50)
    centroids = x[:, [3, 17, 30]]
    centroids[1, 2] = 5.0  # out of reach of every point: falls back to the nearest
    for radius, k in ((0.3, 4), (0.6, 8), (3.5, 50)):
        got = _np(point_ops.ball_query(x, centroids, radius, k))
        for b in range(2):
            d2 = np.sum((x[b][None] - centroids[b][:, None]) ** 2, axis=-1)
            assert np.min(np.abs(d2 - radius**2)) > 1e-5  # no point on the sphere: float order cannot matter
            np.testing.assert_array_equal(got[b], ball_query_reference(x[b], centroids[b], radius, k))
    assert np.all(got[1, 2] == got[1, 2, 0])


def test_grouping_gives_relative_coordinates_then_features():
    xyz, features = _points(n=30), _points(n=30, c=5, seed=1)
    centroids = xyz[:, :4]
    for indices in (_np(point_ops.ball_query(xyz, centroids, 0.8, 6)), _np(point_ops.nearest(centroids, xyz, 6)[0])):
        got = _np(point_ops.group(xyz, features, centroids, indices))
        assert got.shape == (2, 4, 6, 8)
        for b in range(2):
            expected = np.concatenate([xyz[b][indices[b]] - centroids[b][:, None], features[b][indices[b]]], axis=-1)
            np.testing.assert_allclose(got[b], expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(_np(point_ops.group(xyz, None, centroids, indices)), got[..., :3], atol=1e-6)


@pytest.mark.parametrize(("power", "epsilon"), [(2, 1e-10), (1, 1e-8)])
def test_interpolation_matches_the_reference_and_reproduces_the_known_points(power, epsilon):
    xyz, sparse_xyz, sparse_features = _points(n=25), _points(n=7, seed=1), _points(n=7, c=4, seed=2)
    got = _np(point_ops.interpolate(xyz, sparse_xyz, sparse_features, power=power, epsilon=epsilon))
    for b in range(2):
        expected = interpolate_reference(xyz[b], sparse_xyz[b], sparse_features[b], power=power, epsilon=epsilon)
        np.testing.assert_allclose(got[b], expected, rtol=1e-4, atol=1e-5)
    # At the sparse points themselves the interpolation returns their own features.
    at_samples = _np(point_ops.interpolate(sparse_xyz, sparse_xyz, sparse_features, power=power, epsilon=epsilon))
    np.testing.assert_allclose(at_samples, sparse_features, rtol=1e-3, atol=1e-3)
    # From one sparse point (the global feature) every point gets that feature.
    one = _np(point_ops.interpolate(xyz, sparse_xyz[:, :1], sparse_features[:, :1], power=power))
    np.testing.assert_allclose(one, np.broadcast_to(sparse_features[:, :1], one.shape), rtol=1e-6)
    with pytest.raises(ValueError, match="power"):
        point_ops.interpolate(xyz, sparse_xyz, sparse_features, power=3)


# The same calls under JAX (tests/jax_backend.py computes them in one JAX process with the other test files').
JAX_OPS = {
    "distances": "point_ops.squared_distances(x, x[:, :7])",
    "nearest": "point_ops.nearest(x[:, :9], x, 5)[0]",
    "fps": "point_ops.farthest_point_sample(x, 9)",
    "ball": "point_ops.ball_query(x, x[:, :5], 0.7, 6)",
    "group": "point_ops.group(x, f, x[:, :5], point_ops.ball_query(x, x[:, :5], 0.7, 6))",
    "interpolate": "point_ops.interpolate(x, x[:, :6], f[:, :6])",
}


def _jax_inputs(folder):
    np.save(folder / "x.npy", _points(b=3, n=32, seed=9))
    np.save(folder / "f.npy", _points(b=3, n=32, c=4, seed=10))


jax_backend.declare("point_ops", __file__, _jax_inputs, "\n".join([
    "from pcfilter_lib.nn import point_ops",
    "x, f = np.load(folder / 'x.npy'), np.load(folder / 'f.npy')",
    "out = {'backend': keras.backend.backend()}",
    *(f"out[{name!r}] = keras.ops.convert_to_numpy({call}).tolist()" for name, call in JAX_OPS.items())]))


def test_jax_backend_gives_the_same_numbers(request):
    folder, out = jax_backend.numbers("point_ops", request)
    assert out["backend"] == "jax"
    x, features = np.load(folder / "x.npy"), np.load(folder / "f.npy")
    for name, call in JAX_OPS.items():
        expected = _np(eval(call, {"point_ops": point_ops, "x": x, "f": features}))  # the same call under TensorFlow
        if expected.dtype.kind == "i":
            np.testing.assert_array_equal(out[name], expected, err_msg=name)
        else:
            np.testing.assert_allclose(out[name], expected, rtol=1e-5, atol=1e-5, err_msg=name)
