"""Counting a built Keras model by its layers: weights by name prefix, receptive fields and FLOPs.

The models of this package name their layers after their parts ("down1_conv1", "enc3_pool",
"local2_piece1"), so a prefix selects a part: an encoder, a pathway, a decoder. These helpers
read the counts off the layers themselves, so that a chapter can compare architectures without
copying numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from pcfilter_lib.lessons import convmath


def _square(value, what: str, layer) -> int:
    if value[0] != value[1]:
        raise ValueError(f"{layer.name}: only square {what}s are counted, got {tuple(value)}")
    return int(value[0])


def params_by_prefix(model: keras.Model, prefixes: Sequence[str]) -> dict[str, int]:
    """Parameters of the layers whose names start with each prefix.

    Args:
        model: a built Keras model.
        prefixes: name prefixes; a layer counts for the first prefix it matches.

    Returns:
        ``{prefix: parameters}``, in the order of ``prefixes``, with trainable and non-trainable
        weights together (as ``count_params`` counts them).
    """
    counts = dict.fromkeys(prefixes, 0)
    for layer in model.layers:
        match = next((p for p in prefixes if layer.name.startswith(p)), None)
        if match is not None:
            counts[match] += layer.count_params()
    return counts


def chain_layers(model: keras.Model, prefixes: Sequence[str]) -> list[tuple[int, int, int]]:
    """The ``(kernel, stride, dilation)`` of the convolutions and poolings along a chain of layers.

    The chain is the model's ``Conv2D`` and ``MaxPooling2D`` layers (the pieces of a maxout
    convolution counted once) whose names start with one of the prefixes, in the model's order:
    for a path of layers one after the other, such as an encoder or one pathway, that order is the
    path's.

    Args:
        model: a built Keras model.
        prefixes: name prefixes of the chain's layers.

    Returns:
        The layers' ``(kernel, stride, dilation)``, ready for ``convmath.receptive_field``.

    Raises:
        ValueError: a selected layer has a kernel, stride or dilation that differs between the axes.
    """
    chain = []
    for layer in model.layers:
        if not layer.name.startswith(tuple(prefixes)):
            continue
        if isinstance(layer, keras.layers.MaxPooling2D):
            chain.append((_square(layer.pool_size, "pool", layer), _square(layer.strides, "stride", layer), 1))
        elif isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.Conv2DTranspose):
            if "_piece" in layer.name and not layer.name.endswith("_piece1"):
                continue  # another piece of the same maxout convolution
            chain.append((_square(layer.kernel_size, "kernel", layer), _square(layer.strides, "stride", layer),
                          _square(layer.dilation_rate, "dilation", layer)))
    return chain


def chain_receptive_field(model: keras.Model, prefixes: Sequence[str]) -> tuple[int, int]:
    """Receptive field and jump, in input pixels, at the end of a chain of layers (``chain_layers``).

    Args:
        model: a built Keras model.
        prefixes: name prefixes of the chain's layers.

    Returns:
        ``(size, jump)``: the side of the input square one output of the chain's last layer sees,
        and the distance in input pixels between neighbouring outputs there.

    Raises:
        ValueError: no layer matches the prefixes.
    """
    chain = chain_layers(model, prefixes)
    if not chain:
        raise ValueError(f"no convolution or pooling of {model.name} starts with {tuple(prefixes)}")
    return convmath.receptive_field(chain)[-1]


def conv_flops(model: keras.Model, input_size: tuple[int, int] | None = None) -> int:
    """Floating-point operations of the model's 2D convolutions for one input, a multiply-add as two.

    A ``Conv2D`` layer costs ``2 * H_out * W_out * c_out * kh * kw * c_in``
    (``convmath.conv2d_flops``); a ``Conv2DTranspose`` layer multiplies every input pixel of every
    input channel with its whole kernel, ``2 * H_in * W_in * c_in * kh * kw * c_out``. Other layers
    (activations, pooling, concatenation) are left out, as is usual.

    Args:
        model: a Keras model with one image input.
        input_size: ``(H, W)`` of the input to count for; None for the size the model was built
            for. A model for any size is counted on a copy built for this one (new weights, the
            same layers).

    Returns:
        The FLOPs of one forward pass of one input.

    Raises:
        ValueError: no ``input_size`` is given and the model's input size is not fixed.
    """
    if input_size is not None:
        fixed = keras.Input((*input_size, model.input_shape[-1]))
        model = keras.models.clone_model(model, input_tensors=fixed)
    total = 0
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D | keras.layers.Conv2DTranspose):
            continue
        c_in = int(layer.input.shape[-1])
        if isinstance(layer, keras.layers.Conv2DTranspose):
            spatial = tuple(layer.input.shape[1:3])
        else:
            spatial = tuple(layer.output.shape[1:3])
        if None in spatial:
            raise ValueError(f"{model.name} has no fixed input size: give input_size")
        total += convmath.conv2d_flops(spatial, tuple(layer.kernel_size), c_in, layer.filters)
    return total
