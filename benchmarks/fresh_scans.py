"""The point filter and the classical filters on fresh simulated scans: seeds no model was trained,
tuned or thresholded on.

Three sets of ``--scans`` scans each, from the dataset seed ``--seed`` (the shipped models' data sets
use seeds 0 and 1):

- **bins** as in the U-Net's data set: bins of parts, the fixed 640x480 scanner;
- **boards**: circuit boards, each scan with its own scanner (``simulate.families.draw_scanner``);
- **fruit**: fruit on a plate, each scan with its own scanner.

Each scan becomes an unorganised cloud of its measured points. The filters are those of the real-scan
comparison (``filters.labelled_clouds.reference_filters``): the point filter at its card's and at its
balanced threshold, SOR and ROR with the parameters tuned on its validation clouds, and SOR with
Open3D's defaults. Prints, per set, the pooled mean IoU, balanced accuracy, keep-recall and the
share of each artefact kind removed; JSON and markdown go to ``--out``.

    python benchmarks/fresh_scans.py [--scans 10] [--seed 2026] [--model FILE.keras] [--out benchmarks/results]
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

from pcfilter_lib.filters.evaluation import evaluate_filter, sets_table
from pcfilter_lib.filters.labelled_clouds import reference_filters
from pcfilter_lib.filters.points import SHIPPED_POINT_MODEL
from pcfilter_lib.io.clouds import scan_cloud
from pcfilter_lib.io.files import atomic_write_text
from pcfilter_lib.simulate.dataset import GENERATOR, VERSION, make_scan
from pcfilter_lib.simulate.scanner import ScannerConfig
from pcfilter_lib.timing import clock

# name: (families, randomise)
SETS = {"bins, 640x480": ({"bin": 1.0}, False), "boards, drawn scanners": ({"board": 1.0}, True),
        "fruit, drawn scanners": ({"fruit": 1.0}, True)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=config.choose(full=10, fast=2), help="scans per set")
    parser.add_argument("--seed", type=int, default=2026, help="dataset seed of the fresh scans")
    parser.add_argument("--model", type=Path, default=SHIPPED_POINT_MODEL, help="the point filter's .keras file")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    if args.scans < 1:
        raise SystemExit("fresh_scans: --scans must be at least 1")
    if not args.model.is_file():
        raise SystemExit(f"fresh_scans: no model file {args.model}")
    start = time.perf_counter()
    candidates = reference_filters(args.model)
    scanner = ScannerConfig(width=640, height=480)
    results = {}
    for name, (families, randomise) in SETS.items():
        clouds = [scan_cloud(make_scan(args.seed, i, scanner, families=families, randomise=randomise))
                  for i in tqdm(range(args.scans), desc=name, unit="scan")]
        results[name] = {f"{filter_name} ({setting})": evaluate_filter(candidate, clouds)
                         for filter_name, setting, candidate in candidates}
    lines = [f"Fresh simulated scans ({GENERATOR} {VERSION}, dataset seed {args.seed}, {args.scans} per set), "
             f"as unorganised clouds; point filter {args.model.name}. Pooled over each set's clouds; "
             "label 1 = keep.", "",
             *sets_table(results)]
    lines += ["", f"Measured {datetime.date.today()}, {time.perf_counter() - start:.0f} s."]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "fresh_scans.md", text + "\n")
    atomic_write_text(args.out / "fresh_scans.json", json.dumps(
        {"date": str(datetime.date.today()), "device": clock.device_report(), "seed": args.seed,
         "scans_per_set": args.scans, "model": args.model.name, "simulator": {"generator": GENERATOR,
                                                                              "version": VERSION},
         "results": results}, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
