"""The scan .npz format and the point-cloud exports (.ply, PointCleanNet .xyz / .outliers)."""

import hashlib

import numpy as np
import open3d as o3d
import pytest

from pcfilter_lib.io.clouds import read_ply, read_pointcleannet, write_ply, write_pointcleannet
from pcfilter_lib.io.scan import load_scan, save_scan, scan_bytes
from pcfilter_lib.simulate.dataset import make_scan
from pcfilter_lib.simulate.scanner import ScannerConfig

CONFIG = ScannerConfig(width=64, height=48)


@pytest.fixture(scope="module")
def scan():
    return make_scan(seed=3, index=0, config=CONFIG)


def test_round_trip_keeps_every_array(scan, tmp_path):
    path = tmp_path / "scan.npz"
    save_scan(path, scan)
    loaded = load_scan(path)
    assert set(loaded) == set(scan)
    for key, value in scan.items():
        if key == "meta":
            assert loaded["meta"]["seed"] == 3 and loaded["meta"]["scene"] == value["scene"]
        else:
            np.testing.assert_array_equal(loaded[key], value)
            assert loaded[key].dtype == np.asarray(value).dtype
    assert loaded["xyz"].dtype == np.float32 and loaded["label"].dtype == np.uint8
    assert np.isnan(loaded["xyz"][~loaded["valid"]]).all()


def test_files_are_byte_identical_for_the_same_seed():
    first, second = (hashlib.sha256(scan_bytes(make_scan(3, 0, CONFIG))).hexdigest() for _ in range(2))
    assert first == second
    assert hashlib.sha256(scan_bytes(make_scan(4, 0, CONFIG))).hexdigest() != first


def test_bad_scans_are_refused_with_the_reason(scan, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_scan(tmp_path / "none.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="garbage.npz is not a readable scan"):
        load_scan(garbage)
    broken = {k: v for k, v in scan.items() if k != "label"}
    with pytest.raises(ValueError, match="missing label"):
        save_scan(tmp_path / "a.npz", broken)
    with pytest.raises(ValueError, match="intensity must have shape"):
        save_scan(tmp_path / "a.npz", {**scan, "intensity": scan["intensity"][:-1]})
    with pytest.raises(ValueError, match="label holds values \\[7\\]"):
        seven = np.where(scan["label"] == 1, 7, scan["label"]).astype(np.uint8)
        save_scan(tmp_path / "a.npz", {**scan, "label": seven})
    with pytest.raises(ValueError, match="valid disagrees with xyz"):
        save_scan(tmp_path / "a.npz", {**scan, "valid": np.ones_like(scan["valid"])})
    with pytest.raises(ValueError, match="label has dtype"):
        save_scan(tmp_path / "a.npz", {**scan, "label": scan["label"].astype(np.float32)})
    with pytest.raises(ValueError, match="meta is not a JSON string"):
        save_scan(tmp_path / "a.npz", {**scan, "meta": "{not json"})
    assert not list(tmp_path.glob("a*"))  # nothing was written for a refused scan


def test_ply_export_and_import(scan, tmp_path):
    n = write_ply(tmp_path / "scan.ply", scan, colour_by="kind")
    valid = scan["valid"]
    assert n == valid.sum()
    back = read_ply(tmp_path / "scan.ply")
    np.testing.assert_array_equal(np.c_[back["x"], back["y"], back["z"]], scan["xyz"][valid])
    np.testing.assert_array_equal(back["label"], scan["label"][valid])
    np.testing.assert_array_equal(back["kind"], scan["kind"][valid])
    # Any viewer reads it: Open3D sees the same points and colours.
    cloud = o3d.io.read_point_cloud(str(tmp_path / "scan.ply"))
    np.testing.assert_allclose(np.asarray(cloud.points), scan["xyz"][valid], atol=1e-7)
    assert len(np.unique(np.asarray(cloud.colors), axis=0)) == len(np.unique(scan["kind"][valid]))
    write_ply(tmp_path / "label.ply", scan)
    colours = np.c_[read_ply(tmp_path / "label.ply")["red"]]
    assert set(np.unique(colours).tolist()) <= {170, 220}
    with pytest.raises(ValueError, match="colour_by"):
        write_ply(tmp_path / "x.ply", scan, colour_by="depth")


def test_pointcleannet_pair(scan, tmp_path):
    xyz_path, outliers_path = write_pointcleannet(tmp_path / "scan", scan)
    assert xyz_path.name == "scan.xyz" and outliers_path.name == "scan.outliers"
    points, outliers = read_pointcleannet(tmp_path / "scan")
    valid = scan["valid"]
    np.testing.assert_array_equal(points, scan["xyz"][valid])
    np.testing.assert_array_equal(outliers, scan["label"][valid] == 0)
    assert outliers.any() and not outliers.all()


def test_bad_cloud_files(scan, tmp_path):
    empty = {**scan, "valid": np.zeros_like(scan["valid"])}
    with pytest.raises(ValueError, match="no points"):
        write_pointcleannet(tmp_path / "empty", empty)
    (tmp_path / "a.xyz").write_text("0 0 0\n1 1 1\n")
    (tmp_path / "a.outliers").write_text("0\n")
    with pytest.raises(ValueError, match="2 points but 1 outlier flags"):
        read_pointcleannet(tmp_path / "a")
    (tmp_path / "b.xyz").write_text("0 0 0\n")
    with pytest.raises(FileNotFoundError, match="b.outliers does not exist"):
        read_pointcleannet(tmp_path / "b.xyz")
    (tmp_path / "c.ply").write_text("hello\n")
    with pytest.raises(ValueError, match="not a PLY file"):
        read_ply(tmp_path / "c.ply")


def test_scan_figures(scan):
    import matplotlib

    matplotlib.use("Agg")
    from pcfilter_lib import viz

    fig = viz.scan_figure_3d(scan, colour_by="label", max_points=500)
    names = [trace.name for trace in fig.data]
    assert names == ["true geometry", "artefact"]
    artefacts = int((scan["label"] == 0).sum())
    assert len(fig.data[1].x) == artefacts  # artefacts are always shown
    assert len(fig.data[0].x) == max(500 - artefacts, 0) or len(fig.data[0].x) == (scan["label"] == 1).sum()
    by_kind = viz.scan_figure_3d(scan, colour_by="kind")
    assert sum(len(t.x) for t in by_kind.data) == scan["valid"].sum()
    grid = viz.show_scan_channels(scan)
    assert [ax.get_title() for ax in grid.axes[:5]][0] == "intensity" and len(grid.axes) >= 5
    with pytest.raises(ValueError, match="colour_by"):
        viz.scan_figure_3d(scan, colour_by="depth")
