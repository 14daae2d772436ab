"""The fixed workloads that benchmarks time: training and inference of the U-Net filter and PointNet.

Each workload uses fixed random data (seeded) of fixed size, so rows measured on different machines,
backends or settings compare like with like, as the seed report's GPU table did. Everything here is
written against ``keras`` and ``keras.ops`` only, so it runs on the TensorFlow, JAX and PyTorch
backends; ``pcfilter bench`` runs it once per backend in a subprocess with ``KERAS_BACKEND`` set
(the backend of a process cannot change once Keras is imported):

    python -m pcfilter_lib.bench.workloads --backend jax --json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC

import numpy as np

from pcfilter_lib import config

BACKENDS = ("tensorflow", "jax", "torch")
MODELS = ("unet", "pointnet")


@dataclass(frozen=True)
class Workload:
    """What is trained and timed: ``samples`` inputs of ``shape``, ``epochs`` epochs at ``batch``."""

    model: str
    shape: tuple[int, ...]
    samples: int
    batch: int
    epochs: int
    infer_batch: int


def workload(model: str) -> Workload:
    """The standard workload of ``model`` (smaller in fast mode)."""
    if model == "unet":  # scans: 5 channels, inference on one 640x480 scan as in the seed table
        return Workload("unet", config.choose(full=(256, 256, 5), fast=(64, 64, 5)), config.choose(full=64, fast=8),
                        batch=config.choose(full=4, fast=4), epochs=config.choose(full=3, fast=1), infer_batch=1)
    if model == "pointnet":
        return Workload("pointnet", config.choose(full=(1024, 3), fast=(128, 3)), config.choose(full=512, fast=32),
                        batch=32, epochs=config.choose(full=3, fast=1), infer_batch=32)
    raise ValueError(f"unknown model {model!r}: choose one of {MODELS}")


def missing_backend(backend: str) -> str | None:
    """None if ``backend`` can run here, else a one-line reason."""
    if backend not in BACKENDS:
        return f"unknown backend {backend!r}; Keras 3 runs on {', '.join(BACKENDS)}"
    if importlib.util.find_spec(backend) is None:
        return f"{backend} is not installed (pip install {'jax' if backend == 'jax' else backend})"
    return None


def _build(spec: Workload):
    from pcfilter_lib.models.pointnet import build_pointnet
    from pcfilter_lib.models.unet import build_unet
    from pcfilter_lib.nn import losses

    if spec.model == "unet":
        return build_unet(input_channels=spec.shape[-1]), losses.BinaryFocalLoss(0.25, 2.0)
    return build_pointnet(num_classes=10, num_points=spec.shape[0]), "sparse_categorical_crossentropy"


def _data(spec: Workload, rng: np.random.Generator):
    x = rng.normal(size=(spec.samples, *spec.shape)).astype("float32")
    if spec.model == "unet":
        y = (rng.random((spec.samples, *spec.shape[:2])) > 0.05).astype("float32")
    else:
        y = rng.integers(0, 10, spec.samples).astype("int32")
    return x, y


def api() -> str:
    """How the current Keras backend reaches its device: "CUDA" on an NVIDIA GPU, else "CPU"."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return "CUDA" if jax.default_backend() == "gpu" else "CPU"
    if backend == "torch":
        import torch

        return "CUDA" if torch.cuda.is_available() else "CPU"
    import tensorflow as tf

    return "CUDA" if tf.config.list_physical_devices("GPU") else "CPU"


