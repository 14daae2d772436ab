"""Batched point-set operations in ``keras.ops``, each written once: distances, k nearest neighbours,
gathering, farthest point sampling, ball query, grouping and interpolation. PointNet++, DGCNN,
PU-Net and the point losses (Chamfer, repulsion) are built from them, and they run on every Keras
backend.

Shapes: a batch of clouds is (B, N, C), usually C = 3 coordinates; indices are int32. Distances are
computed densely, (B, N, M) at once, which suits the clouds and patches of a few hundred to a few
thousand points these networks read; whole scans are cut into patches first. ``tests/test_point_ops.py``
checks every operation against a plain NumPy version.
"""

from __future__ import annotations

from keras import ops


def squared_distances(a, b):
    """Squared Euclidean distances between every point of ``a`` and every point of ``b``.

    Written as ``|a|^2 - 2 a.b + |b|^2`` (one matrix product instead of a (B, N, M, C) difference);
    rounding can make it slightly negative, so it is clipped at zero.

    Args:
        a: points (B, N, C).
        b: points (B, M, C).

    Returns:
        (B, N, M) squared distances, in squared units of the points.
    """
    a2 = ops.sum(ops.square(a), axis=-1)[:, :, None]
    b2 = ops.sum(ops.square(b), axis=-1)[:, None, :]
    return ops.maximum(a2 - 2.0 * ops.matmul(a, ops.transpose(b, (0, 2, 1))) + b2, 0.0)


def nearest(query, points, k: int):
    """The ``k`` nearest of ``points`` to each query point, nearest first.

    A query point that is also one of ``points`` finds itself first (distance 0), as DGCNN's graph
    wants; drop the first column for the k nearest *other* points.

    Args:
        query: points (B, N, C) whose neighbours are wanted.
        points: points (B, M, C) to search, in any feature space (coordinates, or a layer's features).
        k: neighbours per query point, at most M.

    Returns:
        ``(indices, squared)``: int32 indices (B, N, k) into the M points and their squared
        distances (B, N, k), ascending.

    Raises:
        ValueError: if M is known and smaller than ``k``.
    """
    if points.shape[1] is not None and k > points.shape[1]:
        raise ValueError(f"cannot find {k} nearest of {points.shape[1]} points: lower k")
    negative, indices = ops.top_k(-squared_distances(query, points), k)
    return ops.cast(indices, "int32"), -negative


def gather(values, indices):
    """Rows of ``values`` picked per cloud by ``indices``.

    The batch is flattened into one table of B * N rows and each cloud's indices are offset by
    b * N, so one ``ops.take`` serves every backend.

    Args:
        values: per-point values (B, N, C).
        indices: integer indices (B, ...) into the N points of the same cloud.

    Returns:
        (B, ..., C): ``values[b, indices[b, ...]]`` for every cloud b.
    """
    indices = ops.cast(indices, "int32")
    shape = ops.shape(values)
    offsets = ops.reshape(ops.arange(shape[0], dtype="int32") * ops.cast(shape[1], "int32"),
                          (-1,) + (1,) * (len(indices.shape) - 1))
    return ops.take(ops.reshape(values, (-1, values.shape[-1])), indices + offsets, axis=0)


def farthest_point_sample(points, num_samples: int):
    """Indices of ``num_samples`` points of each cloud, picked farthest first (PointNet++'s sampling).

    The first pick is point 0 (as in the authors' code, so the result is deterministic); each next
    pick is the point whose distance to the nearest pick so far is largest, so the picks spread
    evenly over the cloud whatever its density. Distances are float32 whatever the input's dtype
    (float16 would tie far points) and carry no gradient. O(S N) per cloud, in ``ops.fori_loop``
    so that a compiled graph holds one step rather than S copies of it.

    Args:
        points: coordinates (B, N, 3).
        num_samples: S, at most N.

    Returns:
        int32 indices (B, S) into the N points, in the order picked.

    Raises:
        ValueError: if N is known and smaller than S.
    """
    if points.shape[1] is not None and num_samples > points.shape[1]:
        raise ValueError(f"cannot pick {num_samples} of {points.shape[1]} points: lower num_samples")
    points = ops.stop_gradient(ops.cast(points, "float32"))
    batch = ops.shape(points)[0]
    slots = ops.arange(num_samples, dtype="int32")[None, :]

    def step(i, state):
        picked, nearest_pick, last = state
        picked = ops.where(slots == i, last[:, None], picked)
        centre = gather(points, last[:, None])  # (B, 1, 3)
        nearest_pick = ops.minimum(nearest_pick, ops.sum(ops.square(points - centre), axis=-1))
        return picked, nearest_pick, ops.cast(ops.argmax(nearest_pick, axis=-1), "int32")

    start = (ops.zeros((batch, num_samples), "int32"), ops.full(ops.shape(points)[:2], float("inf")),
             ops.zeros((batch,), "int32"))
    return ops.fori_loop(0, num_samples, step, start)[0]


