"""Sparse and submanifold sparse 3D convolution: the hash map, the rulebook, equality with a dense Keras
Conv3D at the active sites, the growth of the active set, and the memory reports."""

from __future__ import annotations

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras

from pcfilter_lib.geometry import sparse_grids
from pcfilter_lib.lessons import sparse_conv as sc

SHAPE = (12, 12, 12)


def _shell(shape=SHAPE, radius=3.5, channels=2, seed=0) -> sc.SparseVoxels:
    """Sites on a voxelised sphere in the middle of the grid (at least 2 voxels from every face)."""
    centre = (np.asarray(shape) - 1) / 2
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    distance = np.linalg.norm(grid - centre, axis=-1)
    coords = np.argwhere(np.abs(distance - radius) < 0.5)
    features = np.random.default_rng(seed).normal(size=(len(coords), channels)).astype(np.float32)
    return sc.SparseVoxels.from_coords(coords, features)


def _dense_conv(grid, kernel, bias=None):
    """Keras Conv3D, padding "same", with the given kernel: (X, Y, Z, C) -> (X, Y, Z, C_out)."""
    layer = keras.layers.Conv3D(kernel.shape[-1], kernel.shape[0], padding="same", use_bias=bias is not None)
    layer.build((1, *grid.shape))
    layer.set_weights([kernel] + ([bias] if bias is not None else []))
    return keras.ops.convert_to_numpy(layer(grid[None]))[0]


def _kernel(c_in, c_out, k=3, seed=1):
    return np.random.default_rng(seed).normal(size=(k, k, k, c_in, c_out)).astype(np.float32)


