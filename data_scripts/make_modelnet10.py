"""Write the procedural ModelNet10 stand-in: the ten ModelNet10 classes as `.off` meshes in the real
layout `<out>/<class>/{train,test}/<class>_NNNN.off`, with a manifest.json (generator, version, seed,
counts, sha256 per file).

    python data_scripts/make_modelnet10.py                 # into <data folder>/modelnet10_procedural
    python data_scripts/make_modelnet10.py --out DIR --seed 1
    PCFILTER_FAST=1 python data_scripts/make_modelnet10.py  # a few meshes per class

Full size: 3991 training and 908 test meshes, as in the real data set. An interrupted run resumes;
a folder holding other data is refused. The same as `pcfilter modelnet --synthetic --out DIR`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pcfilter_lib import config
from pcfilter_lib.data import procedural_modelnet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = config.data_dir() / config.choose(full="modelnet10_procedural", fast="modelnet10_procedural_fast")
    parser.add_argument("--out", type=Path, default=default, help=f"output folder (default: {default})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        out = procedural_modelnet.generate(args.out, seed=args.seed, progress=True, counts=config.choose(
            full=procedural_modelnet.FULL_COUNTS, fast=procedural_modelnet.FAST_COUNTS))
    except (ValueError, OSError) as error:
        print(f"make_modelnet10: {error}", file=sys.stderr)
        return 1
    print(f"procedural ModelNet10 in {out} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
