"""Metrics: the slides' numbers, degenerate cases, streaming equals one-shot, threshold sweeps."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pcfilter_lib.labels import NO_POINT
from pcfilter_lib.nn import keras_metrics, scores

# The confusion matrix of the original project's slides and the values derived from it.
SLIDES = dict(tp=18508, fn=53, fp=112, tn=166)
SLIDES_VALUES = dict(accuracy=0.991, recall=0.997, precision=0.994, tnr=0.597, balanced_accuracy=0.797, f1=0.996,
                     false_omission_rate=0.242, iou_keep=0.991, iou_artefact=0.502, mean_iou=0.746)


def test_reproduces_the_slides_to_three_decimals():
    values = scores.confusion_metrics(**SLIDES)
    assert set(values) == set(scores.NAMES)
    for name, expected in SLIDES_VALUES.items():
        assert round(values[name], 3) == expected, name


# The denominator of each rate from (tp, fn, fp, tn): the rate is undefined (NaN) exactly where it is 0.
DENOMINATORS = {"accuracy": lambda tp, fn, fp, tn: tp + fn + fp + tn,
                "balanced_accuracy": lambda tp, fn, fp, tn: tp + fn + fp + tn,
                "precision": lambda tp, fn, fp, tn: tp + fp,
                "recall": lambda tp, fn, fp, tn: tp + fn,
                "tnr": lambda tp, fn, fp, tn: tn + fp,
                "f1": lambda tp, fn, fp, tn: 2 * tp + fp + fn,
                "false_omission_rate": lambda tp, fn, fp, tn: fn + tn,
                "iou_keep": lambda tp, fn, fp, tn: tp + fp + fn,
                "iou_artefact": lambda tp, fn, fp, tn: tn + fp + fn,
                "mean_iou": lambda tp, fn, fp, tn: tp + fn + fp + tn}


@given(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50), st.integers(0, 50))
def test_within_zero_and_one_and_nan_exactly_where_undefined(tp, fn, fp, tn):
    values = scores.confusion_metrics(tp, fn, fp, tn)
    for name, value in values.items():
        if DENOMINATORS[name](tp, fn, fp, tn) == 0:
            assert np.isnan(value), (name, values)
        else:
            assert 0.0 <= value <= 1.0, (name, values)
    assert scores.undefined(values) == [name for name in scores.NAMES if np.isnan(values[name])]


def test_undefined_cases_are_nan_never_a_perfect_score():
    empty = scores.confusion_metrics(0, 0, 0, 0)
    assert all(np.isnan(v) for v in empty.values())
    no_artefacts = scores.confusion_metrics(tp=90, fn=10, fp=0, tn=0)
    assert no_artefacts["balanced_accuracy"] == pytest.approx(0.9)  # the recall alone, not (0.9 + 1) / 2
    assert np.isnan(no_artefacts["tnr"])
    # The 10 pixels wrongly removed make the artefact class appear in the prediction: its IoU is 0.
    assert no_artefacts["mean_iou"] == pytest.approx((0.9 + 0.0) / 2)
    perfect_without_artefacts = scores.confusion_metrics(tp=100, fn=0, fp=0, tn=0)
    assert perfect_without_artefacts["mean_iou"] == 1.0 and perfect_without_artefacts["balanced_accuracy"] == 1.0
    assert np.isnan(perfect_without_artefacts["false_omission_rate"])  # nothing removed: 0 / 0, not 0
    # Every point an outlier (label 0): the keep-recall is 0 / 0, not 1.0, and the summary is the TNR alone.
    all_outliers = {"tp": 0, "fn": 0, "fp": 290, "tn": 10}
    values = {**all_outliers, **scores.confusion_metrics(**all_outliers)}
    assert np.isnan(values["recall"]) and values["balanced_accuracy"] == pytest.approx(10 / 300)
    assert scores.defined_or_none(values)["recall"] is None and scores.defined_or_none(values)["tnr"] == values["tnr"]
    assert scores.why_undefined(values).startswith("recall undefined: the data hold no true points")
    assert scores.why_undefined({**SLIDES, **scores.confusion_metrics(**SLIDES)}) is None
    with pytest.raises(ValueError, match="non-negative"):
        scores.confusion_metrics(-1, 0, 0, 0)


def test_an_undefined_value_is_never_the_best_threshold():
    y = np.array([1, 1, 1, 0, 0])
    p = np.array([0.3, 0.4, 0.45, 0.1, 0.2])[..., None]
    sweep = scores.threshold_sweep(y, p, thresholds=[0.15, 0.35, 0.9])
    assert np.isnan(sweep["precision"][2])  # nothing kept at 0.9: the precision is 0 / 0
    assert scores.best_threshold(sweep, "precision") == 0.35
    with pytest.raises(ValueError, match="undefined at every threshold"):
        scores.best_threshold(sweep, "precision", low=0.8)


def data(seed=0, n=10):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 12, 12)) > 0.15).astype("float32")
    p = np.clip(0.6 * y + rng.normal(0.2, 0.3, y.shape), 0, 1).astype("float32")[..., None]
    w = (rng.random(y.shape) > 0.25).astype("float32")
    return y, p, w


@pytest.mark.parametrize("name", scores.NAMES)
def test_streaming_equals_one_shot_whatever_the_batching(name):
    y, p, w = data()
    expected = scores.evaluate_masks(y, p, w > 0)[name]
    for batch in (1, 3, 10):
        metric = keras_metrics.ConfusionMetric(name)
        for start in range(0, len(y), batch):
            metric.update_state(y[start:start + batch], p[start:start + batch], w[start:start + batch])
        assert float(metric.result()) == pytest.approx(expected, abs=1e-6)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_streaming_metric_in_fit_and_evaluate_respects_masks(tmp_path):
    y, p, w = data(1)
    inputs = keras.Input((12, 12, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs))
    model.compile("adam", loss="binary_crossentropy", weighted_metrics=keras_metrics.segmentation_metrics(0.4))
    result = model.evaluate(p, y[..., None], sample_weight=w, batch_size=3, verbose=0, return_dict=True)
    expected = scores.evaluate_masks(y, model.predict(p, verbose=0), w > 0, threshold=0.4)
    assert result["mean_iou"] == pytest.approx(expected["mean_iou"], abs=1e-6)
    model.save(tmp_path / "m.keras")
    keras.models.load_model(tmp_path / "m.keras")


def test_labels_other_than_0_and_1_are_ignored():
    y, p, w = data(2)
    as_scan = np.where(w > 0, y, NO_POINT)
    assert scores.confusion_counts(as_scan, p) == scores.confusion_counts(y, p, w > 0)
    metric = keras_metrics.ConfusionMetric("f1")
    metric.update_state(as_scan, p)
    assert float(metric.result()) == pytest.approx(scores.evaluate_masks(y, p, w > 0)["f1"], abs=1e-6)


def test_sweep_agrees_with_single_evaluations_and_picks_the_best():
    y, p, w = data(3)
    sweep = scores.threshold_sweep(y, p, w > 0)
    assert len(sweep["threshold"]) == 19
    for i in (0, 6, 18):
        single = scores.evaluate_masks(y, p, w > 0, threshold=sweep["threshold"][i])
        for name in ("tp", "fn", "fp", "tn", "mean_iou", "f1"):
            assert sweep[name][i] == pytest.approx(single[name])
    best = scores.best_threshold(sweep, "mean_iou")
    assert sweep["mean_iou"][list(sweep["threshold"]).index(best)] == sweep["mean_iou"].max()
    limited = scores.best_threshold(sweep, "mean_iou", low=0.2, high=0.5)
    assert 0.2 <= limited <= 0.5
    with pytest.raises(ValueError, match="no threshold"):
        scores.best_threshold(sweep, low=2.0, high=3.0)
    with pytest.raises(ValueError, match="metric must be one of"):
        scores.best_threshold(sweep, "iou")


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="same shape"):
        scores.confusion_counts(np.ones((2, 3)), np.ones((3, 2)))


def test_voxel_iou_per_shape_scores_each_grid_on_its_own():
    rng = np.random.default_rng(0)
    truth = rng.random((4, 6, 6, 6)) < 0.3
    probability = rng.random((4, 6, 6, 6))
    truth[3], probability[3] = False, 0.0  # nothing to find and nothing found: 0 / 0, undefined
    per_shape = scores.voxel_iou_per_shape(truth, probability, (0.3, 0.6))
    assert per_shape.shape == (4, 2)
    for n in range(3):
        expected = scores.voxel_iou(truth[n], probability[n], (0.3, 0.6))
        np.testing.assert_allclose(per_shape[n], [expected[0.3], expected[0.6]])
    assert np.isnan(per_shape[3]).all()
    np.testing.assert_array_equal(scores.voxel_iou_per_shape(truth[..., None], probability[..., None]),
                                  scores.voxel_iou_per_shape(truth, probability))
    with pytest.raises(ValueError, match="same shape"):
        scores.voxel_iou_per_shape(truth, probability[:2])
