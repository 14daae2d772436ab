"""ModelNet10 as a scanner sees it: every procedural mesh in a small scene, scanned once.

In the spirit of ScanObjectNN (Uy et al., ICCV 2019), each mesh of the procedural stand-in
(``procedural_modelnet``, the same mesh for the same seed, class, split and index) is scaled to
tabletop size, stood on a floor, sometimes with a wall behind it and a second object beside it,
and scanned by the structured-light simulator (``pcfilter_lib.simulate``) from one random viewpoint.
What is kept is what a scanner and a rough bounding box give: one side of the object (the rest is
hidden), depth noise, the simulator's artefacts (inter-reflections, mixed pixels at edges, specular
errors) and some background (floor, wall, the neighbour) inside a jittered box around the object.

Layout, as the procedural set: ``<root>/<class>/{train,test}/<class>_NNNN.npz`` and a
``manifest.json`` (generator, version, seed, parameters, sha256 per file). Each file holds:

==========  =============  ==============================================================
key         shape, dtype   meaning
==========  =============  ==============================================================
xyz         (M, 3) f4      measured points in the object's frame (metres, z up, the
                           object's bounding box centred at the origin), M <= max_points
label       (M,) u1        1 true geometry, 0 artefact (the simulator's label)
kind        (M,) u1        the artefact's cause (``pcfilter_lib.labels.KIND_NAMES``)
object      (M,) bool      the pixel's ray met the object (False: background)
meta        () str         JSON: class, viewpoint, size, background, counts
==========  =============  ==============================================================

``load_split`` turns a split into ``modelnet.Clouds`` of N points on the unit sphere, so every
PointNet tool of the library runs on scanned clouds as on complete ones. Files are byte for byte
reproducible: the same seed gives the same bytes whether made in one run, resumed after an
interruption, or made by any number of worker processes.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pcfilter_lib.data import procedural_modelnet
from pcfilter_lib.geometry.sampling import normalize_unit_sphere
from pcfilter_lib.io.files import atomic_write_bytes, prepare_folder, verify_folder, write_manifest
from pcfilter_lib.io.scan import scan_bytes
from pcfilter_lib.labels import ARTEFACT
from pcfilter_lib.simulate.measurement import simulate_scan
from pcfilter_lib.simulate.scanner import ScannerConfig, rig_for
from pcfilter_lib.simulate.scene import Material, Scene

GENERATOR = "pcfilter.scanned_modelnet"
VERSION = "1"  # bump whenever the same seed and parameters would give different bytes
FOLDERS = {"full": "modelnet10_scanned", "fast": "modelnet10_scanned_fast"}  # default folder of each size
MAX_POINTS = 2048  # points kept per object, as ScanObjectNN keeps
MIN_POINTS = 64  # fewer measured points in the box: the viewpoint is drawn again
SAVE_EVERY = 200  # files between two saves of the manifest while generating
# A small, fast scanner (160 x 120 pixels: an object of 0.3-0.45 m at 1 m fills about half the
# width) with the noise of a consumer depth camera rather than an industrial one: 2 mm at 1 m,
# about half a percent of the object's size.
SCANNER = ScannerConfig(width=160, height=120, noise_1m=2e-3)
OBJECT_SIZE = (0.3, 0.45)  # the object's longest side (m)
ELEVATION = (15.0, 60.0)  # the viewpoint's angle above the floor (degrees)
# name: (probability, albedo range, specular range, roughness range), as simulate.scene's palettes.
OBJECT_MATERIALS = {
    "painted wood": (0.3, (0.3, 0.7), (0.05, 0.2), (0.15, 0.35)),
    "dark wood": (0.15, (0.1, 0.25), (0.05, 0.15), (0.2, 0.4)),
    "fabric": (0.25, (0.2, 0.6), (0.0, 0.03), (0.4, 0.6)),
    "glossy plastic": (0.1, (0.4, 0.8), (0.3, 0.6), (0.05, 0.12)),
    "ceramic": (0.1, (0.6, 0.9), (0.4, 0.7), (0.03, 0.08)),
    "metal": (0.1, (0.2, 0.4), (0.5, 0.8), (0.05, 0.15)),
}
WALL_MATERIAL = Material("wall", 0.7, 0.02, 0.5)
# Surface ids in a scene: as in ``simulate.scene``, 0 is the ground; the object is 1.
FLOOR, OBJECT = 0, 1


def _draw_material(rng: np.random.Generator) -> Material:
    names = list(OBJECT_MATERIALS)
    name = names[int(rng.choice(len(names), p=[OBJECT_MATERIALS[n][0] for n in names]))]
    _, albedo, specular, roughness = OBJECT_MATERIALS[name]
    return Material(name, float(rng.uniform(*albedo)), float(rng.uniform(*specular)), float(rng.uniform(*roughness)))


def triangulate(faces) -> np.ndarray:
    """Polygon faces (lists of vertex indices, convex) as a fan of triangles (T, 3) int32."""
    return np.array([(face[0], face[j], face[j + 1]) for face in faces for j in range(1, len(face) - 1)],
                     dtype=np.int32)


def _mesh_in_metres(name: str, seed, size: float) -> tuple[np.ndarray, np.ndarray]:
    """A procedural mesh scaled to a longest side of ``size`` metres, its bounding box centred at the origin."""
    vertices, faces = procedural_modelnet.make_shape(name, seed)
    lo, hi = vertices.min(0), vertices.max(0)
    return (vertices - (lo + hi) / 2) * (size / float((hi - lo).max())), triangulate(faces)


def _quad(corners) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(corners, dtype=np.float64), np.array([[0, 1, 2], [0, 2, 3]], np.int32)


def _turn(azimuth: float, elevation: float) -> np.ndarray:
    """The rotation (3, 3) that turns the scene so that the fixed scanner, looking down its z axis,
    sees it from ``azimuth`` and ``elevation`` (radians), as ``simulate.objects.scan_object`` does."""
    c, s = np.cos(np.pi / 2 - elevation), np.sin(np.pi / 2 - elevation)
    tilt = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    c, s = np.cos(-azimuth), np.sin(-azimuth)
    return tilt @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _compose(vertices: np.ndarray, triangles: np.ndarray, rng: np.random.Generator, config: ScannerConfig):
    """One scene around the object: (meshes, materials, turn, crop box (lo, hi), meta)."""
    lo, hi = vertices.min(0), vertices.max(0)
    size = float((hi - lo).max())
    floor_z = float(lo[2])
    meshes = [_quad([[-20, -20, floor_z], [20, -20, floor_z], [20, 20, floor_z], [-20, 20, floor_z]]),
              (vertices, triangles)]
    materials = [Material("floor", *(float(rng.uniform(a, b)) for a, b in ((0.15, 0.5), (0.02, 0.1), (0.2, 0.5)))),
                 _draw_material(rng)]
    azimuth, elevation = float(rng.uniform(0, 2 * np.pi)), np.radians(float(rng.uniform(*ELEVATION)))
    turn = _turn(azimuth, elevation)
    camera = (turn.T @ rig_for(config).pose[:3, 3])[:2]
    toward_camera = camera / np.linalg.norm(camera)  # horizontal, in the object's frame
    meta = {"object_size_m": round(size, 4), "object_material": materials[1].name,
            "azimuth_deg": round(float(np.degrees(azimuth)), 2),
            "elevation_deg": round(float(np.degrees(elevation)), 2), "wall": False, "second_object": None}
    if rng.random() < 0.5:  # a wall behind the object, seen past it
        behind = -toward_camera
        reach = float(np.abs(behind) @ ((hi - lo)[:2] / 2)) + float(rng.uniform(0.02, 0.3)) * size
        centre, side = behind * reach, np.array([-behind[1], behind[0]]) * 20
        top = floor_z + float(rng.uniform(1.0, 3.0)) * size
        meshes.append(_quad([[*(centre - side), floor_z], [*(centre + side), floor_z], [*(centre + side), top],
                             [*(centre - side), top]]))
        materials.append(WALL_MATERIAL)
        meta["wall"] = True
    if rng.random() < 0.5:  # a second object beside it, never straight in front
        name = procedural_modelnet.CLASSES[int(rng.integers(len(procedural_modelnet.CLASSES)))]
        other_size = float(rng.uniform(0.5, 1.2)) * size
        other, other_triangles = _mesh_in_metres(name, rng, other_size)
        angle = np.arctan2(toward_camera[1], toward_camera[0]) + float(rng.uniform(np.pi / 3, 5 * np.pi / 3))
        distance = (size + other_size) / 2 + float(rng.uniform(0.02, 0.3)) * size
        shift = np.array([np.cos(angle) * distance, np.sin(angle) * distance, floor_z - other[:, 2].min()])
        meshes.append((other + shift, other_triangles))
        materials.append(_draw_material(rng))
        meta["second_object"] = name
    # The box a rough detector would give: the object's box with a margin, jittered; its floor is
    # cut at a random height, so that some clouds hold floor points and others do not.
    box_lo = lo - rng.uniform(0.03, 0.2, size=3) * size
    box_hi = hi + rng.uniform(0.03, 0.2, size=3) * size
    jitter = rng.uniform(-0.08, 0.08, size=3) * size
    box_lo, box_hi = box_lo + jitter, box_hi + jitter
    box_lo[2] = floor_z + float(rng.uniform(-0.02, 0.03)) * size
    return meshes, materials, turn, (box_lo, box_hi), meta


def _scan_until_seen(vertices: np.ndarray, triangles: np.ndarray, rng: np.random.Generator, config: ScannerConfig
                     ) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, dict]:
    """Compose and scan scenes until the box holds ``MIN_POINTS`` measured points:
    (scan, turn, valid pixels, their points in the object's frame, indices of those in the box, meta)."""
    for _ in range(5):
        meshes, materials, turn, (box_lo, box_hi), meta = _compose(vertices, triangles, rng, config)
        scan = simulate_scan(Scene([(v @ turn.T, f) for v, f in meshes], materials, {}), config, rng)
        valid = np.isfinite(scan["xyz"]).all(-1)
        pose = np.asarray(scan["pose"], np.float64)
        points = (scan["xyz"][valid].astype(np.float64) @ pose[:3, :3].T + pose[:3, 3]) @ turn  # object frame
        chosen = np.flatnonzero(np.all((points >= box_lo) & (points <= box_hi), axis=1))
        if len(chosen) >= MIN_POINTS:
            return scan, turn, valid, points, chosen, meta
    raise ValueError(f"five viewpoints in a row gave fewer than {MIN_POINTS} points of the object; "
                     "check the scanner settings (size, depth range)")


def scan_in_scene(vertices: np.ndarray, triangles: np.ndarray, rng: np.random.Generator,
                  config: ScannerConfig = SCANNER, max_points: int = MAX_POINTS) -> tuple[dict, dict]:
    """Stand one object on a floor, add some background, scan it once and crop a box around it.

    The floor is always there; a wall behind the object (half the time) and a second procedural
    object beside it (half the time, never straight in front) add background. The viewpoint's
    azimuth is uniform, its elevation in ``ELEVATION``. The box is the object's bounding box grown
    by 3-20% of its size on every side, shifted by up to 8%, its bottom near the floor.

    Args:
        vertices: (V, 3) the object in metres, its bounding box centred at the origin, z up.
        triangles: (T, 3) vertex indices.
        rng: draws the background, the materials, the viewpoint, the box and the scan's noise.
        config: the scanner.
        max_points: at most this many points are kept (a random subset, in pixel order).

    Returns:
        (arrays, meta): ``xyz`` (M, 3) float32 in the object's frame, ``label`` (M,) uint8, ``kind``
        (M,) uint8, ``object`` (M,) bool; and what was drawn (viewpoint, background, counts).

    Raises:
        ValueError: five scenes in a row gave fewer than ``MIN_POINTS`` points in the box.
    """
    scan, _, valid, points, chosen, meta = _scan_until_seen(vertices, triangles, rng, config)
    if len(chosen) > max_points:
        chosen = np.sort(rng.choice(chosen, size=max_points, replace=False))
    arrays = {"xyz": points[chosen].astype(np.float32), "label": scan["label"][valid][chosen],
              "kind": scan["kind"][valid][chosen], "object": scan["surface"][valid][chosen] == OBJECT}
    meta.update(points=len(chosen), background_points=int((~arrays["object"]).sum()),
                artefact_points=int((arrays["label"] == ARTEFACT).sum()))
    return arrays, meta


def file_name(name: str, split: str, index: int) -> str:
    """The file of mesh ``index`` (from 0) of a class and split, relative to the data set's folder."""
    return f"{name}/{split}/{name}_{index + 1:04d}.npz"


def _object_draws(name: str, split: str, index: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """Object ``index`` of a class and split in metres, and the generator that then draws its scene and scan."""
    mesh_seed = procedural_modelnet.shape_seed(seed, name, split, index)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1 + procedural_modelnet.CLASSES.index(name),
                                                        ("train", "test").index(split), index, 7]))
    size = float(rng.uniform(*OBJECT_SIZE))
    vertices, triangles = _mesh_in_metres(name, mesh_seed, size)
    return vertices, triangles, rng


