"""The worker process of the benchmark workloads: times workloads under this process's Keras backend and
prints one JSON row for each (``timing.workloads.collect`` starts one per backend, because the backend of
a process cannot change once Keras is imported, and the CPU can be split into logical devices only
before TensorFlow starts).

    KERAS_BACKEND=jax python -m pcfilter_lib.cli.workload_process --model unet
    python -m pcfilter_lib.cli.workload_process --rows '[{"model": "unet", "jit_compile": "false"}]'
    python -m pcfilter_lib.cli.workload_process --data-parallel --epochs 2

``--sizes`` takes the JSON of ``workloads.Sizes``; without it the sizes follow the mode
(``PCFILTER_FAST``).
"""

from __future__ import annotations

import argparse
import json

from pcfilter_lib import config, runtime
from pcfilter_lib.timing import workloads


def _rows(text: str) -> list[dict]:
    """``--rows``: a JSON list of objects with ``model`` and, optionally, ``jit_compile`` and ``dtype_policy``."""
    rows = json.loads(text)
    keys = {"model", "jit_compile", "dtype_policy"}
    if not isinstance(rows, list) or not rows or not all(
            isinstance(r, dict) and r.get("model") in workloads.CPU_MODELS and set(r) <= keys for r in rows):
        raise argparse.ArgumentTypeError(f"--rows must be a JSON list of objects with the keys {sorted(keys)} "
                                         f"(model, one of {', '.join(workloads.CPU_MODELS)}, required), got {text!r}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time workloads under the Keras backend of this process "
                                                 "(set KERAS_BACKEND); prints one JSON row for each.")
    parser.add_argument("--model", choices=workloads.CPU_MODELS, default="unet")
    parser.add_argument("--rows", type=_rows,
                        help="instead of --model and its settings: several rows, timed one after another, as a "
                             'JSON list such as \'[{"model": "unet", "jit_compile": "false", '
                             '"dtype_policy": "mixed_bfloat16"}]\'')
    parser.add_argument("--data-parallel", action="store_true",
                        help="instead: compare one device with MirroredStrategy over two (prints JSON)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the data-parallel comparison")
    parser.add_argument("--jit-compile", default="auto", help="auto, True or False (XLA compilation)")
    parser.add_argument("--dtype-policy", default="float32", help="float32, mixed_float16 or mixed_bfloat16")
    parser.add_argument("--sizes", help="workload sizes as JSON (timing.workloads.Sizes; default: by mode)")
    args = parser.parse_args(argv)
    if args.sizes:
        sizes = workloads.Sizes.from_json(args.sizes)
    else:
        sizes = config.choose(full=workloads.FULL, fast=workloads.FAST)
    runtime.setup(seed=0, cpu_devices=2 if args.data_parallel else 1)
    from pcfilter_lib.timing import training_runs  # starts Keras: after the CPU is split

    if args.data_parallel:
        print(json.dumps(training_runs.data_parallel(args.epochs, sizes=sizes)))
        return 0
    rows = args.rows or [{"model": args.model, "jit_compile": args.jit_compile, "dtype_policy": args.dtype_policy}]
    for row in training_runs.run_rows(rows, sizes):
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
