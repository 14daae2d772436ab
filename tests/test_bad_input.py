"""Bad input, tried as a new user would: one row per failing case of two rounds of trials (``CASES``,
the first, and ``SECOND_ROUND``: outputs that already exist, unbounded options, far scans, undefined
metrics, unwritable output folders and misleading messages), then ``LAS_CASES``: LAS/LAZ files cut
short, of an unknown point format, not LAS at all or empty, and ``--classify`` where LAS cannot be
written.

Every row runs the ``pcfilter`` command line in a fresh process on input made for it in an empty
folder, and checks the exit status; on failure, that stderr is one line starting with the command's
name and saying what the row expects; on success, that stderr is empty. It also checks that no file
was written or damaged: a refused command leaves its folder byte for byte as it was, a finished one
adds only its outputs; and, where the row says so, that TensorFlow never started (everything that
can be checked is checked before it). A few cases need a signal or a library call: they follow the
table.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import fresh_cli
import laspy
import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)  # this file also loads the point filter in-process

from pcfilter_lib import filters
from pcfilter_lib.cli.app import main, one_line
from pcfilter_lib.filters.points import cover_patches
from pcfilter_lib.geometry.point_features import combine, neighbourhoods, patch_inputs
from pcfilter_lib.io.files import verify_folder
from pcfilter_lib.io.model_cards import WEIGHTS
from pcfilter_lib.io.organised import read_cloud, write_points
from pcfilter_lib.io.scan import load_scan, save_scan
from pcfilter_lib.simulate.dataset import make_scan
from pcfilter_lib.simulate.scanner import ScannerConfig

# Runs the command line as the console script does (for the cases that need a process of their own).
RUNNER = "import sys\nfrom pcfilter_lib.cli import main\nsys.exit(main(sys.argv[1:]))\n"
TIMEOUT = 300  # the hang of case 1 ran for 600 s before it was killed; a normal run takes seconds
SPACING = 0.002  # of the test clouds, metres


def write_xyz(path: Path, points) -> Path:
    path.write_text("".join(f"{x:.17g} {y:.17g} {z:.17g}\n" for x, y, z in np.asarray(points, float).tolist()))
    return path


def plane(n_side: int = 65, seed: int = 0) -> np.ndarray:
    """A slightly noisy square grid of n_side^2 points SPACING apart at z = 1 m, and one stray point."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(np.arange(n_side), np.arange(n_side)), -1).reshape(-1, 2) * SPACING
    points = np.c_[grid, 1 + 1e-4 * rng.standard_normal(len(grid))]
    return np.r_[points, [[n_side * SPACING / 2, n_side * SPACING / 2, 1.2]]]


CLOUD = plane()[:4201]  # 4,201 points, as in the issue


def ply_text(count: str, rows: str = "", end: str = "end_header\n") -> str:
    return (f"ply\nformat ascii 1.0\nelement vertex {count}\nproperty float x\nproperty float y\nproperty float z\n"
            f"{end}{rows}")


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def kept(folder: Path, name: str = "out.ply") -> np.ndarray:
    cloud = read_cloud(folder / name)
    return cloud["xyz"][cloud["valid"]]


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, what the command line must answer, what must be true after.

    Attributes:
        name: the issue's case number and what is tried.
        make: writes the input into an empty folder and returns the command line (after ``pcfilter``).
        code: the exit status.
        says: a piece of the one stderr line (failure) or of stdout (success).
        outputs: files a successful run may add (relative paths); a failed run adds none.
        check: more checks of a successful result, given the folder.
        tensorflow: whether a refusal may come after TensorFlow started (False: it was checked before).
        repairs: the row resumes a damaged folder, so files that were there may change.
        replaces: files that were there which a successful row replaces (asked to, with --overwrite).
        avoids: a piece that must appear in neither stdout nor stderr.
    """

    name: str
    make: Callable[[Path], list[str]]
    code: int
    says: str
    outputs: tuple[str, ...] = ()
    check: Callable[[Path], None] | None = None
    tensorflow: bool = False
    repairs: bool = False
    replaces: tuple[str, ...] = ()
    avoids: str | None = None


def _hang(folder):
    write_xyz(folder / "c.xyz", np.r_[CLOUD, np.zeros((500, 3))])  # how many scanners mark a missing point
    return ["filter", "c.xyz", "-o", "out.ply"]


def _minus_one(folder):
    (folder / "c.ply").write_bytes(ply_text("-1").encode() + b"\x03\x00\x00\x00" * 30)
    return ["filter", "c.ply", "-o", "out.ply"]


def _small(n):
    def make(folder):
        write_xyz(folder / "c.xyz", CLOUD[:n])
        return ["filter", "c.xyz", "-o", "out.ply"]
    return make


def _far(folder):
    write_xyz(folder / "c.xyz", CLOUD + [1e6, 2e6, 0])  # 1,000 km away, as in map projections
    return ["filter", "c.xyz", "-o", "out.ply", "--method", "sor"]


def _same_points_as_input(folder):
    source, out = np.loadtxt(folder / "c.xyz"), kept(folder)
    assert out.dtype == np.float64 and len(out) > 0.9 * len(source)
    assert set(map(tuple, out.tolist())) <= set(map(tuple, source.tolist()))  # each kept point exactly as given


def _scan_160(folder):
    save_scan(folder / "scan.npz", make_scan(3, 0, ScannerConfig(width=160, height=120)))
    return ["filter", "scan.npz", "-o", "out.ply", "--method", "ror"]


def _ror_on(points):
    def make(folder):
        write_xyz(folder / "c.xyz", points)
        return ["filter", "c.xyz", "-o", "out.ply", "--method", "ror"]
    return make


def _keeps_most(folder):
    assert len(kept(folder)) > 0.9 * len(np.loadtxt(folder / "c.xyz"))


def _scan_keeps_most(folder):
    assert len(kept(folder)) > 0.8 * load_scan(folder / "scan.npz", arrays=())["valid"].sum()


def _clusters() -> np.ndarray:
    """Four points in tight clusters of ROR's tuned ``nb_points`` (at most 4), the clusters 100
    spacings apart: every point has fewer neighbours than ROR asks for (if it asks for 2 or more)."""
    size = max(1, min(4, int(filters.tuned_params("ror")["nb_points"])))
    offsets = np.array([[0, 0, 0], [1, 0, 0], [0.5, 0.866, 0], [0.5, 0.289, 0.816]])
    return np.array([offsets[i % size] + [100.0 * (i // size), 0, 0] for i in range(4)]) * SPACING


def _empty(allow):
    def make(folder):
        write_xyz(folder / "c.xyz", _clusters())
        return ["filter", "c.xyz", "-o", "out.ply", "--method", "ror"] + (["--allow-empty"] if allow else [])
    return make


def _prepare(folder, argv):
    """Run a command that makes a row's input in ``folder``, in this process and in fast mode as the rows
    run: what is checked is the row's own command, which runs in a fresh process."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PCFILTER_FAST", "1")
        patch.chdir(folder)
        assert main(argv) == 0, argv


