"""Organised point clouds in ``.pcd`` and ``.ply`` files: a width x height grid of points, NaN where a
pixel has no point, so that image filters (the U-Net, the morphological opening) can run on them.

How a file is recognised as organised:

* ``.pcd`` (PCL's format, ascii or binary): ``HEIGHT`` > 1 and ``WIDTH * HEIGHT == POINTS``, the
  points in row-major order, as PCL writes organised clouds.
* ``.ply`` (ascii or binary little endian): the header holds ``obj_info width W`` and
  ``obj_info height H`` and the vertex count is ``W * H``, in row-major order (``write_organised``
  writes such files). A ``.ply`` without them is read as a W x H grid in row-major order, with
  ``(0, 0, 0)`` where a pixel has no point, as PhoXi Control exports organised clouds, when the
  caller gives ``grid=(W, H)`` or when its vertex count is that of a sensor in ``PHOXI_SENSORS``.
* ``.ptx`` and ``.ptx.gz`` (``io.ptx``): always organised, ``0 0 0`` where there is no point.

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
import warnings
from pathlib import Path

import numpy as np

from pcfilter_lib.geometry.normals import estimate_normals
from pcfilter_lib.geometry.point_features import COORDINATE_LIMIT
from pcfilter_lib.io.clouds import CloudError, columns_mismatch, read_ply_file, read_table, write_ply_rows
from pcfilter_lib.io.files import atomic_write_bytes
from pcfilter_lib.io.lidar import LIDAR_SUFFIXES, open_lidar
from pcfilter_lib.io.ptx import (
    PTX_SUFFIXES,
    PointLines,
    is_ptx,
    read_ptx,
    read_ptx_header,
    suffix_of,
    write_ptx,
)
from pcfilter_lib.memory import available_memory

OPEN3D_SUFFIXES = (".pts", ".xyzn", ".xyzrgb")
# Every cloud format read, the one list that messages and the README give.
CLOUD_SUFFIXES = (".ply", ".pcd", ".xyz", *LIDAR_SUFFIXES, *PTX_SUFFIXES) + OPEN3D_SUFFIXES
# Sensor sizes (width, height) of Photoneo's scanners, whose organised .ply exports have no obj_info
# lines: a .ply of exactly W * H vertices is read as their grid. PhoXi 3D Scanner XS to XL at full
# and half resolution; MotionCam-3D in scanner and camera mode.
PHOXI_SENSORS = {(2064, 1544): "PhoXi 3D Scanner, full resolution", (1032, 772): "PhoXi 3D Scanner, half resolution",
                 (1680, 1200): "MotionCam-3D, scanner mode", (1120, 800): "MotionCam-3D, camera mode"}
# Peak memory of reading and filtering a cloud, per point: the point filter's neighbour lists,
# features and patches dominate. Filtering a 253 447-point scan raised the peak resident memory by
# 336 MB (1 390 bytes per point); rounded up for the reading.
BYTES_PER_POINT = 1500
# A PTX file is one grid whose filtering takes memory per grid position, with or without a point
# (the U-Net's channels and feature maps cover the whole image): `pcfilter filter` with the U-Net on a
# dense 2064 x 1544 scan peaks at 1.9 GB in its two processes together (benchmarks/ptx_filter_speed.py),
# 600 bytes per position; rounded up, with room for TensorFlow's own share.
BYTES_PER_PTX_POSITION = 750
_PCD_TYPES = {("F", 4): "<f4", ("F", 8): "<f8", ("U", 1): "u1", ("U", 2): "<u2", ("U", 4): "<u4", ("I", 1): "i1",
              ("I", 2): "<i2", ("I", 4): "<i4"}


def _pcd_header(path: Path, data: bytes) -> tuple[dict[str, list[str]], int]:
    """The header lines of a PCD file as {KEY: values} and the byte offset of its data."""
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
        raise CloudError(f"{path} is not a PCD file (no FIELDS or DATA line in its header)")
    if len(header["DATA"]) != 1:
        raise CloudError(f"{path}: the DATA line must name the data mode (ascii or binary), found "
                         f"{' '.join(header['DATA'])!r}")
    return header, offset


def _pcd_layout(path: Path, header: dict[str, list[str]]) -> tuple[np.dtype, list[int], int, int, int]:
    """(record dtype, COUNT per field, POINTS, WIDTH, HEIGHT) of a PCD header, checked."""
    fields = header["FIELDS"]

    def whole(key: str, default: list[str]) -> list[int]:
        values = header.get(key, default)
        if len(values) != len(default) or not all(v.isdigit() for v in values):
            raise CloudError(f"{path}: {key} {' '.join(values)!r} must be {len(default)} whole number"
                             f"{'s' * (len(default) > 1)} >= 0")
        return [int(v) for v in values]

    sizes, counts = whole("SIZE", ["4"] * len(fields)), whole("COUNT", ["1"] * len(fields))
    types = header.get("TYPE", ["F"] * len(fields))
    width = whole("WIDTH", ["1"])[0] if "WIDTH" in header else None
    height = whole("HEIGHT", ["1"])[0]
    n = whole("POINTS", ["0"])[0] if "POINTS" in header else (width or 0) * height
    width = n if width is None else width
    if len(types) != len(fields) or len(set(fields)) != len(fields) or 0 in counts:
        raise CloudError(f"{path}: FIELDS, SIZE, TYPE and COUNT must list one entry per field, each field once")
    try:
        dtype = np.dtype([(f, _PCD_TYPES[(t, s)], (c,)) for f, t, s, c in zip(fields, types, sizes, counts,
                                                                                strict=True)])
    except (KeyError, ValueError) as error:
        raise CloudError(f"{path}: unsupported PCD field layout {fields} {types} {sizes}") from error
    return dtype, counts, n, width, height


def read_pcd(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], int, int]:
    """Fields of a ``.pcd`` file (ascii or binary) as flat arrays, and its WIDTH and HEIGHT.

    Raises:
        CloudError: the header is damaged, the data mode is not ascii or binary, or the data is
            shorter than its POINTS or not numbers.
    """
    path = Path(path)
    data = path.read_bytes()
    header, offset = _pcd_header(path, data)
    dtype, counts, n, width, height = _pcd_layout(path, header)
    mode = header["DATA"][0].lower()
    body = data[offset:]
    if mode == "binary":
        if len(body) < n * dtype.itemsize:
            raise CloudError(f"{path}: the binary data is shorter than its {n} points")
        if len(body) >= (n + 1) * dtype.itemsize:
            raise CloudError(f"{path}: its header counts {n} points (POINTS), but its binary data holds "
                             f"{len(body) // dtype.itemsize}; the header is wrong or data was appended: export the "
                             "file again")
        rows = np.frombuffer(body, dtype, count=n)
    elif mode == "ascii":
        lines = body.decode("ascii", errors="replace").splitlines()
        if len(lines) < n:
            raise CloudError(f"{path}: the ascii data holds {len(lines)} lines, fewer than its {n} points")
        first = data[:offset].count(b"\n") + 1
        extra = sum(1 for line in lines[n:] if line.strip())
        if extra:
            raise CloudError(f"{path}: its header counts {n} points (POINTS), but the file holds {n + extra} point "
                             f"lines from line {first} on; the header is wrong or lines were appended: export the "
                             "file again")
        table = read_table(path, lines[:n], sum(counts), first)
        rows = np.empty(n, dtype)
        column = 0
        for f, c in zip(dtype.names, counts, strict=True):
            rows[f] = table[:, column:column + c]
            column += c
    else:
        raise CloudError(f"{path}: PCD data mode {mode!r} is not supported (save it as ascii or binary)")
    fields = {f: np.array(rows[f][:, 0] if c == 1 else rows[f]) for f, c in zip(dtype.names, counts, strict=True)}
    return fields, width, height


def estimate_points(path: str | os.PathLike) -> int:
    """The number of points in a cloud file, from its header (``.ply``, ``.pcd``) or, for text
    formats, from its size and the length of its first lines; read without loading the file. A
    header that declares more points than the file has bytes is not believed (the reader then says
    that the data is short)."""
    path = Path(path)
    if is_ptx(path):  # the header's grid; gzip hides the size of the text, and zeros compress to nothing
        return read_ptx_header(path).points
    if path.suffix.lower() in LIDAR_SUFFIXES:  # the header's count, once open_lidar has checked it
        return open_lidar(path).header.point_count
    with open(path, "rb") as file:
        head = file.read(65536)
    size = path.stat().st_size
    for line in head.split(b"\n")[:200]:
        words = line.decode("ascii", errors="replace").split()
        if words[:2] == ["element", "vertex"] and len(words) == 3 and words[2].isdigit():
            return min(int(words[2]), size)
        if words[:1] == ["POINTS"] and len(words) == 2 and words[1].isdigit():
            return min(int(words[1]), size)
    lines = [line for line in head.split(b"\n")[:-1] if line.strip()]
    if not lines:
        return 0 if size == 0 else size // 12
    return int(size / (sum(len(line) + 1 for line in lines) / len(lines)))


def check_fits(path: str | os.PathLike, bytes_per_point: int = BYTES_PER_POINT, available: int | None = None) -> int:
    """The estimated number of points of ``path`` (of a PTX file: its grid positions, each counted at
    ``BYTES_PER_PTX_POSITION``); a MemoryError with advice when filtering them would need more than
    ``available`` bytes (default: the memory the system has available now)."""
    points = estimate_points(path)
    available = available_memory() if available is None else available
    if is_ptx(path) and bytes_per_point == BYTES_PER_POINT:  # the grid's positions (estimate_points), not points
        bytes_per_point = BYTES_PER_PTX_POSITION
    need = points * bytes_per_point
    if need > available:
        raise MemoryError(f"{path} holds about {points / 1e6:.1f} million points; filtering them needs about "
                          f"{need / 1e9:.1f} GB of memory and {available / 1e9:.1f} GB are available. Thin the "
                          "cloud first (e.g. Open3D's voxel_down_sample) or cut it into parts, then filter those")
    return points


def read_xyz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """x, y, z arrays (float64) from a text file with one point per line (``x y z`` and optionally more
    columns, which are ignored; blank lines and lines starting with # are skipped).

    Raises:
        CloudError: a line is not numbers, or lines hold fewer than three numbers.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NumPy warns about an empty file; read_cloud says it holds no points
            table = np.loadtxt(path, dtype=np.float64, ndmin=2, comments="#")
    except ValueError as error:  # UnicodeDecodeError included
        mismatch = None
        if not isinstance(error, UnicodeDecodeError):
            with open(path, "rb") as file:
                mismatch = columns_mismatch(path, file, 1, comments="#")
        raise (mismatch or CloudError(f"{path} is not a text cloud of 'x y z' lines ({error})")) from error
    if table.size == 0:
        return {axis: np.zeros(0) for axis in "xyz"}
    if table.shape[1] < 3:
        raise CloudError(f"{path}: each line must start with x y z, found {table.shape[1]} numbers per line")
    return {axis: table[:, i] for i, axis in enumerate("xyz")}


def pts_count(path: Path) -> int | None:
    """The number of points a ``.pts`` file holds, once its first line's count has been checked against
    its point lines (Open3D's reader trusts the count: a file of fewer lines would come back padded with
    uninitialised memory); None for a file whose first line is no count (Open3D then reads no points).

    Raises:
        CloudError: the count and the lines disagree.
    """
    with open(path, "rb") as file:
        head = file.readline().split()
        if len(head) != 1 or not head[0].isdigit():
            return None
        count, lines, last = int(head[0]), 0, 1
        for number, line in enumerate(file, start=2):
            if line.strip():
                lines, last = lines + 1, number
    if lines != count:
        raise CloudError(f"{path}: its first line says {count} points, but the file holds {lines} point lines "
                         f"(lines 2 to {last}); correct the count on line 1, or export the file again")
    return count


def _read_open3d(path: Path) -> dict[str, np.ndarray]:
    import open3d as o3d  # deferred: only the formats that need Open3D pay for importing it

    count = pts_count(path) if path.suffix.lower() == ".pts" else None
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):  # no reader warnings on stderr
        cloud = o3d.io.read_point_cloud(str(path))
    points = np.asarray(cloud.points)
    if len(points) == 0:
        raise CloudError(f"Open3D read no points from {path}; is it a point cloud file?")
    if count is not None and len(points) != count:
        raise CloudError(f"{path}: Open3D read {len(points)} points of the {count} its first line and its lines say; "
                         "some lines are not 'x y z ...' numbers: mend the file or export it again")
    fields = {axis: points[:, i] for i, axis in enumerate("xyz")}
    if cloud.has_normals():
        fields.update({f"normal_{axis}": np.asarray(cloud.normals)[:, i] for i, axis in enumerate("xyz")})
    return fields


