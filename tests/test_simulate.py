"""The scan simulator: scenes (library, resting parts), the measurement model and each artefact."""

from dataclasses import replace

import numpy as np
import open3d as o3d
import pytest

from pcfilter_lib import labels
from pcfilter_lib.geometry import normals
from pcfilter_lib.geometry.image_statistics import blob_sizes
from pcfilter_lib.geometry.raycasting import raycasting_scene
from pcfilter_lib.geometry.sampling import sample_surface
from pcfilter_lib.simulate import artefacts
from pcfilter_lib.simulate import measurement as ms
from pcfilter_lib.simulate import scanner as sc
from pcfilter_lib.simulate.scene import (
    BIN_INNER,
    NO_SURFACE,
    PART_TYPES,
    Material,
    Scene,
    _draw_part_params,
    contact_points,
    make_scene,
    part_mesh,
    scene_from_description,
)

SMALL = sc.ScannerConfig(width=96, height=72)


def _legacy(v, f):
    return o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f))


@pytest.mark.parametrize("kind", PART_TYPES)
def test_every_part_is_a_closed_outward_mesh(kind):
    v, f = part_mesh(kind, _draw_part_params(kind, np.random.default_rng(0)))
    mesh = _legacy(v, f)
    assert mesh.is_watertight() and mesh.is_orientable()
    # Outward normals: the signed volume (divergence theorem) is positive.
    a, b, c = (v[f[:, i]] for i in range(3))
    assert np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6 > 0
    assert np.ptp(v, axis=0).max() < 0.15


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(np.random.default_rng(seed)) for seed in range(3)]


def test_scene_counts_materials_and_rebuild(scenes):
    for scene in scenes:
        assert 3 <= scene.n_parts <= 15
        assert len(scene.materials) == len(scene.meshes)
        rebuilt = scene_from_description(scene.description)
        for (v0, f0), (v1, f1) in zip(scene.meshes, rebuilt.meshes, strict=True):
            np.testing.assert_array_equal(f0, f1)
            np.testing.assert_allclose(v0, v1, atol=1e-12)
    names = {m.name for s in scenes for m in s.materials[2:]}
    assert len(names) >= 3  # a mix of matte and shiny materials
    assert make_scene(np.random.default_rng(1)).description == scenes[1].description
    assert scenes[0].description != scenes[1].description


def _occupancy(mesh):
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(_legacy(*mesh)))
    return scene


def test_parts_rest_in_the_bin_without_interpenetrating(scenes):
    tolerance = 2e-3
    rng = np.random.default_rng(0)
    for scene in scenes:
        parts = scene.meshes[2:]
        lx, ly = BIN_INNER[0] / 2, BIN_INNER[1] / 2
        for v, _ in parts:
            assert v[:, 2].min() > -tolerance  # above the floor
            assert (np.abs(v[:, 0]) < lx + tolerance).all() and (np.abs(v[:, 1]) < ly + tolerance).all()
        samples = [contact_points(v, f, 3000, rng) for v, f in parts]
        for i, part in enumerate(parts):
            occupancy = _occupancy(part)
            for j, points in enumerate(samples):
                if i == j:
                    continue
                inside = occupancy.compute_occupancy(o3d.core.Tensor(points.astype(np.float32))).numpy() > 0
                if inside.any():
                    depth = occupancy.compute_distance(o3d.core.Tensor(points[inside].astype(np.float32))).numpy()
                    assert depth.max() < tolerance, f"part {j} enters part {i} by {depth.max() * 1e3:.1f} mm"
        # Resting: nothing floats. Each part's lowest points sit on the floor or on another part.
        everything = raycasting_scene(scene.meshes[1:])  # geometry id 0 the bin, k + 1 part k
        for k, points in enumerate(samples):
            rays = np.c_[points - [0, 0, 1e-5], np.tile([0, 0, -1.0], (len(points), 1))].astype(np.float32)
            cast = everything.cast_rays(o3d.core.Tensor(rays))
            other = cast["geometry_ids"].numpy() != k + 1
            gap = cast["t_hit"].numpy()[other].min()
            assert gap < tolerance, f"part {k} floats {gap * 1e3:.1f} mm above its support"


