"""PointNet or PointNet++ as the point filter's network, trained and measured side by side.

    python benchmarks/point_filter_networks.py [--epochs 3] [--share 0.3] [--realscans DIR]
    PCFILTER_FAST=1 python benchmarks/point_filter_networks.py

Both networks learn from the same patches of the point filter's recipe (`recipes.point_filter`: the
mixed simulated scans, every density, the feature set "both"), with the same focal loss, schedule,
epochs and seed, on the same random share of the patches (the recipe's ablation runs: 30% for 3
epochs by default). Each one's threshold is chosen on the simulated validation clouds by the
recipe's rule. Then, for each network and for SOR and ROR tuned on the same validation clouds: mean
IoU and balanced accuracy on the simulated test clouds at each density, the seconds per test cloud,
and, with `--realscans` (labelled PointCleanNet pairs, used for measuring only), the scores and ROC
AUC on real scans. Prints a markdown table and saves it with the raw numbers as JSON in
benchmarks/results/ (fast runs get a `_fast` suffix).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pcfilter_lib import config, runtime

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None, help="epochs of each run (default: the recipe's "
                        "ablation epochs)")
    parser.add_argument("--share", type=float, default=None, help="share of the training patches (default: the "
                        "recipe's ablation share)")
    parser.add_argument("--realscans", type=Path, default=None,
                        help="folder of labelled real scans (name.xyz + name.outliers) to measure on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.realscans is not None and not args.realscans.is_dir():
        parser.error(f"--realscans {args.realscans}: no such folder")
    if args.share is not None and not 0 < args.share <= 1:
        parser.error(f"--share must lie in (0, 1], got {args.share}")
    runtime.setup(seed=args.seed)

    import numpy as np

    from pcfilter_lib.filters.labelled_clouds import compare_on_clouds, labelled_pairs, mean_rows
    from pcfilter_lib.io.files import atomic_write_text
    from pcfilter_lib.recipes import point_filter as recipe
    from pcfilter_lib.viz import markdown_table

    settings = config.choose(full=recipe.FULL, fast=recipe.FAST)
    epochs = args.epochs or settings.compare_epochs
    share = args.share or settings.compare_share
    data = recipe.prepare_data(config.data_dir(), settings, args.seed, progress=True)
    subset = np.sort(np.random.default_rng(args.seed).permutation(len(data.inputs))[:int(len(data.inputs) * share)])
    report = {"fast_mode": config.fast_mode(), "epochs": epochs, "share": share, "patches": int(len(subset)),
              "scans": data.folder.name, "networks": {}}
    filters = {}
    for network in recipe.NETWORKS:
        run = recipe.train_point_filter(data.inputs[subset], data.labels[subset], data.val[1.0], "both", epochs,
                                        batch_size=settings.batch_size, learning_rate=settings.learning_rate,
                                        seed=args.seed, network=network, progress=True)
        filters[network] = run.filter
        report["networks"][network] = {"parameters": int(run.model.count_params()), "threshold": run.threshold,
                                       "training_seconds": round(run.seconds, 1),
                                       "seconds_per_epoch": round(run.seconds / epochs, 1)}
        print(f"{network}: {run.model.count_params()} parameters, {run.seconds:.0f} s of training", flush=True)
    densities = recipe.compare_at_densities(list(filters.values()), data.val, data.test, progress=True)
    for network, point_filter in filters.items():
        clouds = data.test[1.0]
        start = time.perf_counter()
        for cloud in clouds:
            point_filter.keep_mask(cloud)
        report["networks"][network]["seconds_per_test_cloud"] = round((time.perf_counter() - start) / len(clouds), 2)
    report["densities"] = densities
    rows = [[f"{float(f):.0%}", name, f"{m['mean_iou']:.4f}", f"{m['balanced_accuracy']:.4f}"]
            for f, row in densities.items() for name, m in row["test"].items()]
    tables = [str(markdown_table(["density", "filter", "mean IoU (simulated test)", "balanced accuracy"], rows))]
    if args.realscans is not None:
        paths = labelled_pairs(args.realscans)
        candidates = [(f"point filter ({n})", f"threshold {f.threshold:g}", f) for n, f in filters.items()]
        real = compare_on_clouds(paths, candidates)
        report["realscans"] = {"scans": [Path(p).stem for p in paths], "rows": real + mean_rows(real)}
        tables.append(str(markdown_table(["scan", "filter", "balanced accuracy", "mean IoU", "ROC AUC"],
                                         [[r["scan"], r["filter"], f"{r['balanced_accuracy']:.4f}",
                                           f"{r['mean_iou']:.4f}", f"{r['roc_auc']:.4f}"]
                                          for r in report["realscans"]["rows"]])))
    speed = markdown_table(["network", "parameters", "s per epoch", "s per test cloud", "threshold"],
                           [[n, r["parameters"], r["seconds_per_epoch"], r["seconds_per_test_cloud"],
                             f"{r['threshold']:g}"] for n, r in report["networks"].items()])
    text = "\n\n".join([str(speed), *tables]) + "\n"
    print(text)
    suffix = "_fast" if config.fast_mode() else ""
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / f"point_filter_networks{suffix}.json", json.dumps(report, indent=1) + "\n")
    atomic_write_text(args.out / f"point_filter_networks{suffix}.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
