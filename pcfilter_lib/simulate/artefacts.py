"""How each artefact of the structured-light scanner arises: one function per effect of
``ScannerConfig.effects`` (interreflection, mixed pixels, specular saturation, depth noise and the
realism effects' phase bias, rim errors and correlated noise), with the projector light and
reflection they share. ``scanner`` describes the kinds and the scanner; ``measurement`` runs a scan
through them stage by stage.
"""

from __future__ import annotations

import numpy as np
import open3d as o3d
from scipy import ndimage, special

from pcfilter_lib.geometry.image_statistics import blob_sizes
from pcfilter_lib.simulate.scanner import Rig, ScannerConfig, _cast, _dot, _times, _unit

_EPS = 2e-4  # offset of secondary ray origins from the surface (m)


def specular_lobe(to_light: np.ndarray, normal: np.ndarray, to_viewer: np.ndarray, roughness: np.ndarray):
    """Gaussian lobe around the mirror direction, peak (0.1 / roughness)^2: shiny surfaces give
    narrow, bright highlights (roughness in radians)."""
    # cosine between the light's mirror direction and the viewer, without forming the mirror vector
    cos = np.clip(2 * _dot(normal, to_light) * _dot(normal, to_viewer) - _dot(to_light, to_viewer), -1, 1)
    return np.exp(-2 * (1 - cos) / roughness**2) * (0.12 / roughness) ** 2


def projector_light(rig: Rig, scene: o3d.t.geometry.RaycastingScene, points: np.ndarray, normals: np.ndarray,
                    shadow: bool):
    """Projector irradiance at ``points`` (N, 3) with ``normals``: (irradiance (N,), unit direction to
    the projector (N, 3), projector column (N,), lit (N,) bool). A point is lit when it faces the
    projector, falls inside its image and (with ``shadow``) no surface blocks the way."""
    to_proj = rig.projector_origin - points
    to_light, dist = _unit(to_proj)
    cos = _dot(normals, to_light)
    axes = -rig.projector_pose[:3, :3].astype(np.float32)  # columns: the projector's x, y, z axes (negated)
    x, y, z = (np.einsum("ij,j->i", to_proj, axes[:, k]) for k in range(3))  # in the projector frame
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_z = np.float32(1) / z
        column = np.float32(rig.Kp[0, 0]) * x * inv_z + np.float32(rig.Kp[0, 2])
        row = np.float32(rig.Kp[1, 1]) * y * inv_z + np.float32(rig.Kp[1, 2])
    pw, ph = rig.config.projector_size
    lit = (cos > 0) & (z > 0) & (column >= 0) & (column < pw) & (row >= 0) & (row < ph)
    if shadow:
        idx = np.flatnonzero(lit)
        rays = np.empty((len(idx), 6), np.float32)
        np.take(points, idx, axis=0, out=rays[:, :3])
        rays[:, :3] += _EPS * np.take(normals, idx, axis=0)
        np.subtract(rig.projector_origin, rays[:, :3], out=rays[:, 3:])
        blocked = scene.test_occlusions(o3d.core.Tensor(rays), tfar=0.999).numpy()
        lit[idx[blocked]] = False
    irradiance = np.where(lit, cos / np.square(dist), np.float32(0))
    return irradiance, to_light, column, lit


def direct_radiance(material: np.ndarray, irradiance, to_light, normals, to_viewer):
    """Radiance (N,) of the projector's light leaving towards the viewer: diffuse + specular
    (``material`` rows: albedo, specular, roughness)."""
    spec = material[:, 1] * specular_lobe(to_light, normals, to_viewer, material[:, 2])
    return irradiance * (material[:, 0] + spec), irradiance * spec


