"""plotly.js once for the whole book, from the installed plotly package.

The chapters' interactive figures (``pcfilter_lib.viz.setup_plotly``) are HTML divs without plotly.js
in them. This extension copies ``plotly.min.js`` from the plotly package that drew them (so the
library and the figures' JSON always match) into the build's ``_static/`` folder when the HTML
builder starts, and adds one ``<script>`` for it to each page that holds a figure: a reader's browser
fetches the file once and keeps it for every other page, where each page used to carry its own copy
of about 5 MB. Pages without a figure do not load it. Plotly is told to leave MathJax alone (the
book configures its own).
"""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

SCRIPT = "plotly.min.js"
FIGURE_MARK = 'class="plotly-graph-div"'  # what plotly.io.to_html writes for every figure
CONFIG = "window.PlotlyConfig = {MathJaxConfig: 'local'};"  # what Plotly's own renderers set first


def plotly_js() -> Path:
    """The minified plotly.js of the installed plotly package."""
    import plotly

    path = Path(plotly.__file__).resolve().parent / "package_data" / SCRIPT
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the plotly package ships plotly.js there")
    return path


def _copy(app) -> None:
    if app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    static.mkdir(parents=True, exist_ok=True)
    source, target = plotly_js(), static / SCRIPT
    if not (target.is_file() and filecmp.cmp(source, target, shallow=False)):
        shutil.copyfile(source, target)


def _load_where_figures(app, pagename, templatename, context, doctree) -> None:
    if FIGURE_MARK in (context.get("body") or ""):
        # added inside this event, the scripts go into this page only (Sphinx >= 3.5)
        app.add_js_file(None, body=CONFIG, priority=490)
        app.add_js_file(SCRIPT, priority=491)


def setup(app):
    app.connect("builder-inited", _copy)
    app.connect("html-page-context", _load_where_figures)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
