"""Transfer from complete clouds to scanned ones, against training from scratch, measured side by side.

    python benchmarks/pointnet_transfer.py            # full size: 25 epochs from scratch, 8 + 8 for transfer
    PCFILTER_FAST=1 python benchmarks/pointnet_transfer.py

The pretrained model is the shipped PointNet (`pcfilter_lib/weights/pointnet_modelnet10.keras`),
trained on clouds sampled from the complete procedural ModelNet10 meshes; it is rebuilt and its
weights loaded with `load_weights`. The new task is the scanned variant of the same set: one side of
each object, noisy, with artefacts and background (`data_scripts/make_scanned_modelnet.py`, made if
missing). For 10%, 25% and 100% of the scanned training clouds it trains a new head on the frozen
extractor, fine-tunes that model's every layer at a low learning rate, and trains a fresh PointNet
from scratch, and tests all three on the scanned test split. Prints a markdown table (test accuracy
and training seconds per strategy) and saves it with the raw numbers as JSON and markdown in
benchmarks/results/ (fast runs get a `_fast` suffix).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from pcfilter_lib import config, runtime

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    runtime.setup(seed=args.seed)

    from pcfilter_lib.data import modelnet, scanned_modelnet
    from pcfilter_lib.experiments import transfer_strategies
    from pcfilter_lib.io.files import atomic_write_text
    from pcfilter_lib.io.model_cards import read_model_card
    from pcfilter_lib.models import pointnet
    from pcfilter_lib.recipes import transfer
    from pcfilter_lib.recipes.classifiers import SHIPPED, build_from_weights
    from pcfilter_lib.viz import strategy_table

    s = config.choose(full=transfer.FULL, fast=transfer.FAST)
    root = scanned_modelnet.ensure_dataset(config.data_dir(), config.choose(full="full", fast="fast"), progress=True)
    train_all = scanned_modelnet.load_split(root, "train", s.num_points, limit_per_class=s.limit_per_class)
    test = scanned_modelnet.load_split(root, "test", s.num_points, limit_per_class=s.limit_per_class)
    train, val = modelnet.split_validation(train_all, 0.1, seed=args.seed)
    shipped = SHIPPED["pointnet"]
    width = read_model_card(shipped).settings["width"]

    def build(n):  # the pretrained network's architecture, from random weights
        return pointnet.build_pointnet(n, width=width)

    results = transfer_strategies.compare_strategies(
        lambda: build_from_weights(shipped), train, val, test, scratch_epochs=s.epochs, head_epochs=s.head_epochs,
        tune_epochs=s.tune_epochs, batch_size=s.batch_size, build=build, seed=args.seed,
        progress=lambda line: print(line, flush=True))
    table = str(strategy_table(results))
    report = {"pretrained": shipped.name, "data": root.name, "fast_mode": config.fast_mode(),
              "settings": asdict(s), "rows": [{"fraction": r.fraction, "train_clouds": r.train_size,
                                                "strategy": r.strategy, "accuracy": round(r.accuracy, 4),
                                                "seconds": round(r.seconds, 1)} for r in results]}
    print(table)
    stem = "pointnet_transfer" + ("_fast" if config.fast_mode() else "")
    atomic_write_text(RESULTS / f"{stem}.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(RESULTS / f"{stem}.md", table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
