"""``pcfilter info``: versions, settings and visible accelerators, for bug reports and set-up checks."""

from __future__ import annotations

import argparse
import json
import platform
from importlib import metadata

from pcfilter_lib import __version__, config, runtime


def run(args: argparse.Namespace) -> int:
    """Print versions, settings and visible accelerators, for bug reports and set-up checks."""
    report: dict[str, object] = {"pcfilter": __version__, "python": platform.python_version()}
    for package in ("numpy", "tensorflow", "keras", "open3d", "plotly"):
        try:
            report[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            report[package] = "not installed"
    report.update(config.describe())
    report["cpu_allocator"] = runtime.cpu_allocator()
    report["onednn"] = runtime.onednn()
    if not args.no_devices:
        runtime.setup(seed=None)
        import tensorflow as tf  # after runtime.setup, which imports it with its start-up logs muted

        report["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
        report["graph_optimiser"] = runtime.graph_optimiser()
        report["xla_optimisation"] = runtime.xla_optimisation()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        width = max(map(len, report))
        for key, value in report.items():
            print(f"{key:<{width}}  {value}")
    return 0
