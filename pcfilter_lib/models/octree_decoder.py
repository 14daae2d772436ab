"""A decoder that generates an occupancy grid as a two-level octree, after octree generating networks
(OGN; Tatarchenko, Dosovitskiy and Brox, ICCV 2017), and the dense decoder it is compared with.

Both are autoencoders of solid occupancy grids: a 32^3 grid (the share of each cell's 2 x 2 x 2
voxels that are occupied at 64^3) is encoded to a code of 4^3 x ``code`` numbers, and the same
*trunk* of transposed convolutions decodes it back to a 32^3 grid of ``width`` features. From there:

* ``build_dense_autoencoder``: a 3 x 3 x 3 convolution to ``hidden`` features and a 1 x 1 x 1 one
  to 8 logits at every 32^3 cell, the logits of its 2 x 2 x 2 children, which ``DepthToSpace`` lays
  out as the 64^3 grid.
* ``OctreeAutoencoder``: a 1 x 1 x 1 convolution gives every 32^3 cell one of three states, empty,
  full or mixed (``lessons.coarse_to_fine.cell_states``); only the mixed cells are refined.
  ``RefineCells`` gathers the features of a mixed cell's 3 x 3 x 3 neighbourhood, one neighbour at
  a time, and maps them to its children's 8 logits: the same two layers as the dense head, with
  the same number of weights, applied to the chosen cells only. ``assemble`` scatters the
  children into the 64^3 grid and fills the other cells from their state (8 empty or 8 full
  voxels). Training refines the cells the *true* grid marks mixed (the structure is given, as
  OGN trains with the true octree); prediction refines those the network itself marks mixed.

The children of cell (i, j, k) are numbered ``4a + 2b + c`` for the voxel (2i + a, 2j + b, 2k + c)
of the fine grid, the order of ``lessons.coarse_to_fine.interleaved_groups``.
``activation_floats`` counts the floats each decoder materialises for one shape.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
from keras import layers, ops

EMPTY, FULL, MIXED = 0, 1, 2  # as lessons.coarse_to_fine
OFFSETS = tuple(itertools.product((-1, 0, 1), repeat=3))  # a cell's 3 x 3 x 3 neighbourhood, itself included


def space_to_depth(fine):
    """(B, 2X, 2Y, 2Z) -> (B, X, Y, Z, 8): each coarse cell's 8 children, numbered 4a + 2b + c."""
    b, x, y, z = (ops.shape(fine)[i] for i in range(4))
    blocks = ops.reshape(fine, (b, x // 2, 2, y // 2, 2, z // 2, 2))
    return ops.reshape(ops.transpose(blocks, (0, 1, 3, 5, 2, 4, 6)), (b, x // 2, y // 2, z // 2, 8))


def depth_to_space(children):
    """(B, X, Y, Z, 8) -> (B, 2X, 2Y, 2Z): the inverse of ``space_to_depth``."""
    b, x, y, z = (ops.shape(children)[i] for i in range(4))
    blocks = ops.reshape(children, (b, x, y, z, 2, 2, 2))
    return ops.reshape(ops.transpose(blocks, (0, 1, 4, 2, 5, 3, 6)), (b, 2 * x, 2 * y, 2 * z))


@keras.saving.register_keras_serializable(package="pcfilter")
class DepthToSpace(layers.Layer):
    """A layer of ``depth_to_space``: 8 channels per coarse cell -> the grid twice as fine."""

    def call(self, inputs):
        return depth_to_space(inputs)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *(None if s is None else 2 * s for s in input_shape[1:4]))


def mixed_cells(mask):
    """The (M, 4) int32 indices (batch, i, j, k) of the True cells of a (B, X, Y, Z) mask."""
    return ops.cast(ops.stack(ops.nonzero(mask), axis=1), "int32")


@keras.saving.register_keras_serializable(package="pcfilter")
class RefineCells(layers.Layer):
    """The 8 children's logits of chosen cells of a coarse feature grid, from each cell's 3 x 3 x 3
    neighbourhood (zeros beyond the grid's edge).

    The first map is a 3 x 3 x 3 convolution evaluated at the chosen cells only: for each of the 27
    offsets, the neighbours' features are gathered (M, F) and multiplied by that offset's (F, hidden)
    weights, so no (M, 27 F) block is ever held. A ReLU and a dense map to 8 logits follow.

    Args:
        hidden: features of the hidden layer.

    Call args:
        features: (B, X, Y, Z, F) float.
        cells: (M, 4) int32 indices (batch, i, j, k) of the cells to refine.

    Returns:
        (M, 8) logits of the cells' children, numbered 4a + 2b + c.
    """

    def __init__(self, hidden: int = 32, **kwargs):
        super().__init__(**kwargs)
        if int(hidden) < 1:
            raise ValueError(f"hidden must be a positive number of features, got {hidden}")
        self.hidden = int(hidden)

    def build(self, features_shape, cells_shape=None):
        channels = int(features_shape[-1])
        self.kernel = self.add_weight(shape=(len(OFFSETS), channels, self.hidden), initializer="glorot_uniform",
                                      name="kernel")
        self.bias = self.add_weight(shape=(self.hidden,), initializer="zeros", name="bias")
        self.out_kernel = self.add_weight(shape=(self.hidden, 8), initializer="glorot_uniform", name="out_kernel")
        self.out_bias = self.add_weight(shape=(8,), initializer="zeros", name="out_bias")

    def call(self, features, cells):
        shape = ops.shape(features)
        x, y, z, channels = shape[1] + 2, shape[2] + 2, shape[3] + 2, shape[4]
        padded = ops.reshape(ops.pad(features, [[0, 0], [1, 1], [1, 1], [1, 1], [0, 0]]), (-1, channels))
        cells = ops.cast(cells, "int32")
        base = ((cells[:, 0] * x + cells[:, 1] + 1) * y + cells[:, 2] + 1) * z + cells[:, 3] + 1
        hidden = self.bias
        for o, (di, dj, dk) in enumerate(OFFSETS):
            neighbours = ops.take(padded, base + (di * y + dj) * z + dk, axis=0)
            hidden = hidden + ops.matmul(neighbours, self.kernel[o])
        return ops.matmul(ops.relu(hidden), self.out_kernel) + self.out_bias

    def conv_kernel(self):
        """The first map's weights as a (3, 3, 3, F, hidden) convolution kernel (NumPy)."""
        kernel = keras.ops.convert_to_numpy(self.kernel)
        return kernel.reshape(3, 3, 3, *kernel.shape[1:])

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden}


def assemble(state_logits, children_logits, cells):
    """The fine occupancy probabilities: refined cells from their children, the others from their state.

    Args:
        state_logits: (B, X, Y, Z, 3) logits of empty, full, mixed.
        children_logits: (M, 8) logits of the refined cells' children.
        cells: (M, 4) indices of the refined cells.

    Returns:
        (B, 2X, 2Y, 2Z) float: 1 under a cell predicted full, 0 under one predicted empty (or mixed
        but not refined), the children's probabilities under a refined cell.
    """
    shape = ops.shape(state_logits)
    grid = (shape[0], shape[1], shape[2], shape[3])
    settled = ops.cast(ops.argmax(state_logits, axis=-1) == FULL, "float32")
    settled = ops.repeat(settled[..., None], 8, axis=-1)
    cells = ops.cast(cells, "int32")
    children = ops.scatter(cells, ops.sigmoid(ops.cast(children_logits, "float32")), (*grid, 8))
    refined = ops.scatter(cells, ops.ones((ops.shape(cells)[0],), "float32"), grid)
    return depth_to_space(ops.where(refined[..., None] > 0, children, settled))


@keras.saving.register_keras_serializable(package="pcfilter")
class Regroup(layers.Layer):
    """Halve or double a feature grid by moving each 2 x 2 x 2 block into the channels or out of them.

    Args:
        up: True for (B, X, Y, Z, 8C) -> (B, 2X, 2Y, 2Z, C), False for the inverse.
    """

    def __init__(self, up: bool, **kwargs):
        super().__init__(**kwargs)
        self.up = bool(up)

    def call(self, inputs):
        b, x, y, z, c = (ops.shape(inputs)[i] for i in range(5))
        if self.up:
            blocks = ops.reshape(inputs, (b, x, y, z, 2, 2, 2, c // 8))
            return ops.reshape(ops.transpose(blocks, (0, 1, 4, 2, 5, 3, 6, 7)), (b, 2 * x, 2 * y, 2 * z, c // 8))
        blocks = ops.reshape(inputs, (b, x // 2, 2, y // 2, 2, z // 2, 2, c))
        return ops.reshape(ops.transpose(blocks, (0, 1, 3, 5, 2, 4, 6, 7)), (b, x // 2, y // 2, z // 2, 8 * c))

    def compute_output_shape(self, input_shape):
        b, x, y, z, c = input_shape
        if self.up:
            return (b, *(None if s is None else 2 * s for s in (x, y, z)), None if c is None else c // 8)
        return (b, *(None if s is None else s // 2 for s in (x, y, z)), None if c is None else 8 * c)

    def get_config(self):
        return {**super().get_config(), "up": self.up}


def _encoder(filters: tuple[int, int, int]) -> list:
    # each level: the 2 x 2 x 2 blocks into the channels, then a dense map of every cell
    out = []
    for i, f in enumerate(filters):
        out += [Regroup(False, name=f"down{i}"), layers.Dense(f, activation="relu", name=f"encode{i}")]
    return out


def _trunk(filters: tuple[int, int], width: int) -> list:
    # each level: a dense map to 8 children's features, laid out twice as fine, then (but at the
    # last level) a 3 x 3 x 3 convolution
    out = []
    for i, f in enumerate(filters):
        out += [layers.Dense(8 * f, activation="relu", name=f"up{i}"), Regroup(True, name=f"upgrid{i}"),
                layers.Conv3D(f, 3, padding="same", activation="relu", name=f"trunk{i}")]
    return out + [layers.Dense(8 * width, activation="relu", name=f"up{len(filters)}"),
                  Regroup(True, name=f"upgrid{len(filters)}")]


def _run(stack: list, x):
    for layer in stack:
        x = layer(x)
    return x


def build_dense_autoencoder(side: int = 32, code: int = 32, width: int = 16, hidden: int = 32) -> keras.Model:
    """The dense decoder's autoencoder: a (side, side, side, 1) grid -> (2 side)^3 occupancy logits.

    Args:
        side: the coarse grid's side, a multiple of 8.
        code: channels of the 4^3 code (at side 32).
        width: features of the trunk's last level (side^3 cells).
        hidden: features of the head's hidden layer.
    """
    if side % 8:
        raise ValueError(f"the coarse side must be a multiple of 8, got {side}")
    inputs = keras.Input((side, side, side, 1), name="grid")
    features = _run(_trunk((code, code // 2), width), _run(_encoder((code // 4, code // 2, code)), inputs))
    hidden_ = layers.Conv3D(hidden, 3, padding="same", activation="relu", name="head_hidden")(features)
    children = layers.Conv3D(8, 1, name="head_children")(hidden_)
    return keras.Model(inputs, DepthToSpace(name="fine")(children), name="dense_decoder")


@keras.saving.register_keras_serializable(package="pcfilter")
class OctreeAutoencoder(keras.Model):
    """The octree decoder's autoencoder (see the module's docstring).

    Call with ``{"grid": (B, S, S, S, 1)}`` to refine the cells the network marks mixed, or with a
    ``"refine"`` (B, S, S, S) bool mask too (training: the true mixed cells). Returns a dict:
    ``states`` (B, S, S, S, 3) logits, ``children`` (M, 8) logits, ``cells`` (M, 4) and ``fine``
    (B, 2S, 2S, 2S) occupancy probabilities; ``predict`` gives ``fine`` alone.

    Args:
        side: the coarse grid's side, a multiple of 8.
        code: channels of the 4^3 code (at side 32).
        width: features of the trunk's last level.
        hidden: features of ``RefineCells``' hidden layer.
        state_weight: weight of the states' cross-entropy in the loss, beside the children's.
        mixed_weight: weight of a mixed cell in the states' cross-entropy, against 1 for the others
            (mixed cells are few, and a missed one is never refined).
    """

    def __init__(self, side: int = 32, code: int = 32, width: int = 16, hidden: int = 32,
                 state_weight: float = 1.0, mixed_weight: float = 3.0, **kwargs):
        super().__init__(**kwargs)
        if int(side) % 8:
            raise ValueError(f"the coarse side must be a multiple of 8, got {side}")
        self.side, self.code, self.width, self.hidden = int(side), int(code), int(width), int(hidden)
        self.state_weight, self.mixed_weight = float(state_weight), float(mixed_weight)
        self.encoder = _encoder((self.code // 4, self.code // 2, self.code))
        self.trunk = _trunk((self.code, self.code // 2), self.width)
        self.state_head = layers.Conv3D(3, 1, name="states")
        self.refine = RefineCells(self.hidden, name="refine")
        self.build()  # its weights exist from the start (``save_for_inference`` copies them into a new one)

    def build(self, input_shape=None):
        if self.built:
            return
        side = self.side
        grid = keras.KerasTensor((None, side, side, side, 1))
        features = grid
        for layer in self.encoder + self.trunk:
            layer.build(features.shape)
            features = layer.compute_output_spec(features)
        self.state_head.build(features.shape)
        self.refine.build(features.shape)
        self.built = True

    def call(self, inputs, training=None):
        grid = inputs["grid"] if isinstance(inputs, dict) else inputs
        features = _run(self.trunk, _run(self.encoder, grid))
        states = self.state_head(features)
        if isinstance(inputs, dict) and inputs.get("refine") is not None:
            mask = ops.cast(inputs["refine"], "bool")
        else:
            mask = ops.argmax(states, axis=-1) == MIXED
        cells = mixed_cells(mask)
        children = self.refine(features, cells)
        return {"states": states, "children": children, "cells": cells, "fine": assemble(states, children, cells)}

    def predict_step(self, data):
        """``predict`` and ``predict_on_batch`` give the fine grid's occupancy probabilities alone."""
        x = data[0] if isinstance(data, tuple) else data
        return self(x, training=False)["fine"]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Cross-entropy of the three states at every coarse cell, plus the binary cross-entropy of
        the refined cells' children; ``y`` is ``{"states": (B, S, S, S) int, "fine": (B, 2S, 2S, 2S)}``."""
        states = ops.cast(y["states"], "int32")
        weight = ops.where(states == MIXED, self.mixed_weight, 1.0)
        state_loss = ops.sum(weight * keras.losses.sparse_categorical_crossentropy(
            states, y_pred["states"], from_logits=True)) / ops.sum(weight)
        true_children = ops.reshape(space_to_depth(ops.cast(y["fine"], "float32")), (-1, 8))
        cells = y_pred["cells"]
        s = self.side
        flat = ((cells[:, 0] * s + cells[:, 1]) * s + cells[:, 2]) * s + cells[:, 3]
        child_loss = keras.losses.binary_crossentropy(
            ops.take(true_children, flat, axis=0)[..., None], y_pred["children"][..., None], from_logits=True)
        child_loss = ops.sum(child_loss) / ops.maximum(ops.cast(ops.size(child_loss), "float32"), 1.0)
        total = self.state_weight * state_loss + child_loss
        if self.losses:
            total = total + ops.sum(self.losses)
        return total

    def get_config(self):
        return {**super().get_config(), "side": self.side, "code": self.code, "width": self.width,
                "hidden": self.hidden, "state_weight": self.state_weight,
                "mixed_weight": self.mixed_weight}


def targets(fine) -> dict[str, np.ndarray]:
    """The inputs and targets of both autoencoders from (N, 2S, 2S, 2S) bool grids.

    Returns:
        ``grid`` (N, S, S, S, 1) float32, each cell's occupied share; ``states`` (N, S, S, S) int8;
        ``refine`` (N, S, S, S) bool, the mixed cells; ``fine`` (N, 2S, 2S, 2S) float32.
    """
    fine = np.asarray(fine, dtype=bool)
    if fine.ndim != 4 or any(s % 2 for s in fine.shape[1:]):
        raise ValueError(f"need (N, 2S, 2S, 2S) grids with even sides, got shape {fine.shape}")
    n, x, y, z = fine.shape
    share = fine.reshape(n, x // 2, 2, y // 2, 2, z // 2, 2).mean(axis=(2, 4, 6), dtype=np.float32)
    states = np.where(share == 1, FULL, np.where(share > 0, MIXED, EMPTY)).astype(np.int8)
    return {"grid": share[..., None], "states": states, "refine": states == MIXED, "fine": fine.astype(np.float32)}


def activation_floats(model, refined: float) -> dict[str, float]:
    """Floats a decoder materialises for one shape, stage by stage (inference, batch of one).

    The trunk's layers count their outputs. The dense head counts its hidden and children grids; the
    octree head its states, one gathered (M, F) block (each of the 27 is dropped once multiplied),
    its (M, hidden) and (M, 8) arrays, for M ``refined`` cells. Both count the fine grid they hand
    back, (2S)^3.

    Args:
        model: a ``build_dense_autoencoder`` or an ``OctreeAutoencoder``.
        refined: cells refined per shape (the octree's M; ignored for the dense decoder).

    Returns:
        ``trunk``, ``head`` and ``output`` floats and their ``total``.
    """
    def size(shape):
        return float(np.prod([s for s in shape[1:]]))

    if isinstance(model, OctreeAutoencoder):
        s, trunk, features = model.side, 0.0, keras.KerasTensor((1, model.side, model.side, model.side, 1))
        for layer in model.encoder:
            features = layer.compute_output_spec(features)
        for layer in model.trunk:
            features = layer.compute_output_spec(features)
            trunk += 0.0 if isinstance(layer, Regroup) else size(features.shape)
        head = s ** 3 * 3 + refined * (model.width + model.hidden + 8)
    else:
        s = model.input_shape[1]
        trunk = sum(size(model.get_layer(n).output.shape) for n in [lay.name for lay in model.layers]
                    if n.startswith(("up", "trunk")) and not n.startswith("upgrid"))
        head = size(model.get_layer("head_hidden").output.shape) + size(model.get_layer("head_children").output.shape)
    output = float((2 * s) ** 3)
    return {"trunk": trunk, "head": head, "output": output, "total": trunk + head + output}


def decoder_weights(model) -> int:
    """The number of weights after the code: the trunk and the head."""
    if isinstance(model, OctreeAutoencoder):
        stack = [*model.trunk, model.state_head, model.refine]
    else:
        stack = [layer for layer in model.layers if layer.name.startswith(("up", "trunk", "head"))]
    return int(sum(np.prod(w.shape) for layer in stack for w in layer.weights))
