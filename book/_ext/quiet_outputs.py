"""What the built pages leave out of the executed notebooks: TensorFlow's C++ log and progress bars.

* The kernels that execute the chapters inherit ``TF_CPP_MIN_LOG_LEVEL=3`` from the build (unless it
  is set already), as ``pcfilter_lib.runtime.setup`` sets it (through ``book.start``, every
  chapter's first line): the C++ runtime then keeps its graph-optimiser notes (such as grappler's
  "remapper failed" on a fused LeakyReLU, a known TensorFlow limitation that only skips the fusion)
  off stderr, even in a process that imports TensorFlow before ``runtime.setup``. Real failures
  still raise Python exceptions.
* A chapter run in JupyterLab shows tqdm bars over its long loops. Written to stderr (plain
  ``tqdm``), a bar leaves one frozen block per refresh on the page; those blocks are removed, and
  only those: a block with any other line stays, so a real warning shows (and fails the browser
  test) until its cause is fixed. Bars drawn as widgets (``tqdm.auto`` in a kernel) would need
  JavaScript from a CDN; ``nb_ipywidgets_js: {}`` in _config.yml keeps the book offline and leaves
  those outputs empty.
"""

from __future__ import annotations

import os
import re

from docutils import nodes

# The end of a tqdm line: "| 3/8 [00:02<00:04, 1.2scan/s, loss=0.3]", or "7it [00:01, 5.0it/s]" without a total.
_PROGRESS = re.compile(r"(\|\s*\S+/\S+|\d\S*) \[[\d:]+(<[\d:?]+)?, [^\]]*\]\s*$")


def is_progress(text: str) -> bool:
    """True when every non-blank line of ``text`` (lines end at ``\\n`` or ``\\r``) is a tqdm bar."""
    return all(_PROGRESS.search(line) for line in re.split(r"[\r\n]+", text) if line.strip())


def _drop_progress_blocks(app, doctree) -> None:
    for block in list(doctree.findall(nodes.literal_block)):
        if "stderr" in block.get("classes", []) and is_progress(block.astext()):
            block.parent.remove(block)


def setup(app):
    """Sphinx entry point."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before any kernel starts: they inherit it
    app.connect("doctree-read", _drop_progress_blocks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