def test_contact_points_are_the_shared_surface_sample_in_float64_plus_the_vertices():
    v, f = part_mesh("box", {"size": [0.05, 0.03, 0.02]})
    points = contact_points(v, f, 500, np.random.default_rng(3))
    assert points.shape == (500 + len(v), 3) and points.dtype == np.float64
    np.testing.assert_array_equal(points[500:], v)
    # The same draws as a float32 sample of the same seed, kept in float64.
    single = sample_surface(v, f, 500, np.random.default_rng(3))
    assert single.dtype == np.float32 and not np.array_equal(points[:500], single)
    np.testing.assert_array_equal(points[:500].astype(np.float32), single)
    assert (np.abs(points) <= np.array([0.025, 0.015, 0.01]) + 1e-12).all()  # on the box's surface
    on_a_face = np.isclose(np.abs(points[:500]), [0.025, 0.015, 0.01], rtol=0, atol=1e-12).any(axis=1)
    assert on_a_face.all()


def test_user_mesh_files(tmp_path):
    good = tmp_path / "part.ply"
    o3d.io.write_triangle_mesh(str(good), o3d.geometry.TriangleMesh.create_cone(10.0, 30.0))  # in mm
    scene = make_scene(np.random.default_rng(0), n_parts=(4, 4), mesh_files=[good], mesh_share=1.0)
    assert [p["type"] for p in scene.description["parts"]] == ["mesh"] * 4
    assert all(0.039 < np.ptp(v, axis=0).max() < 0.121 for v, _ in scene.meshes[2:])
    bad = tmp_path / "broken.ply"
    bad.write_text("ply\nthis is not a mesh\n")
    with pytest.raises(ValueError, match="cannot read a triangle mesh from .*broken.ply"):
        make_scene(np.random.default_rng(0), mesh_files=[bad])
    with pytest.raises(FileNotFoundError, match="missing.stl does not exist"):
        make_scene(np.random.default_rng(0), mesh_files=[tmp_path / "missing.stl"])


# ---------------------------------------------------------------------------------------------
# The measurement model on small scenes built by hand.

def _scene(meshes, materials) -> Scene:
    from pcfilter_lib.simulate.scene import bin_mesh, table_mesh

    return Scene([table_mesh(), bin_mesh(), *meshes], [Material("table", 0.3, 0.03, 0.5), *materials], {})


MATTE = Material("matte", 0.6, 0.02, 0.4)
SHINY = Material("shiny", 0.2, 0.9, 0.03)


def _box(lo, hi):
    v = np.asarray(o3d.geometry.TriangleMesh.create_box(*np.subtract(hi, lo)).vertices) + lo
    return v, np.asarray(o3d.geometry.TriangleMesh.create_box().triangles, np.int32)


def _scan(scene, effects=sc.EFFECTS, seed=0, **kw):
    return ms.simulate_scan(scene, replace(SMALL, effects=tuple(effects), **kw), np.random.default_rng(seed))


def test_all_effects_off_gives_exact_points_and_labels():
    scene = _scene([_box((-0.05, -0.05, 0), (0.05, 0.05, 0.06))], [MATTE, MATTE])
    out = _scan(scene, effects=())
    valid = out["valid"]
    assert valid.mean() > 0.5
    assert set(np.unique(out["label"][valid])) == {labels.KEEP}
    np.testing.assert_allclose(out["xyz"][valid], out["clean_xyz"][valid], atol=1e-5)
    assert set(np.unique(out["kind"][~valid])) <= {labels.KIND_NONE, labels.KIND_SHADOW, labels.KIND_DARK}


def test_depth_noise_grows_with_depth_squared():
    scene = _scene([], [MATTE])
    out = _scan(scene, effects=("noise",))
    valid = out["valid"]
    error = (out["xyz"][..., 2] - out["clean_xyz"][..., 2])[valid]
    z = out["clean_xyz"][..., 2][valid]
    sigma = artefacts.depth_sigma(z, SMALL.noise_1m)
    assert 0.8 < np.std(error / sigma) < 1.1
    assert np.abs(error).max() <= 3 * sigma.max() + 1e-6
    assert (out["label"][valid] == labels.KEEP).all()  # noise stays within the label tolerance


