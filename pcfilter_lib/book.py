"""What every chapter of the book does first, how a chapter hands its numbers to its prose, and the
appendix's account of what the chapters cost.

A chapter's first code cell starts with ``PROGRESS = book.start("02_3d_representations")``: a quiet,
seeded TensorFlow start and one line saying which Keras and which mode run the chapter. Importing
this module loads neither Keras nor TensorFlow, so that ``start`` imports them quietly. Later cells
glue the numbers their prose quotes in one call, ``book.glue(ratio_low=..., ratio_high=...)``, read
in the markdown as ``{glue:text}`ratio_low:.2f```. The appendix "How this book is made" lists the
chapters (``chapters``) and shows each one's measured run time and memory (``cost_table``,
``plot_costs``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import yaml
from IPython.core.formatters import format_display_data
from IPython.display import display

from pcfilter_lib import config, runtime, viz
from pcfilter_lib.timing import book_times


def start(chapter: str, seed: int = 0, plotly: bool = False) -> bool:
    """Set a chapter up in one call.

    Imports TensorFlow and Keras quietly and seeds Python, NumPy and Keras (``runtime.setup``), and
    prints the Keras version and its backend, adding a note only in fast mode (small data and short
    training, which the full-size pages a student reads never show). How long a chapter takes is not
    its own business: the appendix "How this book is made" shows every chapter's measured run time.

    Args:
        chapter: the notebook's name without folder and suffix, e.g. ``"02_3d_representations"``.
        seed: the seed of Python's, NumPy's and Keras's generators.
        plotly: also set Plotly up for interactive figures that work offline in the built book
            (``viz.setup_plotly``).

    Returns:
        Whether long cells should draw progress bars (``config.show_progress``): True in a
        JupyterLab kernel, False when a book build or a test executes the chapter.

    Raises:
        ValueError: ``chapter`` is a path or has a suffix, not a notebook's bare name.
    """
    if not chapter or Path(chapter).name != chapter or Path(chapter).suffix:
        raise ValueError(f"chapter must be a notebook's name without folder and suffix, "
                         f"such as '02_3d_representations', got {chapter!r}")
    note = "; fast mode: small data and short training" if config.fast_mode() else ""
    print(f"{runtime.setup(seed=seed)}{note}")
    if plotly:
        viz.setup_plotly()
    return config.show_progress()


# What myst_nb's ``glue(name, value, display=False)`` writes, and the book's build reads: a display of the
# value whose mime types carry this prefix, with its name in the metadata. Written out here because
# importing myst_nb's glue imports nbformat, and with it jsonschema's format checkers, whose IRI grammar
# (rfc3987_syntax) took about 5 s to compile in the first glue of every chapter.
GLUE_PREFIX = "application/papermill.record/"


def glue(**values) -> None:
    """Glue each value under its keyword's name for the chapter's prose, without showing it in the cell.

    NumPy scalars are glued as the Python numbers they hold, so that a format in the prose, such as
    ``{glue:text}`share:.1%```, reads ``0.25`` rather than ``np.float64(0.25)``.

    Args:
        values: name=value pairs; names follow Python's rules for keywords.
    """
    for name, value in values.items():
        bundle, metadata = format_display_data(value.item() if isinstance(value, np.generic) else value)
        metadata["scrapbook"] = {"name": name, "mime_prefix": GLUE_PREFIX}
        display({GLUE_PREFIX + kind: data for kind, data in bundle.items()}, raw=True, metadata=metadata)


@dataclass(frozen=True)
class Chapter:
    """A chapter of the book: its notebook's name without suffix, its number and its title."""

    name: str  # e.g. "04b_beyond_pointnet"
    number: str  # "4b"
    title: str  # the notebook's first heading


