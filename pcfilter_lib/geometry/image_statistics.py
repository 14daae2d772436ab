"""What the false points of a labelled organised scan look like on the scanner's image, in numbers that
a real scan and a simulated one can be compared by.

``outlier_statistics`` measures a labelled cloud as a set of points; a structured-light scanner's
artefacts also have a place on its pixel grid (next to a depth edge, at the rim of the object or of a
hole, in a blob of neighbouring pixels) and an intensity. ``image_statistics`` measures, for an
organised scan (``xyz`` (H, W, 3) in the camera frame, metres; ``intensity`` (H, W); ``valid``;
per-pixel artefact flags):

- **where**: the share of artefact pixels within ``NEAR`` pixels of a depth edge (a jump of more
  than ``EDGE_JUMP`` point spacings between neighbouring true pixels), of the object's silhouette
  and of a hole in it, and in blobs of at least ``LARGE_BLOB`` pixels; beside each, the share of the
  true pixels in the same place, for the base rate;
- **highlights**: the share of artefact pixels within ``HIGHLIGHT_REACH`` mm of a highlight (a pixel
  brighter than all but ``HIGHLIGHT_SHARE`` of the true pixels), where light reflected by shiny parts
  goes astray, beside the same share of true pixels;
- **offset**: each artefact point's signed distance (mm) to a plane fitted to the
  ``PLANE_NEIGHBOURS`` nearest true pixels in the image, positive towards the camera;
- **blobs**: connected components (8 neighbours) of artefact pixels: how many, their sizes in
  pixels and in mm^2 of image footprint, and how far in depth the pixels of a small blob (2 to
  ``LARGE_BLOB`` - 1 pixels) spread: a small false patch lies at one depth, scattered false points
  do not;
- **intensity**: of artefact and of true pixels, their ratio and how well intensity alone ranks
  artefacts (ROC AUC, 0.5 = not at all; below 0.5 = artefacts darker); the spread of the true
  pixels' intensity and the brightest pixel against their median (a network that scales each scan's
  intensity by its range sees the rest of the scan squeezed by that factor);
- **holes and density**: the object's silhouette is its valid pixels closed over gaps of a few
  pixels with the enclosed holes filled; the share of its pixels that hold a point, the holes in it,
  and the points per mm^2 of surface;
- **noise**: the standard deviation (mm) of true points about planes fitted to windows of
  ``2 NOISE_RADIUS + 1`` pixels: its median, which is the noise on the flat parts (curved and broken
  windows sit in the upper tail), and the same divided by the squared depth, the depth noise at 1 m of
  a triangulating scanner; and the median of 3x3 windows over that of the 5x5 ones, which is 1 for
  noise independent from pixel to pixel and less where neighbours share their error (a scanner that
  smooths its depth, or a phase error that varies slowly across the image); and the same noise
  measured on windows of artefact pixels: as small as the surface's on a smooth false surface,
  far larger on scattered false points.

Lengths that decide where something lies are in pixels or in point spacings (``angular_pitch``), so
that scanners of any resolution and distance are measured alike; offsets and noise are in mm, since
they are what a filter must tell apart from the surface.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.stats import rankdata

from pcfilter_lib.geometry.pixel_neighbourhoods import angular_pitch

EDGE_JUMP = 5.0  # depth jump (point spacings per pixel of offset) between true neighbours that marks a depth edge
NEAR = 2  # pixels: an artefact this close to an edge, silhouette or hole lies at it
LARGE_BLOB = 20  # pixels: a blob at least this large is a false surface, not a speck
CLOSE_GAPS = 2  # the silhouette closes gaps of up to about twice this many pixels
HIGHLIGHT_SHARE = 0.01  # highlights: brighter than all but this share of the true pixels
HIGHLIGHT_REACH = 3.0  # mm: an artefact this close to a highlight lies near it
PLANE_NEIGHBOURS = 16  # true pixels of the plane an artefact's offset is measured to
PLANE_REACH = 40.0  # pixels: no offset where the nearest true pixels lie farther
NOISE_RADIUS = 2  # noise windows are (2 r + 1) pixels wide
NOISE_STRIDE = 2  # noise windows start on every this-many-th row and column


def _disk(radius: int) -> np.ndarray:
    u, v = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return u * u + v * v <= radius * radius + radius  # the 5x5 disk for radius 2, the 3x3 square for 1


def near(mask: np.ndarray, radius: int = NEAR) -> np.ndarray:
    """Pixels within ``radius`` pixels (a disk) of a pixel of ``mask``, the mask included."""
    return ndimage.binary_dilation(mask, _disk(radius)) if radius > 0 else mask.copy()


def silhouette(valid: np.ndarray, close: int = CLOSE_GAPS) -> np.ndarray:
    """The object's silhouette: its valid pixels closed over gaps of up to about ``2 close`` pixels,
    with every enclosed hole filled. (H, W) bool."""
    pad = 2 * close + 1  # room for the closing at the image border
    padded = np.pad(valid, pad)
    closed = ndimage.binary_closing(padded, _disk(close)) if close > 0 else padded
    return ndimage.binary_fill_holes(closed)[pad:-pad, pad:-pad]


def depth_edges(xyz: np.ndarray, true: np.ndarray, pitch: float, jump: float = EDGE_JUMP) -> np.ndarray:
    """True pixels with a true 8-neighbour whose depth differs by more than ``jump`` point spacings per
    pixel of offset: the discontinuities of the true surface. (H, W) bool."""
    z = np.where(true, xyz[..., 2], np.nan)
    edge = np.zeros(true.shape, bool)
    h, w = true.shape
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = z[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
        b = z[max(0, dy):h - max(0, -dy) or None, max(0, dx):w - max(0, -dx) or None]
        with np.errstate(invalid="ignore"):
            big = np.abs(a - b) > jump * pitch * np.hypot(dy, dx) * np.minimum(a, b)
        edge[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)] |= big
        edge[max(0, dy):h - max(0, -dy) or None, max(0, dx):w - max(0, -dx) or None] |= big
    return edge


def blob_sizes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components (8 neighbours) of ``mask``.

    Returns:
        The label image (H, W) int32 (0 outside ``mask``, blobs numbered from 1) and the size in
        pixels of each blob, (B,).
    """
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), int))
    return labels.astype(np.int32), np.bincount(labels.ravel(), minlength=count + 1)[1:]


