"""Matplotlib figures for the book: matrices, images, clouds, a U-Net's shape, confusion matrices,
weight histograms, octree slices, a scan's channels, filter outcomes, and a cloud's tiles with the
task graph of a filter run on them.

Each function takes arrays and returns what it drew on: a function of one panel draws into a given
``ax`` (or a new figure when ``ax`` is None) and returns the axes, so that chapters can compose
panels freely; a function of several panels returns its figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.legend_handler import HandlerTuple
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from pcfilter_lib.filters.tile_store import TileGrid
from pcfilter_lib.labels import ARTEFACT, ARTEFACT_KINDS, KIND_HEX, KIND_NAMES, LABEL_COLOURS
from pcfilter_lib.viz.colours import OUTCOME_COLOURS, OUTCOME_NAMES, outcomes


def axes_or_new(ax, figsize=(5, 4)):
    """``ax``, or the axes of a new figure of ``figsize`` inches when ``ax`` is None."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def show_matrix(matrix, ax=None, title: str | None = None, annotate: bool = False):
    """Heat map of a (possibly sparse) matrix; structural zeros stay white.

    Args:
        matrix: a 2D array or ``scipy.sparse`` matrix, such as ``lessons.convmath.conv2d_matrix``.
        ax: the matplotlib axes to draw into; None makes a new figure.
        title: a title above the count of non-zero entries.
        annotate: write each non-zero entry into its cell (for small matrices) instead of a colour bar.

    Returns:
        The axes.
    """
    dense = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix, dtype=float)  # scipy.sparse
    ax = axes_or_new(ax, figsize=(max(3, dense.shape[1] * 0.35), max(2.5, dense.shape[0] * 0.35)))
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
        plt.colorbar(image, ax=ax, shrink=0.8, label="matrix entry (white: structural zero)")
    return ax


