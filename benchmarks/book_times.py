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
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from tqdm.auto import tqdm

from pcfilter_lib import runtime
from pcfilter_lib.io.files import atomic_write_text
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


def merge(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` without the rows that ``new`` measures again (same chapter, size and device), then ``new``."""
    def key(row):
        return row["chapter"], row["size"], row.get("gpu") or "", row.get("cpu_cores")

    again = {key(row) for row in new}
    return [row for row in old if key(row) not in again] + new


HOW = {"book build": "one whole `make book`", "book_times.py": "one chapter alone"}


def table(rows: list[dict]) -> str:
    """The rows as a markdown table, grouped by device and size."""
    lines = ["| chapter | size | seconds | minutes | device | load average | measured | how |", "|---" * 8 + "|"]
    for row in sorted(rows, key=lambda r: (r.get("gpu") or "", r["cpu_cores"], r["size"], r["chapter"])):
        device = row.get("gpu") or f"{row.get('cpu', 'CPU')}, {row['cpu_cores']} cores, no GPU"
        lines.append(f"| {row['chapter']} | {row['size']} | {row['seconds']:.0f} | {row['seconds'] / 60:.1f} "
                     f"| {device} | {'' if row.get('load_average') is None else row['load_average']} "
                     f"| {row['measured'][:10]} | {HOW.get(row.get('source'), 'one chapter alone')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true", help="time the fast variant (PCFILTER_FAST=1)")
    parser.add_argument("--chapters", nargs="+", help="notebook names without .ipynb (default: the whole book)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "book_times.json")
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
        old = json.loads(args.results.read_text())["rows"] if args.results.exists() else []
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        parser.error(f"{args.results} is not a times file ({error!r}); move it away or name another with --results")

    size = "fast" if args.fast else "full"
    os.environ["PCFILTER_FAST"] = "1" if args.fast else "0"  # the kernels inherit it
    runtime.setup(seed=None)  # for the device report: which CPU and GPU the times were measured on
    device = clock.device_report()
    gpu = ", ".join(device["gpus"]) or None
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
        rows.append({"chapter": notebook.stem, "size": size, "seconds": round(seconds, 1),
                     "cpu_cores": device["cores"], "cpu": device["cpu"], "gpu": gpu,
                     "tensorflow": device["tensorflow"],
                     "measured": (when or datetime.now(UTC)).isoformat(timespec="seconds"),
                     "source": "book build" if args.from_build else "book_times.py",
                     # other work on the machine slows a chapter down: the 15-minute load average at its end
                     "load_average": None if args.from_build else round(os.getloadavg()[2], 2)})
        # written after every chapter, so that an interrupted run keeps the chapters it finished
        everything = merge(old, rows)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.results, json.dumps({"rows": everything}, indent=2) + "\n")
        atomic_write_text(args.results.with_suffix(".md"), table(everything) + "\n")
    print(table(rows))
    print(f"\n{size}: {sum(r['seconds'] for r in rows) / 60:.1f} min in all for {len(rows)} notebooks; "
          f"written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
