"""Speed of the reference classifiers: inference per cloud and one training step, on one batch.

Chapter 4b compares PointNet, PointNet++ and DGCNN with these figures; the training step runs on
a fresh copy compiled as ``recipes.classifiers`` compiles it, so the model measured is not changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from pcfilter_lib.data import modelnet
from pcfilter_lib.models import classify
from pcfilter_lib.recipes import classifiers
from pcfilter_lib.timing import clock


@dataclass(frozen=True)
class Speed:
    """Seconds a classifier takes on this machine, measured by ``measure_speed``.

    Attributes:
        per_cloud: inference, seconds per cloud (a batch in inference mode, divided by its size).
        per_step: training, seconds per step of ``batch_size`` clouds (forward, backward, update).
        batch_size: clouds per batch.
    """

    per_cloud: float
    per_step: float
    batch_size: int


def measure_speed(model: keras.Model, settings: classifiers.ClassifierRecipe, clouds: modelnet.Clouds,
                  batch_size: int = 32, repeats: int = 5, warmup: int = 2) -> Speed:
    """Time ``model``'s inference and a training step of its architecture on one batch of ``clouds``.

    The training step runs on a fresh copy built from ``settings`` (so ``model`` is not changed),
    compiled as the recipe compiles it; both are timed after ``warmup`` untimed calls (the first
    traces the training step), as the median of ``repeats`` (``clock.time_call``).

    Raises:
        ValueError: fewer clouds than ``batch_size``.
    """
    if len(clouds) < batch_size:
        raise ValueError(f"timing needs a batch of {batch_size} clouds, got {len(clouds)}")
    x, y = clouds.points[:batch_size], clouds.labels[:batch_size]
    infer = clock.time_call(lambda: model(x, training=False), repeats=repeats, warmup=warmup,
                            sync=keras.ops.convert_to_numpy)
    fresh = classify.compile_classifier(classifiers.build_classifier(settings, len(clouds.classes), x.shape[1]),
                                        settings.learning_rate)
    step = clock.time_call(lambda: fresh.train_on_batch(x, y), repeats=repeats, warmup=warmup)
    return Speed(per_cloud=infer.median / batch_size, per_step=step.median, batch_size=batch_size)
