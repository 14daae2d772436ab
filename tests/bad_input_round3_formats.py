"""Bad input, round 3: the rows of the file formats, readers and writers (run by ``test_bad_input_round3.py``):
LAS versions the readers do not know, header counts that disagree with the data (LAS, LAZ, PLY, PCD, PTS),
clouds LAS must scale finely, a keep_probability dimension already in the input, a .las that claims to be
compressed, lines of mixed column counts, files without a format suffix, infinite points in an organised
grid, a mesh with a NaN vertex, and LAS into ``reconstruct``."""

from __future__ import annotations

import struct

import laspy
import numpy as np
from test_bad_input import CLOUD, Case, _lidar, _text_file, write_xyz

LEGACY_COUNT_AT = 107  # the 32-bit point count of every LAS header
COUNT_AT = 247  # LAS 1.4's 64-bit point count


def _set_bytes(at: int, value: bytes):
    def damage(path):
        data = bytearray(path.read_bytes())
        data[at:at + len(value)] = value
        path.write_bytes(bytes(data))
    return damage


def _las_10(argv):
    """A LAS 1.2 file of point format 0 whose header says 1.0: the same layout, as LAS 1.0 writers make it."""
    def make(folder):
        header = laspy.LasHeader(version="1.2", point_format=0)
        header.scales, header.offsets = [1e-4] * 3, [0, 0, 0]
        las = laspy.LasData(header)
        las.x, las.y, las.z = CLOUD[:, 0], CLOUD[:, 1], CLOUD[:, 2]
        las.write(folder / "c.las")
        _set_bytes(25, b"\x00")(folder / "c.las")
        return ["filter", "c.las", *argv]
    return make


def _read_as_12(folder):
    las = laspy.read(folder / "out.las")
    assert str(las.header.version) == "1.2" and 0.9 * len(CLOUD) < len(las.points) <= len(CLOUD)
    assert np.allclose(np.c_[las.x, las.y, las.z][:10], CLOUD[:10], atol=1e-4)  # the points, in order


def _with_count_fewer(name, count):
    """A LAS 1.2 (point format 1) or 1.4 (point format 6) file whose header counts ``count`` points."""
    if name.endswith(".laz"):
        return _lidar(name, lambda p: _set_bytes(COUNT_AT, struct.pack("<Q", count))(p), argv=("-o", "out.laz"))

    def make(folder):
        header = laspy.LasHeader(version="1.2", point_format=1)
        header.scales, header.offsets = [1e-4] * 3, [0, 0, 0]
        las = laspy.LasData(header)
        las.x, las.y, las.z = CLOUD[:, 0], CLOUD[:, 1], CLOUD[:, 2]
        las.write(folder / name)
        _set_bytes(LEGACY_COUNT_AT, struct.pack("<I", count))(folder / name)
        return ["filter", name, "-o", "out.las", "--model", "neighbours"]
    return make


def _binary_ply(count):
    def make(folder):
        rows = CLOUD.astype("<f4")
        head = (f"ply\nformat binary_little_endian 1.0\nelement vertex {count}\nproperty float x\n"
                "property float y\nproperty float z\nend_header\n")
        (folder / "c.ply").write_bytes(head.encode() + rows.tobytes())
        return ["filter", "c.ply", "-o", "out.ply", "--model", "neighbours"]
    return make


def _pts(count, lines):
    def make(folder):
        (folder / "c.pts").write_text(f"{count}\n" + "".join(f"{x:.9g} {y:.9g} {z:.9g} 0 0 0 0\n"
                                                             for x, y, z in CLOUD[:lines]))
        return ["filter", "c.pts", "-o", "out.ply", "--model", "neighbours"]
    return make


def _tiny(folder):
    write_xyz(folder / "c.xyz", CLOUD * 1e-160)
    return ["filter", "c.xyz", "-o", "out.las", "--removed", "removed.ply", "--model", "neighbours"]


def _tiny_kept(folder):
    las = laspy.read(folder / "out.las")
    xyz = np.c_[las.x, las.y, las.z]
    assert len(xyz) > 0.9 * len(CLOUD) and np.abs(xyz).max() > 1e-162  # not (0, 0, 0)
    step = float(las.header.scales[0])
    assert step <= 1e-168
    source = {tuple(p) for p in np.round(CLOUD * 1e-160 / step).tolist()}
    assert {tuple(p) for p in np.round(xyz / step).tolist()} <= source  # each kept point, to its step


