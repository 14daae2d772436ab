"""Measuring filters on labelled scans: pooled confusion metrics, the share of each artefact kind
removed, and the grid search of the classical baselines on validation scans.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from pcfilter_lib.filters import baselines
from pcfilter_lib.filters.base import Filter
from pcfilter_lib.io.scan import load_scan
from pcfilter_lib.labels import ARTEFACT, ARTEFACT_KINDS, KEEP, KIND_NAMES
from pcfilter_lib.nn import scores


def has_probability(scan_filter: Filter) -> bool:
    """Whether a filter's keep probability ranks points (the learned filters), rather than being its
    0/1 decision (the classical baselines), so that a ROC AUC means something."""
    return not isinstance(scan_filter, baselines.BaselineFilter)


def pooled_roc_auc(pool: Sequence[tuple[np.ndarray, np.ndarray]]) -> float | None:
    """The ROC AUC of P(keep) over (label, P(keep)) pairs of labelled points (``evaluate_filter``'s
    ``pool``), pooled; None when they lack true points or artefacts. It equals the ROC AUC of
    P(artefact) = 1 - P(keep) with the artefacts as positives: how often a random artefact is
    ranked as more likely an artefact than a random true point."""
    if not pool:
        return None
    truth = np.concatenate([t for t, _ in pool])
    score = np.concatenate([p for _, p in pool])
    if truth.all() or not truth.any():
        return None
    return float(scores.roc_auc(truth.astype(np.uint8), score))


def evaluate_filter(scan_filter: Filter, scans: Iterable[Mapping], progress: bool | Mapping = False,
                    roc: bool = False, pool: list | None = None) -> dict:
    """Metrics of a filter pooled over labelled scans.

    Args:
        scan_filter: any ``filters.base.Filter``.
        scans: scan dicts with ``label`` (and ``kind`` where known).
        progress: show a progress bar, or a mapping of tqdm settings for it (such as a ``delay``).
        roc: also give ``roc_auc``, the ROC AUC of the filter's P(keep) over the labelled points
            (``pooled_roc_auc``); None for a filter without a probability (``has_probability``).
        pool: a list to which each scan's (keep label, P(keep)) of its labelled points is added,
            for an AUC pooled over several calls (with ``roc``).

    Returns:
        tp, fn, fp, tn, every ``nn.scores.NAMES`` value, the number of scans, and ``kinds``: for
        each artefact kind its point count and the fraction removed (the recall of that kind; empty
        when the scans carry no ``kind``); with ``roc``, ``roc_auc`` (None where undefined).

    Raises:
        ValueError: there is no scan.
    """
    ranked = roc and has_probability(scan_filter)
    mine: list[tuple[np.ndarray, np.ndarray]] = []
    totals = np.zeros(4, np.int64)
    has_kinds = False
    kind_total = np.zeros(len(ARTEFACT_KINDS), np.int64)
    kind_removed = np.zeros(len(ARTEFACT_KINDS), np.int64)
    n = 0
    bar = dict(progress) if isinstance(progress, Mapping) else {"disable": not progress}
    for scan in tqdm(scans, desc=f"evaluating {scan_filter.name}", unit="scan", **bar):
        label = np.asarray(scan["label"])
        if ranked:  # one pass of the network gives both the decision and the ranking
            prob = np.asarray(scan_filter.keep_probability(scan))
            keep = (prob >= scan_filter.threshold) & np.asarray(scan["valid"], bool)
            labelled = (label == KEEP) | (label == ARTEFACT)
            mine.append((label[labelled] == KEEP, prob[labelled].astype(np.float32)))
        else:
            keep = scan_filter.keep_mask(scan)
        totals += scores.confusion_counts(label, keep.astype(np.float32), threshold=0.5)
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
    if pool is not None:
        pool.extend(mine)
    auc = {"roc_auc": pooled_roc_auc(mine)} if roc else {}
    return {"filter": scan_filter.name, "scans": n, "tp": tp, "fn": fn, "fp": fp, "tn": tn,
            **scores.confusion_metrics(tp, fn, fp, tn), **auc, "kinds": kinds}


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
            metrics = " | ".join("n/a" if r[key] is None or np.isnan(r[key]) else f"{r[key]:.4f}"
                                 for key in ("mean_iou", "balanced_accuracy", "recall"))  # n/a: undefined
            lines.append(f"| {name} | {filter_name} | {metrics} | {kinds} |")
    return lines
