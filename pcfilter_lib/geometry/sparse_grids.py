"""What sparse representations of an occupancy grid save: the levels of an octree over it, the bytes
of the grid stored four ways, the sites where stacked dense, sparse and submanifold convolutions
compute, and the rulebook of a submanifold convolution (``submanifold_rules``), vectorised, that the
trainable layer ``nn.sparse_layers.SubmanifoldConv3D`` reads.

Sources of the ideas: octrees (OctNet, O-CNN), submanifold sparse convolutional networks.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def octree_levels(occupancy: np.ndarray) -> list[np.ndarray]:
    """The nodes of an octree over an occupancy grid, level by level.

    The grid is padded to a cube of side 2 ** L and each level marks a cell occupied when any of
    its 8 children is.

    Args:
        occupancy: (X, Y, Z) occupancy.

    Returns:
        L + 1 bool cubes, coarsest (1, 1, 1) first, the padded grid (2 ** L per side) last.

    Raises:
        ValueError: ``occupancy`` is not a non-empty 3D grid.
    """
    occupancy = np.asarray(occupancy, dtype=bool)
    if occupancy.ndim != 3 or occupancy.size == 0:
        raise ValueError(f"occupancy must be a non-empty 3D grid, got shape {occupancy.shape}")
    side = 1 << int(np.ceil(np.log2(max(occupancy.shape))))
    level = np.zeros((side,) * 3, dtype=bool)
    level[:occupancy.shape[0], :occupancy.shape[1], :occupancy.shape[2]] = occupancy
    levels = [level]
    while level.shape[0] > 1:
        s = level.shape[0] // 2
        level = level.reshape(s, 2, s, 2, s, 2).any(axis=(1, 3, 5))
        levels.append(level)
    return levels[::-1]


def memory_report(occupancy: np.ndarray) -> dict[str, float]:
    """Bytes to store one occupancy grid (X, Y, Z) in four ways:

    - ``dense_float32``: the grid as a 3D CNN reads it, 4 bytes per voxel;
    - ``dense_bits``: one bit per voxel;
    - ``octree``: a pointer-free octree in breadth-first order, one byte per occupied inner node
      holding the occupancy of its 8 children (empty space is never refined, leaves cost nothing);
    - ``points``: the occupied voxels as a coordinate list, three int32 (12 bytes) per voxel,
      as sparse-convolution libraries keep them.

    Args:
        occupancy: (X, Y, Z) occupancy.

    Returns:
        The four byte counts keyed as above, and ``voxels``, ``occupied`` and
        ``occupied_fraction``.
    """
    levels = octree_levels(occupancy)
    occupied = int(np.count_nonzero(occupancy))
    size = int(np.asarray(occupancy).size)
    return {"voxels": size, "occupied": occupied, "occupied_fraction": occupied / size,
            "dense_float32": 4 * size, "dense_bits": -(-size // 8),
            "octree": int(sum(np.count_nonzero(level) for level in levels[:-1])),
            "points": 12 * occupied}


def conv_sites(occupancy: np.ndarray, layers: int = 3, kernel: int = 3) -> dict[str, list[int]]:
    """Where stacked 3D convolutions compute: the cost of dense, sparse and submanifold convolutions.

    Args:
        occupancy: (X, Y, Z) the active voxels of the input.
        layers: number of stacked convolutions.
        kernel: odd side of the kernel^3 kernels.

    Returns:
        For ``dense`` (every voxel), ``sparse`` (wherever the kernel touches an active voxel, so
        the active set dilates layer by layer) and ``submanifold`` (only the input's active
        voxels, which never grow): the number of output sites after each layer.

    Raises:
        ValueError: ``layers`` < 1 or the kernel is not a positive odd number.
    """
    occupancy = np.asarray(occupancy, dtype=bool)
    if layers < 1 or kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"need layers >= 1 and an odd kernel, got {layers} and {kernel}")
    structure = np.ones((kernel,) * 3, dtype=bool)
    active, sparse = occupancy, []
    for _ in range(layers):
        active = ndimage.binary_dilation(active, structure)
        sparse.append(int(np.count_nonzero(active)))
    return {"dense": [occupancy.size] * layers, "sparse": sparse,
            "submanifold": [int(np.count_nonzero(occupancy))] * layers}


def submanifold_rules(coords: np.ndarray, kernel: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rulebook of a submanifold sparse convolution over the active sites ``coords``, vectorised.

    For every site and every offset d of a kernel^3 kernel (in the row-major order of a Keras
    ``Conv3D`` kernel's first three axes), one rule when the site + d is active too. The sites are
    looked up by sorting their packed coordinates once and searching every shifted site among them,
    so no Python loop runs over the sites.

    Args:
        coords: (M, 3) distinct integer coordinates of the active sites.
        kernel: odd side of the kernel.

    Returns:
        ``(inputs, outputs, offsets)``: three (R,) int32 arrays, one entry per rule: the input row
        (the site + d), the output row (the site) and the offset's index.

    Raises:
        ValueError: ``coords`` is not (M, 3) integers, repeats a site, or the kernel is not a
            positive odd number.
    """
    coords = np.asarray(coords)
    if coords.ndim != 2 or coords.shape[1] != 3 or not np.issubdtype(coords.dtype, np.integer):
        raise ValueError(f"coords must be an (M, 3) integer array, got {coords.dtype} {coords.shape}")
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"the kernel must be a positive odd number, got {kernel}")
    r = kernel // 2
    axis = np.arange(-r, r + 1)
    offsets = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    low = coords.min(axis=0) - r if len(coords) else np.zeros(3, np.int64)
    span = (coords.max(axis=0) - low + r + 1) if len(coords) else np.ones(3, np.int64)

    def pack(c: np.ndarray) -> np.ndarray:
        c = c.astype(np.int64) - low
        return (c[..., 0] * span[1] + c[..., 1]) * span[2] + c[..., 2]

    keys = pack(coords)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    if len(sorted_keys) > 1 and np.any(sorted_keys[1:] == sorted_keys[:-1]):
        raise ValueError("coords repeat a site: give each active site once")
    wanted = pack(coords[:, None, :] + offsets[None])  # (M, K): the key of site + d
    at = np.minimum(np.searchsorted(sorted_keys, wanted), max(len(keys) - 1, 0))
    hit = sorted_keys[at] == wanted if len(keys) else np.zeros(wanted.shape, bool)
    outputs, which = np.nonzero(hit)
    inputs = order[at[outputs, which]]
    by_offset = np.argsort(which, kind="stable")
    return (inputs[by_offset].astype(np.int32), outputs[by_offset].astype(np.int32),
            which[by_offset].astype(np.int32))
