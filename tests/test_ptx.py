"""PTX files (``io.ptx``): a simulated scan written and read back, the general layout with colours
and several scans, labels beside a scan, PhoXi's organised .ply, and ``filter`` / ``evaluate`` /
``finetune``'s reader on them. Every file is written by the test."""

import gzip
import json
import subprocess

import numpy as np
import pytest

from pcfilter_lib import filters
from pcfilter_lib.cli.options import PHOXI_GRIDS, parse_grid
from pcfilter_lib.io.clouds import CloudError, write_ply_rows
from pcfilter_lib.io.labelled import read_labelled_folder
from pcfilter_lib.io.organised import PHOXI_SENSORS, read_cloud
from pcfilter_lib.io.ptx import IDENTITY_HEADER as IDENTITY
from pcfilter_lib.io.ptx import PtxHeader, read_ptx, read_ptx_labels, registered, write_ptx
from pcfilter_lib.labels import ARTEFACT
from pcfilter_lib.nn import scores
from pcfilter_lib.simulate.dataset import make_scan
from pcfilter_lib.simulate.scanner import ScannerConfig

CONFIG = ScannerConfig(width=64, height=48)


@pytest.fixture(scope="module")
def scan():
    return make_scan(seed=5, index=0, config=CONFIG)



def write_labelled(folder, scan, name="s", suffix=".ptx.gz", header=None):
    """The scan as NAME.ptx[.gz] with NAME.outliers.gz beside it (one line per grid position)."""
    path = folder / f"{name}{suffix}"
    write_ptx(path, scan["xyz"], scan["intensity"], keep=scan["valid"], header=header)
    outlier = (scan["label"] == ARTEFACT) & scan["valid"]
    with gzip.open(folder / f"{name}.outliers.gz", "wt") as file:
        file.write("".join("1\n" if v else "0\n" for v in outlier.reshape(-1).tolist()))
    return path


def test_a_simulated_scan_round_trips_through_ptx_and_gzip(scan, tmp_path):
    valid = scan["valid"]
    for name in ("s.ptx", "s.ptx.gz"):
        assert write_ptx(tmp_path / name, scan["xyz"], scan["intensity"], keep=valid) == valid.sum()
        read = read_ptx(tmp_path / name)
        assert read["xyz"].shape == (48, 64, 3) and read["scans"] == 1 and read["rgb"] is None
        np.testing.assert_array_equal(read["valid"], valid)
        np.testing.assert_array_equal(read["xyz"][valid].astype(np.float32), scan["xyz"][valid])  # exact
        np.testing.assert_array_equal(read["intensity"][valid], scan["intensity"][valid])
        assert np.isnan(read["xyz"][~valid]).all()
    text = (tmp_path / "s.ptx").read_text()
    assert text.splitlines()[:10] == ["48", "64", "0 0 0", "1 0 0", "0 1 0", "0 0 1", "1 0 0 0", "0 1 0 0",
                                      "0 0 1 0", "0 0 0 1"]  # PhoXi Control's header: rows first, identity
    assert gzip.decompress((tmp_path / "s.ptx.gz").read_bytes()).decode() == text
    write_ptx(tmp_path / "again.ptx", read["xyz"], read["intensity"], header=read["header"])
    assert (tmp_path / "again.ptx").read_text() == text
    cloud = read_cloud(tmp_path / "s.ptx.gz")  # the organised dict the image filters read
    assert cloud["organised"] and cloud["normals"].shape == (48, 64, 3) and cloud["intensity"].shape == (48, 64)
    assert np.isfinite(cloud["normals"][valid]).all(axis=-1).mean() > 0.9


GENERAL = """3
2
1 2 3
0 -1 0
1 0 0
0 0 1
0 -1 0 0
1 0 0 0
0 0 1 0
10 20 30 1
0.5 0.25 2 0.7 255 128 0
0 0 0 0.5 0 0 0
0.5 0.5 2 0.6 10 20 30
0.75 0.25 2.5 0.4 0 0 255
0 0 0 0 0 0 0
1 1 3 0.2 1 2 3
1
1
0 0 0
1 0 0
0 1 0
0 0 1
1 0 0 0
0 1 0 0
0 0 1 0
0 0 0 1
1 1 1 0.5
"""