def _planes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares planes of point sets (N, K, 3): centroids (N, 3), unit normals (N, 3) turned
    towards the camera at the origin, and RMS residuals (N,)."""
    centre = points.mean(axis=1)
    spread = points - centre[:, None]
    values, vectors = np.linalg.eigh(np.einsum("nki,nkj->nij", spread, spread) / points.shape[1])
    normal = vectors[..., 0]
    normal *= np.where(np.einsum("ni,ni->n", normal, centre) > 0, -1.0, 1.0)[:, None]
    return centre, normal, np.sqrt(np.maximum(values[:, 0], 0.0))


def surface_offsets(xyz: np.ndarray, artefact: np.ndarray, true: np.ndarray, neighbours: int = PLANE_NEIGHBOURS,
                    reach: float = PLANE_REACH) -> np.ndarray:
    """Signed distance of each artefact point to the plane of its nearest true pixels in the image.

    Args:
        xyz: (H, W, 3) points, camera frame, metres.
        artefact: (H, W) bool, the pixels to measure.
        true: (H, W) bool, the true pixels the planes are fitted to.
        neighbours: true pixels per plane (the nearest by image distance).
        reach: pixels; an artefact whose farthest plane pixel lies farther gets NaN.

    Returns:
        (A,) offsets in mm, in the row-major order of the artefact pixels: positive in front of the
        plane (towards the camera), negative behind it; NaN where there are too few true pixels near.
    """
    rows, cols = np.nonzero(artefact)
    out = np.full(len(rows), np.nan)
    true_rc = np.argwhere(true)
    if len(rows) == 0 or len(true_rc) < neighbours:
        return out
    dist, idx = cKDTree(true_rc).query(np.c_[rows, cols], k=neighbours, distance_upper_bound=reach)
    ok = np.isfinite(dist[:, -1])
    support = xyz[true_rc[idx[ok], 0], true_rc[idx[ok], 1]].astype(np.float64)  # (N, K, 3)
    centre, normal, _ = _planes(support)
    out[ok] = np.einsum("ni,ni->n", xyz[rows[ok], cols[ok]] - centre, normal) * 1e3
    return out


def ray_offsets(xyz: np.ndarray, clean_xyz: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Where the true surface point of each pixel is known (a simulated scan's ``clean_xyz``): the
    distance (mm) along the camera ray from it to the measured point, positive behind the true
    surface, for the pixels of ``mask`` in row-major order, (M,)."""
    return (np.linalg.norm(xyz[mask], axis=-1) - np.linalg.norm(clean_xyz[mask], axis=-1)) * 1e3


