"""Plotly figures for the book, which a reader can turn and zoom: a scan's points by label or artefact
kind, a cloud with PointNet's critical points, a filter's outcomes, and side-by-side 3D scenes built
from cloud, mesh and voxel traces (``figure_3d``). ``setup_plotly`` makes them show in JupyterLab and
in the built book, where each figure also carries a still picture (``static_png``) for a reader whose
browser runs no JavaScript.
"""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Mapping, Sequence
from html import escape

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from matplotlib import colormaps
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from plotly.io.base_renderers import MimetypeRenderer
from plotly.subplots import make_subplots

from pcfilter_lib.geometry.voxel_faces import voxel_faces
from pcfilter_lib.labels import ARTEFACT, KEEP, KIND_HEX, KIND_NAMES, KIND_NONE, LABEL_NAMES
from pcfilter_lib.viz.colours import LABEL_HEX, OUTCOME_COLOURS, OUTCOME_NAMES, outcomes

FIGURE_CLASS = "plotly-figure"  # the book's box around a figure's div and script, hidden without JavaScript
PLOTLY_DEFAULT_EYE = (1.25, 1.25, 1.25)  # plotly.js's camera when a scene names none
"""Where plotly.js puts the camera of a 3D scene whose layout gives no ``camera.eye``."""


class BookRenderer(MimetypeRenderer):
    """Plotly's renderer "book": a figure as HTML for the built book, without plotly.js.

    The HTML holds the ``plotly-graph-div`` with the script that draws into it, and a still picture of
    the figure (``static_png``) inside ``<noscript>``, shown only where the browser runs no JavaScript.
    plotly.js itself is not in it: the book loads one copy of it, ``_static/plotly.min.js``, in the
    pages that have a figure (``book/_ext/plotly_js.py``), so a page no longer carries its own 5 MB
    copy. Nor is MathJax: the book serves its own, once per page.
    """

    def __init__(self, config: Mapping | None = None):
        self.config = dict(config or {})

    def to_mimebundle(self, fig_dict):
        html = pio.to_html(fig_dict, config=self.config, include_plotlyjs=False, include_mathjax=False,
                           full_html=False, default_width="100%", default_height=525, validate=False)
        return {"text/html": f'<div class="{FIGURE_CLASS}">{html}</div>' + still_html(fig_dict)}


def setup_plotly() -> None:
    """Make ``fig.show()`` show interactive figures in JupyterLab and in the built book.

    The default renderer becomes "plotly_mimetype+book": each figure's output holds the Plotly JSON,
    which JupyterLab draws with its Plotly extension, and the HTML of ``BookRenderer``, which the built
    book shows: the figure's div, drawn by the one plotly.js that the book's pages with figures load,
    and a still picture for readers without JavaScript. The call itself shows nothing: Plotly's own
    "notebook" renderer would put plotly.js (about 5 MB) into the output of the first figure of every
    page, and MathJax from a CDN with every figure.
    """
    pio.renderers["book"] = BookRenderer()
    pio.renderers.default = "plotly_mimetype+book"


def still_html(fig) -> str:
    """The still picture of a figure for the book's HTML: a PNG (``static_png``) as a data URI in an
    ``<img>`` inside ``<noscript>``, which a browser shows only where it runs no JavaScript (and there
    it also hides the figures' empty boxes, ``FIGURE_CLASS``).

    Args:
        fig: a ``plotly.graph_objects.Figure`` or its dict.

    Returns:
        The HTML.
    """
    fig_dict = _as_dict(fig)
    png = base64.b64encode(static_png(fig_dict)).decode("ascii")
    title = _text(fig_dict.get("layout", {}).get("title")) or "3D figure"
    alt = escape(f"{' '.join(title.split())}: a still view of the interactive figure", quote=True)
    # Without JavaScript the figure's box stays empty at its full height: hide it.
    return (f'<noscript><style>.{FIGURE_CLASS}{{display:none !important}}</style>'
            f'<img class="plotly-still" src="data:image/png;base64,{png}" alt="{alt}" '
            'style="max-width:100%;height:auto"></noscript>')