def object_view(name: str, split: str, index: int, seed: int, config: ScannerConfig = SCANNER
                ) -> tuple[np.ndarray, np.ndarray, dict]:
    """The complete mesh and the whole organised scan behind one file of the set (``make_file``'s draws).

    Where ``make_file`` keeps the points in a box, this keeps the scanner's image, for fusing it into
    a grid (``data.completion_grids``).

    Args:
        name: the class.
        split: ``"train"`` or ``"test"``.
        index: the object's number in its class and split (from 0).
        seed: the set's seed.
        config: the scanner.

    Returns:
        ``(vertices, triangles, scan)``: the mesh in metres in the object's frame (its bounding box
        centred at the origin, z up) and the arrays of ``simulate.measurement.simulate_scan`` with
        ``pose`` mapping the camera frame to the object's frame; ``surface`` is ``OBJECT`` on the
        object's pixels.
    """
    vertices, triangles, rng = _object_draws(name, split, index, seed)
    scan, turn, *_ = _scan_until_seen(vertices, triangles, rng, config)
    to_object = np.eye(4)
    to_object[:3, :3] = turn.T
    scan["pose"] = (to_object @ np.asarray(scan["pose"], np.float64)).astype(np.float32)
    return vertices, triangles, scan


def make_file(name: str, split: str, index: int, seed: int, config: ScannerConfig = SCANNER,
              max_points: int = MAX_POINTS) -> bytes:
    """The bytes of one file: procedural mesh ``index`` of ``name`` / ``split`` (seed ``seed``), scanned."""
    vertices, triangles, rng = _object_draws(name, split, index, seed)
    arrays, meta = scan_in_scene(vertices, triangles, rng, config, max_points)
    meta = {"generator": GENERATOR, "version": VERSION, "seed": seed, "class": name, "split": split,
            "index": index, "mesh": {"generator": procedural_modelnet.GENERATOR,
                                     "version": procedural_modelnet.VERSION}, **meta}
    return scan_bytes({**arrays, "meta": meta})


