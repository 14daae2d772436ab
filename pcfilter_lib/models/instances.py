"""From semantic labels to instances and boxes: grouping points by distance, and 3D box overlap.

Semantic segmentation says *what* each point is; instance segmentation also says *which one*, and
detection gives each object a box and a class without labelling its points. The simplest way from
the first to the others groups the points of each class into connected pieces, two points joined
when they lie closer than a radius, and boxes each piece. It fails where objects of one class touch
(one piece, two objects) or where an occlusion cuts one apart (two pieces, one object), which is
what learned instance methods address. The helpers here make that baseline and score it.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree


def group_by_distance(points: np.ndarray, classes: np.ndarray, radius: float) -> np.ndarray:
    """Split each class's points into connected groups: points closer than ``radius`` share a group.

    Args:
        points: (N, 3) coordinates.
        classes: (N,) integer class of every point; points of different classes never share a group.
        radius: the largest distance that joins two points, in the points' unit.

    Returns:
        (N,) int64 group numbers, 0, 1, 2, ..., numbered class by class.

    Raises:
        ValueError: the arrays' lengths differ or ``radius`` is not positive.
    """
    points, classes = np.asarray(points, np.float64), np.asarray(classes)
    if len(points) != len(classes) or radius <= 0:
        raise ValueError(f"need one class per point and radius > 0, got {len(points)} points, "
                         f"{len(classes)} classes, radius {radius}")
    groups = np.zeros(len(points), np.int64)
    start = 0
    for c in np.unique(classes):
        members = np.flatnonzero(classes == c)
        pairs = cKDTree(points[members]).query_pairs(radius, output_type="ndarray")
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(members),) * 2)
        count, found = connected_components(graph, directed=False)
        groups[members] = start + found
        start += count
    return groups


def axis_aligned_boxes(points: np.ndarray, ids: np.ndarray) -> dict[int, np.ndarray]:
    """The axis-aligned box around the points of each id.

    Args:
        points: (N, 3) coordinates.
        ids: (N,) integer instance or group of every point.

    Returns:
        ``{id: box}``, each box a (2, 3) array: the smallest and the largest coordinates.
    """
    points, ids = np.asarray(points), np.asarray(ids)
    return {int(i): np.stack([points[ids == i].min(axis=0), points[ids == i].max(axis=0)])
            for i in np.unique(ids)}


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two axis-aligned 3D boxes.

    Args:
        a: (2, 3) smallest and largest coordinates of the first box.
        b: the second box, the same way.

    Returns:
        The volume they share over the volume they cover together, in [0, 1]; 0 for boxes
        without volume.
    """
    low, high = np.maximum(a[0], b[0]), np.minimum(a[1], b[1])
    inter = float(np.prod(np.clip(high - low, 0.0, None)))
    union = float(np.prod(a[1] - a[0]) + np.prod(b[1] - b[0])) - inter
    return inter / union if union > 0 else 0.0


def compare_instances(true_ids: np.ndarray, group_ids: np.ndarray, min_points: int = 1) -> dict[str, int]:
    """How groups found from semantic labels match the true instances, point by point.

    An instance and a group *meet* when they share at least ``min_points`` points.

    Args:
        true_ids: (N,) true instance of every point.
        group_ids: (N,) group of every point (``group_by_distance``).
        min_points: the fewest shared points that count as a meeting.

    Returns:
        ``instances`` and ``groups`` (how many of each), ``merged`` (groups that meet two or more
        instances), ``split`` (instances that meet two or more groups) and ``exact`` (instances that
        meet exactly one group, which meets no other instance).
    """
    true_ids, group_ids = np.asarray(true_ids), np.asarray(group_ids)
    instances, t = np.unique(true_ids, return_inverse=True)
    groups, g = np.unique(group_ids, return_inverse=True)
    shared = np.zeros((len(instances), len(groups)), np.int64)
    np.add.at(shared, (t, g), 1)
    meets = shared >= min_points
    per_instance, per_group = meets.sum(axis=1), meets.sum(axis=0)
    exact = sum(1 for i in range(len(instances))
                if per_instance[i] == 1 and per_group[np.argmax(meets[i])] == 1)
    return {"instances": len(instances), "groups": len(groups), "merged": int(np.sum(per_group >= 2)),
            "split": int(np.sum(per_instance >= 2)), "exact": exact}


def best_box_ious(true_boxes: dict[int, np.ndarray], found_boxes: dict[int, np.ndarray]) -> dict[int, float]:
    """For every true box, the largest IoU any found box reaches with it (``box_iou``).

    Args:
        true_boxes: ``{id: (2, 3) box}`` of the true instances.
        found_boxes: ``{id: (2, 3) box}`` of the found groups or detections.

    Returns:
        ``{true id: best IoU}``; 0 where nothing overlaps it.
    """
    return {i: max((box_iou(box, other) for other in found_boxes.values()), default=0.0)
            for i, box in true_boxes.items()}
