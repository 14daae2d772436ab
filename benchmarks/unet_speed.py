"""Speed of the default U-Net filter on this machine, next to the machine's own matmul speed.

Prints, for 256x256 and 512x512 inputs at batch 1 and 8: the time of one training step, the
inference latency, the achieved GFLOP/s (FLOPs counted from the layer shapes) and the fraction of
the float32 matmul GFLOP/s measured in the same run. Writes the table as JSON and markdown.

    python benchmarks/unet_speed.py [--sizes 256 512] [--batches 1 8] [--repeats 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras
import numpy as np
import tensorflow as tf

from pcfilter_lib.io.files import atomic_write_text
from pcfilter_lib.models.unet import build_unet
from pcfilter_lib.nn import losses
from pcfilter_lib.timing import clock


def measure(size: int, batch: int, repeats: int) -> dict:
    model = build_unet(input_channels=5)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.BinaryFocalLoss(0.25, 2.0))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, size, size, 5)).astype("float32")
    y = (rng.random((batch, size, size)) > 0.1).astype("float32")
    w = np.ones_like(y)
    train = clock.time_call(lambda: model.train_on_batch(x, y, sample_weight=w), repeats=repeats, warmup=2)
    predict = tf.function(lambda t: model(t, training=False), jit_compile=False)
    infer = clock.time_call(lambda: predict(x), repeats=repeats, warmup=2, sync=lambda r: r.numpy())
    flops = clock.model_flops(model, (size, size, 5)) * batch
    return {"size": size, "batch": batch, "train_step_s": train.median, "inference_s": infer.median,
            "forward_gflop": flops / 1e9, "inference_gflops": flops / infer.median / 1e9,
            "train_gflops": 3 * flops / train.median / 1e9}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for unet_speed.json/.md")
    args = parser.parse_args(argv)
    if any(s % 16 for s in args.sizes):
        parser.error("sizes must be multiples of 16 (the U-Net has four pooling levels)")

    peak = clock.matmul_gflops(2048, repeats=args.repeats)
    rows = [measure(size, batch, args.repeats) for size in args.sizes for batch in args.batches]
    for row in rows:
        row["inference_fraction_of_matmul"] = row["inference_gflops"] / peak
        row["train_fraction_of_matmul"] = row["train_gflops"] / peak

    header = ("| input | batch | train step | inference | forward GFLOP | inference GFLOP/s | train GFLOP/s "
              "| inference / matmul | train / matmul |")
    device = clock.device_report()
    where = ", ".join(device["gpus"]) or f"{device['cpu']} ({device['cores']} cores, CPU only)"
    lines = [f"Device: {where}; TensorFlow {device['tensorflow']}, Keras {device['keras']}. "
             f"float32 matmul (2048^2) measured at {peak:.1f} GFLOP/s in this run.", "", header,
             "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r['size']}x{r['size']} | {r['batch']} | {r['train_step_s'] * 1e3:.1f} ms "
                     f"| {r['inference_s'] * 1e3:.1f} ms | {r['forward_gflop']:.2f} | {r['inference_gflops']:.1f} "
                     f"| {r['train_gflops']:.1f} | {r['inference_fraction_of_matmul']:.2f} "
                     f"| {r['train_fraction_of_matmul']:.2f} |")
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "unet_speed.md", table + "\n")
    atomic_write_text(args.out / "unet_speed.json",
                      json.dumps({"device": device, "matmul_gflops": peak, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
