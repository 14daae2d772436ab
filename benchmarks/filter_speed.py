"""Speed of the learned artefact filters against Open3D statistical outlier removal on the same scan.

All filters start from the same loaded 640x480 scan and end with a keep mask: the U-Net time
includes building the input channels, padding, the network (CPU, warm: traced once before the
clock starts) and thresholding; the point filter sees only the measured points (N, 3) and its time
includes the neighbour search, the features, the patches, the network and combining the patches'
predictions; the SOR time includes building the Open3D cloud. Prints the medians, the point
filter's points per second and the ratios to SOR, and writes them as JSON and markdown.
Targets: U-Net / SOR <= 0.5; point filter / SOR <= 1 at every size.

Larger clouds (``--sizes``, default 2 and 10 million points) are made by ``simulate.dataset.large_cloud``:
the scan and seven more simulated 640x480 scans laid side by side on a grid, each copy turned about the
vertical by a random angle and jittered by a tenth of the point spacing, until the size is reached.
On each size SOR (Open3D, 20 neighbours, std ratio 2.0, on the whole cloud in memory) and the point
filter (``filters.point_tiles``, tiles of 250 000 points) run one after the other in this process. The
point filter's time on the scan is also split into its stages (neighbour search, features, patches,
network, combining).

With ``--command-line SIZE ...`` it times instead what a user runs: ``pcfilter filter CLOUD.xyz -o
KEPT.ply`` with the neighbour filter and with ``--method sor`` (and the point filter up to
``--points-up-to`` points), each in its own process, one after the other and ``--repeats`` times in
turn, on ``.xyz`` clouds made by ``large_cloud``; reading, filtering and writing included. Prints
each one's median wall time, points per second, peak resident memory and its ratio to SOR in the same
run, and the neighbour filter's profile on the first size (``filters.neighbours.stage_seconds``).
Target (issue #57): the neighbour filter at most 0.75x SOR at every size. Writes
filter_speed_command_line.json/.md.

    python benchmarks/filter_speed.py [--scan FILE.npz] [--repeats 5] [--sizes 2e6 1e7] [--out DIR]
    python benchmarks/filter_speed.py --command-line 268e3 1e6 1e7 [--repeats 3] [--points-up-to 3e5]

Without ``--scan`` it simulates one 640x480 scan (seed 0, scan 0 of the default recipe).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the comparison is on the CPU, also on a GPU machine

from pcfilter_lib import runtime

runtime.setup(seed=0)

import numpy as np

from pcfilter_lib import filters
from pcfilter_lib.io.files import atomic_write_text
from pcfilter_lib.simulate.dataset import large_cloud
from pcfilter_lib.timing import clock


def load_or_simulate(path: Path | None) -> dict:
    from pcfilter_lib.io.scan import load_scan

    if path is not None:
        return load_scan(path, arrays=())
    from pcfilter_lib.simulate.dataset import make_scan
    from pcfilter_lib.simulate.scanner import ScannerConfig

    return make_scan(0, 0, ScannerConfig(width=640, height=480))


def stage_profile(point_filter, cloud: np.ndarray) -> dict[str, float]:
    """Seconds of each stage of the point filter on ``cloud`` (one run after a warm-up)."""
    from pcfilter_lib.filters.points import cover_patches, pad_patches
    from pcfilter_lib.geometry import point_features as pf

    point_filter.keep_probability_points(cloud)
    times, clock = {}, time.perf_counter()

    def lap(name):
        nonlocal clock
        times[name] = time.perf_counter() - clock
        clock = time.perf_counter()

    points, finite = pf.finite_points(cloud)
    hood = pf.neighbourhoods(points[finite], point_filter.neighbours)
    lap("neighbour search")
    statistics = pf.local_statistics(hood)
    lap("features")
    patches = cover_patches(hood, np.arange(len(hood.points)), point_filter.patch_size).patches
    members = patches.shape[1]
    patches = pad_patches(patches, point_filter.model.input_shape[1])
    lap("patches")
    inputs = pf.patch_inputs(hood, patches, point_filter.feature_set, statistics, members)
    lap("patch inputs")
    predictions = point_filter.predict_patches(inputs)
    lap("network")
    pf.combine(patches, predictions, len(hood.points))
    lap("combining")
    return times


def size_rows(point_filter, sor, cloud: np.ndarray, sizes: list[int], repeats: int) -> list[dict]:
    """Point filter and SOR times on the scan and on larger clouds made from it, side by side."""
    from pcfilter_lib.filters.point_tiles import tiled_keep_probability
    from pcfilter_lib.io.clouds import cloud_scan

    rows = []
    for size in [len(cloud), *sizes]:
        big = cloud if size == len(cloud) else large_cloud(size, first=cloud)
        scan = cloud_scan(big)

        def chunks(big=big):
            return (big[i:i + 1_000_000] for i in range(0, len(big), 1_000_000))

        runs = repeats if size == len(cloud) else 1
        t_sor = clock.time_call(lambda scan=scan: sor.keep_mask(scan), repeats=runs, warmup=0).median
        t_points = clock.time_call(lambda chunks=chunks: tiled_keep_probability(point_filter, chunks),
                                   repeats=runs, warmup=0).median
        rows.append({"points": len(big), "sor_s": t_sor, "point_filter_s": t_points,
                     "point_filter_points_per_s": len(big) / t_points, "sor_points_per_s": len(big) / t_sor,
                     "ratio_point_filter_over_sor": t_points / t_sor})
        print(f"{len(big):>11,} points: point filter {t_points:8.2f} s ({len(big) / t_points:>9,.0f} points/s), "
              f"SOR {t_sor:8.2f} s ({len(big) / t_sor:>9,.0f} points/s), ratio {t_points / t_sor:.2f}", flush=True)
        del big, scan
    return rows


COMMANDS = {"neighbour filter": ["--model", "neighbours"], "SOR": ["--method", "sor"],
            "point filter": ["--model", "points"]}


def io_seconds(path: Path, out: Path) -> dict[str, float]:
    """Seconds to read ``path`` as ``pcfilter filter`` streams it and to write its points to ``out`` (.ply)."""
    from pcfilter_lib.io.clouds import CloudWriter, open_stream

    start = time.perf_counter()
    chunks = list(open_stream(path).chunks())
    read = time.perf_counter() - start
    start = time.perf_counter()
    with CloudWriter(out, sum(len(c["xyz"]) for c in chunks), np.float64) as writer:
        for chunk in chunks:
            writer.write(chunk["xyz"])
    written = time.perf_counter() - start
    out.unlink()
    return {"reading": read, "writing": written}


def command_line_rows(sizes: list[int], repeats: int, points_up_to: int, work: Path) -> tuple[list[dict], dict]:
    """Wall time and peak memory of ``pcfilter filter`` with each filter on ``.xyz`` clouds of ``sizes``
    points, interleaved, ``repeats`` times; and the neighbour filter's stages on the first cloud."""
    from filter_memory import peak_memory

    from pcfilter_lib.filters.neighbours import neighbour_filter, stage_seconds
    from pcfilter_lib.io.clouds import CloudWriter

    pcfilter = str(Path(sys.executable).with_name("pcfilter"))
    scan = load_or_simulate(None)
    scan_points = np.asarray(scan["xyz"], np.float64)[np.asarray(scan["valid"], bool)]
    rows, profile = [], {}
    for size in sizes:
        cloud = scan_points[:size] if size <= len(scan_points) else large_cloud(size, first=scan_points)
        path, kept = work / f"cloud_{size}.xyz", work / "kept.ply"
        with CloudWriter(path, len(cloud), np.float64) as writer:
            for start in range(0, len(cloud), 1 << 20):
                writer.write(cloud[start:start + (1 << 20)])
        if not profile:
            profile = {"points": len(cloud), **io_seconds(path, work / "profile.ply"),
                       **stage_seconds(neighbour_filter(), cloud)}
        names = [n for n in COMMANDS if n != "point filter" or len(cloud) <= points_up_to]
        runs = {name: [] for name in names}
        for _ in range(repeats):
            for name in names:
                runs[name].append(peak_memory([pcfilter, "filter", str(path), "-o", str(kept), "--quiet",
                                               *COMMANDS[name]]))
                kept.unlink()
        row = {"points": len(cloud), "file_bytes": path.stat().st_size}
        for name, results in runs.items():
            wall = float(np.median([w for _, w, _ in results]))
            row[name] = {"wall_s": wall, "points_per_s": len(cloud) / wall,
                         "peak_rss_bytes": max(p for p, _, _ in results), "walls_s": [w for _, w, _ in results]}
        for name in runs:
            row[name]["ratio_to_sor"] = row[name]["wall_s"] / row["SOR"]["wall_s"]
        rows.append(row)
        print(f"{len(cloud):>11,} points: " + "; ".join(
            f"{name} {row[name]['wall_s']:.2f} s ({row[name]['ratio_to_sor']:.2f}x SOR, "
            f"{row[name]['peak_rss_bytes'] / 1e9:.2f} GB)" for name in runs), flush=True)
        path.unlink()
    return rows, profile


