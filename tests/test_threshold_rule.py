"""The point filter's threshold rules: the card's threshold by default, the balanced one on request,
an explicit threshold over both, and the balanced threshold tied to the study that chose it."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pcfilter_lib import filters
from pcfilter_lib.filters.points import BALANCED_THRESHOLD, PointFilter
from pcfilter_lib.io.clouds import scan_cloud
from pcfilter_lib.io.model_cards import card_path, read_model_card
from pcfilter_lib.simulate.dataset import make_scan
from pcfilter_lib.simulate.scanner import ScannerConfig

STUDY = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "threshold_rule.json"
pytestmark = pytest.mark.skipif(not filters.SHIPPED_POINT_MODEL.is_file(), reason="the shipped point filter is missing")


def test_the_balanced_threshold_is_the_one_the_simulated_study_found():
    study = json.loads(STUDY.read_text())
    assert BALANCED_THRESHOLD == study["balanced_threshold"]
    assert study["card_threshold"] == read_model_card(filters.SHIPPED_POINT_MODEL).threshold
    # it is the best balanced accuracy of the study's clouds at full density with all their artefacts
    assert study["summary"]["balanced"]["balanced_accuracy"] >= study["summary"]["card"]["balanced_accuracy"]


def test_rules_choose_the_threshold_and_an_explicit_one_overrides_them():
    card = filters.point_filter()
    assert card.threshold_rule == "card" and card.threshold == read_model_card(filters.SHIPPED_POINT_MODEL).threshold
    balanced = filters.point_filter(threshold_rule="balanced")
    assert balanced.threshold_rule == "balanced" and balanced.threshold == BALANCED_THRESHOLD
    given = filters.point_filter(threshold=0.3, threshold_rule="balanced")
    assert given.threshold_rule == "given" and given.threshold == 0.3
    with pytest.raises(ValueError, match="unknown threshold rule 'otsu'"):
        filters.point_filter(threshold_rule="otsu")
    with pytest.raises(ValueError, match="unknown threshold rule"):
        PointFilter(card.model, threshold_rule="best")


def test_the_balanced_rule_removes_at_least_what_the_card_rule_removes():
    cloud = scan_cloud(make_scan(3, 0, ScannerConfig(width=160, height=120)))
    card, balanced = filters.point_filter(), filters.point_filter(threshold_rule="balanced")
    keep_card, keep_balanced = card.keep_mask(cloud), balanced.keep_mask(cloud)
    assert not (keep_balanced & ~keep_card).any()  # a higher threshold keeps a subset
    prob = card.keep_probability(cloud)
    assert np.array_equal(keep_balanced, (prob >= BALANCED_THRESHOLD) & cloud["valid"])


def test_another_model_needs_its_own_balanced_threshold(tmp_path):
    copy = tmp_path / "mine.keras"
    shutil.copy(filters.SHIPPED_POINT_MODEL, copy)
    with pytest.raises(ValueError, match="records no balanced_threshold"):
        filters.point_filter(copy, threshold_rule="balanced")
    card = json.loads(card_path(filters.SHIPPED_POINT_MODEL).read_text())
    card["details"]["balanced_threshold"] = 0.7
    card_path(copy).write_text(json.dumps(card))
    assert filters.point_filter(copy, threshold_rule="balanced").threshold == 0.7
