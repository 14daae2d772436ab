"""Project-wide pytest set-up: which notebooks nbval runs, how their outputs reach the book's browser
test, and hypothesis profiles."""

from __future__ import annotations

import copy
import os
import signal
import sys
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent
BOOK = ROOT / "book"

# Reproducible property tests: the same examples on every run, no per-example deadline (the first
# Keras call in a process is slow).
settings.register_profile("pcfilter", derandomize=True, deadline=None, max_examples=60)
settings.load_profile("pcfilter")

# The Ctrl-C tests send SIGINT to command lines they start, which inherit whether SIGINT is ignored: a
# shell ignores it for the commands it runs in the background (`make test &`), and so would they.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def toc_notebooks() -> list[Path]:
    """The notebooks listed in book/_toc.yml, in book order."""
    import execution  # book/_ext, put on sys.path by pytest_configure

    return execution.toc_notebooks(BOOK)


@pytest.fixture(scope="session")
def notebooks() -> list[Path]:
    return toc_notebooks()


def pytest_ignore_collect(collection_path: Path, config):
    """nbval runs exactly the notebooks of the table of contents (tests/test_book.py checks that
    every notebook in book/ is listed there)."""
    if collection_path.suffix == ".ipynb":
        return collection_path.resolve() not in {p.resolve() for p in toc_notebooks()}
    return None


# ---------------------------------------------------------------------------------------------------
# Each notebook is executed once per run. nbval executes it cell by cell (every notebook must run);
# the kernel's messages for each cell are kept and turned into the notebook's outputs by nbclient's
# own message handling, the way the book build records them, and the executed notebook goes into
# the book's execution cache (book/_ext/execution.py). The browser test (tests/test_book.py) runs
# after the notebooks and builds the book from that cache, so the build executes nothing again; a
# notebook that failed under nbval fails the browser test too. Under pytest-xdist (`make test`) the
# notebooks run in several worker processes: the browser test's worker waits until each of them has
# said that its notebooks are through, then reads what they stored in the cache.

BOOK_TESTS = "test_book.py"
FAILED = "failed-under-nbval"  # in the execution cache: one file per notebook that failed, with why
FINISHED = "finished-in-run"  # in the execution cache: FINISHED/RUN/NOTEBOOK, one empty file per notebook
WAIT_LIMIT = 3600  # seconds the browser test waits for notebooks that other workers are executing


