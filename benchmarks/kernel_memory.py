"""Peak resident memory of each chapter's kernel during one build of the book.

Runs a command (by default ``make book``) and, while it runs, reads the peak resident set size
(``VmHWM`` in ``/proc/<pid>/status``) of every Jupyter kernel twice a second. The book executes its
chapters one after another, each in a fresh kernel, so when the command has finished the kernels, in
the order they started, are paired with the chapters the build executed, in the order the execution
cache recorded them (``book/_ext/execution.py``). The table goes to
``benchmarks/results/kernel_memory.{json,md}``. Linux only (it reads ``/proc``).

    python benchmarks/kernel_memory.py                       # make book (full size unless PCFILTER_FAST=1)
    python benchmarks/kernel_memory.py -- make book          # any command that builds the book
    TF_CPU_ALLOCATOR_USE_BFC=false python benchmarks/kernel_memory.py \
        --chapters 08_3d_scenes 08b_resolution_and_completion \
        --out benchmarks/results/kernel_memory_default_allocator \
        -- python benchmarks/book_times.py --chapters 08_3d_scenes 08b_resolution_and_completion \
        --results /tmp/times.json

With ``--chapters`` the kernels are named in the order given instead of from the execution cache: for a
command that runs chapters outside the book's build, such as ``book_times.py``.

A chapter taken from the cache starts no kernel, so run it on a fresh clone (or after ``make clean``)
to see every chapter.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "book" / "_ext"))


def _parent(pid: int) -> int:
    """The parent of process ``pid`` (0 where it has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces


def kernels(ancestor: int) -> dict[int, int]:
    """The Jupyter kernels running now below process ``ancestor``: pid -> peak resident memory so far,
    in kB."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"ipykernel_launcher" not in (entry / "cmdline").read_bytes():
                continue
            status = (entry / "status").read_text()
        except OSError:  # the process ended meanwhile
            continue
        pid = parent = int(entry.name)
        while parent > 1 and parent != ancestor:
            parent = _parent(parent)
        peak = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")), None)
        if parent == ancestor and peak is not None:
            found[pid] = int(peak)
    return found


def watch(command: list[str], interval: float = 0.5) -> tuple[int, list[dict]]:
    """Run ``command``, sampling the kernels it starts; returns its exit status and the kernels in order of start
    (pid, first and last seen as Unix times, peak in MB)."""
    seen: dict[int, dict] = {}
    process = subprocess.Popen(command, cwd=ROOT)
    while process.poll() is None:
        now = time.time()
        for pid, peak in kernels(process.pid).items():
            row = seen.setdefault(pid, {"pid": pid, "first_seen": now, "peak_kb": 0})
            row["last_seen"], row["peak_kb"] = now, max(row["peak_kb"], peak)
        time.sleep(interval)
    rows = sorted(seen.values(), key=lambda r: r["first_seen"])
    return process.returncode, [{**r, "peak_mb": round(r.pop("peak_kb") / 1024)} for r in rows]


def executed_since(start: float) -> list[tuple[str, float]]:
    """The chapters the full or fast build executed after ``start`` (a Unix time): (stem, seconds), in
    the order the execution cache recorded them."""
    from execution import cache_folder
    from jupyter_cache import get_cache

    folder = cache_folder(ROOT)
    if not (folder / "global.db").exists():
        return []
    records = [r for r in get_cache(folder).list_cache_records() if r.created.timestamp() >= start]
    records.sort(key=lambda r: r.created)
    return [(Path(r.uri).stem, float(r.data.get("execution_seconds", 0.0))) for r in records]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="*", help="the build command (default: make book)")
    parser.add_argument("--chapters", nargs="+", help="the chapters the command runs, in order (default: those "
                                                       "the execution cache records)")
    parser.add_argument("--out", type=Path, default=RESULTS / "kernel_memory",
                        help="the results, without suffix (default: benchmarks/results/kernel_memory)")
    args = parser.parse_args(argv)
    if not Path("/proc/self/status").exists():
        parser.error("this reads /proc: it runs on Linux only")
    command = args.command or ["make", "book"]
    start = time.time()
    status, rows = watch(command)
    if status:
        print(f"kernel_memory: {' '.join(command)} failed with status {status}; nothing recorded", file=sys.stderr)
        return status
    chapters = [(stem, 0.0) for stem in args.chapters] if args.chapters else executed_since(start)
    if len(chapters) != len(rows):
        print(f"kernel_memory: {len(rows)} kernels ran but {len(chapters)} chapters "
              f"{'were named' if args.chapters else 'were recorded by the execution cache'}; run the build on a "
              "fresh clone, with nothing else starting kernels", file=sys.stderr)
        return 1
    for row in rows:
        row["execution_seconds"] = round(row["last_seen"] - row["first_seen"], 1)
    for row, (stem, seconds) in zip(rows, chapters, strict=True):
        row["chapter"] = stem
        if seconds:  # the cache's own measure
            row["execution_seconds"] = round(seconds, 1)
    from pcfilter_lib import config
    from pcfilter_lib.runtime import cpu_allocator
    from pcfilter_lib.timing.clock import cpu_name

    result = {"measured": datetime.now(UTC).isoformat(timespec="seconds"), "command": " ".join(command),
              "size": "fast" if config.fast_mode() else "full", "allocator": cpu_allocator(), "machine": cpu_name(),
              "cpu_cores": os.cpu_count(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"# Peak memory of each chapter's kernel ({result['size']} size)", "",
             f"Measured {result['measured']} during `{result['command']}` on {result['cpu_cores']} cores "
             f"({result['machine']}), CPU allocator {result['allocator']}; benchmarks/kernel_memory.py.", "",
             "| chapter | execution (s) | peak resident memory (MiB) |", "|---|---|---|"]
    lines += [f"| {r['chapter']} | {r['execution_seconds']:.0f} | {r['peak_mb']:,} |" for r in rows]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
