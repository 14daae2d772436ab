"""``pcfilter filter`` and ``pcfilter evaluate``, run as a user runs them, on a tiny simulated dataset.

A command whose check is about its own process (a clean stderr, TensorFlow's start-up, threads,
Ctrl-C) runs the console script (``run``); the others run through ``cli.main`` in this process
(``pcfilter``), which answers as the console script does, without the start-up of a new process.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pcfilter_lib import filters, labels
from pcfilter_lib.cli import main
from pcfilter_lib.io.organised import read_cloud, write_points
from pcfilter_lib.io.scan import load_scan

PCFILTER = Path(sys.executable).with_name("pcfilter")


def run(*args, data=None, env=None):
    env = {**os.environ, "PCFILTER_FAST": "1", **(env or {})}
    if data is not None:
        env["PCFILTER_DATA"] = str(data)
    return subprocess.run([str(PCFILTER), *map(str, args)], capture_output=True, text=True, timeout=600, env=env)



@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scans") / "tiny"
    assert main(["simulate", "--out", str(folder), "--n", "4", "--seed", "7", "--size", "96x64", "--split",
                 "0.5/0.25/0.25"]) == 0
    return folder


def test_filter_writes_kept_and_removed_points_that_add_up(dataset, tmp_path, pcfilter):
    scan_path = next((dataset / "test").glob("*.npz"))
    kept, removed = tmp_path / "kept.pcd", tmp_path / "removed.ply"
    # In this process: a fresh one's stderr under the classical methods is the never-start test's below.
    result = pcfilter("filter", scan_path, "-o", kept, "--removed", removed, "--method", "sor")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    scan = load_scan(scan_path, arrays=())
    grid, points = read_cloud(kept), read_cloud(removed)
    assert grid["organised"] and grid["valid"].shape == scan["valid"].shape  # .pcd keeps the grid
    assert not points["organised"]
    assert grid["valid"].sum() + points["valid"].sum() == scan["valid"].sum()
    assert f"kept {int(grid['valid'].sum())} of {int(scan['valid'].sum())} points" in result.stdout
    # the organised output is itself a valid input, for the image filters too
    again = pcfilter("filter", kept, "-o", tmp_path / "again.ply", "--method", "morph")
    assert again.returncode == 0, again.stderr


@pytest.mark.skipif(not filters.SHIPPED_MODEL.is_file(), reason="the shipped U-Net filter is missing")
def test_filter_uses_the_shipped_unet_by_default_without_noise_on_stderr(dataset, tmp_path):
    scan_path = next((dataset / "val").glob("*.npz"))
    result = run("filter", scan_path, "-o", tmp_path / "kept.ply")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no TensorFlow start-up logs
    assert result.stdout.startswith("unet_filter: kept")


def test_filter_refuses_to_overwrite_its_input_and_explains_unusable_files(dataset, tmp_path, pcfilter):
    scan_path = next((dataset / "train").glob("*.npz"))
    before = hashlib.sha256(scan_path.read_bytes()).hexdigest()
    result = pcfilter("filter", scan_path, "-o", tmp_path / "k.ply", "--removed", scan_path, "--method", "morph")
    assert result.returncode == 1 and "is the input file" in result.stderr
    assert hashlib.sha256(scan_path.read_bytes()).hexdigest() == before

    cloud = tmp_path / "cloud.ply"
    write_points(cloud, np.random.default_rng(0).random((50, 3)))
    result = pcfilter("filter", cloud, "-o", tmp_path / "out.ply", "--method", "morph")
    assert result.returncode == 1 and "unorganised cloud" in result.stderr and "--method sor" in result.stderr
    result = pcfilter("filter", cloud, "-o", tmp_path / "out.ply", "--model", "unet")
    assert result.returncode == 1 and "needs an organised scan" in result.stderr
    assert pcfilter("filter", cloud, "-o", tmp_path / "out.ply", "--method", "ror").returncode == 0
    result = pcfilter("filter", cloud, "-o", tmp_path / "out.ply", "--method", "ror")  # now there: not replaced
    assert result.returncode == 1 and "out.ply already exists" in result.stderr and "--overwrite" in result.stderr
    assert pcfilter("filter", cloud, "-o", tmp_path / "out.ply", "--method", "ror", "--overwrite").returncode == 0

    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK not really")
    result = pcfilter("filter", broken, "-o", tmp_path / "out2.ply", "--method", "sor")
    assert result.returncode == 1 and "not a readable scan" in result.stderr
    result = pcfilter("filter", scan_path, "-o", tmp_path / "out.txt", "--method", "sor")
    assert result.returncode == 1 and "outputs are written as .ply, .xyz, .las or .laz" in result.stderr


def test_evaluate_json_matches_the_library(dataset, pcfilter):
    result = pcfilter("evaluate", "--data", dataset, "--split", "test", "--method", "morph", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    scans = list(filters.iter_scans(sorted((dataset / "test").glob("*.npz"))))
    expected = filters.evaluate_filter(filters.baseline_filter("morph"), scans)
    for key in ("tp", "fn", "fp", "tn", "mean_iou", "balanced_accuracy", "f1", "false_omission_rate", "recall"):
        assert report[key] == pytest.approx(expected[key])
    assert set(report["kinds"]) == {labels.KIND_NAMES[code] for code in labels.ARTEFACT_KINDS}

    text = pcfilter("evaluate", "--data", dataset, "--split", "val", "--method", "sor")
    assert text.returncode == 0, text.stderr
    assert "keep-recall" in text.stdout and "artefact kind mixed" in text.stdout

    missing = pcfilter("evaluate", "--data", dataset / "nowhere", "--method", "sor")
    assert missing.returncode == 1 and "is not a folder" in missing.stderr
    empty = pcfilter("evaluate", "--data", dataset / "test", "--method", "sor")  # scans, but no manifest or pairs
    assert empty.returncode == 1 and "neither a manifest.json" in empty.stderr


# Unorganised clouds: the point filter

needs_point_filter = pytest.mark.skipif(not filters.SHIPPED_POINT_MODEL.is_file(),
                                        reason="the shipped point filter is missing")


def write_xyz(path, points):
    path.write_text("".join(f"{x} {y} {z}\n" for x, y, z in np.asarray(points, float).tolist()))
    return path


@needs_point_filter
def test_unorganised_clouds_go_through_the_point_filter_and_bad_points_are_counted(dataset, tmp_path, pcfilter):
    scan = load_scan(next((dataset / "test").glob("*.npz")), arrays=())
    points = scan["xyz"][scan["valid"]].astype(float)
    points[[3, 10]] = [np.nan, 0.0, 0.0], [np.inf, 1.0, 2.0]
    source = write_xyz(tmp_path / "cloud.xyz", points)
    kept, removed = tmp_path / "clean.ply", tmp_path / "removed.ply"
    # In this process: a fresh one's stderr under the point filter (TensorFlow's C++ logs) is checked by
    # test_bad_input's rows that run it.
    result = pcfilter("filter", source, "-o", kept, "--removed", removed)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("pointnet_filter: kept")
    assert "dropped 2 points with NaN or infinite coordinates" in result.stdout
    n_kept, n_removed = (int(read_cloud(p)["valid"].sum()) for p in (kept, removed))
    assert n_kept + n_removed == len(points) - 2 and n_kept > n_removed
    # the same cloud as a .ply: the same answer
    write_points(tmp_path / "cloud.ply", points[np.isfinite(points).all(1)])
    again = pcfilter("filter", tmp_path / "cloud.ply", "-o", tmp_path / "again.ply")
    assert again.returncode == 0, again.stderr
    assert int(read_cloud(tmp_path / "again.ply")["valid"].sum()) == n_kept


def test_clouds_too_small_empty_or_too_large_get_clear_errors(tmp_path, pcfilter):
    two = write_xyz(tmp_path / "two.xyz", [[0, 0, 0], [1, 0, 0]])
    result = pcfilter("filter", two, "-o", tmp_path / "out.ply")
    assert result.returncode == 1 and "holds 2 points" in result.stderr and "at least 4" in result.stderr
    empty = tmp_path / "empty.xyz"
    empty.write_text("")
    result = pcfilter("filter", empty, "-o", tmp_path / "out.ply")
    assert result.returncode == 1 and "holds no points" in result.stderr
    nan = write_xyz(tmp_path / "nan.xyz", [[np.nan, 0, 0], [0, np.inf, 0]])
    result = pcfilter("filter", nan, "-o", tmp_path / "out.ply")
    assert result.returncode == 1 and "no point has finite coordinates" in result.stderr
    garbage = tmp_path / "garbage.xyz"
    garbage.write_text("1 2 3\nfour five six\n")
    result = pcfilter("filter", garbage, "-o", tmp_path / "out.ply")
    assert result.returncode == 1 and "is not a text cloud" in result.stderr
    # 2 GB of x y z lines (a sparse file: no disk used) read whole through Open3D is refused before it is
    # read (.xyz and unorganised binary .ply are streamed instead: their memory does not grow with them)
    huge = write_xyz(tmp_path / "huge.xyz", np.random.default_rng(0).random((1000, 3)))
    with open(huge, "r+b") as file:
        file.truncate(2 * 1024 ** 3)
    huge = huge.rename(tmp_path / "huge.pts")
    result = pcfilter("filter", huge, "-o", tmp_path / "out.ply")
    assert result.returncode == 1, result.stderr
    assert "million points" in result.stderr and "Thin the cloud" in result.stderr
    assert not (tmp_path / "out.ply").exists()


def test_evaluate_reads_pointcleannet_pairs(tmp_path, pcfilter):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        plane = np.c_[rng.random((400, 2)), np.zeros(400)]
        specks = rng.random((8, 3)) + [0, 0, 0.5]
        write_xyz(tmp_path / f"{name}.xyz", np.r_[plane, specks])
        (tmp_path / f"{name}.outliers").write_text("0\n" * 400 + "1\n" * 8)
    result = pcfilter("evaluate", "--data", tmp_path, "--method", "sor", "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # (a fresh process's: the never-start test's, which evaluates such pairs)
    report = json.loads(result.stdout)
    assert report["scans"] == 2 and report["tp"] + report["fn"] == 800 and report["fp"] + report["tn"] == 16
    assert report["kinds"] == {} and report["split"] is None
    text = pcfilter("evaluate", "--data", tmp_path, "--method", "ror")
    assert text.returncode == 0 and "2 point clouds (.xyz + .outliers)" in text.stdout
    morph = pcfilter("evaluate", "--data", tmp_path, "--method", "morph")
    assert morph.returncode == 1 and "unorganised" in morph.stderr


def test_evaluate_per_file_prints_one_row_per_cloud_that_add_up_to_the_pooled_result(dataset, tmp_path, pcfilter):
    from pcfilter_lib.io.clouds import cloud_scan, read_pointcleannet

    rng = np.random.default_rng(1)
    for name, specks in (("few", 2), ("many", 40)):
        plane = np.c_[rng.random((500, 2)), np.zeros(500)]
        write_xyz(tmp_path / f"{name}.xyz", np.r_[plane, rng.random((specks, 3)) + [0, 0, 0.5]])
        (tmp_path / f"{name}.outliers").write_text("0\n" * 500 + "1\n" * specks)
    text = pcfilter("evaluate", "--data", tmp_path, "--method", "sor", "--per-file")
    assert text.returncode == 0, text.stderr
    rows = [line.split() for line in text.stdout.splitlines() if line.startswith(("few.xyz", "many.xyz"))]
    assert [(r[0], r[1], r[2]) for r in rows] == [("few.xyz", "500", "2"), ("many.xyz", "500", "40")]
    report = json.loads(pcfilter("evaluate", "--data", tmp_path, "--method", "sor", "--per-file", "--json").stdout)
    sor = filters.baseline_filter("sor")
    for row in report["files"]:
        points, outlier = read_pointcleannet(tmp_path / row["file"])
        alone = filters.evaluate_filter(sor, [cloud_scan(points, label=~outlier)])
        assert {k: row[k] for k in ("tp", "fn", "fp", "tn")} == {k: alone[k] for k in ("tp", "fn", "fp", "tn")}
    pooled = json.loads(pcfilter("evaluate", "--data", tmp_path, "--method", "sor", "--json").stdout)
    for key in ("tp", "fn", "fp", "tn", "mean_iou", "balanced_accuracy"):
        assert report[key] == pytest.approx(pooled[key])

    scans = json.loads(pcfilter("evaluate", "--data", dataset, "--split", "val", "--method", "morph", "--per-file",
                                "--json").stdout)
    whole = json.loads(pcfilter("evaluate", "--data", dataset, "--split", "val", "--method", "morph", "--json").stdout)
    assert [row["file"] for row in scans["files"]] == [p.name for p in sorted((dataset / "val").glob("*.npz"))]
    assert scans["mean_iou"] == pytest.approx(whole["mean_iou"])
    for kind, row in whole["kinds"].items():
        assert scans["kinds"][kind]["points"] == row["points"]
        assert scans["kinds"][kind]["removed"] == pytest.approx(row["removed"])


# The point filter on large clouds: tiles, streaming, scores, folders, determinism, interruption


def small_cloud(dataset, points=2500):
    """A test scan's measured points as an (N, 3) float64 cloud of ``points`` points, one of them NaN."""
    scan = load_scan(next((dataset / "test").glob("*.npz")), arrays=())
    cloud = scan["xyz"][scan["valid"]].astype(float)[:points]
    cloud[4] = np.nan
    return cloud


