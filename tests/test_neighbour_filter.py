"""The neighbour filter: its fast statistics against the point filter's definitions, the NumPy network
against Keras, no TensorFlow at run time, invariance to units and placement, bad input, the recipe
end to end, and the shipped weights."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic_clouds import moved, surface_with_specks

from pcfilter_lib import runtime

runtime.setup(seed=0)

from pcfilter_lib import filters
from pcfilter_lib.filters.neighbours import (
    FAR,
    SHIPPED_NEIGHBOUR_MODEL,
    DenseNetwork,
    NeighbourFilter,
    far_points,
    neighbour_filter,
    stage_columns,
    stage_inputs,
)
from pcfilter_lib.geometry import neighbour_statistics, point_features
from pcfilter_lib.io import model_cards
from pcfilter_lib.io.clouds import cloud_scan, scan_cloud
from pcfilter_lib.recipes import neighbour_filter as recipe
from pcfilter_lib.recipes.common import MIXED, ScanSet
from pcfilter_lib.simulate.dataset import make_scan
from pcfilter_lib.simulate.scanner import ScannerConfig

ROOT = Path(__file__).resolve().parent.parent
needs_weights = pytest.mark.skipif(not SHIPPED_NEIGHBOUR_MODEL.is_file(),
                                   reason="pcfilter_lib/weights/neighbour_filter.npz is missing; train it with "
                                          "data_scripts/train_reference_models.py --target neighbourfilter")


def random_network(inputs, rng) -> DenseNetwork:
    widths = (inputs, 8, 1)
    return DenseNetwork(rng.normal(size=inputs), rng.uniform(0.5, 2, inputs),
                        [rng.normal(size=(a, b)) / np.sqrt(a) for a, b in zip(widths[:-1], widths[1:], strict=True)],
                        [rng.normal(size=b) * 0.1 for b in widths[1:]])


def random_filter(seed=0, threshold=0.5) -> NeighbourFilter:
    """A two-stage neighbour filter with untrained networks (for tests that need no trained weights)."""
    rng = np.random.default_rng(seed)
    return NeighbourFilter([random_network(len(stage_inputs(s)), rng) for s in (0, 1)], threshold=threshold)


def keep_everything() -> NeighbourFilter:
    """A two-stage neighbour filter whose networks keep every point (P(keep) 1 to float32 rounding)."""
    return NeighbourFilter([DenseNetwork(np.zeros(n), np.ones(n), [np.zeros((n, 1))], [np.array([20.0])])
                            for n in (len(stage_inputs(s)) for s in (0, 1))])


def scattered(count, nearest, farthest, centre, seed=0):
    """``count`` points in random directions from ``centre``, ``nearest`` to ``farthest`` away."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return centre + directions * rng.uniform(nearest, farthest, (count, 1))


@pytest.fixture(scope="module")
def scan_clouds():
    """Two small simulated scans (160x120, drawn scanners) as labelled clouds."""
    scans = [make_scan(2024, i, ScannerConfig(width=160, height=120), families=dict(MIXED), randomise=True)
             for i in range(2)]
    return [scan_cloud(scan) for scan in scans]


def test_the_fast_statistics_are_the_point_filters_on_the_same_neighbours():
    points, label = surface_with_specks()
    features, searched = neighbour_statistics.neighbour_features(points * 3.7 + 100)
    assert features.shape == (len(points), 48) and features.dtype == np.float32 and searched.all()
    assert neighbour_statistics.FEATURES[:24] == point_features.STATISTICS
    statistics = neighbour_statistics.neighbour_statistics(points, threads=1, chunk=500)  # many blocks, one thread
    columns = statistics.features()
    np.testing.assert_allclose(neighbour_statistics.gather(columns, slice(None)), features, atol=1e-4)
    indices = statistics.neighbours().astype(np.int64)
    assert indices.shape == (len(points), neighbour_statistics.NEIGHBOURS)
    for hop in (1, 2, 3):  # each hop: the mean of the hop before over the k neighbours
        np.testing.assert_allclose(columns[hop], columns[hop - 1][indices].mean(axis=1), rtol=1e-5, atol=1e-6)
    features = features[:, :24]
    centred = points - np.median(points, axis=0)
    distances = np.linalg.norm(centred[indices] - centred[:, None], axis=-1)
    spacing = statistics.spacing
    hood = point_features.Neighbourhoods(centred / spacing, spacing, None, distances / spacing, indices)
    expected = point_features.local_statistics(hood)
    plane = [point_features.STATISTICS.index(n) for n in ("plane_distance", "around_plane_distance")]
    others = np.setdiff1d(np.arange(24), plane)
    np.testing.assert_allclose(features[:, others], expected[:, others], atol=2e-4)
    # the normal of a nearly linear neighbourhood is ill-defined in float32: compare the plane distance in bulk
    assert np.quantile(np.abs(features[:, plane] - expected[:, plane]), 0.99) < 1e-3
    within = features[:, point_features.STATISTICS.index("within_2s")]
    assert within[label == 1].mean() > 3 * within[label == 0].mean()


