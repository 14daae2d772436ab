"""How the book's notebooks are executed: one execution cache per variant and library version.

Jupyter Book runs with ``execute_notebooks: cache`` (jupyter-cache): a notebook is executed again only
when its code cells change, so an edit to prose re-executes nothing. Two things the cache does not
see are taken care of here, by choosing the cache folder ``_build/.jupyter_cache/VARIANT-FINGERPRINT``:

* the variant: ``PCFILTER_FAST=1`` builds the quick variant, whose outputs must never be served to a
  full-size build (nor the other way round);
* the library: the notebooks call ``pcfilter_lib``, so a change to its code (not to its comments or
  docstrings), to its shipped model weights or to the installed versions of the project's
  dependencies gives a new fingerprint, hence a new cache, and every chapter is executed again.

A new folder changes the Sphinx setting ``nb_execution_cache_path``, so Sphinx reads every page
again. Of the older folders of the same variant, the most recently used one is kept (switching back
and forth between two versions of the library stays cheap) and the rest are removed.

Run as a script (``python book/_ext/execution.py``, as ``make book`` does), it says what the next
build will do: the variant, which chapters it will execute and which come from the cache, and how
long executing them took when ``benchmarks/book_times.py`` measured it (benchmarks/results/book_times.json,
the CPU-only rows).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path

CACHE_ROOT = Path("_build") / ".jupyter_cache"  # relative to the folder that holds book/


def variant() -> str:
    """``"fast"`` or ``"full"``, from ``PCFILTER_FAST`` (a value it does not understand is an error)."""
    from pcfilter_lib import config

    return "fast" if config.fast_mode() else "full"


def _code_only(source: str) -> str:
    """The syntax tree of a module without its docstrings: comments, docstrings and layout do not count."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def fingerprint() -> str:
    """A hash of what the notebooks' results depend on besides their own code.

    Returns:
        The hex SHA-256 of the library's code (syntax trees without docstrings), of its other package
        files (the shipped reference models) and of the installed versions of the project's run-time
        and book dependencies.
    """
    spec = importlib.util.find_spec("pcfilter_lib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pcfilter_lib is not installed: run `make book`, which installs it into .venv")
    package = Path(next(iter(spec.submodule_search_locations)))
    digest = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        data = path.read_bytes()
        digest.update(_code_only(data.decode()).encode() if path.suffix == ".py" else data)
    for requirement in importlib.metadata.requires("pcfilter") or []:
        name, _, marker = requirement.partition(";")
        if marker and "book" not in marker:
            continue
        name = re.match(r"[A-Za-z0-9_.-]+", name.strip()).group(0)
        try:
            digest.update(f"{name}=={importlib.metadata.version(name)}\0".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{name} missing\0".encode())
    return digest.hexdigest()


def cache_folder(root: Path, which: str | None = None) -> Path:
    """The jupyter-cache folder of variant ``which`` ("fast" or "full"; None: the one PCFILTER_FAST asks
    for) and of the library's fingerprint, below ``root`` (the folder of book/)."""
    return root / CACHE_ROOT / f"{which or variant()}-{fingerprint()[:16]}"


def prune(current: Path) -> list[Path]:
    """Remove the caches of the same variant except ``current`` and the most recently used other one.

    Returns:
        The folders removed.
    """
    prefix = current.name.split("-")[0] + "-"
    others = [p for p in current.parent.glob(prefix + "*") if p.is_dir() and p != current]
    others.sort(key=lambda p: (p / "global.db").stat().st_mtime if (p / "global.db").exists() else 0.0)
    for stale in others[:-1]:
        shutil.rmtree(stale, ignore_errors=True)
    return others[:-1]


def toc_notebooks(book: Path) -> list[Path]:
    """The notebooks of ``book/_toc.yml``, in book order."""
    import yaml

    toc = yaml.safe_load((book / "_toc.yml").read_text())
    entries = [toc["root"]]

    def walk(items):
        for item in items or []:
            if "file" in item:
                entries.append(item["file"])
            walk(item.get("sections"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return [book / f"{entry}.ipynb" for entry in entries if (book / f"{entry}.ipynb").exists()]


def cached(folder: Path, notebooks: list[Path]) -> set[str]:
    """The stems of the notebooks whose code cells match an executed notebook in the cache ``folder``."""
    if not (folder / "global.db").exists():
        return set()
    import nbformat
    from jupyter_cache import get_cache

    cache = get_cache(folder)
    found = set()
    for notebook in notebooks:
        try:
            cache.match_cache_notebook(nbformat.read(notebook, as_version=4))
            found.add(notebook.stem)
        except KeyError:
            pass
    return found


def store(folder: Path, notebook: Path, executed, seconds: float) -> tuple[int, str]:
    """Put an execution of ``notebook`` made outside the build into the execution cache ``folder``.

    The next build then renders the notebook from these outputs instead of executing it, exactly as
    if it had executed the notebook itself: ``make test`` executes every notebook once, under nbval,
    and builds the book for the browser test from those outputs (see the root conftest.py).

    Args:
        folder: the cache, normally ``cache_folder(root)``.
        notebook: the notebook's file; its code cells must be those that were executed.
        executed: the executed notebook (an ``nbformat`` v4 node), outputs and execution counts filled in.
        seconds: how long the execution took (shown in the build's execution statistics).

    Returns:
        The cache record's primary key and the hash that identifies the notebook's code in the cache.
    """
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(folder)
    record = cache.cache_notebook_bundle(
        CacheBundleIn(executed, str(notebook.resolve()), data={"execution_seconds": seconds}),
        check_validity=False, overwrite=True)
    return record.pk, record.hashkey


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def measured_times(times_file: Path, which: str) -> dict[str, dict]:
    """The latest CPU-only run of each chapter in ``which`` variant, from book_times.json.

    The file is written by benchmarks/book_times.py and read by ``pcfilter_lib.timing.book_times``,
    which knows its format; a row has ``chapter``, ``size`` ("fast" or "full"), ``seconds``,
    ``cpu_cores`` and ``gpu`` (empty for a CPU-only run). Later rows replace earlier ones.
    """
    from pcfilter_lib.timing.book_times import read_rows

    if not times_file.exists():
        return {}
    rows = read_rows(times_file)
    return {row["chapter"]: row for row in rows
            if row.get("size", row.get("mode")) == which and not row.get("gpu") and "seconds" in row}


def plan(root: Path) -> str:
    """What the next ``jupyter-book build book/`` from ``root`` will do, in a few lines."""
    which = variant()
    label = {"fast": "fast", "full": "full-size"}[which]
    folder = cache_folder(root)
    notebooks = toc_notebooks(root / "book")
    hits = cached(folder, notebooks)
    todo = [nb.stem for nb in notebooks if nb.stem not in hits]
    other = "PCFILTER_FAST=0 for full size" if which == "fast" else "PCFILTER_FAST=1 for the quick variant"
    lines = [f"Building the book, {which} variant ({other}).",
             f"Notebook outputs are cached in {folder.relative_to(root)}: a chapter is executed again only "
             "when its code, the library or the installed packages change; an edit to prose re-executes nothing.",
             f"{len(todo)} of {len(notebooks)} notebooks will be executed"
             + (f": {', '.join(todo)}." if todo else "; the pages are rendered from the cache.")]
    from pcfilter_lib.timing.book_times import RESULTS, where_timed

    times = measured_times(root / RESULTS, which)
    measured = [nb.stem for nb in notebooks if nb.stem in times]
    if not measured:
        fast = " --fast" if which == "fast" else ""
        lines.append(f"No {label} build has been timed on a CPU-only machine yet (after this build, "
                     f"python benchmarks/book_times.py --from-build{fast} records how long each chapter took).")
        return "\n".join(lines)
    first = _duration(sum(times[stem]["seconds"] for stem in measured))
    where = where_timed([times[stem] for stem in measured])
    if len(measured) == len(notebooks):
        lines.append(f"A first {label} build executes its notebooks in {first} on {where}, "
                     "as benchmarks/book_times.py measured; Sphinx's own work comes on top.")
    else:
        lines.append(f"Only {len(measured)} of its {len(notebooks)} notebooks have been timed for a {label} build: "
                     f"{first} on {where} (benchmarks/book_times.py); the others are not measured yet.")
    if todo and len(todo) < len(notebooks):
        now = sum(times[stem]["seconds"] for stem in todo if stem in times)
        lines.append(f"The notebooks to execute now took {_duration(now)} of that.")
    return "\n".join(lines)


def _choose_cache(app, config) -> None:
    root = Path(app.srcdir).resolve().parent
    # PCFILTER_EXECUTION_CACHE names the folder instead: the browser test builds from the cache its
    # own nbval run filled, even if the library was edited meanwhile.
    folder = Path(os.environ.get("PCFILTER_EXECUTION_CACHE") or cache_folder(root))
    config.nb_execution_cache_path = str(folder)
    removed = prune(folder)
    from sphinx.util import logging

    logging.getLogger(__name__).info(
        f"pcfilter: {variant()} variant, execution cache {folder}"
        + (f" ({len(removed)} older cache(s) of this variant removed)" if removed else ""))


def setup(app):
    """Sphinx entry point: choose the execution cache once the configuration is read."""
    app.connect("config-inited", _choose_cache)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    try:
        print(plan(Path.cwd()))
    except (ValueError, RuntimeError) as error:
        sys.exit(f"make book: {error}")
