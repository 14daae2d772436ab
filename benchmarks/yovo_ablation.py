"""Chapter 7's ablation at full size, run once and recorded for the book.

Trains the seven networks of ``experiments.yovo_study.VARIANTS`` (the reference YOVO, the same from
another seed, and one change each) on the full-size chapter's images with its budget
(``CHAPTER_FULL``), exactly as the chapter's ``ablate`` does, and writes the record
(``ablation_record``: recipe, data set, variants, seed, and each network's history, training seconds,
threshold and IoUs) with the date and the machine to ``benchmarks/results/yovo_ablation.{json,md}``.
At full size the chapter shows this record where its recipe, images and variants are the chapter's
(``recorded_ablation``) instead of spending minutes training the seven networks again; fast mode
trains its own. The record's seconds are this machine's, so run it on an otherwise idle one.

    python benchmarks/yovo_ablation.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from pcfilter_lib import config, runtime

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results",
                        help="folder of yovo_ablation.json and .md (default: benchmarks/results)")
    args = parser.parse_args(argv)
    if config.fast_mode():
        parser.error("this records the full-size chapter's ablation: run it without PCFILTER_FAST=1")
    runtime.setup(seed=0)
    from pcfilter_lib.data import image_voxels
    from pcfilter_lib.experiments import yovo_study
    from pcfilter_lib.io.files import atomic_write_text
    from pcfilter_lib.recipes import image_to_voxels as i2v
    from pcfilter_lib.timing.clock import cpu_name

    recipe = yovo_study.CHAPTER_FULL
    folder = i2v.ensure_dataset(config.data_dir(), recipe, progress=True)
    splits = [image_voxels.load_split(folder, split) for split in image_voxels.SPLITS]
    results = yovo_study.ablate(recipe, *splits, yovo_study.VARIANTS, progress=True)
    record = {"measured": datetime.now(UTC).isoformat(timespec="seconds"), "machine": cpu_name(),
              "cpu_cores": os.cpu_count(), **yovo_study.ablation_record(results, recipe, folder, yovo_study.VARIANTS)}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "yovo_ablation.json", json.dumps(record, indent=1) + "\n")
    lines = ["# Chapter 7's ablation at full size", "",
             f"Measured {record['measured']} on {record['cpu_cores']} cores of {record['machine']}; "
             f"{len(splits[0])} training images, {recipe.epochs} epochs in batches of {recipe.batch_size}; "
             "benchmarks/yovo_ablation.py.", "",
             "| network | weights | training (s) | s per epoch | threshold | test IoU |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.name} | {r.parameters:,} | {r.seconds:.1f} | {r.seconds_per_epoch:.1f} | {r.threshold} | "
              f"{r.test_iou:.3f} |" for r in results]
    atomic_write_text(args.out / "yovo_ablation.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