def _make_job(job: tuple) -> tuple[str, bytes]:
    name, split, index, seed, config, max_points = job
    return file_name(name, split, index), make_file(name, split, index, seed, config, max_points)


def generate(out: str | os.PathLike, seed: int = 0, counts: dict[str, tuple[int, int]] | None = None,
             workers: int | None = None, progress: bool = False, config: ScannerConfig = SCANNER,
             max_points: int = MAX_POINTS) -> Path:
    """Write the scanned data set into ``out`` (created if needed) and return it.

    Args:
        out: the folder.
        seed: the seed; the meshes are those of ``procedural_modelnet.generate`` with the same seed.
        counts: class -> (train, test) objects; by default ``procedural_modelnet.FULL_COUNTS``
            (``FAST_COUNTS`` gives a few per class).
        workers: processes that scan in parallel (default: one per CPU core); the bytes do not
            depend on it.
        progress: show a progress bar.
        config: the scanner.
        max_points: points kept per object.

    Returns:
        ``out``. A folder written with the same recipe is resumed (missing files, and files whose
        sha256 differs from the manifest, are made again); one holding anything else is refused.

    Raises:
        ValueError: an unknown class, a negative seed, or a folder holding other data.
    """
    counts = procedural_modelnet.FULL_COUNTS if counts is None else counts
    if int(seed) < 0:
        raise ValueError(f"the seed must be a whole number >= 0, got {seed}")
    unknown = set(counts) - set(procedural_modelnet.CLASSES)
    if unknown:
        raise ValueError(f"unknown classes {sorted(unknown)}; the classes are {', '.join(procedural_modelnet.CLASSES)}")
    if max_points < MIN_POINTS:
        raise ValueError(f"max_points must be at least {MIN_POINTS}, got {max_points}")
    out = Path(out)
    recipe = {"generator": GENERATOR, "version": VERSION, "seed": int(seed),
              "parameters": {"counts": {k: list(v) for k, v in sorted(counts.items())}, "max_points": int(max_points),
                             "scanner": config.to_dict(), "meshes": {"generator": procedural_modelnet.GENERATOR,
                                                                     "version": procedural_modelnet.VERSION}}}
    manifest = prepare_folder(out, recipe)
    damaged = set(verify_folder(out))  # a resumed run makes missing or changed files again
    for stale in out.glob("*/*/.*.part.npz"):  # left by a run killed while writing
        stale.unlink()
    jobs = [(name, split, i, int(seed), config, int(max_points)) for name in sorted(counts)
            for split, n in zip(("train", "test"), counts[name], strict=True) for i in range(n)]
    todo = [job for job in jobs if file_name(*job[:3]) not in manifest["files"] or file_name(*job[:3]) in damaged]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="scanned ModelNet10", unit="object",
               disable=not progress)
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        results = pool.imap(_make_job, todo, chunksize=4) if pool else map(_make_job, todo)
        for done, (rel, data) in enumerate(results, start=1):
            atomic_write_bytes(out / rel, data)
            manifest["files"][rel] = hashlib.sha256(data).hexdigest()
            if done % SAVE_EVERY == 0:  # save progress now and then, so that an interrupted run resumes
                write_manifest(out, manifest)
            bar.update()
    finally:
        if pool:
            pool.terminate()
        write_manifest(out, manifest)
        bar.close()
    return out


