"""The U-Net filter's channel ablation (``filters.pixels.channel_ablation``) and the table of
filter results (``viz.filter_table``), on a toy scan and U-Net-shaped models that read one channel."""

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras
from test_filtering import toy_scan  # the same small scan as the filter interface's tests

from pcfilter_lib import filters, viz
from pcfilter_lib.data.scans import CHANNELS, GEOMETRIC, scan_inputs
from pcfilter_lib.filters.evaluation import sets_table
from pcfilter_lib.filters.pixels import channel_ablation


def reads(channel: int, channels: int = 6) -> keras.Model:
    """A U-Net-shaped model whose P(keep) is one of its input channels."""
    inputs = keras.Input((None, None, channels))
    return keras.Model(inputs, keras.layers.Lambda(lambda x: x[..., channel:channel + 1])(inputs))


def counts(result: dict) -> tuple[int, int, int, int]:
    return result["tp"], result["fn"], result["fp"], result["tn"]


@pytest.mark.parametrize("channels", [6, 5])
def test_a_channel_is_replaced_by_its_mean_over_the_points_and_only_that_channel(channels):
    scan = toy_scan(24, 32)
    depth = CHANNELS.index("depth")
    mean = float(scan_inputs(scan)[..., depth][scan["valid"]].mean())
    n_true, n_artefact = int((scan["label"] == 1).sum()), int((scan["label"] == 0).sum())
    # P(keep) of every point becomes the depth channel's mean: kept just below it, removed just above
    below = channel_ablation(filters.UNetFilter("depth", reads(depth, channels), mean - 1e-3), [scan])
    above = channel_ablation(filters.UNetFilter("depth", reads(depth, channels), mean + 1e-3), [scan])
    assert list(below) == ["none", *CHANNELS[:channels]]
    assert counts(below["depth"]) == (n_true, 0, n_artefact, 0)
    assert counts(above["depth"]) == (0, n_true, 0, n_artefact)
    # the intact filter does tell points apart, and the channels it does not read change nothing
    assert 0 < below["none"]["tp"] < n_true + n_artefact
    for name in CHANNELS[:channels]:
        if name != "depth":
            assert counts(below[name]) == counts(below["none"]), name


def test_without_the_validity_channel_the_holes_no_longer_show():
    scan = toy_scan(24, 32)
    inputs = keras.Input((None, None, 6))
    near_hole = keras.layers.AveragePooling2D(3, strides=1, padding="same")(inputs[..., 5:6])
    unet = filters.UNetFilter("validity", keras.Model(inputs, near_hole), threshold=0.95)
    result = channel_ablation(unet, [scan])
    assert result["none"]["fn"] > 0  # the points beside the hole are removed
    assert result["valid"]["fn"] == 0 and result["valid"]["tp"] == int((scan["label"] == 1).sum())


def test_filter_table_has_a_row_per_filter_and_a_dash_where_a_kind_is_missing():
    scan = toy_scan(24, 32)
    keep_all = filters.UNetFilter("all", reads(CHANNELS.index("valid")))
    results = {"all": filters.evaluate_filter(keep_all, [scan]),
               "no kinds": filters.evaluate_filter(keep_all, [{k: v for k, v in scan.items() if k != "kind"}])}
    table = viz.filter_table(results)
    assert table.header[:6] == ["filter", "mean IoU", "bal. acc.", "F1", "keep-recall", "FOR"]
    assert table.header[6:] == ["interref.", "mixed", "specular", "decoding"]
    assert [row[0] for row in table.rows] == ["all", "no kinds"]
    assert np.isnan(results["all"]["false_omission_rate"])  # nothing removed: 0 / 0
    assert table.rows[0][5:] == ["n/a", "0.000", "–", "–", "–"]
    assert table.rows[1][6:] == ["–", "–", "–", "–"]
    assert "<td>interref.</td>" not in table._repr_html_() and "<th>interref.</th>" in table._repr_html_()


def test_a_geometric_filter_is_ablated_channel_by_channel_in_its_own_order():
    scan = toy_scan(24, 32)
    gap = GEOMETRIC.index("gap")
    unet = filters.UNetFilter("gap", reads(gap, len(GEOMETRIC)), threshold=0.5)
    assert unet.channels == GEOMETRIC and unet.validity
    result = channel_ablation(unet, [scan])
    assert list(result) == ["none", *GEOMETRIC]
    mean = float(scan_inputs(scan, GEOMETRIC)[..., gap][scan["valid"]].mean())
    points = int(scan["valid"].sum())
    kept = result["gap"]["tp"] + result["gap"]["fp"]
    assert kept == (points if mean >= 0.5 else 0)  # every point gets the channel's mean
    for name in GEOMETRIC:
        if name != "gap":
            assert counts(result[name]) == counts(result["none"]), name


def test_the_benchmarks_table_has_a_line_per_set_and_filter():
    scan = toy_scan(24, 32)
    keep_all = filters.UNetFilter("all", reads(CHANNELS.index("valid")))
    result = filters.evaluate_filter(keep_all, [scan])
    lines = sets_table({"set a": {"all": result}, "set b": {"all": result, "again": result}})
    ghosts = int(((scan["kind"] == 2) & scan["valid"]).sum())  # the toy scan's only kind, under 100 points
    assert lines[0].startswith("| scans | filter | mean IoU") and len(lines) == 5
    assert lines[2] == (f"| set a | all | {result['mean_iou']:.4f} | {result['balanced_accuracy']:.4f} | "
                        f"{result['recall']:.4f} | interreflection 0 of {ghosts} |")  # all kept: counts, not 0%
    assert [line.split(" | ")[1] for line in lines[2:]] == ["all", "all", "again"]
    many = {**result, "kinds": {"mixed": {"points": 400, "removed": 0.855}, "specular": {"points": 0, "removed": None}}}
    assert sets_table({"set": {"f": many}})[2].endswith("| mixed 86% |")  # a share from 100 points, no empty kinds
