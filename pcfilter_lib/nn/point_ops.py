"""Batched point-set operations in ``keras.ops``: distances, nearest neighbours, gathering and
farthest point sampling. They serve the point losses (Chamfer, repulsion) and PU-Net's layers and
run on every Keras backend.

Shapes: a batch of clouds is (B, N, C), usually C = 3 coordinates. Distances are computed densely,
(B, N, M) at once, which suits the patches of a few hundred to a few thousand points these
networks read; whole scans are cut into patches first.
"""

from __future__ import annotations

from keras import ops


def squared_distances(a, b):
    """Squared Euclidean distances (B, N, M) between every point of ``a`` (B, N, C) and of ``b``
    (B, M, C), as ``|a|^2 - 2 a.b + |b|^2`` (one matrix product), clipped at 0 against rounding."""
    a2 = ops.sum(ops.square(a), axis=-1)[:, :, None]
    b2 = ops.sum(ops.square(b), axis=-1)[:, None, :]
    return ops.maximum(a2 - 2.0 * ops.matmul(a, ops.transpose(b, (0, 2, 1))) + b2, 0.0)


def nearest(query, points, k: int):
    """The ``k`` nearest of ``points`` (B, M, C) to each of ``query`` (B, N, C): indices (B, N, k)
    int32 and squared distances (B, N, k), nearest first."""
    negative, indices = ops.top_k(-squared_distances(query, points), k)
    return ops.cast(indices, "int32"), -negative


def gather(points, indices):
    """``points`` (B, N, C) picked by per-batch ``indices`` (B, ...) into [0, N): (B, ..., C)."""
    shape = ops.shape(points)
    b, n = shape[0], shape[1]
    flat = ops.reshape(points, (-1, points.shape[-1]))
    offsets = ops.reshape(ops.arange(b, dtype="int32") * ops.cast(n, "int32"),
                          (-1,) + (1,) * (len(indices.shape) - 1))
    return ops.take(flat, ops.cast(indices, "int32") + offsets, axis=0)


def farthest_point_sample(points, n: int):
    """Indices (B, n) int32 of ``n`` points of each cloud (B, N, 3) picked by farthest point
    sampling: start at point 0, then repeatedly take the point farthest from all picked so far.
    The picks spread evenly over the cloud whatever its density (PointNet++'s sampling layer)."""
    count = points.shape[1]
    if n > count:
        raise ValueError(f"cannot pick {n} points from clouds of {count}")
    batch = ops.shape(points)[0]

    def step(i, state):
        picked, distance, current = state
        picked = picked + ops.cast(ops.one_hot(i, n), "int32")[None, :] * current[:, None]
        centre = gather(points, current[:, None])  # (B, 1, 3)
        distance = ops.minimum(distance, ops.sum(ops.square(points - centre), axis=-1))
        return picked, distance, ops.cast(ops.argmax(distance, axis=-1), "int32")

    start = (ops.zeros((batch, n), "int32"), ops.full((batch, count), 1e10, dtype=points.dtype),
             ops.zeros((batch,), "int32"))
    picked, _, _ = ops.fori_loop(0, n, step, start)
    return picked
