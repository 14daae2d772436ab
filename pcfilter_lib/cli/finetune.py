"""``pcfilter finetune``: fine-tune the neighbour filter on a folder of labelled clouds
(``recipes.finetune``) and write it with its model card."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from pcfilter_lib import runtime
from pcfilter_lib.cli.app import Interrupts
from pcfilter_lib.cli.options import MAX_SEED, check_new_outputs, option_range
from pcfilter_lib.filters.neighbours import neighbour_filter
from pcfilter_lib.io.files import check_output_file
from pcfilter_lib.io.labelled import check_both_classes, read_labelled_folder
from pcfilter_lib.io.model_cards import ModelCard, card_path

ROWS = (("ROC AUC", "roc_auc"), ("balanced accuracy", "balanced_accuracy"), ("mean IoU", "mean_iou"),
        ("keep-recall", "recall"), ("artefacts removed", "tnr"), ("threshold", "threshold"))


def _check_options(args: argparse.Namespace) -> tuple[Path, Path]:
    """The model and card paths to write, once every option is known to be usable."""
    option_range("--holdout", args.holdout, 0.05, 0.5)
    option_range("--epochs", args.epochs, 1, 1000, "a whole number")
    option_range("--min-keep", args.min_keep, 0.0, 0.999)
    option_range("--seed", args.seed, 0, MAX_SEED, "a whole number")
    out = Path(args.out)
    if out.suffix.lower() != ".npz":
        raise ValueError(f"--out {out} must end in .npz (a neighbour filter file)")
    card = card_path(out)
    for path in (out, card):
        check_output_file(path, "--out")
    check_new_outputs([("--out", out), ("--out's model card", card)], args.overwrite)
    data = Path(args.data).resolve()
    if out.resolve().parent == data or card.resolve().parent == data:
        raise ValueError(f"--out {out} lies in the --data folder {args.data}; write the model elsewhere")
    return out, card


def _print_table(before: dict, after: dict, held_out: str) -> None:
    print(f"held-out blocks ({held_out}):")
    print(f"  {'':<20} {'before':>8} {'after':>8}")
    for label, key in ROWS:
        print(f"  {label:<20} {before[key]:>8.4f} {after[key]:>8.4f}")


def run(args: argparse.Namespace) -> int:
    """Fine-tune the neighbour filter on labelled clouds; write it and its card."""
    start_clock = time.perf_counter()
    out, card = _check_options(args)
    start = neighbour_filter(args.model)
    clouds = read_labelled_folder(args.data)
    check_both_classes(clouds, f"--data {args.data}")
    points = sum(len(c) for c in clouds)
    runtime.setup(seed=args.seed)  # keep TensorFlow's start-up logs off stderr
    from pcfilter_lib.recipes import common, finetune  # deferred: it loads Keras, after every check above

    settings = finetune.FinetuneSettings(holdout=args.holdout, epochs=args.epochs, min_recall=args.min_keep,
                                         seed=args.seed)
    if not args.quiet:
        print(f"fine-tuning {start.name} on {len(clouds)} cloud{'s' * (len(clouds) != 1)} of {args.data} "
              f"({points} points); {args.holdout:.0%} of each held out", file=sys.stderr, flush=True)
    result = finetune.finetune_neighbour_filter(clouds, start, settings, progress=not args.quiet)
    Interrupts.check()
    result.filter.name = out.stem
    result.filter.save(out)
    held_out = f"{result.after['points']} points, {result.after['artefacts']} artefacts"
    ModelCard(
        model=out.name, target="finetune", load_with="pcfilter_lib.filters.neighbour_filter(path)",
        data={"folder": str(args.data), "clouds": [{"file": c.name, "points": len(c), "artefacts": int((~c.keep).sum())}
                                                   for c in clouds],
              "held_out": "the far end of each cloud's longest axis", "training_points": result.training_points},
        settings={**result.settings, "start": str(args.model or "shipped neighbour filter")},
        test={}, validation=result.after, threshold=result.filter.threshold,
        parameters=int(sum(k.size + b.size for n in result.filter.networks for k, b in zip(n.kernels, n.biases,
                                                                                           strict=True))),
        file_bytes=out.stat().st_size, training_seconds=round(result.seconds, 1),
        wall_seconds=round(time.perf_counter() - start_clock, 1), history=result.runs[-1].history,
        command="pcfilter " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["finetune"] else "pcfilter finetune",
        environment=common.environment(), details={"before": result.before,
                                                     "stage_seconds": [round(r.seconds, 1) for r in result.runs]},
    ).write(card)
    _print_table(result.before, result.after, held_out)
    print(f"wrote {out} and {card.name} ({result.seconds:.0f} s of training); run it with "
          f"'pcfilter filter IN -o OUT --model {out}'")
    return 0
