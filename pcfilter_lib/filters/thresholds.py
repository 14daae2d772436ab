"""The decision threshold of a learned filter, chosen on validation scans: the best mean IoU among
thresholds that keep at least 99.5% of the true points (``nn.scores.keep_threshold``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pcfilter_lib.filters.base import Filter
from pcfilter_lib.nn import scores


def choose_threshold(scan_filter: Filter, scans: Sequence[Mapping], min_recall: float = 0.995,
                     thresholds: Sequence[float] | None = None) -> tuple[float, dict]:
    """The threshold of ``scan_filter`` with the best mean IoU on ``scans`` among those keeping at
    least ``min_recall`` of the true points.

    Args:
        scan_filter: a learned filter (its own threshold is not used).
        scans: labelled validation scans or clouds, never the test split.
        min_recall: the share of true points that must be kept.
        thresholds: the candidates (default: those of ``nn.scores.threshold_sweep``).

    Returns:
        ``(threshold, sweep)``: the threshold (the lowest candidate if none keeps enough) and the
        ``nn.scores.threshold_sweep`` it came from.
    """
    prob = scan_filter.keep_probabilities(scans)
    label = np.concatenate([np.asarray(s["label"]).ravel() for s in scans])
    return scores.keep_threshold(label, np.concatenate([p.ravel() for p in prob]), min_recall, thresholds)
