"""The synthetic scratch task: deterministic, rare thin targets, masked holes."""

import numpy as np
import pytest

from pcfilter_lib.data.synthetic2d import _curve_distance, _curve_samples, make_scratches


def test_deterministic_by_seed_and_different_across_seeds():
    a, b, c = make_scratches(4, 32, seed=5), make_scratches(4, 32, seed=5), make_scratches(4, 32, seed=6)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)


def test_targets_are_rare_and_holes_are_masked():
    data = make_scratches(40, 48, seed=0)
    assert data.images.shape == (40, 48, 48, 2) and data.labels.dtype == np.uint8
    assert 0.005 < data.scratch_fraction() < 0.08
    holes = data.weights == 0
    assert holes.any()
    assert np.all(data.images[..., 1][holes] == 0) and np.all(data.images[..., 0][holes] == 0)
    assert np.all((data.images[..., 0] >= 0) & (data.images[..., 0] <= 1))


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="n >= 1"):
        make_scratches(0)


def test_curve_distance_is_the_distance_to_the_nearest_curve_sample():
    size = 24
    yy, xx = np.mgrid[0:size, 0:size]
    grid = np.stack([yy.ravel(), xx.ravel()], axis=1).astype(np.float64)
    distance = _curve_distance(np.random.default_rng(3), size, grid)
    curve = _curve_samples(np.random.default_rng(3), size)  # the same draws
    brute = np.sqrt(((grid[:, None] - curve[None]) ** 2).sum(-1).min(axis=1))  # every pixel, every sample
    np.testing.assert_allclose(distance.ravel(), brute, rtol=0, atol=1e-12)