def test_shadows_are_where_the_projector_cannot_see():
    tall = _box((-0.02, -0.02, 0), (0.02, 0.02, 0.18))
    scene = _scene([tall], [MATTE, MATTE])
    on = _scan(scene, effects=("shadow",))
    off = _scan(scene, effects=())
    shadow = on["kind"] == labels.KIND_SHADOW
    assert (on["label"][shadow] == labels.NO_POINT).all()
    cast = shadow & off["valid"]  # lit once the cast shadow is switched off
    assert cast.sum() > 20
    # Independent check: those points are hidden from the projector by the tall box.
    rig = sc.rig_for(SMALL)
    world = off["clean_xyz"][cast] @ rig.pose[:3, :3].T + rig.pose[:3, 3]
    to_projector = rig.projector_pose[:3, 3] - world
    rays = np.c_[world + 1e-3 * to_projector, to_projector].astype(np.float32)
    blocked = scene.raycasting().test_occlusions(o3d.core.Tensor(rays), tfar=0.99).numpy()
    assert blocked.mean() > 0.95


def test_interreflection_makes_ghosts_in_a_shiny_corner_only_when_on():
    scene = _scene([], [SHINY])  # a polished bin: its corners reflect the floor's light into the walls
    on = _scan(scene, effects=("shadow", "interreflection"))
    off = _scan(scene, effects=("shadow",))
    ghosts = (on["label"] == labels.ARTEFACT) & (on["kind"] == labels.KIND_INTERREFLECTION)
    assert ghosts.sum() > 20
    assert not ((off["label"] == labels.ARTEFACT).any())
    # Ghosts lie on the camera ray at a false depth, and sit on the walls (not the floor's middle).
    err = np.linalg.norm(on["xyz"][ghosts] - on["clean_xyz"][ghosts], axis=1)
    assert (err > ms.label_tolerance(on["clean_xyz"][ghosts][:, 2], SMALL.noise_1m)).all()
    rays = on["xyz"][ghosts] / np.linalg.norm(on["xyz"][ghosts], axis=1, keepdims=True)
    true_rays = on["clean_xyz"][ghosts] / np.linalg.norm(on["clean_xyz"][ghosts], axis=1, keepdims=True)
    np.testing.assert_allclose(rays, true_rays, atol=1e-4)
    rig = sc.rig_for(SMALL)
    world = on["clean_xyz"][ghosts] @ rig.pose[:3, :3].T + rig.pose[:3, 3]
    near_wall = (np.abs(world[:, 0]) > BIN_INNER[0] / 2 - 0.06) | (np.abs(world[:, 1]) > BIN_INNER[1] / 2 - 0.06)
    assert near_wall.mean() > 0.9


def test_mixed_pixels_only_at_depth_discontinuities():
    scene = _scene([_box((-0.06, -0.04, 0), (0.06, 0.04, 0.1))], [MATTE, MATTE])
    on = _scan(scene, effects=("mixed",), mixed_probability=1.0)
    off = _scan(scene, effects=())
    mixed = on["kind"] == labels.KIND_MIXED
    assert mixed.sum() > 10
    assert (on["label"][mixed] == labels.ARTEFACT).all() and not (off["label"] == labels.ARTEFACT).any()
    depth = np.where(np.isfinite(off["clean_xyz"][..., 2]), off["clean_xyz"][..., 2], np.inf)
    edges = artefacts.discontinuities(np.where(on["surface"] == NO_SURFACE, np.inf, depth), SMALL.edge_jump)
    assert edges[mixed].all()
    # The blended depth lies between foreground and background: within the true depths of the
    # pixel's 3x3 neighbourhood (its footprint plus a margin).
    padded = np.pad(np.where(np.isfinite(depth), depth, np.nan), 1, constant_values=np.nan)
    h, w = depth.shape
    around = np.stack([padded[i:i + h, j:j + w] for i in range(3) for j in range(3)])
    z = on["xyz"][..., 2][mixed]
    assert (z >= np.nanmin(around, 0)[mixed] - 1e-3).all() and (z <= np.nanmax(around, 0)[mixed] + 1e-3).all()