def interreflection(rig: Rig, scene, table: np.ndarray, material: np.ndarray, points, normals, view,
                    config: ScannerConfig, rng: np.random.Generator, fine: bool = False):
    """Coded light that reaches each surface point p (N, 3) from a second surface q, towards the camera.

    One ray per pixel leaves p along the camera ray's mirror direction, spread by p's roughness, and
    finds q. q's projector light comes back through p's specular lobe, its stripes blurred over
    roughness * ``|pq|`` (stripes finer than the blur lose their contrast), and through p's diffuse
    reflection, of which ``low_frequency_share`` still corrupts the code. Returns the coded
    radiance (N,) and q's projector column (N,; NaN where the ray reaches no lit surface); with
    ``fine``, also the part of the radiance that still carries the finest stripes (N,): the specular
    part only, since diffusely reflected light averages the finest pattern away (it corrupts the
    coarse codes, not the finest phase), with the contrast a Gaussian blur of the lobes leaves to a
    sinusoid of the stripes' period (exp(-2 pi^2 blur^2 / period^2), stricter than the coarse
    codes' contrast above).
    """
    n = len(points)
    mirror = view - 2 * _dot(view, normals)[:, None] * normals  # view: the camera ray direction
    dirs = mirror + material[:, 2:3] * rng.standard_normal((n, 3), np.float32)
    below = np.flatnonzero(_dot(dirs, normals) <= 0)  # a ray under the surface is mirrored back above it
    dirs[below] -= 2 * _dot(dirs[below], normals[below])[:, None] * normals[below]
    dirs = _unit(dirs)[0]
    origins = points + _EPS * normals
    t, gid, qn = _cast(scene, origins, dirs)
    radiance = np.zeros(n, np.float32)
    fine_radiance = np.zeros(n, np.float32)
    column = np.full(n, np.nan, np.float32)
    hit = np.flatnonzero(np.isfinite(t))
    if len(hit):
        t_hit, dirs_hit, mat_p = t[hit], np.take(dirs, hit, axis=0), np.take(material, hit, axis=0)
        back = -dirs_hit
        q = np.take(origins, hit, axis=0) + t_hit[:, None] * dirs_hit
        qn = np.take(qn, hit, axis=0)
        qn *= np.where(_dot(qn, back) < 0, np.float32(-1), np.float32(1))[:, None]
        e_q, to_light_q, col_q, lit_q = projector_light(rig, scene, q, qn, "shadow" in config.effects)
        mat_q = np.take(table, gid[hit], axis=0)
        l_q, l_q_spec = direct_radiance(mat_q, e_q, to_light_q, qn, back)
        to_q = q - rig.projector_origin
        period2 = np.float32((config.stripe_period / rig.Kp[0, 0]) ** 2) * _dot(to_q, to_q)
        # Both lobes blur: p's over its roughness, and q's for the share of q's light that is specular.
        q_share = np.divide(l_q_spec, l_q, out=np.zeros_like(l_q), where=l_q > 0)
        blur2 = np.square(t_hit) * (np.square(mat_p[:, 2]) + np.square(q_share * mat_q[:, 2]))
        contrast = np.exp(-blur2 / period2)
        radiance[hit] = (mat_p[:, 1] * contrast + config.low_frequency_share * mat_p[:, 0]) * l_q
        # a Gaussian blur of std b keeps exp(-2 pi^2 b^2 / period^2) of a sinusoid's amplitude
        fine_radiance[hit] = mat_p[:, 1] * np.exp(np.float32(-2 * np.pi**2) * blur2 / period2) * l_q
        column[hit] = np.where(lit_q, col_q, np.nan)
    return (radiance, column, fine_radiance) if fine else (radiance, column)


def discontinuities(depth: np.ndarray, jump: float) -> np.ndarray:
    """Pixels (H, W) bool next to a relative depth jump above ``jump`` or to a pixel that sees nothing
    (``depth`` is inf there)."""
    edge = np.zeros(depth.shape, bool)
    with np.errstate(invalid="ignore"):
        for axis in (0, 1):
            a = np.take(depth, range(depth.shape[axis] - 1), axis=axis)
            b = np.take(depth, range(1, depth.shape[axis]), axis=axis)
            step = np.abs(a - b) > jump * np.fmin(a, b)  # inf - inf is NaN: two misses are no edge
            if axis == 0:
                edge[:-1] |= step
                edge[1:] |= step
            else:
                edge[:, :-1] |= step
                edge[:, 1:] |= step
    return edge


