"""``pcfilter modelnet``: the procedural ModelNet10 stand-in, in the real layout of .off meshes."""

from __future__ import annotations

import argparse

from pcfilter_lib import config
from pcfilter_lib.cli.options import MAX_SEED, option_range, progress_bar
from pcfilter_lib.data import procedural_modelnet
from pcfilter_lib.io.files import RecipeMismatch, check_output_folder


def other_options(error: RecipeMismatch, out: str) -> ValueError:
    """``prepare_folder``'s refusal of a folder made with another seed or size, naming each with the
    folder's value and this run's (the size is that of PCFILTER_FAST=1, a few meshes per class, or
    the full set)."""
    parts = []
    for key, old, new in error.differences:
        if key[-1] == "seed":
            parts.append(f"--seed {old} (this run: {new})")
        elif key[-1] == "counts":
            meshes = [sum(map(sum, counts.values())) if isinstance(counts, dict) else counts for counts in (old, new)]
            parts.append(f"{meshes[0]} meshes (this run: {meshes[1]}; PCFILTER_FAST=1 writes a few per class, "
                         "without it the full set)")
        else:
            parts.append(f"{'.'.join(key)} {old!r} (this run: {new!r})")
    return ValueError(f"--out {out} already holds other data, a data set written with other options: "
                      f"{'; '.join(parts)}; give the folder's options to resume it, or choose another --out")


def run(args: argparse.Namespace) -> int:
    """Write the procedural ModelNet10 stand-in (the real layout of .off meshes) into a folder."""
    if not args.synthetic:
        raise ValueError("only --synthetic is available here; the real archive comes from "
                         "data_scripts/download_modelnet10.py")
    option_range("--seed", args.seed, 0, MAX_SEED, "a whole number")
    check_output_folder(args.out, "--out")
    try:
        out = procedural_modelnet.generate(args.out, seed=args.seed, progress=not args.quiet and progress_bar(),
                                           counts=config.choose(full=procedural_modelnet.FULL_COUNTS,
                                                                fast=procedural_modelnet.FAST_COUNTS))
    except RecipeMismatch as error:
        raise other_options(error, args.out) from error
    print(f"procedural ModelNet10 in {out}")
    return 0