def static_png(fig, width: float = 9.0, dpi: int = 100) -> bytes:
    """A still picture of a Plotly figure, drawn with Matplotlib, as PNG bytes.

    Draws what this module's figures hold: ``Scatter3d`` points (their colours, sizes and legend
    names), ``Mesh3d`` triangles (flat shaded, lit from the camera), and ``Image`` panels, each 3D
    scene seen from its layout's camera (eye and up vector) with its axis titles, the aspect of its
    data where ``aspectmode`` is "data", and the figure's title and subplot titles. A Matplotlib
    ``Figure`` is made without pyplot, so that a notebook shows nothing of it.

    Args:
        fig: a ``plotly.graph_objects.Figure`` or its dict (``fig.to_dict()``; arrays may be plotly's
            base64 form).
        width: the picture's width, in inches.
        dpi: its resolution, in dots per inch.

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: the figure holds a trace of another type, or no trace.
    """
    fig_dict = _as_dict(fig)
    layout, traces = fig_dict.get("layout", {}), fig_dict.get("data", [])
    if not traces:
        raise ValueError("the figure has no trace to draw")
    panels: dict[str, list[Mapping]] = {}
    for trace in traces:
        kind = trace.get("type", "scatter")
        if kind in ("scatter3d", "mesh3d"):
            panels.setdefault(trace.get("scene", "scene"), []).append(trace)
        elif kind == "image":
            panels.setdefault(trace.get("xaxis", "x").replace("x", "xaxis", 1), []).append(trace)
        else:
            raise ValueError(f"static_png draws Scatter3d, Mesh3d and Image traces, not {kind!r}")
    names = sorted(panels, key=lambda name: _domain(layout, name)[0])
    height_px = layout.get("height") or 500
    height = min(max(height_px / 100, 3.0), 6.5) if len(names) == 1 else max(width / len(names) * 1.05, 2.8)
    figure = Figure(figsize=(width, height), dpi=dpi)
    titles = _subplot_titles(layout)
    for n, name in enumerate(names, start=1):
        low, high = _domain(layout, name)
        subtitle = next((text for x, text in titles if low <= x <= high), "")
        if name.startswith("xaxis"):
            ax = figure.add_subplot(1, len(names), n)
            for trace in panels[name]:
                ax.imshow(_array(trace["z"]).astype(np.uint8))
            ax.set_axis_off()
        else:
            ax = figure.add_subplot(1, len(names), n, projection="3d")
            _draw_scene(ax, panels[name], layout.get(name, {}), layout.get("showlegend") is not False)
        if subtitle:
            ax.set_title(subtitle, fontsize=10)
    title = _text(layout.get("title"))
    if title:
        figure.suptitle(title, fontsize=12)
    # room above the panels for the titles: 3D axes fill their whole box, which no layout engine shrinks
    title_room = 0.3 + 0.22 * (title.count("\n") + 1) if title else 0.0
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.02, wspace=0.02,
                           top=1 - (title_room + 0.3 * bool(titles)) / height)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=dpi)
    return out.getvalue()


def _as_dict(fig) -> dict:
    return fig if isinstance(fig, Mapping) else fig.to_dict()


def _text(title) -> str:
    """The text of a Plotly title, given as a string or as ``{"text": ...}``, its line breaks
    (``<br>``) as newlines."""
    if isinstance(title, Mapping):
        title = title.get("text")
    return re.sub(r"<br\s*/?>", "\n", str(title)) if title else ""


def _array(value) -> np.ndarray:
    """A trace's array: a list, a NumPy array, or Plotly's base64 form ``{"dtype", "bdata", "shape"}``."""
    if isinstance(value, Mapping) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            flat = flat.reshape([int(n) for n in str(shape).split(",")])
        return flat
    return np.asarray(value)


