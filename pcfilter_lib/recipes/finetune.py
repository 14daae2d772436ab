"""Fine-tuning the neighbour filter on a few labelled clouds of the user's own scanner.

The simulator cannot know every scanner: on real circuit boards the shipped filter, like every
classical one, separates artefacts little better than chance. A user with a few labelled clouds can
adapt it:

1. Each cloud's neighbour statistics are computed once, from the whole cloud, as at run time.
2. A **held-out block** is set aside in every cloud: the points beyond the ``1 - holdout`` quantile
   along the cloud's longest axis. The block is a piece of space, not a random draw of points: random
   points would have their own neighbours in the training set and flatter the result.
3. The filter's stages are trained further, one after the other, from the shipped (or given) weights
   and standardisation, on the points outside the blocks: the same loss as the shipped filter's
   recipe, Adam with a cosine decay from half its learning rate.
4. The threshold is chosen on the held-out blocks, and the filter is measured there before and after.

The result is a ``NeighbourFilter`` like the shipped one: ``pcfilter filter --model FILE.npz`` runs it
without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import keras
import numpy as np

from pcfilter_lib.filters.neighbours import DenseNetwork, NeighbourFilter, stage_columns
from pcfilter_lib.geometry.neighbour_statistics import NeighbourStatistics, gather, neighbour_statistics
from pcfilter_lib.io.labelled import LabelledCloud, check_both_classes
from pcfilter_lib.nn import scores
from pcfilter_lib.nn.fit import TrainResult
from pcfilter_lib.recipes.common import environment
from pcfilter_lib.recipes.neighbour_filter import export_network, fit_stage, import_network


@dataclass(frozen=True)
class FinetuneSettings:
    """How the filter is fine-tuned.

    Attributes:
        holdout: share of each cloud, along its longest axis, kept aside to choose the threshold.
        epochs: passes over the training points, per stage.
        batch_size: points per step.
        learning_rate: Adam's initial step size (cosine decay to 5%).
        min_recall: share of the held-out true points the chosen threshold must keep (0: the best
            mean IoU, whatever it keeps).
        seed: seed of the shuffling.
    """

    holdout: float = 0.2
    epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 1e-3
    min_recall: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if not 0.05 <= self.holdout <= 0.5:
            raise ValueError(f"the held-out share must lie between 0.05 and 0.5, got {self.holdout}")
        if not 1 <= self.epochs <= 1000:
            raise ValueError(f"epochs must lie between 1 and 1000, got {self.epochs}")
        if not 0 <= self.min_recall < 1:
            raise ValueError(f"the kept share of true points must lie in [0, 1), got {self.min_recall}")


def holdout_block(points: np.ndarray, share: float) -> np.ndarray:
    """(N,) bool: the points beyond the ``1 - share`` quantile along the cloud's longest axis (of x, y, z)."""
    points = np.asarray(points)
    axis = int(np.argmax(np.ptp(points, axis=0)))
    return points[:, axis] > np.quantile(points[:, axis], 1 - share)


@dataclass
class PreparedCloud:
    """A labelled cloud ready to train on: its statistics, labels and held-out block (searched points only)."""

    name: str
    statistics: NeighbourStatistics
    keep: np.ndarray
    held_out: np.ndarray


def prepare(clouds: Sequence[LabelledCloud], neighbours: int, holdout: float) -> list[PreparedCloud]:
    """Each cloud's ``NeighbourStatistics`` with its labels and held-out block, checked to hold both
    classes in the training points and in the held-out blocks."""
    prepared = []
    for cloud in clouds:
        statistics = neighbour_statistics(cloud.points, neighbours)
        searched = statistics.searched
        prepared.append(PreparedCloud(cloud.name, statistics, cloud.keep[searched],
                                      holdout_block(cloud.points, holdout)[searched]))
    for part, where in ((False, "the training part (outside the held-out blocks)"), (True, "the held-out blocks")):
        check_both_classes([LabelledCloud(c.name, np.zeros((0, 3)), c.keep[c.held_out == part]) for c in prepared],
                           where)
    return prepared


def _stage_data(clouds: Sequence[PreparedCloud], networks: Sequence[DenseNetwork], probability_hops: int,
                held_out: bool) -> tuple[np.ndarray, np.ndarray]:
    """The inputs of the stage after ``networks`` and the labels of every cloud's training (or held-out) points."""
    inputs, labels = [], []
    for cloud in clouds:
        rows = np.flatnonzero(cloud.held_out == held_out)
        inputs.append(gather(stage_columns(cloud.statistics, networks, probability_hops), rows))
        labels.append(cloud.keep[rows].astype(np.float32)[:, None])
    return np.concatenate(inputs), np.concatenate(labels)


