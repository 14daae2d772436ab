"""Classical baselines on a hand-made organised scan: a plane with flying specks in front of it."""

import numpy as np
import pytest

from pcfilter_lib.filters import baselines
from pcfilter_lib.simulate.dataset import make_scan
from pcfilter_lib.simulate.scanner import ScannerConfig

COUNTS = ("tp", "fn", "fp", "tn")  # the confusion counts decide every metric


def plane_with_specks(h=40, w=50, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    xyz = np.stack([xx * 0.002, yy * 0.002, np.full((h, w), 1.0)], axis=-1).astype(np.float32)
    label = np.ones((h, w), np.uint8)
    specks = rng.choice(h * w, size=20, replace=False)
    xyz.reshape(-1, 3)[specks, 2] -= rng.uniform(0.05, 0.2, size=20)  # isolated ghosts 5-20 cm in front
    label.reshape(-1)[specks] = 0
    valid = np.ones((h, w), bool)
    valid[:5, :5] = False  # a hole without points
    xyz[~valid] = np.nan
    label[~valid] = 255
    return {"xyz": xyz, "valid": valid, "label": label}


@pytest.mark.parametrize("method", baselines.METHODS)
def test_every_method_returns_a_keep_mask_inside_the_valid_points(method):
    scan = plane_with_specks()
    keep = baselines.keep_mask(scan, method)
    assert keep.shape == scan["valid"].shape and keep.dtype == bool
    assert not keep[~scan["valid"]].any()


@pytest.mark.parametrize("method", ["sor", "ror"])
def test_point_based_filters_remove_isolated_specks(method):
    scan = plane_with_specks()
    result = baselines.evaluate([scan], method, **({"radius": 0.005, "nb_points": 4} if method == "ror" else {}))
    assert result["tnr"] == 1.0  # every speck removed
    assert result["recall"] > 0.95  # the plane stays


def test_morphology_removes_single_pixels_and_thin_lines():
    scan = plane_with_specks()
    scan["valid"][:] = False
    scan["valid"][10:30, 10:30] = True  # a solid block survives an opening
    scan["valid"][35, :] = True  # a one-pixel line does not
    keep = baselines.morphological(scan, erosion=3, dilation=3)
    assert keep[15:25, 15:25].all() and not keep[35].any()


def test_tuning_picks_the_best_row_of_the_grid():
    scans = [plane_with_specks(seed=s) for s in range(2)]
    best, rows = baselines.tune(scans, "ror", grid={"nb_points": [2, 4], "radius": [0.001, 0.005]})
    assert len(rows) == 4
    best_row = max(rows, key=lambda r: r["mean_iou"])
    assert best == {"nb_points": best_row["nb_points"], "radius": best_row["radius"]}


@pytest.mark.parametrize("method", ["sor", "ror"])
def test_a_grid_search_decides_as_open3d_does_for_every_combination(method):
    # One neighbour search serves the whole grid; each row must be what Open3D's own call gives.
    simulated = make_scan(3, 0, ScannerConfig(width=160, height=120))
    doubled = plane_with_specks(seed=2)
    doubled["xyz"][10:20, 10:20] = doubled["xyz"][10, 10]  # coincident points: zero mean distances
    tiny = plane_with_specks(seed=3)
    tiny["valid"][:] = False
    tiny["valid"][20, 20:26] = True  # fewer points than the largest neighbourhood
    grid = {"sor": {"nb_neighbors": [1, 4, 10, 40], "std_ratio": [0.5, 2.0]},
            "ror": {"nb_points": [1, 4, 16], "radius": [0.002, 0.004, 0.008]}}[method]
    for scans in ([simulated], [plane_with_specks(), doubled, tiny]):
        _, rows = baselines.tune(scans, method, grid)
        for row in rows:
            params = {name: row[name] for name in grid}
            alone = baselines.evaluate(scans, method, **params)
            assert [row[c] for c in COUNTS] == [alone[c] for c in COUNTS], params


def test_empty_scan_and_bad_parameters():
    scan = plane_with_specks()
    scan["valid"][:] = False
    assert not baselines.keep_mask(scan, "sor").any()
    with pytest.raises(ValueError, match="unknown method 'median'"):
        baselines.keep_mask(scan, "median")
    with pytest.raises(ValueError, match="radius > 0"):
        baselines.keep_mask(plane_with_specks(), "ror", radius=0)
    with pytest.raises(ValueError, match="at least one validation scan"):
        baselines.tune([], "sor")
    with pytest.raises(ValueError, match="std_ratio > 0"):
        baselines.tune([plane_with_specks()], "sor", {"nb_neighbors": [10], "std_ratio": [1.0, 0.0]})
