"""Artefact filters: the U-Net for organised scans, the point filter for any cloud and the classical
baselines, all behind the ``base.Filter`` interface; their evaluation and threshold choice.

The names below are the stage's public face, so that a notebook can write ``filters.unet_filter()``.
"""

from pcfilter_lib.filters.base import Filter, check_threshold
from pcfilter_lib.filters.baselines import BaselineFilter, baseline_filter, tuned_params
from pcfilter_lib.filters.evaluation import evaluate_all, evaluate_filter, iter_scans, tune_baselines
from pcfilter_lib.filters.load import load_filter
from pcfilter_lib.filters.points import SHIPPED_POINT_MODEL, PointFilter, point_filter
from pcfilter_lib.filters.thresholds import choose_threshold
from pcfilter_lib.filters.unet import SHIPPED_MODEL, UNetFilter, predict_keep, unet_filter

__all__ = ["SHIPPED_MODEL", "SHIPPED_POINT_MODEL", "BaselineFilter", "Filter", "PointFilter", "UNetFilter",
           "baseline_filter", "check_threshold", "choose_threshold", "evaluate_all", "evaluate_filter",
           "iter_scans", "load_filter", "point_filter", "predict_keep", "tune_baselines", "tuned_params",
           "unet_filter"]