def plane_noise(xyz: np.ndarray, true: np.ndarray, radius: int = NOISE_RADIUS,
                stride: int = NOISE_STRIDE) -> tuple[np.ndarray, np.ndarray]:
    """RMS residual of a plane fitted to every full window of true pixels.

    Args:
        xyz: (H, W, 3) points, camera frame, metres.
        true: (H, W) bool.
        radius: windows are (2 radius + 1) pixels wide.
        stride: windows start on every ``stride``-th row and column.

    Returns:
        The noise (N,) in mm, the RMS residual scaled by sqrt(n / (n - 3)) for the plane's three
        parameters (n = (2 radius + 1)^2 points), so that it estimates the standard deviation of
        independent noise along the normal whatever the window; and the depths (N,) in m of the
        windows' centres.
    """
    side = 2 * radius + 1
    if min(true.shape) < side:
        return np.zeros(0), np.zeros(0)
    full = np.lib.stride_tricks.sliding_window_view(true, (side, side))[::stride, ::stride].all(axis=(-2, -1))
    starts = np.argwhere(full) * stride
    if len(starts) == 0:
        return np.zeros(0), np.zeros(0)
    u, v = np.mgrid[0:side, 0:side]
    points = xyz[starts[:, :1] + u.ravel(), starts[:, 1:] + v.ravel()].astype(np.float64)  # (N, side^2, 3)
    _, _, rms = _planes(points)
    centre_depth = xyz[starts[:, 0] + radius, starts[:, 1] + radius, 2].astype(np.float64)
    return rms * np.sqrt(side * side / (side * side - 3)) * 1e3, centre_depth


def pixel_areas(xyz: np.ndarray, true: np.ndarray) -> np.ndarray:
    """The surface area (mm^2) one pixel covers, ``|right - p| x |down - p|``, at every true pixel whose
    right and lower neighbours are true too, (N,)."""
    both = true[:-1, :-1] & true[:-1, 1:] & true[1:, :-1]
    p = xyz[:-1, :-1][both].astype(np.float64)
    right, down = xyz[:-1, 1:][both] - p, xyz[1:, :-1][both] - p
    return np.linalg.norm(np.cross(right, down), axis=-1) * 1e6


def intensity_auc(artefact_values: np.ndarray, true_values: np.ndarray) -> float | None:
    """ROC AUC of intensity as a score for "artefact": the chance that a random artefact pixel is
    brighter than a random true one (ties count half); None without both."""
    a, t = np.asarray(artefact_values, np.float64), np.asarray(true_values, np.float64)
    if len(a) == 0 or len(t) == 0:
        return None
    ranks = rankdata(np.r_[a, t])  # ties get their mean rank
    return float((ranks[:len(a)].sum() - len(a) * (len(a) + 1) / 2) / (len(a) * len(t)))


def _quantiles(values: np.ndarray, prefix: str, qs=(10, 50, 90)) -> dict[str, float | None]:
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    return {f"{prefix}_p{q}": (float(np.percentile(values, q)) if len(values) else None) for q in qs}


def _share(mask: np.ndarray, of: np.ndarray) -> float | None:
    n = int(of.sum())
    return float((mask & of).sum() / n) if n else None


