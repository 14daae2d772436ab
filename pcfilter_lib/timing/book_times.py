"""The book's measured chapter run times and kernel memory, for the appendix "How this book is made".

``benchmarks/book_times.py`` executes every chapter and records, in
``benchmarks/results/book_times.json``, one row per chapter run: a mapping with at least

- ``chapter``: the notebook's name without folder and suffix, e.g. ``"02_3d_representations"``;
- ``size``: ``"full"`` or ``"fast"`` (``mode`` is read as well);
- ``seconds``: the wall time of executing the notebook;
- ``cpu_cores``: the CPU cores the run had;
- ``gpu``: the GPU's name, or null / empty for a CPU-only run.

The file is either a list of such rows or a mapping with a ``rows`` list. Later rows replace
earlier ones of the same chapter, size and device. This module alone knows the format: the benchmark
makes its rows with ``time_row`` and writes them with ``write_rows`` (which merges them into the rows
already there, ``merge``, and writes the markdown ``table`` beside the file); the book reads them with
``read_rows``. ``benchmarks/kernel_memory.py`` records, in
``benchmarks/results/kernel_memory.json``, the peak resident memory of each chapter's kernel during
one build (``machine``, ``cpu_cores``, ``measured``, ``size`` and ``rows`` of ``chapter`` and
``peak_mb``). Nothing here times anything: the book only quotes what the benchmarks measured, and says
so when a chapter has not been measured.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pcfilter_lib.io.files import atomic_write_text

RESULTS = Path("benchmarks") / "results" / "book_times.json"
"""Where the benchmark writes the times, relative to the checkout."""
MEMORY = RESULTS.with_name("kernel_memory.json")
"""Where ``benchmarks/kernel_memory.py`` writes the kernels' peak memory, relative to the checkout."""


def find_results(start: str | os.PathLike | None = None) -> Path | None:
    """The times file of the checkout that holds ``start`` (default: the working folder), or None.

    Walks up from ``start`` to the first folder with a ``pyproject.toml`` (the checkout; a chapter
    runs in ``book/``) and returns its ``benchmarks/results/book_times.json`` if that file exists.
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            path = folder / RESULTS
            return path if path.is_file() else None
    return None


def read_rows(path: str | os.PathLike) -> list[dict]:
    """The rows of a times file (see the module docstring for the format).

    Raises:
        ValueError: the file is not JSON, or holds neither a list of rows nor a mapping with one.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); run benchmarks/book_times.py again") from error
    rows = data.get("rows") if isinstance(data, Mapping) else data
    if not isinstance(rows, Sequence) or isinstance(rows, str) or not all(isinstance(r, Mapping) for r in rows):
        raise ValueError(f"{path} holds no list of rows; run benchmarks/book_times.py again")
    return [dict(r) for r in rows]


def time_row(chapter: str, size: str, seconds: float, device: Mapping, measured: datetime | None = None,
             source: str = "book_times.py", load_average: float | None = None) -> dict:
    """One row of the times file: ``chapter`` executed at ``size`` ("full" or "fast") in ``seconds``.

    Args:
        chapter: the notebook's name without folder and suffix.
        size: "full" or "fast".
        seconds: the wall time of executing it.
        device: the machine, as ``timing.clock.device_report`` describes it (``cores``, ``cpu``, ``gpus``,
            ``tensorflow``).
        measured: when the run ended (default: now), in UTC.
        source: "book_times.py" for a chapter executed alone, "book build" for one read from a build's cache.
        load_average: the machine's 15-minute load average at the run's end (other work slows a chapter
            down); None where it is not known.
    """
    return {"chapter": chapter, "size": size, "seconds": round(seconds, 1),
            "cpu_cores": device["cores"], "cpu": device["cpu"], "gpu": ", ".join(device["gpus"]) or None,
            "tensorflow": device["tensorflow"],
            "measured": (measured or datetime.now(UTC)).isoformat(timespec="seconds"),
            "source": source, "load_average": load_average}


