"""Scene families (circuit boards, fruit), phase-unwrapping errors and scanners drawn per scan."""

from dataclasses import replace

import numpy as np
import pytest

from pcfilter_lib import labels
from pcfilter_lib.simulate import dataset
from pcfilter_lib.simulate import measurement as ms
from pcfilter_lib.simulate import scanner as sc
from pcfilter_lib.simulate.families import (
    DISTANCES,
    FAMILIES,
    draw_scanner,
    make_board_scene,
    make_family_scene,
    make_fruit_scene,
)
from pcfilter_lib.simulate.scene import scene_from_description

SMALL = sc.ScannerConfig(width=160, height=120)


@pytest.mark.parametrize("make", [make_board_scene, make_fruit_scene])
def test_family_scenes_are_reproducible_and_rebuild_from_their_description(make):
    scene = make(np.random.default_rng(3))
    assert scene.n_parts >= 1 and len(scene.materials) == len(scene.meshes)
    assert make(np.random.default_rng(3)).description == scene.description
    rebuilt = scene_from_description(scene.description)
    for (v0, f0), (v1, f1) in zip(scene.meshes, rebuilt.meshes, strict=True):
        np.testing.assert_array_equal(f0, f1)
        np.testing.assert_allclose(v0, v1, atol=1e-12)
    assert [m.subsurface for m in rebuilt.materials] == [m.subsurface for m in scene.materials]


def test_boards_carry_heat_sinks_and_fruit_has_translucent_skin():
    board = make_board_scene(np.random.default_rng(0))
    types = [part["type"] for part in board.description["parts"]]
    assert "fins" in types and "pins" in types
    fruit = make_fruit_scene(np.random.default_rng(0))
    assert all(m.subsurface >= 0.8 for m in fruit.materials[2:])
    assert all(m.subsurface == 0 for m in board.materials)
    with pytest.raises(ValueError, match="unknown scene family"):
        make_family_scene("kitchen", np.random.default_rng(0))


def test_fins_make_dense_ghost_surfaces_next_to_the_true_ones():
    """A tilted board's polished fins reflect each other: the ghosts lie on the fins' own pixels, close
    to the true surface, where they cover whole stretches of neighbouring pixels."""
    rng = np.random.default_rng([0, 7])
    scene = make_board_scene(rng)
    config = replace(draw_scanner("board", rng, SMALL), effects=("shadow", "interreflection"))
    scan = ms.simulate_scan(scene, config, rng)
    ghost = (scan["label"] == labels.ARTEFACT) & (scan["kind"] == labels.KIND_INTERREFLECTION)
    fins = [i + 2 for i, part in enumerate(scene.description["parts"]) if part["type"] in ("fins", "pins")]
    on_metal = np.isin(scan["surface"], fins)
    assert ghost.sum() > 50 and (ghost & on_metal).sum() > 0.5 * ghost.sum()
    error = np.linalg.norm(scan["xyz"][ghost] - scan["clean_xyz"][ghost], axis=-1)
    assert np.median(error) < 0.02  # centimetres from the truth, not across the scene
    # neighbours along the image rows: ghosts come in runs, not as isolated pixels
    assert (ghost[:, 1:] & ghost[:, :-1]).sum() > 0.3 * ghost.sum()


def test_unwrap_errors_grow_as_the_stripes_fade():
    config = sc.ScannerConfig()
    signal = np.full(5, 0.2, np.float32)
    coded = np.array([0.2, 0.05, 0.01, 0.002, 0.0], np.float32)
    p = ms.unwrap_error_probability(coded, signal, config)
    assert p[0] < 1e-12 and np.all(np.diff(p) > 0) and p[-1] == pytest.approx(1.0)
    more_steps = ms.unwrap_error_probability(coded, signal, replace(config, phase_steps=8))
    assert np.all(more_steps[1:4] < p[1:4])


def test_translucent_fruit_gives_isolated_decoding_errors_only_with_the_effect():
    rng = np.random.default_rng([2, 7])
    scene = make_fruit_scene(rng)
    config = draw_scanner("fruit", rng, sc.ScannerConfig(width=640, height=480))
    state = rng.bit_generator.state
    scan = ms.simulate_scan(scene, config, rng)
    decoding = (scan["label"] == labels.ARTEFACT) & (scan["kind"] == labels.KIND_DECODING)
    assert decoding.sum() > 0
    error = np.linalg.norm(scan["xyz"][decoding] - scan["clean_xyz"][decoding], axis=-1)
    assert np.median(error) > 5 * ms.label_tolerance(config.distance, config.noise_1m)  # far off the skin
    rng.bit_generator.state = state
    off = ms.simulate_scan(scene, replace(config, effects=tuple(e for e in sc.EFFECTS if e != "decoding")), rng)
    assert not (off["kind"] == labels.KIND_DECODING).any()


