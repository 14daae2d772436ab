"""The structured-light measurement model: a pinhole camera and a pinhole projector a baseline apart.

The projector codes each of its columns; a camera pixel decodes the column whose light reaches it
most strongly and triangulates its camera ray against that column's plane. When the strongest coded
light is the projector's own light at the surface point p the pixel sees, the point is right (up to
depth noise). Every artefact is light arriving by another path, and each is one function below that
``ScannerConfig.effects`` switches on or off; each has its own ``kind`` code in the output
(Gupta et al. 2011/2012 analyse these global-illumination errors):

====  ==================  =======================================================================
kind  name                cause
====  ==================  =======================================================================
0     none                a correct point (label 1), or a pixel that sees nothing (label 255)
1     shadow              p is not lit by the projector and no indirect light is strong enough:
                          no point (label 255)
2     interreflection     the camera ray's reflection at p reaches a lit point q whose light
                          outweighs p's direct light: q's column is decoded, the point lies on
                          the camera ray at a false depth (label 0); when the two codes are of
                          similar strength (``decode_margin``) the decoder gives no point (255)
3     mixed               the pixel straddles a depth discontinuity and returns a depth blended
                          from foreground and background (label 0)
4     specular            a highlight saturates the sensor: no point (label 255) or a column
                          shifted by blooming, a false depth (label 0)
5     dark                p is lit but reflects too little coded light (dark or grazing): no point
                          (label 255)
6     decoding            the stripe code is too faint against the sensor's noise and the phase is
                          unwrapped into the wrong period: the column is one ``stripe_period`` off,
                          an isolated point far from the surface (label 0). Light that scatters
                          inside the material (``Material.subsurface``: fruit, wax) loses the pattern
                          and adds only noise, so translucent and dark or grazing surfaces err most
                          (Gupta et al. 2013; Zhang 2018 reviews phase unwrapping)
====  ==================  =======================================================================

Realism effects (``REALISM_EFFECTS``): opt-in physics that makes a scan look like the real PhoXi
development scans (``benchmarks/sim_vs_real.py``); none is on in a default ``ScannerConfig``, whose
scans stay byte for byte those of generator version 3. ``realistic`` switches all of them on with
the parameters fitted to the real scans' statistics (``benchmarks/fit_realism.py``):

====  ==================  =======================================================================
kind  name                cause
====  ==================  =======================================================================
7     phase bias          ``phase_bias``: p's direct code wins, but inter-reflected light of the
                          same pattern overlaps it; the finest pattern's phase is decoded as
                          arg(D e^{i phi_d} + I e^{i phi_i}), pulled a fraction of a period
                          (``phase_bias``): a smooth false surface a fraction of a millimetre
                          off the true one next to shiny parts (label 0 beyond the tolerance)
8     rim                 ``rim``: a translucent object seen at a grazing angle near its rim;
                          light scattered under the skin leaves the rim and is decoded a few
                          millimetres in front of it (``rim_errors``; label 0)
====  ==================  =======================================================================

The others change existing kinds: ``contrast_reject`` gives no point (kind 5, dark) where the
stripes' contrast is too low to unwrap safely, instead of a decoding error; ``edge_reject`` gives no
point (kind 3, mixed) for a share of the pixels that straddle a depth edge; ``correlated_noise``
shares part of the depth noise between neighbouring pixels; ``hdr_intensity`` records the intensity
image without saturating highlights, as the real scanner's intensity does.

Labels: 1 when the measured point lies within ``label_tolerance(z)`` = 1 mm + 3 sigma(z) of the
true surface point the pixel's centre ray sees (the 1 mm is ``label_floor``; realistic scanners use
0.1 mm, since the real labels mark offsets of 0.2-0.8 mm as false), 0 otherwise (an artefact, its
``kind`` the cause), 255 for no point. An artefact path that happens to land within the tolerance counts as true
(label 1, kind 0). A decoded depth outside ``depth_range`` gives no point, its kind the cause.
Direct measurements carry depth noise sigma(z) = ``noise_1m`` (z / 1 m)^2, clipped at 3 sigma, so
they are always labelled 1.

Frames: scans are in the camera frame (OpenCV axes: x right, y down, z forward, metres); ``pose``
maps camera to world coordinates. Radiometry is in relative units: a white matte surface facing the
projector 1 m away reflects radiance 1; the camera's ``gain`` turns radiance into a [0, 1] signal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import open3d as o3d
from scipy import ndimage, special

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
from pcfilter_lib.simulate.scene import NO_SURFACE, Scene

EFFECTS = ("shadow", "interreflection", "mixed", "specular", "decoding", "noise")  # on by default
REALISM_EFFECTS = ("phase_bias", "contrast_reject", "rim", "edge_reject", "correlated_noise", "hdr_intensity")
ALL_EFFECTS = EFFECTS + REALISM_EFFECTS
_EPS = 2e-4  # offset of secondary ray origins from the surface (m)


@dataclass(frozen=True)
class ScannerConfig:
    """Geometry, optics and artefact switches of the simulated scanner (lengths in metres).

    Each field's comment in the source gives its meaning and unit; ``effects`` names the artefacts
    that are simulated: any subset of ``ALL_EFFECTS``; by default ``EFFECTS``, the effects of generator
    version 3. The fields after ``effects`` are the parameters of the opt-in ``REALISM_EFFECTS`` (and the
    label tolerance's floor); ``to_dict`` leaves them out while they hold their defaults, so that the
    manifests and scan files of version 3 stay byte for byte the same.

    Raises:
        ValueError: the image size is outside 8-8192 pixels, an effect is unknown, or the baseline
            or distance is not positive.
    """

    width: int = 640
    height: int = 480
    focal: float = 1.45  # camera focal length / image width
    baseline: float = 0.3  # camera-projector distance along the camera's x axis
    distance: float = 1.0  # height of camera and projector above the bin floor
    projector_size: tuple[int, int] = (1280, 800)
    projector_focal: float = 1.0  # projector focal length / projector width
    depth_range: tuple[float, float] = (0.4, 1.6)  # depths the decoder accepts
    noise_1m: float = 3e-4  # depth noise sigma at 1 m
    gain: float = 0.6  # radiance -> sensor signal; 1 saturates
    ambient: float = 0.03  # uncoded ambient irradiance
    read_noise: float = 0.004
    shot_noise: float = 0.01
    min_signal: float = 0.02  # weakest coded signal the decoder accepts
    stripe_period: float = 24.0  # finest projector pattern period (projector pixels)
    low_frequency_share: float = 0.15  # how much diffuse inter-reflection corrupts the code (0-1)
    decode_margin: float = 1.5  # the winning code must be this much stronger than the other, else no point
    edge_jump: float = 0.012  # relative depth jump that marks a discontinuity
    supersample: int = 2  # sub-samples per side at discontinuities
    mixed_probability: float = 0.5
    blooming_radius: int = 2  # saturation spreads this many pixels around a highlight
    specular_dropout: float = 0.6  # share of saturated pixels that give no point
    blooming_columns: tuple[float, float] = (3.0, 25.0)  # column error range of the others
    phase_steps: int = 4  # shifted images of the finest pattern; the phase is averaged over them
    pattern_noise: float = 0.03  # frame-to-frame fluctuation of the projected light, share of the signal
    unwrap_tolerance: float = 0.25  # phase error (share of a period) beyond which unwrapping fails
    effects: tuple[str, ...] = EFFECTS
    # Parameters of the realism effects (used only when their effect is named in ``effects``).
    label_floor: float = 1e-3  # m: a point within label_floor + 3 sigma(z) of its true point is true geometry
    bias_gain: float = 1.0  # phase_bias: scale of the inter-reflected phasor against the direct one
    bias_blur: float = 2.0  # phase_bias: pixels; the reflection lobe's footprint the phasor is averaged over
    reject_probability: float = 1.0  # contrast_reject: no point where the unwrap error probability exceeds this
    rim_cos: float = 0.3  # rim: cosine of the camera's incidence angle below which a translucent rim may err
    rim_rate: float = 0.02  # rim: share of such grazing pixels that err
    rim_offset: tuple[float, float] = (1.5e-3, 10e-3)  # rim: m; the error's range, towards the camera
    edge_dropout: float = 0.0  # edge_reject: share of depth-edge straddling pixels that give no point
    noise_correlation: float = 0.0  # correlated_noise: share of the depth noise's variance shared by neighbours
    noise_length: float = 1.5  # correlated_noise: pixels; the shared part's correlation length (Gaussian sigma)
    intensity_exposure: float = 1.0  # hdr_intensity: recorded intensity per unit of sensor signal

    def __post_init__(self):
        if not (8 <= self.width <= 8192 and 8 <= self.height <= 8192):
            raise ValueError(f"scan size {self.width}x{self.height} is impossible: both sides must be 8-8192 pixels")
        unknown = set(self.effects) - set(ALL_EFFECTS)
        if unknown:
            raise ValueError(f"unknown effects {sorted(unknown)}; choose from {ALL_EFFECTS}")
        if self.baseline <= 0 or self.distance <= 0:
            raise ValueError("baseline and distance must be positive")

    def to_dict(self) -> dict:
        """The settings as JSON-ready values (tuples as lists), for manifests and scan metadata; the
        realism parameters only where they differ from their defaults."""
        defaults = _REALISM_DEFAULTS
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if k not in defaults or v != defaults[k]}

    @property
    def realism(self) -> bool:
        """Whether any of the opt-in ``REALISM_EFFECTS`` is on."""
        return any(effect in REALISM_EFFECTS for effect in self.effects)


# The realism effects' parameters. Fitted to the real development scans' statistics by benchmarks/fit_realism.py
# (a grid search; its "chosen" values in benchmarks/results/realism_fit.json, which a test compares with these):
# noise_correlation, noise_length and noise_1m (window noise of both scans), bias_gain and bias_blur (gpu_006's
# artefact share, offsets, noise within blobs, highlights, blobs), reject_probability and rim_rate (apple_03's
# artefact share, silhouette and depth-edge shares, fill, offsets). Set by their physics, not fitted:
# label_floor 0.1 mm (the real labels mark offsets of 0.2-0.8 mm as false), the rim's grazing angle and offsets
# (the real fruit's false points lie 1.7-9.9 mm in front), half the edge-straddling pixels dropped, and an
# intensity exposure low enough that no highlight saturates (the board's brightest pixel is 70 times its median).
REALISM = {"label_floor": 1e-4, "bias_gain": 8.0, "bias_blur": 10.0, "reject_probability": 0.01, "rim_cos": 0.3,
           "rim_rate": 0.005, "rim_offset": (1.5e-3, 10e-3), "edge_dropout": 0.5, "noise_correlation": 0.8,
           "noise_length": 1.5, "intensity_exposure": 0.01, "noise_1m": 0.000259}


def realistic(config: ScannerConfig | None = None) -> ScannerConfig:
    """``config`` (default ``ScannerConfig()``) with every realism effect on and ``REALISM``'s parameters:
    the simulator fitted to the real development scans' statistics."""
    return replace(config or ScannerConfig(), effects=ALL_EFFECTS, **REALISM)


_REALISM_FIELDS = ("label_floor", "bias_gain", "bias_blur", "reject_probability", "rim_cos", "rim_rate",
                   "rim_offset", "edge_dropout", "noise_correlation", "noise_length", "intensity_exposure")
_REALISM_DEFAULTS = {name: ScannerConfig.__dataclass_fields__[name].default for name in _REALISM_FIELDS}


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """The pose of a camera or projector that looks at a point.

    Args:
        eye: (3,) the device's position, world frame, metres.
        target: (3,) the point it looks at.
        up: (3,) the world direction that the image's "up" (its -y axis) leans towards.

    Returns:
        (4, 4) camera-to-world pose, OpenCV axes (x right, y down, z forward).
    """
    eye, target, up = (np.asarray(a, float) for a in (eye, target, up))
    z = (target - eye) / np.linalg.norm(target - eye)
    x = np.cross(-up, z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.c_[x, np.cross(z, x), z]
    pose[:3, 3] = eye
    return pose


@dataclass
class Rig:
    """Camera and projector of one configuration: intrinsics (3, 3), poses (4, 4), pixel rays."""

    config: ScannerConfig
    K: np.ndarray = field(init=False)
    pose: np.ndarray = field(init=False)
    Kp: np.ndarray = field(init=False)
    projector_pose: np.ndarray = field(init=False)
    _rays: o3d.core.Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        c = self.config
        f = c.focal * c.width
        self.K = np.array([[f, 0, c.width / 2], [0, f, c.height / 2], [0, 0, 1]])
        pw, ph = c.projector_size
        fp = c.projector_focal * pw
        self.Kp = np.array([[fp, 0, pw / 2], [0, fp, ph / 2], [0, 0, 1]])
        self.pose = look_at((-c.baseline / 2, 0, c.distance), (0, 0, 0))
        self.projector_pose = look_at((c.baseline / 2, 0, c.distance), (0, 0, 0))
        v, u = np.mgrid[0:c.height, 0:c.width]
        self.dirs_cam = self.pixel_dirs(u.ravel() + 0.5, v.ravel() + 0.5)
        self.dirs = _times(self.dirs_cam, self.pose[:3, :3].T)
        self.origin = self.pose[:3, 3].astype(np.float32)
        self.projector_origin = self.projector_pose[:3, 3].astype(np.float32)

    def pixel_dirs(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Unit ray directions (N, 3) in the camera frame through image points (u, v) (pixels)."""
        d = np.stack([(u - self.K[0, 2]) / self.K[0, 0], (v - self.K[1, 2]) / self.K[1, 1], np.ones_like(u)], -1)
        return (d / np.linalg.norm(d, axis=-1, keepdims=True)).astype(np.float32)

    def primary_rays(self) -> o3d.core.Tensor:
        """One ray per pixel centre (H * W, 6), world frame, row-major."""
        if self._rays is None:
            rays = np.empty((len(self.dirs), 6), np.float32)
            rays[:, :3] = self.origin
            rays[:, 3:] = self.dirs
            self._rays = o3d.core.Tensor(rays)
        return self._rays

    def triangulate(self, dirs: np.ndarray, column: np.ndarray) -> np.ndarray:
        """Distance along the camera rays ``dirs`` (N, 3, world) to the plane of projector ``column`` (N,)."""
        R = self.projector_pose[:3, :3]
        a = (column - self.Kp[0, 2]) / self.Kp[0, 0]
        normal = R[:, 0][None] - a[:, None] * R[:, 2][None]
        base = (self.projector_origin - self.origin).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return _dot(normal, np.broadcast_to(base, normal.shape)) / _dot(normal, dirs)


def _cast(scene: o3d.t.geometry.RaycastingScene, origins: np.ndarray, dirs: np.ndarray):
    rays = np.empty((len(dirs), 6), np.float32)
    rays[:, :3] = origins
    rays[:, 3:] = dirs
    hit = scene.cast_rays(o3d.core.Tensor(rays))
    return hit["t_hit"].numpy(), hit["geometry_ids"].numpy(), hit["primitive_normals"].numpy()


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def _times(v: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``v @ matrix`` for v (N, 3) and a 3x3 matrix, written out (NumPy's matmul is slow for this shape)."""
    m = matrix.astype(np.float32)
    return v[:, :1] * m[0] + v[:, 1:2] * m[1] + v[:, 2:3] * m[2]


def _unit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of the rows of ``v`` (N, 3) and their lengths (N,)."""
    length = np.sqrt(_dot(v, v))
    return v / length[:, None], length


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
    ``rim_cos`` err where a ``smooth_field`` (1 pixel) exceeds the quantile that makes ``rim_rate`` of
    them err, so errors come in small blobs; each offset is uniform in ``rim_offset``.

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
    field = smooth_field((config.height, config.width), 1.0, rng).ravel()
    grazing = candidates[(hits_cos[candidates] < config.rim_cos) & (subsurface[candidates] > 0)]
    threshold = special.ndtri(1 - np.clip(config.rim_rate, 1e-9, 1 - 1e-9))
    err = grazing[field[pixels[grazing]] > threshold]
    return err, rng.uniform(*config.rim_offset, len(err)).astype(np.float32)


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


_RIGS: dict[ScannerConfig, Rig] = {}


def rig_for(config: ScannerConfig) -> Rig:
    """The camera and projector of a scanner, cached for the scans that follow.

    Args:
        config: the scanner.

    Returns:
        Its ``Rig``: intrinsics, poses and one ray per pixel.
    """
    if config not in _RIGS:
        _RIGS.clear()
        _RIGS[config] = Rig(config)
    return _RIGS[config]


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
