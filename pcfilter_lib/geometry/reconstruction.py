"""Filter, then reconstruct: Poisson surface reconstruction (Kazhdan et al. 2006, via Open3D) of a
scan's points, measured against the true scene mesh.

``reconstruct`` turns points with normals into a triangle mesh and trims the low-density skirt that
Poisson adds where there were no points; ``distance_to_mesh`` measures each vertex's distance to the
true surface with ``o3d.t.geometry.RaycastingScene.compute_distance``. ``compare`` does both for the
raw, the filtered and the clean points of a simulated scan.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import open3d as o3d

from pcfilter_lib.geometry.raycasting import raycasting_scene
from pcfilter_lib.labels import KEEP

MIN_POINTS = 100  # oriented points Poisson reconstruction is given at least
# Points whose spread across their main direction is below this share of their spacing lie on a line
# (within their noise): no surface passes through them, and Poisson would invent one.
LINE_SPREAD = 0.25


def true_mesh(scan: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """The simulated scene's true surface in the scan's camera frame.

    Args:
        scan: a simulated scan dict loaded with its ``mesh_vertices`` and ``mesh_triangles`` (world
            frame) and its ``pose`` (4 x 4, camera to world).

    Returns:
        ``(vertices, triangles)``: (V, 3) float64 metres in the camera frame and (T, 3) int64.

    Raises:
        ValueError: the scan lacks the mesh or the pose.
    """
    for key in ("mesh_vertices", "mesh_triangles", "pose"):
        if key not in scan:
            raise ValueError(f"the scan has no {key}: load a simulated scan with arrays=('mesh_vertices', "
                             "'mesh_triangles', 'clean_xyz')")
    pose = np.asarray(scan["pose"], np.float64)  # camera -> world
    world = np.asarray(scan["mesh_vertices"], np.float64)
    camera = (world - pose[:3, 3]) @ pose[:3, :3]  # R^T (p - t), row vectors
    return camera, np.asarray(scan["mesh_triangles"], np.int64)


def check_spans_surface(points: np.ndarray, spacing: float) -> None:
    """Refuse points that span no surface: a surface needs the centred points to have rank 2 or more,
    and here the rank is measured within the noise, against the points' spacing. The spread across
    the main direction (the standard deviation along the second principal axis) below ``LINE_SPREAD``
    spacings means the points lie along a line, or at one point; Poisson would still write a thin
    closed "surface" around them.

    Args:
        points: (N, 3) finite points.
        spacing: their point spacing (``geometry.point_features.point_spacing``), in their unit.

    Raises:
        ValueError: the points lie at one point or along a line (one line, with the spread and spacing).
    """
    points = np.asarray(points, np.float64)
    centred = points - points.mean(axis=0)
    spread = np.sqrt(np.clip(np.linalg.eigvalsh(centred.T @ centred / len(points)), 0, None))[::-1]
    if spread[0] == 0:
        raise ValueError(f"the {len(points)} points all lie at one position, so they span no surface to reconstruct; "
                         "give points that cover a surface")
    if spread[1] <= LINE_SPREAD * spacing:
        raise ValueError(f"the {len(points)} points lie along a line: across it they spread {spread[1]:.2g}, under "
                         f"{LINE_SPREAD:g} of their spacing {spacing:.2g} (in their unit), so they span no surface to "
                         "reconstruct; give points that cover a surface")


def reconstruct(points: np.ndarray, normals: np.ndarray, depth: int = 8, trim_quantile: float = 0.05,
                trim_distance: float | None = None):
    """Poisson surface reconstruction of oriented points, trimmed where it invented surface.

    Args:
        points: (N, 3) points; rows with a non-finite point or normal, or a zero normal, are left out.
        normals: (N, 3) their normals.
        depth: depth of Poisson's octree: the surface is resolved on a grid of 2 ** depth cells a
            side over the points' bounding box.
        trim_quantile: vertices whose point density is below this quantile of all densities
            (surface far from any point, such as the skirt around a scan) are removed.
        trim_distance: if given, vertices farther than this from every point are removed too, in
            the unit of ``points``. The density rule is relative: a dense, even cloud (an upsampled
            one) can leave a sheet of invented surface above the quantile; a distance cannot.

    Returns:
        The trimmed ``o3d.geometry.TriangleMesh``, in the unit of ``points``.

    Raises:
        ValueError: fewer than 100 points have usable normals.
    """
    points, normals = np.asarray(points, np.float64), np.asarray(normals, np.float64)
    finite = np.isfinite(points).all(1) & np.isfinite(normals).all(1) & (np.abs(normals).sum(1) > 0)
    if finite.sum() < MIN_POINTS:
        raise ValueError(f"Poisson reconstruction needs at least {MIN_POINTS} points with normals, got "
                         f"{int(finite.sum())}")
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points[finite]))
    cloud.normals = o3d.utility.Vector3dVector(normals[finite])
    # One thread: Open3D's multithreaded Poisson crashes now and then when the cores are busy
    # (isl-org/Open3D#7229, #6828); at these depths one thread costs little.
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh, density = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(cloud, depth=depth, n_threads=1)
    density = np.asarray(density)
    remove = density < np.quantile(density, trim_quantile)
    if trim_distance is not None:
        vertices = o3d.geometry.PointCloud(mesh.vertices)
        remove |= np.asarray(vertices.compute_point_cloud_distance(cloud)) > trim_distance
    mesh.remove_vertices_by_mask(remove)
    return mesh


def distance_to_mesh(query: np.ndarray, vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """The distance from each query point to the nearest point of a mesh's surface.

    Args:
        query: (N, 3) points.
        vertices: (V, 3) the mesh's vertices, in the unit of the queries.
        triangles: (T, 3) vertex indices.

    Returns:
        (N,) float32 unsigned distances, in the unit of the inputs (metres for scans).
    """
    scene = raycasting_scene([(vertices, triangles)])
    return scene.compute_distance(o3d.core.Tensor(np.asarray(query, np.float32))).numpy()


def measure_mesh(mesh, vertices: np.ndarray, triangles: np.ndarray) -> dict:
    """How far a reconstructed mesh lies from a true one.

    Args:
        mesh: the reconstructed ``o3d.geometry.TriangleMesh``, in the unit of ``vertices``.
        vertices: (V, 3) the true mesh's vertices (metres for scans).
        triangles: (T, 3) its triangles.

    Returns:
        the ``mesh``, its number of ``vertices``, the ``distances`` (vertices,) of its vertices to the
        true surface in the input unit, and their ``mean_mm``, ``p95_mm`` and ``max_mm`` (the input
        unit times 1000: millimetres for metres).
    """
    d = distance_to_mesh(np.asarray(mesh.vertices), vertices, triangles)
    return {"mesh": mesh, "vertices": len(d), "mean_mm": float(d.mean() * 1e3),
            "p95_mm": float(np.quantile(d, 0.95) * 1e3), "max_mm": float(d.max() * 1e3), "distances": d}


def measure(points: np.ndarray, normals: np.ndarray, vertices: np.ndarray, triangles: np.ndarray,
            depth: int = 8, trim_distance: float | None = None) -> dict:
    """Poisson-reconstruct oriented points (``reconstruct``) and measure the mesh against a true one.

    Args:
        points: (N, 3) points, in the unit of ``vertices`` (metres for scans).
        normals: (N, 3) their normals.
        vertices: (V, 3) the true mesh's vertices.
        triangles: (T, 3) its triangles.
        depth: Poisson's octree depth.
        trim_distance: ``reconstruct``'s distance rule (None: the density rule alone).

    Returns:
        what ``measure_mesh`` gives, and the number of input ``points``.

    Raises:
        ValueError: fewer than 100 points have usable normals.
    """
    mesh = reconstruct(points, normals, depth, trim_distance=trim_distance)
    return {"points": len(points), **measure_mesh(mesh, vertices, triangles)}


def compare(scan: Mapping, keep: np.ndarray, depth: int = 8) -> dict[str, dict]:
    """What filtering buys downstream: Poisson meshes of a scan's points before and after filtering,
    measured against the true surface.

    Args:
        scan: a simulated scan dict loaded with ``clean_xyz``, ``mesh_vertices`` and
            ``mesh_triangles``.
        keep: (H, W) bool, the filter's keep mask.
        depth: Poisson's octree depth.

    Returns:
        For "raw" (every measured point), "filtered" (the points ``keep`` keeps) and "clean" (the
        true points at their true positions, the best any filter could give): what ``measure``
        gives (the mesh, its vertices' distances to the true mesh in metres, their mean, 95th
        percentile and maximum in millimetres).

    Raises:
        ValueError: the scan lacks ``clean_xyz`` or its mesh, or a point set is too small.
    """
    valid = np.asarray(scan["valid"], bool)
    xyz, normals = np.asarray(scan["xyz"]), np.asarray(scan["normals"])
    if "clean_xyz" not in scan:
        raise ValueError("the scan has no clean_xyz: load it with arrays=('clean_xyz', 'mesh_vertices', ...)")
    true_points = valid & (np.asarray(scan["label"]) == KEEP)
    sets = {"raw": (xyz[valid], normals[valid]),
            "filtered": (xyz[valid & keep], normals[valid & keep]),
            "clean": (np.asarray(scan["clean_xyz"])[true_points], normals[true_points])}
    vertices, triangles = true_mesh(scan)
    return {name: measure(points, point_normals, vertices, triangles, depth)
            for name, (points, point_normals) in sets.items()}
