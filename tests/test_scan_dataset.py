"""Scan datasets: writing (manifest, resume, refusals, a full disk), the CLI and the Keras loaders."""

import errno
import json

import keras
import numpy as np
import pytest

from pcfilter_lib import cli
from pcfilter_lib.data import scans
from pcfilter_lib.io import files
from pcfilter_lib.io import scan as scan_io
from pcfilter_lib.io.files import read_manifest, verify_folder
from pcfilter_lib.labels import KEEP
from pcfilter_lib.simulate import dataset
from pcfilter_lib.simulate.scanner import ScannerConfig

CONFIG = ScannerConfig(width=64, height=48)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("scans") / "ds"
    dataset.write_dataset(out, 5, seed=7, config=CONFIG, split=(0.6, 0.2, 0.2), n_parts=(3, 6), progress=False)
    return out


def test_dataset_layout_and_manifest(folder):
    manifest = read_manifest(folder)
    assert manifest["generator"] == dataset.GENERATOR and manifest["version"] == dataset.VERSION
    assert manifest["seed"] == 7 and manifest["parameters"]["scanner"]["width"] == 64
    assert sorted(manifest["files"]) == ["test/scan_00004.npz", "train/scan_00000.npz", "train/scan_00001.npz",
                                         "train/scan_00002.npz", "val/scan_00003.npz"]
    assert verify_folder(folder) == []
    scan = scan_io.load_scan(folder / "val/scan_00003.npz")
    assert scan["meta"]["index"] == 3 and scan["meta"]["kinds"]["2"] == "interreflection"
    assert scan["mesh_triangles"].max() < len(scan["mesh_vertices"])


def test_resume_redoes_only_missing_scans_and_gives_the_same_bytes(folder, tmp_path, monkeypatch):
    copy = tmp_path / "ds"
    import shutil

    shutil.copytree(folder, copy)
    (copy / "train/scan_00001.npz").unlink()
    made = []
    original = dataset.make_scan
    def counting(seed, index, *args, **kwargs):
        made.append(index)
        return original(seed, index, *args, **kwargs)

    monkeypatch.setattr(dataset, "make_scan", counting)
    dataset.write_dataset(copy, 5, seed=7, config=CONFIG, split=(0.6, 0.2, 0.2), n_parts=(3, 6), progress=False)
    assert made == [1]
    assert read_manifest(copy)["files"] == read_manifest(folder)["files"]  # byte-identical files


def test_scans_made_in_processes_are_the_same_bytes_in_the_same_order(folder, tmp_path):
    done = []
    runner = dataset.in_processes(2)
    stats = dataset.write_dataset(tmp_path / "ds", 5, seed=7, config=CONFIG, split=(0.6, 0.2, 0.2), n_parts=(3, 6),
                                  progress=False, tasks=lambda *args: runner(*args[:2], done.append))
    assert done == [0, 1, 2, 3, 4]
    assert read_manifest(tmp_path / "ds")["files"] == read_manifest(folder)["files"]
    resumed = dataset.write_dataset(folder, 5, seed=7, config=CONFIG, split=(0.6, 0.2, 0.2), n_parts=(3, 6),
                                    progress=False)  # the stats of the files made one after another
    assert stats == resumed