def run(model: str, jit_compile: bool | str = "auto", dtype_policy: str = "float32", seed: int = 0) -> dict:
    """Train ``model`` on its workload and time training and inference; one result row."""
    import keras

    from pcfilter_lib.bench import timing as bench

    spec = workload(model)
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_dtype_policy(dtype_policy)
    try:
        net, loss = _build(spec)
        net.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, jit_compile=jit_compile)
        x, y = _data(spec, np.random.default_rng(seed))
        net.fit(x[: spec.batch], y[: spec.batch], batch_size=spec.batch, epochs=1, verbose=0)  # compile, warm up
        start = time.perf_counter()
        history = net.fit(x, y, batch_size=spec.batch, epochs=spec.epochs, verbose=0)
        train_seconds = time.perf_counter() - start
        if spec.model == "unet":
            probe = np.random.default_rng(seed + 1).normal(size=(spec.infer_batch, *config.choose(
                full=(480, 640), fast=(96, 128)), spec.shape[-1])).astype("float32")
        else:
            probe = x[: spec.infer_batch]
        infer = bench.time_call(lambda: net.predict_on_batch(probe), repeats=config.choose(full=10, fast=3))
        flops_per_sample = bench.model_flops(net, spec.shape)
        infer_flops = bench.model_flops(net, probe.shape[1:]) * spec.infer_batch
        peak = bench.matmul_gflops(config.choose(full=2048, fast=512), repeats=config.choose(full=10, fast=3))
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    train_gflops = 3 * flops_per_sample * spec.samples * spec.epochs / train_seconds / 1e9
    return {
        **{k: v for k, v in asdict(spec).items() if k != "shape"}, "shape": list(spec.shape),
        "backend": keras.backend.backend(), "api": api(), "jit_compile": str(jit_compile), "dtype_policy": dtype_policy,
        "train_s": train_seconds, "final_loss": float(history.history["loss"][-1]),
        "inference_s": infer.median, "inference_shape": list(probe.shape),
        "train_gflops": train_gflops, "inference_gflops": infer_flops / infer.median / 1e9,
        "matmul_gflops": peak, "train_fraction_of_peak": train_gflops / peak,
        "inference_fraction_of_peak": infer_flops / infer.median / 1e9 / peak,
    }


def run_in_subprocess(backend: str, model: str, jit_compile: bool | str = "auto", dtype_policy: str = "float32",
                      timeout: float = 1800) -> dict:
    """``run`` under another Keras backend, in a fresh process; a missing backend gives a row with
    ``skipped`` (a reason) instead of an error."""
    reason = missing_backend(backend)
    if reason:
        return {"model": model, "backend": backend, "skipped": reason}
    import subprocess

    command = [sys.executable, "-m", "pcfilter_lib.bench.workloads", "--model", model,
               "--jit-compile", str(jit_compile), "--dtype-policy", dtype_policy]
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return {"model": model, "backend": backend, "skipped": f"failed: {last}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def collect(backends=BACKENDS, models=MODELS, settings=({"jit_compile": "auto", "dtype_policy": "float32"},),
            progress: bool = True) -> list[dict]:
    """Every (backend, model, setting) combination, each in its own process, with the device report
    and the time of measurement in every row."""
    from datetime import datetime

    from tqdm import tqdm

    from pcfilter_lib.bench import timing as bench

    device = bench.device_report()
    jobs = [(b, m, s) for b in backends for m in models for s in settings]
    rows = []
    for backend, model, setting in tqdm(jobs, desc="benchmarks", unit="run", disable=not progress):
        row = run_in_subprocess(backend, model, **setting)
        rows.append({**row, **setting, "device": device,
                     "measured": datetime.now(UTC).isoformat(timespec="seconds")})
    return rows


def device_name(row: dict) -> str:
    device = row["device"]
    return ", ".join(device["gpus"]) if device["gpus"] and row.get("api") == "CUDA" else \
        f"{device['cpu']} ({device['cores']} cores)"


