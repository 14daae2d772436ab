"""Scenes to scan: an open bin on a table holding parts from a procedural library, each dropped until
it rests on the floor or on the parts below, each with a material.

World frame: z up, the top of the bin floor at z = 0, lengths in metres. A scene is described by a
plain dictionary (``Scene.description``, stored in every scan's meta) from which ``scene_from_description``
rebuilds exactly the same triangles.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import open3d as o3d

from pcfilter_lib.geometry.raycasting import raycasting_scene
from pcfilter_lib.geometry.sampling import sample_surface
from pcfilter_lib.io.clouds import read_ply_file
from pcfilter_lib.io.off import OffError, read_off
from pcfilter_lib.labels import SEMANTIC_BACKGROUND, SEMANTIC_CODES, SEMANTIC_SUPPORT, SEMANTIC_TABLE

# Surface ids: 0 is the table, 1 the bin, 2.. the parts (as the geometry ids of the ray-casting scene);
# NO_SURFACE marks a pixel whose ray meets none (surface ids are stored as uint8).
TABLE, BIN, NO_SURFACE = 0, 1, 255
BIN_INNER = (0.50, 0.36)  # inner length and width of the bin (m)
BIN_HEIGHT = 0.20  # wall height above the floor (m)
BIN_WALL = 0.015  # wall and floor thickness (m)
TABLE_SIZE = (1.6, 1.2)
PART_TYPES = ("cylinder", "tube", "box", "bracket", "gear", "nut", "sphere", "torus")
# Parts of the other scene families (``simulate.families``): heat sinks, pin headers, connectors, fruit.
FAMILY_PART_TYPES = ("fins", "pins", "connector", "blob")
CONTACT_GAP = 2e-4  # gap left between a dropped part and its support (m)


@dataclass(frozen=True)
class Material:
    """Reflectance of a surface: diffuse ``albedo`` (0-1), ``specular`` share (0-1), the
    ``roughness`` of the specular lobe (its angular width, radians) and the ``subsurface`` share of
    the diffuse light that leaves the surface after scattering inside it (0-1; fruit, wax, skin), which
    carries no stripe pattern."""

    name: str
    albedo: float
    specular: float
    roughness: float
    subsurface: float = 0.0


# name: (probability, albedo range, specular range, roughness range). Shiny metals have a narrow,
# strong specular lobe; most bins are plastic.
PART_MATERIALS = {
    "matte plastic": (0.25, (0.35, 0.8), (0.02, 0.08), (0.3, 0.5)),
    "dark rubber": (0.1, (0.04, 0.12), (0.03, 0.08), (0.3, 0.5)),
    "cast iron": (0.15, (0.15, 0.3), (0.15, 0.3), (0.2, 0.35)),
    "brushed steel": (0.2, (0.25, 0.4), (0.45, 0.65), (0.08, 0.15)),
    "polished steel": (0.15, (0.15, 0.3), (0.75, 0.95), (0.02, 0.06)),
    "aluminium": (0.15, (0.4, 0.6), (0.55, 0.75), (0.03, 0.07)),
}
BIN_MATERIALS = {
    "grey plastic": (0.45, (0.35, 0.55), (0.05, 0.12), (0.25, 0.4)),
    "blue plastic": (0.35, (0.2, 0.35), (0.05, 0.12), (0.25, 0.4)),
    "galvanised steel": (0.2, (0.3, 0.45), (0.45, 0.65), (0.08, 0.16)),
}
TABLE_MATERIAL = Material("table", 0.3, 0.03, 0.5)


def draw_material(rng: np.random.Generator, palette: dict) -> Material:
    names = list(palette)
    name = names[rng.choice(len(names), p=[palette[n][0] for n in names])]
    _, (a0, a1), (s0, s1), (r0, r1) = palette[name]
    return Material(name, float(rng.uniform(a0, a1)), float(rng.uniform(s0, s1)), float(rng.uniform(r0, r1)))


# ---------------------------------------------------------------------------------------------
# Procedural parts: (vertices (N, 3) float64, triangles (M, 3) int32), centred near the origin.

def extrude(profile: np.ndarray, caps: np.ndarray, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Prism over a counter-clockwise polygon ``profile`` (K, 2) whose top and bottom are the
    triangles ``caps`` (T, 3) (indices into the profile); z from -height/2 to +height/2."""
    k = len(profile)
    bottom = np.c_[profile, np.full(k, -height / 2)]
    top = np.c_[profile, np.full(k, height / 2)]
    i = np.arange(k)
    j = (i + 1) % k
    sides = np.r_[np.c_[i, j, k + j], np.c_[i, k + j, k + i]]
    faces = np.r_[sides, caps + k, caps[:, ::-1]]
    return np.r_[bottom, top], faces.astype(np.int32)


