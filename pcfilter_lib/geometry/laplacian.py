"""The Laplace-Beltrami operator of a triangle mesh and its eigenbasis: the "Fourier basis" of a
surface that spectral CNNs on meshes convolve in, and a measure of how that basis changes when only
part of the surface is scanned.

The cotangent Laplacian (Pinkall and Polthier 1993; Meyer et al. 2003) weighs the edge (i, j) by
(cot a + cot b) / 2, a and b the angles opposite the edge; with the lumped mass matrix M (a third of
the area of the triangles around each vertex) the generalised problem L phi = lambda M phi gives the
eigenvalues lambda (0 for the constant function, then growing frequencies) and M-orthonormal
eigenvectors. On a sphere of radius r, lambda = l (l + 1) / r^2 with multiplicity 2l + 1. A boundary
(a partial scan) takes the natural (Neumann) condition.
"""

from __future__ import annotations

import numpy as np
import open3d as o3d
from scipy import linalg, sparse
from scipy.sparse.linalg import eigsh

from pcfilter_lib.geometry.point_checks import check_mesh
from pcfilter_lib.geometry.raycasting import raycasting_scene


def cotangent_laplacian(vertices, triangles) -> tuple[sparse.csr_matrix, sparse.dia_matrix]:
    """The cotangent stiffness matrix and the lumped mass matrix of a triangle mesh.

    Args:
        vertices: (V, 3) coordinates.
        triangles: (T, 3) vertex indices.

    Returns:
        ``(L, M)``: L (V, V) symmetric, positive semi-definite, rows summing to 0 (sum over edges of
        w_ij (f_i - f_j)^2 / 2 is f^T L f); M (V, V) diagonal, the vertex areas.

    Raises:
        ValueError: a malformed mesh, or a triangle of zero area (its angles are undefined).
    """
    vertices, triangles = check_mesh(vertices, triangles)
    v = vertices[triangles]  # (T, 3 corners, 3)
    doubled_area = np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1)
    degenerate = doubled_area <= 1e-12 * max(float(np.ptp(vertices, axis=0).max()), 1e-300) ** 2
    if degenerate.any():
        raise ValueError(f"the mesh has {int(degenerate.sum())} triangles of (almost) zero area, whose angles are "
                         "undefined; remove them before computing a Laplacian")
    rows, cols, weights = [], [], []
    for corner in range(3):  # the angle at `corner` is opposite the edge (i, j) of the other two
        i, j = (corner + 1) % 3, (corner + 2) % 3
        a, b = v[:, i] - v[:, corner], v[:, j] - v[:, corner]
        cot = np.einsum("ij,ij->i", a, b) / doubled_area
        rows += [triangles[:, i], triangles[:, j]]
        cols += [triangles[:, j], triangles[:, i]]
        weights += [cot / 2, cot / 2]
    n = len(vertices)
    w = sparse.csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    stiffness = sparse.diags(np.asarray(w.sum(axis=1)).ravel()) - w
    area = np.zeros(n)
    np.add.at(area, triangles.ravel(), np.repeat(doubled_area / 6, 3))
    return stiffness.tocsr(), sparse.diags(area)