def test_the_features_ignore_units_and_placement():
    points, _ = surface_with_specks()
    reference, _ = neighbour_statistics.neighbour_features(points)
    for other in (points * 1000, moved(points), moved(points, scale=1e-3, seed=5)):
        features, _ = neighbour_statistics.neighbour_features(other)
        np.testing.assert_allclose(features, reference, atol=2e-3)


def test_far_points_are_capped_or_never_searched():
    points, _ = surface_with_specks()
    far = np.r_[points, [[1e6, 0, 0], [1e30, -1e30, 0]]]
    features, searched = neighbour_statistics.neighbour_features(far)
    assert searched.tolist() == [True] * (len(points) + 1) + [False]
    lengths = [point_features.STATISTICS.index(n) for n in ("nearest", "kth", "mean_distance", "spread")]
    assert np.isfinite(features).all()
    np.testing.assert_allclose(features[-1, lengths[:3]], np.log1p(neighbour_statistics.CAP), rtol=1e-6)
    prob = random_filter().keep_probability_points(far)
    assert prob[-1] == 0 and np.isfinite(prob).all()


def test_points_far_from_everything_else_are_removed_whatever_the_networks_say():
    points, _ = surface_with_specks()
    keep_all = keep_everything()
    assert (keep_all.keep_probability_points(points) > 0.99).all()  # the specks lie a few spacings out
    assert not far_points(neighbour_statistics.neighbour_statistics(points)).any()
    # 50 points scattered 10 to 1e5 widths of the sheet away (each other's nearest neighbours), the
    # whole cloud in any unit: every one is removed, the sheet is kept
    for distance in (10, 1e3, 1e5):
        far = scattered(50, distance, 2 * distance, points.mean(axis=0), seed=int(distance))
        for scale in (1e-3, 1.0, 1e4):
            prob = keep_all.keep_probability_points(np.r_[points, far] * scale + [5e3, -2e3, 0])
            assert (prob[-50:] == 0).all(), f"{(prob[-50:] > 0).sum()} far points kept at {distance}, {scale}"
            assert (prob[:-50] > 0.99).all()
    with pytest.raises(ValueError, match="positive number of spacings"):
        dataclasses.replace(keep_all, far=0.0)
    assert keep_all.far == FAR == neighbour_statistics.CAP


def test_tiles_remove_far_points_bit_for_bit_as_one_pass_does(tmp_path):
    from pcfilter_lib.filters.neighbour_tiles import tiled_neighbour_probability

    rng = np.random.default_rng(3)
    sheet = rng.random((8000, 2)) * [4, 1]
    above = np.c_[rng.random((20, 2)) * [4, 1], rng.uniform(0.5, 1.5, 20)]  # 40 to 140 spacings above it
    points = np.r_[np.c_[sheet, 0.05 * np.sin(3 * sheet[:, 0])], above]
    nf = dataclasses.replace(random_filter(), far=24.0)  # nearer than FAR, so that tiles cut the sheet
    far = far_points(neighbour_statistics.neighbour_statistics(points), nf.far)
    assert far[-20:].all() and not far[:-20].any()
    whole = nf.keep_probability_points(points)
    cells = []
    tiled = tiled_neighbour_probability(nf, lambda: (points[i:i + 3000] for i in range(0, len(points), 3000)),
                                        tile_points=2000, folder=tmp_path, progress=cells.append, whole_points=2000)
    assert len(cells) >= 6 and sum(cells) == len(points)
    np.testing.assert_array_equal(tiled, whole)
    assert (whole[-20:] == 0).all() and (whole[:-20] > 0).all()


