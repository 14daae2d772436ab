"""Point-cloud files with per-point labels: a scan to ``.ply`` and to the PointCleanNet pair.

* ``.ply`` (binary little endian): x, y, z (float32), red, green, blue (uchar; the label or kind as a
  colour, so any viewer shows them), and the scalar properties ``label``, ``kind`` (uchar) and
  ``intensity`` (float32). Open3D reads the points and colours; ``read_ply`` reads everything.
* PointCleanNet: ``name.xyz`` with one ``x y z`` line per point and ``name.outliers`` with one
  ``1`` (outlier = artefact) or ``0`` line per point.

Only pixels with a point (label 0 or 1) are written, in row-major pixel order. ``cloud_scan`` and
``scan_cloud`` go the other way: a bare (N, 3) cloud as a 1 x N scan-like dict, which the filters
and ``filtering.evaluate_filter`` read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pcfilter_lib.geometry.points import check_points
from pcfilter_lib.io.files import atomic_write_bytes, atomic_write_text
from pcfilter_lib.labels import KIND_COLOURS, LABEL_COLOURS

_PLY_TYPES = {"float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8", "uchar": "u1", "uint8": "u1",
              "char": "i1", "int8": "i1", "ushort": "<u2", "uint16": "<u2", "short": "<i2", "int16": "<i2",
              "uint": "<u4", "uint32": "<u4", "int": "<i4", "int32": "<i4"}


def scan_points(scan: dict) -> dict[str, np.ndarray]:
    """The measured points of a scan as flat arrays: xyz (N, 3), label, kind (N,) uint8, intensity (N,)."""
    valid = np.asarray(scan["valid"])
    return {"xyz": np.asarray(scan["xyz"], np.float32)[valid], "label": np.asarray(scan["label"])[valid],
            "kind": np.asarray(scan["kind"])[valid], "intensity": np.asarray(scan["intensity"], np.float32)[valid]}


def cloud_scan(points: np.ndarray, label: np.ndarray | None = None, kind: np.ndarray | None = None) -> dict:
    """An (N, 3) cloud as a 1 x N scan-like dict, the form ``filtering.evaluate_filter`` and the
    baselines read; ``label`` (1 keep, 0 artefact) and ``kind`` are optional per-point arrays.
    Coordinates keep their precision (float32 or float64)."""
    points = np.asarray(points)
    points = points.astype(np.result_type(points.dtype, np.float32))  # float64 stays: far from the origin it matters
    scan = {"xyz": points[None], "valid": np.isfinite(points).all(axis=1)[None]}
    if label is not None:
        scan["label"] = np.asarray(label, np.uint8)[None]
    if kind is not None:
        scan["kind"] = np.asarray(kind, np.uint8)[None]
    return scan


def scan_cloud(scan: Mapping, fraction: float = 1.0, seed: int = 0) -> dict:
    """The measured points of a scan (grid dropped) as a ``cloud_scan``, randomly thinned to
    ``fraction`` of them (drawn from ``seed``)."""
    valid = np.asarray(scan["valid"], bool)
    points, label, kind = (np.asarray(scan[key])[valid] for key in ("xyz", "label", "kind"))
    if fraction < 1:
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(len(points), size=max(1, int(round(fraction * len(points)))), replace=False))
        points, label, kind = points[chosen], label[chosen], kind[chosen]
    return cloud_scan(points, label, kind)


def write_ply(path: str | os.PathLike, scan: dict, colour_by: str = "label") -> int:
    """Write the scan's points to a binary ``.ply``, coloured by ``label`` or ``kind``. Returns N."""
    if colour_by not in ("label", "kind"):
        raise ValueError(f"colour_by must be 'label' or 'kind', got {colour_by!r}")
    points = scan_points(scan)
    xyz = check_points(points["xyz"], f"{path}: points", np.float32)
    if colour_by == "label":
        colours = np.array([LABEL_COLOURS[int(v)] for v in (0, 1)], np.uint8)[points["label"]]
    else:
        colours = KIND_COLOURS[np.minimum(points["kind"], len(KIND_COLOURS) - 1)]
    record = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
                       ("label", "u1"), ("kind", "u1"), ("intensity", "<f4")])
    rows = np.empty(len(xyz), record)
    for i, axis in enumerate("xyz"):
        rows[axis] = xyz[:, i]
    for i, channel in enumerate(("red", "green", "blue")):
        rows[channel] = colours[:, i]
    rows["label"], rows["kind"], rows["intensity"] = points["label"], points["kind"], points["intensity"]
    header = ["ply", "format binary_little_endian 1.0", "comment pcfilter scan: label 1 true, 0 artefact",
              f"element vertex {len(rows)}", "property float x", "property float y", "property float z",
              "property uchar red", "property uchar green", "property uchar blue", "property uchar label",
              "property uchar kind", "property float intensity", "end_header"]
    atomic_write_bytes(path, ("\n".join(header) + "\n").encode("ascii") + rows.tobytes())
    return len(rows)


