"""Lint: ruff over the whole project, as part of the one pytest run."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_check_is_clean():
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr



def test_notebook_code_is_checked_at_88_characters(notebooks):
    # book/ruff.toml narrows the line length for the notebooks, so that their code fits the book's page.
    ruff = Path(sys.executable).with_name("ruff")
    for notebook in notebooks:
        result = subprocess.run([str(ruff), "check", "--show-settings", str(notebook)], cwd=ROOT,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "linter.line_length = 88\n" in result.stdout, f"{notebook.name} is not checked at 88 characters"


def test_notebooks_are_valid_nbformat_with_cell_ids(notebooks):
    # Cells without ids are valid only by nbformat's silent repair, which warns on every read and
    # becomes an error in a future nbformat.
    import json

    import nbformat

    for notebook in notebooks:
        raw = json.loads(notebook.read_text())  # as stored: nbformat's reader would add the ids
        assert all("id" in cell for cell in raw["cells"]), f"{notebook.name}: cells without an id"
        nbformat.validate(nbformat.from_dict(raw))