class NotebookRuns:
    """What nbval did with each notebook: ``stored[path]`` is the cache record (primary key, code hash)
    of a notebook whose every cell passed, ``failed[path]`` says why another one was not stored."""

    def __init__(self):
        self.stored: dict[Path, tuple[int, str]] = {}
        self.failed: dict[Path, str] = {}
        self.variant: str | None = None
        self.cache: Path | None = None  # the execution cache they went into (one per run)
        self.cells: list = []  # nbval's items (one per code cell) of this run
        self._messages: dict[object, list[dict]] = {}  # cell item -> iopub messages read while it ran
        self._outcomes: dict[str, str] = {}  # node id -> "passed", "failed" or "skipped"
        self._seconds: dict[str, float] = {}
        self._language: dict[object, dict] = {}  # nbval collector -> its kernel's language_info
        self._running = None

    # -- nbval's side ----------------------------------------------------------------------------

    def watch(self, notebook_file) -> None:
        """Keep every kernel message nbval reads for a cell of ``notebook_file`` (an nbval collector)."""
        read = notebook_file.get_kernel_message

        def get_kernel_message(*args, **kwargs):
            message = read(*args, **kwargs)
            if self._running is not None:
                self._messages.setdefault(self._running, []).append(message)
            return message

        notebook_file.get_kernel_message = get_kernel_message

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item):
        # The kernel starts with the first cell; like the book build's kernels (book/_ext/quiet_outputs.py)
        # it inherits TF_CPP_MIN_LOG_LEVEL=3 unless the variable is set already.
        if not _is_cell(item) or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
            return (yield)
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        try:
            return (yield)
        finally:
            del os.environ["TF_CPP_MIN_LOG_LEVEL"]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        if _is_cell(item) and item.parent not in self._language:
            # What nbclient writes into an executed notebook's metadata (the book's code highlighting
            # follows its pygments_lexer); asked before the first cell runs, when no request is pending.
            reply = item.parent.kernel.kc.kernel_info(reply=True, timeout=60)
            self._language[item.parent] = reply["content"]["language_info"]
        self._running = item if _is_cell(item) else None
        try:
            return (yield)
        finally:
            self._running = None

    def pytest_runtest_logreport(self, report):
        if report.when == "call":
            self._seconds[report.nodeid] = report.duration
        if report.when == "call" or report.outcome != "passed":  # a failed teardown fails the cell too
            self._outcomes[report.nodeid] = report.outcome

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        result = yield
        if _is_cell(item) and (nextitem is None or nextitem.parent is not item.parent):
            self._finish(item.parent)
        return result

    # -- the notebook, executed -------------------------------------------------------------------

    def _finish(self, notebook_file) -> None:
        path = Path(notebook_file.path).resolve()
        try:
            self._store(path, notebook_file)
        finally:
            run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
            if run:  # tell the browser test's worker, which may be another process
                import execution

                finished = execution.cache_folder(ROOT) / FINISHED / run
                finished.mkdir(parents=True, exist_ok=True)
                (finished / path.stem).touch()

    def _store(self, path: Path, notebook_file) -> None:
        cells = [item for item in self.cells if item.parent is notebook_file]
        outcomes = [self._outcomes.get(item.nodeid, "not run") for item in cells]
        messages = {item.cell_num: self._messages.pop(item, []) for item in cells}
        code_cells = sum(cell.cell_type == "code" for cell in notebook_file.nb.cells)
        import execution  # book/_ext, put on sys.path by pytest_configure

        self.cache = self.cache or execution.cache_folder(ROOT)
        if len(cells) != code_cells or any(outcome != "passed" for outcome in outcomes):
            bad = [f"{item.name} {outcome}" for item, outcome in zip(cells, outcomes, strict=True)
                   if outcome != "passed"]
            self._fail(path, notebook_file.nb, ", ".join(bad) or f"{len(cells)} of its {code_cells} code cells ran")
            return
        seconds = sum(self._seconds.get(item.nodeid, 0.0) for item in cells)
        try:
            executed = executed_notebook(notebook_file.nb, messages)
            executed.metadata["language_info"] = self._language.pop(notebook_file)
            self.stored[path] = execution.store(self.cache, path, executed, seconds)
        except Exception as error:  # reported by the browser test, which needs these outputs
            self._fail(path, notebook_file.nb, f"its outputs could not be stored in the execution cache: {error!r}")
            return
        (self.cache / FAILED / f"{path.stem}.json").unlink(missing_ok=True)
        self.variant = execution.variant()

    # -- across processes and runs: another worker's or a later run's browser test reads the cache --------

    def _fail(self, path: Path, notebook, why: str) -> None:
        """Note the failure here and in the cache, with the code it concerns, for a browser test in another
        process."""
        import json

        from jupyter_cache import get_cache

        self.failed[path] = why
        _, code = get_cache(self.cache).create_hashed_notebook(notebook)
        (self.cache / FAILED).mkdir(parents=True, exist_ok=True)
        (self.cache / FAILED / f"{path.stem}.json").write_text(json.dumps({"code": code, "why": why}))

    def recall(self, notebooks: list[Path]) -> None:
        """What the last run that executed ``notebooks`` under nbval left for the current code: the
        ones whose outputs are in the execution cache, and the ones that failed (before any was
        executed again, a failure fails the browser test at once, as in a single run)."""
        import json

        import execution
        import nbformat
        from jupyter_cache import get_cache

        folder = execution.cache_folder(ROOT)
        if not (folder / "global.db").exists():
            return
        cache = get_cache(folder)
        for path in (p.resolve() for p in notebooks):
            notebook = nbformat.read(path, as_version=4)
            try:
                record = cache.match_cache_notebook(notebook)
            except KeyError:
                failure = folder / FAILED / f"{path.stem}.json"
                if failure.exists():
                    noted = json.loads(failure.read_text())
                    if noted["code"] == cache.create_hashed_notebook(notebook)[1]:
                        self.failed[path] = noted["why"]
                continue
            self.stored[path] = record.pk, record.hashkey
        self.cache, self.variant = folder, execution.variant()


def _is_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell"


