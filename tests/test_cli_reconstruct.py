"""``pcfilter reconstruct``: filter, optional PU-Net upsampling and Poisson, on small simulated scans and
clouds, called through ``cli.main`` in this process (TensorFlow starts once for the whole file)."""

import hashlib

import numpy as np
import open3d as o3d
import pytest

from pcfilter_lib import cli, runtime

runtime.setup(seed=0)

from pcfilter_lib import filters
from pcfilter_lib.geometry.reconstruction import distance_to_mesh, true_mesh
from pcfilter_lib.io.organised import write_points
from pcfilter_lib.io.scan import load_scan
from pcfilter_lib.models.punet import SHIPPED_UPSAMPLER
from pcfilter_lib.simulate import dataset
from pcfilter_lib.simulate.scanner import ScannerConfig

needs_models = pytest.mark.skipif(not (filters.SHIPPED_MODEL.is_file() and SHIPPED_UPSAMPLER.is_file()),
                                  reason="the shipped U-Net or PU-Net is missing")


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scans") / "small"
    dataset.write_dataset(folder, 2, 11, ScannerConfig(width=160, height=120), split=(0.5, 0.0, 0.5), progress=False)
    return sorted(folder.rglob("scan_*.npz"))


def _distances(mesh_path, scan_path):
    """Distances (m) of the written mesh's vertices to the scan's true surface."""
    mesh = o3d.io.read_triangle_mesh(str(mesh_path))
    assert len(mesh.triangles) > 100
    scan = load_scan(scan_path, arrays=("mesh_vertices", "mesh_triangles"))
    return distance_to_mesh(np.asarray(mesh.vertices), *true_mesh(scan))


@needs_models
def test_a_scan_is_filtered_upsampled_and_reconstructed_near_its_true_surface(scans, tmp_path, capsys):
    out, up = tmp_path / "mesh.ply", tmp_path / "up.obj"
    assert cli.main(["reconstruct", str(scans[0]), "-o", str(out), "--quiet"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("unet_filter: kept") and str(out) in line
    assert cli.main(["reconstruct", str(scans[0]), "-o", str(up), "--upsample", "4", "--depth", "7"]) == 0
    captured = capsys.readouterr()
    assert "upsampling" in captured.err and "upsampled x4" in captured.out
    kept = int(captured.out.split("kept ")[1].split(" of")[0])
    assert f"upsampled x4 to {4 * kept}" in captured.out
    for path in (out, up):
        d = _distances(path, scans[0])
        assert np.median(d) < 2e-3, path  # within 2 mm of the true scene for most of the surface
    assert not list(tmp_path.glob(".*part*"))  # written atomically: no temporary file left


@needs_models
def test_an_unorganised_cloud_goes_through_the_point_filter_with_estimated_normals(scans, tmp_path, capsys):
    scan = load_scan(scans[1], arrays=())
    cloud = tmp_path / "points.ply"
    write_points(cloud, np.asarray(scan["xyz"])[scan["valid"]])
    assert cli.main(["reconstruct", str(cloud), "-o", str(tmp_path / "cloud.ply"), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("pointnet_filter: kept")
    assert np.median(_distances(tmp_path / "cloud.ply", scans[1])) < 2e-3
    # A classical filter instead of the learned one.
    assert cli.main(["reconstruct", str(cloud), "-o", str(tmp_path / "sor.ply"), "--method", "sor", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("sor: kept")


def test_bad_options_and_inputs_get_one_line_errors_before_any_work(scans, tmp_path, capsys):
    before = hashlib.sha256(scans[0].read_bytes()).hexdigest()
    cases = [
        (["-o", str(scans[0])], "is the input file"),
        (["-o", str(tmp_path / "mesh.txt")], "the mesh is written as"),
        (["-o", str(tmp_path / "m.ply"), "--upsample", "3"], "--upsample must be 1 or a power"),
        (["-o", str(tmp_path / "m.ply"), "--upsample", "-4"], "--upsample must be"),
        (["-o", str(tmp_path / "m.ply"), "--depth", "20"], "--depth must be"),
        (["-o", str(tmp_path / "missing" / "m.ply")], "missing"),
        (["-o", str(tmp_path / "m.ply"), "--method", "sor", "--threshold", "0.5"], "--threshold applies to a model"),
    ]
    for options, message in cases:
        assert cli.main(["reconstruct", str(scans[0]), *options]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert hashlib.sha256(scans[0].read_bytes()).hexdigest() == before
    assert not (tmp_path / "m.ply").exists()
    assert cli.main(["reconstruct", str(tmp_path / "nothing.npz"), "-o", str(tmp_path / "m.ply")]) == 1
    assert "does not exist" in capsys.readouterr().err
    few = tmp_path / "few.ply"
    write_points(few, np.random.default_rng(0).random((5, 3)))
    assert cli.main(["reconstruct", str(few), "-o", str(tmp_path / "m.ply")]) == 1
    assert "needs at least" in capsys.readouterr().err


def test_a_folder_gives_one_mesh_per_input_and_skips_a_bad_file(scans, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for scan in scans:
        (folder / scan.name).write_bytes(scan.read_bytes())
    (folder / "broken.npz").write_bytes(b"PK not a scan")
    out = tmp_path / "meshes"
    assert cli.main(["reconstruct", str(folder), "-o", str(out), "--method", "sor", "--depth", "7"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{s.stem}.ply" for s in scans)
    assert any(line.startswith("broken.npz: skipped:") and "not a readable scan" in line for line in lines)
    assert lines[-1].startswith(f"{len(scans)} of {len(scans) + 1} files reconstructed into {out}")
    for scan in scans:
        assert np.median(_distances(out / f"{scan.stem}.ply", scan)) < 3e-3
    assert cli.main(["reconstruct", str(folder), "-o", str(folder)]) == 1
    assert "another folder" in capsys.readouterr().err


def test_a_folder_in_parallel_processes_reports_the_same_way(scans, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / scans[0].name).write_bytes(scans[0].read_bytes())
    (folder / "empty.ply").write_bytes(b"")
    out = tmp_path / "meshes"
    # --jobs 2: each file is a task on two worker processes
    status = cli.main(["reconstruct", str(folder), "-o", str(out), "--method", "sor", "--depth", "6", "--jobs", "2"])
    captured = capsys.readouterr()
    assert status == 1, captured.err
    lines = captured.out.strip().splitlines()
    assert [p.name for p in out.iterdir()] == [f"{scans[0].stem}.ply"]
    assert any(line.startswith("empty.ply: skipped:") for line in lines)
    assert any(line.startswith(f"{scans[0].name}: sor: kept") for line in lines)
    assert lines[-1].startswith(f"1 of 2 files reconstructed into {out}")
