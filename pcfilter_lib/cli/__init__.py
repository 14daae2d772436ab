"""The ``pcfilter`` command line.

Each command lives in a small ``_cmd_*`` function. Before any work, before a folder is created or
TensorFlow starts, it checks everything that can be checked: option values and ranges, that inputs
are regular files, that output folders are writable, and a model's kind from its model card.
Bad input ends with one line on stderr naming the option or file and what to do, and exit status 1
(2 for a command line that cannot be parsed at all). Ctrl-C ends with one line and status 130, and
no output file is left half-written. TensorFlow and Open3D are imported only after
``runtime.setup`` has muted their start-up logs, so ``pcfilter --help`` stays instant and stderr
holds nothing but the tool's own lines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import signal
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

from pcfilter_lib import __version__, config, runtime
from pcfilter_lib.io.files import check_input_file, check_output_file, read_manifest
from pcfilter_lib.io.model_cards import SHIPPED_UPSAMPLER, check_model_file, read_model_card, retrain_hint

# NumPy and the modules that use it (the readers, the writers, the workloads) take half a second to
# import; they are imported inside the commands, once main() handles Ctrl-C, so that an interrupt
# while the command line starts gives its one line, not a traceback.

SHIPPED_NAMES = ("unet", "points")  # --model names of the shipped U-Net and point filter
METHODS = ("sor", "ror", "morph")
OUTPUT_SUFFIXES = (".ply", ".pcd", ".xyz")
MODEL_SUFFIXES = (".keras", ".h5")  # what keras.models.load_model reads
# Options whose value may start with '-' followed by a digit ('--size -160x120'): argparse would take
# the value for an option and say only "expected one argument"; joined as '--size=-160x120', the
# value reaches the checks below, which say what is wrong with it.
VALUE_OPTIONS = ("--n", "--seed", "--size", "--split", "--min-parts", "--max-parts", "--threshold", "--upsample",
                 "--depth", "--jobs")


class _Interrupts:
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


def _one_line(error: BaseException) -> str:
    """The error's message on one line, without terminal colour codes (Open3D colours its errors)."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(error)
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())
    if not text and isinstance(error, MemoryError):
        return "out of memory; try a smaller input or close other programs"
    return text or type(error).__name__


# ---------------------------------------------------------------------------------------------
# Checks made before any work


def _option_range(option: str, value, low=None, high=None, what: str = "a number") -> None:
    """A ValueError naming ``option`` unless ``low <= value <= high`` (either bound may be None)."""
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (f"between {low} and {high}" if low is not None and high is not None
                  else f">= {low}" if low is not None else f"<= {high}")
        raise ValueError(f"{option} must be {what} {bounds}, got {value}")


def _parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--size must be two positive whole numbers WIDTHxHEIGHT like 640x480, got {text!r}")
    return int(parts[0]), int(parts[1])


