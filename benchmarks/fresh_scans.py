"""Every filter on fresh simulated scans: seeds no model was trained, tuned or thresholded on, with the
spread over seeds.

Four sets of ``--scans`` scans for each dataset seed of ``--seeds`` (the shipped models' data sets
use seeds 0 and 1):

- **bins** as in the U-Net's data set: bins of parts, the fixed 640x480 scanner, and the same at 320x240;
- **boards**: circuit boards, each scan with its own scanner (``simulate.families.draw_scanner``);
- **fruit**: fruit on a plate, each scan with its own scanner.

Each scan becomes an unorganised cloud of its measured points. The filters: the neighbour filter at
its card's threshold, those of the real-scan comparison (``filters.labelled_clouds.reference_filters``:
the point filter at its card's and at its balanced threshold, SOR and ROR with the parameters tuned
on its validation clouds, SOR with Open3D's defaults), and the U-Net on the organised scans themselves.
Prints, per set and filter, the mean IoU pooled over each seed's scans, then its mean, standard
deviation and range over the seeds, and the balanced accuracy and keep-recall averaged over seeds;
JSON (every seed's full results) and markdown go to ``--out``, the JSON after each seed.

With ``--neighbour-only`` only the neighbour filter runs (the shipped one, or each ``.npz`` of
``--neighbour-models``) and every other filter's rows are carried over from the previous record in
``--out``, which must hold the same seeds and number of scans (the scans are made from their seeds,
so they are the same scans); the markdown names the carried rows and their date.

    python benchmarks/fresh_scans.py [--scans 20] [--seeds 2026 4242 7777] [--out benchmarks/results]
    python benchmarks/fresh_scans.py --scans 10 --neighbour-only [--neighbour-models A.npz B.npz]
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

import numpy as np
from tqdm.auto import tqdm

from pcfilter_lib import filters
from pcfilter_lib.filters.evaluation import evaluate_filter
from pcfilter_lib.filters.labelled_clouds import reference_filters
from pcfilter_lib.filters.points import SHIPPED_POINT_MODEL
from pcfilter_lib.io.clouds import scan_cloud
from pcfilter_lib.io.files import atomic_write_text
from pcfilter_lib.simulate.dataset import GENERATOR, VERSION, make_scan
from pcfilter_lib.simulate.scanner import ScannerConfig
from pcfilter_lib.timing import clock

# name: (families, randomise, base image size)
SETS = {"bins, 640x480": ({"bin": 1.0}, False, (640, 480)), "bins, 320x240": ({"bin": 1.0}, False, (320, 240)),
        "boards, drawn scanners": ({"board": 1.0}, True, (640, 480)),
        "fruit, drawn scanners": ({"fruit": 1.0}, True, (640, 480))}
UNET = "U-Net (organised scans)"


def seed_results(seed: int, scans: int, candidates: list, unet: bool = True) -> dict:
    """set name -> filter name -> ``evaluate_filter`` result, for the scans of one dataset seed (the U-Net
    on the organised scans too, with ``unet``)."""
    unet = filters.unet_filter() if unet else None
    results = {}
    for name, (families, randomise, (width, height)) in SETS.items():
        made = [make_scan(seed, i, ScannerConfig(width=width, height=height), families=families, randomise=randomise)
                for i in tqdm(range(scans), desc=f"seed {seed}, {name}", unit="scan")]
        clouds = [scan_cloud(scan) for scan in made]
        results[name] = {f"{filter_name} ({setting})": evaluate_filter(candidate, clouds)
                         for filter_name, setting, candidate in candidates}
        if unet is not None:
            results[name][UNET] = evaluate_filter(unet, made)
    return results


def neighbour_candidates(paths: list[Path]) -> list:
    """(name, setting, filter) of the shipped neighbour filter, or of each neighbour filter file."""
    if not paths:
        shipped = filters.neighbour_filter()
        return [("neighbour filter", f"threshold {shipped.threshold:g} (card)", shipped)]
    return [(f"neighbour filter {path.stem}", f"threshold {f.threshold:g} (card)", f)
            for path, f in ((path, filters.neighbour_filter(path)) for path in paths)]


def carried_rows(out: Path, seeds: list[int], scans: int) -> dict:
    """The previous record's results in ``out`` without its neighbour filter rows, for
    ``--neighbour-only``; refused unless it holds the same seeds and number of scans."""
    path = out / "fresh_scans.json"
    if not path.is_file():
        raise SystemExit(f"fresh_scans: --neighbour-only needs a previous record {path}; run without it first")
    previous = json.loads(path.read_text())
    if previous["seeds"] != seeds or previous["scans_per_set"] != scans:
        raise SystemExit(f"fresh_scans: {path} holds seeds {previous['seeds']} with {previous['scans_per_set']} scans "
                         f"each, not {seeds} with {scans}; give those, or run without --neighbour-only")
    results = {int(seed): {name: {f: r for f, r in rows.items() if not f.startswith("neighbour filter")}
                           for name, rows in sets.items()} for seed, sets in previous["results"].items()}
    return {"date": previous.get("carried_from", previous["date"]), "results": results}


def summary_table(per_seed: dict) -> list[str]:
    """Markdown rows: per set and filter, the mean IoU of each seed and its mean, spread and range."""
    seeds = list(per_seed)
    lines = ["| scans | filter | mean IoU per seed | mean | std | min - max | balanced accuracy | keep-recall |",
             "|---|---|---|---|---|---|---|---|"]
    first = per_seed[seeds[0]]
    for name in first:
        for filter_name in first[name]:
            rows = [per_seed[seed][name][filter_name] for seed in seeds]
            iou = np.array([r["mean_iou"] for r in rows])
            lines.append(f"| {name} | {filter_name} | {' / '.join(f'{v:.3f}' for v in iou)} | {iou.mean():.4f} | "
                         f"{iou.std():.4f} | {iou.min():.3f} - {iou.max():.3f} | "
                         f"{np.mean([r['balanced_accuracy'] for r in rows]):.4f} | "
                         f"{np.mean([r['recall'] for r in rows]):.4f} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=config.choose(full=20, fast=2), help="scans per set and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2026, 4242, 7777],
                        help="dataset seeds of the fresh scans (default 2026 4242 7777)")
    parser.add_argument("--model", type=Path, default=SHIPPED_POINT_MODEL, help="the point filter's .keras file")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--neighbour-only", action="store_true",
                        help="run only the neighbour filter; carry the other rows over from the record in --out")
    parser.add_argument("--neighbour-models", type=Path, nargs="*", default=[],
                        help="neighbour filter .npz files to measure (default: the shipped one)")
    args = parser.parse_args(argv)
    if args.scans < 1:
        raise SystemExit("fresh_scans: --scans must be at least 1")
    if not args.model.is_file():
        raise SystemExit(f"fresh_scans: no model file {args.model}")
    if set(args.seeds) & {0, 1}:
        raise SystemExit("fresh_scans: seeds 0 and 1 made the shipped models' data; choose others")
    if missing := [str(path) for path in args.neighbour_models if not path.is_file()]:
        raise SystemExit(f"fresh_scans: no neighbour filter file {', '.join(missing)}")
    start = time.perf_counter()
    carried = carried_rows(args.out, args.seeds, args.scans) if args.neighbour_only else None
    candidates = neighbour_candidates(args.neighbour_models)
    if carried is None:
        candidates += reference_filters(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    per_seed = {}
    for seed in args.seeds:
        per_seed[seed] = seed_results(seed, args.scans, candidates, unet=carried is None)
        if carried is not None:
            for name, rows in per_seed[seed].items():
                rows.update(carried["results"][seed][name])
    record = {"date": str(datetime.date.today()), "device": clock.device_report(), "seeds": list(per_seed),
              "scans_per_set": args.scans, "model": args.model.name,
              "simulator": {"generator": GENERATOR, "version": VERSION},
              "results": {str(k): v for k, v in per_seed.items()}}
    if carried is not None:
        record["carried_from"] = carried["date"]
    atomic_write_text(args.out / "fresh_scans.json", json.dumps(record, indent=1, default=float) + "\n")
    lines = [f"Fresh simulated scans ({GENERATOR} {VERSION}, dataset seeds {', '.join(map(str, args.seeds))}, "
             f"{args.scans} per set and seed), as unorganised clouds (the U-Net: the organised scans); point filter "
             f"{args.model.name}, neighbour filter {filters.SHIPPED_NEIGHBOUR_MODEL.name}. Mean IoU pooled over each "
             "seed's scans of a set; mean, standard deviation and range over the seeds; label 1 = keep.", "",
             *summary_table(per_seed)]
    lines += ["", f"Measured {datetime.date.today()}, {time.perf_counter() - start:.0f} s."]
    if carried is not None:
        lines[-1] += (f" The neighbour filter's rows only; the other filters' rows are those measured on "
                      f"{carried['date']} on the same scans.")
    text = "\n".join(lines)
    print(text)
    atomic_write_text(args.out / "fresh_scans.md", text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
