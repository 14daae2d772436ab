"""The classical filters' names and parameters: plain constants, light enough for the command line's
parser to read without NumPy, Open3D or Keras (``baselines`` runs the filters).

- ``METHODS``: the classical filters, by the names ``pcfilter --method`` takes.
- ``DEFAULTS``: each method's parameters when none are tuned or given. SOR's are the values of
  Open3D's tutorials (20 neighbours, 2 standard deviations); ROR's radius is in metres; morph's
  structuring elements are in pixels.
- ``GRIDS``: the values ``baselines.tune`` tries on validation scans (ROR's radius in metres). They
  reach past the values chosen on the simulated bins on both sides (SOR reads 3 neighbours there, ROR
  4 points within 3 mm, the opening 9x9 squares; on clouds thinned to a quarter ROR's radius grows),
  so that a chosen value on the edge of its grid, where a better one may lie beyond, is the exception.
- ``LENGTHS``: the parameters that are lengths, scaled with a cloud's point spacing.
- ``TILED_METHODS``: the methods that run in tiles on a large cloud (``filters.classical_tiles``).
"""

METHODS = ("sor", "ror", "morph")
DEFAULTS = {"sor": {"nb_neighbors": 20, "std_ratio": 2.0},
            "ror": {"nb_points": 8, "radius": 0.005},
            "morph": {"erosion": 5, "dilation": 7}}
GRIDS = {"sor": {"nb_neighbors": [2, 3, 5, 10, 20], "std_ratio": [0.25, 0.5, 1.0, 2.0]},
         "ror": {"nb_points": [1, 2, 4, 8, 16], "radius": [0.0015, 0.002, 0.003, 0.005, 0.008, 0.012]},
         "morph": {"erosion": [3, 5, 7, 9, 11], "dilation": [3, 5, 7, 9, 11]}}
LENGTHS = {"sor": (), "ror": ("radius",), "morph": ()}  # the parameters that are lengths (scaled with spacing)
TILED_METHODS = ("sor", "ror")  # in tiles on a cloud larger than one tile, deciding as on the whole cloud
