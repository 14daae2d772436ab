"""Label and artefact-kind codes, their names and colours: the one place that defines them.

Every point or pixel of a labelled scan carries a **label** (``KEEP`` = true geometry, ``ARTEFACT``
= a false measurement, ``NO_POINT`` = the pixel measured nothing) and an artefact **kind**, the
physical cause of an artefact or of a missing point (``pcfilter_lib.simulate.scanner`` explains
each). Label 1 = keep follows the seed slides: binary cross-entropy with y = 1 for true geometry.

Scans simulated with semantic labels, and voxel grids of scenes, also carry a **semantic class** per
pixel or voxel: what the surface there is (the table, the bin or other support, or the type of the
part), ``SEMANTIC_BACKGROUND`` where there is no surface (a pixel whose ray meets nothing, an empty
voxel).
"""

from __future__ import annotations

import numpy as np

ARTEFACT, KEEP, NO_POINT = 0, 1, 255
LABEL_VALUES = (ARTEFACT, KEEP, NO_POINT)
LABEL_NAMES = {KEEP: "true geometry", ARTEFACT: "artefact", NO_POINT: "no point"}

KIND_NONE, KIND_SHADOW, KIND_INTERREFLECTION, KIND_MIXED, KIND_SPECULAR, KIND_DARK, KIND_DECODING = range(7)
# Causes that only the scanner's opt-in realism effects make (``simulate.scanner.REALISM_EFFECTS``): a phase
# pulled a fraction of a period by inter-reflected light, and a translucent object's rim seen at a grazing angle.
KIND_PHASE_BIAS, KIND_RIM = 7, 8
KIND_NAMES = {KIND_NONE: "none", KIND_SHADOW: "shadow", KIND_INTERREFLECTION: "interreflection",
              KIND_MIXED: "mixed", KIND_SPECULAR: "specular", KIND_DARK: "dark", KIND_DECODING: "decoding",
              KIND_PHASE_BIAS: "phase bias", KIND_RIM: "rim"}
ARTEFACT_KINDS = (KIND_INTERREFLECTION, KIND_MIXED, KIND_SPECULAR, KIND_DECODING)  # the causes of label ARTEFACT
REALISM_KINDS = (KIND_PHASE_BIAS, KIND_RIM)  # further causes of label ARTEFACT, made only by the realism effects
BASIC_KINDS = tuple(range(7))  # the kinds a scan without realism effects can carry (its file lists these)

# Semantic classes: background, the table, the support (bin, board or plate), then one per part type, in the
# order of ``simulate.scene.PART_TYPES`` + ``FAMILY_PART_TYPES`` and "mesh" for a user's part file.
SEMANTIC_NAMES = ("background", "table", "support", "cylinder", "tube", "box", "bracket", "gear", "nut", "sphere",
                  "torus", "fins", "pins", "connector", "blob", "mesh")
SEMANTIC_BACKGROUND, SEMANTIC_TABLE, SEMANTIC_SUPPORT = 0, 1, 2
SEMANTIC_CODES = {name: code for code, name in enumerate(SEMANTIC_NAMES)}

# Colours (8-bit RGB) for drawings and coloured cloud files.
LABEL_COLOURS = {KEEP: (170, 170, 170), ARTEFACT: (220, 30, 30)}  # true geometry grey, artefact red
KIND_COLOURS = np.array([(170, 170, 170), (60, 60, 200), (220, 30, 30), (240, 160, 0), (160, 40, 200),
                         (40, 160, 60), (0, 170, 200), (230, 100, 160), (120, 80, 30)],
                        np.uint8)  # by kind code, KIND_NONE first


def hex_colour(rgb) -> str:
    """``"#rrggbb"`` of an 8-bit (r, g, b) triple, for matplotlib and Plotly."""
    r, g, b = (int(c) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


KIND_HEX = tuple(hex_colour(c) for c in KIND_COLOURS)
SEMANTIC_COLOURS = np.array([(0, 0, 0), (140, 110, 80), (120, 120, 160), (31, 119, 180), (255, 127, 14),
                             (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75), (227, 119, 194),
                             (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120), (152, 223, 138),
                             (255, 152, 150)], np.uint8)  # by semantic class code, background first