def test_the_numpy_networks_give_the_keras_models_probabilities(scan_clouds):
    cloud = scan_clouds[0]
    settings = recipe.NeighbourFilterRecipe((), samples_per_cloud=10**9, epochs=2, batch_size=256)
    run = recipe.train_neighbour_filter(lambda: [cloud], scan_clouds[1:], settings)
    assert len(run.runs) == len(run.filter.networks) == 2 and run.samples == cloud["valid"].sum()
    points = cloud["xyz"][0][cloud["valid"][0]]
    statistics = neighbour_statistics.neighbour_statistics(points)
    features = neighbour_statistics.gather(stage_columns(statistics, []), slice(None))
    first = np.asarray(run.runs[0].model.predict(features, batch_size=4096, verbose=0))
    assert first.std() > 0.01  # trained, not constant
    np.testing.assert_allclose(run.filter.networks[0](features), first[:, 0], atol=1e-4)
    second_inputs = np.concatenate([features, *statistics.hop_means(first, run.filter.probability_hops)], axis=1)
    second = np.asarray(run.runs[1].model.predict(second_inputs, batch_size=4096, verbose=0))[:, 0]
    np.testing.assert_allclose(run.filter.keep_probability_points(points), second, atol=1e-4)
    assert 0 < run.threshold < 1 and run.filter.threshold == run.threshold
    assert run.runs[1].model.name == "neighbour_filter" and run.settings["loss"]["name"] == "focal"


def test_a_saved_filter_loads_with_the_same_network_and_settings(tmp_path):
    saved = random_filter(threshold=0.37)
    path = saved.save(tmp_path / "nf.npz")
    loaded = neighbour_filter(path)
    assert (loaded.threshold, loaded.neighbours, loaded.name) == (0.37, neighbour_statistics.NEIGHBOURS, "nf")
    assert neighbour_filter(path, threshold=0.6).threshold == 0.6
    points, _ = surface_with_specks()
    np.testing.assert_array_equal(loaded.keep_probability_points(points), saved.keep_probability_points(points))
    assert isinstance(loaded, filters.NeighbourFilter) and isinstance(loaded, filters.Filter)