def mixed_pixels(rig: Rig, scene, table: np.ndarray, pixels: np.ndarray, depth: np.ndarray,
                 config: ScannerConfig, rng: np.random.Generator):
    """Blended depths of pixels whose footprint straddles a depth discontinuity.

    Only ``pixels`` (flat indices) next to a discontinuity are super-sampled
    (``supersample`` squared rays each); where their samples' depths disagree the decoder sees the sum of
    their coded light and, with ``mixed_probability``, returns the depth (camera z) weighted by each
    sample's coded radiance, a point between foreground and background.
    Returns (flat indices, blended depths)."""
    width = config.width
    pixels = pixels[discontinuities(depth, config.edge_jump).ravel()[pixels]]
    s = config.supersample
    offsets = (np.arange(s) + 0.5) / s
    du, dv = (a.ravel() for a in np.meshgrid(offsets, offsets))
    u = (pixels % width)[:, None] + du[None]
    v = (pixels // width)[:, None] + dv[None]
    dirs_cam = rig.pixel_dirs(u.ravel(), v.ravel())
    dirs = _times(dirs_cam, rig.pose[:3, :3].T)
    t, gid, normals = _cast(scene, np.broadcast_to(rig.origin, dirs.shape), dirs)
    weight = np.zeros(len(dirs), np.float32)
    depth = np.where(np.isfinite(t), t, 0.0) * dirs_cam[:, 2]  # a missed sample adds no light, hence no depth
    hit = np.flatnonzero(np.isfinite(t))
    if len(hit):
        n = normals[hit]
        n = np.where((_dot(n, dirs[hit]) > 0)[:, None], -n, n)
        points = rig.origin + t[hit, None] * dirs[hit]
        e, to_light, _, _ = projector_light(rig, scene, points, n, "shadow" in config.effects)
        weight[hit] = direct_radiance(table[gid[hit]], e, to_light, n, -dirs[hit])[0]
    t, weight, depth = (a.reshape(len(pixels), s * s) for a in (t, weight, depth))
    with np.errstate(invalid="ignore"):
        near, far = t.min(1), t.max(1)
        straddle = ~(far - near <= config.edge_jump * near)  # a miss among the samples is a straddle too
    total = weight.sum(1)
    chosen = straddle & (total > 0) & (rng.random(len(pixels)) < config.mixed_probability)
    blended = np.where(weight > 0, weight * depth, 0).sum(1)[chosen] / total[chosen]
    return pixels[chosen], blended


def specular_saturation(signal: np.ndarray, config: ScannerConfig, rng: np.random.Generator):
    """Pixels hit by a saturating highlight: (saturated, dropped, column shift), each like ``signal`` (H, W).

    Pixels whose signal exceeds 1, and their neighbours within ``blooming_radius`` (charge spills
    over), lose their code (``specular_dropout``) or decode a column shifted by a random
    ``blooming_columns`` either way."""
    saturated = signal > 1.0
    if config.blooming_radius > 0 and saturated.any():
        r = config.blooming_radius
        saturated = ndimage.binary_dilation(saturated, np.ones((2 * r + 1, 2 * r + 1), bool)) & (signal > 0)
    n = int(saturated.sum())
    dropped = saturated.copy()
    dropped[saturated] = rng.random(n) < config.specular_dropout
    lo, hi = config.blooming_columns
    shift = np.zeros(signal.shape, np.float32)
    shift[saturated] = rng.uniform(lo, hi, n) * np.where(rng.random(n) < 0.5, -1, 1)
    return saturated, dropped, shift


def depth_sigma(z, noise_1m: float):
    """The triangulation's depth noise, which grows with the square of the depth.

    Args:
        z: depths, metres (any shape).
        noise_1m: the standard deviation at 1 m, metres.

    Returns:
        The standard deviation at each depth, metres.
    """
    return noise_1m * np.square(z)


def depth_noise(z: np.ndarray, config: ScannerConfig, rng: np.random.Generator) -> np.ndarray:
    """Draw the depth error of each measured point.

    Args:
        z: (N,) depths, metres.
        config: the scanner (its ``noise_1m``).
        rng: the generator of the draws.

    Returns:
        (N,) errors in metres: Gaussian with ``depth_sigma(z)``, clipped at 3 sigma.
    """
    return np.clip(rng.standard_normal(len(z), np.float32), -3, 3) * depth_sigma(z, config.noise_1m)


def phase_bias_columns(direct_coded: np.ndarray, direct_column: np.ndarray, indirect: np.ndarray,
                       indirect_column: np.ndarray, pixels: np.ndarray, config: ScannerConfig) -> np.ndarray:
    """The column shift (P,) (projector pixels) by which inter-reflected light pulls each pixel's phase.

    Phase shifting measures the finest pattern's phase as the argument of the sum of all the coded
    light a pixel receives. Where the direct light D (phase phi_d) wins but light inter-reflected from
    a second surface I (phase phi_i) overlaps it, the phase is arg(D e^{i phi_d} + I e^{i phi_i}): the
    coarse codes still find p's period, but within it the phase is pulled towards phi_i by up to
    arcsin(I / D) (Gupta et al. 2013 analyse this bias). The indirect phasor is averaged over a
    Gaussian of ``bias_blur`` pixels, the footprint of the glossy reflection lobe that neighbouring
    pixels share, and scaled by ``bias_gain``: the bias is smooth where the reflected light varies
    slowly, so it makes smooth false surfaces a fraction of a millimetre off the true one, not
    scattered points.

    Args:
        direct_coded: (P,) coded radiance of p's own light.
        direct_column: (P,) p's projector column.
        indirect: (P,) radiance of the inter-reflected light that keeps the finest stripes
            (``interreflection`` with ``fine``).
        indirect_column: (P,) its projector column (NaN where none).
        pixels: (P,) flat pixel indices of the hits.
        config: the scanner (``stripe_period``, ``bias_gain``, ``bias_blur``, image size).

    Returns:
        (P,) float32 column shifts, 0 where no inter-reflected light overlaps.
    """
    h, w = config.height, config.width
    k = 2 * np.pi / config.stripe_period
    has = np.isfinite(indirect_column) & (indirect > 0)
    phasor = np.zeros(h * w, np.complex64)
    phasor[pixels[has]] = indirect[has] * np.exp(1j * k * indirect_column[has])
    footprint = np.zeros(h * w, np.float32)
    footprint[pixels] = 1
    blur = config.bias_blur
    if blur > 0:
        phasor = (ndimage.gaussian_filter(phasor.real.reshape(h, w), blur)
                  + 1j * ndimage.gaussian_filter(phasor.imag.reshape(h, w), blur)).ravel()
        footprint = ndimage.gaussian_filter(footprint.reshape(h, w), blur).ravel()
    mean = phasor[pixels] / np.maximum(footprint[pixels], 1e-6)  # the average over the lobe's hit pixels
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = config.bias_gain * mean * np.exp(-1j * k * direct_column) / direct_coded
    ratio = np.where(np.isfinite(ratio) & (direct_coded > 0), ratio, 0)
    return (np.angle(1 + ratio) / k).astype(np.float32)


def rim_errors(hits_cos: np.ndarray, subsurface: np.ndarray, pixels: np.ndarray, candidates: np.ndarray,
               config: ScannerConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Which of the ``candidates`` err at a translucent rim, and their offsets towards the camera (m).

    Seen at a grazing angle, a translucent surface's (``subsurface`` > 0) pixel footprint is long and
    the light scattered under the skin leaves it from the rim towards the camera: the decoder finds the
    code of light that entered farther along, and the point lies a few millimetres in front of the
    surface (the real fruit's false points: all within 2 pixels of the silhouette, 1.7-9.9 mm in
    front, in blobs of 2-9 pixels, darker than the surface). Pixels whose cosine of incidence is below
    ``rim_cos`` err where a ``smooth_field`` (``rim_length`` pixels) exceeds the quantile that makes
    ``rim_rate`` of them err, so errors come in small blobs; each offset is uniform in ``rim_offset``,
    drawn per pixel, or with ``rim_blob_offset`` once per blob (8-connected erring pixels): each real
    blob is a small false patch at one depth (its depth spread, a median of 0.25 mm on ``apple_03`` in
    ``benchmarks/results/sim_vs_real.md``), not scattered points.

    Args:
        hits_cos: (P,) cosine of the camera's incidence angle at each hit.
        subsurface: (P,) the share of diffuse light scattered inside the material.
        pixels: (P,) flat pixel indices of the hits.
        candidates: (C,) positions among the hits that may err (measured from the direct code).
        config: the scanner.
        rng: the generator.

    Returns:
        (positions among the hits (E,), offsets towards the camera (E,) in metres).
    """
    field = smooth_field((config.height, config.width), config.rim_length, rng).ravel()
    grazing = candidates[(hits_cos[candidates] < config.rim_cos) & (subsurface[candidates] > 0)]
    threshold = special.ndtri(1 - np.clip(config.rim_rate, 1e-9, 1 - 1e-9))
    err = grazing[field[pixels[grazing]] > threshold]
    if not config.rim_blob_offset:
        return err, rng.uniform(*config.rim_offset, len(err)).astype(np.float32)
    erring = np.zeros(config.height * config.width, bool)
    erring[pixels[err]] = True
    blobs, sizes = blob_sizes(erring.reshape(config.height, config.width))
    offsets = rng.uniform(*config.rim_offset, len(sizes)).astype(np.float32)
    return err, offsets[blobs.ravel()[pixels[err]] - 1]


def smooth_field(shape: tuple[int, int], length: float, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian random field (H, W) float32 of unit variance whose values are shared by pixels about
    ``length`` pixels apart: white noise blurred by a Gaussian of that sigma, rescaled (a blurred
    field's variance is 1 / (4 pi sigma^2) of the white noise's)."""
    white = rng.standard_normal(shape, np.float32)
    if length <= 0:
        return white
    return (ndimage.gaussian_filter(white, length) * np.float32(2 * np.sqrt(np.pi) * length)).astype(np.float32)


def correlated_depth_noise(z: np.ndarray, pixels: np.ndarray, white: np.ndarray, config: ScannerConfig,
                           rng: np.random.Generator) -> np.ndarray:
    """Depth errors (N,) (m) of which a share ``noise_correlation`` of the variance is common to
    neighbouring pixels (the ``correlated_noise`` effect).

    A real scanner's depth error is partly shared between neighbours: the phase is estimated from
    several pixels' light (the lens and sensor blur the pattern, the decoder may filter it), so the
    real scans' noise on 3x3 windows is 0.72-0.85 of that on 5x5 windows, where independent noise
    gives about 1. The error is sqrt(1 - c) white + sqrt(c) times a ``smooth_field`` of correlation
    length ``noise_length`` pixels, clipped at 3 sigma like ``depth_noise``.

    Args:
        z: (N,) depths, metres.
        pixels: (N,) flat pixel indices of the points.
        white: (N,) the independent standard normal draws (those of ``depth_noise``).
        config: the scanner.
        rng: the generator of the shared field.
    """
    c = float(np.clip(config.noise_correlation, 0, 1))
    field = smooth_field((config.height, config.width), config.noise_length, rng).ravel()[pixels]
    unit = np.float32(np.sqrt(1 - c)) * white + np.float32(np.sqrt(c)) * field
    return np.clip(unit, -3, 3) * depth_sigma(z, config.noise_1m)
