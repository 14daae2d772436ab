"""Chapter 4's transfer-learning experiments: three ways to learn a task from a pretrained PointNet,
compared at several shares of the training clouds (``compare_strategies``), and the PointNet lab's
practical of learning new classes (``new_classes``).

The three strategies are those of ``recipes.transfer``: a new head on the frozen feature extractor
(``train_new_head``), that model fine-tuned at a lower learning rate (``fine_tune``), and a network
trained from scratch (``train_from_scratch``). The recipe trains the chapter's full-size networks once
with the very same functions and ships them; the experiments here load them where their cards match
(``recipes.transfer.shipped_scratch``, ``shipped_transfer``, ``shipped_old_classes``) and train the
rest. Every run records its wall-clock time per epoch in its ``TrainResult``, so that accuracy can be
plotted against time (``viz.plot_strategies``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras

from pcfilter_lib.data.modelnet import Clouds, select_classes, take_fraction
from pcfilter_lib.models import pointnet
from pcfilter_lib.models.classify import accuracy, train
from pcfilter_lib.nn.fit import TrainResult
from pcfilter_lib.recipes.transfer import fine_tune, fresh_copies, train_from_scratch, train_new_head

STRATEGIES = ("new head", "fine-tuned", "from scratch")


@dataclass
class StrategyResult:
    """One strategy at one data fraction of ``compare_strategies``.

    Attributes:
        fraction: The share of the training data used.
        train_size: Clouds trained on.
        strategy: One of ``STRATEGIES``.
        accuracy: Accuracy on the test set.
        seconds: Training seconds; a fine-tuned model's include its new head's.
        runs: The ``TrainResult`` of each training phase (two for "fine-tuned").
    """

    fraction: float
    train_size: int
    strategy: str
    accuracy: float
    seconds: float
    runs: list[TrainResult]


def compare_strategies(pretrained: Callable[[], keras.Model], train_set: Clouds, val_set: Clouds | None,
                       test_set: Clouds, fractions=(0.1, 0.25, 1.0), scratch_epochs: int = 20,
                       head_epochs: int = 5, tune_epochs: int = 5, tune_learning_rate: float = 1e-4,
                       batch_size: int = 32, build: Callable[[int], keras.Model] | None = None, seed: int = 0,
                       progress: Callable[[str], object] | None = None, bars: bool = False,
                       scratch_runs: Callable[[float], TrainResult | None] | None = None,
                       transfer_runs: Callable[[float], tuple[TrainResult, TrainResult] | None] | None = None
                       ) -> list[StrategyResult]:
    """Three ways to learn ``train_set``'s classes, for each share of its training clouds.

    - "new head": the pretrained feature extractor, frozen, under a fresh head; the head alone trains
      for ``head_epochs`` (feature-representation transfer, ``train_new_head``);
    - "fine-tuned": that model trained on for ``tune_epochs`` with every layer but batch norm
      unfrozen, at ``tune_learning_rate`` (parameter transfer, ``fine_tune``);
    - "from scratch": a fresh network (``build(num_classes)``) for ``scratch_epochs``.

    Args:
        pretrained: Returns a fresh copy of the pretrained classifier at every call (the new head
            shares the copy's layers, and fine-tuning changes them).
        train_set: The task's training clouds; each fraction is a class-stratified subset of them.
        val_set: Clouds scored after every epoch (None: none).
        test_set: The clouds every model is scored on, once.
        fractions: Shares of ``train_set`` to train on, in (0, 1].
        scratch_epochs, head_epochs, tune_epochs: Epochs of each phase.
        tune_learning_rate: Adam's step size while fine-tuning (low, to keep the pretrained features).
        batch_size: Clouds per step.
        build: Makes the network trained from scratch (default: a full-width PointNet).
        seed: Seed of the subsets, the weights and the batch order.
        progress: Called with a line after each fraction (e.g. ``print``).
        bars: Show a bar over the epochs of every training run.
        scratch_runs: For a fraction, a finished run that stands for training from scratch on it (the
            shipped baseline, ``shipped_scratch``), or None to train here.
        transfer_runs: For a fraction, the finished runs of the new head and of fine-tuning that stand
            for the first two strategies (the shipped ones, ``shipped_transfer``), or None to train here.

    Returns:
        One ``StrategyResult`` per fraction and strategy, fraction by fraction in ``STRATEGIES`` order.
    """
    num_classes = len(train_set.classes)
    build = build or (lambda n: pointnet.build_pointnet(n))
    results = []
    for fraction in fractions:
        subset = take_fraction(train_set, fraction, seed=seed)
        found = transfer_runs(fraction) if transfer_runs else None
        if found is None:
            head = train_new_head(pretrained, num_classes, subset, val_set, head_epochs, batch_size, seed, bars)
            head_accuracy = accuracy(head.model, test_set)
            tune = fine_tune(head.model, subset, val_set, tune_epochs, batch_size, tune_learning_rate, seed, bars)
            tuned_accuracy = accuracy(tune.model, test_set)
        else:
            head, tune = found
            head_accuracy, tuned_accuracy = accuracy(head.model, test_set), accuracy(tune.model, test_set)
        scratch_run = (scratch_runs(fraction) if scratch_runs else None) or train_from_scratch(
            build, train_set, val_set, fraction, scratch_epochs, batch_size, seed, bars)
        row = [StrategyResult(fraction, len(subset), "new head", head_accuracy, head.seconds, [head]),
               StrategyResult(fraction, len(subset), "fine-tuned", tuned_accuracy, head.seconds + tune.seconds,
                              [head, tune]),
               StrategyResult(fraction, len(subset), "from scratch", accuracy(scratch_run.model, test_set),
                              scratch_run.seconds, [scratch_run])]
        results += row
        if progress:
            progress(f"{fraction:.0%} of the data ({len(subset)} clouds): " + ", ".join(
                f"{r.strategy} {r.accuracy:.3f} in {r.seconds:.0f} s" for r in row))
    return results


@dataclass
class NewClassesResult:
    """What ``new_classes`` measured.

    Attributes:
        old_classes: The classes the network was pretrained on.
        new_classes: The classes it then learned.
        pretrain_accuracy: The pretrained network's test accuracy on the old classes.
        pretrain_seconds: Its training time.
        results: ``compare_strategies``' results on the new classes, one fraction.
    """

    old_classes: tuple[str, ...]
    new_classes: tuple[str, ...]
    pretrain_accuracy: float
    pretrain_seconds: float
    results: list[StrategyResult]


def new_classes(train_set: Clouds, val_set: Clouds | None, test_set: Clouds, old_classes, new_classes,
                build: Callable[[int], keras.Model], epochs: int, head_epochs: int, tune_epochs: int,
                batch_size: int = 32, fraction: float = 1.0, seed: int = 0,
                bars: bool = False, pretrained: tuple[keras.Model, float] | None = None,
                scratch_runs: Callable[[float], TrainResult | None] | None = None,
                transfer_runs: Callable[[float], tuple[TrainResult, TrainResult] | None] | None = None
                ) -> NewClassesResult:
    """Retraining with new classes: pretrain ``build(len(old_classes))`` on the old classes for
    ``epochs``, then learn the new classes three ways (``compare_strategies``: a new head on the
    frozen extractor, that model fine-tuned, and ``build(len(new_classes))`` from scratch for
    ``epochs``), each scored on the new classes' test clouds.

    Args:
        train_set, val_set, test_set: Clouds of all the classes (``val_set`` may be None).
        old_classes: The pretraining classes.
        new_classes: The classes learned afterwards; none of them may be an old one.
        build: Makes a fresh classifier for a number of classes.
        epochs: Epochs of the pretraining and of the training from scratch.
        head_epochs, tune_epochs: Epochs of the new head and of fine-tuning.
        batch_size: Clouds per step.
        fraction: Share of the new classes' training clouds to learn from, in (0, 1].
        seed: Seed of the weights, the batch order and the subset.
        bars: Show a bar over the epochs of every training run.
        pretrained: A network already pretrained on the old classes, as ``build`` and ``epochs``
            would train it (``shipped_old_classes``), and its training seconds: used instead of
            pretraining here.
        scratch_runs: As ``compare_strategies``' (on the new classes' clouds).
        transfer_runs: As ``compare_strategies``' (from ``pretrained``, on the new classes' clouds).

    Returns:
        The ``NewClassesResult``.

    Raises:
        ValueError: the two sets of classes overlap or one is empty (before any training).
    """
    old_classes, new_classes = tuple(old_classes), tuple(new_classes)
    if not old_classes or not new_classes or set(old_classes) & set(new_classes):
        raise ValueError(f"old and new classes must be non-empty and disjoint, got {old_classes} and {new_classes}")
    parts = {name: [select_classes(c, classes) if c is not None else None for c in (train_set, val_set, test_set)]
             for name, classes in (("old", old_classes), ("new", new_classes))}
    if pretrained is None:
        keras.utils.set_random_seed(seed)
        network = build(len(old_classes))
        seconds = train(network, *parts["old"][:2], epochs, batch_size, seed=seed, progress=bars).seconds
    else:
        network, seconds = pretrained
    results = compare_strategies(fresh_copies(network, build, len(old_classes)), *parts["new"],
                                 fractions=(fraction,), scratch_epochs=epochs, head_epochs=head_epochs,
                                 tune_epochs=tune_epochs, batch_size=batch_size,
                                 build=build, seed=seed, bars=bars, scratch_runs=scratch_runs,
                                 transfer_runs=transfer_runs)
    return NewClassesResult(old_classes, new_classes, accuracy(network, parts["old"][2]), seconds, results)
