"""Plotly figures in the book: the renderer that ``viz.setup_plotly`` installs puts no plotly.js into a
notebook's outputs, gives JupyterLab the figure's JSON and the book its div with a still picture for
readers without JavaScript; the still shows the scene as Plotly's camera does; and the book's Sphinx
extension (book/_ext/plotly_js.py) serves one plotly.js, copied from the plotly package, to the pages
with a figure only."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from IPython.utils.capture import capture_output
from matplotlib.figure import Figure
from matplotlib.image import imread
from mpl_toolkits.mplot3d import proj3d

from pcfilter_lib import viz
from pcfilter_lib.viz import interactive

ROOT = Path(__file__).resolve().parent.parent
PLOTLY_JSON = "application/vnd.plotly.v1+json"
STILL = re.compile(r'<noscript>.*<img class="plotly-still" src="data:image/png;base64,([A-Za-z0-9+/=]+)"')



def cloud_figure() -> go.Figure:
    points = np.random.default_rng(0).normal(size=(300, 3))
    fig = go.Figure([go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", name=name,
                                  marker={"size": 4, "color": colour})
                     for p, name, colour in ((points, "points", "#d62728"), (points[:5] + 3, "far", "grey"))])
    fig.update_layout(title="a red cloud", scene={"xaxis_title": "x (m)", "yaxis_title": "y (m)",
                                                  "zaxis_title": "z (m)", "aspectmode": "data"})
    return fig


def still_pixels(html: str) -> np.ndarray:
    found = STILL.findall(html)
    assert len(found) == 1, "one still picture per figure"
    return imread(io.BytesIO(base64.b64decode(found[0])), format="png")


def test_figures_carry_their_json_and_html_without_plotly_js(shell):
    with capture_output() as captured:
        viz.setup_plotly()
        cloud_figure().show()
    assert len(captured.outputs) == 1, "setting up shows nothing; the figure is one output"
    bundle = captured.outputs[0].data
    assert set(bundle) == {PLOTLY_JSON, "text/html"}  # JupyterLab draws the JSON, the book the HTML
    html = bundle["text/html"]
    assert 'class="plotly-graph-div"' in html and "Plotly.newPlot" in html
    assert "plotly.js v" not in html and len(html) < 300_000, "no copy of plotly.js (4.8 MB) in the output"
    assert "MathJax" not in html
    pixels = still_pixels(html)
    red = (pixels[..., 0] > 0.7) & (pixels[..., 1] < 0.35) & (pixels[..., 2] < 0.35)
    assert red.sum() > 200, "the still shows the red points"


def test_the_still_draws_meshes_pictures_and_titles():
    occupancy = np.zeros((4, 4, 4), bool)
    occupancy[1:3, 1:3, 0:3] = True
    picture = np.zeros((16, 16, 3), np.uint8)
    picture[..., 1] = 200  # green
    fig = viz.figure_3d({"input": picture, "voxels": [viz.voxel_trace(occupancy, colour="#1f3fbf")]})
    pixels = imread(io.BytesIO(interactive.static_png(fig)), format="png")
    green = (pixels[..., 1] > 0.7) & (pixels[..., 0] < 0.2)
    blue = (pixels[..., 2] > 0.45) & (pixels[..., 0] < 0.3) & (pixels[..., 1] < 0.4)
    half = pixels.shape[1] // 2
    assert green[:, :half].sum() > 1000 and green[:, half:].sum() == 0, "the picture stands on the left"
    assert blue[:, half:].sum() > 1000 and blue[:, :half].sum() == 0, "the voxels on the right"
    with pytest.raises(ValueError, match="not 'bar'"):
        interactive.static_png(go.Figure(go.Bar(x=[1], y=[2])))


def draw(fig: go.Figure):
    """The Matplotlib axes the still draws the figure's scene into."""
    ax = Figure().add_subplot(projection="3d")
    layout = fig.to_dict()["layout"]
    interactive._draw_scene(ax, fig.to_dict()["data"], layout.get("scene", {}), True)
    return ax


@pytest.mark.parametrize("camera", [
    None,  # Plotly's default
    {"eye": {"x": 1.2, "y": -1.0, "z": -0.9}, "up": {"x": 0, "y": -1, "z": 0}},  # scan_figure_3d
    {"eye": {"x": 0.3, "y": -0.9, "z": -1.6}, "up": {"x": 0, "y": -1, "z": 0}},  # outcome_figure_3d
    {"eye": {"x": 1.4, "y": -1.4, "z": 0.9}, "up": {"x": 0, "y": 0, "z": 1}},  # figure_3d
    {"eye": {"x": -0.5, "y": 1.5, "z": 0.7}, "up": {"x": 1, "y": 0, "z": 0}},
    {"eye": {"x": 0.8, "y": 1.1, "z": -1.3}, "up": {"x": 0, "y": 0, "z": -1}},
])
def test_the_still_sees_the_scene_as_plotly_camera_does(camera):
    # A cube's corners, projected by the still's axes, land left/right and above/below the centre
    # where Plotly's camera (a look-at from the eye towards the centre, `up` up) puts them.
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    fig = go.Figure(go.Scatter3d(x=corners[:, 0], y=corners[:, 1], z=corners[:, 2], mode="markers"))
    fig.update_layout(scene={"aspectmode": "data", **({"camera": camera} if camera else {})})
    ax = draw(fig)
    xs, ys, _ = proj3d.proj_transform(*corners.T, ax.get_proj())
    eye = interactive._vector(camera, "eye", interactive.PLOTLY_DEFAULT_EYE)
    up = interactive._vector(camera, "up", (0, 0, 1))
    forward = -eye / np.linalg.norm(eye)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    screen_up = np.cross(right, forward)
    for corner, x, y in zip(corners, xs, ys, strict=True):
        seen = np.array([corner @ right, corner @ screen_up])
        for want, got in zip(seen, (x, y), strict=True):
            if abs(want) > 0.2:  # corners near the centre line may fall either side after perspective
                assert np.sign(want) == np.sign(got), (corner, seen, (x, y))


