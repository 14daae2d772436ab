"""Tables for notebook outputs and scripts: ``Table`` shows as Markdown in Jupyter, as HTML in the
built book and as Markdown text under ``str``; ``filter_table`` and ``strategy_table`` lay out the
results of filter evaluations and of transfer strategies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from pcfilter_lib.labels import ARTEFACT_KINDS, KIND_NAMES


class Table:
    """A table for notebook outputs: Markdown in Jupyter, HTML in the built book (whose Markdown
    renderer, CommonMark, has no tables); cells are written with ``str``."""

    def __init__(self, header: Sequence[str], rows: Sequence[Sequence]):
        self.header = [str(h) for h in header]
        self.rows = [[str(cell) for cell in row] for row in rows]

    def _repr_markdown_(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in self.rows])

    __str__ = _repr_markdown_

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> Table:
    """A ``Table`` to display in a notebook (shown as Markdown in Jupyter and as HTML in the book).

    Args:
        header: the column titles.
        rows: the rows, each as long as ``header``; cells are written with ``str``.

    Returns:
        The ``Table``.
    """
    return Table(header, rows)


FILTER_METRICS = {"mean_iou": "mean IoU", "balanced_accuracy": "bal. acc.", "f1": "F1", "recall": "keep-recall",
                  "false_omission_rate": "FOR"}


def metric_cell(value, digits: int = 4) -> str:
    """A metric for a table: ``digits`` decimals, or "n/a" where it is undefined on the data (NaN,
    or None as JSON stores it)."""
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def filter_table(results: Mapping[str, Mapping], kinds: Sequence[int] = ARTEFACT_KINDS) -> Table:
    """One row per filter: the pooled metrics of ``filters.evaluate_filter`` and the share of each
    artefact kind it removed.

    Args:
        results: filter name -> the dict ``filters.evaluate_filter`` returns (or one stored in a model
            card), holding the keys of ``FILTER_METRICS`` and ``kinds``, the per-kind counts.
        kinds: the artefact kind codes (``labels.ARTEFACT_KINDS``) to give a column each.

    Returns:
        A ``Table`` with the metrics to 4 decimals ("n/a" where the data leave one undefined) and
        the removed shares to 3; "–" where the scans held no point of a kind, or carried no kinds at
        all (unorganised clouds without them).
    """
    names = [KIND_NAMES[code] for code in kinds]
    header = ["filter", *FILTER_METRICS.values()] + [name if len(name) <= 8 else f"{name[:8]}." for name in names]
    rows = []
    for name, result in results.items():
        removed = [result.get("kinds", {}).get(kind, {}).get("removed") for kind in names]
        rows.append([name] + [metric_cell(result[key]) for key in FILTER_METRICS]
                    + ["–" if share is None else f"{share:.3f}" for share in removed])
    return Table(header, rows)


def by_strategy(results) -> dict[str, list]:
    """``experiments.transfer_strategies.StrategyResult`` rows grouped by strategy, in the order they first appear."""
    groups: dict[str, list] = {}
    for r in results:
        groups.setdefault(r.strategy, []).append(r)
    return groups


def strategy_table(results) -> Table:
    """One row per share of the data: each strategy's test accuracy and training seconds.

    Args:
        results: the ``StrategyResult`` rows of ``experiments.transfer_strategies.compare_strategies``.

    Returns:
        A ``Table`` (its Markdown is also what ``str`` gives, for scripts).
    """
    groups = by_strategy(results)
    header = ["data", "clouds"] + [f"{name} {unit}" for name in groups for unit in ("accuracy", "seconds")]
    rows = []
    for fraction in sorted({r.fraction for r in results}):
        cells = [next(r for r in group if r.fraction == fraction) for group in groups.values()]
        rows.append([f"{fraction:.0%}", cells[0].train_size]
                    + [x for r in cells for x in (f"{r.accuracy:.3f}", f"{r.seconds:.0f}")])
    return Table(header, rows)

