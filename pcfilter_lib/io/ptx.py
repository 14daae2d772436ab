"""PTX files (``.ptx``, or gzip-compressed ``.ptx.gz``): organised scans as text, the format Leica
Cyclone introduced and PhoXi Control (Photoneo's structured-light scanners) exports.

A PTX scan is a header of ten lines and then one line per grid position::

    A                      two whole numbers: the grid's size (see below)
    B
    st1 st2 st3            the scanner's registered position
    sx1 sx2 sx3            its registered axes X, Y, Z
    sy1 sy2 sy3
    sz1 sz2 sz3
    r11 r12 r13 0          a 4 x 4 rotation and translation, the translation in the last row
    r21 r22 r23 0
    r31 r32 r33 0
    tr1 tr2 tr3 1
    x y z intensity        A * B lines of 4 numbers, or of 7: x y z intensity r g b
    ...

``0 0 0`` coordinates mean that the position measured nothing. The two conventions disagree on
the first two lines, but not on the order of the points: the file holds A blocks of B points each.
Leica's header gives the number of columns first and lists the points column by column; PhoXi
Control gives the number of rows first (1544 for its 2064 x 1544 sensor) and lists the points row
by row. ``read_ptx`` returns the grid in file order, shape (A, B), one grid row per block: a PhoXi
scan comes out as the camera image (height, width), a Leica scan transposed (one grid row per scan
column). Neighbours in the file stay neighbours on the grid either way, which is what the image
filters need, and ``write_ptx`` writes the same order back.

Coordinates are returned as stored, in the scanner's own frame, and the header is kept (``header``)
so that a written file carries it unchanged: PTX stores each scan untransformed, with the header's
matrix taking it to the registered frame, and the filters work in the frame the grid was measured
in (PhoXi Control writes identity matrices, its points already in the coordinate space chosen on
export). ``registered`` applies the matrix for a user who wants the other frame.

A file of several scans: the first is read and ``scans`` says how many the file holds (the
command line says so on stderr); split the file to filter the others.

Labels of an organised scan, ``NAME.outliers`` or ``NAME.outliers.gz`` beside ``NAME.ptx`` (or
``NAME.ptx.gz``): one ``0`` or ``1`` line per PTX point line, in the same order, the positions
without a point included (1 = outlier; a position without a point must be 0).
"""

from __future__ import annotations

import gzip
import itertools
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcfilter_lib.io.files import CloudError, atomic_path

PTX_SUFFIXES = (".ptx", ".ptx.gz")
LABEL_SUFFIXES = (".outliers", ".outliers.gz")
HEADER_LINES = 10
CHUNK_LINES = 1 << 18  # point lines parsed or written at a time
IDENTITY_HEADER = np.r_[np.zeros((1, 3)), np.eye(3)], np.eye(4)  # PhoXi Control's: origin, axes; matrix
_FIX = ("check that the file is a whole PTX export (10 header lines, then one 'x y z intensity' or "
        "'x y z intensity r g b' line per point), or export it again")


def suffix_of(path: str | os.PathLike) -> str:
    """The format suffix of a file name, lower case: ``.ptx.gz`` and ``.outliers.gz`` as one
    suffix, otherwise the last one (``.ply``)."""
    name = Path(path).name.lower()
    for double in (".ptx.gz", ".outliers.gz"):
        if name.endswith(double):
            return double
    return Path(name).suffix


def is_ptx(path: str | os.PathLike) -> bool:
    return suffix_of(path) in PTX_SUFFIXES


def stem_of(path: str | os.PathLike) -> str:
    """The name without its format suffix (``gpu_006`` of ``gpu_006.ptx.gz``)."""
    name = Path(path).name
    return name[:len(name) - len(suffix_of(path))]


