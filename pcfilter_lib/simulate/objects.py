"""Simulated structured-light scans of a single object from several directions.
"""

from __future__ import annotations

import numpy as np

from pcfilter_lib.geometry.depth_fusion import View
from pcfilter_lib.geometry.point_checks import check_mesh, check_points
from pcfilter_lib.simulate.measurement import simulate_scan
from pcfilter_lib.simulate.scanner import ScannerConfig
from pcfilter_lib.simulate.scene import TABLE_MATERIAL, Material, Scene


def _rotation_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def place_object(vertices, size: float = 0.3) -> np.ndarray:
    """Scale and centre an object for the scanner.

    Args:
        vertices: (V, 3) the mesh's vertices, any unit.
        size: the longest side of the result, in metres.

    Returns:
        (V, 3) float64 vertices in metres, the bounding box centred at the origin.

    Raises:
        ValueError: the vertices are not finite, or all coincide.
    """
    vertices = check_points(vertices, "mesh vertices")
    lo, hi = vertices.min(0), vertices.max(0)
    extent = float((hi - lo).max())
    if extent <= 0:
        raise ValueError("the mesh vertices all coincide")
    return (vertices - (lo + hi) / 2) * (size / extent)


def scan_object(vertices, triangles, n_views: int = 4, elevation: float = 45.0, config=None, seed: int = 0,
                stand: float = 0.1) -> list[View]:
    """Simulated structured-light scans of one object from ``n_views`` directions evenly spaced in
    azimuth, ``elevation`` degrees above the horizon (``pcfilter_lib.simulate``, all its artefacts).

    The object (already in metres, e.g. from ``place_object``) stands ``stand`` metres above a floor
    plane, in a matte plastic. The scanner is fixed, so each view turns and tilts the scene about
    the object's centre instead; every returned ``View`` has the camera pose in the object's frame.

    Args:
        vertices: (V, 3) the object's vertices, in metres.
        triangles: (T, 3) vertex indices.
        n_views: the number of scans.
        elevation: the scanner's angle above the horizon, in degrees.
        config: the ``ScannerConfig`` (default: the standard scanner).
        seed: the seed of the simulated noise and artefacts.
        stand: the object's height above the floor, in metres.

    Returns:
        One ``geometry.depth_fusion.View`` per scan, in the object's frame.
    """
    vertices, triangles = check_mesh(vertices, triangles)
    config = config or ScannerConfig()
    z0 = vertices[:, 2].min() - stand
    # A floor far wider than the view, so that every camera ray ends somewhere.
    floor = np.array([[-10.0, -10.0, z0], [10.0, -10.0, z0], [10.0, 10.0, z0], [-10.0, 10.0, z0]])
    floor_faces = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    materials = [TABLE_MATERIAL, Material("matte plastic", 0.6, 0.05, 0.4)]
    rng = np.random.default_rng(seed)
    views = []
    for k in range(n_views):
        turn = np.eye(4)
        turn[:3, :3] = _rotation_x(np.radians(90.0 - elevation)) @ _rotation_z(-2 * np.pi * k / n_views)
        meshes = [(floor @ turn[:3, :3].T, floor_faces), (vertices @ turn[:3, :3].T, triangles.astype(np.int32))]
        scan = simulate_scan(Scene(meshes, materials, {}), config, rng)
        views.append(View(scan["xyz"], np.asarray(scan["intrinsics"], np.float64),
                          np.linalg.inv(turn) @ np.asarray(scan["pose"], np.float64)))
    return views