def format_table(rows: list[dict]) -> str:
    """The seed report's table, device | API | backend | train time | inference time, plus the
    achieved GFLOP/s and their share of the matmul speed measured in the same run."""
    lines = ["| device | API | backend | model | settings | train time | inference time | train GFLOP/s "
             "| share of matmul peak |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        settings = f"XLA {r.get('jit_compile', 'auto')}, {r.get('dtype_policy', 'float32')}"
        if "skipped" in r:
            lines.append(f"| {device_name(r)} | - | {r['backend']} | {r['model']} | {settings} "
                         f"| skipped: {r['skipped']} | | | |")
            continue
        lines.append(f"| {device_name(r)} | {r['api']} | {r['backend']} | {r['model']} | {settings} "
                     f"| {r['train_s']:.2f} s | {r['inference_s'] * 1e3:.1f} ms | {r['train_gflops']:.1f} "
                     f"| {r['train_fraction_of_peak']:.0%} |")
    return "\n".join(lines)


def append_results(path: str | os.PathLike, rows: list[dict]) -> list[dict]:
    """Add ``rows`` to the JSON list in ``path`` (rows from other machines stay) and return all rows."""
    from pathlib import Path

    from pcfilter_lib.io.files import atomic_write_text

    path = Path(path)
    existing = []
    if path.exists():
        try:
            existing = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not a results file ({error}); move it away or choose another --out") from error
        if not isinstance(existing, list):
            raise ValueError(f"{path} does not hold a list of result rows; choose another --out")
    everything = existing + rows
    atomic_write_text(path, json.dumps(everything, indent=1) + "\n")
    return everything


def data_parallel(epochs: int = 2, batch: int = 8) -> dict:
    """Train a small U-Net on one device and with ``MirroredStrategy`` over two (the GPUs if there
    are two, else the CPU split into two logical devices), from the same initial weights. Must run
    in a fresh process: see ``data_parallel_in_subprocess``."""
    import keras
    import tensorflow as tf

    from pcfilter_lib.data.synthetic2d import make_scratches
    from pcfilter_lib.models.unet import build_unet
    from pcfilter_lib.nn import fit as training
    from pcfilter_lib.nn import losses

    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus if len(gpus) >= 2 else tf.config.list_logical_devices("CPU"))][:2]
    data = make_scratches(config.choose(full=64, fast=16), 32, seed=0)

    def build():
        keras.utils.set_random_seed(0)
        return build_unet(input_channels=2, depth=2, filters=(8, 16, 16))

    result = {"devices": devices}
    for name, strategy in (("one", None), ("mirrored", tf.distribute.MirroredStrategy(devices))):
        run = training.train_segmentation(build, losses.BinaryFocalLoss(0.25, 2.0),
                                          (data.images, data.labels, data.weights), epochs=epochs, batch_size=batch,
                                          strategy=strategy)
        result[name] = run.history["loss"]
        result[f"{name}_s"] = run.seconds
    result["replicas"] = strategy.num_replicas_in_sync
    return result


def data_parallel_in_subprocess(epochs: int = 2, timeout: float = 900) -> dict:
    """``data_parallel`` in a fresh process (the CPU can be split only before TensorFlow starts)."""
    import subprocess

    command = [sys.executable, "-m", "pcfilter_lib.bench.workloads", "--data-parallel", "--epochs", str(epochs)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"the data-parallel run failed: {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Time one workload under the Keras backend of this process "
                                                 "(set KERAS_BACKEND); prints one JSON row.")
    parser.add_argument("--model", choices=MODELS, default="unet")
    parser.add_argument("--data-parallel", action="store_true",
                        help="instead: compare one device with MirroredStrategy over two (prints JSON)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the data-parallel comparison")
    parser.add_argument("--jit-compile", default="auto", help="auto, True or False (XLA compilation)")
    parser.add_argument("--dtype-policy", default="float32", help="float32, mixed_float16 or mixed_bfloat16")
    args = parser.parse_args(argv)
    from pcfilter_lib import runtime

    if args.data_parallel:
        runtime.setup(seed=0, cpu_devices=2)
        print(json.dumps(data_parallel(args.epochs)))
        return 0
    runtime.setup(seed=0)
    jit = {"true": True, "false": False}.get(args.jit_compile.lower(), "auto")
    print(json.dumps(run(args.model, jit, args.dtype_policy)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
