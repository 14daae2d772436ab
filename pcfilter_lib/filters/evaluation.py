"""Measuring filters on labelled scans: pooled confusion metrics, the share of each artefact kind
removed, and the grid search of the classical baselines on validation scans.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from pcfilter_lib.data.scans import channels_for
from pcfilter_lib.filters import baselines
from pcfilter_lib.filters.base import Filter
from pcfilter_lib.filters.unet import UNetFilter
from pcfilter_lib.io.scan import load_scan
from pcfilter_lib.labels import ARTEFACT, ARTEFACT_KINDS, KIND_NAMES
from pcfilter_lib.nn import metrics


def evaluate_filter(scan_filter: Filter, scans: Iterable[Mapping], progress: bool = False) -> dict:
    """Metrics of a filter pooled over labelled scans.

    Args:
        scan_filter: any ``filters.base.Filter``.
        scans: scan dicts with ``label`` (and ``kind`` where known).
        progress: show a progress bar.

    Returns:
        tp, fn, fp, tn, every ``nn.metrics.NAMES`` value, the number of scans, and ``kinds``: for
        each artefact kind its point count and the fraction removed (the recall of that kind; empty
        when the scans carry no ``kind``).

    Raises:
        ValueError: there is no scan.
    """
    totals = np.zeros(4, np.int64)
    has_kinds = False
    kind_total = np.zeros(len(ARTEFACT_KINDS), np.int64)
    kind_removed = np.zeros(len(ARTEFACT_KINDS), np.int64)
    n = 0
    for scan in tqdm(scans, desc=f"evaluating {scan_filter.name}", unit="scan", disable=not progress):
        keep = scan_filter.keep_mask(scan)
        label = np.asarray(scan["label"])
        totals += metrics.confusion_counts(label, keep.astype(np.float32), threshold=0.5)
        n += 1
        if scan.get("kind") is None:  # e.g. PointCleanNet pairs: outlier or not, no kinds
            continue
        has_kinds, kind, artefact = True, np.asarray(scan["kind"]), label == ARTEFACT
        for k, code in enumerate(ARTEFACT_KINDS):
            of_kind = artefact & (kind == code)
            kind_total[k] += of_kind.sum()
            kind_removed[k] += (of_kind & ~keep).sum()
    if n == 0:
        raise ValueError("evaluation needs at least one scan")
    tp, fn, fp, tn = (int(v) for v in totals)
    kinds = {KIND_NAMES[code]: {"points": int(kind_total[k]),
                                "removed": float(kind_removed[k] / kind_total[k]) if kind_total[k] else None}
             for k, code in enumerate(ARTEFACT_KINDS)} if has_kinds else {}
    return {"filter": scan_filter.name, "scans": n, "tp": tp, "fn": fn, "fp": fp, "tn": tn,
            **metrics.confusion_metrics(tp, fn, fp, tn), "kinds": kinds}


class _ChannelReplaced:
    """A U-Net's model with one input channel replaced by a constant before every prediction.

    It offers what ``filters.unet.predict_keep`` uses of a Keras model (``input_shape``, ``layers``
    and ``predict_on_batch``), so the ablated filter runs the same code as the filter itself.
    """

    def __init__(self, model, channel: int):
        self.model, self.channel = model, channel
        self.input_shape, self.layers = model.input_shape, model.layers
        self.names = channels_for(int(model.input_shape[-1]))

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        x = np.array(x, dtype=np.float32)  # a copy: (B, H, W, C) channels of data.scans.scan_inputs
        if self.names[self.channel] == "valid":
            x[..., self.channel] = 1.0  # every pixel claims a point
        else:
            # A pixel holds a point where its validity channel is 1, or (five channels) where its normal
            # channels are not all 0: (n + 1) / 2 of a unit normal never is.
            normal = [self.names.index(n) for n in ("nx", "ny", "nz")]
            points = (x[..., self.names.index("valid")] > 0.5 if "valid" in self.names
                      else (x[..., normal] > 0).any(axis=-1))
            for image, mask in zip(x, points, strict=True):
                if mask.any():
                    image[..., self.channel] = np.where(mask, image[..., self.channel][mask].mean(), 0.0)
        return self.model.predict_on_batch(x)


def channel_ablation(unet: UNetFilter, scans: Sequence[Mapping], progress: bool = False) -> dict[str, dict]:
    """How much a U-Net filter relies on each input channel: its metrics with one channel at a time
    carrying no information.

    A value channel (intensity, depth, a normal component) is replaced, scan by scan, by its mean
    over the scan's points; pixels without a point keep 0, as in training. The validity channel,
    which is 1 on every point anyway, is set to 1 on every pixel, so the holes no longer show in it.
    The filter keeps its threshold.

    Args:
        unet: the filter to probe (its channels: ``data.scans.channels_for``).
        scans: labelled scan dicts, as for ``evaluate_filter``.
        progress: show a progress bar per evaluation.

    Returns:
        ``{"none": ..., channel name: ...}``: the ``evaluate_filter`` result with every channel
        intact, then one per channel the model reads, in the model's order.
    """
    results = {"none": evaluate_filter(unet, scans, progress)}
    for channel, name in enumerate(unet.channels):
        ablated = UNetFilter(f"{unet.name} without {name}", _ChannelReplaced(unet.model, channel), unet.threshold)
        results[name] = evaluate_filter(ablated, scans, progress)
    return results


def iter_scans(files: Iterable[str | os.PathLike], arrays: tuple[str, ...] = ()):
    """Load scans one at a time, so that a whole split never has to fit in memory.

    Args:
        files: scan ``.npz`` files.
        arrays: extra arrays to load, such as "clean_xyz".

    Yields:
        One scan dict per file.
    """
    for path in files:
        yield load_scan(path, arrays=arrays)


def tune_baselines(val_scans: Sequence[Mapping], grids: Mapping[str, Mapping] | None = None) -> dict:
    """Tune the classical baselines by grid search on validation scans.

    Args:
        val_scans: labelled validation scans, never the test split.
        grids: method -> {parameter: candidate values}; default all three methods with
            ``baselines.GRIDS``.

    Returns:
        method -> ``params`` (the best by mean IoU), ``validation`` (its mean IoU, balanced
        accuracy and recall) and ``rows`` (every combination tried, with its metrics).
    """
    grids = baselines.GRIDS if grids is None else grids
    tuned = {}
    for method in grids:
        params, rows = baselines.tune(val_scans, method, grids[method])
        best = next(r for r in rows if all(r[k] == v for k, v in params.items()))
        tuned[method] = {"params": params, "validation": {k: best[k] for k in ("mean_iou", "balanced_accuracy",
                                                                                 "recall")},
                         "rows": rows}
    return tuned


def evaluate_all(filters: Sequence[Filter], scans: Sequence[Mapping]) -> dict[str, dict]:
    """Evaluate several filters on the same scans.

    Args:
        filters: the filters.
        scans: labelled scans.

    Returns:
        filter name -> its ``evaluate_filter`` result.
    """
    return {f.name: evaluate_filter(f, scans) for f in filters}


def _removed(kind: Mapping) -> str:
    """How much of one artefact kind a filter removed: a share, or the counts below 100 points."""
    if kind["points"] < 100:
        return f"{round(kind['removed'] * kind['points'])} of {kind['points']}"
    return f"{kind['removed']:.0%}"


def sets_table(results: Mapping[str, Mapping[str, dict]]) -> list[str]:
    """The markdown lines of a table of filters on several sets of scans, as the benchmarks print it.

    Args:
        results: set name -> filter name -> its ``evaluate_filter`` result.

    Returns:
        The header, its rule and one line per set and filter: mean IoU, balanced accuracy,
        keep-recall and the share of each artefact kind present that was removed; a kind of fewer
        than 100 points shows its counts instead ("decoding 5 of 7"), since a share of a handful of
        points says little.
    """
    lines = ["| scans | filter | mean IoU | balanced accuracy | keep-recall | removed per kind |",
             "|---|---|---|---|---|---|"]
    for name, rows in results.items():
        for filter_name, r in rows.items():
            kinds = ", ".join(f"{k} {_removed(v)}" for k, v in r["kinds"].items() if v["points"])
            lines.append(f"| {name} | {filter_name} | {r['mean_iou']:.4f} | {r['balanced_accuracy']:.4f} | "
                         f"{r['recall']:.4f} | {kinds} |")
    return lines
