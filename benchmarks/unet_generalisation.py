"""The U-Net filter on scans it has never seen: fresh seeds, three image sizes, and mixed scanners.

Sets of ``--scans`` scans each, all from the dataset seed ``--seed`` (the shipped filters learned from
seeds 0 and 1; ``fresh_scans.py`` uses 2026):

- **bins** at 640x480, 320x240 and 1024x768: bins of parts under the simulator's default scanner at
  that image size;
- **mixed**: bins, boards and fruit, each scan with its own drawn scanner (``draw_scanner``).

Every filter runs on the organised scans: the U-Net at its card's threshold, the point filter at its
card's threshold, and the classical filters (SOR, ROR, morphology) with the parameters tuned beside the
U-Net on its validation scans (its card; ROR's radius in point spacings). Prints per set the pooled
mean IoU, balanced accuracy, keep-recall and the share of each artefact kind removed, then the
U-Net's targets: mean IoU >= 0.90, at least 0.10 above the best classical filter, keep-recall >= 0.995,
and at least 80% of mixed pixels removed. JSON and markdown go to ``--out``.

    python benchmarks/unet_generalisation.py [--scans 30] [--seed 2027] [--model FILE.keras]
        [--also NAME=OTHER.keras ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from pcfilter_lib import config, runtime

runtime.setup(seed=0)

from tqdm.auto import tqdm

from pcfilter_lib.filters import point_filter, unet_filter
from pcfilter_lib.filters.baselines import BaselineFilter
from pcfilter_lib.filters.evaluation import evaluate_filter, sets_table
from pcfilter_lib.filters.pixels import SHIPPED_MODEL
from pcfilter_lib.io.files import atomic_write_text
from pcfilter_lib.io.model_cards import read_model_card
from pcfilter_lib.simulate.dataset import GENERATOR, VERSION, make_scan
from pcfilter_lib.simulate.scanner import ScannerConfig
from pcfilter_lib.timing import clock

MIXED = {"bin": 0.4, "board": 0.35, "fruit": 0.25}
# name: (width, height, families, randomise)
SETS = {"bins, 640x480": (640, 480, {"bin": 1.0}, False), "bins, 320x240": (320, 240, {"bin": 1.0}, False),
        "bins, 1024x768": (1024, 768, {"bin": 1.0}, False), "mixed, drawn scanners": (640, 480, MIXED, True)}
TARGETS = {"mean_iou": 0.90, "margin": 0.10, "recall": 0.995, "mixed_removed": 0.80}
CLASSICAL = ("sor", "ror", "morph")


def filters_of(model: Path, also: dict[str, Path]) -> list:
    """The U-Net of ``model``, the other U-Nets of ``also`` (name -> file), the shipped point filter and
    the classical filters tuned beside the U-Net."""
    card = read_model_card(model)
    if card is None or "baselines" not in card.details:
        raise SystemExit(f"unet_generalisation: {model} has no model card with tuned baselines beside it")
    if card.details.get("baseline_lengths") != "point spacings":
        raise SystemExit(f"unet_generalisation: the baselines of {model}'s card are not in point spacings; "
                         "retrain it with data_scripts/train_reference_models.py --target unet")
    classical = [BaselineFilter(m, m, card.details["baselines"][m]["params"], reference_spacing=1.0)
                 for m in CLASSICAL]
    learned = unet_filter(model)
    learned.name = "U-Net"
    others = [unet_filter(path) for path in also.values()]
    for other, name in zip(others, also, strict=True):
        other.name = name
    points = point_filter()
    points.name = "point filter"
    return [learned, *others, points, *classical]


def named_model(text: str) -> tuple[str, Path]:
    """``NAME=FILE.keras`` of ``--also``."""
    name, sep, path = text.partition("=")
    if not sep or not name or not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"expected NAME=FILE.keras with an existing file, got {text!r}")
    return name, Path(path)


def targets(rows: dict) -> dict:
    """Whether the U-Net meets each target on one set's rows."""
    unet = rows["U-Net"]
    best = max(rows[m]["mean_iou"] for m in CLASSICAL)
    mixed = unet["kinds"].get("mixed", {})
    return {"mean_iou": unet["mean_iou"] >= TARGETS["mean_iou"],
            "margin": unet["mean_iou"] >= best + TARGETS["margin"],
            "recall": unet["recall"] >= TARGETS["recall"],
            "mixed_removed": (not mixed.get("points")) or mixed["removed"] >= TARGETS["mixed_removed"],
            "best_classical": best}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # 30 scans a set: adding 20 scans to the first 10 moved the U-Net's margin over the best
    # classical filter by up to 0.017 (seed 2027), as much as some of the gaps it is judged by.
    parser.add_argument("--scans", type=int, default=config.choose(full=30, fast=2), help="scans per set")
    parser.add_argument("--seed", type=int, default=2027, help="dataset seed of the fresh scans")
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL, help="the U-Net filter's .keras file")
    parser.add_argument("--also", type=named_model, action="append", default=[], metavar="NAME=FILE.keras",
                        help="another U-Net to measure beside it (repeatable), e.g. an ablation")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    if args.scans < 1:
        raise SystemExit("unet_generalisation: --scans must be at least 1")
    if not args.model.is_file():
        raise SystemExit(f"unet_generalisation: no model file {args.model}")
    start = time.perf_counter()
    also = dict(args.also)
    candidates = filters_of(args.model, also)
    results, checks = {}, {}
    for name, (width, height, families, randomise) in SETS.items():
        scanner = ScannerConfig(width=width, height=height)
        scans = [make_scan(args.seed, i, scanner, families=families, randomise=randomise)
                 for i in tqdm(range(args.scans), desc=name, unit="scan")]
        results[name] = {f.name: evaluate_filter(f, scans) for f in candidates}
        checks[name] = targets(results[name])
    lines = [f"The U-Net filter {args.model.name} on fresh simulated scans ({GENERATOR} {VERSION}, dataset seed "
             f"{args.seed}, {args.scans} per set). Classical filters tuned on the U-Net's validation scans. "
             "Pooled over each set's scans; label 1 = keep.", "",
             *sets_table(results)]
    lines += ["", "Targets of the U-Net: mean IoU >= 0.90, best classical + 0.10, keep-recall >= 0.995, "
              "mixed pixels removed >= 80%.", "",
              "| scans | mean IoU | margin over best classical | keep-recall | mixed removed |",
              "|---|---|---|---|---|"]
    for name, check in checks.items():
        marks = ["met" if check[k] else "not met" for k in ("mean_iou", "margin", "recall", "mixed_removed")]
        lines.append(f"| {name} | " + " | ".join(marks) + " |")
    lines += ["", f"Measured {datetime.date.today()}, {time.perf_counter() - start:.0f} s."]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "unet_generalisation.md", text + "\n")
    atomic_write_text(args.out / "unet_generalisation.json", json.dumps(
        {"date": str(datetime.date.today()), "device": clock.device_report(), "seed": args.seed,
         "scans_per_set": args.scans, "model": args.model.name, "also": {k: v.name for k, v in also.items()},
         "fast_mode": config.fast_mode(),
         "simulator": {"generator": GENERATOR, "version": VERSION}, "results": results, "targets": checks},
        indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
