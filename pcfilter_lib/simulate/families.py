"""Scene families beside the bin of parts, and scanners drawn at random.

The real scans that pcfilter's filters must handle show artefacts the bin scenes hardly make:

* **boards**: a circuit board with chips, capacitors, pin headers, connectors and heat sinks. A heat
  sink's polished fins and a header's pins are near-mirrors a few millimetres apart: the camera ray's
  reflection at one fin lands on the next, lit fin almost every time, so the decoded ghost is not
  scattered but a dense false surface next to the true one (``artefacts.interreflection``).
* **fruit**: rounded, translucent shapes on a plate. Light that scatters under the skin loses the stripe
  pattern; where the coded signal is faint the phase is unwrapped into the wrong period and isolated
  points appear far from the surface (kind ``decoding``).

``draw_scanner`` draws a scanner per scan (image size, baseline, working distance, noise, pattern
period, focal length), so that a filter trained on the scans cannot learn one scanner's constants.
Every scene keeps the layout of ``scene.Scene``: surface 0 the table, 1 the support (bin, board or
plate), then the parts; ``scene.scene_from_description`` rebuilds each.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pcfilter_lib.simulate.scanner import ScannerConfig
from pcfilter_lib.simulate.scene import (
    TABLE_MATERIAL,
    Material,
    Scene,
    axis_rotation,
    draw_material,
    make_scene,
    part_mesh,
    place_part,
    table_mesh,
)

FAMILIES = ("bin", "board", "fruit")
SUPPORT_DEPTH = 0.015  # the board's fixture or the fruit's plate: its top at z = 0, as the bin floor

# name: (probability, albedo, specular, roughness) ranges, as ``scene.PART_MATERIALS``.
BOARD_MATERIALS = {
    "solder mask": (1.0, (0.12, 0.3), (0.08, 0.25), (0.08, 0.2)),
}
CHIP_MATERIALS = {
    "black epoxy": (0.7, (0.03, 0.08), (0.1, 0.3), (0.1, 0.25)),
    "ceramic": (0.3, (0.4, 0.7), (0.05, 0.15), (0.2, 0.4)),
}
METAL_MATERIALS = {
    "bare aluminium": (0.4, (0.3, 0.5), (0.6, 0.85), (0.02, 0.06)),
    "anodised aluminium": (0.3, (0.05, 0.2), (0.35, 0.6), (0.05, 0.12)),
    "tin plating": (0.3, (0.3, 0.5), (0.7, 0.95), (0.015, 0.05)),
}
PLATE_MATERIALS = {
    "wood": (0.5, (0.3, 0.6), (0.02, 0.08), (0.3, 0.5)),
    "cloth": (0.3, (0.5, 0.85), (0.0, 0.03), (0.4, 0.6)),
    "grey plastic": (0.2, (0.3, 0.5), (0.05, 0.12), (0.25, 0.4)),
}
SUBSURFACE = (0.8, 0.97)  # share of the skin's diffuse light that scatters inside fruit

# How a board is populated: part type, (fewest, most) per board, palette.
# The tall parts come first, so that they find room on the board.
BOARD_PARTS = (("fins", (1, 3), METAL_MATERIALS), ("pins", (1, 4), METAL_MATERIALS),
               ("connector", (0, 3), CHIP_MATERIALS), ("capacitor", (2, 10), METAL_MATERIALS),
               ("chip", (3, 12), CHIP_MATERIALS))
BOARD_TILT = 35.0  # boards lie on a fixture tilted by up to this many degrees, seen at an angle


def _component(kind: str, rng: np.random.Generator) -> tuple[str, dict]:
    """The part type and parameters of one board component (lengths in metres)."""
    u = rng.uniform
    if kind == "chip":
        return "box", {"size": [u(0.005, 0.03), u(0.005, 0.03), u(0.001, 0.003)]}
    if kind == "capacitor":
        return "cylinder", {"radius": u(0.003, 0.008), "height": u(0.008, 0.025)}
    if kind == "pins":
        return "pins", {"count": int(rng.integers(4, 21)), "rows": int(rng.integers(1, 3)), "pitch": 0.00254,
                        "size": 0.00064, "height": u(0.005, 0.011), "base": 0.0025}
    if kind == "connector":
        return "connector", {"length": u(0.015, 0.05), "width": u(0.006, 0.012), "height": u(0.006, 0.014),
                             "wall": u(0.0006, 0.0012)}
    return "fins", {"count": int(rng.integers(6, 21)), "fin_thickness": u(0.0006, 0.0015), "gap": u(0.0015, 0.004),
                    "height": u(0.01, 0.035), "length": u(0.02, 0.07), "base": u(0.002, 0.005)}


def _support(size: tuple[float, float], material: Material) -> dict:
    """The description entry of a flat support whose top lies at z = 0."""
    lx, ly = size
    return {"type": "box", "params": {"size": [lx, ly, SUPPORT_DEPTH]}, "rotation": np.eye(3).tolist(),
            "translation": [0.0, 0.0, -SUPPORT_DEPTH / 2], "material": material.__dict__}


def _free_spot(half: np.ndarray, room: np.ndarray, taken: list[np.ndarray], rng: np.random.Generator):
    """A centre (x, y) on the support for a footprint of half-size ``half`` that overlaps none of the
    ``taken`` rectangles (x0, y0, x1, y1), or None after 30 tries (at once when it is larger than the support)."""
    if np.any(half >= room):
        return None
    for _ in range(30):
        xy = rng.uniform(-room + half, room - half)
        box = np.r_[xy - half, xy + half]
        if all(box[0] >= t[2] or box[2] <= t[0] or box[1] >= t[3] or box[3] <= t[1] for t in taken):
            taken.append(box)
            return xy
    return None


def _standing(kind: str, params: dict, xy: np.ndarray, rotation: np.ndarray, material: Material) -> dict:
    """The description entry of a part standing on the support at ``xy`` (its lowest point at z = 0)."""
    v, _ = part_mesh(kind, params)
    low = (v @ rotation.T)[:, 2].min()
    return {"type": kind, "params": params, "rotation": rotation.tolist(),
            "translation": [float(xy[0]), float(xy[1]), float(-low)], "material": material.__dict__}


def _yaw(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _tilt(entries: list[dict], rng: np.random.Generator) -> None:
    """Turn the entries (the support first, then its parts) about a random horizontal axis through the
    origin by up to ``BOARD_TILT`` degrees, then lift them clear of the table. Updates them in place."""
    axis = np.r_[rng.normal(size=2), 0.0]
    turn = axis_rotation(axis, np.radians(rng.uniform(0, BOARD_TILT)))
    lift = max(0.0, -SUPPORT_DEPTH - (place_part(entries[0])[0] @ turn.T)[:, 2].min())
    for entry in entries:
        entry["rotation"] = (turn @ np.asarray(entry["rotation"])).tolist()
        entry["translation"] = (turn @ np.asarray(entry["translation"]) + [0.0, 0.0, lift]).tolist()


def _assemble(support: dict, parts: list[dict], family: str) -> Scene:
    table = TABLE_MATERIAL
    meshes = [table_mesh(), place_part(support)] + [place_part(entry) for entry in parts]
    materials = [table, Material(**support["material"])] + [Material(**entry["material"]) for entry in parts]
    description = {"family": family, "table": {"material": table.__dict__}, "support": support, "parts": parts}
    return Scene(meshes, materials, description)


def make_board_scene(rng: np.random.Generator) -> Scene:
    """A circuit board (8-25 cm by 6-18 cm) populated with heat sinks, pin headers, connectors,
    capacitors and chips, each turned by a multiple of 90 degrees (plus a little) and placed without
    overlap; the board lies tilted (``BOARD_TILT``)."""
    size = np.array([rng.uniform(0.08, 0.25), rng.uniform(0.06, 0.18)])
    support = _support(tuple(size), draw_material(rng, BOARD_MATERIALS))
    parts, taken = [], []
    for kind, (low, high), palette in BOARD_PARTS:
        for _ in range(int(rng.integers(low, high + 1))):
            part_type, params = _component(kind, rng)
            rotation = _yaw(rng.integers(4) * np.pi / 2 + rng.normal(0, 0.03))
            v, _ = part_mesh(part_type, params)
            v = v @ rotation.T
            xy = _free_spot((v.max(0) - v.min(0))[:2] / 2 + 0.001, size / 2, taken, rng)
            if xy is not None:
                parts.append(_standing(part_type, params, xy, rotation, draw_material(rng, palette)))
    _tilt([support, *parts], rng)
    return _assemble(support, parts, "board")


def make_fruit_scene(rng: np.random.Generator) -> Scene:
    """One to five fruit (smooth, bumpy, slightly squashed spheres of 2-5 cm radius, translucent skin)
    on a plate of wood, cloth or plastic."""
    size = np.array([rng.uniform(0.15, 0.35), rng.uniform(0.12, 0.3)])
    support = _support(tuple(size), draw_material(rng, PLATE_MATERIALS))
    parts, taken = [], []
    for _ in range(int(rng.integers(1, 6))):
        bumps = [[*(d / np.linalg.norm(d)), float(rng.uniform(-0.12, 0.12))]
                 for d in rng.normal(size=(int(rng.integers(2, 6)), 3))]
        params = {"radius": float(rng.uniform(0.02, 0.05)), "squash": float(rng.uniform(0.8, 1.1)),
                  "bumps": [[float(c) for c in b] for b in bumps]}
        skin = Material("fruit skin", float(rng.uniform(0.3, 0.8)), float(rng.uniform(0.05, 0.35)),
                        float(rng.uniform(0.12, 0.3)), float(rng.uniform(*SUBSURFACE)))
        half = np.full(2, params["radius"] * 1.15)
        xy = _free_spot(half, size / 2, taken, rng)
        if xy is not None:
            parts.append(_standing("blob", params, xy, _yaw(rng.uniform(0, 2 * np.pi)), skin))
    return _assemble(support, parts, "fruit")


def make_family_scene(family: str, rng: np.random.Generator, **bin_options) -> Scene:
    """A scene of ``family`` (one of ``FAMILIES``); ``bin_options`` go to ``scene.make_scene``.

    Raises:
        ValueError: the family is unknown.
    """
    if family == "bin":
        return make_scene(rng, **bin_options)
    if family == "board":
        return make_board_scene(rng)
    if family == "fruit":
        return make_fruit_scene(rng)
    raise ValueError(f"unknown scene family {family!r}; choose one of {FAMILIES}")


# Working distance (m) of each family: bins are scanned from about a metre, boards and fruit closer.
DISTANCES = {"bin": (0.8, 1.3), "board": (0.25, 0.5), "fruit": (0.3, 0.6)}
SIZES = ((320, 240), (480, 360), (640, 480), (800, 600), (1024, 768))


def draw_scanner(family: str, rng: np.random.Generator, base: ScannerConfig | None = None) -> ScannerConfig:
    """A scanner drawn at random for one scan of ``family``: image size (one of ``SIZES``, scaled by
    ``base.width`` / 640, so that a small base scanner draws small images), working
    distance (``DISTANCES``), baseline (0.2-0.4 of the distance, within 0.08-0.4 m), focal length,
    depth noise (0.15-0.6 mm at 1 m; 0.7-1.5 times the base's with realism effects on), finest
    pattern period and pattern noise (0.02-0.1 of the signal; 0.7-1.4 times the base's with realism
    effects on); the decoder's depth range and the exposure follow the distance.

    Args:
        family: the scene family, one of ``FAMILIES``.
        rng: the generator of the draws.
        base: the scanner whose other settings (artefact switches, radiometry) are kept; the default
            ``ScannerConfig()`` when None.

    Returns:
        The ``ScannerConfig``.
    """
    base = base or ScannerConfig()
    # A realistic base (``scanner.realistic``) draws its depth noise around its own fitted value and its
    # pattern noise around its own (a decoder that checks the stripes' contrast would refuse most of a
    # translucent fruit under the default range's noisiest projectors, which the real scanner does not);
    # each is one draw either way, so the other draws do not move.
    noise_range = (0.7 * base.noise_1m, 1.5 * base.noise_1m) if base.realism else (1.5e-4, 6e-4)
    pattern_range = (0.7 * base.pattern_noise, 1.4 * base.pattern_noise) if base.realism else (0.02, 0.1)
    width, height = (max(8, round(side * base.width / 640)) for side in SIZES[rng.integers(len(SIZES))])
    distance = float(rng.uniform(*DISTANCES[family]))
    return replace(base, width=int(width), height=int(height), distance=distance,
                   baseline=float(np.clip(distance * rng.uniform(0.2, 0.4), 0.08, 0.4)),
                   focal=float(rng.uniform(1.1, 1.8)), noise_1m=float(rng.uniform(*noise_range)),
                   stripe_period=float(rng.choice([12.0, 16.0, 24.0, 32.0, 48.0])),
                   pattern_noise=float(rng.uniform(*pattern_range)),
                   depth_range=(0.4 * distance, 1.6 * distance),
                   # exposure set for the distance (irradiance falls with its square), within a factor of 2
                   gain=float(base.gain * distance**2 * rng.uniform(0.7, 1.4)))