def _truncated_modelnet(folder):
    _prepare(folder, ["modelnet", "--synthetic", "--out", "mn", "--quiet"])
    damaged = sorted((folder / "mn").rglob("*.off"))[5]
    damaged.write_bytes(damaged.read_bytes()[:40])
    return ["modelnet", "--synthetic", "--out", "mn", "--quiet"]


def _truncated_dataset(folder):
    _prepare(folder, ["simulate", "--out", "ds", "--n", "2", "--size", "48x32"])
    damaged = sorted((folder / "ds").rglob("*.npz"))[0]
    damaged.write_bytes(damaged.read_bytes()[:100])
    return ["simulate", "--out", "ds", "--n", "2", "--size", "48x32"]


def _restored(name):
    def check(folder):
        assert verify_folder(folder / name) == []
    return check


def _text_file(name, text, command):
    def make(folder):
        (folder / name).write_text(text)
        return command
    return make


def _dataset(folder):
    _prepare(folder, ["simulate", "--out", "ds", "--n", "3", "--size", "48x32", "--split", "0.34/0.33/0.33"])
    return ["evaluate", "--data", "ds", "--split", "test"]


def _far_points(value, *options):
    def make(folder):
        points = CLOUD.copy()
        points[:5] = value
        write_xyz(folder / "c.xyz", points)
        return ["filter", "c.xyz", "-o", "out.ply", *options]
    return make


def _far_points_removed(folder):
    assert len(kept(folder)) and np.abs(kept(folder)).max() < 1e3


def _model_copy(folder):
    shutil.copy(WEIGHTS / "pointnet_modelnet10.keras", folder / "classifier.keras")  # no model card beside it
    write_xyz(folder / "c.xyz", CLOUD)
    return ["filter", "c.xyz", "-o", "out.ply", "--model", "classifier.keras"]


def _pair(folder):
    write_xyz(folder / "a.xyz", CLOUD)
    (folder / "a.outliers").write_text("0\n" * 10)
    return ["evaluate", "--data", ".", "--method", "sor"]


