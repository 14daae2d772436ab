"""A procedural stand-in for ModelNet10, about as hard to classify as the real one.

Each class is a family of styles (a table is a dining, round, coffee, side, work, console or
trestle table; a chair a side, arm, club, office, bar, rocking, cantilever, lounge or folding
chair...) built from boxes, cylinders, slanted bars and open shells, with random proportions,
missing and extra parts (drawers, shelves, hutches, things standing on top), and a mesh style of
its own (sharp, chamfered or rounded edges, coarse or fine meshes) followed by small smooth
deformations. Written as ``.off`` files in the real layout
``<root>/<class>/{train,test}/<class>_NNNN.off`` with the real class sizes, so every loader and
chapter runs unchanged on the real data set.

The families overlap where the real ones do, by sharing their makers: the work table and the
writing desk are the same legged top (``_legged_top``), night stands and dressers the same case of
drawers (``_cabinet``) whose sizes meet in the wide night stand and the small dresser, and sofas,
club chairs and daybeds (of the bed class and of the sofa class alike) the same padded seat
(``_upholstered``). Every shape is drawn from its own generator seeded by (seed, class, split,
index), so the set is deterministic and an interrupted run resumes exactly. Axes: x is width, y
is depth, z is up (as in ModelNet).

It stays one module of some 900 lines, the one the library allows past 800, because it is a catalogue
of one idea: ten families drawn from the same few makers. Split by kind of furniture, every family
would import the shared makers and mesh helpers, and the proportions that make two classes confusable
(the work table and the desk, the wide night stand and the small dresser) could no longer be read
side by side; the mesh builder and the shared parts come first, the families after them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pcfilter_lib.io.files import atomic_write_text, prepare_folder, sha256, verify_folder, write_manifest
from pcfilter_lib.io.off import format_off

GENERATOR = "pcfilter.procedural_modelnet"
VERSION = "3"  # bump whenever the same seed and counts would give different meshes
CLASSES = ("bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand", "sofa", "table", "toilet")
# (train, test) meshes per class: the real ModelNet10 class sizes, 3991 and 908 meshes in all.
FULL_COUNTS = {"bathtub": (106, 50), "bed": (515, 100), "chair": (889, 100), "desk": (200, 86),
               "dresser": (200, 86), "monitor": (465, 100), "night_stand": (200, 86), "sofa": (680, 100),
               "table": (392, 100), "toilet": (344, 100)}
FAST_COUNTS = {name: (12, 4) for name in CLASSES}
FOLDERS = {"full": "modelnet10_procedural", "fast": "modelnet10_procedural_fast"}  # default folder of each size


def fan_triangles(faces) -> np.ndarray:
    """Triangles (T, 3) int64 from polygon faces (lists of vertex indices, convex), each split into a
    fan of k - 2 triangles around its first corner (as ``io.off.read_off`` does)."""
    triangles = [(face[0], face[j], face[j + 1]) for face in faces for j in range(1, len(face) - 1)]
    if not triangles:
        raise ValueError("the faces hold no polygon with at least three corners")
    return np.asarray(triangles, dtype=np.int64)


def _rounded_rect(hx: float, hy: float, r: float, segments: int) -> np.ndarray:
    """A rectangle (K, 2) centred at the origin, half sides ``hx``, ``hy``, corners rounded with
    radius ``r`` in ``segments`` steps each (a plain rectangle for r = 0); counter-clockwise."""
    if r <= 0 or segments < 1:
        return np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
    r = min(r, 0.98 * min(hx, hy))
    corners = [(hx - r, -hy + r, -np.pi / 2), (hx - r, hy - r, 0.0), (-hx + r, hy - r, np.pi / 2),
               (-hx + r, -hy + r, np.pi)]
    arc = np.linspace(0, np.pi / 2, segments + 1)
    return np.vstack([np.c_[cx + r * np.cos(a0 + arc), cy + r * np.sin(a0 + arc)] for cx, cy, a0 in corners])


def _ellipse(rx: float, ry: float, segments: int) -> np.ndarray:
    angle = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    return np.c_[np.cos(angle) * rx, np.sin(angle) * ry]


def _frame(direction: np.ndarray) -> np.ndarray:
    """A rotation (3, 3) whose third column is the unit ``direction`` and first column is horizontal
    (or x for a vertical direction)."""
    d = direction / np.linalg.norm(direction)
    x = np.cross(d, (0.0, 0.0, 1.0))
    x = x / np.linalg.norm(x) if np.linalg.norm(x) > 1e-9 else np.array([1.0, 0.0, 0.0])
    return np.c_[x, np.cross(d, x), d]


class _Mesh:
    """Accumulates parts into one vertex list and one polygon face list.

    A mesh has a style drawn once per shape, as real models differ in how they were modelled:
    ``round`` and ``chamfer`` soften the edges of every box (relative to its smaller side),
    ``segments`` sets how finely curves are cut, and ``layers`` how many rings every extruded part
    has along its axis (mesh density; the final deformation bends parts made of many rings).
    """

    def __init__(self, round_edges: float = 0.0, chamfer: float = 0.0, segments: int = 12, layers: int = 1):
        self.vertices: list[np.ndarray] = []
        self.faces: list[list[int]] = []
        self.count = 0
        self.round, self.chamfer, self.segments, self.layers = round_edges, chamfer, segments, layers

    @classmethod
    def random(cls, rng: np.random.Generator) -> _Mesh:
        """An empty mesh with a random style: edges sharp (45%), chamfered (30%) or rounded and
        chamfered (25%), 6-24 segments per curve, 1-8 rings per extruded part."""
        edges = rng.choice(3, p=[0.45, 0.3, 0.25])  # sharp, chamfered, rounded
        return cls(round_edges=_u(rng, 0.15, 0.6) if edges == 2 else 0.0,
                   chamfer=_u(rng, 0.08, 0.3) if edges >= 1 else 0.0,
                   segments=int(rng.integers(6, 25)), layers=int(rng.choice([1, 1, 2, 3, 5, 8])))

    def _add(self, vertices: np.ndarray, faces: list[list[int]]) -> None:
        self.vertices.append(np.asarray(vertices, dtype=np.float64))
        self.faces += [[self.count + i for i in face] for face in faces]
        self.count += len(vertices)

    def extrude(self, section: np.ndarray, z0: float, z1: float, bevel: float = 0.0, top: float = 1.0,
                rotation: np.ndarray | None = None, origin=(0.0, 0.0, 0.0)) -> None:
        """A prism over the convex counter-clockwise ``section`` (K, 2) from z0 to z1, scaled by
        ``top`` at z1 (a frustum), its cap edges cut at 45 degrees by ``bevel``; then rotated and
        moved (local to world: ``rotation @ p + origin``)."""
        k = len(section)
        half = np.abs(section).max(axis=0)
        bevel = min(bevel, 0.4 * float(half.min()), 0.4 * (z1 - z0))
        levels = list(np.linspace(z0 + bevel, z1 - bevel, self.layers + 1))
        rings = [(section, z) for z in levels]
        if bevel > 0:
            inset = section * (half - bevel) / half
            rings = [(inset, z0), *rings, (inset, z1)]
        span = max(z1 - z0, 1e-12)
        vertices = np.vstack([np.c_[ring * (1 + (top - 1) * (z - z0) / span), np.full(k, z)]
                              for ring, z in rings])
        if rotation is not None:
            vertices = vertices @ np.asarray(rotation).T
        vertices = vertices + np.asarray(origin, dtype=np.float64)
        faces = [[r * k + i, r * k + (i + 1) % k, (r + 1) * k + (i + 1) % k, (r + 1) * k + i]
                 for r in range(len(rings) - 1) for i in range(k)]
        faces += [list(range(k - 1, -1, -1)), list(range((len(rings) - 1) * k, len(rings) * k))]
        self._add(vertices, faces)

    def box(self, x0, x1, y0, y1, z0, z1, soft: bool = True) -> None:
        """A box between the given bounds; with ``soft`` its edges follow the mesh's style."""
        hx, hy = (x1 - x0) / 2, (y1 - y0) / 2
        small = min(hx, hy)
        r = self.round * small if soft else 0.0
        section = _rounded_rect(hx, hy, r, max(1, self.segments // 4))
        bevel = self.chamfer * min(small, (z1 - z0) / 2) if soft else 0.0
        self.extrude(section, z0, z1, bevel=bevel, origin=((x0 + x1) / 2, (y0 + y1) / 2, 0.0))

    def cylinder(self, cx, cy, z0, z1, rx, ry=None, top=1.0, segments=None, axis="z") -> None:
        """An elliptic cylinder (or frustum, ``top`` = top radius / bottom radius) with polygon caps.

        ``axis`` x or y lays it on its side: (cx, cy) are then the other two coordinates (y, z for
        x; x, z for y) and z0, z1 the extent along the axis.
        """
        ry = rx if ry is None else ry
        rotation = {"z": np.eye(3), "x": np.eye(3)[[2, 0, 1]], "y": np.eye(3)[[0, 2, 1]]}[axis]
        origin = rotation @ np.array([cx, cy, 0.0])
        self.extrude(_ellipse(rx, ry, segments or self.segments), z0, z1, top=top, rotation=rotation, origin=origin)

    def beam(self, p0, p1, a: float, b: float, round_section: bool = False, top: float = 1.0) -> None:
        """A straight bar from ``p0`` to ``p1`` with an a x b cross-section (a along the horizontal
        perpendicular of the bar), rectangular or elliptic; ``top`` scales the section at ``p1``."""
        p0, p1 = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
        length = float(np.linalg.norm(p1 - p0))
        section = _ellipse(a / 2, b / 2, max(6, self.segments // 2)) if round_section else \
            _rounded_rect(a / 2, b / 2, self.round * min(a, b) / 2, max(1, self.segments // 4))
        self.extrude(section, 0.0, length, top=top, rotation=_frame(p1 - p0), origin=p0)

    def shell(self, outer: np.ndarray, inner: np.ndarray, cx, cy, z0, z1, floor, flare=1.0) -> None:
        """An open vessel (a tub, a bowl): an outer wall over the section ``outer`` (K, 2) from z0
        to z1, widened by ``flare`` at the top, a rim, an inner wall over ``inner`` (K, 2, the same
        K) down to a floor ``floor`` above z0, and a bottom; ``floor`` 0 gives a ring (a seat)."""
        k = len(outer)
        rings = [(outer, z0), (outer * flare, z1), (inner * flare, z1), (inner, z0 + floor)]
        vertices = np.vstack([np.c_[ring + (cx, cy), np.full(k, z)] for ring, z in rings])
        strips = range(3) if floor > 0 else range(4)  # a ring closes its underside with a fourth strip
        faces = [[r * k + i, r * k + (i + 1) % k, (r + 1) % 4 * k + (i + 1) % k, (r + 1) % 4 * k + i]
                 for r in strips for i in range(k)]
        if floor > 0:
            faces += [list(range(k - 1, -1, -1)), list(range(3 * k, 4 * k))]
        self._add(vertices, faces)

    def arrays(self) -> tuple[np.ndarray, list[list[int]]]:
        return np.vstack(self.vertices), self.faces


def _u(rng, low, high) -> float:
    return float(rng.uniform(low, high))


def _pick(rng, weights: dict[str, float]) -> str:
    """One key of ``weights``, drawn with probability proportional to its value."""
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


# ---------------------------------------------------------------------------------------------
# Parts shared by several families: where two real classes overlap, both draw from these.

LEG_STYLES = {"square": 0.35, "round": 0.25, "tapered": 0.2, "turned": 0.1, "splayed": 0.1}


def _legs(rng, m: _Mesh, x0, x1, y0, y1, z0, z1, thickness, style=None, inset=0.0, count=4) -> None:
    """``count`` (3, 4 or 6) legs under the rectangle (x0..x1, y0..y1) from z0 up to z1."""
    style = style or _pick(rng, LEG_STYLES)
    h = thickness / 2
    xa, xb, ya, yb = x0 + inset + h, x1 - inset - h, y0 + inset + h, y1 - inset - h
    if count == 3:
        spots = [((xa + xb) / 2, yb), (xa, ya), (xb, ya)]
    else:
        spots = [(x, y) for x in (xa, xb) for y in (ya, yb)]
        if count == 6:
            spots += [((xa + xb) / 2, ya), ((xa + xb) / 2, yb)]
    splay = _u(rng, 0.04, 0.12) * (z1 - z0)
    cx, cy = (xa + xb) / 2, (ya + yb) / 2
    for x, y in spots:
        if style == "square":
            m.box(x - h, x + h, y - h, y + h, z0, z1)
        elif style == "round":
            m.cylinder(x, y, z0, z1, h, segments=max(6, m.segments // 2))
        elif style == "tapered":
            m.cylinder(x, y, z0, z1, h * 0.55, top=1 / 0.55, segments=max(6, m.segments // 2))
        elif style == "turned":  # a stack of frustums, as on a lathe
            cuts = np.sort(rng.uniform(z0, z1, size=3))
            bounds = [z0, *cuts, z1]
            for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                m.cylinder(x, y, a, b, h * _u(rng, 0.6, 1.1), top=_u(rng, 0.7, 1.4), segments=max(6, m.segments // 2))
        else:  # splayed: the feet stand out beyond the top's corners
            dx, dy = np.sign(x - cx) * splay, np.sign(y - cy) * splay
            m.beam((x + dx, y + dy, z0), (x, y, z1), thickness, thickness, round_section=rng.random() < 0.5)


def _stretchers(rng, m: _Mesh, x0, x1, y0, y1, z, t) -> None:
    """Rails between the legs at height z: a ring of four, or an H."""
    if rng.random() < 0.5:
        for y in (y0, y1 - t):
            m.box(x0, x1, y, y + t, z, z + t)
        for x in (x0, x1 - t):
            m.box(x, x + t, y0, y1, z, z + t)
    else:
        for x in (x0, x1 - t):
            m.box(x, x + t, y0, y1, z, z + t)
        m.box(x0, x1, (y0 + y1) / 2 - t / 2, (y0 + y1) / 2 + t / 2, z, z + t)


def _drawers(rng, m: _Mesh, x0, x1, z0, z1, y_front, rows, cols, knobs=True) -> None:
    """A grid of drawer fronts standing slightly proud of the face y = y_front."""
    gap = _u(rng, 0.006, 0.02)
    depth = _u(rng, 0.008, 0.025)
    handle = _pick(rng, {"knob": 0.5, "bar": 0.35, "none": 0.15}) if knobs else "none"
    xs, zs = np.linspace(x0, x1, cols + 1), np.linspace(z0, z1, rows + 1)
    for r in range(rows):
        for c in range(cols):
            m.box(xs[c] + gap, xs[c + 1] - gap, y_front - depth, y_front, zs[r] + gap, zs[r + 1] - gap)
            xm, zm = (xs[c] + xs[c + 1]) / 2, (zs[r] + zs[r + 1]) / 2
            if handle == "knob":
                m.cylinder(xm, zm, y_front - depth - 0.025, y_front - depth, 0.014, segments=6, axis="y")
            elif handle == "bar":
                hw = (xs[c + 1] - xs[c]) * 0.2
                m.box(xm - hw, xm + hw, y_front - depth - 0.025, y_front - depth, zm - 0.008, zm + 0.008)


def _items(rng, m: _Mesh, x0, x1, y0, y1, z) -> None:
    """A few things standing on a surface at height z: books, a vase or lamp, a box, a screen."""
    for _ in range(int(rng.integers(1, 4))):
        kind = _pick(rng, {"books": 0.3, "vase": 0.25, "lamp": 0.2, "box": 0.15, "screen": 0.1})
        w = min(x1 - x0, y1 - y0)
        x = _u(rng, x0 + 0.15 * (x1 - x0), x1 - 0.15 * (x1 - x0))
        y = _u(rng, y0 + 0.2 * (y1 - y0), y1 - 0.2 * (y1 - y0))
        if kind == "books":
            s = _u(rng, 0.1, 0.3) * w
            m.box(x - s, x + s, y - s * 0.7, y + s * 0.7, z, z + _u(rng, 0.03, 0.12))
        elif kind == "vase":
            r = _u(rng, 0.04, 0.1)
            m.cylinder(x, y, z, z + _u(rng, 0.1, 0.35), r, top=_u(rng, 0.5, 1.5))
        elif kind == "lamp":
            m.cylinder(x, y, z, z + 0.03, 0.07)
            top = z + _u(rng, 0.25, 0.5)
            m.cylinder(x, y, z, top, 0.012, segments=6)
            m.cylinder(x, y, top - 0.05, top + 0.12, _u(rng, 0.09, 0.15), top=_u(rng, 0.5, 0.8))
        elif kind == "box":
            s = _u(rng, 0.05, 0.15)
            m.box(x - s, x + s, y - s, y + s, z, z + _u(rng, 0.05, 0.25))
        else:
            sw = _u(rng, 0.25, 0.45)
            m.box(x - 0.06, x + 0.06, y - 0.05, y + 0.05, z, z + 0.01)
            m.box(x - 0.015, x + 0.015, y - 0.01, y + 0.01, z, z + 0.12)
            m.box(x - sw, x + sw, y - 0.02, y, z + 0.08, z + 0.08 + sw * _u(rng, 0.55, 0.75))


def _legged_top(rng, m: _Mesh, w, d, h, t, drawer: float, apron: float) -> None:
    """A rectangular top on four legs, maybe with an apron and a drawer under the top: the work
    table and the writing desk are both made this way, so they overlap as in ModelNet."""
    m.box(-w / 2, w / 2, -d / 2, d / 2, h - t, h)
    leg = _u(rng, 0.03, 0.07)
    inset = _u(rng, 0, 0.06)
    _legs(rng, m, -w / 2, w / 2, -d / 2, d / 2, 0, h - t, leg, inset=inset)
    a = _u(rng, 0.05, 0.12)
    if rng.random() < apron:
        e = inset + leg * 0.5
        m.box(-w / 2 + e, w / 2 - e, -d / 2 + e, d / 2 - e, h - t - a, h - t)
    if rng.random() < drawer:  # one drawer (or two side by side) hanging under the top
        dw = w * _u(rng, 0.25, 0.45)
        for x in ([0.0] if rng.random() < 0.6 else [-w / 4, w / 4]):
            m.box(x - dw / 2, x + dw / 2, -d / 2 + 0.02, d / 2 - 0.05, h - t - _u(rng, 0.08, 0.15), h - t)
    if rng.random() < 0.2:
        _stretchers(rng, m, -w / 2 + inset, w / 2 - inset, -d / 2 + inset, d / 2 - inset, _u(rng, 0.08, 0.2), 0.025)


def _cabinet(rng, m: _Mesh, w, d, h, rows, cols, front: str = "drawers") -> None:
    """A case of drawers (or doors, or an open shelf under one drawer) on a plinth, feet or legs:
    night stands and dressers are both made this way, so they overlap where their sizes do."""
    base = _pick(rng, {"plinth": 0.45, "legs": 0.35, "none": 0.2})
    z0 = 0.0
    if base == "legs":
        z0 = _u(rng, 0.05, 0.2) * h
        _legs(rng, m, -w / 2, w / 2, -d / 2, d / 2, 0, z0, _u(rng, 0.03, 0.06), inset=_u(rng, 0, 0.03))
    elif base == "plinth":
        z0 = _u(rng, 0.02, 0.08)
        s = _u(rng, 0.0, 0.04)
        m.box(-w / 2 + s, w / 2 - s, -d / 2 + s, d / 2 - s, 0, z0)
    if front == "open":  # a drawer on top, an open shelf below: a frame with a back and a bottom
        t = _u(rng, 0.015, 0.03)
        split = z0 + (h - z0) * _u(rng, 0.55, 0.75)
        for x in (-w / 2, w / 2 - t):
            m.box(x, x + t, -d / 2, d / 2, z0, h)
        m.box(-w / 2, w / 2, d / 2 - t, d / 2, z0, h)
        m.box(-w / 2, w / 2, -d / 2, d / 2, z0, z0 + t)
        m.box(-w / 2 + t, w / 2 - t, -d / 2, d / 2, split - t, h)
        _drawers(rng, m, -w / 2 + t, w / 2 - t, split, h - 0.02, -d / 2, 1, 1)
        if rng.random() < 0.5:  # a middle shelf
            m.box(-w / 2 + t, w / 2 - t, -d / 2 + 0.02, d / 2, (z0 + split) / 2, (z0 + split) / 2 + t)
    else:
        m.box(-w / 2, w / 2, -d / 2, d / 2, z0, h)
        if front == "doors":
            _drawers(rng, m, -w / 2 + 0.02, w / 2 - 0.02, z0 + 0.02, h - 0.02, -d / 2, 1, cols, knobs=True)
        else:
            _drawers(rng, m, -w / 2 + 0.02, w / 2 - 0.02, z0 + 0.02, h - 0.02, -d / 2, rows, cols,
                     knobs=rng.random() < 0.8)
    if rng.random() < 0.45:  # a top with an overhang
        o = _u(rng, 0.005, 0.04)
        m.box(-w / 2 - o, w / 2 + o, -d / 2 - o, d / 2 + o, h, h + _u(rng, 0.015, 0.04))


def _upholstered(rng, m: _Mesh, w, d, seat, back, arm, arm_height, feet, seats, recline=0.0) -> None:
    """A padded seat: a base, ``seats`` cushions, a back (``back`` high, leaning back by ``recline``
    radians) and arms ``arm`` wide: sofas, club chairs, daybeds."""
    if feet:
        _legs(rng, m, -w / 2, w / 2, -d / 2, d / 2, 0, feet, _u(rng, 0.03, 0.06), inset=_u(rng, 0, 0.05))
    bt = _u(rng, 0.12, 0.25)
    m.box(-w / 2 + arm, w / 2 - arm, -d / 2, d / 2 - bt * 0.5, feet, seat - 0.1)
    xs = np.linspace(-w / 2 + arm, w / 2 - arm, seats + 1)
    for a, b in zip(xs[:-1], xs[1:], strict=True):
        m.box(a + 0.01, b - 0.01, -d / 2 + 0.01, d / 2 - bt, seat - 0.11, seat)
    top = (0.0, d / 2 - bt / 2 + np.sin(recline) * (back - seat), back)
    m.beam((0.0, d / 2 - bt / 2, feet), top, w - 2 * arm * (rng.random() < 0.3), bt)
    if rng.random() < 0.5:  # loose back cushions
        for a, b in zip(xs[:-1], xs[1:], strict=True):
            y = d / 2 - bt - 0.06 + np.sin(recline) * 0.2
            m.beam(((a + b) / 2, y, seat), ((a + b) / 2, y + np.sin(recline) * (back - seat), back - 0.05),
                   b - a - 0.03, 0.12)
    if arm:
        style = _pick(rng, {"square": 0.5, "rolled": 0.3, "sloped": 0.2})
        for x0 in (-w / 2, w / 2 - arm):
            if style == "sloped":
                m.beam((x0 + arm / 2, -d / 2 + 0.05, feet), (x0 + arm / 2, d / 2 - bt, arm_height), arm, 0.1)
                m.box(x0, x0 + arm, -d / 2, d / 2 - bt, feet, seat)
            else:
                m.box(x0, x0 + arm, -d / 2, d / 2 - bt, feet, arm_height)
            if style == "rolled":
                m.cylinder(-d / 2 + (d - bt) / 2, arm_height, x0 - 0.02, x0 + arm + 0.02, (d - bt) / 2, arm * 0.7,
                           axis="x")


# ---------------------------------------------------------------------------------------------
# The ten families. Axes: x width, y depth (the front faces -y), z up, the floor at z = 0.

def _table(rng, m: _Mesh) -> None:
    style = _pick(rng, {"dining": 0.26, "round": 0.13, "coffee": 0.14, "side": 0.1, "work": 0.24, "console": 0.07,
                        "trestle": 0.06})
    t = _u(rng, 0.02, 0.07)
    if style == "work":  # shares its makers with the writing desk and the panel desk
        w, d, h = _u(rng, 1.0, 1.6), _u(rng, 0.55, 0.8), _u(rng, 0.71, 0.78)
        if rng.random() < 0.25:  # on two side panels
            m.box(-w / 2, w / 2, -d / 2, d / 2, h - t, h)
            pt = _u(rng, 0.025, 0.06)
            for x in (-w / 2, w / 2 - pt):
                m.box(x, x + pt, -d / 2, d / 2, 0, h - t)
            if rng.random() < 0.5:  # a rail between them at the back
                m.box(-w / 2, w / 2, d / 2 - 0.03, d / 2, h * _u(rng, 0.5, 0.8), h - t)
        else:
            _legged_top(rng, m, w, d, h, t, drawer=0.55, apron=0.65)
        return
    if style == "round":
        h = _u(rng, 0.68, 0.78) if rng.random() < 0.7 else _u(rng, 0.4, 0.6)
        r = _u(rng, 0.35, 0.7)
        ry = r * (_u(rng, 0.55, 0.95) if rng.random() < 0.4 else 1.0)
        m.cylinder(0, 0, h - t, h, r, ry)
        if rng.random() < 0.6:  # pedestal on a disc or on feet
            m.cylinder(0, 0, 0.03, h - t, _u(rng, 0.04, 0.12), top=_u(rng, 0.6, 1.2))
            if rng.random() < 0.5:
                m.cylinder(0, 0, 0, 0.03, _u(rng, 0.5, 0.8) * r)
            else:
                for a in np.linspace(0, 2 * np.pi, int(rng.integers(3, 5)), endpoint=False) + _u(rng, 0, 1):
                    m.beam((0, 0, 0.06), (0.6 * r * np.cos(a), 0.6 * ry * np.sin(a), 0.0), 0.05, 0.04)
        else:
            n = int(rng.integers(3, 5))
            for a in np.linspace(0, 2 * np.pi, n, endpoint=False) + np.pi / 4:
                x, y = 0.7 * r * np.cos(a), 0.7 * ry * np.sin(a)
                m.beam((x * 1.1, y * 1.1, 0), (x, y, h - t), 0.045, 0.045, round_section=True)
        w, d = 2 * r, 2 * ry
    else:
        w, d, h = {"dining": (_u(rng, 1.0, 2.3), _u(rng, 0.7, 1.1), _u(rng, 0.7, 0.78)),
                   "coffee": (_u(rng, 0.7, 1.4), _u(rng, 0.45, 0.8), _u(rng, 0.3, 0.48)),
                   "side": (_u(rng, 0.4, 0.65), _u(rng, 0.35, 0.65), _u(rng, 0.5, 0.72)),
                   "console": (_u(rng, 0.9, 1.5), _u(rng, 0.3, 0.45), _u(rng, 0.75, 0.9)),
                   "trestle": (_u(rng, 1.4, 2.4), _u(rng, 0.7, 1.0), _u(rng, 0.7, 0.78))}[style]
        m.box(-w / 2, w / 2, -d / 2, d / 2, h - t, h)
        support = "trestle" if style == "trestle" else \
            ("panels" if style == "coffee" and rng.random() < 0.3 else "legs")
        if support == "legs":
            count = 6 if style == "dining" and w > 1.8 and rng.random() < 0.5 else 4
            inset = _u(rng, 0, 0.08)
            leg = _u(rng, 0.03, 0.09)
            _legs(rng, m, -w / 2, w / 2, -d / 2, d / 2, 0, h - t, leg, inset=inset, count=count)
            if rng.random() < 0.5:  # apron
                e = inset + leg / 2
                m.box(-w / 2 + e, w / 2 - e, -d / 2 + e, d / 2 - e, h - t - _u(rng, 0.04, 0.12), h - t)
            if rng.random() < 0.25:
                _stretchers(rng, m, -w / 2 + inset, w / 2 - inset, -d / 2 + inset, d / 2 - inset,
                            _u(rng, 0.1, 0.3) * h, 0.025)
        elif support == "panels":
            for x in (-w / 2, w / 2 - 0.04):
                m.box(x, x + _u(rng, 0.02, 0.06), -d / 2, d / 2, 0, h - t)
        else:
            for x in (-w / 2 * 0.75, w / 2 * 0.75):
                m.box(x - 0.04, x + 0.04, -0.06, 0.06, 0, h - t)
                m.box(x - 0.05, x + 0.05, -d / 2 * 0.8, d / 2 * 0.8, 0, 0.05)
                m.box(x - 0.04, x + 0.04, -d / 2 * 0.8, d / 2 * 0.8, h - t - 0.05, h - t)
            m.box(-w / 2 * 0.75, w / 2 * 0.75, -0.025, 0.025, h * 0.25, h * 0.32)
        if style in ("side", "console", "coffee") and rng.random() < 0.5:  # lower shelf
            m.box(-w / 2 * 0.9, w / 2 * 0.9, -d / 2 * 0.9, d / 2 * 0.9, h * 0.15, h * 0.15 + t * 0.7)
        if style in ("side", "console") and rng.random() < 0.35:  # a drawer under the top
            m.box(-w / 2 * 0.8, w / 2 * 0.8, -d / 2 * 0.9, d / 2 * 0.9, h - t - _u(rng, 0.08, 0.15), h - t)
    if rng.random() < 0.12:
        _items(rng, m, -w / 2, w / 2, -d / 2, d / 2, h)


def _desk(rng, m: _Mesh) -> None:
    style = _pick(rng, {"writing": 0.25, "pedestal": 0.24, "double": 0.14, "panels": 0.15, "corner": 0.11,
                        "computer": 0.11})
    w, d, h, t = _u(rng, 1.0, 1.8), _u(rng, 0.5, 0.8), _u(rng, 0.71, 0.78), _u(rng, 0.02, 0.05)
    if style == "writing":  # shares its maker with the work table
        w = _u(rng, 1.0, 1.6)
        _legged_top(rng, m, w, d, h, t, drawer=0.65, apron=0.7)
    else:
        m.box(-w / 2, w / 2, -d / 2, d / 2, h - t, h)
    pw = w * _u(rng, 0.25, 0.4)
    sides = {"pedestal": [int(rng.choice([-1, 1]))], "double": [-1, 1], "corner": [1]}.get(style, [])
    for side in sides:  # drawer pedestals
        x0, x1 = (w / 2 - pw, w / 2) if side > 0 else (-w / 2, -w / 2 + pw)
        lift = _u(rng, 0.03, 0.12) if rng.random() < 0.3 else 0.0  # on castors or a plinth
        m.box(x0, x1, -d / 2 + 0.02, d / 2, lift, h - t)
        if lift:
            _legs(rng, m, x0, x1, -d / 2 + 0.02, d / 2, 0, lift, 0.04, style="round")
        if rng.random() < 0.25:  # a door instead of drawers
            _drawers(rng, m, x0, x1, lift + 0.03, h - t - 0.02, -d / 2 + 0.02, 1, 1)
        else:
            _drawers(rng, m, x0, x1, lift + 0.03, h - t - 0.02, -d / 2 + 0.02, int(rng.integers(2, 5)), 1,
                     knobs=rng.random() < 0.7)
    if style in ("pedestal", "corner"):  # the other end stands on a panel or two legs
        x = -w / 2 if sides[0] > 0 else w / 2 - 0.04
        if rng.random() < 0.5:
            m.box(x, x + 0.04, -d / 2, d / 2, 0, h - t)
        else:
            _legs(rng, m, x, x + 0.05, -d / 2, d / 2, 0, h - t, 0.05)
    if style in ("panels", "computer"):
        pt = _u(rng, 0.025, 0.06)
        for x in (-w / 2, w / 2 - pt):
            m.box(x, x + pt, -d / 2, d / 2, 0, h - t)
    if style == "corner":  # a return wing at a right angle, along the back of the pedestal end
        wing = _u(rng, 0.8, 1.4)
        m.box(-w / 2 - d, -w / 2, d / 2 - wing, d / 2, h - t, h)
        m.box(-w / 2 - d, -w / 2 - d + 0.04, d / 2 - wing, d / 2, 0, h - t)
    if style == "computer":
        if rng.random() < 0.6:  # keyboard tray
            m.box(-w / 4, w / 4, -d / 2, d / 4, h - t - 0.1, h - t - 0.08)
        if rng.random() < 0.5:  # a computer tower on the floor
            m.box(w / 2 - 0.3, w / 2 - 0.1, -d / 2 + 0.05, d / 2 - 0.05, 0.01, 0.45)
    if style != "writing" and rng.random() < 0.55:  # modesty panel at the back
        m.box(-w / 2, w / 2, d / 2 - 0.025, d / 2, h * _u(rng, 0.25, 0.6), h - t)
    if rng.random() < 0.22:  # hutch with shelves
        hh = _u(rng, 0.3, 0.7)
        hd = _u(rng, 0.2, 0.3)
        m.box(-w / 2, w / 2, d / 2 - hd, d / 2, h + hh - 0.03, h + hh)
        m.box(-w / 2, w / 2, d / 2 - 0.02, d / 2, h, h + hh)
        for x in (-w / 2, w / 2 - 0.03):
            m.box(x, x + 0.03, d / 2 - hd, d / 2, h, h + hh)
        if rng.random() < 0.5:
            m.box(-w / 2, w / 2, d / 2 - hd, d / 2, h + hh / 2, h + hh / 2 + 0.02)
    if rng.random() < 0.3:  # a screen, books, a lamp on top
        _items(rng, m, -w / 2, w / 2, -d / 2, d / 2, h)


def _night_stand(rng, m: _Mesh) -> None:
    style = _pick(rng, {"drawers": 0.36, "open": 0.2, "wide": 0.34, "door": 0.1})
    d = _u(rng, 0.33, 0.5)
    if style == "wide":  # as wide as a small dresser
        w, h = _u(rng, 0.6, 0.9), _u(rng, 0.5, 0.75)
        _cabinet(rng, m, w, d, h, int(rng.integers(2, 5)), 1)
    else:
        w, h = _u(rng, 0.38, 0.62), _u(rng, 0.45, 0.75)
        rows = int(rng.integers(1, 4))
        _cabinet(rng, m, w, d, h, rows, 1, front={"drawers": "drawers", "open": "open", "door": "doors"}[style])
    if rng.random() < 0.25:
        _items(rng, m, -w / 2, w / 2, -d / 2, d / 2, h)


def _dresser(rng, m: _Mesh) -> None:
    style = _pick(rng, {"low": 0.44, "chest": 0.24, "small": 0.2, "doors": 0.12})
    d = _u(rng, 0.4, 0.6)
    if style == "low":
        w, h = _u(rng, 1.1, 1.9), _u(rng, 0.7, 1.0)
        _cabinet(rng, m, w, d, h, int(rng.integers(3, 5)), int(rng.integers(2, 4)))
    elif style == "chest":
        w, h = _u(rng, 0.75, 1.05), _u(rng, 1.1, 1.5)
        _cabinet(rng, m, w, d, h, int(rng.integers(4, 8)), int(rng.integers(1, 3)))
    elif style == "small":  # as small as a wide night stand
        w, h = _u(rng, 0.7, 0.95), _u(rng, 0.6, 0.85)
        d = _u(rng, 0.38, 0.5)
        _cabinet(rng, m, w, d, h, int(rng.integers(2, 5)), 1)
    else:  # doors over drawers
        w, h = _u(rng, 0.9, 1.4), _u(rng, 0.9, 1.5)
        split = h * _u(rng, 0.3, 0.45)
        _cabinet(rng, m, w, d, split, 1, 2)
        m.box(-w / 2, w / 2, -d / 2, d / 2, split, h)
        _drawers(rng, m, -w / 2 + 0.02, w / 2 - 0.02, split + 0.02, h - 0.02, -d / 2, 1, 2)
    if style != "chest" and rng.random() < 0.25:  # mirror in a frame
        mw = w * _u(rng, 0.5, 0.85)
        mh = _u(rng, 0.4, 0.9)
        m.box(-mw / 2, mw / 2, d / 2 - 0.05, d / 2 - 0.02, h, h + mh)
        if rng.random() < 0.5:
            for x in (-mw / 2 - 0.04, mw / 2):
                m.box(x, x + 0.04, d / 2 - 0.06, d / 2 - 0.02, h, h + mh)
    if rng.random() < 0.15:
        _items(rng, m, -w / 2, w / 2, -d / 2, d / 2, h)


def _chair_back(rng, m: _Mesh, w, y1, sh, bh, bt, recline) -> None:
    """A chair back from the seat at depth y1 up to ``bh`` above it, leaning back by ``recline``."""
    style = _pick(rng, {"panel": 0.35, "slats": 0.25, "frame": 0.2, "ladder": 0.1, "padded": 0.1})
    lean = np.sin(recline) * bh

    def at(height):  # the back's y at a height above the seat
        return y1 - bt / 2 + lean * height / bh

    if style in ("panel", "padded"):
        thick = bt * (2.5 if style == "padded" else 1.0)
        m.beam((0, at(0), sh), (0, at(bh), sh + bh), w * _u(rng, 0.85, 1.0), thick, top=_u(rng, 0.85, 1.15))
        return
    post = _u(rng, 0.025, 0.045)
    for x in (-w / 2 + post / 2, w / 2 - post / 2):
        m.beam((x, at(0), sh), (x, at(bh), sh + bh), post, bt)
    top = _u(rng, 0.04, 0.12)
    m.beam((0, at(bh - top), sh + bh - top), (0, at(bh), sh + bh), w, bt)
    if style == "slats":
        for x in np.linspace(-w / 2, w / 2, int(rng.integers(4, 8)))[1:-1]:
            m.beam((x, at(0), sh), (x, at(bh - top), sh + bh - top), 0.025, bt * 0.8)
    elif style == "ladder":
        for z in np.linspace(0.3, 0.8, int(rng.integers(2, 4))) * bh:
            m.beam((0, at(z), sh + z), (0, at(z + 0.04), sh + z + 0.04), w, bt * 0.8)
    elif rng.random() < 0.5:  # frame with a mesh panel inside
        m.beam((0, at(0.15 * bh), sh + 0.15 * bh), (0, at(bh - top), sh + bh - top), w - 2 * post, 0.008)


def _chair(rng, m: _Mesh) -> None:
    style = _pick(rng, {"side": 0.32, "arm": 0.14, "club": 0.08, "office": 0.16, "bar": 0.05, "rocking": 0.05,
                        "cantilever": 0.06, "lounge": 0.07, "folding": 0.07})
    if style == "club":  # upholstered, arms down to the floor: close to an armchair sofa
        w, d = _u(rng, 0.65, 0.9), _u(rng, 0.65, 0.85)
        sh = _u(rng, 0.38, 0.46)
        feet = _u(rng, 0.04, 0.12) if rng.random() < 0.6 else 0.0
        _upholstered(rng, m, w, d, sh, _u(rng, 0.75, 1.0), _u(rng, 0.08, 0.18), _u(rng, 0.55, 0.68), feet, 1,
                     recline=_u(rng, 0.0, 0.25))
        return
    w, d = _u(rng, 0.4, 0.58), _u(rng, 0.4, 0.56)
    sh = _u(rng, 0.62, 0.8) if style == "bar" else (_u(rng, 0.3, 0.4) if style == "lounge" else _u(rng, 0.4, 0.5))
    st = _u(rng, 0.025, 0.09)
    if style == "lounge":
        w, d = _u(rng, 0.55, 0.75), _u(rng, 0.55, 0.75)
    m.box(-w / 2, w / 2, -d / 2, d / 2, sh - st, sh)
    base = sh - st
    if style == "office":  # swivel: gas lift and a star of feet
        m.cylinder(0, 0, 0.1, base, _u(rng, 0.02, 0.04))
        m.box(-0.1, 0.1, -0.1, 0.1, base - 0.05, base)
        r = _u(rng, 0.25, 0.33)
        for a in np.linspace(0, 2 * np.pi, 5, endpoint=False) + _u(rng, 0, 1):
            m.beam((0, 0, 0.1), (r * np.cos(a), r * np.sin(a), 0.05), 0.04, 0.03)
            m.cylinder(r * np.cos(a), r * np.sin(a), 0.0, 0.05, 0.025)
    elif style == "cantilever":  # one bent tube: floor runners, front uprights, no back legs
        for x in (-w / 2 + 0.02, w / 2 - 0.02):
            m.beam((x, d / 2, 0.01), (x, -d / 2 - 0.05, 0.01), 0.025, 0.025, round_section=True)
            m.beam((x, -d / 2 - 0.05, 0.01), (x, -d / 2 + 0.03, base), 0.025, 0.025, round_section=True)
    elif style == "rocking":
        _legs(rng, m, -w / 2, w / 2, -d / 2, d / 2, 0.06, base, 0.035)
        for x in (-w / 2 + 0.02, w / 2 - 0.02):
            points = [(x, y, 0.06 * (2 * y / d) ** 2 + 0.02) for y in np.linspace(-d * 0.8, d * 0.8, 5)]
            for p, q in zip(points[:-1], points[1:], strict=True):
                m.beam(p, q, 0.03, 0.04)
    elif style == "folding":  # crossed legs seen from the side
        for x in (-w / 2 + 0.02, w / 2 - 0.02):
            m.beam((x, -d / 2, 0), (x, d / 2, base), 0.025, 0.02)
            m.beam((x, d / 2, 0), (x, -d / 2, base), 0.025, 0.02)
    else:
        _legs(rng, m, -w / 2, w / 2, -d / 2, d / 2, 0, base, _u(rng, 0.022, 0.055), inset=_u(rng, 0, 0.03))
        if style == "bar" or rng.random() < 0.3:  # foot rest or stretchers
            _stretchers(rng, m, -w / 2, w / 2, -d / 2, d / 2, _u(rng, 0.15, 0.35) * base, 0.02)
    recline = _u(rng, 0.0, 0.45) if style == "lounge" else _u(rng, -0.05, 0.3)
    bh = _u(rng, 0.25, 0.4) if style == "bar" else _u(rng, 0.35, 0.7)
    if style != "bar" or rng.random() < 0.7:
        _chair_back(rng, m, w, d / 2, sh, bh, _u(rng, 0.02, 0.06), recline)
    if style in ("arm", "office", "lounge") and (style == "arm" or rng.random() < 0.6):
        ah = _u(rng, 0.17, 0.27)
        for x in (-w / 2 - 0.02, w / 2 - 0.02):
            m.box(x, x + 0.04, -d / 2 + 0.02, d / 2 - 0.02, sh + ah - 0.03, sh + ah)
            m.beam((x + 0.02, -d / 2 + 0.06, sh), (x + 0.02, -d / 2 + 0.04, sh + ah - 0.03), 0.03, 0.03)


def _sofa(rng, m: _Mesh) -> None:
    style = _pick(rng, {"standard": 0.56, "loveseat": 0.12, "armchair": 0.1, "sectional": 0.12, "daybed": 0.1})
    d, sh = _u(rng, 0.75, 1.0), _u(rng, 0.36, 0.48)
    feet = _u(rng, 0.04, 0.15) if rng.random() < 0.5 else 0.0
    arm = _u(rng, 0.08, 0.25) if rng.random() < 0.85 else 0.0
    back, arm_height = _u(rng, 0.7, 0.95), _u(rng, 0.5, 0.68)
    recline = _u(rng, 0.0, 0.3)
    if style == "daybed":  # a mattress with a back along its length and ends as high as arms: close to a bed
        w, d = _u(rng, 1.85, 2.1), _u(rng, 0.8, 1.0)
        _upholstered(rng, m, w, d, sh, back, _u(rng, 0.05, 0.12), _u(rng, 0.6, 0.85), feet, 1)
        return
    seats = {"standard": int(rng.integers(2, 4)), "loveseat": 2, "armchair": 1, "sectional": int(rng.integers(2, 4))}
    w = {"standard": _u(rng, 1.6, 2.6), "loveseat": _u(rng, 1.2, 1.6), "armchair": _u(rng, 0.75, 1.05),
         "sectional": _u(rng, 1.8, 2.8)}[style]
    _upholstered(rng, m, w, d, sh, back, arm, arm_height, feet, seats[style], recline=recline)
    if style == "sectional":  # a chaise or return at one end
        side = int(rng.choice([-1, 1]))
        cw = _u(rng, 0.7, 0.95)
        x0, x1 = (w / 2 - arm - cw, w / 2 - arm) if side > 0 else (-w / 2 + arm, -w / 2 + arm + cw)
        length = _u(rng, 0.6, 1.0)
        m.box(x0, x1, -d / 2 - length, -d / 2, feet, sh)
        if rng.random() < 0.5:  # the return has a back on its outer side
            xb = x1 - 0.2 if side > 0 else x0
            m.box(xb, xb + 0.2, -d / 2 - length, -d / 2, feet, back)
    if w - 2 * arm > 0.6 and rng.random() < 0.25:  # throw pillows
        for _ in range(int(rng.integers(1, 4))):
            x = _u(rng, -w / 2 + arm + 0.15, w / 2 - arm - 0.15)
            m.beam((x, d / 2 - 0.35, sh), (x, d / 2 - 0.3, sh + 0.35), _u(rng, 0.3, 0.45), 0.12)


def _bed(rng, m: _Mesh) -> None:
    style = _pick(rng, {"platform": 0.3, "frame": 0.33, "upholstered": 0.15, "four_poster": 0.07, "bunk": 0.05,
                        "daybed": 0.1})
    w, length = _u(rng, 0.9, 2.0), _u(rng, 1.9, 2.25)
    mt = _u(rng, 0.12, 0.3)
    if style == "daybed":  # a single bed with a back along one long side and two ends: a daybed sofa's twin
        w = _u(rng, 0.85, 1.05)
        z0 = _u(rng, 0.2, 0.35)
        if rng.random() < 0.5:  # padded: the sofa's own maker, a mattress for its seat
            feet = z0 * _u(rng, 0.3, 0.8) if rng.random() < 0.6 else 0.0
            _upholstered(rng, m, length, w, z0 + mt, _u(rng, 0.7, 1.0), _u(rng, 0.04, 0.1), _u(rng, 0.5, 0.9), feet, 1)
            if rng.random() < 0.5:  # a pillow at one end
                x = length / 2 - 0.45
                m.box(x, x + 0.35, -w / 2 + 0.1, w / 2 - 0.3, z0 + mt, z0 + mt + 0.12)
            return
        _legs(rng, m, -length / 2, length / 2, -w / 2, w / 2, 0, z0, 0.05)
        m.box(-length / 2, length / 2, -w / 2, w / 2, z0 - 0.06, z0)
        m.box(-length / 2 + 0.04, length / 2 - 0.04, -w / 2 + 0.02, w / 2 - 0.02, z0, z0 + mt)
        end = _u(rng, 0.5, 0.9)
        for x in (-length / 2 - 0.05, length / 2):
            m.box(x, x + 0.05, -w / 2, w / 2, 0, end)
        m.box(-length / 2, length / 2, w / 2, w / 2 + 0.05, 0, end * _u(rng, 0.8, 1.1))
        return
    z0 = _u(rng, 0.1, 0.25) if style == "platform" else _u(rng, 0.2, 0.45)
    if style in ("frame", "four_poster", "bunk"):
        _legs(rng, m, -w / 2, w / 2, -length / 2, length / 2, 0, z0, _u(rng, 0.05, 0.1))
        m.box(-w / 2, w / 2, -length / 2, length / 2, z0 - 0.08, z0)
    else:
        s = _u(rng, 0.0, 0.15)
        m.box(-w / 2 + s, w / 2 - s, -length / 2 + s, length / 2 - s, 0, z0)
        if style == "platform" and rng.random() < 0.4:  # a wider platform
            m.box(-w / 2 - 0.15, w / 2 + 0.15, -length / 2 - 0.1, length / 2, z0 - 0.05, z0)
    m.box(-w / 2 + 0.03, w / 2 - 0.03, -length / 2 + 0.03, length / 2 - 0.03, z0, z0 + mt)
    top = z0 + mt
    if style != "platform" or rng.random() < 0.8:
        hb = _u(rng, 0.3, 1.0) if style != "upholstered" else _u(rng, 0.6, 1.2)
        ht = 0.06 if style != "upholstered" else _u(rng, 0.1, 0.2)
        m.box(-w / 2 - 0.03, w / 2 + 0.03, length / 2, length / 2 + ht, 0, top + hb)
    if style in ("frame", "four_poster", "upholstered") and rng.random() < 0.6:  # footboard
        m.box(-w / 2 - 0.03, w / 2 + 0.03, -length / 2 - 0.06, -length / 2, 0, top + _u(rng, -0.1, 0.4))
    if style == "four_poster":
        ph = top + _u(rng, 1.2, 1.6)
        for x in (-w / 2, w / 2 - 0.08):
            for y in (-length / 2 - 0.06, length / 2 - 0.02):
                m.box(x, x + 0.08, y, y + 0.08, 0, ph)
        if rng.random() < 0.5:  # canopy frame
            m.box(-w / 2, w / 2, -length / 2 - 0.06, length / 2 + 0.06, ph - 0.05, ph)
    if style == "bunk":  # a second bed above
        z1 = top + _u(rng, 0.7, 1.0)
        m.box(-w / 2, w / 2, -length / 2, length / 2, z1, z1 + 0.08)
        m.box(-w / 2 + 0.03, w / 2 - 0.03, -length / 2 + 0.03, length / 2 - 0.03, z1 + 0.08, z1 + 0.08 + mt)
        for x in (-w / 2, w / 2 - 0.06):
            for y in (-length / 2, length / 2 - 0.06):
                m.box(x, x + 0.06, y, y + 0.06, 0, z1 + 0.4)
    if rng.random() < 0.6:  # pillows
        n = 1 if w < 1.3 else 2
        for x in np.linspace(-w / 2, w / 2, n + 1)[:-1]:
            m.box(x + 0.08, x + w / n - 0.08, length / 2 - 0.55, length / 2 - 0.1, top, top + _u(rng, 0.08, 0.16))
    if rng.random() < 0.3:  # a blanket hanging over the sides
        m.box(-w / 2 - 0.02, w / 2 + 0.02, -length / 2 - 0.01, length / 2 - 0.6, top - 0.15, top + 0.02)


def _monitor(rng, m: _Mesh) -> None:
    style = _pick(rng, {"flat": 0.6, "crt": 0.12, "tv": 0.15, "wall": 0.06, "all_in_one": 0.07})
    w = _u(rng, 0.9, 1.5) if style == "tv" else _u(rng, 0.4, 0.8)
    h = w * (_u(rng, 0.7, 0.8) if style == "crt" else _u(rng, 0.42, 0.68))
    t = _u(rng, 0.015, 0.06)
    z0 = _u(rng, 0.05, 0.25)
    tilt = _u(rng, -0.05, 0.25)
    y_top = np.sin(tilt) * h
    m.beam((0, 0, z0), (0, y_top, z0 + h), w, t)
    if rng.random() < 0.4:  # bezel or a back housing
        m.beam((0, t * 0.8, z0 + h * 0.1), (0, t * 0.8 + y_top * 0.8, z0 + h * 0.9), w * _u(rng, 0.4, 0.8),
               _u(rng, 0.02, 0.08))
    if style == "crt":
        depth = w * _u(rng, 0.6, 1.0)
        m.beam((0, t / 2, z0 + h / 2), (0, t / 2 + depth, z0 + h / 2), w * 0.8, h * 0.8, top=_u(rng, 0.4, 0.7))
        m.box(-w * 0.3, w * 0.3, 0, depth * 0.7, 0, z0)
        return
    if style == "wall":  # a bracket instead of a stand
        m.box(-0.1, 0.1, t, t + _u(rng, 0.03, 0.12), z0 + h * 0.3, z0 + h * 0.7)
        m.box(-0.2, 0.2, t + 0.1, t + 0.12, z0 + h * 0.2, z0 + h * 0.8)
        return
    if style == "tv" and rng.random() < 0.5:  # two feet near the ends
        for x in (-w * 0.4, w * 0.4):
            m.beam((x, 0, z0), (x - 0.05, -0.12, 0.0), 0.03, 0.02)
            m.beam((x, 0, z0), (x + 0.02, 0.12, 0.0), 0.03, 0.02)
        return
    nw = _u(rng, 0.03, 0.12)
    m.beam((0, t / 2 + 0.02, 0.015), (0, t / 2 + 0.02 + _u(rng, -0.02, 0.06), z0 + h * 0.5), nw, 0.04)
    base = _pick(rng, {"rect": 0.45, "disc": 0.35, "v": 0.2})
    if base == "rect":
        bw = w * _u(rng, 0.15, 0.35)
        m.box(-bw, bw, -0.12, 0.15, 0, 0.02)
    elif base == "disc":
        m.cylinder(0, 0.02, 0, 0.02, _u(rng, 0.08, 0.16))
    else:
        for s in (-1, 1):
            m.beam((0, 0.02, 0.01), (s * _u(rng, 0.12, 0.25), -0.12, 0.01), 0.04, 0.02)
    if style == "all_in_one" or rng.random() < 0.12:  # speakers or a chin under the screen
        m.box(-w / 2, w / 2, -t / 2, t / 2, z0 - 0.06, z0)


def _bathtub(rng, m: _Mesh) -> None:
    style = _pick(rng, {"built_in": 0.45, "freestanding": 0.3, "corner": 0.1, "wide": 0.15})
    w, d, h = _u(rng, 1.4, 1.9), _u(rng, 0.7, 0.9), _u(rng, 0.4, 0.65)
    wall = _u(rng, 0.04, 0.14)
    k = 4 * max(2, m.segments // 3)
    if style == "freestanding":
        z0 = _u(rng, 0.08, 0.2) if rng.random() < 0.6 else 0.0
        if z0:  # claw feet
            _legs(rng, m, -w / 2 * 0.75, w / 2 * 0.75, -d / 2 * 0.7, d / 2 * 0.7, 0, z0, 0.06, style="tapered")
        outer = _ellipse(w / 2 * 0.9, d / 2 * 0.9, k)
        inner = _ellipse(w / 2 * 0.9 - wall, d / 2 * 0.9 - wall, k)
        m.shell(outer, inner, 0, 0, z0, z0 + h, wall, flare=_u(rng, 1.0, 1.15))
    else:
        if style == "corner":
            w = d = _u(rng, 1.2, 1.5)
        elif style == "wide":
            d = _u(rng, 0.9, 1.2)
        r = _u(rng, 0.05, 0.4) * min(w, d)
        outer = _rounded_rect(w / 2, d / 2, min(r, 0.05), k // 4 - 1)
        inner = _rounded_rect(w / 2 - wall, d / 2 - wall, r, k // 4 - 1)
        m.shell(outer, inner, 0, 0, 0, h, _u(rng, 0.05, 0.12))
        if style == "built_in" and rng.random() < 0.4:  # tiled walls on two or three sides
            wh = _u(rng, 0.3, 1.2)
            m.box(-w / 2, w / 2, d / 2, d / 2 + 0.05, 0, h + wh)
            if rng.random() < 0.5:
                m.box(-w / 2 - 0.05, -w / 2, -d / 2, d / 2 + 0.05, 0, h + wh)
            if rng.random() < 0.3:  # a glass screen
                m.box(w / 2 - 0.6, w / 2 - 0.58, -d / 2 + 0.05, d / 2, h, h + _u(rng, 0.7, 1.2))
    if rng.random() < 0.6:  # faucet
        x = w / 2 - wall - 0.05
        m.cylinder(x, 0, h, h + _u(rng, 0.08, 0.25), 0.02, segments=8)
        m.cylinder(0, h + 0.2, x - 0.15, x, 0.015, segments=8, axis="x")
    if rng.random() < 0.15:  # a step or deck around it
        m.box(-w / 2 - 0.2, w / 2 + 0.2, -d / 2 - 0.25, -d / 2, 0, _u(rng, 0.1, 0.2))


def _toilet(rng, m: _Mesh) -> None:
    r = _u(rng, 0.16, 0.22)
    sq = _u(rng, 1.15, 1.5)
    bh = _u(rng, 0.36, 0.44)
    wall_hung = rng.random() < 0.15
    zb = _u(rng, 0.12, 0.25) if wall_hung else 0.0
    k = max(12, m.segments)
    back = r * sq
    # the bowl: a tapering pedestal and a vessel whose inner wall narrows towards the trap
    if not wall_hung:
        foot = _u(rng, 0.45, 0.75)
        m.cylinder(0, back * 0.15, 0, bh * 0.55, r * foot, r * foot * sq, top=_u(rng, 1.0, 1.4), segments=k)
    m.shell(_ellipse(r, r * sq, k), _ellipse(r * 0.75, r * sq * 0.75, k), 0, 0, max(zb, bh * 0.45), bh,
            floor=_u(rng, 0.05, 0.1), flare=_u(rng, 1.0, 1.1))
    seat = _pick(rng, {"down": 0.45, "up": 0.3, "none": 0.25})
    if seat != "none":  # a ring seat, its lid closed or raised
        m.shell(_ellipse(r * 1.05, r * sq * 1.05, k), _ellipse(r * 0.7, r * sq * 0.7, k), 0, 0, bh, bh + 0.025,
                0.0)
        if seat == "down":
            m.cylinder(0, 0, bh + 0.025, bh + 0.05, r * 1.05, r * sq * 1.05, segments=k)
        else:
            m.beam((0, back - 0.02, bh + 0.025), (0, back + 0.05, bh + 0.025 + 2 * r * sq * 0.95), 2 * r, 0.025)
    tank = _pick(rng, {"box": 0.55, "rounded": 0.2, "wall": 0.15, "none": 0.1})
    if wall_hung or tank == "wall":
        m.box(-_u(rng, 0.2, 0.3), _u(rng, 0.2, 0.3), back, back + 0.1, 0, _u(rng, 0.8, 1.2))
    elif tank in ("box", "rounded"):
        tw, td, th = _u(rng, 0.35, 0.52), _u(rng, 0.14, 0.24), _u(rng, 0.28, 0.45)
        z = bh - _u(rng, 0.0, 0.08)
        if tank == "box":
            m.box(-tw / 2, tw / 2, back - 0.03, back - 0.03 + td, z, z + th)
            m.box(-tw / 2 - 0.01, tw / 2 + 0.01, back - 0.04, back - 0.02 + td, z + th, z + th + 0.03)
        else:
            m.cylinder(0, back - 0.03 + td / 2, z, z + th, tw / 2, td / 2, segments=k)
        if rng.random() < 0.5:  # the bowl's neck towards the tank
            m.box(-0.1, 0.1, 0, back, 0 if not wall_hung else zb, bh * 0.7)
    else:  # a flush valve pipe
        m.cylinder(0, back + 0.02, bh, bh + 0.4, 0.02, segments=8)


FAMILIES: dict[str, Callable[[np.random.Generator, _Mesh], None]] = {
    "bathtub": _bathtub, "bed": _bed, "chair": _chair, "desk": _desk, "dresser": _dresser,
    "monitor": _monitor, "night_stand": _night_stand, "sofa": _sofa, "table": _table, "toilet": _toilet,
}


def _deform(vertices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Small smooth deformations, each with some probability: a taper, a lean, a sag and a gentle
    wave, so that no two shapes share exact straight lines (parts made of many rings bend)."""
    lo, hi = vertices.min(0), vertices.max(0)
    size = float((hi - lo).max())
    u = (vertices - (lo + hi) / 2) / size  # about -0.5..0.5 along the longest side
    out = vertices.copy()
    if rng.random() < 0.3:  # taper: wider or narrower towards the top
        out[:, :2] *= 1 + _u(rng, -0.12, 0.12) * u[:, 2:3]
    if rng.random() < 0.2:  # lean
        out[:, :2] += rng.uniform(-0.04, 0.04, size=2) * size * u[:, 2:3]
    if rng.random() < 0.2:  # sag or bulge along the width
        out[:, 2] += _u(rng, -0.03, 0.03) * size * (1 - 4 * u[:, 0] ** 2)
    if rng.random() < 0.35:  # a gentle wave
        for _ in range(2):
            direction = rng.normal(size=3)
            k = _u(rng, 2, 6) * np.pi * direction / np.linalg.norm(direction)
            out += _u(rng, 0.003, 0.012) * size * rng.normal(size=3) * np.sin(u @ k + _u(rng, 0, 2 * np.pi))[:, None]
    return out


def make_shape(name: str, seed: int | np.random.Generator) -> tuple[np.ndarray, list[list[int]]]:
    """One random member of the family ``name``: vertices (V, 3) and polygon faces.

    The mesh style (edges, density) is drawn first, then the family's shape, then small smooth
    deformations, a slight anisotropic stretch and a random overall size (real models come in
    arbitrary units).
    """
    if name not in FAMILIES:
        raise ValueError(f"unknown class {name!r}; choose one of {', '.join(CLASSES)}")
    rng = np.random.default_rng(seed)
    mesh = _Mesh.random(rng)
    FAMILIES[name](rng, mesh)
    vertices, faces = mesh.arrays()
    vertices = _deform(vertices, rng)
    vertices = vertices * rng.uniform(0.9, 1.1, size=3) * rng.uniform(5, 50)
    return vertices, faces


def shape_seed(seed: int, name: str, split: str, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, CLASSES.index(name), ("train", "test").index(split), index])


def generate(out: str | os.PathLike, seed: int = 0, counts: dict[str, tuple[int, int]] | None = None,
             progress: bool | Mapping = False) -> Path:
    """Write the procedural data set into ``out`` (created if needed) and return it.

    ``counts`` maps class -> (train, test) meshes; by default the full counts (3991 / 908);
    ``FAST_COUNTS`` gives a few per class. A folder written with the same recipe is resumed (files
    missing or whose sha256 differs from the manifest are made again); one holding anything else is
    refused. ``progress`` shows a bar, or is a mapping of tqdm settings for it (such as a ``delay``).
    Returns ``out``.
    """
    counts = FULL_COUNTS if counts is None else counts
    if int(seed) < 0:
        raise ValueError(f"the seed must be a whole number >= 0, got {seed}")
    unknown = set(counts) - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown classes {sorted(unknown)}; the classes are {', '.join(CLASSES)}")
    out = Path(out)
    recipe = {"generator": GENERATOR, "version": VERSION, "seed": int(seed),
              "parameters": {"counts": {k: list(v) for k, v in sorted(counts.items())}}}
    manifest = prepare_folder(out, recipe)
    damaged = set(verify_folder(out, manifest))  # a resumed run makes missing or changed files again
    jobs = [(name, split, i) for name in sorted(counts)
            for split, n in zip(("train", "test"), counts[name], strict=True) for i in range(n)]
    settings = dict(progress) if isinstance(progress, Mapping) else {}
    bar = tqdm(total=len(jobs), desc="procedural ModelNet10", unit="mesh", **settings) if progress else None
    pending = 0
    for name, split, i in jobs:
        rel = f"{name}/{split}/{name}_{i + 1:04d}.off"
        if rel not in manifest["files"] or rel in damaged:
            vertices, faces = make_shape(name, shape_seed(seed, name, split, i))
            atomic_write_text(out / rel, format_off(vertices, faces))
            manifest["files"][rel] = sha256(out / rel)
            pending += 1
            if pending >= 250:  # save progress now and then, so an interrupted run resumes
                write_manifest(out, manifest)
                pending = 0
        if bar is not None:
            bar.update()
    write_manifest(out, manifest)
    if bar is not None:
        bar.close()
    return out
