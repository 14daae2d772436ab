"""Training patches for point-cloud upsampling (PU-Net): a sparse input and a dense target, both
drawn from the true surface of a mesh.

As in PU-Net's training data, a target is a dense patch of r*N surface points around a random
centre and its input is a random subset of N of them, so the network learns to put r points where
there was one, on the surface the sparse points hint at. Here the surfaces are the meshes the
simulator scans (or any triangle mesh): points are drawn uniformly by area
(``geometry.sampling.sample_surface``) at twice the target density, and the target keeps the r*N
of the 2*r*N nearest that farthest point sampling spreads most evenly, so that targets show the
even spacing an upsampled cloud should have rather than the clumps of random sampling.

Every patch is normalised by its *input* alone (centred on the input's mean, scaled so that the
farthest input point lies at distance 1) because at inference the dense truth is unknown;
``upsample`` in ``models.punet`` normalises patches of a scan the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pcfilter_lib.geometry.point_checks import check_mesh
from pcfilter_lib.geometry.sampling import sample_surface, triangle_areas


def farthest_point_indices(points, n: int, start: int = 0) -> np.ndarray:
    """Indices of ``n`` points of a cloud (P, 3), or of each of a batch of clouds (S, P, 3), chosen by
    farthest point sampling from point ``start``: each pick is the point farthest from all earlier
    picks. Returns (n,) or (S, n) int64. A batch is sampled in one loop of ``n`` vector steps."""
    points = np.asarray(points, dtype=np.float64)
    single = points.ndim == 2
    batch = points[None] if single else points
    if batch.ndim != 3 or batch.shape[-1] != 3 or not np.isfinite(batch).all():
        raise ValueError(f"points must be a finite (P, 3) or (S, P, 3) array, got shape {points.shape}")
    if not 1 <= n <= batch.shape[1]:
        raise ValueError(f"cannot pick {n} of {batch.shape[1]} points")
    x, y, z = (np.ascontiguousarray(batch[..., a]) for a in range(3))  # one array per axis: faster sums
    rows = np.arange(len(batch))
    picked = np.empty((len(batch), n), dtype=np.int64)
    distance = np.full(x.shape, np.inf)
    current = np.full(len(batch), int(start))
    for i in range(n):
        picked[:, i] = current
        d = (x - x[rows, current, None]) ** 2 + (y - y[rows, current, None]) ** 2 + (z - z[rows, current, None]) ** 2
        np.minimum(distance, d, out=distance)
        current = distance.argmax(axis=1)
    return picked[0] if single else picked


def normalise_patches(inputs, targets=None):
    """Centre each input patch (S, N, 3) on its mean and scale it so that its farthest point lies at
    distance 1; apply the same to ``targets`` (S, M, 3) if given.

    Returns:
        (inputs, targets or None, centres (S, 1, 3), scales (S, 1, 1)); the original coordinates
        are ``normalised * scales + centres``.

    Raises:
        ValueError: if a patch's points all coincide.
    """
    inputs = np.asarray(inputs, dtype=np.float64)
    if inputs.ndim != 3 or inputs.shape[-1] != 3:
        raise ValueError(f"patches must be an (S, N, 3) array, got shape {inputs.shape}")
    centres = inputs.mean(axis=1, keepdims=True)
    scales = np.linalg.norm(inputs - centres, axis=2).max(axis=1)[:, None, None]
    if np.any(scales <= 0):
        raise ValueError("a patch's points all coincide; it cannot be normalised")
    normalised = ((inputs - centres) / scales).astype(np.float32)
    if targets is not None:
        targets = ((np.asarray(targets, dtype=np.float64) - centres) / scales).astype(np.float32)
    return normalised, targets, centres, scales


def expected_spacing(n_points: int, area: float = np.pi) -> float:
    """Side of the square each of ``n_points`` points gets when they cover ``area`` evenly: the
    typical distance between neighbours. The default area is a unit disc, about what a normalised
    patch covers; ``expected_spacing(r * N)`` is the repulsion loss's ``h`` for PU-Net's output."""
    if n_points < 1 or area <= 0:
        raise ValueError(f"need n_points >= 1 and area > 0, got {n_points} and {area}")
    return float(np.sqrt(area / n_points))


def clip_to_box(corners: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The part of a triangle (3, 3) inside the axis-aligned box [lo, hi]: a convex polygon (k, 3),
    k = 0 when they do not meet (Sutherland-Hodgman clipping against the six faces)."""
    polygon = np.asarray(corners, dtype=np.float64)
    for axis in range(3):
        for bound, sign in ((lo[axis], 1.0), (hi[axis], -1.0)):
            if len(polygon) == 0:
                return polygon
            inside = sign * (polygon[:, axis] - bound)  # >= 0 inside this face's half-space
            kept = []
            for i in range(len(polygon)):
                a, b, da, db = polygon[i], polygon[(i + 1) % len(polygon)], inside[i], inside[(i + 1) % len(polygon)]
                if da >= 0:
                    kept.append(a)
                if (da >= 0) != (db >= 0):
                    kept.append(a + (b - a) * (da / (da - db)))
            polygon = np.array(kept).reshape(-1, 3)
    return polygon


