"""Organised point clouds in ``.pcd`` and ``.ply`` files: a width x height grid of points, NaN where a
pixel has no point, so that image filters (the U-Net, the morphological opening) can run on them.

How a file is recognised as organised:

* ``.pcd`` (PCL's format, ascii or binary): ``HEIGHT`` > 1 and ``WIDTH * HEIGHT == POINTS``, the
  points in row-major order, as PCL writes organised clouds.
* ``.ply`` (ascii or binary little endian): the header holds ``obj_info width W`` and
  ``obj_info height H`` and the vertex count is ``W * H``, in row-major order (``write_organised``
  writes such files).

Fields read: ``x y z`` (required), ``intensity`` (optional), ``normal_x normal_y normal_z`` or
``nx ny nz`` (optional; estimated from the grid when missing). Any other cloud is unorganised; it is
returned as a 1 x N grid with ``organised`` False. Unorganised clouds may also come as ``.xyz``
(one ``x y z`` line per point, further columns ignored) or in any other format Open3D reads
(``.pts``, ``.xyzn``, ``.xyzrgb``).

Before reading, ``check_fits`` estimates the number of points from the header or the file size and
refuses, with a clear message, a file whose filtering would not fit in the available memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pcfilter_lib.io.clouds import read_ply
from pcfilter_lib.io.files import atomic_write_bytes
from pcfilter_lib.memory import available_memory

OPEN3D_SUFFIXES = (".pts", ".xyzn", ".xyzrgb")
CLOUD_SUFFIXES = (".ply", ".pcd", ".xyz") + OPEN3D_SUFFIXES
# Peak memory of reading and filtering a cloud, per point: the point filter's neighbour lists,
# features and patches dominate. Filtering a 253 447-point scan raised the peak resident memory by
# 336 MB (1 390 bytes per point); rounded up for the reading.
BYTES_PER_POINT = 1500
_PCD_TYPES = {("F", 4): "<f4", ("F", 8): "<f8", ("U", 1): "u1", ("U", 2): "<u2", ("U", 4): "<u4", ("I", 1): "i1",
              ("I", 2): "<i2", ("I", 4): "<i4"}


def read_pcd(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], int, int]:
    """Fields of a ``.pcd`` file (ascii or binary) as flat arrays, and its WIDTH and HEIGHT."""
    path = Path(path)
    data = path.read_bytes()
    header, offset = {}, 0
    while offset < len(data):
        end = data.find(b"\n", offset)
        end = len(data) if end < 0 else end + 1
        line = data[offset:end].decode("ascii", errors="replace").strip()
        offset = end
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        header[key.upper()] = values
        if key.upper() == "DATA":
            break
    if "DATA" not in header or "FIELDS" not in header:
        raise ValueError(f"{path} is not a PCD file (no FIELDS or DATA line in its header)")
    fields, n = header["FIELDS"], int(header.get("POINTS", [0])[0])
    width, height = int(header.get("WIDTH", [n])[0]), int(header.get("HEIGHT", [1])[0])
    sizes = [int(v) for v in header.get("SIZE", ["4"] * len(fields))]
    types = header.get("TYPE", ["F"] * len(fields))
    counts = [int(v) for v in header.get("COUNT", ["1"] * len(fields))]
    mode = header["DATA"][0].lower()
    try:
        dtype = np.dtype([(f, _PCD_TYPES[(t, s)], (c,)) for f, t, s, c in zip(fields, types, sizes, counts,
                                                                                strict=True)])
    except (KeyError, ValueError) as error:
        raise ValueError(f"{path}: unsupported PCD field layout {fields} {types} {sizes}") from error
    body = data[offset:]
    if mode == "binary":
        if len(body) < n * dtype.itemsize:
            raise ValueError(f"{path}: the binary data is shorter than its {n} points")
        rows = np.frombuffer(body, dtype, count=n)
    elif mode == "ascii":
        table = np.loadtxt(body.decode().splitlines()[:n], ndmin=2, dtype=np.float64)
        if table.shape != (n, sum(counts)):
            raise ValueError(f"{path}: expected {n} rows of {sum(counts)} numbers, got {table.shape}")
        rows = np.empty(n, dtype)
        column = 0
        for f, c in zip(fields, counts, strict=True):
            rows[f] = table[:, column:column + c]
            column += c
    else:
        raise ValueError(f"{path}: PCD data mode {mode!r} is not supported (save it as ascii or binary)")
    return {f: np.array(rows[f][:, 0] if c == 1 else rows[f]) for f, c in zip(fields, counts, strict=True)}, \
        width, height


def _ply_grid(path: Path) -> tuple[int, int] | None:
    data = path.read_bytes()[:4096]
    header = data[:data.find(b"end_header")].decode("ascii", errors="replace").splitlines()
    sizes = {}
    for line in header:
        words = line.split()
        if len(words) == 3 and words[0] in ("obj_info", "comment") and words[1] in ("width", "height"):
            sizes[words[1]] = int(words[2])
    return (sizes["width"], sizes["height"]) if len(sizes) == 2 else None


def estimate_points(path: str | os.PathLike) -> int:
    """The number of points in a cloud file, from its header (``.ply``, ``.pcd``) or, for text
    formats, from its size and the length of its first lines; read without loading the file."""
    path = Path(path)
    with open(path, "rb") as file:
        head = file.read(65536)
    size = path.stat().st_size
    for line in head.split(b"\n")[:200]:
        words = line.decode("ascii", errors="replace").split()
        if words[:2] == ["element", "vertex"] and len(words) == 3 and words[2].isdigit():
            return int(words[2])
        if words[:1] == ["POINTS"] and len(words) == 2 and words[1].isdigit():
            return int(words[1])
    lines = [line for line in head.split(b"\n")[:-1] if line.strip()]
    if not lines:
        return 0 if size == 0 else size // 12
    return int(size / (sum(len(line) + 1 for line in lines) / len(lines)))


def check_fits(path: str | os.PathLike, bytes_per_point: int = BYTES_PER_POINT, available: int | None = None) -> int:
    """The estimated number of points of ``path``; a MemoryError with advice when filtering them would
    need more than ``available`` bytes (default: the memory the system has available now)."""
    points = estimate_points(path)
    available = available_memory() if available is None else available
    need = points * bytes_per_point
    if need > available:
        raise MemoryError(f"{path} holds about {points / 1e6:.1f} million points; filtering them needs about "
                          f"{need / 1e9:.1f} GB of memory and {available / 1e9:.1f} GB are available. Thin the "
                          "cloud first (e.g. Open3D's voxel_down_sample) or cut it into parts, then filter those")
    return points


def read_xyz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """x, y, z arrays from a text file with one point per line (``x y z`` and optionally more columns,
    which are ignored; blank lines and lines starting with # are skipped)."""
    path = Path(path)
    try:
        table = np.loadtxt(path, dtype=np.float64, ndmin=2, comments="#")
    except ValueError as error:
        raise ValueError(f"{path} is not a text cloud of 'x y z' lines ({error})") from error
    if table.size == 0:
        return {axis: np.zeros(0) for axis in "xyz"}
    if table.shape[1] < 3:
        raise ValueError(f"{path}: each line must start with x y z, found {table.shape[1]} numbers per line")
    return {axis: table[:, i] for i, axis in enumerate("xyz")}


def _read_open3d(path: Path) -> dict[str, np.ndarray]:
    import open3d as o3d

    cloud = o3d.io.read_point_cloud(str(path))
    points = np.asarray(cloud.points)
    if len(points) == 0:
        raise ValueError(f"Open3D read no points from {path}; is it a point cloud file?")
    fields = {axis: points[:, i] for i, axis in enumerate("xyz")}
    if cloud.has_normals():
        fields.update({f"normal_{axis}": np.asarray(cloud.normals)[:, i] for i, axis in enumerate("xyz")})
    return fields


def read_cloud(path: str | os.PathLike, available: int | None = None) -> dict:
    """A cloud file (``CLOUD_SUFFIXES``) as a scan-like dict: ``xyz`` (H, W, 3) with NaN where there is
    no point, ``valid`` (H, W), ``intensity`` (H, W) or None, ``normals`` (H, W, 3) or None, and
    ``organised`` (False for an unorganised cloud, which comes as a 1 x N grid). Points with NaN or
    infinite coordinates count as missing (``valid`` False). Files too large to filter in
    ``available`` bytes of memory are refused before reading (``check_fits``)."""
    from pcfilter_lib.geometry.normals import estimate_normals

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"point cloud {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in CLOUD_SUFFIXES:
        raise ValueError(f"{path}: cannot read {suffix!r} clouds; use a scan .npz or one of "
                         f"{', '.join(CLOUD_SUFFIXES)}")
    check_fits(path, available=available)
    organised = False
    if suffix == ".pcd":
        fields, width, height = read_pcd(path)
        organised = height > 1
    elif suffix == ".ply":
        fields = read_ply(path)
        grid = _ply_grid(path)
        organised = grid is not None
        width, height = grid if organised else (len(next(iter(fields.values()))), 1)
    else:
        fields = read_xyz(path) if suffix == ".xyz" else _read_open3d(path)
        width, height = len(fields["x"]), 1
    if not {"x", "y", "z"} <= set(fields):
        raise ValueError(f"{path}: the points need x, y and z fields, found {sorted(fields)}")
    n = len(fields["x"])
    if n == 0:
        raise ValueError(f"{path}: the cloud holds no points")
    if width * height != n:
        raise ValueError(f"{path}: width {width} x height {height} does not match its {n} points")
    shape = (height, width)
    # Unorganised clouds keep double precision: exports in site or map coordinates lie far from the origin.
    xyz = np.stack([fields[a] for a in "xyz"], -1).astype(np.float32 if organised else np.float64).reshape(*shape, 3)
    valid = np.isfinite(xyz).all(-1)
    if not valid.any():
        raise ValueError(f"{path}: no point has finite coordinates (all NaN or infinite); there is nothing to filter")
    intensity = fields.get("intensity")
    intensity = None if intensity is None else np.asarray(intensity, np.float32).reshape(shape)
    names = next((n3 for n3 in (("normal_x", "normal_y", "normal_z"), ("nx", "ny", "nz")) if set(n3) <= set(fields)),
                 None)
    normals = (np.stack([fields[a] for a in names], -1).astype(np.float32).reshape(*shape, 3) if names else
               estimate_normals(np.where(valid[..., None], xyz, np.nan)) if organised else None)
    return {"xyz": np.where(valid[..., None], xyz, np.nan), "valid": valid, "intensity": intensity,
            "normals": normals, "organised": organised}


def write_organised(path: str | os.PathLike, xyz: np.ndarray, intensity: np.ndarray | None = None,
                    keep: np.ndarray | None = None) -> int:
    """Write an (H, W, 3) grid as an organised cloud (``.pcd`` binary or ``.ply`` binary with
    ``obj_info width/height``): pixels without a point, or outside ``keep``, become NaN. Returns
    the number of points written (finite ones)."""
    path = Path(path)
    xyz = np.asarray(xyz, np.float32)
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise ValueError(f"{path}: xyz must have shape (H, W, 3), got {xyz.shape}")
    height, width = xyz.shape[:2]
    finite = np.isfinite(xyz).all(-1) & (np.ones(xyz.shape[:2], bool) if keep is None else np.asarray(keep, bool))
    xyz = np.where(finite[..., None], xyz, np.nan).reshape(-1, 3)
    value = np.zeros(width * height, np.float32) if intensity is None else np.asarray(intensity, np.float32).ravel()
    rows = np.empty(width * height, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
    rows["x"], rows["y"], rows["z"], rows["intensity"] = xyz[:, 0], xyz[:, 1], xyz[:, 2], value
    if path.suffix.lower() == ".pcd":
        header = ["# .PCD v0.7 - pcfilter organised scan", "VERSION 0.7", "FIELDS x y z intensity", "SIZE 4 4 4 4",
                  "TYPE F F F F", "COUNT 1 1 1 1", f"WIDTH {width}", f"HEIGHT {height}", "VIEWPOINT 0 0 0 1 0 0 0",
                  f"POINTS {width * height}", "DATA binary"]
    elif path.suffix.lower() == ".ply":
        header = ["ply", "format binary_little_endian 1.0", "comment pcfilter organised scan, NaN = no point",
                  f"obj_info width {width}", f"obj_info height {height}", f"element vertex {width * height}",
                  "property float x", "property float y", "property float z", "property float intensity",
                  "end_header"]
    else:
        raise ValueError(f"{path}: organised clouds are written as .pcd or .ply, not {path.suffix!r}")
    atomic_write_bytes(path, ("\n".join(header) + "\n").encode("ascii") + rows.tobytes())
    return int(finite.sum())


def write_points(path: str | os.PathLike, xyz: np.ndarray, intensity: np.ndarray | None = None) -> int:
    """Write (N, 3) points (and intensities) as an unorganised binary ``.ply`` or ``.pcd``. Returns N."""
    xyz = np.asarray(xyz, np.float32).reshape(1, -1, 3)
    value = None if intensity is None else np.asarray(intensity, np.float32).reshape(1, -1)
    path = Path(path)
    if path.suffix.lower() == ".ply":  # one row: no obj_info grid lines, so it reads back as unorganised
        rows = np.empty(xyz.shape[1], [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
        rows["x"], rows["y"], rows["z"] = xyz[0, :, 0], xyz[0, :, 1], xyz[0, :, 2]
        rows["intensity"] = 0 if value is None else value[0]
        header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(rows)}", "property float x",
                  "property float y", "property float z", "property float intensity", "end_header"]
        atomic_write_bytes(path, ("\n".join(header) + "\n").encode("ascii") + rows.tobytes())
        return len(rows)
    return write_organised(path, xyz, value)
