"""The activation functions of the YOVO thesis in NumPy (lessons.activation_functions): values and
derivatives against Keras and autodiff, the thesis' conventions, and dead ReLU units."""

from __future__ import annotations

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras

from pcfilter_lib.lessons import activation_functions as activations

# Inputs away from the kinks (0, and 6 for ReLU6), where every derivative is defined.
X = np.concatenate([np.linspace(-8.0, -0.01, 400), np.linspace(0.01, 5.99, 300), np.linspace(6.01, 9.0, 100)])


@pytest.mark.parametrize("name", activations.FUNCTIONS)
def test_each_activation_and_its_derivative_match_keras_and_autodiff(name):
    import tensorflow as tf

    value, slope = activations.activation(name, X)
    function = activations.keras_activation(name)
    x = tf.constant(X, dtype=tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = function(x)
    np.testing.assert_allclose(value, y.numpy(), rtol=1e-7, atol=1e-12)  # TF keeps the slope in float32
    np.testing.assert_allclose(slope, tape.gradient(y, x).numpy(), rtol=1e-7, atol=1e-10)
    # And the derivative is the slope of the function, by central differences.
    h = 1e-6
    numeric = (activations.activation(name, X + h)[0] - activations.activation(name, X - h)[0]) / (2 * h)
    np.testing.assert_allclose(slope, numeric, rtol=1e-5, atol=1e-7)


def test_the_thesis_conventions_and_bad_names():
    _, relu_slope = activations.activation("relu", [0.0])
    assert relu_slope[0] == 0.0  # the flat side's derivative at the kink
    leaky, _ = activations.activation("leaky_relu", [-2.0])
    assert leaky[0] == pytest.approx(-0.02)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        activations.activation("gelu", [1.0])
    with pytest.raises(ValueError, match="unknown activation"):
        activations.keras_activation("tanh")


def test_dead_relu_share_counts_units_that_never_fire():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, activation="relu", name="dense_relu")(inputs)
    capped = keras.layers.ReLU(max_value=6.0, name="relu6")(hidden)  # not a plain ReLU: not counted
    out = keras.layers.ReLU(name="relu")(keras.layers.Dense(2, name="to_relu")(capped))
    model = keras.Model(inputs, out)
    # Units 0 and 1 fire for some positive inputs; unit 2's bias keeps it below 0 everywhere;
    # unit 3 reads only the negative of the inputs.
    kernel = np.array([[1, 0, 0, -1], [0, 1, 0, -1], [0, 0, 1, -1]], np.float32)
    model.get_layer("dense_relu").set_weights([kernel, np.array([0, 0, -100, 0], np.float32)])
    model.get_layer("to_relu").set_weights([np.ones((4, 2), np.float32), np.array([0, -1e6], np.float32)])
    x = np.abs(np.random.default_rng(0).normal(size=(50, 3))).astype(np.float32)
    shares = activations.dead_relu_share(model, x, batch_size=16)
    assert shares == {"dense_relu": 0.5, "relu": 0.5}
    # The same by hand, in NumPy.
    h = np.maximum(x @ kernel + [0, 0, -100, 0], 0)
    assert np.mean(h.max(axis=0) <= 0) == 0.5
    with pytest.raises(ValueError, match="has no ReLU layer"):
        activations.dead_relu_share(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), x)