def _read_fields(path: Path, suffix: str, grid: tuple[int, int] | None = None
                 ) -> tuple[dict[str, np.ndarray], int, int, bool]:
    """(fields, width, height, organised) of a cloud file of a supported ``suffix``; ``grid`` (W, H)
    reads a .ply without ``obj_info`` lines as that grid."""
    if suffix == ".pcd":
        fields, width, height = read_pcd(path)
        return fields, width, height, height > 1
    if suffix == ".ply":
        fields, header = read_ply_file(path)
        sizes = header.obj_info
        if len(sizes) == 2:
            return fields, sizes["width"], sizes["height"], True
        if grid is not None:
            if grid[0] * grid[1] != header.count:
                raise CloudError(f"{path}: --grid {grid[0]}x{grid[1]} needs {grid[0] * grid[1]} vertices, the file "
                                 f"holds {header.count}; give the scan's own width x height")
            return _zero_is_missing(fields), grid[0], grid[1], True
        sensor = phoxi_sensor(header.count)
        if sensor is not None:
            return _zero_is_missing(fields), sensor[0], sensor[1], True
        return fields, header.count, 1, False
    if suffix in LIDAR_SUFFIXES:
        fields = _read_lidar(path)
    else:
        fields = read_xyz(path) if suffix == ".xyz" else _read_open3d(path)
    return fields, len(fields.get("x", ())), 1, False


