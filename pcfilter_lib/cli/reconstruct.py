"""``pcfilter reconstruct``: filter a scan or cloud (or each of a folder), optionally upsample it with
the shipped PU-Net, and write the Poisson surface of what is left (``pipelines.surface``)."""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from pathlib import Path

from tqdm import tqdm

from pcfilter_lib import runtime
from pcfilter_lib.cli.app import Interrupts, one_line
from pcfilter_lib.cli.folders import folder_inputs
from pcfilter_lib.cli.inputs import check_filter_fits, make_filter, needs_keras, read_filter_input
from pcfilter_lib.cli.options import (
    MESH_SUFFIXES,
    check_jobs,
    check_model,
    check_new_folder_outputs,
    check_new_outputs,
    check_threshold,
    cluster_module,
    on_cluster,
    option_range,
)
from pcfilter_lib.io.files import check_input_file, check_output_file, check_output_folder
from pcfilter_lib.io.model_cards import SHIPPED_UPSAMPLER, check_model_file, read_model_card, retrain_hint
from pcfilter_lib.io.ptx import stem_of

UPSAMPLE_MAX = 16  # x64 of a scan would be tens of millions of points


def _upsample_passes(factor: int) -> int:
    """How many passes of the shipped upsampler give ``--upsample factor`` (0 for 1): the factor must
    be a power of the upsampler's own ratio, read from its model card before TensorFlow starts."""
    if factor == 1:
        return 0
    option_range("--upsample", factor, 1, UPSAMPLE_MAX, "a whole number")
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


def _check_options(args: argparse.Namespace) -> int:
    """Options that need no reading of the input; returns the number of upsampling passes."""
    option_range("--depth", args.depth, 4, 12, "a whole number")
    check_jobs(args)
    check_threshold(args)
    check_model(args)
    return _upsample_passes(args.upsample)


def _check_mesh_output(source: Path, target: Path, overwrite: bool) -> None:
    if target.resolve() == source.resolve() or (target.exists() and os.path.samefile(target, source)):
        raise ValueError(f"{target} is the input file; choose another output name (the input is never overwritten)")
    if target.suffix.lower() not in MESH_SUFFIXES:
        raise ValueError(f"-o {target}: the mesh is written as {', '.join(MESH_SUFFIXES)}; name a file with one of "
                         "these endings")
    check_output_file(target, "-o")
    check_new_outputs([("-o", target)], overwrite)


