"""Figures for the book: small Matplotlib helpers that take arrays and return the axes they drew on.

Every function draws into a given ``ax`` (or a new figure when ``ax`` is None) so that chapters can
compose panels freely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp


def _axes(ax, figsize=(5, 4)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def show_matrix(matrix, ax=None, title: str | None = None, annotate: bool = False):
    """Heat map of a (possibly sparse) matrix; structural zeros stay white.

    With ``annotate`` each non-zero entry is written into its cell (for small matrices).
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
    """Line plot of one quantity per layer for several stacks, with optional measured markers."""
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
    """A grid of 2D images with titles; returns the figure. ``vmin``/``vmax`` fix the colour range
    (needed for masks, which may be all one value)."""
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
    """Schematic of a U-Net from ``build_unet``: one box per block at the height of its resolution,
    labelled with its filter count; arrows for the skip connections."""
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
    """One curve per run of ``history[key]`` against the epoch (e.g. key="val_mean_iou")."""
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
    """2x2 confusion matrix, rows = truth (keep, artefact), columns = prediction; counts and row shares."""
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
    """Metrics of a ``metrics.threshold_sweep`` against the threshold, with the chosen one marked."""
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

KIND_COLOURS = ("#aaaaaa", "#3c3cc8", "#dc1e1e", "#f0a000", "#a028c8", "#28a03c")  # by kind code 0..5


def scan_figure_3d(scan: Mapping, colour_by: str = "label", max_points: int = 60000, seed: int = 0,
                   kind_names: Mapping[int, str] | None = None):
    """Plotly 3D scatter of a scan's measured points (camera frame, metres), coloured by ``label``
    (grey true geometry, red artefacts) or by artefact ``kind``; at most ``max_points`` points
    (a seeded random subset, artefacts always kept)."""
    import plotly.graph_objects as go

    if colour_by not in ("label", "kind"):
        raise ValueError(f"colour_by must be 'label' or 'kind', got {colour_by!r}")
    valid = np.asarray(scan["valid"])
    xyz = np.asarray(scan["xyz"])[valid]
    label, kind = np.asarray(scan["label"])[valid], np.asarray(scan["kind"])[valid]
    if len(xyz) == 0:
        raise ValueError("the scan has no points to show")
    keep = label == 0
    rest = np.flatnonzero(~keep)
    budget = max(max_points - int(keep.sum()), 0)
    if len(rest) > budget:
        keep[np.random.default_rng(seed).choice(rest, budget, replace=False)] = True
    else:
        keep[rest] = True
    names = kind_names or {0: "true", 1: "shadow", 2: "interreflection", 3: "mixed", 4: "specular", 5: "dark"}
    groups = ([(1, "true geometry", "#aaaaaa", label == 1), (0, "artefact", "#dc1e1e", label == 0)]
              if colour_by == "label" else
              [(code, names.get(code, str(code)), KIND_COLOURS[code % len(KIND_COLOURS)], kind == code)
               for code in np.unique(kind)])
    fig = go.Figure()
    for _, name, colour, mask in groups:
        mask = mask & keep
        if mask.any():
            fig.add_trace(go.Scatter3d(x=xyz[mask, 0], y=xyz[mask, 1], z=xyz[mask, 2], mode="markers", name=name,
                                       marker=dict(size=1 if name in ("true geometry", "true") else 1.8,
                                                   color=colour)))
    # Camera frame: y points down and z away from the scanner. Look from the side and above so that
    # points at a false depth stand out from the surfaces.
    fig.update_layout(scene=dict(aspectmode="data", xaxis_title="x (m)", yaxis_title="y (m)", zaxis_title="z (m)",
                                 camera=dict(up=dict(x=0, y=-1, z=0), eye=dict(x=1.2, y=-1.0, z=-0.9))),
                      legend=dict(itemsizing="constant"), margin=dict(l=0, r=0, t=30, b=0), height=550,
                      title=f"{int(valid.sum())} points, {int((label == 0).sum())} artefacts")
    return fig


def show_scan_channels(scan: Mapping, size: float = 3.2):
    """Image grid of a scan: intensity, depth, estimated normals (as RGB), label and artefact kind."""
    valid = np.asarray(scan["valid"])
    depth = np.where(valid, np.asarray(scan["xyz"])[..., 2], np.nan)
    normals = np.where(valid[..., None], (np.nan_to_num(np.asarray(scan["normals"])) + 1) / 2, 1.0)
    label = np.asarray(scan["label"]).astype(float)
    kind = np.where(label == 0, np.asarray(scan["kind"]), np.nan)
    panels = [("intensity", np.asarray(scan["intensity"]), dict(cmap="gray", vmin=0, vmax=1)),
              ("depth z (m)", depth, dict(cmap="viridis")),
              ("normals (x, y, z as RGB)", normals, {}),
              ("label: 1 true, 0 artefact, white no point", np.where(label == 255, np.nan, label),
               dict(cmap="coolwarm_r", vmin=0, vmax=1)),
              ("artefact kind", kind, dict(cmap=plt.matplotlib.colors.ListedColormap(KIND_COLOURS), vmin=-0.5,
                                           vmax=len(KIND_COLOURS) - 0.5))]
    height, width = valid.shape
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size * height / width + 0.8),
                             layout="constrained")
    for ax, (title, image, style) in zip(axes, panels, strict=True):
        shown = ax.imshow(image, interpolation="nearest", **style)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if image.ndim == 2 and title != "label: 1 true, 0 artefact, white no point":
            fig.colorbar(shown, ax=ax, shrink=0.7, location="bottom")
    return fig
