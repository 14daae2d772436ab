"""Label and artefact-kind codes, their names and colours: the one place that defines them.

Every point or pixel of a labelled scan carries a **label** (``KEEP`` = true geometry, ``ARTEFACT``
= a false measurement, ``NO_POINT`` = the pixel measured nothing) and an artefact **kind**, the
physical cause of an artefact or of a missing point (``pcfilter_lib.simulate.scanner`` explains
each). Label 1 = keep follows the seed slides: binary cross-entropy with y = 1 for true geometry.
"""

from __future__ import annotations

import numpy as np

ARTEFACT, KEEP, NO_POINT = 0, 1, 255
LABEL_VALUES = (ARTEFACT, KEEP, NO_POINT)
LABEL_NAMES = {KEEP: "true geometry", ARTEFACT: "artefact", NO_POINT: "no point"}

KIND_NONE, KIND_SHADOW, KIND_INTERREFLECTION, KIND_MIXED, KIND_SPECULAR, KIND_DARK, KIND_DECODING = range(7)
KIND_NAMES = {KIND_NONE: "none", KIND_SHADOW: "shadow", KIND_INTERREFLECTION: "interreflection",
              KIND_MIXED: "mixed", KIND_SPECULAR: "specular", KIND_DARK: "dark", KIND_DECODING: "decoding"}
ARTEFACT_KINDS = (KIND_INTERREFLECTION, KIND_MIXED, KIND_SPECULAR, KIND_DECODING)  # the causes of label ARTEFACT

# Colours (8-bit RGB) for drawings and coloured cloud files.
LABEL_COLOURS = {KEEP: (170, 170, 170), ARTEFACT: (220, 30, 30)}  # true geometry grey, artefact red
KIND_COLOURS = np.array([(170, 170, 170), (60, 60, 200), (220, 30, 30), (240, 160, 0), (160, 40, 200),
                         (40, 160, 60), (0, 170, 200)], np.uint8)  # by kind code, KIND_NONE first


def hex_colour(rgb) -> str:
    """``"#rrggbb"`` of an 8-bit (r, g, b) triple, for matplotlib and Plotly."""
    r, g, b = (int(c) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


KIND_HEX = tuple(hex_colour(c) for c in KIND_COLOURS)
