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


SHIPPED_NAMES = ("unet", "points")


def _make_filter(args: argparse.Namespace, organised: bool = True):
    """The filter asked for: ``--method`` (a baseline with its tuned parameters) or ``--model`` (a
    file, or ``unet`` / ``points`` for the shipped filters; by default the U-Net for organised input
    and the point filter for unorganised clouds), with its manifest's threshold unless ``--threshold``."""
    from pcfilter_lib import filters

    if args.method:
        if args.threshold is not None:
            raise ValueError("--threshold applies to a model; the baselines give a yes/no answer")
        if args.method == "morph" and not organised:
            raise ValueError("--method morph works on the pixel grid of an organised scan; this input is an "
                             "unorganised cloud (use the point filter, or --method sor / ror)")
        return filters.baseline_filter(args.method)
    if args.model == "points":
        return filters.point_filter(None, args.threshold)
    if args.model == "unet":
        if not organised:
            raise ValueError("the U-Net filter needs an organised scan; this input is an unorganised cloud")
        return filters.unet_filter(None, args.threshold)
    return filters.load_filter(args.model, args.threshold, organised)


def _read_filter_input(path):
    """A scan .npz, or a cloud file (see ``pcfilter_lib.io.organised``), as a scan-like dict."""
    if path.suffix.lower() == ".npz":
        from pcfilter_lib.io.scan import load_scan

        return {**load_scan(path, arrays=()), "organised": True}
    from pcfilter_lib.io.organised import read_cloud

    return read_cloud(path)


def _cmd_filter(args: argparse.Namespace) -> int:
    """Remove artefacts from one scan or cloud and write the kept (and removed) points."""
    from pathlib import Path

    import numpy as np

    from pcfilter_lib.io import organised

    source = Path(args.input)
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist")
    targets = [Path(p) for p in (args.output, args.removed) if p]
    for target in targets:
        if target.resolve() == source.resolve():
            raise ValueError(f"{target} is the input file; choose another output name (the input is never overwritten)")
        if target.suffix.lower() not in (".ply", ".pcd"):
            raise ValueError(f"{target}: outputs are written as .ply (points) or .pcd (organised grid)")
    if len(targets) == 2 and targets[0].resolve() == targets[1].resolve():
        raise ValueError("-o and --removed name the same file")
    scan = _read_filter_input(source)
    learned_unet = args.method is None and args.model != "points" and scan["organised"]
    if learned_unet and scan["intensity"] is None:
        raise ValueError(f"{source} has no intensity field, which the U-Net reads; add one, or use --model points "
                         "or --method")
    from pcfilter_lib import runtime

    runtime.setup(seed=None)  # the filters import Keras; keep TensorFlow's start-up logs off stderr
    scan_filter = _make_filter(args, scan["organised"])
    keep = scan_filter.keep_mask(scan)
    valid = np.asarray(scan["valid"], bool)
    removed = valid & ~keep
    for target, mask in zip(targets, (keep, removed), strict=False):
        if target.suffix.lower() == ".pcd" and scan["organised"]:
            organised.write_organised(target, scan["xyz"], scan["intensity"], keep=mask)
        else:
            intensity = None if scan["intensity"] is None else np.asarray(scan["intensity"])[mask]
            organised.write_points(target, np.asarray(scan["xyz"])[mask], intensity)
    n = int(valid.sum())
    print(f"{scan_filter.name}: kept {int(keep.sum())} of {n} points, removed {int(removed.sum())} "
          f"({removed.sum() / n:.2%}); wrote {', '.join(map(str, targets))}")
    if not scan["organised"] and n < valid.size:
        print(f"dropped {valid.size - n} points with NaN or infinite coordinates (written to neither file)")
    return 0


