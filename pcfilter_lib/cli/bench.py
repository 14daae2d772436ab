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


def check_results_file(path: Path, option: str) -> None:
    """Refuse, before any benchmark runs, a results file that the rows could not be added to: an
    existing file that is not a JSON list of result rows (objects naming their ``model`` and ``backend``,
    as ``bench`` writes them), so that no other file is ever extended with rows."""
    if not path.exists():
        return
    remedy = f"choose another {option} (a new file, or one 'pcfilter bench' wrote); this one is left as it is"
    try:
        rows = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{option} {path} is not a bench results file: it is not JSON ({error}); {remedy}") from error
    if not isinstance(rows, list):
        raise ValueError(f"{option} {path} is not a bench results file: it holds a JSON {_json_type(rows)}, not a "
                         f"list of result rows; {remedy}")
    for i, row in enumerate(rows):
        if not (isinstance(row, dict) and {"model", "backend"} <= set(row)):
            found = (f"a JSON {_json_type(row)}" if not isinstance(row, dict)
                     else "an object without 'model' and 'backend'")
            raise ValueError(f"{option} {path} is not a bench results file: its item {i + 1} is {found}, not a result "
                             f"row; {remedy}")


def _json_type(value) -> str:
    return {dict: "object", list: "list", str: "string", bool: "true/false", type(None): "null"}.get(type(value),
                                                                                                 "number")


def run(args: argparse.Namespace) -> int:
    """Time the standard workloads per backend and add the rows to the results file."""
    out = Path(args.out) if args.out else config.data_dir() / "bench" / "results.json"
    option = "--out" if args.out else "the results file"
    if args.out:
        check_output_file(out, "--out")
    check_results_file(out, option)  # before the benchmark, which takes minutes
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