def _domain(layout: Mapping, name: str) -> tuple[float, float]:
    """The horizontal extent, in the figure's [0, 1], of a scene (``domain.x``) or an x axis (``domain``)."""
    domain = layout.get(name, {}).get("domain", {})
    found = domain.get("x") if isinstance(domain, Mapping) else domain
    return tuple(found) if found else (0.0, 1.0)


def _subplot_titles(layout: Mapping) -> list[tuple[float, str]]:
    """The subplot titles ``make_subplots`` writes as annotations: (x in the figure, text)."""
    return [(float(a.get("x", 0.5)), _text(a.get("text"))) for a in layout.get("annotations", [])
            if a.get("xref") == "paper" and a.get("yref") == "paper" and a.get("text")]


RGB = re.compile(r"rgba?\(([^)]*)\)")


def _colour(value) -> tuple[float, float, float, float]:
    """A Plotly colour (a CSS name, ``#hex`` or ``rgb(r, g, b)`` / ``rgba(r, g, b, a)``) as Matplotlib's RGBA."""
    match = RGB.fullmatch(str(value).replace(" ", ""))
    if match:
        parts = [float(p) for p in match.group(1).split(",")]
        return (parts[0] / 255, parts[1] / 255, parts[2] / 255, parts[3] if len(parts) > 3 else 1.0)
    return to_rgba(value)


def _colours(value, count: int):
    """One RGBA per point (an (N, 4) array) for an array of colours, or one RGBA for a single colour."""
    if value is None:
        return to_rgba("#1f77b4")
    if isinstance(value, str):
        return _colour(value)
    values = _array(value)
    if values.ndim == 0:
        return _colour(values.item())
    if values.dtype.kind in "fiu":  # numbers on a colour scale
        span = np.ptp(values) or 1.0
        return colormaps["viridis"]((values - values.min()) / span)
    return np.array([_colour(v) for v in values.tolist()]) if len(values) == count else _colour(values[0])


def camera_view(camera: Mapping | None) -> dict:
    """How Matplotlib sees a 3D scene from Plotly's camera: elevation, azimuth, the vertical axis and
    the axes to invert.

    Plotly places the eye at ``camera.eye`` (from the scene's centre) with ``camera.up`` pointing up on
    the screen. Matplotlib turns its view about one of the data axes (``vertical_axis``), so the up
    vector is rounded to the nearest axis. An up vector along a negative axis (the camera frame of a
    scan, where y points down) is a half turn about a third axis: that axis stays and the other two are
    inverted, so the picture is turned, not mirrored.

    Args:
        camera: the scene's ``camera`` (``eye``, ``up``), or None for Plotly's default.

    Returns:
        ``{"elev": degrees, "azim": degrees, "vertical_axis": "x" | "y" | "z", "invert": axes}``, the
        first three for ``Axes3D.view_init`` and ``invert`` a string of the axes to invert (e.g. "yz").
    """
    eye, up = _vector(camera, "eye", PLOTLY_DEFAULT_EYE), _vector(camera, "up", (0.0, 0.0, 1.0))
    vertical = int(np.argmax(np.abs(up)))
    first, second = (vertical + 1) % 3, (vertical + 2) % 3
    invert = ""
    if up[vertical] < 0:
        flipped = sorted((vertical, first))
        eye[flipped] *= -1
        invert = "".join("xyz"[i] for i in flipped)
    elev = math.degrees(math.atan2(eye[vertical], math.hypot(eye[first], eye[second])))
    azim = math.degrees(math.atan2(eye[second], eye[first]))
    return {"elev": elev, "azim": azim, "vertical_axis": "xyz"[vertical], "invert": invert}


