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
from pcfilter_lib.cli.options import MAX_SEED, check_model_path, check_new_outputs, option_range, shipped_names
from pcfilter_lib.filters.neighbours import neighbour_filter
from pcfilter_lib.io.files import atomic_write_with, check_output_file, is_zip_file
from pcfilter_lib.io.labelled import check_both_classes, read_labelled_folder
from pcfilter_lib.io.labelled_scans import folder_is_organised, read_labelled_scans, split_scans
from pcfilter_lib.io.model_cards import ModelCard, card_path, check_model_archive

ROWS = (("ROC AUC", "roc_auc"), ("balanced accuracy", "balanced_accuracy"), ("mean IoU", "mean_iou"),
        ("keep-recall", "recall"), ("artefacts removed", "tnr"), ("threshold", "threshold"))
SUFFIX = {"unet": ".keras", "neighbours": ".npz"}
WHAT = {"unet": "a U-Net file", "neighbours": "a neighbour filter file"}


NETWORKS = ("unet", "neighbours")  # the shipped filters finetune starts from, as --model names them
NAMED = {"unet": "the U-Net", "neighbours": "the neighbour filter"}


def _model_network(model: str | None) -> str | None:
    """The filter a ``--model`` starts from, by its name (``NETWORKS``, as ``filter --model`` names the
    shipped filters) or suffix; None for none given or a suffix of neither."""
    if model is None:
        return None
    if model == "points":
        raise ValueError("--model points is the shipped point filter, which finetune does not fine-tune; it "
                         "fine-tunes the U-Net ('unet' or a .keras file) or the neighbour filter ('neighbours' or a "
                         ".npz file)")
    if model in NETWORKS:
        return model
    return {suffix: network for network, suffix in SUFFIX.items()}.get(Path(model).suffix.lower())


def _network(args: argparse.Namespace) -> str:
    """The filter to fine-tune: ``--network``, else the one ``--model`` starts from, else by the data
    (organised scans: the U-Net; unorganised clouds: the neighbour filter)."""
    started = _model_network(args.model)
    if args.network != "auto":
        return args.network
    data = Path(args.data)
    if data.exists() and not data.is_dir():
        raise NotADirectoryError(f"{data} is a file; --data names a folder of labelled scans or clouds")
    if not data.is_dir():
        raise FileNotFoundError(f"the folder {data} does not exist")
    organised = folder_is_organised(data)
    if started == "unet" and not organised:
        raise ValueError(f"--model {args.model} is a U-Net, which fine-tunes on organised scans, and {data} holds "
                         "unorganised clouds; start from the neighbour filter ('neighbours' or a .npz file), or leave "
                         "out --model")
    return started or ("unet" if organised else "neighbours")


def _check_options(args: argparse.Namespace, network: str) -> tuple[Path, Path, Path | None]:
    """The model and card paths to write, and the model file to start from (None: the shipped
    filter), once every option is known to be usable."""
    option_range("--holdout", args.holdout, 0.05, 0.5)
    option_range("--epochs", args.epochs, 1, 1000, "a whole number")
    if args.steps is not None:
        option_range("--steps", args.steps, 1, 100_000, "a whole number")
    option_range("--min-keep", args.min_keep, 0.0, 0.999)
    option_range("--seed", args.seed, 0, MAX_SEED, "a whole number")
    out = Path(args.out)
    started = _model_network(args.model)
    if out.suffix.lower() != SUFFIX[network]:
        why = "" if args.network != "auto" else (f" (--model {args.model} starts from {NAMED[network]})" if started
                                                  else " (the data are organised scans, which fine-tune the U-Net)"
                                                  if network == "unet" else
                                                  " (the data are unorganised clouds, which fine-tune the neighbour "
                                                  "filter)")
        raise ValueError(f"--out {out} must end in {SUFFIX[network]} ({WHAT[network]}){why}")
    start = None
    if args.model in NETWORKS and args.model != network:
        raise ValueError(f"--model {args.model} is {NAMED[args.model]}, and --network {network} fine-tunes "
                         f"{NAMED[network]}: give --model {network} or {WHAT[network]} ({SUFFIX[network]}), or leave "
                         "out --model")
    if args.model is not None and args.model not in NETWORKS:
        start = check_model_path(args.model, NETWORKS, tuple(SUFFIX.values()))
        if start.suffix.lower() != SUFFIX[network] or not is_zip_file(start):
            raise ValueError(f"--model {start} is not {WHAT[network]} ({SUFFIX[network]}) to start from; give "
                             f"{WHAT[network]}, or {shipped_names((network,))} for the shipped one")
        check_model_archive(start, "--model", f"or give {shipped_names((network,))} to start from the shipped one")
    card = card_path(out)
    for path in (out, card):
        check_output_file(path, "--out")
    check_new_outputs([("--out", out), ("--out's model card", card)], args.overwrite)
    data = Path(args.data).resolve()
    if out.resolve().parent == data or card.resolve().parent == data:
        raise ValueError(f"--out {out} lies in the --data folder {args.data}; write the model elsewhere")
    return out, card, start


def _print_table(before: dict, after: dict, held_out: str) -> None:
    print(f"held-out blocks ({held_out}):")
    print(f"  {'':<20} {'before':>8} {'after':>8}")
    for label, key in ROWS:
        print(f"  {label:<20} {before[key]:>8.4f} {after[key]:>8.4f}")
    print("  the 'after' threshold was chosen on these points, so the figures at it flatter the filter: expect "
          "less on other scans (the ROC AUC needs no threshold)")


def _command() -> str:
    return "pcfilter " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["finetune"] else "pcfilter finetune"


def run(args: argparse.Namespace) -> int:
    """Fine-tune the U-Net or the neighbour filter on labelled scans; write it and its card."""
    start_clock = time.perf_counter()
    network = _network(args)
    out, card, start = _check_options(args, network)
    return (_run_unet if network == "unet" else _run_neighbours)(args, out, card, start, start_clock)


def _run_unet(args: argparse.Namespace, out: Path, card: Path, start_path: Path | None, start_clock: float) -> int:
    """Fine-tune the U-Net on labelled organised scans."""
    scans = read_labelled_scans(args.data)
    split_scans(scans, args.holdout)  # both classes on both sides, checked before TensorFlow starts
    points = sum(int(s["valid"].sum()) for s in scans)
    runtime.setup(seed=args.seed)  # keep TensorFlow's start-up logs off stderr
    from pcfilter_lib.recipes import unet_finetune  # deferred: it loads Keras, after every check above

    start = unet_finetune.load_start(start_path)
    steps = {} if args.steps is None else {"steps": args.steps}  # None: the recipe's own default
    settings = unet_finetune.UNetFinetuneSettings(holdout=args.holdout, layers=args.layers, min_recall=args.min_keep,
                                                  seed=args.seed, **steps)
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
        settings={**result.settings, "start": str(start_path or "shipped U-Net"),
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


def _run_neighbours(args: argparse.Namespace, out: Path, card: Path, start_path: Path | None,
                    start_clock: float) -> int:
    """Fine-tune the neighbour filter on labelled clouds."""
    start = neighbour_filter(start_path)
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
        settings={**result.settings, "start": str(start_path or "shipped neighbour filter")},
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
