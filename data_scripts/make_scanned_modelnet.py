"""Write the scanned ModelNet10 variant: every procedural ModelNet10 mesh stood in a small scene and
scanned once by the simulator, as partial, noisy clouds with artefacts and some background, in the
layout `<out>/<class>/{train,test}/<class>_NNNN.npz` with a manifest.json (generator, version, seed,
parameters, sha256 per file). See `pcfilter_lib.data.scanned_modelnet` for what a file holds.

    python data_scripts/make_scanned_modelnet.py                  # into <data folder>/modelnet10_scanned
    python data_scripts/make_scanned_modelnet.py --out DIR --seed 1 --workers 2
    PCFILTER_FAST=1 python data_scripts/make_scanned_modelnet.py   # a few objects per class

Full size: 3991 training and 908 test objects, one per mesh of the procedural set with the same
seed. The scans run in parallel worker processes (one per CPU core by default); the files are the
same bytes whatever the number of workers. An interrupted run resumes; a folder holding other data
is refused. Prints the time taken and what the clouds hold.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pcfilter_lib import config
from pcfilter_lib.data import procedural_modelnet, scanned_modelnet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = config.data_dir() / scanned_modelnet.FOLDERS[config.choose(full="full", fast="fast")]
    parser.add_argument("--out", type=Path, default=default, help=f"output folder (default: {default})")
    parser.add_argument("--seed", type=int, default=0, help="random seed, the procedural meshes' too (default: 0)")
    parser.add_argument("--workers", type=int, default=None, help="scanning processes (default: one per CPU core)")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        print(f"make_scanned_modelnet: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 1
    counts = config.choose(full=procedural_modelnet.FULL_COUNTS, fast=procedural_modelnet.FAST_COUNTS)
    start = time.perf_counter()
    try:
        out = scanned_modelnet.generate(args.out, seed=args.seed, counts=counts, workers=args.workers, progress=True)
        summary = scanned_modelnet.summarise(out)
    except (ValueError, OSError) as error:
        print(f"make_scanned_modelnet: {error}", file=sys.stderr)
        return 1
    print(f"scanned ModelNet10 in {out} ({time.perf_counter() - start:.0f} s)")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
