"""``pcfilter filter`` and ``pcfilter evaluate``, run as a user runs them, on a tiny simulated dataset."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pcfilter_lib import filtering
from pcfilter_lib.io.organised import read_cloud, write_points
from pcfilter_lib.io.scan import load_scan

PCFILTER = Path(sys.executable).with_name("pcfilter")


def run(*args, data=None):
    env = {**os.environ, "PCFILTER_FAST": "1"}
    if data is not None:
        env["PCFILTER_DATA"] = str(data)
    return subprocess.run([str(PCFILTER), *map(str, args)], capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scans") / "tiny"
    result = run("simulate", "--out", folder, "--n", 4, "--seed", 7, "--size", "96x64", "--split", "0.5/0.25/0.25")
    assert result.returncode == 0, result.stderr
    return folder


def test_filter_writes_kept_and_removed_points_that_add_up(dataset, tmp_path):
    scan_path = next((dataset / "test").glob("*.npz"))
    kept, removed = tmp_path / "kept.pcd", tmp_path / "removed.ply"
    result = run("filter", scan_path, "-o", kept, "--removed", removed, "--method", "sor")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    scan = load_scan(scan_path, arrays=())
    grid, points = read_cloud(kept), read_cloud(removed)
    assert grid["organised"] and grid["valid"].shape == scan["valid"].shape  # .pcd keeps the grid
    assert not points["organised"]
    assert grid["valid"].sum() + points["valid"].sum() == scan["valid"].sum()
    assert f"kept {int(grid['valid'].sum())} of {int(scan['valid'].sum())} points" in result.stdout
    # the organised output is itself a valid input, for the image filters too
    again = run("filter", kept, "-o", tmp_path / "again.ply", "--method", "morph")
    assert again.returncode == 0, again.stderr


@pytest.mark.skipif(not filtering.SHIPPED_MODEL.is_file(), reason="the shipped U-Net filter is missing")
def test_filter_uses_the_shipped_unet_by_default_without_noise_on_stderr(dataset, tmp_path):
    scan_path = next((dataset / "val").glob("*.npz"))
    result = run("filter", scan_path, "-o", tmp_path / "kept.ply")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no TensorFlow start-up logs
    assert result.stdout.startswith("unet_filter: kept")


def test_filter_refuses_to_overwrite_its_input_and_explains_unusable_files(dataset, tmp_path):
    scan_path = next((dataset / "train").glob("*.npz"))
    before = hashlib.sha256(scan_path.read_bytes()).hexdigest()
    result = run("filter", scan_path, "-o", tmp_path / "k.ply", "--removed", scan_path, "--method", "morph")
    assert result.returncode == 1 and "is the input file" in result.stderr
    assert hashlib.sha256(scan_path.read_bytes()).hexdigest() == before

    cloud = tmp_path / "cloud.ply"
    write_points(cloud, np.random.default_rng(0).random((50, 3)))
    result = run("filter", cloud, "-o", tmp_path / "out.ply")
    assert result.returncode == 1
    assert "unorganised cloud" in result.stderr and "obj_info width" in result.stderr
    assert "--method sor" in result.stderr
    assert run("filter", cloud, "-o", tmp_path / "out.ply", "--method", "ror").returncode == 0

    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK not really")
    result = run("filter", broken, "-o", tmp_path / "out.ply", "--method", "sor")
    assert result.returncode == 1 and "not a readable scan" in result.stderr
    result = run("filter", scan_path, "-o", tmp_path / "out.txt", "--method", "sor")
    assert result.returncode == 1 and ".ply (points) or .pcd" in result.stderr


def test_evaluate_json_matches_the_library(dataset):
    result = run("evaluate", "--data", dataset, "--split", "test", "--method", "morph", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    scans = list(filtering.iter_scans(sorted((dataset / "test").glob("*.npz"))))
    expected = filtering.evaluate_filter(filtering.baseline_filter("morph"), scans)
    for key in ("tp", "fn", "fp", "tn", "mean_iou", "balanced_accuracy", "f1", "false_omission_rate", "recall"):
        assert report[key] == pytest.approx(expected[key])
    assert set(report["kinds"]) == {"interreflection", "mixed", "specular"}

    text = run("evaluate", "--data", dataset, "--split", "val", "--method", "sor")
    assert text.returncode == 0, text.stderr
    assert "keep-recall" in text.stdout and "artefact kind mixed" in text.stdout

    missing = run("evaluate", "--data", dataset / "nowhere", "--method", "sor")
    assert missing.returncode == 1 and "no manifest.json" in missing.stderr