def test_specular_highlights_saturate_on_shiny_parts():
    # A polished plate right under the camera and projector mirrors the projector into the camera.
    scene = _scene([_box((-0.08, -0.06, 0), (0.08, 0.06, 0.01))], [MATTE, SHINY])
    on = _scan(scene, effects=("specular",))
    off = _scan(scene, effects=())
    spec = on["kind"] == labels.KIND_SPECULAR
    assert spec.sum() > 5
    assert (on["surface"][spec] == 2).mean() > 0.8  # on the shiny plate
    assert set(np.unique(on["label"][spec])) <= {labels.ARTEFACT, labels.NO_POINT}
    assert (on["label"][spec] == labels.NO_POINT).any()
    assert not (off["kind"] == labels.KIND_SPECULAR).any()
    assert on["intensity"].max() == 1.0  # the highlight clips the intensity image


def test_each_effect_draws_from_its_own_random_stream():
    # Mixed pixels with probability 0 draw their random numbers but change no pixel: the depth noise,
    # drawn from another stream, must come out the same.
    scene = _scene([_box((-0.06, -0.04, 0), (0.06, 0.04, 0.1))], [MATTE, MATTE])
    alone = _scan(scene, effects=("noise",), mixed_probability=0.0)
    with_mixed = _scan(scene, effects=("noise", "mixed"), mixed_probability=0.0)
    for key in alone:
        np.testing.assert_array_equal(alone[key], with_mixed[key], err_msg=key)
    assert not np.array_equal(alone["xyz"], _scan(scene, effects=("noise",), seed=1)["xyz"], equal_nan=True)


def test_intensity_and_estimated_normals():
    scene = _scene([_box((-0.06, -0.04, 0), (0.06, 0.04, 0.05))], [MATTE, Material("dark", 0.05, 0.02, 0.4)])
    out = _scan(scene, effects=())
    assert out["intensity"].dtype == np.float32 and 0 <= out["intensity"].min() and out["intensity"].max() <= 1
    top = (out["surface"] == 2) & out["valid"]
    floor = (out["surface"] == 1) & out["valid"]
    assert np.median(out["intensity"][top]) < 0.5 * np.median(out["intensity"][floor])  # dark albedo
    # Normals come from the points: on the flat floor they match the floor's normal (world +z).
    rig = sc.rig_for(SMALL)
    up_cam = rig.pose[:3, :3].T @ np.array([0, 0, 1.0])
    inner = floor & ~artefacts.discontinuities(np.where(out["valid"], out["xyz"][..., 2], np.inf), 0.005)
    cos = out["normals"][inner] @ up_cam
    assert np.median(cos) > 0.999
    # With noise they are estimates, not the mesh normal.
    noisy = _scan(scene, effects=("noise",))
    assert np.median(noisy["normals"][inner] @ up_cam) < 0.9999


def test_estimate_normals_on_a_tilted_plane():
    v, u = np.mgrid[0:20, 0:30]
    x, y = (u - 15) * 0.01, (v - 10) * 0.01
    xyz = np.stack([x, y, 1 + 0.5 * x], -1).astype(np.float32)
    xyz[5, 5] = np.nan
    estimated = normals.estimate_normals(xyz)
    expected = np.array([0.5, 0, -1]) / np.linalg.norm([0.5, 0, -1])  # towards the camera at the origin
    np.testing.assert_allclose(estimated[np.isfinite(xyz[..., 0])], np.broadcast_to(expected, (599, 3)), atol=1e-5)
    assert np.isnan(estimated[5, 5]).all()


