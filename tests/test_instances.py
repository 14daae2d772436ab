"""Instances from semantic labels: grouping by distance, the meeting counts, boxes and their IoU."""

import numpy as np
import pytest

from pcfilter_lib.models import instances


def blob(centre, n, rng, spread=0.1):
    return np.asarray(centre) + rng.normal(0, spread, (n, 3))


def test_groups_separate_far_blobs_and_classes_but_not_touching_ones():
    rng = np.random.default_rng(0)
    points = np.concatenate([blob((0, 0, 0), 200, rng), blob((5, 0, 0), 200, rng), blob((0.3, 0, 0), 200, rng)])
    classes = np.array([0] * 400 + [1] * 200)  # the third blob overlaps the first but has another class
    groups = instances.group_by_distance(points, classes, radius=0.5)
    assert len(np.unique(groups)) == 3
    assert len(np.unique(groups[:200])) == 1 and groups[0] != groups[200] != groups[400]
    truth = np.array([0] * 200 + [1] * 200 + [2] * 200)
    counts = instances.compare_instances(truth, groups)
    assert counts == {"instances": 3, "groups": 3, "merged": 0, "split": 0, "exact": 3}
    fused = instances.group_by_distance(points, np.zeros(600, int), radius=0.5)  # one class: two touch
    assert instances.compare_instances(truth, fused)["merged"] == 1


def test_a_small_radius_splits_and_min_points_ignores_crumbs():
    truth = np.array([0, 0, 0, 0, 1, 1])
    groups = np.array([0, 0, 1, 1, 2, 3])
    counts = instances.compare_instances(truth, groups, min_points=2)
    assert counts["split"] == 1 and counts["exact"] == 0  # instance 1 is two crumbs of one point each
    assert instances.compare_instances(truth, groups, min_points=1)["split"] == 2


def test_box_iou():
    a = np.array([[0, 0, 0], [2, 2, 2]], float)
    assert instances.box_iou(a, a) == 1.0
    b = a + [1, 0, 0]
    assert instances.box_iou(a, b) == pytest.approx(4 / 12)
    assert instances.box_iou(a, a + 5) == 0.0
    flat = np.array([[0, 0, 0], [1, 1, 0]], float)
    assert instances.box_iou(flat, flat) == 0.0


def test_boxes_and_best_matches():
    points = np.array([[0, 0, 0], [1, 1, 1], [4, 4, 4], [5, 6, 5]], float)
    boxes = instances.axis_aligned_boxes(points, np.array([7, 7, 9, 9]))
    np.testing.assert_array_equal(boxes[9], [[4, 4, 4], [5, 6, 5]])
    best = instances.best_box_ious(boxes, {0: boxes[7]})
    assert best == {7: 1.0, 9: 0.0}


def test_rejects_mismatched_input():
    with pytest.raises(ValueError, match="one class per point"):
        instances.group_by_distance(np.zeros((3, 3)), np.zeros(2), 1.0)
