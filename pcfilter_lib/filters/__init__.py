"""Artefact filters: the U-Net for organised scans, the point and neighbour filters for any cloud and
the classical baselines, all behind the ``base.Filter`` interface; their evaluation and threshold choice.

The names below are the stage's public face, so that a notebook can write ``filters.unet_filter()``.
They are loaded when first used, not when the package is imported: most filters import Keras, and
the command line reads ``filters.methods`` (the classical filters' names and defaults) while it
parses its options, before TensorFlow may start.
"""

import importlib
from pathlib import Path

# Each public name and the module of this stage that defines it.
_PUBLIC = {
    "CloudFilter": "base", "Filter": "base", "check_threshold": "base",
    "BaselineFilter": "baselines", "baseline_filter": "baselines", "tuned_params": "baselines",
    "evaluate_all": "evaluation", "evaluate_filter": "evaluation", "iter_scans": "evaluation",
    "tune_baselines": "evaluation",
    "load_filter": "load",
    "SHIPPED_NEIGHBOUR_MODEL": "neighbours", "DenseNetwork": "neighbours", "NeighbourFilter": "neighbours",
    "neighbour_filter": "neighbours",
    "SHIPPED_POINT_MODEL": "points", "PointFilter": "points", "point_filter": "points",
    "choose_threshold": "thresholds",
    "SHIPPED_MODEL": "pixels", "UNetFilter": "pixels", "predict_keep": "pixels", "unet_filter": "pixels",
}
__all__ = sorted(_PUBLIC, key=lambda name: (not name.isupper(), not name[0].isupper(), name))


def __getattr__(name: str):
    """A public name (imported from its module on first use) or a module of this stage."""
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
        globals()[name] = value
        return value
    if (Path(__file__).parent / f"{name}.py").is_file():
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