def plot_growth(curves: Mapping[str, Sequence[float]], measured: Mapping[str, Sequence[float]] | None = None,
                ax=None, xlabel: str = "layers", ylabel: str = "receptive field (pixels)", logy: bool = False):
    """Line plot of one quantity per layer for several stacks, with optional measured markers.

    The legend has one entry per stack, drawn as its line with its marker; its title says that the
    lines are the formula and the open markers the measurement.

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
    ax = axes_or_new(ax)
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D"]
    handles = []
    for n, (name, values) in enumerate(curves.items()):
        x = np.arange(1, len(values) + 1)
        (line,) = ax.plot(x, values, styles[n % 4], linewidth=2)
        handle = line
        if measured and name in measured:
            (dots,) = ax.plot(x, measured[name], markers[n % 4], color=line.get_color(), fillstyle="none",
                              markersize=9)
            handle = (line, dots)
        handles.append((handle, name))
        ax.set_xticks(x)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    title = "line: formula, open marker: measured" if measured else None
    ax.legend([h for h, _ in handles], [name for _, name in handles], fontsize=8, title=title, title_fontsize=8,
              handler_map={tuple: HandlerTuple(ndivide=None)})
    return ax


def plain_log_ticks(ax, x: Sequence[float] | None = None, y: Sequence[float] | None = None):
    """Plain numbers as the tick labels of logarithmic axes.

    On a log axis matplotlib labels minor ticks such as 30 or 40 as "3x10^1" once a decade holds few
    major ticks, and these labels crowd the ones a figure sets. This puts ticks at ``x`` and ``y`` (where
    given) with plain labels and removes the minor tick labels. A log axis without given ticks is ticked
    at 1, 2 and 5 times the powers of ten where it spans at most three decades (so that a short axis still
    has several labels), else at the powers of ten, all written as plain numbers. Call it after
    plotting, since it reads the axis' range.

    Args:
        ax: the matplotlib axes.
        x: the values to tick on the x axis, or None.
        y: the values to tick on the y axis, or None.

    Returns:
        The axes.
    """
    plain = FuncFormatter(lambda value, _: f"{value:,.10g}")
    for axis, ticks in ((ax.xaxis, x), (ax.yaxis, y)):
        if ticks is not None:
            axis.set_ticks(list(ticks))
        elif axis.get_scale() != "log":
            continue  # a linear axis without given ticks keeps its labels
        else:
            low, high = sorted(abs(v) for v in axis.get_view_interval())
            decades = np.log10(high / low) if low > 0 else np.inf
            axis.set_major_locator(LogLocator(base=10, subs=(1.0,) if decades > 3 else (1.0, 2.0, 5.0)))
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(NullFormatter())
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
    ax = axes_or_new(ax, figsize=(10, 4))

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
    ax = axes_or_new(ax, figsize=(3.2, 3))
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
    ax = axes_or_new(ax, figsize=(0.55 * len(classes) + 2.5, 0.5 * len(classes) + 1.5))
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


def plot_octree_slice(levels: Sequence[np.ndarray], z: int, ax=None, title: str | None = None):
    """The cells of an octree (``sparse_grids.octree_levels``) that the plane through voxel layer ``z`` of the
    finest level cuts: occupied finest cells filled, empty cells outlined at the size where the octree
    stops refining them.

    Args:
        levels: the octree's levels, coarsest first (``geometry.sparse_grids.octree_levels``).
        z: the voxel layer of the finest level to cut.
        ax: the matplotlib axes to draw into; None makes a new figure.
        title: a title.

    Returns:
        The axes.
    """
    ax = axes_or_new(ax, figsize=(4.5, 4.5))
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
    ax.legend([plt.Rectangle((0, 0), 1, 1, color="tab:orange"),
               plt.Rectangle((0, 0), 1, 1, fill=False, edgecolor="tab:blue")],
              ["occupied cell of the finest level", "empty cell, not refined further"], fontsize=8,
              loc="upper right")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


# Scans and filter outcomes --------------------------------------------------------------------


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
    label_rgb = label_image(label)
    # An artefact's kind as its place in ARTEFACT_KINDS, so that the colour bar holds only the kinds
    # that make artefacts, each named.
    kind = np.full(label.shape, np.nan)
    for place, code in enumerate(ARTEFACT_KINDS):
        kind[(label == ARTEFACT) & (np.asarray(scan["kind"]) == code)] = place
    kind_colours = plt.matplotlib.colors.ListedColormap([KIND_HEX[code] for code in ARTEFACT_KINDS])
    # (title, image, imshow style, with a colour bar?)
    panels = [("intensity", np.asarray(scan["intensity"]), dict(cmap="gray", vmin=0, vmax=1), True),
              ("depth z (m)", depth, dict(cmap="viridis"), True),
              ("normals (x, y, z as RGB)", normals, {}, False),
              ("label: grey true, red artefact, white no point", label_rgb, {}, False),
              ("artefact kind", kind, dict(cmap=kind_colours, vmin=-0.5, vmax=len(ARTEFACT_KINDS) - 0.5),
               True)]
    height, width = valid.shape
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size * height / width + 0.8),
                             layout="constrained")
    for ax, (title, image, style, colour_bar) in zip(axes, panels, strict=True):
        shown = ax.imshow(image, interpolation="nearest", **style)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if colour_bar:
            bar = fig.colorbar(shown, ax=ax, shrink=0.7, location="bottom")
            if title == "artefact kind":
                bar.set_ticks(range(len(ARTEFACT_KINDS)), labels=[KIND_NAMES[c] for c in ARTEFACT_KINDS],
                              fontsize=7)
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


def label_image(label: np.ndarray) -> np.ndarray:
    """(H, W, 3) float RGB in [0, 1] of the labels: ``LABEL_COLOURS`` (grey true geometry, red artefact),
    white where there is no point."""
    label = np.asarray(label)
    image = np.ones((*label.shape, 3))
    for code, rgb in LABEL_COLOURS.items():
        image[label == code] = np.asarray(rgb) / 255
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
    # The truth in the label colours: an outcome image of a perfect filter would draw its artefacts
    # as removed (blue), not as artefacts.
    panels = [("truth: grey true, red artefact", label_image(label))]
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


def plot_tile_tasks(xyz: np.ndarray, grid: TileGrid, cell: int, margin: float, max_points: int = 40_000,
                    size: float = 4.5):
    """A cloud cut into tiles, and the task graph of SOR on them (``filters.classical_tiles``).

    Left, a top view of the cloud over the grid's two axes, the lower-numbered axis (x before y before z)
    across and the other up, as a map is read, whichever of them the grid cuts first; each tile's points
    in a colour of their own and numbered as the grid numbers its cells, with ``cell``'s box and its halo,
    the box grown by ``margin``. Right, the graph of the run: the client cuts the cloud into one file per
    tile, one task per tile finds each of its points' mean neighbour distance (reading its halo from the neighbours'
    files), the client gathers the means in tile order, sums them into the threshold and decides every
    point, all drawn from the tiles this grid makes of this cloud.

    Args:
        xyz: (N, 3) finite coordinates.
        grid: the tiles (``filters.tile_store.TileGrid.cover`` of the cloud's bounding box).
        cell: the tile whose halo is drawn.
        margin: how far the halo reaches beyond the tile, in the cloud's unit.
        max_points: at most this many points are drawn (an even sample), to keep the figure light.
        size: the height of the figure, in inches.

    Returns:
        The figure: its first axes hold one scatter (a ``PathCollection``) per tile with points, in
        tile order.
    """
    xyz = np.asarray(xyz, np.float64)
    cells = grid.cells(xyz)
    tiles = [int(c) for c in np.unique(cells)]
    colours = plt.get_cmap("tab10" if len(tiles) <= 10 else "tab20")
    colour = {tile: colours(k % colours.N) for k, tile in enumerate(tiles)}
    fig, (top, graph) = plt.subplots(1, 2, figsize=(2.4 * size, size), layout="constrained",
                                     gridspec_kw={"width_ratios": [1, 1.3]})
    # The grid's axes are widest first; the view puts the lower-numbered one across (``order`` picks
    # the grid's coordinates in that order, for points, boxes and grid lines alike).
    order = [0, 1] if grid.axes[0] < grid.axes[1] else [1, 0]
    a, b = (grid.axes[k] for k in order)
    shown = np.arange(0, len(xyz), max(1, -(-len(xyz) // max_points)))
    for tile in tiles:
        mine = shown[cells[shown] == tile]
        top.scatter(xyz[mine, a], xyz[mine, b], s=0.3, color=colour[tile], rasterized=True)
        (low, high) = (corner[order] for corner in grid.box(tile, 0.0))
        top.text(*(low + high) / 2, str(tile), ha="center", va="center", fontsize=9, weight="bold",
                 bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.7, "linewidth": 0})
    for grown, style, name in ((0.0, "-", f"tile {cell}"), (margin, "--", f"its halo ({margin:.3g} m wider)")):
        low, high = (corner[order] for corner in grid.box(cell, grown))
        top.add_patch(plt.Rectangle(low, *(high - low), fill=False, linestyle=style, linewidth=1.5,
                                    edgecolor="black", label=name))
    edges = [grid.low[grid.axes[k]] + grid.size * np.arange(grid.shape[k] + 1) for k in order]
    top.vlines(edges[0], edges[1][0], edges[1][-1], color="0.8", linewidth=0.6, zorder=0)
    top.hlines(edges[1], edges[0][0], edges[0][-1], color="0.8", linewidth=0.6, zorder=0)
    pad = margin + 0.02 * grid.size
    top.set(xlabel=f"{'xyz'[a]} (m)", ylabel=f"{'xyz'[b]} (m)", aspect="equal",
            xlim=(edges[0][0] - pad, edges[0][-1] + pad), ylim=(edges[1][0] - pad, edges[1][-1] + pad),
            title=f"{len(xyz):,} points, {len(tiles)} tiles with points")
    top.legend(loc="upper right", fontsize=8, framealpha=0.9)
    _draw_sor_graph(graph, tiles, colour)
    return fig


def _draw_sor_graph(ax, tiles: Sequence[int], colour: Mapping[int, tuple]) -> None:
    """The task graph of ``plot_tile_tasks``: client steps in grey, one worker task per tile."""
    n, middle = len(tiles), 0.6
    xs = np.linspace(0.2, 1.0, n + 2)[1:-1] if n > 1 else np.array([middle])
    client = [(5.0, "cut the cloud into one file per tile"), (2.9, "gather the means in tile order"),
              (2.0, "sum them in the cloud's order: mean, std\nthreshold = mean + std_ratio · std"),
              (1.0, "pass 2: keep each point if 0 < m < threshold"),
              (0.1, "write the kept points in the cloud's order")]
    box = {"boxstyle": "round,pad=0.35", "facecolor": "0.9", "edgecolor": "0.4"}
    arrow = {"arrowstyle": "-|>", "color": "0.4", "linewidth": 0.8, "shrinkA": 9, "shrinkB": 9}
    for x, tile in zip(xs, tiles, strict=True):
        ax.annotate("", (x, 4.0), (middle, 5.0), arrowprops=arrow)
        ax.annotate("", (middle, 2.9), (x, 4.0), arrowprops=arrow)
        ax.text(x, 4.0, f"{tile}", ha="center", va="center", fontsize=8 if n <= 12 else 6,
                bbox={"boxstyle": "circle,pad=0.3", "facecolor": colour[tile], "edgecolor": "0.3"})
    for (y0, _), (y1, _) in zip(client[1:], client[2:], strict=False):
        ax.annotate("", (middle, y1), (middle, y0), arrowprops=arrow)
    for y, text in client:
        ax.text(middle, y, text, ha="center", va="center", fontsize=8, bbox=box)
    for y, text in ((5.0, "client"), (4.0, f"pass 1:\n{n} tasks\non the\nworkers"), (1.5, "client")):
        ax.text(0.0, y, text, ha="left", va="center", fontsize=8, color="0.3", style="italic")
    ax.text(middle, 3.55, "each task: its tile + halo -> every point's mean distance m to its k nearest",
            ha="center", va="center", fontsize=7, color="0.3",
            bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0, "pad": 1})
    ax.set(xlim=(-0.02, 1.12), ylim=(-0.3, 5.4), title="SOR in tiles: the task graph")
    ax.set_axis_off()
