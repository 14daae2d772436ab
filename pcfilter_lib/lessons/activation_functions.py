"""Activation functions and their derivatives in NumPy, and dead ReLU units: code written to teach
section 7b's activations, checked against Keras by the tests. The activation layers the networks use
(Mish, and DropBlock beside them) are Keras layers in ``nn.activations``.

* **The activations of the YOVO thesis**, in NumPy with their derivatives (``activation``):
  sigmoid, ReLU, ReLU6, LeakyReLU (slope 0.01 below zero, as in the thesis), ELU (alpha 1),
  Swish (beta 1, Keras' ``silu``) and Mish; ``keras_activation`` names the Keras function each
  one matches.
* **Dead ReLU units** (``dead_relu_share``): a ReLU unit whose input is negative for every
  example outputs 0 and passes no gradient, so nothing it feeds can revive it; a learning rate
  that is too high pushes units there.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

FUNCTIONS = ("sigmoid", "relu", "relu6", "leaky_relu", "elu", "swish", "mish")
LEAKY_SLOPE = 0.01  # the thesis' LeakyReLU slope below zero (Keras' default is 0.2)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # 1 / (1 + e^-x) without overflow


def activation(name: str, x) -> tuple[np.ndarray, np.ndarray]:
    """An activation function and its derivative at ``x``, in NumPy (float64).

    At a kink (0 for the ReLUs, 6 for ReLU6) the derivative is that of the flat side, as in
    TensorFlow and the thesis.

    Args:
        name: one of ``FUNCTIONS``.
        x: the inputs, any shape.

    Returns:
        ``(f(x), f'(x))``, each the shape of ``x``.

    Raises:
        ValueError: an unknown name.
    """
    x = np.asarray(x, np.float64)
    if name == "sigmoid":
        s = _sigmoid(x)
        return s, s * (1.0 - s)
    if name == "relu":
        return np.maximum(x, 0.0), (x > 0).astype(np.float64)
    if name == "relu6":
        return np.clip(x, 0.0, 6.0), ((x > 0) & (x < 6)).astype(np.float64)
    if name == "leaky_relu":
        return np.where(x > 0, x, LEAKY_SLOPE * x), np.where(x > 0, 1.0, LEAKY_SLOPE)
    if name == "elu":
        below = np.expm1(np.minimum(x, 0.0))
        return np.where(x > 0, x, below), np.where(x > 0, 1.0, below + 1.0)
    if name == "swish":
        s = _sigmoid(x)
        return x * s, s + x * s * (1.0 - s)
    if name == "mish":
        softplus = np.logaddexp(0.0, x)
        t = np.tanh(softplus)
        return x * t, t + x * (1.0 - t * t) * _sigmoid(x)
    raise ValueError(f"unknown activation {name!r}; choose one of {FUNCTIONS}")


def keras_activation(name: str):
    """The ``keras.activations`` function that ``activation(name, .)`` matches (with the thesis'
    LeakyReLU slope).

    Raises:
        ValueError: an unknown name.
    """
    functions = {"sigmoid": keras.activations.sigmoid, "relu": keras.activations.relu,
                 "relu6": keras.activations.relu6,
                 "leaky_relu": lambda x: keras.activations.leaky_relu(x, negative_slope=LEAKY_SLOPE),
                 "elu": keras.activations.elu, "swish": keras.activations.silu, "mish": keras.activations.mish}
    if name not in functions:
        raise ValueError(f"unknown activation {name!r}; choose one of {FUNCTIONS}")
    return functions[name]


def _is_relu(layer) -> bool:
    if isinstance(layer, layers.ReLU):
        return layer.max_value is None and float(layer.negative_slope) == 0.0 and float(layer.threshold) == 0.0
    return getattr(layer, "activation", None) is keras.activations.relu


def dead_relu_share(model: keras.Model, x, batch_size: int = 256) -> dict[str, float]:
    """The share of dead units in each ReLU layer of a model: units (the last axis: neurons or
    channels) whose output is 0 for every example of ``x`` (and, for a convolution, at every
    position).

    Counted are ``layers.ReLU`` layers without cap, slope or threshold, and layers built with
    ``activation="relu"``.

    Args:
        model: a functional or sequential Keras model, already built.
        x: inputs for the model, e.g. its training examples.
        batch_size: examples per forward pass.

    Returns:
        ``{layer name: share of its units that are dead}``, in the model's layer order.

    Raises:
        ValueError: the model has no ReLU layer.
    """
    relus = [layer for layer in model.layers if _is_relu(layer)]
    if not relus:
        raise ValueError(f"model {model.name!r} has no ReLU layer (layers.ReLU or activation='relu') to look at")
    probe = keras.Model(model.inputs, [layer.output for layer in relus])
    outputs = probe.predict(x, batch_size=batch_size, verbose=0)
    outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
    shares = {}
    for layer, out in zip(relus, outputs, strict=True):
        alive = np.asarray(out).reshape(-1, out.shape[-1]).max(axis=0) > 0
        shares[layer.name] = float(1.0 - alive.mean())
    return shares
