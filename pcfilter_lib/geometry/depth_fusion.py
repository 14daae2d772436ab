"""Depth views fused into a voxel grid: a ``View`` is one depth measurement with its camera;
``carve`` makes a ternary grid (occupied / free / unknown) from what the views saw and saw through,
``fuse_tsdf`` a truncated signed distance field, and ``pixel_voxels`` carries each pixel back along
its ray to the voxel its point falls in.

Sources of the ideas: ternary grids and truncated signed distance fields fused from depth images
(Curless and Levoy 1996, KinectFusion).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import open3d as o3d

from pcfilter_lib.geometry.voxel_grids import Grid, check_grid, voxelize_points

FREE, OCCUPIED, UNKNOWN = 0, 1, 2  # cell codes of a ternary grid
_CHUNK = 1 << 20  # voxels handled at once where a computation makes temporaries per voxel


@dataclass(frozen=True)
class View:
    """One depth measurement, as in a scan file.

    Attributes:
        xyz: (H, W, 3) points in the camera frame, NaN where there is none.
        intrinsics: K (3, 3); pixel (u, v) covers [u, u + 1) x [v, v + 1).
        pose: (4, 4) camera to world, OpenCV axes (x right, y down, z forward).
    """

    xyz: np.ndarray
    intrinsics: np.ndarray
    pose: np.ndarray

    def depth(self) -> np.ndarray:
        """Depth z (H, W) float32 in the camera frame, 0 where there is no point."""
        return np.nan_to_num(self.xyz[..., 2], nan=0.0).astype(np.float32)

    def world_points(self) -> np.ndarray:
        """The measured points (N, 3) in the world frame."""
        points = self.xyz.reshape(-1, 3)
        points = points[np.isfinite(points).all(axis=1)]
        return points @ self.pose[:3, :3].T + self.pose[:3, 3]

    def world_xyz(self) -> np.ndarray:
        """Every pixel's point (H, W, 3) in the world frame, NaN where there is none."""
        return self.xyz @ self.pose[:3, :3].T + self.pose[:3, 3]

    @classmethod
    def from_depth(cls, depth: np.ndarray, intrinsics: np.ndarray, pose: np.ndarray) -> View:
        """The view whose points are the pixels' centres pushed out to ``depth`` (H, W) along their rays
        (a scan's ``xyz`` exactly, to rounding); NaN or 0 depth means no point."""
        depth = np.asarray(depth, np.float64)
        if depth.ndim != 2:
            raise ValueError(f"a depth image is (H, W), got shape {depth.shape}")
        K = np.asarray(intrinsics, np.float64)
        v, u = np.mgrid[0:depth.shape[0], 0:depth.shape[1]] + 0.5
        z = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan)
        xyz = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=-1)
        return cls(xyz, K, np.asarray(pose, np.float64))


def pixel_voxels(view: View, grid: Grid) -> np.ndarray:
    """The voxel each pixel's measured point falls in: (H, W) int64 flat indices into ``grid.shape``
    (C order, [x, y, z]), -1 where the pixel has no point or its point lies outside the grid. This is
    where a feature of the pixel lands when it is carried back along its camera ray to the surface."""
    xyz = view.world_xyz().reshape(-1, 3)
    measured = np.isfinite(xyz).all(axis=1)
    ijk, inside = grid.index(np.where(measured[:, None], xyz, np.asarray(grid.origin) - 1.0))  # no point: outside
    flat = np.ravel_multi_index(tuple(np.where(inside[:, None], ijk, 0).T), grid.shape)
    return np.where(inside, flat, -1).reshape(view.xyz.shape[:2])


