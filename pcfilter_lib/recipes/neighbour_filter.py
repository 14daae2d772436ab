"""Training the neighbour filter (``filters.neighbours``) on the points of simulated scans, and measuring it.

The scans come from two sets, each mixing bins, circuit boards and fruit with a scanner drawn per
scan: the point filter's 640x480 scans (``SCANS_MIXED_FULL``) and 320x240 ones from another seed
(``SCANS_MIXED_SMALL``), so that the filter meets several image sizes, point spacings and noise
levels. Every scan is reduced to its measured points at 100%, 50% and 25% of them
(``point_filter.FRACTIONS``, thinned at random): clouds met in practice are often thinned. Each
point's inputs come from its whole cloud (``filters.neighbours.stage_columns``, exactly what the
filter computes at run time); ``samples_per_cloud`` points of every training cloud, drawn at random,
are what a network learns from.

The stages are trained one after the other: the first on the features, each later one on the
features and the P(keep) of the stages before it (exported to NumPy, as the filter runs them), which
takes a fresh pass over the training clouds per stage. Each network (``build_network``): Keras'
``Normalization`` set to its inputs' mean and variance, two dense ReLU layers and one sigmoid unit,
trained with the focal loss (alpha 0.25, gamma 2) and Adam with a cosine decay; ``export_network``
turns it into the NumPy ``filters.neighbours.DenseNetwork``. The threshold is chosen on the
validation clouds of both sets at every density: the best mean IoU among thresholds keeping at least
99.5% of the true points, the rule of the point filter's card.

What the stages bought, on a third of the training scans (mean IoU on the 640x480 test clouds at
full density, threshold chosen as above): 0.902 with one stage on the statistics and their mean over
the neighbours (24 features), 0.914 with their means over 2 and 3 hops too (48), 0.925 with a second
stage reading the first one's P(keep) over 4 hops.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from tqdm.auto import tqdm

from pcfilter_lib.filters.evaluation import evaluate_filter
from pcfilter_lib.filters.neighbours import (
    PROBABILITY_HOPS,
    DenseNetwork,
    NeighbourFilter,
    stage_columns,
    stage_inputs,
)
from pcfilter_lib.filters.thresholds import choose_threshold
from pcfilter_lib.geometry.neighbour_statistics import NEIGHBOURS, gather, neighbour_statistics
from pcfilter_lib.io.clouds import scan_cloud
from pcfilter_lib.io.model_cards import ModelCard, provenance
from pcfilter_lib.io.scan import load_scan
from pcfilter_lib.labels import KEEP
from pcfilter_lib.nn import losses
from pcfilter_lib.nn.fit import TrainResult, fit
from pcfilter_lib.recipes.common import (
    SCANS_MIXED_FAST,
    SCANS_MIXED_FULL,
    SCANS_MIXED_SMALL,
    SCANS_MIXED_SMALL_FAST,
    ScanSet,
    ensure_scans,
    environment,
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


def fit_stage(model: keras.Model, inputs: np.ndarray, labels: np.ndarray, epochs: int, batch_size: int,
              learning_rate: float, progress: bool = False, desc: str = "") -> TrainResult:
    """Train one stage's network on its samples: Adam with a cosine-decayed step (down to 5%) and the
    focal loss of ``LOSS``; used to train the shipped filter and to fine-tune it."""
    steps = epochs * int(np.ceil(len(inputs) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=losses.BinaryFocalLoss(alpha=LOSS["alpha"], gamma=LOSS["gamma"]))
    return fit(model, (inputs, labels), epochs=epochs, batch_size=batch_size, progress=progress, desc=desc)


def import_network(network: DenseNetwork) -> keras.Model:
    """The Keras form of a NumPy ``DenseNetwork`` (``build_network`` with its weights), to train further;
    ``export_network`` gives it back."""
    model = build_network(network.mean, network.scale.astype(np.float64) ** 2,
                          [kernel.shape[1] for kernel in network.kernels[:-1]])
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    for layer, kernel, bias in zip(dense, network.kernels, network.biases, strict=True):
        layer.set_weights([kernel, bias])
    return model


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
        stages: networks, each reading the P(keep) of the one before over ``probability_hops`` hops.
        probability_hops: hops of a stage's P(keep) the next stage reads.
    """

    scans: tuple[ScanSet, ...]
    samples_per_cloud: int
    epochs: int
    batch_size: int = 1024
    learning_rate: float = 2e-3
    hidden: tuple[int, ...] = HIDDEN
    neighbours: int = NEIGHBOURS
    stages: int = 2
    probability_hops: int = PROBABILITY_HOPS


