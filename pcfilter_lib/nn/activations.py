"""Activation functions and their derivatives, dead ReLU units, and the activation and
regularisation layers of the image-to-voxels chapter: Mish and DropBlock.

* **The activations of the YOVO thesis**, in NumPy with their derivatives (``activation``):
  sigmoid, ReLU, ReLU6, LeakyReLU (slope 0.01 below zero, as in the thesis), ELU (alpha 1),
  Swish (beta 1, Keras' ``silu``) and Mish; ``keras_activation`` names the Keras function each
  one matches.
* **Dead ReLU units** (``dead_relu_share``): a ReLU unit whose input is negative for every
  example outputs 0 and passes no gradient, so nothing it feeds can revive it; a learning rate
  that is too high pushes units there.

* **Mish** (Misra 2019): ``x tanh(softplus(x))``, smooth everywhere, unbounded above, slightly
  negative below (its minimum is about -0.31), so a unit pushed to negative inputs still passes a
  gradient where ReLU would pass none. Keras 3 also ships it as ``keras.activations.mish``; the
  layer here names it in model summaries and is the one the models use.
* **DropBlock** (Ghiasi, Lin and Le 2018): dropout for convolutional feature maps. Neighbouring
  activations of a map are strongly correlated, so dropping single ones removes little
  information; DropBlock drops whole ``block_size``-wide squares (cubes in 3D) instead. Each
  position where a block fits entirely is a block centre with probability

      gamma = rate / block_size^d * prod_i size_i / (size_i - block_size + 1)

  (d = 2 or 3 spatial axes), chosen so that about ``rate`` of the map is dropped (a little less
  where blocks overlap). The kept activations are scaled by (all / kept), as in the paper, so the
  expected sum stays the same; at inference the layer is the identity. Masks differ per channel,
  as in the authors' reference code.

Both use ``keras.ops`` and ``keras.random`` only, so they run on every Keras backend, and both are
registered for ``keras.models.load_model``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

ACTIVATIONS = ("mish", "relu")
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


@keras.saving.register_keras_serializable(package="pcfilter")
def mish(x):
    """Mish of a tensor, element by element: ``x * tanh(softplus(x))`` (softplus = ln(1 + e^x),
    computed stably for large ``|x|``)."""
    return x * ops.tanh(ops.softplus(x))


@keras.saving.register_keras_serializable(package="pcfilter")
class Mish(layers.Layer):
    """The Mish activation as a layer (no weights; any input shape)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return mish(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape


def make_activation(name: str, layer_name: str | None = None) -> layers.Layer:
    """A fresh activation layer by name: ``"mish"`` (``Mish``) or ``"relu"`` (``layers.ReLU``).

    Raises:
        ValueError: for any other name.
    """
    if name == "mish":
        return Mish(name=layer_name)
    if name == "relu":
        return layers.ReLU(name=layer_name)
    raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")


def block_seed_probability(rate: float, block_size: int, spatial: tuple[int, ...]) -> float:
    """Ghiasi et al.'s gamma: the probability that a position where a whole block fits is a block
    centre, for a map of ``spatial`` size and a target drop ``rate`` (overlaps ignored)."""
    fits = [s - block_size + 1 for s in spatial]
    if min(fits) < 1:
        raise ValueError(f"a DropBlock block of {block_size} does not fit in a feature map of {tuple(spatial)}; "
                         "choose a smaller block_size or apply the layer to a larger map")
    return rate / block_size ** len(spatial) * math.prod(s / f for s, f in zip(spatial, fits, strict=True))


def block_centres(spatial: tuple[int, ...], block_size: int) -> np.ndarray:
    """A ``(*spatial, 1)`` float32 array: 1 where a block centred there (in the sense of a stride-1 "same"
    max pool of ``block_size``) lies entirely inside the map, 0 elsewhere."""
    before = (block_size - 1) // 2  # a "same" pool pads this many cells before and the rest after
    after = block_size - 1 - before
    valid = np.zeros((*spatial, 1), np.float32)
    # A centre at j covers [j - after, j + before] (see DropBlock.call), so j runs from after to size-1-before.
    valid[tuple(slice(after, s - before) for s in spatial)] = 1.0
    return valid


@keras.saving.register_keras_serializable(package="pcfilter")
class DropBlock(layers.Layer):
    """DropBlock for 2D (B, H, W, C) or 3D (B, D, H, W, C) channels-last feature maps.

    Args:
        rate: share of the activations to drop in training, 0 <= rate < 1 (the paper's
            ``1 - keep_prob``).
        block_size: side of the dropped squares or cubes, in cells; 1 is ordinary dropout with
            the kept values rescaled by the share actually kept.
        seed: seed of the layer's random generator (None draws one).

    The spatial size must be known when the layer is built and at least ``block_size``.
    """

    def __init__(self, rate: float = 0.1, block_size: int = 3, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"DropBlock rate must be in [0, 1), got {rate}")
        if int(block_size) != block_size or block_size < 1:
            raise ValueError(f"DropBlock block_size must be a positive whole number, got {block_size}")
        self.rate, self.block_size, self.seed = float(rate), int(block_size), seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def build(self, input_shape):
        spatial = tuple(input_shape[1:-1])
        if len(spatial) not in (2, 3) or any(s is None for s in spatial):
            raise ValueError(f"DropBlock needs (B, H, W, C) or (B, D, H, W, C) inputs with known sizes, "
                             f"got {tuple(input_shape)}")
        self.gamma = block_seed_probability(self.rate, self.block_size, spatial)
        self.centres = block_centres(spatial, self.block_size)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        noise = keras.random.uniform(ops.shape(inputs), seed=self.seed_generator, dtype="float32")
        seeds = ops.cast(noise < self.gamma, "float32") * ops.convert_to_tensor(self.centres)
        # A stride-1 max pool grows each seed into a block: a cell is dropped if a seed lies in its window.
        dropped = ops.max_pool(seeds, pool_size=self.block_size, strides=1, padding="same")
        keep = 1.0 - dropped
        scale = ops.cast(ops.size(keep), "float32") / ops.maximum(ops.sum(keep), 1.0)
        return inputs * ops.cast(keep * scale, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "block_size": self.block_size, "seed": self.seed}
