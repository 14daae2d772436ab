"""Fine-tuning the neighbour filter on labelled clouds: the readers, the held-out block, the Keras round
trip of its networks, and ``pcfilter finetune`` end to end and on bad labels."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from synthetic_clouds import surface_with_specks

from pcfilter_lib.filters.neighbours import SHIPPED_NEIGHBOUR_MODEL, neighbour_filter
from pcfilter_lib.io.clouds import CloudError, cloud_scan, write_ply, write_ply_rows, write_pointcleannet
from pcfilter_lib.io.labelled import LabelledCloud, check_both_classes, read_labelled_cloud, read_labelled_folder
from pcfilter_lib.io.scan import save_scan
from pcfilter_lib.recipes.finetune import holdout_block

needs_weights = pytest.mark.skipif(not SHIPPED_NEIGHBOUR_MODEL.is_file(),
                                   reason="the shipped neighbour filter is missing")


def labelled_scan(points, label):
    """A 1 x N scan dict with every array a scan file needs."""
    scan = cloud_scan(points.astype(np.float32), label)
    n = len(points)
    scan.update(kind=np.zeros((1, n), np.uint8), intensity=np.ones((1, n), np.float32),
                normals=np.zeros((1, n, 3), np.float32), intrinsics=np.eye(3), pose=np.eye(4), meta="{}")
    return scan


def run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "pcfilter_lib.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PCFILTER_FAST": "1"})


def test_the_three_layouts_read_the_same_labels(tmp_path):
    points, label = surface_with_specks(500, 20)
    scan = labelled_scan(points, label)
    write_pointcleannet(tmp_path / "pair", scan)
    write_ply(tmp_path / "cloud.ply", scan)
    save_scan(tmp_path / "scan.npz", scan)
    clouds = read_labelled_folder(tmp_path)
    assert [c.name for c in clouds] == ["cloud.ply", "pair.xyz", "scan.npz"]
    for cloud in clouds:
        assert cloud.points.shape == (520, 3) and cloud.keep.dtype == bool
        np.testing.assert_array_equal(cloud.keep, label == 1)
        np.testing.assert_allclose(cloud.points, points, atol=1e-6)


def test_bad_labels_are_refused_in_one_line(tmp_path):
    points, _ = surface_with_specks(100, 5)
    np.savetxt(tmp_path / "short.xyz", points)
    (tmp_path / "short.outliers").write_text("0\n" * 104)
    with pytest.raises(CloudError, match="105 points but 104 outlier flags"):
        read_labelled_cloud(tmp_path / "short.xyz")
    (tmp_path / "short.outliers").write_text("0\n" * 104 + "2\n")
    with pytest.raises(CloudError, match="flags must be 0 or 1"):
        read_labelled_cloud(tmp_path / "short.xyz")
    with pytest.raises(ValueError, match="holds only true points"):
        check_both_classes([LabelledCloud("a", points, np.ones(105, bool))], "--data d")
    with pytest.raises(NotADirectoryError, match="names a folder"):
        read_labelled_folder(tmp_path / "short.xyz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no labelled clouds"):
        read_labelled_folder(tmp_path / "empty")
    write_ply_rows(tmp_path / "bare.ply", np.zeros(3, np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")])))
    with pytest.raises(CloudError, match="no per-point 'label' or 'outlier' property"):
        read_labelled_cloud(tmp_path / "bare.ply")


def test_the_held_out_block_is_the_far_end_of_the_longest_axis():
    rng = np.random.default_rng(0)
    points = rng.random((10000, 3)) * [1, 5, 0.1]
    block = holdout_block(points, 0.2)
    assert abs(block.mean() - 0.2) < 0.01
    assert points[block, 1].min() > points[~block, 1].max()


@needs_weights
def test_a_network_goes_to_keras_and_back_unchanged():
    from pcfilter_lib.recipes.neighbour_filter import export_network, import_network

    network = neighbour_filter().networks[0]
    rng = np.random.default_rng(0)
    inputs = (network.mean + rng.normal(size=(256, network.features)) * network.scale).astype(np.float32)
    model = import_network(network)
    np.testing.assert_allclose(model.predict(inputs, verbose=0)[:, 0], network(inputs), atol=1e-5)
    back = export_network(model)
    np.testing.assert_allclose(back(inputs), network(inputs), atol=1e-6)


@needs_weights
def test_finetune_writes_a_filter_that_filter_and_evaluate_run_without_tensorflow(tmp_path, capsys, monkeypatch):
    from pcfilter_lib.cli import main

    data = tmp_path / "data"
    data.mkdir()
    for seed in range(2):  # specks far above a sheet: a shift the shipped filter has not seen in this form
        points, label = surface_with_specks(4000, 300, seed=seed)
        points[label == 0, 2] += 0.2
        write_pointcleannet(data / f"sheet{seed}", labelled_scan(points, label))
    out = tmp_path / "mine.npz"
    # Fine-tuning runs in this process: a fresh one would add only TensorFlow's start-up. Filter and evaluate,
    # which must not start TensorFlow, each run in a fresh process below.
    monkeypatch.setenv("PCFILTER_FAST", "1")
    status = main(["finetune", "--data", str(data), "--out", str(out), "--epochs", "3", "--quiet"])
    result = capsys.readouterr()
    assert status == 0, result.err
    assert out.is_file() and "before" in result.out and "after" in result.out
    assert "'after' threshold was chosen on these points" in result.out  # its figures there flatter it
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["target"] == "finetune" and 0 < card["threshold"] < 1
    assert [c["file"] for c in card["data"]["clouds"]] == ["sheet0.xyz", "sheet1.xyz"]
    assert card["validation"]["points"] > 0 and 0 <= card["validation"]["roc_auc"] <= 1
    tuned = neighbour_filter(out)
    assert tuned.threshold == pytest.approx(card["threshold"])
    again = run("finetune", "--data", data, "--out", out, "--epochs", 1, "--quiet")
    assert again.returncode == 1 and "already exists" in again.stderr and "--overwrite" in again.stderr
    listing = ("import sys; from pcfilter_lib.cli import main; status = main(sys.argv[1:]); "
               "print('LOADED', *sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)); sys.exit(status)")
    for command in (("filter", data / "sheet0.xyz", "-o", tmp_path / "kept.ply", "--model", out, "--quiet"),
                    ("evaluate", "--data", data, "--model", out, "--json")):
        done = subprocess.run([sys.executable, "-c", listing, *map(str, command)], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == "LOADED", command


def test_finetune_refuses_bad_data_before_training(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    points, label = surface_with_specks(300, 10)
    np.savetxt(data / "a.xyz", points)
    (data / "a.outliers").write_text("0\n" * len(points))  # every point true
    cases = [(("--data", tmp_path / "none", "--out", tmp_path / "m.npz"), "does not exist"),
             (("--data", data, "--out", tmp_path / "m.keras"), "must end in .npz"),
             (("--data", data, "--out", tmp_path / "m.npz", "--epochs", 0), "--epochs must be"),
             (("--data", data, "--out", tmp_path / "m.npz", "--holdout", 0.9), "--holdout must be"),
             (("--data", data, "--out", tmp_path / "m.npz"), "holds only true points"),
             (("--data", data, "--out", data / "m.npz"), "lies in the --data folder")]
    for args, message in cases:
        result = run("finetune", *args, timeout=120)
        assert result.returncode == 1, (args, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "m.npz").exists()