@needs_point_filter
def test_scores_and_xyz_output_in_tiles_are_the_same_bytes_whatever_the_threads(dataset, tmp_path):
    """--scores is read back by Open3D, -o .xyz keeps the input's format, and two runs in tiles (so the
    halo logic runs) with one and with two threads write byte-identical files."""
    import open3d as o3d

    from pcfilter_lib.io.model_cards import read_model_card

    cloud = small_cloud(dataset)
    source = tmp_path / "cloud.xyz"
    source.write_text("".join(f"{x:.17g} {y:.17g} {z:.17g}\n" for x, y, z in cloud.tolist()))
    names = ("kept.xyz", "removed.ply", "scores.ply")
    for threads in ("1", "2"):
        (tmp_path / threads).mkdir()
        result = run("filter", source, "-o", tmp_path / threads / names[0], "--removed", tmp_path / threads / names[1],
                     "--scores", tmp_path / threads / names[2], "--tile-points", 1000, "--quiet",
                     env={"OMP_NUM_THREADS": threads, "TF_NUM_INTRAOP_THREADS": threads})
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
    for name in names:
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes(), name

    scores = o3d.t.io.read_point_cloud(str(tmp_path / "1" / "scores.ply"))
    prob = scores.point["keep_probability"].numpy().ravel()
    np.testing.assert_array_equal(scores.point.positions.numpy(), cloud.astype(np.float64))
    assert len(prob) == len(cloud) and prob[4] == 0 and ((prob >= 0) & (prob <= 1)).all() and prob.std() > 0
    keep = prob >= read_model_card(filters.SHIPPED_POINT_MODEL).threshold
    kept = np.loadtxt(tmp_path / "1" / "kept.xyz", ndmin=2)
    np.testing.assert_array_equal(kept, cloud[keep])  # .xyz text in full double precision
    removed = read_cloud(tmp_path / "1" / "removed.ply")
    assert int(removed["valid"].sum()) == len(cloud) - 1 - keep.sum()


