"""The point filter's threshold rules: the card's threshold by default, the balanced one on request,
an explicit threshold over both; both rules come from the validation sweep the card records."""

import json
import shutil

import numpy as np
import pytest

from pcfilter_lib import filters
from pcfilter_lib.filters.points import PointFilter
from pcfilter_lib.io.clouds import scan_cloud
from pcfilter_lib.io.model_cards import card_path, read_model_card
from pcfilter_lib.simulate.dataset import make_scan
from pcfilter_lib.simulate.scanner import ScannerConfig

pytestmark = pytest.mark.skipif(not filters.SHIPPED_POINT_MODEL.is_file(), reason="the shipped point filter is missing")


@pytest.fixture(scope="module")
def card():
    return read_model_card(filters.SHIPPED_POINT_MODEL)


def test_both_thresholds_come_from_the_cards_validation_sweep(card):
    sweep = {k: np.asarray(v) for k, v in card.details["threshold_sweep"].items()}
    best = int(np.argmax(sweep["balanced_accuracy"]))
    assert card.details["balanced_threshold"] == pytest.approx(sweep["threshold"][best])
    at_card = int(np.argmin(np.abs(sweep["threshold"] - card.threshold)))
    assert sweep["threshold"][at_card] == pytest.approx(card.threshold)
    # the card's rule: the best mean IoU among the thresholds that keep 99.5% of the true points
    allowed = sweep["keep_recall"] >= 0.995
    if allowed.any():
        assert sweep["mean_iou"][at_card] == pytest.approx(sweep["mean_iou"][allowed].max())
    assert sweep["balanced_accuracy"][best] >= sweep["balanced_accuracy"][at_card]


def test_rules_choose_the_threshold_and_an_explicit_one_overrides_them(card):
    chosen = filters.point_filter()
    assert chosen.threshold_rule == "card" and chosen.threshold == card.threshold
    balanced = filters.point_filter(threshold_rule="balanced")
    assert balanced.threshold_rule == "balanced" and balanced.threshold == card.details["balanced_threshold"]
    given = filters.point_filter(threshold=0.3, threshold_rule="balanced")
    assert given.threshold_rule == "given" and given.threshold == 0.3
    with pytest.raises(ValueError, match="unknown threshold rule 'otsu'"):
        filters.point_filter(threshold_rule="otsu")
    with pytest.raises(ValueError, match="unknown threshold rule"):
        PointFilter(chosen.model, threshold_rule="best")


def test_a_higher_threshold_keeps_a_subset():
    cloud = scan_cloud(make_scan(3, 0, ScannerConfig(width=160, height=120)))
    chosen, balanced = filters.point_filter(), filters.point_filter(threshold_rule="balanced")
    low, high = sorted((chosen, balanced), key=lambda f: f.threshold)
    keep_low, keep_high = low.keep_mask(cloud), high.keep_mask(cloud)
    assert not (keep_high & ~keep_low).any()
    prob = chosen.keep_probability(cloud)
    assert np.array_equal(keep_high, (prob >= high.threshold) & cloud["valid"])


def test_a_model_without_a_recorded_balanced_threshold_says_what_to_do(tmp_path):
    copy = tmp_path / "mine.keras"
    shutil.copy(filters.SHIPPED_POINT_MODEL, copy)
    recorded = json.loads(card_path(filters.SHIPPED_POINT_MODEL).read_text())
    del recorded["details"]["balanced_threshold"]
    card_path(copy).write_text(json.dumps(recorded))
    with pytest.raises(ValueError, match="records no balanced_threshold.*--threshold"):
        filters.point_filter(copy, threshold_rule="balanced")
    recorded["details"]["balanced_threshold"] = 0.7
    card_path(copy).write_text(json.dumps(recorded))
    assert filters.point_filter(copy, threshold_rule="balanced").threshold == 0.7
