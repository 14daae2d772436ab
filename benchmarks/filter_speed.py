"""Speed of the learned artefact filters against Open3D statistical outlier removal on the same scan.

All filters start from the same loaded 640x480 scan and end with a keep mask: the U-Net time
includes building the input channels, padding, the network (CPU, warm: traced once before the
clock starts) and thresholding; the point filter sees only the measured points (N, 3) and its time
includes the neighbour search, the features, the patches, the network and combining the patches'
predictions; the SOR time includes building the Open3D cloud. Prints the medians, the point
filter's points per second and the ratios to SOR, and writes them as JSON and markdown.
Targets: U-Net / SOR <= 1; point filter >= 200 000 points/s.

    python benchmarks/filter_speed.py [--scan FILE.npz] [--repeats 5] [--out DIR]

Without ``--scan`` it simulates one 640x480 scan (seed 0, scan 0 of the default recipe).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the comparison is on the CPU, also on a GPU machine

from pcfilter_lib import runtime

runtime.setup(seed=0)

import numpy as np

from pcfilter_lib import filters
from pcfilter_lib.bench import timing as bench
from pcfilter_lib.io.files import atomic_write_text


def load_or_simulate(path: Path | None) -> dict:
    from pcfilter_lib.io.scan import load_scan

    if path is not None:
        return load_scan(path, arrays=())
    from pcfilter_lib.simulate.dataset import make_scan
    from pcfilter_lib.simulate.scanner import ScannerConfig

    return make_scan(0, 0, ScannerConfig(width=640, height=480))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scan", type=Path, help="a scan .npz (default: simulate one 640x480 scan)")
    parser.add_argument("--model", type=Path, default=None, help="U-Net filter (default: the shipped one)")
    parser.add_argument("--point-model", type=Path, default=None, help="point filter (default: the shipped one)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for filter_speed.json/.md")
    args = parser.parse_args(argv)

    scan = load_or_simulate(args.scan)
    unet = filters.unet_filter(args.model)
    points_filter = filters.point_filter(args.point_model)
    sor = filters.baseline_filter("sor")
    cloud = np.asarray(scan["xyz"])[np.asarray(scan["valid"], bool)]
    points = len(cloud)
    t_unet = bench.time_call(lambda: unet.keep_mask(scan), repeats=args.repeats, warmup=2)
    t_points = bench.time_call(lambda: points_filter.keep_probability_points(cloud) >= points_filter.threshold,
                               repeats=args.repeats, warmup=2)
    t_sor = bench.time_call(lambda: sor.keep_mask(scan), repeats=args.repeats, warmup=1)
    ratio, point_ratio = t_unet.median / t_sor.median, t_points.median / t_sor.median
    rate = points / t_points.median
    device = bench.device_report()
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
        f"U-Net / SOR time ratio: {ratio:.3f} ({'meets' if ratio <= 1 else 'misses'} the target ratio <= 1)",
        f"Point filter / SOR time ratio: {point_ratio:.3f}; {rate:,.0f} points/s "
        f"({'meets' if rate >= 200_000 else 'misses'} the target of 200,000 points/s)"])
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "filter_speed.md", table + "\n")
    atomic_write_text(args.out / "filter_speed.json", json.dumps(
        {"device": device, "scan": {"width": w, "height": h, "points": points}, "unet_s": t_unet.median,
         "point_filter_s": t_points.median, "sor_s": t_sor.median, "ratio_unet_over_sor": ratio,
         "ratio_point_filter_over_sor": point_ratio, "point_filter_points_per_s": rate, "sor_params": sor.params,
         "repeats": args.repeats}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