def test_the_general_layout_with_colours_a_transform_and_a_second_scan(tmp_path, pcfilter):
    path = tmp_path / "leica.ptx"
    path.write_text(GENERAL)
    read = read_ptx(path)
    assert read["xyz"].shape == (3, 2, 3) and read["scans"] == 2  # file order: 3 blocks of 2 points
    np.testing.assert_array_equal(read["valid"], [[True, False], [True, True], [False, True]])
    np.testing.assert_array_equal(read["xyz"][1], [[0.5, 0.5, 2], [0.75, 0.25, 2.5]])
    np.testing.assert_allclose(read["intensity"], [[0.7, 0], [0.6, 0.4], [0, 0.2]], rtol=1e-6)
    np.testing.assert_array_equal(read["rgb"][0, 0], [255, 128, 0])
    header = read["header"]
    np.testing.assert_array_equal(header.pose[0], [1, 2, 3])
    moved = registered(read["xyz"][0, 0], header)  # [x y z 1] @ matrix: (y, -x, z) + (10, 20, 30)
    np.testing.assert_array_equal(moved, [10.25, 19.5, 32])
    assert header.lines()[6:] == ["0 -1 0 0", "1 0 0 0", "0 0 1 0", "10 20 30 1"]
    out = tmp_path / "out.ptx"
    result = pcfilter("filter", path, "-o", out, "--method", "sor", "--allow-empty")
    assert result.returncode == 0, result.stderr
    assert "holds 2 scans; the first (3 x 2 points) is read" in result.stderr
    assert out.read_text().splitlines()[:10] == GENERAL.splitlines()[:10]  # the header is kept


def test_phoxi_texture_becomes_the_intensity(tmp_path):
    lines = ["1", "2", *["0 0 0", "1 0 0", "0 1 0", "0 0 1", "1 0 0 0", "0 1 0 0", "0 0 1 0", "0 0 0 1"],
             "1 2 3 1 51 51 51", "1 2 4 1 204 204 204"]
    (tmp_path / "t.ptx").write_text("\n".join(lines) + "\n")
    read = read_ptx(tmp_path / "t.ptx")
    np.testing.assert_allclose(read["intensity"], [[0.2, 0.8]], rtol=1e-6)


def test_labels_beside_a_scan_are_checked(scan, tmp_path):
    path = write_labelled(tmp_path, scan, suffix=".ptx")
    read = read_ptx(path)
    outlier = read_ptx_labels(path, read["valid"])
    np.testing.assert_array_equal(outlier, (scan["label"] == ARTEFACT) & scan["valid"])
    clouds = read_labelled_folder(tmp_path)  # what finetune reads
    assert [c.name for c in clouds] == ["s.ptx"] and len(clouds[0]) == scan["valid"].sum()
    np.testing.assert_array_equal(clouds[0].keep, ~outlier[scan["valid"]])
    (tmp_path / "s.outliers.gz").unlink()
    (tmp_path / "s.outliers").write_text("0\n" * 7)
    with pytest.raises(CloudError, match="7 labels for the 3072 point lines"):
        read_ptx_labels(path, read["valid"])
    (tmp_path / "s.outliers").write_text("1\n" * 3072)
    with pytest.raises(CloudError, match="marks an outlier where s.ptx has no point"):
        read_ptx_labels(path, read["valid"])


