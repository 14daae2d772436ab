"""Figures and tables of organised scans as a scanner saw them: real labelled scans beside simulated
ones, the artefact kinds of a simulated scan, and the per-scan tables of the real-scan benchmarks.

A real scan here is a dict of ``xyz`` (H, W, 3) in metres (NaN where no point), ``intensity``
(H, W), ``valid`` (H, W) and ``artefact`` (H, W) bool: what ``io.ptx.read_ptx`` and
``read_ptx_labels`` give. The real scans were cropped to their object by their author (every other
pixel holds no point), so a figure shows the bounding box of the pixels with a point, not the whole
sensor. A simulated
scan adds ``label`` and ``kind`` (``pcfilter_lib.labels``), which only a simulation knows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

from pcfilter_lib.geometry.image_statistics import blob_sizes, silhouette
from pcfilter_lib.labels import ARTEFACT, ARTEFACT_KINDS, KEEP, KIND_HEX, KIND_NAMES, NO_POINT, REALISM_KINDS
from pcfilter_lib.viz.colours import LABEL_HEX, OUTCOME_COLOURS, OUTCOME_NAMES, outcomes
from pcfilter_lib.viz.figures import label_image, outcome_image
from pcfilter_lib.viz.tables import Table, markdown_table

FEW = 200  # a scan with at most this many artefacts has each one ringed: single pixels vanish when drawn
LABEL_TICKS = ("no point", "true", "artefact")


def point_box(valid: np.ndarray, margin: int = 8, share: float = 0.9) -> tuple[slice, slice]:
    """Rows and columns of the box (widened by ``margin`` pixels) around the largest connected pieces of
    the silhouette that together cover ``share`` of it: the object of a scan its author cropped to it,
    without the few small pieces far from it; the whole image when there is no point."""
    pieces, sizes = blob_sizes(silhouette(valid))
    if not len(sizes):
        return slice(None), slice(None)
    order = np.argsort(sizes)[::-1]
    count = int(np.searchsorted(np.cumsum(sizes[order]), share * sizes.sum())) + 1
    rows, cols = np.nonzero(np.isin(pieces, order[:count] + 1))
    h, w = valid.shape
    return (slice(max(rows.min() - margin, 0), min(rows.max() + margin + 1, h)),
            slice(max(cols.min() - margin, 0), min(cols.max() + margin + 1, w)))


def _image_axes(ax, title: str) -> None:
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("image column (px)")
    ax.set_ylabel("image row (px)")


def _extent(box: tuple[slice, slice], shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """imshow's extent for a crop, so that the axes count the whole image's rows and columns."""
    (top, bottom, _), (left, right, _) = (b.indices(n) for b, n in zip(box, shape, strict=True))
    return left - 0.5, right - 0.5, bottom - 0.5, top - 0.5


def _depth_panel(fig, ax, xyz: np.ndarray, valid: np.ndarray, title: str, extent=None) -> None:
    depth = np.where(valid, xyz[..., 2] * 1e3, np.nan)
    low, high = np.nanpercentile(depth, [1, 99]) if valid.any() else (0.0, 1.0)
    shown = ax.imshow(depth, cmap="viridis", vmin=low, vmax=high, interpolation="nearest", extent=extent)
    fig.colorbar(shown, ax=ax, shrink=0.8, label="depth (mm)")
    _image_axes(ax, f"{title}: depth")


def show_organised_scans(scans: Mapping[str, Mapping], size: float = 3.6):
    """Depth, intensity and labels of labelled organised scans, one row per scan, each cut to its object.

    Args:
        scans: title -> a scan (``xyz``, ``intensity``, ``valid``, ``artefact``; see the module).
        size: inches per panel.

    Returns:
        The figure, its axes counting the whole image's rows and columns. A label panel's title counts
        the artefacts in view, and all of them where some stray ones lie outside the box
        (``point_box``). Intensity is shown as the scanner recorded it, its colour scale cut at the
        99th percentile (a few highlights are far brighter than the rest); a scan with at most
        ``FEW`` artefacts has each one ringed in the label panel.
    """
    label_map = ListedColormap(["white", LABEL_HEX[1], LABEL_HEX[0]])
    fig, axes = plt.subplots(len(scans), 3, figsize=(3 * size + 1.5, size * len(scans)),
                             layout="constrained", squeeze=False)
    for row, (title, scan) in zip(axes, scans.items(), strict=True):
        box = point_box(scan["valid"])
        valid = scan["valid"][box]
        extent = _extent(box, scan["valid"].shape)
        _depth_panel(fig, row[0], scan["xyz"][box], valid, title, extent)
        intensity = np.where(valid, scan["intensity"][box], np.nan)
        high = float(np.nanpercentile(intensity, 99)) if valid.any() else 1.0
        shown = row[1].imshow(intensity, cmap="inferno", vmin=0.0, vmax=high, interpolation="nearest",
                              extent=extent)
        fig.colorbar(shown, ax=row[1], shrink=0.8, label="intensity (as recorded)")
        _image_axes(row[1], f"{title}: intensity")
        labels = np.where(valid, np.where(scan["artefact"][box], 2, 1), 0)
        shown = row[2].imshow(labels, cmap=label_map, vmin=-0.5, vmax=2.5, interpolation="nearest",
                              extent=extent)
        bar = fig.colorbar(shown, ax=row[2], shrink=0.8, label="label")
        bar.set_ticks([0, 1, 2], labels=list(LABEL_TICKS))
        rows, cols = np.nonzero(labels == 2)
        if 0 < len(rows) <= FEW:
            row[2].scatter(cols + extent[0] + 0.5, rows + extent[3] + 0.5, s=60, facecolors="none",
                           edgecolors=LABEL_HEX[0], linewidths=1.0)
        total = int(np.count_nonzero(scan["artefact"]))
        seen = f"{len(rows):,} of {total:,}" if len(rows) < total else f"{total:,}"
        _image_axes(row[2], f"{title}: {seen} artefacts")
    return fig


def kind_shares(scan: Mapping) -> dict[str, float]:
    """Share of a simulated scan's artefacts (label ``ARTEFACT``) of each cause, by kind name, every
    artefact kind listed (0 where none); all zero for a scan without artefacts."""
    kinds = np.asarray(scan["kind"])[np.asarray(scan["label"]) == ARTEFACT]
    return {KIND_NAMES[k]: float((kinds == k).mean()) if kinds.size else 0.0
            for k in ARTEFACT_KINDS + REALISM_KINDS}


def show_artefact_kinds(scans: Mapping[str, Mapping], size: float = 3.6):
    """Depth and artefact kinds of simulated scans side by side, one row of two panels per scan.

    The kind panel shows pixels without a point white, true points grey and each artefact in the
    colour of its cause (``labels.KIND_COLOURS``), named on the colour bar.

    Args:
        scans: title -> a simulated scan (``xyz``, ``valid``, ``label``, ``kind``).
        size: inches per panel.

    Returns:
        The figure.
    """
    causes = ARTEFACT_KINDS + REALISM_KINDS
    colours = ["white", LABEL_HEX[1], *(KIND_HEX[k] for k in causes)]
    kind_map = ListedColormap(colours)
    fig, axes = plt.subplots(len(scans), 2, figsize=(2 * size + 2.0, size * 0.8 * len(scans)),
                             layout="constrained", squeeze=False)
    for row, (title, scan) in zip(axes, scans.items(), strict=True):
        valid = np.asarray(scan["valid"])
        _depth_panel(fig, row[0], np.asarray(scan["xyz"]), valid, title)
        index = np.where(valid, 1, 0)
        artefact = valid & (np.asarray(scan["label"]) == ARTEFACT)
        for i, kind in enumerate(causes):
            index[artefact & (np.asarray(scan["kind"]) == kind)] = i + 2
        shown = row[1].imshow(index, cmap=kind_map, vmin=-0.5, vmax=len(colours) - 0.5, interpolation="nearest")
        bar = fig.colorbar(shown, ax=row[1], shrink=0.9, label="label and artefact kind")
        bar.set_ticks(range(len(colours)), labels=["no point", "true", *(KIND_NAMES[k] for k in causes)])
        _image_axes(row[1], f"{title}: {int(artefact.sum()):,} artefacts by kind")
    return fig


def show_real_outcomes(scans: Mapping[str, Mapping], keeps: Mapping[str, Mapping[str, np.ndarray]],
                       size: float = 3.0, columns: int | None = None):
    """What each filter did on labelled organised scans: per scan, its labels and then each filter's
    outcome at every pixel (``OUTCOME_COLOURS``), cut to the object as ``show_organised_scans`` cuts it;
    a scan's panels fill rows of ``columns`` (default: all in one row), so that a page can show them
    large enough.

    Args:
        scans: title -> a scan (``valid``, ``artefact``; see the module).
        keeps: title -> {filter name -> its (H, W) bool keep mask on that scan}; every scan the same
            filters in the same order.
        size: inches per panel.
        columns: panels per row (each scan starts a new row).

    Returns:
        The figure, with a legend of the outcomes. A panel's title counts what the filter removed in the
        whole scan; the labels' title, the artefacts in view and in all (stray ones may lie outside). On a
        scan with at most ``FEW`` artefacts each artefact is ringed in its outcome's colour: single
        pixels vanish when drawn.
    """
    names = list(next(iter(keeps.values())))
    columns = columns or len(names) + 1
    per_scan = -(-(len(names) + 1) // columns)  # rows of panels per scan
    fig, grid = plt.subplots(len(scans) * per_scan, columns, layout="constrained", squeeze=False,
                             figsize=(columns * size, size * len(scans) * per_scan + 0.6))
    for index, (title, scan) in enumerate(scans.items()):
        block = list(grid[index * per_scan:(index + 1) * per_scan].flat)
        row = block[:len(names) + 1]
        for ax in block[len(names) + 1:]:
            ax.set_axis_off()
        box = point_box(scan["valid"])
        extent = _extent(box, scan["valid"].shape)
        valid, artefact = np.asarray(scan["valid"])[box], np.asarray(scan["artefact"])[box]
        label = np.where(valid, np.where(artefact, ARTEFACT, KEEP), NO_POINT)
        seen, total = int((artefact & valid).sum()), int(np.count_nonzero(scan["artefact"]))
        ringed = 0 < seen <= FEW
        row[0].imshow(label_image(label), interpolation="nearest", extent=extent)
        if ringed:
            rows, cols = np.nonzero(artefact & valid)
            row[0].scatter(cols + extent[0] + 0.5, rows + extent[3] + 0.5, s=50, facecolors="none",
                           edgecolors=LABEL_HEX[ARTEFACT], linewidths=1.0)
        _image_axes(row[0], f"{title}: " + (f"{seen:,} of {total:,}" if seen < total else f"{total:,}")
                    + " artefacts (red)")
        for ax, name in zip(row[1:], names, strict=True):
            keep = np.asarray(keeps[title][name], bool)[box] & valid
            ax.imshow(outcome_image(label, keep), interpolation="nearest", extent=extent)
            if ringed:
                for outcome, mask in outcomes(label, keep).items():
                    rows, cols = np.nonzero(mask & artefact)
                    if len(rows):
                        ax.scatter(cols + extent[0] + 0.5, rows + extent[3] + 0.5, s=50, facecolors="none",
                                   edgecolors=OUTCOME_COLOURS[outcome], linewidths=1.0)
            removed = int((valid & ~keep).sum())
            _image_axes(ax, f"{name}: removed {removed:,}")
            ax.set_ylabel("")
    handles = [plt.matplotlib.patches.Patch(color=OUTCOME_COLOURS[k], label=OUTCOME_NAMES[k]) for k in OUTCOME_COLOURS]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8)
    return fig


def _number(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def quality_table(rows: Sequence[Mapping], form: str = "organised", kind: str = "result",
                  first: str = "U-Net") -> tuple[Table, list[str], list[str]]:
    """Balanced accuracy, ROC AUC and mean IoU of every filter on every scan, from the rows of
    ``benchmarks/realscan_quality.json``: one row per filter, three columns per scan.

    Args:
        rows: its ``all_rows`` (each with ``form``, ``kind``, ``scan``, ``filter``, ``balanced_accuracy``,
            ``roc_auc`` or None, ``mean_iou``).
        form: which form of the scans ("organised" or "points").
        kind: which kind of row ("result": nothing tuned on the real scans).
        first: filters whose name starts with this come first; the others keep the file's order.

    Returns:
        The table, its filters in order, and its scans in order (a scan called "mean" left out).
    """
    chosen = [r for r in rows if r["form"] == form and r["kind"] == kind and r["scan"] != "mean"]
    scans = list(dict.fromkeys(r["scan"] for r in chosen))
    names = list(dict.fromkeys(r["filter"] for r in chosen))
    names = [n for n in names if n.startswith(first)] + [n for n in names if not n.startswith(first)]
    found = {(r["filter"], r["scan"]): r for r in chosen}
    header = ["filter"] + [f"{scan}: {what}" for scan in scans for what in ("bal. acc.", "ROC AUC", "mean IoU")]
    table_rows = []
    for name in names:
        cells = [name]
        for scan in scans:
            r = found.get((name, scan))
            cells += (["-"] * 3 if r is None else
                      [_number(r["balanced_accuracy"]), _number(r["roc_auc"]), _number(r["mean_iou"])])
        table_rows.append(cells)
    return markdown_table(header, table_rows), names, scans


def _summary_cell(values: Sequence[float], fmt: str) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean, low, high = float(np.mean(values)), min(values), max(values)
    if len(values) == 1 or low == high:
        return fmt.format(mean)
    return f"{fmt.format(mean)} ({fmt.format(low)}-{fmt.format(high)})"


def comparison_table(record: Mapping, family: str, sets: Mapping[str, str],
                     measures: Sequence[tuple[str, str, str]]) -> Table:
    """Real against simulated artefacts in the same measures, from ``benchmarks/results/sim_vs_real.json``.

    Args:
        record: the file's content (``pairs``: family -> real scan; ``real``: scan -> statistics;
            ``simulated``: set -> family -> one statistics dict per simulated scan).
        family: "board" or "fruit".
        sets: the simulated sets to show, in order: the record's name -> the column's name (sets the
            record lacks are left out).
        measures: (row label, statistic, format) per row, e.g. ``("offset (mm)", "offset_abs_mm_p50", "{:.2f}")``.

    Returns:
        A table: one row per measure; the real scan, then each set's mean (min-max) over its scans.
    """
    real = record["pairs"][family]
    present = [s for s in sets if family in record["simulated"].get(s, {})]
    header = ["measure", f"{real} (real)"] + [f"{sets[s]} ({len(record['simulated'][s][family])} scans)"
                                               for s in present]
    rows = []
    for label, key, fmt in measures:
        cells = [label, _summary_cell([record["real"][real].get(key)], fmt)]
        cells += [_summary_cell([scan.get(key) for scan in record["simulated"][s][family]], fmt) for s in present]
        rows.append(cells)
    return markdown_table(header, rows)