def _draw_scene(ax, traces: Sequence[Mapping], scene: Mapping, legend: bool) -> None:
    """Draw a scene's Scatter3d and Mesh3d traces into Matplotlib 3D axes, as Plotly's camera sees them."""
    view = camera_view(scene.get("camera"))
    light = _light(scene.get("camera"))
    ax.computed_zorder = False  # traces in their order, as Plotly draws them; points by depth within one
    handles, lows, highs = [], [], []  # handles: (legend entry, its trace)
    for trace in traces:
        xyz = np.stack([_array(trace.get(a, [])).astype(np.float64).ravel() for a in "xyz"], axis=1)
        if not len(xyz):
            continue
        lows.append(xyz.min(axis=0))
        highs.append(xyz.max(axis=0))
        name = trace.get("name") or ""
        if trace["type"] == "scatter3d":
            marker = trace.get("marker", {})
            colour = _colours(marker.get("color"), len(xyz))
            size = float(marker.get("size", 6) if np.isscalar(marker.get("size", 6)) else 3)
            ax.scatter(xyz[:, 0], xyz[:, 1], xyz[:, 2], s=(0.8 * size) ** 2, c=[colour]
                       if isinstance(colour, tuple) else colour, linewidths=0, depthshade=False)
            single = colour if isinstance(colour, tuple) else tuple(colour[0])
            handles.append((Line2D([], [], ls="", marker="o", markersize=6, color=single, label=name), trace))
        else:
            ijk = np.stack([_array(trace[a]).astype(int).ravel() for a in "ijk"], axis=1)
            faces = xyz[ijk]  # (T, 3, 3)
            normals = np.cross(faces[:, 1] - faces[:, 0], faces[:, 2] - faces[:, 0])
            normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
            shade = 0.45 + 0.55 * np.abs(normals @ light)
            base = np.array(_colour(trace.get("color", "#8c9cb0")))
            colours = np.column_stack([np.clip(base[:3] * shade[:, None], 0, 1),
                                       np.full(len(faces), float(trace.get("opacity", 1.0)))])
            ax.add_collection3d(Poly3DCollection(faces, facecolors=colours, edgecolors="none"))
            handles.append((Patch(color=base[:3], label=name), trace))
    if lows:
        ranges = [(scene.get(f"{axis}axis") or {}).get("range") for axis in "xyz"]
        if all(ranges):  # the scene's own ranges, as Plotly draws them (figure_3d's same_range)
            low, high = (np.array([float(r[i]) for r in ranges]) for i in (0, 1))
        else:  # fit the data, with a margin
            low, high = np.min(lows, axis=0), np.max(highs, axis=0)
            pad = 0.02 * np.maximum(high - low, 1e-9).max()
            low, high = low - pad, high + pad
        for axis, a, b in zip("xyz", low, high, strict=True):
            getattr(ax, f"set_{axis}lim")(a, b)
        mode, ratio = scene.get("aspectmode"), scene.get("aspectratio") or {}
        aspect = (np.maximum(high - low, 1e-9) if mode == "data" else
                  [float(ratio.get(axis, 1.0)) for axis in "xyz"] if mode == "manual" else (1, 1, 1))
        ax.set_box_aspect(aspect, zoom=0.85)
    ax.view_init(elev=view["elev"], azim=view["azim"], vertical_axis=view["vertical_axis"])
    for axis in view["invert"]:
        getattr(ax, f"invert_{axis}axis")()
    shown = False
    for axis in "xyz":
        settings = scene.get(f"{axis}axis", {})
        hidden = settings.get("visible") is False or settings.get("showticklabels") is False
        if hidden:
            getattr(ax, f"set_{axis}ticklabels")([])
        label = _text(settings.get("title")) if "title" in settings else ("" if hidden else axis)
        getattr(ax, f"set_{axis}label")(label, fontsize=9)
        shown = shown or not hidden or bool(label)
    if not shown:
        ax.set_axis_off()
    ax.tick_params(labelsize=7)
    named = [h for h, trace in handles if h.get_label() and trace.get("showlegend") is not False]
    if legend and named and (len(handles) > 1 or handles[0][1].get("showlegend")):
        ax.legend(handles=named, loc="upper left", fontsize=8, frameon=False)


def _light(camera: Mapping | None) -> np.ndarray:
    """The unit direction from the scene towards Plotly's eye: meshes are lit from the camera."""
    eye = _vector(camera, "eye", PLOTLY_DEFAULT_EYE)
    return eye / max(np.linalg.norm(eye), 1e-12)


