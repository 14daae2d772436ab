"""The book as a reader sees it: built with `jupyter-book build -W` in fast mode, then opened in a
real headless Chromium. Every chapter page must load with its title, show no error or stderr output,
and show every figure its executed notebook produced."""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import execution  # the book's local Sphinx extensions
import quiet_outputs

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
FIGURE_MIME_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "application/vnd.plotly.v1+json")
# Jupyter Book 1.0.4 with Sphinx 7.4 writes sphinx-thebe's configuration script twice into every
# page, so the second copy fails to redeclare a constant. It only concerns live code cells (thebe),
# which this book does not use.
KNOWN_SCRIPT_ERRORS = {"Identifier 'THEBE_JS_URL' has already been declared"}
# myst-nb writes what a cell printed on stderr into a block with these classes.
STDERR_BLOCK = re.compile(r'class="[^"]*\boutput stderr\b')


@pytest.fixture(scope="module")
def built_book(tmp_path_factory) -> Path:
    """Build the whole book once, warnings as errors, into a temporary folder."""
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(jupyter_book), "build", "book/", "--path-output", str(out), "-W", "--keep-going"],
        cwd=ROOT, env={**os.environ, "PCFILTER_FAST": "1"}, capture_output=True, text=True, timeout=3600,
    )
    assert result.returncode == 0, f"jupyter-book build failed:\n{result.stdout[-8000:]}\n{result.stderr[-8000:]}"
    return out / "_build"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(built_book):
    """Serve the HTML on a free loopback port, as a reader's browser would get it."""
    handler = functools.partial(_QuietHandler, directory=str(built_book / "html"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test`, which installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def _figures_in_executed_notebook(notebook: Path) -> int:
    """The figures among the outputs of the fast build's execution of ``notebook``, from its cache (the
    copy that myst-nb writes to jupyter_execute/ lacks the outputs when they came from the cache)."""
    import nbformat
    from jupyter_cache import get_cache

    cache = get_cache(execution.cache_folder(ROOT, "fast"))
    _, executed = cache.merge_match_into_notebook(nbformat.read(notebook, as_version=4))
    return sum(
        1
        for cell in executed.cells if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if any(mime in output.get("data", {}) for mime in FIGURE_MIME_TYPES)
    )


def _title(notebook: Path) -> str:
    first = json.loads(notebook.read_text())["cells"][0]
    return "".join(first["source"]).splitlines()[0].lstrip("# ").strip()


def test_every_chapter_page_renders(built_book, server, browser, notebooks):
    chapters = [nb for nb in notebooks if nb.stem != "intro"]
    assert chapters, "the table of contents lists no chapter notebook"
    page = browser.new_page()
    # Scripts that crash, and the book's own files that fail to load, are errors. Files from the
    # internet (MathJax from its CDN) cannot load on an offline machine and are left out.
    script_errors: list[str] = []
    missing: list[str] = []
    page.on("pageerror", lambda error: str(error) in KNOWN_SCRIPT_ERRORS or script_errors.append(str(error)))
    page.on("response", lambda r: r.url.startswith(server) and r.status >= 400
            and not r.url.endswith("/favicon.ico") and missing.append(f"{r.status} {r.url}"))
    for notebook in chapters:
        response = page.goto(f"{server}/{notebook.stem}.html", wait_until="load")
        assert response is not None and response.ok, f"{notebook.stem}.html did not load"

        title = _title(notebook)
        assert page.locator("h1").first.inner_text().strip().rstrip("#").strip() == title
        assert title in page.title()

        errors = page.locator(".cell_output .stderr, .cell_output .traceback, .cell_output .output.error")
        assert errors.count() == 0, f"{notebook.stem}: error output shown:\n{errors.first.inner_text()[:2000]}"
        body = page.locator("article").inner_text()
        assert "Traceback (most recent call last)" not in body, f"{notebook.stem}: a traceback is shown"

        expected = _figures_in_executed_notebook(notebook)
        assert expected > 0, f"{notebook.stem}: the executed notebook made no figure"
        images = page.locator(".cell_output img")
        plots = page.locator(".cell_output .plotly-graph-div")
        assert images.count() + plots.count() == expected, f"{notebook.stem}: expected {expected} figures"
        for n in range(images.count()):
            loaded = images.nth(n).evaluate("img => img.complete && img.naturalWidth > 0")
            assert loaded, f"{notebook.stem}: figure {n} did not load"
    page.close()
    assert script_errors == [], f"script errors in the browser: {script_errors}"
    assert missing == [], f"files of the book that did not load: {missing}"


def _pages(built_book: Path) -> list[Path]:
    return sorted(p for p in (built_book / "html").glob("*.html") if p.name not in ("genindex.html", "search.html"))


def test_no_page_shows_stderr_output(built_book):
    # TensorFlow's C++ logs, Python warnings and progress bars written to stderr would all land here.
    shown = {page.name: len(STDERR_BLOCK.findall(page.read_text())) for page in _pages(built_book)}
    assert {name: n for name, n in shown.items() if n} == {}, "pages with stderr output blocks"


def test_intro_and_references_pages(built_book, server, browser):
    page = browser.new_page()
    page.goto(f"{server}/index.html")
    page.wait_for_url("**/intro.html")  # index.html redirects to the root page
    assert "pcfilter" in page.title()
    assert page.locator("nav a", has_text="Convolution math").count() > 0
    page.goto(f"{server}/references.html", wait_until="load")
    assert page.locator(".citation, dl.citation > dt, div.citation").count() > 0, "the bibliography is empty"
    page.close()


def test_the_execution_cache_sees_code_not_comments_and_keeps_variants_apart(monkeypatch):
    code = "def f(x):\n    return x + 1\n"
    assert execution._code_only(code) == execution._code_only('def f(x):\n    """Add one."""\n    return x + 1  # +1\n')
    assert execution._code_only(code) != execution._code_only(code.replace("+ 1", "+ 2"))
    folders = {}
    for value in ("1", "0"):
        monkeypatch.setenv("PCFILTER_FAST", value)
        folders[value] = execution.cache_folder(ROOT)
    assert folders["1"].name.startswith("fast-") and folders["0"].name.startswith("full-")
    assert folders["1"].parent == folders["0"].parent and folders["1"].name[5:] == folders["0"].name[5:]
    assert execution.cache_folder(ROOT, "fast") == folders["1"]


def test_only_progress_bars_are_left_out_of_stderr():
    assert quiet_outputs.is_progress("\rsimulating scans:  50%|#####     | 4/8 [00:02<00:02, 1.9scan/s]\n")
    assert quiet_outputs.is_progress("training: 100%|##| 5/5 [00:03<00:00, 1.6epoch/s, loss=0.31]")
    assert quiet_outputs.is_progress("patches: 7it [00:01, 5.02it/s]")
    assert not quiet_outputs.is_progress("x: 50%|#| 1/2 [00:01<00:01, 1.0s/it]\nUserWarning: a real problem")
    assert not quiet_outputs.is_progress("E0000 00:00:1795365341.638509  24745 meta_optimizer.cc:967] remapper failed")
