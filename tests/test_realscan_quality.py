"""benchmarks/realscan_quality.py on a small labelled scan written in both forms (a PTX grid with its
labels, and the same points turned and moved as a PointCleanNet pair): the forms are recognised as
one scan only when they hold the same points in the same order with the same labels, and SOR, ROR
and the opening run through the command line's filters give the scores and agreement the benchmark
reports."""

from __future__ import annotations

import gzip
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pcfilter_lib.filters.baselines import BaselineFilter
from pcfilter_lib.io.ptx import write_ptx

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("realscan_quality", ROOT / "benchmarks" / "realscan_quality.py")
rq = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = rq
spec.loader.exec_module(rq)


def write_scan(folder: Path, order=None) -> tuple[Path, Path, np.ndarray]:
    """A 40 x 50 grid of a gently curved surface 0.5 m away, 30 pixels holding false points 5-20 mm
    off it, a hole; written as data/organised/scan.ptx.gz + scan.outliers.gz and as data/scan.xyz +
    scan.outliers, the points turned and moved (in ``order``, default the file order)."""
    rng = np.random.default_rng(1)
    rows, cols = np.mgrid[0:40, 0:50]
    xyz = np.stack([(cols - 25) * 1e-3, (rows - 20) * 1e-3, 0.5 + 1e-4 * np.sin(cols / 5.0)], axis=-1)
    valid = np.ones((40, 50), bool)
    valid[5:9, 30:36] = False
    outlier = np.zeros((40, 50), bool)
    spots = rng.choice(np.flatnonzero(valid), 30, replace=False)
    outlier.reshape(-1)[spots] = True
    xyz[outlier, 2] -= rng.uniform(0.005, 0.02, outlier.sum())
    xyz[~valid] = np.nan
    (folder / "organised").mkdir(parents=True)
    ptx = folder / "organised" / "scan.ptx.gz"
    write_ptx(ptx, xyz, intensity=np.full((40, 50), 0.5))
    with gzip.open(folder / "organised" / "scan.outliers.gz", "wt") as labels:
        labels.write("".join("1\n" if o else "0\n" for o in outlier.reshape(-1)))
    points, flags = xyz[valid], outlier[valid]
    order = np.arange(len(points)) if order is None else order
    moved = Rotation.from_euler("xyz", [20, -35, 60], degrees=True).apply(points) + [0.3, -0.1, 0.2]
    pair = folder / "scan.xyz"
    pair.write_text("".join(f"{x:.9g} {y:.9g} {z:.9g}\n" for x, y, z in moved[order]))
    (folder / "scan.outliers").write_text("".join("1\n" if o else "0\n" for o in flags[order]))
    return pair, ptx, flags


def test_both_forms_of_one_scan_decide_alike(tmp_path):
    pair, ptx, flags = write_scan(tmp_path)
    assert rq.labelled_pairs(tmp_path) == [pair] and rq.organised_files(tmp_path / "organised") == {"scan": ptx}
    forms = rq.read_forms(pair, ptx)
    assert forms["organised"]["scan"]["xyz"].shape == (40, 50, 3)  # the grid, as pcfilter filter reads it
    assert forms["organised"]["apart"] < 1e-6  # turned and moved, the same points up to the .xyz's float32
    for form in forms.values():
        np.testing.assert_array_equal(form["label"], (~flags).astype(np.uint8))
    entries = [{"filter": m, "candidate": BaselineFilter(m, m, params, reference_spacing=1.0), "key": None}
               for m, params in (("sor", {"nb_neighbors": 8, "std_ratio": 1.0}),
                                 ("ror", {"nb_points": 4, "radius": 1.5}))]
    for entry in entries:
        keep = {name: rq.run_filter(entry, form, {}) for name, form in forms.items()}
        assert keep["organised"][1] is None  # a yes/no filter has no score to rank by
        np.testing.assert_array_equal(keep["organised"][0], keep["points"][0])
        scores = rq.cloud_scores(forms["points"]["label"], keep["points"][0])
        assert scores["outlier_recall"] > 0.9 and scores["keep_recall"] > 0.9 and scores["roc_auc"] is None
    rows = rq.oracle(forms["organised"]["scan"], forms["organised"]["label"], "morph")
    assert [r["filter"] for r in rows] == ["oracle opening for mean IoU (upper bound)",
                                           "oracle opening for balanced accuracy (upper bound)"]
    assert all(set(r["params"]) == {"erosion", "dilation"} for r in rows)


def test_forms_of_other_points_or_another_order_are_refused(tmp_path):
    _, _, flags = write_scan(tmp_path / "first")
    order = np.arange(len(flags))
    true = np.flatnonzero(~flags)
    order[true] = np.random.default_rng(2).permutation(true)  # the same labels, the points in another order
    pair, ptx, _ = write_scan(tmp_path, order=order)
    with pytest.raises(ValueError, match="different orders"):
        rq.read_forms(pair, ptx)
    pair.write_text("".join(pair.read_text().splitlines(keepends=True)[:-1]))
    (tmp_path / "scan.outliers").write_text("".join(
        (tmp_path / "scan.outliers").read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(ValueError, match="not the same scan"):
        rq.read_forms(pair, ptx)


def test_the_threshold_oracle_finds_where_a_ranking_separates_the_classes():
    label = np.array([1] * 90 + [0] * 10, np.uint8)
    prob = np.concatenate([np.linspace(0.3, 0.4, 90), np.linspace(0.1, 0.2, 10)])  # a card at 0.5 keeps nothing
    row = rq.oracle_threshold("U-Net", label, prob)
    assert 0.2 < row["threshold"] <= 0.3 and row["balanced_accuracy"] == 1.0 and row["roc_auc"] == 1.0
    assert row["filter"].startswith("oracle threshold of the U-Net")