def test_another_recipe_is_refused(folder):
    with pytest.raises(ValueError, match="already holds other data"):
        dataset.write_dataset(folder, 5, seed=8, config=CONFIG, split=(0.6, 0.2, 0.2), n_parts=(3, 6), progress=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["seed"] == 7  # untouched


def test_a_folder_from_another_generator_version_is_refused(folder, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(folder, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["version"] = "0"
    (old / "manifest.json").write_text(json.dumps(manifest))
    before = sorted(p.name for p in old.rglob("*"))
    with pytest.raises(ValueError, match="already holds other data \\(pcfilter.simulate 0\\)"):
        dataset.write_dataset(old, 5, seed=7, config=CONFIG, split=(0.6, 0.2, 0.2), n_parts=(3, 6), progress=False)
    assert sorted(p.name for p in old.rglob("*")) == before


def test_a_full_disk_leaves_no_partial_file(tmp_path, monkeypatch):
    calls = []

    def failing_write(path, data):
        calls.append(path)
        if len(calls) == 2:
            with files.atomic_path(path) as tmp:
                tmp.write_bytes(data[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device")
        files.atomic_write_bytes(path, data)

    monkeypatch.setattr(scan_io, "atomic_write_bytes", failing_write)
    out = tmp_path / "ds"
    with pytest.raises(OSError, match="could not write .*scan_00001.npz: No space left on device; no partial file"):
        dataset.write_dataset(out, 3, seed=1, config=CONFIG, n_parts=(3, 4), progress=False)
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert left == ["manifest.json", "train/scan_00000.npz"]
    assert list(read_manifest(out)["files"]) == ["train/scan_00000.npz"]


def test_cli_simulate(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli.main(["simulate", "--out", str(out), "--n", "3", "--seed", "2", "--size", "48x32",
                     "--split", "0.34/0.33/0.33", "--max-parts", "5"]) == 0
    printed = capsys.readouterr().out
    assert "3 scans of 48x32" in printed and "interreflection" in printed and "median" in printed
    assert {p.parent.name for p in out.rglob("*.npz")} == {"train", "val", "test"}
    # Bad input: one line on stderr and a non-zero status, nothing written.
    assert cli.main(["simulate", "--out", str(tmp_path / "x"), "--n", "2", "--size", "2x99999"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "impossible" in err
    assert cli.main(["simulate", "--out", str(tmp_path / "y"), "--n", "2", "--mesh", str(tmp_path / "no.stl")]) == 1
    assert "no.stl does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert cli.main(["simulate", "--out", str(out), "--n", "3", "--seed", "3", "--size", "48x32"]) == 1
    assert "already holds other data" in capsys.readouterr().err


# Loaders -------------------------------------------------------------------------------------

def test_pydataset_batches(folder):
    train = dataset.split_files(folder, "train")
    assert len(train) == 3
    sequence = scans.ScanSequence(train, batch_size=2, multiple=16)
    assert len(sequence) == 2
    x, y, w = sequence[0]
    assert x.shape == (2, 48, 64, 6) and y.shape == (2, 48, 64, 1) and w.shape == (2, 48, 64)
    assert x.dtype == y.dtype == w.dtype == np.float32
    scan = scan_io.load_scan(train[0])
    np.testing.assert_array_equal(w[0], scan["valid"])
    np.testing.assert_array_equal(y[0, ..., 0], scan["label"] == KEEP)
    np.testing.assert_array_equal(x[0, ..., 5], scan["valid"])
    assert x.min() >= 0 and x.max() <= 1
    assert (x[0][~scan["valid"]] == 0).all()
    depth = x[0, ..., 1][scan["valid"]]
    assert depth.min() == 0 and depth.max() == 1
    # Padding to the U-Net multiple: 48x64 with multiple 32 -> 64x64, weight 0 on the padding.
    x, y, w = scans.ScanSequence(train, multiple=32)[0]
    assert x.shape == (1, 64, 64, 6) and w[:, 48:].sum() == 0


def test_augmentation_moves_inputs_targets_and_weights_together(folder):
    train = dataset.split_files(folder, "train")
    plain = scans.ScanSequence(train, batch_size=1, multiple=16)
    augmented = scans.ScanSequence(train, batch_size=1, multiple=16, augment=True, seed=5)
    moves = set()
    for _ in range(4):
        for i in range(len(augmented)):
            x, y, w = augmented[i]
            assert x.shape == (1, 64, 64, 6)  # padded to a square: one shape for every rotation
            np.testing.assert_array_equal(x[..., 5], w)  # the validity channel follows the weights
            assert ((y[..., 0] == 1) <= (w == 1)).all()
            # The weights are the plain ones, flipped and turned: find which of the eight moves.
            w0 = plain[i][2][0]
            for turns in range(4):
                for flip in (False, True):
                    moved = np.rot90(w0[:, ::-1] if flip else w0, turns)
                    canvas = np.zeros((64, 64), np.float32)
                    canvas[:moved.shape[0], :moved.shape[1]] = moved
                    if np.array_equal(canvas, w[0]):
                        moves.add((turns % 2, flip))
        augmented.on_epoch_end()
    assert {turns for turns, _ in moves} == {0, 1}  # quarter turns happened
    x0, _, _ = plain[0]
    xs = [scans.ScanSequence(train, augment=True, seed=s)[0][0] for s in range(6)]
    values = np.sort(np.pad(x0[..., 0], [(0, 0), (0, 16), (0, 0)]).ravel())
    # Intensity jitter changes the values, not only their places.
    assert any(not np.array_equal(np.sort(x[..., 0].ravel()), values) for x in xs)


def test_a_keras_model_trains_on_both_pipelines(folder):
    from pcfilter_lib import runtime

    runtime.setup(seed=0)
    train = dataset.split_files(folder, "train")
    inputs = keras.Input((None, None, 6))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    options = dict(batch_size=2, augment=True, shuffle=True, seed=1)
    history = model.fit(scans.ScanSequence(train, **options), epochs=3, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"]).all()
    history = model.fit(scans.scan_dataset(train, epochs=3, **options), epochs=3, steps_per_epoch=2, verbose=0,
                        shuffle=False)
    assert np.isfinite(history.history["loss"]).all()


def test_tf_data_gives_the_same_batches(folder):
    from pcfilter_lib import runtime

    runtime.setup(seed=0)
    train = dataset.split_files(folder, "train")
    kwargs = dict(batch_size=2, multiple=16, augment=True, shuffle=True, seed=3)
    sequence = scans.ScanSequence(train, **kwargs)
    batches = list(scans.scan_dataset(train, epochs=2, **kwargs))
    assert len(batches) == 2 * len(sequence)
    for epoch in range(2):
        for i in range(len(sequence)):
            for a, b in zip(batches[epoch * len(sequence) + i], sequence[i], strict=True):
                np.testing.assert_array_equal(a.numpy(), b)
        sequence.on_epoch_end()


def test_loader_errors(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        dataset.split_files(tmp_path, "train")
    with pytest.raises(ValueError, match="no finished scans in split 'holdout'"):
        dataset.split_files(folder, "holdout")
    with pytest.raises(FileNotFoundError, match="scan files missing"):
        scans.ScanSequence([tmp_path / "nope.npz"])
    with pytest.raises(ValueError, match="at least one scan file"):
        scans.scan_dataset([])


def test_a_managed_folder_of_another_version_is_made_again(folder, tmp_path):
    import shutil

    old = tmp_path / "managed"
    shutil.copytree(folder, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["version"] = "0"
    (old / "manifest.json").write_text(json.dumps(manifest))
    dataset.write_dataset(old, 5, seed=7, config=CONFIG, split=(0.6, 0.2, 0.2), n_parts=(3, 6), progress=False,
                          replace=True)
    assert read_manifest(old)["version"] == dataset.VERSION
    assert read_manifest(old)["files"] == read_manifest(folder)["files"]
    # a file the manifest does not list is the user's: nothing is deleted, the folder is refused
    (old / "notes.txt").write_text("mine")
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["version"] = "0"
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="already holds other data"):
        dataset.write_dataset(old, 5, seed=7, config=CONFIG, split=(0.6, 0.2, 0.2), n_parts=(3, 6),
                              progress=False, replace=True)
    assert (old / "notes.txt").read_text() == "mine" and (old / "train").is_dir()