def _sample_box(vertices, triangles, low, high, lo, hi, density, rng) -> np.ndarray:
    """Points drawn uniformly, ``density`` per unit area, from the part of a mesh inside [lo, hi].
    ``low`` and ``high`` (T, 3) are the triangles' bounding boxes."""
    near = np.flatnonzero(np.all(low <= hi, axis=1) & np.all(high >= lo, axis=1))
    whole = np.all(low[near] >= lo, axis=1) & np.all(high[near] <= hi, axis=1)
    pieces = [vertices[triangles[near[whole]]]]  # triangles inside the box, as they are
    for t in near[~whole]:  # triangles across its faces, clipped and split into fans
        polygon = clip_to_box(vertices[triangles[t]], lo, hi)
        if len(polygon) >= 3:
            pieces.append(np.stack([np.repeat(polygon[:1], len(polygon) - 2, 0), polygon[1:-1], polygon[2:]], 1))
    corners = np.concatenate(pieces).reshape(-1, 3)
    if len(corners) == 0:
        return corners
    local = np.arange(len(corners)).reshape(-1, 3)
    count = int(np.ceil(triangle_areas(corners, local).sum() * density))
    if count == 0:
        return np.zeros((0, 3))
    return sample_surface(corners, local, count, seed=rng).astype(np.float64)


def upsampling_patches(meshes: Sequence[tuple[np.ndarray, np.ndarray]], n_patches: int, spacing: float,
                       patch_points: int = 256, ratio: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Normalised training pairs for an upsampling network.

    Each patch centre is drawn uniformly from the surfaces (by area). Only the surface inside a box
    around it is sampled, so the spacing may be far finer than a whole scene could be sampled at:
    the box holds about three times the points a patch needs on a flat surface and grows until it
    holds them all.

    Args:
        meshes: (vertices (V, 3), triangles (T, 3)) of the true surfaces, e.g. the ``mesh_vertices``
            and ``mesh_triangles`` of simulated scans.
        n_patches: pairs to draw, shared among the meshes in proportion to their areas.
        spacing: distance between neighbouring target points, in the meshes' unit; the input's
            spacing is about ``spacing * sqrt(ratio)``. Choose it so that inputs are as dense as the
            clouds to upsample.
        patch_points: N, points of an input patch.
        ratio: r, the upsampling factor; a target holds r * N points.
        seed: the seed of every draw (mesh m draws from ``(seed, m)``).

    Returns:
        inputs (n_patches, N, 3) and targets (n_patches, r * N, 3), float32, both normalised by the
        input (``normalise_patches``).

    Raises:
        ValueError: for bad sizes, or meshes too small to hold one target patch at this spacing.
    """
    if n_patches < 1 or patch_points < 1 or ratio < 2:
        raise ValueError(f"need n_patches >= 1, patch_points >= 1 and ratio >= 2, got {n_patches}, "
                         f"{patch_points}, {ratio}")
    if not spacing > 0:
        raise ValueError(f"spacing must be positive, got {spacing}")
    meshes = [check_mesh(v, t) for v, t in meshes]
    if not meshes:
        raise ValueError("no meshes to sample patches from")
    density = 2 / spacing**2  # points per unit area: twice the target density, thinned below
    needed = 2 * ratio * patch_points
    areas = np.array([triangle_areas(v, t).sum() for v, t in meshes])
    usable = areas * density >= needed
    if not usable.any():
        raise ValueError(f"at spacing {spacing:g} no mesh holds a patch of {ratio * patch_points} points; "
                         "choose a smaller spacing or fewer points per patch")
    # Half the side of a box that holds `needed` points on a flat surface, with a margin.
    half = 1.5 * np.sqrt(needed / (np.pi * density))
    rng = np.random.default_rng(seed)
    share = np.where(usable, areas, 0.0)
    per_mesh = rng.multinomial(n_patches, share / share.sum())
    candidates, pick_rngs = [], []
    for m, ((vertices, triangles), count) in enumerate(zip(meshes, per_mesh, strict=True)):
        if count == 0:
            continue
        mesh_rng = np.random.default_rng([seed, m])
        corners = vertices[triangles]
        low, high = corners.min(axis=1), corners.max(axis=1)
        extent = float(np.max(vertices.max(0) - vertices.min(0)))
        for centre in sample_surface(vertices, triangles, int(count), seed=mesh_rng).astype(np.float64):
            size = half
            while True:
                cloud = _sample_box(vertices, triangles, low, high, centre - size, centre + size, density, mesh_rng)
                if len(cloud) >= needed or size > extent:
                    break
                size *= 1.5
            order = np.argsort(np.sum((cloud - centre) ** 2, axis=1), kind="stable")[:needed]
            candidates.append(cloud[order])  # the nearest first: farthest point sampling starts there
            pick_rngs.append(mesh_rng)
    targets = np.take_along_axis(np.stack(candidates),
                                 farthest_point_indices(np.stack(candidates), ratio * patch_points)[..., None], axis=1)
    inputs = np.stack([t[r.choice(len(t), patch_points, replace=False)] for t, r in zip(targets, pick_rngs,
                                                                                          strict=True)])
    normalised, normalised_targets, _, _ = normalise_patches(inputs, targets)
    return normalised, normalised_targets