def chapters(folder: str | os.PathLike | None = None) -> list[Chapter]:
    """The chapters of the book, in book order: the notebooks of its table of contents whose names start
    with their number (``01_convolution_math``, ``04b_beyond_pointnet``), not the introduction, the
    appendices or the reference pages.

    Args:
        folder: the book's folder (``book/``, which holds ``_toc.yml``) or the checkout above it; None
            looks in the working folder (where a notebook runs) and the folders above it.

    Raises:
        FileNotFoundError: no ``_toc.yml`` was found.
    """
    here = Path(folder or Path.cwd()).resolve()
    toc = next((path for base in (here, *here.parents) for path in (base / "_toc.yml", base / "book" / "_toc.yml")
                if path.is_file()), None)
    if toc is None:
        raise FileNotFoundError(f"no book/_toc.yml in {here} or the folders above it")
    entries = []

    def walk(items):
        for item in items or []:
            if "file" in item:
                entries.append(item["file"])
            walk(item.get("sections"))

    content = yaml.safe_load(toc.read_text())
    walk(content.get("chapters"))
    for part in content.get("parts", []):
        walk(part.get("chapters"))
    found = []
    for entry in entries:
        number = re.match(r"0*(\d+[a-z]?)_", Path(entry).name)
        notebook = toc.parent / f"{entry}.ipynb"
        if number and notebook.is_file():
            first = "".join(json.loads(notebook.read_text())["cells"][0]["source"]).splitlines()[0]
            found.append(Chapter(Path(entry).name, number.group(1), first.lstrip("#").strip()))
    return found


def cost_table(found: list[Chapter], costs: book_times.BookCosts) -> viz.Table:
    """The table of what each chapter cost at full size: run time and the kernel's peak memory.

    Args:
        found: the chapters (``chapters``), in the order of ``costs.chapters``.
        costs: their measured costs (``book_times.chapter_costs``).

    Returns:
        A ``viz.Table`` with one row per chapter; "not measured" where a value is missing.
    """
    rows = [[f"{chapter.number}. {chapter.title}",
             book_times.format_duration(cost.seconds) if cost.seconds is not None else "not measured",
             f"{cost.peak_gb:.1f} GB" if cost.peak_mb is not None else "not measured"]
            for chapter, cost in zip(found, costs.chapters, strict=True)]
    return viz.markdown_table(["chapter", "run time at full size", "peak memory of its kernel"], rows)


def plot_costs(found: list[Chapter], costs: book_times.BookCosts):
    """Bars of each chapter's full-size run time and peak kernel memory, side by side, chapter 1 on top.

    Args:
        found: the chapters (``chapters``), in the order of ``costs.chapters``.
        costs: their measured costs (``book_times.chapter_costs``).

    Returns:
        The Matplotlib figure; a chapter without a measurement has no bar and says so.
    """
    labels = [f"{chapter.number}. {chapter.title}" for chapter in found]
    minutes = [cost.seconds / 60 if cost.seconds is not None else None for cost in costs.chapters]
    gigabytes = [cost.peak_gb for cost in costs.chapters]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.42 * len(found) + 1.4), sharey=True, layout="constrained")
    rows = np.arange(len(found))
    panels = ((minutes, "#4c72b0", "run time at full size (min)"),
              (gigabytes, "#dd8452", "peak memory of the chapter's kernel (GB)"))
    for ax, (values, colour, label) in zip(axes, panels, strict=True):
        ax.barh(rows, [v or 0 for v in values], color=colour)
        for row, value in zip(rows, values, strict=True):
            ax.text(value or 0, row, f" {value:.1f}" if value is not None else " not measured", va="center",
                    fontsize=8)
        ax.set_xlabel(label, fontsize=9)
        ax.set_xlim(0, max([v for v in values if v is not None], default=1) * 1.2)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(rows, labels, fontsize=9)
    axes[0].invert_yaxis()
    same = (costs.timed_on, costs.timed) == (costs.memory_on, costs.memory_measured)
    where = (f"measured on {costs.timed_on} ({costs.timed})" if same else
             f"times measured on {costs.timed_on or 'no machine'} ({costs.timed or 'never'}), memory on "
             f"{costs.memory_on or 'no machine'} ({costs.memory_measured or 'never'})")
    fig.suptitle(f"What each chapter costs, {where}", fontsize=10)
    return fig