FULL = NeighbourFilterRecipe((SCANS_MIXED_FULL, SCANS_MIXED_SMALL), samples_per_cloud=12000, epochs=8)
FAST = NeighbourFilterRecipe((SCANS_MIXED_FAST, SCANS_MIXED_SMALL_FAST), samples_per_cloud=2000, epochs=2)


def cloud_samples(cloud: Mapping, networks: Sequence[DenseNetwork], samples: int, rng: np.random.Generator,
                  settings: NeighbourFilterRecipe) -> tuple[np.ndarray, np.ndarray]:
    """The inputs of the stage after ``networks`` for a cloud's points (computed from the whole cloud)
    and their labels, for up to ``samples`` points drawn at random.

    Args:
        cloud: a labelled ``io.clouds.cloud_scan`` dict.
        networks: the trained stages before (none for the first stage).
        samples: points to keep (all when the cloud has fewer).
        rng: the draw.
        settings: the recipe (``neighbours``, ``probability_hops``).

    Returns:
        ``(inputs, labels)``: (S, F) float32 (``filters.neighbours.stage_inputs``) and (S, 1)
        float32, 1 keep and 0 artefact.
    """
    valid = np.asarray(cloud["valid"], bool)
    statistics = neighbour_statistics(np.asarray(cloud["xyz"])[valid], settings.neighbours)
    labels = (np.asarray(cloud["label"])[valid][statistics.searched] == KEEP).astype(np.float32)
    chosen = np.sort(rng.choice(len(labels), min(samples, len(labels)), replace=False))
    columns = stage_columns(statistics, networks, settings.probability_hops)
    return gather(columns, chosen), labels[chosen, None]


