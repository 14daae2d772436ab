"""Filters measured on labelled clouds without a pixel grid, such as real scans exported as
PointCleanNet pairs (``name.xyz`` with ``name.outliers``, 1 = outlier).

``reference_filters`` gives the filters a user gets without tuning anything: the shipped point
filter (at its card's threshold and at the balanced one) and SOR and ROR with the parameters tuned on
its simulated validation clouds (ROR's radius in point spacings), plus SOR with Open3D's usual
defaults. ``compare_on_clouds`` scores each on each cloud: balanced accuracy, mean IoU, keep-recall,
outlier recall and, for a learned filter, the ROC AUC of its keep probability.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pcfilter_lib.filters.baselines import BaselineFilter, tuned_spacing
from pcfilter_lib.filters.methods import DEFAULTS
from pcfilter_lib.filters.points import SHIPPED_POINT_MODEL, point_filter
from pcfilter_lib.io.clouds import cloud_scan, read_pointcleannet
from pcfilter_lib.io.model_cards import read_model_card
from pcfilter_lib.nn import scores

SCORES = ("balanced_accuracy", "mean_iou", "keep_recall", "outlier_recall", "roc_auc")


def labelled_pairs(folder: str | os.PathLike) -> list[Path]:
    """The ``name.xyz`` files of ``folder`` that have a ``name.outliers`` beside them, sorted; empty
    when the folder does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.xyz") if p.with_suffix(".outliers").is_file())


def cloud_scores(label: np.ndarray, keep: np.ndarray, prob: np.ndarray | None = None) -> dict:
    """The scores of one keep mask on one cloud (label 1 = keep).

    Args:
        label: (N,) 1 for true points, 0 for outliers.
        keep: (N,) bool, the filter's decision.
        prob: (N,) the keep probability the decision came from, for the ROC AUC (None for a
            classical filter).

    Returns:
        ``SCORES`` (``roc_auc`` None without ``prob`` or with one class only) and the confusion counts.
    """
    values = scores.evaluate_masks(label, keep.astype(np.float32))
    auc = scores.roc_auc(label, prob) if prob is not None and 0 < label.sum() < label.size else None
    return {"balanced_accuracy": values["balanced_accuracy"], "mean_iou": values["mean_iou"],
            "keep_recall": values["recall"], "outlier_recall": values["tnr"], "roc_auc": auc,
            "tp": values["tp"], "fn": values["fn"], "fp": values["fp"], "tn": values["tn"]}


def _setting(params: Mapping, spacings: bool = False) -> str:
    return ", ".join(f"{k} {v:.3g}" + " spacings" * (spacings and k == "radius") for k, v in params.items())


def reference_filters(model: str | os.PathLike = SHIPPED_POINT_MODEL) -> list[tuple[str, str, object]]:
    """The filters of the real-scan comparison, as (name, setting in words, filter).

    Args:
        model: the point filter's ``.keras`` file (its model card beside it gives the tuned baselines).

    Returns:
        The point filter at its card's threshold and at its balanced threshold, SOR and ROR tuned on
        its simulated validation clouds (ROR scaled to each cloud's spacing), and SOR with its
        defaults, the values of Open3D's tutorials (``methods.DEFAULTS``).
    """
    learned = point_filter(model)
    balanced = point_filter(model, threshold_rule="balanced")
    card = read_model_card(model)
    tuned = {m: card.details["densities"]["1.0"]["baselines"][m]["params"] for m in ("sor", "ror")}
    reference = tuned_spacing(model)
    in_spacings = {**tuned["ror"], "radius": tuned["ror"]["radius"] / reference}
    return [("point filter", f"threshold {learned.threshold:g} (card)", learned),
            ("point filter, balanced", f"threshold {balanced.threshold:g}", balanced),
            ("SOR, tuned", _setting(tuned["sor"]), BaselineFilter("sor", "sor", tuned["sor"])),
            ("ROR, tuned", _setting(in_spacings, spacings=True),
             BaselineFilter("ror", "ror", tuned["ror"], reference_spacing=reference)),
            ("SOR, Open3D defaults", _setting(DEFAULTS["sor"]), BaselineFilter("sor", "sor", dict(DEFAULTS["sor"])))]


def compare_on_clouds(paths: Sequence[str | os.PathLike], candidates: Sequence[tuple[str, str, object]]) -> list[dict]:
    """Score every candidate filter on every labelled cloud.

    Args:
        paths: PointCleanNet pairs (``labelled_pairs``).
        candidates: (name, setting, filter) triples (``reference_filters``); a learned filter's keep
            probability (``keep_probability_points``) also gives the ROC AUC.

    Returns:
        One row per cloud and filter: ``scan``, ``filter``, ``setting`` and ``cloud_scores``.
    """
    rows = []
    for path in paths:
        points, outlier = read_pointcleannet(path)
        label = (~outlier).astype(np.uint8)
        cloud = cloud_scan(points, label=label)
        probabilities = {}
        for name, setting, candidate in candidates:
            if hasattr(candidate, "keep_probability_points"):  # a learned filter: its P(keep) gives the ROC AUC
                model_key = id(getattr(candidate, "model", candidate))  # thresholds of one model share it
                if model_key not in probabilities:
                    probabilities[model_key] = candidate.keep_probability_points(points)
                prob = probabilities[model_key]
                row = cloud_scores(label, prob >= candidate.threshold, prob)
            else:
                row = cloud_scores(label, candidate.keep_mask(cloud)[0])
            rows.append({"scan": Path(path).stem, "filter": name, "setting": setting, **row})
    return rows


def mean_rows(rows: Sequence[Mapping]) -> list[dict]:
    """One row per filter with each score's mean over the clouds (``scan`` = "mean")."""
    means = []
    for name in dict.fromkeys(r["filter"] for r in rows):
        found = [r for r in rows if r["filter"] == name]
        settings = {r["setting"] for r in found}
        means.append({"scan": "mean", "filter": name, "setting": settings.pop() if len(settings) == 1 else "per scan",
                      **{k: None if any(r[k] is None for r in found) else float(np.mean([r[k] for r in found]))
                         for k in SCORES}})
    return means