CASES = [
    Case("1 hang: 500 coincident points", _hang, 0, "kept", ("out.ply",)),
    Case("1 hang: element vertex -1", _minus_one, 1, "'-1' is not a whole number >= 0"),
    Case("2 a cloud of 100 points", _small(100), 0, "kept", ("out.ply",)),
    Case("2 a cloud of 4 points, the minimum", _small(4), 0, "of 4 points", ("out.ply",)),
    Case("2 a cloud of 3 points", _small(3), 1, "needs at least 4"),
    Case("3 a cloud 1,000 km away keeps double precision", _far, 0, "kept", ("out.ply",), _same_points_as_input),
    Case("4 ror on a 160x120 scan", _scan_160, 0, "ror: kept", ("out.ply",), _scan_keeps_most),
    Case("4 ror on a thinned cloud", _ror_on(CLOUD[::4]), 0, "ror: kept", ("out.ply",), _keeps_most),
    Case("4 ror on a cloud in millimetres", _ror_on(CLOUD * 1000), 0, "ror: kept", ("out.ply",), _keeps_most),
    Case("4 a filter that removes every point", _empty(False), 1, "removed all 4 points", tensorflow=True),
    Case("4 ... unless asked", _empty(True), 0, "kept 0 of 4", ("out.ply",)),
    Case("5 --split nan/0.5/0.5", lambda f: ["simulate", "--out", "ds", "--n", "4", "--split", "nan/0.5/0.5"], 1,
         "--split must be three non-negative fractions"),
    Case("6 modelnet resumes a damaged file", _truncated_modelnet, 0, "procedural ModelNet10 in mn",
         check=_restored("mn"), repairs=True),
    Case("6 simulate resumes a damaged file", _truncated_dataset, 0, "2 scans of 48x32", check=_restored("ds"),
         repairs=True),
    Case("7 ascii PLY with 0 vertices", _text_file("c.ply", ply_text("0"), ["filter", "c.ply", "-o", "out.ply"]),
         1, "c.ply: the cloud holds no points"),
    Case("7 PLY rows of 2 values", _text_file("c.ply", ply_text("2", "1 2\n3 4\n"), ["filter", "c.ply", "-o", "o.ply"]),
         1, "expected 2 rows of 3 numbers"),
    Case("7 PCD DATA line without a value",
         _text_file("c.pcd", "FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1\nHEIGHT 1\nPOINTS 1\nDATA\n",
                    ["filter", "c.pcd", "-o", "out.ply"]), 1, "c.pcd: the DATA line must name the data mode"),
    # The points beyond COORDINATE_LIMIT are dropped as the cloud is read, the same for every filter: the
    # neighbour filter goes the point filter's way (streamed, then read whole for the drop) without TensorFlow.
    Case("7 coordinates of 1e300", _far_points(1e300, "--model", "neighbours"), 0,
         "dropped 5 points with coordinates beyond", ("out.ply",), _far_points_removed),
    Case("7 manifest.json holds a JSON list", _text_file("manifest.json", "[1, 2]", ["evaluate", "--data", "."]), 1,
         "manifest.json is not a pcfilter manifest"),
    Case("7 an OFF mesh of 37 bytes declaring 2e9 vertices",
         _text_file("m.off", "OFF\n2000000000 1 0\n0 0 0\n3 0 1 2\n   \n",
                    ["simulate", "--out", "ds", "--n", "1", "--mesh", "m.off"]), 1,
         "m.off, line 2: the header declares 2000000000 vertices, more than a file of 37 bytes can hold"),
    Case("8 a refused --mesh leaves no folder",
         _text_file("m.obj", "not a mesh\n", ["simulate", "--out", "ds", "--n", "2", "--mesh", "m.obj"]), 1,
         "cannot read a triangle mesh from m.obj"),
    Case("8 parts out of order leave no folder",
         lambda f: ["simulate", "--out", "ds", "--n", "2", "--min-parts", "9", "--max-parts", "3"], 1,
         "--min-parts must be a whole number between 0 and 3"),
    Case("9 evaluate on a scan dataset: no TensorFlow lines", _dataset, 0, "unet_filter on 1 test scans"),
    Case("11 a folder without clouds as input", lambda f: ["filter", ".", "-o", "out.ply"], 1,
         "holds no scan (.npz) or cloud"),
    Case("11 /dev/null as input", lambda f: ["filter", "/dev/null", "-o", "out.ply"], 1,
         "/dev/null is not a regular file"),
    Case("11 a folder as --model", _text_file("c.xyz", "0 0 0\n", ["filter", "c.xyz", "-o", "o.ply", "--model", "."]),
         1, "--model . is a folder"),
    Case("12 five points at 1e30", _far_points(1e30), 0, "kept", ("out.ply",), _far_points_removed),
    Case("13 element vertex lots", _text_file("c.ply", ply_text("lots"), ["filter", "c.ply", "-o", "out.ply"]), 1,
         "c.ply: 'element vertex lots': 'lots' is not a whole number"),
    Case("13 no line end after end_header",
         _text_file("c.ply", ply_text("1", end="end_header"), ["filter", "c.ply", "-o", "out.ply"]), 1,
         "c.ply: 'end_header' is not followed by a line end"),
    Case("14 --n 100000000000", lambda f: ["simulate", "--out", "ds", "--n", "100000000000"], 1,
         "--n must be a whole number between 1 and 100000"),
    Case("15 modelnet --seed -5", lambda f: ["modelnet", "--synthetic", "--out", "mn", "--seed", "-5"], 1,
         "--seed must be a whole number between 0 and 4294967295, got -5"),
    Case("15 simulate --size -160x120", lambda f: ["simulate", "--out", "ds", "--n", "2", "--size", "-160x120"], 1,
         "--size must be two positive whole numbers"),
    Case("16 the ModelNet classifier as --model",
         _text_file("c.xyz", "0 0 0\n", ["filter", "c.xyz", "-o", "o.ply", "--model",
                                         str(WEIGHTS / "pointnet_modelnet10.keras")]), 1,
         "is a 'pointnet' model (its model card records no decision threshold), not an artefact filter"),
    Case("16 ... without its model card", _model_copy, 1, "it is no artefact filter", tensorflow=True),
    Case("17 an output folder that cannot be written",
         _text_file("c.xyz", "0 0 0\n1 0 0\n0 1 0\n1 1 0\n", ["filter", "c.xyz", "-o", "/proc/out.ply"]), 1,
         "cannot write output /proc/out.ply: the folder /proc is not writable"),
    Case("17 an output folder that does not exist",
         _text_file("c.xyz", "0 0 0\n", ["filter", "c.xyz", "-o", "no/out.ply"]), 1, "the folder no does not exist"),
    Case("17 --threshold 1.5", _text_file("c.xyz", "0 0 0\n", ["filter", "c.xyz", "-o", "o.ply", "--threshold", "1.5"]),
         1, "--threshold must lie strictly between 0 and 1, got 1.5"),
    Case("18 an empty .xyz", _text_file("c.xyz", "", ["filter", "c.xyz", "-o", "out.ply"]), 1,
         "c.xyz: the cloud holds no points"),
    Case("18 evaluate: a broken pair, before any progress", _pair, 1, "10 outlier flags"),
]


