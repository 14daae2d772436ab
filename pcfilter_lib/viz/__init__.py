"""Figures for the book: small Matplotlib helpers that take arrays and return the axes they drew on.

Every function draws into a given ``ax`` (or a new figure when ``ax`` is None) so that chapters can
compose panels freely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp

from pcfilter_lib.labels import (
    ARTEFACT,
    ARTEFACT_KINDS,
    KEEP,
    KIND_HEX,
    KIND_NAMES,
    KIND_NONE,
    LABEL_COLOURS,
    LABEL_NAMES,
    hex_colour,
)

LABEL_HEX = {label: hex_colour(rgb) for label, rgb in LABEL_COLOURS.items()}  # labels.LABEL_COLOURS as "#rrggbb"


def _axes(ax, figsize=(5, 4)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def show_matrix(matrix, ax=None, title: str | None = None, annotate: bool = False):
    """Heat map of a (possibly sparse) matrix; structural zeros stay white.

    Args:
        matrix: a 2D array or ``scipy.sparse`` matrix, such as ``nn.convmath.conv2d_matrix``.
        ax: the matplotlib axes to draw into; None makes a new figure.
        title: a title above the count of non-zero entries.
        annotate: write each non-zero entry into its cell (for small matrices) instead of a colour bar.

    Returns:
        The axes.
    """
    dense = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix, dtype=float)
    ax = _axes(ax, figsize=(max(3, dense.shape[1] * 0.35), max(2.5, dense.shape[0] * 0.35)))
    limit = np.abs(dense).max() or 1.0
    masked = np.ma.masked_equal(dense, 0.0)
    image = ax.imshow(masked, cmap="coolwarm", vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_facecolor("white")
    if annotate:
        for (r, c), value in np.ndenumerate(dense):
            if value != 0:
                ax.text(c, r, f"{value:g}", ha="center", va="center", fontsize=8)
    nonzero = np.count_nonzero(dense)
    ax.set_xlabel(f"input index ({dense.shape[1]})")
    ax.set_ylabel(f"output index ({dense.shape[0]})")
    subtitle = f"{nonzero} of {dense.size} entries non-zero ({nonzero / dense.size:.1%})"
    ax.set_title(f"{title}\n{subtitle}" if title else subtitle, fontsize=10)
    if not annotate:
        plt.colorbar(image, ax=ax, shrink=0.8)
    return ax


def plot_growth(curves: Mapping[str, Sequence[float]], measured: Mapping[str, Sequence[float]] | None = None,
                ax=None, xlabel: str = "layers", ylabel: str = "receptive field (pixels)", logy: bool = False):
    """Line plot of one quantity per layer for several stacks, with optional measured markers.

    Args:
        curves: stack name -> the value after each layer, by formula.
        measured: stack name -> the measured values, drawn as open markers over the lines.
        ax: the matplotlib axes to draw into; None makes a new figure.
        xlabel: label of the x axis.
        ylabel: label of the y axis.
        logy: a logarithmic y axis.

    Returns:
        The axes.
    """
    ax = _axes(ax)
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D"]
    for n, (name, values) in enumerate(curves.items()):
        x = np.arange(1, len(values) + 1)
        (line,) = ax.plot(x, values, styles[n % 4], linewidth=2, label=f"{name} (formula)")
        if measured and name in measured:
            ax.plot(x, measured[name], markers[n % 4], color=line.get_color(), fillstyle="none", markersize=9,
                    label=f"{name} (measured)")
        ax.set_xticks(x)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def show_images(images: Mapping[str, np.ndarray], ncols: int = 4, cmap: str = "viridis",
                size: float = 2.6, colorbar: bool = True, annotate: bool = False,
                vmin: float | None = None, vmax: float | None = None):
    """A grid of 2D images with titles.

    Args:
        images: title -> (H, W) image (or (H, W, 3) RGB).
        ncols: images per row.
        cmap: the matplotlib colour map.
        size: the side of each panel, in inches.
        colorbar: a colour bar beside each image.
        annotate: write each pixel's value into it (for tiny images).
        vmin: the bottom of the colour range; with ``vmax`` needed for masks, which may be all one
            value.
        vmax: the top of the colour range.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: there is no image.
    """
    n = len(images)
    if n == 0:
        raise ValueError("show_images needs at least one image")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False, layout="constrained")
    for ax, (title, image) in zip(axes.flat, images.items(), strict=False):
        image = np.asarray(image)
        shown = ax.imshow(image, cmap=cmap, interpolation="nearest", vmin=vmin, vmax=vmax)
        if annotate:  # dark text on light cells, light text on dark ones
            low, high = shown.get_clim()
            for (r, c), value in np.ndenumerate(image):
                dark = (value - low) > 0.6 * (high - low)
                ax.text(c, r, f"{value:g}", ha="center", va="center", fontsize=9, color="white" if dark else "black")
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        if colorbar:
            fig.colorbar(shown, ax=ax, shrink=0.8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig


def draw_unet(model, ax=None):
    """Schematic of a U-Net from ``models.unet.build_unet``.

    One box per block at the height of its resolution, labelled with its filter count; arrows for
    the data flow and, dashed, the skip connections.

    Args:
        model: the U-Net.
        ax: the matplotlib axes to draw into; None makes a new figure.

    Returns:
        The axes.
    """
    names = {layer.name: layer for layer in model.layers}
    depth = sum(name.startswith("down") and name.endswith("_pool") for name in names)
    ax = _axes(ax, figsize=(10, 4))

    def filters(block):
        return names[f"{block}_conv2"].filters

    blocks = [(f"down{i + 1}", i) for i in range(depth)] + [("bottleneck", depth)]
    blocks += [(f"up{i + 1}", i) for i in reversed(range(depth))]
    for x, (block, level) in enumerate(blocks):
        colour = "tab:blue" if block.startswith("down") else "tab:orange" if block.startswith("up") else "tab:red"
        ax.add_patch(plt.Rectangle((x - 0.35, -level - 0.3), 0.7, 0.6, color=colour, alpha=0.8))
        ax.text(x, -level, str(filters(block)), ha="center", va="center", color="white", fontweight="bold")
        if x:
            ax.annotate("", xy=(x - 0.35, -level), xytext=(x - 0.65, -blocks[x - 1][1]),
                        arrowprops=dict(arrowstyle="->", color="grey"))
    for i in range(depth):  # skip connections: encoder block -> decoder block of the same level
        left, right = i, len(blocks) - 1 - i
        ax.annotate("", xy=(right - 0.35, -i + 0.15), xytext=(left + 0.35, -i + 0.15),
                    arrowprops=dict(arrowstyle="->", color="tab:green", linestyle="--"))
    ax.set_xlim(-0.7, len(blocks) - 0.3)
    ax.set_ylim(-depth - 0.6, 0.6)
    ax.set_yticks([-level for level in range(depth + 1)], [f"1/{2**level}" for level in range(depth + 1)])
    ax.set_ylabel("resolution")
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"{model.name}: filters per block (blue encoder, red bottleneck, orange decoder, "
                 f"green skips); {model.count_params():,} parameters", fontsize=10)
    return ax


def plot_histories(histories: Mapping[str, Mapping[str, Sequence[float]]], key: str, ax=None,
                   ylabel: str | None = None):
    """One curve per training run of a value of its Keras history against the epoch.

    Args:
        histories: run name -> the ``history`` dict of its training (``nn.fit.TrainResult``).
        key: the value to plot, such as "val_mean_iou".
        ax: the matplotlib axes to draw into; None makes a new figure.
        ylabel: label of the y axis; default ``key``.

    Returns:
        The axes.
    """
    ax = _axes(ax)
    for name, history in histories.items():
        values = history[key]
        ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_confusion(tp: int, fn: int, fp: int, tn: int, ax=None, title: str | None = None):
    """A 2x2 confusion matrix: rows the truth (keep, artefact), columns the prediction.

    Args:
        tp: true points kept.
        fn: true points removed.
        fp: artefacts kept.
        tn: artefacts removed.
        ax: the matplotlib axes to draw into; None makes a new figure.
        title: a title.

    Returns:
        The axes; each cell shows its count and its share of the row.
    """
    ax = _axes(ax, figsize=(3.2, 3))
    counts = np.array([[tp, fn], [fp, tn]], dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (r, c), value in np.ndenumerate(counts):
        ax.text(c, r, f"{int(value):,}\n{shares[r, c]:.1%}", ha="center", va="center",
                color="white" if shares[r, c] > 0.6 else "black", fontsize=9)
    ax.set_xticks([0, 1], ["keep", "artefact"])
    ax.set_yticks([0, 1], ["keep", "artefact"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_threshold_sweep(sweep: Mapping[str, np.ndarray], names: Sequence[str] = ("mean_iou", "balanced_accuracy",
                         "f1", "recall", "tnr"), chosen: float | None = None, ax=None):
    """Metrics of a threshold sweep against the threshold, with the chosen one marked.

    Args:
        sweep: the result of ``nn.metrics.threshold_sweep``.
        names: the metrics to draw.
        chosen: a threshold to mark with a dotted line.
        ax: the matplotlib axes to draw into; None makes a new figure.

    Returns:
        The axes.
    """
    ax = _axes(ax)
    for name in names:
        ax.plot(sweep["threshold"], sweep[name], marker=".", label=name)
    if chosen is not None:
        ax.axvline(chosen, color="black", linestyle=":", label=f"chosen {chosen:.2f}")
    ax.set_xlabel("threshold on the keep probability")
    ax.set_ylabel("metric")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


# Scans -------------------------------------------------------------------------------------------


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
    import plotly.graph_objects as go  # Plotly is heavy: loaded by the figures that need it

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


def show_scan_channels(scan: Mapping, size: float = 3.2):
    """A scan's images side by side: intensity, depth, estimated normals (as RGB), label and kind.

    Args:
        scan: a scan dict with ``intensity``, ``xyz``, ``normals``, ``valid``, ``label`` and ``kind``.
        size: the side of each panel, in inches.

    Returns:
        The matplotlib figure.
    """
    valid = np.asarray(scan["valid"])
    depth = np.where(valid, np.asarray(scan["xyz"])[..., 2], np.nan)
    normals = np.where(valid[..., None], (np.nan_to_num(np.asarray(scan["normals"])) + 1) / 2, 1.0)
    label = np.asarray(scan["label"])
    kind = np.where(label == ARTEFACT, np.asarray(scan["kind"]), np.nan)
    label_rgb = np.ones((*label.shape, 3))  # white: no point
    for code, rgb in LABEL_COLOURS.items():
        label_rgb[label == code] = np.asarray(rgb) / 255
    # (title, image, imshow style, with a colour bar?)
    panels = [("intensity", np.asarray(scan["intensity"]), dict(cmap="gray", vmin=0, vmax=1), True),
              ("depth z (m)", depth, dict(cmap="viridis"), True),
              ("normals (x, y, z as RGB)", normals, {}, False),
              ("label: grey true, red artefact, white no point", label_rgb, {}, False),
              ("artefact kind", kind, dict(cmap=plt.matplotlib.colors.ListedColormap(KIND_HEX), vmin=-0.5,
                                           vmax=len(KIND_HEX) - 0.5), True)]
    height, width = valid.shape
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size * height / width + 0.8),
                             layout="constrained")
    for ax, (title, image, style, colour_bar) in zip(axes, panels, strict=True):
        shown = ax.imshow(image, interpolation="nearest", **style)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if colour_bar:
            fig.colorbar(shown, ax=ax, shrink=0.7, location="bottom")
    return fig


# --- Point clouds, training runs and classifiers (chapter 4) ---------------------------------------------------


def setup_plotly() -> None:
    """Make ``fig.show()`` work in notebooks and in the built book without a network.

    The renderer "plotly_mimetype+book" puts two representations into each output: the Plotly
    JSON (for JupyterLab) and HTML with a ``plotly-graph-div``; the output of this call carries
    plotly.js itself, inline, so the book's pages need no CDN. Jupyter Book shows the HTML. Plotly's
    own "notebook" renderer would also load MathJax from a CDN with every figure; the book serves its
    MathJax itself, once per page, so "book" is that renderer with MathJax left out.
    """
    import plotly.io as pio  # Plotly is heavy: loaded only when asked for
    from plotly.io.base_renderers import NotebookRenderer

    class BookRenderer(NotebookRenderer):
        def to_mimebundle(self, fig_dict):
            html = pio.to_html(fig_dict, config=self.config, auto_play=self.auto_play, include_plotlyjs=False,
                               include_mathjax=False, full_html=False, animation_opts=self.animation_opts,
                               default_width="100%", default_height=525, validate=False)
            return {"text/html": html}

    pio.renderers["book"] = BookRenderer()
    pio.renderers.default = "plotly_mimetype+book"


def show_clouds(clouds: Mapping[str, np.ndarray], ncols: int = 5, size: float = 2.4, point_size: float = 1.0):
    """A grid of 3D scatter plots, one cloud per panel, z up, all on the same [-1, 1] box.

    Args:
        clouds: title -> (N, 3) cloud, normalised to the unit sphere.
        ncols: panels per row.
        size: the side of each panel, in inches.
        point_size: the marker size.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: there is no cloud.
    """
    n = len(clouds)
    if n == 0:
        raise ValueError("show_clouds needs at least one cloud")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = plt.figure(figsize=(size * ncols, size * nrows), layout="constrained")
    for k, (title, cloud) in enumerate(clouds.items()):
        cloud = np.asarray(cloud)
        ax = fig.add_subplot(nrows, ncols, k + 1, projection="3d")
        ax.scatter(cloud[:, 0], cloud[:, 1], cloud[:, 2], s=point_size, c=cloud[:, 2], cmap="viridis")
        ax.set(xlim=(-1, 1), ylim=(-1, 1), zlim=(-1, 1), title=title)
        ax.view_init(elev=20, azim=-60)
        ax.set_axis_off()
    return fig


def plot_training_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], elapsed=None, log_loss: bool = True):
    """Validation accuracy and loss of several classifier training runs, the training accuracy dashed.

    Args:
        histories: run name -> its Keras history (``accuracy``, ``loss`` and, if validated,
            ``val_accuracy`` and ``val_loss``).
        elapsed: run name -> the seconds at the end of each epoch, to plot against time rather than
            epochs.
        log_loss: a logarithmic loss axis.

    Returns:
        The matplotlib figure, accuracy on the left and loss on the right.
    """
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    for name, history in histories.items():
        x = np.asarray(elapsed[name]) if elapsed else np.arange(1, len(history["loss"]) + 1)
        (line,) = acc_ax.plot(x, history.get("val_accuracy", history["accuracy"]), "o-", label=f"{name} (validation)")
        acc_ax.plot(x, history["accuracy"], "--", color=line.get_color(), alpha=0.6, label=f"{name} (training)")
        loss_ax.plot(x, history.get("val_loss", history["loss"]), "o-", color=line.get_color(), label=name)
    xlabel = "training time (s)" if elapsed else "epoch"
    acc_ax.set(xlabel=xlabel, ylabel="accuracy", ylim=(0, 1.02))
    loss_ax.set(xlabel=xlabel, ylabel="validation loss")
    if log_loss:
        loss_ax.set_yscale("log")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def plot_weight_histograms(kernels: Mapping[str, np.ndarray], near_zero: float = 1e-3, bins: int = 81,
                           size: float = 3.0):
    """Histograms of weight values side by side, one panel per model, on a logarithmic count axis.

    Args:
        kernels: name -> the weights (any shape; flattened).
        near_zero: weights with ``|w| < near_zero`` are counted in each panel's title.
        bins: bins over the range of all kernels together.
        size: height of a panel in inches.

    Returns:
        The matplotlib figure.
    """
    values = {name: np.ravel(np.asarray(kernel)) for name, kernel in kernels.items()}
    reach = max(float(np.abs(v).max()) for v in values.values()) or 1.0
    edges = np.linspace(-reach, reach, bins + 1)
    fig, axes = plt.subplots(1, len(values), figsize=(size * len(values), size), sharey=True,
                             layout="constrained", squeeze=False)
    for ax, (name, v) in zip(axes[0], values.items(), strict=True):
        ax.hist(v, bins=edges, color="#4c72b0")
        ax.set_yscale("log")
        ax.set_title(f"{name}\n{np.mean(np.abs(v) < near_zero):.0%} within {near_zero:g} of 0", fontsize=9)
        ax.set_xlabel("weight")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("weights")
    return fig


def plot_class_confusion(confusion: np.ndarray, classes: Sequence[str], ax=None, title: str | None = None):
    """A multi-class confusion matrix: true classes in rows, predicted classes in columns.

    Args:
        confusion: (K, K) counts.
        classes: the K class names.
        ax: the matplotlib axes to draw into; None makes a new figure.
        title: a title, followed by the accuracy.

    Returns:
        The axes; the colour is the share of the row, the text the count.
    """
    confusion = np.asarray(confusion)
    ax = _axes(ax, figsize=(0.55 * len(classes) + 2.5, 0.5 * len(classes) + 1.5))
    share = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (r, c), count in np.ndenumerate(confusion):
        if count:
            ax.text(c, r, str(count), ha="center", va="center", fontsize=8,
                    color="white" if share[r, c] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted class", ylabel="true class")
    accuracy = np.trace(confusion) / max(confusion.sum(), 1)
    ax.set_title(f"{title + ': ' if title else ''}accuracy {accuracy:.3f} on {confusion.sum()} clouds", fontsize=10)
    return ax


def plot_critical_points(cloud: np.ndarray, critical: np.ndarray, title: str = ""):
    """Interactive view of a cloud with the critical points of a PointNet highlighted.

    Args:
        cloud: (N, 3) points.
        critical: indices of the critical points (``models.pointnet.critical_points``).
        title: the figure's title.

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go  # Plotly is heavy: loaded by the figures that need it

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


