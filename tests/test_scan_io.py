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
    names = [trace.name.split(" (")[0] for trace in fig.data]
    assert names == ["true geometry", "artefact"]
    artefacts, points = int((scan["label"] == 0).sum()), int(scan["valid"].sum())
    assert sum(len(t.x) for t in fig.data) == 500 < points
    assert fig.data[1].name == f"artefact ({len(fig.data[1].x)} of {artefacts} drawn)"
    assert f"500 of {points:,} points drawn" in fig.layout.title.text
    by_kind = viz.scan_figure_3d(scan, colour_by="kind")
    assert sum(len(t.x) for t in by_kind.data) == points
    assert f"all {points:,} points drawn" in by_kind.layout.title.text
    grid = viz.show_scan_channels(scan)
    assert [ax.get_title() for ax in grid.axes[:5]][0] == "intensity" and len(grid.axes) >= 5
    with pytest.raises(ValueError, match="colour_by"):
        viz.scan_figure_3d(scan, colour_by="depth")


def test_a_capped_figure_draws_every_class(scan):
    """A figure capped below the scan's artefacts still draws true points, every artefact kind and
    every outcome of a filter; the title and the still picture say how many points are drawn."""
    from pcfilter_lib import viz
    from pcfilter_lib.viz import colours, interactive

    valid, label, kind = scan["valid"], scan["label"], scan["kind"]
    cap = int((label == 0).sum()) - 7  # the artefacts alone would fill it
    for colour_by, present in (("label", 2), ("kind", len(np.unique(kind[valid])))):
        fig = viz.scan_figure_3d(scan, colour_by=colour_by, max_points=cap)
        assert len(fig.data) == present and all(len(trace.x) for trace in fig.data), colour_by
        assert sum(len(trace.x) for trace in fig.data) == cap
        assert f"{cap:,} of {int(valid.sum()):,} points drawn" in fig.layout.title.text
    # the true surfaces get about their share of the points drawn, not what the artefacts leave
    true_share = len(viz.scan_figure_3d(scan, max_points=cap).data[0].x) / cap
    assert true_share > 0.5 * (label[valid] == 1).mean()
    keep = valid & (np.indices(valid.shape).sum(axis=0) % 2 == 0)  # every outcome occurs
    fig = viz.outcome_figure_3d(scan, keep, title="every other pixel", max_points=cap)
    counts = {name: int(mask.sum()) for name, mask in colours.outcomes(label, keep).items()}
    assert min(counts.values()) > 0 and sum(counts.values()) > cap
    assert [trace.name.split(":")[0] for trace in fig.data] == list(counts)
    assert all(len(trace.x) for trace in fig.data) and sum(len(trace.x) for trace in fig.data) == cap
    assert fig.layout.title.text == (f"every other pixel<br>{cap:,} of {sum(counts.values()):,} points "
                                     "drawn, a random sample of each colour")
    assert f"every other pixel {cap:,} of" in interactive.still_html(fig)  # the still's title too


def test_a_sample_of_classes_keeps_rare_ones_and_the_proportions():
    from pcfilter_lib.viz.interactive import sample_classes

    members = {"common": np.arange(10_000), "rare": np.arange(10_000, 10_030), "none": np.arange(0)}
    drawn = sample_classes(members, 1000, seed=1)
    assert {k: len(v) for k, v in drawn.items()} == {"common": 970, "rare": 30, "none": 0}
    assert set(drawn["rare"]) == set(members["rare"]) and len(set(drawn["common"])) == 970
    middle = sample_classes({"a": np.arange(9000), "b": np.arange(9000, 10_000)}, 1000)
    # 250 split first (125 each), the other 750 in proportion to what is left: 8875 to 875
    assert (len(middle["a"]), len(middle["b"])) == (125 + 683, 125 + 67)
    assert all(len(v) == len(members[k]) for k, v in sample_classes(members, 20_000).items())
    again = sample_classes(members, 1000, seed=1)  # the same seed, the same sample
    assert all(np.array_equal(drawn[k], again[k]) for k in members)
    with pytest.raises(ValueError, match="at least 0"):
        sample_classes(members, -1)


