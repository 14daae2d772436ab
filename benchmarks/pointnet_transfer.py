"""Transfer learning against training from scratch on ModelNet10, measured side by side.

    python benchmarks/pointnet_transfer.py            # full size (the quality targets refer to it)
    PCFILTER_FAST=1 python benchmarks/pointnet_transfer.py

Pretrains PointNet on the first five classes, then for 10%, 25% and 100% of the other five classes'
training data trains a new head on the frozen feature extractor and, for comparison, a fresh
PointNet from scratch on the same data. Prints a markdown table with the test accuracies, the
training seconds and their ratio, and saves it with the raw numbers as JSON and markdown in
benchmarks/results/ (fast runs get a `_fast` suffix). Data: ModelNet10 from the data folder
(the real one if present, else the procedural stand-in).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from pcfilter_lib import config, runtime

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    runtime.setup(seed=args.seed)
    import keras

    from pcfilter_lib.data import modelnet
    from pcfilter_lib.io.files import atomic_write_text
    from pcfilter_lib.models import pointnet
    from pcfilter_lib.recipes import transfer

    s = config.choose(full=transfer.FULL, fast=transfer.FAST)
    root, kind = modelnet.ensure_dataset(config.data_dir(), config.choose(full="full", fast="fast"), progress=True)
    train_all = modelnet.load_split(root, "train", s.num_points, limit_per_class=s.limit_per_class)
    test = modelnet.load_split(root, "test", s.num_points, limit_per_class=s.limit_per_class)
    train, val = modelnet.split_validation(train_all, 0.1, seed=args.seed)
    old, new = transfer.split_classes(train_all.classes)

    def build(n):
        return pointnet.build_pointnet(n, s.num_points, width=s.width)

    keras.utils.set_random_seed(args.seed)
    base = build(len(old))
    print(f"pretraining on {', '.join(old)}", flush=True)
    pre = transfer.train(base, modelnet.select_classes(train, old), modelnet.select_classes(val, old), s.epochs,
                         s.batch_size, seed=args.seed, progress=True)
    pre_acc = transfer.accuracy(base, modelnet.select_classes(test, old))
    with tempfile.TemporaryDirectory() as tmp:
        path = transfer.save_model(base, Path(tmp) / "pretrained.keras")
        results = transfer.compare_transfer(path, train, val, test, new, scratch_epochs=s.epochs,
                                            head_epochs=s.head_epochs, build=build, seed=args.seed,
                                            progress=lambda line: print(line, flush=True))
    rows = [{"fraction": r.fraction, "train_clouds": r.train_size, "scratch_accuracy": round(r.scratch_accuracy, 4),
             "scratch_seconds": round(r.scratch_seconds, 1), "head_accuracy": round(r.transfer_accuracy, 4),
             "head_seconds": round(r.transfer_seconds, 1),
             "time_ratio": round(r.transfer_seconds / r.scratch_seconds, 3)} for r in results]
    table = ["| data | clouds | from scratch | seconds | new head only | seconds | time ratio |",
             "|---|---|---|---|---|---|---|"]
    table += [f"| {r['fraction']:.0%} | {r['train_clouds']} | {r['scratch_accuracy']:.3f} | {r['scratch_seconds']:.0f} "
              f"| {r['head_accuracy']:.3f} | {r['head_seconds']:.0f} | {r['time_ratio']:.2f} |" for r in rows]
    report = {"data": kind, "fast_mode": config.fast_mode(), "settings": asdict(s), "pretrain_classes": list(old),
              "new_classes": list(new), "pretrain_seconds": round(pre.seconds, 1),
              "pretrain_test_accuracy": round(pre_acc, 4), "rows": rows}
    print("\n".join(table))
    stem = "pointnet_transfer" + ("_fast" if config.fast_mode() else "")
    atomic_write_text(RESULTS / f"{stem}.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(RESULTS / f"{stem}.md", "\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
