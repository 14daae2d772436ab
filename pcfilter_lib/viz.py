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
                size: float = 2.6, colorbar: bool = True, annotate: bool = False):
    """A grid of 2D images with titles; returns the figure."""
    n = len(images)
    if n == 0:
        raise ValueError("show_images needs at least one image")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False, layout="constrained")
    for ax, (title, image) in zip(axes.flat, images.items(), strict=False):
        image = np.asarray(image)
        shown = ax.imshow(image, cmap=cmap, interpolation="nearest")
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