def _read_lidar(path: Path) -> dict[str, np.ndarray]:
    """x, y, z (float64) and intensity (float32) of every point of a LAS or LAZ file (``io.lidar``), read
    whole: an unorganised cloud, as ``filter`` reads it in chunks."""
    chunks = list(open_lidar(path).chunks())
    xyz = np.concatenate([chunk["xyz"] for chunk in chunks])
    intensity = np.concatenate([chunk["intensity"] for chunk in chunks])
    return {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "intensity": intensity}


def phoxi_sensor(count: int) -> tuple[int, int] | None:
    """(width, height) of the sensor in ``PHOXI_SENSORS`` with ``count`` pixels, or None."""
    return next((size for size in PHOXI_SENSORS if size[0] * size[1] == count), None)


def _zero_is_missing(fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fields of a PhoXi grid export, where ``(0, 0, 0)`` marks a pixel without a point, with NaN there."""
    zero = (fields["x"] == 0) & (fields["y"] == 0) & (fields["z"] == 0)
    if not zero.any():
        return fields
    return {**fields, **{a: np.where(zero, np.nan, fields[a].astype(np.result_type(fields[a], np.float32)))
                         for a in "xyz"}}


def usable_points(xyz: np.ndarray, limit: float = COORDINATE_LIMIT, infinite: bool = False) -> tuple[np.ndarray, int]:
    """(..., 3) coordinates -> (...) bool mask of points that can be filtered, and how many finite
    points were left out for lying beyond ``limit`` (their distances overflow: ``COORDINATE_LIMIT``
    in double precision, ``FLOAT32_COORDINATE_LIMIT`` for filters that compute in single precision);
    with ``infinite``, points with an infinite coordinate and none NaN are counted among them too (in
    an organised grid NaN marks a pixel without a point, while an infinite coordinate is a point
    beyond every limit)."""
    finite = np.isfinite(xyz).all(-1)
    counted = ~np.isnan(xyz).any(-1) if infinite else finite
    if float(np.finfo(xyz.dtype).max) <= limit:  # such values never reach the limit
        return finite, int((counted & ~finite).sum())
    near = (np.abs(np.where(finite[..., None], xyz, 0)) <= np.asarray(limit, xyz.dtype)).all(-1)  # it fits
    return finite & near, int((counted & ~(finite & near)).sum())


def read_cloud(path: str | os.PathLike, available: int | None = None, grid: tuple[int, int] | None = None,
               lines: bool = False) -> dict:
    """A cloud file (``CLOUD_SUFFIXES``) as a scan-like dict.

    Args:
        path: the file.
        available: bytes of memory filtering may use (default: what the system has available now);
            files too large are refused before reading (``check_fits``).
        grid: (width, height) of a ``.ply`` exported without ``obj_info`` lines (PhoXi Control's
            organised export): read as that grid in row-major order, ``(0, 0, 0)`` = no point.
        lines: keep a PTX file's point lines, to write a filtered copy (``io.ptx.read_ptx``).

    Returns:
        ``xyz`` (H, W, 3) with NaN where there is no point, in the file's precision (float64 stays
        float64: site or map coordinates lie far from the origin); ``valid`` (H, W); ``intensity``
        (H, W) or None; ``normals`` (H, W, 3) or None; ``organised`` (False for an unorganised
        cloud, which comes as a 1 x N grid); ``far``, the number of points dropped for coordinates
        beyond ``COORDINATE_LIMIT``. Points with NaN or infinite coordinates count as missing. A PTX
        file also gives ``ptx`` (its header, kept for writing), ``scans`` (how many it holds;
        the first is read) and ``lines`` (its point lines with ``lines``, else None).

    Raises:
        FileNotFoundError: there is no such file.
        CloudError: the file cannot be read, holds no points or no point with usable coordinates.
        MemoryError: filtering it would need more memory than is available.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"point cloud {path} does not exist")
    suffix = suffix_of(path)
    if suffix not in CLOUD_SUFFIXES:
        raise CloudError(unknown_format(path))
    check_fits(path, available=available)
    if suffix in PTX_SUFFIXES:
        return _ptx_cloud(path, lines)
    fields, width, height, organised = _read_fields(path, suffix, grid)
    if not {"x", "y", "z"} <= set(fields):
        raise CloudError(f"{path}: the points need x, y and z fields, found {sorted(fields)}")
    n = len(fields["x"])
    if n == 0:
        raise CloudError(f"{path}: the cloud holds no points")
    if width * height != n:
        raise CloudError(f"{path}: width {width} x height {height} does not match its {n} points")
    shape = (height, width)
    precision = np.result_type(np.float32, *(fields[a].dtype for a in "xyz"))
    xyz = np.stack([fields[a] for a in "xyz"], -1).astype(precision).reshape(*shape, 3)
    valid, far = usable_points(xyz, infinite=organised)
    if not valid.any():
        raise CloudError(f"{path}: no point has finite coordinates (all NaN, infinite or beyond "
                         f"±{COORDINATE_LIMIT:.1e}); there is nothing to filter")
    xyz = np.where(valid[..., None], xyz, np.nan)
    intensity = fields.get("intensity")
    intensity = None if intensity is None else np.asarray(intensity, np.float32).reshape(shape)
    names = next((n3 for n3 in (("normal_x", "normal_y", "normal_z"), ("nx", "ny", "nz")) if set(n3) <= set(fields)),
                 None)
    with np.errstate(all="ignore"):  # huge coordinates give no normal (NaN), not warnings
        normals = (np.stack([fields[a] for a in names], -1).astype(np.float32).reshape(*shape, 3) if names else
                   estimate_normals(xyz) if organised else None)
    return {"xyz": xyz, "valid": valid, "intensity": intensity, "normals": normals, "organised": organised,
            "far": far}