# The second round. Its rows are numbered by finding: 1 an option without an upper bound ran for
# minutes, 2 existing files were replaced without a word, 3 a far scan was filtered wrongly with exit
# status 0, 4 a NumPy warning leaked on float32 files, 5 an undefined metric was reported as perfect,
# 6 an unwritable output folder was found only after the work, 7 messages that misled.


def _existing(name, argv):
    """A cloud c.xyz and an existing file ``name`` beside it, which ``argv`` would write."""
    def make(folder):
        write_xyz(folder / "c.xyz", CLOUD)
        (folder / name).write_text("the user's own file\n")
        return argv
    return make


def _cloud_folder(output, existing=None, command="filter"):
    """A folder in/ of one cloud; ``existing`` is a file already in the output folder."""
    def make(folder):
        (folder / "in").mkdir()
        write_xyz(folder / "in" / "c.xyz", CLOUD)
        if existing:
            (folder / output).mkdir()
            (folder / output / existing).write_text("an earlier result\n")
        return [command, "in", "-o", output, "--method", "sor"]
    return make


def _scaled_scan(scale, points=None, options=()):
    """A 160x120 scan with every coordinate (or those of its first ``points`` points) times ``scale``."""
    def make(folder):
        scan = make_scan(3, 0, ScannerConfig(width=160, height=120))
        xyz = scan["xyz"].copy()
        rows, cols = np.nonzero(scan["valid"])
        chosen = slice(None) if points is None else slice(0, points)
        xyz[rows[chosen], cols[chosen]] *= np.float32(scale)
        save_scan(folder / "scan.npz", {**scan, "xyz": xyz})
        return ["filter", "scan.npz", "-o", "out.ply", *options]
    return make


def _far_dataset(folder):
    """A scan dataset whose test scan lies 1e30 times too far out."""
    argv = _dataset(folder)
    path = next((folder / "ds" / "test").glob("*.npz"))
    scan = load_scan(path)
    save_scan(path, {**scan, "xyz": scan["xyz"] * np.float32(1e30)})
    return [*argv, "--method", "sor"]


def _float32_ply(folder):
    write_points(folder / "c.ply", CLOUD.astype(np.float32))
    # The warning came from the check of the streamed cloud's coordinates, made before any filter; the
    # neighbour filter, without TensorFlow, is streamed and written as the point filter is.
    return ["filter", "c.ply", "-o", "out.ply", "--model", "neighbours"]


def _all_outliers(*options):
    def make(folder):
        write_xyz(folder / "a.xyz", CLOUD[:500] + [0, 0, 0.3])
        (folder / "a.outliers").write_text("1\n" * 500)
        return ["evaluate", "--data", ".", "--method", "sor", *options]
    return make


def _garbage_npz(folder):
    (folder / "scan.npz").write_bytes(bytes(range(256)) * 8)
    return ["filter", "scan.npz", "-o", "out.ply"]


def _mesh_exists(folder):
    save_scan(folder / "scan.npz", make_scan(3, 0, ScannerConfig(width=48, height=32)))
    (folder / "mesh.ply").write_text("ply\n")
    return ["reconstruct", "scan.npz", "-o", "mesh.ply", "--method", "sor"]


def _replaced_on_purpose(folder):
    assert len(kept(folder)) > 0.9 * len(CLOUD)  # out.ply now holds the kept points


def _lidar(name, damage=None, points=CLOUD, argv=("-o", "out.las", "--model", "neighbours")):
    """A LAS 1.4 point format 6 file (LAZ by its name) of ``points``, then ``damage(path)``."""
    def make(folder):
        header = laspy.LasHeader(version="1.4", point_format=6)
        header.scales, header.offsets = [1e-4] * 3, [0, 0, 0]
        las = laspy.LasData(header)
        las.x, las.y, las.z = points[:, 0], points[:, 1], points[:, 2]
        las.write(folder / name)
        if damage is not None:
            damage(folder / name)
        return ["filter", name, *argv]
    return make


def _cut(size):
    def damage(path):
        path.write_bytes(path.read_bytes()[:size])
    return damage


def _point_format(value):
    def damage(path):
        data = bytearray(path.read_bytes())
        data[104] = value  # the point data record format
        path.write_bytes(bytes(data))
    return damage


