"""Point clouds from triangle meshes: area-weighted uniform surface sampling and unit-sphere normalisation."""

from __future__ import annotations

import numpy as np


def triangle_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """The area of each triangle of a mesh.

    Args:
        vertices: (V, 3) vertex coordinates.
        triangles: (T, 3) vertex indices.

    Returns:
        (T,) areas in the squared unit of the vertices; 0 for a degenerate triangle.
    """
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def sample_surface(vertices: np.ndarray, triangles: np.ndarray, num_points: int,
                   seed: int | np.random.Generator | None = 0, normals: bool = False, dtype=np.float32):
    """Draw ``num_points`` points uniformly from the surface of a triangle mesh.

    A triangle is picked with probability proportional to its area, then a point inside it with
    the square-root trick (uniform barycentric coordinates). Point clouds for learning (ModelNet)
    and the simulator's contact tests (dropping parts into a bin) both sample this way.

    Args:
        vertices: (V, 3) vertex coordinates, any unit of length.
        triangles: (T, 3) vertex indices of the triangles.
        num_points: N, the number of points to draw (at least 1).
        seed: an integer seed, or a ``np.random.Generator`` to draw from (it advances).
        normals: also return the unit normals of the triangles the points lie on.
        dtype: float type of the points; the simulator keeps float64 so that metre-scale scenes
            keep sub-micrometre contacts.

    Returns:
        Points (N, 3) of ``dtype`` in the unit of ``vertices``, and with ``normals=True`` also the
        unit normals (N, 3) float32.

    Raises:
        ValueError: if ``num_points`` < 1, ``triangles`` is not a non-empty (T, 3) array, or the mesh
            has no surface area.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    triangles = np.asarray(triangles, dtype=np.int64)
    if num_points < 1:
        raise ValueError(f"num_points must be at least 1, got {num_points}")
    if triangles.ndim != 2 or triangles.shape[1] != 3 or len(triangles) == 0:
        raise ValueError(f"triangles must be a non-empty (T, 3) array, got shape {triangles.shape}")
    areas = triangle_areas(vertices, triangles)
    total = areas.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError("the mesh has no surface area (all triangles degenerate); nothing to sample")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(triangles), size=num_points, p=areas / total)
    r1 = np.sqrt(rng.random(num_points))[:, None]
    r2 = rng.random(num_points)[:, None]
    a, b, c = (vertices[triangles[chosen, i]] for i in range(3))
    points = ((1 - r1) * a + r1 * (1 - r2) * b + r1 * r2 * c).astype(dtype, copy=False)
    if not normals:
        return points
    n = np.cross(b - a, c - a)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    return points, n.astype(np.float32)


def normalize_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centre a cloud on its mean and scale it so that its farthest point lies at distance 1.

    A classifier should not have to learn that a chair is a chair at every size and place.

    Args:
        points: (..., N, 3) one cloud or a batch of them.

    Returns:
        (..., N, 3) float32, each cloud normalised on its own.

    Raises:
        ValueError: all points of a cloud coincide.
    """
    points = np.asarray(points, dtype=np.float32)
    centred = points - points.mean(axis=-2, keepdims=True)
    radius = np.linalg.norm(centred, axis=-1).max(axis=-1)[..., None, None]
    if np.any(radius <= 0):
        raise ValueError("cannot normalise a cloud whose points all coincide")
    return centred / radius
