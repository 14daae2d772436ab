"""The simulated structured-light scanner: its settings (``ScannerConfig``, the realism effects'
fitted parameters) and its camera and projector (``Rig``), with the measurement model they follow.
How each artefact arises is in ``artefacts``; one scan, stage by stage, is ``measurement.simulate_scan``.

The measurement model: a pinhole camera and a pinhole projector a baseline apart.

The projector codes each of its columns; a camera pixel decodes the column whose light reaches it
most strongly and triangulates its camera ray against that column's plane. When the strongest coded
light is the projector's own light at the surface point p the pixel sees, the point is right (up to
depth noise). Every artefact is light arriving by another path, and each is one function of
``artefacts`` that ``ScannerConfig.effects`` switches on or off; each has its own ``kind`` code in the output
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

EFFECTS = ("shadow", "interreflection", "mixed", "specular", "decoding", "noise")  # on by default
REALISM_EFFECTS = ("phase_bias", "contrast_reject", "rim", "edge_reject", "correlated_noise", "hdr_intensity")
ALL_EFFECTS = EFFECTS + REALISM_EFFECTS


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
    rim_length: float = 1.0  # rim: pixels; correlation length of where a rim errs (larger: bigger blobs)
    rim_blob_offset: bool = False  # rim: one offset per blob of erring pixels, not one per pixel
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
# (the real fruit's false points lie 1.7-9.9 mm in front), the rim's blobs (the real ones: 2-9 pixels, each at
# one depth, so one offset per blob; a 2-pixel field, so that the largest blob of a simulated fruit at the real
# sensor's size, 9-19 pixels in sim_vs_real, is near the apple's 9), half the edge-straddling pixels dropped, and
# an intensity exposure low enough that no highlight saturates (the board's brightest pixel is 70 times its median).
REALISM = {"label_floor": 1e-4, "bias_gain": 8.0, "bias_blur": 10.0, "reject_probability": 0.01, "rim_cos": 0.3,
           "rim_rate": 0.005, "rim_offset": (1.5e-3, 10e-3), "rim_length": 2.0, "rim_blob_offset": True,
           "edge_dropout": 0.5, "noise_correlation": 0.8,
           "noise_length": 1.5, "intensity_exposure": 0.01, "noise_1m": 0.000259}


def realistic(config: ScannerConfig | None = None) -> ScannerConfig:
    """``config`` (default ``ScannerConfig()``) with every realism effect on and ``REALISM``'s parameters:
    the simulator fitted to the real development scans' statistics."""
    return replace(config or ScannerConfig(), effects=ALL_EFFECTS, **REALISM)


_REALISM_FIELDS = ("label_floor", "bias_gain", "bias_blur", "reject_probability", "rim_cos", "rim_rate",
                   "rim_offset", "rim_length", "rim_blob_offset", "edge_dropout", "noise_correlation", "noise_length",
                   "intensity_exposure")
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