def _scored_las(argv):
    """A LAS file whose points already have a keep_probability extra-bytes dimension."""
    def make(folder):
        header = laspy.LasHeader(version="1.4", point_format=6)
        header.scales, header.offsets = [1e-4] * 3, [0, 0, 0]
        header.add_extra_dims([laspy.ExtraBytesParams(name="keep_probability", type=np.float32)])
        las = laspy.LasData(header)
        las.x, las.y, las.z = CLOUD[:, 0], CLOUD[:, 1], CLOUD[:, 2]
        las.keep_probability = np.full(len(CLOUD), 0.25, np.float32)
        las.write(folder / "c.las")
        return ["filter", "c.las", "-o", "out.las", "--scores", "s.las", "--model", "neighbours", *argv]
    return make


def _new_scores(folder):
    scores = np.asarray(laspy.read(folder / "s.las").keep_probability)
    assert len(scores) == len(CLOUD) and not np.all(scores == 0.25)


def _mixed_columns(folder):
    lines = [f"{x:.9g} {y:.9g} {z:.9g}" for x, y, z in CLOUD]
    lines[6] += " 7"  # line 7 of the file holds four values
    (folder / "c.xyz").write_text("\n".join(lines) + "\n")
    return ["filter", "c.xyz", "-o", "out.ply"]


def _mixed_ascii_ply(folder):
    rows = [f"{x:.9g} {y:.9g} {z:.9g}" for x, y, z in CLOUD[:500]]
    rows[3] = rows[3].rsplit(" ", 1)[0]  # two values on the fourth vertex line
    text = (f"ply\nformat ascii 1.0\nelement vertex {len(rows)}\nproperty float x\nproperty float y\n"
            "property float z\nend_header\n" + "\n".join(rows) + "\n")
    (folder / "c.ply").write_text(text)
    return ["filter", "c.ply", "-o", "out.ply", "--model", "neighbours"]


def _organised_with_infinite(folder):
    h, w = 40, 50
    grid = np.stack(np.meshgrid(np.arange(w) * 0.002, np.arange(h) * 0.002), -1)
    xyz = np.concatenate([grid, np.ones((h, w, 1))], -1)
    xyz[0, :3] = np.inf  # three points at infinity
    xyz[1, :2] = np.nan  # two pixels without a point
    write_pcd(folder / "c.pcd", xyz)
    return ["filter", "c.pcd", "-o", "out.ply", "--method", "sor"]


def write_pcd(path, xyz):
    """An organised binary PCD of the (H, W, 3) grid as it is, infinite values included (``write_organised``
    writes every point that is not finite as NaN, as pcfilter's outputs are)."""
    h, w = xyz.shape[:2]
    head = (f"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {w}\nHEIGHT {h}\n"
            f"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {w * h}\nDATA binary\n")
    path.write_bytes(head.encode() + np.asarray(xyz, "<f4").tobytes())


def _mesh(name, text):
    return _text_file(name, text, ["simulate", "--out", "ds", "--n", "1", "--mesh", name])


def _reconstruct_las(folder):
    return ["reconstruct", *_lidar("c.las")(folder)[1:2], "-o", "mesh.ply", "--method", "sor", "--quiet"]


_PLY_MESH = ("ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
             "element face 2\nproperty list uchar int vertex_indices\nend_header\n"
             "0 0 0\n0.1 0 0\nnan 0.1 0\n0 0.1 0\n3 0 1 2\n3 0 2 3\n")
_OFF_MESH = "OFF\n4 2 0\n0 0 0\n0.1 0 0\nnan 0.1 0\n0 0.1 0\n3 0 1 2\n3 0 2 3\n"
_OBJ_MESH = "v 0 0 0\nv 0.1 0 0\nv nan 0.1 0\nv 0 0.1 0\nf 1 2 3\nf 1 3 4\n"

