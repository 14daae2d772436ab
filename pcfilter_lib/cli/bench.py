"""``pcfilter bench``: time the standard workloads per Keras backend, the rows of each backend in a process
of their own (``workload_process``), and add the rows to the results file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pcfilter_lib import config, runtime
from pcfilter_lib.cli.options import LOG_PROGRESS, progress_bar
from pcfilter_lib.io.files import check_output_file
from pcfilter_lib.timing import workloads


def run(args: argparse.Namespace) -> int:
    """Time the standard workloads per backend and add the rows to the results file."""
    out = Path(args.out) if args.out else config.data_dir() / "bench" / "results.json"
    if args.out:
        check_output_file(out, "--out")
    runtime.setup(seed=None)
    rows = workloads.collect(args.backends, args.models, progress=LOG_PROGRESS if args.json else progress_bar(),
                             sizes=config.choose(full=workloads.FULL, fast=workloads.FAST))
    workloads.append_results(out, rows)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(workloads.format_table(rows))
        print(f"\n{len(rows)} rows added to {out}")
    return 0
