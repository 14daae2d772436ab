"""The grid CRF: mean-field updates by hand, what the Potts weight does, masks, and noisy views."""

import keras
import numpy as np
import pytest

from pcfilter_lib.models.crf import mean_field_potts, neighbour_kernel, noisy_view_scores


def by_hand(p, weight, iterations, kernel):
    """Mean field in NumPy: every pixel, every label, the neighbours' sum by explicit loops."""
    h, w, _ = p.shape
    q = p.copy()
    for _ in range(iterations):
        support = np.zeros_like(q)
        for i in range(h):
            for j in range(w):
                for di in (-1, 0, 1):
                    for dj in (-1, 0, 1):
                        if kernel[di + 1, dj + 1] and 0 <= i + di < h and 0 <= j + dj < w:
                            support[i, j] += q[i + di, j + dj]
        logits = np.log(p) + weight * support
        q = np.exp(logits - logits.max(-1, keepdims=True))
        q /= q.sum(-1, keepdims=True)
    return q


@pytest.mark.parametrize("neighbours", [4, 8])
def test_matches_the_update_written_out(neighbours):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), size=(5, 6)).astype("float32")
    q = keras.ops.convert_to_numpy(mean_field_potts(p, weight=0.7, iterations=3, neighbours=neighbours))
    np.testing.assert_allclose(q, by_hand(p, 0.7, 3, neighbour_kernel(neighbours)), rtol=1e-4, atol=1e-6)
    assert neighbour_kernel(neighbours).sum() == neighbours


def test_weight_zero_changes_nothing_and_a_lone_pixel_joins_its_neighbours():
    p = np.full((7, 7, 2), [0.8, 0.2], "float32")
    p[3, 3] = [0.3, 0.7]  # one pixel that prefers the other label
    same = keras.ops.convert_to_numpy(mean_field_potts(p, weight=0.0, iterations=4))
    np.testing.assert_allclose(same, p, rtol=1e-6)
    smoothed = keras.ops.convert_to_numpy(mean_field_potts(p, weight=1.0, iterations=4))
    assert smoothed[3, 3].argmax() == 0
    np.testing.assert_allclose(smoothed.sum(-1), 1.0, rtol=1e-5)


def test_masked_pixels_neither_pull_nor_change():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(2), size=(2, 6, 6)).astype("float32")
    valid = np.ones((2, 6, 6), bool)
    valid[:, :, 3:] = False
    q = keras.ops.convert_to_numpy(mean_field_potts(p, weight=2.0, iterations=3, valid=valid))
    np.testing.assert_allclose(q[~valid], p[~valid], rtol=1e-6)
    scrambled = p.copy()
    scrambled[~valid] = rng.dirichlet(np.ones(2), size=int((~valid).sum()))
    again = keras.ops.convert_to_numpy(mean_field_potts(scrambled, weight=2.0, iterations=3, valid=valid))
    np.testing.assert_allclose(again[valid], q[valid], rtol=1e-5)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="must be >= 0"):
        mean_field_potts(np.ones((2, 2, 2)) / 2, iterations=-1)
    with pytest.raises(ValueError, match="neighbours"):
        neighbour_kernel(6)


def test_noisy_views_are_probabilities_that_favour_the_truth_on_average():
    labels = np.random.default_rng(2).integers(0, 4, (20, 30))
    views = noisy_view_scores(labels, 4, views=5, noise=1.0, rng=np.random.default_rng(3), signal=1.0)
    assert views.shape == (5, 20, 30, 4)
    np.testing.assert_allclose(views.sum(-1), 1.0, rtol=1e-5)
    pooled_right = np.mean(views.mean(0).argmax(-1) == labels)
    single_right = np.mean(views[0].argmax(-1) == labels)
    assert pooled_right > single_right > 0.25  # better than chance, and better pooled
