"""SurfaceNet's colourised voxel cubes (lessons.colour_cubes): the pinhole camera's rays and projection
invert each other, a rendered pixel has the paint of the point its ray hits, a voxel gets the colour of
the pixel it projects to, and two views agree on a surface both see and disagree off it."""

from __future__ import annotations

import numpy as np
import pytest

from pcfilter_lib.lessons import colour_cubes as cc

# A cube of side 1 around the origin, two triangles per face.
CUBE_VERTICES = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
CUBE_TRIANGLES = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                           [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])


def test_rays_and_projection_invert_each_other():
    camera = cc.camera_around(30, 20, 3.0, size=9)
    rays = camera.rays()
    assert rays.shape == (9, 9, 3) and np.allclose(np.linalg.norm(rays, axis=-1), 1)
    # the middle pixel of an odd image looks at the target
    towards = -np.asarray(camera.eye) / np.linalg.norm(camera.eye)
    assert np.allclose(rays[4, 4], towards)
    points = np.asarray(camera.eye) + 2.5 * rays.reshape(-1, 3)
    row, column, depth = camera.project(points)
    rows, columns = np.indices((9, 9))
    assert np.allclose(row, rows.ravel()) and np.allclose(column, columns.ravel())
    assert np.all(depth > 0)


def test_the_image_is_upright_and_not_mirrored():
    camera = cc.camera_around(0, 0, 3.0, size=64)  # on +x, looking towards -x: +y is on its right
    row, column, _ = camera.project(np.array([[0.0, 0.0, 0.5], [0.0, 0.0, -0.5], [0.0, 0.5, 0.0]]))
    assert row[0] < 31.5 < row[1]  # up is at the top
    assert column[2] > 31.5  # and the camera's right on the right of the picture


def test_points_behind_the_camera_get_no_colour():
    camera = cc.camera_around(0, 0, 3.0, size=8)
    image = np.ones((8, 8, 3))
    colours = cc.colour_cube(image, camera, np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [0.0, 50.0, 0.0]]))
    assert np.allclose(colours[0], 1) and np.isnan(colours[1:]).all()


def test_a_rendered_pixel_has_the_paint_of_the_point_its_ray_hits():
    camera = cc.camera_around(0, 0, 3.0, size=9)  # the middle ray hits the face x = 0.5 at (0.5, 0, 0)
    image, hit = cc.render(CUBE_VERTICES, CUBE_TRIANGLES, camera, np.random.default_rng(0), frequency=2.0)
    assert hit[4, 4] and not hit[0, 0]
    assert np.allclose(image[4, 4], cc.position_colours(np.array([0.5, 0.0, 0.0]), 2.0), atol=1e-5)
    assert image.min() >= 0 and image.max() <= 1


def test_two_views_agree_on_a_face_both_see_and_not_inside():
    rng = np.random.default_rng(1)
    cameras = [cc.camera_around(az, 30, 3.0, size=256) for az in (20, 70)]  # both see x = 0.5 and y = 0.5
    images = [cc.render(CUBE_VERTICES, CUBE_TRIANGLES, c, rng)[0] for c in cameras]
    on_face = np.array([[0.5, y, z] for y in (-0.3, 0.0, 0.3) for z in (-0.3, 0.0, 0.3)])
    inside = on_face - [0.4, 0.0, 0.0]
    cubes = np.stack([cc.colour_cube(image, c, np.vstack([on_face, inside]))
                      for image, c in zip(images, cameras, strict=True)])
    spread = cc.disagreement(cubes)
    assert spread[:9].max() < 0.05  # the same point of the face, to within a pixel
    assert spread[9:].mean() > 5 * spread[:9].mean()
    assert np.all(cc.visible(CUBE_VERTICES, CUBE_TRIANGLES, cameras[0], on_face, 1e-3))
    assert not np.any(cc.visible(CUBE_VERTICES, CUBE_TRIANGLES, cameras[0], inside, 1e-3))


def test_disagreement_is_the_spread_over_views():
    cubes = np.array([[[0.0, 0.2, 1.0]], [[0.5, 0.2, 0.0]], [[0.25, 0.2, 0.5]]])
    assert np.allclose(cc.disagreement(cubes), [(0.5 + 0.0 + 1.0) / 3])
    with pytest.raises(ValueError, match="two views"):
        cc.disagreement(cubes[:1])


def test_bad_cameras_and_vertices_are_refused():
    with pytest.raises(ValueError, match="straight up"):
        cc.Camera((0.0, 0.0, 3.0), (0.0, 0.0, 0.0), 40.0, 8)
    with pytest.raises(ValueError, match="fov"):
        cc.Camera((3.0, 0.0, 0.0), (0.0, 0.0, 0.0), 0.0, 8)
    with pytest.raises(ValueError, match="outside"):
        cc.camera_around(0, 0, 0.5)
    with pytest.raises(ValueError, match="coincide"):
        cc.in_unit_sphere(np.ones((4, 3)))
    unit = cc.in_unit_sphere(CUBE_VERTICES * 7 + 3)
    assert np.isclose(np.linalg.norm(unit, axis=1).max(), 1) and np.allclose(unit.min(0), -unit.max(0))
