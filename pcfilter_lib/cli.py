"""The ``pcfilter`` command line.

Each command lives in a small ``_cmd_*`` function that parses nothing itself and imports heavy
libraries (TensorFlow, Open3D) only when it runs, so ``pcfilter --help`` stays instant. Bad input
ends with a one-line reason on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from importlib import metadata

from pcfilter_lib import __version__, config


def _cmd_info(args: argparse.Namespace) -> int:
    """Print versions, settings and visible accelerators, for bug reports and set-up checks."""
    report: dict[str, object] = {"pcfilter": __version__, "python": platform.python_version()}
    for package in ("numpy", "tensorflow", "keras", "open3d", "plotly"):
        try:
            report[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            report[package] = "not installed"
    report.update(config.describe())
    if not args.no_devices:
        from pcfilter_lib import runtime

        runtime.setup(seed=None)
        import tensorflow as tf

        report["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        width = max(map(len, report))
        for key, value in report.items():
            print(f"{key:<{width}}  {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pcfilter",
        description="Deep learning on point clouds and structured-light scans: "
        "simulate scans, train and apply artefact filters, run the book's experiments.",
        epilog="Run 'pcfilter COMMAND --help' for the options of one command. "
        "PCFILTER_FAST=1 makes every run small; PCFILTER_DATA sets the data folder.",
    )
    parser.add_argument("--version", action="version", version=f"pcfilter {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    info = commands.add_parser(
        "info", help="show versions, settings and accelerators",
        description="Show package versions, the data folder, fast mode and the GPUs TensorFlow sees.")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument("--no-devices", action="store_true", help="skip the (slower) TensorFlow device query")
    info.set_defaults(run=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.run(args)
    except (ValueError, OSError) as error:
        print(f"pcfilter {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pcfilter {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