@pytest.mark.skipif(not filters.SHIPPED_NEIGHBOUR_MODEL.is_file(), reason="the shipped neighbour filter is missing")
def test_a_folder_is_filtered_in_parallel_jobs_and_a_bad_file_is_skipped(dataset, tmp_path, pcfilter):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    cloud = small_cloud(dataset, 1500)
    write_xyz(folder / "a.xyz", cloud)
    write_points(folder / "b.ply", cloud[np.isfinite(cloud).all(1)])
    (folder / "c.xyz").write_text("1 2 3\nfour five six\n")
    # Two worker processes, each a one-thread `pcfilter filter` of one file with the options forwarded. The
    # neighbour filter spares each worker TensorFlow's start-up; the point filter in such a process (one
    # thread) is the test above's.
    result = pcfilter("filter", folder, "-o", out, "--jobs", 2, "--model", "neighbours")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("a.xyz: neighbour_filter: kept") and lines[1].startswith("b.ply: neighbour_filter: kept")
    assert lines[2].startswith("c.xyz: skipped:") and "is not a text cloud" in lines[2]
    assert lines[3] == f"2 of 3 files filtered into {out}; 1 skipped (see above)"
    assert sorted(p.name for p in out.iterdir()) == ["a.xyz", "b.ply"]
    assert 0 < len(np.loadtxt(out / "a.xyz", ndmin=2)) < len(cloud) - 1
    assert 0 < int(read_cloud(out / "b.ply")["valid"].sum()) < len(cloud) - 1


