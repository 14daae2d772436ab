"""OFF triangle meshes as ModelNet ships them, read strictly and written atomically.

Real ModelNet files are not always clean OFF: some fuse the keyword with the counts line
(``OFF1234 5678 0``), some use CRLF line ends, and faces may be polygons with more than three corners.
``read_off`` accepts all of that and refuses anything it cannot read with the file and line number.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pcfilter_lib.io.files import atomic_write_text


class OffError(ValueError):
    """A malformed OFF file; the message names the file and the line."""


def _content_lines(text: str):
    """(line number, tokens) for every line that holds more than whitespace and ``#`` comments."""
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split("#", 1)[0].split()
        if tokens:
            yield number, tokens


class _Lines:
    """The content lines of an OFF file, one at a time, with errors that name the file and the line."""

    def __init__(self, path: Path, text: str):
        self.path, self.number = path, 0
        self._lines = _content_lines(text)

    def fail(self, line: int | str, why: str) -> OffError:
        return OffError(f"{self.path}, line {line}: {why}")

    def next(self, missing: str) -> list[str]:
        """The tokens of the next content line; an OffError saying ``missing`` at the end of the file."""
        try:
            self.number, tokens = next(self._lines)
        except StopIteration:
            raise self.fail("end" if self.number else 1, missing) from None
        return tokens

    def rest(self) -> tuple[int, list[str]] | None:
        return next(self._lines, None)


def _read_counts(lines: _Lines, size: int) -> tuple[int, int]:
    """The vertex and face counts of the header, checked against the file's ``size`` in bytes."""
    tokens = lines.next("the file is empty; expected the OFF keyword")
    head = tokens[0]
    if not head.upper().startswith("OFF"):
        raise lines.fail(lines.number, f"expected the OFF keyword, found {head[:20]!r}")
    counts = ([head[3:]] if len(head) > 3 else []) + tokens[1:]  # 'OFF1234 5678 0' fuses keyword and counts
    if not counts:
        counts = lines.next("the counts line (vertices faces edges) is missing")
    if len(counts) not in (2, 3):
        raise lines.fail(lines.number, f"expected 'vertices faces [edges]' counts, found {' '.join(counts)!r}")
    try:
        n_vertices, n_faces = int(counts[0]), int(counts[1])
    except ValueError:
        raise lines.fail(lines.number, f"the counts {' '.join(counts)!r} are not whole numbers") from None
    if n_vertices <= 0 or n_faces <= 0:
        raise lines.fail(lines.number, f"empty mesh: {n_vertices} vertices and {n_faces} faces declared")
    # A vertex line takes at least 6 bytes ("0 0 0\n", the last one 5): a header that declares more
    # vertices than the file can hold is refused before the vertex array is allocated.
    if 6 * n_vertices - 1 > size:
        raise lines.fail(lines.number, f"the header declares {n_vertices} vertices, more than a file of {size} "
                                       "bytes can hold; the file is cut short or its counts are wrong")
    return n_vertices, n_faces


def _read_vertices(lines: _Lines, n_vertices: int) -> np.ndarray:
    """(V, 3) float64 vertices, one content line of three finite numbers each."""
    vertices = np.empty((n_vertices, 3), dtype=np.float64)
    for i in range(n_vertices):
        tokens = lines.next(f"the header declares {n_vertices} vertices but the file holds only {i}")
        if len(tokens) != 3:
            raise lines.fail(lines.number, f"vertex {i} needs three coordinates, found {len(tokens)} values")
        try:
            vertices[i] = [float(t) for t in tokens]
        except ValueError:
            raise lines.fail(lines.number,
                             f"vertex {i} has a non-numeric coordinate in {' '.join(tokens[:3])!r}") from None
        if not np.isfinite(vertices[i]).all():
            raise lines.fail(lines.number, f"vertex {i} has a non-finite coordinate {' '.join(tokens[:3])!r}")
    return vertices


def _face_corners(lines: _Lines, f: int, tokens: list[str], n_vertices: int) -> list[int]:
    """The corner indices of face ``f`` from its line ``k i1 ... ik [colour]``, checked."""
    try:
        values = [int(t) for t in tokens]
    except ValueError:
        # Colour columns may be floats; only the corner count and indices must be integers.
        try:
            k = int(tokens[0])
            values = [k] + [int(t) for t in tokens[1:1 + k]]
        except ValueError:
            raise lines.fail(lines.number, f"face {f} has a non-integer entry in {' '.join(tokens)!r}") from None
    k = values[0]
    if k < 3 or len(values) < 1 + k:
        raise lines.fail(lines.number, f"face {f} must list k >= 3 and then k vertex indices, "
                                       f"found {' '.join(tokens)!r}")
    corners = values[1:1 + k]
    bad = [c for c in corners if not 0 <= c < n_vertices]
    if bad:
        raise lines.fail(lines.number, f"face {f} uses vertex index {bad[0]}, outside 0..{n_vertices - 1}")
    return corners


def read_off(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an OFF mesh.

    Polygons with k > 3 corners are split into a fan of k - 2 triangles; extra columns on a face
    line (a colour) are ignored.

    Args:
        path: the ``.off`` file.

    Returns:
        vertices (V, 3) float64 and triangles (T, 3) int64.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        OffError: (a ValueError) naming file and line, for wrong counts (also counts the file is too
            small to hold), non-numeric or non-finite values, face indices out of range and meshes
            without vertices or faces.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no OFF file at {path}")
    data = path.read_bytes()
    lines = _Lines(path, data.decode("utf-8", errors="replace"))
    n_vertices, n_faces = _read_counts(lines, len(data))
    vertices = _read_vertices(lines, n_vertices)
    triangles: list[tuple[int, int, int]] = []
    for f in range(n_faces):
        tokens = lines.next(f"the header declares {n_faces} faces but the file holds only {f}")
        corners = _face_corners(lines, f, tokens, n_vertices)
        triangles.extend((corners[0], corners[j], corners[j + 1]) for j in range(1, len(corners) - 1))
    extra = lines.rest()
    if extra is not None:
        raise lines.fail(extra[0], f"more data after the {n_vertices} vertices and {n_faces} faces the header declares")
    return vertices, np.asarray(triangles, dtype=np.int64)


def format_off(vertices: np.ndarray, faces) -> str:
    """OFF text for vertices (V, 3) and faces (a (F, k) array or a list of index lists)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise ValueError(f"vertices must be a non-empty (V, 3) array, got shape {vertices.shape}")
    faces = [list(map(int, face)) for face in faces]
    if not faces:
        raise ValueError("a mesh needs at least one face")
    lines = ["OFF", f"{len(vertices)} {len(faces)} 0"]
    lines += [f"{x:.6g} {y:.6g} {z:.6g}" for x, y, z in vertices]
    lines += [" ".join(map(str, [len(face), *face])) for face in faces]
    return "\n".join(lines) + "\n"


def write_off(path: str | os.PathLike, vertices: np.ndarray, faces) -> None:
    """Write an OFF mesh atomically (see ``format_off``)."""
    atomic_write_text(path, format_off(vertices, faces))
