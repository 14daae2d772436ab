"""What filter and reconstruct read and filter with: a scan or cloud as a scan-like dict, the checks
that the chosen filter can work on it (made before TensorFlow starts), and the filter itself."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from pcfilter_lib import filters  # its names load Keras when first used, after runtime.setup
from pcfilter_lib.geometry.point_features import COORDINATE_LIMIT, FLOAT32_COORDINATE_LIMIT, MIN_POINTS
from pcfilter_lib.io.organised import CLOUD_SUFFIXES, read_cloud, unknown_format, usable_points
from pcfilter_lib.io.ptx import suffix_of
from pcfilter_lib.io.scan import load_scan


def read_filter_input(path: Path, grid: tuple[int, int] | None = None, lines: bool = False) -> dict:
    """A scan .npz, or a cloud file (see ``pcfilter_lib.io.organised``), as a scan-like dict whose
    ``far`` points (left out, as NaN) lay beyond ``far_limit``: ``COORDINATE_LIMIT`` for unorganised
    clouds, whose filters measure distances in double precision, and ``FLOAT32_COORDINATE_LIMIT``
    for scans and organised clouds, whose U-Net features are single precision (a scan scaled by 1e30
    would otherwise be filtered wrongly without a word). ``grid`` (width, height) reads a .ply
    without obj_info lines as that grid (``--grid``). A PTX file of several scans: the first is
    read, and a line on stderr says so. ``lines`` keeps a PTX file's point lines (``io.ptx.read_ptx``)
    for a PTX output."""
    suffix = suffix_of(path)
    if suffix == ".npz":
        scan = {**load_scan(path, arrays=()), "organised": True, "far": 0}
    elif suffix not in CLOUD_SUFFIXES:
        raise ValueError(unknown_format(path))
    else:
        if grid is not None and suffix != ".ply":
            raise ValueError(f"--grid reads a .ply exported without its grid size; {path} is a {suffix} file, "
                             "which says whether it is organised itself")
        scan = read_cloud(path, grid=grid, lines=lines)
        if scan.get("scans", 1) > 1:
            print(f"note: {path} holds {scan['scans']} scans; the first ({scan['xyz'].shape[0]} x "
                  f"{scan['xyz'].shape[1]} points) is read, the others are not: split the file to filter them",
                  file=sys.stderr)
    if not scan["organised"]:
        return {**scan, "far_limit": COORDINATE_LIMIT}
    xyz = np.asarray(scan["xyz"])
    valid, far = usable_points(xyz, FLOAT32_COORDINATE_LIMIT)
    if not valid.any():
        raise ValueError(f"{path}: every point lies beyond ±{FLOAT32_COORDINATE_LIMIT:.1e}, too far from the origin to "
                         "measure distances between scan points in single precision; give the coordinates in metres")
    if far:
        scan = {**scan, "xyz": np.where(valid[..., None], xyz, np.nan), "valid": valid, "lines": None}
    return {**scan, "far": int(scan.get("far", 0)) + far, "far_limit": FLOAT32_COORDINATE_LIMIT}


def check_filter_fits(args: argparse.Namespace, source: Path, scan: dict) -> None:
    """Refuse, before TensorFlow starts, what the chosen filter cannot do with this input."""
    organised, n = scan["organised"], int(scan["valid"].sum())
    if args.method == "morph" and not organised:
        raise ValueError("--method morph works on the pixel grid of an organised scan; this input is an "
                         "unorganised cloud (use the point filter, or --method sor / ror)")
    if args.model == "unet" and not organised:
        raise ValueError("the U-Net filter needs an organised scan; this input is an unorganised cloud")
    learned_unet = args.method is None and args.model in (None, "unet") and organised
    if learned_unet and scan["intensity"] is None:
        raise ValueError(f"{source} has no intensity field, which the U-Net reads; add one, or use --model points "
                         "or --method")
    if args.method is None and not organised and n < MIN_POINTS:
        raise ValueError(f"{source}: the cloud holds {n} point{'s' * (n != 1)} with finite coordinates; the point "
                         f"filter needs at least {MIN_POINTS} to compare each point with its neighbours")


def needs_keras(args: argparse.Namespace, organised: bool) -> bool:
    """Whether the filter asked for runs in Keras (call ``runtime.setup`` first) or without it: the
    classical methods and the neighbour filter (shipped, or an ``.npz`` file) need no TensorFlow."""
    if args.method or args.model == "neighbours":
        return False
    return not (args.model or "").lower().endswith(".npz")


def make_filter(args: argparse.Namespace, organised: bool = True):
    """The filter asked for: ``--method`` (a baseline with its tuned parameters, lengths scaled to the
    input's point spacing) or ``--model`` (a file, or ``options.SHIPPED_NAMES`` for the shipped
    filters; by default the U-Net for organised input and the point filter for unorganised clouds),
    with its model card's threshold unless ``--threshold``. Where ``needs_keras``, call it after
    ``runtime.setup``."""
    if args.method:
        return filters.baseline_filter(args.method)
    if args.model == "points":
        return filters.point_filter(None, args.threshold)
    if args.model == "unet":
        return filters.unet_filter(None, args.threshold)
    if not needs_keras(args, organised):
        return filters.neighbour_filter(None if args.model == "neighbours" else args.model, args.threshold)
    scan_filter = filters.load_filter(args.model, args.threshold, organised)
    shape = (scan_filter.model.input_shape, scan_filter.model.output_shape)
    if len(shape[1]) != len(shape[0]) or shape[1][-1] != 1:
        raise ValueError(f"--model {args.model} gives {shape[1]} for input {shape[0]}: it is no artefact filter, "
                         "which gives one P(keep) per point or pixel")
    return scan_filter
