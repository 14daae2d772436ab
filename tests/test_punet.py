"""PU-Net upsampling: Chamfer and repulsion losses against NumPy references,
training patches from true surfaces, the network's layout, training, saving, and whole-cloud upsampling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras
import tensorflow as tf

from pcfilter_lib.data import surface_patches
from pcfilter_lib.data.surface_patches import (
    expected_spacing,
    farthest_point_indices,
    normalise_patches,
    upsampling_patches,
)
from pcfilter_lib.geometry.sampling import triangle_areas
from pcfilter_lib.models import punet
from pcfilter_lib.nn import losses, point_ops

RNG = np.random.default_rng(0)


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _pairwise(a, b):
    return ((a[:, :, None, :] - b[:, None, :, :]) ** 2).sum(-1)  # (B, N, M) brute force, float64


def test_farthest_point_indices_spread_their_picks():
    clouds = RNG.normal(size=(3, 200, 3))
    expected = farthest_point_indices(clouds, 25)  # test_point_ops compares the Keras sampling with it
    np.testing.assert_array_equal(farthest_point_indices(clouds[1], 25), expected[1])
    # Farthest point sampling spreads its picks: their closest pair is farther apart than a random subset's.
    d = _pairwise(clouds[:1, expected[0]], clouds[:1, expected[0]])[0] + np.eye(25) * 1e9
    r = _pairwise(clouds[:1, :25], clouds[:1, :25])[0] + np.eye(25) * 1e9
    assert d.min() > r.min()


def test_chamfer_distance_matches_a_numpy_reference_and_its_gradient_that_of_the_minima():
    a, b = RNG.normal(size=(3, 40, 3)), RNG.normal(size=(3, 70, 3))
    d = _pairwise(a, b)
    expected = d.min(axis=2).mean(axis=1) + d.min(axis=1).mean(axis=1)
    np.testing.assert_allclose(_numpy(losses.chamfer_distance(a.astype(np.float32), b.astype(np.float32))),
                               expected, rtol=1e-5)
    np.testing.assert_allclose(_numpy(losses.chamfer_distance(b, b)), 0.0, atol=1e-9)
    # The fast gradient (through the nearest partners only) equals that of the plain formula.
    a_var = tf.Variable(a.astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        fast = tf.reduce_sum(losses.chamfer_distance(a_var, b.astype(np.float32)))
        dense = point_ops.squared_distances(a_var, b.astype(np.float32))
        plain = tf.reduce_sum(tf.reduce_mean(tf.reduce_min(dense, 2), 1) + tf.reduce_mean(tf.reduce_min(dense, 1), 1))
    np.testing.assert_allclose(tape.gradient(fast, a_var).numpy(), tape.gradient(plain, a_var).numpy(), atol=1e-5)


def test_repulsion_loss_matches_a_numpy_reference_and_pushes_close_points_apart():
    points, h, k = RNG.uniform(size=(2, 60, 3)), 0.1, 4
    d = np.sqrt(np.sort(_pairwise(points, points), axis=2)[:, :, 1:k + 1])
    expected = (-d * np.exp(-d**2 / h**2)).mean(axis=(1, 2))
    np.testing.assert_allclose(_numpy(losses.repulsion_loss(points.astype(np.float32), h, k)), expected, rtol=1e-4)
    pair = tf.Variable([[[0.0, 0.0, 0.0], [0.01, 0.0, 0.0], [5.0, 0.0, 0.0], [-5.0, 0.0, 0.0]]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(losses.repulsion_loss(pair, h=0.1, k=1))
    gradient = tape.gradient(loss, pair).numpy()[0]
    assert gradient[0, 0] > 0 > gradient[1, 0]  # descending the gradient moves the close pair apart
    with pytest.raises(ValueError):
        losses.repulsion_loss(pair, h=0.0)


def test_upsampling_loss_combines_both_terms_and_serialises():
    target, prediction = RNG.normal(size=(2, 64, 3)).astype(np.float32), RNG.normal(size=(2, 64, 3)).astype(np.float32)
    loss = losses.UpsamplingLoss(h=0.2, repulsion_weight=0.5, k=3)
    expected = (_numpy(losses.chamfer_distance(target, prediction))
                + 0.5 * _numpy(losses.repulsion_loss(prediction, 0.2, 3))).mean()
    assert float(loss(target, prediction)) == pytest.approx(float(expected), rel=1e-5)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, losses.UpsamplingLoss) and again.get_config() == loss.get_config()


def _square(side=1.0):
    """A flat square in the plane z = 0, two triangles: area side^2."""
    return np.array([[0, 0, 0], [side, 0, 0], [side, side, 0], [0, side, 0]], float), np.array([[0, 1, 2], [0, 2, 3]])


def _box():
    corners = np.array([[x, y, z] for z in (0, 1) for y in (0, 1) for x in (0, 1)], float)
    quads = [[0, 2, 3, 1], [4, 5, 7, 6], [0, 1, 5, 4], [2, 6, 7, 3], [0, 4, 6, 2], [1, 3, 7, 5]]
    return corners, np.array([[q[0], q[j], q[j + 1]] for q in quads for j in (1, 2)])


def test_training_patches_are_sparse_subsets_of_even_dense_surface_patches():
    spacing, n, r = 0.01, 64, 4
    inputs, targets = upsampling_patches([_square(), _box()], 12, spacing, patch_points=n, ratio=r, seed=3)
    assert inputs.shape == (12, n, 3) and targets.shape == (12, r * n, 3)
    # Normalised by the input: centred, farthest input point at distance 1.
    np.testing.assert_allclose(inputs.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(inputs, axis=2).max(axis=1), 1, rtol=1e-5)
    for x, y in zip(inputs, targets, strict=True):
        assert np.all(np.min(_pairwise(x[None], y[None])[0], axis=1) < 1e-10)  # every input point is a target point
    # The square's patches are flat (z = 0 before normalisation, so the points span no height).
    flat = [i for i in range(12) if np.ptp(targets[i][:, 2]) < 1e-6]
    assert flat
    # Targets are evenly spaced: farthest point sampling thinned the clumps of random sampling.
    gaps = np.sqrt(np.sort(_pairwise(targets[flat[0]][None], targets[flat[0]][None])[0], axis=1)[:, 1])
    assert np.percentile(gaps, 5) > 0.5 * np.median(gaps)
    again = upsampling_patches([_square(), _box()], 12, spacing, patch_points=n, ratio=r, seed=3)
    np.testing.assert_array_equal(again[0], inputs)
    np.testing.assert_array_equal(again[1], targets)


def test_normalise_patches_inverts():
    patches = RNG.normal(size=(3, 20, 3)) * 5 + 100
    normalised, _, centres, scales = normalise_patches(patches)
    np.testing.assert_allclose(normalised * scales + centres, patches, rtol=1e-6)
    with pytest.raises(ValueError, match="coincide"):
        normalise_patches(np.ones((1, 5, 3)))


def test_training_patches_refuse_impossible_settings():
    with pytest.raises(ValueError, match="no mesh holds a patch"):
        upsampling_patches([_square(0.1)], 4, 0.01, patch_points=256, ratio=4)
    assert expected_spacing(4 * 256) == pytest.approx(np.sqrt(np.pi / 1024))


def test_only_the_surface_near_a_patch_is_sampled_at_the_asked_spacing():
    # A 100 x 100 square at spacing 1e-3 would need 2e10 points; one patch needs a few thousand.
    spacing, n, r = 1e-3, 64, 4
    inputs, targets = upsampling_patches([_square(100.0)], 3, spacing, patch_points=n, ratio=r, seed=0)
    assert targets.shape == (3, r * n, 3)
    vertices, triangles = _square(100.0)
    local = surface_patches._sample_box(vertices, triangles, vertices[triangles].min(1), vertices[triangles].max(1),
                                        np.array([10.0, 10.0, -1.0]), np.array([10.05, 10.02, 1.0]),
                                        2 / spacing**2, np.random.default_rng(0))
    assert abs(len(local) - 0.05 * 0.02 * 2 / spacing**2) <= 1  # the box's area times the density
    assert np.all((local[:, 0] >= 10) & (local[:, 0] <= 10.05) & (local[:, 1] >= 10) & (local[:, 1] <= 10.02))


def test_clip_to_box_keeps_the_part_of_a_triangle_inside():
    triangle = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    polygon = surface_patches.clip_to_box(triangle, np.array([1.0, 1.0, -1.0]), np.array([5.0, 5.0, 1.0]))
    # What is left is the triangle (1, 1), (3, 1), (1, 3): area 2.
    fan = np.array([[0, j, j + 1] for j in range(1, len(polygon) - 1)])
    assert triangle_areas(polygon, fan).sum() == pytest.approx(2.0)
    assert len(surface_patches.clip_to_box(triangle, np.array([5.0, 5.0, -1.0]), np.array([6.0, 6.0, 1.0]))) == 0


@pytest.fixture(scope="module")
def small():
    keras.utils.set_random_seed(0)
    return punet.build_punet(patch_points=64, ratio=4, neighbours=8)


def test_layout_expands_each_point_into_r_points_in_branch_order(small):
    assert small.output_shape == (None, 256, 3)
    assert small.get_layer("expanded").output.shape == (None, 256, 32)
    assert small.get_layer("level3_sample").output.shape == (None, 16, 3)
    # With a zero regression, output j * N + i is input point i: branch-major order.
    zero = keras.models.clone_model(small)
    zero.set_weights(small.get_weights())
    head = zero.get_layer("regress_xyz")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])
    x = RNG.normal(size=(2, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(zero.predict(x, verbose=0), np.tile(x, (1, 4, 1)), atol=1e-6)
    with pytest.raises(ValueError, match="fewer than"):
        punet.build_punet(patch_points=32, neighbours=16)


def test_trains_a_step_and_saves(small, tmp_path):
    x, y = upsampling_patches([_box()], 8, 0.02, patch_points=64, ratio=4, seed=1)
    small.compile(keras.optimizers.Adam(1e-3), losses.UpsamplingLoss(h=expected_spacing(256)))
    history = small.fit(x, y, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    small.save(tmp_path / "punet.keras")
    loaded = keras.models.load_model(tmp_path / "punet.keras")
    np.testing.assert_allclose(_numpy(loaded(x)), _numpy(small(x)), atol=1e-5)


def test_upsample_gives_each_point_r_points_from_the_patch_it_is_most_central_in(small, eager_steps):
    # Forward passes run eagerly (eager_steps): the same numbers, without tracing prediction for two networks;
    # test_layout_expands_each_point_into_r_points_in_branch_order predicts in graph mode.
    zero = keras.models.clone_model(small)
    zero.set_weights(small.get_weights())
    head = zero.get_layer("regress_xyz")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])
    cloud = RNG.uniform(size=(500, 3)) * [4.0, 2.0, 0.1] + [100.0, -50.0, 7.0]  # far from the origin, flat
    out = punet.upsample(cloud, zero)
    assert out.shape == (2000, 3)
    # A network that adds nothing returns every point r times, back in the cloud's own coordinates.
    np.testing.assert_allclose(out.reshape(500, 4, 3), np.repeat(cloud[:, None], 4, axis=1), atol=1e-4)
    assert punet.upsample(cloud, small).shape == (2000, 3)
    # Dense and sparse parts are covered alike.
    uneven = np.vstack([RNG.uniform(size=(100, 3)) * 10, RNG.normal(size=(1000, 3)) * 0.01])
    np.testing.assert_allclose(punet.upsample(uneven, zero).reshape(1100, 4, 3), np.repeat(uneven[:, None], 4, 1),
                               atol=1e-4)
    # More coinciding points than a patch holds: patches of one repeated point leave it where it is.
    crowded = np.vstack([cloud, np.repeat(cloud[:1], 200, axis=0)])
    np.testing.assert_allclose(punet.upsample(crowded, zero).reshape(700, 4, 3), np.repeat(crowded[:, None], 4, 1),
                               atol=1e-4)
    out = punet.upsample(crowded, small).reshape(700, 4, 3)
    assert np.isfinite(out).all() and np.abs(out - crowded[:, None]).max() < 1.0
    with pytest.raises(ValueError, match="fewer than the model's patch"):
        punet.upsample(cloud[:10], small)


def test_fast_recipe_writes_a_loadable_upsampler_with_a_card(tmp_path, eager_steps):
    from pcfilter_lib.io.model_cards import read_model_card
    from pcfilter_lib.recipes import upsampling

    # Its steps run eagerly (eager_steps): the card's bookkeeping does not depend on it, and tracing the training,
    # validation and prediction steps cost more than the run; test_trains_a_step_and_saves trains in graph mode.
    # FAST with six of its ten 640x480 scans (each split still gets one) and a batch of training patches: what
    # the card records and the model's shapes do not depend on how many there are.
    recipe = dataclasses.replace(upsampling.FAST, scans=dataclasses.replace(upsampling.FAST.scans, scans=6),
                                 train_patches=16, val_patches=8, test_patches=8)
    card = upsampling.train_reference_upsampler(tmp_path / "out", tmp_path / "data", recipe, progress=False)
    path = tmp_path / "out" / card.model
    card.write(path.with_suffix(".json"))
    again = read_model_card(path)
    assert again.target == "punet" and again.file_bytes == path.stat().st_size
    assert again.data["scans"]["train"] > 0 and again.settings["ratio"] == recipe.ratio
    # The measured spacing is that of a 640x480 scan at about a metre: near a millimetre.
    assert 5e-4 < again.settings["spacing_m"] < 2e-3
    for split in (again.validation, again.test):
        assert 0 < split["chamfer"] and 0 < split["chamfer_repeated_input"]
        assert split["chamfer_ratio"] == pytest.approx(split["chamfer"] / split["chamfer_repeated_input"], rel=1e-4)
    model = punet.load_upsampler(path)
    n = recipe.patch_points
    assert model.input_shape == (None, n, 3) and model.output_shape == (None, recipe.ratio * n, 3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        punet.load_upsampler(tmp_path / "none.keras")
    (tmp_path / "bad.keras").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a loadable Keras model"):
        punet.load_upsampler(tmp_path / "bad.keras")


@pytest.mark.skipif(not punet.SHIPPED_UPSAMPLER.is_file(), reason="the shipped PU-Net is missing")
def test_shipped_upsampler_beats_repeating_its_input_and_was_trained_on_the_current_simulator():
    from pcfilter_lib.io.model_cards import read_model_card
    from pcfilter_lib.simulate.dataset import VERSION

    card = read_model_card(punet.SHIPPED_UPSAMPLER)
    assert card.data["version"] == VERSION, "retrain the PU-Net: the simulator has changed since"
    assert card.test["chamfer"] < card.test["chamfer_repeated_input"]
    model = punet.load_upsampler()
    assert model.output_shape[1] == card.settings["ratio"] * model.input_shape[1]