def held_out_scores(scan_filter: NeighbourFilter, clouds: Sequence[PreparedCloud]) -> tuple[np.ndarray, np.ndarray]:
    """(P(keep), keep) of every cloud's held-out points, the clouds' statistics reused."""
    probs, labels = [], []
    for cloud in clouds:
        columns = stage_columns(cloud.statistics, scan_filter.networks[:-1], scan_filter.probability_hops)
        rows = np.flatnonzero(cloud.held_out)
        probs.append(scan_filter.networks[-1](gather(columns, rows)))
        labels.append(cloud.keep[rows])
    return np.concatenate(probs), np.concatenate(labels)


def summary(prob: np.ndarray, keep: np.ndarray, threshold: float) -> dict:
    """ROC AUC, and the confusion metrics at ``threshold``, of P(keep) against the labels."""
    kept = prob >= threshold
    counts = {"tp": int((kept & keep).sum()), "fn": int((~kept & keep).sum()),
              "fp": int((kept & ~keep).sum()), "tn": int((~kept & ~keep).sum())}
    return {"points": int(len(keep)), "artefacts": int((~keep).sum()), "threshold": float(threshold),
            "roc_auc": scores.roc_auc(keep.astype(np.uint8), prob), **counts, **scores.confusion_metrics(**counts)}


@dataclass
class FinetuneRun:
    """What ``finetune_neighbour_filter`` did.

    Attributes:
        filter: the fine-tuned ``NeighbourFilter`` at the chosen threshold.
        before: ``summary`` of the starting filter on the held-out blocks, at its own threshold.
        after: ``summary`` of the fine-tuned filter there, at the chosen threshold.
        runs: the ``nn.fit.TrainResult`` of each stage.
        training_points: points trained on (outside the held-out blocks).
        settings: the ``FinetuneSettings`` as a dict.
        environment: the versions and machine it ran on (``recipes.common.environment``).
    """

    filter: NeighbourFilter
    before: dict
    after: dict
    runs: list[TrainResult] = field(default_factory=list)
    training_points: int = 0
    settings: dict = field(default_factory=dict)
    environment: dict = field(default_factory=environment)

    @property
    def seconds(self) -> float:
        """Seconds of training proper, all stages."""
        return float(sum(run.seconds for run in self.runs))


def finetune_neighbour_filter(clouds: Sequence[LabelledCloud], start: NeighbourFilter,
                              settings: FinetuneSettings = FinetuneSettings(),
                              progress: bool = False) -> FinetuneRun:
    """Fine-tune ``start`` on labelled clouds and choose its threshold on their held-out blocks.

    Args:
        clouds: the user's labelled clouds (``io.labelled``).
        start: the filter to start from (the shipped one, or one fine-tuned before).
        settings: the ``FinetuneSettings``.
        progress: show a bar per stage.

    Returns:
        The ``FinetuneRun``.

    Raises:
        ValueError: the training points or the held-out blocks hold only one class, or a cloud has
            too few points to search.
    """
    prepared = prepare(clouds, start.neighbours, settings.holdout)
    before = summary(*held_out_scores(start, prepared), start.threshold)
    networks, runs, samples = [], [], 0
    for stage, network in enumerate(start.networks):
        inputs, labels = _stage_data(prepared, networks, start.probability_hops, held_out=False)
        samples = len(inputs)
        keras.utils.set_random_seed(settings.seed + stage)
        model = import_network(network)
        runs.append(fit_stage(model, inputs, labels, settings.epochs, settings.batch_size, settings.learning_rate,
                              progress=progress, desc=f"fine-tuning stage {stage + 1} of {len(start.networks)}"))
        networks.append(export_network(model))
    tuned = NeighbourFilter(networks, neighbours=start.neighbours, probability_hops=start.probability_hops,
                            name=f"{start.name}_finetuned")
    prob, keep = held_out_scores(tuned, prepared)
    tuned.threshold, _ = scores.keep_threshold(keep.astype(np.uint8), prob, settings.min_recall)
    return FinetuneRun(tuned, before, summary(prob, keep, tuned.threshold), runs, samples, asdict(settings))
