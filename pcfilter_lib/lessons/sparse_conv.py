"""Sparse and submanifold sparse 3D convolution (Graham et al. 2018), in NumPy, for teaching.

A scanned surface occupies a thin shell of a voxel grid: at 256^3 voxels perhaps 1 % of them. A
dense ``Conv3D`` computes and stores all of them. A sparse convolution stores only the *active*
sites:

- a list of their integer coordinates (M, 3) and features (M, C), one row per site, and a hash map
  from coordinates (i, j, k) to row (here a Python dict), so that a neighbour is found in O(1);
- a **rulebook**: for each kernel offset d, the pairs (input row, output row) such that the input
  site is the output site shifted by d. Building it costs one hash look-up per (output site,
  offset);
- the convolution itself: for each offset, gather the input rows of its pairs, multiply by that
  offset's (C_in, C_out) weight matrix, and add the products into the output rows.

An **ordinary sparse convolution** makes every site within the kernel's reach of an active input
active in its output, so the active set dilates by one voxel per 3^3 layer and the surface
thickens. A **submanifold** sparse convolution computes outputs only at the input's active sites,
so the active set (and the memory) stays the same through any number of layers; both agree with a
dense convolution at those sites, which is what the tests check.

Kernels follow Keras' ``Conv3D``: shape (k, k, k, C_in, C_out) for odd k, cross-correlation
(output at x sums input at x + d times kernel[d + r]), so a dense grid holding the same features
and a ``Conv3D`` with padding "same" give the same numbers at the active sites.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

KINDS = ("submanifold", "sparse")


@dataclass
class SparseVoxels:
    """Active sites of a voxel grid: ``coords`` (M, 3) int64 voxel indices, ``features`` (M, C)
    float32, and ``index``, the hash map from (i, j, k) to the site's row."""

    coords: np.ndarray
    features: np.ndarray
    index: dict[tuple[int, int, int], int]

    @classmethod
    def from_coords(cls, coords, features=None) -> SparseVoxels:
        """Sites at ``coords`` (M, 3) ints with ``features`` (M, C) (default: one channel of ones).

        Raises:
            ValueError: if the coordinates are not (M, 3) integers, repeat a site, or the features
                do not have one row per site.
        """
        coords = np.asarray(coords)
        if coords.ndim != 2 or coords.shape[1] != 3 or not np.issubdtype(coords.dtype, np.integer):
            raise ValueError(f"coords must be an (M, 3) integer array, got {coords.dtype} {coords.shape}")
        coords = coords.astype(np.int64)
        features = np.ones((len(coords), 1), np.float32) if features is None else np.asarray(features, np.float32)
        if features.ndim != 2 or len(features) != len(coords):
            raise ValueError(f"features must be (M, C) with M = {len(coords)} sites, got {features.shape}")
        index = {site: row for row, site in enumerate(map(tuple, coords.tolist()))}
        if len(index) != len(coords):
            raise ValueError(f"coords repeat {len(coords) - len(index)} sites: give each active site once")
        return cls(coords, features, index)

    @classmethod
    def from_dense(cls, grid, active=None) -> SparseVoxels:
        """The sites of ``grid`` (X, Y, Z, C) where ``active`` (X, Y, Z) is true (default: any
        non-zero channel), in row-major order."""
        grid = np.asarray(grid, np.float32)
        if grid.ndim != 4:
            raise ValueError(f"grid must be (X, Y, Z, C), got shape {grid.shape}")
        active = np.any(grid != 0, axis=-1) if active is None else np.asarray(active, bool)
        coords = np.argwhere(active)
        return cls.from_coords(coords, grid[tuple(coords.T)])

    @classmethod
    def from_points(cls, points, voxel_size: float, origin=None) -> SparseVoxels:
        """Occupancy of a cloud ``points`` (N, 3) in voxels of ``voxel_size`` (the cloud's units):
        one site per occupied voxel with feature 1, coordinates counted from ``origin`` (default:
        the cloud's minimum corner)."""
        points = np.asarray(points, np.float64)
        if voxel_size <= 0:
            raise ValueError(f"voxel_size must be positive, got {voxel_size}")
        origin = points.min(axis=0) if origin is None else np.asarray(origin, np.float64)
        coords = np.unique(np.floor((points - origin) / voxel_size).astype(np.int64), axis=0)
        return cls.from_coords(coords)

    def __len__(self) -> int:
        return len(self.coords)

    @property
    def channels(self) -> int:
        return int(self.features.shape[1])

    def to_dense(self, shape: Sequence[int]) -> np.ndarray:
        """The dense grid (X, Y, Z, C) of ``shape`` (X, Y, Z): features at active sites, zero elsewhere.

        Raises:
            ValueError: if a site lies outside the grid.
        """
        shape = tuple(int(s) for s in shape)
        if len(self) and (self.coords.min() < 0 or np.any(self.coords.max(axis=0) >= shape)):
            raise ValueError(f"sites span {self.coords.min(axis=0)} to {self.coords.max(axis=0)}, outside a grid "
                             f"of {shape}: pass a larger shape")
        grid = np.zeros(shape + (self.channels,), np.float32)
        grid[tuple(self.coords.T)] = self.features
        return grid


