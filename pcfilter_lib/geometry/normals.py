"""Surface normals: of an organised cloud from its pixel grid (``estimate_normals``), and of any
cloud from its nearest neighbours (``estimate_cloud_normals``, Open3D).
"""

from __future__ import annotations

import numpy as np


def estimate_normals(xyz: np.ndarray, step: int = 1) -> np.ndarray:
    """Unit normals of an organised cloud, from its pixel neighbours.

    The normal at a pixel is the cross product of the differences to the neighbours ``step`` pixels
    away along the rows and along the columns (central differences, one-sided where a neighbour
    is missing), turned towards the camera at the origin.

    Args:
        xyz: (H, W, 3) points in the camera frame, NaN where there is no point.
        step: the distance to the neighbours, in pixels; larger steps smooth noisy depth.

    Returns:
        (H, W, 3) float32 unit normals; NaN where there is no point or no usable neighbour.
    """
    planes = np.ascontiguousarray(np.moveaxis(xyz, -1, 0))  # (3, H, W): x, y and z images
    missing = np.isnan(planes[2])

    def gradient(axis: int) -> np.ndarray:  # along image axis 0 (rows) or 1 (columns)
        p = planes if axis == 0 else planes.transpose(0, 2, 1)
        grad = np.full_like(p, np.nan)
        grad[:, step:-step] = p[:, 2 * step:] - p[:, :-2 * step]
        # One-sided differences where the central one is missing (image border, hole next to the point).
        r, c = np.nonzero(np.isnan(grad[2]) & ~np.isnan(p[2]))
        ahead, behind = np.minimum(r + step, p.shape[1] - 1), np.maximum(r - step, 0)
        forward = p[:, ahead, c] - p[:, r, c]
        backward = p[:, r, c] - p[:, behind, c]
        grad[:, r, c] = np.where(np.isnan(forward[2]) | (ahead == r), backward, forward)
        return grad if axis == 0 else grad.transpose(0, 2, 1)

    (ax, ay, az), (bx, by, bz) = gradient(0), gradient(1)
    n = np.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx])
    with np.errstate(invalid="ignore", divide="ignore"):
        length = np.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2])
        towards = np.where(n[0] * planes[0] + n[1] * planes[1] + n[2] * planes[2] > 0, -length, length)
        n /= towards
    n[:, missing] = np.nan
    return np.ascontiguousarray(np.moveaxis(n, 0, -1), dtype=np.float32)


def estimate_cloud_normals(points: np.ndarray, neighbours: int = 16, viewpoint=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Unit normals of an unorganised cloud: the direction of least spread of each point's
    ``neighbours`` nearest points (Open3D's PCA estimate), turned towards ``viewpoint``.

    Poisson reconstruction needs normals that agree in sign; a scanner's points are seen from its
    camera, so turning every normal towards the camera (the origin of a scan's camera frame) gives
    them one consistent side.

    Args:
        points: (N, 3) finite points, N >= 3.
        neighbours: points per neighbourhood (at least 3).
        viewpoint: (3,) where the points were seen from, in their unit and frame.

    Returns:
        (N, 3) float64 unit normals.

    Raises:
        ValueError: too few points or neighbours, or points that are not finite.
    """
    import open3d as o3d  # deferred: Open3D takes a second to import

    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < 3 or not np.isfinite(points).all():
        raise ValueError(f"normals need a finite (N, 3) cloud of at least 3 points, got shape {points.shape}")
    if neighbours < 3:
        raise ValueError(f"a normal needs at least 3 neighbours, got {neighbours}")
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(min(neighbours, len(points))))
    cloud.orient_normals_towards_camera_location(np.asarray(viewpoint, np.float64))
    return np.asarray(cloud.normals)