def laplace_beltrami_basis(vertices, triangles, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` lowest eigenpairs of the Laplace-Beltrami operator of a mesh (L phi = lambda M phi).

    Args:
        vertices: (V, 3) coordinates.
        triangles: (T, 3) vertex indices.
        k: eigenpairs, 1 <= k < V.

    Returns:
        ``(eigenvalues, eigenvectors)``: (k,) ascending, in 1 / length^2, and (V, k) M-orthonormal
        (each connected piece of the mesh adds one eigenvalue 0).

    Raises:
        ValueError: ``k`` is out of range or the mesh is malformed.
    """
    stiffness, mass = cotangent_laplacian(vertices, triangles)
    n = stiffness.shape[0]
    if not 1 <= k < n - 1:
        raise ValueError(f"k must lie in 1..{n - 2} for a mesh of {n} vertices, got {k}")
    unused = mass.diagonal() == 0
    if unused.any():
        raise ValueError(f"{int(unused.sum())} vertices belong to no triangle; remove them first")
    # Shift-invert about a small negative sigma: the lowest eigenvalues, with L itself singular.
    values, vectors = eigsh(stiffness, k=k, M=mass, sigma=-1e-8, which="LM")
    order = np.argsort(values)
    return np.maximum(values[order], 0.0), vectors[:, order]


def visible_submesh(vertices, triangles, eye, samples: int = 3, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The part of a mesh a camera at ``eye`` sees: what a single scan of it captures.

    A triangle is seen when one of ``samples`` rays from the eye to points inside it (its centroid and
    random points) meets that triangle first, on either side. Vertices of no seen triangle are dropped.

    Args:
        vertices: (V, 3) coordinates.
        triangles: (T, 3) vertex indices.
        eye: (3,) the camera's position.
        samples: rays per triangle.
        seed: the random points' seed.

    Returns:
        ``(sub_vertices, sub_triangles, kept)``: the seen part (V', 3) and (T', 3), and (V',) the index
        in ``vertices`` of each kept vertex.

    Raises:
        ValueError: the camera sees none of the mesh.
    """
    vertices, triangles = check_mesh(vertices, triangles)
    eye = np.asarray(eye, np.float64)
    rng = np.random.default_rng(seed)
    corners = vertices[triangles]
    seen = np.zeros(len(triangles), bool)
    scene = raycasting_scene([(vertices, triangles)])
    for s in range(max(1, samples)):
        weights = np.full((len(triangles), 3), 1 / 3) if s == 0 else rng.dirichlet(np.ones(3), len(triangles))
        targets = np.einsum("tc,tcd->td", weights, corners)
        rays = np.concatenate([np.broadcast_to(eye, targets.shape), targets - eye], axis=1).astype(np.float32)
        hit = scene.cast_rays(o3d.core.Tensor(rays))["primitive_ids"].numpy().astype(np.int64)
        seen |= hit == np.arange(len(triangles))
    if not seen.any():
        raise ValueError(f"a camera at {eye.tolist()} sees none of the mesh")
    kept = np.unique(triangles[seen])
    remap = np.full(len(vertices), -1, np.int64)
    remap[kept] = np.arange(len(kept))
    return vertices[kept], remap[triangles[seen]], kept


def principal_angles(a: np.ndarray, b: np.ndarray, mass=None) -> np.ndarray:
    """Principal angles (radians, ascending) between the column spaces of ``a`` (N, p) and ``b`` (N, q),
    in the inner product of the diagonal ``mass`` (N,) if given (functions on a mesh), else the plain one.
    0 for a shared direction, pi / 2 for an orthogonal one."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if mass is not None:
        root = np.sqrt(np.asarray(mass, np.float64))[:, None]
        a, b = a * root, b * root
    return np.sort(linalg.subspace_angles(a, b))


def basis_change(full: tuple[np.ndarray, np.ndarray], partial: tuple[np.ndarray, np.ndarray], kept: np.ndarray,
                 partial_mass: np.ndarray) -> dict:
    """How the low-frequency eigenbasis of a surface changes when only part of it is seen.

    Args:
        full: ``(eigenvalues (k,), eigenvectors (V, k))`` of the whole mesh.
        partial: the same (k,) and (V', k) of the seen part.
        kept: (V',) the index of each seen vertex in the whole mesh.
        partial_mass: (V',) the seen part's vertex areas (its mass matrix's diagonal).

    Returns:
        ``eigenvalue_shift`` (k,) relative change (partial - full) / full of the eigenvalues after the
        first (NaN for the zero one), ``principal_angles_deg`` (k,) between the spans of the full basis
        restricted to the seen vertices and the partial basis, and ``mean_angle_deg``.
    """
    values_full, vectors_full = full
    values_part, vectors_part = partial
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(values_full > 1e-9 * max(values_full.max(), 1e-300),
                         (values_part - values_full) / values_full, np.nan)
    angles = np.degrees(principal_angles(vectors_full[kept], vectors_part, partial_mass))
    return {"eigenvalue_shift": shift, "principal_angles_deg": angles, "mean_angle_deg": float(angles.mean())}
