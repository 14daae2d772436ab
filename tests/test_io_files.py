"""Atomic writes and manifests: interrupted runs leave nothing half-written, versions never mix."""

import numpy as np
import pytest

from pcfilter_lib.io import files


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    files.atomic_write_text(target, "first")
    with pytest.raises(RuntimeError), files.atomic_path(target) as tmp:
        tmp.write_text("half of the second")
        raise RuntimeError("interrupted")
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_write_with_keeps_the_suffix_for_numpy(tmp_path):
    files.atomic_write_with(tmp_path / "a.npz", lambda p: np.savez(p, x=np.arange(3)))
    assert np.load(tmp_path / "a.npz")["x"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]


def test_prepare_resume_and_refuse(tmp_path):
    recipe = {"generator": "test", "version": 1, "seed": 0}
    manifest = files.prepare_folder(tmp_path / "d", recipe)
    (tmp_path / "d" / "a.bin").write_bytes(b"abc")
    files.record_file(tmp_path / "d", manifest, "a.bin")
    resumed = files.prepare_folder(tmp_path / "d", recipe)
    assert list(resumed["files"]) == ["a.bin"]
    assert files.verify_folder(tmp_path / "d") == []
    (tmp_path / "d" / "a.bin").write_bytes(b"changed")
    assert files.verify_folder(tmp_path / "d") == ["a.bin"]
    with pytest.raises(ValueError, match="already holds other data \\(test 1\\)"):
        files.prepare_folder(tmp_path / "d", {**recipe, "version": 2})


def test_folder_with_foreign_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="files without a manifest"):
        files.prepare_folder(tmp_path, {"generator": "test"})


def test_broken_manifest_is_a_clear_error(tmp_path):
    (tmp_path / files.MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        files.read_manifest(tmp_path)


def test_a_manifest_without_files_says_what_is_wrong_and_deletes_nothing(tmp_path):
    for text, found in (("{}", "this one has no 'files'"), ('{"files": [1]}', "its 'files' is a JSON list"),
                        ("[1, 2]", "this one holds a JSON list")):
        (tmp_path / files.MANIFEST).write_text(text)
        with pytest.raises(ValueError, match=found) as refused:
            files.read_manifest(tmp_path)
        assert "delete" not in str(refused.value) and files.MANIFEST_REMEDY in str(refused.value)


def test_another_recipe_of_the_same_generator_names_its_settings(tmp_path):
    recipe = {"generator": "test", "version": 1, "seed": 0, "parameters": {"n": 2, "size": [4, 3]}}
    manifest = files.prepare_folder(tmp_path / "d", recipe)
    (tmp_path / "d" / "a.bin").write_bytes(b"abc")
    files.record_file(tmp_path / "d", manifest, "a.bin")
    other = {**recipe, "seed": 5, "parameters": {"n": 3, "size": [4, 3], "extra": True}}
    with pytest.raises(files.RecipeMismatch, match=r"already holds other data.*seed 0 \(this run: 5\)") as refused:
        files.prepare_folder(tmp_path / "d", other)
    assert refused.value.differences == [(("seed",), 0, 5), (("parameters", "n"), 2, 3),
                                         (("parameters", "extra"), None, True)]
