"""SurfaceNet's input, the colourised voxel cube (Ji et al. 2017): the colours of a calibrated image
carried back into a voxel grid along the rays of its pixels, so that a 3D network can compare, voxel
by voxel, what several cameras saw there.

* ``Camera``: a pinhole camera looking at a point, z up. ``rays`` are the unit directions through its
  pixel centres (row 0 at the top, column 0 on the left); ``project`` is their inverse, from points to
  pixel coordinates and depth.
* ``position_colours`` paints a surface with a colour that depends on the position alone, and
  ``render`` draws a mesh painted so in front of a noisy background: a point of the surface has the
  same colour in every view, as on a matte textured object, while the background differs from view to
  view and matches no point of the object.
* ``colour_cube``: each point's colour in one image, that of the pixel it projects to. Every voxel on a
  pixel's ray gets the same colour, whether the ray ends there or not.
* ``disagreement``: how far the cubes of several views differ at each voxel. At a voxel on a surface
  that all the cameras see, their rays end at the same point of it and the colours agree; elsewhere
  each ray ends at a different point, and they seldom do. ``visible`` says which points a camera sees.

A hand-made measure like ``disagreement`` is what multi-view stereo computed before networks; SurfaceNet
gives the cubes themselves to a 3D CNN, which learns where colours agree on a surface and also what
to make of voxels that some camera cannot see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from pcfilter_lib.geometry.raycasting import raycasting_scene

UP = np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True)
class Camera:
    """A pinhole camera with square pixels, looking from ``eye`` at ``target`` with z up.

    Attributes:
        eye: (3,) the centre of projection.
        target: (3,) the point the optical axis passes through.
        fov: the field of view across the image, in degrees (0 to 180, exclusive).
        size: the image's side S, in pixels.

    Raises:
        ValueError: the camera looks straight up or down, at its own eye, or has no field of view or
            no pixel.
    """

    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    fov: float
    size: int

    def __post_init__(self):
        if not 0 < self.fov < 180 or self.size < 1:
            raise ValueError(f"need 0 < fov < 180 degrees and at least one pixel, got {self.fov} and {self.size}")
        forward = np.subtract(self.target, self.eye, dtype=np.float64)
        if np.linalg.norm(forward) == 0 or np.linalg.norm(np.cross(forward, UP)) < 1e-9 * np.linalg.norm(forward):
            raise ValueError("the camera must look at a point other than its eye, and not straight up or down")

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The camera's right, up and forward unit vectors in the world."""
        forward = np.subtract(self.target, self.eye, dtype=np.float64)
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, UP)
        right /= np.linalg.norm(right)
        return right, np.cross(right, forward), forward

    def _half_width(self) -> float:
        return float(np.tan(np.radians(self.fov) / 2))

    def rays(self) -> np.ndarray:
        """(S, S, 3) unit directions from the eye through the pixel centres; row 0 is the top of the
        picture and column 0 its left edge."""
        right, up, forward = self.axes()
        u = ((np.arange(self.size) + 0.5) / self.size * 2 - 1) * self._half_width()
        directions = forward + u[None, :, None] * right - u[:, None, None] * up
        return directions / np.linalg.norm(directions, axis=-1, keepdims=True)

    def project(self, points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where points fall in the image.

        Args:
            points: (N, 3) world coordinates.

        Returns:
            ``(row, column, depth)``, each (N,): pixel coordinates with pixel centres at whole
            numbers (the centre of pixel (0, 0) at (0, 0)), and the distance along the optical axis
            (not positive behind the camera, where the coordinates mean nothing).
        """
        right, up, forward = self.axes()
        offset = np.asarray(points, np.float64).reshape(-1, 3) - np.asarray(self.eye, np.float64)
        depth = offset @ forward
        safe = np.where(depth > 0, depth, np.inf) * self._half_width()
        x, y = offset @ right / safe, offset @ up / safe
        return (1 - y) / 2 * self.size - 0.5, (x + 1) / 2 * self.size - 0.5, depth


def camera_around(azimuth: float, elevation: float, distance: float = 2.5, size: int = 128,
                  fov: float | None = None) -> Camera:
    """A camera on a sphere around the origin, looking at it.

    Args:
        azimuth: degrees around the z axis, from +x towards +y.
        elevation: degrees above the horizon (below 90).
        distance: from the origin.
        size: the image's side, in pixels.
        fov: the field of view in degrees; None fits the unit sphere into the image with a margin.

    Returns:
        The ``Camera``.

    Raises:
        ValueError: the camera stands inside the unit sphere while ``fov`` is None, or the values make no
            camera (see ``Camera``).
    """
    if fov is None:
        if distance <= 1:
            raise ValueError(f"a camera that fits the unit sphere must stand outside it, got distance {distance}")
        fov = 2 * np.degrees(np.arcsin(1 / distance)) * 1.05
    a, e = np.radians(azimuth), np.radians(elevation)
    eye = distance * np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
    return Camera(tuple(float(c) for c in eye), (0.0, 0.0, 0.0), float(fov), int(size))


def position_colours(points, frequency: float = 1.0, seed: int = 0) -> np.ndarray:
    """A colour for every point of space, smooth and the same from every side: each channel is a
    sinusoid along its own random direction, ``0.5 + 0.5 sin(2 pi frequency p.d + phase)``.

    Args:
        points: (..., 3) positions.
        frequency: periods per unit of length along each direction.
        seed: chooses the directions and phases.

    Returns:
        (..., 3) RGB in [0, 1].
    """
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(3, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    phases = rng.uniform(0, 2 * np.pi, 3)
    return 0.5 + 0.5 * np.sin(2 * np.pi * frequency * np.asarray(points, np.float64) @ directions.T + phases)


def _cast(scene, origins, directions) -> np.ndarray:
    rays = np.concatenate([np.broadcast_to(origins, directions.shape), directions], axis=-1)
    return scene.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))["t_hit"].numpy()


def render(vertices, triangles, camera: Camera, rng: np.random.Generator, frequency: float = 1.0,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A colour image of a mesh painted by ``position_colours``, one ray per pixel.

    Args:
        vertices: (V, 3) the mesh's vertices, in the camera's units.
        triangles: (T, 3) vertex indices.
        camera: the ``Camera``.
        rng: draws the background, uniform noise in every pixel the mesh does not cover.
        frequency: the paint's ``frequency``.
        seed: the paint's ``seed``.

    Returns:
        The image (S, S, 3) float64 in [0, 1] and the (S, S) bool mask of the pixels that see the mesh.
    """
    directions = camera.rays()
    t = _cast(raycasting_scene([(vertices, triangles)]), np.asarray(camera.eye), directions)
    hit = np.isfinite(t)
    points = np.asarray(camera.eye) + np.where(hit, t, 0.0)[..., None] * directions
    image = np.where(hit[..., None], position_colours(points, frequency, seed), rng.random(directions.shape))
    return image, hit


def colour_cube(image, camera: Camera, points) -> np.ndarray:
    """The colour a view gives each point: that of the pixel the point projects to.

    Args:
        image: (S, S, C) the camera's image.
        camera: the ``Camera`` that took it.
        points: (N, 3) positions, such as the centres of a grid's voxels (``Grid.centres``).

    Returns:
        (N, C) float64 colours; NaN for points behind the camera or outside its picture.
    """
    image = np.asarray(image, np.float64)
    row, column, depth = camera.project(points)
    i, j = np.round(row), np.round(column)
    inside = (depth > 0) & (i >= 0) & (i < camera.size) & (j >= 0) & (j < camera.size)
    colours = np.full((len(depth), image.shape[-1]), np.nan)
    colours[inside] = image[i[inside].astype(int), j[inside].astype(int)]
    return colours


def disagreement(cubes) -> np.ndarray:
    """How far the colours of several views differ at each point: the mean over the colour channels of
    the spread (largest minus smallest value) across the views.

    Args:
        cubes: (V, N, C) the ``colour_cube`` of V >= 2 views at the same N points.

    Returns:
        (N,) in the colours' units: 0 where all views agree, NaN where a view has no colour.

    Raises:
        ValueError: fewer than two views.
    """
    cubes = np.asarray(cubes, np.float64)
    if cubes.ndim != 3 or len(cubes) < 2:
        raise ValueError(f"need the cubes of at least two views as (V, N, C), got shape {cubes.shape}")
    return (cubes.max(axis=0) - cubes.min(axis=0)).mean(axis=-1)


def visible(vertices, triangles, camera: Camera, points, tolerance: float) -> np.ndarray:
    """Which points the camera sees: those that no part of the mesh hides by more than ``tolerance``.

    Args:
        vertices: (V, 3) the mesh's vertices.
        triangles: (T, 3) vertex indices.
        camera: the ``Camera``.
        points: (N, 3) positions.
        tolerance: how far in front of a point the ray may end and the point still count as seen, such
            as half a voxel's diagonal for voxel centres near a surface.

    Returns:
        (N,) bool.
    """
    offset = np.asarray(points, np.float64).reshape(-1, 3) - np.asarray(camera.eye)
    distance = np.linalg.norm(offset, axis=1)
    t = _cast(raycasting_scene([(vertices, triangles)]), np.asarray(camera.eye), offset / distance[:, None])
    return t >= distance - tolerance


def in_unit_sphere(vertices) -> np.ndarray:
    """(V, 3) float64 vertices moved to the centre of their bounding box and scaled into the unit sphere,
    the scale of ``camera_around``.

    Raises:
        ValueError: the vertices all coincide or are not (V, 3).
    """
    vertices = np.asarray(vertices, np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise ValueError(f"need (V, 3) vertices, got shape {vertices.shape}")
    centred = vertices - (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    radius = float(np.linalg.norm(centred, axis=1).max())
    if radius == 0:
        raise ValueError("the vertices all coincide")
    return centred / radius