def test_a_default_scene_scan_is_deterministic_and_has_artefacts():
    config = sc.ScannerConfig(width=160, height=120)
    outs = [ms.simulate_scan(make_scene(np.random.default_rng(s)), config, np.random.default_rng(s)) for s in (4, 4, 5)]
    for key in outs[0]:
        np.testing.assert_array_equal(outs[0][key], outs[1][key])
    assert not np.array_equal(outs[0]["label"], outs[2]["label"])
    label = outs[0]["label"]
    assert 0.001 < (label == labels.ARTEFACT).sum() / (label != labels.NO_POINT).sum() < 0.4


def test_bad_configuration():
    with pytest.raises(ValueError, match="scan size 0x480 is impossible"):
        sc.ScannerConfig(width=0)
    with pytest.raises(ValueError, match="unknown effects"):
        sc.ScannerConfig(effects=("ghosts",))
    with pytest.raises(ValueError, match="n_parts"):
        make_scene(np.random.default_rng(0), n_parts=(5, 2))


# ---------------------------------------------------------------------------------------------
# The opt-in realism effects: off by default, so that scans of generator version 3 do not change.

def _digest(scan: dict) -> str:
    """A hash of a scan's arrays (name, dtype, shape, bytes) and its metadata, independent of zip compression."""
    import hashlib
    import json

    h = hashlib.sha256()
    for name in sorted(scan):
        if name == "meta":
            h.update(json.dumps(scan[name], sort_keys=True).encode())
        else:
            a = np.ascontiguousarray(scan[name])
            h.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()


# Made with the simulator before the realism effects existed (generator version 3, this machine's
# Open3D and NumPy): a default scanner must keep making exactly these scans and dataset recipes.
VERSION_3_DIGESTS = {
    "bin": "3ab3d40736c189841696d363e4994ab05f6fe067427a18478f1a514b6ce7e1f3",
    "board": "cac8da02d71f46ac4841e610845027a9c0bd7c6d7fd264d1369d4cfc97be3cd4",
    "fruit": "dff2788a320f1b5617700d84dae334ef4f3d03fc18e34d4e14f2c986c6e499e4",
    "recipe": "f12064555fd7885508559ec367987514c70272877d40ad294d950267480f08e3",
}


def test_default_scans_are_those_of_generator_version_3():
    import hashlib
    import json

    from pcfilter_lib.simulate.dataset import VERSION, make_scan, recipe

    assert VERSION == "3"
    for family in ("bin", "board", "fruit"):
        scan = make_scan(7, 1, sc.ScannerConfig(width=64, height=48), families={family: 1.0},
                         randomise=family != "bin")
        assert _digest(scan) == VERSION_3_DIGESTS[family], family
    text = json.dumps(recipe(4, 1, sc.ScannerConfig()), sort_keys=True).encode()
    assert hashlib.sha256(text).hexdigest() == VERSION_3_DIGESTS["recipe"]


def test_realism_effects_are_opt_in_and_recorded_only_when_set():
    default = sc.ScannerConfig()
    assert not default.realism and not set(default.effects) & set(sc.REALISM_EFFECTS)
    assert not set(default.to_dict()) & (set(sc.REALISM) - {"noise_1m"})  # version 3's manifests stay the same
    real = sc.realistic(SMALL)
    assert real.realism and set(real.effects) == set(sc.ALL_EFFECTS)
    assert real.to_dict()["bias_gain"] == sc.REALISM["bias_gain"] and real.width == SMALL.width
    assert labels.KIND_NAMES[labels.KIND_PHASE_BIAS] == "phase bias" and labels.KIND_NAMES[labels.KIND_RIM] == "rim"
    assert len(labels.KIND_COLOURS) == len(labels.KIND_NAMES) == len(labels.KIND_HEX)


