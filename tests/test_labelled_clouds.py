"""Filters scored on labelled clouds without a grid (PointCleanNet pairs), as for the real scans."""

import numpy as np
import pytest

from pcfilter_lib.filters.baselines import BaselineFilter
from pcfilter_lib.filters.labelled_clouds import (
    SCORES,
    cloud_scores,
    compare_on_clouds,
    labelled_pairs,
    mean_rows,
    reference_filters,
)


def _write_pair(folder, name, points, outlier):
    np.savetxt(folder / f"{name}.xyz", points, fmt="%.6f")
    np.savetxt(folder / f"{name}.outliers", outlier.astype(int), fmt="%d")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """Two planes of 4,000 points, 1 mm apart, each with 40 points lifted off it as outliers."""
    folder = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    for i in range(2):
        grid = np.stack(np.meshgrid(np.arange(80), np.arange(50)), -1).reshape(-1, 2) * 1e-3
        points = np.c_[grid, np.zeros(len(grid))] + rng.normal(0, 5e-5, (len(grid), 3))
        outlier = np.zeros(len(points), bool)
        outlier[rng.choice(len(points), 40, replace=False)] = True
        points[outlier, 2] += rng.uniform(0.01, 0.03, outlier.sum())
        _write_pair(folder, f"plane_{i}", points, outlier)
    (folder / "lonely.xyz").write_text("0 0 0\n")  # no labels beside it: not a pair
    return folder


def test_pairs_are_the_xyz_files_with_labels(pairs, tmp_path):
    assert [p.name for p in labelled_pairs(pairs)] == ["plane_0.xyz", "plane_1.xyz"]
    assert labelled_pairs(tmp_path / "missing") == []


def test_cloud_scores_of_a_perfect_and_a_keep_everything_filter():
    label = np.array([1, 1, 1, 0, 0], np.uint8)
    perfect = cloud_scores(label, label == 1, np.array([0.9, 0.8, 0.7, 0.2, 0.1]))
    assert perfect["balanced_accuracy"] == 1 and perfect["mean_iou"] == 1 and perfect["roc_auc"] == 1
    everything = cloud_scores(label, np.ones(5, bool))
    assert everything["keep_recall"] == 1 and everything["outlier_recall"] == 0
    assert everything["balanced_accuracy"] == pytest.approx(0.5) and everything["roc_auc"] is None


def test_reference_filters_find_lifted_points_and_the_learned_one_ranks_them(pairs):
    candidates = reference_filters()
    names = [name for name, _, _ in candidates]
    assert names[:2] == ["point filter", "point filter, balanced"] and "ROR, tuned" in names
    rows = compare_on_clouds(labelled_pairs(pairs), candidates)
    assert len(rows) == 2 * len(candidates)
    learned = [r for r in rows if r["filter"] == "point filter"]
    assert all(r["roc_auc"] > 0.9 for r in learned)
    assert all(r["roc_auc"] is None for r in rows if not r["filter"].startswith("point filter"))
    sor = [r for r in rows if r["filter"] == "SOR, Open3D defaults"]
    assert all(r["outlier_recall"] > 0.5 and r["keep_recall"] > 0.9 for r in sor)
    means = mean_rows(rows)
    assert [m["filter"] for m in means] == names
    first = next(m for m in means if m["filter"] == "point filter")
    assert first["mean_iou"] == pytest.approx(np.mean([r["mean_iou"] for r in learned]))
    assert set(SCORES) <= set(first)


def test_a_classical_filter_alone_can_be_compared(pairs):
    rows = compare_on_clouds(labelled_pairs(pairs), [("sor", "default", BaselineFilter("sor", "sor"))])
    assert [r["scan"] for r in rows] == ["plane_0", "plane_1"]