INTERRUPT_WHILE_WRITING = """
import os, signal, sys
from pcfilter_lib.cli import main
from pcfilter_lib.io import clouds
write = clouds.CloudWriter.write
def write_then_interrupt(self, *args, **kwargs):
    write(self, *args, **kwargs)
    self._file.flush()
    open(sys.argv[1], "w").write(str(os.path.getsize(self._file.name)))  # the partial file, on disk
    os.kill(os.getpid(), signal.SIGINT)
clouds.CloudWriter.write = write_then_interrupt
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.skipif(not filters.SHIPPED_NEIGHBOUR_MODEL.is_file(), reason="the shipped neighbour filter is missing")
def test_ctrl_c_while_a_streamed_cloud_is_written_leaves_no_file(dataset, tmp_path):
    source = write_xyz(tmp_path / "cloud.xyz", small_cloud(dataset, 1500))
    marker = tmp_path / "written"
    # The neighbour filter's outputs are streamed as the point filter's are (_write_stream), without
    # TensorFlow's start-up; Ctrl-C during TensorFlow's work is test_bad_input's.
    result = subprocess.run([sys.executable, "-c", INTERRUPT_WHILE_WRITING, str(marker), "filter", source,
                             "-o", tmp_path / "out.ply", "--scores", tmp_path / "scores.ply", "--model", "neighbours",
                             "--quiet"],
                            capture_output=True, text=True, timeout=600, env={**os.environ, "PCFILTER_FAST": "1"},
                            cwd=tmp_path)
    assert int(marker.read_text()) > 0  # the first chunk was on disk when Ctrl-C came
    assert result.returncode == 130, result.stderr
    assert result.stderr == "pcfilter filter: interrupted; no output file was left half-written\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cloud.xyz", "written"]


# Commands (a JSON list of argument lists) run one after another in one interpreter, as the console
# script runs one, each followed by a line of its exit status and what the process has loaded so far: a
# module once imported stays, so the first command that imports one is the first whose line names it.
RUN_EACH_AND_LIST = ("import json, sys\nfrom pcfilter_lib.cli import main\nfor argv in json.loads(sys.argv[1]):\n"
                     "    status = main(argv)\n    print('STATUS', status, 'LOADED', *sorted(m for m in "
                     "('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules), flush=True)\n")


@pytest.mark.skipif(not filters.SHIPPED_NEIGHBOUR_MODEL.is_file(), reason="the shipped neighbour filter is missing")
def test_the_neighbour_filter_and_the_classical_methods_never_start_tensorflow(dataset, tmp_path):
    rng = np.random.default_rng(2)
    plane = np.c_[rng.random((3000, 2)), 0.002 * rng.random(3000)]
    write_xyz(tmp_path / "a.xyz", np.r_[plane, rng.random((30, 3)) + [0, 0, 0.3]])
    (tmp_path / "a.outliers").write_text("0\n" * 3000 + "1\n" * 30)
    scan_path = next((dataset / "test").glob("*.npz"))
    commands = [("filter", tmp_path / "a.xyz", "-o", tmp_path / "n.ply", "--model", "neighbours"),
                ("filter", tmp_path / "a.xyz", "-o", tmp_path / "s.ply", "--method", "sor"),
                ("filter", scan_path, "-o", tmp_path / "r.ply", "--method", "ror"),
                ("filter", scan_path, "-o", tmp_path / "m.ply", "--model", "neighbours"),
                ("evaluate", "--data", tmp_path, "--model", "neighbours", "--json"),
                ("evaluate", "--data", dataset, "--split", "test", "--method", "sor", "--json"),
                # reconstruct without --upsample: TensorFlow only for a learned filter that needs it
                ("reconstruct", scan_path, "-o", tmp_path / "sor.ply", "--method", "sor", "--depth", "6", "--quiet"),
                ("reconstruct", tmp_path / "a.xyz", "-o", tmp_path / "nb.ply", "--model", "neighbours", "--depth", "6",
                 "--quiet")]
    # One process for them all: each command's status and modules are its own line, and stderr, empty for
    # every command, is empty for them all.
    argvs = json.dumps([list(map(str, command)) for command in commands])
    result = subprocess.run([sys.executable, "-c", RUN_EACH_AND_LIST, argvs], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PCFILTER_FAST": "1"})
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("STATUS ")]
    assert len(lines) == len(commands), result.stdout
    for command, line in zip(commands, lines, strict=True):
        assert line == "STATUS 0 LOADED", (command, line)
    assert result.stderr == "", result.stderr


def test_a_text_cloud_larger_than_a_tile_is_read_again_from_its_spilled_coordinates(tmp_path):
    """``_scan_stream`` spills an .xyz cloud's chunks once it holds more than a tile (the chunks kept until
    then first), and ``_spilled_chunks`` gives back the same coordinates, NaN rows included."""
    from types import SimpleNamespace

    from pcfilter_lib.cli.filter import _scan_stream, _spilled_chunks

    parts = [np.random.default_rng(seed).normal(size=(400, 3)) for seed in range(5)]
    parts[3][7] = np.nan
    stream = SimpleNamespace(path=tmp_path / "c.xyz", chunks=lambda: ({"xyz": p, "intensity": None} for p in parts))
    total, finite, _, kept, _ = _scan_stream(stream, 1000, tmp_path / "spill")
    assert (total, finite, kept) == (2000, 1999, None)
    again = list(_spilled_chunks(tmp_path / "spill", 700))
    assert [len(c["xyz"]) for c in again] == [700, 700, 600] and again[0]["intensity"] is None
    np.testing.assert_array_equal(np.concatenate([c["xyz"] for c in again]), np.concatenate(parts))
    assert _scan_stream(stream, 5000, tmp_path / "small")[3] is not None and not (tmp_path / "small").exists()
