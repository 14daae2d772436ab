"""Depth images of a mesh from virtual cameras around it, the input of a multi-view CNN.
"""

from __future__ import annotations

import numpy as np
import open3d as o3d

from pcfilter_lib.geometry.point_checks import check_mesh
from pcfilter_lib.geometry.raycasting import raycasting_scene


def view_directions(n_views: int, elevation: float = 30.0) -> np.ndarray:
    """Directions from an object towards cameras on a circle around it.

    Args:
        n_views: V, cameras evenly spaced in azimuth around the z axis, the first on +x.
        elevation: the cameras' angle above the horizon, in degrees.

    Returns:
        (V, 3) unit vectors from the object towards each camera.

    Raises:
        ValueError: ``n_views`` < 1.
    """
    if n_views < 1:
        raise ValueError(f"n_views must be at least 1, got {n_views}")
    azimuth = 2 * np.pi * np.arange(n_views) / n_views
    e = np.radians(elevation)
    return np.stack([np.cos(e) * np.cos(azimuth), np.cos(e) * np.sin(azimuth), np.full(n_views, np.sin(e))], 1)


def render_depth_views(vertices, triangles, n_views: int = 12, size: int = 32, elevation: float = 30.0,
                       distance: float = 2.5) -> np.ndarray:
    """Depth images of a mesh from virtual pinhole cameras around it, for a multi-view CNN.

    The mesh is centred and scaled into the unit sphere; the cameras (``view_directions``) sit
    ``distance`` away, look at its centre with a field of view that fits the sphere, and cast one
    ray per pixel with Open3D's ``RaycastingScene``.

    Args:
        vertices: (V, 3) the mesh's vertices, any unit.
        triangles: (T, 3) vertex indices.
        n_views: number of cameras.
        size: side of each image, in pixels.
        elevation: the cameras' angle above the horizon, in degrees.
        distance: the cameras' distance from the centre, in radii of the unit sphere (> 1).

    Returns:
        (n_views, size, size) float32 nearness: 1 at the nearest possible depth, 0 at the farthest
        and where a ray misses the mesh. The pixels come in the order of Open3D's pinhole rays, which
        is the camera's picture turned by 180 degrees: the first row is the bottom of the picture and
        the first column its right edge. The multi-view CNNs learn from the images in this order: the
        same network with its kernels turned by 180 degrees scores the upright images exactly alike
        (tests/test_mvcnn.py), so neither order is easier to learn. ``upright`` turns them for a figure.

    Raises:
        ValueError: the mesh is malformed or degenerate, ``size`` < 2, or ``distance`` <= 1.
    """
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
    scene = raycasting_scene([(unit, triangles)])
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


def upright(images) -> np.ndarray:
    """Depth images of ``render_depth_views`` turned the way the camera sees them, for figures.

    ``render_depth_views`` returns each picture turned by 180 degrees (Open3D's pixel order). Turning it
    back puts the world's up (+z) at the top of the displayed image (row 0, as ``imshow`` draws by
    default) and the camera's right on the right.

    Args:
        images: (..., H, W) depth images from ``render_depth_views``.

    Returns:
        (..., H, W) the same images turned by 180 degrees in the image plane.

    Raises:
        ValueError: ``images`` has fewer than two axes.
    """
    images = np.asarray(images)
    if images.ndim < 2:
        raise ValueError(f"depth images need at least two axes (H, W), got shape {images.shape}")
    return np.rot90(images, 2, axes=(-2, -1)).copy()