def _ascii_ply(count: int, rows: list[str], faces: str = "") -> str:
    return (f"ply\nformat ascii 1.0\nelement vertex {count}\nproperty float x\nproperty float y\nproperty float z\n"
            f"{faces}end_header\n" + "".join(row + "\n" for row in rows))


def test_header_counts_that_disagree_with_the_data_are_refused(tmp_path):
    """A PLY, PCD or PTS header that counts fewer points than the file holds is refused with both
    numbers, never read on the counted ones; a PLY mesh, whose faces follow its vertices, is not."""
    from pcfilter_lib.io.clouds import open_stream
    from pcfilter_lib.io.organised import read_cloud, write_organised

    rows = [f"{i} {i % 7} 1" for i in range(20)]
    (tmp_path / "a.ply").write_text(_ascii_ply(15, rows))
    with pytest.raises(ValueError, match="its header counts 15 vertices, but the file holds 20 vertex lines "
                       "\\(lines 8 to 27\\)"):
        read_cloud(tmp_path / "a.ply")
    (tmp_path / "m.ply").write_text(_ascii_ply(20, rows + ["3 0 1 2"], "element face 1\nproperty list uchar int "
                                                                      "vertex_indices\n"))
    assert len(read_ply(tmp_path / "m.ply")["x"]) == 20
    points = np.random.default_rng(0).uniform(0, 1, (20, 3)).astype("<f4")
    head = (b"ply\nformat binary_little_endian 1.0\nelement vertex 15\nproperty float x\nproperty float y\n"
            b"property float z\nend_header\n")
    (tmp_path / "b.ply").write_bytes(head + points.tobytes())
    for read in (read_ply, open_stream):
        with pytest.raises(ValueError, match="its header counts 15 vertices, but its vertex data holds 20;"):
            read(tmp_path / "b.ply")
    (tmp_path / "c.ply").write_bytes(head + points.tobytes()[:-6])  # 19.5 vertices
    with pytest.raises(ValueError, match="vertex data holds at least 19;"):
        read_ply(tmp_path / "c.ply")
    write_organised(tmp_path / "d.pcd", np.ones((4, 5, 3), np.float32))  # 16 bytes a point
    (tmp_path / "e.pcd").write_bytes((tmp_path / "d.pcd").read_bytes() + b"\0" * 16)
    with pytest.raises(ValueError, match="its header counts 20 points \\(POINTS\\), but its binary data holds 21"):
        read_cloud(tmp_path / "e.pcd")
    (tmp_path / "f.pts").write_text("900\n" + "".join(f"{x} {y} {z} 0 0 0 0\n" for x, y, z in points))
    with pytest.raises(ValueError, match="its first line says 900 points, but the file holds 20 point lines "
                       "\\(lines 2 to 21\\)"):
        read_cloud(tmp_path / "f.pts")
    (tmp_path / "g.pts").write_text("20\n" + "".join(f"{x} {y} {z} 0 0 0 0\n" for x, y, z in points))
    assert np.allclose(read_cloud(tmp_path / "g.pts")["xyz"][0], points, atol=1e-6)


def test_lines_of_another_column_count_are_named(tmp_path):
    """The line, its count and the count expected, in place of NumPy's advice to use usecols, for the
    whole-file and the chunked .xyz readers and ascii PLY and PCD data."""
    from pcfilter_lib.io.clouds import open_stream
    from pcfilter_lib.io.organised import read_cloud

    lines = ["# a comment", "0 0 0", "", "1 1 1", "2 2 2 5", "3 3 3"]
    (tmp_path / "a.xyz").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="a.xyz, line 5: 4 values, where 3 are expected \\(as on line 2\\)"):
        read_cloud(tmp_path / "a.xyz")
    for size in (2, 100):  # the odd line in a later chunk, and in the first
        with pytest.raises(ValueError, match="a.xyz, line 5: 4 values, where 3 are expected"):
            list(open_stream(tmp_path / "a.xyz").chunks(size))
    (tmp_path / "b.ply").write_text(_ascii_ply(3, ["0 0 0", "1 1", "2 2 2"]))
    with pytest.raises(ValueError, match="b.ply, line 9: 2 values, where 3 are expected \\(as the header says\\)"):
        read_ply(tmp_path / "b.ply")
    (tmp_path / "c.pcd").write_text("FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 2\nHEIGHT 1\n"
                                    "POINTS 2\nDATA ascii\n0 0 0\n1 1 1 1\n")
    with pytest.raises(ValueError, match="c.pcd, line 10: 4 values, where 3 are expected"):
        read_cloud(tmp_path / "c.pcd")


