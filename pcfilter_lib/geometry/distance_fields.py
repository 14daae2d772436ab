"""Signed and truncated signed distance fields of triangle meshes, on points or on the voxels of a
``Grid``, with the sign taken part by part so that shapes built from overlapping closed parts (a chair
from boxes) come out right.

Source of the idea: truncated signed distance fields (Curless and Levoy 1996), the target of shape
completion (3D-EPN).
"""

from __future__ import annotations

import numpy as np
import open3d as o3d
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pcfilter_lib.geometry.point_checks import check_mesh, check_points
from pcfilter_lib.geometry.raycasting import raycasting_scene
from pcfilter_lib.geometry.voxel_grids import Grid, check_grid


def mesh_parts(vertices, triangles) -> list[np.ndarray]:
    """Split a mesh into its connected parts (parts share no vertex).

    Args:
        vertices: (V, 3) the mesh's vertices.
        triangles: (T, 3) vertex indices.

    Returns:
        One (T_i, 3) array of triangles per part, indexing the same ``vertices``.
    """
    vertices, triangles = check_mesh(vertices, triangles)
    n = len(vertices)
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    part = labels[triangles[:, 0]]
    return [triangles[part == p] for p in np.unique(part)]


def signed_distance(vertices, triangles, points, by_part: bool = True) -> np.ndarray:
    """Signed distance (N,) float32 from points (N, 3) to a mesh, negative inside.

    With ``by_part=False`` this is Open3D's ``RaycastingScene.compute_signed_distance``, which decides
    inside / outside by counting ray crossings and so assumes one closed surface without
    self-intersections. A shape built from overlapping closed parts (a chair from boxes) breaks that
    where parts overlap: a point inside two parts crosses an even number of walls. ``by_part`` keeps
    Open3D's unsigned distance to the whole mesh and takes the sign from each connected part on its
    own (``compute_occupancy`` of the points in the part's bounding box): inside any part is inside.

    Args:
        vertices: (V, 3) the mesh's vertices.
        triangles: (T, 3) vertex indices.
        points: (N, 3) query points, in the unit of the vertices.
        by_part: decide inside and outside part by part (see above).

    Returns:
        (N,) float32 signed distances, in the unit of the vertices.
    """
    vertices, triangles = check_mesh(vertices, triangles)
    points = check_points(points, "query points").astype(np.float32)
    query = o3d.core.Tensor(points)
    scene = raycasting_scene([(vertices, triangles)])
    if not by_part:
        return scene.compute_signed_distance(query, nsamples=3).numpy()
    distance = scene.compute_distance(query).numpy()
    inside = np.zeros(len(points), dtype=bool)
    for part in mesh_parts(vertices, triangles):
        corners = vertices[part.ravel()]
        near = np.flatnonzero(np.all((points >= corners.min(0)) & (points <= corners.max(0)), axis=1) & ~inside)
        if len(near):
            part_scene = raycasting_scene([(vertices, part)])
            inside[near] |= part_scene.compute_occupancy(o3d.core.Tensor(points[near]), nsamples=3).numpy() > 0.5
    return np.where(inside, -distance, distance).astype(np.float32)


def tsdf_from_mesh(vertices, triangles, grid: Grid, truncation: float = 3.0, by_part: bool = True) -> np.ndarray:
    """The truncated signed distance field of a mesh.

    Args:
        vertices: (V, 3) the mesh's vertices.
        triangles: (T, 3) vertex indices.
        grid: the ``Grid``.
        truncation: the distance, in voxels, at which the field saturates.
        by_part: take the sign part by part (``signed_distance``).

    Returns:
        (X, Y, Z) float32 in [-1, 1]: the signed distance at each voxel centre divided by
        ``truncation`` voxels and clipped; negative inside.

    Raises:
        ValueError: ``truncation`` is not positive, or the grid does not fit in memory.
    """
    if truncation <= 0:
        raise ValueError(f"truncation must be positive (in voxels), got {truncation}")
    check_grid(grid.shape, 32)  # centres (12 bytes) + Open3D's float32 copies and the result
    centres = grid.centres().reshape(-1, 3)
    distance = signed_distance(vertices, triangles, centres, by_part)
    return np.clip(distance / (truncation * grid.voxel_size), -1, 1).reshape(grid.shape).astype(np.float32)
