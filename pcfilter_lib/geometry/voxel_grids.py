"""Regular voxel grids: the ``Grid`` box, occupancy from points and from triangle meshes, filling
what a closed surface encloses, and the memory check every dense grid passes before it is allocated.

A ``Grid`` is an axis-aligned box of ``shape`` = (X, Y, Z) cubic voxels of edge ``voxel_size``;
voxel (i, j, k) covers ``origin + [i, i + 1) * voxel_size`` along x (likewise y, z), so its centre
is ``origin + (index + 0.5) * voxel_size``. Arrays over a grid are indexed [i, j, k] (x, y, z).

Every function that allocates a grid first estimates the bytes it needs (``check_grid``) and
refuses a zero-size grid or one that would not fit in memory with a ValueError, before allocating.

What is built on a grid lives beside it: distance fields of meshes (``distance_fields``), grids
fused from depth views (``depth_fusion``), what sparse representations save (``sparse_grids``) and
the faces that draw a grid (``voxel_faces``). Sources of the ideas: occupancy grids for 3D CNNs
(3D ShapeNets, VoxNet).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import open3d as o3d
from scipy import ndimage

from pcfilter_lib.geometry.point_checks import check_mesh, check_points
from pcfilter_lib.memory import available_memory

MAX_GRID_BYTES = 8 * 2**30  # never allocate more than this for one grid, whatever memory is free


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