def command_line_table(rows: list[dict], profile: dict, device: dict) -> str:
    lines = [f"`pcfilter filter CLOUD.xyz -o KEPT.ply` in its own process (reading, filtering, writing); CPU "
             f"{device['cpu']} ({device['cores']} cores); median of {len(rows[0]['SOR']['walls_s'])} runs, the "
             "filters in turn. SOR: Open3D, 20 neighbours, std ratio 2.0. Peak: resident memory (ru_maxrss). "
             "Target: the neighbour filter at most 0.75x SOR.", "",
             "| points | filter | wall time | points/s | peak memory | ratio to SOR |", "|---|---|---|---|---|---|"]
    for row in rows:
        for name in (n for n in COMMANDS if n in row):
            r = row[name]
            lines.append(f"| {row['points']:,} | {name} | {r['wall_s']:.2f} s | {r['points_per_s']:,.0f} | "
                         f"{r['peak_rss_bytes'] / 1e9:.2f} GB | {r['ratio_to_sor']:.2f} |")
    total = profile["total"]
    steps = {k: v for k, v in profile.items() if k not in ("points", "total")}
    whole = sum(steps.values())
    lines += ["", f"Where the neighbour filter's time goes on {profile['points']:,} points, each step timed once in "
              "one process (reading the .xyz and writing all its points as .ply included): "
              + ", ".join(f"{k} {v:.2f} s ({v / whole:.0%})" for k, v in steps.items())
              + f"; filtering alone {total:.2f} s."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--command-line", type=float, nargs="+", metavar="SIZE",
                        help="time pcfilter filter on .xyz clouds of these sizes instead (see above)")
    parser.add_argument("--points-up-to", type=float, default=3e5,
                        help="with --command-line: the point filter too, on clouds up to this size")
    parser.add_argument("--scan", type=Path, help="a scan .npz (default: simulate one 640x480 scan)")
    parser.add_argument("--model", type=Path, default=None, help="U-Net filter (default: the shipped one)")
    parser.add_argument("--point-model", type=Path, default=None, help="point filter (default: the shipped one)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=float, nargs="*", default=[2e6, 1e7],
                        help="larger cloud sizes in points (default 2e6 1e7; none: the scan only)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for filter_speed.json/.md")
    args = parser.parse_args(argv)
    if args.command_line:
        with tempfile.TemporaryDirectory(prefix="pcfilter-speed-") as work:
            rows, profile = command_line_rows([int(s) for s in args.command_line], args.repeats,
                                              int(args.points_up_to), Path(work))
        device = clock.device_report()
        table = command_line_table(rows, profile, device)
        print(table)
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "filter_speed_command_line.md", table + "\n")
        atomic_write_text(args.out / "filter_speed_command_line.json", json.dumps(
            {"device": device, "repeats": args.repeats, "sizes": rows, "profile_s": profile}, indent=2) + "\n")
        return 0

    scan = load_or_simulate(args.scan)
    unet = filters.unet_filter(args.model)
    points_filter = filters.point_filter(args.point_model)
    sor = filters.baseline_filter("sor")
    cloud = np.asarray(scan["xyz"])[np.asarray(scan["valid"], bool)]
    points = len(cloud)
    t_unet = clock.time_call(lambda: unet.keep_mask(scan), repeats=args.repeats, warmup=2)
    t_points = clock.time_call(lambda: points_filter.keep_probability_points(cloud) >= points_filter.threshold,
                               repeats=args.repeats, warmup=2)
    t_sor = clock.time_call(lambda: sor.keep_mask(scan), repeats=args.repeats, warmup=1)
    ratio, point_ratio = t_unet.median / t_sor.median, t_points.median / t_sor.median
    stages = stage_profile(points_filter, cloud)
    sizes = size_rows(points_filter, filters.baseline_filter("sor", {"nb_neighbors": 20, "std_ratio": 2.0}), cloud,
                      [int(s) for s in args.sizes], max(1, min(args.repeats, 3)))
    rate = points / t_points.median
    device = clock.device_report()
    h, w = scan["valid"].shape

    def row(name, t):
        times = " | ".join(f"{v * 1e3:.1f} ms" for v in (t.median, t.low, t.high))
        return f"| {name} | {times} | {points / t.median:,.0f} |"

    table = "\n".join([
        f"Scan {w}x{h}, {points} points; CPU {device['cpu']} ({device['cores']} cores); "
        f"TensorFlow {device['tensorflow']}, Open3D SOR with {sor.params}.", "",
        "| filter | median time | min | max | points/s |", "|---|---|---|---|---|",
        row(f"U-Net ({unet.model.count_params()} parameters, threshold {unet.threshold:g})", t_unet),
        row(f"point filter ({points_filter.model.count_params()} parameters, features "
            f"{points_filter.feature_set}, patches of {points_filter.patch_size})", t_points),
        row("Open3D statistical outlier removal", t_sor), "",
        f"U-Net / SOR time ratio: {ratio:.3f} ({'meets' if ratio <= 0.5 else 'misses'} the target ratio <= 0.5)",
        f"Point filter / SOR time ratio: {point_ratio:.3f}; {rate:,.0f} points/s", "",
        "Point filter stages on the scan: " + ", ".join(f"{k} {v * 1e3:.0f} ms ({v / sum(stages.values()):.0%})"
                                                        for k, v in stages.items()), "",
        "Larger clouds (SOR with 20 neighbours, std ratio 2.0; the point filter in tiles):", "",
        "| points | point filter | points/s | SOR | points/s | ratio to SOR |", "|---|---|---|---|---|---|",
        *(f"| {r['points']:,} | {r['point_filter_s']:.2f} s | {r['point_filter_points_per_s']:,.0f} | "
          f"{r['sor_s']:.2f} s | {r['sor_points_per_s']:,.0f} | {r['ratio_point_filter_over_sor']:.2f} "
          f"({'meets' if r['ratio_point_filter_over_sor'] <= 1 else 'misses'} <= 1) |" for r in sizes)])
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "filter_speed.md", table + "\n")
    atomic_write_text(args.out / "filter_speed.json", json.dumps(
        {"device": device, "scan": {"width": w, "height": h, "points": points}, "unet_s": t_unet.median,
         "point_filter_s": t_points.median, "sor_s": t_sor.median, "ratio_unet_over_sor": ratio,
         "ratio_point_filter_over_sor": point_ratio, "point_filter_points_per_s": rate, "sor_params": sor.params,
         "repeats": args.repeats, "point_filter_stages_s": stages, "sizes": sizes}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
