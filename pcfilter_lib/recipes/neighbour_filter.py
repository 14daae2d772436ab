"""Training the neighbour filter (``filters.neighbours``) on the points of simulated scans, and measuring it.

The scans come from two sets, each mixing bins, circuit boards and fruit with a scanner drawn per
scan: the point filter's 640x480 scans (``SCANS_MIXED_FULL``) and 320x240 ones from another seed
(``SCANS_MIXED_SMALL``), so that the filter meets several image sizes, point spacings and noise
levels. Every scan is reduced to its measured points at 100%, 50% and 25% of them
(``point_filter.FRACTIONS``, thinned at random): clouds met in practice are often thinned. Each
point's features come from its whole cloud (``geometry.neighbour_statistics``, exactly what the filter
computes at run time); ``samples_per_cloud`` points of every training cloud, drawn at random, are
what the network learns from.

The network (``build_network``): Keras' ``Normalization`` set to the training features' mean and
variance, two dense ReLU layers and one sigmoid unit, trained with the focal loss (alpha 0.25,
gamma 2) and Adam with a cosine decay. ``export_network`` turns it into the NumPy
``filters.neighbours.DenseNetwork`` the filter runs. The threshold is chosen on the validation
clouds of both sets at every density: the best mean IoU among thresholds keeping at least 99.5% of
the true points, the rule of the point filter's card.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from tqdm.auto import tqdm

from pcfilter_lib.filters.evaluation import evaluate_filter
from pcfilter_lib.filters.neighbours import DenseNetwork, NeighbourFilter
from pcfilter_lib.filters.thresholds import choose_threshold
from pcfilter_lib.geometry.neighbour_statistics import FEATURES, NEIGHBOURS, neighbour_features
from pcfilter_lib.io.clouds import scan_cloud
from pcfilter_lib.io.model_cards import ModelCard
from pcfilter_lib.io.scan import load_scan
from pcfilter_lib.labels import KEEP
from pcfilter_lib.nn import losses
from pcfilter_lib.nn.fit import fit
from pcfilter_lib.recipes.common import (
    SCANS_MIXED_FAST,
    SCANS_MIXED_FULL,
    SCANS_MIXED_SMALL,
    SCANS_MIXED_SMALL_FAST,
    ScanSet,
    TrainedFilter,
    ensure_scans,
    environment,
    provenance,
    rounded,
)
from pcfilter_lib.recipes.point_filter import FRACTIONS, clouds_at_densities, threshold_rules
from pcfilter_lib.simulate.dataset import split_files

HIDDEN = (32, 32)  # widths of the ReLU layers
LOSS = {"name": "focal", "alpha": 0.25, "gamma": 2.0}


def build_network(mean: np.ndarray, variance: np.ndarray, hidden: Sequence[int] = HIDDEN) -> keras.Model:
    """The neighbour filter's network in Keras: standardise, dense ReLU layers, one sigmoid unit.

    Args:
        mean: (F,) the training features' mean.
        variance: (F,) their variance.
        hidden: the widths of the ReLU layers.

    Returns:
        A model from (B, F) features to (B, 1) P(keep).
    """
    inputs = keras.Input((len(mean),), name="features")
    x = keras.layers.Normalization(mean=np.asarray(mean).tolist(), variance=np.asarray(variance).tolist(),
                                   name="standardise")(inputs)
    for i, width in enumerate(hidden):
        x = keras.layers.Dense(width, activation="relu", name=f"dense_{i}")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="keep")(x)
    return keras.Model(inputs, outputs, name="neighbour_filter")


def export_network(model: keras.Model) -> DenseNetwork:
    """The NumPy form of a network of ``build_network`` (the same P(keep) to float32 rounding).

    Raises:
        ValueError: the model is not a standardisation followed by ReLU dense layers and one sigmoid unit.
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not layers or not isinstance(layers[0], keras.layers.Normalization):
        raise ValueError(f"model {model.name!r} does not start with a Normalization layer")
    dense = layers[1:]
    wanted = ["relu"] * (len(dense) - 1) + ["sigmoid"]
    found = [getattr(getattr(layer, "activation", None), "__name__", type(layer).__name__) for layer in dense]
    if not dense or not all(isinstance(layer, keras.layers.Dense) for layer in dense) or found != wanted:
        raise ValueError(f"model {model.name!r} must be Normalization, then Dense layers with activations "
                         f"{wanted}, got {found}")
    standardise = layers[0]
    mean = np.asarray(keras.ops.convert_to_numpy(standardise.mean)).reshape(-1)
    variance = np.asarray(keras.ops.convert_to_numpy(standardise.variance)).reshape(-1)
    scale = np.maximum(np.sqrt(variance), keras.backend.epsilon())  # as Normalization divides
    kernels, biases = zip(*(layer.get_weights() for layer in dense), strict=True)
    return DenseNetwork(mean, scale, list(kernels), list(biases))


