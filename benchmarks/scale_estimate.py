"""How long the point filter would take on 10^9 points or 10^5 scans, from the measured throughput.

Reads ``benchmarks/results/filter_speed.json`` (written by ``benchmarks/filter_speed.py``) and prints,
for the largest cloud measured, the single-machine time of a 10^9-point cloud and of 10^5 scans of
the benchmark scan's size, and the same spread over machines of the same kind (tiles are independent
tasks, so the time divides by the number of machines, plus the reading and writing that stay).

    python benchmarks/scale_estimate.py [--results FILE] [--machines 1 10 100]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/filter_speed.json"))
    parser.add_argument("--machines", type=int, nargs="+", default=[1, 10, 100])
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    if not results.get("sizes"):
        raise SystemExit(f"{args.results} has no 'sizes' rows; run benchmarks/filter_speed.py first")
    row = max(results["sizes"], key=lambda r: r["points"])
    rate, scan = row["point_filter_points_per_s"], results["scan"]["points"]
    cores = results["device"].get("cores")
    print(f"measured: {rate:,.0f} points/s on {row['points']:,} points ({cores} cores)")
    for what, points in (("a cloud of 10^9 points", 1e9), (f"10^5 scans of {scan:,} points", 1e5 * scan)):
        for machines in args.machines:
            hours = points / rate / machines / 3600
            print(f"{what} on {machines} machine{'s' * (machines > 1)}: {hours:,.1f} h")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