@dataclass
class Rulebook:
    """Which input row feeds which output row through which kernel offset: three int32 arrays of
    equal length R, sorted by offset, plus the offsets (K^3, 3) themselves."""

    inputs: np.ndarray
    outputs: np.ndarray
    offsets: np.ndarray  # index into kernel_offsets(kernel_size)
    kernel_size: int

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def nbytes(self) -> int:
        return int(self.inputs.nbytes + self.outputs.nbytes + self.offsets.nbytes)


def kernel_offsets(kernel_size: int = 3) -> np.ndarray:
    """Offsets (k^3, 3) int64 of a k x k x k kernel around its centre, in the row-major order of the
    first three axes of a Keras ``Conv3D`` kernel, so that offset o multiplies ``kernel.reshape(k^3,
    C_in, C_out)[o]``.

    Raises:
        ValueError: if ``kernel_size`` is not a positive odd int.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int (a kernel with a centre), got {kernel_size}")
    r = kernel_size // 2
    axis = np.arange(-r, r + 1)
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)


def output_sites(x: SparseVoxels, kernel_size: int = 3, kind: str = "submanifold") -> np.ndarray:
    """Coordinates (M', 3) of the output's active sites: the input's (submanifold), or every site
    within the kernel's reach of an input site (sparse), in sorted order."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "submanifold":
        return x.coords
    reach = (x.coords[:, None, :] - kernel_offsets(kernel_size)[None]).reshape(-1, 3)
    return np.unique(reach, axis=0)


def build_rulebook(x: SparseVoxels, out_coords: np.ndarray, kernel_size: int = 3) -> Rulebook:
    """The rulebook of a convolution from the sites of ``x`` to ``out_coords``: for every output site
    and kernel offset d, one hash look-up of the site + d among the input sites.

    Args:
        x: the input sites, with their hash map.
        out_coords: the output sites (M', 3).
        kernel_size: odd kernel size k.

    Returns:
        A ``Rulebook`` of one rule per (output site, offset) whose input site is active.
    """
    inputs, outputs, offsets = [], [], []
    rows = np.arange(len(out_coords))
    for o, d in enumerate(kernel_offsets(kernel_size)):
        found = np.array([x.index.get(site, -1) for site in map(tuple, (out_coords + d).tolist())], np.int64)
        hit = found >= 0
        inputs.append(found[hit])
        outputs.append(rows[hit])
        offsets.append(np.full(int(hit.sum()), o))
    cat = [np.concatenate(a).astype(np.int32) if a else np.zeros(0, np.int32) for a in (inputs, outputs, offsets)]
    return Rulebook(*cat, kernel_size=kernel_size)


def _check_kernel(kernel, channels: int) -> np.ndarray:
    kernel = np.asarray(kernel, np.float32)
    k = kernel.shape[0] if kernel.ndim == 5 else 0
    if kernel.ndim != 5 or kernel.shape[:3] != (k, k, k) or k % 2 == 0 or kernel.shape[3] != channels:
        raise ValueError(f"kernel must be (k, k, k, {channels}, C_out) with odd k, as a Keras Conv3D kernel, "
                         f"got {kernel.shape}")
    return kernel


def apply_rulebook(features, rulebook: Rulebook, kernel, num_outputs: int, bias=None) -> np.ndarray:
    """The convolution as gathered matrix products: for each kernel offset, the input rows of its
    rules times that offset's (C_in, C_out) matrix, added into their output rows -> (M', C_out).

    Each output row appears at most once per offset, so a plain indexed add is exact.

    Args:
        features: input features (M, C_in).
        rulebook: the rules from input rows to output rows.
        kernel: weights (k, k, k, C_in, C_out), laid out as a Keras ``Conv3D`` kernel.
        num_outputs: M', the number of output sites.
        bias: (C_out,) added at every output site, or None.

    Returns:
        Output features (M', C_out) float32.
    """
    features = np.asarray(features, np.float32)
    kernel = _check_kernel(kernel, features.shape[1])
    weights = kernel.reshape(-1, kernel.shape[3], kernel.shape[4])
    out = np.zeros((num_outputs, kernel.shape[4]), np.float32)
    bounds = np.searchsorted(rulebook.offsets, np.arange(len(weights) + 1))
    for o, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        if stop > start:
            out[rulebook.outputs[start:stop]] += features[rulebook.inputs[start:stop]] @ weights[o]
    if bias is not None:
        out += np.asarray(bias, np.float32)
    return out


def conv3d(x: SparseVoxels, kernel, bias=None, kind: str = "submanifold",
           rulebook: Rulebook | None = None) -> tuple[SparseVoxels, Rulebook]:
    """A sparse 3D convolution of ``x`` with ``kernel`` (k, k, k, C_in, C_out) (and ``bias`` (C_out,)).

    ``kind="submanifold"`` keeps the input's active sites, ``"sparse"`` activates every site within
    the kernel's reach. A submanifold layer may reuse the ``rulebook`` of an earlier layer on the
    same sites with the same kernel size (its output sites are its input sites, so the rules are
    the same): a network builds one rulebook per active set, not one per layer.

    Args:
        x: the input sites and features (M, C_in).
        kernel: weights (k, k, k, C_in, C_out), laid out as a Keras ``Conv3D`` kernel.
        bias: (C_out,) added at every output site, or None.
        kind: "submanifold" or "sparse".
        rulebook: rules to reuse (submanifold only), or None to build them.

    Returns:
        The output sites with their features (M', C_out), and the rulebook used (for its memory).

    Raises:
        ValueError: if the kernel does not fit the features, ``kind`` is unknown, or a rulebook is
            passed to an ordinary sparse layer or was built for another kernel size.
    """
    kernel = _check_kernel(kernel, x.channels)
    out_coords = output_sites(x, kernel.shape[0], kind)
    if rulebook is not None and (kind != "submanifold" or rulebook.kernel_size != kernel.shape[0]):
        raise ValueError(f"a rulebook can be reused only by a submanifold layer of its kernel size "
                         f"({rulebook.kernel_size}), not by a {kind} layer of size {kernel.shape[0]}: pass none")
    rulebook = rulebook or build_rulebook(x, out_coords, kernel.shape[0])
    features = apply_rulebook(x.features, rulebook, kernel, len(out_coords), bias)
    out = SparseVoxels(out_coords, features, x.index if kind == "submanifold" else
                       {site: row for row, site in enumerate(map(tuple, out_coords.tolist()))})
    return out, rulebook


def memory_bytes(x: SparseVoxels, rulebook: Rulebook | None = None) -> dict[str, int]:
    """Bytes a sparse layer holds: its ``features`` (M, C) float32, its ``coords`` (M, 3) as int32,
    its ``rulebook`` (3 int32 per rule) and their ``total``. The hash map is left out: a C++
    implementation keeps about one (key, row) pair per site, the size of the coordinate list."""
    parts = {"features": int(x.features.nbytes), "coords": 12 * len(x),
             "rulebook": 0 if rulebook is None else rulebook.nbytes}
    return {**parts, "total": sum(parts.values())}


def dense_memory_bytes(shape: Sequence[int], channels: int) -> int:
    """Bytes of a dense float32 feature grid of ``shape`` (X, Y, Z) with ``channels`` channels."""
    return 4 * int(np.prod(shape)) * int(channels)


def run_layers(x: SparseVoxels, kernels: Sequence, kind: str = "submanifold") -> list[dict]:
    """Apply the convolutions ``kernels`` (each (k, k, k, C_in, C_out)) in turn, with a ReLU between
    them, and report each layer: its output's active ``sites``, its ``rules`` and its ``memory``
    (``memory_bytes`` of its output and rulebook).

    With ``kind="submanifold"`` the site count stays that of ``x`` and the layers share one rulebook
    (while the kernel size stays); with ``"sparse"`` the sites grow layer after layer and each layer
    needs a new, longer rulebook: the argument for submanifold convolutions.

    Args:
        x: the input sites and features.
        kernels: one (k, k, k, C_in, C_out) kernel per layer, each C_in the previous C_out.
        kind: "submanifold" or "sparse".

    Returns:
        One dict per layer: ``layer`` (from 1), ``sites``, ``rules`` and ``memory`` (bytes).
    """
    rows, rulebook = [], None
    for i, kernel in enumerate(kernels):
        same_size = rulebook is not None and rulebook.kernel_size == np.shape(kernel)[0]
        x, rulebook = conv3d(x, kernel, kind=kind, rulebook=rulebook if kind == "submanifold" and same_size else None)
        if i < len(kernels) - 1:
            x.features = np.maximum(x.features, 0)
        rows.append({"layer": i + 1, "sites": len(x), "rules": len(rulebook), "memory": memory_bytes(x, rulebook)})
    return rows


def active_site_counts(x: SparseVoxels, layers: int = 3, kernel_size: int = 3) -> dict[str, list[int]]:
    """Active sites after each of ``layers`` stacked convolutions, submanifold and ordinary sparse,
    computed by building each layer's output sites (no features needed).

    Returns:
        ``{"submanifold": [...], "sparse": [...]}``, one count per layer.
    """
    counts = {}
    for kind in KINDS:
        sites, counts[kind] = x, []
        for _ in range(layers):
            coords = output_sites(sites, kernel_size, kind)
            sites = sites if kind == "submanifold" else SparseVoxels.from_coords(coords, np.zeros((len(coords), 0)))
            counts[kind].append(len(coords))
    return counts