@dataclass(frozen=True)
class NeighbourFilterRecipe:
    """Sizes of the neighbour filter's reference run.

    Attributes:
        scans: the simulated scan sets it learns from (each split into train, val and test).
        samples_per_cloud: training points drawn from each cloud (each scan at each density).
        epochs: passes over the training points.
        batch_size: points per step.
        learning_rate: Adam's initial step size (cosine decay to 5%).
        hidden: widths of the ReLU layers.
        neighbours: k of the features.
    """

    scans: tuple[ScanSet, ...]
    samples_per_cloud: int
    epochs: int
    batch_size: int = 1024
    learning_rate: float = 2e-3
    hidden: tuple[int, ...] = HIDDEN
    neighbours: int = NEIGHBOURS


FULL = NeighbourFilterRecipe((SCANS_MIXED_FULL, SCANS_MIXED_SMALL), samples_per_cloud=20000, epochs=8)
FAST = NeighbourFilterRecipe((SCANS_MIXED_FAST, SCANS_MIXED_SMALL_FAST), samples_per_cloud=2000, epochs=2)


def cloud_samples(cloud: Mapping, samples: int, rng: np.random.Generator, k: int = NEIGHBOURS
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The features of a cloud's points (from the whole cloud) and their labels, for up to ``samples``
    points drawn at random.

    Args:
        cloud: a labelled ``io.clouds.cloud_scan`` dict.
        samples: points to keep (all when the cloud has fewer).
        rng: the draw.
        k: neighbours of the features.

    Returns:
        ``(features, labels)``: (S, 24) float32 and (S, 1) float32, 1 keep and 0 artefact.
    """
    valid = np.asarray(cloud["valid"], bool)
    features, searched = neighbour_features(np.asarray(cloud["xyz"])[valid], k)
    labels = (np.asarray(cloud["label"])[valid][searched] == KEEP).astype(np.float32)
    chosen = np.sort(rng.choice(len(features), min(samples, len(features)), replace=False))
    return features[chosen], labels[chosen, None]


@dataclass
class NeighbourData:
    """What the neighbour filter learns from and is measured on (``prepare_data``).

    Attributes:
        folders: the scan sets' folders, by set name (``ScanSet.folder``).
        files: {set name: {split: scan files}}.
        features: (S, 24) float32 training features.
        labels: (S, 1) float32 their labels, 1 keep and 0 artefact.
        val: {set name: {density: validation clouds}}.
        test: {set name: {density: test clouds}}.
        seconds: seconds spent measuring the training clouds' features.
    """

    folders: dict[str, Path]
    files: dict[str, dict[str, list]]
    features: np.ndarray
    labels: np.ndarray
    val: dict[str, dict[float, list]] = field(default_factory=dict)
    test: dict[str, dict[float, list]] = field(default_factory=dict)
    seconds: float = 0.0


def prepare_data(data_dir: str | os.PathLike, settings: NeighbourFilterRecipe = FULL, seed: int = 0,
                 progress: bool = False) -> NeighbourData:
    """The recipe's scans (made if missing), the training samples of their points at every density, and
    the validation and test clouds. Training scans are read one at a time."""
    rng = np.random.default_rng(seed)
    folders, files, features, labels, val, test = {}, {}, [], [], {}, {}
    seconds = 0.0
    for scan_set in settings.scans:
        folder = folders[scan_set.folder] = ensure_scans(data_dir, scan_set, progress)
        files[scan_set.folder] = {split: split_files(folder, split) for split in ("train", "val", "test")}
        train = files[scan_set.folder]["train"]
        for i, path in enumerate(tqdm(train, desc=f"features of {scan_set.folder}", unit="scan",
                                      disable=not progress)):
            scan = load_scan(path, arrays=())
            start = time.perf_counter()
            for fraction in FRACTIONS:
                x, y = cloud_samples(scan_cloud(scan, fraction, seed=seed + i), settings.samples_per_cloud, rng,
                                     settings.neighbours)
                features.append(x)
                labels.append(y)
            seconds += time.perf_counter() - start
        for split, clouds in (("val", val), ("test", test)):
            scans = [load_scan(path, arrays=()) for path in files[scan_set.folder][split]]
            clouds[scan_set.folder] = clouds_at_densities(scans, seed)
    return NeighbourData(folders, files, np.concatenate(features), np.concatenate(labels), val, test, seconds)


def train_neighbour_filter(features: np.ndarray, labels: np.ndarray, val_clouds: Sequence[Mapping],
                           settings: NeighbourFilterRecipe = FULL, seed: int = 0,
                           progress: bool = False) -> TrainedFilter:
    """Train the network on (S, 24) ``features`` and (S, 1) ``labels``, export it to NumPy and choose
    its threshold on ``val_clouds``.

    Returns:
        A ``TrainedFilter``: the Keras model, history and seconds of ``nn.fit.fit``, the
        ``NeighbourFilter`` at the chosen threshold, the threshold sweep and the settings.
    """
    keras.utils.set_random_seed(seed)
    model = build_network(features.mean(axis=0), features.var(axis=0), settings.hidden)
    steps = settings.epochs * int(np.ceil(len(features) / settings.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=losses.BinaryFocalLoss(alpha=LOSS["alpha"], gamma=LOSS["gamma"]))
    run = fit(model, (features, labels), epochs=settings.epochs, batch_size=settings.batch_size, progress=progress,
              desc="neighbour filter")
    neighbour_filter = NeighbourFilter(export_network(model), neighbours=settings.neighbours)
    neighbour_filter.threshold, sweep = choose_threshold(neighbour_filter, val_clouds)
    return TrainedFilter(**vars(run), filter=neighbour_filter, threshold=neighbour_filter.threshold, sweep=sweep,
                         settings={**dataclasses.asdict(settings), "loss": LOSS, "seed": seed})


def train_reference_neighbour_filter(out: str | os.PathLike, data_dir: str | os.PathLike,
                                     settings: NeighbourFilterRecipe = FULL, seed: int = 0,
                                     progress: bool = True) -> ModelCard:
    """Train the shipped neighbour filter and save ``out/neighbour_filter.npz``.

    1. Features of the training scans' points at each density of ``FRACTIONS``, sampled per cloud.
    2. The network trained on them; its threshold chosen on the validation clouds of every set and density.
    3. The filter measured on the validation and test clouds of each set at each density.

    Args:
        out: the output folder (created if needed).
        data_dir: the data folder holding (or receiving) the simulated scans.
        settings: ``FULL`` or ``FAST``, or any ``NeighbourFilterRecipe``.
        seed: seed of the thinning, the samples and the weights.
        progress: show progress bars and a line per stage.

    Returns:
        the model card (its ``command`` is left for the caller to fill in).
    """
    start = time.perf_counter()
    data = prepare_data(data_dir, settings, seed, progress)
    every_val = [cloud for densities in data.val.values() for clouds in densities.values() for cloud in clouds]
    final = train_neighbour_filter(data.features, data.labels, every_val, settings, seed, progress)
    sets = {}
    for name in data.folders:
        sets[name] = {str(fraction): {split: rounded(evaluate_filter(final.filter, clouds[name][fraction]))
                                      for split, clouds in (("validation", data.val), ("test", data.test))}
                      for fraction in FRACTIONS}
        if progress:
            print(f"{name}: test mean IoU " + ", ".join(f"{f:.0%} {sets[name][str(f)]['test']['mean_iou']:.4f}"
                                                      for f in FRACTIONS), flush=True)
    full = {split: rounded(evaluate_filter(final.filter, [c for name in data.folders for c in clouds[name][1.0]]))
            for split, clouds in (("validation", data.val), ("test", data.test))}
    path = final.filter.save(Path(out) / "neighbour_filter.npz")
    return ModelCard(
        model=path.name, target="neighbourfilter", load_with="pcfilter_lib.filters.neighbour_filter(path)",
        data={"sets": [provenance(data.folders[name], scans={split: len(f) for split, f in data.files[name].items()})
                       for name in data.folders],
              "fractions": list(FRACTIONS), "training_points": int(len(data.features)),
              "artefact_share": round(float(1 - data.labels.mean()), 6)},
        settings={**final.settings, "features": list(FEATURES), "scans": [s.folder for s in settings.scans],
                  "threshold_on": "validation clouds of every set at every density"},
        test=full["test"], validation=full["validation"], threshold=final.threshold,
        parameters=int(final.model.count_params()), file_bytes=path.stat().st_size,
        training_seconds=round(final.seconds, 1), wall_seconds=round(time.perf_counter() - start, 1),
        history=final.history, environment=environment(),
        details={"sets": sets, "feature_seconds": round(data.seconds, 1),
                 "full_density": "test and validation pool every set's clouds at 100% of their points",
                 **threshold_rules(final.sweep)})