def _vector(camera: Mapping | None, key: str, default: Sequence[float]) -> np.ndarray:
    """The camera's ``eye`` or ``up`` as (x, y, z), Plotly's default where the layout gives none."""
    given = (camera or {}).get(key) or {}
    return np.array([float(given.get(a, d)) for a, d in zip("xyz", default, strict=True)])


def sample_classes(members: Mapping[object, np.ndarray], max_points: int, seed: int = 0,
                   floor_share: float = 0.25) -> dict[object, np.ndarray]:
    """A seeded random sample of at most ``max_points`` indices that keeps every class in view.

    Drawing one class whole and the rest from what is left of the budget hides the others as soon as
    that class alone fills the budget (a full-size scan has more artefacts than a page can draw).
    Here each class first gets up to an equal part of ``floor_share`` of the budget, so a rare class
    is drawn even beside a large one, and the rest of the budget is shared in proportion to the
    points each class has left, so the densities the eye compares stay close to the scan's.

    Args:
        members: class -> the indices of its points.
        max_points: the most indices returned, over all classes.
        seed: the seed of the random choice.
        floor_share: the share of the budget split equally among the non-empty classes first.

    Returns:
        class -> its chosen indices, sorted (every index where all fit).

    Raises:
        ValueError: ``max_points`` is negative.
    """
    if max_points < 0:
        raise ValueError(f"max_points must be at least 0, got {max_points}")
    members = {key: np.asarray(index) for key, index in members.items()}
    sizes = {key: len(index) for key, index in members.items()}
    if sum(sizes.values()) <= max_points:
        return members
    filled = [key for key, size in sizes.items() if size]
    floor = int(floor_share * max_points) // len(filled)
    take = {key: min(size, floor) for key, size in sizes.items()}
    left = max_points - sum(take.values())
    rest = {key: sizes[key] - take[key] for key in sizes}
    shares = {key: left * rest[key] / sum(rest.values()) for key in sizes}  # each below rest[key]
    for key in sizes:
        take[key] += int(shares[key])
    # the points lost to rounding down go to the largest remainders
    for key in sorted(sizes, key=lambda k: int(shares[k]) - shares[k])[:max_points - sum(take.values())]:
        take[key] += 1
    rng = np.random.default_rng(seed)
    return {key: np.sort(rng.choice(members[key], take[key], replace=False)) for key in members}


def _drawn_note(drawn: int, total: int) -> str:
    """The part of a figure's title that says how many of the points it draws."""
    if drawn == total:
        return f"all {total:,} points drawn"
    return f"{drawn:,} of {total:,} points drawn, a random sample of each colour"


