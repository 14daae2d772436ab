"""Fine-tuning the U-Net on a real labelled scan, judged on a part of the scan it never saw.

Each organised labelled scan of ``--data`` (``NAME.ptx[.gz]`` + ``NAME.outliers[.gz]``, as
``pcfilter finetune`` reads them, ``io.labelled_scans``) is cut into two halves by image columns, at
the median column of its points. A network is trained on one half and measured on the other, both
ways (``recipes.unet_finetune.finetune_parts``: crops of the training half, the focal loss, the
recipe's steps and learning rate). Each half becomes a scan of its own, so the network sees nothing of
the measured half while it trains.

Rows per direction:

- **shipped**: the shipped U-Net on the measured half, at its card's threshold (no tuning);
- **fine-tuned**: the shipped U-Net trained further on the training half (what ``pcfilter finetune``
  does), once per seed of ``--seeds`` (the crops and their order differ), and the mean over them;
- **from scratch**: a U-Net of the same architecture and channels, trained from random weights the
  same way but at the from-scratch learning rate of ``recipes.unet_filter``, once per seed (which
  also draws its initial weights), and the mean over them.

Every row gives the ROC AUC of P(keep) on the measured half (threshold-free), and the balanced
accuracy and mean IoU at two thresholds: the one ``pcfilter finetune`` would choose with the
measured half as its held-out block (best balanced accuracy there: what ``pcfilter finetune --holdout
0.5`` prints for the left-to-right direction), and one chosen on the training half's own points
(nothing of the measured half used at all). The target: on ``gpu_006``, both ways, ROC AUC >= 0.85
and balanced accuracy >= 0.75.

``apple_03``'s 19 artefacts all lie at its right-hand edge, so the median column leaves none on the
left; it is cut at the median row of its artefacts instead (``halves``). A direction whose training or
measured half holds one class only is reported as such.

    python benchmarks/unet_finetune_real.py [--data DIR] [--out DIR] [--steps N] [--crop PX] [--batch-size B]
                                            [--seeds S ...]
                                            [--scans NAME ...]

``--data`` defaults to ``<data folder>/realscans/organised``. The scans are never copied; only the
results are written, to ``benchmarks/results/unet_finetune_real.{json,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from pcfilter_lib import config, runtime

runtime.setup(seed=0)

import keras  # noqa: E402 (after runtime.setup, which quiets TensorFlow's start)

from pcfilter_lib.filters.pixels import UNetFilter, unet_filter
from pcfilter_lib.io.labelled_scans import part, read_labelled_scan
from pcfilter_lib.io.ptx import is_ptx, label_path, stem_of
from pcfilter_lib.labels import ARTEFACT
from pcfilter_lib.models.unet import build_unet
from pcfilter_lib.recipes.common import environment
from pcfilter_lib.recipes.finetune import summary
from pcfilter_lib.recipes.unet_filter import UNET
from pcfilter_lib.recipes.unet_finetune import UNetFinetuneSettings, balanced_threshold, finetune_parts, scores_of

RESULTS = Path(__file__).resolve().parent / "results"
TARGET = {"roc_auc": 0.85, "balanced_accuracy": 0.75}
SCRATCH_LEARNING_RATE = 2e-3  # recipes.unet_filter.train_filter's default


def halves(scan: dict) -> dict:
    """The scan's two halves: {"left", "right"}, its points left of, and at or right of, the median
    column of its points; ``cut`` says where. Where one of them holds no artefact (``apple_03``'s all
    lie at its right-hand edge), the scan is cut instead into "top" and "bottom" at the median row of
    its artefacts, the only cut that leaves artefacts on both sides to train on and to measure."""
    valid, artefact = scan["valid"], scan["valid"] & (scan["label"] == ARTEFACT)
    median = float(np.median(np.nonzero(valid)[1]))
    left = valid & (np.arange(valid.shape[1])[None, :] < median)
    if (artefact & left).any() and (artefact & ~left).any():
        return {"sides": ("left", "right"), "left": part(scan, left), "right": part(scan, valid & ~left),
                "cut": f"at column {median:.0f}, the median column of its points"}
    row = float(np.median(np.nonzero(artefact)[0]))
    top = valid & (np.arange(valid.shape[0])[:, None] < row)
    return {"sides": ("top", "bottom"), "top": part(scan, top), "bottom": part(scan, valid & ~top),
            "cut": f"at row {row:.0f}, the median row of its artefacts: the median column of its points "
                   f"({median:.0f}) leaves {int((artefact & left).sum())} of its {int(artefact.sum())} artefacts "
                   "on the left"}


def counts(scan: dict) -> dict:
    label = scan["label"][scan["valid"]]
    return {"points": int(label.size), "artefacts": int((label == ARTEFACT).sum())}


def scratch_unet(channels: int) -> UNetFilter:
    return UNetFilter("scratch", build_unet(input_channels=channels, depth=UNET["depth"], filters=UNET["filters"],
                                            name="unet_filter"))


def scored(scan_filter: UNetFilter, train: dict, held: dict) -> dict:
    """AUC on ``held``, and the confusion figures there at the threshold chosen on ``held`` and at the
    one chosen on ``train``."""
    prob, keep = scores_of(scan_filter, [held])
    on_held = balanced_threshold(prob, keep)
    train_prob, train_keep = scores_of(scan_filter, [train])
    on_train = balanced_threshold(train_prob, train_keep)
    return {"threshold_on_measured_half": _short(summary(prob, keep, on_held)),
            "threshold_on_training_half": _short(summary(prob, keep, on_train))}


def _short(result: dict) -> dict:
    return {key: round(float(result[key]), 4) for key in ("roc_auc", "balanced_accuracy", "mean_iou", "recall", "tnr",
                                                           "threshold")}


def direction(train: dict, held: dict, settings: UNetFinetuneSettings, seeds: list[int]) -> dict:
    """The rows of one direction (the shipped U-Net; fine-tuned and from scratch once per seed, and
    their means), or why it cannot be measured."""
    for name, half in (("training", train), ("measured", held)):
        c = counts(half)
        if c["artefacts"] in (0, c["points"]):
            return {"skipped": f"the {name} half holds {c['artefacts']} artefacts of {c['points']} points"}
    shipped = unet_filter(None)
    rows = {"shipped": {"card_threshold": _short(summary(*scores_of(shipped, [held]), shipped.threshold))}}
    rows["shipped"].update(scored(shipped, train, held))
    for seed in seeds:
        start = time.perf_counter()
        tuned = finetune_parts([train], [held], unet_filter(None), dataclasses.replace(settings, seed=seed))
        rows[f"fine-tuned, seed {seed}"] = {**scored(tuned.filter, train, held),
                                            "seconds": round(time.perf_counter() - start, 1)}
    for seed in seeds:
        start = time.perf_counter()
        keras.utils.set_random_seed(seed)  # the initial weights too
        scratch = finetune_parts([train], [held], scratch_unet(len(shipped.channels)),
                                 dataclasses.replace(settings, learning_rate=SCRATCH_LEARNING_RATE, seed=seed))
        rows[f"from scratch, seed {seed}"] = {**scored(scratch.filter, train, held),
                                              "seconds": round(time.perf_counter() - start, 1)}
    for network in ("fine-tuned", "from scratch"):
        runs = [rows[f"{network}, seed {seed}"] for seed in seeds]
        rows[f"{network}, mean over seeds"] = {
            rule: {key: round(float(np.mean([r[rule][key] for r in runs])), 4) for key in runs[0][rule]}
            for rule in ("threshold_on_measured_half", "threshold_on_training_half")}
    return rows


def target_met(report: dict, rule: str) -> dict[str, bool]:
    """Per network (each seed and the mean over seeds, fine-tuned and from scratch): whether it meets
    ``TARGET`` on gpu_006 both ways, its balanced accuracy taken at the threshold of ``rule``."""
    gpu = report["scans"].get("gpu_006", {}).get("directions", {})
    networks = [f"{network}, {which}" for network in ("fine-tuned", "from scratch")
                for which in [f"seed {seed}" for seed in report["seeds"]] + ["mean over seeds"]]
    return {network: bool(gpu) and all(
        network in row and row[network]["threshold_on_measured_half"]["roc_auc"] >= TARGET["roc_auc"]
        and row[network][rule]["balanced_accuracy"] >= TARGET["balanced_accuracy"] for row in gpu.values())
        for network in networks}


def markdown(report: dict) -> str:
    lines = ["# Fine-tuning the U-Net on one half of a real scan, measured on the other", "",
             f"Generated {report['generated']} by `benchmarks/unet_finetune_real.py` on {report['machine']}. "
             f"Training: {report['settings']['steps']} steps of {report['settings']['batch_size']} crops of "
             f"{report['settings']['crop']} pixels, focal loss, learning rate {report['settings']['learning_rate']} "
             f"(fine-tuned) or {SCRATCH_LEARNING_RATE} (from scratch), seeds {report['seeds']}. "
             "Halves cut at the median column of each scan's points (see below). Target on gpu_006, both ways: "
             "ROC AUC >= "
             f"{TARGET['roc_auc']} and balanced accuracy >= {TARGET['balanced_accuracy']}.", "",
             "BA: balanced accuracy; thr: threshold (P(keep) at or above it is kept). 'measured half': the "
             "threshold chosen there, as `pcfilter finetune` chooses it on its held-out block; 'training half': "
             "chosen on the training half's own points, nothing of the measured half used.", "",
             "| scan | trained on | measured on (points, artefacts) | network | ROC AUC | BA (thr on measured half) | "
             "mean IoU | BA (thr on training half) | thr measured / training | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for scan, entry in report["scans"].items():
        for name, row in entry["directions"].items():
            train, held = name.split("->")
            size = entry["halves"][held]
            where = f"{held} ({size['points']}, {size['artefacts']})"
            if "skipped" in row:
                lines.append(f"| {scan} | {train} | {where} | - | {row['skipped']} | | | | | |")
                continue
            for network, r in row.items():
                m, t = r["threshold_on_measured_half"], r["threshold_on_training_half"]
                lines.append(f"| {scan} | {train} | {where} | {network} | {m['roc_auc']:.3f} | "
                             f"{m['balanced_accuracy']:.3f} | {m['mean_iou']:.3f} | {t['balanced_accuracy']:.3f} | "
                             f"{m['threshold']:.4g} / {t['threshold']:.4g} | {r.get('seconds', '')} |")
    lines.append("")
    for scan, entry in report["scans"].items():
        lines.append(f"- {scan} ({entry['points']['points']} points, {entry['points']['artefacts']} artefacts): cut "
                     f"{entry['cut']}.")
        for name, row in entry["directions"].items():
            if "shipped" in row:
                r = row["shipped"]["card_threshold"]
                lines.append(f"  The shipped U-Net on the {name.split('->')[1]} half at its card's threshold "
                             f"{r['threshold']:.2f}: balanced accuracy {r['balanced_accuracy']:.3f}, keep-recall "
                             f"{r['recall']:.3f}, artefacts removed {r['tnr']:.3f}.")
    for rule, words in (("threshold_on_measured_half", "the threshold chosen on the measured half"),
                        ("threshold_on_training_half", "the threshold chosen on the training half, nothing of the "
                                                       "measured half used")):
        met = target_met(report, rule)
        lines += ["", f"Target met on gpu_006, both ways (ROC AUC, and balanced accuracy at {words}): "
                  + "; ".join(f"{network}: {'yes' if ok else 'no'}" for network, ok in met.items()) + "."]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of organised labelled scans (default <data folder>/realscans/organised)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the results files")
    parser.add_argument("--steps", type=int, default=UNetFinetuneSettings.steps)
    parser.add_argument("--crop", type=int, default=UNetFinetuneSettings.crop, help="side of a training crop")
    parser.add_argument("--batch-size", type=int, default=UNetFinetuneSettings.batch_size, help="crops per step")
    parser.add_argument("--scans", nargs="+", metavar="NAME", default=None,
                        help="only these scans of --data (names without suffixes; default all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds of the runs, fine-tuned and from scratch")
    args = parser.parse_args(argv)
    data = args.data or config.data_dir() / "realscans" / "organised"
    files = sorted(p for p in data.iterdir() if is_ptx(p) and label_path(p) is not None) if data.is_dir() else []
    if args.scans:
        files = [p for p in files if stem_of(p) in args.scans]
    if not files:
        parser.error(f"{data} holds no labelled PTX scans (NAME.ptx[.gz] + NAME.outliers[.gz])")
    settings = UNetFinetuneSettings(steps=args.steps, crop=args.crop, batch_size=args.batch_size)
    report = {"generated": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{environment()['machine']}, {os.cpu_count()} cores",
              "settings": dataclasses.asdict(settings),
              "seeds": args.seeds, "scratch_learning_rate": SCRATCH_LEARNING_RATE, "target": TARGET, "scans": {}}
    for path in files:
        scan = read_labelled_scan(path)
        parts = halves(scan)
        first, second = parts["sides"]
        entry = {"points": counts(scan), "cut": parts["cut"],
                 "halves": {side: counts(parts[side]) for side in parts["sides"]}, "directions": {}}
        for train, held in ((first, second), (second, first)):
            entry["directions"][f"{train}->{held}"] = direction(parts[train], parts[held], settings, args.seeds)
            print(stem_of(path), f"{train}->{held}", json.dumps(entry["directions"][f"{train}->{held}"]), flush=True)
        report["scans"][stem_of(path)] = entry
    report["target_met"] = target_met(report, "threshold_on_measured_half")
    report["target_met_threshold_on_training_half"] = target_met(report, "threshold_on_training_half")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "unet_finetune_real.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "unet_finetune_real.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
