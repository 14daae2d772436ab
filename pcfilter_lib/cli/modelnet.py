"""``pcfilter modelnet``: the procedural ModelNet10 stand-in, in the real layout of .off meshes."""

from __future__ import annotations

import argparse

from pcfilter_lib import config
from pcfilter_lib.cli.options import MAX_SEED, option_range, progress_bar
from pcfilter_lib.data import procedural_modelnet
from pcfilter_lib.io.files import check_output_folder


def run(args: argparse.Namespace) -> int:
    """Write the procedural ModelNet10 stand-in (the real layout of .off meshes) into a folder."""
    if not args.synthetic:
        raise ValueError("only --synthetic is available here; the real archive comes from "
                         "data_scripts/download_modelnet10.py")
    option_range("--seed", args.seed, 0, MAX_SEED, "a whole number")
    check_output_folder(args.out, "--out")
    out = procedural_modelnet.generate(args.out, seed=args.seed, progress=not args.quiet and progress_bar(),
                                       counts=config.choose(full=procedural_modelnet.FULL_COUNTS,
                                                            fast=procedural_modelnet.FAST_COUNTS))
    print(f"procedural ModelNet10 in {out}")
    return 0