def test_phase_bias_pulls_the_phase_by_at_most_arcsin_of_the_light_ratio():
    config = sc.ScannerConfig(width=8, height=8, stripe_period=24.0, bias_blur=0.0, bias_gain=1.0)
    n = 64
    k = 2 * np.pi / config.stripe_period
    pixels = np.arange(n)
    direct_column = np.full(n, 100.0, np.float32)
    difference = np.linspace(-12, 12, n, dtype=np.float32)  # indirect column minus direct, +- half a period
    ratio = 0.3
    shift = artefacts.phase_bias_columns(np.ones(n, np.float32), direct_column, np.full(n, ratio, np.float32),
                                  direct_column + difference, pixels, config)
    expected = np.arctan2(ratio * np.sin(k * difference), 1 + ratio * np.cos(k * difference)) / k
    np.testing.assert_allclose(shift, expected, atol=1e-4)
    assert np.abs(shift).max() <= np.arcsin(ratio) / k + 1e-4  # a fraction of a period, not a jump
    assert np.all(np.sign(shift[np.abs(difference) < 11]) == np.sign(difference[np.abs(difference) < 11]))
    none = artefacts.phase_bias_columns(np.ones(n, np.float32), direct_column, np.zeros(n, np.float32),
                                 np.full(n, np.nan, np.float32), pixels, config)
    assert not none.any()
    # blurred over the lobe: a lone bright reflection pulls its neighbours a little, smoothly
    lone = np.zeros(n, np.float32)
    lone[27] = 0.3
    blurred = artefacts.phase_bias_columns(np.ones(n, np.float32), direct_column, lone, direct_column + 3,
                                    pixels, replace(config, bias_blur=1.5)).reshape(8, 8)
    assert (blurred > 0).sum() > 5 and blurred.max() < shift.max()


def test_phase_bias_makes_smooth_false_surfaces_just_off_a_shiny_board():
    from pcfilter_lib.simulate.families import draw_scanner, make_board_scene

    rng = np.random.default_rng([0, 7])
    scene = make_board_scene(rng)
    config = draw_scanner("board", rng, SMALL)
    state = rng.bit_generator.state
    on = ms.simulate_scan(scene, replace(config, effects=("shadow", "interreflection", "phase_bias"),
                                         label_floor=1e-4), rng)
    rng.bit_generator.state = state
    off = ms.simulate_scan(scene, replace(config, effects=("shadow", "interreflection"), label_floor=1e-4), rng)
    biased = on["kind"] == labels.KIND_PHASE_BIAS
    assert biased.sum() > 20 and not (off["kind"] == labels.KIND_PHASE_BIAS).any()
    assert (on["label"][biased] == labels.ARTEFACT).all()
    # off the true point by more than the label floor and less than a stripe period's depth (no jump)
    error = np.linalg.norm(on["xyz"][biased] - on["clean_xyz"][biased], axis=-1)
    assert (error > 1e-4).all() and np.median(error) < 3e-3
    # the ghosts of the same light are where they were
    ghosts = off["kind"] == labels.KIND_INTERREFLECTION
    np.testing.assert_array_equal(on["kind"][ghosts], off["kind"][ghosts])


