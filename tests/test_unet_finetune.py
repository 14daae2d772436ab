"""Fine-tuning the U-Net on labelled organised scans: the held-out band of columns, ``pcfilter finetune``
writing a .keras with its model card that ``pcfilter filter --model`` runs, and bad input refused in
one line before TensorFlow starts. Every file is written by the test (a small simulated scan)."""

import gzip
import json
import subprocess
import sys

import numpy as np
import pytest

from pcfilter_lib.io.labelled_scans import column_band, read_labelled_scans, split_scans
from pcfilter_lib.io.organised import read_cloud
from pcfilter_lib.io.ptx import write_ptx
from pcfilter_lib.labels import ARTEFACT, KEEP, NO_POINT
from pcfilter_lib.simulate.dataset import make_scan
from pcfilter_lib.simulate.scanner import ScannerConfig

HOLDOUT = 0.3


@pytest.fixture(scope="module")
def scan():
    """A small simulated scan with artefacts on both sides of its held-out band."""
    for seed in range(20):
        scan = make_scan(seed=seed, index=0, config=ScannerConfig(width=96, height=72))
        band = column_band(scan["valid"], HOLDOUT)
        artefact = scan["label"] == ARTEFACT
        if (artefact & band).sum() >= 3 and (artefact & scan["valid"] & ~band).sum() >= 3:
            return scan
    pytest.fail("no seed gives artefacts on both sides of the band")



def write_labelled(folder, scan, name="s", outlier=None):
    """The scan as NAME.ptx.gz with NAME.outliers.gz beside it (one line per grid position)."""
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.ptx.gz"
    write_ptx(path, scan["xyz"], scan["intensity"], keep=scan["valid"])
    if outlier is None:
        outlier = ((scan["label"] == ARTEFACT) & scan["valid"]).reshape(-1)
    with gzip.open(folder / f"{name}.outliers.gz", "wt") as file:
        file.write("".join("1\n" if v else "0\n" for v in np.asarray(outlier).tolist()))
    return path


def test_the_held_out_band_is_the_right_hand_columns_and_the_parts_do_not_overlap(scan, tmp_path):
    write_labelled(tmp_path / "data", scan)
    (labelled,) = read_labelled_scans(tmp_path / "data")
    valid = labelled["valid"]
    assert np.array_equal(labelled["label"] == NO_POINT, ~valid)
    band = column_band(valid, HOLDOUT)
    columns = np.nonzero(valid)[1]
    assert np.nonzero(band)[1].min() > np.nonzero(valid & ~band)[1].max()  # a band at the right-hand end
    assert abs(band.sum() / valid.sum() - HOLDOUT) < 0.1
    (train,), (held,) = split_scans([labelled], HOLDOUT)
    assert train["valid"].sum() + held["valid"].sum() == valid.sum()
    assert train["valid"].sum() == (valid & ~band).sum() and held["valid"].sum() == band.sum()
    assert set(np.unique(held["label"][held["valid"]])) == {KEEP, ARTEFACT}
    assert columns.size == valid.sum()


