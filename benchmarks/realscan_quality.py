"""How the filters do on real labelled scans: the point and neighbour filters against SOR and ROR.

For every PointCleanNet pair in ``--data`` (``name.xyz`` + ``name.outliers``, 1 = outlier) it prints,
per scan and as the mean over scans, balanced accuracy, mean IoU (``nn.scores.confusion_metrics``,
label 1 = keep), keep-recall, outlier recall and, for the learned filters, the ROC AUC of their score
(how well it ranks, whatever the threshold) for:

- the point filter (``--model``, default the shipped one) at its model card's threshold;
- the same scores at the threshold of ``point_filter(threshold_rule="balanced")``, the best balanced
  accuracy on its simulated validation clouds (the real scans chose nothing);
- SOR and ROR with the parameters tuned for unorganised clouds on simulated validation clouds
  (the point filter's card, full density), the ROR radius kept at the same number of point spacings
  (``filters.baselines.tuned_spacing``);
- SOR with Open3D's usual defaults (20 neighbours, std ratio 2.0);
- per-scan oracle SOR and ROR: grid-searched on the scan itself, once for the best mean IoU and once
  for the best balanced accuracy. They are upper bounds for those filters, not results;
- the neighbour filter (shipped, trained on simulated scans only) at its card's threshold;
- the neighbour filter fine-tuned on one half of a scan (``recipes.finetune``: the half split along
  the scan's longest axis at its median, its threshold chosen on a held-out block of that half) and
  measured on the other half, both ways, for every scan with at least ``FINETUNE_MIN_ARTEFACTS``
  artefacts in each half. The rows name the half they were measured on.

Lengths are in units of each cloud's point spacing (the median nearest-neighbour distance). JSON and
markdown go to ``--out``.

The filters and the scores are those of ``pcfilter_lib.filters.labelled_clouds``, which chapter 5
uses as well.

    python benchmarks/realscan_quality.py --data DIR [--model FILE.keras] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from pcfilter_lib import runtime

runtime.setup(seed=0)

from pcfilter_lib.filters.baselines import BaselineFilter
from pcfilter_lib.filters.labelled_clouds import (
    SCORES,
    cloud_scores,
    compare_on_clouds,
    labelled_pairs,
    mean_rows,
    reference_filters,
)
from pcfilter_lib.filters.neighbours import neighbour_filter
from pcfilter_lib.filters.points import SHIPPED_POINT_MODEL
from pcfilter_lib.geometry.point_features import neighbourhoods
from pcfilter_lib.io.clouds import cloud_scan, read_pointcleannet
from pcfilter_lib.io.files import atomic_write_text
from pcfilter_lib.io.labelled import LabelledCloud
from pcfilter_lib.recipes.finetune import FinetuneSettings, finetune_neighbour_filter
from pcfilter_lib.timing import clock

FINETUNE_MIN_ARTEFACTS = 100  # a half with fewer artefacts can neither teach nor judge a filter

# The oracles' grids; the ROR radius in point spacings.
ORACLE_GRIDS = {"sor": {"nb_neighbors": [5, 10, 20, 40, 80], "std_ratio": [0.5, 1.0, 1.5, 2.0, 3.0, 4.0]},
                "ror": {"nb_points": [1, 2, 4, 8, 16, 32], "radius": [1.5, 2, 3, 4, 6, 8, 12, 16, 24]}}
NAMES = {"balanced_accuracy": "balanced accuracy", "mean_iou": "mean IoU", "keep_recall": "keep-recall",
         "outlier_recall": "outlier recall", "roc_auc": "ROC AUC"}


def oracle(cloud: dict, label, method: str, metric: str) -> tuple[dict, dict]:
    """The grid point of ``ORACLE_GRIDS[method]`` with the best ``metric`` on this very cloud."""
    grid = ORACLE_GRIDS[method]
    best = None
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values, strict=True))
        row = cloud_scores(label, BaselineFilter(method, method, params, reference_spacing=1.0).keep_mask(cloud)[0])
        if best is None or row[metric] > best[1][metric]:
            best = params, row
    return best


def finetune_rows(name: str, points, outlier, settings: FinetuneSettings | None = None) -> list[dict]:
    """The shipped neighbour filter fine-tuned on each half of a scan and scored on the other half,
    beside the shipped filter on the same half."""
    settings = settings or FinetuneSettings()
    axis = int(np.ptp(points, axis=0).argmax())
    upper = points[:, axis] > np.median(points[:, axis])
    if min(int((outlier & half).sum()) for half in (upper, ~upper)) < FINETUNE_MIN_ARTEFACTS:
        return []
    shipped, rows = neighbour_filter(), []
    for number, (train, test) in enumerate(((~upper, upper), (upper, ~upper)), start=1):
        run = finetune_neighbour_filter([LabelledCloud(f"{name} other half", points[train], ~outlier[train])],
                                        shipped, settings)
        label = (~outlier[test]).astype(np.uint8)
        for filter_name, candidate in (("neighbour filter, fine-tuned on the other half", run.filter),
                                       ("neighbour filter (simulation only)", shipped)):
            prob = candidate.keep_probability_points(points[test])
            rows.append({"scan": f"{name}, half {number}", "filter": filter_name,
                         "setting": f"threshold {candidate.threshold:g}" + (
                             f", {run.seconds:.0f} s of training" if candidate is run.filter else ""),
                         **cloud_scores(label, prob >= candidate.threshold, prob)})
    return rows


def table(rows: list[dict], scans: list[str]) -> list[str]:
    lines = ["| scan | filter | setting | " + " | ".join(NAMES[k] for k in SCORES) + " |",
             "|---|---|---|" + "---|" * len(SCORES)]
    for scan in [*scans, "mean"]:
        for row in (r for r in rows if r["scan"] == scan):
            cells = ["-" if row[k] is None else f"{row[k]:.3f}" for k in SCORES]
            lines.append(f"| {scan} | {row['filter']} | {row['setting']} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder of name.xyz + name.outliers pairs")
    parser.add_argument("--model", type=Path, default=SHIPPED_POINT_MODEL,
                        help="the point filter's .keras file, its model card beside it (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for realscan_quality.*")
    args = parser.parse_args(argv)
    pairs = labelled_pairs(args.data)
    if not pairs:
        raise SystemExit(f"realscan_quality: {args.data} holds no name.xyz + name.outliers pairs; get the real scans "
                         "with data_scripts/download_realscans.py")
    if not args.model.is_file():
        raise SystemExit(f"realscan_quality: no model file {args.model}")
    start = time.perf_counter()
    neighbours = neighbour_filter()
    candidates = [*reference_filters(args.model),
                  ("neighbour filter (simulation only)", f"threshold {neighbours.threshold:g} (card)", neighbours)]
    rows = compare_on_clouds(pairs, candidates)
    halves = []
    clouds = []
    for path in pairs:
        points, outlier = read_pointcleannet(path)
        label = (~outlier).astype("uint8")
        cloud = cloud_scan(points, label=label)
        clouds.append({"scan": path.stem, "points": len(points), "outliers": int(outlier.sum()),
                       "spacing": neighbourhoods(points, 1).spacing})
        for method, metric in itertools.product(("sor", "ror"), ("mean_iou", "balanced_accuracy")):
            params, row = oracle(cloud, label, method, metric)
            setting = ", ".join(f"{k} {v:.3g}" + " spacings" * (k == "radius") for k, v in params.items())
            rows.append({"scan": path.stem, "filter": f"oracle {method.upper()} for {NAMES[metric]} (upper bound)",
                         "setting": setting, "params": params, **row})
        halves += finetune_rows(path.stem, points.astype(np.float64), outlier)
        print(f"{path.stem}: {len(points)} points, {int(outlier.sum())} outliers ({time.perf_counter() - start:.0f} s)",
              flush=True)
    rows += mean_rows(rows)
    rows += halves
    lines = [f"Filters on {len(pairs)} real labelled scans ({', '.join(c['scan'] for c in clouds)}) in "
             f"{args.data.name}/: per scan and the mean over scans. Label 1 = keep; outlier recall = share of false "
             "points removed; ROC AUC of the point filter's P(keep). Oracle rows are tuned on the scan itself "
             "(upper bounds, not results). Rows of a half: fine-tuned on the other half of that scan, measured on "
             "this one.", "", *table(rows, [c["scan"] for c in clouds] + sorted({r["scan"] for r in halves})), "",
             f"Measured {datetime.date.today()}, {time.perf_counter() - start:.0f} s."]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "realscan_quality.md", text + "\n")
    atomic_write_text(args.out / "realscan_quality.json", json.dumps(
        {"date": str(datetime.date.today()), "device": clock.device_report(), "data": args.data.name,
         "clouds": clouds, "point_filter": {"model": args.model.name, "card_threshold": candidates[0][2].threshold,
                                            "balanced_threshold": candidates[1][2].threshold},
         "oracle_grids": ORACLE_GRIDS, "rows": rows}, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