def scan_figure_3d(scan: Mapping, colour_by: str = "label", max_points: int = 60000, seed: int = 0,
                   kind_names: Mapping[int, str] | None = None):
    """Interactive 3D view of a scan's measured points, in the camera frame (metres).

    Args:
        scan: a scan dict with ``xyz``, ``valid``, ``label`` and ``kind``.
        colour_by: "label" (grey true geometry, red artefacts) or "kind" (one colour per artefact
            kind, ``labels.KIND_HEX``).
        max_points: the most points drawn, a seeded random sample of each colour's points
            (``sample_classes``), so that true surfaces and every artefact kind stay in view; the
            title and the legend say how many are drawn.
        seed: the seed of that sample.
        kind_names: names of the kinds in the legend; default ``labels.KIND_NAMES``.

    Returns:
        A ``plotly.graph_objects.Figure``.

    Raises:
        ValueError: ``colour_by`` is unknown, or the scan has no points.
    """
    if colour_by not in ("label", "kind"):
        raise ValueError(f"colour_by must be 'label' or 'kind', got {colour_by!r}")
    valid = np.asarray(scan["valid"])
    xyz = np.asarray(scan["xyz"])[valid]
    label, kind = np.asarray(scan["label"])[valid], np.asarray(scan["kind"])[valid]
    if len(xyz) == 0:
        raise ValueError("the scan has no points to show")
    names = kind_names or {**KIND_NAMES, KIND_NONE: "true"}  # a measured point of kind none is true geometry
    # (name, colour, points, true geometry?) per legend entry
    groups = ([(LABEL_NAMES[code], LABEL_HEX[code], label == code, code == KEEP) for code in (KEEP, ARTEFACT)]
              if colour_by == "label" else
              [(names.get(code, str(code)), KIND_HEX[code % len(KIND_HEX)], kind == code, code == KIND_NONE)
               for code in np.unique(kind)])
    drawn = sample_classes({n: np.flatnonzero(group[2]) for n, group in enumerate(groups)}, max_points, seed)
    fig = go.Figure()
    for n, (name, colour, mask, true) in enumerate(groups):
        index, count = drawn[n], int(mask.sum())
        if len(index):
            shown = f"{count:,}" if len(index) == count else f"{len(index):,} of {count:,} drawn"
            fig.add_trace(go.Scatter3d(x=xyz[index, 0], y=xyz[index, 1], z=xyz[index, 2], mode="markers",
                                       name=f"{name} ({shown})", marker=dict(size=1.4 if true else 1.8, color=colour)))
    # Camera frame: y points down and z away from the scanner. Look from the side and above so that
    # points at a false depth stand out from the surfaces.
    total = len(xyz)
    fig.update_layout(scene=dict(aspectmode="data", xaxis_title="x (m)", yaxis_title="y (m)", zaxis_title="z (m)",
                                 camera=dict(up=dict(x=0, y=-1, z=0), eye=dict(x=1.2, y=-1.0, z=-0.9))),
                      legend=dict(itemsizing="constant"), margin=dict(l=0, r=0, t=60, b=0), height=550,
                      title=f"{total:,} points, {int((label == ARTEFACT).sum()):,} of them artefacts<br>"
                            + _drawn_note(sum(len(i) for i in drawn.values()), total))
    return fig


def plot_critical_points(cloud: np.ndarray, critical: np.ndarray, title: str = ""):
    """Interactive view of a cloud with the critical points of a PointNet highlighted.

    Args:
        cloud: (N, 3) points.
        critical: indices of the critical points (``models.pointnet.critical_points``).
        title: the figure's title.

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
    cloud = np.asarray(cloud)
    mask = np.zeros(len(cloud), dtype=bool)
    mask[np.asarray(critical, dtype=int)] = True
    fig = go.Figure([
        go.Scatter3d(x=cloud[~mask, 0], y=cloud[~mask, 1], z=cloud[~mask, 2], mode="markers",
                     marker={"size": 2, "color": "lightgray"}, name=f"other points ({(~mask).sum()})"),
        go.Scatter3d(x=cloud[mask, 0], y=cloud[mask, 1], z=cloud[mask, 2], mode="markers",
                     marker={"size": 3.5, "color": "crimson"}, name=f"critical points ({mask.sum()})"),
    ])
    fig.update_layout(title=title, height=480, margin={"l": 0, "r": 0, "t": 40, "b": 0},
                      scene={"aspectmode": "data"}, legend={"x": 0, "y": 0.95})
    return fig


def outcome_figure_3d(scan: Mapping, keep: np.ndarray, title: str = "", max_points: int = 40000, seed: int = 0):
    """Plotly 3D scatter of a scan's points coloured by the filter's outcome: TP grey, FN orange, FP red,
    TN blue. Where the scan has more than ``max_points`` points, a seeded random sample of each
    outcome is drawn (``sample_classes``): every outcome stays in view, true surfaces included, and
    the title and the legend say how many are drawn.

    Args:
        scan: a scan dict with ``xyz`` and ``label``.
        keep: (H, W) bool keep mask of a filter.
        title: the figure's title; a line on the points drawn follows it.
        max_points: the most points drawn.
        seed: the seed of the sample.

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
    xyz = np.asarray(scan["xyz"])
    groups = outcomes(scan["label"], keep)
    drawn = sample_classes({name: np.flatnonzero(mask.ravel()) for name, mask in groups.items()}, max_points, seed)
    points = xyz.reshape(-1, 3)
    fig = go.Figure()
    for name, index in drawn.items():
        count = int(groups[name].sum())
        if len(index):
            p = points[index]
            shown = f"{count:,}" if len(index) == count else f"{len(index):,} of {count:,} drawn"
            fig.add_trace(go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers",
                                       name=f"{OUTCOME_NAMES[name]} ({shown})",
                                       marker=dict(size=1.5 if name == "TP" else 2.5, color=OUTCOME_COLOURS[name])))
    note = _drawn_note(sum(len(i) for i in drawn.values()), sum(int(m.sum()) for m in groups.values()))
    fig.update_layout(scene=dict(aspectmode="data", xaxis_title="x (m)", yaxis_title="y (m)", zaxis_title="z (m)",
                                 camera=dict(up=dict(x=0, y=-1, z=0), eye=dict(x=0.3, y=-0.9, z=-1.6))),
                      legend=dict(itemsizing="constant"), margin=dict(l=0, r=0, t=60, b=0), height=540,
                      title=f"{title}<br>{note}" if title else note)
    return fig