def _parse_split(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(part) for part in text.split("/"))
    except ValueError:
        parts = ()
    if len(parts) != 3 or not all(math.isfinite(p) and p >= 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        raise ValueError(f"--split must be three non-negative fractions train/val/test summing to 1, like "
                         f"0.8/0.1/0.1; got {text!r}")
    return parts


def _parse_families(text: str) -> dict[str, float]:
    """``bin=0.4,board=0.35,fruit=0.25`` (or ``board``, one family alone) as {family: share}."""
    families = {}
    for item in text.split(","):
        name, _, share = item.strip().partition("=")
        try:
            families[name] = float(share) if share else 1.0
        except ValueError:
            families[name] = math.nan
    if not all(math.isfinite(v) and v >= 0 for v in families.values()) or sum(families.values()) <= 0:
        raise ValueError(f"--families must be family=share pairs with non-negative shares, like "
                         f"bin=0.4,board=0.35,fruit=0.25; got {text!r}")
    return families


def _check_threshold(args: argparse.Namespace) -> None:
    if args.threshold is None:
        return
    if args.method:
        raise ValueError("--threshold applies to a model; the baselines (--method) give a yes/no answer")
    if not (math.isfinite(args.threshold) and 0 < args.threshold < 1):
        raise ValueError(f"--threshold must lie strictly between 0 and 1, got {args.threshold}")


def _check_model(args: argparse.Namespace) -> None:
    """A ``--model`` file must be a Keras file whose model card (if any) records a filter's threshold."""
    if args.method or args.model is None or args.model in SHIPPED_NAMES:
        return
    path = check_input_file(args.model, "--model")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ValueError(f"--model {path} is not a Keras model file ({' or '.join(MODEL_SUFFIXES)}); give a filter "
                         f"model file or one of {', '.join(SHIPPED_NAMES)}")
    card = read_model_card(path)
    if card is not None and card.threshold is None:
        raise ValueError(f"--model {path} is a '{card.target}' model (its model card records no decision threshold), "
                         f"not an artefact filter; give a filter model or one of {', '.join(SHIPPED_NAMES)}")


def _check_outputs(source: Path, targets: list[Path]) -> None:
    """Outputs are .ply or .pcd files in writable folders, never the input, and two outputs differ."""
    for target in targets:
        if target.resolve() == source.resolve() or (target.exists() and os.path.samefile(target, source)):
            raise ValueError(f"{target} is the input file; choose another output name (the input is never "
                             "overwritten)")
        if target.suffix.lower() not in OUTPUT_SUFFIXES:
            raise ValueError(f"{target}: outputs are written as .ply or .xyz (points) or .pcd (points or an "
                             "organised grid)")
        check_output_file(target)
    if len({target.resolve() for target in targets}) < len(targets):
        raise ValueError("-o, --removed and --scores must name different files")


# ---------------------------------------------------------------------------------------------
# The commands


def _cmd_info(args: argparse.Namespace) -> int:
    """Print versions, settings and visible accelerators, for bug reports and set-up checks."""
    report: dict[str, object] = {"pcfilter": __version__, "python": platform.python_version()}
    for package in ("numpy", "tensorflow", "keras", "open3d", "plotly"):
        try:
            report[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            report[package] = "not installed"
    report.update(config.describe())
    report["cpu_allocator"] = runtime.cpu_allocator()
    if not args.no_devices:
        runtime.setup(seed=None)
        import tensorflow as tf  # after runtime.setup, which imports it with its start-up logs muted

        report["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        width = max(map(len, report))
        for key, value in report.items():
            print(f"{key:<{width}}  {value}")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    """Simulate a dataset of structured-light scans of bins of parts, circuit boards or fruit."""
    from pcfilter_lib.simulate import dataset  # imports Open3D: only when simulating
    from pcfilter_lib.simulate.scanner import ScannerConfig

    width, height = _parse_size(args.size) if args.size else config.choose(full=(640, 480), fast=(160, 120))
    split = _parse_split(args.split)
    families = _parse_families(args.families)
    _option_range("--n", args.n, 1, dataset.MAX_SCANS, "a whole number")
    _option_range("--seed", args.seed, 0, what="a whole number")
    _option_range("--min-parts", args.min_parts, 0, args.max_parts, "a whole number")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise NotADirectoryError(f"--out {args.out} is a file; name a folder")
    scanner = ScannerConfig(width=width, height=height)
    stats = dataset.write_dataset(args.out, args.n, args.seed, scanner, split=split,
                                  n_parts=(args.min_parts, args.max_parts), mesh_files=args.mesh or (),
                                  progress=sys.stderr.isatty(), families=families, randomise=args.random_scanner)
    what = f"({', '.join(families)}; a scanner drawn per scan)" if args.random_scanner else \
        f"of {width}x{height} ({', '.join(families)})"
    print(f"{len(stats)} scans {what} in {args.out}")
    print(dataset.summarise(stats))
    return 0


def _make_filter(args: argparse.Namespace, organised: bool = True):
    """The filter asked for: ``--method`` (a baseline with its tuned parameters, lengths scaled to the
    input's point spacing) or ``--model`` (a file, or ``SHIPPED_NAMES`` for the shipped filters; by
    default the U-Net for organised input and the point filter for unorganised clouds), with its
    model card's threshold unless ``--threshold``. Imports the filters, hence Keras: call it after
    ``runtime.setup``."""
    from pcfilter_lib import filters  # imports Keras: after runtime.setup

    if args.method:
        return filters.baseline_filter(args.method)
    if args.model == "points":
        return filters.point_filter(None, args.threshold)
    if args.model == "unet":
        return filters.unet_filter(None, args.threshold)
    scan_filter = filters.load_filter(args.model, args.threshold, organised)
    shape = (scan_filter.model.input_shape, scan_filter.model.output_shape)
    if len(shape[1]) != len(shape[0]) or shape[1][-1] != 1:
        raise ValueError(f"--model {args.model} gives {shape[1]} for input {shape[0]}: it is no artefact filter, "
                         "which gives one P(keep) per point or pixel")
    return scan_filter


def _read_filter_input(path: Path) -> dict:
    """A scan .npz, or a cloud file (see ``pcfilter_lib.io.organised``), as a scan-like dict."""
    from pcfilter_lib.io.organised import CLOUD_SUFFIXES, read_cloud  # NumPy: see the note at the top
    from pcfilter_lib.io.scan import load_scan

    if path.suffix.lower() == ".npz":
        return {**load_scan(path, arrays=()), "organised": True}
    if path.suffix.lower() not in CLOUD_SUFFIXES:
        raise ValueError(f"{path}: cannot read {path.suffix!r} files; give a scan .npz or a cloud "
                         f"({', '.join(CLOUD_SUFFIXES)})")
    return read_cloud(path)


def _check_filter_fits(args: argparse.Namespace, source: Path, scan: dict) -> None:
    """Refuse, before TensorFlow starts, what the chosen filter cannot do with this input."""
    from pcfilter_lib.geometry.point_features import MIN_POINTS  # NumPy: see the note at the top

    organised, n = scan["organised"], int(scan["valid"].sum())
    if args.method == "morph" and not organised:
        raise ValueError("--method morph works on the pixel grid of an organised scan; this input is an "
                         "unorganised cloud (use the point filter, or --method sor / ror)")
    if args.model == "unet" and not organised:
        raise ValueError("the U-Net filter needs an organised scan; this input is an unorganised cloud")
    learned_unet = args.method is None and args.model != "points" and organised
    if learned_unet and scan["intensity"] is None:
        raise ValueError(f"{source} has no intensity field, which the U-Net reads; add one, or use --model points "
                         "or --method")
    if args.method is None and not organised and n < MIN_POINTS:
        raise ValueError(f"{source}: the cloud holds {n} point{'s' * (n != 1)} with finite coordinates; the point "
                         f"filter needs at least {MIN_POINTS} to compare each point with its neighbours")


class _Progress:
    """Points filtered so far, on stderr: a tqdm bar (points/s, time left) on a terminal, otherwise
    the same line at most every ``every`` seconds while work remains (none for a short run); nothing with
    ``--quiet``."""

    def __init__(self, total: int, quiet: bool, name: str, every: float = 5.0):
        from tqdm import tqdm  # see the note at the top

        self.total, self.done, self.name, self.every, self.clock = total, 0, name, every, time.monotonic
        self.start = self.last = self.clock()
        self.meter = tqdm.format_meter
        self.bar = None
        self.quiet = quiet
        if not quiet and sys.stderr.isatty():
            self.bar = tqdm(total=total, unit="pt", unit_scale=True, desc=name, file=sys.stderr, leave=False)

    def __call__(self, points: int) -> None:
        _Interrupts.check()
        self.done += points
        if self.bar is not None:
            self.bar.update(points)
        elif not self.quiet and self.done < self.total and self.clock() - self.last >= self.every:
            self.last = self.clock()
            line = self.meter(self.done, self.total, self.last - self.start, prefix=self.name, unit="pt",
                              unit_scale=True)
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _filter_targets(args: argparse.Namespace) -> list[Path]:
    return [Path(p) for p in (args.output, args.removed, args.scores) if p]


def _check_filter_options(args: argparse.Namespace, source: Path) -> None:
    """The options of ``filter`` that need no reading of the input."""
    _check_outputs(source, _filter_targets(args))
    if args.scores and Path(args.scores).suffix.lower() != ".ply":
        raise ValueError(f"--scores {args.scores}: the keep probabilities are written as a .ply scalar property; "
                         "name a .ply file")
    _option_range("--jobs", args.jobs, 1, 256, "a whole number")
    if args.tile_points is not None:
        _option_range("--tile-points", args.tile_points, 1000, what="a whole number")
    _check_threshold(args)
    _check_model(args)


def _cmd_filter(args: argparse.Namespace) -> int:
    """Remove artefacts from one scan or cloud (or each file of a folder) and write the kept (and removed)
    points, and optionally every point with its keep probability."""
    from pcfilter_lib.io.clouds import open_stream  # NumPy: see the note at the top

    if Path(args.input).is_dir():
        return _filter_folder(args)
    source = check_input_file(args.input, "input")
    _check_filter_options(args, source)
    stream = open_stream(source) if args.method is None and args.model != "unet" else None
    if stream is not None:
        return _filter_stream(args, source, stream)
    return _filter_in_memory(args, source)


def _filter_in_memory(args: argparse.Namespace, source: Path) -> int:
    """``filter`` on a scan or a cloud read whole (organised clouds, .pcd, the baselines)."""
    import numpy as np  # see the note at the top

    from pcfilter_lib.geometry.point_features import COORDINATE_LIMIT
    from pcfilter_lib.io.clouds import CloudWriter
    from pcfilter_lib.io.organised import write_filtered

    scan = _read_filter_input(source)
    _check_filter_fits(args, source, scan)
    runtime.setup(seed=None)  # the filters import Keras; keep TensorFlow's start-up logs off stderr
    scan_filter = _make_filter(args, scan["organised"])
    valid = scan["valid"]
    n = int(valid.sum())
    progress = _Progress(n, args.quiet, scan_filter.name)
    with warnings.catch_warnings():  # points far out (1e30) overflow their float32 features: they are removed
        warnings.simplefilter("ignore", RuntimeWarning)
        prob = scan_filter.keep_probability(scan)
    progress(n)
    progress.close()
    keep = (prob >= scan_filter.threshold) & valid
    removed = valid & ~keep
    _Interrupts.check()
    if not keep.any() and not args.allow_empty:
        raise ValueError(f"{scan_filter.name} removed all {n} points of {source}, so nothing was written; check the "
                         "filter (or its --threshold), or pass --allow-empty to write the empty result")
    for path, mask in ((args.output, keep), (args.removed, removed)):
        if path and Path(path).suffix.lower() == ".xyz":  # text: the points only
            with CloudWriter(path, int(mask.sum()), np.asarray(scan["xyz"]).dtype) as writer:
                writer.write(np.asarray(scan["xyz"])[mask])
        elif path:
            write_filtered([path], scan, [mask])
    if args.scores:
        xyz = np.asarray(scan["xyz"])[valid]
        with CloudWriter(args.scores, n, xyz.dtype, scalars=["keep_probability"]) as writer:
            intensity = None if scan["intensity"] is None else np.asarray(scan["intensity"])[valid]
            writer.write(xyz, intensity, keep_probability=prob[valid])
    _report(scan_filter.name, int(keep.sum()), n, args)
    far = int(scan.get("far", 0))
    if not scan["organised"] and n + far < valid.size:
        print(f"dropped {valid.size - n - far} points with NaN or infinite coordinates (written to neither file)")
    if far:
        print(f"dropped {far} points with coordinates beyond ±{COORDINATE_LIMIT:.1e}, too far to measure distances "
              "(written to neither file)")
    return 0


def _report(name: str, kept: int, n: int, args: argparse.Namespace) -> None:
    removed = n - kept
    print(f"{name}: kept {kept} of {n} points, removed {removed} ({removed / max(n, 1):.2%}); wrote "
          f"{', '.join(map(str, _filter_targets(args)))}")


def _scan_stream(stream) -> tuple[int, int, int]:
    """(points, finite points, points beyond ``COORDINATE_LIMIT``) of a streamed cloud, read once before
    TensorFlow starts, so that an unreadable or empty file is reported first."""
    import numpy as np  # see the note at the top

    from pcfilter_lib.geometry.point_features import COORDINATE_LIMIT, MIN_POINTS
    from pcfilter_lib.io.clouds import CloudError

    total = finite = far = 0
    for xyz in stream.points():
        total += len(xyz)
        usable = np.isfinite(xyz).all(axis=1)
        finite += int(usable.sum())
        far += int((np.abs(xyz[usable]) > COORDINATE_LIMIT).any(axis=1).sum())
    if total == 0:
        raise CloudError(f"{stream.path}: the cloud holds no points")
    if finite == 0:
        raise CloudError(f"{stream.path}: no point has finite coordinates (all NaN or infinite); there is nothing "
                         "to filter")
    if finite < MIN_POINTS:
        raise ValueError(f"{stream.path}: the cloud holds {finite} point{'s' * (finite != 1)} with finite "
                         f"coordinates; the point filter needs at least {MIN_POINTS} to compare each point with its "
                         "neighbours")
    return total, finite, far


def _filter_stream(args: argparse.Namespace, source: Path, stream) -> int:
    """``filter`` with the point filter on an unorganised .ply or .xyz, in tiles and in chunks: memory
    stays bounded whatever the cloud's size. A cloud with points too far away to measure distances goes
    through the in-memory path, which drops them and says so."""
    total, finite, far = _scan_stream(stream)
    if far:
        return _filter_in_memory(args, source)
    runtime.setup(seed=None)
    from pcfilter_lib.filters.points import PointFilter
    from pcfilter_lib.filters.tiles import TILE_POINTS, tiled_keep_probability

    scan_filter = _make_filter(args, organised=False)
    if not isinstance(scan_filter, PointFilter):
        return _filter_in_memory(args, source)
    progress = _Progress(total, args.quiet, scan_filter.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        prob = tiled_keep_probability(scan_filter, stream.points, args.tile_points or TILE_POINTS, progress=progress)
    progress.close()
    _Interrupts.check()
    keep = prob >= scan_filter.threshold
    kept = int(keep.sum())
    if not kept and not args.allow_empty:
        raise ValueError(f"{scan_filter.name} removed all {finite} points of {source}, so nothing was written; check "
                         "the filter (or its --threshold), or pass --allow-empty to write the empty result")
    _write_stream(args, stream, prob, keep, finite)
    _report(scan_filter.name, kept, finite, args)
    if finite < total:
        print(f"dropped {total - finite} points with NaN or infinite coordinates (written to neither file)")
    return 0


def _write_stream(args: argparse.Namespace, stream, prob, keep, finite: int) -> None:
    """Write the kept, removed and scored points of a streamed cloud, reading it once more."""
    import numpy as np  # see the note at the top

    from pcfilter_lib.io.clouds import CloudWriter

    kept = int(keep.sum())
    with contextlib.ExitStack() as files:
        outputs = [(files.enter_context(CloudWriter(path, count, stream.precision)), select)
                   for path, count, select in ((args.output, kept, "kept"), (args.removed, finite - kept, "removed"))
                   if path]
        scores = (files.enter_context(CloudWriter(args.scores, len(prob), stream.precision, ["keep_probability"]))
                  if args.scores else None)
        start = 0
        for chunk in stream.chunks():
            xyz, intensity = chunk["xyz"], chunk["intensity"]
            part, mine = prob[start:start + len(xyz)], keep[start:start + len(xyz)]
            finite_rows = np.isfinite(xyz).all(axis=1)
            for writer, select in outputs:
                rows = mine if select == "kept" else finite_rows & ~mine
                writer.write(xyz[rows], None if intensity is None else intensity[rows])
            if scores is not None:
                scores.write(xyz, intensity, keep_probability=part)
            start += len(xyz)
            _Interrupts.check()


def _folder_inputs(folder: Path, out: Path) -> list[Path]:
    """The scans and clouds of the input folder, in name order, once the output folder ``out`` is
    known to be a folder (or new) and not the input folder."""
    from pcfilter_lib.io.organised import CLOUD_SUFFIXES  # see the note at the top

    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"-o {out} is a file; with a folder of inputs name an output folder")
    if out.resolve() == folder.resolve():
        raise ValueError("-o must be another folder than the input folder (inputs are never overwritten)")
    inputs = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (*CLOUD_SUFFIXES, ".npz"))
    if not inputs:
        raise ValueError(f"{folder} holds no scan (.npz) or cloud ({', '.join(CLOUD_SUFFIXES)}) files")
    return inputs


def _folder_jobs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """(input, output) of each cloud or scan in the folder ``args.input``; outputs go to the folder
    ``-o`` in the input's own format where it can be written, else .ply."""
    from pcfilter_lib.io.organised import CLOUD_SUFFIXES  # see the note at the top

    folder, out = Path(args.input), Path(args.output)
    if args.removed or args.scores:
        raise ValueError("--removed and --scores name one file; with a folder of inputs give only -o FOLDER")
    inputs = _folder_inputs(folder, out)
    _option_range("--jobs", args.jobs, 1, 256, "a whole number")
    _check_threshold(args)
    _check_model(args)
    suffix = {s: s if s in OUTPUT_SUFFIXES else ".ply" for s in (*CLOUD_SUFFIXES, ".npz")}
    return [(p, out / (p.stem + suffix[p.suffix.lower()])) for p in inputs]


def _filter_folder(args: argparse.Namespace) -> int:
    """``filter`` on every file of a folder, ``--jobs`` at a time, each in its own process; a file that
    fails is reported and skipped. Exit status 1 when any failed."""
    import subprocess  # see the note at the top

    jobs = _folder_jobs(args)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    options = [*(["--model", args.model] if args.model else []), *(["--method", args.method] if args.method else []),
               *(["--threshold", str(args.threshold)] if args.threshold is not None else []),
               *(["--allow-empty"] if args.allow_empty else []),
               *(["--tile-points", str(args.tile_points)] if args.tile_points else []), "--quiet"]

    def one(job):
        source, target = job
        command = [sys.executable, "-m", "pcfilter_lib.cli", "filter", str(source), "-o", str(target), *options]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
                              if args.jobs > 1 else None)
        return source, done

    failed = 0
    with ThreadPoolExecutor(args.jobs) as pool:
        for source, done in pool.map(one, jobs):
            if done.returncode == 0:
                print(f"{source.name}: {done.stdout.strip().splitlines()[0]}")
            else:
                failed += 1
                reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"status {done.returncode}"
                print(f"{source.name}: skipped: {reason}")
            if done.returncode == 130:
                raise KeyboardInterrupt
    print(f"{len(jobs) - failed} of {len(jobs)} files filtered into {args.output}"
          + (f"; {failed} skipped (see above)" if failed else ""))
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------
# reconstruct: filter, optionally upsample, then Poisson


MESH_SUFFIXES = (".ply", ".obj", ".off", ".stl")  # what Open3D writes a triangle mesh as
UPSAMPLE_MAX = 16  # x64 of a scan would be tens of millions of points
TRIM_SPACINGS = 4.0  # mesh vertices farther than this many point spacings from every point are removed


def _upsample_passes(factor: int) -> int:
    """How many passes of the shipped upsampler give ``--upsample factor`` (0 for 1): the factor must
    be a power of the upsampler's own ratio, read from its model card before TensorFlow starts."""
    if factor == 1:
        return 0
    _option_range("--upsample", factor, 1, UPSAMPLE_MAX, "a whole number")
    card = read_model_card(check_model_file(SHIPPED_UPSAMPLER, "the shipped upsampler"))
    if card is None:
        raise FileNotFoundError(f"the model card of the shipped upsampler {SHIPPED_UPSAMPLER} is missing; "
                                f"{retrain_hint(SHIPPED_UPSAMPLER)}")
    ratio = int(card.settings["ratio"])
    powers = [ratio**k for k in range(1, 8) if ratio**k <= UPSAMPLE_MAX]
    if factor not in powers:
        raise ValueError(f"--upsample must be 1 or a power of the upsampler's ratio {ratio} "
                         f"({', '.join(map(str, powers))}), got {factor}")
    return round(math.log(factor, ratio))


def _check_reconstruct_options(args: argparse.Namespace) -> int:
    """Options that need no reading of the input; returns the number of upsampling passes."""
    _option_range("--depth", args.depth, 4, 12, "a whole number")
    _option_range("--jobs", args.jobs, 1, 256, "a whole number")
    _check_threshold(args)
    _check_model(args)
    return _upsample_passes(args.upsample)


def _check_mesh_output(source: Path, target: Path) -> None:
    if target.resolve() == source.resolve() or (target.exists() and os.path.samefile(target, source)):
        raise ValueError(f"{target} is the input file; choose another output name (the input is never overwritten)")
    if target.suffix.lower() not in MESH_SUFFIXES:
        raise ValueError(f"-o {target}: the mesh is written as {', '.join(MESH_SUFFIXES)}; name a file with one of "
                         "these endings")
    check_output_file(target, "-o")


def _stage(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(f"pcfilter reconstruct: {text}", file=sys.stderr, flush=True)


def _reconstruct_file(args: argparse.Namespace, source: Path, target: Path, scan: dict, scan_filter,
                      upsampler, passes: int) -> str:
    """Filter, upsample ``passes`` times and Poisson-reconstruct one read input; write the mesh to
    ``target`` atomically and return the line that reports it."""
    import numpy as np  # see the note at the top
    import open3d as o3d  # after runtime.setup, like TensorFlow

    from pcfilter_lib.geometry.normals import estimate_cloud_normals
    from pcfilter_lib.geometry.point_features import point_spacing
    from pcfilter_lib.geometry.reconstruction import reconstruct
    from pcfilter_lib.io.files import atomic_write_with
    from pcfilter_lib.models.punet import upsample

    valid = scan["valid"]
    n = int(valid.sum())
    _stage(args, f"{source.name}: filtering {n:,} points with {scan_filter.name}")
    with warnings.catch_warnings():  # far points overflow their float32 features; they are removed
        warnings.simplefilter("ignore", RuntimeWarning)
        keep = (scan_filter.keep_probability(scan) >= scan_filter.threshold) & valid
    _Interrupts.check()
    points = np.asarray(scan["xyz"], np.float64)[keep]
    if len(points) < 100:
        raise ValueError(f"{source}: {scan_filter.name} kept {len(points)} of {n} points; Poisson reconstruction "
                         "needs at least 100")
    normals = None if scan.get("normals") is None else np.asarray(scan["normals"], np.float64)[keep]
    trim = TRIM_SPACINGS * point_spacing(points)  # of the filtered points, before any upsampling
    for i in range(passes):
        patch = upsampler.input_shape[1]
        if len(points) < patch:
            raise ValueError(f"{source}: {len(points)} points are left after filtering, fewer than the upsampler's "
                             f"patch of {patch}; reconstruct without --upsample")
        _stage(args, f"{source.name}: upsampling {len(points):,} points (pass {i + 1} of {passes})")
        points, normals = upsample(points, upsampler), None
        _Interrupts.check()
    if normals is None or not np.isfinite(normals).all(axis=1).any():
        _stage(args, f"{source.name}: estimating the normals of {len(points):,} points")
        normals = estimate_cloud_normals(points)
    _stage(args, f"{source.name}: Poisson reconstruction of {len(points):,} points at depth {args.depth}")
    mesh = reconstruct(points, normals, args.depth, trim_distance=trim)
    _Interrupts.check()
    if target.suffix.lower() == ".stl":
        mesh.compute_triangle_normals()  # STL stores one normal per triangle

    def write(tmp: Path) -> None:
        if not o3d.io.write_triangle_mesh(str(tmp), mesh):
            raise OSError(f"Open3D could not write the mesh to {target}")

    atomic_write_with(target, write)
    what = f"kept {int(keep.sum())} of {n} points" + (f", upsampled x{args.upsample} to {len(points)}"
                                                      if passes else "")
    return (f"{scan_filter.name}: {what}; mesh of {len(mesh.vertices)} vertices and {len(mesh.triangles)} "
            f"triangles; wrote {target}")


def _reconstruct_setup(args: argparse.Namespace, passes: int, organised: bool):
    """The filter and the upsampler (None without --upsample); starts TensorFlow."""
    runtime.setup(seed=None)
    from pcfilter_lib.models.punet import load_upsampler  # imports Keras: after runtime.setup

    return _make_filter(args, organised), load_upsampler() if passes else None


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    """Filter a scan or cloud (or each of a folder), optionally upsample it with the shipped PU-Net,
    and write the Poisson surface of what is left."""
    passes = _check_reconstruct_options(args)
    if Path(args.input).is_dir():
        return _reconstruct_folder(args, passes)
    source = check_input_file(args.input, "input")
    target = Path(args.output)
    _check_mesh_output(source, target)
    scan = _read_filter_input(source)
    _check_filter_fits(args, source, scan)
    scan_filter, upsampler = _reconstruct_setup(args, passes, scan["organised"])
    print(_reconstruct_file(args, source, target, scan, scan_filter, upsampler, passes))
    return 0


def _reconstruct_folder(args: argparse.Namespace, passes: int) -> int:
    """``reconstruct`` on every scan or cloud of a folder into the folder ``-o`` (one ``.ply`` mesh per
    input, named after it). With ``--jobs 1`` in this process, TensorFlow started once; otherwise ``--jobs``
    processes at a time. A file that fails is reported and skipped; exit status 1 when any failed."""
    import subprocess  # see the note at the top

    from tqdm import tqdm  # see the note at the top

    folder, out = Path(args.input), Path(args.output)
    inputs = _folder_inputs(folder, out)
    out.mkdir(parents=True, exist_ok=True)
    stems = [p.stem for p in inputs]  # a.npz and a.ply would both make a.ply: keep their whole names
    jobs = [(p, out / f"{p.stem if stems.count(p.stem) == 1 else p.name}.ply") for p in inputs]
    bar = tqdm(total=len(jobs), unit="file", desc="reconstructing", file=sys.stderr, leave=False,
               disable=args.quiet or not sys.stderr.isatty())
    failed = 0

    def report(source: Path, line: str | None, reason: str | None) -> None:
        nonlocal failed
        failed += reason is not None
        tqdm.write(f"{source.name}: {line if reason is None else 'skipped: ' + reason}", file=sys.stdout)
        bar.update(1)

    if args.jobs == 1:
        quiet, args.quiet = args.quiet, True  # the bar stands for the stage lines
        setups = {}
        for source, target in jobs:
            try:
                scan = _read_filter_input(source)
                _check_filter_fits(args, source, scan)
                if scan["organised"] not in setups:
                    setups[scan["organised"]] = _reconstruct_setup(args, passes, scan["organised"])
                line = _reconstruct_file(args, source, target, scan, *setups[scan["organised"]], passes)
                report(source, line, None)
            except (ValueError, OSError, MemoryError, RuntimeError) as error:
                if _Interrupts.seen:
                    raise KeyboardInterrupt from error
                report(source, None, _one_line(error))
        args.quiet = quiet
    else:
        options = [*(["--model", args.model] if args.model else []),
                   *(["--method", args.method] if args.method else []),
                   *(["--threshold", str(args.threshold)] if args.threshold is not None else []),
                   "--upsample", str(args.upsample), "--depth", str(args.depth), "--quiet"]

        def one(job):
            source, target = job
            command = [sys.executable, "-m", "pcfilter_lib.cli", "reconstruct", str(source), "-o", str(target),
                       *options]
            return source, subprocess.run(command, capture_output=True, text=True,
                                          env={**os.environ, "OMP_NUM_THREADS": "1"})

        with ThreadPoolExecutor(args.jobs) as pool:
            for source, done in pool.map(one, jobs):
                if done.returncode == 130:
                    raise KeyboardInterrupt
                stderr = done.stderr.strip()
                reason = None if done.returncode == 0 else (stderr.splitlines()[-1].removeprefix(
                    "pcfilter reconstruct: ") if stderr else f"status {done.returncode}")
                report(source, done.stdout.strip().splitlines()[-1] if reason is None else None, reason)
    bar.close()
    print(f"{len(jobs) - failed} of {len(jobs)} files reconstructed into {out}"
          + (f"; {failed} skipped (see above)" if failed else ""))
    return 1 if failed else 0


def _evaluation_data(args: argparse.Namespace):
    """(description, scans or clouds, organised) for ``evaluate``: a split of a scan dataset, or a
    folder of PointCleanNet pairs name.xyz + name.outliers (1 = outlier), read now so that a bad
    file is reported before TensorFlow starts."""
    folder = Path(args.data)
    if not folder.is_dir():
        raise FileNotFoundError(f"--data {folder} is not a folder")
    manifest = read_manifest(folder)
    if manifest is not None:
        if not any(name.startswith(f"{args.split}/") for name in manifest["files"]):
            raise ValueError(f"{folder} holds no {args.split} scans; choose another --split")
        runtime.setup(seed=None)  # data.scans imports Keras
        from pcfilter_lib import filters  # imports Keras: after runtime.setup
        from pcfilter_lib.data.scans import split_files

        files = split_files(folder, args.split)
        named = ({**scan, "name": file.name} for file, scan in zip(files, filters.iter_scans(files), strict=True))
        return f"{len(files)} {args.split} scans of {folder}", named, True
    pairs = sorted(p for p in folder.glob("*.xyz") if p.with_suffix(".outliers").is_file())
    if not pairs:
        raise FileNotFoundError(f"{folder} holds neither a manifest.json (a scan dataset: make one with 'pcfilter "
                                "simulate') nor name.xyz + name.outliers pairs (PointCleanNet layout)")
    from pcfilter_lib.io.clouds import cloud_scan, read_pointcleannet  # NumPy: see the note at the top

    clouds = []
    for path in pairs:
        points, outlier = read_pointcleannet(path)
        clouds.append({**cloud_scan(points, label=~outlier), "name": path.name})
    return f"{len(pairs)} point clouds (.xyz + .outliers) of {folder}", clouds, False


def _evaluate_per_file(scan_filter, scans, args: argparse.Namespace) -> dict:
    """Each file measured alone, its row printed at once; the pooled counts from the rows."""
    from pcfilter_lib import filters  # imports Keras: after runtime.setup

    rows = []
    if not args.json:
        print(f"{'file':<28} {'points':>9} {'outliers':>9} {'mean IoU':>9} {'bal. acc.':>9} {'keep-rec.':>9} "
              f"{'outl. rec.':>10}")
    for scan in scans:
        row = {"file": scan["name"], **filters.evaluate_filter(scan_filter, [scan])}
        rows.append(row)
        if not args.json:
            print(f"{row['file']:<28} {row['tp'] + row['fn']:>9} {row['fp'] + row['tn']:>9} "
                  f"{row['mean_iou']:>9.4f} {row['balanced_accuracy']:>9.4f} {row['recall']:>9.4f} "
                  f"{row['tnr']:>10.4f}", flush=True)
    counts = {key: sum(row[key] for row in rows) for key in ("tp", "fn", "fp", "tn")}
    kinds = {}
    for kind in rows[0]["kinds"]:
        points = sum(row["kinds"][kind]["points"] for row in rows)
        removed = sum(row["kinds"][kind]["points"] * (row["kinds"][kind]["removed"] or 0) for row in rows)
        kinds[kind] = {"points": points, "removed": removed / points if points else None}
    from pcfilter_lib.nn.metrics import confusion_metrics  # Keras: after runtime.setup

    return {"filter": scan_filter.name, "scans": len(rows), **counts, **confusion_metrics(**counts),
            "kinds": kinds, "files": rows}


def _print_evaluation(result: dict, what: str, scan_filter, args: argparse.Namespace) -> None:
    params = result["params"]
    print(f"{result['filter']} on {what}"
          + (f" (threshold {scan_filter.threshold:g})" if args.method is None else f" ({params})"))
    print(f"  confusion (1 = keep): TP {result['tp']}  FN {result['fn']}  FP {result['fp']}  TN {result['tn']}")
    for name in ("mean_iou", "balanced_accuracy", "f1", "recall", "false_omission_rate", "iou_keep", "iou_artefact"):
        label = {"recall": "keep-recall (true points kept)"}.get(name, name.replace("_", " "))
        print(f"  {label:<32} {result[name]:.4f}")
    for kind, row in result["kinds"].items():
        removed = "no points" if row["removed"] is None else f"{row['removed']:.4f} removed"
        print(f"  artefact kind {kind:<18} {row['points']:>9} points, {removed}")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    """Measure a filter on one split of a scan dataset or on a folder of labelled clouds."""
    _check_threshold(args)
    _check_model(args)
    what, scans, organised = _evaluation_data(args)
    if args.method == "morph" and not organised:
        raise ValueError("--method morph works on the pixel grid of an organised scan; these are unorganised "
                         "clouds (use the point filter, or --method sor / ror)")
    if args.model == "unet" and not organised:
        raise ValueError("the U-Net filter needs organised scans; these are unorganised clouds")
    runtime.setup(seed=None)
    from pcfilter_lib import filters  # imports Keras: after runtime.setup

    scan_filter = _make_filter(args, organised)
    if args.per_file:
        result = _evaluate_per_file(scan_filter, scans, args)
    else:
        result = filters.evaluate_filter(scan_filter, scans, progress=not args.json and sys.stderr.isatty())
    _Interrupts.check()
    result.update(split=args.split if organised else None, data=str(args.data),
                  threshold=scan_filter.threshold if args.method is None else None,
                  params=getattr(scan_filter, "params", None) or None)
    if args.json:
        print(json.dumps(result))
    else:
        _print_evaluation(result, what, scan_filter, args)
    return 0


def _cmd_modelnet(args: argparse.Namespace) -> int:
    """Write the procedural ModelNet10 stand-in (the real layout of .off meshes) into a folder."""
    if not args.synthetic:
        raise ValueError("only --synthetic is available here; the real archive comes from "
                         "data_scripts/download_modelnet10.py")
    _option_range("--seed", args.seed, 0, what="a whole number")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise NotADirectoryError(f"--out {args.out} is a file; name a folder")
    from pcfilter_lib.data import procedural_modelnet  # NumPy: see the note at the top

    out = procedural_modelnet.generate(args.out, seed=args.seed, progress=not args.quiet and sys.stderr.isatty(),
                                       counts=config.choose(full=procedural_modelnet.FULL_COUNTS,
                                                            fast=procedural_modelnet.FAST_COUNTS))
    print(f"procedural ModelNet10 in {out}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    """Time the standard workloads per backend and add the rows to the results file."""
    out = Path(args.out) if args.out else config.data_dir() / "bench" / "results.json"
    if args.out:
        check_output_file(out, "--out")
    runtime.setup(seed=None)
    from pcfilter_lib.timing import workloads  # its workloads import Keras: after runtime.setup

    rows = workloads.collect(args.backends, args.models, progress=not args.json and sys.stderr.isatty(),
                             sizes=config.choose(full=workloads.FULL, fast=workloads.FAST))
    workloads.append_results(out, rows)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(workloads.format_table(rows))
        print(f"\n{len(rows)} rows added to {out}")
    return 0


# ---------------------------------------------------------------------------------------------
# The parser


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the reason and where to read the options."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _add_info(commands) -> None:
    info = commands.add_parser(
        "info", help="show versions, settings and accelerators",
        description="Show package versions, the data folder, fast mode and the GPUs TensorFlow sees.")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument("--no-devices", action="store_true", help="skip the (slower) TensorFlow device query")
    info.set_defaults(run=_cmd_info)


def _add_simulate(commands) -> None:
    simulate = commands.add_parser(
        "simulate", help="simulate a dataset of structured-light scans",
        description="Simulate scans of bins of parts, circuit boards or fruit with a structured-light scanner "
        "model (shadows, inter-reflections, mixed pixels, specular saturation, phase-unwrapping errors, depth "
        "noise) into OUT/{train,val,test}/ with a manifest.json. A stopped run resumes when started again with "
        "the same options.")
    simulate.add_argument("--out", required=True,
                          help="dataset folder (created; resumed if made with the same options)")
    simulate.add_argument("--n", type=int, required=True, help="number of scans (at most 100000)")
    simulate.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    simulate.add_argument("--size", metavar="WxH",
                          help="scan size in pixels (default 640x480, 160x120 with PCFILTER_FAST=1)")
    simulate.add_argument("--split", default="0.8/0.1/0.1", metavar="TRAIN/VAL/TEST",
                          help="fractions of scans per split (default 0.8/0.1/0.1)")
    simulate.add_argument("--min-parts", type=int, default=3, help="fewest parts per bin (default 3)")
    simulate.add_argument("--max-parts", type=int, default=15, help="most parts per bin (default 15)")
    simulate.add_argument("--mesh", action="append", metavar="FILE",
                          help="a mesh file (ply, obj, stl, off) to add to the parts library of bins; repeatable")
    simulate.add_argument("--families", default="bin", metavar="NAME=SHARE,...",
                          help="scene families and their shares: bin, board (circuit boards with heat sinks), "
                          "fruit (translucent fruit on a plate); e.g. bin=0.4,board=0.35,fruit=0.25 (default bin)")
    simulate.add_argument("--random-scanner", action="store_true",
                          help="draw the scanner per scan (image size scaled from --size, baseline, distance, "
                          "noise, pattern period), recorded in each scan")
    simulate.set_defaults(run=_cmd_simulate)


def _add_filter_choice(command) -> None:
    choice = command.add_mutually_exclusive_group()
    choice.add_argument("--model", metavar="M",
                        help="a filter .keras file, or 'unet' / 'points' for the shipped U-Net / point filter "
                        "(default: the U-Net for scans and organised clouds, the point filter for others)")
    choice.add_argument("--method", choices=METHODS,
                        help="a classical filter instead, with the parameters tuned on validation scans (its "
                        "lengths scaled to the input's point spacing)")
    command.add_argument("--threshold", type=float, metavar="T",
                         help="keep a point when P(keep) >= T (default: the threshold in the model's manifest)")


def _add_filter(commands) -> None:
    filter_ = commands.add_parser(
        "filter", help="remove artefacts from a scan or a point cloud",
        description="Remove artefacts from a scan (.npz) or a point cloud (.ply, .pcd, .xyz, or .pts / .xyzn / "
        ".xyzrgb through Open3D). Organised input (a scan, a .pcd with HEIGHT > 1, or a .ply whose header has "
        "'obj_info width W' and 'obj_info height H' and W*H vertices, NaN = no point) goes through the U-Net; "
        "an unorganised cloud goes through the point filter, which needs only x y z. Points with NaN or infinite "
        "coordinates are dropped and counted. OUT ending in .ply gets the kept points; OUT ending in .pcd keeps "
        "an organised grid, with NaN where a point was removed; coordinates keep the input's precision. A file "
        "too large to filter in the available memory is refused before it is read. A filter that removes every "
        "point writes nothing and fails, unless --allow-empty.")
    filter_.add_argument("input", metavar="IN",
                         help="scan .npz, point cloud file, or a folder of them (never overwritten)")
    filter_.add_argument("-o", "--output", required=True, metavar="OUT",
                         help="kept points (.ply, .pcd or .xyz); with a folder IN, the output folder")
    filter_.add_argument("--removed", metavar="R", help="also write the removed points here (.ply, .pcd or .xyz)")
    filter_.add_argument("--scores", metavar="S.ply",
                         help="also write every point with its keep probability (PLY scalar 'keep_probability')")
    filter_.add_argument("--allow-empty", action="store_true",
                         help="write the outputs even when the filter removes every point")
    filter_.add_argument("--quiet", action="store_true", help="no progress on stderr")
    filter_.add_argument("--jobs", type=int, default=1, metavar="N",
                         help="with a folder IN: files filtered at once, each in its own process (default 1)")
    filter_.add_argument("--tile-points", type=int, default=None, metavar="T",
                         help="points per tile of a large unorganised cloud (default: filters.tiles.TILE_POINTS; "
                         "memory grows with it)")
    _add_filter_choice(filter_)
    filter_.set_defaults(run=_cmd_filter)


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
        "OUT/<name>.ply; a file that fails is reported and skipped.")
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
    reconstruct.add_argument("--quiet", action="store_true", help="no progress on stderr")
    reconstruct.add_argument("--jobs", type=int, default=1, metavar="N",
                             help="with a folder IN: files reconstructed at once, each in its own process "
                             "(default 1: one after another in this process)")
    _add_filter_choice(reconstruct)
    reconstruct.set_defaults(run=_cmd_reconstruct)


def _add_evaluate(commands) -> None:
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
    evaluate.add_argument("--per-file", action="store_true",
                          help="also measure each scan or cloud on its own: one row per file (with --json: 'files')")
    _add_filter_choice(evaluate)
    evaluate.set_defaults(run=_cmd_evaluate)


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
    modelnet.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    modelnet.add_argument("--quiet", action="store_true", help="no progress bar")
    modelnet.set_defaults(run=_cmd_modelnet)


def _add_bench(commands) -> None:
    from pcfilter_lib.timing.workloads import BACKENDS, MODELS  # NumPy: see the note at the top

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


def build_parser() -> argparse.ArgumentParser:
    """The ``pcfilter`` parser with its commands (info, simulate, filter, reconstruct, evaluate, modelnet,
    bench)."""
    parser = _Parser(
        prog="pcfilter",
        description="Deep learning on point clouds and structured-light scans: "
        "simulate scans, train and apply artefact filters, run the book's experiments.",
        epilog="Run 'pcfilter COMMAND --help' for the options of one command. "
        "PCFILTER_FAST=1 makes every run small; PCFILTER_DATA sets the data folder.",
    )
    parser.add_argument("--version", action="version", version=f"pcfilter {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (_add_info, _add_simulate, _add_filter, _add_reconstruct, _add_evaluate, _add_modelnet, _add_bench):
        add(commands)
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
        signal.signal(signal.SIGINT, _Interrupts.handle)
    sys.unraisablehook = _Interrupts.unraisable
    _Interrupts.seen = False
    try:
        parser = build_parser()
        args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else list(argv)))
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        command = f"pcfilter {args.command}"
        return args.run(args)
    except KeyboardInterrupt:
        print(f"{command}: interrupted; no output file was left half-written", file=sys.stderr)
        return 130
    except Exception as error:
        if _Interrupts.seen:  # Ctrl-C that a library turned into another error
            print(f"{command}: interrupted; no output file was left half-written", file=sys.stderr)
            return 130
        if not isinstance(error, ValueError | OSError | MemoryError | RuntimeError):
            raise  # a bug: its traceback is what a report needs
        print(f"{command}: {_one_line(error)}", file=sys.stderr)
        return 1
    finally:
        sys.unraisablehook = hook
        if previous is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