def merge(old: Sequence[Mapping], new: Sequence[Mapping]) -> list[dict]:
    """``old`` without the rows that ``new`` measures again (same chapter, size and device), then ``new``."""
    def key(row):
        return row["chapter"], row["size"], row.get("gpu") or "", row.get("cpu_cores")

    again = {key(row) for row in new}
    return [dict(row) for row in old if key(row) not in again] + [dict(row) for row in new]


HOW = {"book build": "one whole `make book`", "book_times.py": "one chapter alone"}


def table(rows: Sequence[Mapping]) -> str:
    """The rows as a markdown table, grouped by device and size."""
    lines = ["| chapter | size | seconds | minutes | device | load average | measured | how |", "|---" * 8 + "|"]
    for row in sorted(rows, key=lambda r: (r.get("gpu") or "", r["cpu_cores"], r["size"], r["chapter"])):
        device = row.get("gpu") or f"{row.get('cpu', 'CPU')}, {row['cpu_cores']} cores, no GPU"
        lines.append(f"| {row['chapter']} | {row['size']} | {row['seconds']:.0f} | {row['seconds'] / 60:.1f} "
                     f"| {device} | {'' if row.get('load_average') is None else row['load_average']} "
                     f"| {row['measured'][:10]} | {HOW.get(row.get('source'), 'one chapter alone')} |")
    return "\n".join(lines)


def write_rows(path: str | os.PathLike, rows: Sequence[Mapping]) -> Path:
    """Write ``rows`` as the times file at ``path`` and their ``table`` beside it (``.md``), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"rows": [dict(row) for row in rows]}, indent=2) + "\n")
    atomic_write_text(path.with_suffix(".md"), table(rows) + "\n")
    return path


def full_size_times(rows: Sequence[Mapping], chapter: str) -> dict[str, dict]:
    """The latest full-size run of ``chapter`` per device: ``{"cpu": row, "gpu": row}``, either key absent
    when there is no such run; a CPU-only run on two cores is preferred to one on other core counts."""
    found: dict[str, dict] = {}
    for row in rows:
        size = row.get("size", row.get("mode"))
        if row.get("chapter") != chapter or size != "full" or not isinstance(row.get("seconds"), int | float):
            continue
        device = "gpu" if row.get("gpu") else "cpu"
        # Of several CPU-only runs, one on two cores (the book's budget) wins over other core counts.
        if device == "cpu" and "cpu" in found and found["cpu"].get("cpu_cores") == 2 != row.get("cpu_cores"):
            continue
        found[device] = dict(row)
    return found


def format_duration(seconds: float) -> str:
    """``"45 s"`` below two minutes, ``"7.9 min"`` above."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def where_timed(rows: Sequence[Mapping]) -> str:
    """The machine CPU-only ``rows`` ran on, in words: "2 CPU cores of an AMD EPYC (AVX2)". The processor
    is named where every row names the same one: machines of one model name and core count can differ
    twofold in speed."""
    cores = " or ".join(sorted({str(row["cpu_cores"]) for row in rows if row.get("cpu_cores")}))
    processors = {row.get("cpu") for row in rows}
    named = next(iter(processors)) if len(processors) == 1 else None
    return (f"{cores} CPU cores" if cores else "a CPU") + (f" of an {named}" if named else "")


@dataclass(frozen=True)
class ChapterCost:
    """What one chapter cost at full size, as measured: None where it was not."""

    chapter: str
    seconds: float | None  # executing the notebook on a CPU-only machine
    peak_mb: float | None  # the kernel's peak resident memory, in MiB (VmHWM kB / 1024)

    @property
    def peak_gb(self) -> float | None:
        """The peak in gigabytes (10^9 bytes), as the book states memory."""
        return None if self.peak_mb is None else self.peak_mb * 2**20 / 1e9


