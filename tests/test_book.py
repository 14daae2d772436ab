"""The book as a reader sees it: built with `jupyter-book build -W` in fast mode, then opened in a
real headless Chromium that may fetch nothing but the book itself. Every chapter page must load with
its title, show no error or stderr output, show every figure its executed notebook produced, fit its
code into the page's column, and typeset its formulas with the MathJax the book ships."""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
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
# A laptop's window (1440 x 900), wide enough for the book theme's column to reach its full width, which
# holds 88 characters of code (the notebooks' line length, book/ruff.toml). Narrower windows narrow the column.
VIEWPORT = {"width": 1440, "height": 900}
# myst-nb writes what a cell printed on stderr into a block with these classes.
STDERR_BLOCK = re.compile(r'class="[^"]*\boutput stderr\b')
# TeX delimiters that MathJax replaces when it typesets; left in the text, a formula was not rendered.
RAW_TEX = ("\\(", "\\[", "$$")


@pytest.fixture(scope="module")
def execution_cache(notebook_runs) -> Path:
    """The fast variant's execution cache that the build reads: the one this run's nbval filled, if it did."""
    if notebook_runs.variant == "fast" and notebook_runs.cache:
        return notebook_runs.cache
    return execution.cache_folder(ROOT, "fast")


@pytest.fixture(scope="module")
def built_book(tmp_path_factory, notebook_runs, execution_cache) -> Path:
    """Build the whole book once, warnings as errors, into a temporary folder.

    In a run that also executes the notebooks (``make test``), nbval has executed them before this
    file runs and the root conftest.py has put their outputs into the execution cache: the build
    renders them from there and executes none of them again. A notebook that failed under nbval
    fails the build at once."""
    if notebook_runs.failed:
        pytest.fail("the book is not built from notebooks that failed under nbval: " + "; ".join(
            f"{path.name} ({why})" for path, why in notebook_runs.failed.items()))
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(jupyter_book), "build", "book/", "--path-output", str(out), "-W", "--keep-going"],
        cwd=ROOT, env={**os.environ, "PCFILTER_FAST": "1", "PCFILTER_EXECUTION_CACHE": str(execution_cache)},
        capture_output=True, text=True, timeout=3600,
    )
    assert result.returncode == 0, f"jupyter-book build failed:\n{result.stdout[-8000:]}\n{result.stderr[-8000:]}"
    if notebook_runs.variant == "fast":
        again = _executed_again(execution_cache, notebook_runs.stored, result.stdout)
        assert again == [], f"the build executed again what nbval had executed: {again}\n{result.stdout[-8000:]}"
    return out / "_build"


def _executed_again(folder: Path, stored: dict[Path, tuple[int, str]], log: str) -> list[str]:
    """The notebooks that nbval executed and stored in the cache ``folder`` (``stored``: path -> record key
    and code hash) but that the build executed once more, although their code has not changed since."""
    import nbformat
    from jupyter_cache import get_cache

    cache = get_cache(folder)
    executing = {line.split(":")[0].strip() for line in log.splitlines() if "Executing notebook" in line}
    again = []
    for path, (key, code_hash) in stored.items():
        if cache.create_hashed_notebook(nbformat.read(path, as_version=4))[1] != code_hash:
            continue  # edited since nbval ran it: executing it again is right
        try:
            same = cache.match_cache_notebook(nbformat.read(path, as_version=4)).pk == key
        except KeyError:
            same = False
        if not same or any(path.stem in name for name in executing):
            again.append(path.name)
    return again


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


