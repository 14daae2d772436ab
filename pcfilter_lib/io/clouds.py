"""Point-cloud files with per-point labels: a scan to ``.ply`` and to the PointCleanNet pair.

* ``.ply`` (binary little endian): x, y, z (float32), red, green, blue (uchar; the label or kind as a
  colour, so any viewer shows them), and the scalar properties ``label``, ``kind`` (uchar) and
  ``intensity`` (float32). Open3D reads the points and colours; ``read_ply`` reads everything.
* PointCleanNet: ``name.xyz`` with one ``x y z`` line per point and ``name.outliers`` with one
  ``1`` (outlier = artefact) or ``0`` line per point.

Only pixels with a point (label 0 or 1) are written, in row-major pixel order. ``cloud_scan`` and
``scan_cloud`` go the other way: a bare (N, 3) cloud as a 1 x N scan-like dict, which the filters
and ``filtering.evaluate_filter`` read.

Every PLY file pcfilter writes gets its header from ``ply_header`` (``write_ply_rows``), and every
PLY it reads goes through ``read_ply_header``. A file that cannot be read raises ``CloudError``
(a ValueError) naming the file and what is wrong with it.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcfilter_lib.geometry.point_checks import check_points
from pcfilter_lib.io.files import CloudError, atomic_path, atomic_write_bytes, atomic_write_text
from pcfilter_lib.io.lidar import LIDAR_SUFFIXES, LidarStream, LidarWriter, open_lidar
from pcfilter_lib.labels import KIND_COLOURS, LABEL_COLOURS

_PLY_TYPES = {"float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8", "uchar": "u1", "uint8": "u1",
              "char": "i1", "int8": "i1", "ushort": "<u2", "uint16": "<u2", "short": "<i2", "int16": "<i2",
              "uint": "<u4", "uint32": "<u4", "int": "<i4", "int32": "<i4"}
# The name written for each NumPy type (the first of its names above).
_PLY_NAMES = {np.dtype(t).str: name for name, t in reversed(_PLY_TYPES.items())}


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
    return write_ply_rows(path, rows, comments=["pcfilter scan: label 1 true, 0 artefact"])


def ply_header(count: int, record: np.dtype, comments: Sequence[str] = (), obj_info: Sequence[str] = ()) -> bytes:
    """The header of a binary little-endian PLY file whose ``count`` vertices are rows of ``record``.

    Args:
        count: the number of vertices.
        record: a structured dtype; each field becomes a vertex property of its type (float32 ->
            ``float``, float64 -> ``double``, uint8 -> ``uchar``...), in order.
        comments: ``comment`` lines.
        obj_info: ``obj_info`` lines, e.g. ``"width 640"`` for an organised grid.

    Returns:
        the ASCII header, ``end_header`` and its line end included.

    Raises:
        ValueError: a field has a type PLY cannot hold.
    """
    lines = ["ply", "format binary_little_endian 1.0", *(f"comment {c}" for c in comments),
             *(f"obj_info {o}" for o in obj_info), f"element vertex {count}"]
    for name in record.names:
        kind = record.fields[name][0].newbyteorder("<").str
        if kind not in _PLY_NAMES:
            raise ValueError(f"PLY has no type for field {name!r} of dtype {record.fields[name][0]}")
        lines.append(f"property {_PLY_NAMES[kind]} {name}")
    return ("\n".join([*lines, "end_header"]) + "\n").encode("ascii")


def write_ply_rows(path: str | os.PathLike, rows: np.ndarray, comments: Sequence[str] = (),
                   obj_info: Sequence[str] = ()) -> int:
    """Write a structured array of vertices as a binary little-endian ``.ply`` (atomically); returns
    the number of vertices. The header comes from ``ply_header``."""
    rows = np.ascontiguousarray(rows, rows.dtype.newbyteorder("<"))
    atomic_write_bytes(path, ply_header(len(rows), rows.dtype, comments, obj_info) + rows.tobytes())
    return len(rows)


@dataclass
class PlyHeader:
    """What the header of a PLY file says about its vertices.

    Attributes:
        format: ``ascii`` or ``binary_little_endian``.
        count: the number of vertices.
        record: one vertex as a structured dtype (little endian).
        obj_info: the ``obj_info`` (or ``comment``) ``width`` / ``height`` entries, as whole numbers.
        start: the byte offset at which the vertex data begins.
        others: whether other elements (faces, edges) follow the vertices, so that the file holds more
            than the vertex data.
    """

    format: str
    count: int
    record: np.dtype
    obj_info: dict[str, int]
    start: int
    others: bool = False


def _whole(path, line: str, text: str) -> int:
    """``text`` as a whole number >= 0, or a CloudError naming the file and the line."""
    if not text.isdigit():
        raise CloudError(f"{path}: {line.strip()!r}: {text!r} is not a whole number >= 0; the header is damaged")
    return int(text)


def read_ply_header(path: str | os.PathLike, data: bytes) -> PlyHeader:
    """Parse the header of the PLY file ``path`` whose bytes are ``data``.

    Raises:
        CloudError: it is not a PLY file, its header is cut short or damaged (a count that is not a
            whole number, an unknown type, a list property), or it has no vertices with properties.
    """
    if not data.startswith(b"ply"):
        raise CloudError(f"{path} is not a PLY file (it does not start with 'ply')")
    end = data.find(b"end_header")
    if end < 0:
        raise CloudError(f"{path} is not a complete PLY file: its header has no end_header line")
    line_end = data.find(b"\n", end)
    if line_end < 0 or data[end + len(b"end_header"):line_end].strip():
        raise CloudError(f"{path}: 'end_header' is not followed by a line end; the file is cut short or damaged")
    fmt, count, element, fields, obj_info, others = None, None, None, [], {}, False
    for line in data[:end].decode("ascii", errors="replace").splitlines()[1:]:
        words = line.split()
        if words[:1] == ["format"]:
            fmt = words[1] if len(words) > 1 else ""
        elif words[:1] == ["element"]:
            if len(words) != 3:
                raise CloudError(f"{path}: {line.strip()!r} must read 'element NAME COUNT'")
            element = words[1]
            if element == "vertex":
                count = _whole(path, line, words[2])
            elif count is None:
                raise CloudError(f"{path}: elements before 'vertex' are not supported")
            else:
                others = True
        elif words[:1] == ["property"] and element == "vertex":
            if len(words) != 3 or words[1] not in _PLY_TYPES:
                raise CloudError(f"{path}: vertex property {' '.join(words[1:])!r} is not supported "
                                 f"(use one of {', '.join(sorted(_PLY_TYPES))})")
            if words[2] in (name for name, _ in fields):
                raise CloudError(f"{path}: vertex property {words[2]!r} is declared twice")
            fields.append((words[2], _PLY_TYPES[words[1]]))
        elif len(words) == 3 and words[1] in ("width", "height") and words[0] in ("obj_info", "comment"):
            if words[0] == "obj_info" or words[2].isdigit():
                obj_info[words[1]] = _whole(path, line, words[2])
    if fmt not in ("binary_little_endian", "ascii"):
        raise CloudError(f"{path}: PLY format {fmt!r} is not supported (use binary_little_endian or ascii)")
    if count is None or not fields:
        raise CloudError(f"{path}: no vertex element with properties in the header")
    return PlyHeader(fmt, count, np.dtype(fields), obj_info, line_end + 1, others)


def more_vertices(path, header: PlyHeader, size: int) -> CloudError | None:
    """The error for a binary PLY whose vertex data (``size`` bytes after the header) holds more vertices
    than its header counts, with no other element after them; None where it does not."""
    extra = size - header.count * header.record.itemsize
    if header.others or header.format != "binary_little_endian" or extra < header.record.itemsize:
        return None
    held = size // header.record.itemsize
    return CloudError(f"{path}: its header counts {header.count} vertices, but its vertex data holds "
                      f"{'at least ' * bool(size % header.record.itemsize)}{held}; the header's count is wrong or "
                      "data was appended: export the file again")


def columns_mismatch(path, lines: Sequence, first_line: int, expected: int | None = None,
                     comments: str | None = None, why: str = "as the header says") -> CloudError | None:
    """The error naming the first of the text ``lines`` (``first_line`` being the file's line number of
    the first) whose count of values differs from ``expected`` (``why``: where that count comes from), or
    from the first line's where ``expected`` is None (blank lines, and with ``comments`` the text after
    it, skipped); None where every line has as many."""
    for number, line in enumerate(lines, start=first_line):
        text = line.decode("ascii", errors="replace") if isinstance(line, bytes) else line
        words = (text.split(comments, 1)[0] if comments else text).split()
        if not words:
            continue
        if expected is None:
            expected, why = len(words), f"as on line {number}"
        elif len(words) != expected:
            return CloudError(f"{path}, line {number}: {len(words)} value{'s' * (len(words) != 1)}, where "
                              f"{expected} are expected ({why}); every line of a cloud must have as many "
                              "columns: mend the file or export it again")
    return None


def read_ply(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every vertex property of a ``.ply`` (binary little endian or ascii) as arrays, e.g. x, y, z, label.

    Raises:
        FileNotFoundError: there is no such file.
        CloudError: the header is damaged (``read_ply_header``) or the vertex data is shorter than
            the header says or not numbers.
    """
    return read_ply_file(path)[0]