def unknown_format(path: str | os.PathLike) -> str:
    """What to say of a file whose name ends in no cloud format that is read (``CLOUD_SUFFIXES``)."""
    suffix = suffix_of(Path(path))
    formats = f"a scan .npz or a cloud ({', '.join(CLOUD_SUFFIXES)})"
    if not suffix:
        return f"{path}: the name has no ending that says its format; rename it as {formats}"
    return f"{path}: cannot read {suffix!r} files; give {formats}"


def _ptx_cloud(path: Path, lines: bool) -> dict:
    """``read_cloud`` of a PTX file (``io.ptx.read_ptx``): an organised grid in the scanner's frame."""
    ptx = read_ptx(path, lines)
    xyz, valid = ptx["xyz"], ptx["valid"]
    usable, far = usable_points(xyz)
    if not usable.any():
        raise CloudError(f"{path}: no point has usable coordinates (every line is 0 0 0, or beyond "
                         f"±{COORDINATE_LIMIT:.1e}); there is nothing to filter")
    if far:
        xyz, valid = np.where(usable[..., None], xyz, np.nan), usable
    with np.errstate(all="ignore"):
        normals = estimate_normals(xyz)
    return {"xyz": xyz, "valid": valid, "intensity": ptx["intensity"], "normals": normals, "organised": True,
            "far": far, "ptx": ptx["header"], "scans": ptx["scans"], "lines": None if far else ptx["lines"]}


