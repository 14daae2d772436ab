"""Losses: definitions, masking, finite gradients, serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pcfilter_lib.nn import losses

RNG = np.random.default_rng(0)
ALL = [losses.BinaryCrossentropy(), losses.WeightedBinaryCrossentropy(0.6, 3.0), losses.BinaryFocalLoss(0.25, 2.0),
       losses.SoftDiceLoss(), losses.SoftDiceLoss(classes="artefact"), losses.SoftJaccardLoss(),
       losses.SoftJaccardLoss(classes="keep", smooth=0.5)]


def batch(shape=(3, 8, 8)):
    y = (RNG.random(shape) > 0.2).astype("float32")
    p = RNG.uniform(0.01, 0.99, shape + (1,)).astype("float32")
    w = (RNG.random(shape) > 0.3).astype("float32")
    return y, p, w


def test_bce_matches_keras_and_the_formula():
    y, p, _ = batch()
    expected = -np.mean(y * np.log(p[..., 0]) + (1 - y) * np.log(1 - p[..., 0]))
    assert float(losses.BinaryCrossentropy()(y, p)) == pytest.approx(expected, rel=1e-5)
    assert float(losses.BinaryCrossentropy()(y, p)) == pytest.approx(float(keras.losses.BinaryCrossentropy()(y, p)),
                                                                     rel=1e-5)


def test_focal_with_gamma_0_and_alpha_half_is_half_the_bce():
    y, p, w = batch()
    focal = float(losses.BinaryFocalLoss(alpha=0.5, gamma=0.0)(y, p, w))
    assert focal == pytest.approx(0.5 * float(losses.BinaryCrossentropy()(y, p, w)), rel=1e-6)


def test_weighted_bce_with_equal_weights_is_bce():
    y, p, w = batch()
    assert float(losses.WeightedBinaryCrossentropy(1.0, 1.0)(y, p, w)) == pytest.approx(
        float(losses.BinaryCrossentropy()(y, p, w)), rel=1e-6)


def test_dice_and_jaccard_of_a_perfect_prediction_are_zero():
    y, _, w = batch()
    for loss in (losses.SoftDiceLoss(smooth=0), losses.SoftJaccardLoss(smooth=0)):
        assert float(loss(y, y, w)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("loss", ALL, ids=lambda loss: loss.name)
def test_masked_pixels_change_nothing(loss):
    y, p, w = batch()
    scrambled_y = np.where(w > 0, y, 1 - y)
    scrambled_p = np.where(w[..., None] > 0, p, RNG.random(p.shape)).astype("float32")
    assert float(loss(scrambled_y, scrambled_p, w)) == pytest.approx(float(loss(y, p, w)), rel=1e-6)
    # Padding with masked pixels changes nothing either.
    padded = [np.pad(a, [(0, 0), (0, 8), (0, 8)] + [(0, 0)] * (a.ndim - 3)) for a in (y, p, w)]
    padded[1][..., 8:, :, :] = 0.5
    assert float(loss(*padded)) == pytest.approx(float(loss(y, p, w)), rel=1e-5)


@pytest.mark.parametrize("loss", ALL, ids=lambda loss: loss.name)
def test_gradients_are_finite_at_exactly_0_and_1(loss):
    y = np.array([[[1.0, 0.0, 1.0, 0.0]]], "float32")
    p = tf.Variable(np.array([[[[0.0], [1.0], [1.0], [0.0]]]], "float32"))
    with tf.GradientTape() as tape:
        value = loss(y, p)
    gradient = tape.gradient(value, p)
    assert np.isfinite(float(value))
    assert np.all(np.isfinite(gradient.numpy()))


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
@pytest.mark.parametrize("loss", ALL, ids=lambda loss: loss.name)
def test_losses_survive_a_save_and_load(loss, tmp_path):
    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs))
    model.compile("adam", loss=loss)
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras").loss
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="alpha"):
        losses.BinaryFocalLoss(alpha=1.5)
    with pytest.raises(ValueError, match="classes must be one of"):
        losses.SoftDiceLoss(classes="foreground")
    with pytest.raises(ValueError, match=">= 0"):
        losses.WeightedBinaryCrossentropy(-1.0, 1.0)
    with pytest.raises(ValueError, match="both classes"):
        losses.class_balanced_weights(np.ones((4, 4)))


def test_class_balanced_weights_equalise_the_classes():
    labels = np.array([1] * 90 + [0] * 10)
    keep, artefact = losses.class_balanced_weights(labels)
    assert keep * 90 == pytest.approx(artefact * 10)
    assert (keep * 90 + artefact * 10) / 100 == pytest.approx(1.0)


def test_soft_jaccard_and_dice_determine_each_other():
    y, p, w = batch((4, 16, 16))
    for classes in ("keep", "artefact"):
        dice = 1 - float(losses.SoftDiceLoss(classes, smooth=0)(y, p, w))
        jaccard = 1 - float(losses.SoftJaccardLoss(classes, smooth=0)(y, p, w))
        assert jaccard == pytest.approx(dice / (2 - dice), rel=1e-5)
