"""The networks of chapter 4's transfer learning, trained once at the chapter's full-size budget and
shipped with their model cards, and the strategies they are trained with.

The workflow of the chapter: take a classifier pretrained on one task (the shipped PointNet, on
complete clouds sampled from meshes), freeze its feature extractor, put a fresh head on it for the
new task (clouds as a scanner sees them), train the head alone (``train_new_head``), and then
everything at a lower learning rate (``fine_tune``); and compare with a network trained from scratch
on the same data (``train_from_scratch``). The comparisons themselves are experiments
(``experiments.transfer_strategies``: ``compare_strategies`` and the PointNet lab's ``new_classes``).

``train_reference_old_classes`` pretrains the practical's network on the old classes and ships it
(``SHIPPED_OLD_CLASSES``); ``train_reference_scratch`` and ``train_reference_transfer`` train the
chapter's baselines from scratch and the networks its two strategies leave, exactly as the
experiments would. ``shipped_old_classes``, ``shipped_scratch`` and ``shipped_transfer`` load them back
for an experiment where their cards record the same data set and budget: each reads the settings
that its training wrote on the card, so both live here.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras

from pcfilter_lib.data import modelnet, scanned_modelnet
from pcfilter_lib.data.modelnet import Clouds, select_classes, take_fraction
from pcfilter_lib.io.files import sha256
from pcfilter_lib.io.model_cards import WEIGHTS, ModelCard, provenance
from pcfilter_lib.models import pointnet
from pcfilter_lib.models.classify import accuracy, replace_head, set_trainable, train
from pcfilter_lib.models.saved import save_for_inference, shipped_network
from pcfilter_lib.nn.fit import TrainResult
from pcfilter_lib.recipes.common import environment, rounded


@dataclass(frozen=True)
class ExperimentSettings:
    """Sizes of the chapter's PointNet experiments; the caller picks ``FULL`` or ``FAST`` (e.g. with
    ``config.choose(full=transfer.FULL, fast=transfer.FAST)``).

    Attributes:
        num_points: Points sampled per cloud.
        width: PointNet's channel multiplier (1.0 is the paper's network).
        epochs: Epochs of a training from scratch.
        head_epochs: Epochs of training a new head on a frozen extractor.
        tune_epochs: Epochs of fine-tuning every layer after the new head.
        batch_size: Clouds per step.
        limit_per_class: Meshes read per class (None: all).
    """

    num_points: int
    width: float
    epochs: int
    head_epochs: int
    tune_epochs: int
    batch_size: int
    limit_per_class: int | None


FULL = ExperimentSettings(num_points=512, width=0.25, epochs=25, head_epochs=8, tune_epochs=8, batch_size=32,
                          limit_per_class=None)
FAST = ExperimentSettings(num_points=256, width=0.125, epochs=2, head_epochs=2, tune_epochs=1, batch_size=16,
                          limit_per_class=12)
# Chapter 4 at full size: fewer epochs than FULL (the reference experiment of benchmarks/pointnet_transfer.py).
CHAPTER = replace(FULL, epochs=7, head_epochs=4, tune_epochs=4)
# The practical's network, pretrained once on the first half of the classes at CHAPTER's budget.
SHIPPED_OLD_CLASSES = WEIGHTS / "pointnet_old_classes.keras"
# The chapter's networks trained from scratch, once, at CHAPTER's budget: the baselines of its two
# comparisons (task "scans": a share of the scanned set's training clouds; "newclasses": the practical's).
SCRATCH_BASELINES = (("scans", 0.1), ("scans", 1.0), ("newclasses", 1.0))
# The same tasks and shares, learnt by the two transfer strategies from the pretrained network: the new
# head and the fine-tuned network of each, shipped (``transfer_path``) from one run at CHAPTER's budget.
TRANSFER_RUNS = SCRATCH_BASELINES


def train_new_head(pretrained: Callable[[], keras.Model], num_classes: int, subset: Clouds, val_set: Clouds | None,
                   epochs: int, batch_size: int = 32, seed: int = 0, bars: bool = False) -> TrainResult:
    """``compare_strategies``' first strategy: a fresh head for ``num_classes`` on the frozen feature
    extractor of a fresh copy of the pretrained network (``pretrained()``, ``replace_head``), the head
    alone trained for ``epochs``."""
    keras.utils.set_random_seed(seed)
    model = replace_head(pretrained(), num_classes)
    return train(model, subset, val_set, epochs, batch_size, seed=seed, progress=bars)


def fine_tune(model: keras.Model, subset: Clouds, val_set: Clouds | None, epochs: int, batch_size: int = 32,
              learning_rate: float = 1e-4, seed: int = 0, bars: bool = False) -> TrainResult:
    """``compare_strategies``' second strategy, after the first: every layer of ``model`` but batch norm
    unfrozen and trained on (in place) for ``epochs`` at a low ``learning_rate``."""
    set_trainable(model, True)
    return train(model, subset, val_set, epochs, batch_size, learning_rate, seed=seed + 1, progress=bars)


def train_from_scratch(build: Callable[[int], keras.Model], train_set: Clouds, val_set: Clouds | None,
                       fraction: float, epochs: int, batch_size: int = 32, seed: int = 0,
                       bars: bool = False) -> TrainResult:
    """``compare_strategies``' third strategy: ``build`` from random weights (seeded), trained on the
    share ``fraction`` of ``train_set`` (``take_fraction``) for ``epochs``."""
    subset = take_fraction(train_set, fraction, seed=seed)
    keras.utils.set_random_seed(seed)
    return train(build(len(train_set.classes)), subset, val_set, epochs, batch_size, seed=seed, progress=bars)


def fresh_copies(network: keras.Model, build: Callable[[int], keras.Model], num_classes: int
                 ) -> Callable[[], keras.Model]:
    """A function returning, at each call, a new ``build(num_classes)`` with ``network``'s weights: the
    ``pretrained`` argument of ``compare_strategies`` for a network held in memory."""
    weights = network.get_weights()

    def fresh_copy() -> keras.Model:
        copy = build(num_classes)
        copy.set_weights(weights)
        return copy

    return fresh_copy


def practical_classes(classes) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The practical's old classes (the first half, which the network is pretrained on) and new ones."""
    classes = tuple(classes)
    return classes[:len(classes) // 2], classes[len(classes) // 2:]


def _card_settings(settings: ExperimentSettings, seed: int, **extra) -> dict:
    """What the card of a ``build_practical`` network trained at ``settings``' budget records: the budget
    but the transfer phases' epochs, then ``extra``, the momentum, the validation share and the seed."""
    kept = {key: value for key, value in asdict(settings).items() if key not in ("head_epochs", "tune_epochs")}
    return {**kept, **extra, "momentum": 0.9, "validation_fraction": 0.1, "seed": seed}


def old_classes_settings(settings: ExperimentSettings, old_classes, seed: int = 0) -> dict:
    """What the practical's pretrained network's card records as its settings."""
    return _card_settings(settings, seed, old_classes=list(old_classes))


def build_practical(settings: ExperimentSettings) -> Callable[[int], keras.Model]:
    """The practical's PointNet for a number of classes (batch-norm momentum 0.9)."""
    return lambda num_classes: pointnet.build_pointnet(num_classes, width=settings.width, momentum=0.9)


def train_reference_old_classes(out: str | os.PathLike, data_dir: str | os.PathLike,
                                settings: ExperimentSettings = CHAPTER, modelnet_size: str = "full", seed: int = 0,
                                progress: bool = True) -> ModelCard:
    """Pretrain the practical's network on the old classes as ``new_classes`` does (the same clouds,
    validation split, build and budget) and save ``out/pointnet_old_classes.keras``; returns its card
    (``command`` left for the caller).

    Args:
        out: the output folder.
        data_dir: the data folder holding (or receiving) ModelNet10.
        settings: the chapter's budget (``CHAPTER``, or ``FAST`` with ``modelnet_size="fast"``).
        modelnet_size: size of the procedural stand-in when the real data set is absent.
        seed: the validation split's, the weights' and the batches' seed.
        progress: show progress bars.
    """
    started = time.perf_counter()
    root, kind = modelnet.ensure_dataset(data_dir, modelnet_size, progress=progress)
    split = {name: modelnet.load_split(root, name, settings.num_points, limit_per_class=settings.limit_per_class,
                                      progress=progress) for name in ("train", "test")}
    train_set, val_set = modelnet.split_validation(split["train"], 0.1, seed=seed)
    old, _ = practical_classes(train_set.classes)
    old_train, old_val, old_test = (select_classes(c, old) for c in (train_set, val_set, split["test"]))
    keras.utils.set_random_seed(seed)
    model = build_practical(settings)(len(old))
    run = train(model, old_train, old_val, settings.epochs, settings.batch_size, seed=seed, progress=progress)
    path = save_for_inference(model, Path(out) / SHIPPED_OLD_CLASSES.name)
    return ModelCard(
        model=path.name, target="pointnetoldclasses",
        load_with="import pcfilter_lib.models.pointnet; keras.models.load_model(path)",
        data={"kind": kind, **provenance(root, classes=list(old), train=len(old_train), validation=len(old_val),
                                         test=len(old_test))},
        settings=old_classes_settings(settings, old, seed), test=rounded({"accuracy": accuracy(model, old_test)}, 4),
        validation=rounded({k: v[-1] for k, v in run.history.items() if k.startswith("val_")}, 4),
        parameters=int(model.count_params()), file_bytes=path.stat().st_size,
        training_seconds=round(run.seconds, 1), wall_seconds=round(time.perf_counter() - started, 1),
        history=rounded(run.history, 4), environment=environment())


def shipped_old_classes(root: str | os.PathLike, settings: ExperimentSettings, old_classes, seed: int = 0,
                        path: str | os.PathLike = SHIPPED_OLD_CLASSES) -> tuple[keras.Model, float] | None:
    """The shipped network pretrained on ``old_classes`` and its training seconds, if it learnt from
    the ModelNet10 set in ``root`` (the procedural stand-in of the same version and parameters) at
    this budget; else None (the real data set, fast mode), and ``new_classes`` pretrains its own."""
    found = shipped_network(path, root, old_classes_settings(settings, old_classes, seed),
                            "PointNet pretrained on the old classes")
    return None if found is None else (found[0], found[1].training_seconds)


def scratch_path(task: str, fraction: float, weights: str | os.PathLike = WEIGHTS) -> Path:
    """The file in ``weights`` of the network of ``task`` ("scans" or "newclasses") trained from scratch
    on ``fraction`` of its training clouds."""
    return Path(weights) / f"pointnet_scratch_{task}_{round(fraction * 100)}.keras"


def scratch_settings(settings: ExperimentSettings, classes, fraction: float, seed: int = 0) -> dict:
    """What the card of a network trained from scratch by ``compare_strategies`` records as its settings."""
    return _card_settings(settings, seed, classes=list(classes), fraction=float(fraction))


def shipped_scratch(folder: str | os.PathLike, settings: ExperimentSettings, classes, task: str,
                    seed: int = 0, weights: str | os.PathLike = WEIGHTS) -> Callable[[float], TrainResult | None]:
    """``compare_strategies``' ``scratch_runs`` from the shipped baselines: for a fraction, the network of
    ``task`` (``build_practical(settings)``, the chapter's ``build``) trained from scratch on that share
    of the training clouds of the data set in ``folder``
    (``classes`` of it), with its card's history and seconds, where it learnt from this data set at this
    budget; otherwise None, and the run trains its own (fast mode, the real ModelNet10). ``weights``
    is the folder of the networks (default: the shipped ones). Each network is loaded once: asking
    again for a fraction returns the same run."""
    @functools.cache
    def run(fraction: float) -> TrainResult | None:
        found = shipped_network(scratch_path(task, fraction, weights), folder,
                                scratch_settings(settings, classes, fraction, seed), "PointNet trained from scratch")
        return None if found is None else TrainResult(found[0], found[1].history, found[1].training_seconds)
    return run


def task_clouds(data_dir: str | os.PathLike, task: str, settings: ExperimentSettings = CHAPTER,
                modelnet_size: str = "full", seed: int = 0, progress: bool = False
                ) -> tuple[Path, str, Clouds, Clouds, Clouds]:
    """The clouds of one of the chapter's tasks, as the chapter splits them: "scans" (all ten classes of
    the scanned set) or "newclasses" (the practical's new classes of the complete clouds).

    Returns:
        The data set's folder, its kind ("scanned", "procedural" or "real") and the training, validation
        (a tenth of the training split, drawn with ``seed``) and test clouds.
    """
    if task == "scans":
        root, kind = scanned_modelnet.ensure_dataset(data_dir, modelnet_size, progress=progress), "scanned"
        loaded = {name: scanned_modelnet.load_split(root, name, settings.num_points,
                                                    limit_per_class=settings.limit_per_class)
                  for name in ("train", "test")}
    else:
        root, kind = modelnet.ensure_dataset(data_dir, modelnet_size, progress=progress)
        loaded = {name: modelnet.load_split(root, name, settings.num_points, limit_per_class=settings.limit_per_class,
                                            progress=progress) for name in ("train", "test")}
    train_set, val_set = modelnet.split_validation(loaded["train"], 0.1, seed=seed)
    test_set = loaded["test"]
    if task == "newclasses":
        _, new = practical_classes(train_set.classes)
        train_set, val_set, test_set = (select_classes(c, new) for c in (train_set, val_set, test_set))
    return root, kind, train_set, val_set, test_set


def train_reference_scratch(out: str | os.PathLike, data_dir: str | os.PathLike, task: str, fraction: float,
                            settings: ExperimentSettings = CHAPTER, modelnet_size: str = "full", seed: int = 0,
                            progress: bool = True) -> ModelCard:
    """Train one of the chapter's baselines from scratch as ``compare_strategies`` does (the same clouds,
    share, validation split, build and budget) and save ``out/<scratch_path(task, fraction) name>``;
    returns its card (``command`` left for the caller).

    Args:
        out: the output folder.
        data_dir: the data folder holding (or receiving) ModelNet10 and its scanned variant.
        task: "scans" (all ten classes of the scanned set) or "newclasses" (the practical's new
            classes of the complete clouds).
        fraction: the share of the training clouds, in (0, 1].
        settings: the chapter's budget (``CHAPTER``, or ``FAST`` with ``modelnet_size="fast"``).
        modelnet_size: size of the procedural stand-in when the real data set is absent.
        seed: the validation split's, the share's, the weights' and the batches' seed.
        progress: show progress bars.
    """
    if (task, fraction) not in SCRATCH_BASELINES:
        raise ValueError(f"no chapter baseline {task!r} at {fraction}; they are {SCRATCH_BASELINES}")
    started = time.perf_counter()
    root, kind, train_set, val_set, test_set = task_clouds(data_dir, task, settings, modelnet_size, seed, progress)
    run = train_from_scratch(build_practical(settings), train_set, val_set, fraction, settings.epochs,
                             settings.batch_size, seed, progress)
    path = save_for_inference(run.model, Path(out) / scratch_path(task, fraction).name)
    return ModelCard(
        model=path.name, target=f"pointnetscratch{task}{round(fraction * 100)}",
        load_with="import pcfilter_lib.models.pointnet; keras.models.load_model(path)",
        data={"kind": kind, **provenance(root, classes=list(train_set.classes),
                                         train=len(take_fraction(train_set, fraction, seed=seed)),
                                         validation=len(val_set), test=len(test_set))},
        settings=scratch_settings(settings, train_set.classes, fraction, seed),
        test=rounded({"accuracy": accuracy(run.model, test_set)}, 4),
        validation=rounded({k: v[-1] for k, v in run.history.items() if k.startswith("val_")}, 4),
        parameters=int(run.model.count_params()), file_bytes=path.stat().st_size,
        training_seconds=round(run.seconds, 1), wall_seconds=round(time.perf_counter() - started, 1),
        history=rounded(run.history, 4), environment=environment())


def transfer_path(task: str, fraction: float, strategy: str, weights: str | os.PathLike = WEIGHTS) -> Path:
    """The file in ``weights`` of the network that ``strategy`` ("new head" or "fine-tuned") left for
    ``task`` ("scans" or "newclasses") from ``fraction`` of its training clouds."""
    kinds = {"new head": "head", "fine-tuned": "tuned"}
    if strategy not in kinds:
        raise ValueError(f"no shipped network of the strategy {strategy!r}; there are {tuple(kinds)}")
    return Path(weights) / f"pointnet_{kinds[strategy]}_{task}_{round(fraction * 100)}.keras"


def transfer_settings(settings: ExperimentSettings, classes, fraction: float, seed: int = 0,
                      tune_learning_rate: float = 1e-4) -> dict:
    """What the cards of a transfer run's two networks record as its settings."""
    return _card_settings(settings, seed, classes=list(classes), fraction=float(fraction),
                          head_epochs=settings.head_epochs, tune_epochs=settings.tune_epochs,
                          tune_learning_rate=float(tune_learning_rate))


def _pretrained_entry(path: str | os.PathLike) -> dict:
    """What a transfer run's cards record of the network it started from: its file's name and sha256."""
    return {"model": Path(path).name, "sha256": sha256(path)}


def shipped_transfer(folder: str | os.PathLike, settings: ExperimentSettings, classes, task: str,
                     pretrained: str | os.PathLike, seed: int = 0, weights: str | os.PathLike = WEIGHTS
                     ) -> Callable[[float], tuple[TrainResult, TrainResult] | None]:
    """``compare_strategies``' ``transfer_runs`` from the shipped networks: for a fraction, the new head
    and the fine-tuned network of ``task`` (``classes`` of the data set in ``folder``) with their cards'
    histories and seconds, where both started from the network saved at ``pretrained`` (the same file,
    by its sha256) and learnt from this data set at this budget; otherwise None, and the run trains
    its own (fast mode, the real ModelNet10, another pretrained network). ``weights`` is the folder of
    the networks (default: the shipped ones). Each pair is loaded once."""
    entry = _pretrained_entry(pretrained)

    @functools.cache
    def runs(fraction: float) -> tuple[TrainResult, TrainResult] | None:
        found = []
        for strategy in ("new head", "fine-tuned"):
            network = shipped_network(transfer_path(task, fraction, strategy, weights), folder,
                                      transfer_settings(settings, classes, fraction, seed),
                                      f"PointNet of the strategy {strategy!r}", pretrained=entry)
            if network is None:
                return None
            found.append(TrainResult(network[0], network[1].history, network[1].training_seconds))
        return found[0], found[1]
    return runs


def train_reference_transfer(out: str | os.PathLike, data_dir: str | os.PathLike, task: str, fraction: float,
                             pretrained: tuple[Path, Callable[[], keras.Model]] | None = None,
                             settings: ExperimentSettings = CHAPTER, modelnet_size: str = "full", seed: int = 0,
                             progress: bool = True) -> list[ModelCard]:
    """Run the two transfer strategies of one of the chapter's comparisons as ``compare_strategies`` does
    (the same clouds, share, validation split and budget) and save the new head and the fine-tuned
    network (``transfer_path``); returns their two cards (``command`` left for the caller).

    Args:
        out: the output folder.
        data_dir: the data folder holding (or receiving) ModelNet10 and its scanned variant.
        task: "scans" or "newclasses" (see ``task_clouds``).
        fraction: the share of the training clouds, in (0, 1].
        pretrained: for "scans", the pretrained network's file and a function returning a fresh copy of
            it (the chapter's: the shipped PointNet, ``classifiers.build_from_weights``); for
            "newclasses" None: the practical's network pretrained on the old classes
            (``shipped_old_classes``), which must match this data set and budget.
        settings: the chapter's budget (``CHAPTER``, or ``FAST`` with ``modelnet_size="fast"``).
        modelnet_size: size of the procedural stand-in when the real data set is absent.
        seed: the validation split's, the share's, the weights' and the batches' seed.
        progress: show progress bars.

    Raises:
        ValueError: no such comparison, ``pretrained`` missing for "scans" or given for "newclasses", or
            no shipped network pretrained on the old classes for this data set and budget.
    """
    if (task, fraction) not in TRANSFER_RUNS:
        raise ValueError(f"no chapter transfer run {task!r} at {fraction}; they are {TRANSFER_RUNS}")
    if (pretrained is None) != (task == "newclasses"):
        raise ValueError("give the pretrained network (file, fresh copy) for task 'scans' and none for 'newclasses'")
    started = time.perf_counter()
    root, kind, train_set, val_set, test_set = task_clouds(data_dir, task, settings, modelnet_size, seed, progress)
    if task == "newclasses":  # root holds the complete clouds of every class
        old, _ = practical_classes(modelnet.list_classes(root))
        found = shipped_old_classes(root, settings, old, seed)
        if found is None:
            raise ValueError(f"{SHIPPED_OLD_CLASSES.name} did not learn from this data set at this budget: "
                             "train it first (--target pointnetoldclasses)")
        pretrained = (SHIPPED_OLD_CLASSES, fresh_copies(found[0], build_practical(settings), len(old)))
    path, fresh = pretrained
    subset = take_fraction(train_set, fraction, seed=seed)
    head = train_new_head(fresh, len(train_set.classes), subset, val_set, settings.head_epochs, settings.batch_size,
                          seed, progress)
    cards = [_transfer_card(out, task, fraction, "new head", head, root, kind, subset, val_set, test_set,
                            settings, seed, path, started)]
    tune = fine_tune(head.model, subset, val_set, settings.tune_epochs, settings.batch_size, seed=seed, bars=progress)
    cards.append(_transfer_card(out, task, fraction, "fine-tuned", tune, root, kind, subset, val_set, test_set,
                                settings, seed, path, started))
    return cards


def _transfer_card(out, task: str, fraction: float, strategy: str, run: TrainResult, root, kind: str, subset: Clouds,
                   val_set: Clouds, test_set: Clouds, settings: ExperimentSettings, seed: int, pretrained,
                   started: float) -> ModelCard:
    """Save ``run``'s network (one phase of a transfer run) and describe it."""
    path = save_for_inference(run.model, Path(out) / transfer_path(task, fraction, strategy).name)
    return ModelCard(
        model=path.name, target=f"pointnettransfer{task}{round(fraction * 100)}",
        load_with="import pcfilter_lib.models.pointnet; keras.models.load_model(path)",
        data={"kind": kind, "pretrained": _pretrained_entry(pretrained),
              **provenance(root, classes=list(subset.classes), train=len(subset), validation=len(val_set),
                           test=len(test_set))},
        settings=transfer_settings(settings, subset.classes, fraction, seed),
        test=rounded({"accuracy": accuracy(run.model, test_set)}, 4),
        validation=rounded({k: v[-1] for k, v in run.history.items() if k.startswith("val_")}, 4),
        details={"strategy": strategy}, parameters=int(run.model.count_params()), file_bytes=path.stat().st_size,
        training_seconds=round(run.seconds, 1), wall_seconds=round(time.perf_counter() - started, 1),
        history=rounded(run.history, 4), environment=environment())
