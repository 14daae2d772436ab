"""User and system CPU of full-size training with and without one of the project's TensorFlow settings.

Runs the standard training workloads of ``pcfilter bench`` (``timing.workloads``, full size) in fresh
processes, once with TensorFlow's default and once with the project's setting, one after the other in
the same run, and prints the wall time and the process's user and system CPU of the timed epochs with
the ratios. ``--setting allocator`` (the default) compares ``TF_CPU_ALLOCATOR_USE_BFC=false`` with
``true``: a regression shows as a system-time ratio near 1. ``--setting onednn`` compares
``TF_ENABLE_ONEDNN_OPTS=0`` with ``1``: on a processor without AVX-512 VNNI, where TensorFlow leaves
oneDNN off by itself, the wall ratios of the U-Net, the 3D U-Net and YOVO show what the setting gains.

    python benchmarks/training_cpu.py [--setting allocator|onednn] [--models pointnet unet voxel_unet yovo] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from pcfilter_lib.io.files import atomic_write_text
from pcfilter_lib.timing import clock, workloads

# setting -> (variable, {row label: value}); the first label is TensorFlow's default, the second the project's
SETTINGS = {"allocator": ("TF_CPU_ALLOCATOR_USE_BFC", {"default": "false", "bfc": "true"}),
            "onednn": ("TF_ENABLE_ONEDNN_OPTS", {"oneDNN off": "0", "oneDNN on": "1"})}


def table(rows: list[dict], setting: str = "allocator") -> str:
    """The rows and, per model, the ratios default / project of wall time, user and system CPU."""
    labels = list(SETTINGS[setting][1])
    lines = [f"| model | {setting} | train wall (s) | user CPU (s) | system CPU (s) | peak resident (MB) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r[setting]} | {r['train_s']:.1f} | {r['train_user_s']:.1f} "
                     f"| {r['train_system_s']:.1f} | {r['peak_rss_mb']:.0f} |")
    pair = " / ".join(labels)
    lines += ["", f"| model | wall {pair} | user {pair} | system {pair} |", "|---|---|---|---|"]
    for model in dict.fromkeys(r["model"] for r in rows):
        d, b = ({r[setting]: r for r in rows if r["model"] == model}[k] for k in labels)
        lines.append(f"| {model} | {d['train_s'] / b['train_s']:.2f} | {d['train_user_s'] / b['train_user_s']:.2f} "
                     f"| {d['train_system_s'] / max(b['train_system_s'], 1e-3):.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", choices=SETTINGS, default="allocator",
                        help="what to compare: the CPU allocator (default) or oneDNN's kernels")
    parser.add_argument("--models", nargs="+", choices=workloads.CPU_MODELS,
                        default=list(workloads.CPU_MODELS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                        help="folder for training_cpu.json/.md (training_cpu_onednn.* with --setting onednn)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    variable, values = SETTINGS[args.setting]
    rows = []
    for model in args.models:
        for name, value in values.items():
            row = workloads.run_in_subprocess("tensorflow", model, sizes=workloads.FULL, env={variable: value})
            if "skipped" in row:
                raise SystemExit(f"{model} with {variable}={value}: {row['skipped']}")
            rows.append({args.setting: name, **row})
            print(f"{model:9s} {name:8s} wall {row['train_s']:7.1f} s  user {row['train_user_s']:7.1f} s  "
                  f"system {row['train_system_s']:7.1f} s  peak {row['peak_rss_mb']:6.0f} MB", flush=True)
    text = table(rows, args.setting)
    print(text)
    report = {"measured": datetime.now(UTC).isoformat(timespec="seconds"), "device": clock.device_report(),
              "load_average": load, "setting": args.setting, "sizes": json.loads(workloads.FULL.to_json()),
              "rows": rows}
    stem = "training_cpu" if args.setting == "allocator" else f"training_cpu_{args.setting}"
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / f"{stem}.json", json.dumps(report, indent=2) + "\n")
    title = {"allocator": "allocator", "onednn": "oneDNN kernels"}[args.setting]
    atomic_write_text(args.out / f"{stem}.md",
                      f"# Training CPU time by {title}\n\nMeasured {report['measured']} on "
                      f"{report['device'].get('cpu', 'this machine')}, load average before the run "
                      f"{report['load_average'][0]:.2f}; full-size workloads of `timing.workloads`.\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
