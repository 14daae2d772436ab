"""Voxel grids, ternary grids, distance fields, octrees and multi-view depth images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
from scipy import ndimage

from pcfilter_lib.data.procedural_modelnet import make_shape
from pcfilter_lib.geometry import depth_fusion, distance_fields, sparse_grids, voxel_faces, voxel_grids
from pcfilter_lib.geometry.views import render_depth_views, upright
from pcfilter_lib.io.off import format_off, read_off
from pcfilter_lib.nn import scores
from pcfilter_lib.simulate import objects

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "modelnet10"


def _box(lo=(0, 0, 0), hi=(1, 1, 1)):
    mesh = o3d.geometry.TriangleMesh.create_box(*np.subtract(hi, lo))
    return np.asarray(mesh.vertices) + lo, np.asarray(mesh.triangles)


def _sphere(radius=1.0, resolution=40):
    mesh = o3d.geometry.TriangleMesh.create_sphere(radius, resolution)
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles)


def _procedural(name="chair", seed=3, tmp_path=None):
    vertices, faces = make_shape(name, seed)
    path = tmp_path / f"{name}.off"
    path.write_text(format_off(vertices, faces))
    return read_off(path)


def test_grid_index_and_centres():
    grid = voxel_grids.Grid((0.0, 0.0, 0.0), 0.5, (2, 3, 4))
    centres = grid.centres()
    assert centres.shape == (2, 3, 4, 3)
    np.testing.assert_allclose(centres[1, 2, 3], [0.75, 1.25, 1.75])
    ijk, inside = grid.index(np.array([[0.1, 0.1, 0.1], [0.99, 1.49, 1.99], [-0.01, 0, 0], [1.0, 0, 0]]))
    assert ijk[1].tolist() == [1, 2, 3]
    assert inside.tolist() == [True, True, False, False]


def test_grid_around_centres_the_shape():
    points = np.array([[0, 0, 0], [2, 1, 1]], float)
    grid = voxel_grids.grid_around(points, 12, padding=1)
    assert grid.shape == (12, 12, 12)
    assert grid.voxel_size == pytest.approx(0.2)
    np.testing.assert_allclose(np.asarray(grid.origin) + 6 * grid.voxel_size, [1, 0.5, 0.5])


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros((4, 2)), np.array([[0, 0, np.nan]])])
def test_bad_clouds_are_refused(bad):
    grid = voxel_grids.Grid((0, 0, 0), 1.0, (4, 4, 4))
    with pytest.raises(ValueError):
        voxel_grids.voxelize_points(bad, grid)


def test_zero_size_and_huge_grids_are_refused_before_allocating():
    with pytest.raises(ValueError, match="positive sides"):
        voxel_grids.Grid((0, 0, 0), 1.0, (0, 4, 4))
    with pytest.raises(ValueError, match="positive sides"):
        voxel_grids.check_grid((4, 0, 4))
    with pytest.raises(ValueError, match="voxel_size"):
        voxel_grids.Grid((0, 0, 0), 0.0, (4, 4, 4))
    # 100000^3 voxels would need about a petabyte: refused from the estimate, not by a MemoryError.
    huge = voxel_grids.grid_around(np.array([[0, 0, 0], [1, 1, 1]], float), 100000)
    with pytest.raises(ValueError, match="GiB"):
        voxel_grids.voxelize_points(np.array([[0.5, 0.5, 0.5]]), huge)
    with pytest.raises(ValueError, match="GiB"):
        voxel_grids.voxelize_mesh(*_box(), huge)
    with pytest.raises(ValueError, match="GiB"):
        voxel_grids.check_grid((1024, 1024, 1024), 4, max_bytes=2**30)
    assert voxel_grids.check_grid((1024, 1024, 1024), 1, max_bytes=2**30) == 2**30


def test_voxelize_points_marks_exactly_the_cells_hit():
    grid = voxel_grids.Grid((0, 0, 0), 1.0, (4, 4, 4))
    points = np.array([[0.5, 0.5, 0.5], [0.6, 0.4, 0.5], [3.5, 2.5, 1.5], [9, 9, 9]])
    occupancy = voxel_grids.voxelize_points(points, grid)
    assert occupancy.sum() == 2
    assert occupancy[0, 0, 0] and occupancy[3, 2, 1]


def test_box_surface_and_solid_voxelisation():
    vertices, triangles = _box((0.05, 0.05, 0.05), (0.95, 0.95, 0.95))
    grid = voxel_grids.Grid((0, 0, 0), 0.1, (10, 10, 10))
    surface = voxel_grids.voxelize_mesh(vertices, triangles, grid)
    solid = voxel_grids.voxelize_mesh(vertices, triangles, grid, solid=True)
    # The box spans voxels 0..9 on every axis: its surface is the grid's outer shell, its solid the whole grid.
    assert surface.sum() == 10**3 - 8**3
    assert solid.all()
    assert not surface[1:-1, 1:-1, 1:-1].any()


def test_a_board_thinner_than_two_voxels_has_nothing_to_fill():
    # A board 1.6 voxels thick: every voxel it reaches is cut by one of its faces, so the solid grid is
    # the surface grid (chapter 2's chair at 32^3). Four times finer, the board is 6.4 voxels thick and
    # the fill adds its inside.
    vertices, triangles = _box((0.05, 0.05, 0.42), (0.95, 0.95, 0.58))
    coarse = voxel_grids.Grid((0, 0, 0), 0.1, (10, 10, 10))
    assert np.array_equal(voxel_grids.voxelize_mesh(vertices, triangles, coarse),
                          voxel_grids.voxelize_mesh(vertices, triangles, coarse, solid=True))
    fine = voxel_grids.Grid((0, 0, 0), 0.025, (40, 40, 40))
    surface = voxel_grids.voxelize_mesh(vertices, triangles, fine)
    solid = voxel_grids.voxelize_mesh(vertices, triangles, fine, solid=True)
    assert (solid & ~surface).sum() > 0.5 * surface.sum()
    assert not (surface & ~solid).any()


def test_sphere_solid_fraction_matches_its_volume():
    vertices, triangles = _sphere(1.0)
    grid = voxel_grids.grid_around(vertices, 48, padding=0)
    solid = voxel_grids.voxelize_mesh(vertices, triangles, grid, solid=True)
    surface = voxel_grids.voxelize_mesh(vertices, triangles, grid)
    # Volume ratio of a ball to its bounding cube is pi / 6; the voxelised solid also holds the surface shell.
    assert np.pi / 6 < voxel_grids.occupied_fraction(solid) < np.pi / 6 + 0.08
    assert voxel_grids.occupied_fraction(surface) < 0.2


def test_surface_fraction_falls_with_resolution(tmp_path):
    vertices, triangles = _procedural(tmp_path=tmp_path)
    grids = [voxel_grids.grid_around(vertices, r) for r in (16, 32, 64)]
    fractions = [voxel_grids.occupied_fraction(voxel_grids.voxelize_mesh(vertices, triangles, g)) for g in grids]
    assert fractions[0] > fractions[1] > fractions[2]
    # Doubling the resolution multiplies the surface voxels by about 4 and the grid by 8: the fraction halves.
    assert 0.3 < fractions[2] / fractions[1] < 0.75


def test_signed_distance_of_a_sphere():
    vertices, triangles = _sphere(1.0, 60)
    points = np.array([[0, 0, 0], [0, 0, 2], [0.5, 0, 0], [0, 1.5, 0]], float)
    d = distance_fields.signed_distance(vertices, triangles, points)
    np.testing.assert_allclose(d, [-1, 1, -0.5, 0.5], atol=0.01)


def test_signed_distance_of_overlapping_parts_by_part():
    # Two overlapping closed boxes: a point inside both crosses two walls upwards, so ray parity calls it outside.
    v1, t1 = _box((0, 0, 0), (2, 1, 1))
    v2, t2 = _box((1, 0, 0), (3, 1, 1))
    vertices, triangles = np.vstack([v1, v2]), np.vstack([t1, t2 + len(v1)])
    assert len(distance_fields.mesh_parts(vertices, triangles)) == 2
    points = np.array([[1.5, 0.5, 0.5], [0.5, 0.5, 0.5], [2.5, 0.5, 0.2], [5, 5, 5]])
    d = distance_fields.signed_distance(vertices, triangles, points)
    assert (d[:3] < 0).all() and d[3] > 0
    np.testing.assert_allclose(d[1], -0.5, atol=1e-5)


def test_tsdf_from_mesh_is_truncated_and_signed():
    vertices, triangles = _sphere(1.0, 40)
    grid = voxel_grids.grid_around(vertices, 16, padding=2)
    tsdf = distance_fields.tsdf_from_mesh(vertices, triangles, grid, truncation=2.0)
    assert tsdf.shape == (16, 16, 16) and tsdf.dtype == np.float32
    assert tsdf.min() == -1 and tsdf.max() == 1
    assert tsdf[8, 8, 8] == -1 and tsdf[0, 0, 0] == 1
    with pytest.raises(ValueError, match="truncation"):
        distance_fields.tsdf_from_mesh(vertices, triangles, grid, truncation=0)


def _camera_view(depth_value, size=64, focal=64.0):
    """A camera at the origin looking along +z at a wall ``depth_value`` away (world = camera frame)."""
    v, u = np.mgrid[0:size, 0:size] + 0.5
    K = np.array([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]])
    x = (u - K[0, 2]) / focal * depth_value
    y = (v - K[1, 2]) / focal * depth_value
    xyz = np.stack([x, y, np.full_like(x, depth_value)], -1).astype(np.float32)
    return depth_fusion.View(xyz, K, np.eye(4))


def test_carving_a_wall_gives_free_occupied_unknown():
    view = _camera_view(1.0)
    grid = voxel_grids.Grid((-0.2, -0.2, 0.0), 0.05, (8, 8, 30))  # z from 0 to 1.5: the wall is at z = 1
    ternary = depth_fusion.carve([view], grid)
    column = ternary[4, 4]
    assert column[20] == depth_fusion.OCCUPIED  # voxel [1.0, 1.05) holds the wall
    assert (column[1:19] == depth_fusion.FREE).all()  # in front of the wall
    assert (column[21:] == depth_fusion.UNKNOWN).all()  # behind the wall
    assert column[19] != depth_fusion.FREE  # the margin keeps the voxel just before the surface from being carved


def test_carving_leaves_pixels_without_measurement_unknown():
    view = _camera_view(1.0)
    xyz = view.xyz.copy()
    xyz[:, :32] = np.nan  # the left half of the image measured nothing
    grid = voxel_grids.Grid((-0.2, -0.2, 0.0), 0.05, (8, 8, 30))
    ternary = depth_fusion.carve([depth_fusion.View(xyz, view.intrinsics, view.pose)], grid)
    assert (ternary[:3, :, :15] == depth_fusion.UNKNOWN).all()
    assert (ternary[5:, :, 8:18] == depth_fusion.FREE).all()  # z >= 0.4: inside the field of view


def test_fused_tsdf_of_a_wall_crosses_zero_at_the_wall():
    grid = voxel_grids.Grid((-0.2, -0.2, 0.6), 0.025, (16, 16, 16))  # z from 0.6 to 1.0
    tsdf, weight = depth_fusion.fuse_tsdf([_camera_view(0.8)] * 2, grid, truncation=3.0)
    column, w = tsdf[8, 8], weight[8, 8]
    centres = 0.6 + (np.arange(16) + 0.5) * 0.025
    observed = w > 0
    assert observed[(centres > 0.7) & (centres < 0.85)].all()
    assert np.all(w[observed] == 2)
    near = observed & (np.abs(centres - 0.8) < 0.07)
    np.testing.assert_allclose(column[near], (0.8 - centres[near]) / 0.075, atol=0.02)
    with pytest.raises(ValueError, match="cube"):
        depth_fusion.fuse_tsdf([_camera_view(0.8)], voxel_grids.Grid((0, 0, 0), 0.1, (4, 4, 8)))


def test_simulated_scans_of_an_object_carve_and_fuse(tmp_path):
    from pcfilter_lib.simulate import ScannerConfig

    # A dresser: broad faces. Parts thinner than a voxel (a chair's legs and slats) are grazed by rays
    # that pass beside them, so carving empties a larger share of their voxels (see the last check).
    vertices, triangles = _procedural("dresser", tmp_path=tmp_path)
    vertices = objects.place_object(vertices, 0.3)
    grid = voxel_grids.grid_around(vertices, 24)
    surface = voxel_grids.voxelize_mesh(vertices, triangles, grid)
    near_surface = ndimage.binary_dilation(surface)
    clean = objects.scan_object(vertices, triangles, n_views=2, config=ScannerConfig(width=160, height=120,
                                                                                 effects=("noise",)))
    occupied = depth_fusion.carve(clean, grid) == depth_fusion.OCCUPIED
    assert (occupied & near_surface).sum() >= 0.98 * occupied.sum()  # only depth noise: every point is right
    views = objects.scan_object(vertices, triangles, n_views=2, config=ScannerConfig(width=160, height=120))
    ternary = depth_fusion.carve(views, grid)
    occupied = ternary == depth_fusion.OCCUPIED
    # With every artefact switched on some measured voxels float in free space (mixed pixels, ghosts).
    assert 0.7 * occupied.sum() < (occupied & near_surface).sum() < occupied.sum()
    assert (ternary == depth_fusion.FREE).sum() > 0.5 * ternary.size
    # Carving tests one ray per voxel (through its centre): a voxel that a thin part only grazes can be
    # carved, but most unmeasured surface voxels stay unknown.
    assert (ternary[surface & ~occupied] == depth_fusion.FREE).mean() < 0.25
    tsdf, weight = depth_fusion.fuse_tsdf(views, grid, truncation=2.0)
    iou = scores.voxel_iou(surface, depth_fusion.surface_probability(tsdf, weight), (0.2, 0.5))
    assert 0.2 < iou[0.5] <= 1


def test_voxel_iou_counts():
    truth = np.zeros((4, 4, 4), bool)
    truth[:2] = True  # 32 voxels
    probability = np.zeros((4, 4, 4), np.float32)
    probability[:3] = 0.3  # 48 voxels at 0.3, of which 32 true
    probability[0] = 0.6  # 16 at 0.6
    iou = scores.voxel_iou(truth, probability, (0.2, 0.5, 0.7))
    assert iou == {0.2: pytest.approx(32 / 48), 0.5: pytest.approx(16 / 32), 0.7: 0.0}
    with pytest.raises(ValueError, match="same shape"):
        scores.voxel_iou(truth, probability[:2])


def test_octree_levels_and_memory():
    occupancy = np.zeros((8, 8, 8), bool)
    occupancy[0, 0, 0] = occupancy[7, 7, 7] = True
    levels = sparse_grids.octree_levels(occupancy)
    assert [lv.shape[0] for lv in levels] == [1, 2, 4, 8]
    assert [int(lv.sum()) for lv in levels] == [1, 2, 2, 2]
    report = sparse_grids.memory_report(occupancy)
    assert report["octree"] == 1 + 2 + 2  # one child mask per occupied inner node
    assert report["dense_float32"] == 4 * 512 and report["dense_bits"] == 64 and report["points"] == 24
    # A non-power-of-two grid is padded: 5^3 fits an 8^3 octree.
    assert sparse_grids.octree_levels(np.ones((5, 3, 2), bool))[-1].shape == (8, 8, 8)


def test_octree_beats_dense_on_a_surface(tmp_path):
    vertices, triangles = _procedural(tmp_path=tmp_path)
    grid = voxel_grids.grid_around(vertices, 64)
    report = sparse_grids.memory_report(voxel_grids.voxelize_mesh(vertices, triangles, grid))
    assert report["octree"] < report["dense_bits"] < report["dense_float32"]
    assert report["points"] == 12 * report["occupied"]


def test_conv_sites():
    occupancy = np.zeros((9, 9, 9), bool)
    occupancy[4, 4, 4] = True
    sites = sparse_grids.conv_sites(occupancy, layers=2)
    assert sites == {"dense": [729, 729], "sparse": [27, 125], "submanifold": [1, 1]}


def test_render_depth_views_of_a_sphere():
    vertices, triangles = _sphere(1.0, 60)
    views = render_depth_views(vertices, triangles, n_views=4, size=33, distance=2.5)
    assert views.shape == (4, 33, 33) and views.dtype == np.float32
    # The centre pixel sees the sphere's nearest point, 1.5 away: depth value (2.5 + 1 - 1.5) / 2 = 1.
    np.testing.assert_allclose(views[:, 16, 16], 1.0, atol=0.01)
    assert (views[:, 0, 0] == 0).all()  # corners miss the sphere
    np.testing.assert_allclose(views[0], views[2], atol=0.02)  # a sphere looks the same from every side
    with pytest.raises(ValueError):
        render_depth_views(vertices, triangles, n_views=0)


def test_render_depth_views_differ_around_an_asymmetric_shape(tmp_path):
    vertices, triangles = _procedural(tmp_path=tmp_path)
    views = render_depth_views(vertices, triangles, n_views=4, size=24)
    assert np.abs(views[0] - views[1]).mean() > 0.01


def _boxes(*corners):
    """One mesh of several boxes, each given by its (lo, hi) corners."""
    vertices, triangles = [], []
    for lo, hi in corners:
        v, t = _box(lo, hi)
        triangles.append(t + sum(len(w) for w in vertices))
        vertices.append(v)
    return np.concatenate(vertices), np.concatenate(triangles)


def _centre_of_hits(image, columns=slice(None)):
    rows, cols = np.nonzero(image[:, columns])
    return rows.mean(), cols.mean()


@pytest.mark.parametrize("elevation", [0.0, 30.0])
def test_upright_view_shows_higher_z_higher_and_the_camera_right_on_the_right(elevation):
    # A base block, a small block above it and one beside it on +y. The first camera stands on +x and
    # looks towards -x with z up, so +y is on its right.
    vertices, triangles = _boxes(((-1, -1, -1), (1, 1, 1)), ((-0.3, -0.3, 2.0), (0.3, 0.3, 2.6)),
                                 ((-0.3, 1.6, -0.3), (0.3, 2.2, 0.3)))
    size = 48
    raw = render_depth_views(vertices, triangles, n_views=4, size=size, elevation=elevation)
    shown = upright(raw)
    assert shown.shape == raw.shape
    np.testing.assert_array_equal(upright(shown), raw)  # two half turns are none
    view = shown[0]
    # Rows of the displayed image grow downwards: the top block's pixels lie above the base block's.
    top_rows = np.nonzero(view.any(axis=1))[0]
    base_row = _centre_of_hits(view)[0]
    assert top_rows.min() < base_row
    # The row that shows the most of the base block lies below the gap to the top block.
    band = np.count_nonzero(view, axis=1)
    widest = int(np.argmax(band))
    gap = [r for r in range(top_rows.min(), widest) if band[r] == 0]
    assert gap, "the top block should be separated from the base block by empty rows"
    # The side block (+y) sits right of the base block in the displayed image, at the base's height.
    side_cols = np.nonzero(view[widest] > 0)[0]
    runs = np.split(side_cols, np.flatnonzero(np.diff(side_cols) > 1) + 1)
    assert len(runs) == 2 and runs[1].min() > runs[0].max()
    assert len(runs[1]) < len(runs[0])  # the narrow block is the right-hand run
    # The raw images are the displayed ones turned by 180 degrees: the top block in the bottom rows.
    assert np.nonzero(raw[0].any(axis=1))[0].max() > size - 1 - top_rows.min() - 1


def test_upright_rejects_a_single_row():
    with pytest.raises(ValueError):
        upright(np.zeros(5))


def test_voxel_faces_of_one_voxel():
    occupancy = np.zeros((3, 3, 3), bool)
    occupancy[1, 1, 1] = True
    vertices, triangles = voxel_faces.voxel_faces(occupancy)
    assert len(vertices) == 8 and len(triangles) == 12
    two = occupancy.copy()
    two[1, 1, 2] = True
    assert len(voxel_faces.voxel_faces(two)[1]) == 20  # the shared face is hidden


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="no ModelNet10 fixtures in ../shared/fixtures beside the checkout")
def test_real_modelnet_mesh_voxelises():
    vertices, triangles = read_off(next(FIXTURES.rglob("*.off")))
    occupancy = voxel_grids.voxelize_mesh(vertices, triangles, voxel_grids.grid_around(vertices, 32))
    assert 0.005 < voxel_grids.occupied_fraction(occupancy) < 0.5


def test_voxel_trace_draws_faces_or_separate_cubes():
    from pcfilter_lib import viz

    occupancy = np.zeros((4, 4, 4), bool)
    occupancy[1, 1, 1:3] = True
    assert len(viz.voxel_trace(occupancy).i) == 20  # two cubes sharing a hidden face
    apart = viz.voxel_trace(occupancy, gap=0.2)
    assert len(apart.i) == 24
    assert min(apart.x) == pytest.approx(1.1) and max(apart.z) == pytest.approx(2.9)
    with pytest.raises(ValueError, match="no occupied"):
        viz.voxel_trace(np.zeros((2, 2, 2), bool))
    with pytest.raises(ValueError, match="too many"):
        viz.voxel_trace(np.ones((4, 4, 4), bool), gap=0.1, max_voxels=10)


def test_a_picture_stands_flat_beside_the_3d_panels():
    from pcfilter_lib import viz

    occupancy = np.zeros((4, 4, 4), bool)
    occupancy[1, 1, 1:3] = True
    picture = np.zeros((8, 8, 3), np.uint8)
    fig = viz.figure_3d({"input": picture, "predicted": [viz.voxel_trace(occupancy)],
                         "truth": [viz.voxel_trace(occupancy)]})
    assert [trace.type for trace in fig.data] == ["image", "mesh3d", "mesh3d"]
    assert fig.data[1].scene == "scene" and fig.data[2].scene == "scene2"  # the scenes count on from 1
    assert fig.layout.scene2.camera.up.z == 1 and fig.layout.xaxis.visible is False


def test_table_shows_as_markdown_and_html():
    from pcfilter_lib import viz

    table = viz.markdown_table(["a", "b<c"], [[1, 2.5]])
    assert table._repr_markdown_() == "| a | b<c |\n|---|---|\n| 1 | 2.5 |"
    assert "<th>b&lt;c</th>" in table._repr_html_() and "<td>2.5</td>" in table._repr_html_()
