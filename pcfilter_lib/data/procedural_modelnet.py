"""A procedural stand-in for ModelNet10: ten families of furniture built from boxes and cylinders.

Each class is a parametric family (proportions, leg count and shape, thickness, optional parts),
written as ``.off`` files in the real layout ``<root>/<class>/{train,test}/<class>_NNNN.off``, so
every loader and chapter runs unchanged on the real data set. The families overlap where the real
ones do: a desk with four legs looks like a table, a wide night stand like a small dresser, an
armchair sofa like a chair with arms. Every shape is drawn from its own generator seeded by
(seed, class, split, index), so the set is deterministic and an interrupted run resumes exactly.
Axes: x is width, y is depth, z is up (as in ModelNet).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pcfilter_lib.io.files import atomic_write_text, prepare_folder, sha256, verify_folder, write_manifest
from pcfilter_lib.io.off import format_off

GENERATOR = "pcfilter.procedural_modelnet"
VERSION = "2"
CLASSES = ("bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand", "sofa", "table", "toilet")
# (train, test) meshes per class: the real ModelNet10 totals, 3991 and 908, with a similar class balance.
FULL_COUNTS = {"bathtub": (106, 50), "bed": (515, 100), "chair": (889, 100), "desk": (200, 86),
               "dresser": (200, 86), "monitor": (465, 100), "night_stand": (200, 86), "sofa": (680, 100),
               "table": (392, 100), "toilet": (344, 100)}
FAST_COUNTS = {name: (12, 4) for name in CLASSES}
FOLDERS = {"full": "modelnet10_procedural", "fast": "modelnet10_procedural_fast"}  # default folder of each size


class _Mesh:
    """Accumulates parts (boxes, cylinders) into one vertex list and one face list."""

    def __init__(self):
        self.vertices: list[np.ndarray] = []
        self.faces: list[list[int]] = []
        self.count = 0

    def _add(self, vertices: np.ndarray, faces: list[list[int]]) -> None:
        self.vertices.append(np.asarray(vertices, dtype=np.float64))
        self.faces += [[self.count + i for i in face] for face in faces]
        self.count += len(vertices)

    def box(self, x0, x1, y0, y1, z0, z1) -> None:
        """An axis-aligned box between the given bounds, as six quads."""
        corners = np.array([[x, y, z] for z in (z0, z1) for y in (y0, y1) for x in (x0, x1)])
        quads = [[0, 2, 3, 1], [4, 5, 7, 6], [0, 1, 5, 4], [2, 6, 7, 3], [0, 4, 6, 2], [1, 3, 7, 5]]
        self._add(corners, quads)

    def cylinder(self, cx, cy, z0, z1, rx, ry=None, top=1.0, segments=16, axis="z") -> None:
        """An elliptic cylinder (or frustum, ``top`` = top radius / bottom radius) with polygon caps.

        ``axis`` x or y lays it on its side: (cx, cy) are then the other two coordinates and z0, z1
        the extent along the axis.
        """
        ry = rx if ry is None else ry
        angle = np.linspace(0, 2 * np.pi, segments, endpoint=False)
        ring = np.stack([np.cos(angle) * rx, np.sin(angle) * ry], axis=1)
        bottom = np.column_stack([ring + (cx, cy), np.full(segments, z0)])
        upper = np.column_stack([ring * top + (cx, cy), np.full(segments, z1)])
        vertices = np.vstack([bottom, upper])
        if axis == "x":
            vertices = vertices[:, [2, 0, 1]]
        elif axis == "y":
            vertices = vertices[:, [0, 2, 1]]
        n = segments
        faces = [[i, (i + 1) % n, n + (i + 1) % n, n + i] for i in range(n)]
        faces += [list(range(n - 1, -1, -1)), list(range(n, 2 * n))]
        self._add(vertices, faces)

    def legs(self, rng, x0, x1, y0, y1, z0, z1, thickness, round_legs=None, inset=0.0) -> None:
        """Four legs at the corners of a rectangle, square or round."""
        round_legs = rng.random() < 0.5 if round_legs is None else round_legs
        h = thickness / 2
        for x in (x0 + inset + h, x1 - inset - h):
            for y in (y0 + inset + h, y1 - inset - h):
                if round_legs:
                    self.cylinder(x, y, z0, z1, h, top=rng.uniform(0.7, 1.0), segments=int(rng.integers(6, 13)))
                else:
                    self.box(x - h, x + h, y - h, y + h, z0, z1)

    def drawers(self, rng, x0, x1, z0, z1, y_front, rows, cols, knobs=True) -> None:
        """A grid of drawer fronts standing slightly proud of the face y = y_front."""
        gap = 0.012
        depth = rng.uniform(0.008, 0.02)
        xs, zs = np.linspace(x0, x1, cols + 1), np.linspace(z0, z1, rows + 1)
        for r in range(rows):
            for c in range(cols):
                self.box(xs[c] + gap, xs[c + 1] - gap, y_front - depth, y_front, zs[r] + gap, zs[r + 1] - gap)
                if knobs:
                    xm, zm = (xs[c] + xs[c + 1]) / 2, (zs[r] + zs[r + 1]) / 2
                    self.cylinder(xm, zm, y_front - depth - 0.02, y_front - depth, 0.012, segments=6, axis="y")

    def arrays(self) -> tuple[np.ndarray, list[list[int]]]:
        return np.vstack(self.vertices), self.faces


def _u(rng, low, high):
    return float(rng.uniform(low, high))


def _table(rng, m: _Mesh) -> None:
    coffee = rng.random() < 0.25
    h = _u(rng, 0.35, 0.5) if coffee else _u(rng, 0.68, 0.8)
    t = _u(rng, 0.02, 0.07)
    if rng.random() < 0.25:  # round or oval top
        r = _u(rng, 0.4, 0.7)
        m.cylinder(0, 0, h - t, h, r, r * _u(rng, 0.7, 1.0), segments=int(rng.integers(12, 25)))
        w, d = r * 1.4, r * 1.2
    else:
        w, d = _u(rng, 0.8, 2.0), _u(rng, 0.6, 1.2)
        m.box(-w / 2, w / 2, -d / 2, d / 2, h - t, h)
    support = rng.choice(["legs", "pedestal", "trestle"], p=[0.65, 0.15, 0.2])
    if support == "legs":
        leg = _u(rng, 0.03, 0.09)
        m.legs(rng, -w / 2 * 0.85, w / 2 * 0.85, -d / 2 * 0.85, d / 2 * 0.85, 0, h - t, leg,
               inset=_u(rng, 0, 0.05))
        if rng.random() < 0.4:  # apron under the top
            a = _u(rng, 0.05, 0.12)
            m.box(-w / 2 * 0.82, w / 2 * 0.82, -d / 2 * 0.82, d / 2 * 0.82, h - t - a, h - t)
    elif support == "pedestal":
        m.cylinder(0, 0, 0.03, h - t, _u(rng, 0.04, 0.1), segments=12)
        m.cylinder(0, 0, 0, 0.03, _u(rng, 0.2, 0.35), segments=12)
    else:
        for x in (-w / 2 * 0.8, w / 2 * 0.8):
            m.box(x - 0.03, x + 0.03, -d / 2 * 0.7, d / 2 * 0.7, 0, h - t)
        m.box(-w / 2 * 0.8, w / 2 * 0.8, -0.03, 0.03, h * 0.2, h * 0.28)
    if rng.random() < 0.3:  # lower shelf
        m.box(-w / 2 * 0.8, w / 2 * 0.8, -d / 2 * 0.8, d / 2 * 0.8, h * 0.15, h * 0.15 + t)


def _desk(rng, m: _Mesh) -> None:
    w, d, h, t = _u(rng, 1.0, 1.8), _u(rng, 0.5, 0.8), _u(rng, 0.7, 0.78), _u(rng, 0.025, 0.05)
    m.box(-w / 2, w / 2, -d / 2, d / 2, h - t, h)
    style = rng.choice(["pedestal", "two_pedestals", "panels", "legs_drawer"], p=[0.35, 0.15, 0.2, 0.3])
    pw = w * _u(rng, 0.25, 0.4)
    sides = {"pedestal": [rng.choice([-1, 1])], "two_pedestals": [-1, 1]}.get(style, [])
    for side in sides:  # drawer pedestals
        x0, x1 = (w / 2 - pw, w / 2) if side > 0 else (-w / 2, -w / 2 + pw)
        m.box(x0, x1, -d / 2, d / 2, 0, h - t)
        m.drawers(rng, x0, x1, 0.05, h - t, -d / 2, int(rng.integers(2, 5)), 1, knobs=rng.random() < 0.6)
    if style == "pedestal":  # the other end stands on a panel or two legs
        x = -w / 2 if sides[0] > 0 else w / 2 - 0.04
        if rng.random() < 0.5:
            m.box(x, x + 0.04, -d / 2, d / 2, 0, h - t)
        else:
            xs = x + 0.02
            m.legs(rng, xs - 0.025, xs + 0.025, -d / 2, d / 2, 0, h - t, 0.05)
    if style == "panels":
        for x in (-w / 2, w / 2 - 0.04):
            m.box(x, x + 0.04, -d / 2, d / 2, 0, h - t)
    if style == "legs_drawer":  # looks like a table, with a drawer under the top
        m.legs(rng, -w / 2, w / 2, -d / 2, d / 2, 0, h - t, _u(rng, 0.03, 0.06))
        m.box(-w / 4, w / 4, -d / 2 + 0.02, d / 2 - 0.05, h - t - 0.1, h - t)
    if style != "legs_drawer" and rng.random() < 0.5:  # modesty panel at the back
        m.box(-w / 2, w / 2, d / 2 - 0.03, d / 2, h * _u(rng, 0.3, 0.6), h - t)
    if rng.random() < 0.25:  # hutch with a shelf
        hh = _u(rng, 0.3, 0.6)
        m.box(-w / 2, w / 2, d / 2 - 0.25, d / 2, h + hh - 0.03, h + hh)
        for x in (-w / 2, w / 2 - 0.03):
            m.box(x, x + 0.03, d / 2 - 0.25, d / 2, h, h + hh)
    if rng.random() < 0.2:  # keyboard tray
        m.box(-w / 5, w / 5, -d / 2, 0, h - t - 0.08, h - t - 0.06)


def _cabinet(rng, m: _Mesh, w, d, h, rows, cols) -> None:
    """A box on a plinth or legs with a grid of drawers in front (night stands and dressers)."""
    base = _u(rng, 0.0, 0.15) if rng.random() < 0.4 else 0.0
    if base > 0:
        m.legs(rng, -w / 2, w / 2, -d / 2, d / 2, 0, base, _u(rng, 0.03, 0.05))
    else:
        base = _u(rng, 0.02, 0.06)
        m.box(-w / 2 + 0.02, w / 2 - 0.02, -d / 2 + 0.02, d / 2, 0, base)
    m.box(-w / 2, w / 2, -d / 2, d / 2, base, h)
    if rng.random() < 0.4:  # top with an overhang
        o = _u(rng, 0.01, 0.04)
        m.box(-w / 2 - o, w / 2 + o, -d / 2 - o, d / 2 + o, h, h + _u(rng, 0.02, 0.04))
    m.drawers(rng, -w / 2 + 0.03, w / 2 - 0.03, base + 0.03, h - 0.03, -d / 2, rows, cols, knobs=rng.random() < 0.7)


def _night_stand(rng, m: _Mesh) -> None:
    w, d, h = _u(rng, 0.4, 0.68), _u(rng, 0.35, 0.5), _u(rng, 0.45, 0.75)
    _cabinet(rng, m, w, d, h, int(rng.integers(1, 4)), 1)
    if rng.random() < 0.2:  # a lamp on top
        m.cylinder(0, 0, h, h + 0.25, 0.03, segments=8)
        m.cylinder(0, 0, h + 0.2, h + 0.35, 0.1, top=0.6, segments=12)


def _dresser(rng, m: _Mesh) -> None:
    if rng.random() < 0.25:  # tall chest
        w, h = _u(rng, 0.65, 1.0), _u(rng, 1.0, 1.4)
    else:
        w, h = _u(rng, 0.9, 1.8), _u(rng, 0.7, 1.1)
    d = _u(rng, 0.4, 0.6)
    _cabinet(rng, m, w, d, h, int(rng.integers(3, 6)), int(rng.integers(1, 4)) if w > 0.9 else 1)
    if rng.random() < 0.2:  # mirror
        m.box(-w / 3, w / 3, d / 2 - 0.03, d / 2, h, h + _u(rng, 0.4, 0.8))


def _chair(rng, m: _Mesh) -> None:
    w, d = _u(rng, 0.4, 0.56), _u(rng, 0.4, 0.55)
    sh, st = _u(rng, 0.4, 0.5), _u(rng, 0.03, 0.09)
    m.box(-w / 2, w / 2, -d / 2, d / 2, sh - st, sh)
    if rng.random() < 0.2:  # swivel base
        m.cylinder(0, 0, 0.08, sh - st, 0.03, segments=8)
        for a in np.linspace(0, 2 * np.pi, 5, endpoint=False) + _u(rng, 0, 1):
            x, y = 0.25 * np.cos(a), 0.25 * np.sin(a)
            m.box(min(0, x) - 0.02, max(0, x) + 0.02, min(0, y) - 0.02, max(0, y) + 0.02, 0.04, 0.08)
    else:
        m.legs(rng, -w / 2, w / 2, -d / 2, d / 2, 0, sh - st, _u(rng, 0.025, 0.06))
        if rng.random() < 0.3:  # stretchers
            m.box(-w / 2, w / 2, -0.01, 0.01, sh * 0.3, sh * 0.35)
    bh, bt = _u(rng, 0.35, 0.6), _u(rng, 0.02, 0.07)
    y1 = d / 2
    style = rng.choice(["panel", "slats", "frame"])
    if style == "panel":
        m.box(-w / 2, w / 2, y1 - bt, y1, sh, sh + bh)
    else:
        for x in (-w / 2, w / 2 - 0.035):
            m.box(x, x + 0.035, y1 - bt, y1, sh, sh + bh)
        m.box(-w / 2, w / 2, y1 - bt, y1, sh + bh - 0.08, sh + bh)
        if style == "slats":
            for x in np.linspace(-w / 2, w / 2, int(rng.integers(3, 7)))[1:-1]:
                m.box(x - 0.012, x + 0.012, y1 - bt * 0.8, y1, sh, sh + bh - 0.08)
    arms = rng.choice(["none", "open", "solid"], p=[0.6, 0.25, 0.15])
    ah = _u(rng, 0.18, 0.28)
    for x in (-w / 2, w / 2 - 0.04) if arms != "none" else ():
        m.box(x, x + 0.04, -d / 2, d / 2, sh + ah - 0.03, sh + ah)
        if arms == "open":
            m.box(x, x + 0.04, -d / 2, -d / 2 + 0.04, sh, sh + ah)
        else:  # upholstered club chair: the arms are panels down to the floor, close to a small sofa
            m.box(x, x + 0.04, -d / 2, d / 2, 0, sh + ah)


def _sofa(rng, m: _Mesh) -> None:
    armchair = rng.random() < 0.25
    w = _u(rng, 0.8, 1.1) if armchair else _u(rng, 1.4, 2.5)
    d, sh = _u(rng, 0.75, 1.0), _u(rng, 0.38, 0.48)
    feet = _u(rng, 0.05, 0.15) if rng.random() < 0.5 else 0.0
    if feet:
        m.legs(rng, -w / 2, w / 2, -d / 2, d / 2, 0, feet, 0.05)
    m.box(-w / 2, w / 2, -d / 2, d / 2, feet, sh - 0.12)
    seats = 1 if armchair else int(rng.integers(1, 4))
    arm = _u(rng, 0.1, 0.25) if rng.random() < 0.85 else 0.0
    xs = np.linspace(-w / 2 + arm, w / 2 - arm, seats + 1)
    bt = _u(rng, 0.15, 0.28)
    for a, b in zip(xs[:-1], xs[1:], strict=True):  # seat cushions
        m.box(a + 0.01, b - 0.01, -d / 2, d / 2 - bt, sh - 0.12, sh)
    bh = _u(rng, 0.75, 0.95)
    m.box(-w / 2, w / 2, d / 2 - bt, d / 2, feet, bh)
    if arm:
        ah = _u(rng, 0.55, 0.7)
        for x0 in (-w / 2, w / 2 - arm):
            m.box(x0, x0 + arm, -d / 2, d / 2 - bt, feet, ah)
            if rng.random() < 0.3:  # rolled arm
                m.cylinder(-d / 2, ah, x0, x0 + arm, arm * 0.6, segments=10, axis="x")
    if not armchair and rng.random() < 0.15:  # chaise longue
        m.box(w / 2 - 0.7, w / 2 - arm, -d / 2 - 0.6, -d / 2, feet, sh)


def _bed(rng, m: _Mesh) -> None:
    w, length = _u(rng, 0.9, 2.0), _u(rng, 1.9, 2.2)
    z0, mt = _u(rng, 0.2, 0.45), _u(rng, 0.15, 0.3)
    if rng.random() < 0.5:
        m.legs(rng, -w / 2, w / 2, -length / 2, length / 2, 0, z0, 0.07)
        m.box(-w / 2, w / 2, -length / 2, length / 2, z0 - 0.08, z0)
    else:
        m.box(-w / 2, w / 2, -length / 2, length / 2, 0, z0)
    m.box(-w / 2 + 0.03, w / 2 - 0.03, -length / 2 + 0.03, length / 2 - 0.03, z0, z0 + mt)
    hb = _u(rng, 0.4, 1.0)
    m.box(-w / 2 - 0.03, w / 2 + 0.03, length / 2, length / 2 + 0.06, 0, z0 + mt + hb)
    if rng.random() < 0.5:  # footboard
        m.box(-w / 2 - 0.03, w / 2 + 0.03, -length / 2 - 0.06, -length / 2, 0, z0 + mt + _u(rng, 0.0, 0.4))
    if rng.random() < 0.6:  # pillows
        n = 1 if w < 1.3 else 2
        for x in np.linspace(-w / 2, w / 2, n + 1)[:-1]:
            m.box(x + 0.08, x + w / n - 0.08, length / 2 - 0.5, length / 2 - 0.1, z0 + mt, z0 + mt + 0.12)


def _monitor(rng, m: _Mesh) -> None:
    w = _u(rng, 0.4, 0.8)
    h = w * _u(rng, 0.5, 0.8)
    t = _u(rng, 0.02, 0.06)
    z0 = _u(rng, 0.08, 0.2)
    m.box(-w / 2, w / 2, -t / 2, t / 2, z0, z0 + h)
    if rng.random() < 0.2:  # CRT body
        m.box(-w * 0.4, w * 0.4, t / 2, t / 2 + w * _u(rng, 0.5, 0.9), z0 + h * 0.1, z0 + h * 0.9)
    nw = _u(rng, 0.03, 0.1)
    m.box(-nw / 2, nw / 2, t / 2, t / 2 + 0.04, 0.02, z0 + h * 0.5)
    if rng.random() < 0.5:
        m.box(-w * _u(rng, 0.15, 0.3), w * _u(rng, 0.15, 0.3), -0.12, 0.15, 0, 0.02)
    else:
        m.cylinder(0, 0.02, 0, 0.02, _u(rng, 0.08, 0.16), segments=16)
    if rng.random() < 0.2:  # speaker bars
        for x in (-w / 2 - 0.05, w / 2):
            m.box(x, x + 0.05, -t / 2, t / 2, z0, z0 + h)


def _bathtub(rng, m: _Mesh) -> None:
    w, d, h = _u(rng, 1.4, 1.9), _u(rng, 0.7, 0.9), _u(rng, 0.45, 0.65)
    wall = _u(rng, 0.05, 0.12)
    z0 = _u(rng, 0.1, 0.2) if rng.random() < 0.3 else 0.0
    if z0:  # claw feet
        m.legs(rng, -w / 2 * 0.8, w / 2 * 0.8, -d / 2 * 0.8, d / 2 * 0.8, 0, z0, 0.06, round_legs=True)
    m.box(-w / 2, w / 2, -d / 2, d / 2, z0, z0 + wall)
    m.box(-w / 2, -w / 2 + wall, -d / 2, d / 2, z0, z0 + h)
    m.box(w / 2 - wall, w / 2, -d / 2, d / 2, z0, z0 + h)
    m.box(-w / 2, w / 2, -d / 2, -d / 2 + wall, z0, z0 + h)
    m.box(-w / 2, w / 2, d / 2 - wall, d / 2, z0, z0 + h)
    if rng.random() < 0.5:  # faucet
        m.cylinder(w / 2 - wall / 2, 0, z0 + h, z0 + h + 0.2, 0.02, segments=8)
        m.cylinder(0, z0 + h + 0.18, w / 2 - 0.2, w / 2, 0.02, segments=8, axis="x")
    if rng.random() < 0.4:  # apron panel down to the floor
        m.box(-w / 2, w / 2, -d / 2 - 0.02, -d / 2, 0, z0 + h)


def _toilet(rng, m: _Mesh) -> None:
    r = _u(rng, 0.17, 0.22)
    sq = _u(rng, 1.2, 1.45)
    bh = _u(rng, 0.36, 0.42)
    wall_hung = rng.random() < 0.15
    zb = 0.15 if wall_hung else 0.0
    m.cylinder(0, 0, zb, bh, r * 0.65, r * 0.65 * sq, top=1 / 0.65, segments=int(rng.integers(12, 21)))
    m.cylinder(0, 0, bh, bh + 0.03, r * 1.02, r * 1.02 * sq, segments=16)
    back = r * sq
    if wall_hung:
        m.box(-0.25, 0.25, back, back + 0.08, 0, 1.0)
    else:
        tw, td, th = _u(rng, 0.35, 0.5), _u(rng, 0.15, 0.22), _u(rng, 0.3, 0.45)
        m.box(-tw / 2, tw / 2, back - 0.02, back - 0.02 + td, bh - 0.05, bh - 0.05 + th)
        m.box(-0.1, 0.1, 0, back, 0, bh * 0.7)
    if rng.random() < 0.3:  # lid up
        m.box(-r, r, back - 0.05, back - 0.02, bh + 0.03, bh + 0.03 + 2 * r * sq * 0.9)


FAMILIES: dict[str, Callable[[np.random.Generator, _Mesh], None]] = {
    "bathtub": _bathtub, "bed": _bed, "chair": _chair, "desk": _desk, "dresser": _dresser,
    "monitor": _monitor, "night_stand": _night_stand, "sofa": _sofa, "table": _table, "toilet": _toilet,
}


def make_shape(name: str, seed: int | np.random.Generator) -> tuple[np.ndarray, list[list[int]]]:
    """One random member of the family ``name``: vertices (V, 3) and polygon faces.

    A random overall size and a slight anisotropic stretch follow the family's own proportions,
    as real models come in arbitrary units.
    """
    if name not in FAMILIES:
        raise ValueError(f"unknown class {name!r}; choose one of {', '.join(CLASSES)}")
    rng = np.random.default_rng(seed)
    mesh = _Mesh()
    FAMILIES[name](rng, mesh)
    vertices, faces = mesh.arrays()
    vertices = vertices * rng.uniform(0.92, 1.08, size=3) * rng.uniform(5, 50)
    return vertices, faces


def shape_seed(seed: int, name: str, split: str, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, CLASSES.index(name), ("train", "test").index(split), index])


def generate(out: str | os.PathLike, seed: int = 0, counts: dict[str, tuple[int, int]] | None = None,
             progress: bool = False) -> Path:
    """Write the procedural data set into ``out`` (created if needed) and return it.

    ``counts`` maps class -> (train, test) meshes; by default the full counts (3991 / 908);
    ``FAST_COUNTS`` gives a few per class. A folder written with the same recipe is resumed; one holding
    anything else is refused. Returns ``out``.
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
    bar = tqdm(total=len(jobs), desc="procedural ModelNet10", unit="mesh") if progress else None
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
