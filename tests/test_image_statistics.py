"""Image statistics of small organised scans built so that every number is known in advance."""

import numpy as np
import pytest
from scipy import ndimage

from pcfilter_lib.geometry.image_statistics import (
    LARGE_BLOB,
    blob_sizes,
    depth_edges,
    image_statistics,
    intensity_auc,
    plane_noise,
    ray_offsets,
    silhouette,
    surface_offsets,
)

PITCH = 0.001  # radians per pixel: 0.5 mm per pixel at 0.5 m
DEPTH = 0.5


def grid(depth: np.ndarray) -> np.ndarray:
    """Camera-frame points (H, W, 3) of a depth image (H, W) seen with pixels ``PITCH`` apart."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(float)
    return np.stack([(u - w / 2) * PITCH * depth, (v - h / 2) * PITCH * depth, depth], axis=-1)


def flat(h: int = 40, w: int = 40) -> np.ndarray:
    return np.full((h, w), DEPTH)


def test_a_ghost_patch_half_a_millimetre_in_front_of_a_plane():
    depth = flat()
    ghost = np.zeros(depth.shape, bool)
    ghost[10:15, 20:25] = True  # 25 pixels: one blob, a large one
    depth[ghost] -= 0.0005
    intensity = np.where(ghost, 0.2, 0.5)
    intensity[15, 22] = 1.0  # a highlight just below the patch: 3 mm are 6 pixels here
    stats = image_statistics(grid(depth), intensity, np.ones(depth.shape, bool), ghost)
    assert stats["pixels"] == 1600 and stats["artefacts"] == 25
    assert stats["spacing_mm"] == pytest.approx(PITCH * DEPTH * 1e3, rel=1e-3)
    assert stats["blobs"] == 1 and stats["blob_px_max"] == 25 and 25 >= LARGE_BLOB
    assert stats["share_large_blobs"] == 1.0 and stats["blob_isolated_share"] == 0.0
    assert stats["offset_measured"] == 25 and stats["offset_front_share"] == 1.0
    assert stats["offset_abs_mm_p50"] == pytest.approx(0.5, rel=1e-2)  # the plane faces the camera
    assert stats["offset_within_1mm"] == 1.0
    assert stats["share_depth_edge"] == 0.0 and stats["share_rim"] == 0.0  # no edge, no hole, far from the rim
    assert stats["share_near_highlight"] == 1.0 and 0 < stats["true_share_near_highlight"] < 0.1
    assert stats["fill"] == 1.0 and stats["holes"] == 0 and stats["hole_share"] == 0.0
    assert stats["intensity_ratio"] == pytest.approx(0.4) and stats["intensity_auc"] == 0.0
    assert stats["artefact_darker_than_true_p10"] == 1.0
    assert stats["intensity_max_over_median"] == pytest.approx(2.0) and stats["intensity_true_spread"] == 0.0
    # each pixel covers (pitch x depth)^2 of a plane facing the camera: 0.25 mm^2, so 4 points per mm^2
    assert stats["pixel_area_mm2"] == pytest.approx(0.25, rel=1e-3)
    assert stats["points_per_mm2"] == pytest.approx(4.0, rel=1e-3)
    assert stats["noise_mm_median"] == pytest.approx(0.0, abs=1e-6)
    assert stats["artefact_noise_windows"] == 1 and stats["artefact_noise_mm_median"] == pytest.approx(0.0, abs=1e-6)


def test_noise_on_a_flat_part_is_measured_in_millimetres_and_at_one_metre():
    sigma = 0.0001  # 0.1 mm along the depth
    depth = flat(80, 80) + np.random.default_rng(0).normal(0, sigma, (80, 80))
    noise, z = plane_noise(grid(depth), np.ones(depth.shape, bool))
    assert len(noise) == 38 * 38 and np.allclose(z, DEPTH, atol=5 * sigma)
    assert np.median(noise) == pytest.approx(0.1, rel=0.1)  # the plane's 3 parameters accounted for
    stats = image_statistics(grid(depth), np.ones(depth.shape), np.ones(depth.shape, bool), np.zeros(depth.shape, bool))
    assert stats["noise_at_1m_mm"] == pytest.approx(stats["noise_mm_median"] / DEPTH**2, rel=0.02)
    assert stats["noise_3px_over_5px"] == pytest.approx(1.0, abs=0.1)  # independent from pixel to pixel


def test_noise_shared_by_neighbours_looks_smaller_in_small_windows():
    rng = np.random.default_rng(1)
    smooth = ndimage.uniform_filter(rng.normal(0, 0.0003, (80, 80)), size=3)  # each error shared over 3x3 pixels
    depth = flat(80, 80) + smooth
    stats = image_statistics(grid(depth), np.ones(depth.shape), np.ones(depth.shape, bool), np.zeros(depth.shape, bool))
    assert stats["noise_3px_over_5px"] < 0.85
    assert stats["artefacts"] == 0 and stats["blobs"] == 0 and stats["offset_abs_mm_p50"] is None


def test_artefacts_at_a_depth_edge_at_a_hole_and_at_the_silhouette():
    depth = flat()
    depth[:, 20:] += 0.02  # a 20 mm step: 40 spacings per pixel, a depth edge between columns 19 and 20
    true = np.ones(depth.shape, bool)
    edges = depth_edges(grid(depth), true, PITCH)
    assert edges[:, 19:21].all() and edges.sum() == 80
    valid = true.copy()
    valid[30:34, 5:9] = False  # a 4x4 hole
    valid[:, :2] = False  # the object's rim: columns 0-1 hold no point
    artefact = np.zeros(depth.shape, bool)
    artefact[10, 18] = True  # two pixels from the edge
    artefact[30, 9] = True  # next to the hole
    artefact[5, 3] = True  # one pixel from the rim
    shape = silhouette(valid)
    assert shape.sum() == 40 * 38 and not shape[:, :2].any()  # the hole is filled, the rim is not
    stats = image_statistics(grid(depth), np.ones(depth.shape), valid, artefact)
    assert stats["blobs"] == 3 and stats["blob_isolated_share"] == 1.0 and stats["share_large_blobs"] == 0.0
    assert stats["share_depth_edge"] == pytest.approx(1 / 3)
    assert stats["share_hole_edge"] == pytest.approx(1 / 3) and stats["share_silhouette"] == pytest.approx(1 / 3)
    assert stats["share_rim"] == pytest.approx(2 / 3)
    assert stats["holes"] == 1 and stats["hole_share"] == pytest.approx(16 / (40 * 38))
    assert stats["fill"] == pytest.approx(1 - 16 / (40 * 38))
    # the base rates: true pixels within two pixels of the edge are columns 17-22 (6 of the 38 columns)
    assert stats["true_share_depth_edge"] == pytest.approx(6 * 40 / (valid.sum() - 3), rel=0.05)


def test_offsets_of_points_behind_the_surface_and_along_the_ray():
    depth = flat()
    xyz = grid(depth)
    behind = np.zeros(depth.shape, bool)
    behind[20, 20] = True
    far = grid(np.where(behind, DEPTH + 0.003, depth))  # 3 mm behind, along the ray
    offsets = surface_offsets(far, behind, ~behind)
    assert offsets.shape == (1,) and offsets[0] == pytest.approx(-3.0, rel=1e-2)
    assert ray_offsets(far, xyz, behind)[0] == pytest.approx(3.0, rel=1e-2)
    # too few true pixels within reach: no plane, no offset
    alone = np.zeros(depth.shape, bool)
    alone[0, 0] = True
    assert np.isnan(surface_offsets(xyz, behind, alone)).all()


def test_blob_sizes_link_diagonal_neighbours():
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True  # one diagonal chain
    mask[5, 0] = True
    labels, sizes = blob_sizes(mask)
    assert sorted(sizes.tolist()) == [1, 3] and labels[2, 2] == labels[0, 0] != labels[5, 0]


def test_intensity_auc_counts_ties_as_half():
    assert intensity_auc(np.array([1.0, 2.0]), np.array([0.0, 1.0, 3.0])) == pytest.approx(3.5 / 6)
    assert intensity_auc(np.array([5.0]), np.array([1.0, 2.0])) == 1.0
    assert intensity_auc(np.zeros(0), np.ones(3)) is None


def test_a_small_false_patch_lies_at_one_depth_and_scattered_specks_do_not():
    depth = flat()
    patch = np.zeros(depth.shape, bool)
    patch[10:12, 10:13] = True  # 6 pixels, 4 mm in front, each within 0.1 mm of the others
    depth[patch] -= 0.004 + np.linspace(0, 0.0001, 6)
    scattered = np.zeros(depth.shape, bool)
    scattered[25:27, 25:28] = True  # 6 pixels, 2 to 7 mm in front
    depth[scattered] -= np.linspace(0.002, 0.007, 6)
    spread = {}
    for name, mask in (("patch", patch), ("scattered", scattered)):
        stats = image_statistics(grid(depth), np.ones(depth.shape), np.ones(depth.shape, bool), mask)
        spread[name] = stats["small_blob_depth_spread_mm_median"]
    assert spread["patch"] == pytest.approx(0.1, rel=1e-3) and spread["scattered"] == pytest.approx(5.0, rel=1e-3)
    # single pixels and large blobs have no small blob to measure
    lone = np.zeros(depth.shape, bool)
    lone[5, 5] = True
    stats = image_statistics(grid(depth), np.ones(depth.shape), np.ones(depth.shape, bool), lone)
    assert stats["small_blob_depth_spread_mm_median"] is None
