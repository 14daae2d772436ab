"""``pcfilter filter`` on one whole, dense PhoXi-sized scan in PTX: the U-Net against SOR, as a user runs them.

It simulates one scan of the whole 2064 x 1544 sensor of a PhoXi scanner (``ScannerConfig(width=2064,
height=1544)``, seed 0, scan 0 of the default recipe: most pixels hold a point, unlike the cropped
real scans), writes it as ``.ptx.gz`` with ``io.ptx.write_ptx`` and then runs, each in its own
process whose peak resident memory this one reads from the kernel (``ru_maxrss``, as
``benchmarks/filter_speed.py --command-line`` does; for a large PTX scan ``pcfilter filter`` uses a
second process, so the peak of all its processes together is sampled too), with its CPU time::

    pcfilter filter SCAN.ptx.gz -o KEPT.ptx.gz --quiet --model unet
    pcfilter filter SCAN.ptx.gz -o KEPT.ptx.gz --quiet --method sor

one after the other, ``--repeats`` times in turn, so that both meet the same load on the machine,
and then once more each, untimed, sampling the memory of all their processes.
Reading the PTX, filtering and writing the PTX are all included. Prints and writes
``ptx_filter_speed.{json,md}``: each command's median wall time and peak memory, and the ratio
U-Net / SOR of the medians and of each round. Targets: the U-Net no slower than SOR (ratio <= 1)
and its peak memory <= 2 GB.

    python benchmarks/ptx_filter_speed.py [--repeats 3] [--out DIR] [--work DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the comparison is on the CPU, also on a GPU machine
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from pcfilter_lib.io.files import atomic_write_text
from pcfilter_lib.timing import clock

WIDTH, HEIGHT = 2064, 1544  # PhoXi's whole sensor
COMMANDS = {"U-Net": ["--model", "unet"], "SOR": ["--method", "sor"]}
PEAK_LIMIT = 2e9


def write_scan(path: Path, seed: int = 0) -> dict:
    """Simulate the dense PhoXi-sized scan and write it as PTX; its size and point count."""
    from pcfilter_lib.io.ptx import write_ptx
    from pcfilter_lib.simulate.dataset import make_scan
    from pcfilter_lib.simulate.scanner import ScannerConfig

    scan = make_scan(seed=seed, index=0, config=ScannerConfig(width=WIDTH, height=HEIGHT))
    points = write_ptx(path, scan["xyz"], scan["intensity"], keep=scan["valid"])
    return {"width": WIDTH, "height": HEIGHT, "points": points, "seed": seed, "file_bytes": path.stat().st_size}


def measure(command: list[str], sample: bool = False) -> dict:
    """Run ``command`` in its own process: its wall time, CPU time (user + system, its own processes
    included) and the peak resident memory of its largest process (``ru_maxrss``, as
    ``filter_memory.peak_memory`` reads it). With ``sample``, also the peak of all its processes
    together (the sum of their proportional set sizes, which counts pages they share once), sampled
    every 50 ms (``pcfilter filter`` reads a large PTX scan in a second process); reading them costs
    time in the large TensorFlow process, so sampled runs are not timed."""
    import psutil

    with tempfile.TemporaryFile() as output:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        together = 0
        while sample:
            done, status, usage = os.wait4(child.pid, os.WNOHANG)
            if done:
                break
            with contextlib.suppress(psutil.Error):
                family = [psutil.Process(child.pid)]
                family += family[0].children(recursive=True)
                together = max(together, sum(p.memory_full_info().pss for p in family))
            time.sleep(0.05)
        if not sample:
            _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            output.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}): {output.read()[-2000:]!r}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_bytes": usage.ru_maxrss * 1024,
            **({"peak_together_bytes": together} if sample else {})}


def run_commands(path: Path, out: Path, repeats: int) -> dict[str, list[dict]]:
    """``measure`` of each command, ``repeats`` timed rounds of the commands in turn, then one round
    that samples the memory of all their processes."""
    pcfilter = str(Path(sys.executable).with_name("pcfilter"))
    runs: dict[str, list[dict]] = {name: [] for name in COMMANDS}
    for round_ in range(repeats + 1):
        sample = round_ == repeats
        for name, options in COMMANDS.items():
            run = measure([pcfilter, "filter", str(path), "-o", str(out), "--quiet", *options], sample)
            out.unlink()
            if sample:
                last = runs[name][-1]
                last["peak_together_bytes"] = run["peak_together_bytes"]
                last["peak_rss_bytes"] = max(last["peak_rss_bytes"], run["peak_rss_bytes"])
                print(f"memory round: {name} {run['peak_rss_bytes'] / 1e9:.2f} GB largest process, "
                      f"{run['peak_together_bytes'] / 1e9:.2f} GB together", flush=True)
                continue
            runs[name].append(run)
            print(f"round {round_ + 1}: {name} {run['wall_s']:.1f} s (CPU {run['cpu_s']:.1f} s), "
                  f"{run['peak_rss_bytes'] / 1e9:.2f} GB", flush=True)
    return runs


def summary(runs: dict[str, list[dict]]) -> dict:
    result = {name: {"wall_s": float(np.median([x["wall_s"] for x in r])), "walls_s": [x["wall_s"] for x in r],
                     "cpu_s": float(np.median([x["cpu_s"] for x in r])),
                     "peak_rss_bytes": max(x["peak_rss_bytes"] for x in r),
                     "peak_together_bytes": max(x.get("peak_together_bytes", 0) for x in r)}
              for name, r in runs.items()}
    result["ratio_unet_over_sor"] = result["U-Net"]["wall_s"] / result["SOR"]["wall_s"]
    result["ratios_per_round"] = [u / s for u, s in zip(result["U-Net"]["walls_s"], result["SOR"]["walls_s"],
                                                         strict=True)]
    return result


def table(scan: dict, result: dict, device: dict, repeats: int) -> str:
    ratio = result["ratio_unet_over_sor"]
    peak = max(result["U-Net"]["peak_rss_bytes"], result["U-Net"]["peak_together_bytes"])
    lines = [f"`pcfilter filter SCAN.ptx.gz -o KEPT.ptx.gz` in its own process (reading, filtering, writing) on "
             f"one simulated dense {scan['width']} x {scan['height']} scan ({scan['points']:,} points, "
             f"{scan['file_bytes'] / 1e6:.0f} MB gzip-compressed PTX); CPU {device['cpu']} ({device['cores']} cores); "
             f"median of {repeats} runs, the two commands in turn. Peak: resident memory of the largest process "
             "(ru_maxrss), and of all the command's processes together (proportional set sizes, sampled every 50 ms "
             "in one more run of each, not timed).",
             "",
             "| filter | wall time | runs | CPU time | peak memory | all processes |", "|---|---|---|---|---|---|"]
    for name in COMMANDS:
        r = result[name]
        lines.append(f"| {name} | {r['wall_s']:.1f} s | {', '.join(f'{w:.1f}' for w in r['walls_s'])} s | "
                     f"{r['cpu_s']:.1f} s | {r['peak_rss_bytes'] / 1e9:.2f} GB | "
                     f"{r['peak_together_bytes'] / 1e9:.2f} GB |")
    lines += ["", f"U-Net / SOR: {ratio:.2f} (rounds: {', '.join(f'{x:.2f}' for x in result['ratios_per_round'])}); "
              f"target <= 1: {'met' if ratio <= 1 else 'missed'}. U-Net peak, all processes, {peak / 1e9:.2f} GB; "
              f"target <= {PEAK_LIMIT / 1e9:.0f} GB: {'met' if peak <= PEAK_LIMIT else 'missed'}."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the two commands (default 3)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                        help="folder for ptx_filter_speed.json/.md")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the scan (default: a temporary one); a SCAN.ptx.gz there is reused")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    with tempfile.TemporaryDirectory(prefix="pcfilter-ptx-") as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        path = work / f"scan_{WIDTH}x{HEIGHT}.ptx.gz"
        if path.is_file():
            from pcfilter_lib.io.ptx import read_ptx_header

            read_ptx_header(path)
            scan = {"width": WIDTH, "height": HEIGHT, "points": None, "seed": 0, "file_bytes": path.stat().st_size}
            from pcfilter_lib.io.ptx import read_ptx

            scan["points"] = int(read_ptx(path)["valid"].sum())
        else:
            scan = write_scan(path)
        print(f"scan: {scan}", flush=True)
        result = summary(run_commands(path, work / "kept.ptx.gz", args.repeats))
    device = clock.device_report()
    text = table(scan, result, device, args.repeats)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "ptx_filter_speed.md", text + "\n")
    atomic_write_text(args.out / "ptx_filter_speed.json", json.dumps(
        {"device": device, "scan": scan, "repeats": args.repeats, "commands": COMMANDS, **result}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
