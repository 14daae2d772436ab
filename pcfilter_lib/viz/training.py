"""Matplotlib figures of training runs: a history value per epoch, classifiers' accuracy and loss by
epoch or time, metrics against the decision threshold, and transfer strategies compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from pcfilter_lib.viz.figures import axes_or_new
from pcfilter_lib.viz.tables import by_strategy


def plot_histories(histories: Mapping[str, Mapping[str, Sequence[float]]], key: str, ax=None,
                   ylabel: str | None = None):
    """One curve per training run of a value of its Keras history against the epoch.

    Args:
        histories: run name -> the ``history`` dict of its training (``nn.fit.TrainResult``).
        key: the value to plot, such as "val_mean_iou".
        ax: the matplotlib axes to draw into; None makes a new figure.
        ylabel: label of the y axis; default ``key``.

    Returns:
        The axes.
    """
    ax = axes_or_new(ax)
    for name, history in histories.items():
        values = history[key]
        ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_training_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], elapsed=None, log_loss: bool = True):
    """Validation accuracy and loss of several classifier training runs, the training accuracy dashed.

    Args:
        histories: run name -> its Keras history (``accuracy``, ``loss`` and, if validated,
            ``val_accuracy`` and ``val_loss``).
        elapsed: run name -> the seconds at the end of each epoch, to plot against time rather than
            epochs.
        log_loss: a logarithmic loss axis.

    Returns:
        The matplotlib figure, accuracy on the left and loss on the right.
    """
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    for name, history in histories.items():
        x = np.asarray(elapsed[name]) if elapsed else np.arange(1, len(history["loss"]) + 1)
        (line,) = acc_ax.plot(x, history.get("val_accuracy", history["accuracy"]), "o-", label=f"{name} (validation)")
        acc_ax.plot(x, history["accuracy"], "--", color=line.get_color(), alpha=0.6, label=f"{name} (training)")
        loss_ax.plot(x, history.get("val_loss", history["loss"]), "o-", color=line.get_color(), label=name)
    xlabel = "training time (s)" if elapsed else "epoch"
    acc_ax.set(xlabel=xlabel, ylabel="accuracy", ylim=(0, 1.02))
    loss_ax.set(xlabel=xlabel, ylabel="validation loss")
    if log_loss:
        loss_ax.set_yscale("log")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


# Legend names of the metrics of ``nn.scores.threshold_sweep``: label 1 (keep) is the positive class.
SWEEP_LABELS = {"mean_iou": "mean IoU", "balanced_accuracy": "balanced accuracy",
                "f1": "F1 (kept points)", "recall": "keep-recall (true points kept)",
                "tnr": "artefacts removed (true-negative rate)"}


def plot_threshold_sweep(sweep: Mapping[str, np.ndarray], names: Sequence[str] = ("mean_iou", "balanced_accuracy",
                         "f1", "recall", "tnr"), chosen: float | None = None, ax=None):
    """Metrics of a threshold sweep against the threshold, with the chosen one marked.

    Args:
        sweep: the result of ``nn.scores.threshold_sweep``.
        names: the metrics to draw, each named in the legend as ``SWEEP_LABELS`` has it.
        chosen: a threshold to mark with a dotted line.
        ax: the matplotlib axes to draw into; None makes a new figure.

    Returns:
        The axes.
    """
    ax = axes_or_new(ax)
    for name in names:
        ax.plot(sweep["threshold"], sweep[name], marker=".", label=SWEEP_LABELS.get(name, name))
    if chosen is not None:
        ax.axvline(chosen, color="black", linestyle=":", label=f"chosen threshold {chosen:.2f}")
    ax.set_xlabel("threshold on the keep probability")
    ax.set_ylabel("metric")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_strategies(results):
    """Transfer strategies side by side: test accuracy by share of the training data, and by training time.

    Args:
        results: the ``StrategyResult`` rows of ``experiments.transfer_strategies.compare_strategies``.

    Returns:
        The matplotlib figure.
    """
    fig, (data_ax, time_ax) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    for (strategy, rows), marker in zip(by_strategy(results).items(), "sD^o", strict=False):
        percent = [100 * r.fraction for r in rows]
        accuracy = [r.accuracy for r in rows]
        data_ax.plot(percent, accuracy, marker + "-", label=strategy)
        time_ax.plot([r.seconds for r in rows], accuracy, marker, markersize=8, label=strategy)
        for p, r in zip(percent, rows, strict=True):
            time_ax.annotate(f"{p:.0f}%", (r.seconds, r.accuracy), textcoords="offset points", xytext=(5, 4),
                             fontsize=8)
    percent = sorted({100 * r.fraction for r in results})
    data_ax.set(xscale="log", xlabel="share of the training data (%)", ylabel="test accuracy", ylim=(0, 1.02))
    data_ax.set_xticks(percent, [f"{p:.0f}" for p in percent])
    time_ax.set(xscale="log", xlabel="training time (s)", ylabel="test accuracy", ylim=(0, 1.02))
    for ax in (data_ax, time_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig

