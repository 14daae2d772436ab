"""The ``pcfilter`` parser, its exit statuses and its handling of Ctrl-C.

``main`` parses the command line, imports the module of the command asked for
(``pcfilter_lib.cli.<command>``, with a ``run(args) -> int``) and runs it. Only this module and
``options`` are imported before then, and neither loads NumPy: ``pcfilter --help`` answers at once,
and an interrupt while a command's module loads gives its one line, not a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import re
import signal
import sys

from pcfilter_lib import __version__
from pcfilter_lib.cli.options import (
    MAX_PARTS,
    MAX_SEED,
    MAX_TILE_POINTS,
    MESH_SUFFIXES,
    MIN_TILE_POINTS,
    add_cluster_options,
    add_filter_choice,
    add_grid_option,
    add_overwrite,
)
from pcfilter_lib.timing.names import BACKENDS, MODELS

# Options whose value may start with '-' followed by a digit ('--size -160x120'): argparse would take
# the value for an option and say only "expected one argument"; joined as '--size=-160x120', the
# value reaches the commands' checks, which say what is wrong with it.
VALUE_OPTIONS = ("--n", "--seed", "--size", "--split", "--min-parts", "--max-parts", "--threshold", "--upsample",
                 "--depth", "--jobs", "--tile-points")
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)  # a write that found no room: the message names the file and what to do


class Interrupts:
    """Ctrl-C, noted as well as raised: TensorFlow sometimes catches the KeyboardInterrupt and raises
    another error instead, or none, so the note is checked before anything is written. An interrupt
    that lands in a garbage-collection callback (JAX has one) cannot propagate; Python would print it
    as "Exception ignored", so ``unraisable`` keeps it quiet: the note stops the run instead."""

    seen = False

    @classmethod
    def handle(cls, signum, frame) -> None:
        cls.seen = True
        raise KeyboardInterrupt

    @staticmethod
    def unraisable(report) -> None:
        if not issubclass(report.exc_type, KeyboardInterrupt):
            sys.__unraisablehook__(report)

    @classmethod
    def check(cls) -> None:
        """Raise KeyboardInterrupt if Ctrl-C came, even if some library swallowed it."""
        if cls.seen:
            raise KeyboardInterrupt


def one_line(error: BaseException) -> str:
    """The error's message on one line, without terminal colour codes (Open3D colours its errors)."""
    if isinstance(error, OSError) and error.strerror and error.filename and error.errno in FULL_DISK:
        text = f"cannot write {error.filename}: {error.strerror}; free some space there or write elsewhere"
    elif isinstance(error, OSError) and error.strerror and error.filename:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(error)
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())
    if not text and isinstance(error, MemoryError):
        return "out of memory; try a smaller input or close other programs"
    return text or type(error).__name__


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the reason and where to read the options. The top-level parser's
    ``commands`` are the parsers of its commands, by name."""

    commands: dict[str, argparse.ArgumentParser] = {}

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _add_info(commands) -> None:
    info = commands.add_parser(
        "info", help="show versions, settings and accelerators",
        description="Show package versions, the data folder, fast mode and the GPUs TensorFlow sees.")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument("--no-devices", action="store_true", help="skip the (slower) TensorFlow device query")


def _add_simulate(commands) -> None:
    simulate = commands.add_parser(
        "simulate", help="simulate a dataset of structured-light scans",
        description="Simulate scans of bins of parts, circuit boards or fruit with a structured-light scanner "
        "model (shadows, inter-reflections, mixed pixels, specular saturation, phase-unwrapping errors, depth "
        "noise) into OUT/{train,val,test}/ with a manifest.json. A stopped run resumes when started again with "
        "the same options.")
    simulate.add_argument("--out", required=True,
                          help="dataset folder (created; resumed if made with the same options)")
    simulate.add_argument("--n", type=int, required=True, help="number of scans, 1 to 100000")
    simulate.add_argument("--seed", type=int, default=0, help=f"random seed, 0 to {MAX_SEED} (default 0)")
    simulate.add_argument("--size", metavar="WxH",
                          help="scan size in pixels, each side 8 to 8192 (default 640x480, 160x120 with "
                          "PCFILTER_FAST=1)")
    simulate.add_argument("--split", default="0.8/0.1/0.1", metavar="TRAIN/VAL/TEST",
                          help="fractions of scans per split (default 0.8/0.1/0.1)")
    simulate.add_argument("--min-parts", type=int, default=3,
                          help="fewest parts per bin, 0 to --max-parts (default 3)")
    simulate.add_argument("--max-parts", type=int, default=15,
                          help=f"most parts per bin, 0 to {MAX_PARTS} and at least --min-parts (default 15)")
    simulate.add_argument("--mesh", action="append", metavar="FILE",
                          help="a mesh file (ply, obj, stl, off) to add to the parts library of bins; repeatable")
    simulate.add_argument("--families", default="bin", metavar="NAME=SHARE,...",
                          help="scene families and their shares: bin, board (circuit boards with heat sinks), "
                          "fruit (translucent fruit on a plate); e.g. bin=0.4,board=0.35,fruit=0.25 (default bin)")
    simulate.add_argument("--random-scanner", action="store_true",
                          help="draw the scanner per scan (image size scaled from --size, baseline, distance, "
                          "noise, pattern period), recorded in each scan")
    simulate.add_argument("--semantic", action="store_true",
                          help="also record the semantic class of every pixel (background, table, bin or support, "
                          "part type) as the array 'semantic' of each scan")
    add_cluster_options(simulate, "each scan is")


def _add_filter(commands) -> None:
    filter_ = commands.add_parser(
        "filter", help="remove artefacts from a scan or a point cloud",
        description="Remove artefacts from a scan (.npz) or a point cloud (.ply, .pcd, .xyz, PTX .ptx / .ptx.gz, "
        "LiDAR .las / .laz, or .pts / .xyzn / .xyzrgb through Open3D). Organised input (a scan, a PTX file as "
        "PhoXi Control or Leica Cyclone write it, 0 0 0 = no point, a .pcd with HEIGHT > 1, a .ply whose header "
        "has 'obj_info width W' and 'obj_info height H' and W*H vertices, NaN = no point, or a .ply read as a "
        "grid by --grid) goes through the U-Net; an unorganised cloud goes through the point filter, which needs "
        "only x y z. Points "
        "with NaN or infinite coordinates are dropped and counted. OUT ending in .ply gets the kept points; OUT "
        "ending in .pcd keeps an organised grid, with NaN where a point was removed, and OUT ending in .ptx or "
        ".ptx.gz one with 0 0 0 0 lines there and the input's PTX header; coordinates keep the input's "
        "precision. A .las or .laz IN is read and written in chunks, and a .las / .laz OUT keeps every attribute "
        "of its points (intensity, returns, classification, GPS time, colour, extra bytes) and the input's point "
        "format, version, scales and offsets; a cloud of another format written as LAS gets LAS 1.4 point format "
        "6 with scales and offsets chosen from its extent (0.1 mm or finer for clouds in metres up to 100 km "
        "wide). A file too large to filter in the available memory is refused before it is read. A filter that "
        "removes every point writes nothing and fails, unless --allow-empty. An output that already exists is "
        "refused before any work unless --overwrite; IN is never replaced.")
    filter_.add_argument("input", metavar="IN",
                         help="scan .npz, point cloud file, or a folder of them (never overwritten)")
    filter_.add_argument("-o", "--output", required=True, metavar="OUT",
                         help="kept points (.ply, .pcd, .xyz, .las, .laz, or .ptx / .ptx.gz for organised input); "
                         "with a folder IN, the output folder")
    filter_.add_argument("--removed", metavar="R",
                         help="also write the removed points here (.ply, .pcd, .xyz, .las, .laz, .ptx or .ptx.gz)")
    filter_.add_argument("--scores", metavar="S",
                         help="also write every point with its keep probability (.ply: scalar 'keep_probability'; "
                         ".las / .laz: a float32 extra-bytes dimension 'keep_probability')")
    filter_.add_argument("--classify", action="store_true",
                         help="with a .las or .laz OUT: write every point, the removed ones with classification 7 "
                         "(ASPRS low point / noise), as PDAL's outlier filter does, instead of dropping them; the "
                         "other points keep their class")
    filter_.add_argument("--allow-empty", action="store_true",
                         help="write the outputs even when the filter removes every point")
    add_overwrite(filter_)
    filter_.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_cluster_options(filter_, "each file of a folder IN, or each tile of a large cloud, is")
    filter_.add_argument("--tile-points", type=int, default=None, metavar="T",
                         help=f"points per tile of a large unorganised cloud, {MIN_TILE_POINTS} to "
                         f"{MAX_TILE_POINTS} (default: the filter's own, TILE_POINTS of filters.tile_store, "
                         "filters.neighbour_tiles or filters.classical_tiles; memory grows with it); SOR, ROR and "
                         "the neighbour filter go in tiles only on clouds of more than CLASSICAL_WHOLE_POINTS or "
                         "NEIGHBOUR_WHOLE_POINTS points unless it is given")
    add_grid_option(filter_)
    add_filter_choice(filter_)


def _add_reconstruct(commands) -> None:
    reconstruct = commands.add_parser(
        "reconstruct", help="filter a scan or cloud, optionally upsample it, and write its Poisson surface",
        description="Remove artefacts from a scan (.npz) or point cloud as 'pcfilter filter' does (the U-Net for "
        "organised input, the point filter for unorganised clouds, or --model / --method), optionally upsample "
        "what is left with the shipped PU-Net (--upsample 4 or 16: one or two passes of the x4 network, trained "
        "at the density of a 640x480 scan), and write the Poisson surface (Kazhdan et al. 2006, Open3D) trimmed "
        "where it strays from the points (vertices of low point density, and those more than four point "
        "spacings of the filtered points from every point). A scan brings its normals; a cloud's normals, and "
        "those of upsampled points, are estimated from 16 neighbours and turned towards the origin, where a "
        "scan's (and most scanner exports') camera sits. With a folder IN, each scan or cloud becomes "
        "OUT/<name>.ply; a file that fails is reported and skipped. A mesh that already exists is refused before any "
        "work unless --overwrite.")
    reconstruct.add_argument("input", metavar="IN", help="scan .npz, point cloud file, or a folder of them")
    reconstruct.add_argument("-o", "--output", required=True, metavar="OUT",
                             help=f"the mesh ({', '.join(MESH_SUFFIXES)}); with a folder IN, the output folder")
    reconstruct.add_argument("--upsample", type=int, default=1, metavar="R",
                             help="upsample the filtered points R times with the shipped PU-Net before "
                             "reconstructing: 1 (none, the default), 4 or 16; on two busy CPU cores one pass "
                             "over a filtered 640x480 scan (about 270,000 points) took about 20 s, and x16 "
                             "turns such a scan into over four million points")
    reconstruct.add_argument("--depth", type=int, default=8, metavar="D",
                             help="depth of Poisson's octree, 4 to 12: the surface is resolved on 2^D cells a "
                             "side over the points' bounding box (default 8)")
    add_overwrite(reconstruct)
    reconstruct.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_cluster_options(reconstruct, "each file of a folder IN is")
    add_grid_option(reconstruct)
    add_filter_choice(reconstruct)


def _add_evaluate(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="measure a filter on a scan dataset or labelled clouds",
        description="Measure a filter on one split of a scan dataset (made by 'pcfilter simulate'), or on a folder "
        "of labelled clouds in the PointCleanNet layout (name.xyz with 'x y z' lines, name.outliers with one 0/1 "
        "line per point, 1 = outlier), or on a folder of labelled organised scans (name.ptx or name.ptx.gz with "
        "name.outliers or name.outliers.gz beside it, one 0/1 line per PTX point line, positions without a point "
        "included): confusion counts, balanced accuracy, mean IoU, F1, false omission rate, keep-recall, the ROC "
        "AUC of the filter's P(artefact) for the learned filters (n/a for the classical methods, which answer "
        "yes or no) and, for scans, the share of each artefact kind removed. Points of a labelled cloud with NaN or "
        "infinite coordinates are left out of the figures, with their labels, and counted.")
    evaluate.add_argument("--data", required=True, metavar="DIR",
                          help="dataset folder with a manifest.json, or a folder of .xyz + .outliers pairs or of "
                          ".ptx[.gz] + .outliers[.gz] scans")
    evaluate.add_argument("--split", default="test", choices=("train", "val", "test"),
                          help="split of a scan dataset (default: test)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--per-file", action="store_true",
                          help="also measure each scan or cloud on its own: one row per file (with --json: 'files')")
    add_filter_choice(evaluate)


def _add_finetune(commands) -> None:
    finetune = commands.add_parser(
        "finetune", help="fine-tune the U-Net or the neighbour filter on your own labelled scans",
        description="Fine-tune a filter on labelled scans of your own scanner. Organised scans (an image of "
        "points) fine-tune the U-Net: PTX scans (name.ptx[.gz] + name.outliers[.gz], one 0/1 line per PTX point "
        "line, 1 = outlier), organised .ply/.pcd files with a per-point 'label' (1 true, 0 artefact) or 'outlier' "
        "property, or pcfilter scans (.npz); a band of image columns at the right-hand end of each scan's points "
        "is held out, the network trains on crops of the rest, its threshold is chosen on the bands, and it is "
        "measured there before and after; writes MODEL (.keras) and its model card (.json) beside it, which "
        "'pcfilter filter --model MODEL' runs like the shipped U-Net. Unorganised clouds (name.xyz + "
        "name.outliers pairs, .ply files with labels and no grid) fine-tune the neighbour filter: the far end of "
        "each cloud's longest axis is held out; writes MODEL (.npz), which 'pcfilter filter --model MODEL' and "
        "'pcfilter evaluate --model MODEL' run without TensorFlow. --network, or the filter --model starts from, "
        "chooses instead of the data.")
    finetune.add_argument("--data", required=True, metavar="DIR", help="folder of labelled scans or clouds")
    finetune.add_argument("--out", required=True, metavar="MODEL",
                          help="the fine-tuned filter to write (.keras for the U-Net, .npz for the neighbour filter)")
    finetune.add_argument("--network", choices=("auto", "unet", "neighbours"), default="auto",
                          help="the filter to fine-tune (default auto: the U-Net for organised scans, the neighbour "
                          "filter for unorganised clouds)")
    finetune.add_argument("--model", metavar="M",
                          help="filter to start from: a U-Net (.keras) or a neighbour filter (.npz) file, or 'unet' / "
                          "'neighbours' for the shipped one, as 'pcfilter filter --model' names them; it chooses the "
                          "filter to fine-tune unless --network does (default: the shipped one)")
    finetune.add_argument("--holdout", type=float, default=0.2, metavar="SHARE",
                          help="share of each scan held out to choose the threshold, 0.05 to 0.5 (default 0.2)")
    finetune.add_argument("--steps", type=int, default=None, metavar="S",
                          help="U-Net: training steps of 8 crops of 96 x 96 pixels, 1 to 100000 (default 800: "
                          "two to three minutes on two cores)")
    finetune.add_argument("--layers", choices=("all", "decoder"), default="all",
                          help="U-Net: train every layer, or only the decoder (default all)")
    finetune.add_argument("--epochs", type=int, default=40, metavar="E",
                          help="neighbour filter: passes over the training points per stage, 1 to 1000 (default 40)")
    finetune.add_argument("--min-keep", type=float, default=0.0, metavar="R",
                          help="the threshold must keep at least this share of the held-out true points, 0 to "
                          "0.999 (default 0: the best mean IoU for the neighbour filter, the best balanced "
                          "accuracy for the U-Net)")
    finetune.add_argument("--seed", type=int, default=0, help=f"random seed, 0 to {MAX_SEED} (default 0)")
    add_overwrite(finetune)
    finetune.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _add_modelnet(commands) -> None:
    modelnet = commands.add_parser(
        "modelnet", help="write the procedural ModelNet10 stand-in",
        description="Write a procedural ModelNet10-style data set: the ten ModelNet10 classes as .off meshes in "
        "the real layout OUT/<class>/{train,test}/<class>_NNNN.off with a manifest.json; 3991 training and "
        "908 test meshes (a few per class with PCFILTER_FAST=1). An interrupted run resumes; files that are "
        "missing or differ from the manifest are written again.")
    modelnet.add_argument("--synthetic", action="store_true", required=True,
                          help="generate the procedural stand-in (required: nothing is downloaded)")
    modelnet.add_argument("--out", required=True, help="output folder (new, or one this command wrote)")
    modelnet.add_argument("--seed", type=int, default=0, help=f"random seed, 0 to {MAX_SEED} (default: 0)")
    modelnet.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_bench(commands) -> None:
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
    bench.add_argument("--out", help="results file (default: DATA/bench/results.json, see PCFILTER_DATA); an existing "
                       "one must hold bench's rows, checked before the benchmark")


def build_parser() -> Parser:
    """The ``pcfilter`` parser with its commands (info, simulate, filter, reconstruct, evaluate, finetune,
    modelnet, bench)."""
    parser = Parser(
        prog="pcfilter",
        description="Deep learning on point clouds and structured-light scans: "
        "simulate scans, train and apply artefact filters, run the book's experiments.",
        epilog="Run 'pcfilter COMMAND --help' for the options of one command. "
        "PCFILTER_FAST=1 makes every run small; PCFILTER_DATA sets the data folder.",
    )
    parser.add_argument("--version", action="version", version=f"pcfilter {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for add in (_add_info, _add_simulate, _add_filter, _add_reconstruct, _add_evaluate, _add_finetune, _add_modelnet,
                _add_bench):
        add(commands)
    parser.commands = commands.choices
    return parser


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--size -160x120`` as ``--size=-160x120`` for the ``VALUE_OPTIONS``."""
    joined, i = [], 0
    while i < len(argv):
        if argv[i] in VALUE_OPTIONS and i + 1 < len(argv) and re.match(r"-[\d.]", argv[i + 1]):
            joined.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            joined.append(argv[i])
            i += 1
    return joined