def _evaluation_data(args: argparse.Namespace):
    """(description, scans or clouds, organised) for ``evaluate``: a split of a scan dataset, or a
    folder of PointCleanNet pairs name.xyz + name.outliers (1 = outlier)."""
    from pathlib import Path

    from pcfilter_lib.io.files import read_manifest

    folder = Path(args.data)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    if read_manifest(folder) is not None:
        from pcfilter_lib import filters
        from pcfilter_lib.data.scans import split_files

        files = split_files(folder, args.split)
        return f"{len(files)} {args.split} scans of {folder}", filters.iter_scans(files), True
    pairs = sorted(p for p in folder.glob("*.xyz") if p.with_suffix(".outliers").is_file())
    if not pairs:
        raise FileNotFoundError(f"{folder} holds neither a manifest.json (a scan dataset: make one with 'pcfilter "
                                "simulate') nor name.xyz + name.outliers pairs (PointCleanNet layout)")
    from pcfilter_lib.io.clouds import cloud_scan, read_pointcleannet

    def clouds():
        for path in pairs:
            points, outlier = read_pointcleannet(path)
            yield cloud_scan(points, label=~outlier)

    return f"{len(pairs)} point clouds (.xyz + .outliers) of {folder}", clouds(), False


def _cmd_evaluate(args: argparse.Namespace) -> int:
    """Measure a filter on one split of a scan dataset or on a folder of labelled clouds."""
    from pcfilter_lib import runtime

    what, scans, organised = _evaluation_data(args)  # a quick answer before TensorFlow starts
    runtime.setup(seed=None)
    from pcfilter_lib import filters

    scan_filter = _make_filter(args, organised)
    result = filters.evaluate_filter(scan_filter, scans, progress=not args.json)
    params = getattr(scan_filter, "params", None)
    result.update(split=args.split if organised else None, data=str(args.data),
                  threshold=scan_filter.threshold if args.method is None else None, params=params or None)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['filter']} on {what}"
          + (f" (threshold {scan_filter.threshold:g})" if args.method is None else f" ({params})"))
    print(f"  confusion (1 = keep): TP {result['tp']}  FN {result['fn']}  FP {result['fp']}  TN {result['tn']}")
    for name in ("mean_iou", "balanced_accuracy", "f1", "recall", "false_omission_rate", "iou_keep", "iou_artefact"):
        label = {"recall": "keep-recall (true points kept)"}.get(name, name.replace("_", " "))
        print(f"  {label:<32} {result[name]:.4f}")
    for kind, row in result["kinds"].items():
        removed = "no points" if row["removed"] is None else f"{row['removed']:.4f} removed"
        print(f"  artefact kind {kind:<18} {row['points']:>9} points, {removed}")
    return 0