def test_evaluate_gives_the_roc_auc_of_a_learned_filter_on_labelled_ptx(scan, tmp_path, pcfilter):
    write_labelled(tmp_path, scan)
    result = pcfilter("evaluate", "--data", tmp_path, "--model", "neighbours", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    cloud = read_cloud(tmp_path / "s.ptx.gz")
    valid = cloud["valid"]
    prob = filters.neighbour_filter(None).keep_probability(cloud)
    keep_label = (scan["label"] != ARTEFACT)[valid].astype(np.uint8)
    assert report["roc_auc"] == pytest.approx(scores.roc_auc(keep_label, prob[valid]))
    assert report["tp"] + report["fn"] == keep_label.sum() and report["fp"] + report["tn"] == (1 - keep_label).sum()
    assert report["split"] is None  # a folder of files, not a split of a dataset
    text = pcfilter("evaluate", "--data", tmp_path, "--method", "sor", "--per-file")
    assert text.returncode == 0, text.stderr
    assert "1 organised scans (.ptx + .outliers)" in text.stdout
    assert "ROC AUC of P(artefact)           n/a (a yes/no filter" in text.stdout
    (tmp_path / "s.outliers.gz").unlink()
    missing = pcfilter("evaluate", "--data", tmp_path, "--method", "sor")
    assert missing.returncode == 1 and "s.ptx.gz has no labels beside it" in missing.stderr


def test_ptx_in_ptx_out_keeps_the_grid_and_the_header(scan, tmp_path, pcfilter):
    header = PtxHeader(48, 64, np.r_[[[0.1, 0.2, 0.3]], np.eye(3)], np.r_[np.eye(4)[:3], [[0.1, 0.2, 0.3, 1]]])
    source = write_labelled(tmp_path, scan, header=header)
    result = pcfilter("filter", source, "-o", tmp_path / "kept.ptx", "--removed", tmp_path / "removed.ptx.gz",
                      "--method", "sor")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    kept, removed = read_ptx(tmp_path / "kept.ptx"), read_ptx(tmp_path / "removed.ptx.gz")
    assert kept["header"].lines() == removed["header"].lines() == header.lines()
    assert not (kept["valid"] & removed["valid"]).any()
    np.testing.assert_array_equal(kept["valid"] | removed["valid"], scan["valid"])
    both = np.where(kept["valid"][..., None], kept["xyz"], removed["xyz"])
    np.testing.assert_array_equal(both[scan["valid"]], read_ptx(source)["xyz"][scan["valid"]])  # as they came
    xyz = tmp_path / "c.xyz"
    xyz.write_text("".join(f"{x} {y} {z}\n" for x, y, z in scan["xyz"][scan["valid"]].tolist()))
    refused = pcfilter("filter", xyz, "-o", tmp_path / "c.ptx", "--method", "sor")
    assert refused.returncode == 1 and "PTX holds an organised grid" in refused.stderr
    assert not (tmp_path / "c.ptx").exists()


def test_phoxi_organised_ply_is_read_as_a_grid(scan, tmp_path, pcfilter):
    rows = np.zeros(64 * 48, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
    valid = scan["valid"].reshape(-1)
    for i, axis in enumerate("xyz"):
        rows[axis][valid] = scan["xyz"].reshape(-1, 3)[valid, i]
    rows["intensity"][valid] = scan["intensity"].reshape(-1)[valid]
    write_ply_rows(tmp_path / "phoxi.ply", rows)  # no obj_info lines, (0, 0, 0) where no point
    assert not read_cloud(tmp_path / "phoxi.ply")["organised"]
    grid = read_cloud(tmp_path / "phoxi.ply", grid=(64, 48))
    assert grid["organised"] and grid["xyz"].shape == (48, 64, 3)
    np.testing.assert_array_equal(grid["valid"], scan["valid"])
    with pytest.raises(CloudError, match="--grid 60x48 needs 2880 vertices, the file holds 3072"):
        read_cloud(tmp_path / "phoxi.ply", grid=(60, 48))
    result = pcfilter("filter", tmp_path / "phoxi.ply", "--grid", "64x48", "-o", tmp_path / "out.ptx", "--method",
                      "sor")
    assert result.returncode == 0, result.stderr
    assert read_ptx(tmp_path / "out.ptx")["xyz"].shape == (48, 64, 3)
    refused = pcfilter("filter", tmp_path / "out.ptx", "--grid", "64x48", "-o", tmp_path / "again.ply")
    assert refused.returncode == 1 and "--grid reads a .ply" in refused.stderr

    big = np.zeros(1032 * 772, rows.dtype)  # the sensor of a PhoXi 3D Scanner at half resolution
    big[: len(rows)] = rows
    write_ply_rows(tmp_path / "half.ply", big)
    cloud = read_cloud(tmp_path / "half.ply")
    assert cloud["organised"] and cloud["xyz"].shape == (772, 1032, 3) and cloud["valid"].sum() == valid.sum()


def test_the_grid_sizes_are_listed_once_and_the_option_reads_them():
    assert tuple(PHOXI_SENSORS) == PHOXI_GRIDS  # options.py cannot import NumPy: it keeps a copy
    assert parse_grid("2064x1544") == (2064, 1544) and str(parse_grid("64X48")) == "64x48"
    for bad in ("2064", "0x10", "ax4", "1x2x3"):
        with pytest.raises(Exception, match="--grid must be WIDTHxHEIGHT"):
            parse_grid(bad)


def test_a_folder_of_ptx_scans_is_filtered_into_ptx_files_of_the_same_names(scan, tmp_path, pcfilter):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.ptx.gz", "b.ptx"):
        write_ptx(folder / name, scan["xyz"], scan["intensity"], keep=scan["valid"])
    result = pcfilter("filter", folder, "-o", tmp_path / "out", "--method", "sor")
    assert result.returncode == 0, result.stderr + result.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.ptx.gz", "b.ptx"]
    assert read_ptx(tmp_path / "out" / "a.ptx.gz")["valid"].sum() <= scan["valid"].sum()


def test_evaluate_refuses_a_folder_of_ptx_scans_and_point_clouds_together(scan, tmp_path, pcfilter):
    write_labelled(tmp_path, scan)
    (tmp_path / "c.xyz").write_text("0 0 1\n1 0 1\n")
    (tmp_path / "c.outliers").write_text("0\n1\n")
    result = pcfilter("evaluate", "--data", tmp_path, "--method", "sor")
    assert result.returncode == 1 and "holds both organised scans (.ptx) and point clouds" in result.stderr


def test_reconstruct_reads_a_ptx_scan(scan, tmp_path, pcfilter):
    source = write_labelled(tmp_path, scan)
    result = pcfilter("reconstruct", source, "-o", tmp_path / "mesh.ply", "--method", "sor", "--depth", "5", "--quiet")
    assert result.returncode == 0, result.stderr
    assert f"of {scan['valid'].sum()} points; mesh of" in result.stdout and (tmp_path / "mesh.ply").is_file()


def test_a_filtered_copy_keeps_the_lines_of_the_file_as_they_are(tmp_path, monkeypatch):
    import pcfilter_lib.io.ptx as ptx

    monkeypatch.setattr(ptx, "CHUNK_LINES", 4)  # several chunks, runs of kept and removed points across them
    header = PtxHeader(3, 4, *ptx.IDENTITY_HEADER).lines()
    points = ["1.50000 2 3.25 0.5 10 20 30", "0 0 0 0 0 0 0", "-1e-3 2.0 3 1 1 2 3", "0.0 0 0 0.7 9 9 9",
              "4 5 6 1 0 0 0", "7 8 9 0.25 4 5 6", "0 0 0 0 0 0 0", "1 1 1 1 1 1 1", "2 2 2 2 2 2 2",
              "3 3 3 3 3 3 3", "0 0 0 0 0 0 0", "4.000 4 4 0.125 7 7 7"]
    source = tmp_path / "crlf.ptx"
    source.write_bytes("\r\n".join(header + points).encode("ascii"))  # Windows line ends, none after the last
    read = read_ptx(source, lines=True)
    assert read["lines"].zero == b"0 0 0 0 0 0 0\r\n" and read["lines"].columns == 7
    assert read_ptx(source)["lines"] is None
    keep = read["valid"].copy()
    keep[0, 2] = keep[1, 1] = False
    write_ptx(tmp_path / "kept.ptx", read["xyz"], read["intensity"], keep=keep, header=read["header"],
              lines=read["lines"])
    written = (tmp_path / "kept.ptx").read_bytes().split(b"\n")[10:-1]
    point_lines = [line.encode("ascii") + b"\r" for line in points]
    expected = [line if flag else b"0 0 0 0 0 0 0\r"
                for line, flag in zip(point_lines, keep.reshape(-1).tolist(), strict=True)]
    assert written == expected  # kept points byte for byte, colours included; '0.0 0 0 0.7' is no point
    again = read_ptx(tmp_path / "kept.ptx")
    np.testing.assert_array_equal(again["valid"], keep)
    np.testing.assert_array_equal(again["xyz"][keep], read["xyz"][keep])
    with pytest.raises(ValueError, match="another grid"):
        write_ptx(tmp_path / "other.ptx", read["xyz"][:-1], read["intensity"][:-1], lines=read["lines"])


def test_the_read_ahead_pipe_carries_arrays_and_bytes_whole():
    import multiprocessing

    from pcfilter_lib.cli.filter import _receive, _send

    here, there = multiprocessing.Pipe(duplex=False)
    scan = {"xyz": np.arange(12.0).reshape(2, 2, 3), "valid": np.array([[True, False], [False, True]]),
            "empty": np.zeros((0, 3), np.float32), "rgb": None, "header": PtxHeader(2, 2, *IDENTITY)}
    _send(there, "scan", scan)
    _send(there, "chunk", (b"1 2 3 4\n", np.array([8])))
    _send(there, "error", CloudError("damaged"))
    kind, value = _receive(here)
    assert kind == "scan" and value.keys() == scan.keys() and value["rgb"] is None
    for key in ("xyz", "valid", "empty"):
        assert value[key].dtype == scan[key].dtype
        np.testing.assert_array_equal(value[key], scan[key])
    assert value["header"].lines() == scan["header"].lines()
    kind, (data, ends) = _receive(here)
    assert kind == "chunk" and data == b"1 2 3 4\n" and ends.tolist() == [8]
    kind, error = _receive(here)
    assert kind == "error" and isinstance(error, CloudError) and str(error) == "damaged"


READ_AHEAD = ("import sys; import pcfilter_lib.cli.filter as f; f.READ_AHEAD_POSITIONS = 1; used = []; "
              "scan = f.ReadAhead.scan; f.ReadAhead.scan = lambda self: used.append(1) or scan(self); "
              "from pcfilter_lib.cli import main; status = main(sys.argv[1:]); "
              "print('read ahead:', len(used) == 1); sys.exit(status)")  # every PTX is read in a second process


def test_a_large_scan_read_in_a_second_process_gives_the_same_files(scan, tmp_path, pcfilter):
    import sys

    path = tmp_path / "s.ptx.gz"
    write_ptx(path, scan["xyz"], scan["intensity"], keep=scan["valid"])
    here = pcfilter("filter", path, "-o", tmp_path / "kept.ptx", "--removed", tmp_path / "removed.ptx",
                    "--method", "sor")
    assert here.returncode == 0, here.stderr
    there = subprocess.run([sys.executable, "-c", READ_AHEAD, "filter", path, "-o", tmp_path / "kept2.ptx",
                            "--removed", tmp_path / "removed2.ptx", "--method", "sor"], capture_output=True, text=True)
    assert there.returncode == 0 and "read ahead: True" in there.stdout, there.stderr
    for name in ("kept", "removed"):
        assert (tmp_path / f"{name}2.ptx").read_bytes() == (tmp_path / f"{name}.ptx").read_bytes()
    damaged = tmp_path / "d.ptx"
    damaged.write_text("\n".join((tmp_path / "kept.ptx").read_text().splitlines()[:500]) + "\n1 2 x 4\n")
    there = subprocess.run([sys.executable, "-c", READ_AHEAD, "filter", damaged, "-o", tmp_path / "d_out.ptx",
                            "--method", "sor"], capture_output=True, text=True)
    assert there.returncode != 0 and "line 501 must hold 4 numbers" in there.stderr, there.stderr