def _precision(xyz) -> np.dtype:
    """float64 for double-precision coordinates, else float32: outputs keep the input's precision."""
    return np.dtype(np.float64 if np.asarray(xyz).dtype == np.float64 else np.float32)


def write_organised(path: str | os.PathLike, xyz: np.ndarray, intensity: np.ndarray | None = None,
                    keep: np.ndarray | None = None) -> int:
    """Write an (H, W, 3) grid as an organised cloud (``.pcd`` binary or ``.ply`` binary with
    ``obj_info width/height``): pixels without a point, or outside ``keep``, become NaN. Coordinates
    are written in double precision when ``xyz`` is float64, else single. Returns the number of
    points written (finite ones)."""
    path = Path(path)
    precision = _precision(xyz)
    xyz = np.asarray(xyz, precision)
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise ValueError(f"{path}: xyz must have shape (H, W, 3), got {xyz.shape}")
    height, width = xyz.shape[:2]
    finite = np.isfinite(xyz).all(-1) & (np.ones(xyz.shape[:2], bool) if keep is None else np.asarray(keep, bool))
    xyz = np.where(finite[..., None], xyz, np.nan).reshape(-1, 3)
    value = np.zeros(width * height, np.float32) if intensity is None else np.asarray(intensity, np.float32).ravel()
    coordinate = precision.newbyteorder("<").str
    rows = np.empty(width * height, [("x", coordinate), ("y", coordinate), ("z", coordinate), ("intensity", "<f4")])
    rows["x"], rows["y"], rows["z"], rows["intensity"] = xyz[:, 0], xyz[:, 1], xyz[:, 2], value
    if path.suffix.lower() == ".pcd":
        size = precision.itemsize
        header = ["# .PCD v0.7 - pcfilter organised scan", "VERSION 0.7", "FIELDS x y z intensity",
                  f"SIZE {size} {size} {size} 4", "TYPE F F F F", "COUNT 1 1 1 1", f"WIDTH {width}",
                  f"HEIGHT {height}", "VIEWPOINT 0 0 0 1 0 0 0", f"POINTS {width * height}", "DATA binary"]
        atomic_write_bytes(path, ("\n".join(header) + "\n").encode("ascii") + rows.tobytes())
    elif path.suffix.lower() == ".ply":
        write_ply_rows(path, rows, comments=["pcfilter organised scan, NaN = no point"],
                       obj_info=[f"width {width}", f"height {height}"])
    else:
        raise ValueError(f"{path}: organised clouds are written as .pcd or .ply, not {path.suffix!r}")
    return int(finite.sum())