def cloud_trace(points: np.ndarray, max_points: int = 3000, colour: str | np.ndarray = "#1f77b4", size: float = 2.0,
                name: str = "points", seed: int = 0):
    """A Plotly trace of a cloud, for ``figure_3d``.

    Args:
        points: (N, 3) coordinates.
        max_points: the most points drawn (a seeded random subset), so that pages stay light.
        colour: one colour, or one per point (N,).
        size: the marker size.
        name: the trace's name.
        seed: the seed of the subset.

    Returns:
        A ``plotly.graph_objects.Scatter3d``.

    Raises:
        ValueError: the cloud is empty.
    """
    points = np.asarray(points)
    if len(points) == 0:
        raise ValueError("the cloud has no points to show")
    keep = np.arange(len(points))
    if len(points) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(points), max_points, replace=False))
    colour = colour[keep] if isinstance(colour, np.ndarray) else colour
    p = np.round(points[keep].astype(np.float64), 4)
    return go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", name=name,
                        marker=dict(size=size, color=colour))


def mesh_trace(vertices: np.ndarray, triangles: np.ndarray, colour: str = "#8c9cb0", name: str = "mesh",
               opacity: float = 1.0):
    """A Plotly trace of a triangle mesh, flat shaded, for ``figure_3d``.

    Args:
        vertices: (V, 3) coordinates.
        triangles: (T, 3) vertex indices.
        colour: the mesh's colour.
        name: the trace's name.
        opacity: from 0 (invisible) to 1.

    Returns:
        A ``plotly.graph_objects.Mesh3d``.
    """
    v, t = np.round(np.asarray(vertices, np.float64), 4), np.asarray(triangles)
    return go.Mesh3d(x=v[:, 0], y=v[:, 1], z=v[:, 2], i=t[:, 0], j=t[:, 1], k=t[:, 2], color=colour, name=name,
                     opacity=opacity, flatshading=True, showlegend=True,
                     lighting=dict(ambient=0.45, diffuse=0.8, specular=0.1))


