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


def true_mesh(scan: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """The simulated scene's triangles in the scan's camera frame: vertices (V, 3), triangles (T, 3)."""
    for key in ("mesh_vertices", "mesh_triangles", "pose"):
        if key not in scan:
            raise ValueError(f"the scan has no {key}: load a simulated scan with arrays=('mesh_vertices', "
                             "'mesh_triangles', 'clean_xyz')")
    pose = np.asarray(scan["pose"], np.float64)  # camera -> world
    world = np.asarray(scan["mesh_vertices"], np.float64)
    camera = (world - pose[:3, 3]) @ pose[:3, :3]  # R^T (p - t), row vectors
    return camera, np.asarray(scan["mesh_triangles"], np.int64)


def reconstruct(points: np.ndarray, normals: np.ndarray, depth: int = 8, trim_quantile: float = 0.05):
    """Poisson mesh (``o3d.geometry.TriangleMesh``) of (N, 3) points with (N, 3) normals; vertices whose
    density is below the ``trim_quantile`` quantile (surface invented far from any point) are removed."""
    points, normals = np.asarray(points, np.float64), np.asarray(normals, np.float64)
    finite = np.isfinite(points).all(1) & np.isfinite(normals).all(1) & (np.abs(normals).sum(1) > 0)
    if finite.sum() < 100:
        raise ValueError(f"Poisson reconstruction needs at least 100 points with normals, got {int(finite.sum())}")
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points[finite]))
    cloud.normals = o3d.utility.Vector3dVector(normals[finite])
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh, density = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(cloud, depth=depth)
    density = np.asarray(density)
    mesh.remove_vertices_by_mask(density < np.quantile(density, trim_quantile))
    return mesh


def distance_to_mesh(query: np.ndarray, vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unsigned distance (m) of each (N, 3) query point to the mesh (vertices, triangles)."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(vertices, np.float32)),
                        o3d.core.Tensor(np.asarray(triangles, np.uint32)))
    return scene.compute_distance(o3d.core.Tensor(np.asarray(query, np.float32))).numpy()


def compare(scan: Mapping, keep: np.ndarray, depth: int = 8) -> dict[str, dict]:
    """Reconstruct the raw points, the points ``keep`` keeps and the clean (true) points of a simulated
    scan; for each: the mesh, and the mean, 95th percentile and max distance (m) of its vertices to
    the true mesh."""
    valid = np.asarray(scan["valid"], bool)
    xyz, normals = np.asarray(scan["xyz"]), np.asarray(scan["normals"])
    if "clean_xyz" not in scan:
        raise ValueError("the scan has no clean_xyz: load it with arrays=('clean_xyz', 'mesh_vertices', ...)")
    true_points = valid & (np.asarray(scan["label"]) == 1)
    sets = {"raw": (xyz[valid], normals[valid]),
            "filtered": (xyz[valid & keep], normals[valid & keep]),
            "clean": (np.asarray(scan["clean_xyz"])[true_points], normals[true_points])}
    vertices, triangles = true_mesh(scan)
    out = {}
    for name, (points, point_normals) in sets.items():
        mesh = reconstruct(points, point_normals, depth)
        d = distance_to_mesh(np.asarray(mesh.vertices), vertices, triangles)
        out[name] = {"mesh": mesh, "points": len(points), "vertices": len(d), "mean_mm": float(d.mean() * 1e3),
                     "p95_mm": float(np.quantile(d, 0.95) * 1e3), "max_mm": float(d.max() * 1e3), "distances": d}
    return out
