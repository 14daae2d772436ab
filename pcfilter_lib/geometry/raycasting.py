"""Open3D ray-casting scenes of triangle meshes: the one place that builds them.

The simulator casts camera, projector and bounce rays into one; rendered depth views, signed
distance fields and the distance of a reconstruction to the true surface use it as well.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import open3d as o3d

from pcfilter_lib.geometry.point_checks import check_mesh


def raycasting_scene(meshes: Iterable[tuple[np.ndarray, np.ndarray]]) -> o3d.t.geometry.RaycastingScene:
    """An ``o3d.t.geometry.RaycastingScene`` holding each mesh, in order.

    Open3D computes in float32: vertices are rounded to it and triangle indices stored as uint32.

    Args:
        meshes: (vertices (V, 3), triangles (T, 3)) pairs, any unit of length. The i-th pair becomes
            geometry id i, the ``geometry_ids`` that ``cast_rays`` reports for rays hitting it.

    Returns:
        The scene, ready for ``cast_rays``, ``test_occlusions``, ``compute_distance`` and the like.

    Raises:
        ValueError: if a mesh is empty or malformed (see ``check_mesh``), or ``meshes`` is empty.
    """
    scene = o3d.t.geometry.RaycastingScene()
    count = 0
    for vertices, triangles in meshes:
        vertices, triangles = check_mesh(vertices, triangles)
        scene.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)), o3d.core.Tensor(triangles.astype(np.uint32)))
        count += 1
    if count == 0:
        raise ValueError("a ray-casting scene needs at least one mesh; pass a list of (vertices, triangles) pairs")
    return scene