def stage_samples(clouds: Iterable[Mapping], networks: Sequence[DenseNetwork], settings: NeighbourFilterRecipe,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``cloud_samples`` of every cloud, concatenated; the same points of each cloud at every stage."""
    rng = np.random.default_rng(seed)
    parts = [cloud_samples(cloud, networks, settings.samples_per_cloud, rng, settings) for cloud in clouds]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


@dataclass
class NeighbourRun:
    """What ``train_neighbour_filter`` did.

    Attributes:
        filter: the ``NeighbourFilter`` at the chosen threshold.
        runs: the ``nn.fit.TrainResult`` of each stage (Keras model, history, seconds).
        threshold: the threshold chosen on the validation clouds.
        sweep: the validation scores at every candidate threshold (``choose_threshold``).
        samples: training points of each stage.
        feature_seconds: seconds spent computing the training inputs, all stages.
        settings: the recipe's settings, as a model card records them.
    """

    filter: NeighbourFilter
    runs: list[TrainResult]
    threshold: float
    sweep: dict = field(default_factory=dict)
    samples: int = 0
    feature_seconds: float = 0.0
    settings: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Seconds of training proper, all stages."""
        return float(sum(run.seconds for run in self.runs))


def train_neighbour_filter(clouds: Callable[[], Iterable[Mapping]], val_clouds: Sequence[Mapping],
                           settings: NeighbourFilterRecipe = FULL, seed: int = 0,
                           progress: bool = False) -> NeighbourRun:
    """Train the stages one after the other, export them to NumPy and choose the threshold.

    Args:
        clouds: gives the labelled training clouds afresh for each stage (they are read once per stage).
        val_clouds: labelled validation clouds, for the threshold.
        settings: the recipe.
        seed: seed of the samples and the weights.
        progress: show a bar per stage.

    Returns:
        The ``NeighbourRun``.
    """
    networks, runs, feature_seconds = [], [], 0.0
    for stage in range(settings.stages):
        start = time.perf_counter()
        inputs, labels = stage_samples(clouds(), networks, settings, seed)
        feature_seconds += time.perf_counter() - start
        keras.utils.set_random_seed(seed + stage)
        model = build_network(inputs.mean(axis=0), inputs.var(axis=0), settings.hidden)
        runs.append(fit_stage(model, inputs, labels, settings.epochs, settings.batch_size, settings.learning_rate,
                              progress=progress, desc=f"neighbour filter, stage {stage + 1}"))
        networks.append(export_network(model))
    neighbour_filter = NeighbourFilter(networks, neighbours=settings.neighbours,
                                       probability_hops=settings.probability_hops)
    neighbour_filter.threshold, sweep = choose_threshold(neighbour_filter, val_clouds)
    return NeighbourRun(neighbour_filter, runs, neighbour_filter.threshold, sweep, int(len(inputs)),
                        feature_seconds, {**dataclasses.asdict(settings), "loss": LOSS, "seed": seed})


def training_clouds(files: Sequence[str | os.PathLike], seed: int = 0, progress: bool = False,
                    desc: str = "training clouds") -> Iterable[dict]:
    """Each training scan's measured points at every density of ``FRACTIONS``, read one scan at a time."""
    for i, path in enumerate(tqdm(files, desc=desc, unit="scan", disable=not progress)):
        scan = load_scan(path, arrays=())
        for fraction in FRACTIONS:
            yield scan_cloud(scan, fraction, seed=seed + i)


def train_reference_neighbour_filter(out: str | os.PathLike, data_dir: str | os.PathLike,
                                     settings: NeighbourFilterRecipe = FULL, seed: int = 0,
                                     progress: bool = True) -> ModelCard:
    """Train the shipped neighbour filter and save ``out/neighbour_filter.npz``.

    1. The scans of every set of ``settings.scans`` (made if missing).
    2. Each stage trained on samples of the training clouds' points at each density of ``FRACTIONS``;
       the threshold chosen on the validation clouds of every set and density.
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
    folders = {s.folder: ensure_scans(data_dir, s, progress) for s in settings.scans}
    files = {name: {split: split_files(folder, split) for split in ("train", "val", "test")}
             for name, folder in folders.items()}
    val = {name: clouds_at_densities([load_scan(f, arrays=()) for f in files[name]["val"]], seed) for name in folders}
    test = {name: clouds_at_densities([load_scan(f, arrays=()) for f in files[name]["test"]], seed) for name in folders}

    def train_clouds():
        for name in folders:
            yield from training_clouds(files[name]["train"], seed, progress, f"inputs of {name}")

    every_val = [cloud for densities in val.values() for group in densities.values() for cloud in group]
    run = train_neighbour_filter(train_clouds, every_val, settings, seed, progress)
    sets = {}
    for name in folders:
        sets[name] = {str(fraction): {split: rounded(evaluate_filter(run.filter, clouds[name][fraction]))
                                      for split, clouds in (("validation", val), ("test", test))}
                      for fraction in FRACTIONS}
        if progress:
            print(f"{name}: test mean IoU " + ", ".join(f"{f:.0%} {sets[name][str(f)]['test']['mean_iou']:.4f}"
                                                      for f in FRACTIONS), flush=True)
    full = {split: rounded(evaluate_filter(run.filter, [c for name in folders for c in clouds[name][1.0]]))
            for split, clouds in (("validation", val), ("test", test))}
    path = run.filter.save(Path(out) / "neighbour_filter.npz")
    return ModelCard(
        model=path.name, target="neighbourfilter", load_with="pcfilter_lib.filters.neighbour_filter(path)",
        data={"sets": [provenance(folders[name], scans={split: len(f) for split, f in files[name].items()})
                       for name in folders],
              "fractions": list(FRACTIONS), "training_points": run.samples},
        settings={**run.settings, "scans": [s.folder for s in settings.scans],
                  "inputs": [list(stage_inputs(stage, settings.probability_hops)) for stage in range(settings.stages)],
                  "threshold_on": "validation clouds of every set at every density"},
        test=full["test"], validation=full["validation"], threshold=run.threshold,
        parameters=int(sum(r.model.count_params() for r in run.runs)), file_bytes=path.stat().st_size,
        training_seconds=round(run.seconds, 1), wall_seconds=round(time.perf_counter() - start, 1),
        history=run.runs[-1].history, environment=environment(),
        details={"sets": sets, "input_seconds": round(run.feature_seconds, 1),
                 "stage_histories": [r.history for r in run.runs],
                 "stage_seconds": [round(r.seconds, 1) for r in run.runs],
                 "full_density": "test and validation pool every set's clouds at 100% of their points",
                 **threshold_rules(run.sweep)})
