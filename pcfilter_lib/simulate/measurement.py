"""One scan of the structured-light scanner, stage by stage: what each pixel sees, the coded light
that reaches it, what the decoder makes of it, the artefacts that corrupt the code (``artefacts``),
the measured depth, the label and the images (``simulate_scan``); and the same from a camera moved
around the scene (``simulate_view``). ``scanner`` describes the kinds of artefact and the scanner's
settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d
from scipy import special

from pcfilter_lib.geometry.normals import estimate_normals
from pcfilter_lib.labels import (
    ARTEFACT,
    KEEP,
    KIND_DARK,
    KIND_DECODING,
    KIND_INTERREFLECTION,
    KIND_MIXED,
    KIND_NONE,
    KIND_PHASE_BIAS,
    KIND_RIM,
    KIND_SHADOW,
    KIND_SPECULAR,
    NO_POINT,
)
from pcfilter_lib.simulate.artefacts import (
    correlated_depth_noise,
    depth_noise,
    depth_sigma,
    direct_radiance,
    interreflection,
    mixed_pixels,
    phase_bias_columns,
    projector_light,
    rim_errors,
    specular_saturation,
)
from pcfilter_lib.simulate.scanner import Rig, ScannerConfig, _dot, rig_for
from pcfilter_lib.simulate.scene import NO_SURFACE, Scene


def label_tolerance(z, noise_1m: float, floor: float = 1e-3):
    """How far a measured point may lie from its true surface point and still count as true geometry.

    Args:
        z: depths, metres.
        noise_1m: the scanner's depth noise at 1 m, metres.
        floor: the offset (m) that counts as true whatever the noise (``ScannerConfig.label_floor``).

    Returns:
        ``floor`` (1 mm by default) plus three standard deviations of the depth noise, in metres.
    """
    return floor + 3 * depth_sigma(z, noise_1m)


# ---------------------------------------------------------------------------------------------
# One scan, stage by stage: what each pixel sees, the coded light that reaches it, what the decoder
# makes of it, the artefacts that corrupt the code, the measured depth, the label, the images.

# Each stage that draws random numbers has its own generator, seeded from the scan's ``rng``, so that
# switching one effect off leaves the others' draws unchanged.
STREAMS = ("interreflection", "specular", "mixed", "noise", "intensity", "decoding")
# The realism effects' streams are drawn after those, and only when one of them is on, so that a scan
# without them draws exactly what generator version 3 drew.
REALISM_STREAMS = ("rim", "edge", "correlated_noise")


@dataclass
class _Hits:
    """The surface point p each pixel's centre ray sees, over the P pixels whose ray meets a surface."""

    pixels: np.ndarray  # (P,) flat pixel indices (row-major), ascending
    t: np.ndarray  # (P,) float32 distance (m) along the ray to p
    surface: np.ndarray  # (P,) surface id of p
    dirs: np.ndarray  # (P, 3) float32 unit ray directions, world frame
    dz: np.ndarray  # (P,) float32 z of the ray direction in the camera frame: depth = distance * dz
    normals: np.ndarray  # (P, 3) float32 unit normals at p, turned towards the camera
    points: np.ndarray  # (P, 3) float32 p, world frame (m)
    material: np.ndarray  # (P, 3) float32 albedo, specular, roughness at p


@dataclass
class _Light:
    """Coded light reaching the camera from each hit pixel's point p (radiance (P,) and column (P,))."""

    direct: np.ndarray  # the projector's own light at p
    direct_coded: np.ndarray  # the part of it that still carries the stripes (not scattered inside p)
    direct_column: np.ndarray  # the projector column lighting p
    lit: np.ndarray  # bool: p faces the projector, inside its image and (with shadows) unblocked
    indirect: np.ndarray  # light of a second surface q reflected by p
    indirect_column: np.ndarray  # the column lighting q (NaN where none)
    indirect_fine: np.ndarray | None = None  # phase_bias, contrast_reject: the part keeping the finest stripes


@dataclass
class _Decoded:
    """The decoder's verdict on each hit pixel (P,); later stages refine it in place."""

    kind: np.ndarray  # uint8 artefact kind
    column: np.ndarray  # float32 decoded projector column
    measured: np.ndarray  # bool: the pixel gives a point
    signal: np.ndarray  # float32 sensor signal under an all-white projection: direct + indirect + ambient
    direct_signal: np.ndarray  # float32 the same without the indirect light
    offset: np.ndarray | None = None  # float32 (P,) rim errors' distance towards the camera (m), with ``rim``


