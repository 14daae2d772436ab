"""The point-based artefact filter: PointNet segmentation on neighbourhoods of an unorganised cloud.

The U-Net filter needs a pixel grid; this one needs only points (N, 3). It works in four steps:

1. **Scale.** The cloud's own point spacing ``s`` (the median distance from a point to its nearest
   neighbour) is the unit of every length, so metres, millimetres or a subsampled cloud look alike.
2. **Features.** Each point gets local statistics of its k nearest neighbours (``OWN``):
   neighbour distances, how many neighbours lie within 2 s and 4 s (what radius outlier removal
   counts), the distance to the neighbourhood's centroid and plane, and the shape of the
   neighbourhood from its PCA eigenvalues; then the mean of the same statistics over those
   neighbours, which tells a lone point from one in a whole sheet of stray points (``STATISTICS``
   holds both). All are invariant to rotation, translation and scale.
3. **Patches.** The cloud is covered by overlapping neighbourhoods of ``patch_size`` points around
   seed points. Feature sets that use coordinates give each patch's points local coordinates in
   the patch's own PCA frame (axes ordered by variance, signs fixed by the third moment), again
   divided by ``s``.
4. **Prediction.** PointNet segmentation (``models.pointnet.build_pointnet_segmentation`` without
   the T-Nets, which the canonical frame makes unnecessary) reads the chosen feature set of every
   patch and gives P(keep) per point; a point in several patches gets the mean of its predictions.

``FEATURE_SETS`` names the inputs compared by the ablation of ``recipes.point_filter``: local
coordinates only (what a plain PointNet sees), statistics only, or both. ``PointFilter`` wraps a
trained model with its threshold and settings and offers the ``keep_probability`` / ``keep_mask``
interface of ``filters.base.Filter``, so ``filters.evaluation.evaluate_filter`` and the command line
use every filter alike. Steps 1-3 live in ``geometry.point_features``, except the choice of the
patches the filter reads (``cover_patches``), made so that a tile of a larger cloud gets the
whole cloud's (``filters.point_tiles``).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np

from pcfilter_lib.filters.base import CloudFilter, check_threshold
from pcfilter_lib.geometry.point_features import (
    FEATURE_SETS,
    NEIGHBOURS,
    STATISTICS,
    Neighbourhoods,
    combine,
    finite_points,
    local_statistics,
    neighbourhoods,
    patch_inputs,
)
from pcfilter_lib.io.model_cards import WEIGHTS, read_model_card
from pcfilter_lib.models.saved import load_saved_model

SHIPPED_POINT_MODEL = WEIGHTS / "pointnet_filter.keras"

# How the decision threshold is chosen (``point_filter(threshold_rule=...)``), both by the recipe that
# trained the model, on its simulated validation clouds only (``recipes.point_filter``): "card" is the
# model card's threshold (the best mean IoU among thresholds keeping at least 99.5% of the true points);
# "balanced" is the card's ``details["balanced_threshold"]``, the best balanced accuracy, which removes
# more artefacts for a few more true points. A threshold given explicitly overrides the rule ("given").
THRESHOLD_RULES = ("card", "balanced", "given")


@dataclass
class PointFilter(CloudFilter):
    """A trained point filter: the Keras model, its decision threshold and the settings it was trained with.

    ``keep_probability_points(points)`` works on any (N, 3) cloud; ``keep_probability(scan)`` and
    ``keep_mask(scan)`` on the scan-like dicts of ``io.scan`` and ``io.organised`` (the measured
    points only, ignoring the grid), as every filter of ``filters.base.Filter`` does.
    ``threshold_rule`` (one of ``THRESHOLD_RULES``) records which rule chose ``threshold``.
    """

    model: object
    threshold: float = 0.5
    feature_set: str = "both"
    patch_size: int = 256
    neighbours: int = NEIGHBOURS
    name: str = "pointnet_filter"
    batch_size: int = 128
    threshold_rule: str = "card"

    def __post_init__(self):
        self.threshold = check_threshold(self.threshold)
        if self.threshold_rule not in THRESHOLD_RULES:
            raise ValueError(f"unknown threshold rule {self.threshold_rule!r}: choose one of {THRESHOLD_RULES}")
        if self.feature_set not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {self.feature_set!r}: choose one of {sorted(FEATURE_SETS)}")
        channels = len(FEATURE_SETS[self.feature_set])
        if int(self.model.input_shape[-1]) != channels:
            raise ValueError(f"the model reads {self.model.input_shape[-1]} features per point, but feature set "
                             f"{self.feature_set!r} has {channels}")

    def predict_patches(self, inputs: np.ndarray) -> np.ndarray:
        """(M, P, F) inputs -> (M, P) P(keep), in batches of ``batch_size`` patches."""
        return np.concatenate(list(self._predict_batches(len(inputs), lambda rows: inputs[rows])))

    def _predict_batches(self, count: int, batch_inputs):
        """P(keep) of ``count`` patches, batch after batch: ``batch_inputs(slice)`` gives the (B, P, F)
        inputs of those patches, made only when needed so that memory holds one batch at a time."""
        for i in range(0, count, self.batch_size):
            batch = batch_inputs(slice(i, i + self.batch_size))
            if len(batch) < self.batch_size and count > self.batch_size:  # one shape: no retracing
                batch = np.concatenate([batch, np.zeros((self.batch_size - len(batch), *batch.shape[1:]), batch.dtype)])
            yield np.asarray(self.model.predict_on_batch(batch))[:count - i, :, 0]

    def hood_probability(self, hood: Neighbourhoods, patches: np.ndarray, held: np.ndarray | None = None) -> np.ndarray:
        """(N,) float32 P(keep) of the points of ``hood`` from the network's predictions on ``patches``
        (from ``cover_patches``): the mean over the patches that hold each point (all members, or those
        where ``held`` is True), 0 for a point in none. The inputs are made one batch of patches at a time."""
        size = patches.shape[1]
        patches = pad_patches(patches, self.model.input_shape[1])
        columns = FEATURE_SETS[self.feature_set]
        statistics = local_statistics(hood) if set(STATISTICS) & set(columns) else None
        predictions = np.concatenate(list(self._predict_batches(
            len(patches), lambda rows: patch_inputs(hood, patches[rows], self.feature_set, statistics, size))))
        if held is None:
            return combine(patches, predictions, len(hood.points))
        patches, predictions = patches[:, :size], predictions[:, :size]  # the padding repeats the first members
        return combine(patches[held], predictions[held], len(hood.points))

    def keep_probability_points(self, points) -> np.ndarray:
        """(N,) float32 P(keep) of each point of an (N, 3) cloud; 0 for points with NaN or infinite
        coordinates, which are never kept."""
        points, finite = finite_points(points)
        hood = neighbourhoods(points[finite], self.neighbours)
        prob = np.zeros(len(points), np.float32)
        cover = cover_patches(hood, np.arange(len(hood.points)), self.patch_size)  # seeds: rank among finite
        prob[finite] = self.hood_probability(hood, cover.patches, cover.held)
        return prob



# The patches the filter reads (``cover_patches``): in round r every point that no patch holds yet becomes
# a patch's seed with probability min(1, PATCH_GROWTH ** r / P), drawn from a hash of its index in the
# cloud. Unlike ``geometry.point_features.seed_patches`` (the training patches, whose rounds draw from the
# whole cloud), whether a point is a seed depends only on the points near it, so that a tile of a larger
# cloud gets the patches of the whole cloud (``filters.point_tiles``). A growth of 1.5 gives about 2.7 patches per
# point on a 640x480 scan (2.4 for seed_patches) in 15 rounds. A patch is always the seed's P nearest points
# (what the network was trained on), but it holds, for covering and for the mean of the predictions, only
# its members within HOLD spacings of the seed: a lone point far from the rest reaches out hundreds of
# spacings, and a tile would otherwise need a halo that wide.
PATCH_GROWTH = 1.5
HOLD = 24.0  # in spacings; a patch of 256 points on a surface of the median density spans about 10
SEED_CHUNK = 4096  # seeds whose patches are gathered at once (a round at rate 1 may draw a whole tile's halo)
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def patch_draw(index: np.ndarray, round_: int) -> np.ndarray:
    """(n,) float64 in [0, 1): a fixed pseudo-random number per point index and round (SplitMix64)."""
    x = np.asarray(index, np.int64).astype(np.uint64) * _MIX[0] + np.uint64((round_ + 1) * int(_MIX[2]) % 2 ** 64)
    for shift, factor in ((30, _MIX[1]), (27, _MIX[2])):
        x ^= x >> np.uint64(shift)
        x *= factor
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


@dataclass
class Cover:
    """The patches of ``cover_patches``.

    Attributes:
        patches: (M, P) point indices, nearest to the seed first.
        held: (M, P) True for the members within ``HOLD`` of the seed, whose predictions count.
        seeds: (M,) the seed of each patch.
        exact: (N,) True where the patches that hold the point are those of the whole cloud.
        wide: (K,) the seeds whose patches cross the part's edge (their P nearest points may lie beyond).
        radius: (K,) the distance from each of those seeds to its farthest member, in spacings.
    """

    patches: np.ndarray
    held: np.ndarray
    seeds: np.ndarray
    exact: np.ndarray
    wide: np.ndarray
    radius: np.ndarray


def cover_patches(hood: Neighbourhoods, index: np.ndarray, patch_size: int,
                  room: np.ndarray | None = None) -> Cover:
    """Cover a cloud, or a part of one, with patches whose seeds depend only on the points near them.

    In round r = 0, 1, ... each point that no patch holds yet becomes a seed when ``patch_draw(index,
    r)`` < min(1, PATCH_GROWTH ** r / P); a seed's patch is its P nearest points, of which those within
    ``HOLD`` of it are held. On a part of a cloud (``room`` given: each point's distance to the edge of
    the part, beyond which the cloud goes on) the rounds also track which points certainly have the
    whole cloud's patches: not a point within ``HOLD`` of the edge (a seed outside might hold it), nor
    the members of a patch that crosses the edge, nor those of a seed whose own coverage is uncertain.

    Args:
        hood: the ``Neighbourhoods`` of the points.
        index: (N,) each point's index among the whole cloud's finite points (what the draws depend on,
                so that NaN rows, which the filter drops, change nothing).
        patch_size: P; at most N.
        room: (N,) distance to the part's edge in spacings; None for a whole cloud.

    Returns:
        The ``Cover``; on a whole cloud every point is exact.
    """
    n = len(hood.points)
    size = min(patch_size, n)
    room = np.full(n, np.inf) if room is None else np.asarray(room, float)
    covered = np.zeros(n, bool)  # by a patch made here
    sure = np.zeros(n, bool)  # by a patch the whole cloud has too
    exact = room >= HOLD
    patches, held, seeds, wide, radius, rate = [], [], [], [], [], 0.0
    for r in itertools.count():
        if covered.all() and (rate >= 1 or (sure | exact).all()):
            break
        rate = min(1.0, PATCH_GROWTH ** r / size)
        candidates = np.flatnonzero(~covered | ~(sure | exact))  # may be uncovered in the whole cloud
        drawn = candidates[patch_draw(index[candidates], r) < rate]
        # Read before the round's updates, which only ever set flags: the round's seeds then go in
        # chunks of SEED_CHUNK with the same result, and memory holds one chunk's patches at a time.
        was_exact, is_seed = exact[drawn], ~covered[drawn]
        for start in range(0, drawn.size, SEED_CHUNK):
            part = slice(start, start + SEED_CHUNK)
            chunk = drawn[part]
            members = hood.nearest(hood.points[chunk], size)
            # Among more than P coincident points the search may return others than the seed: the seed
            # then takes the place of the farthest member, so that every round covers its seeds.
            missing = ~(members == chunk[:, None]).any(axis=1)
            members[missing, -1] = chunk[missing]
            distance = np.linalg.norm(hood.points[members] - hood.points[chunk][:, None], axis=2)  # (m, P)
            near = distance <= HOLD
            farthest = distance.max(axis=1)
            complete = farthest <= room[chunk]  # no point beyond the edge is nearer than a member
            wide.append(chunk[~complete])
            radius.append(farthest[~complete])
            certain, seed = was_exact[part] & complete, is_seed[part]
            exact[members[~certain][near[~certain]]] = False
            sure[members[certain & seed][near[certain & seed]]] = True
            covered[members[seed][near[seed]]] = True
            patches.append(members[seed])
            held.append(near[seed])
            seeds.append(chunk[seed])
    return Cover(np.concatenate(patches), np.concatenate(held), np.concatenate(seeds), exact,
                 np.concatenate(wide or [np.zeros(0, np.int64)]), np.concatenate(radius or [np.zeros(0)]))


def pad_patches(patches: np.ndarray, size: int | None) -> np.ndarray:
    """Patches of a cloud smaller than the network's fixed patch size, filled up to ``size`` points.

    A cloud of N < P points (down to ``geometry.point_features.MIN_POINTS``) gives patches of N
    points; each is filled by repeating its points in order. PointNet pools the patch with a
    maximum, which a repeated point does not change, so every point gets the prediction it would
    get in a patch of its own size; ``combine`` then averages equal values.

    Args:
        patches: (M, N) point indices from ``cover_patches``.
        size: the model's points per patch, or None when it takes any number.

    Returns:
        (M, size) indices (``patches`` itself when it is already that wide or ``size`` is None).
    """
    if size is None or patches.shape[1] >= size:
        return patches
    return np.tile(patches, (1, -(-size // patches.shape[1])))[:, :size]


def wrap_point_model(model, path: Path, threshold: float | None = None) -> PointFilter:
    """A loaded point-filter model with the threshold, feature set and patch size of its model card
    (``threshold`` overrides the recorded one; without a card the feature set follows from the
    model's number of input channels).

    Raises:
        ValueError: the model does not take (B, P, F) input.
    """
    if len(model.input_shape) != 3:
        raise ValueError(f"{path}: a point filter takes (B, P, F) input, this model takes {model.input_shape}")
    card = read_model_card(path)
    settings = card.settings if card else {}
    if threshold is None:
        threshold = card.threshold if card and card.threshold is not None else 0.5
    if not getattr(model, "compiled", False):  # inference only: XLA where the backend has it (a third faster on CPU)
        model.compile(jit_compile=keras.backend.backend() in ("tensorflow", "jax"))
    by_channels = {len(columns): name for name, columns in FEATURE_SETS.items()}
    feature_set = settings.get("feature_set") or by_channels.get(int(model.input_shape[-1]), "both")
    return PointFilter(model, threshold=threshold,
                       feature_set=feature_set, patch_size=settings.get("patch_size", 256),
                       neighbours=settings.get("neighbours", NEIGHBOURS), name=Path(path).stem)


def point_filter(path: str | os.PathLike | None = None, threshold: float | None = None,
                 threshold_rule: str = "card") -> PointFilter:
    """The point filter saved at ``path`` (default: the shipped one); see ``wrap_point_model``.

    Args:
        path: a ``.keras`` file of a point filter.
        threshold: keep a point when P(keep) >= this; overrides ``threshold_rule``.
        threshold_rule: "card" (the model card's threshold) or "balanced" (the best balanced
            accuracy on the simulated validation clouds, the card's ``details["balanced_threshold"]``).

    Raises:
        ValueError: an unknown rule, or "balanced" for a model that records no such threshold.
    """
    if threshold_rule not in THRESHOLD_RULES[:2]:
        raise ValueError(f"unknown threshold rule {threshold_rule!r}: choose one of {THRESHOLD_RULES[:2]}, or give "
                         "a threshold")
    path = Path(SHIPPED_POINT_MODEL if path is None else path)
    loaded = wrap_point_model(load_saved_model(path), path, threshold)
    if threshold is not None:
        return replace(loaded, threshold_rule="given")
    if threshold_rule == "balanced":
        card = read_model_card(path)
        recorded = card.details.get("balanced_threshold") if card else None
        if recorded is None:
            raise ValueError(f"{path}: its model card records no balanced_threshold; train it with "
                             "data_scripts/train_reference_models.py --target pointfilter, or give --threshold")
        return replace(loaded, threshold=float(recorded), threshold_rule="balanced")
    return loaded
