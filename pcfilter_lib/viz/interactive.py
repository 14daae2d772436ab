"""Plotly figures for the book, which a reader can turn and zoom: a scan's points by label or artefact
kind, a cloud with PointNet's critical points, a filter's outcomes, and side-by-side 3D scenes built
from cloud, mesh and voxel traces (``figure_3d``). ``setup_plotly`` makes them show in notebooks
and in the built book without a network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.io.base_renderers import NotebookRenderer
from plotly.subplots import make_subplots

from pcfilter_lib.labels import ARTEFACT, KEEP, KIND_HEX, KIND_NAMES, KIND_NONE, LABEL_NAMES
from pcfilter_lib.viz.colours import LABEL_HEX, OUTCOME_COLOURS, OUTCOME_NAMES, outcomes


def setup_plotly() -> None:
    """Make ``fig.show()`` work in notebooks and in the built book without a network.

    The renderer "plotly_mimetype+book" puts two representations into each output: the Plotly
    JSON (for JupyterLab) and HTML with a ``plotly-graph-div``; the output of this call carries
    plotly.js itself, inline, so the book's pages need no CDN. Jupyter Book shows the HTML. Plotly's
    own "notebook" renderer would also load MathJax from a CDN with every figure; the book serves its
    MathJax itself, once per page, so "book" is that renderer with MathJax left out.
    """
    class BookRenderer(NotebookRenderer):
        def to_mimebundle(self, fig_dict):
            html = pio.to_html(fig_dict, config=self.config, auto_play=self.auto_play, include_plotlyjs=False,
                               include_mathjax=False, full_html=False, animation_opts=self.animation_opts,
                               default_width="100%", default_height=525, validate=False)
            return {"text/html": html}

    pio.renderers["book"] = BookRenderer()
    pio.renderers.default = "plotly_mimetype+book"


def scan_figure_3d(scan: Mapping, colour_by: str = "label", max_points: int = 60000, seed: int = 0,
                   kind_names: Mapping[int, str] | None = None):
    """Interactive 3D view of a scan's measured points, in the camera frame (metres).

    Args:
        scan: a scan dict with ``xyz``, ``valid``, ``label`` and ``kind``.
        colour_by: "label" (grey true geometry, red artefacts) or "kind" (one colour per artefact
            kind, ``labels.KIND_HEX``).
        max_points: the most points drawn: every artefact, then a seeded random subset of the rest.
        seed: the seed of that subset.
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
    keep = label == ARTEFACT
    rest = np.flatnonzero(~keep)
    budget = max(max_points - int(keep.sum()), 0)
    if len(rest) > budget:
        keep[np.random.default_rng(seed).choice(rest, budget, replace=False)] = True
    else:
        keep[rest] = True
    names = kind_names or {**KIND_NAMES, KIND_NONE: "true"}  # a measured point of kind none is true geometry
    # (name, colour, points, true geometry?) per legend entry
    groups = ([(LABEL_NAMES[code], LABEL_HEX[code], label == code, code == KEEP) for code in (KEEP, ARTEFACT)]
              if colour_by == "label" else
              [(names.get(code, str(code)), KIND_HEX[code % len(KIND_HEX)], kind == code, code == KIND_NONE)
               for code in np.unique(kind)])
    fig = go.Figure()
    for name, colour, mask, true in groups:
        mask = mask & keep
        if mask.any():
            fig.add_trace(go.Scatter3d(x=xyz[mask, 0], y=xyz[mask, 1], z=xyz[mask, 2], mode="markers", name=name,
                                       marker=dict(size=1 if true else 1.8, color=colour)))
    # Camera frame: y points down and z away from the scanner. Look from the side and above so that
    # points at a false depth stand out from the surfaces.
    fig.update_layout(scene=dict(aspectmode="data", xaxis_title="x (m)", yaxis_title="y (m)", zaxis_title="z (m)",
                                 camera=dict(up=dict(x=0, y=-1, z=0), eye=dict(x=1.2, y=-1.0, z=-0.9))),
                      legend=dict(itemsizing="constant"), margin=dict(l=0, r=0, t=30, b=0), height=550,
                      title=f"{int(valid.sum())} points, {int((label == ARTEFACT).sum())} artefacts")
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
    TN blue. Errors and removed artefacts are always shown; true points kept are subsampled to fit
    ``max_points``.

    Args:
        scan: a scan dict with ``xyz`` and ``label``.
        keep: (H, W) bool keep mask of a filter.
        title: the figure's title.
        max_points: the most points drawn.
        seed: the seed of the subset of true points kept.

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
    xyz = np.asarray(scan["xyz"])
    groups = outcomes(scan["label"], keep)
    shown = {name: np.flatnonzero(mask.ravel()) for name, mask in groups.items()}
    budget = max(max_points - sum(len(v) for k, v in shown.items() if k != "TP"), 0)
    if len(shown["TP"]) > budget:
        shown["TP"] = np.random.default_rng(seed).choice(shown["TP"], budget, replace=False)
    points = xyz.reshape(-1, 3)
    fig = go.Figure()
    for name, index in shown.items():
        if len(index):
            p = points[index]
            fig.add_trace(go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers",
                                       name=f"{OUTCOME_NAMES[name]} ({int(groups[name].sum())})",
                                       marker=dict(size=1.5 if name == "TP" else 2.5, color=OUTCOME_COLOURS[name])))
    fig.update_layout(scene=dict(aspectmode="data", xaxis_title="x (m)", yaxis_title="y (m)", zaxis_title="z (m)",
                                 camera=dict(up=dict(x=0, y=-1, z=0), eye=dict(x=0.3, y=-0.9, z=-1.6))),
                      legend=dict(itemsizing="constant"), margin=dict(l=0, r=0, t=40, b=0), height=520, title=title)
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
    from pcfilter_lib.geometry.voxels import voxel_faces  # pulls Open3D: loaded only for voxel figures

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


def figure_3d(panels: Mapping[str, Sequence | np.ndarray], height: int = 420):
    """One Plotly figure with a 3D scene per panel, side by side, z up.

    Args:
        panels: title -> the traces of that panel (``cloud_trace``, ``mesh_trace``, ``voxel_trace``),
            or an (H, W, 3) uint8 picture, drawn flat beside the scenes (the input of a network
            whose 3D output the other panels show).
        height: the figure's height, in pixels.

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
    hidden = dict(showticklabels=False, title="", showbackground=False)
    for n in range(1, pictures.count(False) + 1):
        fig.layout[f"scene{'' if n == 1 else n}"].update(
            aspectmode="data", xaxis=hidden, yaxis=hidden, zaxis=hidden,
            camera=dict(eye=dict(x=1.4, y=-1.4, z=0.9), up=dict(x=0, y=0, z=1)))
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=30, b=0), showlegend=False)
    return fig