@dataclass
class PtxHeader:
    """The header of one PTX scan.

    Attributes:
        blocks: the first number, the count of blocks of points (PhoXi: image rows; Leica: columns).
        per_block: the second number, points per block (PhoXi: image columns; Leica: rows).
        pose: (4, 3) the scanner's registered position and its axes X, Y, Z.
        matrix: (4, 4) the transformation, translation in the last row (points are row vectors).
    """

    blocks: int
    per_block: int
    pose: np.ndarray
    matrix: np.ndarray

    @property
    def points(self) -> int:
        return self.blocks * self.per_block

    def lines(self) -> list[str]:
        """The ten header lines as written."""
        return [str(self.blocks), str(self.per_block), *(" ".join(_number(v) for v in row.tolist())
                                                        for row in (*self.pose, *self.matrix))]


def _number(value: float) -> str:
    """A header number as its shortest exact decimal, whole numbers without a point (``1``, not ``1.0``)."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _open(path: Path):
    return gzip.open(path, "rb") if suffix_of(path).endswith(".gz") else open(path, "rb")  # noqa: SIM115


def _number_line(path: Path, line_no: int, line: bytes, count: int, what: str) -> np.ndarray:
    words = line.split()
    try:
        values = np.array([float(w) for w in words])
    except ValueError:
        values = None
    if values is None or len(values) != count or not np.isfinite(values).all():
        shown = line.decode("ascii", errors="replace").strip()[:60]
        raise CloudError(f"{path}: header line {line_no} must hold {count} finite numbers ({what}), found "
                         f"{shown!r}; {_FIX}")
    return values


def _read_header(path: Path, file, first: bytes | None = None, start_line: int = 1) -> PtxHeader:
    """The header of the scan whose first line is ``first`` (or the next line of ``file``)."""
    lines = [first] if first is not None else []
    lines += list(itertools.islice(file, HEADER_LINES - len(lines)))
    if len(lines) < HEADER_LINES:
        raise CloudError(f"{path}: the PTX header is cut short: {len(lines)} of its {HEADER_LINES} lines are there; "
                         f"{_FIX}")
    sizes = []
    for i, what in enumerate(("the number of blocks of points", "the points per block")):
        word = lines[i].strip()
        if not word.isdigit() or int(word) == 0:
            shown = word.decode("ascii", errors="replace")[:40]
            raise CloudError(f"{path}: line {start_line + i} of the PTX header must be a whole number > 0 ({what}), "
                             f"found {shown!r}; {_FIX}")
        sizes.append(int(word))
    pose = np.stack([_number_line(path, start_line + 2 + i, lines[2 + i], 3, "the scanner's position and axes")
                     for i in range(4)])
    matrix = np.stack([_number_line(path, start_line + 6 + i, lines[6 + i], 4, "a row of the 4 x 4 transformation")
                       for i in range(4)])
    return PtxHeader(sizes[0], sizes[1], pose, matrix)


def read_ptx_header(path: str | os.PathLike) -> PtxHeader:
    """The header of the first scan of a PTX file, read without its points (for ``check_fits``).

    Raises:
        CloudError: the file is not gzip data where it should be, or its header is damaged.
    """
    path = Path(path)
    try:
        with _open(path) as file:
            return _read_header(path, file)
    except (OSError, EOFError, zlib.error) as error:
        raise CloudError(f"{path}: cannot be read as {'gzip-compressed ' * suffix_of(path).endswith('.gz')}"
                         f"PTX ({error}); {_FIX}") from error


# The lines of a position without a point as PhoXi Control writes them: skipped without parsing.
ZERO_LINES = frozenset((b"0 0 0 0\n", b"0 0 0 0\r\n", b"0 0 0 0", b"0 0 0 0 0 0 0\n", b"0 0 0 0 0 0 0\r\n"))


def _parse_chunk(path: Path, lines: list[bytes], first_line: int, table: np.ndarray, start: int,
                 texts: list | None = None) -> int | None:
    """Parse point lines into ``table`` rows from ``start`` on; returns the number of columns of the
    lines with a point (4 or 7) or None when all are ``0 0 0 0`` lines. ``texts``, where given, gets
    the lines of the points (not ``0 0 0``) joined and the end offset of each, as ``PointLines`` holds them."""
    rows = [i for i, line in enumerate(lines) if line not in ZERO_LINES]
    if not rows:
        if texts is not None:
            texts.append((b"", np.zeros(0, np.int64)))
        return None
    chosen = [lines[i] for i in rows]
    try:
        values = np.loadtxt(chosen, dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        values = None
    columns = None if values is None else values.shape[1]
    if values is None or columns not in (4, 7) or len(values) != len(chosen):
        columns = len(chosen[0].split())
        for i, line in zip(rows, chosen, strict=True):  # find the first bad line to name it
            words = line.split()
            try:
                [float(w) for w in words]
                good = len(words) in (4, 7) and len(words) == columns
            except ValueError:
                good = False
            if not good:
                shown = line.decode("ascii", errors="replace").strip()[:60]
                raise CloudError(f"{path}: line {first_line + i} must hold 4 numbers (x y z intensity) or 7 "
                                 f"(x y z intensity r g b), as the lines before it, found {shown!r}; {_FIX}")
        raise CloudError(f"{path}: the point lines from line {first_line} on are not rows of 4 or 7 numbers; {_FIX}")
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        line = first_line + rows[int(np.argmax(bad))]
        raise CloudError(f"{path}: line {line} holds NaN or infinite numbers; PTX marks a position without a "
                         f"point with 0 0 0; {_FIX}")
    table[start + np.asarray(rows), :columns] = values
    if texts is not None:
        point = (values[:, :3] != 0).any(axis=1)
        kept = [line for line, keep in zip(chosen, point.tolist(), strict=True) if keep]
        texts.append((b"".join(kept), np.cumsum(np.fromiter(map(len, kept), np.int64, len(kept)))))
    return columns


def read_ptx(path: str | os.PathLike, lines: bool = False) -> dict:
    """The first scan of a PTX file as an organised grid.

    Args:
        path: a ``.ptx`` or ``.ptx.gz`` file.
        lines: also keep the file's point lines (``PointLines``), so that a filtered copy is written
            with them as they are (``write_ptx(..., lines=...)``) instead of formatting every number
            again, which takes longer than reading them.

    Returns:
        ``xyz`` (A, B, 3) float64 in the scanner's frame (as stored), NaN where the file has
        ``0 0 0``; ``valid`` (A, B) bool; ``intensity`` (A, B) float32 (the file's fourth number, or,
        where that is the same for every point and the file has colours, as PhoXi Control writes
        textured scans, the grey level of r g b in [0, 1]); ``rgb`` (A, B, 3) float32 or None;
        ``header`` (``PtxHeader``); ``scans``, how many scans the file holds (only the first is read);
        ``lines``, the point lines (``PointLines``) or None.

    Raises:
        FileNotFoundError: there is no such file.
        CloudError: the header is damaged, the file holds fewer point lines than the header says,
            a line is not 4 or 7 numbers, a number is NaN or infinite, or the gzip data is damaged;
            the message names the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"point cloud {path} does not exist")
    try:
        with _open(path) as file:
            header = _read_header(path, file)
            n = header.points
            table = np.zeros((n, 7), np.float64)
            columns, done, texts, newline = None, 0, [] if lines else None, b"\n"
            while done < n:
                chunk = list(itertools.islice(file, min(CHUNK_LINES, n - done)))
                if not chunk:
                    raise CloudError(f"{path}: the header announces {header.blocks} x {header.per_block} = {n} point "
                                     f"lines, the file holds {done}; it is cut short: {_FIX}")
                found = _parse_chunk(path, chunk, HEADER_LINES + done + 1, table, done, texts)
                if found is not None and columns is not None and found != columns:
                    raise CloudError(f"{path}: some point lines hold {columns} numbers and others {found}; {_FIX}")
                if found is not None and columns is None:  # the file's line ending, for the zero lines
                    newline = b"\r\n" if next(x for x in chunk if x not in ZERO_LINES).endswith(b"\r\n") else b"\n"
                columns = columns or found
                done += len(chunk)
            scans = 1 + _count_more_scans(path, file, HEADER_LINES + n + 1)
    except (OSError, EOFError, zlib.error) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise CloudError(f"{path}: cannot be read as {'gzip-compressed ' * suffix_of(path).endswith('.gz')}PTX "
                         f"({error}); {_FIX}") from error
    shape = (header.blocks, header.per_block)
    xyz = table[:, :3].reshape(*shape, 3)
    valid = (xyz != 0).any(axis=-1)
    xyz = np.where(valid[..., None], xyz, np.nan)
    intensity = table[:, 3].reshape(shape).astype(np.float32)
    rgb = None
    if columns == 7:
        rgb = table[:, 4:7].reshape(*shape, 3).astype(np.float32)
        seen = intensity[valid]
        if seen.size and np.all(seen == seen[0]) and np.ptp(rgb[valid]) > 0:  # PhoXi: intensity 1, texture in rgb
            scale = 1.0 if rgb[valid].max() <= 1 else 255.0
            intensity = np.where(valid, rgb.mean(axis=-1) / scale, 0).astype(np.float32)
    if texts is not None and columns is not None:
        data, ends = texts[-1]
        if data and not data.endswith(b"\n"):  # the file's last line
            texts[-1] = data + newline, ends + np.where(np.arange(len(ends)) == len(ends) - 1, len(newline), 0)
        texts = PointLines(shape, valid.reshape(-1), texts, columns, b" ".join([b"0"] * columns) + newline)
    return {"xyz": xyz, "valid": valid, "intensity": np.where(valid, intensity, 0).astype(np.float32), "rgb": rgb,
            "header": header, "scans": scans, "lines": texts if columns is not None else None}