def ball_query(points, centroids, radius: float, num_neighbors: int):
    """Up to K points within ``radius`` of each centroid (PointNet++'s grouping by radius).

    As in the authors' code: the first K such points in index order (not the nearest K), and
    fewer than K are padded by repeating the first, which leaves the max over the group unchanged.
    A centroid with no point in reach (impossible when centroids are points of the cloud) gets
    its nearest point.

    Args:
        points: coordinates (B, N, 3).
        centroids: ball centres (B, S, 3), in the same units.
        radius: ball radius, in the points' units.
        num_neighbors: K, at most N.

    Returns:
        int32 indices (B, S, K) into the N points.
    """
    d2 = squared_distances(ops.stop_gradient(centroids), ops.stop_gradient(points))  # (B, S, N)
    n = ops.shape(points)[1]
    order = ops.cast(ops.arange(n), "float32")  # exact as float below 2^24 points
    outside = ops.cast(n, "float32")
    in_ball = ops.where(d2 <= radius * radius, order[None, None, :], outside)
    first = ops.cast(-ops.top_k(-in_ball, num_neighbors)[0], "int32")  # smallest K indices, ascending
    empty = first == ops.cast(n, "int32")
    lead = ops.where(empty[..., :1], ops.cast(ops.argmin(d2, axis=-1), "int32")[..., None], first[..., :1])
    return ops.where(empty, lead, first)


def group(xyz, features, centroids, indices):
    """Neighbourhoods of the centroids: neighbour coordinates minus their centroid, then features.

    Relative coordinates make each group's small network see local shape, not position.

    Args:
        xyz: coordinates (B, N, 3).
        features: per-point features (B, N, C), or None for coordinates alone.
        centroids: group centres (B, S, 3).
        indices: members of each group (B, S, K) into the N points, as ``ball_query`` or
            ``nearest`` give them.

    Returns:
        (B, S, K, 3 + C) (or (B, S, K, 3) without features).
    """
    local = gather(xyz, indices) - centroids[:, :, None, :]
    if features is None:
        return local
    return ops.concatenate([local, ops.cast(gather(features, indices), local.dtype)], axis=-1)


def interpolate(xyz, sparse_xyz, sparse_features, num_neighbors: int = 3, power: int = 2,
                epsilon: float = 1e-10):
    """Features at ``xyz`` interpolated from those known at ``sparse_xyz`` (feature propagation).

    Each point blends the features of its ``num_neighbors`` nearest sparse points (fewer if S is
    smaller) with weights 1 / (d^power + epsilon), normalised to sum to one: a point on a sparse
    point gets that point's features. PointNet++'s code weighs by the inverse squared distance
    (``power=2``); the shipped PU-Net was trained with the inverse distance (``power=1``,
    ``epsilon=1e-8``).

    Args:
        xyz: where to interpolate (B, N, 3).
        sparse_xyz: where the features are known (B, S, 3).
        sparse_features: the known features (B, S, C).
        num_neighbors: how many nearest sparse points to blend (3 in the papers).
        power: 1 (inverse distance) or 2 (inverse squared distance).
        epsilon: added to d^power, in its units, so that a weight stays finite at distance 0.

    Returns:
        Interpolated features (B, N, C).

    Raises:
        ValueError: for a power other than 1 or 2.
    """
    if power not in (1, 2):
        raise ValueError(f"power must be 1 (inverse distance) or 2 (inverse squared distance), got {power}")
    known = sparse_xyz.shape[1]
    k = int(num_neighbors) if known is None else min(int(num_neighbors), int(known))
    indices, squared = nearest(xyz, sparse_xyz, k)
    weights = 1.0 / ((squared if power == 2 else ops.sqrt(squared)) + epsilon)
    weights = weights / ops.sum(weights, axis=-1, keepdims=True)
    neighbours = ops.cast(gather(sparse_features, indices), weights.dtype)  # (B, N, k, C)
    return ops.sum(neighbours * weights[..., None], axis=2)
