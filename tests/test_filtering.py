"""The filter interface, crops for training, threshold choice, organised cloud files, and the shipped
U-Net filter against the tuned baselines on a small fixed set of simulated scans."""

import json

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras

from pcfilter_lib import filters
from pcfilter_lib.data import crops
from pcfilter_lib.filters import baselines, thresholds
from pcfilter_lib.io import (
    model_cards,
    organised,
)
from pcfilter_lib.models.unet import build_unet
from pcfilter_lib.nn import losses
from pcfilter_lib.recipes import unet_filter as unet_recipe
from pcfilter_lib.simulate.dataset import make_scan
from pcfilter_lib.simulate.scanner import ScannerConfig


def toy_scan(h=37, w=50, seed=0):
    """A tilted plane with ghost points in front of it (label 0, kind 2) and a hole without points."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    xyz = np.stack([xx * 0.002, yy * 0.002, 1.0 + 0.001 * xx], axis=-1).astype(np.float32)
    label = np.ones((h, w), np.uint8)
    kind = np.zeros((h, w), np.uint8)
    ghosts = rng.choice(h * w, size=25, replace=False)
    xyz.reshape(-1, 3)[ghosts, 2] -= rng.uniform(0.05, 0.2, size=25)
    label.reshape(-1)[ghosts], kind.reshape(-1)[ghosts] = 0, 2
    valid = np.ones((h, w), bool)
    valid[:6, :6] = False
    xyz[~valid] = np.nan
    label[~valid], kind[~valid] = 255, 0
    normals = np.zeros((h, w, 3), np.float32)
    normals[..., 2] = -1
    normals[~valid] = np.nan
    intensity = np.where(valid, rng.uniform(0.2, 0.8, (h, w)), 0).astype(np.float32)
    return {"xyz": xyz, "valid": valid, "label": label, "kind": kind, "normals": normals, "intensity": intensity}


def validity_model():
    """A U-Net-shaped stand-in whose P(keep) is its validity input channel: it keeps every point."""
    inputs = keras.Input((None, None, 6))
    outputs = keras.layers.Lambda(lambda x: x[..., 5:6])(inputs)
    return keras.Model(inputs, outputs)


def test_filters_check_their_method_and_threshold_and_share_one_interface():
    with pytest.raises(ValueError, match="unknown method"):
        filters.BaselineFilter("x", method="median")
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        filters.BaselineFilter("x", method="sor", threshold=1.0)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        filters.UNetFilter("x", model=validity_model(), threshold=0.0)
    assert isinstance(filters.BaselineFilter("sor", "sor"), filters.Filter)
    assert isinstance(filters.UNetFilter("unet", validity_model()), filters.Filter)


def test_unet_probabilities_have_the_scan_shape_and_zero_where_there_is_no_point():
    scans = [toy_scan(), toy_scan(20, 33, seed=1), toy_scan(seed=2)]
    model = build_unet(input_channels=6, filters=(4, 4, 4, 4, 4))
    probs = filters.predict_keep(model, scans)
    for scan, prob in zip(scans, probs, strict=True):
        assert prob.shape == scan["valid"].shape and prob.dtype == np.float32
        assert (prob[~scan["valid"]] == 0).all()
        assert ((prob >= 0) & (prob <= 1)).all() and prob[scan["valid"]].std() > 0
    # batching scans of one size together gives what one scan alone gives
    np.testing.assert_allclose(probs[2], filters.predict_keep(model, [scans[2]])[0], atol=1e-5)


def test_evaluation_counts_every_labelled_point_and_each_kind():
    scan = toy_scan()
    keep_all = filters.UNetFilter("all", model=validity_model())
    result = filters.evaluate_filter(keep_all, [scan, scan])
    n_true, n_artefact = 2 * int((scan["label"] == 1).sum()), 2 * int((scan["label"] == 0).sum())
    assert (result["tp"], result["fn"], result["fp"], result["tn"]) == (n_true, 0, n_artefact, 0)
    assert result["recall"] == 1.0 and result["tnr"] == 0.0 and result["scans"] == 2
    assert result["kinds"]["interreflection"] == {"points": n_artefact, "removed": 0.0}
    assert result["kinds"]["specular"]["removed"] is None

    sor = filters.baseline_filter("sor", {"nb_neighbors": 8, "std_ratio": 1.0})
    result = filters.evaluate_filter(sor, [scan])
    keep = baselines.keep_mask(scan, "sor", nb_neighbors=8, std_ratio=1.0)
    assert result["kinds"]["interreflection"]["removed"] == pytest.approx((~keep[scan["label"] == 0]).mean())
    assert result["tn"] > 20  # the ghosts in front of the plane are found
    with pytest.raises(ValueError, match="at least one scan"):
        filters.evaluate_filter(sor, [])


def test_saved_filter_loads_with_the_threshold_of_its_card(tmp_path):
    model = build_unet(input_channels=6, filters=(4, 4, 4, 4, 4))
    path = tmp_path / "f.keras"
    model.save(path)
    assert filters.unet_filter(path).threshold == 0.5  # no card
    model_cards.ModelCard("f.keras", "unet", "", {}, {}, {}, threshold=0.3).write(tmp_path / "f.json")
    loaded = filters.unet_filter(path)
    assert loaded.threshold == 0.3 and loaded.validity
    assert filters.unet_filter(path, threshold=0.7).threshold == 0.7
    scan = toy_scan()
    np.testing.assert_array_equal(loaded.keep_mask(scan), loaded.keep_probability(scan) >= 0.3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        filters.unet_filter(tmp_path / "missing.keras")
    (tmp_path / "bad.keras").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a loadable Keras model"):
        filters.unet_filter(tmp_path / "bad.keras")
    (tmp_path / "f.json").write_text(json.dumps({"threshold": 0.3}))  # not a card
    with pytest.raises(ValueError, match="lacks the fields"):
        filters.unet_filter(path)


def test_crops_are_reproducible_and_centre_on_artefacts():
    scan = toy_scan(64, 80)
    from pcfilter_lib.data.scans import scan_inputs, scan_targets

    example = (scan_inputs(scan), *scan_targets(scan))
    sequence = crops.CropSequence([example], size=32, crops=20, batch_size=8, artefact_share=1.0, seed=3)
    assert len(sequence) == 3
    x, y, w = sequence[0]
    assert x.shape == (8, 32, 32, 6) and y.shape == (8, 32, 32, 1) and w.shape == (8, 32, 32)
    assert sequence[2][0].shape[0] == 4  # the last batch holds the rest
    assert all((y[i][w[i] > 0] == 0).any() for i in range(8))  # every crop holds an artefact
    np.testing.assert_array_equal(x, sequence[0][0])
    sequence.on_epoch_end()
    assert not np.array_equal(x, sequence[0][0])  # a new epoch draws new crops
    with pytest.raises(ValueError, match="larger than a training scan"):
        crops.CropSequence([example], size=96)


def test_threshold_keeps_the_required_share_of_true_points():
    scans = [toy_scan(seed=s) for s in range(2)]
    model = build_unet(input_channels=6, filters=(4, 4, 4, 4, 4))
    threshold, sweep = thresholds.choose_threshold(filters.UNetFilter("unet", model), scans, min_recall=0.99)
    row = int(np.argmin(np.abs(sweep["threshold"] - threshold)))
    assert sweep["recall"][row] >= 0.99 or threshold == sweep["threshold"].min()


@pytest.mark.parametrize("suffix", [".pcd", ".ply"])
def test_organised_clouds_round_trip(tmp_path, suffix):
    scan = toy_scan()
    keep = np.random.default_rng(0).random(scan["valid"].shape) > 0.2
    path = tmp_path / f"scan{suffix}"
    n = organised.write_organised(path, scan["xyz"], scan["intensity"], keep=keep)
    cloud = organised.read_cloud(path)
    assert cloud["organised"] and n == int((keep & scan["valid"]).sum())
    np.testing.assert_array_equal(cloud["valid"], keep & scan["valid"])
    np.testing.assert_array_equal(cloud["xyz"][cloud["valid"]], scan["xyz"][cloud["valid"]])
    assert cloud["normals"].shape == scan["xyz"].shape  # estimated from the grid

    flat = tmp_path / f"flat{suffix}"
    organised.write_points(flat, scan["xyz"][scan["valid"]])
    assert not organised.read_cloud(flat)["organised"]


def test_bad_clouds_get_clear_errors(tmp_path):
    ascii_pcd = tmp_path / "a.pcd"
    ascii_pcd.write_text("VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 2\nHEIGHT 2\n"
                         "POINTS 4\nDATA ascii\n0 0 1\n0.1 0 1\nnan nan nan\n0.1 0.1 1\n")
    cloud = organised.read_cloud(ascii_pcd)
    assert cloud["organised"] and cloud["valid"].tolist() == [[True, True], [False, True]]
    assert cloud["intensity"] is None
    wrong = tmp_path / "w.pcd"
    wrong.write_text(ascii_pcd.read_text().replace("WIDTH 2", "WIDTH 3"))
    with pytest.raises(ValueError, match="does not match"):
        organised.read_cloud(wrong)
    (tmp_path / "n.pcd").write_text("hello\n")
    with pytest.raises(ValueError, match="not a PCD file"):
        organised.read_cloud(tmp_path / "n.pcd")
    (tmp_path / "x.obj").write_text("")
    with pytest.raises(ValueError, match="cannot read"):
        organised.read_cloud(tmp_path / "x.obj")


# The shipped filter (issue: "the shipped weights still beat every baseline on a small fixed test set")

needs_weights = pytest.mark.skipif(not filters.SHIPPED_MODEL.is_file(),
                                   reason="pcfilter_lib/weights/unet_filter.keras is missing; train it with "
                                          "data_scripts/train_reference_models.py --target unet")


@needs_weights
def test_shipped_filter_is_small_loads_alone_and_records_how_it_was_made():
    import pcfilter_lib.nn.keras_metrics  # noqa: F401
    import pcfilter_lib.nn.losses  # noqa: F401

    model = keras.models.load_model(filters.SHIPPED_MODEL)
    assert 1e5 <= model.count_params() <= 2.4e5
    manifest = model_cards.read_model_card(filters.SHIPPED_MODEL)
    assert 0 < manifest.threshold < 1
    assert manifest.parameters == model.count_params()
    assert manifest.data["generator"] == "pcfilter.simulate" and manifest.data["parameters"]["randomise"]
    assert manifest.settings["unet"]["channels"] == "geometric" and model.input_shape[-1] == 9
    assert manifest.details["baseline_lengths"] == "point spacings"
    assert manifest.command.startswith("python data_scripts/train_reference_models.py --target unet")
    assert set(manifest.details["baselines"]) == set(baselines.METHODS)
    for name in ("mean_iou", "balanced_accuracy", "recall"):
        assert 0 <= manifest.test[name] <= 1


@needs_weights
def test_shipped_filter_beats_every_tuned_baseline_on_fixed_scans():
    from pcfilter_lib.simulate.dataset import make_scan
    from pcfilter_lib.simulate.scanner import ScannerConfig

    # Eight scans pooled: on a single scan with few inter-reflections a tuned baseline can win, because the
    # U-Net removes few mixed pixels (see the per-kind table of chapter 5).
    scans = [make_scan(2024, i, ScannerConfig(width=640, height=480)) for i in range(8)]
    unet = filters.evaluate_filter(filters.unet_filter(), scans)
    for method in baselines.METHODS:
        baseline = filters.evaluate_filter(filters.baseline_filter(method), scans)
        assert unet["mean_iou"] > baseline["mean_iou"], (method, unet["mean_iou"], baseline["mean_iou"])
    assert unet["recall"] > 0.98


def test_training_runs_end_to_end_and_the_loss_names_are_checked(tmp_path):
    from pcfilter_lib.data.scans import GEOMETRIC, scan_inputs, scan_targets

    scans = [toy_scan(64, 80, seed=s) for s in range(3)]
    examples = [(scan_inputs(s, GEOMETRIC), *scan_targets(s)) for s in scans[:2]]
    run = unet_recipe.train_filter([], scans[2:], "weighted_bce", epochs=1, crop=32, crops=16, batch_size=8,
                                       examples=examples, jit_compile=False)
    assert 0 < run.threshold < 1 and len(run.history["loss"]) == len(run.epoch_seconds) == 1
    assert run.filter.threshold == run.threshold and run.filter.keep_mask(scans[2]).shape == (64, 80)
    assert run.settings["loss"] == "weighted_bce" and run.model.count_params() == 237721
    assert run.filter.channels == GEOMETRIC and run.settings["unet"]["input_channels"] == list(GEOMETRIC)
    with pytest.raises(ValueError, match="unknown loss"):
        losses.make_loss("hinge")
    with pytest.raises(ValueError, match="needs training labels"):
        losses.make_loss("weighted_bce")


def test_shipped_filter_learnt_from_the_current_simulator():
    from pcfilter_lib.simulate.dataset import VERSION

    manifest = model_cards.read_model_card(filters.SHIPPED_MODEL)
    assert manifest.data["version"] == VERSION, "retrain the filter: the simulator has changed since"


def test_a_model_of_an_unknown_channel_count_is_refused_by_name(tmp_path):
    from pcfilter_lib.filters.pixels import wrap_unet

    inputs = keras.Input((None, None, 7))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs))
    with pytest.raises(ValueError, match=r"odd\.keras: a scan filter reads 5, 6 or 9 input channels, not 7"):
        wrap_unet(model, tmp_path / "odd.keras")
    vector = keras.Input((9,))
    with pytest.raises(ValueError, match=r"takes \(B, H, W, C\) input"):
        wrap_unet(keras.Model(vector, keras.layers.Dense(1)(vector)), tmp_path / "flat.keras")


def test_a_large_image_through_the_unet_in_strips_gives_what_one_pass_gives(monkeypatch):
    from pcfilter_lib.filters import pixels

    model = build_unet(input_channels=6, filters=(4, 4, 4, 4, 4))  # four levels, as the shipped one
    batch = np.random.default_rng(0).random((2, 448, 64, 6)).astype(np.float32)
    monkeypatch.setattr(pixels, "STRIP_PIXELS", 448 * 64 // 3)  # four strips of 112 rows, 128 more above and below
    strips = pixels.predict_in_strips(model, batch, 16)
    np.testing.assert_allclose(strips, np.asarray(model.predict_on_batch(batch)), atol=1e-6)


def test_a_filter_prepared_for_a_size_gives_what_an_unprepared_one_gives(monkeypatch):
    import pcfilter_lib.geometry.pixel_neighbourhoods as neighbourhoods
    from pcfilter_lib.filters import pixels

    model = build_unet(input_channels=9, filters=(4, 4, 4, 4, 4))  # the shipped channels: statistics too
    scan = make_scan(seed=3, index=0, config=ScannerConfig(width=64, height=448))
    expected = pixels.UNetFilter("u", model).keep_probability(scan)
    monkeypatch.setattr(pixels, "STRIP_PIXELS", 448 * 64 // 3)  # in strips, as a whole sensor goes
    monkeypatch.setattr(neighbourhoods, "BAND_PIXELS", 64 * 100)  # and the statistics in bands
    prepared = pixels.UNetFilter("u", model)
    prepared.prepare((448, 64))
    np.testing.assert_allclose(prepared.keep_probability(scan), expected, atol=1e-6)
