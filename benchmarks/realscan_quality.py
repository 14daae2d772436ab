"""How the filters do on real labelled scans: the shipped point filter against SOR and ROR.

For every PointCleanNet pair in ``--data`` (``name.xyz`` + ``name.outliers``, 1 = outlier) it prints,
per scan and as the mean over scans, balanced accuracy, mean IoU (``nn.metrics.confusion_metrics``,
label 1 = keep), keep-recall, outlier recall and, for the point filter, the ROC AUC of its score
(how well it ranks, whatever the threshold) for:

- the shipped point filter at its model card's threshold;
- the same scores at the threshold of ``point_filter(threshold_rule="balanced")``, the best balanced
  accuracy on simulated validation clouds (``benchmarks/threshold_rule.py``; shown as a check of
  that rule: the real scans chose nothing);
- SOR and ROR with the parameters tuned for unorganised clouds on simulated validation clouds
  (the point filter's card, full density), the ROR radius kept at the same number of point spacings
  (``filters.baselines.tuned_spacing``);
- SOR with Open3D's usual defaults (20 neighbours, std ratio 2.0);
- per-scan oracle SOR and ROR: grid-searched on the scan itself, once for the best mean IoU and once
  for the best balanced accuracy. They are upper bounds for those filters, not results.

Lengths are in units of each cloud's point spacing (the median nearest-neighbour distance). JSON and
markdown go to ``--out``.

    python benchmarks/realscan_quality.py --data DIR [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import time
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from pcfilter_lib import runtime

runtime.setup(seed=0)

import numpy as np

from pcfilter_lib import filters
from pcfilter_lib.bench import timing as bench
from pcfilter_lib.filters.baselines import BaselineFilter, tuned_spacing
from pcfilter_lib.geometry.point_features import neighbourhoods
from pcfilter_lib.io.clouds import cloud_scan, read_pointcleannet
from pcfilter_lib.io.files import atomic_write_text
from pcfilter_lib.io.model_cards import read_model_card
from pcfilter_lib.nn import metrics

OPEN3D_SOR = {"nb_neighbors": 20, "std_ratio": 2.0}  # Open3D's tutorial values
# The oracles' grids; the ROR radius in point spacings.
ORACLE_GRIDS = {"sor": {"nb_neighbors": [5, 10, 20, 40, 80], "std_ratio": [0.5, 1.0, 1.5, 2.0, 3.0, 4.0]},
                "ror": {"nb_points": [1, 2, 4, 8, 16, 32], "radius": [1.5, 2, 3, 4, 6, 8, 12, 16, 24]}}
KEYS = ("balanced_accuracy", "mean_iou", "keep_recall", "outlier_recall", "roc_auc")
NAMES = {"balanced_accuracy": "balanced accuracy", "mean_iou": "mean IoU", "keep_recall": "keep-recall",
         "outlier_recall": "outlier recall", "roc_auc": "ROC AUC"}


def scores(label: np.ndarray, keep: np.ndarray, prob: np.ndarray | None = None) -> dict:
    """The table's numbers for one cloud: a keep mask, and the score it came from for the ROC AUC."""
    values = metrics.evaluate_masks(label, keep.astype(np.float32))
    return {"balanced_accuracy": values["balanced_accuracy"], "mean_iou": values["mean_iou"],
            "keep_recall": values["recall"], "outlier_recall": values["tnr"],
            "roc_auc": metrics.roc_auc(label, prob) if prob is not None and 0 < label.sum() < label.size else None,
            "tp": values["tp"], "fn": values["fn"], "fp": values["fp"], "tn": values["tn"]}


def oracle(cloud: dict, label: np.ndarray, method: str, metric: str) -> tuple[dict, dict]:
    """The grid point of ``ORACLE_GRIDS[method]`` with the best ``metric`` on this very cloud."""
    grid = ORACLE_GRIDS[method]
    best = None
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values, strict=True))
        row = scores(label, BaselineFilter(method, method, params, reference_spacing=1.0).keep_mask(cloud)[0])
        if best is None or row[metric] > best[1][metric]:
            best = params, row
    return best


def table(rows: list[dict], scans: list[str]) -> list[str]:
    lines = ["| scan | filter | setting | " + " | ".join(NAMES[k] for k in KEYS) + " |",
             "|---|---|---|" + "---|" * len(KEYS)]
    for scan in [*scans, "mean"]:
        for row in (r for r in rows if r["scan"] == scan):
            cells = ["-" if row[k] is None else f"{row[k]:.3f}" for k in KEYS]
            lines.append(f"| {scan} | {row['filter']} | {row['setting']} | " + " | ".join(cells) + " |")
    return lines


