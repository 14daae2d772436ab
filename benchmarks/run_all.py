"""Run every benchmark workload on this machine and add the rows to one results file.

For each installed Keras backend (TensorFlow, JAX, PyTorch) and model (U-Net filter, PointNet):
the default settings; for TensorFlow also XLA compilation off and on, and mixed precision
(mixed_float16 on a GPU, mixed_bfloat16 on a CPU). Rows are appended to RESULTS (JSON; earlier
rows, e.g. from other machines, are kept) and the table of all rows is written beside it as
markdown.

    python benchmarks/run_all.py [--results benchmarks/results/results.json] [--backends ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pcfilter_lib import config, runtime

runtime.setup(seed=0)

import tensorflow as tf

from pcfilter_lib.io.files import atomic_write_text
from pcfilter_lib.timing import workloads


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/results.json"))
    parser.add_argument("--backends", nargs="+", default=list(workloads.BACKENDS), choices=workloads.BACKENDS)
    parser.add_argument("--models", nargs="+", default=list(workloads.MODELS), choices=workloads.MODELS)
    args = parser.parse_args(argv)

    mixed = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
    default = {"jit_compile": "auto", "dtype_policy": "float32"}
    sizes = config.choose(full=workloads.FULL, fast=workloads.FAST)  # PCFILTER_FAST=1: a quick trial
    rows = workloads.collect(args.backends, args.models, (default,), sizes=sizes)
    if "tensorflow" in args.backends:
        variants = ({"jit_compile": False, "dtype_policy": "float32"}, {"jit_compile": True, "dtype_policy": "float32"},
                    {"jit_compile": "auto", "dtype_policy": mixed})
        rows += workloads.collect(["tensorflow"], args.models, variants, sizes=sizes)
    everything = workloads.append_results(args.results, rows)
    table = workloads.format_table(everything)
    atomic_write_text(args.results.with_suffix(".md"), table + "\n")
    print(workloads.format_table(rows))
    print(f"\n{len(rows)} rows added to {args.results} ({len(everything)} in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
