"""3D data representations on a regular grid: occupancy, ternary (occupied / free / unknown) grids,
truncated signed distance fields, octrees, and depth images of a shape from several virtual cameras.

A ``Grid`` is an axis-aligned box of ``shape`` = (X, Y, Z) cubic voxels of edge ``voxel_size``;
voxel (i, j, k) covers ``origin + [i, i + 1) * voxel_size`` along x (likewise y, z), so its centre
is ``origin + (index + 0.5) * voxel_size``. Arrays over a grid are indexed [i, j, k] (x, y, z).

Every function that allocates a grid first estimates the bytes it needs (``check_grid``) and
refuses a zero-size grid or one that would not fit in memory with a ValueError, before allocating.

Sources of the ideas: occupancy grids for 3D CNNs (3D ShapeNets, VoxNet), ternary grids and
truncated signed distance fields fused from depth images (Curless and Levoy 1996, KinectFusion),
octrees (OctNet, O-CNN), multi-view CNNs (MVCNN), sparse convolutions (submanifold sparse
convolutional networks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import open3d as o3d
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pcfilter_lib.geometry.points import check_mesh, check_points
from pcfilter_lib.geometry.raycasting import raycasting_scene
from pcfilter_lib.memory import available_memory

FREE, OCCUPIED, UNKNOWN = 0, 1, 2  # cell codes of a ternary grid
MAX_GRID_BYTES = 8 * 2**30  # never allocate more than this for one grid, whatever memory is free
_CHUNK = 1 << 20  # voxels handled at once where a computation makes temporaries per voxel


def check_grid(shape: Sequence[int], bytes_per_voxel: float = 1.0, max_bytes: int | None = None) -> int:
    """The bytes a dense grid needs, checked against the memory before anything is allocated.

    Args:
        shape: (X, Y, Z) voxels.
        bytes_per_voxel: bytes of every array the caller will allocate, per voxel.
        max_bytes: the limit; default the smaller of ``MAX_GRID_BYTES`` and half the memory
            available now.

    Returns:
        The bytes needed.

    Raises:
        ValueError: a side is not positive, or the grid would need more than the limit.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"a voxel grid needs three positive sides, got shape {shape}")
    needed = int(np.prod(shape, dtype=np.float64) * bytes_per_voxel)
    limit = max_bytes if max_bytes is not None else min(MAX_GRID_BYTES, available_memory() // 2)
    if needed > limit:
        raise ValueError(f"a dense grid of {shape[0]}x{shape[1]}x{shape[2]} voxels at {bytes_per_voxel:g} bytes "
                         f"each needs {needed / 2**30:.2f} GiB, more than the {limit / 2**30:.2f} GiB allowed; "
                         "choose a lower resolution or a sparse representation (octree, point list)")
    return needed


@dataclass(frozen=True)
class Grid:
    """A regular voxel grid, in the length unit of the points it holds.

    Attributes:
        origin: (x, y, z) of the corner of voxel (0, 0, 0).
        voxel_size: the edge length of a voxel.
        shape: (X, Y, Z) voxels.

    Raises:
        ValueError: ``voxel_size`` is not a positive number or a side is not positive.
    """

    origin: tuple[float, float, float]
    voxel_size: float
    shape: tuple[int, int, int]

    def __post_init__(self):
        if not (np.isfinite(self.voxel_size) and self.voxel_size > 0):
            raise ValueError(f"voxel_size must be a positive number, got {self.voxel_size}")
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"a voxel grid needs three positive sides, got shape {tuple(self.shape)}")

    @property
    def size(self) -> int:
        """The number of voxels, X * Y * Z."""
        return int(np.prod(self.shape))

    def centres(self) -> np.ndarray:
        """The centres of all voxels.

        Returns:
            (X, Y, Z, 3) float32 coordinates.

        Raises:
            ValueError: the array would not fit in memory (``check_grid``).
        """
        check_grid(self.shape, 12)
        axes = [self.origin[a] + (np.arange(n) + 0.5) * self.voxel_size for a, n in enumerate(self.shape)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).astype(np.float32)

    def index(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The voxel each point falls in.

        Args:
            points: (N, 3) coordinates.

        Returns:
            ``(ijk, inside)``: (N, 3) int64 voxel indices and an (N,) bool mask of the points inside
            the grid (the indices of the others lie outside ``[0, shape)``).
        """
        ijk = np.floor((np.asarray(points, np.float64) - self.origin) / self.voxel_size).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.asarray(self.shape)), axis=1)
        return ijk, inside


def grid_around(points, resolution: int, padding: int = 1) -> Grid:
    """A cubic grid around a shape, with the shape in the middle.

    Args:
        points: (N, 3) points (or mesh vertices) whose bounding box the grid must hold.
        resolution: voxels per side.
        padding: empty voxels left on each side: the box's longest side spans
            ``resolution - 2 * padding`` voxels.

    Returns:
        A ``Grid`` of ``resolution`` ** 3 cubic voxels.

    Raises:
        ValueError: the padding leaves no voxel for the shape, or the points all coincide.
    """
    points = check_points(points)
    resolution, padding = int(resolution), int(padding)
    if resolution < 1 or padding < 0 or resolution - 2 * padding < 1:
        raise ValueError(f"resolution {resolution} with padding {padding} leaves no voxel for the shape")
    lo, hi = points.min(0), points.max(0)
    extent = float((hi - lo).max())
    if extent <= 0:
        raise ValueError("the points all coincide; a grid around them has no size")
    voxel = extent / (resolution - 2 * padding)
    origin = (lo + hi) / 2 - resolution * voxel / 2
    return Grid(tuple(float(o) for o in origin), voxel, (resolution,) * 3)


def voxelize_points(points, grid: Grid) -> np.ndarray:
    """The occupancy of a cloud: True in every voxel at least one point falls in.

    Args:
        points: (N, 3) coordinates; points outside the grid are ignored.
        grid: the ``Grid``.

    Returns:
        (X, Y, Z) bool.
    """
    points = check_points(points)
    check_grid(grid.shape, 1)
    occupancy = np.zeros(grid.shape, dtype=bool)
    ijk, inside = grid.index(points)
    occupancy[tuple(ijk[inside].T)] = True
    return occupancy


def voxelize_mesh(vertices, triangles, grid: Grid, solid: bool = False) -> np.ndarray:
    """The occupancy of a triangle mesh.

    Args:
        vertices: (V, 3) the mesh's vertices.
        triangles: (T, 3) vertex indices.
        grid: the ``Grid``.
        solid: also fill the voxels the surface encloses (every empty voxel that the outside cannot
            reach through face-adjacent empty voxels).

    Returns:
        (X, Y, Z) bool: the voxels the surface touches (exact triangle-box tests by Open3D), and
        with ``solid`` the enclosed ones.
    """
    vertices, triangles = check_mesh(vertices, triangles)
    check_grid(grid.shape, 1)
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices), o3d.utility.Vector3iVector(triangles))
    lo = np.asarray(grid.origin, np.float64)
    hi = lo + np.asarray(grid.shape) * grid.voxel_size
    voxels = o3d.geometry.VoxelGrid.create_from_triangle_mesh_within_bounds(mesh, grid.voxel_size, lo, hi)
    occupancy = np.zeros(grid.shape, dtype=bool)
    ijk = np.array([v.grid_index for v in voxels.get_voxels()], dtype=np.int64).reshape(-1, 3)
    ijk += np.round((np.asarray(voxels.origin) - lo) / grid.voxel_size).astype(np.int64)
    ijk = ijk[np.all((ijk >= 0) & (ijk < np.asarray(grid.shape)), axis=1)]
    occupancy[tuple(ijk.T)] = True
    return fill_interior(occupancy) if solid else occupancy


def fill_interior(surface: np.ndarray) -> np.ndarray:
    """Fill what a closed surface encloses.

    Args:
        surface: (X, Y, Z) occupancy of a closed surface.

    Returns:
        (X, Y, Z) bool: the surface and every empty voxel the outside cannot reach.
    """
    return ndimage.binary_fill_holes(np.asarray(surface, dtype=bool))


def occupied_fraction(occupancy: np.ndarray) -> float:
    """The share of occupied voxels.

    Args:
        occupancy: a grid of any shape; non-zero means occupied.

    Returns:
        A float in [0, 1].

    Raises:
        ValueError: the grid has no voxels.
    """
    occupancy = np.asarray(occupancy, dtype=bool)
    if occupancy.size == 0:
        raise ValueError("the grid has no voxels")
    return float(np.count_nonzero(occupancy) / occupancy.size)


# Distance fields --------------------------------------------------------------------------------


def mesh_parts(vertices, triangles) -> list[np.ndarray]:
    """Split a mesh into its connected parts (parts share no vertex).

    Args:
        vertices: (V, 3) the mesh's vertices.
        triangles: (T, 3) vertex indices.

    Returns:
        One (T_i, 3) array of triangles per part, indexing the same ``vertices``.
    """
    vertices, triangles = check_mesh(vertices, triangles)
    n = len(vertices)
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    part = labels[triangles[:, 0]]
    return [triangles[part == p] for p in np.unique(part)]


def signed_distance(vertices, triangles, points, by_part: bool = True) -> np.ndarray:
    """Signed distance (N,) float32 from points (N, 3) to a mesh, negative inside.

    With ``by_part=False`` this is Open3D's ``RaycastingScene.compute_signed_distance``, which decides
    inside / outside by counting ray crossings and so assumes one closed surface without
    self-intersections. A shape built from overlapping closed parts (a chair from boxes) breaks that
    where parts overlap: a point inside two parts crosses an even number of walls. ``by_part`` keeps
    Open3D's unsigned distance to the whole mesh and takes the sign from each connected part on its
    own (``compute_occupancy`` of the points in the part's bounding box): inside any part is inside.

    Args:
        vertices: (V, 3) the mesh's vertices.
        triangles: (T, 3) vertex indices.
        points: (N, 3) query points, in the unit of the vertices.
        by_part: decide inside and outside part by part (see above).

    Returns:
        (N,) float32 signed distances, in the unit of the vertices.
    """
    vertices, triangles = check_mesh(vertices, triangles)
    points = check_points(points, "query points").astype(np.float32)
    query = o3d.core.Tensor(points)
    scene = raycasting_scene([(vertices, triangles)])
    if not by_part:
        return scene.compute_signed_distance(query, nsamples=3).numpy()
    distance = scene.compute_distance(query).numpy()
    inside = np.zeros(len(points), dtype=bool)
    for part in mesh_parts(vertices, triangles):
        corners = vertices[part.ravel()]
        near = np.flatnonzero(np.all((points >= corners.min(0)) & (points <= corners.max(0)), axis=1) & ~inside)
        if len(near):
            part_scene = raycasting_scene([(vertices, part)])
            inside[near] |= part_scene.compute_occupancy(o3d.core.Tensor(points[near]), nsamples=3).numpy() > 0.5
    return np.where(inside, -distance, distance).astype(np.float32)


def tsdf_from_mesh(vertices, triangles, grid: Grid, truncation: float = 3.0, by_part: bool = True) -> np.ndarray:
    """The truncated signed distance field of a mesh.

    Args:
        vertices: (V, 3) the mesh's vertices.
        triangles: (T, 3) vertex indices.
        grid: the ``Grid``.
        truncation: the distance, in voxels, at which the field saturates.
        by_part: take the sign part by part (``signed_distance``).

    Returns:
        (X, Y, Z) float32 in [-1, 1]: the signed distance at each voxel centre divided by
        ``truncation`` voxels and clipped; negative inside.

    Raises:
        ValueError: ``truncation`` is not positive, or the grid does not fit in memory.
    """
    if truncation <= 0:
        raise ValueError(f"truncation must be positive (in voxels), got {truncation}")
    check_grid(grid.shape, 32)  # centres (12 bytes) + Open3D's float32 copies and the result
    centres = grid.centres().reshape(-1, 3)
    distance = signed_distance(vertices, triangles, centres, by_part)
    return np.clip(distance / (truncation * grid.voxel_size), -1, 1).reshape(grid.shape).astype(np.float32)


# Views: depth images from a camera with a pose -----------------------------------------------


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


# Octrees and memory ------------------------------------------------------------------------------


def octree_levels(occupancy: np.ndarray) -> list[np.ndarray]:
    """The nodes of an octree over an occupancy grid, level by level.

    The grid is padded to a cube of side 2 ** L and each level marks a cell occupied when any of
    its 8 children is.

    Args:
        occupancy: (X, Y, Z) occupancy.

    Returns:
        L + 1 bool cubes, coarsest (1, 1, 1) first, the padded grid (2 ** L per side) last.

    Raises:
        ValueError: ``occupancy`` is not a non-empty 3D grid.
    """
    occupancy = np.asarray(occupancy, dtype=bool)
    if occupancy.ndim != 3 or occupancy.size == 0:
        raise ValueError(f"occupancy must be a non-empty 3D grid, got shape {occupancy.shape}")
    side = 1 << int(np.ceil(np.log2(max(occupancy.shape))))
    level = np.zeros((side,) * 3, dtype=bool)
    level[:occupancy.shape[0], :occupancy.shape[1], :occupancy.shape[2]] = occupancy
    levels = [level]
    while level.shape[0] > 1:
        s = level.shape[0] // 2
        level = level.reshape(s, 2, s, 2, s, 2).any(axis=(1, 3, 5))
        levels.append(level)
    return levels[::-1]


def memory_report(occupancy: np.ndarray) -> dict[str, float]:
    """Bytes to store one occupancy grid (X, Y, Z) in four ways:

    - ``dense_float32``: the grid as a 3D CNN reads it, 4 bytes per voxel;
    - ``dense_bits``: one bit per voxel;
    - ``octree``: a pointer-free octree in breadth-first order, one byte per occupied inner node
      holding the occupancy of its 8 children (empty space is never refined, leaves cost nothing);
    - ``points``: the occupied voxels as a coordinate list, three int32 (12 bytes) per voxel,
      as sparse-convolution libraries keep them.

    Args:
        occupancy: (X, Y, Z) occupancy.

    Returns:
        The four byte counts keyed as above, and ``voxels``, ``occupied`` and
        ``occupied_fraction``.
    """
    levels = octree_levels(occupancy)
    occupied = int(np.count_nonzero(occupancy))
    size = int(np.asarray(occupancy).size)
    return {"voxels": size, "occupied": occupied, "occupied_fraction": occupied / size,
            "dense_float32": 4 * size, "dense_bits": -(-size // 8),
            "octree": int(sum(np.count_nonzero(level) for level in levels[:-1])),
            "points": 12 * occupied}


def conv_sites(occupancy: np.ndarray, layers: int = 3, kernel: int = 3) -> dict[str, list[int]]:
    """Where stacked 3D convolutions compute: the cost of dense, sparse and submanifold convolutions.

    Args:
        occupancy: (X, Y, Z) the active voxels of the input.
        layers: number of stacked convolutions.
        kernel: odd side of the kernel^3 kernels.

    Returns:
        For ``dense`` (every voxel), ``sparse`` (wherever the kernel touches an active voxel, so
        the active set dilates layer by layer) and ``submanifold`` (only the input's active
        voxels, which never grow): the number of output sites after each layer.

    Raises:
        ValueError: ``layers`` < 1 or the kernel is not a positive odd number.
    """
    occupancy = np.asarray(occupancy, dtype=bool)
    if layers < 1 or kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"need layers >= 1 and an odd kernel, got {layers} and {kernel}")
    structure = np.ones((kernel,) * 3, dtype=bool)
    active, sparse = occupancy, []
    for _ in range(layers):
        active = ndimage.binary_dilation(active, structure)
        sparse.append(int(np.count_nonzero(active)))
    return {"dense": [occupancy.size] * layers, "sparse": sparse,
            "submanifold": [int(np.count_nonzero(occupancy))] * layers}


# Multi-view depth images -------------------------------------------------------------------------


# Exposed faces, for drawing voxels ---------------------------------------------------------------


def voxel_faces(occupancy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A triangle mesh of the faces of occupied voxels that border empty space, for drawing.

    Args:
        occupancy: (X, Y, Z) occupancy.

    Returns:
        ``(vertices, triangles)``: (V, 3) int32 in voxel units, the corner of voxel (0, 0, 0) at
        the origin, and (T, 3) int32, two per face; both empty for an empty grid.
    """
    occupancy = np.asarray(occupancy, dtype=bool)
    padded = np.pad(occupancy, 1)
    quads = []
    corners = {0: [(0, 0, 0), (0, 1, 0), (0, 1, 1), (0, 0, 1)], 1: [(0, 0, 0), (0, 0, 1), (1, 0, 1), (1, 0, 0)],
               2: [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0)]}
    for axis in range(3):
        for step in (-1, 1):
            neighbour = np.roll(padded, -step, axis=axis)[1:-1, 1:-1, 1:-1]
            ijk = np.argwhere(occupancy & ~neighbour)
            if len(ijk) == 0:
                continue
            offset = np.zeros(3, np.int64)
            offset[axis] = 1 if step > 0 else 0
            quads.append(ijk[:, None, :] + offset + np.array(corners[axis]))
    if not quads:
        return np.zeros((0, 3), np.int32), np.zeros((0, 3), np.int32)
    quads = np.concatenate(quads)  # (Q, 4, 3)
    vertices, inverse = np.unique(quads.reshape(-1, 3), axis=0, return_inverse=True)
    q = inverse.reshape(-1, 4)
    triangles = np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]])
    return vertices.astype(np.int32), triangles.astype(np.int32)


# Simulated scans of one object --------------------------------------------------------------------


# Data sets and experiments over many meshes --------------------------------------------------------