def test_the_still_labels_its_axes_as_the_layout_does():
    ax = draw(cloud_figure())
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_zlabel()) == ("x (m)", "y (m)", "z (m)")
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["points", "far"]
    assert draw(go.Figure(cloud_figure().data[:1])).get_legend() is None  # Plotly: none for one trace
    hidden = draw(viz.figure_3d({"a": [viz.cloud_trace(np.eye(3))]}))  # figure_3d hides its axes
    assert not hidden.axison


def test_the_book_loads_one_plotly_js_on_the_pages_with_figures(tmp_path):
    # A two-page Sphinx project with the book's extension: one page holds a figure's HTML.
    source = tmp_path / "src"
    source.mkdir()
    html = viz.interactive.BookRenderer().to_mimebundle(cloud_figure().to_dict())["text/html"]
    (source / "conf.py").write_text(f"import sys\nsys.path.insert(0, {str(ROOT / 'book' / '_ext')!r})\n"
                                    "extensions = ['plotly_js']\n")
    (source / "index.rst").write_text("Index\n=====\n\n.. toctree::\n\n   figure\n")
    body = "\n".join("   " + line for line in html.splitlines())
    (source / "figure.rst").write_text(f"Figure\n======\n\n.. raw:: html\n\n{body}\n")
    out = tmp_path / "html"
    subprocess.run([sys.executable, "-m", "sphinx", "-q", "-W", "-b", "html", str(source), str(out)],
                   check=True, capture_output=True, text=True)
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    import plotly_js

    assert (out / "_static" / "plotly.min.js").read_bytes() == plotly_js.plotly_js().read_bytes()
    script = re.compile(r'<script src="_static/plotly\.min\.js(\?v=[0-9a-f]+)?"></script>')
    figure_page, index_page = (out / "figure.html").read_text(), (out / "index.html").read_text()
    assert len(script.findall(figure_page)) == 1 and "MathJaxConfig: 'local'" in figure_page
    assert script.findall(index_page) == [], "a page without a figure does not load plotly.js"
    assert "plotly.js v" not in figure_page


def test_the_still_takes_a_colour_per_point():
    points = np.random.default_rng(1).normal(size=(400, 3))
    colours = np.where(points[:, 0] > 0, "#00c800", "rgb(0, 0, 230)")  # CSS hex and rgb() forms
    fig = viz.figure_3d({"cloud": [viz.cloud_trace(points, colour=colours, size=5)]})
    pixels = imread(io.BytesIO(interactive.static_png(fig)), format="png")
    green = (pixels[..., 1] > 0.6) & (pixels[..., 0] < 0.2) & (pixels[..., 2] < 0.2)
    blue = (pixels[..., 2] > 0.7) & (pixels[..., 0] < 0.2) & (pixels[..., 1] < 0.2)
    assert green.sum() > 300 and blue.sum() > 300


def test_panels_with_the_same_range_show_sizes_as_they_are():
    # A prediction an eighth the size of its truth looks an eighth the size, in Plotly and in the still.
    small, large = np.zeros((16, 16, 16), bool), np.zeros((16, 16, 16), bool)
    small[2:6, 2:6, 0:4] = True
    large[0:16, 0:16, 0:8] = True
    panels = {"predicted": [viz.voxel_trace(small, colour="#1f3fbf")],
              "truth": [viz.voxel_trace(large, colour="#1f3fbf")]}
    fig = viz.figure_3d(panels, same_range=True)
    for axis in ("xaxis", "yaxis", "zaxis"):
        assert fig.layout.scene[axis].range == fig.layout.scene2[axis].range
    assert fig.layout.scene.aspectmode == "manual" and fig.layout.scene.aspectratio.z == 0.5
    assert fig.layout.scene.xaxis.range[0] < 0 < 16 < fig.layout.scene.xaxis.range[1]

    def blue_halves(figure):
        pixels = imread(io.BytesIO(interactive.static_png(figure)), format="png")
        blue = (pixels[..., 2] > 0.45) & (pixels[..., 0] < 0.3) & (pixels[..., 1] < 0.4)
        half = pixels.shape[1] // 2
        return blue[:, :half].sum(), blue[:, half:].sum()

    shared = blue_halves(fig)
    assert 4 * shared[0] < shared[1], shared
    own = blue_halves(viz.figure_3d(panels))  # each panel fits its own voxels
    assert own[0] > 2 * shared[0], (own, shared)