def _cmd_modelnet(args: argparse.Namespace) -> int:
    """Write the procedural ModelNet10 stand-in (the real layout of .off meshes) into a folder."""
    if not args.synthetic:
        raise ValueError("only --synthetic is available here; the real archive comes from "
                         "data_scripts/download_modelnet10.py")
    from pcfilter_lib.data import procedural_modelnet

    out = procedural_modelnet.generate(args.out, seed=args.seed, progress=not args.quiet)
    print(f"procedural ModelNet10 in {out}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    """Time the standard workloads per backend and add the rows to the results file."""
    from pathlib import Path

    from pcfilter_lib import runtime

    runtime.setup(seed=None)
    from pcfilter_lib.bench import workloads

    out = Path(args.out) if args.out else config.data_dir() / "bench" / "results.json"
    rows = workloads.collect(args.backends, args.models, progress=not args.json,
                             sizes=config.choose(full=workloads.FULL, fast=workloads.FAST))
    workloads.append_results(out, rows)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(workloads.format_table(rows))
        print(f"\n{len(rows)} rows added to {out}")
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

    methods = ("sor", "ror", "morph")

    def add_filter_choice(command):
        choice = command.add_mutually_exclusive_group()
        choice.add_argument("--model", metavar="M",
                            help="a filter .keras file, or 'unet' / 'points' for the shipped U-Net / point filter "
                            "(default: the U-Net for scans and organised clouds, the point filter for others)")
        choice.add_argument("--method", choices=methods,
                            help="a classical filter instead, with the parameters tuned on validation scans")
        command.add_argument("--threshold", type=float, metavar="T",
                             help="keep a point when P(keep) >= T (default: the threshold in the model's manifest)")

    filter_ = commands.add_parser(
        "filter", help="remove artefacts from a scan or a point cloud",
        description="Remove artefacts from a scan (.npz) or a point cloud (.ply, .pcd, .xyz, or .pts / .xyzn / "
        ".xyzrgb through Open3D). Organised input (a scan, a .pcd with HEIGHT > 1, or a .ply whose header has "
        "'obj_info width W' and 'obj_info height H' and W*H vertices, NaN = no point) goes through the U-Net; "
        "an unorganised cloud goes through the point filter, which needs only x y z. Points with NaN or infinite "
        "coordinates are dropped and counted. OUT ending in .ply gets the kept points; OUT ending in .pcd keeps "
        "an organised grid, with NaN where a point was removed. A file too large to filter in the available "
        "memory is refused before it is read.")
    filter_.add_argument("input", metavar="IN", help="scan .npz or point cloud file (never overwritten)")
    filter_.add_argument("-o", "--output", required=True, metavar="OUT", help="kept points (.ply or .pcd)")
    filter_.add_argument("--removed", metavar="R", help="also write the removed points here (.ply or .pcd)")
    add_filter_choice(filter_)
    filter_.set_defaults(run=_cmd_filter)

    evaluate = commands.add_parser(
        "evaluate", help="measure a filter on a scan dataset or labelled clouds",
        description="Measure a filter on one split of a scan dataset (made by 'pcfilter simulate'), or on a folder "
        "of labelled clouds in the PointCleanNet layout (name.xyz with 'x y z' lines, name.outliers with one 0/1 "
        "line per point, 1 = outlier): confusion counts, balanced accuracy, mean IoU, F1, false omission rate, "
        "keep-recall and, for scans, the share of each artefact kind removed.")
    evaluate.add_argument("--data", required=True, metavar="DIR",
                          help="dataset folder with a manifest.json, or a folder of .xyz + .outliers pairs")
    evaluate.add_argument("--split", default="test", choices=("train", "val", "test"),
                          help="split of a scan dataset (default: test)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    add_filter_choice(evaluate)
    evaluate.set_defaults(run=_cmd_evaluate)
    modelnet = commands.add_parser(
        "modelnet", help="write the procedural ModelNet10 stand-in",
        description="Write a procedural ModelNet10-style data set: the ten ModelNet10 classes as .off meshes in "
        "the real layout OUT/<class>/{train,test}/<class>_NNNN.off with a manifest.json; 3991 training and "
        "908 test meshes (a few per class with PCFILTER_FAST=1). An interrupted run resumes.")
    modelnet.add_argument("--synthetic", action="store_true", required=True,
                          help="generate the procedural stand-in (required: nothing is downloaded)")
    modelnet.add_argument("--out", required=True, help="output folder (new, or one this command wrote)")
    modelnet.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    modelnet.add_argument("--quiet", action="store_true", help="no progress bar")
    modelnet.set_defaults(run=_cmd_modelnet)

    from pcfilter_lib.bench.workloads import BACKENDS, MODELS

    bench = commands.add_parser(
        "bench", help="time the U-Net filter and PointNet on this machine, per Keras backend",
        description="Train and run the standard workloads (fixed seeded data) under each Keras backend, each in "
        "its own process, and print the table device | API | backend | train time | inference time with the "
        "achieved GFLOP/s and their share of the matmul speed measured in the same run. Rows are added to the "
        "results file; rows already there (other machines, earlier runs) are kept. Backends that are not "
        "installed are listed as skipped.")
    bench.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS), help="default: all")
    bench.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="default: all")
    bench.add_argument("--json", action="store_true", help="print the new rows as JSON")
    bench.add_argument("--out", help="results file (default: DATA/bench/results.json, see PCFILTER_DATA)")
    bench.set_defaults(run=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.run(args)
    except (ValueError, OSError, MemoryError) as error:
        print(f"pcfilter {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pcfilter {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