def carve(views: Sequence[View], grid: Grid) -> np.ndarray:
    """Carve a ternary grid from depth views: what the views saw, what they saw through, and the rest.

    OCCUPIED where a measured point falls, FREE where a camera ray passed through the voxel before
    it reached its measured point, UNKNOWN elsewhere (behind surfaces, outside every view, or where
    the pixel measured nothing).

    A voxel is carved by a view when its centre projects into a pixel with a measurement and lies
    in front of that measurement by more than half the voxel's diagonal, so a voxel the surface
    cuts is never carved. Measured points win over carving (a ray that ends in a voxel marks it
    occupied whatever other views say).

    Args:
        views: the ``View`` objects, in the grid's world frame.
        grid: the ``Grid``.

    Returns:
        (X, Y, Z) uint8 codes ``FREE``, ``OCCUPIED`` or ``UNKNOWN``.

    Raises:
        ValueError: there is no view, or the grid does not fit in memory.
    """
    if not views:
        raise ValueError("carving needs at least one view")
    check_grid(grid.shape, 1 + 40 * min(grid.size, _CHUNK) / grid.size)
    centres_axes = [grid.origin[a] + (np.arange(n) + 0.5) * grid.voxel_size for a, n in enumerate(grid.shape)]
    margin = np.sqrt(3) / 2 * grid.voxel_size
    free = np.zeros(grid.size, dtype=bool)
    occupied = np.zeros(grid.shape, dtype=bool)
    for view in views:
        points = view.world_points()
        if len(points):
            occupied |= voxelize_points(points, grid)
        depth = view.depth()
        h, w = depth.shape
        world_to_camera = np.linalg.inv(view.pose)
        K = view.intrinsics
        for start in range(0, grid.size, _CHUNK):
            flat = np.arange(start, min(start + _CHUNK, grid.size))
            i, j, k = np.unravel_index(flat, grid.shape)
            c = np.stack([centres_axes[0][i], centres_axes[1][j], centres_axes[2][k]], axis=1)
            cam = c @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
            z = cam[:, 2]
            ahead = z > 1e-9
            u = np.full(len(z), -1, np.int64)
            v = np.full(len(z), -1, np.int64)
            u[ahead] = np.floor(K[0, 0] * cam[ahead, 0] / z[ahead] + K[0, 2])
            v[ahead] = np.floor(K[1, 1] * cam[ahead, 1] / z[ahead] + K[1, 2])
            seen = ahead & (u >= 0) & (u < w) & (v >= 0) & (v < h)
            measured = np.zeros(len(z), np.float32)
            measured[seen] = depth[v[seen], u[seen]]
            # Depth along the pixel's ray compares as z, since z is proportional to the ray length.
            free[flat] |= seen & (measured > 0) & (z < measured - margin * z / np.linalg.norm(cam, axis=1))
    grid_codes = np.full(grid.shape, UNKNOWN, dtype=np.uint8)
    grid_codes[free.reshape(grid.shape)] = FREE
    grid_codes[occupied] = OCCUPIED
    return grid_codes


def fuse_tsdf(views: Sequence[View], grid: Grid, truncation: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Fuse depth views into a truncated signed distance field (Curless and Levoy; KinectFusion).

    Open3D's ``UniformTSDFVolume`` does the integration.

    Args:
        views: the ``View`` objects, in the grid's world frame.
        grid: a cubic ``Grid``.
        truncation: the distance, in voxels, at which the field saturates.

    Returns:
        ``(tsdf, weight)``, both (X, Y, Z) float32: the distance along the camera rays in units of
        ``truncation`` voxels, in [-1, 1] and negative behind the surface; and the integration
        weight, 0 where no view observed the voxel.

    Raises:
        ValueError: there is no view, the grid is not a cube, ``truncation`` is not positive, or
            the grid does not fit in memory.
    """
    if not views:
        raise ValueError("fusion needs at least one view")
    if len(set(grid.shape)) != 1:
        raise ValueError(f"Open3D's uniform TSDF volume is a cube; got grid shape {grid.shape}")
    if truncation <= 0:
        raise ValueError(f"truncation must be positive (in voxels), got {truncation}")
    check_grid(grid.shape, 20 + 16 + 8)  # Open3D's voxels, their float64 copy, the two float32 results
    n = grid.shape[0]
    volume = o3d.pipelines.integration.UniformTSDFVolume(
        n * grid.voxel_size, n, truncation * grid.voxel_size, o3d.pipelines.integration.TSDFVolumeColorType.NoColor,
        np.asarray(grid.origin, np.float64).reshape(3, 1))
    for view in views:
        depth = view.depth()
        h, w = depth.shape
        K = view.intrinsics
        # Open3D puts pixel centres at integer coordinates, scan intrinsics at +0.5: shift the centre.
        camera = o3d.camera.PinholeCameraIntrinsic(w, h, K[0, 0], K[1, 1], K[0, 2] - 0.5, K[1, 2] - 0.5)
        colour = o3d.geometry.Image(np.zeros((h, w, 3), np.uint8))
        rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
            colour, o3d.geometry.Image(depth), depth_scale=1.0, depth_trunc=float(depth.max()) + 1.0,
            convert_rgb_to_intensity=False)
        volume.integrate(rgbd, camera, np.linalg.inv(view.pose))
    values = np.asarray(volume.extract_volume_tsdf()).reshape(n, n, n, 2)  # Open3D's index: x * n^2 + y * n + z
    return values[..., 0].astype(np.float32), values[..., 1].astype(np.float32)


def surface_probability(tsdf: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """How surely each voxel holds surface, from a fused TSDF.

    Thresholding it at t keeps the voxels within (1 - t) truncation distances of the surface.

    Args:
        tsdf: (X, Y, Z) truncated signed distances in [-1, 1].
        weight: (X, Y, Z) integration weights; 0 means never observed.

    Returns:
        (X, Y, Z) float32 in [0, 1]: ``1 - abs(tsdf)`` where observed, 0 elsewhere.
    """
    return np.where(np.asarray(weight) > 0, 1.0 - np.abs(tsdf), 0.0).astype(np.float32)
