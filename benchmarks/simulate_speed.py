"""Speed of the scan simulator next to Open3D's bare primary ray cast of the same image.

For each of ``--scans`` random bins it times the scene (parts dropped into the bin), the scan
(every effect on) and, on the same scene, one bare ``cast_rays`` of the camera's pixel rays; scan
and cast are each the fastest of ``--repeats`` runs, so that other work on the machine counts less. The
simulator's overhead is scan time / bare cast time, measured side by side in this run. Writing a
scan file (compression) is timed separately. Writes the results as JSON and markdown.

    python benchmarks/simulate_speed.py [--size 640x480] [--scans 8] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from pcfilter_lib.io.files import atomic_write_text
from pcfilter_lib.io.scan import scan_bytes
from pcfilter_lib.simulate.dataset import make_scan
from pcfilter_lib.simulate.measurement import simulate_scan
from pcfilter_lib.simulate.scanner import ScannerConfig, rig_for
from pcfilter_lib.simulate.scene import make_scene
from pcfilter_lib.timing import clock


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="640x480", help="scan size WIDTHxHEIGHT (default 640x480)")
    parser.add_argument("--scans", type=int, default=8, help="number of random bins to time (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per bin; the fastest counts (default 3)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                        help="folder for simulate_speed.json/.md")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    config = ScannerConfig(width=width, height=height)
    rays = rig_for(config).primary_rays()
    simulate_scan(make_scene(np.random.default_rng(args.seed)), config, np.random.default_rng(0))  # warm-up

    rows = []
    for i in range(args.scans):
        rng = np.random.default_rng([args.seed, i])
        start = time.perf_counter()
        scene = make_scene(rng)
        built = time.perf_counter()
        # The same estimator for both sides on a shared machine: the fastest of a few repeats.
        scan = clock.time_call(lambda scene=scene, i=i: simulate_scan(scene, config, np.random.default_rng(i)),
                               repeats=args.repeats, warmup=0)
        caster = scene.raycasting()
        bare = clock.time_call(lambda caster=caster: caster.cast_rays(rays)["t_hit"].numpy(),
                               repeats=args.repeats, warmup=1)
        rows.append({"parts": scene.n_parts, "scene_s": built - start, "scan_s": scan.low, "bare_cast_s": bare.low})
    write = clock.time_call(lambda: scan_bytes(make_scan(args.seed, 0, config)), repeats=2, warmup=0)
    make = clock.time_call(lambda: make_scan(args.seed, 0, config), repeats=2, warmup=0)

    def median(key):
        return statistics.median(r[key] for r in rows)

    summary = {
        "size": f"{width}x{height}", "scans": args.scans, "machine": platform.processor() or platform.machine(),
        "scene_s": median("scene_s"), "scan_s": median("scan_s"), "bare_cast_s": median("bare_cast_s"),
        "scans_per_s": 1 / statistics.median(r["scene_s"] + r["scan_s"] for r in rows),
        "overhead_scan": statistics.median(r["scan_s"] / r["bare_cast_s"] for r in rows),
        "overhead_scene_and_scan": statistics.median((r["scene_s"] + r["scan_s"]) / r["bare_cast_s"] for r in rows),
        "file_write_s": write.median - make.median, "rows": rows,
    }
    print(f"scan simulator at {width}x{height}, {args.scans} random bins (medians over the bins):")
    print(f"  scene (drop parts)       {summary['scene_s'] * 1e3:8.1f} ms")
    print(f"  scan (all effects)       {summary['scan_s'] * 1e3:8.1f} ms")
    print(f"  bare primary ray cast    {summary['bare_cast_s'] * 1e3:8.1f} ms")
    print(f"  scans per second (scene + scan): {summary['scans_per_s']:.2f}  (target >= 1)")
    print(f"  overhead, scan / bare cast:      {summary['overhead_scan']:.1f}x  (target <= 10)")
    print(f"  overhead, (scene + scan) / bare: {summary['overhead_scene_and_scan']:.1f}x")
    print(f"  compressing one scan file:       {summary['file_write_s'] * 1e3:.0f} ms (not part of the above)")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "simulate_speed.json", json.dumps(summary, indent=2) + "\n")
    table = ["| quantity | value |", "|---|---|"] + [
        f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in summary.items() if k != "rows"]
    atomic_write_text(args.out / "simulate_speed.md", "\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
