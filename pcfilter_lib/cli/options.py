"""The options and checks that several commands share, and a command's options written back as a
command line for a worker process. Light (no NumPy): the parser reads it before any command's
module loads.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import sys
from pathlib import Path

from pcfilter_lib.filters.methods import METHODS
from pcfilter_lib.io.files import check_input_file, is_hdf5_file, is_zip_file
from pcfilter_lib.io.model_cards import check_model_archive, read_model_card

SHIPPED_NAMES = ("unet", "points", "neighbours")  # --model names of the shipped U-Net, point and neighbour filters
MODEL_SUFFIXES = (".keras", ".h5", ".npz")  # Keras files, and the neighbour filter's NumPy file
MESH_SUFFIXES = (".ply", ".obj", ".off", ".stl")  # what Open3D writes a triangle mesh as
MAX_JOBS = 256  # --jobs: worker processes at once
MAX_SEED = 2**32 - 1  # --seed of simulate and modelnet
MAX_PARTS = 200  # --max-parts: a scan of a bin of 200 parts takes seconds, of 100,000 hours
MIN_TILE_POINTS, MAX_TILE_POINTS = 1000, 5_000_000  # --tile-points: halo work grows below, memory above


# Progress in a log (stderr not a terminal): nothing for a run shorter than 30 s, then a line every 30 s.
LOG_PROGRESS = {"delay": 30.0, "mininterval": 30.0}


def progress_bar() -> bool | dict:
    """A command's progress setting (tqdm): a live bar on a terminal, ``LOG_PROGRESS`` in a log, so
    that no long run goes without a word."""
    return True if sys.stderr.isatty() else dict(LOG_PROGRESS)


def add_filter_choice(command: argparse.ArgumentParser) -> None:
    """``--model`` or ``--method``, and ``--threshold``: the filter of filter, reconstruct and evaluate."""
    choice = command.add_mutually_exclusive_group()
    choice.add_argument("--model", metavar="M",
                        help="a filter .keras (or neighbour filter .npz) file, or 'unet' / 'points' / 'neighbours' for "
                        "the shipped U-Net / point filter / neighbour filter, which runs without TensorFlow "
                        "(default: the U-Net for scans and organised clouds, the point filter for others)")
    choice.add_argument("--method", choices=METHODS,
                        help="a classical filter instead, with the parameters tuned on validation scans (its "
                        "lengths scaled to the input's point spacing)")
    command.add_argument("--threshold", type=float, metavar="T",
                         help="keep a point when P(keep) >= T, 0 < T < 1 (default: the threshold in the model's "
                         "manifest)")


# The sensor sizes read as a grid from a .ply without obj_info lines: those of io.organised.PHOXI_SENSORS
# (written out here: this module loads no NumPy); tests/test_ptx.py checks that the two agree.
PHOXI_GRIDS = ((2064, 1544), (1032, 772), (1680, 1200), (1120, 800))
MAX_GRID_SIDE = 100_000


def add_grid_option(command: argparse.ArgumentParser) -> None:
    """``--grid WxH``: read a .ply exported without its grid size (PhoXi Control's organised .ply) as
    a W x H grid."""
    sizes = ", ".join(f"{w}x{h}" for w, h in PHOXI_GRIDS)
    command.add_argument("--grid", type=parse_grid, metavar="WxH",
                         help="read a .ply IN that has no 'obj_info width/height' lines as an organised W x H "
                         "grid: W*H vertices in row order, (0, 0, 0) where a pixel has no point, as PhoXi "
                         f"Control exports organised clouds; a .ply of {sizes} vertices (the sensor sizes of "
                         "PhoXi 3D Scanners, full and half resolution, and of MotionCam-3D in scanner and "
                         "camera mode) is read so without it")


class Grid(tuple):
    """(width, height) of ``--grid``, written back as ``WxH`` (``option_line`` passes it to workers)."""

    def __str__(self) -> str:
        return f"{self[0]}x{self[1]}"


def parse_grid(text: str) -> Grid:
    """``"2064x1544"`` as (2064, 1544); an argparse error otherwise."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and 0 < int(p) <= MAX_GRID_SIDE for p in parts):
        raise argparse.ArgumentTypeError(f"--grid must be WIDTHxHEIGHT, each 1 to {MAX_GRID_SIDE}, such as "
                                         f"2064x1544; got {text!r}")
    return Grid((int(parts[0]), int(parts[1])))


def add_overwrite(command: argparse.ArgumentParser) -> None:
    """``--overwrite``: without it, an output file that already exists is refused before any work."""
    command.add_argument("--overwrite", action="store_true",
                         help="replace output files that already exist (atomically; the input is never replaced); "
                         "without it an existing output is refused before any work starts")


def check_new_outputs(outputs, overwrite: bool) -> None:
    """A FileExistsError naming the first existing output of ``outputs``, (option, path) pairs, unless
    ``overwrite``: no file the user did not name for replacing is ever replaced."""
    if overwrite:
        return
    for option, path in outputs:
        if os.path.lexists(path):  # a dangling link too: the write would replace it
            raise FileExistsError(f"{option} {path} already exists; choose another name, or pass --overwrite to "
                                  "replace it")


def check_new_folder_outputs(out, targets, overwrite: bool) -> None:
    """A FileExistsError unless none of ``targets``, the files a folder run would write into ``out``,
    exists yet (or ``overwrite``); it names up to three of them."""
    if overwrite:
        return
    existing = [path.name for path in targets if os.path.lexists(path)]
    if existing:
        shown = ", ".join(existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise FileExistsError(f"-o {out} already holds {len(existing)} of the {len(targets)} files this run would "
                              f"write ({shown}); choose another folder, or pass --overwrite to replace them")


def option_range(option: str, value, low=None, high=None, what: str = "a number") -> None:
    """A ValueError naming ``option`` unless ``low <= value <= high`` (either bound may be None)."""
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (f"between {low} and {high}" if low is not None and high is not None
                  else f">= {low}" if low is not None else f"<= {high}")
        raise ValueError(f"{option} must be {what} {bounds}, got {value}")


def check_jobs(args: argparse.Namespace) -> None:
    option_range("--jobs", args.jobs, 1, MAX_JOBS, "a whole number")
    scheduler = getattr(args, "scheduler", None)
    if scheduler is None:
        return
    if args.jobs > 1:
        raise ValueError("--jobs starts a cluster on this machine and --scheduler uses a running one: give one of them")
    if "://" not in scheduler and ":" not in scheduler:
        raise ValueError(f"--scheduler {scheduler}: give the scheduler's address as 'dask scheduler' prints it, such "
                         "as tcp://HOST:8786")


def on_cluster(args: argparse.Namespace) -> bool:
    """Whether the command runs its tasks on a Dask cluster (``--jobs`` above 1, or ``--scheduler``)."""
    return args.jobs > 1 or bool(getattr(args, "scheduler", None))


def add_cluster_options(command: argparse.ArgumentParser, what: str) -> None:
    """``--jobs`` and ``--scheduler``: the command's tasks (``what``, e.g. 'each scan is') on a Dask cluster."""
    command.add_argument("--jobs", type=int, default=1, metavar="N",
                         help=f"run on a Dask cluster of N worker processes on this machine, one thread each "
                         f"({what} a task); 1 to {MAX_JOBS} (default 1: one process, without Dask); the "
                         "outputs are the bytes one process writes")
    command.add_argument("--scheduler", metavar="ADDRESS",
                         help="run on a running Dask cluster instead ('dask scheduler', then 'dask worker "
                         "ADDRESS' on each machine), e.g. tcp://10.0.0.5:8786; the inputs, the outputs' folder "
                         "and pcfilter itself must be on storage every worker sees; a scheduler without workers "
                         "is refused after PCFILTER_WORKER_WAIT seconds (default 10)")


def cluster_module():
    """``cli.cluster``, which imports Dask's ``distributed``: loaded only for a run on a cluster."""
    return importlib.import_module(f"{__package__}.cluster")


def cluster_tasks(args: argparse.Namespace, what: str):
    """A context manager giving the runner of a command's tasks on a cluster (``cluster.TaskCells``,
    each task named ``what`` and its item in errors), or None for one process."""
    return cluster_module().TaskCells(args, what) if on_cluster(args) else contextlib.nullcontext()


def check_threshold(args: argparse.Namespace) -> None:
    if args.threshold is None:
        return
    if args.method:
        raise ValueError("--threshold applies to a model; the baselines (--method) give a yes/no answer")
    if not (math.isfinite(args.threshold) and 0 < args.threshold < 1):
        raise ValueError(f"--threshold must lie strictly between 0 and 1, got {args.threshold}")


def shipped_names(names=SHIPPED_NAMES) -> str:
    """``'unet', 'points' or 'neighbours'``: the names ``--model`` accepts besides a file, for messages."""
    quoted = [f"'{name}'" for name in names]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0]


def check_model_path(model: str, names=SHIPPED_NAMES, suffixes=MODEL_SUFFIXES) -> Path:
    """The ``--model`` file ``model`` (neither of the shipped ``names``), refused in one line that lists
    the names and suffixes it may be when it is not a readable file."""
    path = Path(model)
    if not os.path.lexists(path):
        if path.suffix.lower() not in suffixes and len(path.parts) == 1:  # a name, not a path
            raise ValueError(f"--model {model} is neither a shipped filter nor a file; give {shipped_names(names)}, "
                             f"or a filter model file ({', '.join(suffixes)})")
        raise FileNotFoundError(f"--model {path} does not exist; check the path, or give {shipped_names(names)}")
    return check_input_file(path, "--model")


def check_model(args: argparse.Namespace) -> None:
    """A ``--model`` is one of ``SHIPPED_NAMES``, or a whole Keras or neighbour filter file whose model card
    (if any) records a filter's threshold."""
    if args.method or args.model is None or args.model in SHIPPED_NAMES:
        return
    path = check_model_path(args.model)
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise ValueError(f"--model {path} is not a filter model file ({' or '.join(MODEL_SUFFIXES)}); give a filter "
                         f"model file or {shipped_names()}")
    kind = {".keras": "a Keras model archive (a zip file)", ".h5": "a Keras HDF5 model file",
            ".npz": "a neighbour filter (a NumPy .npz zip archive)"}[suffix]
    if not (is_hdf5_file(path) if suffix == ".h5" else is_zip_file(path)):
        raise ValueError(f"--model {path} is not {kind}: its first bytes say it is some other file; give a filter "
                         f"saved by Keras or NeighbourFilter.save, or {shipped_names()}")
    check_model_archive(path, "--model", f"or give {shipped_names()}")
    card = read_model_card(path)
    if card is not None and card.threshold is None:
        raise ValueError(f"--model {path} is a '{card.target}' model (its model card records no decision threshold), "
                         f"not an artefact filter; give a filter model or {shipped_names()}")


def option_line(args: argparse.Namespace, parser: argparse.ArgumentParser, leave_out=()) -> list[str]:
    """The options of ``args`` as arguments that ``parser`` reads back into the same values: each
    option whose value differs from its default, in the parser's order, as ``--name=value`` (so that
    a value starting with '-' stays a value); positional arguments and the destinations in
    ``leave_out`` are left out.

    Args:
        args: what ``parser`` parsed.
        parser: the parser of one command.
        leave_out: destinations (``args`` attribute names) to leave out.

    Returns:
        The arguments, such as ``['--method=sor', '--depth=7', '--allow-empty']``.
    """
    line = []
    for action in parser._actions:  # argparse has no public list of a parser's options
        if not action.option_strings or action.dest in leave_out or action.default == argparse.SUPPRESS:
            continue
        value = getattr(args, action.dest)
        if value == action.default:
            continue
        flag = max(action.option_strings, key=len)  # the long form
        if action.nargs == 0:  # a flag: store_true and the like
            line.append(flag)
        elif action.nargs in ("+", "*"):
            line += [flag, *map(str, value)]
        elif isinstance(value, list):  # action="append": the option once per value
            line += [f"{flag}={item}" for item in value]
        else:
            line.append(f"{flag}={value}")
    return line
