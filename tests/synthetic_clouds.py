"""Small synthetic clouds shared by the tests of the point and neighbour filters."""

import numpy as np
from scipy.spatial.transform import Rotation


def surface_with_specks(n=3000, specks=40, seed=0):
    """A wavy sheet sampled at random, with a few points floating in front of it (label 0)."""
    rng = np.random.default_rng(seed)
    uv = rng.random((n, 2))
    sheet = np.c_[uv, 0.05 * np.sin(6 * uv[:, 0])]
    floating = np.c_[rng.random((specks, 2)), 0.05 + 0.1 * rng.random(specks)]
    return np.r_[sheet, floating], np.r_[np.ones(n, np.uint8), np.zeros(specks, np.uint8)]


def moved(points, scale=1.0, seed=1):
    """``points`` turned at random (from ``seed``), scaled by ``scale`` and moved."""
    rotation = Rotation.random(random_state=seed).as_matrix()
    return scale * points @ rotation.T + np.array([12.0, -3.0, 40.0]) * scale
