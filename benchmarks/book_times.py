"""How long each chapter of the book takes to execute on this machine, fast or full size.

Executes every notebook of book/_toc.yml (or the ones named) from start to end with nbclient, as
Jupyter Book does, in a fresh kernel each, and records the wall-clock seconds of each. The rows go
into benchmarks/results/book_times.json, replacing earlier rows of the same chapter, size and device
(rows from other machines are kept); the table of all rows is written beside it as markdown.
``make book`` quotes the CPU-only rows before it starts, and each chapter quotes its own.

    python benchmarks/book_times.py [--fast] [--chapters 03_segmentation ...] [--results FILE] [--keep DIR]
    python benchmarks/book_times.py --from-build [--fast]

A full-size run takes as long as a first full-size build of the book. ``--from-build`` executes
nothing: it records the seconds that the last ``make book`` (or ``PCFILTER_FAST=1 make book``) spent
executing each chapter, as the book's execution cache (jupyter-cache) stored them, so that one
full-size build gives both the book and its times. The fast cache also holds what ``make test``'s
nbval runs took, two processes sharing the cores, so ``--from-build --fast`` after ``make test``
records slower times than a build alone; time the fast variant with ``--fast`` instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from tqdm.auto import tqdm

from pcfilter_lib import runtime
from pcfilter_lib.timing import book_times, clock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from execution import toc_notebooks  # the book's own reading of its table of contents


def execute(notebook: Path, timeout: int, keep: Path | None = None) -> float:
    """Execute ``notebook`` in a fresh kernel, in its own folder; with ``keep``, the executed notebook
    (outputs included) is written into that folder under its own name.

    Returns:
        The wall-clock seconds from the kernel's start to the end of the last cell.

    Raises:
        CellExecutionError: a cell failed; the message names the cell and the error.
    """
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, keep / notebook.name)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true", help="time the fast variant (PCFILTER_FAST=1)")
    parser.add_argument("--chapters", nargs="+", help="notebook names without .ipynb (default: the whole book)")
    parser.add_argument("--results", type=Path, default=ROOT / book_times.RESULTS)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one cell may take")
    parser.add_argument("--keep", type=Path, help="write each executed notebook, with its outputs, into this folder")
    parser.add_argument("--from-build", action="store_true",
                        help="execute nothing: record what the last `make book` of this size took per chapter")
    args = parser.parse_args(argv)

    notebooks = toc_notebooks(ROOT / "book")
    if args.chapters:
        unknown = sorted(set(args.chapters) - {nb.stem for nb in notebooks})
        if unknown:
            parser.error(f"not in book/_toc.yml: {', '.join(unknown)}; choose from {[nb.stem for nb in notebooks]}")
        notebooks = [nb for nb in notebooks if nb.stem in args.chapters]
    try:
        old = book_times.read_rows(args.results) if args.results.exists() else []
    except ValueError as error:
        parser.error(f"{error} (or move it away, or name another file with --results)")

    size = "fast" if args.fast else "full"
    os.environ["PCFILTER_FAST"] = "1" if args.fast else "0"  # the kernels inherit it
    runtime.setup(seed=None)  # for the device report: which CPU and GPU the times were measured on
    device = clock.device_report()
    built = {}
    if args.from_build:
        from execution import cache_folder

        built = book_times.cached_execution_seconds(notebooks, cache_folder(ROOT, size))
    if args.from_build and len(built) < len(notebooks):
        missing = [nb.stem for nb in notebooks if nb.stem not in built]
        print(f"the execution cache holds no {size}-size run of {', '.join(missing)} with the current code: "
              f"build the book first ({'PCFILTER_FAST=1 ' if args.fast else ''}make book)", file=sys.stderr)
        return 1
    rows = []
    for notebook in tqdm(notebooks, desc=f"{size} chapters", unit="chapter", disable=args.from_build):
        try:
            seconds, when = (built[notebook.stem] if args.from_build
                             else (execute(notebook, args.timeout, args.keep), None))
        except CellExecutionError as error:
            print(f"{notebook.name} failed, nothing recorded for it:\n{str(error)[-3000:]}", file=sys.stderr)
            return 1
        rows.append(book_times.time_row(notebook.stem, size, seconds, device, when,
                                        "book build" if args.from_build else "book_times.py",
                                        None if args.from_build else round(os.getloadavg()[2], 2)))
        # written after every chapter, so that an interrupted run keeps the chapters it finished
        book_times.write_rows(args.results, book_times.merge(old, rows))
    print(book_times.table(rows))
    print(f"\n{size}: {sum(r['seconds'] for r in rows) / 60:.1f} min in all for {len(rows)} notebooks; "
          f"written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