def test_one_list_of_formats_and_files_without_a_suffix(tmp_path):
    from pcfilter_lib.io.organised import CLOUD_SUFFIXES, read_cloud

    assert {".las", ".laz", ".ply", ".pcd", ".xyz", ".ptx", ".ptx.gz", ".pts"} <= set(CLOUD_SUFFIXES)
    (tmp_path / "cloud").write_text("0 0 0\n")
    with pytest.raises(ValueError, match="cloud: the name has no ending that says its format; rename it as a scan "
                       "\\.npz or a cloud \\(\\.ply, \\.pcd, \\.xyz, \\.las, \\.laz"):
        read_cloud(tmp_path / "cloud")


def test_las_files_are_read_whole_as_unorganised_clouds(tmp_path):
    import laspy

    from pcfilter_lib.io.organised import read_cloud

    points = np.random.default_rng(1).uniform(0, 5, (300, 3))
    las = laspy.LasData(laspy.LasHeader(version="1.4", point_format=6))
    las.header.scales, las.header.offsets = [1e-4] * 3, [0, 0, 0]
    las.x, las.y, las.z = points.T
    las.intensity = np.arange(300)
    las.write(tmp_path / "a.laz")
    cloud = read_cloud(tmp_path / "a.laz")
    assert not cloud["organised"] and cloud["xyz"].shape == (1, 300, 3) and cloud["xyz"].dtype == np.float64
    assert np.abs(cloud["xyz"][0] - points).max() <= 5e-5 and np.array_equal(cloud["intensity"][0], np.arange(300))


def test_infinite_points_of_an_organised_grid_are_counted(tmp_path):
    """NaN is a pixel without a point; an infinite coordinate is a point, beyond every limit, dropped and
    counted as ``far``."""
    from pcfilter_lib.io.organised import read_cloud

    xyz = np.ones((4, 5, 3))
    xyz[0, :3, 2] = np.inf
    xyz[1, :2] = np.nan
    xyz[2, 0, 0] = -np.inf
    head = ("FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 5\nHEIGHT 4\nPOINTS 20\nDATA binary\n")
    (tmp_path / "a.pcd").write_bytes(head.encode() + xyz.astype("<f4").tobytes())  # infinite values as they are
    cloud = read_cloud(tmp_path / "a.pcd")
    assert cloud["organised"] and cloud["far"] == 4 and cloud["valid"].sum() == 20 - 4 - 2


@pytest.mark.parametrize(("name", "text", "says"), [
    ("m.off", "OFF\n4 2 0\n0 0 0\n1 0 0\nnan 1 0\n0 1 0\n3 0 1 2\n3 0 2 3\n", "m.off, line 5: vertex 2 has a "
                                                                            "non-finite coordinate"),
    ("m.obj", "v 0 0 0\nv 1 0 0\nv 0 inf 0\nv 0 1 0\nf 1 2 3\nf 1 3 4\n", "m.obj, line 3: vertex 2 \\(0.0, inf, "
                                                                          "0.0\\) is not finite"),
    ("m.ply", _ascii_ply(4, ["0 0 0", "1 0 0", "0 1 nan", "0 1 0", "3 0 1 2"], "element face 1\nproperty list uchar "
                                                                                "int vertex_indices\n"),
     "m.ply, line 12: vertex 2 \\(0.0, 1.0, nan\\) is not finite")])
def test_a_mesh_vertex_that_is_not_finite_is_named(tmp_path, name, text, says):
    from pcfilter_lib.simulate.scene import read_part_file

    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=says):
        read_part_file(tmp_path / name)
