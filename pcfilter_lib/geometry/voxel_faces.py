"""The faces of an occupancy grid that border empty space, as a triangle mesh for drawing voxels."""

from __future__ import annotations

import numpy as np


def voxel_faces(occupancy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A triangle mesh of the faces of occupied voxels that border empty space, for drawing.

    Args:
        occupancy: (X, Y, Z) occupancy.

    Returns:
        ``(vertices, triangles)``: (V, 3) int32 in voxel units, the corner of voxel (0, 0, 0) at
        the origin, and (T, 3) int32, two per face; both empty for an empty grid.
    """
    occupancy = np.asarray(occupancy, dtype=bool)
    padded = np.pad(occupancy, 1)
    quads = []
    corners = {0: [(0, 0, 0), (0, 1, 0), (0, 1, 1), (0, 0, 1)], 1: [(0, 0, 0), (0, 0, 1), (1, 0, 1), (1, 0, 0)],
               2: [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0)]}
    for axis in range(3):
        for step in (-1, 1):
            neighbour = np.roll(padded, -step, axis=axis)[1:-1, 1:-1, 1:-1]
            ijk = np.argwhere(occupancy & ~neighbour)
            if len(ijk) == 0:
                continue
            offset = np.zeros(3, np.int64)
            offset[axis] = 1 if step > 0 else 0
            quads.append(ijk[:, None, :] + offset + np.array(corners[axis]))
    if not quads:
        return np.zeros((0, 3), np.int32), np.zeros((0, 3), np.int32)
    quads = np.concatenate(quads)  # (Q, 4, 3)
    vertices, inverse = np.unique(quads.reshape(-1, 3), axis=0, return_inverse=True)
    q = inverse.reshape(-1, 4)
    triangles = np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]])
    return vertices.astype(np.int32), triangles.astype(np.int32)
