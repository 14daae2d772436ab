"""The scanned ModelNet10 variant: layout and manifest, what a scanned cloud holds (one side of the
object in its own frame, noise, artefacts, background), the loader, and exact resumption after a kill."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from pcfilter_lib.data import procedural_modelnet, scanned_modelnet
from pcfilter_lib.geometry.sampling import sample_surface
from pcfilter_lib.io.files import read_manifest, verify_folder

ROOT = Path(__file__).resolve().parent.parent
SMALL = {name: (2, 1) for name in procedural_modelnet.CLASSES}


@pytest.fixture(scope="module")
def scanned(tmp_path_factory) -> Path:
    return scanned_modelnet.generate(tmp_path_factory.mktemp("sm") / "set", seed=3, counts=SMALL, workers=1)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.npz"))}


def test_layout_manifest_and_arrays(scanned):
    manifest = read_manifest(scanned)
    assert manifest["generator"] == scanned_modelnet.GENERATOR and manifest["seed"] == 3
    assert manifest["parameters"]["meshes"]["version"] == procedural_modelnet.VERSION
    assert len(manifest["files"]) == 30 and verify_folder(scanned) == []
    for name in procedural_modelnet.CLASSES:
        assert [p.name for p in sorted((scanned / name / "train").iterdir())] == [f"{name}_0001.npz",
                                                                                 f"{name}_0002.npz"]
    cloud = scanned_modelnet.read_cloud(scanned / "sofa" / "test" / "sofa_0001.npz")
    m = len(cloud["xyz"])
    assert scanned_modelnet.MIN_POINTS <= m <= scanned_modelnet.MAX_POINTS
    assert cloud["xyz"].dtype == np.float32 and cloud["xyz"].shape == (m, 3)
    assert cloud["label"].dtype == np.uint8 and cloud["kind"].shape == (m,) and cloud["object"].dtype == bool
    assert cloud["meta"]["class"] == "sofa" and cloud["meta"]["points"] == m


def test_a_cloud_is_one_side_of_the_object_in_its_frame(scanned):
    for name in ("dresser", "bed", "toilet"):
        cloud = scanned_modelnet.read_cloud(scanned / name / "train" / f"{name}_0002.npz")
        mesh_seed = procedural_modelnet.shape_seed(3, name, "train", 1)
        vertices, triangles = scanned_modelnet._mesh_in_metres(name, mesh_seed, cloud["meta"]["object_size_m"])
        true = cloud["xyz"][cloud["object"] & (cloud["label"] == 1)]
        # True points of the object lie on its mesh (depth noise is a few millimetres) ...
        surface = sample_surface(vertices, triangles, 20000, seed=0)
        distance, _ = cKDTree(surface).query(true)
        assert np.median(distance) < 0.005, name
        # ... and cover only the side the scanner saw.
        seen, _ = cKDTree(true).query(surface)
        covered = float(np.mean(seen < 0.01))
        assert 0.1 < covered < 0.8, f"{name}: {covered:.2f} of the surface was seen"


def test_clouds_hold_noise_artefacts_and_background(scanned):
    metas = [scanned_modelnet.read_cloud(p)["meta"] for p in sorted(scanned.rglob("*.npz"))]
    assert sum(m["background_points"] for m in metas) > 0
    assert sum(m["artefact_points"] for m in metas) > 0
    assert any(m["wall"] for m in metas) and any(m["second_object"] for m in metas)
    assert len({m["azimuth_deg"] for m in metas}) == len(metas)  # one random viewpoint each
    lines = scanned_modelnet.summarise(scanned)
    assert lines.startswith("30 clouds") and "background points" in lines


def test_load_split_gives_unit_sphere_clouds(scanned):
    clouds = scanned_modelnet.load_split(scanned, "train", num_points=256, seed=1)
    assert clouds.points.shape == (20, 256, 3) and clouds.classes == procedural_modelnet.CLASSES
    assert clouds.counts() == {name: 2 for name in procedural_modelnet.CLASSES}
    assert clouds.names[0] == "bathtub/train/bathtub_0001.npz"
    np.testing.assert_allclose(np.linalg.norm(clouds.points, axis=-1).max(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(clouds.points.mean(axis=1), 0, atol=1e-5)
    again = scanned_modelnet.load_split(scanned, "train", num_points=256, seed=1)
    np.testing.assert_array_equal(clouds.points, again.points)
    only = scanned_modelnet.load_split(scanned, "train", num_points=256, seed=1, background=False)
    assert not np.array_equal(clouds.points, only.points)
    # More points than stored: every stored point and random repeats.
    many = scanned_modelnet.load_split(scanned, "test", num_points=4096, limit_per_class=1)
    assert many.points.shape == (10, 4096, 3)


def test_refuses_other_data_and_bad_requests(scanned, tmp_path):
    with pytest.raises(ValueError, match="already holds other data"):
        scanned_modelnet.generate(scanned, seed=4, counts=SMALL, workers=1)
    with pytest.raises(ValueError, match="unknown classes"):
        scanned_modelnet.generate(tmp_path / "x", counts={"lamp": (1, 1)})
    with pytest.raises(ValueError, match="seed"):
        scanned_modelnet.generate(tmp_path / "x", seed=-1, counts=SMALL)
    with pytest.raises(FileNotFoundError, match="make_scanned_modelnet"):
        scanned_modelnet.load_split(tmp_path / "absent", "train")
    with pytest.raises(ValueError, match="split"):
        scanned_modelnet.list_files(scanned, "val")
    with pytest.raises(ValueError, match="size must be one of"):
        scanned_modelnet.ensure_dataset(tmp_path, "huge")
    # The default folder of a size is generated with that size's counts: a smaller set there is refused.
    shutil.copytree(scanned, tmp_path / "data" / scanned_modelnet.FOLDERS["fast"])
    with pytest.raises(ValueError, match="already holds other data"):
        scanned_modelnet.ensure_dataset(tmp_path / "data", "fast", seed=3)


def test_a_killed_run_resumes_to_the_same_bytes_with_any_number_of_workers(scanned, tmp_path):
    out = tmp_path / "killed"
    # The run kills itself and its workers after the 13th file (the manifest was saved at the 12th):
    # a kill at a known point, whatever the machine's speed.
    code = (f"import os, signal\n"
            f"from pcfilter_lib.data import scanned_modelnet as s\n"
            f"s.SAVE_EVERY = 4\n"
            f"write, written = s.atomic_write_bytes, []\n"
            f"def write_then_die(path, data):\n"
            f"    write(path, data)\n"
            f"    written.append(path)\n"
            f"    if len(written) == 13:\n"
            f"        os.killpg(0, signal.SIGKILL)\n"
            f"s.atomic_write_bytes = write_then_die\n"
            f"s.generate({str(out)!r}, seed=3, counts={SMALL!r}, workers=2)\n")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        process.wait(timeout=180)
    finally:
        with contextlib.suppress(ProcessLookupError):  # in case it never reached the 13th file
            os.killpg(process.pid, signal.SIGKILL)
    made = len(list(out.rglob("[!.]*.npz")))
    assert process.returncode == -signal.SIGKILL and made == 13, process.stderr.read()
    assert len(read_manifest(out)["files"]) == 12
    (out / "chair" / "train" / ".chair_0002.abcd.part.npz").write_bytes(b"half a file")  # as a kill may leave
    scanned_modelnet.generate(out, seed=3, counts=SMALL, workers=1)
    assert _files(out) == _files(scanned)
    assert read_manifest(out)["files"] == read_manifest(scanned)["files"]


def test_script_refuses_bad_requests_with_one_line(tmp_path, monkeypatch, capsys):
    path = ROOT / "data_scripts" / "make_scanned_modelnet.py"
    spec = importlib.util.spec_from_file_location("make_scanned_modelnet", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setenv("PCFILTER_FAST", "1")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a data set")
    assert script.main(["--out", str(tmp_path / "other")]) == 1
    assert "already holds other data" in capsys.readouterr().err
    assert (tmp_path / "other" / "notes.txt").exists() and not (tmp_path / "other" / "manifest.json").exists()
    assert script.main(["--out", str(tmp_path / "new"), "--workers", "0"]) == 1
    assert "--workers must be at least 1" in capsys.readouterr().err and not (tmp_path / "new").exists()