def image_statistics(xyz, intensity, valid, artefact) -> dict:
    """The statistics of the module docstring for one labelled organised scan.

    Args:
        xyz: (H, W, 3) points, camera frame (depth along +z), metres; ignored where not ``valid``.
        intensity: (H, W) intensity as recorded (any scale: ratios and AUCs compare across scanners).
        valid: (H, W) bool, pixels with a point; only the object's pixels (crop the scan first).
        artefact: (H, W) bool, the valid pixels that are false; the other valid pixels are true.

    Returns:
        A flat dict of numbers (None where a statistic has nothing to measure): counts, ``share_*``
        and ``true_share_*`` (where artefacts and true pixels lie), ``blob*``, ``offset_*`` (mm),
        ``intensity_*``, ``fill``/``holes``/``points_per_mm2``, ``noise_*``.
    """
    xyz = np.asarray(xyz, np.float64)
    valid = np.asarray(valid, bool) & np.isfinite(xyz).all(axis=-1)
    artefact = np.asarray(artefact, bool) & valid
    true = valid & ~artefact
    intensity = np.asarray(intensity, np.float64)
    pitch = angular_pitch(xyz, true)
    shape = silhouette(valid)
    holes = shape & ~valid
    edges = depth_edges(xyz, true, pitch)
    at_edge, at_rim, at_hole = near(edges), near(~shape), near(holes)
    z_median = float(np.median(xyz[..., 2][valid])) if valid.any() else float("nan")
    spacing_mm = pitch * z_median * 1e3  # the point spacing at the median depth
    at_highlight = np.zeros(valid.shape, bool)
    if true.any() and np.isfinite(spacing_mm):
        bright = valid & (intensity > np.percentile(intensity[true], 100 * (1 - HIGHLIGHT_SHARE)))
        at_highlight = near(bright, max(1, round(HIGHLIGHT_REACH / spacing_mm)))
    labels, sizes = blob_sizes(artefact)
    in_large = np.isin(labels, np.flatnonzero(sizes >= LARGE_BLOB) + 1) & artefact
    small = np.flatnonzero((sizes >= 2) & (sizes < LARGE_BLOB)) + 1
    depth = np.where(artefact, xyz[..., 2], 0.0)
    small_spread = (np.asarray(ndimage.maximum(depth, labels, small)) -
                    np.asarray(ndimage.minimum(depth, labels, small))) * 1e3 if len(small) else np.zeros(0)
    pixel_mm2 = spacing_mm ** 2  # footprint of one pixel facing the camera at the median depth
    offsets = surface_offsets(xyz, artefact, true)
    noise, noise_z = plane_noise(xyz, true)
    small_noise, _ = plane_noise(xyz, true, radius=1)
    false_noise, _ = plane_noise(xyz, artefact)
    areas = pixel_areas(xyz, true)
    fill = _share(valid, shape)
    art_i, true_i = intensity[artefact], intensity[true]
    true_median = float(np.median(true_i)) if len(true_i) else None
    stats = {
        "pixels": int(valid.sum()), "artefacts": int(artefact.sum()),
        "artefact_share": _share(artefact, valid),
        "depth_mm_median": z_median * 1e3, "spacing_mm": spacing_mm,
        "share_depth_edge": _share(at_edge, artefact), "true_share_depth_edge": _share(at_edge, true),
        "share_silhouette": _share(at_rim, artefact), "true_share_silhouette": _share(at_rim, true),
        "share_hole_edge": _share(at_hole, artefact), "true_share_hole_edge": _share(at_hole, true),
        "share_rim": _share(at_rim | at_hole, artefact), "true_share_rim": _share(at_rim | at_hole, true),
        "share_near_highlight": _share(at_highlight, artefact), "true_share_near_highlight": _share(at_highlight, true),
        "share_large_blobs": _share(in_large, artefact),
        "blobs": len(sizes), "blob_isolated_share": float((sizes == 1).mean()) if len(sizes) else None,
        "blob_px_median": float(np.median(sizes)) if len(sizes) else None,
        "blob_px_p90": float(np.percentile(sizes, 90)) if len(sizes) else None,
        "blob_px_max": int(sizes.max()) if len(sizes) else None,
        "blob_mm2_median": float(np.median(sizes)) * pixel_mm2 if len(sizes) else None,
        "blob_mm2_max": float(sizes.max()) * pixel_mm2 if len(sizes) else None,
        "small_blob_depth_spread_mm_median": float(np.median(small_spread)) if len(small_spread) else None,
        "offset_measured": int(np.isfinite(offsets).sum()),
        **_quantiles(np.abs(offsets), "offset_abs_mm"),
        "offset_front_share": (float((offsets[np.isfinite(offsets)] > 0).mean())
                               if np.isfinite(offsets).any() else None),
        "offset_within_1mm": (float((np.abs(offsets[np.isfinite(offsets)]) <= 1.0).mean())
                              if np.isfinite(offsets).any() else None),
        "intensity_true_median": true_median,
        "intensity_artefact_median": float(np.median(art_i)) if len(art_i) else None,
        "intensity_ratio": (float(np.median(art_i)) / true_median if len(art_i) and true_median else None),
        "intensity_true_spread": (float((np.percentile(true_i, 90) - np.percentile(true_i, 10)) / true_median)
                                  if true_median else None),
        "intensity_max_over_median": (float(intensity[valid].max()) / true_median if true_median else None),
        "intensity_auc": intensity_auc(art_i, true_i),
        "artefact_darker_than_true_p10": (float((art_i < np.percentile(true_i, 10)).mean())
                                          if len(art_i) and len(true_i) else None),
        "silhouette_pixels": int(shape.sum()), "fill": fill,
        "holes": int(blob_sizes(holes)[1].size), "hole_share": _share(holes, shape),
        "pixel_area_mm2": float(np.median(areas)) if len(areas) else None,
        "points_per_mm2": (fill / float(np.median(areas)) if len(areas) and fill is not None else None),
        "noise_windows": len(noise),
        "noise_mm_median": float(np.median(noise)) if len(noise) else None,
        "noise_mm_p90": float(np.percentile(noise, 90)) if len(noise) else None,
        "noise_at_1m_mm": float(np.median(noise / noise_z ** 2)) if len(noise) else None,
        "artefact_noise_windows": len(false_noise),
        "artefact_noise_mm_median": float(np.median(false_noise)) if len(false_noise) else None,
        "noise_3px_over_5px": (float(np.median(small_noise) / np.median(noise))
                               if len(noise) and len(small_noise) and np.median(noise) > 0 else None),
    }
    return stats