def read_ply(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every vertex property of a ``.ply`` (binary little endian or ascii) as arrays, e.g. x, y, z, label."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"point cloud {path} does not exist")
    data = path.read_bytes()
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise ValueError(f"{path} is not a PLY file (no 'ply' magic or no end_header)")
    lines = data[:end].decode("ascii", errors="replace").splitlines()
    body = data[data.index(b"\n", end) + 1:]
    fmt = next((line.split()[1] for line in lines if line.startswith("format")), None)
    if fmt not in ("binary_little_endian", "ascii"):
        raise ValueError(f"{path}: PLY format {fmt!r} is not supported (use binary_little_endian or ascii)")
    fields, count, element = [], 0, None
    for line in lines:
        words = line.split()
        if words[:1] == ["element"]:
            element = words[1]
            if element == "vertex":
                count = int(words[2])
            elif not fields:
                raise ValueError(f"{path}: elements before 'vertex' are not supported")
        elif words[:1] == ["property"] and element == "vertex":
            if words[1] == "list" or words[1] not in _PLY_TYPES:
                raise ValueError(f"{path}: vertex property {' '.join(words[1:])!r} is not supported")
            fields.append((words[2], _PLY_TYPES[words[1]]))
    if not fields:
        raise ValueError(f"{path}: no vertex element")
    record = np.dtype(fields)
    try:
        if fmt == "ascii":
            table = np.loadtxt(body.decode().splitlines()[:count], ndmin=2)
            rows = np.empty(count, record)
            for i, (name, _) in enumerate(fields):
                rows[name] = table[:, i]
        else:
            rows = np.frombuffer(body, record, count=count)
    except ValueError as error:
        raise ValueError(f"{path}: the vertex data is shorter than the header says ({count} vertices)") from error
    return {name: np.array(rows[name]) for name, _ in fields}


def write_pointcleannet(stem: str | os.PathLike, scan: dict) -> tuple[Path, Path]:
    """Write ``stem.xyz`` and ``stem.outliers`` (1 = artefact) for the scan's points; returns both paths."""
    stem = Path(stem)
    points = scan_points(scan)
    xyz = check_points(points["xyz"], f"{stem}: points", np.float32)
    xyz_path, outliers_path = stem.with_name(stem.name + ".xyz"), stem.with_name(stem.name + ".outliers")
    # %.9g writes every float32 exactly, so reading back gives the same points.
    atomic_write_text(xyz_path, "".join(f"{x:.9g} {y:.9g} {z:.9g}\n" for x, y, z in xyz.tolist()))
    atomic_write_text(outliers_path, "".join("1\n" if v == 0 else "0\n" for v in points["label"].tolist()))
    return xyz_path, outliers_path


def read_pointcleannet(stem: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 3) float32 and outlier flags (N,) bool from ``stem.xyz`` and ``stem.outliers``."""
    stem = Path(stem)
    if stem.suffix in (".xyz", ".outliers"):
        stem = stem.with_suffix("")
    xyz_path, outliers_path = stem.with_name(stem.name + ".xyz"), stem.with_name(stem.name + ".outliers")
    for path in (xyz_path, outliers_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist (a PointCleanNet pair needs both .xyz and .outliers)")
    try:
        xyz = np.loadtxt(xyz_path, dtype=np.float32, ndmin=2)
        flags = np.loadtxt(outliers_path, dtype=np.float64, ndmin=1)
    except ValueError as error:
        raise ValueError(f"{stem}: not a PointCleanNet pair ({error})") from error
    if xyz.size and xyz.shape[1] != 3:
        raise ValueError(f"{xyz_path}: each line must hold x y z, found {xyz.shape[1]} numbers")
    if len(xyz) != len(flags):
        raise ValueError(f"{stem}: {len(xyz)} points but {len(flags)} outlier flags; the two files must match")
    if not np.isin(flags, (0, 1)).all():
        raise ValueError(f"{outliers_path}: flags must be 0 or 1")
    return xyz.reshape(-1, 3), flags.astype(bool)
