"""``viz.real_scans``: the figures of organised scans (real and simulated) and the tables of the real-scan
benchmarks, on small scans built here whose content is known."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from pcfilter_lib.labels import ARTEFACT, KEEP, KIND_INTERREFLECTION, KIND_PHASE_BIAS, NO_POINT
from pcfilter_lib.viz import real_scans
from pcfilter_lib.viz.colours import OUTCOME_COLOURS, OUTCOME_NAMES


def organised_scan(shape=(60, 80), artefacts=((20, 30),), stray=None) -> dict:
    """A tilted plane seen by a camera: a 30 x 40 pixel object at rows 10-39 and columns 20-59, with the
    given false pixels, and optionally one small stray piece of points far from it."""
    h, w = shape
    valid = np.zeros(shape, bool)
    valid[10:40, 20:60] = True
    if stray is not None:
        valid[stray[0]:stray[0] + 2, stray[1]:stray[1] + 2] = True
    rows, cols = np.mgrid[0:h, 0:w]
    xyz = np.stack([cols * 1e-3, rows * 1e-3, 0.45 + rows * 1e-4], axis=-1)
    xyz[~valid] = np.nan
    artefact = np.zeros(shape, bool)
    for r, c in artefacts:
        artefact[r, c] = True
    intensity = np.where(valid, 0.01, 0.0).astype(np.float32)
    return {"xyz": xyz, "intensity": intensity, "valid": valid, "artefact": artefact & valid}


def test_point_box_holds_the_object_and_leaves_small_stray_pieces_out():
    scan = organised_scan(stray=(55, 2))
    rows, cols = real_scans.point_box(scan["valid"], margin=2)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (8, 42, 18, 62)
    # with every piece wanted, the stray one widens the box
    rows, cols = real_scans.point_box(scan["valid"], margin=0, share=1.0)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (10, 57, 2, 60)
    assert real_scans.point_box(np.zeros((5, 5), bool)) == (slice(None), slice(None))


def test_organised_scans_figure_labels_every_panel_and_rings_few_artefacts():
    scans = {"board": organised_scan(artefacts=((20, 30), (21, 30), (12, 50))),
             "fruit": organised_scan(artefacts=((30, 40),), stray=(55, 2))}
    scans["fruit"]["artefact"][55, 2] = True  # an artefact in the stray piece, outside the box
    fig = real_scans.show_organised_scans(scans)
    images = [ax for ax in fig.axes if ax.get_images()]
    assert len(images) == 6
    for ax in images:
        assert ax.get_xlabel() == "image column (px)" and ax.get_ylabel() == "image row (px)"
    bars = [ax for ax in fig.axes if not ax.get_images()]
    assert sorted(ax.get_ylabel() for ax in bars) == sorted(["depth (mm)", "intensity (as recorded)", "label"] * 2)
    label_bar = next(ax for ax in bars if ax.get_ylabel() == "label")
    assert [t.get_text() for t in label_bar.get_yticklabels()] == list(real_scans.LABEL_TICKS)
    board_labels, fruit_labels = images[2], images[5]
    assert board_labels.get_title() == "board: 3 artefacts"
    assert fruit_labels.get_title() == "fruit: 1 of 2 artefacts"
    # the axes count the whole image's pixels, and each ring sits on its artefact
    left, right, bottom, top = board_labels.get_images()[0].get_extent()
    assert (left, top) == (20 - 8 - 0.5, 10 - 8 - 0.5)
    ringed = board_labels.collections[0].get_offsets()
    assert sorted(map(tuple, np.asarray(ringed).tolist())) == [(30, 20), (30, 21), (50, 12)]
    plt.close(fig)


def simulated_scan() -> dict:
    """A 4 x 4 simulated scan: a row without points, 3 artefacts of phase bias and 1 of inter-reflection."""
    label = np.full((4, 4), KEEP, np.uint8)
    label[0] = NO_POINT
    kind = np.zeros((4, 4), np.uint8)
    for r, c in ((1, 1), (1, 2), (2, 2)):
        label[r, c], kind[r, c] = ARTEFACT, KIND_PHASE_BIAS
    label[3, 3], kind[3, 3] = ARTEFACT, KIND_INTERREFLECTION
    valid = label != NO_POINT
    xyz = np.where(valid[..., None], np.full((4, 4, 3), 0.45), np.nan)
    return {"xyz": xyz, "valid": valid, "label": label, "kind": kind}


def test_kind_shares_split_the_artefacts_by_cause():
    shares = real_scans.kind_shares(simulated_scan())
    assert shares["phase bias"] == pytest.approx(0.75) and shares["interreflection"] == pytest.approx(0.25)
    assert sum(shares.values()) == pytest.approx(1.0)
    clean = {**simulated_scan(), "label": np.full((4, 4), KEEP, np.uint8)}
    assert set(real_scans.kind_shares(clean).values()) == {0.0}


def test_artefact_kinds_figure_colours_each_cause_and_names_it():
    fig = real_scans.show_artefact_kinds({"default": simulated_scan()})
    depth_ax, kind_ax = (ax for ax in fig.axes if ax.get_images())
    index = kind_ax.get_images()[0].get_array()
    names = [t.get_text() for t in fig.axes[-1].get_yticklabels()]
    assert names[:2] == ["no point", "true"] and "phase bias" in names and "rim" in names
    assert names[int(index[1, 1])] == "phase bias" and names[int(index[3, 3])] == "interreflection"
    assert names[int(index[0, 0])] == "no point" and names[int(index[2, 1])] == "true"
    assert kind_ax.get_title() == "default: 4 artefacts by kind"
    assert depth_ax.get_xlabel() == "image column (px)"
    plt.close(fig)


def row(scan, name, ba, auc, form="organised", kind="result"):
    return {"form": form, "kind": kind, "scan": scan, "filter": name, "balanced_accuracy": ba, "roc_auc": auc,
            "mean_iou": ba - 0.1}


def test_quality_table_puts_the_u_net_first_and_keeps_every_filter_and_scan():
    rows = [row("apple_03", "SOR", 0.9, None), row("apple_03", "U-Net", 0.5, 0.98),
            row("gpu_006", "SOR", 0.6, None), row("gpu_006", "U-Net", 0.51, 0.61),
            row("gpu_006", "U-Net, realistic", 0.7, 0.8),
            row("mean", "SOR", 0.75, None), row("gpu_006", "oracle SOR", 0.99, None, kind="development"),
            row("gpu_006", "point filter", 0.4, 0.5, form="points")]
    table, names, scans = real_scans.quality_table(rows)
    assert names == ["U-Net", "U-Net, realistic", "SOR"] and scans == ["apple_03", "gpu_006"]
    text = str(table)
    lines = text.splitlines()
    assert lines[2].startswith("| U-Net | 0.500 | 0.980 | 0.400 | 0.510 | 0.610 |")
    assert lines[3].startswith("| U-Net, realistic | - | - | - | 0.700 |")  # not measured on apple_03
    assert "| SOR | 0.900 | - |" in text and "oracle" not in text and "point filter" not in text


def test_comparison_table_gives_the_real_value_and_each_sets_mean_and_range():
    record = {"pairs": {"board": "gpu_006"},
              "real": {"gpu_006": {"artefact_share": 0.19, "blobs": 142}},
              "simulated": {"sensor": {"board": [{"artefact_share": 0.05, "blobs": 100},
                                                 {"artefact_share": 0.15, "blobs": None}]}}}
    table = real_scans.comparison_table(record, "board", {"sensor": "default", "missing": "never"},
                                        [("false share", "artefact_share", "{:.0%}"), ("blobs", "blobs", "{:,.0f}")])
    lines = str(table).splitlines()
    assert lines[0] == "| measure | gpu_006 (real) | default (2 scans) |"
    assert lines[2] == "| false share | 19% | 10% (5%-15%) |"
    assert lines[3] == "| blobs | 142 | 100 |"


def test_outcome_figure_colours_each_pixel_by_what_the_filter_did():
    scan = organised_scan(artefacts=((20, 30), (21, 30)), stray=(55, 2))
    scan["artefact"][55, 2] = True  # outside the box: counted, not drawn
    keep_all = scan["valid"].copy()
    remove_some = scan["valid"].copy()
    remove_some[20, 30] = False  # one artefact removed
    remove_some[30, 40] = False  # one true point removed
    fig = real_scans.show_real_outcomes({"board": scan}, {"board": {"none": keep_all, "some": remove_some}})
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in panels] == ["board: 2 of 3 artefacts (red)", "none: removed 0",
                                                 "some: removed 2"]
    image = panels[2].get_images()[0]
    left, _, _, top = image.get_extent()
    colour = {name: np.array(matplotlib.colors.to_rgb(hex_)) for name, hex_ in OUTCOME_COLOURS.items()}
    pixels = np.asarray(image.get_array())

    def at(row, col):
        return pixels[int(row - (top + 0.5)), int(col - (left + 0.5))]

    assert np.allclose(at(20, 30), colour["TN"]) and np.allclose(at(21, 30), colour["FP"])
    assert np.allclose(at(30, 40), colour["FN"]) and np.allclose(at(12, 25), colour["TP"])
    # two artefacts in view, so each is ringed in its outcome's colour
    rings = [c for c in panels[2].collections]
    assert sum(len(c.get_offsets()) for c in rings) == 2
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [OUTCOME_NAMES[k] for k in OUTCOME_COLOURS]
    plt.close(fig)


def test_outcome_figure_wraps_a_scans_panels_into_rows():
    scans = {"a": organised_scan(), "b": organised_scan()}
    keeps = {name: {"one": s["valid"], "two": s["valid"]} for name, s in scans.items()}
    fig = real_scans.show_real_outcomes(scans, keeps, columns=2)
    shown = [ax for ax in fig.axes if ax.get_images()]
    assert len(fig.axes) == 8 and len(shown) == 6  # per scan two rows of two, the last one empty
    assert [ax.get_title().split(":")[0] for ax in shown] == ["a", "one", "two", "b", "one", "two"]
    assert sum(not ax.axison for ax in fig.axes) == 2
    plt.close(fig)