def _primary_hits(rig: Rig, rc: o3d.t.geometry.RaycastingScene, table: np.ndarray) -> _Hits:
    """Cast one ray per pixel centre; keep the pixels that see a surface (``table``: materials by surface id)."""
    hits = rc.cast_rays(rig.primary_rays())
    t_all = hits["t_hit"].numpy()
    pixels = np.flatnonzero(np.isfinite(t_all))
    t = t_all[pixels]
    surface = hits["geometry_ids"].numpy()[pixels]
    dirs = np.take(rig.dirs, pixels, axis=0)
    normals = np.take(hits["primitive_normals"].numpy(), pixels, axis=0)
    normals *= np.where(_dot(normals, dirs) > 0, np.float32(-1), np.float32(1))[:, None]
    return _Hits(pixels, t, surface, dirs, rig.dirs_cam[pixels, 2], normals, rig.origin + t[:, None] * dirs,
                 np.take(table, surface, axis=0))


def stripe_contrast(rig: Rig, hits: _Hits, to_light: np.ndarray) -> np.ndarray:
    """How much of the finest stripes' contrast survives in each pixel (P,), 0-1.

    A pixel integrates the pattern over its footprint on the surface; seen at a grazing angle, the
    footprint stretches and may cover a whole stripe period in the projector's image, which averages
    the stripes away: the contrast is the absolute value of sinc(w / period) for a footprint w
    projector pixels wide (w grows as 1 / cos of the camera's incidence angle)."""
    c = rig.config
    cos_camera = np.maximum(-_dot(hits.normals, hits.dirs), np.float32(1e-3))
    cos_projector = np.abs(_dot(hits.normals, to_light))
    to_projector = np.sqrt(np.sum(np.square(rig.projector_origin - hits.points), axis=1))
    footprint = hits.t / np.float32(c.focal * c.width) / cos_camera  # metres on the surface
    width = footprint * cos_projector * np.float32(rig.Kp[0, 0]) / to_projector  # projector pixels
    return np.abs(np.sinc(width / np.float32(c.stripe_period))).astype(np.float32)


def _coded_light(rig: Rig, rc, table: np.ndarray, hits: _Hits, config: ScannerConfig,
                 rng: np.random.Generator) -> _Light:
    """The projector's direct light at each p (none where p is in shadow) and, with the
    ``interreflection`` effect, the light of a second surface that p reflects to the camera."""
    irradiance, to_light, column, lit = projector_light(rig, rc, hits.points, hits.normals,
                                                        "shadow" in config.effects)
    direct, specular = direct_radiance(hits.material, irradiance, to_light, hits.normals, -hits.dirs)
    direct_coded = (direct - (direct - specular) * hits.material[:, 3]) * stripe_contrast(rig, hits, to_light)
    fine = None
    if "interreflection" in config.effects and {"phase_bias", "contrast_reject"} & set(config.effects):
        indirect, indirect_column, fine = interreflection(rig, rc, table, hits.material, hits.points, hits.normals,
                                                          hits.dirs, config, rng, fine=True)
    elif "interreflection" in config.effects:
        indirect, indirect_column = interreflection(rig, rc, table, hits.material, hits.points, hits.normals,
                                                    hits.dirs, config, rng)
    else:
        indirect, indirect_column = np.zeros_like(direct), np.full_like(direct, np.nan)
    return _Light(direct, direct_coded, column, lit, indirect, indirect_column, fine)


def _decode(hits: _Hits, light: _Light, config: ScannerConfig) -> _Decoded:
    """Decode each pixel: the stronger coded light wins (an inter-reflection when it is the indirect
    one); too weak a code gives no point (shadow or dark), and so do two codes of similar strength."""
    ambient = config.ambient * hits.material[:, 0]
    signal = config.gain * (light.direct + light.indirect + ambient)
    direct_signal = config.gain * (light.direct + ambient)
    ghost = light.indirect > light.direct
    kind = np.where(ghost, KIND_INTERREFLECTION, KIND_NONE).astype(np.uint8)
    column = np.where(ghost, light.indirect_column, light.direct_column)
    strong, weak = np.maximum(light.direct, light.indirect), np.minimum(light.direct, light.indirect)
    measured = config.gain * strong >= config.min_signal
    kind[~measured] = np.where(light.lit[~measured], KIND_DARK, KIND_SHADOW)
    conflict = measured & (strong < config.decode_margin * weak)
    kind[conflict] = KIND_INTERREFLECTION
    measured &= ~conflict
    return _Decoded(kind, column, measured, signal, direct_signal)