@dataclass(frozen=True)
class BookCosts:
    """The measured full-size cost of each chapter, and where and when it was measured."""

    chapters: list[ChapterCost]
    timed_on: str  # the machine of the times, in words (``where_timed``); "" when none was timed
    timed: str  # the day(s) the times were measured, "2026-11-27" or "2026-11-26 to 2026-11-27"
    memory_on: str  # the machine of the memory peaks, in words; "" when none was measured
    memory_measured: str  # the day the memory peaks were measured


def chapter_costs(chapters: Sequence[str], times: str | os.PathLike | None = None,
                  memory: str | os.PathLike | None = None) -> BookCosts:
    """The full-size run time (CPU only) and peak kernel memory of each chapter, as the benchmarks recorded them.

    Args:
        chapters: the notebooks' names without folder and suffix, in book order.
        times: the times file; None looks for it with ``find_results``.
        memory: the memory file; None takes ``kernel_memory.json`` beside the times file. A file that
            does not exist means that nothing has been measured.

    Returns:
        A ``BookCosts`` with one ``ChapterCost`` per chapter, in the order given.

    Raises:
        ValueError: a file exists but is not what the benchmarks write.
    """
    times = find_results() if times is None else Path(times)
    memory = (times.with_name(MEMORY.name) if times is not None else None) if memory is None else Path(memory)
    rows = read_rows(times) if times is not None and times.is_file() else []
    timed = {chapter: found["cpu"] for chapter in chapters
             if "cpu" in (found := full_size_times(rows, chapter))}
    peaks, memory_on, memory_measured = {}, "", ""
    if memory is not None and memory.is_file():
        try:
            record = json.loads(memory.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{memory} is not valid JSON ({error}); run benchmarks/kernel_memory.py again") from error
        if not isinstance(record, Mapping) or not isinstance(record.get("rows"), list):
            raise ValueError(f"{memory} holds no list of rows; run benchmarks/kernel_memory.py again")
        if record.get("size", "full") == "full":
            peaks = {row["chapter"]: float(row["peak_mb"]) for row in record["rows"]
                     if row.get("chapter") and isinstance(row.get("peak_mb"), int | float)}
            memory_on = where_timed([{"cpu_cores": record.get("cpu_cores"), "cpu": record.get("machine")}])
            memory_measured = str(record.get("measured", ""))[:10]
    days = sorted({str(row.get("measured", ""))[:10] for row in timed.values()} - {""})
    return BookCosts(
        chapters=[ChapterCost(chapter, timed[chapter]["seconds"] if chapter in timed else None,
                              peaks.get(chapter)) for chapter in chapters],
        timed_on=where_timed(list(timed.values())) if timed else "",
        timed=" to ".join(dict.fromkeys([days[0], days[-1]])) if days else "",
        memory_on=memory_on if peaks else "", memory_measured=memory_measured if peaks else "")


def cached_execution_seconds(notebooks: Sequence[str | os.PathLike], cache: str | os.PathLike
                             ) -> dict[str, tuple[float, datetime]]:
    """What executing each notebook took when the book was built, as its execution cache stored it.

    Args:
        notebooks: the notebook files.
        cache: a jupyter-cache folder of the book (``book/_ext/execution.py`` names it per size).

    Returns:
        ``{stem: (seconds, when, in UTC)}`` for each notebook whose current code cells match an
        executed notebook in the cache; a notebook changed since its last build is left out.
    """
    # the book's extra, not the library's: imported only when a build's times are read
    import nbformat
    from jupyter_cache import get_cache

    if not (Path(cache) / "global.db").exists():
        return {}
    store, found = get_cache(cache), {}
    for notebook in map(Path, notebooks):
        try:
            record = store.match_cache_notebook(nbformat.read(notebook, as_version=4))
        except KeyError:
            continue
        if "execution_seconds" in (record.data or {}):
            when = record.created  # stored in UTC without a time zone
            found[notebook.stem] = float(record.data["execution_seconds"]), when.replace(tzinfo=when.tzinfo or UTC)
    return found