def _laz_damaged_inside(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = b"\xff" * 64  # the chunk table at the end is whole
    path.write_bytes(bytes(data))


def _laz_middle_cut(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


SECOND_ROUND = [
    Case("1 parts per bin beyond the bound", lambda f: ["simulate", "--out", "sim", "--n", "1", "--min-parts",
                                                          "100000", "--max-parts", "100000"], 1,
         "--max-parts must be a whole number between 0 and 200, got 100000"),
    Case("1 --seed beyond the bound", lambda f: ["simulate", "--out", "sim", "--n", "1", "--seed", "99999999999"], 1,
         "--seed must be a whole number between 0 and 4294967295"),
    Case("1 --tile-points beyond the bound",
         _text_file("c.xyz", "0 0 0\n", ["filter", "c.xyz", "-o", "o.ply", "--tile-points", "100000000"]), 1,
         "--tile-points must be a whole number between 1000 and 5000000"),
    Case("2 --scores names an existing file", _existing("good.ply", ["filter", "c.xyz", "-o", "o.ply", "--scores",
                                                                      "good.ply"]), 1,
         "--scores good.ply already exists; choose another name, or pass --overwrite to replace it"),
    Case("2 --removed names an existing file", _existing("r.ply", ["filter", "c.xyz", "-o", "o.ply", "--removed",
                                                                    "r.ply", "--method", "sor"]), 1,
         "--removed r.ply already exists"),
    Case("2 -o names an existing file", _existing("out.ply", ["filter", "c.xyz", "-o", "out.ply"]), 1,
         "-o out.ply already exists"),
    Case("2 ... replaced with --overwrite", _existing("out.ply", ["filter", "c.xyz", "-o", "out.ply", "--method",
                                                                   "sor", "--overwrite"]), 0, "sor: kept",
         check=_replaced_on_purpose, replaces=("out.ply",)),
    Case("2 the input stays protected with --overwrite",
         _existing("o.ply", ["filter", "c.xyz", "-o", "o.ply", "--removed", "c.xyz", "--overwrite"]), 1,
         "c.xyz is the input file"),
    Case("2 a folder's existing output", _cloud_folder("out", existing="c.xyz"), 1,
         "-o out already holds 1 of the 1 files this run would write (c.xyz); choose another folder, or pass "
         "--overwrite"),
    Case("2 an existing mesh", _mesh_exists, 1, "-o mesh.ply already exists"),
    Case("3 a scan times 1e30", _scaled_scan(1e30), 1, "every point lies beyond ±5.3e+18"),
    # The far points are dropped as the scan is read, before any filter (they become invalid pixels, as a
    # scan's missing points are): the neighbour filter reads the scan that way without TensorFlow.
    Case("3 a scan with three points times 1e25", _scaled_scan(1e25, 3, ("--model", "neighbours")), 0,
         "dropped 3 points with coordinates beyond ±5.3e+18", ("out.ply",)),
    Case("3 evaluate on a dataset with a scan times 1e30", _far_dataset, 1, "points lie beyond ±5.3e+18"),
    Case("4 a float32 binary PLY: no NumPy warning", _float32_ply, 0, "neighbour_filter: kept", ("out.ply",)),
    Case("5 every label an outlier (JSON)", _all_outliers("--json"), 0, '"recall": null', avoids='"recall": 1.0'),
    Case("5 every label an outlier (table)", _all_outliers(), 0, "keep-recall (true points kept)   n/a"),
    Case("6 filter into an unwritable folder", _cloud_folder("/proc/out"), 1,
         "cannot create -o /proc/out: the folder /proc is not writable"),
    Case("6 reconstruct into an unwritable folder", _cloud_folder("/proc/out", command="reconstruct"), 1,
         "cannot create -o /proc/out: the folder /proc is not writable"),
    Case("6 simulate into an unwritable folder", lambda f: ["simulate", "--out", "/proc/sim", "--n", "1"], 1,
         "cannot create --out /proc/sim: the folder /proc is not writable"),
    Case("7 --model is no Keras archive", _existing("m.keras", ["filter", "c.xyz", "-o", "o.ply", "--model",
                                                                 "m.keras"]), 1,
         "--model m.keras is not a Keras model archive (a zip file)", avoids="File not found"),
    Case("7 a garbage scan .npz", _garbage_npz, 1, "scan.npz is not a readable scan .npz file: it is not a zip "
         "archive of NumPy arrays", avoids="allow_pickle"),
    Case("7 --families bin=0", lambda f: ["simulate", "--out", "sim", "--n", "1", "--families", "bin=0"], 1,
         "the shares add up to 0", avoids="non-negative"),
]


# LiDAR files: each check of io.lidar.open_lidar, the refusals of --classify and of the U-Net, and a good file.
LAS_CASES = [
    Case("a LAS file", _lidar("c.las"), 0, "neighbour_filter: kept", ("out.las",)),
    Case("a LAS file cut short", _lidar("c.las", _cut(-1000)), 1,
         "c.las: the point data is shorter than the header says (4167 of 4201 points); the file is cut short"),
    Case("a LAZ file cut short", _lidar("c.laz", _laz_middle_cut, argv=("-o", "out.laz")), 1,
         "c.laz: the LAZ file is cut short"),
    Case("a LAZ file damaged inside, before TensorFlow", _lidar("c.laz", _laz_damaged_inside, argv=("-o", "out.ply")),
         1, "c.laz: its point data cannot be read"),
    Case("a LAS file with a header only", _lidar("c.las", _cut(375), argv=("-o", "out.ply")), 1,
         "c.las: the point data is shorter than the header says (0 of 4201 points)"),
    Case("an unknown LAS point format", _lidar("c.las", _point_format(11), argv=("-o", "out.ply")), 1,
         "c.las: point format 11 is not one LAS defines (0 to 10)"),
    Case("a .las that is no LAS file", _text_file("c.las", "0 0 0\n1 1 1\n", ["filter", "c.las", "-o", "o.ply"]), 1,
         "c.las is not a LAS file (it does not start with 'LASF')"),
    Case("a LAS file of no points", _lidar("c.las", points=CLOUD[:0], argv=("-o", "out.ply")), 1,
         "c.las: the LAS file holds no points"),
    Case("--classify into a .ply", _lidar("c.las", argv=("-o", "out.ply", "--classify")), 1,
         "--classify writes every point with the removed ones as ASPRS class 7 (noise), which only LAS can hold"),
    Case("the U-Net on a LAS file", _lidar("c.las", argv=("-o", "out.ply", "--model", "unet")), 1,
         "the U-Net needs the pixel grid of an organised scan"),
]


PTX_HEADER = "3\n2\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n"


def _ptx(name, text, *command):
    """A PTX file (``.gz``: compressed) of ``text``, and the command line run on it."""
    def make(folder):
        data = text.encode()
        (folder / name).write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
        return list(command) or ["filter", name, "-o", "out.ptx"]
    return make


def _ptx_grid(rows: int = 8, cols: int = 8) -> str:
    """A PTX scan of a tilted plane, rows x cols points, one position without a point."""
    lines = [f"{0.002 * c} {0.002 * r} {1 + 0.001 * c} 0.5" for r in range(rows) for c in range(cols)]
    lines[5] = "0 0 0 0"
    return f"{rows}\n{cols}\n" + PTX_HEADER.split("\n", 2)[2] + "\n".join(lines) + "\n"


def _ptx_labelled(labels: str):
    def make(folder):
        (folder / "d").mkdir()
        (folder / "d" / "s.ptx").write_text(_ptx_grid())
        (folder / "d" / "s.outliers").write_text(labels)
        return ["evaluate", "--data", "d", "--method", "sor"]
    return make


def _ply_without_grid(folder):
    write_points(folder / "c.ply", plane(10)[:100])
    return ["filter", "c.ply", "--grid", "10x12", "-o", "out.ptx", "--method", "sor"]


PTX_CASES = [
    Case("a PTX scan filtered into PTX", _ptx("s.ptx", _ptx_grid(), "filter", "s.ptx", "-o", "out.ptx", "--method",
                                              "sor"), 0, "sor: kept", ("out.ptx",)),
    Case("a PTX header cut short", _ptx("s.ptx", "3\n2\n0 0 0\n"), 1,
         "s.ptx: the PTX header is cut short: 3 of its 10 lines are there"),
    Case("a PTX size that is not a number", _ptx("s.ptx", "three\n" + PTX_HEADER[2:]), 1,
         "s.ptx: line 1 of the PTX header must be a whole number > 0"),
    Case("a PTX matrix line of three numbers", _ptx("s.ptx", PTX_HEADER.replace("0 1 0 0", "0 1 0")), 1,
         "s.ptx: header line 8 must hold 4 finite numbers"),
    Case("a PTX file with fewer points than its header", _ptx("s.ptx.gz", PTX_HEADER + "1 2 3 0.5\n" * 4,
                                                              "filter", "s.ptx.gz", "-o", "out.ply"), 1,
         "s.ptx.gz: the header announces 3 x 2 = 6 point lines, the file holds 4; it is cut short"),
    Case("a PTX point line that is not numbers", _ptx("s.ptx", PTX_HEADER + "1 2 3 0.5\n1 2 x 0.5\n" * 3), 1,
         "s.ptx: line 12 must hold 4 numbers (x y z intensity) or 7"),
    Case("a PTX point line of NaN", _ptx("s.ptx", PTX_HEADER + "1 2 3 0.5\nnan 2 3 0.5\n" * 3), 1,
         "s.ptx: line 12 holds NaN or infinite numbers"),
    Case("a damaged .ptx.gz", _ptx("s.ptx.gz", "", "filter", "s.ptx.gz", "-o", "out.ptx"), 1,
         "s.ptx.gz: the PTX header is cut short: 0 of its 10 lines"),
    Case("a .ptx.gz that is no gzip file", _text_file("s.ptx.gz", _ptx_grid(), ["filter", "s.ptx.gz", "-o", "o.ptx"]),
         1, "s.ptx.gz: cannot be read as gzip-compressed PTX"),
    Case("labels of another length than the PTX scan", _ptx_labelled("0\n" * 10), 1,
         "s.outliers: 10 labels for the 64 point lines of s.ptx"),
    Case("an outlier where the PTX scan has no point", _ptx_labelled("0\n" * 5 + "1\n" + "0\n" * 58), 1,
         "s.outliers: line 6 marks an outlier where s.ptx has no point"),
    Case("PTX output of an unorganised cloud", _text_file("c.xyz", "0 0 1\n" * 5 + "1 1 1\n",
                                                          ["filter", "c.xyz", "-o", "out.ptx"]), 1,
         "out.ptx: PTX holds an organised grid and c.xyz is an unorganised cloud"),
    Case("--grid of another size than the .ply", _ply_without_grid, 1,
         "c.ply: --grid 10x12 needs 120 vertices, the file holds 100"),
]


def _env() -> dict[str, str]:
    """The environment of a user who has set nothing: TensorFlow's log level is left to pcfilter. A
    scheduler without workers is refused after 2 s instead of 10 (``PCFILTER_WORKER_WAIT``)."""
    return {**{k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}, "PCFILTER_FAST": "1",
            "PCFILTER_WORKER_WAIT": "2"}


def _command(argv: list[str]) -> list[str]:
    return [sys.executable, "-c", RUNNER, *argv]


@pytest.mark.parametrize("case", CASES + SECOND_ROUND + LAS_CASES + PTX_CASES,
                         ids=[case.name for case in CASES + SECOND_ROUND + LAS_CASES + PTX_CASES])
def test_bad_input(case, tmp_path):
    check_case(case, tmp_path)


def check_case(case: Case, tmp_path: Path) -> None:
    """Run one row in a fresh process and check what the module's docstring says."""
    folder = tmp_path / "case"
    folder.mkdir()
    argv = case.make(folder)
    before = snapshot(folder)
    result = fresh_cli.run(argv, folder, _env(), tmp_path / "logs", timeout=TIMEOUT)
    assert result.returncode == case.code, result.stderr[-3000:]
    after = snapshot(folder)
    if case.avoids is not None:
        assert case.avoids not in result.stdout + result.stderr, result.stdout + result.stderr
    if case.code:
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"pcfilter {argv[0]}: "), result.stderr
        assert case.says in result.stderr, result.stderr
        assert after == before  # nothing written, nothing damaged
    else:
        assert result.stderr == "" and case.says in result.stdout, result.stderr[-3000:]
        if not case.repairs:  # the input is untouched and only the outputs are new
            assert {name: after[name] for name in before if name not in case.replaces} == \
                {name: before[name] for name in before if name not in case.replaces}
            assert all(after[name] != before[name] for name in case.replaces)
            assert set(after) - set(before) == set(case.outputs)
        if case.check is not None:
            case.check(folder)
    if case.code and not case.tensorflow:  # refused before the start-up of TensorFlow, seconds long
        assert not result.tensorflow, "TensorFlow started before the input was checked"


def test_outputs_follow_the_umask(tmp_path, monkeypatch, capsys):
    """Case 19: files get the mode the user's umask gives, not mkstemp's 0600. The command runs in this
    process with its umask set as a shell would set it: the mode is read from the umask at each write."""
    monkeypatch.chdir(tmp_path)
    write_xyz(tmp_path / "c.xyz", CLOUD)
    for umask, mode in ((0o022, 0o644), (0o027, 0o640)):
        previous = os.umask(umask)
        try:
            status = main(["filter", "c.xyz", "-o", f"out{umask}.ply", "--method", "sor"])
        finally:
            os.umask(previous)
        assert status == 0, capsys.readouterr().err
        assert stat.S_IMODE((tmp_path / f"out{umask}.ply").stat().st_mode) == mode


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_refused_before_the_work(tmp_path):
    """Case 17 with permissions (as root, the /proc row of the table covers it)."""
    write_xyz(tmp_path / "c.xyz", CLOUD)
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    result = subprocess.run(_command(["filter", "c.xyz", "-o", "ro/out.ply"]), cwd=tmp_path, env=_env(),
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 1 and "the folder ro is not writable" in result.stderr
    assert not list((tmp_path / "ro").iterdir())
    # Second round, finding 6: a folder of inputs into it, refused before the first file is filtered.
    (tmp_path / "in").mkdir()
    write_xyz(tmp_path / "in" / "c.xyz", CLOUD)
    for command in ("filter", "reconstruct"):
        result = subprocess.run(_command([command, "in", "-o", "ro", "--method", "sor"]), cwd=tmp_path,
                                env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
        assert result.returncode == 1 and result.stdout == "", result.stdout
        assert result.stderr == f"pcfilter {command}: cannot write into -o ro: the folder ro is not writable " \
                                "(Permission denied); choose another\n"
    assert not list((tmp_path / "ro").iterdir())


@pytest.mark.parametrize("when", ["start-up", "filtering"])
def test_ctrl_c_gives_one_line_and_no_output(tmp_path, when):
    """Cases 7, 9 and 10: Ctrl-C while TensorFlow starts or while the filter runs ends with one line,
    status 130 and no output file, never with a traceback, replayed logs or a finished run."""
    write_xyz(tmp_path / "c.xyz", plane(150))  # 22,501 points: a few seconds of filtering
    marker = tmp_path / "started"
    # The command line runs with a probe that marks when TensorFlow is imported, so that the signal
    # is sent at a known stage instead of after a guessed delay.
    probe = ("import sys, pathlib\nimport pcfilter_lib.runtime as runtime\nsetup = runtime.setup\n"
             f"stage = {when!r}\n"
             "marker = pathlib.Path(sys.argv.pop(1))\n"
             "def marked(*a, **k):\n"
             "    if stage == 'start-up': marker.touch()\n"
             "    setup(*a, **k)\n"
             "    if stage == 'filtering': marker.touch()\n"
             "runtime.setup = marked\n" + RUNNER)
    process = subprocess.Popen([sys.executable, "-c", probe, str(marker), "filter", "c.xyz", "-o", "out.ply"],
                               cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIMEOUT
    while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)  # well inside TensorFlow's import, or inside the filtering
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, stderr[-3000:]
    assert stderr == "pcfilter filter: interrupted; no output file was left half-written\n"
    assert not (tmp_path / "out.ply").exists() and not list(tmp_path.glob(".out.*"))


def test_small_clouds_are_padded_without_changing_predictions():
    """Case 2: a patch of N < P points is filled up to P by repeating its points; PointNet's max pool
    does not see the repeats, and the patch's frame comes from its own N points, so any order of
    repeats gives the same probabilities."""
    point_filter = filters.point_filter()
    points = CLOUD[:100]
    prob = point_filter.keep_probability_points(points)
    hood = neighbourhoods(points, point_filter.neighbours)
    cover = cover_patches(hood, np.arange(len(points)), point_filter.patch_size)
    patches, members = cover.patches, cover.patches.shape[1]
    size = point_filter.model.input_shape[1]
    reversed_repeats = np.concatenate([patches, np.tile(patches[:, ::-1], (1, size))], axis=1)[:, :size]
    other = point_filter.predict_patches(patch_inputs(hood, reversed_repeats, point_filter.feature_set,
                                                      members=members))
    held = cover.held
    np.testing.assert_allclose(combine(patches[held], other[:, :members][held], len(points)), prob, atol=1e-5)


def test_an_empty_error_message_still_says_what_happened():
    """Case 14: running out of memory gave the blank line 'pcfilter simulate: '."""
    assert one_line(MemoryError()).startswith("out of memory")
    assert one_line(RuntimeError("\x1b[1;31m[Open3D Error] bad\n\x1b[0;m")) == "[Open3D Error] bad"


def test_a_run_in_a_log_says_how_far_it_got(tmp_path, capsys):
    """Second round, finding 1: with stderr not a terminal, a command's bar is held back for
    ``LOG_PROGRESS['delay']`` seconds (a short run prints nothing), then shows; here without the delay."""
    from pcfilter_lib.cli.options import LOG_PROGRESS, progress_bar
    from pcfilter_lib.simulate.dataset import write_dataset

    assert progress_bar() == LOG_PROGRESS and LOG_PROGRESS["delay"] <= 60  # pytest captures stderr: a log
    write_dataset(tmp_path / "ds", 2, 0, ScannerConfig(width=48, height=32), split=(1, 0, 0),
                  progress={**LOG_PROGRESS, "delay": 0})
    assert "simulating scans: 100%" in capsys.readouterr().err


def test_every_numeric_option_has_a_documented_range_checked_before_any_work(tmp_path, capsys, monkeypatch):
    """Second round, finding 1: each int or float option of each command says its range in --help and
    refuses a value far beyond it with one line naming it, before anything is read or written."""
    from pcfilter_lib.cli.app import build_parser, main

    monkeypatch.chdir(tmp_path)
    write_xyz(tmp_path / "c.xyz", CLOUD)
    required = {"simulate": ["--out", "sim", "--n", "1"], "filter": ["c.xyz", "-o", "o.ply"],
                "reconstruct": ["c.xyz", "-o", "m.ply"], "evaluate": ["--data", "."],
                "modelnet": ["--synthetic", "--out", "mn"], "finetune": ["--data", ".", "--out", "m.npz"]}
    checked = []
    for command, parser in build_parser().commands.items():
        for action in parser._actions:
            if action.type not in (int, float):
                continue
            assert re.search(r"\d.*(\bto\b|\bor\b|<)", action.help or ""), (command, action.dest, action.help)
            option = max(action.option_strings, key=len)
            assert main([command, *required[command], f"{option}={10 ** 12}"]) == 1, (command, option)
            error = capsys.readouterr().err
            assert error.count("\n") == 1 and option in error, (command, option, error)
            checked.append(f"{command} {option}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.xyz"]  # nothing written
    assert len(checked) >= 12, checked


def test_every_case_of_the_issue_has_a_row():
    """Each of the 19 numbered cases of the first round has a row of the table or a test of its own
    (10 and 19 above), and each of the 7 findings of the second round has rows."""
    numbers = {int(case.name.split()[0]) for case in CASES} | {10, 19}
    assert numbers == set(range(1, 20)), sorted(set(range(1, 20)) - numbers)
    assert {int(case.name.split()[0]) for case in SECOND_ROUND} == set(range(1, 8))