def voxel_trace(occupancy: np.ndarray, colour: str = "#e07b39", name: str = "voxels", opacity: float = 1.0,
                gap: float = 0.0, max_voxels: int = 20000):
    """A Plotly trace of the occupied voxels of a grid, in voxel units, for ``figure_3d``.

    Args:
        occupancy: (X, Y, Z) occupancy.
        colour: the voxels' colour.
        name: the trace's name.
        opacity: from 0 (invisible) to 1.
        gap: 0 draws the faces that border empty space; a share in (0, 1) draws every voxel as its
            own cube shrunk by that share of its edge, so that the grid shows.
        max_voxels: the most voxels drawn one by one, to keep the page light.

    Returns:
        A ``plotly.graph_objects.Mesh3d``.

    Raises:
        ValueError: no voxel is occupied, ``gap`` is not in [0, 1), or there are more than
            ``max_voxels`` cubes to draw.
    """
    occupancy = np.asarray(occupancy, dtype=bool)
    if not occupancy.any():
        raise ValueError("the grid has no occupied voxel to show")
    if gap <= 0:
        return mesh_trace(*voxel_faces(occupancy), colour, name, opacity)
    if not gap < 1:
        raise ValueError(f"gap must lie in [0, 1), got {gap}")
    ijk = np.argwhere(occupancy)
    if len(ijk) > max_voxels:
        raise ValueError(f"{len(ijk)} occupied voxels are too many to draw one by one (max_voxels={max_voxels})")
    cube_vertices, cube_triangles = voxel_faces(np.ones((1, 1, 1), bool))
    corners = ijk[:, None, :] + gap / 2 + (1 - gap) * cube_vertices[None]  # (N, 8, 3)
    triangles = (np.arange(len(ijk))[:, None, None] * len(cube_vertices) + cube_triangles[None]).reshape(-1, 3)
    return mesh_trace(corners.reshape(-1, 3), triangles, colour, name, opacity)


def figure_3d(panels: Mapping[str, Sequence | np.ndarray], height: int = 420, same_range: bool = False):
    """One Plotly figure with a 3D scene per panel, side by side, z up.

    Args:
        panels: title -> the traces of that panel (``cloud_trace``, ``mesh_trace``, ``voxel_trace``),
            or an (H, W, 3) uint8 picture, drawn flat beside the scenes (the input of a network
            whose 3D output the other panels show).
        height: the figure's height, in pixels.
        same_range: give every scene the same axis ranges, those that hold all their traces, so that
            sizes and places compare across panels (a prediction next to its truth, in one grid's
            units); by default each scene fits its own traces, which suits panels in different units.

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
    titles = list(panels)
    pictures = [isinstance(panels[t], np.ndarray) for t in titles]
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.01,
                        specs=[[{"type": "xy"} if p else {"type": "scene"} for p in pictures]])
    for col, (title, picture) in enumerate(zip(titles, pictures, strict=True), start=1):
        if picture:
            fig.add_trace(go.Image(z=panels[title], hoverinfo="skip"), row=1, col=col)
            fig.update_xaxes(visible=False, row=1, col=col)
            fig.update_yaxes(visible=False, scaleanchor=f"x{'' if col == 1 else col}", row=1, col=col)
            continue
        for trace in panels[title]:
            fig.add_trace(trace, row=1, col=col)
    frame = {"aspectmode": "data"}
    if same_range:
        traces = [trace for title, picture in zip(titles, pictures, strict=True) if not picture
                  for trace in panels[title]]
        low, high = _extent(traces)
        span = np.maximum(high - low, 1e-9)
        pad = 0.02 * span.max()
        frame = {"aspectmode": "manual",
                 "aspectratio": dict(zip("xyz", (span / span.max()).tolist(), strict=True))}
        ranges = {f"{a}axis": {"range": [float(lo - pad), float(hi + pad)], "autorange": False}
                  for a, lo, hi in zip("xyz", low, high, strict=True)}
    hidden = dict(showticklabels=False, title="", showbackground=False)
    for n in range(1, pictures.count(False) + 1):
        fig.layout[f"scene{'' if n == 1 else n}"].update(
            **frame, **{f"{a}axis": {**hidden, **(ranges[f"{a}axis"] if same_range else {})} for a in "xyz"},
            camera=dict(eye=dict(x=1.4, y=-1.4, z=0.9), up=dict(x=0, y=0, z=1)))
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=30, b=0), showlegend=False)
    return fig


def _extent(traces: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest x, y, z over the points or vertices of 3D traces."""
    lows, highs = [], []
    for trace in traces:
        xyz = np.stack([np.asarray(trace[a], np.float64).ravel() for a in "xyz"], axis=1)
        if len(xyz):
            lows.append(xyz.min(axis=0))
            highs.append(xyz.max(axis=0))
    if not lows:
        raise ValueError("the panels hold no 3D point to set a range from")
    return np.min(lows, axis=0), np.max(highs, axis=0)
