"""Cameras on a sphere against cameras on a ring: the icosahedron's directions, which surface points a set
of cameras sees (``surface_seen``), and depth views rendered from given directions."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest

from pcfilter_lib.geometry.views import (
    icosahedron_directions,
    render_depth_views,
    surface_seen,
    view_directions,
)


def _sphere():
    mesh = o3d.geometry.TriangleMesh.create_sphere(radius=1.0, resolution=40)
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles)


def _cube():
    mesh = o3d.geometry.TriangleMesh.create_box(2.0, 2.0, 2.0).subdivide_midpoint(2)
    return np.asarray(mesh.vertices) - 1.0, np.asarray(mesh.triangles)


def test_icosahedron_directions_are_even():
    d = icosahedron_directions()
    assert d.shape == (12, 3)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0)
    angles = np.degrees(np.arccos(np.clip(d @ d.T, -1, 1)))
    for row in angles:  # every vertex: itself, five neighbours, five beyond them, its opposite
        values, counts = np.unique(row.round(2), return_counts=True)
        assert list(counts) == [1, 5, 5, 1]
        np.testing.assert_allclose(values, [0.0, 63.43, 116.57, 180.0], atol=0.01)
    assert (d[:, 2] < 0).sum() == 4  # cameras below the horizon, which a ring above it never has


def test_each_camera_sees_its_cap_of_a_sphere():
    # From distance d a camera sees the cap of the unit sphere with cos(angle) >= 1 / d:
    # a share (1 - 1 / d) / 2 of its area.
    vertices, triangles = _sphere()
    for distance in (1.5, 2.5, 5.0):
        seen = surface_seen(vertices, triangles, icosahedron_directions(), n_points=4000,
                            distance=distance)
        np.testing.assert_allclose(seen.mean(axis=0), (1 - 1 / distance) / 2, atol=0.03)


def test_a_ring_above_misses_the_bottom_a_sphere_of_cameras_does_not():
    vertices, triangles = _cube()
    points_seen = {}
    for name, directions in (("ring", view_directions(12, elevation=30.0)),
                             ("sphere", icosahedron_directions())):
        points_seen[name] = surface_seen(vertices, triangles, directions, n_points=3000).any(axis=1)
    assert points_seen["sphere"].mean() > 0.99  # every face of a convex shape faces some camera
    assert points_seen["ring"].mean() == pytest.approx(5 / 6, abs=0.03)  # all but the bottom face


def test_a_hidden_point_is_not_seen():
    # A small cube inside a large one: no camera outside sees any point of the inner cube.
    outer, outer_t = _cube()
    inner = outer * 0.3
    vertices = np.concatenate([outer, inner])
    triangles = np.concatenate([outer_t, outer_t + len(outer)])
    seen = surface_seen(vertices, triangles, icosahedron_directions(), n_points=4000).any(axis=1)
    # The inner cube holds 0.09 of the surface; about that share is never seen.
    assert 1 - seen.mean() == pytest.approx(0.09 / 1.09, abs=0.02)


def test_render_from_given_directions():
    vertices, triangles = _cube()
    ring = render_depth_views(vertices, triangles, n_views=6, size=16)
    again = render_depth_views(vertices, triangles, size=16, directions=3 * view_directions(6))
    np.testing.assert_array_equal(ring, again)
    sphere = render_depth_views(vertices, triangles, size=16, directions=icosahedron_directions())
    assert sphere.shape == (12, 16, 16) and (sphere > 0).any(axis=(1, 2)).all()


@pytest.mark.parametrize("directions", [np.zeros((0, 3)), np.ones((4, 2)), np.zeros((2, 3))])
def test_bad_directions(directions):
    vertices, triangles = _cube()
    with pytest.raises(ValueError):
        surface_seen(vertices, triangles, directions)
    with pytest.raises(ValueError):
        render_depth_views(vertices, triangles, directions=directions)
