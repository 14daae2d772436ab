"""Semantic labels of simulated scans: the class of the surface each pixel sees, recorded only when asked
for, and scans of one scene from several viewpoints in one world frame."""

import json

import numpy as np
import open3d as o3d
import pytest

from pcfilter_lib import labels
from pcfilter_lib.geometry.raycasting import raycasting_scene
from pcfilter_lib.io.files import read_manifest
from pcfilter_lib.io.scan import load_scan, save_scan
from pcfilter_lib.simulate import dataset
from pcfilter_lib.simulate import measurement as ms
from pcfilter_lib.simulate import scanner as sc
from pcfilter_lib.simulate.scene import (
    FAMILY_PART_TYPES,
    NO_SURFACE,
    PART_TYPES,
    make_scene,
    semantic_image,
    surface_classes,
)

SMALL = sc.ScannerConfig(width=64, height=48)


@pytest.fixture(scope="module")
def semantic_scan():
    return dataset.make_scan(5, 0, SMALL, n_parts=(4, 6), semantic=True)


def test_every_part_type_has_a_class():
    names = labels.SEMANTIC_NAMES
    assert names[:3] == ("background", "table", "support")
    assert names[3:] == PART_TYPES + FAMILY_PART_TYPES + ("mesh",)
    assert len(labels.SEMANTIC_COLOURS) == len(names)


def test_background_is_exactly_where_no_surface_is_hit(semantic_scan):
    semantic, surface = semantic_scan["semantic"], semantic_scan["surface"]
    assert semantic.dtype == np.uint8 and semantic.shape == surface.shape
    assert np.array_equal(semantic == labels.SEMANTIC_BACKGROUND, surface == NO_SURFACE)
    classes = surface_classes(semantic_scan["meta"]["scene"])
    seen = surface != NO_SURFACE
    assert np.array_equal(semantic[seen], classes[surface[seen]])
    assert (semantic == labels.SEMANTIC_SUPPORT).any() and (semantic >= 3).any()  # the bin and some parts are seen


def test_a_parts_pixels_lie_on_that_part(semantic_scan):
    scan = semantic_scan
    scene = make_scene(np.random.default_rng([5, 0]), n_parts=(4, 6))  # make_scan draws the scene first
    pose = scan["pose"].astype(np.float64)
    for sid in np.unique(scan["surface"][scan["valid"]]):
        if sid < 2:
            continue
        pixels = (scan["surface"] == sid) & scan["valid"]
        world = scan["clean_xyz"][pixels] @ pose[:3, :3].T + pose[:3, 3]
        part = raycasting_scene([scene.meshes[sid]])
        distance = part.compute_distance(o3d.core.Tensor(world.astype(np.float32))).numpy()
        assert distance.max() < 1e-4, f"surface {sid}"
        assert (scan["semantic"][pixels] == labels.SEMANTIC_CODES[scene.description["parts"][sid - 2]["type"]]).all()


def test_scans_without_the_flag_are_unchanged(semantic_scan):
    plain = dataset.make_scan(5, 0, SMALL, n_parts=(4, 6))
    assert "semantic" not in plain and "semantic_classes" not in plain["meta"]
    for key, value in plain.items():
        if key != "meta":
            assert np.array_equal(value, semantic_scan[key], equal_nan=True), key
    asked = dataset.recipe(3, 0, SMALL, semantic=True)
    assert asked["parameters"].pop("semantic") is True
    assert dataset.recipe(3, 0, SMALL) == asked  # the manifests of folders made without it do not change


def test_a_semantic_dataset_round_trips(tmp_path):
    dataset.write_dataset(tmp_path / "d", 2, 1, SMALL, split=(1.0, 0.0, 0.0), n_parts=(2, 3), progress=False,
                          semantic=True)
    assert read_manifest(tmp_path / "d")["parameters"]["semantic"] is True
    scan = load_scan(tmp_path / "d" / "train" / "scan_00000.npz")
    assert scan["semantic"].dtype == np.uint8
    assert json.loads(json.dumps(scan["meta"]["semantic_classes"]))["2"] == "support"
    assert np.array_equal(scan["semantic"], semantic_image(scan["surface"], scan["meta"]["scene"]))


def test_bad_semantic_input(semantic_scan, tmp_path):
    with pytest.raises(ValueError, match="list of 'parts'"):
        surface_classes({"bin": {}})
    with pytest.raises(ValueError, match="no semantic class"):
        surface_classes({"parts": [{"type": "teapot"}]})
    with pytest.raises(ValueError, match="surface id 9 is not in this scene"):
        semantic_image(np.full((2, 2), 9, np.uint8), {"parts": []})
    bad = {k: v for k, v in semantic_scan.items()}
    bad["semantic"] = np.full(semantic_scan["label"].shape, 200, np.uint8)
    with pytest.raises(ValueError, match="semantic must be uint8 class codes"):
        save_scan(tmp_path / "bad.npz", bad)
    bad["semantic"] = np.zeros((3, 3), np.uint8)
    with pytest.raises(ValueError, match="semantic must have shape"):
        save_scan(tmp_path / "bad.npz", bad)


def test_views_share_the_scene_frame():
    scene = make_scene(np.random.default_rng(2), n_parts=(3, 3))
    tilted = ms.simulate_view(scene, SMALL, np.random.default_rng(0), ms.viewpoint(azimuth=40, tilt=30))
    pose = tilted["pose"].astype(np.float64)
    assert np.allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-5)
    assert pose[2, 3] < SMALL.distance - 0.05  # the camera leans away from the vertical
    world = tilted["clean_xyz"][tilted["valid"]] @ pose[:3, :3].T + pose[:3, 3]
    distance = scene.raycasting().compute_distance(o3d.core.Tensor(world.astype(np.float32))).numpy()
    assert np.percentile(distance, 99) < 1e-4
    steep = ms.simulate_view(scene, SMALL, np.random.default_rng(0), ms.viewpoint(azimuth=40, tilt=60))
    background = semantic_image(steep["surface"], scene.description) == labels.SEMANTIC_BACKGROUND
    assert background.sum() > 100 and not steep["valid"][background].any()  # past the table's edge: no point
    straight = ms.simulate_view(scene, SMALL, np.random.default_rng(0), ms.viewpoint())
    plain = ms.simulate_scan(scene, SMALL, np.random.default_rng(0))
    assert np.array_equal(straight["label"], plain["label"])
    with pytest.raises(ValueError, match="tilt within -80..80"):
        ms.viewpoint(tilt=90)
    with pytest.raises(ValueError, match="finite"):
        scene.moved(np.full((4, 4), np.nan))


def test_the_command_line_records_semantic_labels_when_asked(tmp_path):
    from pcfilter_lib.cli import main

    assert main(["simulate", "--out", str(tmp_path / "s"), "--n", "1", "--size", "32x24", "--split", "1/0/0",
                 "--semantic"]) == 0
    assert "semantic" in load_scan(tmp_path / "s" / "train" / "scan_00000.npz")