def _count_more_scans(path: Path, file, line_no: int) -> int:
    """How many more scans follow the first: each further header is read and its points skipped. A
    damaged later scan is counted as one (only the first is read)."""
    more = 0
    while True:
        first = next((line for line in file if line.strip()), None)
        if first is None:
            return more
        more += 1
        try:
            header = _read_header(path, file, first, line_no)
        except CloudError:
            return more
        skipped = sum(1 for _ in itertools.islice(file, header.points))
        if skipped < header.points:
            return more
        line_no += HEADER_LINES + header.points


def registered(xyz: np.ndarray, header: PtxHeader) -> np.ndarray:
    """(..., 3) points of a PTX scan in the registered frame: ``[x y z 1] @ matrix`` (NaN stays NaN)."""
    xyz = np.asarray(xyz, np.float64)
    return xyz @ header.matrix[:3, :3] + header.matrix[3, :3]


def _line_texts(xyz: np.ndarray, intensity: np.ndarray, rgb: np.ndarray | None) -> list[str]:
    """The point lines of measured points: double-precision coordinates as their shortest exact
    decimal, single-precision ones with the nine digits that give each float32 back (twice as fast)."""
    coordinates = "%r %r %r" if xyz.dtype == np.float64 else "%.9g %.9g %.9g"
    if rgb is None:
        line = coordinates + " %.9g\n"
        return [line % (x, y, z, i) for (x, y, z), i in zip(xyz.tolist(), intensity.tolist(), strict=True)]
    line = coordinates + " %.9g %.9g %.9g %.9g\n"
    return [line % (x, y, z, i, r, g, b)
            for (x, y, z), i, (r, g, b) in zip(xyz.tolist(), intensity.tolist(), rgb.tolist(), strict=True)]