def unwrap_error_probability(coded: np.ndarray, signal: np.ndarray, config: ScannerConfig) -> np.ndarray:
    """Probability that a pixel's phase is unwrapped into the wrong stripe period.

    With ``phase_steps`` N shifted images of amplitude A (the coded signal) and noise sigma (the
    sensor's read and shot noise, and the projector's frame-to-frame ``pattern_noise``, all of the
    whole signal), the phase error is about Gaussian with
    sigma_phi = sqrt(2 / N) sigma / A radians; unwrapping fails when it exceeds
    ``unwrap_tolerance`` of a period.

    Args:
        coded: (P,) sensor signal of the stripes' amplitude (0-1).
        signal: (P,) the whole sensor signal, coded or not (0-1).
        config: the scanner.

    Returns:
        (P,) probabilities.
    """
    sigma = np.sqrt(config.read_noise**2 + config.shot_noise**2 * signal + (config.pattern_noise * signal) ** 2)
    with np.errstate(divide="ignore"):
        sigma_phi = np.sqrt(2 / config.phase_steps) * sigma / coded
    limit = 2 * np.pi * config.unwrap_tolerance
    return special.erfc(limit / (np.sqrt(2) * sigma_phi)).astype(np.float32)


def _unwrap(decoded: _Decoded, light: _Light, config: ScannerConfig, rng: np.random.Generator) -> None:
    """With the ``decoding`` effect, pixels that decoded the direct code may unwrap the phase into a
    neighbouring period (``unwrap_error_probability``): their column moves by one ``stripe_period``
    either way and their kind becomes ``KIND_DECODING``. With ``contrast_reject`` as well, the decoder
    first refuses the pixels whose error probability exceeds ``reject_probability`` (no point, kind
    ``KIND_DARK``), as a real decoder rejects pixels of too little modulation; it also refuses the
    inter-reflection ghosts whose finest stripes are as faint (diffusely reflected light carries the
    coarse codes but not the finest pattern): no point, kind ``KIND_INTERREFLECTION``. Updates
    ``decoded``."""
    if "contrast_reject" in config.effects and light.indirect_fine is not None:
        ghosts = np.flatnonzero(decoded.measured & (decoded.kind == KIND_INTERREFLECTION))
        p = unwrap_error_probability(config.gain * light.indirect_fine[ghosts], decoded.signal[ghosts], config)
        decoded.measured[ghosts[p > config.reject_probability]] = False
    if "decoding" not in config.effects:
        return
    candidates = np.flatnonzero(decoded.measured & (decoded.kind == KIND_NONE))
    p = unwrap_error_probability(config.gain * light.direct_coded[candidates], decoded.signal[candidates], config)
    if "contrast_reject" in config.effects:  # too little contrast to trust the unwrapping: no point
        rejected = p > config.reject_probability
        decoded.measured[candidates[rejected]] = False
        decoded.kind[candidates[rejected]] = KIND_DARK
    draw = rng.random(len(candidates))
    wrong = candidates[draw < p]
    if "contrast_reject" in config.effects:
        wrong = candidates[(draw < p) & ~rejected]
    sign = np.where(rng.random(len(wrong)) < 0.5, np.float32(-1), np.float32(1))
    decoded.column[wrong] += sign * np.float32(config.stripe_period)
    decoded.kind[wrong] = KIND_DECODING


def _saturate(decoded: _Decoded, hits: _Hits, config: ScannerConfig, rng: np.random.Generator) -> None:
    """With the ``specular`` effect, highlights that saturate the sensor (``specular_saturation``)
    drop measured pixels or shift their decoded column: updates ``decoded`` in place."""
    if "specular" not in config.effects or not (decoded.direct_signal > 1).any():
        return
    h, w = config.height, config.width
    full = np.zeros(h * w, np.float32)
    full[hits.pixels] = decoded.direct_signal
    saturated, dropped, shift = (a.ravel()[hits.pixels] for a in specular_saturation(full.reshape(h, w), config, rng))
    saturated &= decoded.measured
    decoded.kind[saturated] = KIND_SPECULAR
    decoded.column = np.where(saturated, decoded.column + shift, decoded.column)
    decoded.measured &= ~(saturated & dropped)