def annulus_prism(outer: np.ndarray, inner: np.ndarray | None, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Prism whose cross-section lies between the radii ``outer`` (K,) and ``inner`` (K,), sampled at
    K equal angles (a cylinder, tube, gear, nut...); ``inner=None`` gives a solid prism."""
    k = len(outer)
    theta = np.linspace(0, 2 * np.pi, k, endpoint=False)
    ring = np.c_[np.cos(theta), np.sin(theta)]
    i = np.arange(k)
    j = (i + 1) % k
    if inner is None:  # a ring around a centre point (index k) on each cap
        profile = np.r_[outer[:, None] * ring, [[0.0, 0.0]]]
        n = k + 1
        caps = np.c_[i, j, np.full(k, k)]
        sides = np.r_[np.c_[i, j, n + j], np.c_[i, n + j, n + i]]
        faces = np.r_[sides, caps + n, caps[:, ::-1]]
        return np.r_[np.c_[profile, np.full(n, -height / 2)], np.c_[profile, np.full(n, height / 2)]], \
            faces.astype(np.int32)
    profile = np.r_[outer[:, None] * ring, inner[:, None] * ring]
    caps = np.r_[np.c_[i, j, k + j], np.c_[i, k + j, k + i]]
    bottom = np.c_[profile, np.full(2 * k, -height / 2)]
    top = np.c_[profile, np.full(2 * k, height / 2)]
    n = 2 * k
    outer_side = np.r_[np.c_[i, j, n + j], np.c_[i, n + j, n + i]]
    inner_side = np.r_[np.c_[k + j, k + i, n + k + i], np.c_[k + j, n + k + i, n + k + j]]
    faces = np.r_[outer_side, inner_side, caps + n, caps[:, ::-1]]
    return np.r_[bottom, top], faces.astype(np.int32)


def _from_legacy(mesh: o3d.geometry.TriangleMesh) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.triangles, dtype=np.int32)


def part_mesh(kind: str, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """The triangles of one part of the library, in its own frame.

    Args:
        kind: one of ``PART_TYPES`` (cylinder, tube, box, bracket, gear, nut, sphere, torus), or
            "mesh" for a user's mesh file.
        params: the part's parameters, as the scene description records them (lengths in metres).

    Returns:
        ``(vertices, triangles)``: (V, 3) float64 metres, centred on the part's bounding box, and
        (T, 3) int32.

    Raises:
        ValueError: the part type is unknown.
    """
    p = params
    if kind == "cylinder":
        v, f = annulus_prism(np.full(48, p["radius"]), None, p["height"])
    elif kind == "tube":
        v, f = annulus_prism(np.full(48, p["radius"]), np.full(48, p["inner"]), p["height"])
    elif kind == "box":
        v, f = _from_legacy(o3d.geometry.TriangleMesh.create_box(*p["size"]))
    elif kind == "bracket":  # an L profile extruded along its width
        a, b, t = p["leg_a"], p["leg_b"], p["thickness"]
        profile = np.array([[0, 0], [a, 0], [a, t], [t, t], [t, b], [0, b], [0, t]])
        caps = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 6], [6, 3, 4], [6, 4, 5]])
        v, f = extrude(profile, caps, p["width"])
    elif kind == "gear":
        teeth, r = p["teeth"], p["radius"]
        samples = 8 * teeth
        phase = (np.arange(samples) % 8) / 8  # position within one tooth pitch
        tip = (phase >= 0.25) & (phase < 0.625)
        outer = np.where(tip, r, r * (1 - p["tooth_depth"]))
        v, f = annulus_prism(outer, np.full(samples, p["bore"]), p["thickness"])
    elif kind == "nut":
        theta = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        sector = (theta + np.pi / 6) % (np.pi / 3) - np.pi / 6
        v, f = annulus_prism(p["radius"] * np.cos(np.pi / 6) / np.cos(sector), np.full(48, p["bore"]), p["thickness"])
    elif kind == "sphere":
        v, f = _from_legacy(o3d.geometry.TriangleMesh.create_sphere(p["radius"], resolution=20))
    elif kind == "torus":
        v, f = _from_legacy(o3d.geometry.TriangleMesh.create_torus(p["radius"], p["tube"], 40, 16))
    elif kind in FAMILY_PART_TYPES:
        v, f = _family_part(kind, p)
    elif kind == "mesh":
        v, f = read_part_file(p["path"], p.get("sha256"))
        v = v * p["scale"]
    else:
        raise ValueError(f"unknown part type {kind!r}; choose one of {PART_TYPES + FAMILY_PART_TYPES + ('mesh',)}")
    v = v - (v.min(0) + v.max(0)) / 2
    return v, f


def _comb(base: tuple[float, float, float], count: int, tooth: tuple[float, float, float], pitch: float):
    """A base plate (x, y, z sizes) with ``count`` teeth (x, y, z sizes) standing on it in a row along
    x, ``pitch`` apart and centred: a heat sink's fins or a row of pins."""
    lx, ly, lz = base
    tx, ty, tz = tooth
    meshes = [_box((-lx / 2, -ly / 2, 0.0), (lx / 2, ly / 2, lz))] if lz > 0 else []
    for i in range(count):
        x = (i - (count - 1) / 2) * pitch
        meshes.append(_box((x - tx / 2, -ty / 2, lz), (x + tx / 2, ty / 2, lz + tz)))
    return _merge(meshes)


def _family_part(kind: str, p: dict) -> tuple[np.ndarray, np.ndarray]:
    """Triangles of the parts of boards and fruit scenes (``FAMILY_PART_TYPES``)."""
    if kind == "fins":  # parallel plates on a base: the near-mirror gaps of a heat sink
        pitch = p["fin_thickness"] + p["gap"]
        return _comb((p["count"] * pitch, p["length"], p["base"]), p["count"],
                     (p["fin_thickness"], p["length"], p["height"]), pitch)
    if kind == "pins":  # a header: rows of thin square pins on a plastic strip
        rows = [_comb((p["count"] * p["pitch"], p["pitch"], p["base"] if r == 0 else 0.0), p["count"],
                      (p["size"], p["size"], p["height"] + (p["base"] if r else 0.0)), p["pitch"])
                for r in range(p["rows"])]
        rows = [(v + [0.0, (r - (p["rows"] - 1) / 2) * p["pitch"], 0.0], f) for r, (v, f) in enumerate(rows)]
        return _merge(rows)
    if kind == "connector":  # an open shell: floor and four walls
        lx, ly, h, w = p["length"], p["width"], p["height"], p["wall"]
        return _merge([_box((-lx / 2, -ly / 2, 0), (lx / 2, ly / 2, w)),
                       _box((-lx / 2, -ly / 2, w), (-lx / 2 + w, ly / 2, h)),
                       _box((lx / 2 - w, -ly / 2, w), (lx / 2, ly / 2, h)),
                       _box((-lx / 2 + w, -ly / 2, w), (lx / 2 - w, -ly / 2 + w, h)),
                       _box((-lx / 2 + w, ly / 2 - w, w), (lx / 2 - w, ly / 2, h))])
    # blob: a sphere with smooth bumps (fruit); each bump (direction, amplitude) scales the radius
    v, f = _from_legacy(o3d.geometry.TriangleMesh.create_sphere(1.0, resolution=24))
    scale = np.ones(len(v))
    for *direction, amplitude in p["bumps"]:
        scale += amplitude * np.exp(4.0 * (v @ np.asarray(direction) - 1.0))
    v = v * (p["radius"] * scale)[:, None] * [1.0, 1.0, p["squash"]]
    return v, f


def _draw_part_params(kind: str, rng: np.random.Generator) -> dict:
    u = rng.uniform
    if kind == "cylinder":
        return {"radius": u(0.012, 0.035), "height": u(0.03, 0.12)}
    if kind == "tube":
        r = u(0.018, 0.045)
        return {"radius": r, "inner": r * u(0.55, 0.8), "height": u(0.03, 0.12)}
    if kind == "box":
        return {"size": [u(0.02, 0.10), u(0.02, 0.08), u(0.015, 0.06)]}
    if kind == "bracket":
        return {"leg_a": u(0.03, 0.08), "leg_b": u(0.03, 0.07), "thickness": u(0.004, 0.01), "width": u(0.02, 0.06)}
    if kind == "gear":
        r = u(0.02, 0.05)
        return {"teeth": int(rng.integers(10, 25)), "radius": r, "tooth_depth": 0.15, "bore": r * u(0.2, 0.4),
                "thickness": u(0.008, 0.025)}
    if kind == "nut":
        r = u(0.012, 0.03)
        return {"radius": r, "bore": 0.5 * r, "thickness": 0.8 * r}
    if kind == "sphere":
        return {"radius": u(0.015, 0.035)}
    if kind == "torus":
        return {"radius": u(0.02, 0.04), "tube": u(0.005, 0.012)}
    raise ValueError(f"unknown part type {kind!r}")


def read_part_file(path: str | Path, sha256: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a user's part mesh (anything Open3D reads: ply, obj, stl, off...).

    Args:
        path: the mesh file.
        sha256: the file's checksum when the scene was made; None skips the check.

    Returns:
        ``(vertices, triangles)``: (V, 3) float64 in the file's units and (T, 3) int32.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: it holds no usable triangle mesh, or it changed since the scene was made.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mesh file {path} does not exist")
    if sha256 is not None and hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        raise ValueError(f"mesh file {path} changed since the scene was made (sha256 differs)")
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh = o3d.io.read_triangle_mesh(str(path))
    v, f = _from_legacy(mesh)
    if len(v) == 0 or len(f) == 0:
        raise ValueError(_not_finite_vertex(path) or f"cannot read a triangle mesh from {path}: give a ply, obj, "
                         "stl or off file with faces")
    if not np.isfinite(v).all():
        i = int(np.flatnonzero(~np.isfinite(v).all(axis=1))[0])
        raise ValueError(_not_finite_vertex(path) or f"mesh file {path}: vertex {i} {tuple(v[i].tolist())} is not "
                         "finite; mend it or export the mesh again")
    if f.min() < 0 or f.max() >= len(v):
        raise ValueError(f"mesh file {path} has faces that index missing vertices")
    extent = np.ptp(v, axis=0).max()
    if extent <= 0:
        raise ValueError(f"mesh file {path} is degenerate (all vertices coincide)")
    return v, f


def _not_finite_vertex(path: Path) -> str | None:
    """Which vertex of a ``.ply``, ``.obj`` or ``.off`` mesh has a coordinate that is not finite (NaN or
    infinite), and on which line of a text file, as a message; None where none has (or the file cannot
    be read so far). Open3D reads such a mesh as one without faces, which would say the wrong thing."""
    suffix, advice = path.suffix.lower(), "mend it or export the mesh again"
    try:
        if suffix == ".off":
            read_off(path)  # its message names the vertex and the line
        elif suffix == ".ply":
            fields, header = read_ply_file(path)
            v = np.stack([fields[a] for a in "xyz"], -1).astype(np.float64)
            bad = np.flatnonzero(~np.isfinite(v).all(axis=1))
            if len(bad):
                i = int(bad[0])
                lines_before = path.read_bytes()[:header.start].count(b"\n")  # the header's lines
                line = f", line {lines_before + 1 + i}" if header.format == "ascii" else ""
                return f"mesh file {path}{line}: vertex {i} {tuple(v[i].tolist())} is not finite; {advice}"
        elif suffix == ".obj":
            with open(path, "rb") as file:
                i = 0
                for number, text in enumerate(file, start=1):
                    words = text.split()
                    if words[:1] != [b"v"]:
                        continue
                    try:
                        values = [float(w) for w in words[1:4]]
                    except ValueError:
                        return None
                    if not np.isfinite(values).all():
                        return (f"mesh file {path}, line {number}: vertex {i} {tuple(values)} is not finite; "
                                f"{advice}")
                    i += 1
    except OffError as error:
        return str(error)
    except (ValueError, OSError, KeyError):  # not read so far: Open3D's own message stands
        return None
    return None


def _box(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    v, f = _from_legacy(o3d.geometry.TriangleMesh.create_box(*(np.subtract(hi, lo))))
    return v + lo, f


def _merge(meshes) -> tuple[np.ndarray, np.ndarray]:
    vertices, faces, offset = [], [], 0
    for v, f in meshes:
        vertices.append(v)
        faces.append(f + offset)
        offset += len(v)
    return np.concatenate(vertices), np.concatenate(faces).astype(np.int32)


def bin_mesh() -> tuple[np.ndarray, np.ndarray]:
    """The open bin: a floor (top at z = 0) and four walls, all ``BIN_WALL`` thick.

    Returns:
        ``(vertices, triangles)`` in metres, world frame.
    """
    lx, ly = BIN_INNER[0] / 2, BIN_INNER[1] / 2
    w, h = BIN_WALL, BIN_HEIGHT
    return _merge([
        _box((-lx - w, -ly - w, -w), (lx + w, ly + w, 0.0)),
        _box((-lx - w, -ly - w, 0.0), (-lx, ly + w, h)),
        _box((lx, -ly - w, 0.0), (lx + w, ly + w, h)),
        _box((-lx, -ly - w, 0.0), (lx, -ly, h)),
        _box((-lx, ly, 0.0), (lx, ly + w, h)),
    ])


def table_mesh() -> tuple[np.ndarray, np.ndarray]:
    """A table top under the bin: two triangles at the height of the bin's underside.

    Returns:
        ``(vertices, triangles)`` in metres, world frame.
    """
    x, y, z = TABLE_SIZE[0] / 2, TABLE_SIZE[1] / 2, -BIN_WALL - 1e-4
    v = np.array([[-x, -y, z], [x, -y, z], [x, y, z], [-x, y, z]])
    return v, np.array([[0, 1, 2], [0, 2, 3]], np.int32)


# ---------------------------------------------------------------------------------------------
# Placement: random resting poses by dropping parts into the bin.

def axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _resting_rotation(rng: np.random.Generator) -> np.ndarray:
    """One of the six 'face down' orientations, a random turn about z and a small random tilt."""
    faces = [np.eye(3), axis_rotation(np.array([1.0, 0, 0]), np.pi / 2), axis_rotation(np.array([1.0, 0, 0]), np.pi),
             axis_rotation(np.array([1.0, 0, 0]), -np.pi / 2), axis_rotation(np.array([0, 1.0, 0]), np.pi / 2),
             axis_rotation(np.array([0, 1.0, 0]), -np.pi / 2)]
    down = faces[rng.integers(6)]
    yaw = axis_rotation(np.array([0, 0, 1.0]), rng.uniform(0, 2 * np.pi))
    tilt_axis = np.r_[rng.normal(size=2), 0.0]
    tilt = axis_rotation(tilt_axis, rng.normal(0, np.radians(6)))
    return tilt @ yaw @ down


def contact_points(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Points that may touch another part: ``n`` drawn uniformly by area over the triangles, then
    every vertex (corners and edges touch first): (n + V, 3) float64, metres."""
    return np.r_[sample_surface(vertices, faces, n, rng, dtype=np.float64), vertices]


def _cast_vertical(scene: o3d.t.geometry.RaycastingScene, points: np.ndarray, up: bool) -> np.ndarray:
    rays = np.zeros((len(points), 6), np.float32)
    rays[:, :3] = points
    rays[:, 5] = 1.0 if up else -1.0
    return scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()


def drop(vertices: np.ndarray, faces: np.ndarray, support: list[tuple[np.ndarray, np.ndarray]],
         support_points: np.ndarray, rng: np.random.Generator, samples: int = 800) -> float:
    """How far the part (already placed above everything) can fall straight down before it touches
    ``support`` (the meshes placed so far): rays down from points on the part against the support,
    and rays up from the support's points (``support_points``) against the part; the smaller hit wins."""
    points = contact_points(vertices, faces, samples, rng)
    down = _cast_vertical(raycasting_scene(support), points, up=False)
    lo, hi = vertices.min(0), vertices.max(0)
    below = support_points[(support_points[:, 0] >= lo[0]) & (support_points[:, 0] <= hi[0])
                           & (support_points[:, 1] >= lo[1]) & (support_points[:, 1] <= hi[1])]
    up = _cast_vertical(raycasting_scene([(vertices, faces)]), below, up=True) if len(below) else np.array([np.inf])
    fall = float(min(down.min(), up.min()))
    if not np.isfinite(fall):
        raise RuntimeError("a dropped part found nothing below it; the bin floor is missing")
    return fall


# ---------------------------------------------------------------------------------------------


@dataclass
class Scene:
    """A scene to scan: triangle meshes in the world frame (metres), one material each.

    Attributes:
        meshes: ``(vertices, triangles)`` per surface; the index is the surface id: 0 the table,
            1 the bin, 2 and up the parts.
        materials: the ``Material`` of each surface.
        description: what rebuilds the scene exactly (``scene_from_description``), as JSON-ready
            values.
    """

    meshes: list[tuple[np.ndarray, np.ndarray]]
    materials: list[Material]
    description: dict
    _raycasting: o3d.t.geometry.RaycastingScene | None = field(default=None, repr=False)

    @property
    def n_parts(self) -> int:
        """The number of parts in the bin."""
        return len(self.meshes) - 2

    def raycasting(self) -> o3d.t.geometry.RaycastingScene:
        """The Open3D ray-casting scene; geometry id = surface id."""
        if self._raycasting is None:
            self._raycasting = raycasting_scene(self.meshes)
        return self._raycasting

    def merged(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All surfaces as one mesh, as a scan file stores the scene.

        Returns:
            ``(vertices, triangles, surface)``: (N, 3) float32 metres, (M, 3) int32 and the surface
            id of each triangle, (M,) uint8.
        """
        v, f = _merge(self.meshes)
        surface = np.concatenate([np.full(len(fi), i, np.uint8) for i, (_, fi) in enumerate(self.meshes)])
        return v.astype(np.float32), f, surface

    def surface_classes(self) -> np.ndarray:
        """The semantic class of each surface id (``surface_classes``): (S,) uint8."""
        return surface_classes(self.description)

    def moved(self, transform: np.ndarray) -> Scene:
        """The same scene with every surface moved by a rigid ``transform`` (4, 4) (new = transform @ old).

        The description is kept as it is: it rebuilds the scene where it was, not where it was moved to.
        """
        transform = np.asarray(transform, np.float64)
        if transform.shape != (4, 4) or not np.isfinite(transform).all():
            raise ValueError(f"a rigid transform is a finite (4, 4) matrix, got shape {transform.shape}")
        meshes = [(v @ transform[:3, :3].T + transform[:3, 3], f) for v, f in self.meshes]
        return Scene(meshes, list(self.materials), self.description)

    def material_table(self) -> np.ndarray:
        """The materials as an array, for vectorised shading.

        Returns:
            (S, 4) float32: albedo, specular share, roughness and subsurface share of each surface id.
        """
        return np.array([[m.albedo, m.specular, m.roughness, m.subsurface] for m in self.materials], np.float32)


def place_part(entry: dict) -> tuple[np.ndarray, np.ndarray]:
    v, f = part_mesh(entry["type"], entry["params"])
    return v @ np.asarray(entry["rotation"]).T + np.asarray(entry["translation"]), f


def _draw_part(rng: np.random.Generator, part_types, files: list[dict], mesh_share: float) -> tuple[str, dict]:
    """The type and parameters of the next part: one of the user's mesh ``files`` (path, sha256,
    extent) with probability ``mesh_share``, scaled to a longest side of 4-12 cm, else a procedural part."""
    if files and rng.random() < mesh_share:
        chosen = files[rng.integers(len(files))]
        return "mesh", {"path": chosen["path"], "sha256": chosen["sha256"],
                        "scale": float(rng.uniform(0.04, 0.12) / chosen["extent"])}
    kind = part_types[rng.integers(len(part_types))]
    return kind, _draw_part_params(kind, rng)


def make_scene(rng: np.random.Generator, n_parts: tuple[int, int] = (3, 15), part_types=PART_TYPES,
               mesh_files=(), mesh_share: float = 0.3) -> Scene:
    """A bin with a random number of parts (``n_parts`` inclusive range) dropped into it one by one.

    Parts come from ``part_types``; each user mesh in ``mesh_files`` (read and checked first) joins
    the library and is drawn with probability ``mesh_share``, scaled to a longest side of 4-12 cm.

    Args:
        rng: the generator every draw comes from; the same state gives the same scene.
        n_parts: (fewest, most) parts, inclusive.
        part_types: the procedural parts to draw from, a subset of ``PART_TYPES``.
        mesh_files: the user's part meshes.
        mesh_share: the probability that a part is one of the user's meshes.

    Returns:
        The ``Scene``.

    Raises:
        ValueError: ``n_parts`` is not a range, ``part_types`` is empty or unknown, or a mesh file
            cannot be used.
        FileNotFoundError: a mesh file does not exist.
    """
    lo_n, hi_n = n_parts
    if not 0 <= lo_n <= hi_n:
        raise ValueError(f"n_parts must be a range (low, high) with 0 <= low <= high, got {n_parts}")
    unknown = set(part_types) - set(PART_TYPES)
    if unknown or not part_types:
        raise ValueError(f"part_types must be a non-empty subset of {PART_TYPES}, got {list(part_types)}")
    files = []
    for path in mesh_files:
        v, _ = read_part_file(path)
        files.append({"path": str(Path(path).resolve()), "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
                      "extent": float(np.ptp(v, axis=0).max())})
    bin_material = draw_material(rng, BIN_MATERIALS)
    meshes = [table_mesh(), bin_mesh()]
    materials = [TABLE_MATERIAL, bin_material]
    support_points = meshes[1][0]
    parts = []
    for _ in range(int(rng.integers(lo_n, hi_n + 1))):
        kind, params = _draw_part(rng, part_types, files, mesh_share)
        rotation = _resting_rotation(rng)
        v, f = part_mesh(kind, params)
        v = v @ rotation.T
        half = (v.max(0) - v.min(0)) / 2
        room = np.maximum(np.array(BIN_INNER) / 2 - half[:2] - 0.002, 0.0)
        xy = rng.uniform(-room, room)
        top = max(m[0][:, 2].max() for m in meshes[1:])
        start = np.r_[xy, top + half[2] + 0.01]
        fall = drop(v + start, f, meshes[1:], support_points, rng)
        translation = start - np.array([0.0, 0.0, fall - CONTACT_GAP])
        material = draw_material(rng, PART_MATERIALS)
        entry = {"type": kind, "params": params, "rotation": rotation.tolist(), "translation": translation.tolist(),
                 "material": material.__dict__}
        placed = place_part(entry)
        meshes.append(placed)
        materials.append(material)
        support_points = np.r_[support_points, contact_points(*placed, 400, rng)]
        parts.append(entry)
    description = {"bin": {"inner": list(BIN_INNER), "height": BIN_HEIGHT, "wall": BIN_WALL,
                           "material": bin_material.__dict__},
                   "table": {"size": list(TABLE_SIZE), "material": TABLE_MATERIAL.__dict__},
                   "parts": parts}
    return Scene(meshes, materials, description)


def surface_classes(description: dict) -> np.ndarray:
    """The semantic class (``labels.SEMANTIC_NAMES``) of each surface id of a scene.

    Args:
        description: a scene description (``Scene.description``, or a scan's ``meta["scene"]``).

    Returns:
        (S,) uint8: ``SEMANTIC_TABLE`` for surface 0, ``SEMANTIC_SUPPORT`` for surface 1 (the bin,
        board or plate), then the class of each part's type.

    Raises:
        ValueError: the description has no list of parts, or a part's type has no class.
    """
    parts = description.get("parts") if isinstance(description, dict) else None
    if not isinstance(parts, list):
        raise ValueError("not a scene description: it needs a list of 'parts' (give Scene.description or a "
                         "scan's meta['scene'])")
    codes = [SEMANTIC_TABLE, SEMANTIC_SUPPORT]
    for i, entry in enumerate(parts):
        kind = entry.get("type") if isinstance(entry, dict) else None
        if kind not in SEMANTIC_CODES or SEMANTIC_CODES[kind] <= SEMANTIC_SUPPORT:
            raise ValueError(f"part {i} of the scene description has type {kind!r}, which has no semantic class")
        codes.append(SEMANTIC_CODES[kind])
    return np.array(codes, np.uint8)


def semantic_image(surface: np.ndarray, description: dict) -> np.ndarray:
    """Semantic classes per pixel from the surface id each pixel sees.

    Args:
        surface: (H, W) uint8 surface ids, ``NO_SURFACE`` where the ray meets nothing (a scan's
            ``surface`` array).
        description: the scanned scene's description (``Scene.description``, a scan's ``meta["scene"]``).

    Returns:
        (H, W) uint8 class codes (``labels.SEMANTIC_NAMES``), ``SEMANTIC_BACKGROUND`` where no surface.

    Raises:
        ValueError: the surface ids do not belong to this scene (an id beyond its surfaces).
    """
    surface = np.asarray(surface)
    classes = surface_classes(description)
    seen = surface != NO_SURFACE
    if seen.any() and int(surface[seen].max()) >= len(classes):
        raise ValueError(f"surface id {int(surface[seen].max())} is not in this scene, which has {len(classes)} "
                         "surfaces; give the description of the scene the scan was made from")
    out = np.full(surface.shape, SEMANTIC_BACKGROUND, np.uint8)
    out[seen] = classes[surface[seen]]
    return out


def scene_from_description(description: dict) -> Scene:
    """Rebuild the exact scene a scan was made from.

    Args:
        description: the scan's ``meta["scene"]`` (``Scene.description``).

    Returns:
        The ``Scene``.

    Raises:
        ValueError: the description is missing a key or malformed.
    """
    try:
        holder = description.get("support") or description["bin"]  # a board or plate, or the bin
        meshes = [table_mesh(), place_part(holder) if "support" in description else bin_mesh()]
        meshes += [place_part(entry) for entry in description["parts"]]
        materials = [Material(**description["table"]["material"]), Material(**holder["material"])]
        materials += [Material(**entry["material"]) for entry in description["parts"]]
    except (KeyError, TypeError) as error:
        raise ValueError(f"not a scene description: {error!r} is missing or malformed") from error
    return Scene(meshes, materials, description)
