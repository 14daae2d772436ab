"""Neighbourhood statistics over an organised scan's pixel grid, in local point spacings: what they
say about a plane, an isolated point and a mixed pixel, and that no scanner constant changes them."""

import numpy as np
import pytest

from pcfilter_lib.data.scans import CHANNELS, GEOMETRIC, channels_for, scan_inputs
from pcfilter_lib.geometry.pixel_neighbourhoods import (
    RADIUS,
    SCALE,
    STATISTICS,
    SUPPORT,
    angular_pitch,
    pixel_statistics,
)


def plane(h=48, w=64, pitch=0.002, depth=1.0, tilt=0.3):
    """An organised scan of a plane seen by a pinhole camera with ``pitch`` radians per pixel."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u - w / 2) * pitch, (v - h / 2) * pitch, np.ones_like(u)], axis=-1)
    z = depth / (1 - tilt * rays[..., 0])  # the plane z = depth + tilt * x, intersected by each ray
    return rays * z[..., None], np.ones((h, w), bool)


def channel(stats, name):
    return stats[..., STATISTICS.index(name)]


def test_a_plane_is_continuous_and_an_isolated_point_and_a_mixed_pixel_stand_out():
    xyz, valid = plane()
    xyz[20, 30] *= 1.2  # an isolated point far behind the plane
    xyz[10, 10] = 0.5 * (xyz[10, 10] + 1.1 * xyz[10, 10])  # halfway towards a surface 10% deeper
    stats = pixel_statistics(xyz, valid)
    surface = np.ones(valid.shape, bool)
    surface[8:13, 8:13] = surface[18:23, 28:33] = False
    surface[:2] = surface[-2:] = surface[:, :2] = surface[:, -2:] = False
    assert np.allclose(channel(stats, "gap")[surface], np.log1p(1.0) / SCALE, atol=0.02)
    assert np.all(channel(stats, "support")[surface] == 1.0) and np.all(channel(stats, "holes")[surface] == 0)
    assert np.abs(channel(stats, "step")[surface]).max() < 0.1
    for pixel in ((20, 30), (10, 10)):
        assert channel(stats, "gap")[pixel] > 0.5 and channel(stats, "support")[pixel] == 0
        assert channel(stats, "step")[pixel] > 0.5  # deeper than its neighbours


def reference_statistics(xyz, valid):
    """The four channels from their definitions, pixel by pixel, in float64."""
    pitch = angular_pitch(xyz, valid)
    h, w = valid.shape
    out = np.zeros((h, w, 4))
    squash = lambda length: np.sign(length) * np.log1p(np.abs(length)) / SCALE  # noqa: E731
    for y, x in zip(*np.nonzero(valid), strict=True):
        spacing = xyz[y, x, 2] * pitch
        near, depths, support, there = [], [], 0, 0
        for dy in range(-RADIUS, RADIUS + 1):
            for dx in range(-RADIUS, RADIUS + 1):
                v, u = y + dy, x + dx
                if (dy, dx) == (0, 0) or not (0 <= v < h and 0 <= u < w and valid[v, u]):
                    continue
                there += 1
                distance = np.linalg.norm(xyz[v, u].astype(np.float64) - xyz[y, x])
                support += distance <= SUPPORT * np.hypot(dy, dx) * spacing
                if max(abs(dy), abs(dx)) == 1:
                    near.append(distance)
                    depths.append(xyz[v, u, 2])
        step = (xyz[y, x, 2] - np.median(depths)) / spacing if depths else 0.0
        gap = min(squash(min(near) / spacing), 1.0) if near else 1.0
        out[y, x] = np.clip(squash(step), -1, 1), gap, support / 24, (24 - there) / 24
    return out


def test_the_compiled_statistics_follow_their_definitions():
    rng = np.random.default_rng(3)
    xyz, valid = plane(21, 27)
    xyz += rng.normal(0, 0.002, xyz.shape)  # rough, with ghosts, mixed pixels and holes
    xyz[rng.random(valid.shape) < 0.1] *= rng.uniform(0.8, 1.3)
    valid &= rng.random(valid.shape) > 0.15
    xyz[~valid] = np.nan
    np.testing.assert_allclose(pixel_statistics(xyz, valid), reference_statistics(xyz, valid), atol=1e-5)


def test_no_scanner_constant_changes_the_statistics():
    xyz, valid = plane(pitch=0.002, depth=1.0)
    reference = pixel_statistics(xyz, valid)
    np.testing.assert_allclose(pixel_statistics(1000 * xyz, valid), reference, atol=1e-4)  # millimetres
    far, _ = plane(pitch=0.002, depth=2.5)
    np.testing.assert_allclose(pixel_statistics(far, valid), reference, atol=0.02)
    coarse, coarse_valid = plane(h=24, w=32, pitch=0.004)  # half the resolution, the same view
    assert angular_pitch(coarse, coarse_valid) == pytest.approx(2 * angular_pitch(xyz, valid), rel=0.05)
    np.testing.assert_allclose(pixel_statistics(coarse, coarse_valid)[4:-4, 4:-4].mean(axis=(0, 1)),
                               reference[4:-4, 4:-4].mean(axis=(0, 1)), atol=0.02)


def test_holes_are_counted_and_pixels_without_points_are_zero():
    xyz, valid = plane()
    valid[:, 32:] = False
    xyz[~valid] = np.nan  # what a scanner leaves where it measured nothing
    stats = pixel_statistics(xyz, valid)
    assert np.all(stats[~valid] == 0) and np.isfinite(stats).all()
    assert channel(stats, "holes")[20, 31] == pytest.approx(10 / 24)  # two columns of five missing
    assert channel(stats, "holes")[20, 10] == 0


def test_scans_without_neighbouring_points_and_bad_shapes():
    xyz, valid = plane(8, 8)
    checker = (np.add.outer(np.arange(8), np.arange(8)) % 4 == 0)
    stats = pixel_statistics(xyz, checker)  # no two points side by side: no pitch to measure
    assert np.all(channel(stats, "gap")[checker] == 1) and np.all(stats[~checker] == 0)
    assert np.all(pixel_statistics(xyz, np.zeros((8, 8), bool)) == 0)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        pixel_statistics(xyz[..., :2], valid)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        pixel_statistics(xyz, valid[:4])


def test_scan_inputs_give_any_channel_set_and_the_model_size_names_it():
    xyz, valid = plane(16, 20)
    valid[0, 0] = False
    scan = {"xyz": xyz, "valid": valid, "intensity": np.random.default_rng(0).random(valid.shape),
            "normals": np.broadcast_to([0.0, 0.0, -1.0], xyz.shape)}
    x = scan_inputs(scan, GEOMETRIC)
    assert x.shape == (16, 20, len(GEOMETRIC)) and x.dtype == np.float32 and np.all(x[0, 0] == 0)
    np.testing.assert_array_equal(x[..., 1:5], scan_inputs(scan, CHANNELS)[..., 2:6])  # normals and validity
    np.testing.assert_array_equal(x[..., 5:], pixel_statistics(xyz, valid))
    assert channels_for(5) == CHANNELS[:5] and channels_for(6) == CHANNELS and channels_for(9) == GEOMETRIC
    with pytest.raises(ValueError, match="5, 6 or 9"):
        channels_for(7)
    with pytest.raises(ValueError, match="unknown input channels"):
        scan_inputs(scan, ("intensity", "colour"))
    padded = np.zeros((32, 32, len(GEOMETRIC)), np.float32)  # filled in place, as a padded batch is
    assert scan_inputs(scan, GEOMETRIC, out=padded[:16, :20]).base is padded
    np.testing.assert_array_equal(padded[:16, :20], x)
    assert not padded[16:].any() and not padded[:, 20:].any()
    with pytest.raises(ValueError, match="out must be"):
        scan_inputs(scan, GEOMETRIC, out=padded[:16, :21])


def test_a_large_scan_in_bands_of_rows_gives_the_same_statistics(monkeypatch):
    import pcfilter_lib.geometry.pixel_neighbourhoods as neighbourhoods

    rng = np.random.default_rng(4)
    xyz, valid = plane(75, 40)  # 75 rows: three bands of 28, the last one short
    xyz += rng.normal(0, 0.002, xyz.shape)
    valid &= rng.random(valid.shape) > 0.15
    xyz[~valid] = np.nan
    whole = pixel_statistics(xyz, valid)
    monkeypatch.setattr(neighbourhoods, "BAND_PIXELS", 100)
    monkeypatch.setattr(neighbourhoods, "BAND_ROWS", 32 - 2 * RADIUS)
    np.testing.assert_array_equal(pixel_statistics(xyz, valid), whole)


def test_the_xla_check_agrees_with_runtime(monkeypatch):
    """The pixel statistics skip XLA where fast mode turns its optimisation off; geometry cannot import
    runtime (a higher stage), so it reads XLA_FLAGS itself and must read it as runtime does."""
    from pcfilter_lib import runtime
    from pcfilter_lib.geometry import pixel_neighbourhoods

    for flags in ("", runtime.FAST_XLA_FLAG, f"--xla_dump_to=/tmp {runtime.FAST_XLA_FLAG}", "--xla_dump_to=/tmp"):
        monkeypatch.setenv("XLA_FLAGS", flags)
        assert pixel_neighbourhoods._xla_optimised() == (runtime.xla_optimisation() == "on"), flags
