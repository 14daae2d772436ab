"""The surface of the points a filter keeps: the step of ``pcfilter reconstruct`` and of chapter 5.

``filtered_surface`` takes a scan (or a cloud's scan-like dict) and a filter's keep mask, optionally
upsamples the kept points with a PU-Net (``models.punet.upsample``, one or more passes), gives them
normals and writes them into a Poisson surface (Kazhdan et al. 2006, ``geometry.reconstruction``):

- normals: a scan's own (estimated from its pixel grid) while no point was added; for upsampled
  points, or input without normals, they are estimated from 16 neighbours and turned towards the
  origin, where a scan's (and most scanner exports') camera sits
  (``geometry.normals.estimate_cloud_normals``);
- trimming: Poisson closes the surface where there were no points. Besides its density rule, mesh
  vertices farther than ``TRIM_SPACINGS`` point spacings from every point are removed; the spacing is
  that of the filtered points, before upsampling makes them denser.

``write_mesh`` writes the surface as Open3D does (.ply, .obj, .off, .stl), atomically.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import open3d as o3d

from pcfilter_lib.geometry.normals import estimate_cloud_normals
from pcfilter_lib.geometry.point_features import point_spacing
from pcfilter_lib.geometry.reconstruction import MIN_POINTS, check_spans_surface, reconstruct
from pcfilter_lib.io.files import atomic_write_with

TRIM_SPACINGS = 4.0  # mesh vertices farther than this many point spacings (of the filtered points) from every point go


@dataclass
class Surface:
    """A Poisson surface and the points it was made from.

    Attributes:
        mesh: the trimmed ``o3d.geometry.TriangleMesh``, in the unit of the scan.
        clouds: the kept points (K, 3), then the points after each upsampling pass (K * r^i, 3),
            float64; the mesh was made from the last.
        normals: (N, 3) float64 normals of ``clouds[-1]``, the scan's or estimated.
        trim_distance: vertices farther than this from every point were removed: ``TRIM_SPACINGS``
            point spacings of the kept points, in their unit.
        upsample_seconds: the wall time of each upsampling pass.
    """

    mesh: object
    clouds: list[np.ndarray]
    normals: np.ndarray
    trim_distance: float
    upsample_seconds: list[float] = field(default_factory=list)


def filtered_surface(scan: Mapping, keep: np.ndarray, depth: int = 8, upsampler=None, passes: int = 0,
                     progress: Callable[[str], None] | None = None) -> Surface:
    """Upsample the points a filter kept ``passes`` times, give them normals and reconstruct their
    trimmed Poisson surface.

    Args:
        scan: a scan dict (``io.scan.load_scan``) or the scan-like dict of a cloud
            (``io.organised.read_cloud``): ``xyz`` (H, W, 3) and, where it has them, ``normals``
            (H, W, 3).
        keep: (H, W) bool, the points the filter kept (``Filter.keep_mask``).
        depth: Poisson's octree depth: 2^depth cells a side over the points' bounding box.
        upsampler: a trained PU-Net (``models.punet.load_upsampler``); needed when ``passes`` > 0.
        passes: upsampling passes, each multiplying the points by the upsampler's ratio.
        progress: called with one line (such as "upsampling 12,345 points (pass 1 of 2)") before
            each stage: to show it, or to stop the work between stages by raising.

    Returns:
        The ``Surface``.

    Raises:
        ValueError: fewer than ``MIN_POINTS`` points are kept, fewer than the upsampler's patch
            are kept, the kept points span no surface (``check_spans_surface``: along a line), or
            ``passes`` > 0 without an upsampler.
    """
    if passes and upsampler is None:
        raise ValueError(f"{passes} upsampling passes need an upsampler (models.punet.load_upsampler)")
    report = progress or (lambda line: None)
    points = np.asarray(scan["xyz"], np.float64)[keep]
    if len(points) < MIN_POINTS:
        raise ValueError(f"{len(points)} points are kept; Poisson reconstruction needs at least {MIN_POINTS}")
    normals = None if scan.get("normals") is None else np.asarray(scan["normals"], np.float64)[keep]
    spacing = point_spacing(points) if np.ptp(points, axis=0).any() else 0.0  # 0: every point at one position
    check_spans_surface(points, spacing)  # collinear points: refused before any upsampling
    trim = TRIM_SPACINGS * spacing  # of the filtered points, before any upsampling
    clouds, seconds = [points], []
    if passes:  # imports Keras: only a surface of upsampled points needs TensorFlow
        from pcfilter_lib.models.punet import upsample
    for i in range(passes):
        report(f"upsampling {len(points):,} points (pass {i + 1} of {passes})")
        start = time.perf_counter()
        points, normals = upsample(points, upsampler), None
        seconds.append(time.perf_counter() - start)
        clouds.append(points)
    if normals is None or not np.isfinite(normals).all(axis=1).any():
        report(f"estimating the normals of {len(points):,} points")
        normals = estimate_cloud_normals(points)
    report(f"Poisson reconstruction of {len(points):,} points at depth {depth}")
    mesh = reconstruct(points, normals, depth, trim_distance=trim)
    return Surface(mesh, clouds, normals, trim, seconds)


def write_mesh(path: str | os.PathLike, mesh) -> None:
    """Write a triangle mesh atomically, in the format its file name ends with (.ply, .obj, .off, .stl;
    an STL gets the triangle normals it stores).

    Args:
        path: the file; a half-written one never appears under this name.
        mesh: an ``o3d.geometry.TriangleMesh``.

    Raises:
        OSError: Open3D could not write it.
    """
    path = Path(path)
    if path.suffix.lower() == ".stl":
        mesh.compute_triangle_normals()  # STL stores one normal per triangle

    def write(tmp: Path) -> None:
        if not o3d.io.write_triangle_mesh(str(tmp), mesh):
            raise OSError(f"Open3D could not write the mesh to {path}")

    atomic_write_with(path, write)
