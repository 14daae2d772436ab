"""Data sets over many meshes: occupancy grids and rendered depth views of OFF files, and the
memory a surface voxelisation needs at several resolutions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from pcfilter_lib.data.procedural_modelnet import CLASSES, fan_triangles, make_shape
from pcfilter_lib.geometry.sparse_grids import memory_report
from pcfilter_lib.geometry.views import render_depth_views
from pcfilter_lib.geometry.voxel_grids import check_grid, grid_around, voxelize_mesh
from pcfilter_lib.io.off import read_off


def _iterate(items, progress: bool, desc: str):
    if progress:

        return tqdm(items, desc=desc, unit="mesh")
    return items


def voxelize_files(paths, resolution: int = 32, solid: bool = False, padding: int = 1, progress: bool = False
                   ) -> np.ndarray:
    """Voxelise many OFF meshes, each centred in its own cube (``geometry.voxel_grids.grid_around``).

    Args:
        paths: N OFF files.
        resolution: R, voxels per side.
        solid: fill the inside of each mesh too.
        padding: empty voxels around each shape.
        progress: show a progress bar.

    Returns:
        (N, R, R, R) bool occupancy grids.

    Raises:
        ValueError: the grids would not fit in memory.
    """
    paths = list(paths)
    check_grid((len(paths) * resolution, resolution, resolution), 1)
    grids = np.zeros((len(paths), resolution, resolution, resolution), dtype=bool)
    for i, path in enumerate(_iterate(paths, progress, f"voxelising at {resolution}^3")):
        vertices, triangles = read_off(path)
        grids[i] = voxelize_mesh(vertices, triangles, grid_around(vertices, resolution, padding), solid)
    return grids


def render_files(paths, n_views: int = 12, size: int = 32, elevation: float = 30.0, progress: bool = False
                 ) -> np.ndarray:
    """Render depth views of many OFF meshes (``geometry.views.render_depth_views``).

    Args:
        paths: N OFF files.
        n_views: V, views per mesh.
        size: the side of each image, in pixels.
        elevation: the cameras' angle above the horizon, in degrees.
        progress: show a progress bar.

    Returns:
        (N, V, size, size) float32 nearness images, 1 nearest and 0 for a miss.
    """
    paths = list(paths)
    images = np.zeros((len(paths), n_views, size, size), dtype=np.float32)
    for i, path in enumerate(_iterate(paths, progress, f"rendering {n_views} views")):
        images[i] = render_depth_views(*read_off(path), n_views=n_views, size=size, elevation=elevation)
    return images


def sparsity_study(meshes, resolutions: Sequence[int] = (32, 64, 128)) -> list[dict]:
    """``memory_report`` of the surface voxelisation of each mesh at each resolution.

    Args:
        meshes: a name -> (vertices, triangles) mapping.
        resolutions: voxels per side of the grids to try.

    Returns:
        One row per (mesh, resolution): the keys of ``geometry.sparse_grids.memory_report`` plus ``mesh``
        and ``resolution``.
    """
    rows = []
    for name, (vertices, triangles) in meshes.items():
        for resolution in resolutions:
            occupancy = voxelize_mesh(vertices, triangles, grid_around(vertices, resolution))
            rows.append({"mesh": name, "resolution": int(resolution), **memory_report(occupancy)})
    return rows


def procedural_grids(count: int, seed: int, resolution: int = 64, padding: int = 2, progress: bool = False
                     ) -> np.ndarray:
    """Solid occupancy grids of procedural ModelNet10 shapes, the classes taking turns.

    Shape ``i`` is of class ``i mod 10``, drawn from ``SeedSequence([seed, i])``
    (``data.procedural_modelnet.make_shape``), and voxelised solid in its own cube.

    Args:
        count: N, the number of shapes.
        seed: the set's seed; two seeds give two disjoint draws.
        resolution: R, voxels per side.
        padding: empty voxels around each shape.
        progress: show a progress bar.

    Returns:
        (N, R, R, R) bool.
    """
    check_grid((int(count) * resolution, resolution, resolution), 1)
    grids = np.zeros((int(count), resolution, resolution, resolution), dtype=bool)
    for i in _iterate(range(int(count)), progress, f"voxelising at {resolution}^3"):
        vertices, faces = make_shape(CLASSES[i % len(CLASSES)], np.random.SeedSequence([seed, i]))
        grids[i] = voxelize_mesh(vertices, fan_triangles(faces), grid_around(vertices, resolution, padding), solid=True)
    return grids
