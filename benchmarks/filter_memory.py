"""Peak resident memory of ``pcfilter filter`` (the neighbour or point filter, SOR or ROR, in tiles) on large clouds.

For each size it builds a cloud as ``benchmarks/filter_speed.py`` does (simulated 640x480 scans laid
side by side on a grid, each turned and jittered), writes it as a binary ``.ply`` (float32 x y z and
intensity), then runs ``pcfilter filter CLOUD.ply -o KEPT.ply --quiet --model MODEL`` in its own
process, started by a small launcher process that reads its peak resident set size from the kernel
(``ru_maxrss`` of its children), so only the filter's own memory is measured. Prints and writes the
peak memory, bytes per point and wall time of each size. Targets, at every size: the neighbour
filter under 0.5 GB (issue #57), SOR and ROR under 0.8 GB, the point filter under 1.5 GB.

``--method sor`` (or ``ror``) runs the classical filter instead (``filters.classical_tiles``); with
``--tile-points 5000000`` a cloud of up to 5 million points is filtered in one pass, in memory, as
before the tiles, for comparison.

    python benchmarks/filter_memory.py [--model neighbours|points | --method sor|ror] [--sizes 2e6 2e7]
        [--tile-points T] [--out DIR] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np

# the target peak of each filter, whatever the cloud's size
LIMITS = {"neighbours": 0.5e9, "points": 1.5e9, "sor": 0.8e9, "ror": 0.8e9}


def write_large_cloud(path: Path, points: int) -> int:
    """Write a ``points``-point cloud built by ``simulate.dataset.large_cloud`` as a binary .ply."""
    from pcfilter_lib.io.clouds import CloudWriter
    from pcfilter_lib.simulate.dataset import large_cloud

    cloud = large_cloud(points)
    with CloudWriter(path, len(cloud), np.float32) as writer:
        for start in range(0, len(cloud), 1 << 20):
            writer.write(cloud[start:start + (1 << 20)])
    return len(cloud)


# A small process runs the command and reports its peak: a child forked straight from this one would
# count this process's own pages (the kernel keeps the high-water mark across exec).
LAUNCH = ("import json, resource, subprocess, sys, time; start = time.perf_counter(); "
          "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
          "print(json.dumps([done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
          "time.perf_counter() - start, done.stdout + done.stderr]))")


def peak_memory(command: list[str]) -> tuple[int, float, str]:
    """(peak resident bytes, wall seconds, last output line) of ``command`` run in its own process."""
    launched = subprocess.run([sys.executable, "-c", LAUNCH, *command], capture_output=True, text=True, check=True)
    status, peak_kib, wall, output = json.loads(launched.stdout)
    if status != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({status}): {output[-2000:]}")
    return peak_kib * 1024, wall, output.strip().splitlines()[-1]  # ru_maxrss is in KiB on Linux


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["neighbours", "points"], default="neighbours",
                        help="the filter (default neighbours)")
    parser.add_argument("--method", choices=["sor", "ror"], default=None, help="a classical filter instead of --model")
    parser.add_argument("--sizes", type=float, nargs="+", default=[2e6, 2e7], help="cloud sizes in points")
    parser.add_argument("--tile-points", type=int, default=None, help="default: the library's")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                        help="folder for filter_memory.json/.md")
    parser.add_argument("--work", type=Path, default=None, help="folder for the clouds (default: a temporary one)")
    args = parser.parse_args(argv)

    name, option = (args.method, ["--method", args.method]) if args.method else (args.model, ["--model", args.model])
    if args.tile_points is None:
        from pcfilter_lib.filters.classical_tiles import CLASSICAL_TILE_POINTS
        from pcfilter_lib.filters.neighbour_tiles import NEIGHBOUR_TILE_POINTS
        from pcfilter_lib.filters.tile_store import TILE_POINTS

        args.tile_points = {"neighbours": NEIGHBOUR_TILE_POINTS, "points": TILE_POINTS}.get(name, CLASSICAL_TILE_POINTS)
    limit = LIMITS[name]
    pcfilter = Path(sys.executable).with_name("pcfilter")
    results_path = args.out / "filter_memory.json"
    rows = json.loads(results_path.read_text())["sizes"] if results_path.is_file() else []
    with tempfile.TemporaryDirectory(dir=args.work, prefix="pcfilter-memory-") as work:
        for size in (int(s) for s in args.sizes):
            cloud, kept = Path(work) / f"cloud_{size}.ply", Path(work) / f"kept_{size}.ply"
            points = write_large_cloud(cloud, size)
            peak, wall, summary = peak_memory([str(pcfilter), "filter", str(cloud), "-o", str(kept), "--quiet",
                                               *option, "--tile-points", str(args.tile_points)])
            row = {"model": name, "points": points, "peak_rss_bytes": peak, "bytes_per_point": peak / points,
                   "wall_s": wall,
                   "file_bytes": cloud.stat().st_size, "tile_points": args.tile_points,
                   "summary": summary.split("; wrote")[0]}  # the output's temporary path says nothing
            print(f"{points:>12,} points: peak RSS {peak / 1e9:.2f} GB ({peak / points:,.0f} bytes/point), "
                  f"{wall:,.0f} s wall ({'meets' if peak < limit else 'misses'} < {limit / 1e9:.1f} GB)", flush=True)
            key = (name, points, args.tile_points)
            rows = [r for r in rows if (r.get("model", "points"), r["points"], r["tile_points"]) != key] + [row]
            cloud.unlink()
            kept.unlink()
    for r in rows:
        r.setdefault("model", "points")  # rows measured before the neighbour filter existed
    rows.sort(key=lambda r: (r["model"], r["tile_points"], r["points"]))
    from pcfilter_lib.io.files import atomic_write_text
    from pcfilter_lib.timing import clock

    device = clock.device_report()
    table = "\n".join([
        f"`pcfilter filter --model MODEL` or `--method METHOD` (in tiles; SOR or ROR on a cloud of at most one "
        f"tile: in one pass, in memory) on binary .ply clouds; CPU {device['cpu']} "
        f"({device['cores']} cores). Peak resident memory of the filtering process (ru_maxrss).", "",
        "| model | points | tile points | peak RSS | bytes per point | wall time | target |",
        "|---|---|---|---|---|---|---|",
        *(f"| {r['model']} | {r['points']:,} | {r['tile_points']:,} | {r['peak_rss_bytes'] / 1e9:.2f} GB | "
          f"{r['bytes_per_point']:,.0f} | {r['wall_s']:,.0f} s | "
          f"{'meets' if r['peak_rss_bytes'] < LIMITS[r['model']] else 'misses'} < {LIMITS[r['model']] / 1e9:.1f} GB |"
          for r in rows)])
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "filter_memory.md", table + "\n")
    atomic_write_text(results_path, json.dumps({"device": device, "limit_bytes": LIMITS, "sizes": rows},
                                               indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