def _offline_page(browser, server):
    """A page in a new browser context that may load the book's own files only: every other request is
    refused and recorded in ``page.outside``, as a reader without a network would see it."""
    context = browser.new_context(viewport=VIEWPORT)
    outside: list[str] = []

    def route(route):
        if route.request.url.startswith(server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.outside = outside
    return page


@pytest.fixture
def offline_page(browser, server):
    page = _offline_page(browser, server)
    yield page
    page.context.close()


def _figures_in_executed_notebook(notebook: Path, folder: Path) -> int:
    """The figures among the outputs of the fast build's execution of ``notebook``, from its cache (the
    copy that myst-nb writes to jupyter_execute/ lacks the outputs when they came from the cache)."""
    import nbformat
    from jupyter_cache import get_cache

    cache = get_cache(folder)
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


def _pages(built_book: Path) -> list[Path]:
    return sorted(p for p in (built_book / "html").glob("*.html") if p.name not in ("genindex.html", "search.html"))


# The longest line of each code cell whose text is wider than the box around it (the reader would have to
# scroll sideways). textContent, not innerText: a cell in a closed dropdown (a solution) has no rendered text.
OVERFLOWING_CODE = """() => [...document.querySelectorAll("div.cell_input pre")]
    .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
    .map(pre => pre.textContent.split("\\n").reduce((a, b) => (b.length > a.length ? b : a), ""))"""
# The text a reader sees, without code and without the typeset formulas themselves.
PROSE_TEXT = """() => {
    const article = document.querySelector("article").cloneNode(true);
    article.querySelectorAll("pre, code, mjx-container, script").forEach(e => e.remove());
    return article.textContent;
}"""


# Where a page got plotly.js from, how many of its figures plotly.js drew, and the largest inline script.
PLOTLY_ON_PAGE = """() => ({
    scripts: [...document.scripts].filter(s => /plotly[^/]*\\.js/i.test(s.src)).map(s => s.src),
    figures: document.querySelectorAll(".plotly-graph-div").length,
    drawn: document.querySelectorAll(".plotly-graph-div.js-plotly-plot").length,
    largest_inline: Math.max(0, ...[...document.scripts].filter(s => !s.src).map(s => s.text.length)),
})"""


@dataclass
class Visit:
    """What one page of the book showed the browser (``None`` where the page was not checked for it)."""

    loaded: bool
    h1: str = ""
    title: str = ""
    errors: str = ""  # the first error or stderr block shown in an output
    traceback: bool = False
    figures: int = 0
    unloaded_images: list[int] = field(default_factory=list)
    code_cells: int | None = None
    too_wide: dict[int, list[str]] = field(default_factory=dict)  # window width -> the lines wider than the column
    mathjax_scripts: list[str] | None = None
    formulas: tuple[int, int] = (0, 0)  # (typeset, all)
    raw_tex: list[str] = field(default_factory=list)
    prose: str = ""
    plotly: dict | None = None  # on a page with Plotly figures: how it loaded plotly.js and drew them


@dataclass
class Visits:
    pages: dict[str, Visit]
    script_errors: list[str]
    missing: list[str]  # the book's own files that did not load
    outside: list[str]  # requests outside the book


@pytest.fixture(scope="module")
def visits(built_book, server, browser, notebooks) -> Visits:
    """Every notebook's page, and every other page with a formula, loaded once in one offline browser
    context, with what the tests below check: a chapter page takes seconds to load and lay out (its
    Plotly figures), so each is visited once for all checks."""
    page = _offline_page(browser, server)
    script_errors: list[str] = []
    missing: list[str] = []
    page.on("pageerror", lambda error: str(error) in KNOWN_SCRIPT_ERRORS or script_errors.append(str(error)))
    page.on("response", lambda r: r.url.startswith(server) and r.status >= 400
            and not r.url.endswith("/favicon.ico") and missing.append(f"{r.status} {r.url}"))
    with_math = {p.name for p in _pages(built_book) if 'class="math notranslate' in p.read_text()}
    names = [f"{nb.stem}.html" for nb in notebooks]
    pages = {}
    try:
        for name in names + sorted(with_math - set(names)):
            response = page.goto(f"{server}/{name}", wait_until="load")
            visit = pages[name] = Visit(loaded=response is not None and response.ok)
            if not visit.loaded:
                continue
            if name in with_math:
                page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
                page.evaluate("() => MathJax.startup.promise")
                visit.mathjax_scripts = page.evaluate(
                    "() => [...document.scripts].filter(s => /mathjax/i.test(s.src)).map(s => s.src)")
                visit.formulas = (page.locator(".math mjx-container").count(), page.locator(".math").count())
                text = page.evaluate(PROSE_TEXT)
                visit.raw_tex = [mark for mark in RAW_TEX if mark in text]
                visit.prose = text
            if name not in names:
                continue
            visit.h1 = page.locator("h1").first.inner_text().strip().rstrip("#").strip()
            visit.title = page.title()
            errors = page.locator(".cell_output .stderr, .cell_output .traceback, .cell_output .output.error")
            visit.errors = errors.first.inner_text()[:2000] if errors.count() else ""
            visit.traceback = "Traceback (most recent call last)" in page.locator("article").inner_text()
            images = page.locator(".cell_output img")
            visit.figures = images.count() + page.locator(".cell_output .plotly-graph-div").count()
            visit.unloaded_images = [n for n in range(images.count())
                                     if not images.nth(n).evaluate("img => img.complete && img.naturalWidth > 0")]
            visit.code_cells = page.locator("div.cell_input pre").count()
            if page.locator(".plotly-graph-div").count():
                visit.plotly = page.evaluate(PLOTLY_ON_PAGE)
            for width in (VIEWPORT["width"], 1280, 1024):  # two sidebars beside the text, then one
                page.set_viewport_size({"width": width, "height": VIEWPORT["height"]})
                visit.too_wide[width] = page.evaluate(OVERFLOWING_CODE)
            page.set_viewport_size(VIEWPORT)
    finally:
        page.context.close()
    return Visits(pages, script_errors, missing, page.outside)


def test_every_chapter_page_renders(visits, notebooks, execution_cache):
    chapters = [nb for nb in notebooks if nb.stem != "intro"]
    assert chapters, "the table of contents lists no chapter notebook"
    for notebook in chapters:
        visit = visits.pages[f"{notebook.stem}.html"]
        assert visit.loaded, f"{notebook.stem}.html did not load"
        title = _title(notebook)
        assert visit.h1 == title and title in visit.title, (visit.h1, visit.title, title)
        assert visit.errors == "", f"{notebook.stem}: error output shown:\n{visit.errors}"
        assert not visit.traceback, f"{notebook.stem}: a traceback is shown"
        expected = _figures_in_executed_notebook(notebook, execution_cache)
        assert expected > 0, f"{notebook.stem}: the executed notebook made no figure"
        assert visit.figures == expected, f"{notebook.stem}: {visit.figures} figures shown, {expected} made"
        assert visit.unloaded_images == [], f"{notebook.stem}: figures {visit.unloaded_images} did not load"
    assert visits.script_errors == [], f"script errors in the browser: {visits.script_errors}"
    assert visits.missing == [], f"files of the book that did not load: {visits.missing}"
    assert visits.outside == [], f"requests outside the book: {sorted(set(visits.outside))}"


def test_plotly_js_loads_once_from_the_book_and_every_figure_has_a_still(visits, built_book, server):
    with_figures = {name: visit.plotly for name, visit in visits.pages.items() if visit.plotly}
    assert with_figures, "no page has a Plotly figure: has pcfilter_lib.viz.setup_plotly changed?"
    for name, plotly in with_figures.items():
        # one shared file for the whole book, cached by the browser, not a 4.8 MB copy inside each page
        assert plotly["scripts"] == [plotly["scripts"][0]] and \
            plotly["scripts"][0].split("?")[0] == f"{server}/_static/plotly.min.js", (name, plotly["scripts"])
        largest = plotly["largest_inline"]
        assert largest < 1_000_000, f"{name}: an inline script of {largest} characters"
        assert plotly["drawn"] == plotly["figures"] > 0, f"{name}: {plotly['drawn']} of {plotly['figures']} drawn"
        stills = (built_book / "html" / name).read_text().count('<img class="plotly-still"')
        assert stills == plotly["figures"], f"{name}: {stills} still pictures for {plotly['figures']} figures"
    others = [name for name, visit in visits.pages.items() if visit.loaded and visit.code_cells and not visit.plotly]
    for name in others:
        assert "plotly.min.js" not in (built_book / "html" / name).read_text(), f"{name} loads plotly.js"


def test_no_page_shows_stderr_output(built_book):
    # TensorFlow's C++ logs, Python warnings and progress bars written to stderr would all land here.
    shown = {page.name: len(STDERR_BLOCK.findall(page.read_text())) for page in _pages(built_book)}
    assert {name: n for name, n in shown.items() if n} == {}, "pages with stderr output blocks"


def test_code_cells_fit_the_column(visits, notebooks):
    too_wide = {}
    for notebook in notebooks:
        visit = visits.pages[f"{notebook.stem}.html"]
        assert visit.loaded, f"{notebook.stem}.html did not load"
        assert visit.code_cells, f"{notebook.stem}: no code cell found (has myst-nb changed its markup?)"
        for width, longest in visit.too_wide.items():
            if longest:
                too_wide[f"{notebook.stem} at {width} px"] = f"{len(longest)} cells, e.g. {longest[0]!r}"
    assert too_wide == {}, f"code wider than the page's column: {too_wide}"


def test_formulas_are_typeset_offline(visits, server):
    with_math = {name: visit for name, visit in visits.pages.items() if visit.mathjax_scripts is not None}
    assert with_math, "no page of the book has a formula: has Sphinx changed its math markup?"
    for name, visit in with_math.items():
        scripts = visit.mathjax_scripts
        assert len(scripts) == 1, f"{name}: MathJax should load once, from the book; scripts: {scripts}"
        assert scripts[0].startswith(server), f"{name}: MathJax comes from {scripts[0]}"
        typeset, formulas = visit.formulas
        assert typeset == formulas > 0, f"{name}: {typeset} of {formulas} typeset"
        raw, text = visit.raw_tex, visit.prose
        assert raw == [], f"{name}: raw TeX left in the text ({raw}): {text[text.find(raw[0]) - 80:][:200]!r}"
    assert visits.outside == [], f"requests outside the book: {sorted(set(visits.outside))}"


def test_intro_and_references_pages(built_book, server, offline_page):
    page = offline_page
    page.goto(f"{server}/index.html")
    page.wait_for_url("**/intro.html")  # index.html redirects to the root page
    assert "pcfilter" in page.title()
    assert page.locator("nav a", has_text="Convolution math").count() > 0
    page.goto(f"{server}/references.html", wait_until="load")
    assert page.locator(".citation, dl.citation > dt, div.citation").count() > 0, "the bibliography is empty"
    assert page.outside == [], f"requests outside the book: {sorted(set(page.outside))}"


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