ROWS: list[Case] = [
    Case("3.1 formats: a LAS header claiming version 9.9", _lidar("c.las", _set_bytes(24, b"\x09\x09"),
                                                                  argv=("-o", "out.ply")), 1,
         "c.las: its header says LAS version 9.9, and pcfilter reads LAS 1.0 to 1.4"),
    Case("3.1 formats: a LAS 1.0 file into LAS", _las_10(("-o", "out.las", "--model", "neighbours")), 0,
         "neighbour_filter: kept", ("out.las",), _read_as_12),
    Case("3.1 formats: a LAS 1.0 file into PLY", _las_10(("-o", "out.ply", "--method", "sor")), 0, "sor: kept",
         ("out.ply",)),
    Case("3.2 formats: a LAS header counting 4,000 of 4,201 points", _with_count_fewer("c.las", 4000), 1,
         "c.las: its header counts 4000 points, but its point data (bytes 227 to 117855) holds 4201"),
    Case("3.2 formats: a LAZ header counting 4,000 of 4,201 points", _with_count_fewer("c.laz", 4000), 1,
         "c.laz: its header counts 4000 points, but its LAZ data holds 4201"),
    Case("3.2 formats: a binary PLY header counting 4,000 of 4,201 vertices", _binary_ply(4000), 1,
         "c.ply: its header counts 4000 vertices, but its vertex data holds 4201"),
    Case("3.2 formats: an ascii PLY header counting 4,000 of 4,201 vertices",
         _text_file("c.ply", "ply\nformat ascii 1.0\nelement vertex 4000\nproperty float x\nproperty float y\n"
                    "property float z\nend_header\n" + "".join(f"{x:.9g} {y:.9g} {z:.9g}\n" for x, y, z in CLOUD),
                    ["filter", "c.ply", "-o", "out.ply", "--model", "neighbours"]), 1,
         "c.ply: its header counts 4000 vertices, but the file holds 4201 vertex lines (lines 8 to 4208)"),
    Case("3.2 formats: a .pts whose first line says 900 of 500 points", _pts(900, 500), 1,
         "c.pts: its first line says 900 points, but the file holds 500 point lines (lines 2 to 501)"),
    Case("3.2 formats: a .pts whose first line says 500 of 900 points", _pts(500, 900), 1,
         "c.pts: its first line says 500 points, but the file holds 900 point lines"),
    Case("3.2 formats: a .pts whose count is right", _pts(4201, 4201), 0, "neighbour_filter: kept", ("out.ply",)),
    Case("3.3 formats: a cloud of coordinates near 1e-160 written as LAS", _tiny, 0, "neighbour_filter: kept",
         ("out.las", "removed.ply"), _tiny_kept),
    Case("3.4 formats: --scores into LAS whose input has keep_probability", _scored_las(()), 1,
         "--scores s.las: the points of c.las already have a keep_probability dimension, whose values these scores "
         "would replace; pass --overwrite"),
    Case("3.4 formats: ... replaced with --overwrite", _scored_las(("--overwrite",)), 0, "neighbour_filter: kept",
         ("out.las", "s.las"), _new_scores),
    Case("3.5 formats: a .las with the LAZ bit", _lidar("c.las", _set_bytes(104, b"\x86"), argv=("-o", "out.ply")), 1,
         "c.las: its header marks the points as compressed (LAZ), but the file holds no LASzip record",
         avoids="chunk table"),
    Case("3.6 formats: an .xyz line of four values among lines of three", _mixed_columns, 1,
         "c.xyz, line 7: 4 values, where 3 are expected (as on line 1)", avoids="usecols"),
    Case("3.6 formats: an ascii PLY vertex line of two values", _mixed_ascii_ply, 1,
         "c.ply, line 11: 2 values, where 3 are expected (as the header says)", avoids="usecols"),
    Case("3.7 formats: a cloud named without a suffix", lambda f: ["filter", write_xyz(f / "cloud", CLOUD).name,
                                                                   "-o", "out.ply"], 1,
         "cloud: the name has no ending that says its format; rename it as a scan .npz or a cloud (.ply, .pcd, "
         ".xyz, .las, .laz,", avoids="''"),
    Case("3.7 formats: an unknown suffix lists LAS", _text_file("c.foo", "0 0 0\n", ["filter", "c.foo", "-o",
                                                                                       "out.ply"]), 1,
         "c.foo: cannot read '.foo' files; give a scan .npz or a cloud (.ply, .pcd, .xyz, .las, .laz,"),
    Case("3.7 formats: reconstruct of an unknown suffix lists LAS",
         _text_file("c.foo", "0 0 0\n", ["reconstruct", "c.foo", "-o", "mesh.ply", "--method", "sor"]), 1,
         "c.foo: cannot read '.foo' files; give a scan .npz or a cloud (.ply, .pcd, .xyz, .las, .laz,"),
    Case("3.8 formats: infinite points in an organised PCD are counted", _organised_with_infinite, 0,
         "dropped 3 points with coordinates beyond", ("out.ply",)),
    Case("3.9 formats: simulate --mesh of a PLY with a NaN vertex", _mesh("m.ply", _PLY_MESH), 1,
         "mesh file m.ply, line 12: vertex 2 (nan, 0.10000000149011612, 0.0) is not finite"),
    Case("3.9 formats: simulate --mesh of an OFF with a NaN vertex", _mesh("m.off", _OFF_MESH), 1,
         "m.off, line 5: vertex 2 has a non-finite coordinate"),
    Case("3.9 formats: simulate --mesh of an OBJ with a NaN vertex", _mesh("m.obj", _OBJ_MESH), 1,
         "mesh file m.obj, line 3: vertex 2 (nan, 0.1, 0.0) is not finite"),
    Case("3.10 formats: reconstruct of a LAS file", _reconstruct_las, 0, "sor: kept", ("mesh.ply",)),
]
