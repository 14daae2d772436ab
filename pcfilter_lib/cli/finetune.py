"""``pcfilter finetune``: fine-tune a filter on a folder of labelled scans and write it with its model
card: the U-Net on organised scans (``recipes.unet_finetune``), the neighbour filter on unorganised
clouds (``recipes.finetune``), or whichever ``--network`` names. Every file is read and its labels
checked, and the held-out part checked to hold both classes, before TensorFlow starts."""

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
from pcfilter_lib.io.files import atomic_write_with, check_input_file, check_output_file, is_zip_file
from pcfilter_lib.io.labelled import check_both_classes, read_labelled_folder
from pcfilter_lib.io.labelled_scans import folder_is_organised, read_labelled_scans, split_scans
from pcfilter_lib.io.model_cards import ModelCard, card_path

ROWS = (("ROC AUC", "roc_auc"), ("balanced accuracy", "balanced_accuracy"), ("mean IoU", "mean_iou"),
        ("keep-recall", "recall"), ("artefacts removed", "tnr"), ("threshold", "threshold"))
SUFFIX = {"unet": ".keras", "neighbours": ".npz"}
WHAT = {"unet": "a U-Net file", "neighbours": "a neighbour filter file"}


def _network(args: argparse.Namespace) -> str:
    """The filter to fine-tune: ``--network``, or by the data (organised scans: the U-Net)."""
    if args.network != "auto":
        return args.network
    data = Path(args.data)
    if data.exists() and not data.is_dir():
        raise NotADirectoryError(f"{data} is a file; --data names a folder of labelled scans or clouds")
    if not data.is_dir():
        raise FileNotFoundError(f"the folder {data} does not exist")
    return "unet" if folder_is_organised(data) else "neighbours"


def _check_options(args: argparse.Namespace, network: str) -> tuple[Path, Path]:
    """The model and card paths to write, once every option is known to be usable."""
    option_range("--holdout", args.holdout, 0.05, 0.5)
    option_range("--epochs", args.epochs, 1, 1000, "a whole number")
    option_range("--steps", args.steps, 1, 100_000, "a whole number")
    option_range("--min-keep", args.min_keep, 0.0, 0.999)
    option_range("--seed", args.seed, 0, MAX_SEED, "a whole number")
    out = Path(args.out)
    if out.suffix.lower() != SUFFIX[network]:
        why = "" if args.network != "auto" else (" (the data are organised scans, which fine-tune the U-Net)"
                                                  if network == "unet" else
                                                  " (the data are unorganised clouds, which fine-tune the neighbour "
                                                  "filter)")
        raise ValueError(f"--out {out} must end in {SUFFIX[network]} ({WHAT[network]}){why}")
    if args.model is not None:
        model = check_input_file(args.model, "--model")
        if model.suffix.lower() != SUFFIX[network] or not is_zip_file(model):
            raise ValueError(f"--model {model} is not {WHAT[network]} ({SUFFIX[network]}) to start from")
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


def _command() -> str:
    return "pcfilter " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["finetune"] else "pcfilter finetune"


def run(args: argparse.Namespace) -> int:
    """Fine-tune the U-Net or the neighbour filter on labelled scans; write it and its card."""
    start_clock = time.perf_counter()
    network = _network(args)
    out, card = _check_options(args, network)
    return (_run_unet if network == "unet" else _run_neighbours)(args, out, card, start_clock)


def _run_unet(args: argparse.Namespace, out: Path, card: Path, start_clock: float) -> int:
    """Fine-tune the U-Net on labelled organised scans."""
    scans = read_labelled_scans(args.data)
    split_scans(scans, args.holdout)  # both classes on both sides, checked before TensorFlow starts
    points = sum(int(s["valid"].sum()) for s in scans)
    runtime.setup(seed=args.seed)  # keep TensorFlow's start-up logs off stderr
    from pcfilter_lib.recipes import unet_finetune  # deferred: it loads Keras, after every check above

    start = unet_finetune.load_start(args.model)
    settings = unet_finetune.UNetFinetuneSettings(holdout=args.holdout, steps=args.steps, layers=args.layers,
                                                  min_recall=args.min_keep, seed=args.seed)
    if not args.quiet:
        print(f"fine-tuning the U-Net {start.name} on {len(scans)} scan{'s' * (len(scans) != 1)} of {args.data} "
              f"({points} points); the right-hand {args.holdout:.0%} of each scan's point columns held out",
              file=sys.stderr, flush=True)
    result = unet_finetune.finetune_unet(scans, start, settings, progress=not args.quiet)
    Interrupts.check()
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(out, result.filter.model.save)
    held_out = f"{result.after['points']} points, {result.after['artefacts']} artefacts"
    ModelCard(
        model=out.name, target="unet_finetune", load_with="pcfilter_lib.filters.unet_filter(path)",
        data={"folder": str(args.data),
              "scans": [{"file": s["name"], "points": int(s["valid"].sum()),
                         "artefacts": int((s["valid"] & (s["label"] == 0)).sum())} for s in scans],
              "held_out": f"the right-hand {args.holdout:.0%} of each scan's point columns",
              "training_points": result.training_points},
        settings={**result.settings, "start": str(args.model or "shipped U-Net"),
                  "input_channels": list(result.filter.channels)},
        test={}, validation=result.after, threshold=result.filter.threshold,
        parameters=int(result.filter.model.count_params()), file_bytes=out.stat().st_size,
        training_seconds=round(result.seconds, 1), wall_seconds=round(time.perf_counter() - start_clock, 1),
        history=result.history, command=_command(), environment=result.environment,
        details={"before": result.before},
    ).write(card)
    _print_table(result.before, result.after, held_out)
    print(f"wrote {out} and {card.name} ({result.seconds:.0f} s of training); run it with "
          f"'pcfilter filter IN -o OUT --model {out}'")
    return 0


def _run_neighbours(args: argparse.Namespace, out: Path, card: Path, start_clock: float) -> int:
    """Fine-tune the neighbour filter on labelled clouds."""
    start = neighbour_filter(args.model)
    clouds = read_labelled_folder(args.data)
    check_both_classes(clouds, f"--data {args.data}")
    points = sum(len(c) for c in clouds)
    runtime.setup(seed=args.seed)  # keep TensorFlow's start-up logs off stderr
    from pcfilter_lib.recipes import finetune  # deferred: it loads Keras, after every check above

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
        command=_command(), environment=result.environment,
        details={"before": result.before, "stage_seconds": [round(r.seconds, 1) for r in result.runs]},
    ).write(card)
    _print_table(result.before, result.after, held_out)
    print(f"wrote {out} and {card.name} ({result.seconds:.0f} s of training); run it with "
          f"'pcfilter filter IN -o OUT --model {out}'")
    return 0