def write_points(path: str | os.PathLike, xyz: np.ndarray, intensity: np.ndarray | None = None) -> int:
    """Write (N, 3) points (and intensities) as an unorganised binary ``.ply`` or ``.pcd``, in double
    precision when ``xyz`` is float64, else single. Returns N."""
    precision = _precision(xyz)
    xyz = np.asarray(xyz, precision).reshape(1, -1, 3)
    value = None if intensity is None else np.asarray(intensity, np.float32).reshape(1, -1)
    path = Path(path)
    if path.suffix.lower() == ".ply":  # one row: no obj_info grid lines, so it reads back as unorganised
        coordinate = precision.newbyteorder("<").str
        rows = np.empty(xyz.shape[1], [("x", coordinate), ("y", coordinate), ("z", coordinate), ("intensity", "<f4")])
        rows["x"], rows["y"], rows["z"] = xyz[0, :, 0], xyz[0, :, 1], xyz[0, :, 2]
        rows["intensity"] = 0 if value is None else value[0]
        return write_ply_rows(path, rows)
    return write_organised(path, xyz, value)


def write_filtered(paths: list[str | os.PathLike], scan: dict, masks: list[np.ndarray],
                   lines: PointLines | None = None) -> None:
    """Write the points of ``scan`` selected by each mask to the path beside it (what a filter kept,
    what it removed), in the input's precision.

    Args:
        paths: ``.ply``, ``.pcd``, ``.ptx`` or ``.ptx.gz`` files, one per mask (extra masks are ignored).
        scan: a scan-like dict (``read_cloud``, ``io.scan.load_scan``) with ``xyz``, ``intensity``
            (or None) and ``organised``.
        masks: (H, W) bool arrays over the scan's grid.
        lines: the point lines of the PTX file the scan was read from (``io.ptx.PointLines``), for the
            PTX paths: kept points are written as that file holds them.

    A ``.pcd`` path of organised input keeps the grid (NaN where a mask is False), and so does a PTX
    path (``0 0 0 0`` where a mask is False, the input's PTX header kept); every other path gets the
    selected points as an unorganised cloud.

    Raises:
        ValueError: a PTX path for an unorganised cloud (PTX holds grids only).
    """
    for path, mask in zip(paths, masks, strict=False):
        if is_ptx(path):
            if not scan["organised"]:
                raise ValueError(f"{path}: PTX holds an organised grid and this input is an unorganised cloud; "
                                 "write it as .ply, .pcd, .xyz, .las or .laz")
            header = scan.get("ptx")
            if header is not None and (header.blocks, header.per_block) != np.shape(mask):
                header = None
            write_ptx(path, scan["xyz"], scan["intensity"], keep=mask, header=header, lines=lines)
        elif Path(path).suffix.lower() == ".pcd" and scan["organised"]:
            write_organised(path, scan["xyz"], scan["intensity"], keep=mask)
        else:
            intensity = None if scan["intensity"] is None else np.asarray(scan["intensity"])[mask]
            write_points(path, np.asarray(scan["xyz"])[mask], intensity)
