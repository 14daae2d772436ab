"""Bad input, round 3: the rows of the neighbour filter's far points (run by ``test_bad_input_round3.py``).

A scattered handful of points far from a scan, and garbage records in the middle of a LAS file, were
mostly kept by ``--model neighbours`` (43 of 50 and 63 of 67), while SOR and the patch filter removed
them all: to features measured in the cloud's own spacing, a few far points that are each other's
neighbours look like a sparse sheet. Each row checks that every far point is removed and that the
scan itself is kept.
"""

from __future__ import annotations

import laspy
import numpy as np
from test_bad_input import CLOUD, Case, _lidar, kept, write_xyz

SCAN = CLOUD[:4000]  # the 4,000-point scan of the issue: a plane 2 mm apart at z = 1 m
FAR_POINTS = 50
GARBAGE_RECORDS = 67
GARBAGE_AT = 2000  # the first record overwritten


def _scattered(count: int, nearest: float, farthest: float, seed: int = 0) -> np.ndarray:
    """``count`` points in random directions from the scan's centre, ``nearest`` to ``farthest`` away."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return SCAN.mean(axis=0) + directions * rng.uniform(nearest, farthest, (count, 1))


def _far_points(folder):
    write_xyz(folder / "c.xyz", np.r_[SCAN, _scattered(FAR_POINTS, 1e5, 2e5)])  # 100 to 200 km
    return ["filter", "c.xyz", "-o", "out.ply", "--model", "neighbours"]


def _garbage_records(path):
    """Random bytes over ``GARBAGE_RECORDS`` whole point records from the ``GARBAGE_AT``-th on, as a
    damaged copy leaves them: their coordinates become random whole numbers times the scale, up to
    about 200 km from the scan."""
    with path.open("rb") as file:
        header = laspy.LasHeader.read_from(file)
    size = header.point_format.size
    start = header.offset_to_point_data + GARBAGE_AT * size
    data = bytearray(path.read_bytes())
    data[start:start + GARBAGE_RECORDS * size] = np.random.default_rng(1).bytes(GARBAGE_RECORDS * size)
    path.write_bytes(bytes(data))


def _only_the_scan_is_kept(expected: int):
    """The kept points all lie on the scan (within 1 m of its centre) and hold nearly all of its points."""
    def check(folder):
        points = kept(folder)
        far = np.linalg.norm(points - SCAN.mean(axis=0), axis=1) > 1.0
        assert not far.any(), f"{far.sum()} far points kept: {points[far][:5].tolist()}"
        assert len(points) > 0.9 * expected, f"only {len(points)} of the scan's {expected} points kept"
    return check


ROWS: list[Case] = [
    Case("3.1 neighbours: --model neighbours on 50 points 100-200 km from a 4,000-point scan", _far_points, 0,
         "neighbour_filter: kept", ("out.ply",), check=_only_the_scan_is_kept(len(SCAN))),
    Case("3.2 neighbours: --model neighbours on a LAS file with 67 garbage records", _lidar(
        "c.las", _garbage_records, argv=("-o", "out.ply", "--model", "neighbours")), 0, "neighbour_filter: kept",
         ("out.ply",), check=_only_the_scan_is_kept(len(CLOUD) - GARBAGE_RECORDS)),
]