def main(argv: list[str] | None = None) -> int:
    """Run one ``pcfilter`` command; returns the exit status (0 done, 1 refused or failed, 2 a command
    line that cannot be parsed, 130 interrupted)."""
    command = "pcfilter"
    previous, hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
    if previous is signal.default_int_handler:  # a SIGINT ignored by the caller stays ignored
        signal.signal(signal.SIGINT, Interrupts.handle)
    sys.unraisablehook = Interrupts.unraisable
    Interrupts.seen = False
    try:
        parser = build_parser()
        args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else list(argv)))
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        command = f"pcfilter {args.command}"
        return importlib.import_module(f"{__package__}.{args.command}").run(args)
    except KeyboardInterrupt:
        print(f"{command}: interrupted; no output file was left half-written", file=sys.stderr)
        return 130
    except Exception as error:
        if Interrupts.seen:  # Ctrl-C that a library turned into another error
            print(f"{command}: interrupted; no output file was left half-written", file=sys.stderr)
            return 130
        if not isinstance(error, ValueError | OSError | MemoryError | RuntimeError):
            raise  # a bug: its traceback is what a report needs
        print(f"{command}: {one_line(error)}", file=sys.stderr)
        return 1
    finally:
        sys.unraisablehook = hook
        if previous is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous)
