"""Project-wide pytest set-up: which notebooks nbval runs, and hypothesis profiles."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import settings

ROOT = Path(__file__).resolve().parent
BOOK = ROOT / "book"

# Reproducible property tests: the same examples on every run, no per-example deadline (the first
# Keras call in a process is slow).
settings.register_profile("pcfilter", derandomize=True, deadline=None, max_examples=60)
settings.load_profile("pcfilter")


def toc_notebooks() -> list[Path]:
    """The notebooks listed in book/_toc.yml, in book order."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    entries = [toc["root"]]

    def walk(items):
        for item in items or []:
            if "file" in item:
                entries.append(item["file"])
            walk(item.get("sections"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return [BOOK / f"{entry}.ipynb" for entry in entries if (BOOK / f"{entry}.ipynb").exists()]


@pytest.fixture(scope="session")
def notebooks() -> list[Path]:
    return toc_notebooks()


def pytest_ignore_collect(collection_path: Path, config):
    """nbval runs exactly the notebooks of the table of contents (tests/test_book.py checks that
    every notebook in book/ is listed there)."""
    if collection_path.suffix == ".ipynb":
        return collection_path.resolve() not in {p.resolve() for p in toc_notebooks()}
    return None
