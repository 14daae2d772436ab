"""The fixed workloads that benchmarks time: training and inference of the U-Net filter and PointNet.

Each workload uses fixed random data (seeded) of fixed size (``Sizes``: ``FULL`` for measurements,
``FAST`` for quick checks; the caller picks), so rows measured on different machines, backends or
settings compare like with like, as the seed report's GPU table did. Everything here is written
against ``keras`` and ``keras.ops`` only, so it runs on the TensorFlow, JAX and PyTorch backends;
``collect`` runs the workloads of each backend in a fresh process (``pcfilter_lib.cli.workload_process``)
with ``KERAS_BACKEND`` set, since the backend of a process cannot change once Keras is imported, one row
after another (the process's start-up, mostly importing the backend, is paid once per backend):

    KERAS_BACKEND=jax python -m pcfilter_lib.cli.workload_process --model unet

This module only describes the workloads and runs them in worker processes, so reading ``BACKENDS`` or
collecting rows never starts a deep-learning backend in the calling process; the training itself is in
``timing.training_runs``, which the worker imports.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path

from tqdm.auto import tqdm

from pcfilter_lib.data.scene_voxels import FEATURES
from pcfilter_lib.io.files import atomic_write_text
from pcfilter_lib.timing import clock
from pcfilter_lib.timing.names import BACKENDS, CPU_MODELS, MODELS


@dataclass(frozen=True)
class Sizes:
    """How big the workloads are.

    Attributes:
        unet_input: One U-Net training input, (height, width, channels).
        unet_samples: U-Net training inputs.
        unet_scan: (height, width) of the scan the U-Net infers on (the seed table's 480x640 at full size).
        voxel_grid: Side of the cubic grids of the 3D U-Net (``voxel_unet``, its batch holds 4).
        pointnet_points: Points per PointNet cloud.
        pointnet_samples: PointNet training clouds.
        epochs: Timed training epochs (after one warm-up epoch on one batch).
        repeats: Timed repetitions of inference and of the matmul.
        matmul_size: n of the n x n matmul that measures the device's peak speed.
        parallel_samples: Scratch images of the data-parallel comparison.
    """

    unet_input: tuple[int, int, int]
    unet_samples: int
    unet_scan: tuple[int, int]
    voxel_grid: int
    pointnet_points: int
    pointnet_samples: int
    epochs: int
    repeats: int
    matmul_size: int
    parallel_samples: int

    def to_json(self) -> str:
        """The sizes as a JSON object (how ``collect`` hands them to a worker process)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Sizes:
        """Sizes from ``to_json``'s text.

        Raises:
            ValueError: If the text is not a JSON object of exactly the fields of ``Sizes``.
        """
        values = json.loads(text)
        names = {f.name for f in fields(cls)}
        if not isinstance(values, dict) or set(values) != names:
            raise ValueError(f"workload sizes must be a JSON object with the keys {sorted(names)}, got {text!r}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


FULL = Sizes(unet_input=(256, 256, 5), unet_samples=64, unet_scan=(480, 640), voxel_grid=32, pointnet_points=1024,
             pointnet_samples=512, epochs=3, repeats=10, matmul_size=2048, parallel_samples=64)
FAST = Sizes(unet_input=(64, 64, 5), unet_samples=8, unet_scan=(96, 128), voxel_grid=16, pointnet_points=128,
             pointnet_samples=32, epochs=1, repeats=3, matmul_size=512, parallel_samples=16)
# Chapter 6 at full size: the full workloads, one timed epoch each. The chapter runs eight of them in
# fresh processes, bfloat16 among them, which processors without bfloat16 arithmetic emulate slowly.
CHAPTER = replace(FULL, epochs=1)


@dataclass(frozen=True)
class Workload:
    """What is trained and timed: ``samples`` inputs of ``shape``, ``epochs`` epochs at ``batch``."""

    model: str
    shape: tuple[int, ...]
    samples: int
    batch: int
    epochs: int
    infer_batch: int


def workload(model: str, sizes: Sizes = FULL) -> Workload:
    """The standard workload of ``model`` at ``sizes``: the U-Net on scans of 5 channels with batches of 4,
    inferring on one whole scan as in the seed table; PointNet on clouds with batches of 32; the 3D U-Net
    (``voxel_unet``, for ``benchmarks/training_cpu.py``) on as many grids as the U-Net has scans, in
    batches of 4, and YOVO (``yovo``, likewise) on as many 64x64 images, in batches of 16.

    Raises:
        ValueError: If ``model`` is not one of ``CPU_MODELS``.
    """
    if model == "unet":
        return Workload("unet", sizes.unet_input, sizes.unet_samples, batch=4, epochs=sizes.epochs, infer_batch=1)
    if model == "pointnet":
        return Workload("pointnet", (sizes.pointnet_points, 3), sizes.pointnet_samples, batch=32, epochs=sizes.epochs,
                        infer_batch=32)
    if model == "voxel_unet":
        return Workload("voxel_unet", (*[sizes.voxel_grid] * 3, FEATURES), sizes.unet_samples, batch=4,
                        epochs=sizes.epochs, infer_batch=1)
    if model == "yovo":
        return Workload("yovo", (64, 64, 3), sizes.unet_samples, batch=16, epochs=sizes.epochs, infer_batch=1)
    raise ValueError(f"unknown model {model!r}: choose one of {CPU_MODELS}")


def missing_backend(backend: str) -> str | None:
    """None if ``backend`` can run here, else a one-line reason."""
    if backend not in BACKENDS:
        return f"unknown backend {backend!r}; Keras 3 runs on {', '.join(BACKENDS)}"
    if importlib.util.find_spec(backend) is None:
        return f"{backend} is not installed (pip install {'jax' if backend == 'jax' else backend})"
    return None


def _worker(*args: str, timeout: float, env: dict | None = None):
    """``python -m pcfilter_lib.cli.workload_process ARGS`` in a fresh process; its completed process."""
    command = [sys.executable, "-m", "pcfilter_lib.cli.workload_process", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def run_in_subprocess(backend: str, model: str, jit_compile: bool | str = "auto", dtype_policy: str = "float32",
                      timeout: float = 1800, sizes: Sizes = FULL, env: dict | None = None) -> dict:
    """``run`` under another Keras backend, in a fresh process; a missing backend gives a row with
    ``skipped`` (a reason) instead of an error. ``env`` adds variables to the worker's environment
    (e.g. ``TF_CPU_ALLOCATOR_USE_BFC``)."""
    setting = {"jit_compile": jit_compile, "dtype_policy": dtype_policy}
    return rows_in_subprocess(backend, [(model, setting)], timeout, sizes, env)[0]


def rows_in_subprocess(backend: str, jobs: list[tuple[str, Mapping]], timeout: float = 1800, sizes: Sizes = FULL,
                       env: dict | None = None) -> list[dict]:
    """One row per ``(model, setting)`` of ``jobs``, timed one after another in one fresh process under
    ``backend`` (``setting``: ``jit_compile`` and ``dtype_policy``, as ``run`` takes them). A missing backend,
    a row that fails and a process that fails (then every row not yet printed) give rows with ``skipped``
    (a reason) instead of an error. ``timeout`` is per row."""
    reason = missing_backend(backend)
    if reason:
        return [{"model": model, "backend": backend, "skipped": reason} for model, _ in jobs]
    rows = json.dumps([{"model": model, "jit_compile": str(setting.get("jit_compile", "auto")),
                        "dtype_policy": setting.get("dtype_policy", "float32")} for model, setting in jobs])
    try:
        result = _worker("--rows", rows, "--sizes", sizes.to_json(), timeout=timeout * len(jobs),
                         env={**os.environ, **(env or {}), "KERAS_BACKEND": backend})
        printed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
    except subprocess.TimeoutExpired as error:
        out = error.stdout or ""
        printed = [json.loads(line) for line in (out.decode() if isinstance(out, bytes) else out).splitlines()
                   if line.startswith("{")]
        last = f"not all rows within {timeout * len(jobs):.0f} s"
    return printed + [{"model": model, "backend": backend, "skipped": f"failed: {last}"}
                      for model, _ in jobs[len(printed):]]


def collect(backends=BACKENDS, models=MODELS, settings=({"jit_compile": "auto", "dtype_policy": "float32"},),
            progress: bool | Mapping = True, sizes: Sizes = FULL) -> list[dict]:
    """Every (backend, model, setting) combination at ``sizes``, the rows of each backend in a process of
    their own, with the device report and the time of measurement in every row. ``progress`` shows a bar
    over the backends, or is a mapping of tqdm settings for it (such as a ``delay`` before it first shows)."""
    device = clock.device_report()
    jobs = [(m, s) for m in models for s in settings]
    rows = []
    bar = dict(progress) if isinstance(progress, Mapping) else {"disable": not progress}
    for backend in tqdm(list(backends), desc="benchmarks", unit="backend", **bar):
        for (_, setting), row in zip(jobs, rows_in_subprocess(backend, jobs, sizes=sizes), strict=True):
            rows.append({**row, **setting, "device": device,
                         "measured": datetime.now(UTC).isoformat(timespec="seconds")})
    return rows


def device_name(row: dict) -> str:
    device = row["device"]
    return ", ".join(device["gpus"]) if device["gpus"] and row.get("api") == "CUDA" else \
        f"{device['cpu']} ({device['cores']} cores)"


def format_table(rows: list[dict], peak: float | None = None) -> str:
    """The seed report's table, device | API | backend | train time | inference time, plus the
    achieved GFLOP/s and their share of a matmul peak.

    Args:
        rows: result rows of ``collect`` (or of a results file).
        peak: one float32 matmul speed (GFLOP/s) that every row's share is taken against, for a table
            measured on one machine. Without it each row's share is against the matmul its own process
            measured after its run (``matmul_gflops``), which keeps rows of different machines comparable
            but varies from process to process on a busy machine; the header says which.
    """
    header = "share of matmul peak" if peak is None else f"share of {peak:.0f} GFLOP/s"
    lines = ["| device | API | backend | model | settings | train time | inference time | train GFLOP/s "
             f"| {header} |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        settings = f"XLA {r.get('jit_compile', 'auto')}, {r.get('dtype_policy', 'float32')}"
        if "skipped" in r:
            lines.append(f"| {device_name(r)} | - | {r['backend']} | {r['model']} | {settings} "
                         f"| skipped: {r['skipped']} | | | |")
            continue
        lines.append(f"| {device_name(r)} | {r['api']} | {r['backend']} | {r['model']} | {settings} "
                     f"| {r['train_s']:.2f} s | {r['inference_s'] * 1e3:.1f} ms | {r['train_gflops']:.1f} "
                     f"| {r['train_gflops'] / peak if peak else r['train_fraction_of_peak']:.0%} |")
    return "\n".join(lines)


def append_results(path: str | os.PathLike, rows: list[dict]) -> list[dict]:
    """Add ``rows`` to the JSON list in ``path`` (rows from other machines stay) and return all rows."""
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


def data_parallel_in_subprocess(epochs: int = 2, timeout: float = 900, sizes: Sizes = FULL) -> dict:
    """``data_parallel`` in a fresh process (the CPU can be split only before TensorFlow starts).

    Raises:
        RuntimeError: If the worker process fails (with the end of its error output).
    """
    result = _worker("--data-parallel", "--epochs", str(epochs), "--sizes", sizes.to_json(), timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"the data-parallel run failed: {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
