"""ModelNet10 loading: surface sampling, the procedural stand-in, the cache, splits and the input pipelines."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

from pcfilter_lib.data import (
    modelnet,
    procedural_modelnet,
)
from pcfilter_lib.geometry.sampling import normalize_unit_sphere, sample_surface, triangle_areas
from pcfilter_lib.io.files import verify_folder
from pcfilter_lib.io.off import read_off

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "modelnet10"
SMALL = {name: (4, 2) for name in procedural_modelnet.CLASSES}


@pytest.fixture(scope="module")
def procedural(tmp_path_factory) -> Path:
    return procedural_modelnet.generate(tmp_path_factory.mktemp("pm") / "set", seed=3, counts=SMALL)


def test_sampling_is_area_weighted_on_the_surface_and_seeded():
    # Two triangles in the plane z = 0: areas 0.5 and 1.5.
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [5, 0, 0], [2, 1, 0]], float)
    triangles = np.array([[0, 1, 2], [3, 4, 5]])
    assert triangle_areas(vertices, triangles).tolist() == [0.5, 1.5]
    points, normals = sample_surface(vertices, triangles, 20000, seed=1, normals=True)
    assert np.all(points[:, 2] == 0)
    assert abs(np.mean(points[:, 0] < 1.5) - 0.25) < 0.02
    np.testing.assert_allclose(np.abs(normals[:, 2]), 1)
    np.testing.assert_array_equal(points, sample_surface(vertices, triangles, 20000, seed=1))
    assert not np.array_equal(points, sample_surface(vertices, triangles, 20000, seed=2))


def test_sampling_rejects_degenerate_meshes():
    with pytest.raises(ValueError, match="no surface area"):
        sample_surface(np.zeros((3, 3)), np.array([[0, 1, 2]]), 10)
    with pytest.raises(ValueError, match="num_points"):
        sample_surface(np.eye(3), np.array([[0, 1, 2]]), 0)


def test_unit_sphere_normalisation():
    cloud = np.random.default_rng(0).normal(5, 3, size=(2, 100, 3))
    unit = normalize_unit_sphere(cloud)
    np.testing.assert_allclose(unit.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=-1).max(axis=1), 1, rtol=1e-5)
    with pytest.raises(ValueError, match="coincide"):
        normalize_unit_sphere(np.ones((10, 3)))


def test_procedural_layout_counts_and_manifest(procedural):
    assert modelnet.list_classes(procedural) == list(procedural_modelnet.CLASSES)
    for name in procedural_modelnet.CLASSES:
        assert len(list((procedural / name / "train").glob(f"{name}_*.off"))) == 4
        assert len(list((procedural / name / "test").glob("*.off"))) == 2
    assert verify_folder(procedural) == []
    manifest = json.loads((procedural / "manifest.json").read_text())
    assert manifest["seed"] == 3 and len(manifest["files"]) == 60
    vertices, triangles = read_off(procedural / "chair" / "train" / "chair_0001.off")
    assert len(vertices) > 8 and len(triangles) > 12


def test_procedural_is_deterministic_resumes_and_refuses_mixing(procedural, tmp_path):
    again = procedural_modelnet.generate(tmp_path / "again", seed=3, counts=SMALL)
    for rel in ("sofa/train/sofa_0003.off", "toilet/test/toilet_0002.off"):
        assert (again / rel).read_bytes() == (procedural / rel).read_bytes()
    other = procedural_modelnet.generate(tmp_path / "other", seed=4, counts=SMALL)
    assert (other / "sofa/train/sofa_0003.off").read_bytes() != (procedural / "sofa/train/sofa_0003.off").read_bytes()
    # An interrupted run (a file missing) is completed with the identical file.
    lost = again / "desk/train/desk_0002.off"
    expected = lost.read_bytes()
    lost.unlink()
    procedural_modelnet.generate(again, seed=3, counts=SMALL)
    assert lost.read_bytes() == expected
    with pytest.raises(ValueError, match="already holds other data"):
        procedural_modelnet.generate(again, seed=5, counts=SMALL)
    with pytest.raises(ValueError, match="unknown class"):
        procedural_modelnet.make_shape("lamp", 0)


def test_every_family_varies():
    for name in procedural_modelnet.CLASSES:
        sizes = {len(procedural_modelnet.make_shape(name, seed)[0]) for seed in range(30)}
        assert len(sizes) > 1, f"{name}: every shape has the same number of vertices"


def test_full_counts_are_the_real_class_sizes():
    # ModelNet10's own split: 3991 training and 908 test meshes, from 106 bathtubs to 889 chairs.
    assert tuple(map(sum, zip(*procedural_modelnet.FULL_COUNTS.values(), strict=True))) == (3991, 908)
    assert procedural_modelnet.FULL_COUNTS["bathtub"] == (106, 50)
    assert procedural_modelnet.FULL_COUNTS["chair"] == (889, 100)
    assert procedural_modelnet.FULL_COUNTS["night_stand"] == procedural_modelnet.FULL_COUNTS["desk"] == (200, 86)


def _proportions(name: str, n: int = 150) -> np.ndarray:
    """log(width / height) and log(depth / height) of the bounding boxes of n shapes (n, 2)."""
    extents = np.array([np.ptp(procedural_modelnet.make_shape(name, seed)[0], axis=0) for seed in range(n)])
    return np.log(extents[:, :2] / extents[:, 2:])


def _shared(a: np.ndarray, b: np.ndarray, bins: int = 8) -> float:
    """The share of two 2-D distributions that lies in common cells of one grid (0 apart, 1 alike)."""
    grid = list(zip(np.minimum(a.min(0), b.min(0)), np.maximum(a.max(0), b.max(0)), strict=True))
    ha, hb = (np.histogram2d(x[:, 0], x[:, 1], bins=bins, range=grid)[0] / len(x) for x in (a, b))
    return float(np.minimum(ha, hb).sum())


def test_families_overlap_where_the_modelnet_classes_do():
    p = {name: _proportions(name) for name in ("desk", "table", "night_stand", "dresser", "sofa", "bed", "toilet",
                                               "monitor")}
    assert _shared(p["desk"], p["table"]) > 0.3
    assert _shared(p["night_stand"], p["dresser"]) > 0.2
    assert _shared(p["sofa"], p["bed"]) > 0.1
    assert _shared(p["toilet"], p["monitor"]) < 0.1  # classes that real ModelNet keeps apart stay apart


def test_an_old_generator_version_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr(procedural_modelnet, "VERSION", "2")
    old = procedural_modelnet.generate(tmp_path / "pm", seed=0, counts={"chair": (1, 1)})
    monkeypatch.undo()
    assert procedural_modelnet.VERSION != "2"
    before = (old / "manifest.json").read_bytes()
    with pytest.raises(ValueError, match=r"holds other data \(pcfilter.procedural_modelnet 2\).*delete this one"):
        procedural_modelnet.generate(old, seed=0, counts={"chair": (1, 1)})
    assert (old / "manifest.json").read_bytes() == before


def test_a_killed_run_resumes_to_the_same_bytes(tmp_path):
    counts = {name: (30, 10) for name in procedural_modelnet.CLASSES}
    out = tmp_path / "killed"
    code = ("from pcfilter_lib.data import procedural_modelnet as p\n"
            f"p.generate({str(out)!r}, seed=1, counts={counts!r})\n")
    process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(out.rglob("*.off"))) < 60 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    made = len(list(out.rglob("[!.]*.off")))
    assert 0 < made < 400, f"the run was not interrupted mid-way ({made} files): {process.stderr.read()!r}"
    procedural_modelnet.generate(out, seed=1, counts=counts)
    reference = procedural_modelnet.generate(tmp_path / "reference", seed=1, counts=counts)

    def meshes(root):
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("[!.]*.off"))}

    assert meshes(out) == meshes(reference) and len(meshes(out)) == 400
    assert verify_folder(out) == []


def test_classes_ignore_files_and_hidden_folders(procedural, tmp_path):
    root = tmp_path / "ModelNet10"
    shutil.copytree(procedural, root)
    (root / "README.txt").write_text("not a class")
    (root / ".cache").mkdir()
    assert modelnet.list_classes(root) == list(procedural_modelnet.CLASSES)
    with pytest.raises(FileNotFoundError, match="pcfilter modelnet"):
        modelnet.list_classes(tmp_path / "absent")
    with pytest.raises(ValueError, match="split"):
        modelnet.list_files(root, "validation")


@pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"the real ModelNet10 fixtures are missing ({FIXTURES})")
def test_load_split_on_the_real_files(tmp_path):
    root = tmp_path / "ModelNet10"
    shutil.copytree(FIXTURES, root)
    (root / "README.txt").write_text("ModelNet10")
    clouds = modelnet.load_split(root, "train", num_points=256, cache_dir=tmp_path / "cache")
    assert clouds.points.shape == (2, 256, 3) and clouds.classes == ("bathtub",)
    assert clouds.names == ("bathtub/train/bathtub_0001.off", "bathtub/train/bathtub_0002.off")
    np.testing.assert_allclose(np.linalg.norm(clouds.points, axis=-1).max(axis=1), 1, rtol=1e-5)


def test_cache_is_reused_and_not_reparsed(procedural, tmp_path, monkeypatch):
    first = modelnet.load_split(procedural, "test", num_points=128, normals=True, cache_dir=tmp_path)
    assert first.points.shape == (20, 128, 3) and first.normals.shape == (20, 128, 3)
    [folder] = tmp_path.iterdir()
    assert verify_folder(folder) == [] and (folder / "test.npz").exists()

    def no_parsing(path):
        raise AssertionError(f"{path} was parsed although the cache holds it")

    monkeypatch.setattr(modelnet, "read_off", no_parsing)
    second = modelnet.load_split(procedural, "test", num_points=128, normals=True, cache_dir=tmp_path)
    np.testing.assert_array_equal(first.points, second.points)
    np.testing.assert_array_equal(first.labels, second.labels)
    # Other parameters make another cache (and so parse again).
    with pytest.raises(AssertionError, match="was parsed"):
        modelnet.load_split(procedural, "test", num_points=64, cache_dir=tmp_path)


def _clouds(n_per_class=10, classes=("a", "b", "c"), points=64):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(classes)), n_per_class).astype(np.int32)
    return modelnet.Clouds(rng.normal(size=(len(labels), points, 3)).astype(np.float32), labels, classes,
                           tuple(f"cloud{i}" for i in range(len(labels))))


def test_validation_split_is_fixed_stratified_and_disjoint():
    clouds = _clouds()
    train, val = modelnet.split_validation(clouds, 0.2, seed=0)
    again_train, again_val = modelnet.split_validation(clouds, 0.2, seed=0)
    assert val.names == again_val.names and train.names == again_train.names
    assert not set(train.names) & set(val.names) and len(train) + len(val) == len(clouds)
    assert val.counts() == {"a": 2, "b": 2, "c": 2}
    assert modelnet.split_validation(clouds, 0.2, seed=1)[1].names != val.names
    with pytest.raises(ValueError):
        modelnet.split_validation(clouds, 1.0)


def test_fractions_and_class_selection():
    clouds = _clouds()
    assert modelnet.take_fraction(clouds, 0.1).counts() == {"a": 1, "b": 1, "c": 1}
    assert len(modelnet.take_fraction(clouds, 1.0)) == 30
    picked = modelnet.select_classes(clouds, ["c", "a"])
    assert picked.classes == ("c", "a") and picked.counts() == {"c": 10, "a": 10}
    np.testing.assert_array_equal(picked.points[picked.labels == 0], clouds.points[clouds.labels == 2])
    with pytest.raises(ValueError, match="not in this data set"):
        modelnet.select_classes(clouds, ["z"])


def test_augmentation_rotates_about_up_scales_and_shuffles():
    rng = np.random.default_rng(0)
    cloud = normalize_unit_sphere(rng.normal(size=(1, 200, 3)))
    out = modelnet.augment(cloud, np.random.default_rng(1), jitter=0.0)
    # Without jitter: z and the radius in the xy plane change only by the common scale factor.
    scale = np.sort(np.linalg.norm(out, axis=-1)) / np.sort(np.linalg.norm(cloud, axis=-1))
    assert 0.8 <= scale.mean() <= 1.25 and np.allclose(scale, scale.mean(), rtol=1e-4)
    assert np.allclose(np.sort(out[0, :, 2]), np.sort(cloud[0, :, 2]) * scale.mean(), atol=1e-5)
    assert not np.allclose(out[0, :, 2], cloud[0, :, 2] * scale.mean(), atol=1e-5)  # order shuffled


def test_thinning_unevenly_shifts_the_density_as_the_weights_say():
    rng = np.random.default_rng(0)
    sphere = rng.normal(size=(6, 20_000, 3))
    sphere /= np.linalg.norm(sphere, axis=-1, keepdims=True)  # uniform on the unit sphere
    for strength in (0.0, 1.0, 3.0):
        kept = modelnet.thin_unevenly(sphere, 500, strength, seed=1)
        assert kept.shape == (6, 500, 3) and kept.dtype == np.float32
        # Weights exp(s x.d) on the sphere put the centroid at |c| = coth(s) - 1/s (0 for s = 0).
        expected = 0.0 if strength == 0 else 1 / np.tanh(strength) - 1 / strength
        assert np.allclose(np.linalg.norm(kept.mean(axis=1), axis=1), expected, atol=0.08)
    for cloud, subset in zip(sphere, modelnet.thin_unevenly(sphere, 500, 2.0, seed=1), strict=True):
        rows = {tuple(p) for p in cloud.astype(np.float32)}
        assert len({tuple(p) for p in subset}) == 500 and all(tuple(p) in rows for p in subset)
    np.testing.assert_array_equal(modelnet.thin_unevenly(sphere, 50, 2.0, seed=4),
                                  modelnet.thin_unevenly(sphere, 50, 2.0, seed=4))
    with pytest.raises(ValueError, match="num_points must lie in"):
        modelnet.thin_unevenly(sphere, 20_001, 1.0)
    with pytest.raises(ValueError, match="strength"):
        modelnet.thin_unevenly(sphere, 10, -1.0)
    with pytest.raises(ValueError, match="clouds, points, 3"):
        modelnet.thin_unevenly(sphere[0], 10, 1.0)


def test_pydataset_batches_epochs_and_seeds():
    clouds = _clouds(points=64)
    data = modelnet.PointCloudDataset(clouds, batch_size=8, augment=True, num_points=32, seed=0)
    assert len(data) == 4
    x, y = data[3]
    assert x.shape == (6, 32, 3) and y.shape == (6,) and x.dtype == np.float32
    seen = np.concatenate([data[i][1] for i in range(len(data))])
    assert sorted(seen.tolist()) == sorted(clouds.labels.tolist())
    twin = modelnet.PointCloudDataset(clouds, batch_size=8, augment=True, num_points=32, seed=0)
    np.testing.assert_array_equal(data[0][0], twin[0][0])
    before = data[0][0]
    data.on_epoch_end()
    assert not np.array_equal(before, data[0][0])
    plain = modelnet.PointCloudDataset(clouds, batch_size=30, shuffle=False)
    np.testing.assert_array_equal(plain[0][0], clouds.points)
    with pytest.raises(ValueError, match="exceeds"):
        modelnet.PointCloudDataset(clouds, num_points=65)


def test_mesh_file_dataset_matches_the_cache_layout(procedural):
    paths, labels, _ = modelnet.list_files(procedural, "test", limit_per_class=1)
    data = modelnet.MeshFileDataset(paths, labels, batch_size=4, num_points=32)
    x, y = data[0]
    assert len(data) == 3 and x.shape == (4, 32, 3) and y.tolist() == [0, 1, 2, 3]


def test_cli_writes_the_procedural_set(tmp_path, monkeypatch, capsys):
    from pcfilter_lib import cli

    monkeypatch.setenv("PCFILTER_FAST", "1")
    assert cli.main(["modelnet", "--synthetic", "--out", str(tmp_path / "mn"), "--seed", "2", "--quiet"]) == 0
    assert modelnet.list_classes(tmp_path / "mn") == list(procedural_modelnet.CLASSES)
    assert verify_folder(tmp_path / "mn") == []
    # Another seed into the same folder is refused with a one-line reason, and nothing is changed.
    before = (tmp_path / "mn" / "manifest.json").read_bytes()
    assert cli.main(["modelnet", "--synthetic", "--out", str(tmp_path / "mn"), "--seed", "3", "--quiet"]) == 1
    assert "already holds other data" in capsys.readouterr().err
    assert (tmp_path / "mn" / "manifest.json").read_bytes() == before
