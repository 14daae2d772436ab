"""The activation and regularisation layers of the image-to-voxels network (YOVO): Mish and
DropBlock, as Keras layers. The activation functions and their derivatives in NumPy, written to teach
section 7b, are in ``lessons.activation_functions``.

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

ACTIVATIONS = ("mish", "relu")  # the activations a YOVO network may be built with


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
