"""Depth images of a mesh from virtual cameras around it, the input of a multi-view CNN.
"""

from __future__ import annotations

import numpy as np
import open3d as o3d

from pcfilter_lib.geometry.points import check_mesh


def view_directions(n_views: int, elevation: float = 30.0) -> np.ndarray:
    """Unit vectors (V, 3) from the object towards ``n_views`` cameras evenly spaced in azimuth
    around the z axis (starting at +x), ``elevation`` degrees above the horizon."""
    if n_views < 1:
        raise ValueError(f"n_views must be at least 1, got {n_views}")
    azimuth = 2 * np.pi * np.arange(n_views) / n_views
    e = np.radians(elevation)
    return np.stack([np.cos(e) * np.cos(azimuth), np.cos(e) * np.sin(azimuth), np.full(n_views, np.sin(e))], 1)


def render_depth_views(vertices, triangles, n_views: int = 12, size: int = 32, elevation: float = 30.0,
                       distance: float = 2.5) -> np.ndarray:
    """Depth images (V, size, size) float32 of a mesh from ``n_views`` virtual pinhole cameras
    around it (Open3D ``RaycastingScene``). The mesh is centred and scaled into the unit sphere,
    the cameras sit ``distance`` away looking at its centre with a field of view that fits the
    sphere; values are 1 at the nearest possible depth, 0 at the farthest, and 0 where a ray misses."""
    vertices, triangles = check_mesh(vertices, triangles)
    if size < 2:
        raise ValueError(f"image size must be at least 2 pixels, got {size}")
    if distance <= 1:
        raise ValueError(f"the cameras must stand outside the unit sphere, got distance {distance}")
    centre = (vertices.min(0) + vertices.max(0)) / 2
    radius = np.linalg.norm(vertices - centre, axis=1).max()
    if radius <= 0:
        raise ValueError("the mesh vertices all coincide")
    unit = (vertices - centre) / radius
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(unit.astype(np.float32)), o3d.core.Tensor(triangles.astype(np.uint32)))
    fov = 2 * np.degrees(np.arcsin(1 / distance)) * 1.05
    rays = [o3d.t.geometry.RaycastingScene.create_rays_pinhole(
                fov, o3d.core.Tensor([0.0, 0.0, 0.0]), o3d.core.Tensor((distance * d).astype(np.float32)),
                o3d.core.Tensor([0.0, 0.0, 1.0] if abs(d[2]) < 0.999 else [0.0, 1.0, 0.0]), size, size)
            for d in view_directions(n_views, elevation)]
    t = scene.cast_rays(o3d.core.concatenate(rays))["t_hit"].numpy().reshape(n_views, size, size)
    # create_rays_pinhole's directions are not unit vectors (1 at the image centre, longer off-axis).
    lengths = np.linalg.norm(o3d.core.concatenate(rays).numpy()[..., 3:], axis=-1).reshape(t.shape)
    depth = t * lengths
    return np.where(np.isfinite(depth), (distance + 1 - depth) / 2, 0.0).clip(0, 1).astype(np.float32)
