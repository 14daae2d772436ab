"""Shape completion data in the manner of 3D-EPN (Dai, Qi and Niessner, CVPR 2017): one partial scan
of an object as a distance field with known and unknown voxels in, the complete object's distance
field out.

Each example is an object of the scanned ModelNet10 stand-in (``data.scanned_modelnet.object_view``:
the procedural mesh on a floor, perhaps with a wall and a neighbour, scanned once with the simulator's
noise and artefacts), in a cubic grid around the object (``resolution`` voxels per side, the object's
longest side spanning all but ``padding`` voxels at each end):

* ``tsdf`` (R, R, R) float16: the truncated signed distance fused from the one view
  (``geometry.depth_fusion.fuse_tsdf``), in units of ``TRUNCATION`` voxels, 0 where unknown. Pixels of
  the background whose point falls inside the grid (the floor under the object, a close wall or
  neighbour) are left out, so the grid holds the object's surface and the free space seen past it,
  as if the object had been cut out of the scan.
* ``known`` (R, R, R) uint8: 1 where the view observed the voxel (free space in front of the
  surface, or the band just behind it), 0 elsewhere.
* ``target`` (R, R, R) float16: the complete mesh's unsigned distance at every voxel centre, in
  units of ``TRUNCATION`` voxels, clipped to 1 (``geometry.distance_fields.tsdf_from_mesh``). 3D-EPN predicts
  an unsigned field too: the sign of a distance needs a closed surface, the magnitude does not.

The network's input (``completion_features``) is the two channels of 3D-EPN: the distance and the
known flag. Files go to ``<out>/<class>/<split>/<class>_NNNN.npz`` with a ``manifest.json``; a folder
is resumed file by file, and a seed gives the same bytes in one run or many.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pcfilter_lib.data import procedural_modelnet, scanned_modelnet
from pcfilter_lib.geometry.depth_fusion import View, fuse_tsdf
from pcfilter_lib.geometry.distance_fields import tsdf_from_mesh
from pcfilter_lib.geometry.voxel_grids import Grid, grid_around
from pcfilter_lib.io.files import atomic_write_bytes, prepare_folder, read_manifest, record_file, verify_folder
from pcfilter_lib.io.scan import scan_bytes
from pcfilter_lib.simulate.scanner import ScannerConfig

GENERATOR = "pcfilter.completion_grids"
VERSION = "1"  # bump whenever the same seed and parameters would give different bytes
TRUNCATION = 3.0  # voxels, as 3D-EPN
CHANNELS = 2  # the input's channels: distance, known


def default_padding(resolution: int) -> int:
    """Empty voxels on each side of the object: 3 at 32 voxels (3D-EPN's margin), in proportion elsewhere."""
    return max(1, round(3 * int(resolution) / 32))


def object_grid(vertices: np.ndarray, resolution: int, padding: int | None = None) -> Grid:
    """The cubic grid around an object (``geometry.voxel_grids.grid_around``).

    Raises:
        ValueError: ``resolution`` below 8, or a padding that leaves no room for the object.
    """
    padding = default_padding(resolution) if padding is None else int(padding)
    if int(resolution) < 8 or not 0 <= padding < int(resolution) // 2 - 1:
        raise ValueError(f"need a resolution of 8 voxels or more and 0 <= padding < resolution / 2 - 1, got "
                         f"{resolution} and {padding}")
    return grid_around(vertices, int(resolution), padding)


def partial_field(scan: dict, grid: Grid, object_code: int = scanned_modelnet.OBJECT
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Fuse one scan into the grid: the object's surface, and the space the scanner saw through.

    Args:
        scan: the arrays of a scan (``xyz`` (H, W, 3) camera frame, ``intrinsics``, ``pose`` to the
            grid's frame, ``surface`` (H, W) ids).
        grid: the object's ``Grid``.
        object_code: the ``surface`` id of the object; other surfaces whose points fall inside the
            grid are left out (their voxels stay unknown), those beyond it still clear the space
            their rays cross.

    Returns:
        ``(tsdf, known)``: (R, R, R) float32 in [-1, 1] (0 where unknown) and bool.
    """
    xyz = np.array(scan["xyz"], np.float32)
    pose = np.asarray(scan["pose"], np.float64)
    points = xyz.reshape(-1, 3).astype(np.float64) @ pose[:3, :3].T + pose[:3, 3]
    finite = np.isfinite(points).all(axis=1)
    inside = np.zeros(len(points), bool)
    inside[finite] = grid.index(points[finite])[1]
    background = np.asarray(scan["surface"]).ravel() != object_code
    xyz.reshape(-1, 3)[background & inside] = np.nan
    tsdf, weight = fuse_tsdf([View(xyz, np.asarray(scan["intrinsics"], np.float64), pose)], grid, TRUNCATION)
    known = weight > 0
    return np.where(known, tsdf, 0.0).astype(np.float32), known


def make_example(name: str, split: str, index: int, seed: int, resolution: int = 32,
                 config: ScannerConfig = scanned_modelnet.SCANNER) -> dict:
    """One object as the arrays of its file (see the module docstring) and its ``meta``."""
    vertices, triangles, scan = scanned_modelnet.object_view(name, split, index, seed, config)
    grid = object_grid(vertices, resolution)
    tsdf, known = partial_field(scan, grid)
    target = np.abs(tsdf_from_mesh(vertices, triangles, grid, TRUNCATION, by_part=False))
    meta = {"generator": GENERATOR, "version": VERSION, "seed": int(seed), "class": name, "split": split,
            "index": int(index), "resolution": int(resolution), "truncation_voxels": TRUNCATION,
            "voxel_size_m": float(grid.voxel_size), "known_share": round(float(known.mean()), 5)}
    return {"tsdf": tsdf.astype(np.float16), "known": known.astype(np.uint8), "target": target.astype(np.float16),
            "meta": meta}


def recipe(counts: dict[str, tuple[int, int]], seed: int, resolution: int, config: ScannerConfig) -> dict:
    """What decides the content of a completion set (compared with an existing folder's manifest)."""
    return {"generator": GENERATOR, "version": VERSION, "seed": int(seed),
            "parameters": {"counts": {k: list(v) for k, v in sorted(counts.items())}, "resolution": int(resolution),
                           "scanner": config.to_dict(),
                           "scans": {"generator": scanned_modelnet.GENERATOR, "version": scanned_modelnet.VERSION}}}


def _names(counts: dict[str, tuple[int, int]]) -> list[tuple[str, str, int]]:
    return [(name, split, i) for name in sorted(counts)
            for split, n in zip(("train", "test"), counts[name], strict=True) for i in range(n)]


def write_completion_grids(out: str | os.PathLike, counts: dict[str, tuple[int, int]], seed: int = 0,
                           resolution: int = 32, config: ScannerConfig = scanned_modelnet.SCANNER,
                           progress: bool = False, replace: bool = False) -> Path:
    """Make the completion set in ``out`` (created if needed) and return it.

    Args:
        out: the folder.
        counts: class -> (train, test) objects, the first ones of ``scanned_modelnet``'s numbering.
        seed: the seed of the scanned set the objects come from.
        resolution: voxels per side.
        config: the scanner.
        progress: show a progress bar.
        replace: make a folder of another recipe of this generator again.

    Raises:
        ValueError: an unknown class, a negative count or seed, or a folder holding other data.
    """
    unknown = set(counts) - set(procedural_modelnet.CLASSES)
    if unknown or not counts:
        raise ValueError(f"counts needs classes of {', '.join(procedural_modelnet.CLASSES)}; got {sorted(counts)}")
    if int(seed) < 0 or any(int(n) < 0 for pair in counts.values() for n in pair):
        raise ValueError(f"the seed and the counts must be whole numbers >= 0, got {seed} and {counts}")
    out = Path(out)
    manifest = prepare_folder(out, recipe(counts, seed, resolution, config), replace)
    damaged = set(verify_folder(out, manifest))
    for name, split, i in tqdm(_names(counts), desc="fusing partial scans", unit="object", disable=not progress):
        rel = scanned_modelnet.file_name(name, split, i)
        if rel in manifest["files"] and rel not in damaged:
            continue
        atomic_write_bytes(out / rel, scan_bytes(make_example(name, split, i, seed, resolution, config)))
        record_file(out, manifest, rel)
    return out


def load_completion_grids(folder: str | os.PathLike, split: str) -> dict:
    """One split of a folder written by ``write_completion_grids``, stacked.

    Returns:
        ``tsdf``, ``target`` (N, R, R, R) float32, ``known`` (N, R, R, R) bool, ``labels`` (N,) int32
        (indices into ``classes``) and ``classes`` (the class names, sorted).

    Raises:
        ValueError: no completion set in ``folder``, an unknown split, or a split that is empty or unfinished.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("generator") != GENERATOR:
        raise ValueError(f"{folder} holds no completion grids (no {GENERATOR} manifest); make them with "
                         "write_completion_grids")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    counts = manifest["parameters"]["counts"]
    names = [item for item in _names(counts) if item[1] == split]
    missing = [item for item in names if scanned_modelnet.file_name(*item) not in manifest["files"]]
    if not names or missing:
        raise ValueError(f"{folder}: split {split!r} holds {len(names) - len(missing)} of {len(names)} objects; run "
                         "write_completion_grids again with the same arguments to finish it")
    classes = sorted(counts)
    parts: dict[str, list] = {"tsdf": [], "known": [], "target": []}
    for item in names:
        with np.load(folder / scanned_modelnet.file_name(*item), allow_pickle=False) as archive:
            for key in parts:
                parts[key].append(archive[key])
    return {"tsdf": np.stack(parts["tsdf"]).astype(np.float32), "known": np.stack(parts["known"]).astype(bool),
            "target": np.stack(parts["target"]).astype(np.float32),
            "labels": np.array([classes.index(item[0]) for item in names], np.int32), "classes": classes}


def completion_features(tsdf: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The network input of grids, as 3D-EPN's: (..., R, R, R) distance and known flag -> (..., R, R, R, 2)
    float32 channels (unsigned distance in truncation units, 1 where unknown; known 1 or 0)."""
    tsdf, known = np.asarray(tsdf, np.float32), np.asarray(known, bool)
    if tsdf.shape != known.shape:
        raise ValueError(f"tsdf {tsdf.shape} and known {known.shape} must have the same shape")
    return np.stack([np.where(known, np.abs(tsdf), 1.0), known], axis=-1).astype(np.float32)


def surface_voxels(distance: np.ndarray, within: float = 1.0, known: np.ndarray | None = None) -> np.ndarray:
    """The voxels a distance field puts on the surface: distance (truncation units) below ``within`` voxels.

    Args:
        distance: (..., R, R, R) distances in units of ``TRUNCATION`` voxels (signed or not).
        within: voxels.
        known: where the field is defined (the partial scan's ``known``); elsewhere no surface.
    """
    surface = np.abs(np.asarray(distance)) < within / TRUNCATION
    return surface if known is None else surface & np.asarray(known, bool)


def surface_iou(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """IoU of two surfaces (N, R, R, R) bool, per grid: (N,) float64 (1 where both are empty)."""
    predicted, target = np.asarray(predicted, bool), np.asarray(target, bool)
    axes = tuple(range(1, predicted.ndim))
    both = (predicted & target).sum(axes)
    union = (predicted | target).sum(axes)
    return np.where(union > 0, both / np.maximum(union, 1), 1.0)
