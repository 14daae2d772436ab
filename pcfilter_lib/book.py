"""What every chapter of the book does first, and how a chapter hands its numbers to its prose.

A chapter's first code cell starts with ``PROGRESS = book.start("02_3d_representations")``: a quiet,
seeded TensorFlow start, one line saying which Keras and which mode run the chapter, and the
sentence on its measured full-size run time glued as ``chapter_run_time`` for the note at its top.
Importing this module loads neither Keras nor TensorFlow, so that ``start`` imports them quietly.
Later cells glue the numbers their prose quotes in one call, ``book.glue(ratio_low=..., ratio_high=...)``,
read in the markdown as ``{glue:text}`ratio_low:.2f```.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from myst_nb import glue as myst_glue

from pcfilter_lib import config, runtime, viz
from pcfilter_lib.timing import book_times


def start(chapter: str, seed: int = 0, plotly: bool = False) -> bool:
    """Set a chapter up in one call.

    Imports TensorFlow and Keras quietly and seeds Python, NumPy and Keras (``runtime.setup``),
    prints the Keras version, its backend and whether fast mode is on, and glues the sentence on the
    chapter's measured full-size run time (``book_times.run_time_sentence``) as ``chapter_run_time``.

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
    print(f"{runtime.setup(seed=seed)}; fast mode: {config.fast_mode()}")
    glue(chapter_run_time=book_times.run_time_sentence(chapter))
    if plotly:
        viz.setup_plotly()
    return config.show_progress()


def glue(**values) -> None:
    """Glue each value under its keyword's name for the chapter's prose, without showing it in the cell.

    NumPy scalars are glued as the Python numbers they hold, so that a format in the prose, such as
    ``{glue:text}`share:.1%```, reads ``0.25`` rather than ``np.float64(0.25)``.

    Args:
        values: name=value pairs; names follow Python's rules for keywords.
    """
    for name, value in values.items():
        myst_glue(name, value.item() if isinstance(value, np.generic) else value, display=False)