def executed_notebook(notebook, messages: dict[int, list[dict]]):
    """A copy of ``notebook`` with the outputs that the kernel's ``messages`` (per code cell number)
    describe, recorded by nbclient as the book build records them (stream, display, clear_output and
    display updates, widget state)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionComplete

    executed = copy.deepcopy(notebook)
    client = NotebookClient(executed, record_timing=False)  # the build's settings (jupyter-cache)
    client.widget_registry = {}  # no live kernel behind this client to sync Output widgets with
    code = [(index, cell) for index, cell in enumerate(executed.cells) if cell.cell_type == "code"]
    for number, (index, cell) in enumerate(code):
        cell.outputs = []
        cell.execution_count = None
        client.clear_before_next_output = False
        request = _request_id(messages.get(number, []), cell.source)
        for message in messages.get(number, []):
            if message["parent_header"].get("msg_id") != request:
                continue
            try:
                client.process_message(message, cell, index)
            except CellExecutionComplete:
                break
        # nbval executes without storing history, so the kernel's counter stays put; a build that
        # executes the notebook numbers its cells 1, 2, ... (jupyter-cache checks this sequence).
        cell.execution_count = number + 1
        for output in cell.outputs:
            if output.output_type == "execute_result":
                output.execution_count = number + 1
    client.set_widgets_metadata()
    nbformat.validate(executed)
    return executed


def _request_id(messages: list[dict], source: str) -> str | None:
    """The id of the execute request of the cell whose code is ``source``, from its execute_input message."""
    for message in messages:
        if message["msg_type"] == "execute_input" and message["content"].get("code") == source:
            return message["parent_header"].get("msg_id")
    return None


_runs = NotebookRuns()


def pytest_configure(config):
    sys.path.insert(0, str(BOOK / "_ext"))
    config.pluginmanager.register(_runs, "pcfilter-notebook-runs")


# The unit test files that take longest (20 to 45 s each on two cores). Under pytest-xdist they are
# handed out before the other unit tests: one of them left to the end would keep its worker busy long
# after the other worker has run out of files.
LONG_FILES = ("test_transfer.py", "test_bad_input.py", "test_bad_input_round3.py", "test_cluster.py",
              "test_cli_filter.py", "test_training.py", "test_punet.py")


def pytest_collection_modifyitems(session, config, items):
    """Run the browser test of the book after the notebooks, whose outputs it builds the book from: last
    or, under pytest-xdist, after the notebooks and half of the unit test files (pytest-xdist hands out
    whole files in this order with ``--no-loadscope-reorder``), so that another worker finishes its last
    notebook meanwhile and still has unit tests to run while the browser test runs; the ``LONG_FILES``
    come first among the unit tests."""
    book_tests = [item for item in items if item.path.name == BOOK_TESTS and item.path.parent.name == "tests"]
    others = [item for item in items if item not in book_tests]
    if os.environ.get("PYTEST_XDIST_WORKER"):
        cells = [item for item in others if _is_cell(item)]
        units = [item for item in others if not _is_cell(item)]
        units.sort(key=lambda item: item.path.name not in LONG_FILES)  # stable: file order kept otherwise
        files = list(dict.fromkeys(item.path for item in units))
        first = set(files[:len(files) // 2])
        items[:] = (cells + [item for item in units if item.path in first] + book_tests
                    + [item for item in units if item.path not in first])
    else:
        items[:] = others + book_tests
    _runs.cells = [item for item in items if _is_cell(item)]
    for notebook_file in {id(item.parent): item.parent for item in _runs.cells}.values():
        _runs.watch(notebook_file)


@pytest.fixture(scope="session")
def notebook_runs(notebooks) -> NotebookRuns:
    """The notebooks that nbval executed and stored in the book's execution cache: in this run (under
    pytest-xdist, once every worker has finished the notebooks it executes) or, when this run executes
    none, in the last run that did, for the current code."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if _runs.cells and not run:
        return _runs
    if _runs.cells:
        _wait_for_notebooks({Path(item.parent.path).resolve() for item in _runs.cells}, run)
    everything = NotebookRuns()
    everything.recall(notebooks)
    return everything


def _wait_for_notebooks(paths: set[Path], run: str) -> None:
    """Wait until the workers of pytest-xdist run ``run`` have finished the notebooks ``paths``."""
    import shutil
    import time

    import execution

    finished = execution.cache_folder(ROOT) / FINISHED / run
    deadline = time.monotonic() + WAIT_LIMIT
    while missing := sorted(path.name for path in paths if not (finished / path.stem).exists()):
        if time.monotonic() > deadline:
            pytest.fail(f"the book is not built: after {WAIT_LIMIT} s, no worker has finished {', '.join(missing)}")
        time.sleep(1.0)
    shutil.rmtree(finished, ignore_errors=True)
