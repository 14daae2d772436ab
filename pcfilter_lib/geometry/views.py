"""Depth images of a mesh from virtual cameras around it, the input of a multi-view CNN, and which
parts of its surface a set of cameras sees.
"""

from __future__ import annotations

import numpy as np
import open3d as o3d

from pcfilter_lib.geometry.point_checks import check_mesh
from pcfilter_lib.geometry.raycasting import raycasting_scene
from pcfilter_lib.geometry.sampling import sample_surface


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


def icosahedron_directions() -> np.ndarray:
    """Directions from an object towards the 12 vertices of a regular icosahedron around it.

    The cameras spread evenly over the whole sphere of directions, below the horizon as well as above
    it, instead of on one ring (``view_directions``). In the icosahedron's usual position no vertex lies
    on the vertical axis: four cameras look from 58.3 degrees above or below the horizon (the angle
    whose tangent is the golden ratio), four from 31.7 degrees above or below, and four from the
    horizon itself.

    Returns:
        (12, 3) unit vectors, in pairs of opposite directions; any two neighbouring vertices are
        63.4 degrees apart.
    """
    phi = (1 + np.sqrt(5)) / 2
    corners = [(0, a, b * phi) for a in (-1, 1) for b in (-1, 1)]
    corners += [(a, b * phi, 0) for a in (-1, 1) for b in (-1, 1)]
    corners += [(a * phi, 0, b) for a in (-1, 1) for b in (-1, 1)]
    directions = np.asarray(corners, dtype=np.float64)
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)


def unit_directions(directions) -> np.ndarray:
    """(C, 3) camera directions scaled to unit length.

    Raises:
        ValueError: ``directions`` is not (C, 3) with C >= 1, or holds a zero vector.
    """
    directions = np.asarray(directions, dtype=np.float64)
    if directions.ndim != 2 or directions.shape[1] != 3 or len(directions) < 1:
        raise ValueError(f"directions must have shape (C, 3) with C >= 1, got {directions.shape}")
    lengths = np.linalg.norm(directions, axis=1, keepdims=True)
    if np.any(lengths == 0):
        raise ValueError("a camera direction is the zero vector")
    return directions / lengths


def _unit_mesh(vertices, triangles) -> tuple[np.ndarray, np.ndarray]:
    """The mesh centred on its bounding box and scaled into the unit sphere, as the cameras see it."""
    vertices, triangles = check_mesh(vertices, triangles)
    centre = (vertices.min(0) + vertices.max(0)) / 2
    radius = np.linalg.norm(vertices - centre, axis=1).max()
    if radius <= 0:
        raise ValueError("the mesh vertices all coincide")
    return (vertices - centre) / radius, triangles


def surface_seen(vertices, triangles, directions, n_points: int = 4096, distance: float = 2.5,
                 seed: int = 0) -> np.ndarray:
    """Which points of a mesh's surface each camera sees, the cameras placed as ``render_depth_views``
    places them.

    Points are drawn uniformly from the surface (``sample_surface``). A camera sees a point when the ray
    from the camera's centre to the point meets no other surface on the way. The test ignores the
    image's pixels: it tells what a camera could see with a sharp enough image, not what a small depth
    image resolves.

    Args:
        vertices: (V, 3) the mesh's vertices, any unit.
        triangles: (T, 3) vertex indices.
        directions: (C, 3) directions from the object towards the cameras (``view_directions``,
            ``icosahedron_directions``), any length but zero.
        n_points: N, the surface points to test.
        distance: the cameras' distance from the centre, in radii of the unit sphere (> 1).
        seed: seed of the surface sampling.

    Returns:
        (N, C) bool: entry (i, c) is True where camera c sees point i.

    Raises:
        ValueError: the mesh is malformed or degenerate, ``directions`` is not (C, 3) with C >= 1 or
            holds a zero vector, or ``distance`` <= 1.
    """
    directions = unit_directions(directions)
    if distance <= 1:
        raise ValueError(f"the cameras must stand outside the unit sphere, got distance {distance}")
    unit, triangles = _unit_mesh(vertices, triangles)
    points = sample_surface(unit, triangles, n_points, seed=seed, dtype=np.float64)
    scene = raycasting_scene([(unit, triangles)])
    cameras = distance * directions
    # One ray per camera and point, from the camera towards the point; its length is the path to it.
    origins = np.repeat(cameras, len(points), axis=0)
    towards = np.tile(points, (len(cameras), 1)) - origins
    rays = np.concatenate([origins, towards], axis=1).astype(np.float32)
    hit = scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()  # in ray lengths: 1 at the point
    # Seen: nothing is hit before the point itself (a small tolerance for float32 rounding).
    tolerance = 1e-3 / np.linalg.norm(towards, axis=1)
    return (hit >= 1 - tolerance).reshape(len(cameras), len(points)).T


def render_depth_views(vertices, triangles, n_views: int = 12, size: int = 32, elevation: float = 30.0,
                       distance: float = 2.5, directions=None) -> np.ndarray:
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
        directions: optional (V, 3) directions from the object towards the cameras, any length but
            zero (``icosahedron_directions``, for example); when given they replace the ring that
            ``n_views`` and ``elevation`` describe.

    Returns:
        (n_views, size, size) float32 nearness (V images where ``directions`` is given): 1 at the
        nearest possible depth, 0 at the farthest and where a ray misses the mesh. The pixels come in
        the order of Open3D's pinhole rays, which is the camera's picture turned by 180 degrees: the
        first row is the bottom of the picture and the first column its right edge. The multi-view
        CNNs learn from the images in this order: the same network with its kernels turned by 180
        degrees scores the upright images exactly alike (tests/test_mvcnn.py), so neither order is
        easier to learn. ``upright`` turns them for a figure.

    Raises:
        ValueError: the mesh is malformed or degenerate, ``size`` < 2, ``distance`` <= 1, or
            ``directions`` is not (V, 3) with V >= 1 or holds a zero vector.
    """
    vertices, triangles = check_mesh(vertices, triangles)
    if directions is None:
        directions = view_directions(n_views, elevation)
    else:
        directions = unit_directions(directions)
    n_views = len(directions)
    if size < 2:
        raise ValueError(f"image size must be at least 2 pixels, got {size}")
    if distance <= 1:
        raise ValueError(f"the cameras must stand outside the unit sphere, got distance {distance}")
    unit, triangles = _unit_mesh(vertices, triangles)
    scene = raycasting_scene([(unit, triangles)])
    fov = 2 * np.degrees(np.arcsin(1 / distance)) * 1.05
    rays = [o3d.t.geometry.RaycastingScene.create_rays_pinhole(
                fov, o3d.core.Tensor([0.0, 0.0, 0.0]), o3d.core.Tensor((distance * d).astype(np.float32)),
                o3d.core.Tensor([0.0, 0.0, 1.0] if abs(d[2]) < 0.999 else [0.0, 1.0, 0.0]), size, size)
            for d in directions]
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
