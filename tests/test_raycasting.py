"""The one builder of Open3D ray-casting scenes, which the simulator and the geometry tools share."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest

from pcfilter_lib.geometry.raycasting import raycasting_scene


def _box(lo, hi):
    mesh = o3d.geometry.TriangleMesh.create_box(*np.subtract(hi, lo))
    return np.asarray(mesh.vertices) + lo, np.asarray(mesh.triangles)


def test_geometry_ids_follow_the_order_of_the_meshes():
    near, far = _box((-1, -1, 1), (1, 1, 2)), _box((-5, -5, 10), (5, 5, 11))
    scene = raycasting_scene([far, near])  # far is id 0, near id 1
    rays = o3d.core.Tensor(np.array([[0, 0, 0, 0, 0, 1], [3, 3, 0, 0, 0, 1], [20, 0, 0, 0, 0, 1]], np.float32))
    hit = scene.cast_rays(rays)
    np.testing.assert_allclose(hit["t_hit"].numpy(), [1, 10, np.inf])
    assert hit["geometry_ids"].numpy()[:2].tolist() == [1, 0]
    assert hit["geometry_ids"].numpy()[2] == o3d.t.geometry.RaycastingScene.INVALID_ID
    # Distances work on the same scene: a point 0.5 below the near box.
    query = o3d.core.Tensor(np.array([[0.0, 0.0, 0.5]], np.float32))
    assert scene.compute_distance(query).numpy()[0] == pytest.approx(0.5)


def test_bad_meshes_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="at least one mesh"):
        raycasting_scene([])
    vertices, triangles = _box((0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match=r"triangle indices must lie in \[0, 7\]"):
        raycasting_scene([(vertices, triangles + 1)])
    with pytest.raises(ValueError, match="NaN or infinite"):
        raycasting_scene([(np.where(vertices == 1, np.nan, vertices), triangles)])
