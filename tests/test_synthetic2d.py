"""The synthetic scratch task: deterministic, rare thin targets, masked holes."""

import numpy as np
import pytest

from pcfilter_lib.data.synthetic2d import make_scratches


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