def _by_strategy(results) -> dict[str, list]:
    """``transfer.StrategyResult`` rows grouped by strategy, in the order they first appear."""
    groups: dict[str, list] = {}
    for r in results:
        groups.setdefault(r.strategy, []).append(r)
    return groups


def plot_strategies(results):
    """Transfer strategies side by side: test accuracy by share of the training data, and by training time.

    Args:
        results: the ``transfer.StrategyResult`` rows of ``transfer.compare_strategies``.

    Returns:
        The matplotlib figure.
    """
    fig, (data_ax, time_ax) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    for (strategy, rows), marker in zip(_by_strategy(results).items(), "sD^o", strict=False):
        percent = [100 * r.fraction for r in rows]
        accuracy = [r.accuracy for r in rows]
        data_ax.plot(percent, accuracy, marker + "-", label=strategy)
        time_ax.plot([r.seconds for r in rows], accuracy, marker, markersize=8, label=strategy)
        for p, r in zip(percent, rows, strict=True):
            time_ax.annotate(f"{p:.0f}%", (r.seconds, r.accuracy), textcoords="offset points", xytext=(5, 4),
                             fontsize=8)
    percent = sorted({100 * r.fraction for r in results})
    data_ax.set(xscale="log", xlabel="share of the training data (%)", ylabel="test accuracy", ylim=(0, 1.02))
    data_ax.set_xticks(percent, [f"{p:.0f}" for p in percent])
    time_ax.set(xscale="log", xlabel="training time (s)", ylabel="test accuracy", ylim=(0, 1.02))
    for ax in (data_ax, time_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def strategy_table(results) -> Table:
    """One row per share of the data: each strategy's test accuracy and training seconds.

    Args:
        results: the ``transfer.StrategyResult`` rows of ``transfer.compare_strategies``.

    Returns:
        A ``Table`` (its Markdown is also what ``str`` gives, for scripts).
    """
    groups = _by_strategy(results)
    header = ["data", "clouds"] + [f"{name} {unit}" for name in groups for unit in ("accuracy", "seconds")]
    rows = []
    for fraction in sorted({r.fraction for r in results}):
        cells = [next(r for r in group if r.fraction == fraction) for group in groups.values()]
        rows.append([f"{fraction:.0%}", cells[0].train_size]
                    + [x for r in cells for x in (f"{r.accuracy:.3f}", f"{r.seconds:.0f}")])
    return Table(header, rows)


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
    import plotly.graph_objects as go  # Plotly is heavy: loaded by the figures that need it

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
    import plotly.graph_objects as go  # Plotly is heavy: loaded by the figures that need it

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
    import plotly.graph_objects as go  # Plotly is heavy: loaded by the figures that need it
    from plotly.subplots import make_subplots

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


def plot_octree_slice(levels: Sequence[np.ndarray], z: int, ax=None, title: str | None = None):
    """The cells of an octree (``voxels.octree_levels``) that the plane through voxel layer ``z`` of the
    finest level cuts: occupied finest cells filled, empty cells outlined at the size where the octree
    stops refining them.

    Args:
        levels: the octree's levels, coarsest first (``geometry.voxels.octree_levels``).
        z: the voxel layer of the finest level to cut.
        ax: the matplotlib axes to draw into; None makes a new figure.
        title: a title.

    Returns:
        The axes.
    """
    ax = _axes(ax, figsize=(4.5, 4.5))
    finest = len(levels) - 1
    for depth, level in enumerate(levels):
        scale = 2 ** (finest - depth)
        layer = z // scale
        parent = levels[depth - 1][:, :, layer // 2] if depth else np.ones((1, 1), bool)
        here = level[:, :, layer]
        for i, j in np.argwhere(~here):
            if parent[i // 2, j // 2] if depth else True:
                ax.add_patch(plt.Rectangle((i * scale, j * scale), scale, scale, fill=False, lw=0.6,
                                           edgecolor="tab:blue"))
        if depth == finest:
            for i, j in np.argwhere(here):
                ax.add_patch(plt.Rectangle((i, j), 1, 1, color="tab:orange"))
    side = levels[-1].shape[0]
    ax.set_xlim(0, side)
    ax.set_ylim(0, side)
    ax.set_aspect("equal")
    ax.set_xlabel("x (voxels)")
    ax.set_ylabel("y (voxels)")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


class Table:
    """A table for notebook outputs: Markdown in Jupyter, HTML in the built book (whose Markdown
    renderer, CommonMark, has no tables); cells are written with ``str``."""

    def __init__(self, header: Sequence[str], rows: Sequence[Sequence]):
        self.header = [str(h) for h in header]
        self.rows = [[str(cell) for cell in row] for row in rows]

    def _repr_markdown_(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in self.rows])

    __str__ = _repr_markdown_

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> Table:
    """A ``Table`` to display in a notebook (shown as Markdown in Jupyter and as HTML in the book).

    Args:
        header: the column titles.
        rows: the rows, each as long as ``header``; cells are written with ``str``.

    Returns:
        The ``Table``.
    """
    return Table(header, rows)


FILTER_METRICS = {"mean_iou": "mean IoU", "balanced_accuracy": "bal. acc.", "f1": "F1", "recall": "keep-recall",
                  "false_omission_rate": "FOR"}


def filter_table(results: Mapping[str, Mapping], kinds: Sequence[int] = ARTEFACT_KINDS) -> Table:
    """One row per filter: the pooled metrics of ``filters.evaluate_filter`` and the share of each
    artefact kind it removed.

    Args:
        results: filter name -> the dict ``filters.evaluate_filter`` returns (or one stored in a model
            card), holding the keys of ``FILTER_METRICS`` and ``kinds``, the per-kind counts.
        kinds: the artefact kind codes (``labels.ARTEFACT_KINDS``) to give a column each.

    Returns:
        A ``Table`` with the metrics to 4 decimals and the removed shares to 3; "–" where the
        scans held no point of a kind, or carried no kinds at all (unorganised clouds without them).
    """
    names = [KIND_NAMES[code] for code in kinds]
    header = ["filter", *FILTER_METRICS.values()] + [name if len(name) <= 8 else f"{name[:8]}." for name in names]
    rows = []
    for name, result in results.items():
        removed = [result.get("kinds", {}).get(kind, {}).get("removed") for kind in names]
        rows.append([name] + [f"{result[key]:.4f}" for key in FILTER_METRICS]
                    + ["–" if share is None else f"{share:.3f}" for share in removed])
    return Table(header, rows)


# Filter results ----------------------------------------------------------------------------------

# A point kept is drawn in its label's colour; a true point removed orange, an artefact removed blue.
OUTCOME_COLOURS = {"TP": LABEL_HEX[KEEP], "FN": "#f0a000", "FP": LABEL_HEX[ARTEFACT], "TN": "#3c3cc8"}
OUTCOME_NAMES = {"TP": "TP: true point kept", "FN": "FN: true point removed", "FP": "FP: artefact kept",
                 "TN": "TN: artefact removed"}


def outcomes(label: np.ndarray, keep: np.ndarray) -> dict[str, np.ndarray]:
    """Split a scan's points by the filter's outcome (label 1 = keep = positive).

    Args:
        label: (H, W) labels: 1 keep, 0 artefact, 255 no point.
        keep: (H, W) bool keep mask of a filter.

    Returns:
        ``{"TP", "FN", "FP", "TN"}`` -> (H, W) bool masks; pixels without a point are in none.
    """
    label, keep = np.asarray(label), np.asarray(keep, bool)
    return {"TP": (label == KEEP) & keep, "FN": (label == KEEP) & ~keep, "FP": (label == ARTEFACT) & keep,
            "TN": (label == ARTEFACT) & ~keep}


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
    import plotly.graph_objects as go  # Plotly is heavy: loaded by the figures that need it

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


def outcome_image(label: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """An image of a filter's outcome at every pixel.

    Args:
        label: (H, W) labels.
        keep: (H, W) bool keep mask.

    Returns:
        (H, W, 3) float RGB in [0, 1]: the colours of ``OUTCOME_COLOURS``, white where there is no
        point.
    """
    image = np.ones((*np.shape(label), 3))
    for name, mask in outcomes(label, keep).items():
        image[mask] = plt.matplotlib.colors.to_rgb(OUTCOME_COLOURS[name])
    return image


def show_filter_masks(scan: Mapping, keeps: Mapping[str, np.ndarray], size: float = 3.4):
    """The truth and each filter's outcome image side by side, with a legend of the outcomes.

    Args:
        scan: a scan dict with ``label``.
        keeps: filter name -> its (H, W) bool keep mask.
        size: the width of each panel, in inches.

    Returns:
        The matplotlib figure.
    """
    label = np.asarray(scan["label"])
    panels = [("truth: grey true, red artefact", outcome_image(label, label == KEEP))]
    panels += [(name, outcome_image(label, keep)) for name, keep in keeps.items()]
    height, width = label.shape
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size * height / width + 0.9),
                             layout="constrained")
    for ax, (title, image) in zip(np.atleast_1d(axes), panels, strict=True):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [plt.matplotlib.patches.Patch(color=OUTCOME_COLOURS[k], label=OUTCOME_NAMES[k]) for k in OUTCOME_COLOURS]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8)
    return fig

