"""The project's layout and metadata: what a fresh clone needs for the two README commands."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _normalise(requirement: str) -> str:
    name, rest = re.match(r"([A-Za-z0-9_.\-]+)(.*)", requirement.replace(" ", "")).groups()
    return re.sub(r"[-_.]+", "-", name).lower() + ",".join(sorted(rest.split(",")))


def test_top_level_layout():
    for name in ["README.md", "Makefile", "pyproject.toml", "environment.yml", "_config.yml", "book/_toc.yml",
                 "book/intro.md", "book/references.bib", "pcfilter_lib/__init__.py", "data_scripts", "tests",
                 ".ci/run"]:
        assert (ROOT / name).exists(), f"{name} is missing"


def test_pyproject_declares_package_script_and_python():
    project = _pyproject()["project"]
    assert project["requires-python"] == ">=3.11"
    assert project["scripts"] == {"pcfilter": "pcfilter_lib.cli:main"}
    core = {_normalise(r).split(">")[0] for r in project["dependencies"]}
    assert {"tensorflow", "keras", "open3d", "plotly", "numpy", "tqdm"} <= core
    assert any(r.startswith("keras>=3") for r in project["dependencies"])
    assert "jupyter-book>=1.0,<2" in project["optional-dependencies"]["book"]
    assert {"book", "dev"} <= set(project["optional-dependencies"])


def test_environment_yml_agrees_with_pyproject():
    project = _pyproject()["project"]
    wanted = {_normalise(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_normalise(r) for r in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "python=3.11" in conda and "pip" in conda
    listed = {_normalise(r) for r in pip if not r.startswith("-e")}
    assert listed == wanted, f"only in pyproject: {wanted - listed}; only in environment.yml: {listed - wanted}"
    assert "-e ." in pip


def test_every_notebook_is_in_the_table_of_contents(notebooks):
    on_disk = sorted((ROOT / "book").glob("*.ipynb"))
    assert on_disk, "the book has no notebook"
    assert sorted(notebooks) == on_disk


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci/run").read_text()
    readme = (ROOT / "README.md").read_text()
    for needed in ["make book", "make test", "PCFILTER_FAST", "PCFILTER_DATA", "_build/html/index.html"]:
        assert needed in readme, f"the README does not mention {needed}"


def test_book_config_points_at_existing_files():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    for bib in config["bibtex_bibfiles"]:
        assert (ROOT / "book" / bib).is_file()
    assert config["execute"]["execute_notebooks"] in {"auto", "force", "cache"}
