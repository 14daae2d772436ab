"""The file readers on damaged input: OFF meshes and PLY, PCD and xyz clouds, mutated at random.

Each example starts from a valid file, damages it the way real files get damaged (a cut, a flipped or
inserted byte, a count replaced by a negative, huge or non-numeric word, a line dropped or doubled)
and reads it. The reader either returns data of the documented shape or raises its own error type
(``OffError`` for OFF, ``CloudError`` for the clouds) whose message names the file: never an
IndexError, a MemoryError, a hang or an error from NumPy or Open3D. Every example has a deadline, so
a reader that loops or allocates for a declared size instead of the real one fails the test.
"""

from __future__ import annotations

import functools
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcfilter_lib.io.clouds import CloudError
from pcfilter_lib.io.off import OffError, format_off, read_off
from pcfilter_lib.io.organised import read_cloud, write_organised, write_points

EXAMPLES = 120  # per format; the whole file runs in a few seconds
# Per example: a file here reads in about a millisecond; the bound catches a reader that loops or
# allocates for a declared size, and leaves room for a machine busy with other work.
DEADLINE = timedelta(seconds=5)
WORDS = [b"-1", b"0", b"2000000000", b"lots", b"nan", b"inf", b"1e300", b"", b"\n", b"end_header", b"DATA",
         b"ascii", b"binary", b"element vertex", b"property list uchar int", b"obj_info width 3", b"\x00\xff"]


@functools.cache
def _valid_files() -> dict[str, bytes]:
    """One small valid file of each format (bytes), written by pcfilter's own writers."""
    with tempfile.TemporaryDirectory() as folder:
        return _write_valid_files(Path(folder))


def _write_valid_files(folder: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    points = rng.random((12, 3))
    write_points(folder / "points.ply", points)
    write_organised(folder / "grid.pcd", points.reshape(3, 4, 3).astype(np.float32))
    write_organised(folder / "grid.ply", points.reshape(3, 4, 3).astype(np.float32))
    files = {name: (folder / name).read_bytes() for name in ("points.ply", "grid.pcd", "grid.ply")}
    header = b"ply\nformat ascii 1.0\nelement vertex 12\nproperty float x\nproperty float y\nproperty float z\n"
    rows = "".join(f"{x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in points.tolist()).encode()
    files["ascii.ply"] = header + b"end_header\n" + rows
    files["ascii.pcd"] = (b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 12\nHEIGHT 1\n"
                          b"POINTS 12\nDATA ascii\n" + rows)
    files["cloud.xyz"] = b"# x y z\n" + rows
    files["mesh.off"] = format_off(points[:4], [[0, 1, 2], [0, 2, 3, 1]]).encode()
    return files


@st.composite
def damage(draw, data: bytes) -> bytes:
    """``data`` with one to three random kinds of damage."""
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["cut", "flip", "insert", "word", "drop_line", "double_line"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "cut":
            data = data[:at]
        elif kind == "flip" and data:
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
        elif kind == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        elif kind == "word":  # replace one whitespace-separated word, counts included
            words = data.split(b" ")
            i = draw(st.integers(0, len(words) - 1))
            words[i] = draw(st.sampled_from(WORDS))
            data = b" ".join(words)
        else:
            lines = data.split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines[i:i + 1] = [] if kind == "drop_line" else [lines[i], lines[i]]
            data = b"\n".join(lines)
    return data


def _check(read, error_type, path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        result = read(path)
    except error_type as error:
        assert str(path) in str(error) and "\n" not in str(error)
    else:
        if isinstance(result, dict):  # read_cloud
            assert result["xyz"].shape[-1] == 3 and result["valid"].any()
        else:  # read_off
            vertices, triangles = result
            assert len(vertices) and len(triangles) and triangles.max() < len(vertices)


fuzz = settings(max_examples=EXAMPLES, deadline=DEADLINE, suppress_health_check=[HealthCheck.function_scoped_fixture])


@fuzz
@given(data=st.data())
def test_off_reader_raises_only_off_errors(tmp_path, data):
    source = _valid_files()["mesh.off"]
    _check(read_off, OffError, tmp_path / "damaged.off", data.draw(damage(source)))


@fuzz
@given(data=st.data(), name=st.sampled_from(["points.ply", "grid.ply", "ascii.ply"]))
def test_ply_reader_raises_only_cloud_errors(tmp_path, data, name):
    source = _valid_files()[name]
    _check(read_cloud, CloudError, tmp_path / "damaged.ply", data.draw(damage(source)))


@fuzz
@given(data=st.data(), name=st.sampled_from(["grid.pcd", "ascii.pcd"]))
def test_pcd_reader_raises_only_cloud_errors(tmp_path, data, name):
    source = _valid_files()[name]
    _check(read_cloud, CloudError, tmp_path / "damaged.pcd", data.draw(damage(source)))


@fuzz
@given(data=st.data())
def test_xyz_reader_raises_only_cloud_errors(tmp_path, data):
    source = _valid_files()["cloud.xyz"]
    _check(read_cloud, CloudError, tmp_path / "damaged.xyz", data.draw(damage(source)))


def test_a_header_that_declares_billions_is_refused_at_once(tmp_path):
    """The counts of a header are checked against the file's size before anything is allocated."""
    ply = (b"ply\nformat binary_little_endian 1.0\nelement vertex 2000000000\nproperty float x\n"
           b"property float y\nproperty float z\nend_header\n")
    pcd = (b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 2000000000\nHEIGHT 1\nPOINTS 2000000000\n"
           b"DATA binary\n")
    cases = {"huge.off": (read_off, OffError, b"OFF\n2000000000 1 0\n0 0 0\n3 0 1 2\n"),
             "huge.ply": (read_cloud, CloudError, ply), "huge.pcd": (read_cloud, CloudError, pcd)}
    for name, (read, error_type, data) in cases.items():
        start = time.perf_counter()
        _check(read, error_type, tmp_path / name, data)
        assert time.perf_counter() - start < DEADLINE.total_seconds(), name