@dataclass
class PointLines:
    """The text lines of a grid's measured points as a PTX file holds them (``read_ptx(...,
    lines=True)``), so that a filtered copy is written without formatting a number: formatting is
    the slow part of writing a PTX file.

    Attributes:
        shape: (A, B) the grid's size.
        point: (A * B,) bool, the positions with a point, in file order.
        chunks: per ``CHUNK_LINES`` positions, the lines of its points joined (bytes) and the end
            offset of each line in them.
        columns: 4 or 7 numbers per line.
        zero: the line of a position without a point, in the file's columns and line ending.
    """

    shape: tuple[int, int]
    point: np.ndarray
    chunks: list[tuple[bytes, np.ndarray]]
    columns: int
    zero: bytes


def _grid(path, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A * B, 3) coordinates in their precision (float64 stays, anything else float32) and the (A * B,)
    positions with a point (finite, not ``0 0 0``)."""
    xyz = np.asarray(xyz)
    xyz = xyz.astype(np.float64 if xyz.dtype == np.float64 else np.float32, copy=False)
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise ValueError(f"{path}: xyz must have shape (A, B, 3), got {xyz.shape}")
    flat = xyz.reshape(-1, 3)
    return flat, np.isfinite(flat).all(-1) & (flat != 0).any(-1)


def _format_chunk(flat, value, colours, rows: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The lines of positions ``rows`` joined, and the end offset of each."""
    texts = _line_texts(flat[rows], value[rows], None if colours is None else colours[rows])
    ends = np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)))
    return "".join(texts).encode("ascii"), ends