def test_scanners_drawn_per_scan_follow_the_family_and_the_base_size():
    rng = np.random.default_rng(0)
    for family in FAMILIES:
        for _ in range(5):
            config = draw_scanner(family, rng, SMALL)
            low, high = DISTANCES[family]
            assert low <= config.distance <= high
            assert config.depth_range[0] < config.distance < config.depth_range[1]
            assert 80 <= config.width <= 256 and config.width * 3 == config.height * 4
            assert config.effects == SMALL.effects


def test_a_mixed_dataset_records_each_scans_family_and_scanner(tmp_path):
    mix = {"bin": 1.0, "board": 1.0, "fruit": 1.0}
    with pytest.raises(ValueError, match="scene families"):
        dataset.write_dataset(tmp_path / "bad", 3, 0, SMALL, families={"moon": 1.0}, progress=False)
    assert not (tmp_path / "bad").exists()
    scans = [dataset.make_scan(5, i, SMALL, families=mix, randomise=True) for i in range(6)]
    assert {s["meta"]["family"] for s in scans} <= set(FAMILIES) and len({s["meta"]["family"] for s in scans}) > 1
    for scan in scans:
        assert scan["xyz"].shape[:2] == (scan["meta"]["scanner"]["height"], scan["meta"]["scanner"]["width"])
    again = dataset.make_scan(5, 2, SMALL, families=mix, randomise=True)
    np.testing.assert_array_equal(again["xyz"], scans[2]["xyz"])
    recipe = dataset.recipe(6, 5, SMALL, families=mix, randomise=True)
    assert recipe["parameters"]["families"] == mix and recipe["parameters"]["randomise"] is True


def test_a_realistic_base_draws_the_same_scanners_with_its_own_noise():
    """The realism effects are opt-in: a realistic base keeps every draw of the default one (the same
    random numbers), except that the depth and pattern noise are drawn around its own values."""
    base = sc.realistic(SMALL)
    for family in FAMILIES:
        plain, real = draw_scanner(family, np.random.default_rng(4), SMALL), draw_scanner(
            family, np.random.default_rng(4), base)
        for key in ("width", "height", "distance", "baseline", "focal", "stripe_period", "gain"):
            assert getattr(plain, key) == getattr(real, key), key
        assert 0.7 * base.noise_1m <= real.noise_1m <= 1.5 * base.noise_1m
        assert 0.7 * base.pattern_noise <= real.pattern_noise <= 1.4 * base.pattern_noise
        assert real.effects == sc.ALL_EFFECTS and real.bias_gain == sc.REALISM["bias_gain"]


def test_the_realism_parameters_are_the_ones_fitted_to_the_real_scans():
    """``scanner.REALISM`` holds what ``benchmarks/fit_realism.py`` chose, not hand-tuned numbers."""
    import json
    from pathlib import Path

    record = json.loads((Path(__file__).parents[1] / "benchmarks/results/realism_fit.json").read_text())
    assert record["chosen"] and set(record["chosen"]) <= set(sc.REALISM)
    for key, value in record["chosen"].items():
        assert sc.REALISM[key] == pytest.approx(value), key


def test_a_realistic_dataset_lists_the_new_kinds_and_its_label_floor():
    scan = dataset.make_scan(3, 0, sc.realistic(sc.ScannerConfig(width=96, height=72)), families={"board": 1.0},
                             randomise=True)
    meta = scan["meta"]
    assert meta["kinds"][str(labels.KIND_PHASE_BIAS)] == "phase bias" and meta["kinds"][str(labels.KIND_RIM)] == "rim"
    assert meta["scanner"]["label_floor"] == sc.REALISM["label_floor"]
    assert meta["label_tolerance_m"].startswith(f"{sc.REALISM['label_floor']:g} + 3 * ")
    plain = dataset.make_scan(3, 0, sc.ScannerConfig(width=96, height=72), families={"board": 1.0}, randomise=True)
    assert str(labels.KIND_PHASE_BIAS) not in plain["meta"]["kinds"] and "label_floor" not in plain["meta"]["scanner"]
    assert set(np.unique(scan["kind"])) <= set(labels.KIND_NAMES)