def setting(params: dict, spacings: bool = False) -> str:
    """Parameters as text; ``spacings``: the radius is in point spacings."""
    return ", ".join(f"{k} {v:.3g}" + " spacings" * (spacings and k == "radius") for k, v in params.items())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder of name.xyz + name.outliers pairs")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for realscan_quality.*")
    args = parser.parse_args(argv)
    pairs = sorted(p for p in args.data.glob("*.xyz") if p.with_suffix(".outliers").is_file()) \
        if args.data.is_dir() else []
    if not pairs:
        raise SystemExit(f"realscan_quality: {args.data} holds no name.xyz + name.outliers pairs; get the real scans "
                         "with data_scripts/download_realscans.py")
    start = time.perf_counter()

    point_filter = filters.point_filter()
    balanced = filters.point_filter(threshold_rule="balanced").threshold
    card = read_model_card(filters.SHIPPED_POINT_MODEL)
    tuned = {m: card.details["densities"]["1.0"]["baselines"][m]["params"] for m in ("sor", "ror")}
    reference = tuned_spacing(filters.SHIPPED_POINT_MODEL)  # the spacing the tuned radius was chosen at
    in_spacings = {**tuned["ror"], "radius": tuned["ror"]["radius"] / reference}
    fixed = [("SOR, tuned on simulated clouds", setting(tuned["sor"]), BaselineFilter("sor", "sor", tuned["sor"])),
             ("ROR, tuned on simulated clouds", setting(in_spacings, spacings=True),
              BaselineFilter("ror", "ror", tuned["ror"], reference_spacing=reference)),
             ("SOR, Open3D defaults", setting(OPEN3D_SOR), BaselineFilter("sor", "sor", OPEN3D_SOR))]

    rows, clouds = [], []
    for path in pairs:
        points, outlier = read_pointcleannet(path)
        label = (~outlier).astype(np.uint8)
        cloud = cloud_scan(points, label=label)
        spacing = neighbourhoods(points, 1).spacing
        clouds.append({"scan": path.stem, "points": len(points), "outliers": int(outlier.sum()), "spacing": spacing})
        prob = point_filter.keep_probability_points(points)
        for name, t in (("point filter, card threshold", point_filter.threshold),
                        ("point filter, balanced rule (check)", balanced)):
            rows.append({"scan": path.stem, "filter": name, "setting": f"threshold {t:g}", "threshold": t,
                         **scores(label, prob >= t, prob)})
        for name, text, baseline in fixed:
            rows.append({"scan": path.stem, "filter": name, "setting": text, "params": baseline.scan_params(cloud),
                         **scores(label, baseline.keep_mask(cloud)[0])})
        for method, metric in itertools.product(("sor", "ror"), ("mean_iou", "balanced_accuracy")):
            params, row = oracle(cloud, label, method, metric)
            rows.append({"scan": path.stem, "filter": f"oracle {method.upper()} for {NAMES[metric]} (upper bound)",
                         "setting": setting(params, spacings=True), "params": params, **row})
        print(f"{path.stem}: {len(points)} points, {int(outlier.sum())} outliers ({time.perf_counter() - start:.0f} s)",
              flush=True)

    names = list(dict.fromkeys(r["filter"] for r in rows))
    for name in names:
        found = [r for r in rows if r["filter"] == name]
        same = len({r["setting"] for r in found}) == 1
        rows.append({"scan": "mean", "filter": name, "setting": found[0]["setting"] if same else "per scan",
                     **{k: None if any(r[k] is None for r in found) else float(np.mean([r[k] for r in found]))
                        for k in KEYS}})
    lines = [f"Filters on {len(pairs)} real labelled scans ({', '.join(c['scan'] for c in clouds)}) in "
             f"{args.data.name}/: per scan and the mean over scans. Label 1 = keep; outlier recall = share of false "
             "points removed; ROC AUC of the point filter's P(keep). Oracle rows are tuned on the scan itself "
             "(upper bounds, not results).", "", *table(rows, [c["scan"] for c in clouds]), "",
             f"Measured {datetime.date.today()}, {time.perf_counter() - start:.0f} s."]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "realscan_quality.md", text + "\n")
    atomic_write_text(args.out / "realscan_quality.json", json.dumps(
        {"date": str(datetime.date.today()), "device": bench.device_report(), "data": args.data.name,
         "clouds": clouds, "point_filter": {"model": filters.SHIPPED_POINT_MODEL.name,
                                            "threshold": point_filter.threshold, "balanced_threshold": balanced},
         "tuned_params": tuned, "tuned_spacing_m": reference, "oracle_grids": ORACLE_GRIDS, "rows": rows},
        indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
