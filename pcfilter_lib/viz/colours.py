"""The colours that the Matplotlib and the Plotly figures share, and the split of a scan's points by a
filter's outcome (TP, FN, FP, TN) that the outcome figures colour.

A label's colour comes from ``labels.LABEL_COLOURS``, an artefact kind's from ``labels.KIND_HEX``.
"""

from __future__ import annotations

import numpy as np

from pcfilter_lib.labels import ARTEFACT, KEEP, LABEL_COLOURS, hex_colour

LABEL_HEX = {label: hex_colour(rgb) for label, rgb in LABEL_COLOURS.items()}  # labels.LABEL_COLOURS as "#rrggbb"
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

