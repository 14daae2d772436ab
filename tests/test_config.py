"""config: the one reader of PCFILTER_FAST and PCFILTER_DATA."""

import re
from pathlib import Path

import pytest

from pcfilter_lib import config


@pytest.mark.parametrize(("raw", "fast"), [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)])
def test_fast_mode_values(monkeypatch, raw, fast):
    monkeypatch.setenv("PCFILTER_FAST", raw)
    assert config.fast_mode() is fast
    assert config.choose(full="big", fast="small") == ("small" if fast else "big")


def test_fast_mode_unset_means_full_size(monkeypatch):
    monkeypatch.delenv("PCFILTER_FAST", raising=False)
    assert config.choose(full=40, fast=2) == 40


def test_unknown_fast_value_is_refused(monkeypatch):
    monkeypatch.setenv("PCFILTER_FAST", "maybe")
    with pytest.raises(ValueError, match="PCFILTER_FAST='maybe'"):
        config.fast_mode()


def test_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PCFILTER_DATA", str(tmp_path / "scans"))
    assert config.data_dir() == tmp_path / "scans"


def test_default_data_dir_is_ignored_by_git(monkeypatch):
    monkeypatch.delenv("PCFILTER_DATA", raising=False)
    root = Path(__file__).resolve().parent.parent
    assert config.data_dir() == root / "data"
    assert "/data/" in (root / ".gitignore").read_text().split()


def test_nothing_else_reads_the_variables():
    package = Path(config.__file__).parent
    reads = re.compile(r"(environ|getenv)[^\n]*PCFILTER_")
    readers = [p.name for p in package.rglob("*.py") if reads.search(p.read_text())]
    assert readers == ["config.py"]


def test_progress_bars_only_in_a_jupyter_server_session(monkeypatch):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert not config.show_progress()  # a book build or benchmark: nbclient sets nothing
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/student/book/02_3d_representations.ipynb")
    assert config.show_progress()


def test_the_worker_wait_is_read_from_the_environment(monkeypatch):
    monkeypatch.delenv("PCFILTER_WORKER_WAIT", raising=False)
    assert config.worker_wait() == 10.0
    monkeypatch.setenv("PCFILTER_WORKER_WAIT", " 2.5 ")
    assert config.worker_wait() == 2.5
    for bad in ("0", "-1", "soon", "inf", "nan"):
        monkeypatch.setenv("PCFILTER_WORKER_WAIT", bad)
        with pytest.raises(ValueError, match="PCFILTER_WORKER_WAIT=.* is not understood"):
            config.worker_wait()