def ensure_dataset(data_dir: str | os.PathLike, size: str = "full", seed: int = 0, workers: int | None = None,
                   progress: bool = False) -> Path:
    """The scanned set in its default folder of ``data_dir``, generated (or resumed) if needed.

    Args:
        data_dir: the folder of generated data (``pcfilter_lib.config.data_dir()``).
        size: ``"full"`` (``procedural_modelnet.FULL_COUNTS``) or ``"fast"`` (``FAST_COUNTS``).
        seed: the generator's seed.
        workers: scanning processes (default: one per CPU core).
        progress: show a progress bar while generating.

    Returns:
        ``data_dir / FOLDERS[size]``.

    Raises:
        ValueError: an unknown size, or the folder holds other data.
    """
    if size not in FOLDERS:
        raise ValueError(f"size must be one of {sorted(FOLDERS)}, got {size!r}")
    counts = procedural_modelnet.FULL_COUNTS if size == "full" else procedural_modelnet.FAST_COUNTS
    return generate(Path(data_dir) / FOLDERS[size], seed=seed, counts=counts, workers=workers, progress=progress)


def list_files(root: str | os.PathLike, split: str, limit_per_class: int | None = None
               ) -> tuple[list[Path], np.ndarray, list[str]]:
    """Files of one split, sorted by class then name: (paths, labels (N,) int32, classes).

    Raises:
        ValueError: an unknown split, or no files.
        FileNotFoundError: ``root`` does not exist.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no scanned ModelNet folder at {root}; make one with "
                                "`python data_scripts/make_scanned_modelnet.py`")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name / split).glob("*.npz") if not p.name.startswith("."))
        paths += files[:limit_per_class]
        labels += [label] * len(files[:limit_per_class])
    if not paths:
        raise ValueError(f"{root} has no {split} clouds (<class>/{split}/*.npz)")
    return paths, np.asarray(labels, dtype=np.int32), classes


def read_cloud(path: str | os.PathLike) -> dict:
    """One file's arrays (``xyz``, ``label``, ``kind``, ``object``) and its ``meta`` as a dict."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            cloud = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path} is not a readable scanned-object .npz ({error}); generate the folder again") \
            from error
    cloud["meta"] = json.loads(str(cloud["meta"]))
    return cloud