def _values(count: int, intensity, rgb) -> tuple[np.ndarray, np.ndarray | None]:
    value = np.ones(count, np.float32) if intensity is None else np.asarray(intensity, np.float32).reshape(-1)
    return value, None if rgb is None else np.asarray(rgb, np.float32).reshape(-1, 3)


def _assemble(data: bytes, ends: np.ndarray, formatted: np.ndarray, keep: np.ndarray, zero: bytes) -> bytes:
    """The lines of one chunk: the formatted line of each kept position (``data``, ``ends``: the lines
    of the ``formatted`` positions, in order), ``zero`` elsewhere; runs of kept or dropped positions
    are copied at once."""
    if not keep.size:
        return b""
    index = np.cumsum(formatted) - 1  # which formatted line each position has
    change = np.flatnonzero(keep[1:] != keep[:-1]) + 1
    view, parts = memoryview(data), []
    for a, b in zip([0, *change.tolist()], [*change.tolist(), keep.size], strict=True):
        if keep[a]:
            first, last = int(index[a]), int(index[b - 1])
            parts.append(view[int(ends[first - 1]) if first else 0:int(ends[last])])
        else:
            parts.append(zero * (b - a))
    return b"".join(parts)


def write_ptx(path: str | os.PathLike, xyz: np.ndarray, intensity: np.ndarray | None = None,
              keep: np.ndarray | None = None, header: PtxHeader | None = None, rgb: np.ndarray | None = None,
              lines: PointLines | None = None) -> int:
    """Write an (A, B, 3) grid as one PTX scan (``.ptx``, or gzip-compressed ``.ptx.gz``), atomically.

    Args:
        path: the file.
        xyz: the grid, in file order (``read_ptx``); NaN where there is no point. float64 is
            written as the shortest decimal that reads back the same double, float32 with nine
            digits, which read back the same float32.
        intensity: (A, B) the fourth number of each line (1 where None, as PhoXi Control writes).
        keep: (A, B) bool; a point outside it is written as ``0 0 0 0``, as one without a point.
        header: the header to keep (a read file's ``header``); None writes PhoXi Control's identity
            header, which says the points are in the frame wanted.
        rgb: (A, B, 3) colours: the lines then hold 7 numbers.
        lines: the point lines of the file this grid was read from (``read_ptx(..., lines=True)``):
            the points are written as that file holds them, colours included, without formatting
            a number, and ``intensity`` and ``rgb`` are not used.

    Returns:
        the number of points written (not ``0 0 0``; a point measured exactly at the origin would
        read back as none, as in every PTX file).

    Raises:
        ValueError: ``xyz`` is not (A, B, 3), the header's size differs from the grid's, ``lines``
            belong to another grid, or the name does not end in .ptx or .ptx.gz.
    """
    path = Path(path)
    if not is_ptx(path):
        raise ValueError(f"{path}: a PTX file ends in .ptx or .ptx.gz")
    flat, point = _grid(path, xyz)
    shape = np.shape(xyz)[:2]
    if header is None:
        header = PtxHeader(shape[0], shape[1], IDENTITY_HEADER[0], IDENTITY_HEADER[1])
    if (header.blocks, header.per_block) != shape:
        raise ValueError(f"{path}: the header's {header.blocks} x {header.per_block} differs from the grid's {shape}")
    if lines is not None and (lines.shape != shape or not np.array_equal(lines.point, point)):
        raise ValueError(f"{path}: the point lines belong to another grid than xyz")
    mask = point if keep is None else point & np.asarray(keep, bool).reshape(-1)
    value, colours = (None, None) if lines is not None else _values(mask.size, intensity, rgb)
    zero = lines.zero if lines is not None else b"0 0 0 0\n" if rgb is None else b"0 0 0 0 0 0 0\n"
    with atomic_path(path) as tmp:
        opened = gzip.open(tmp, "wb", compresslevel=1) if suffix_of(path) == ".ptx.gz" else open(tmp, "wb")  # noqa: SIM115
        with opened as file:
            file.write(("\n".join(header.lines()) + "\n").encode("ascii"))
            for number, start in enumerate(range(0, mask.size, CHUNK_LINES)):
                part = mask[start:start + CHUNK_LINES]
                if lines is not None:
                    data, ends = lines.chunks[number]
                    formatted = point[start:start + CHUNK_LINES]
                else:  # only the kept points
                    data, ends = _format_chunk(flat, value, colours, start + np.flatnonzero(part))
                    formatted = part
                file.write(_assemble(data, ends, formatted, part, zero))
    return int(mask.sum())


