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


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480 (WIDTHxHEIGHT), got {text!r}") from None
    return width, height


def _parse_split(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(part) for part in text.split("/"))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"split must look like 0.8/0.1/0.1 (train/val/test), got {text!r}")
    return parts


def _cmd_simulate(args: argparse.Namespace) -> int:
    """Simulate a dataset of structured-light scans of bins of parts."""
    from pcfilter_lib.simulate import dataset
    from pcfilter_lib.simulate.scanner import ScannerConfig

    width, height = args.size or config.choose(full=(640, 480), fast=(160, 120))
    scanner = ScannerConfig(width=width, height=height)
    stats = dataset.write_dataset(args.out, args.n, args.seed, scanner, split=args.split,
                                  n_parts=(args.min_parts, args.max_parts), mesh_files=args.mesh or ())
    print(f"{len(stats)} scans of {width}x{height} in {args.out}")
    print(dataset.summarise(stats))
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

    simulate = commands.add_parser(
        "simulate", help="simulate a dataset of structured-light scans",
        description="Simulate scans of bins of parts with a structured-light scanner model (shadows, "
        "inter-reflections, mixed pixels, specular saturation, depth noise) into OUT/{train,val,test}/ with "
        "a manifest.json. A stopped run resumes when started again with the same options.")
    simulate.add_argument("--out", required=True,
                          help="dataset folder (created; resumed if made with the same options)")
    simulate.add_argument("--n", type=int, required=True, help="number of scans")
    simulate.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    simulate.add_argument("--size", type=_parse_size, metavar="WxH",
                          help="scan size in pixels (default 640x480, 160x120 with PCFILTER_FAST=1)")
    simulate.add_argument("--split", type=_parse_split, default=(0.8, 0.1, 0.1), metavar="TRAIN/VAL/TEST",
                          help="fractions of scans per split (default 0.8/0.1/0.1)")
    simulate.add_argument("--min-parts", type=int, default=3, help="fewest parts per bin (default 3)")
    simulate.add_argument("--max-parts", type=int, default=15, help="most parts per bin (default 15)")
    simulate.add_argument("--mesh", action="append", metavar="FILE",
                          help="a mesh file (ply, obj, stl, off) to add to the parts library; repeatable")
    simulate.set_defaults(run=_cmd_simulate)
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