def _mix(rig: Rig, rc, table: np.ndarray, hits: _Hits, decoded: _Decoded, config: ScannerConfig,
         rng: np.random.Generator, edge_rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """With the ``mixed`` effect, pixels that straddle a depth discontinuity (``mixed_pixels``), among
    those that decoded the direct code, become kind ``KIND_MIXED`` in ``decoded``; with ``edge_reject``, a
    share ``edge_dropout`` of them (drawn from ``edge_rng``) give no point instead. Returns their
    positions among the hits (M,) and their blended depths (M,) (camera z, m); empty without the effect."""
    if "mixed" not in config.effects:
        return np.zeros(0, np.intp), np.zeros(0, np.float32)
    h, w = config.height, config.width
    depth = np.full(h * w, np.inf, np.float32)
    depth[hits.pixels] = hits.t
    candidates = hits.pixels[decoded.measured & (decoded.kind == KIND_NONE)]
    mixed, blended = mixed_pixels(rig, rc, table, candidates, depth.reshape(h, w), config, rng)
    where = np.searchsorted(hits.pixels, mixed)
    decoded.kind[where] = KIND_MIXED
    if "edge_reject" in config.effects:
        dropped = edge_rng.random(len(where)) < config.edge_dropout
        decoded.measured[where[dropped]] = False
        where, blended = where[~dropped], blended[~dropped]
    return where, blended


def _realism_errors(hits: _Hits, light: _Light, decoded: _Decoded, config: ScannerConfig,
                    rng: np.random.Generator | None) -> None:
    """With ``rim``, grazing pixels of translucent surfaces err in front of them (``rim_errors``); with
    ``phase_bias``, the other pixels that decoded the direct code take the column that the overlapping
    inter-reflected light pulls them to (``phase_bias_columns``; kind ``KIND_PHASE_BIAS`` until the
    label shows whether the pull is beyond the tolerance). Updates ``decoded`` in place."""
    candidates = np.flatnonzero(decoded.measured & (decoded.kind == KIND_NONE))
    if "rim" in config.effects:
        cos = -_dot(hits.normals, hits.dirs)
        err, offset = rim_errors(cos, hits.material[:, 3], hits.pixels, candidates, config, rng)
        decoded.kind[err] = KIND_RIM
        decoded.offset = np.zeros(len(hits.t), np.float32)
        decoded.offset[err] = offset
        candidates = np.setdiff1d(candidates, err, assume_unique=True)
    if "phase_bias" in config.effects:
        fine = light.indirect if light.indirect_fine is None else light.indirect_fine
        shift = phase_bias_columns(light.direct_coded, light.direct_column, fine, light.indirect_column,
                                   hits.pixels, config)[candidates]
        pulled = candidates[shift != 0]
        decoded.column[pulled] = light.direct_column[pulled] + shift[shift != 0]
        decoded.kind[pulled] = KIND_PHASE_BIAS


def _distances(rig: Rig, hits: _Hits, decoded: _Decoded, mixed: tuple[np.ndarray, np.ndarray],
               config: ScannerConfig, rng: np.random.Generator,
               field_rng: np.random.Generator | None = None) -> np.ndarray:
    """Distance (P,) (m) along each camera ray to the measured point.

    Direct light gives p itself; another decoded column is triangulated against that column's plane;
    mixed pixels take their blended depth; rim errors lie ``decoded.offset`` in front of p. With the
    ``noise`` effect every measured point gets depth noise (with ``correlated_noise``, partly shared
    by neighbours, from ``field_rng``). A depth outside ``depth_range`` gives no point
    (``decoded.measured`` is updated)."""
    s = hits.t.copy()
    other = np.flatnonzero(decoded.measured & (decoded.kind != KIND_NONE) & (decoded.kind != KIND_MIXED))
    s[other] = rig.triangulate(hits.dirs[other], decoded.column[other])
    where, blended = mixed
    s[where] = blended / hits.dz[where]
    measured, dz = decoded.measured, hits.dz
    rim = np.flatnonzero(measured & (decoded.kind == KIND_RIM))
    if len(rim):
        s[rim] = hits.t[rim] - decoded.offset[rim] / dz[rim]
    if "noise" in config.effects and "correlated_noise" in config.effects:
        z = s[measured] * dz[measured]
        white = rng.standard_normal(len(z), np.float32)  # the same draws as depth_noise's
        s[measured] += correlated_depth_noise(z, hits.pixels[measured], white, config, field_rng) / dz[measured]
    elif "noise" in config.effects:
        s[measured] += depth_noise(s[measured] * dz[measured], config, rng) / dz[measured]
    z = s * dz
    near, far = config.depth_range
    with np.errstate(invalid="ignore"):
        measured &= (z >= near) & (z <= far)
    return s


def _label(hits: _Hits, decoded: _Decoded, s: np.ndarray, config: ScannerConfig) -> np.ndarray:
    """Labels (P,) uint8: ``KEEP`` within ``label_tolerance`` of p, else ``ARTEFACT``; ``NO_POINT``
    where nothing was measured. A point that lands within the tolerance loses its kind."""
    correct = np.abs(s - hits.t) <= label_tolerance(hits.t * hits.dz, config.noise_1m, config.label_floor)
    label = np.where(decoded.measured, np.where(correct, KEEP, ARTEFACT), NO_POINT).astype(np.uint8)
    decoded.kind[decoded.measured & correct] = KIND_NONE
    return label


def _intensity_image(hits: _Hits, decoded: _Decoded, config: ScannerConfig, rng: np.random.Generator) -> np.ndarray:
    """The intensity image (H, W) in [0, 1] under an all-white projection: direct + indirect + ambient
    light, with read and shot noise. With ``hdr_intensity`` the signal is recorded times
    ``intensity_exposure`` before it is clipped, so that highlights keep their height as in the real
    scanner's intensity (whose brightest pixel is 70 times its median on the board)."""
    h, w = config.height, config.width
    radiance = np.zeros(h * w, np.float32)
    radiance[hits.pixels] = decoded.signal
    noise = rng.standard_normal(h * w, np.float32)
    intensity = radiance + np.sqrt(config.read_noise**2 + config.shot_noise**2 * radiance) * noise
    if "hdr_intensity" in config.effects:
        intensity *= np.float32(config.intensity_exposure)
    return np.clip(intensity, 0, 1).reshape(h, w)


def _scan_arrays(rig: Rig, hits: _Hits, decoded: _Decoded, s: np.ndarray, label: np.ndarray,
                 intensity: np.ndarray, config: ScannerConfig) -> dict[str, np.ndarray]:
    """The arrays of a scan file, the per-hit values spread over the (H, W) image (camera frame)."""
    h, w = config.height, config.width
    pixels, measured = hits.pixels, decoded.measured
    image_label = np.full(h * w, NO_POINT, np.uint8)
    image_label[pixels] = label
    kind = np.full(h * w, KIND_NONE, np.uint8)
    kind[pixels] = decoded.kind
    surface = np.full(h * w, NO_SURFACE, np.uint8)
    surface[pixels] = hits.surface
    xyz = np.full((h * w, 3), np.nan, np.float32)
    clean = np.full((h * w, 3), np.nan, np.float32)
    keep = pixels[measured]
    dirs_keep = np.take(rig.dirs_cam, keep, axis=0)
    xyz[keep] = s[measured, None] * dirs_keep
    clean[keep] = hits.t[measured, None] * dirs_keep
    xyz = xyz.reshape(h, w, 3)
    return {
        "xyz": xyz,
        "intensity": intensity,
        "normals": estimate_normals(xyz),
        "valid": image_label.reshape(h, w) != NO_POINT,
        "label": image_label.reshape(h, w),
        "kind": kind.reshape(h, w),
        "intrinsics": rig.K.astype(np.float32),
        "pose": rig.pose.astype(np.float32),
        "projector_intrinsics": rig.Kp.astype(np.float32),
        "projector_pose": rig.projector_pose.astype(np.float32),
        "clean_xyz": clean.reshape(h, w, 3),
        "surface": surface.reshape(h, w),
    }


def simulate_scan(scene: Scene, config: ScannerConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Scan ``scene`` once with the scanner ``config``.

    The stages run in this order: primary rays find the point p each pixel sees; the projector's
    direct light and inter-reflections reach it; the decoder picks a code and unwraps its phase
    (sometimes into the wrong period); specular highlights
    saturate; mixed pixels blend depths at discontinuities; the realism effects (rim errors, phase
    bias) act where they are on; depths are triangulated with noise;
    points are labelled against p. The same ``rng`` state gives the same scan, byte for byte.

    Args:
        scene: the bin of parts (or any ``Scene``) to scan.
        config: the scanner's geometry, optics and artefact switches (``config.effects``).
        rng: the random generator; one draw from it seeds each stage's own stream (``STREAMS``).

    Returns:
        The arrays of a scan file (see ``pcfilter_lib.io.scan``): xyz, intensity, normals, valid,
        label, kind, intrinsics, pose, clean_xyz, surface and the projector's intrinsics and pose
        (images (H, W) or (H, W, 3), camera frame, metres).
    """
    rig = rig_for(config)
    seeds = rng.integers(0, 2**63, size=len(STREAMS))
    streams = {name: np.random.default_rng(seed) for name, seed in zip(STREAMS, seeds, strict=True)}
    if config.realism:
        seeds = rng.integers(0, 2**63, size=len(REALISM_STREAMS))
        streams |= {name: np.random.default_rng(seed) for name, seed in zip(REALISM_STREAMS, seeds, strict=True)}
    rc, table = scene.raycasting(), scene.material_table()
    hits = _primary_hits(rig, rc, table)
    light = _coded_light(rig, rc, table, hits, config, streams["interreflection"])
    decoded = _decode(hits, light, config)
    _unwrap(decoded, light, config, streams["decoding"])
    _saturate(decoded, hits, config, streams["specular"])
    mixed = _mix(rig, rc, table, hits, decoded, config, streams["mixed"], streams.get("edge"))
    _realism_errors(hits, light, decoded, config, streams.get("rim"))
    s = _distances(rig, hits, decoded, mixed, config, streams["noise"], streams.get("correlated_noise"))
    label = _label(hits, decoded, s, config)
    intensity = _intensity_image(hits, decoded, config, streams["intensity"])
    return _scan_arrays(rig, hits, decoded, s, label, intensity, config)


def viewpoint(azimuth: float = 0.0, tilt: float = 0.0) -> np.ndarray:
    """A rigid motion of the whole scanner about the world origin, for scans from other viewpoints.

    The scanner's own rig looks straight down at the origin from ``ScannerConfig.distance``; this motion
    tilts it by ``tilt`` degrees about the world's y axis (towards -x for a positive tilt), then turns it
    by ``azimuth`` degrees about the vertical axis.

    Args:
        azimuth: degrees about z.
        tilt: degrees away from the vertical, -80 to 80.

    Returns:
        (4, 4) float64 rigid transform of world points (new = view @ old).

    Raises:
        ValueError: an angle is not finite or the tilt lies outside -80 to 80 degrees.
    """
    if not (np.isfinite(azimuth) and np.isfinite(tilt)) or abs(tilt) > 80:
        raise ValueError(f"a viewpoint needs a finite azimuth and a tilt within -80..80 degrees, got {azimuth}, {tilt}")
    a, t = np.radians(azimuth), np.radians(tilt)
    turn = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    lean = np.array([[np.cos(t), 0, -np.sin(t)], [0, 1, 0], [np.sin(t), 0, np.cos(t)]])
    view = np.eye(4)
    view[:3, :3] = turn @ lean
    return view


def simulate_view(scene: Scene, config: ScannerConfig, rng: np.random.Generator, view: np.ndarray) -> dict:
    """Scan ``scene`` with the scanner moved by ``view`` (``viewpoint``): the scene is moved by the
    inverse motion and scanned as ``simulate_scan`` does, then the poses are given in the scene's own
    world frame. Several views of one scene thus share one world frame (for fusion).

    Args:
        scene: the scene, in its world frame.
        config: the scanner.
        rng: the random generator (as for ``simulate_scan``).
        view: (4, 4) rigid motion of the scanner (``viewpoint``).

    Returns:
        The arrays of ``simulate_scan``; ``pose`` and ``projector_pose`` map the camera and projector
        frames to the scene's world frame.
    """
    view = np.asarray(view, np.float64)
    scan = simulate_scan(scene.moved(np.linalg.inv(view)), config, rng)
    for key in ("pose", "projector_pose"):
        scan[key] = (view @ scan[key].astype(np.float64)).astype(np.float32)
    return scan
