"""Which scan input pipeline is faster: ``keras.utils.PyDataset`` or ``tf.data``?

Makes (or reuses) a small scan dataset, then times one epoch of augmented batches from each
pipeline, in this run, side by side: iterating the batches alone, and feeding a one-layer Keras
model with ``fit`` (so the model's own time is nearly nothing and the input pipeline decides).
Writes the results as JSON and markdown.

    python benchmarks/scan_pipeline_speed.py [--scans 16] [--size 640x480] [--batch 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from pcfilter_lib import config, runtime

runtime.setup(seed=0)

import keras

from pcfilter_lib.data import scans
from pcfilter_lib.io.files import atomic_write_text
from pcfilter_lib.simulate.dataset import write_dataset
from pcfilter_lib.simulate.scanner import ScannerConfig


def tiny_model(channels: int) -> keras.Model:
    inputs = keras.Input((None, None, channels))
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=config.choose(full=16, fast=6))
    parser.add_argument("--size", default=config.choose(full="640x480", fast="160x120"))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--data", type=Path, help="an existing dataset folder (default: make one in a temp folder)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data
        if folder is None:
            width, height = (int(v) for v in args.size.lower().split("x"))
            folder = Path(tmp) / "scans"
            write_dataset(folder, args.scans, seed=0, config=ScannerConfig(width=width, height=height),
                          split=(1.0, 0.0, 0.0), progress=False)
        files = scans.split_files(folder, "train")
        options = dict(batch_size=args.batch, multiple=16, augment=True, shuffle=True, seed=0)
        pipelines = {
            "PyDataset, 1 worker": lambda: scans.ScanSequence(files, **options),
            "PyDataset, 2 threads": lambda: scans.ScanSequence(files, workers=2, **options),
            "tf.data, AUTOTUNE map + prefetch": lambda: scans.scan_dataset(files, **options),
        }
        steps = -(-len(files) // args.batch)
        results = {}
        for name, make in pipelines.items():
            list(make())  # warm-up (file cache, tf.function tracing)
            iterate = min(timed(lambda make=make: [None for _ in make()]) for _ in range(2))
            model = tiny_model(6)
            model.fit(make(), epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
            fit = min(timed(lambda make=make, model=model: model.fit(
                make(), epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)) for _ in range(2))
            results[name] = {"iterate_s": iterate, "fit_epoch_s": fit, "scans_per_s_fit": len(files) / fit}
    base = results["PyDataset, 1 worker"]
    print(f"one epoch of {len(files)} scans, batch {args.batch}, augmented:")
    for name, row in results.items():
        row["speed_vs_pydataset_1_worker"] = base["fit_epoch_s"] / row["fit_epoch_s"]
        print(f"  {name:<34} iterate {row['iterate_s']:6.2f} s   fit {row['fit_epoch_s']:6.2f} s   "
              f"{row['scans_per_s_fit']:6.1f} scans/s   {row['speed_vs_pydataset_1_worker']:.2f}x")
    fastest = max(results, key=lambda k: results[k]["scans_per_s_fit"])
    print(f"fastest in fit: {fastest}")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "scan_pipeline_speed.json", json.dumps(results, indent=2) + "\n")
    table = ["| pipeline | iterate (s) | fit epoch (s) | scans/s | vs PyDataset 1 worker |", "|---|---|---|---|---|"]
    table += [f"| {k} | {v['iterate_s']:.2f} | {v['fit_epoch_s']:.2f} | {v['scans_per_s_fit']:.1f} | "
              f"{v['speed_vs_pydataset_1_worker']:.2f}x |" for k, v in results.items()]
    atomic_write_text(args.out / "scan_pipeline_speed.md", "\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