def label_path(path: str | os.PathLike) -> Path | None:
    """``NAME.outliers`` or ``NAME.outliers.gz`` beside ``NAME.ptx[.gz]`` (the first that exists), or None."""
    path = Path(path)
    for suffix in LABEL_SUFFIXES:
        candidate = path.with_name(stem_of(path) + suffix)
        if candidate.is_file():
            return candidate
    return None


def read_ptx_labels(path: str | os.PathLike, valid: np.ndarray) -> np.ndarray:
    """(A, B) bool outlier flags of a PTX scan, from the labels file beside it (``label_path``).

    Args:
        path: the PTX file.
        valid: (A, B) its positions with a point (``read_ptx``).

    Raises:
        FileNotFoundError: there is no labels file.
        CloudError: it is not one 0 or 1 per line, its line count differs from the PTX's point
            lines, or it marks a position without a point as an outlier.
    """
    labels = label_path(path)
    if labels is None:
        raise FileNotFoundError(f"{path} has no labels beside it: {stem_of(path)}.outliers (or .outliers.gz), one "
                                "0/1 line per PTX point line, 1 = outlier")
    try:
        data = gzip.open(labels, "rb").read() if suffix_of(labels).endswith(".gz") else labels.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise CloudError(f"{labels}: cannot be read ({error})") from error
    words = np.array(data.split())
    n = valid.size
    if len(words) != n:
        raise CloudError(f"{labels}: {len(words)} labels for the {n} point lines of {Path(path).name} (one per line, "
                         "positions without a point included); the two files must match")
    good = (words == b"0") | (words == b"1")
    if not good.all():
        bad = int(np.argmax(~good))
        raise CloudError(f"{labels}: line {bad + 1} is {words[bad].decode('ascii', errors='replace')[:20]!r}; "
                         "each line must be 0 (true surface or no point) or 1 (outlier)")
    outlier = (words == b"1").reshape(valid.shape)
    stray = outlier & ~valid
    if stray.any():
        line = int(np.argmax(stray.reshape(-1))) + 1
        raise CloudError(f"{labels}: line {line} marks an outlier where {Path(path).name} has no point "
                         f"({int(stray.sum())} such lines); the labels belong to another scan")
    return outlier
