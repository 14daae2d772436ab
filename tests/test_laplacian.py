"""The cotangent Laplacian, its eigenbasis, and how a partial scan changes it."""

import numpy as np
import open3d as o3d
import pytest

from pcfilter_lib.geometry import laplacian as lb


def _sphere(radius=1.0, resolution=20):
    mesh = o3d.geometry.TriangleMesh.create_sphere(radius, resolution=resolution)
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles)


def test_laplacian_is_symmetric_with_zero_row_sums_and_the_area_as_mass():
    v, f = _sphere(2.0)
    stiffness, mass = lb.cotangent_laplacian(v, f)
    assert abs(stiffness - stiffness.T).max() < 1e-12
    assert np.abs(np.asarray(stiffness.sum(axis=1))).max() < 1e-10
    assert np.isclose(mass.diagonal().sum(), 4 * np.pi * 4, rtol=0.02)
    x = np.random.default_rng(0).normal(size=len(v))
    assert x @ stiffness @ x >= 0


def test_sphere_eigenvalues_follow_l_times_l_plus_one():
    values, vectors = lb.laplace_beltrami_basis(*_sphere(2.0), k=9)
    assert abs(values[0]) < 1e-6
    assert np.allclose(values[1:4], 2 / 4, rtol=0.03)  # l = 1: 2 / r^2, three times
    assert np.allclose(values[4:9], 6 / 4, rtol=0.05)  # l = 2: 6 / r^2, five times
    _, mass = lb.cotangent_laplacian(*_sphere(2.0))
    assert np.allclose(vectors.T @ mass @ vectors, np.eye(9), atol=1e-6)


def test_a_partial_scan_turns_the_basis_and_the_whole_mesh_does_not():
    v, f = _sphere(1.0)
    seen_v, seen_f, kept = lb.visible_submesh(v, f, eye=(0.0, 0.0, 4.0))
    assert 0.3 < len(kept) / len(v) < 0.6  # about the near half
    assert np.allclose(seen_v, v[kept])
    assert (seen_v[:, 2] > -0.3).all()
    full = lb.laplace_beltrami_basis(v, f, 6)
    partial = lb.laplace_beltrami_basis(seen_v, seen_f, 6)
    mass = lb.cotangent_laplacian(seen_v, seen_f)[1].diagonal()
    change = lb.basis_change(full, partial, kept, mass)
    assert change["mean_angle_deg"] > 10
    assert np.isnan(change["eigenvalue_shift"][0]) and np.abs(change["eigenvalue_shift"][1:]).max() > 0.2
    same = lb.basis_change(full, full, np.arange(len(v)), lb.cotangent_laplacian(v, f)[1].diagonal())
    assert same["mean_angle_deg"] < 1e-3


def test_bad_input():
    v, f = _sphere()
    with pytest.raises(ValueError, match="k must lie"):
        lb.laplace_beltrami_basis(v, f, k=len(v))
    flat = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0]], float)
    with pytest.raises(ValueError, match="zero area"):
        lb.cotangent_laplacian(flat, np.array([[0, 1, 2], [0, 1, 3]]))
    with pytest.raises(ValueError, match="belong to no triangle"):
        lb.laplace_beltrami_basis(np.r_[v, [[5.0, 5.0, 5.0]]], f, k=3)
