"""Checks of point arrays shared by every function that takes a cloud.
"""

from __future__ import annotations

import numpy as np


def check_points(points, what: str = "points", dtype=np.float64) -> np.ndarray:
    """The one check every function that takes a cloud uses.

    Args:
        points: anything NumPy reads as an (N, 3) array of coordinates.
        what: how the error messages name the array, such as "mesh vertices".
        dtype: the float type of the result.

    Returns:
        ``points`` as an (N, 3) array of ``dtype``.

    Raises:
        ValueError: the array has another shape, is empty, or holds NaN or infinite coordinates.
    """
    points = np.asarray(points, dtype=dtype)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"{what} must be an (N, 3) array, got shape {points.shape}")
    if len(points) == 0:
        raise ValueError(f"{what}: there are no points")
    if not np.isfinite(points).all():
        raise ValueError(f"{what} hold NaN or infinite coordinates; drop them first (e.g. xyz[valid])")
    return points


def check_mesh(vertices, triangles) -> tuple[np.ndarray, np.ndarray]:
    """Check a triangle mesh before it goes to Open3D, which would fail less clearly.

    Args:
        vertices: (V, 3) vertex coordinates.
        triangles: (T, 3) vertex indices of the triangles.

    Returns:
        ``(vertices, triangles)`` as (V, 3) float64 and (T, 3) int64.

    Raises:
        ValueError: an array is empty or malformed, the vertices are not finite, or an index lies
            outside the vertices.
    """
    vertices = check_points(vertices, "mesh vertices")
    triangles = np.asarray(triangles, dtype=np.int64)
    if triangles.ndim != 2 or triangles.shape[1] != 3 or len(triangles) == 0:
        raise ValueError(f"triangles must be a non-empty (T, 3) array, got shape {triangles.shape}")
    if triangles.min() < 0 or triangles.max() >= len(vertices):
        raise ValueError(f"triangle indices must lie in [0, {len(vertices) - 1}]")
    return vertices, triangles