def test_running_the_filter_imports_neither_tensorflow_nor_keras(tmp_path):
    path = SHIPPED_NEIGHBOUR_MODEL if SHIPPED_NEIGHBOUR_MODEL.is_file() else random_filter().save(tmp_path / "nf.npz")
    script = (
        "import sys\nimport numpy as np\n"
        "from pcfilter_lib import filters\n"
        f"f = filters.neighbour_filter({str(path)!r})\n"
        "xyz = np.random.default_rng(0).random((2000, 3))\n"
        "scan = {'xyz': xyz[None], 'valid': np.ones((1, 2000), bool)}\n"
        "assert f.keep_mask(scan).shape == (1, 2000)\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'jax', 'torch'})\n"
        "print('loaded:', loaded)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "loaded: []"


def test_bad_input_gets_a_one_line_reason(tmp_path):
    nf = random_filter()
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        nf.keep_probability_points(np.zeros((10, 2)))
    for n in (1, 3):
        with pytest.raises(ValueError, match=f"holds {n} point.*at least {point_features.MIN_POINTS}"):
            nf.keep_probability_points(np.random.default_rng(0).random((n, 3)))
    with pytest.raises(ValueError, match="with finite coordinates: there are no points"):
        nf.keep_probability_points(np.full((5, 3), np.nan))
    with pytest.raises(ValueError, match="coincides"):
        nf.keep_probability_points(np.ones((10, 3)))
    with_nan = np.r_[surface_with_specks()[0], [[np.nan, 0, 0], [0, np.inf, 0]]]
    prob = nf.keep_probability_points(with_nan)
    assert prob.shape == (len(with_nan),) and (prob[-2:] == 0).all() and (prob[:-2] > 0).all()
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        NeighbourFilter(nf.networks, threshold=1.0)
    with pytest.raises(ValueError, match="stage 0 reads 3 inputs"):
        NeighbourFilter([DenseNetwork(np.zeros(3), np.ones(3), [np.ones((3, 1))], [np.zeros(1)])])
    with pytest.raises(ValueError, match="stage 1 reads 48 inputs"):
        NeighbourFilter([nf.networks[0], nf.networks[0]])
    with pytest.raises(ValueError, match="layer 1 of the network"):
        DenseNetwork(np.zeros(3), np.ones(3), [np.ones((3, 4)), np.ones((5, 1))], [np.zeros(4), np.zeros(1)])
    with pytest.raises(ValueError, match="positive scales"):
        DenseNetwork(np.zeros(3), np.zeros(3), [np.ones((3, 1))], [np.zeros(1)])
    with pytest.raises(FileNotFoundError, match="check the path"):
        neighbour_filter(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="is damaged or no neighbour filter"):
        neighbour_filter(tmp_path / "bad.npz")
    nf.save(tmp_path / "whole.npz")
    whole = (tmp_path / "whole.npz").read_bytes()
    for cut in (len(whole) // 2, len(whole) - 30):  # cut short: no BadZipFile, one ValueError naming it
        (tmp_path / "cut.npz").write_bytes(whole[:cut])
        with pytest.raises(ValueError, match=r"cut.npz is damaged or no neighbour filter"):
            neighbour_filter(tmp_path / "cut.npz")
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match="not a neighbour filter file of this version"):
        neighbour_filter(tmp_path / "other.npz")


def test_the_recipe_runs_end_to_end_in_fast_mode(tmp_path):
    # Six scans a set, the fewest that give each split one (0.8 / 0.1 / 0.1)
    tiny = recipe.NeighbourFilterRecipe(
        (ScanSet("tiny_a", 6, 80, 60, seed=7, families=MIXED, randomise=True),
         ScanSet("tiny_b", 6, 64, 48, seed=8, families=MIXED, randomise=True)), samples_per_cloud=300, epochs=1)
    assert recipe.FAST.stages == recipe.FULL.stages == tiny.stages == 2
    card = recipe.train_reference_neighbour_filter(tmp_path / "out", tmp_path / "data", tiny, progress=False)
    path = tmp_path / "out" / card.model
    assert card.model == "neighbour_filter.npz" and card.target == "neighbourfilter" and path.is_file()
    assert card.file_bytes == path.stat().st_size and 0 < card.threshold < 1
    assert [s["folder"] for s in card.data["sets"]] == ["tiny_a", "tiny_b"]
    assert card.data["sets"][0]["scans"] == {"train": 4, "val": 1, "test": 1}
    assert set(card.details["sets"]["tiny_b"]) == {"1.0", "0.5", "0.25"}
    assert 0 <= card.test["mean_iou"] <= 1 and card.training_seconds > 0 and len(card.history["loss"]) == 1
    assert [len(names) for names in card.settings["inputs"]] == [48, 53] and len(card.details["stage_seconds"]) == 2
    assert neighbour_filter(path).threshold == card.threshold
    card.write(path.with_suffix(".json"))
    assert model_cards.read_model_card(path).details["threshold_sweep"]["threshold"][0] == 0.02


@needs_weights
def test_the_shipped_filter_records_how_it_was_made():
    card = model_cards.read_model_card(SHIPPED_NEIGHBOUR_MODEL)
    from pcfilter_lib.simulate.dataset import VERSION

    assert all(s["version"] == VERSION for s in card.data["sets"]), "retrain: the simulator has changed since"
    assert card.command.startswith("python data_scripts/train_reference_models.py --target neighbourfilter")
    assert card.file_bytes == SHIPPED_NEIGHBOUR_MODEL.stat().st_size < 100_000
    shipped = neighbour_filter()
    assert shipped.threshold == card.threshold and len(shipped.networks) == card.settings["stages"]
    assert card.settings["inputs"] == [list(stage_inputs(s, shipped.probability_hops)) for s in (0, 1)]
    assert card.test["mean_iou"] > 0.9 and card.training_seconds < 30 * 60


@needs_weights
def test_the_shipped_filter_ignores_units_and_placement(scan_clouds):
    nf = neighbour_filter()
    cloud = scan_clouds[1]
    points, label = cloud["xyz"][0].astype(np.float64), cloud["label"]
    reference = nf.keep_probability_points(points)
    for other in (points * 1000, moved(points), moved(points, 1e-3, seed=5)):
        prob = nf.keep_probability_points(other)
        assert np.abs(prob - reference).max() < 0.02
        assert ((prob >= nf.threshold) == (reference >= nf.threshold)).mean() > 0.999
    far = nf.keep_probability_points(np.r_[points, [[1e3, 0, 0], [1e30, 0, 0]]])
    assert (far[-2:] < nf.threshold).all()
    result = filters.evaluate_filter(nf, [cloud_scan(points, label[0])])
    assert result["recall"] > 0.98