def summarise(root: str | os.PathLike) -> str:
    """Lines describing a folder's clouds, from the files' meta: how many, their points, the shares
    of background and artefact points, and how often a wall or a second object stood by.

    Raises:
        ValueError, FileNotFoundError: as ``list_files``.
    """
    metas = [read_cloud(path)["meta"] for split in ("train", "test") for path in list_files(root, split)[0]]
    points = np.array([m["points"] for m in metas], dtype=np.float64)
    background = np.array([m["background_points"] for m in metas]) / points
    artefacts = np.array([m["artefact_points"] for m in metas]) / points
    low, mid, high = np.percentile(points, [10, 50, 90])
    return "\n".join([
        f"{len(metas)} clouds; points per cloud: 10% {low:.0f}, median {mid:.0f}, 90% {high:.0f}",
        f"background points: mean {background.mean():.1%}, 90% {np.percentile(background, 90):.1%}",
        f"artefact points: mean {artefacts.mean():.1%}, 90% {np.percentile(artefacts, 90):.1%}",
        f"a wall behind: {np.mean([m['wall'] for m in metas]):.0%}; a second object beside: "
        f"{np.mean([m['second_object'] is not None for m in metas]):.0%}"])


def load_split(root: str | os.PathLike, split: str, num_points: int = 1024, seed: int = 0,
               background: bool = True, limit_per_class: int | None = None):
    """One split as ``modelnet.Clouds`` of ``num_points`` points per object, on the unit sphere.

    Args:
        root: a folder written by ``generate``.
        split: ``"train"`` or ``"test"``.
        num_points: N, the points per cloud: a random subset of the stored points, or all of them
            and random repeats where fewer were measured (as ScanObjectNN's loaders do).
        seed: cloud i draws its points with the seed (seed, i).
        background: keep the background points (False: only the points whose ray met the object,
            the "object only" variant).
        limit_per_class: read at most this many files per class.

    Returns:
        ``Clouds``: points (N_clouds, N, 3) float32 centred and scaled to the unit sphere, labels,
        the class names, and the file of each cloud relative to ``root``.
    """
    from pcfilter_lib.data.modelnet import Clouds  # modelnet imports Keras; generating needs none of it

    root = Path(root)
    paths, labels, classes = list_files(root, split, limit_per_class)
    points = np.empty((len(paths), num_points, 3), dtype=np.float32)
    for i, path in enumerate(paths):
        cloud = read_cloud(path)
        xyz = cloud["xyz"] if background else cloud["xyz"][cloud["object"]]
        if len(xyz) < 2:
            raise ValueError(f"{path} holds {len(xyz)} usable points; generate the folder again")
        rng = np.random.default_rng([seed, i])
        pick = rng.permutation(len(xyz))[:num_points]
        if len(pick) < num_points:
            pick = np.concatenate([pick, rng.integers(0, len(xyz), num_points - len(pick))])
        points[i] = normalize_unit_sphere(xyz[pick].astype(np.float64))
    return Clouds(points=points, labels=labels, classes=tuple(classes),
                  names=tuple(p.relative_to(root).as_posix() for p in paths))