def test_hash_map_and_dense_round_trip():
    x = _shell()
    assert all(x.index[tuple(site)] == row for row, site in enumerate(x.coords.tolist()))
    grid = x.to_dense(SHAPE)
    again = sc.SparseVoxels.from_dense(grid)
    assert len(again) == len(x)
    np.testing.assert_array_equal(again.to_dense(SHAPE), grid)
    with pytest.raises(ValueError, match="repeat"):
        sc.SparseVoxels.from_coords([[0, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="larger shape"):
        x.to_dense((4, 4, 4))
    cloud = np.array([[0.0, 0, 0], [0.05, 0.02, 0], [0.31, 0, 0]])
    occupied = sc.SparseVoxels.from_points(cloud, voxel_size=0.1)
    assert sorted(occupied.index) == [(0, 0, 0), (3, 0, 0)]


def test_kernel_offsets_follow_the_keras_kernel_layout():
    offsets = sc.kernel_offsets(3)
    assert offsets.shape == (27, 3)
    np.testing.assert_array_equal(offsets[0], [-1, -1, -1])
    np.testing.assert_array_equal(offsets[1], [-1, -1, 0])  # the last axis varies fastest
    np.testing.assert_array_equal(offsets[13], [0, 0, 0])
    with pytest.raises(ValueError, match="odd"):
        sc.kernel_offsets(2)


def test_rulebook_pairs_neighbouring_sites():
    x = sc.SparseVoxels.from_coords([[5, 5, 5], [5, 5, 6], [5, 7, 5]])
    book = sc.build_rulebook(x, x.coords)
    offsets = sc.kernel_offsets(3)
    rules = {(int(i), int(o), tuple(offsets[d])) for i, o, d in zip(book.inputs, book.outputs, book.offsets,
                                                                     strict=True)}
    # Every site reaches itself through the centre; sites 0 and 1 are face neighbours; site 2 is 2 away.
    assert rules == {(0, 0, (0, 0, 0)), (1, 1, (0, 0, 0)), (2, 2, (0, 0, 0)), (1, 0, (0, 0, 1)), (0, 1, (0, 0, -1))}
    assert book.nbytes == 3 * 4 * len(book)
    assert np.all(np.diff(book.offsets) >= 0)


def test_submanifold_convolution_equals_dense_conv3d_at_the_active_sites():
    x = _shell()
    kernel, bias = _kernel(2, 4), np.array([0.1, -0.2, 0.3, 0.0], np.float32)
    out, book = sc.conv3d(x, kernel, bias)
    np.testing.assert_array_equal(out.coords, x.coords)
    dense = _dense_conv(x.to_dense(SHAPE), kernel, bias)
    np.testing.assert_allclose(out.features, dense[tuple(x.coords.T)], rtol=1e-4, atol=1e-4)
    assert 1 < len(book) / len(x) < 27  # each site meets a few of its 26 neighbours on a surface


def test_ordinary_sparse_convolution_equals_dense_conv3d_and_dilates():
    x = _shell(radius=3.0)
    kernel = _kernel(2, 3, seed=2)
    out, _ = sc.conv3d(x, kernel, kind="sparse")
    dense = _dense_conv(x.to_dense(SHAPE), kernel)
    np.testing.assert_allclose(out.features, dense[tuple(out.coords.T)], rtol=1e-4, atol=1e-4)
    reach = np.abs(dense).sum(-1) > 0  # where the dense output can be non-zero
    assert len(out) == np.count_nonzero(reach) > len(x)


def test_stacked_submanifold_layers_equal_a_dense_stack_masked_to_the_surface():
    x = _shell(channels=1)
    kernels = [_kernel(1, 4, seed=3), _kernel(4, 3, seed=4)]
    rows = sc.run_layers(x, kernels)
    out = x
    for kernel in kernels[:-1]:
        out, _ = sc.conv3d(out, kernel)
        out.features = np.maximum(out.features, 0)
    out, _ = sc.conv3d(out, kernels[-1])
    mask = x.to_dense(SHAPE)[..., :1] != 0
    dense = np.maximum(_dense_conv(x.to_dense(SHAPE), kernels[0]), 0) * mask
    dense = _dense_conv(dense, kernels[1])
    np.testing.assert_allclose(out.features, dense[tuple(x.coords.T)], rtol=1e-4, atol=1e-3)
    assert [r["sites"] for r in rows] == [len(x)] * 2
    assert rows[-1]["memory"]["features"] == len(x) * 3 * 4


def test_active_sites_stay_for_submanifold_and_grow_for_sparse():
    x = _shell(shape=(24, 24, 24), radius=6, channels=1)
    counts = sc.active_site_counts(x, layers=3)
    assert counts["submanifold"] == [len(x)] * 3
    assert len(x) < counts["sparse"][0] < counts["sparse"][1] < counts["sparse"][2]
    # The same counts as dilating the occupancy grid (the chapter's earlier, grid-based count).
    occupancy = x.to_dense((24, 24, 24))[..., 0] != 0
    assert counts == {k: v for k, v in sparse_grids.conv_sites(occupancy, layers=3).items() if k != "dense"}
    rows = sc.run_layers(x, [_kernel(1, 2, seed=5), _kernel(2, 2, seed=6)], kind="sparse")
    assert [r["sites"] for r in rows] == counts["sparse"][:2]


def test_memory_reports_sum_their_parts_and_beat_the_dense_grid():
    fractions = []
    for size in (16, 32):  # the same sphere at twice the resolution: 4x the sites, 8x the voxels
        x = _shell(shape=(size,) * 3, radius=size * 3 / 8, channels=8)
        out, book = sc.conv3d(x, _kernel(8, 8, seed=7))
        memory = sc.memory_bytes(out, book)
        assert memory["features"] == len(x) * 8 * 4 and memory["rulebook"] == 12 * len(book)
        assert memory["total"] == memory["features"] + memory["coords"] + memory["rulebook"]
        fractions.append(memory["total"] / sc.dense_memory_bytes((size,) * 3, 8))
    assert fractions[1] < 0.7 * fractions[0] and fractions[1] < 0.5  # surface / volume


def test_submanifold_layers_share_one_rulebook():
    x = _shell(channels=1)
    rows = sc.run_layers(x, [_kernel(1, 2, seed=8), _kernel(2, 2, seed=9), _kernel(2, 2, k=1, seed=10)])
    assert rows[0]["rules"] == rows[1]["rules"] > rows[2]["rules"] == len(x)  # a 1x1x1 kernel: one rule per site
    book = sc.conv3d(x, _kernel(1, 2))[1]
    again, _ = sc.conv3d(x, _kernel(1, 2), rulebook=book)
    np.testing.assert_allclose(again.features, sc.conv3d(x, _kernel(1, 2))[0].features)
    with pytest.raises(ValueError, match="rulebook"):
        sc.conv3d(x, _kernel(1, 2), kind="sparse", rulebook=book)


def test_bad_kernels_and_kinds_are_refused():
    x = _shell()
    with pytest.raises(ValueError, match="C_out"):
        sc.conv3d(x, np.zeros((3, 3, 3, 5, 4)))
    with pytest.raises(ValueError, match="C_out"):
        sc.conv3d(x, np.zeros((2, 2, 2, 2, 4)))
    with pytest.raises(ValueError, match="kind"):
        sc.conv3d(x, _kernel(2, 4), kind="dense")