def test_rim_errors_only_at_grazing_translucent_pixels_in_small_blobs():
    config = sc.ScannerConfig(width=200, height=200, rim_cos=0.3, rim_rate=0.05, rim_offset=(2e-3, 8e-3))
    n = config.width * config.height
    pixels = np.arange(n)
    cos = np.where(pixels % config.width < 100, 0.1, 0.9).astype(np.float32)  # left half grazing
    subsurface = np.where(pixels // config.width < 100, 0.9, 0.0).astype(np.float32)  # top half translucent
    err, offset = artefacts.rim_errors(cos, subsurface, pixels, pixels, config, np.random.default_rng(0))
    rows, cols = err // config.width, err % config.width
    assert (cols < 100).all() and (rows < 100).all()
    assert 0.02 < len(err) / (100 * 100) < 0.1  # about rim_rate of the grazing translucent pixels
    assert offset.min() >= 2e-3 and offset.max() <= 8e-3
    mask = np.zeros(n, bool)
    mask[err] = True
    mask = mask.reshape(config.height, config.width)
    assert (mask[:, 1:] & mask[:, :-1]).sum() > 0.3 * mask.sum()  # neighbours err together


def test_rim_blobs_share_one_offset_and_grow_with_their_length():
    base = sc.ScannerConfig(width=200, height=200, rim_cos=0.3, rim_rate=0.05, rim_offset=(2e-3, 8e-3))
    pixels = np.arange(base.width * base.height)
    cos, subsurface = np.full(len(pixels), 0.1, np.float32), np.full(len(pixels), 0.9, np.float32)
    sizes = {}
    for length in (1.0, 2.0):
        config = replace(base, rim_length=length, rim_blob_offset=True)
        err, offset = artefacts.rim_errors(cos, subsurface, pixels, pixels, config, np.random.default_rng(0))
        mask = np.zeros(len(pixels), bool)
        mask[err] = True
        blobs, blob_pixels = blob_sizes(mask.reshape(200, 200))
        count = len(blob_pixels)
        blob_of = blobs.ravel()[err]
        for blob in range(1, count + 1):  # every pixel of a blob lies at its blob's one offset
            assert np.ptp(offset[blob_of == blob]) == 0
        assert len(np.unique(offset)) == count and offset.min() >= 2e-3 and offset.max() <= 8e-3
        sizes[length] = len(err) / count
    assert sizes[2.0] > 1.5 * sizes[1.0]  # a longer field errs in larger blobs


def test_correlated_noise_is_shared_by_neighbours_and_keeps_its_size():
    config = sc.ScannerConfig(width=256, height=256, noise_1m=1e-3, noise_length=2.0)
    n = config.width * config.height
    z = np.ones(n, np.float32)
    white = np.random.default_rng(1).standard_normal(n, np.float32)
    for c, low, high in ((0.0, -0.05, 0.05), (0.8, 0.5, 0.9)):
        e = artefacts.correlated_depth_noise(z, np.arange(n), white, replace(config, noise_correlation=c),
                                      np.random.default_rng(2)).reshape(256, 256)
        assert 0.9e-3 < e.std() < 1.1e-3 and np.abs(e).max() <= 3e-3 + 1e-9
        neighbour = np.corrcoef(e[:, 1:].ravel(), e[:, :-1].ravel())[0, 1]
        assert low < neighbour < high, (c, neighbour)


def test_contrast_reject_and_edge_reject_give_no_point_instead_of_a_false_one():
    rng = np.random.default_rng([2, 7])
    scene = make_fruit_scene_for_test(rng)
    config = sc.ScannerConfig(width=160, height=120, distance=0.45, baseline=0.14, gain=0.6 * 0.45**2,
                              depth_range=(0.18, 0.72), pattern_noise=0.1, stripe_period=48.0)
    plain = _scan_with(scene, config, sc.EFFECTS)
    strict = _scan_with(scene, replace(config, reject_probability=1e-3, edge_dropout=1.0),
                        sc.EFFECTS + ("contrast_reject", "edge_reject"))
    def false(scan, kind):
        return ((scan["label"] == labels.ARTEFACT) & (scan["kind"] == kind)).sum()
    assert false(plain, labels.KIND_DECODING) > 0
    assert false(strict, labels.KIND_DECODING) < 0.2 * false(plain, labels.KIND_DECODING)
    assert false(strict, labels.KIND_MIXED) == 0 and (strict["kind"] == labels.KIND_MIXED).any()
    assert (strict["kind"] == labels.KIND_DARK).sum() > (plain["kind"] == labels.KIND_DARK).sum()


def make_fruit_scene_for_test(rng):
    from pcfilter_lib.simulate.families import make_fruit_scene

    return make_fruit_scene(rng)


def _scan_with(scene, config, effects, seed=3):
    return ms.simulate_scan(scene, replace(config, effects=tuple(effects)), np.random.default_rng(seed))


def test_hdr_intensity_keeps_the_highlights_height():
    scene = _scene([_box((-0.08, -0.06, 0), (0.08, 0.06, 0.01))], [MATTE, SHINY])
    clipped = _scan(scene, effects=())
    hdr = _scan(scene, effects=("hdr_intensity",), intensity_exposure=0.01)
    valid = clipped["valid"]
    assert clipped["intensity"].max() == 1.0 and hdr["intensity"].max() < 1.0
    ratio = hdr["intensity"][valid].max() / np.median(hdr["intensity"][valid])
    assert ratio > 2 * clipped["intensity"][valid].max() / np.median(clipped["intensity"][valid])
