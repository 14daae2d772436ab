"""Simulated against real artefacts: the statistics of ``geometry.outlier_statistics`` side by side.

For each labelled real scan (PointCleanNet pairs in ``--data``) and for simulated scans of each scene
family (``pcfilter_lib.simulate.families``: bins with the fixed 640x480 scanner, circuit boards and
fruit with scanners drawn per scan; one scan per seed of ``--seeds``; label-0 points are the false
ones), it measures the share of false points, their clusters (false points within 2 point
spacings linked), their distance to the nearest true point and their local density against that of
true points (neighbours within 4 spacings), every length in the cloud's own point spacing. The
simulated scans are also split by artefact kind (each kind alone with the true points), so that one
sees which physics makes which statistics. Prints a markdown table and writes it with the numbers
as JSON.

    python benchmarks/artefact_statistics.py [--data DIR] [--seeds 1 2 3 4 5] [--out benchmarks/results]

``--data`` defaults to ``<data folder>/realscans`` (``data_scripts/download_realscans.py``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np

from pcfilter_lib import config
from pcfilter_lib.geometry.outlier_statistics import LINK, RADIUS, outlier_statistics
from pcfilter_lib.io.clouds import read_pointcleannet, scan_cloud
from pcfilter_lib.io.files import atomic_write_text
from pcfilter_lib.labels import ARTEFACT, ARTEFACT_KINDS, KIND_NAMES
from pcfilter_lib.simulate.dataset import GENERATOR, VERSION, make_scan
from pcfilter_lib.simulate.families import FAMILIES
from pcfilter_lib.simulate.scanner import ScannerConfig

COLUMNS = (("points", "points", "{:,.0f}"), ("outlier %", "outlier_fraction", "{:.2%}"),
           ("clusters", "clusters", "{:g}"),
           ("median cluster", "cluster_size_median", "{:g}"), ("largest cluster", "cluster_size_max", "{:,.0f}"),
           ("isolated", "isolated_share", "{:.0%}"), ("distance median", "distance_median", "{:.1f}"),
           ("distance p90", "distance_p90", "{:.1f}"), ("density false", "density_outlier", "{:.1f}"),
           ("density true", "density_true", "{:.1f}"), ("density ratio", "density_ratio", "{:.2f}"),
           ("false share of 16 NN", "outlier_neighbour_share", "{:.0%}"))


def cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    return "-" if value is None else fmt.format(value)


def mean_row(rows: list[dict]) -> dict:
    """The mean of each statistic over ``rows`` (those that have it)."""
    out = {}
    for _, key, _ in COLUMNS:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=config.data_dir() / "realscans",
                        help="folder of name.xyz + name.outliers pairs (default: <data folder>/realscans)")
    parser.add_argument("--seeds", type=int, nargs="+", default=config.choose(full=[1, 2, 3, 4, 5], fast=[1]),
                        help="simulator seeds, one scan each (default 1 2 3 4 5; 1 in fast mode)")
    parser.add_argument("--size", default=config.choose(full="640x480", fast="160x120"), help="scan size WxH")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    start = time.perf_counter()

    real = []
    pairs = sorted(p for p in args.data.glob("*.xyz") if p.with_suffix(".outliers").is_file()) \
        if args.data.is_dir() else []
    if not pairs:
        print(f"no PointCleanNet pairs in {args.data}: the table has simulated scans only "
              "(get the real ones with data_scripts/download_realscans.py)")
    for path in pairs:
        points, outlier = read_pointcleannet(path)
        real.append({"cloud": path.stem, "source": "real", **outlier_statistics(points, outlier)})

    simulated, kinds = {family: [] for family in FAMILIES}, {KIND_NAMES[code]: [] for code in ARTEFACT_KINDS}
    for family in FAMILIES:
        for seed in args.seeds:
            scan = make_scan(seed, 0, ScannerConfig(width=width, height=height), families={family: 1.0},
                             randomise=family != "bin")
            cloud = scan_cloud(scan)
            points, label, kind = cloud["xyz"][0], cloud["label"][0], cloud["kind"][0]
            artefact = label == ARTEFACT
            simulated[family].append({"cloud": f"simulated {family}, seed {seed}", "source": "simulated",
                                      "scanner": scan["meta"]["scanner"], **outlier_statistics(points, artefact)})
            for code in ARTEFACT_KINDS:
                alone = ~artefact | (kind == code)  # the true points and this kind's false points only
                if (artefact & (kind == code)).sum():
                    kinds[KIND_NAMES[code]].append(outlier_statistics(points[alone], artefact[alone]))
            print(f"{family} seed {seed}: {int(artefact.sum())} of {len(points)} points false "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)

    rows = real + [{"cloud": "mean of real scans", **mean_row(real)}] * bool(real)
    for family, found in simulated.items():
        rows += found + [{"cloud": f"mean of {len(found)} simulated {family} scans", **mean_row(found)}]
    rows += [{"cloud": f"simulated, {name} only (mean of {len(found)})", **mean_row(found)}
             for name, found in kinds.items() if found]
    header = "| cloud | " + " | ".join(name for name, _, _ in COLUMNS) + " |"
    lines = [f"Artefact statistics of labelled clouds: real scans from {args.data.name}/, simulated scans "
             f"({GENERATOR} {VERSION}, bins at {width}x{height}, boards and fruit with scanners drawn per scan, "
             f"seeds {args.seeds}, label 0 = false). Lengths in point "
             f"spacings (median nearest-neighbour distance); clusters link false points within {LINK:g} spacings; "
             f"density = neighbours within {RADIUS:g} spacings. Means are over clouds.", "",
             header, "|---" * (len(COLUMNS) + 1) + "|"]
    lines += ["| " + " | ".join([row["cloud"]] + [cell(row, key, fmt) for _, key, fmt in COLUMNS]) + " |"
              for row in rows]
    lines += ["", f"Measured {datetime.date.today()} on {platform.machine()}, {time.perf_counter() - start:.0f} s."]
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "artefact_statistics.md", table + "\n")
    atomic_write_text(args.out / "artefact_statistics.json", json.dumps(
        {"date": str(datetime.date.today()), "machine": platform.machine(), "link_spacings": LINK,
         "radius_spacings": RADIUS, "simulator": {"generator": GENERATOR, "version": VERSION, "size": [width, height],
                                                   "seeds": args.seeds},
         "real": real, "simulated": simulated, "simulated_by_kind": kinds, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
