"""User and system CPU of full-size training with and without TensorFlow's pooling CPU allocator.

Runs the standard training workloads of ``pcfilter bench`` (``timing.workloads``, full size) in fresh
processes, once with ``TF_CPU_ALLOCATOR_USE_BFC=false`` (TensorFlow's default allocator) and once with
``true`` (the project's setting), one after the other in the same run, and prints the wall time and the
process's user and system CPU of the timed epochs with the ratios. A regression of the allocator
setting shows as a system-time ratio near 1.

    python benchmarks/training_cpu.py [--models pointnet unet] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from pcfilter_lib.io.files import atomic_write_text
from pcfilter_lib.timing import clock, workloads

SETTINGS = {"default": "false", "bfc": "true"}


def table(rows: list[dict]) -> str:
    lines = ["| model | allocator | train wall (s) | user CPU (s) | system CPU (s) | peak resident (MB) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['allocator']} | {r['train_s']:.1f} | {r['train_user_s']:.1f} "
                     f"| {r['train_system_s']:.1f} | {r['peak_rss_mb']:.0f} |")
    lines += ["", "| model | wall default / bfc | user default / bfc | system default / bfc |", "|---|---|---|---|"]
    for model in dict.fromkeys(r["model"] for r in rows):
        d, b = ({r["allocator"]: r for r in rows if r["model"] == model}[k] for k in SETTINGS)
        lines.append(f"| {model} | {d['train_s'] / b['train_s']:.2f} | {d['train_user_s'] / b['train_user_s']:.2f} "
                     f"| {d['train_system_s'] / max(b['train_system_s'], 1e-3):.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=workloads.MODELS, default=["pointnet", "unet"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                        help="folder for training_cpu.json/.md")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    rows = []
    for model in args.models:
        for name, value in SETTINGS.items():
            row = workloads.run_in_subprocess("tensorflow", model, sizes=workloads.FULL,
                                              env={"TF_CPU_ALLOCATOR_USE_BFC": value})
            if "skipped" in row:
                raise SystemExit(f"{model} with the {name} allocator: {row['skipped']}")
            rows.append({"allocator": name, **row})
            print(f"{model:9s} {name:8s} wall {row['train_s']:7.1f} s  user {row['train_user_s']:7.1f} s  "
                  f"system {row['train_system_s']:7.1f} s  peak {row['peak_rss_mb']:6.0f} MB", flush=True)
    text = table(rows)
    print(text)
    report = {"measured": datetime.now(UTC).isoformat(timespec="seconds"), "device": clock.device_report(),
              "load_average": load, "sizes": json.loads(workloads.FULL.to_json()), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "training_cpu.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(args.out / "training_cpu.md",
                      f"# Training CPU time by allocator\n\nMeasured {report['measured']} on "
                      f"{report['device'].get('cpu', 'this machine')}, load average before the run "
                      f"{report['load_average'][0]:.2f}; full-size workloads of `timing.workloads`.\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