def _stage(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(f"pcfilter reconstruct: {text}", file=sys.stderr, flush=True)


def _reconstruct_file(args: argparse.Namespace, source: Path, target: Path, scan: dict, scan_filter,
                      upsampler, passes: int) -> str:
    """Filter, upsample ``passes`` times and Poisson-reconstruct one read input; write the mesh to
    ``target`` atomically and return the line that reports it."""
    from pcfilter_lib.pipelines import surface  # imports Keras only to upsample, after runtime.setup

    valid = scan["valid"]
    n = int(valid.sum())
    _stage(args, f"{source.name}: filtering {n:,} points with {scan_filter.name}")
    with warnings.catch_warnings():  # far points overflow their float32 features; they are removed
        warnings.simplefilter("ignore", RuntimeWarning)
        keep = (scan_filter.keep_probability(scan) >= scan_filter.threshold) & valid
    Interrupts.check()
    kept = int(keep.sum())
    if kept < surface.MIN_POINTS:
        raise ValueError(f"{source}: {scan_filter.name} kept {kept} of {n} points; Poisson reconstruction "
                         f"needs at least {surface.MIN_POINTS}")
    if passes and kept < upsampler.input_shape[1]:
        raise ValueError(f"{source}: {kept} points are left after filtering, fewer than the upsampler's "
                         f"patch of {upsampler.input_shape[1]}; reconstruct without --upsample")

    def progress(line: str) -> None:
        Interrupts.check()
        _stage(args, f"{source.name}: {line}")

    try:
        made = surface.filtered_surface(scan, keep, args.depth, upsampler, passes, progress)
    except ValueError as error:  # points that span no surface: say which file
        raise ValueError(f"{source}: {error}") from error
    Interrupts.check()
    surface.write_mesh(target, made.mesh)
    points = len(made.clouds[-1])
    what = f"kept {kept} of {n} points" + (f", upsampled x{args.upsample} to {points}" if passes else "")
    if scan.get("far"):
        what += f" (dropped {scan['far']} beyond ±{scan['far_limit']:.1e}, too far to measure distances)"
    return (f"{scan_filter.name}: {what}; mesh of {len(made.mesh.vertices)} vertices and "
            f"{len(made.mesh.triangles)} triangles; wrote {target}")


def _setup(args: argparse.Namespace, passes: int, organised: bool):
    """The filter and the upsampler (None without --upsample); starts TensorFlow only for a learned filter
    that runs in Keras or for the upsampler (a classical method or the neighbour filter needs none)."""
    if not (passes or needs_keras(args, organised)):
        return make_filter(args, organised), None
    runtime.setup(seed=None)
    from pcfilter_lib.models.punet import load_upsampler  # imports Keras: after runtime.setup

    return make_filter(args, organised), load_upsampler() if passes else None


def run(args: argparse.Namespace) -> int:
    """Filter a scan or cloud (or each of a folder), optionally upsample it with the shipped PU-Net,
    and write the Poisson surface of what is left."""
    passes = _check_options(args)
    if Path(args.input).is_dir():
        return _reconstruct_folder(args, passes)
    source = check_input_file(args.input, "input")
    target = Path(args.output)
    _check_mesh_output(source, target, args.overwrite)
    scan = read_filter_input(source, args.grid)
    check_filter_fits(args, source, scan)
    scan_filter, upsampler = _setup(args, passes, scan["organised"])
    print(_reconstruct_file(args, source, target, scan, scan_filter, upsampler, passes))
    return 0


def _reconstruct_folder(args: argparse.Namespace, passes: int) -> int:
    """``reconstruct`` on every scan or cloud of a folder into the folder ``-o`` (one ``.ply`` mesh per
    input, named after it). With ``--jobs 1`` in this process, TensorFlow started once; otherwise each
    file is a task on a Dask cluster (``--jobs`` workers here, or ``--scheduler``: ``cluster.run_on_cluster``).
    A file that fails is reported and skipped; exit status 1 when any failed."""
    folder, out = Path(args.input), Path(args.output)
    inputs = folder_inputs(folder, out)
    check_output_folder(out, "-o")
    stems = [stem_of(p) for p in inputs]  # a.npz and a.ply would both make a.ply: keep their whole names
    files = [(p, out / f"{stem if stems.count(stem) == 1 else p.name}.ply") for p, stem in zip(inputs, stems,
                                                                                               strict=True)]
    check_new_folder_outputs(out, [target for _, target in files], args.overwrite)
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(files), unit="file", desc="reconstructing", file=sys.stderr, leave=False,
               disable=args.quiet or not sys.stderr.isatty())
    failed = 0

    def report(source: Path, line: str | None, reason: str | None) -> None:
        nonlocal failed
        failed += reason is not None
        tqdm.write(f"{source.name}: {line if reason is None else 'skipped: ' + reason}", file=sys.stdout)
        bar.update(1)

    if not on_cluster(args):
        quiet, args.quiet = args.quiet, True  # the bar stands for the stage lines
        setups = {}
        for source, target in files:
            try:
                scan = read_filter_input(source, args.grid)
                check_filter_fits(args, source, scan)
                if scan["organised"] not in setups:
                    setups[scan["organised"]] = _setup(args, passes, scan["organised"])
                line = _reconstruct_file(args, source, target, scan, *setups[scan["organised"]], passes)
                report(source, line, None)
            except (ValueError, OSError, MemoryError, RuntimeError) as error:
                if Interrupts.seen:
                    raise KeyboardInterrupt from error
                report(source, None, one_line(error))
        args.quiet = quiet
    else:
        for source, line, reason in cluster_module().run_on_cluster(args, files):
            report(source, line, reason)
    bar.close()
    print(f"{len(files) - failed} of {len(files)} files reconstructed into {out}"
          + (f"; {failed} skipped (see above)" if failed else ""))
    return 1 if failed else 0
