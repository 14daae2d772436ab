"""Training examples for the point filter: patches of the points of labelled clouds, with their
neighbourhood features (``geometry.point_features``), half of them holding an artefact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from pcfilter_lib.geometry import point_features
from pcfilter_lib.labels import ARTEFACT


def training_patches(clouds: Sequence[Mapping], patches_per_cloud: int, patch_size: int, seed: int = 0,
                     progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Training patches of the point filter, drawn from labelled clouds.

    From each cloud, ``patches_per_cloud`` of its covering patches (``seed_patches``), half of them
    among those that hold an artefact, so that artefacts are not too rare in training.

    Args:
        clouds: scan-like dicts of unorganised clouds with labels (``io.clouds.cloud_scan``).
        patches_per_cloud: patches drawn from each cloud (fewer if it has fewer).
        patch_size: points per patch.
        seed: the seed of the patches and of the draw.
        progress: show a progress bar.

    Returns:
        ``(inputs, labels)``: (M, P, 27) float32 inputs of the feature set "both" (coordinates,
        then ``STATISTICS``) and (M, P, 1) float32 labels, 1 keep and 0 artefact.
    """
    rng = np.random.default_rng(seed)
    inputs, labels = [], []
    for i, cloud in enumerate(tqdm(clouds, desc="point features", unit="cloud", disable=not progress)):
        points = np.asarray(cloud["xyz"][0], np.float64)
        label = np.asarray(cloud["label"][0])
        hood = point_features.neighbourhoods(points)
        patches = point_features.seed_patches(hood, patch_size, seed=seed + i)
        has_artefact = (label[patches] == ARTEFACT).any(axis=1)
        with_, without = np.flatnonzero(has_artefact), np.flatnonzero(~has_artefact)
        wanted = min(patches_per_cloud, len(patches))
        rest = min(len(without), wanted - min(len(with_), wanted // 2))  # the other kind fills any shortfall
        chosen = np.concatenate([rng.choice(with_, wanted - rest, replace=False),
                                 rng.choice(without, rest, replace=False)])
        chosen = patches[np.sort(chosen)]
        inputs.append(point_features.patch_inputs(hood, chosen, "both"))
        labels.append(label[chosen][..., None].astype(np.float32))
    return np.concatenate(inputs), np.concatenate(labels)


def select_features(inputs: np.ndarray, feature_set: str) -> np.ndarray:
    """Cut one feature set out of inputs of the set "both", for the feature ablation.

    Args:
        inputs: (..., 27) inputs of the feature set "both".
        feature_set: "both", "coordinates" or "statistics".

    Returns:
        The (..., F) columns of that set, a view of ``inputs``.
    """
    n = len(point_features.COORDINATES)
    return {"both": inputs, "coordinates": inputs[..., :n], "statistics": inputs[..., n:]}[feature_set]