def read_ply_file(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], PlyHeader]:
    """``read_ply`` and the file's header (for its ``obj_info`` grid size), from one reading."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"point cloud {path} does not exist")
    data = path.read_bytes()
    header = read_ply_header(path, data)
    count, record = header.count, header.record
    short = CloudError(f"{path}: the vertex data is shorter than the header says ({count} vertices)")
    if header.format == "binary_little_endian":
        if len(data) - header.start < count * record.itemsize:
            raise short
        more = more_vertices(path, header, len(data) - header.start)
        if more is not None:
            raise more
        rows = np.frombuffer(data, record, count=count, offset=header.start)
    else:
        lines = data[header.start:].decode("ascii", errors="replace").splitlines()
        if len(lines) < count:
            raise short
        first = data[:header.start].count(b"\n") + 1
        extra = sum(1 for line in lines[count:] if line.strip())
        if extra and not header.others:
            raise CloudError(f"{path}: its header counts {count} vertices, but the file holds {count + extra} "
                             f"vertex lines (lines {first} to {first + len(lines) - 1}); the header's count is "
                             "wrong or lines were appended: export the file again")
        table = read_table(path, lines[:count], len(record.names), first)
        rows = np.empty(count, record)
        for i, name in enumerate(record.names):
            rows[name] = table[:, i]
    return {name: np.array(rows[name]) for name in record.names}, header


def read_table(path, lines: Sequence[str], columns: int, first_line: int = 1) -> np.ndarray:
    """(len(lines), columns) float64 numbers from text lines of ``columns`` numbers each; a line with
    another count is named by its number in the file (``first_line`` being the first's)."""
    if not lines:
        return np.zeros((0, columns))
    try:
        table = np.loadtxt(lines, dtype=np.float64, ndmin=2, comments=None)
    except ValueError as error:
        mismatch = columns_mismatch(path, lines, first_line, columns)
        raise (mismatch or CloudError(f"{path}: the point data is not rows of numbers ({error})")) from error
    if table.shape != (len(lines), columns):
        raise CloudError(f"{path}: expected {len(lines)} rows of {columns} numbers as the header says, found "
                         f"{table.shape[0]} rows of {table.shape[1]}")
    return table


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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NumPy warns about an empty file; the checks below say what is wrong
            xyz = np.loadtxt(xyz_path, dtype=np.float32, ndmin=2)
            flags = np.loadtxt(outliers_path, dtype=np.float64, ndmin=1)
    except ValueError as error:
        raise CloudError(f"{stem}: not a PointCleanNet pair ({error})") from error
    if xyz.size and xyz.shape[1] != 3:
        raise CloudError(f"{xyz_path}: each line must hold x y z, found {xyz.shape[1]} numbers")
    if len(xyz) != len(flags):
        raise CloudError(f"{stem}: {len(xyz)} points but {len(flags)} outlier flags; the two files must match")
    if not np.isin(flags, (0, 1)).all():
        raise CloudError(f"{outliers_path}: flags must be 0 or 1")
    return xyz.reshape(-1, 3), flags.astype(bool)


# ---------------------------------------------------------------------------------------------
# Streaming: clouds larger than memory, read and written in chunks

CHUNK_POINTS = 1 << 20  # points per chunk read or written
STREAM_SUFFIXES = (".ply", ".xyz", *LIDAR_SUFFIXES)  # unorganised clouds that can be read in chunks
WRITE_SUFFIXES = (".ply", ".pcd", ".xyz", *LIDAR_SUFFIXES)  # what CloudWriter writes


@dataclass
class CloudStream:
    """An unorganised cloud file read chunk by chunk: a binary little-endian ``.ply`` without an
    organised grid, or an ``.xyz`` text file (``x y z`` first on each line; blank and ``#`` lines
    skipped). ``open_stream`` checks the header; ``chunks`` reads the file again each time.

    Attributes:
        path: the file.
        header: the PLY header, or None for ``.xyz``.
        precision: float64 when the file holds double-precision coordinates, else float32.
    """

    path: Path
    header: PlyHeader | None
    precision: np.dtype

    def chunks(self, size: int = CHUNK_POINTS):
        """Yield dicts ``xyz`` ((n, 3), in ``precision``) and ``intensity`` ((n,) float32 or None)."""
        if self.header is None:
            yield from self._xyz_chunks(size)
            return
        record, count = self.header.record, self.header.count
        with open(self.path, "rb") as file:
            file.seek(self.header.start)
            for start in range(0, count, size):
                rows = np.fromfile(file, record, count=min(size, count - start))
                if len(rows) < min(size, count - start):
                    raise CloudError(f"{self.path}: the vertex data is shorter than the header says ({count} vertices)")
                xyz = np.stack([rows[a] for a in "xyz"], -1).astype(self.precision)
                intensity = rows["intensity"].astype(np.float32) if "intensity" in record.names else None
                yield {"xyz": xyz, "intensity": intensity}

    def _xyz_chunks(self, size: int):
        first, columns = 1, None  # the file's line number of each chunk's first line; the first line's columns
        with open(self.path, "rb") as file:
            while lines := list(itertools.islice(file, size)):  # stops at the end, however large size is
                table = _xyz_table(self.path, lines, first, columns)
                columns = table.shape[1] if len(table) and columns is None else columns
                first += len(lines)
                if len(table):
                    yield {"xyz": table[:, :3], "intensity": None}
                if len(lines) < size:
                    return

    def points(self, size: int = CHUNK_POINTS):
        """Yield the coordinates only, chunk by chunk (for ``filters.point_tiles``)."""
        for chunk in self.chunks(size):
            yield chunk["xyz"]


def _xyz_table(path, lines: list[bytes], first_line: int = 1, columns: int | None = None) -> np.ndarray:
    """(n, >= 3) float64 numbers of ``x y z ...`` text lines (blank and # lines skipped), the first being
    line ``first_line`` of the file, each with ``columns`` values (None: as many as the first)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an all-blank chunk: no rows, said below
            table = np.loadtxt([line.decode("ascii") for line in lines], dtype=np.float64, ndmin=2, comments="#")
    except (ValueError, UnicodeDecodeError) as error:
        mismatch = None if isinstance(error, UnicodeDecodeError) else columns_mismatch(
            path, lines, first_line, columns, "#", "as on the lines before")
        raise (mismatch or CloudError(f"{path} is not a text cloud of 'x y z' lines ({error})")) from error
    if table.size and columns is not None and table.shape[1] != columns:
        raise columns_mismatch(path, lines, first_line, columns, "#", "as on the lines before")
    if table.size and table.shape[1] < 3:
        raise CloudError(f"{path}: each line must start with x y z, found {table.shape[1]} numbers per line")
    return table.reshape(-1, max(table.shape[1], 3)) if table.size else np.zeros((0, 3))


def open_stream(path: str | os.PathLike) -> CloudStream | LidarStream | None:
    """A ``CloudStream`` for an unorganised binary ``.ply`` or an ``.xyz`` file, a ``LidarStream``
    (``io.lidar``, whose chunks also carry the LAS records) for a ``.las`` or ``.laz`` file; None for
    any other file (organised, ascii PLY, another format), which is read whole.

    Raises:
        FileNotFoundError: there is no such file.
        CloudError: a PLY header is damaged or lacks x, y or z; a LAS file fails ``open_lidar``'s checks.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"point cloud {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in LIDAR_SUFFIXES:
        return open_lidar(path)
    if suffix == ".xyz":
        return CloudStream(path, None, np.dtype(np.float64))
    if suffix != ".ply":
        return None
    with open(path, "rb") as file:
        head = file.read(1 << 16)
    header = read_ply_header(path, head)
    if header.format != "binary_little_endian" or len(header.obj_info) == 2:
        return None
    more = more_vertices(path, header, path.stat().st_size - header.start)
    if more is not None:
        raise more
    if not {"x", "y", "z"} <= set(header.record.names):
        raise CloudError(f"{path}: the points need x, y and z fields, found {sorted(header.record.names)}")
    double = any(header.record.fields[a][0] == np.float64 for a in "xyz")
    return CloudStream(path, header, np.dtype(np.float64 if double else np.float32))


class CloudWriter:
    """Write an unorganised cloud chunk by chunk to ``.ply`` (binary), ``.pcd`` (binary), ``.xyz``,
    ``.las`` or ``.laz``, atomically: the file appears under its name only when ``close`` is reached
    without error.

    ``count`` points must be written in all, each with x y z (in ``precision``) and, for PLY and
    PCD, ``intensity`` (0 where none) and the scalar properties named in ``scalars`` (float32), e.g.
    ``keep_probability``. LAS and LAZ are written by ``io.lidar.LidarWriter`` under ``header``
    (``io.lidar.lidar_header``, which holds the scalars as extra-bytes dimensions). ``comment`` is
    the PLY and PCD header's note (None: none in a PLY header, none after the PCD version line). Use
    as a context manager.
    """

    def __init__(self, path: str | os.PathLike, count: int, precision=np.float32, scalars: Sequence[str] = (),
                 header=None, comment: str | None = "pcfilter filtered cloud"):
        self.path, self.count, self.written, self.comment = Path(path), int(count), 0, comment
        self.suffix = self.path.suffix.lower()
        if self.suffix not in WRITE_SUFFIXES:
            raise ValueError(f"{self.path}: clouds are written as {', '.join(WRITE_SUFFIXES)}, not {self.suffix!r}")
        if (self.suffix in LIDAR_SUFFIXES) != (header is not None):
            raise ValueError(f"{self.path}: a LAS header is given for, and only for, a .las or .laz file")
        self.header, self._lidar = header, None
        coordinate = np.dtype(precision).newbyteorder("<").str
        self.record = np.dtype([(a, coordinate) for a in "xyz"] + [("intensity", "<f4")]
                               + [(name, "<f4") for name in scalars])
        self.format = "%.17g" if np.dtype(precision) == np.float64 else "%.9g"

    def __enter__(self) -> CloudWriter:
        self._atomic = atomic_path(self.path)
        self._file = open(self._atomic.__enter__(), "wb")  # noqa: SIM115  (closed in __exit__)
        if self.suffix == ".ply":
            self._file.write(ply_header(self.count, self.record, comments=[self.comment] if self.comment else []))
        elif self.suffix == ".pcd":
            fields = self.record.names
            header = ["# .PCD v0.7" + (f" - {self.comment}" if self.comment else ""), "VERSION 0.7",
                      f"FIELDS {' '.join(fields)}",
                      "SIZE " + " ".join(str(self.record.fields[f][0].itemsize) for f in fields),
                      "TYPE " + " ".join("F" for _ in fields), "COUNT " + " ".join("1" for _ in fields),
                      f"WIDTH {self.count}", "HEIGHT 1", "VIEWPOINT 0 0 0 1 0 0 0", f"POINTS {self.count}",
                      "DATA binary"]
            self._file.write(("\n".join(header) + "\n").encode("ascii"))
        elif self.suffix in LIDAR_SUFFIXES:
            self._lidar = LidarWriter(self._file, self.header, compress=self.suffix == ".laz")
        return self

    def write(self, xyz: np.ndarray, intensity: np.ndarray | None = None, records=None, noise=None,
              **scalars: np.ndarray) -> None:
        """Append points: (n, 3) coordinates, (n,) intensities, and (n,) values of each scalar. For
        LAS and LAZ, also the points' LAS ``records`` (written bit for bit, from a LAS input) and
        ``noise``, the points classified as noise (see ``io.lidar.LidarWriter.write``)."""
        xyz = np.asarray(xyz).reshape(-1, 3)
        if self._lidar is not None:
            self._lidar.write(xyz, intensity, records, noise, **scalars)
        elif records is not None or noise is not None:
            raise ValueError(f"{self.path}: LAS records and noise classes are written to .las or .laz files only")
        elif self.suffix == ".xyz":
            np.savetxt(self._file, xyz, fmt=self.format)
        else:
            rows = np.zeros(len(xyz), self.record)
            for i, axis in enumerate("xyz"):
                rows[axis] = xyz[:, i]
            if intensity is not None:
                rows["intensity"] = intensity
            for name, values in scalars.items():
                rows[name] = values
            self._file.write(rows.tobytes())
        self.written += len(xyz)

    def __exit__(self, kind, error, trace) -> bool:
        if self._lidar is not None and error is None:
            try:
                self._lidar.close()  # the final header; after an error the file is dropped anyway
            except BaseException as problem:
                self._file.close()
                self._atomic.__exit__(type(problem), problem, problem.__traceback__)
                raise
        try:
            self._file.close()
        except OSError as problem:  # a full disk shows here, as the last buffered bytes go out: drop the file
            if error is None:
                self._atomic.__exit__(type(problem), problem, problem.__traceback__)  # raises it, naming the file
                raise
        if error is None and self.written != self.count:  # a bug in the caller: no file under the name
            problem = RuntimeError(f"{self.path}: {self.written} points written, the header says {self.count}")
            self._atomic.__exit__(RuntimeError, problem, None)
            raise problem
        return bool(self._atomic.__exit__(kind, error, trace))
