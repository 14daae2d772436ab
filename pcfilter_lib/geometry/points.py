"""Checks of point arrays shared by every function that takes a cloud.
"""

from __future__ import annotations

import numpy as np


def check_points(points, what: str = "points", dtype=np.float64) -> np.ndarray:
    """``points`` as an (N, 3) array of ``dtype``; a clear ValueError if it has another shape, is
    empty, or holds NaN or infinite coordinates. The one check every point-cloud consumer uses."""
    points = np.asarray(points, dtype=dtype)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"{what} must be an (N, 3) array, got shape {points.shape}")
    if len(points) == 0:
        raise ValueError(f"{what}: there are no points")
    if not np.isfinite(points).all():
        raise ValueError(f"{what} hold NaN or infinite coordinates; drop them first (e.g. xyz[valid])")
    return points


def check_mesh(vertices, triangles) -> tuple[np.ndarray, np.ndarray]:
    """``vertices`` (V, 3) float64 and ``triangles`` (T, 3) int64, checked: a ValueError for empty or
    malformed arrays and for indices outside the vertices."""
    vertices = check_points(vertices, "mesh vertices")
    triangles = np.asarray(triangles, dtype=np.int64)
    if triangles.ndim != 2 or triangles.shape[1] != 3 or len(triangles) == 0:
        raise ValueError(f"triangles must be a non-empty (T, 3) array, got shape {triangles.shape}")
    if triangles.min() < 0 or triangles.max() >= len(vertices):
        raise ValueError(f"triangle indices must lie in [0, {len(vertices) - 1}]")
    return vertices, triangles