def test_finetune_writes_a_unet_that_filter_runs_like_the_shipped_one(scan, tmp_path, pcfilter):
    data = tmp_path / "data"
    write_labelled(data, scan)
    out = tmp_path / "mine.keras"
    result = pcfilter("finetune", "--data", data, "--out", out, "--steps", 3, "--holdout", HOLDOUT, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "before" in result.stdout and "after" in result.stdout and "ROC AUC" in result.stdout
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["target"] == "unet_finetune" and 0 < card["threshold"] < 1
    assert card["data"]["scans"][0]["file"] == "s.ptx.gz" and card["settings"]["steps"] == 3
    assert card["validation"]["points"] + card["data"]["training_points"] == int(scan["valid"].sum())
    from pcfilter_lib.filters import unet_filter

    tuned = unet_filter(out)
    assert tuned.threshold == pytest.approx(card["threshold"])
    kept_path = tmp_path / "kept.ptx"
    filtered = pcfilter("filter", data / "s.ptx.gz", "-o", kept_path, "--model", out, "--quiet")
    assert filtered.returncode == 0, filtered.stderr
    cloud = read_cloud(data / "s.ptx.gz")
    expected = int(tuned.keep_mask(cloud).sum())
    kept = int(read_cloud(kept_path)["valid"].sum())
    assert abs(kept - expected) <= 2, (kept, expected)  # a pixel at the threshold may go either way
    again = pcfilter("finetune", "--data", data, "--out", out, "--steps", 1, "--quiet")
    assert again.returncode == 1 and "already exists" in again.stderr


def test_finetune_refuses_bad_organised_data_in_one_line(scan, tmp_path, pcfilter):
    outlier = ((scan["label"] == ARTEFACT) & scan["valid"]).reshape(-1)
    write_labelled(tmp_path / "short", scan, outlier=outlier[:-5])
    write_labelled(tmp_path / "true", scan, outlier=np.zeros_like(outlier))
    band_only = outlier & column_band(scan["valid"], HOLDOUT).reshape(-1)  # no artefact outside the band
    write_labelled(tmp_path / "band", scan, outlier=band_only)
    np.savetxt(tmp_path / "pairs.xyz", np.random.default_rng(0).random((50, 3)))
    out = tmp_path / "m.keras"
    cases = [(("--data", tmp_path / "short", "--out", out), "labels for the"),
             (("--data", tmp_path / "true", "--out", out), "holds only true points"),
             (("--data", tmp_path / "band", "--out", out, "--holdout", HOLDOUT), "the training part"),
             (("--data", tmp_path / "true", "--out", tmp_path / "m.npz"), "must end in .keras"),
             (("--data", tmp_path / "true", "--out", out, "--model", tmp_path / "none.keras"), "--model"),
             (("--data", tmp_path / "true", "--out", out, "--steps", 0), "--steps must be")]
    for args, message in cases:
        result = pcfilter("finetune", *args, "--quiet")
        assert result.returncode == 1, (args, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
    assert not out.exists()
    listing = ("import sys; from pcfilter_lib.cli import main; status = main(sys.argv[1:]); "
               "print('LOADED', *sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)); sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", listing, "finetune", "--data", str(tmp_path / "band"), "--out",
                           str(out), "--holdout", str(HOLDOUT)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "the training part" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout.splitlines()[-1] == "LOADED"  # refused before TensorFlow started


def test_the_threshold_is_the_best_balanced_accuracy_and_keeps_what_it_is_asked_to():
    from pcfilter_lib.recipes.unet_finetune import balanced_threshold

    keep = np.array([True] * 80 + [False] * 20)  # a fifth artefacts, as on a circuit board
    prob = np.concatenate([np.linspace(0.5, 1.0, 80), np.linspace(0.0, 0.6, 20)])
    chosen = balanced_threshold(prob, keep)
    sweep = np.unique(np.concatenate([np.round(np.linspace(0.02, 0.98, 49), 2), prob]))
    sweep = sweep[(sweep > 0) & (sweep < 1)]
    balanced = [0.5 * ((prob[keep] >= t).mean() + (prob[~keep] < t).mean()) for t in sweep]
    ours = 0.5 * ((prob[keep] >= chosen).mean() + (prob[~keep] < chosen).mean())
    assert ours == pytest.approx(max(balanced))
    strict = balanced_threshold(prob, keep, min_recall=1.0)
    assert (prob[keep] >= strict).all() and strict <= chosen
    near_one = 1 - 1e-4 * np.concatenate([np.arange(80), 100 + np.arange(20)])  # every P(keep) above 0.99
    assert 0.5 * ((near_one[keep] >= (t := balanced_threshold(near_one, keep))).mean()
                  + (near_one[~keep] < t).mean()) == pytest.approx(1.0)


def test_the_help_states_the_recipes_default_steps_and_crop():
    """``--steps`` defaults to the recipe's own steps (the command line does not load Keras to ask)."""
    from pcfilter_lib.cli.app import build_parser
    from pcfilter_lib.recipes.unet_finetune import UNetFinetuneSettings

    default = UNetFinetuneSettings()
    finetune = build_parser()._subparsers._group_actions[0].choices["finetune"]
    (steps,) = [action for action in finetune._actions if action.dest == "steps"]
    assert steps.default is None
    assert f"default {default.steps}:" in steps.help and f"{default.crop} x {default.crop} pixels" in steps.help
