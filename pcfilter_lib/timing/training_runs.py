"""The training runs behind ``timing.workloads``: each workload trained and timed under the Keras backend
of this process, and the data-parallel comparison.

Importing this module starts Keras' backend, so only the worker process imports it
(``pcfilter_lib.cli.workload_process``), after it has chosen the backend and split the CPU into logical
devices; ``timing.workloads`` starts that process once per backend.
"""

from __future__ import annotations

import gc
import os
import resource
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict

import keras
import numpy as np
import tensorflow as tf

from pcfilter_lib.data.synthetic2d import make_scratches
from pcfilter_lib.models.pointnet import build_pointnet
from pcfilter_lib.models.scene_cnn import CLASSES, build_scene_unet
from pcfilter_lib.models.unet import build_unet
from pcfilter_lib.models.yovo import build_yovo
from pcfilter_lib.nn import fit as training
from pcfilter_lib.nn import losses
from pcfilter_lib.timing import clock
from pcfilter_lib.timing.workloads import FULL, Sizes, Workload, workload


def _build(spec: Workload):
    if spec.model == "unet":
        return build_unet(input_channels=spec.shape[-1]), losses.BinaryFocalLoss(0.25, 2.0)
    if spec.model == "voxel_unet":
        return build_scene_unet(channels=spec.shape[-1]), "sparse_categorical_crossentropy"
    if spec.model == "yovo":
        return build_yovo(image_size=spec.shape[0], prior=0.1), keras.losses.BinaryCrossentropy()
    return build_pointnet(num_classes=10, num_points=spec.shape[0]), "sparse_categorical_crossentropy"


def _data(spec: Workload, rng: np.random.Generator):
    x = rng.normal(size=(spec.samples, *spec.shape)).astype("float32")
    if spec.model == "unet":
        y = (rng.random((spec.samples, *spec.shape[:2])) > 0.05).astype("float32")
    elif spec.model == "yovo":  # images of 0-255 to grids of 32^3, a tenth of the voxels occupied
        x = rng.uniform(0, 255, size=(spec.samples, *spec.shape)).astype("float32")
        y = (rng.random((spec.samples, 32, 32, 32, 1)) < 0.1).astype("float32")
    elif spec.model == "voxel_unet":
        y = rng.integers(0, CLASSES, (spec.samples, *spec.shape[:3])).astype("int32")
    else:
        y = rng.integers(0, 10, spec.samples).astype("int32")
    return x, y


def api() -> str:
    """How the current Keras backend reaches its device: "CUDA" on an NVIDIA GPU, else "CPU"."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax  # only the backend in use is asked

        return "CUDA" if jax.default_backend() == "gpu" else "CPU"
    if backend == "torch":
        import torch  # only the backend in use is asked

        return "CUDA" if torch.cuda.is_available() else "CPU"
    return "CUDA" if tf.config.list_physical_devices("GPU") else "CPU"


def run(model: str, jit_compile: bool | str = "auto", dtype_policy: str = "float32", seed: int = 0,
        sizes: Sizes = FULL) -> dict:
    """Train ``model`` on its workload and time training and inference; one result row.

    ``train_s`` is the wall-clock time of the ``fit`` call of ``sizes.epochs`` epochs, after one warm-up
    epoch on one batch has compiled the step; ``peak_rss_mb`` is the process's peak resident memory while
    the row ran (what the process held before it included; on Linux, where the peak can be reset, earlier
    rows' peaks are not).
    """
    spec = workload(model, sizes)
    clock.reset_peak_memory()
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_dtype_policy(dtype_policy)
    try:
        net, loss = _build(spec)
        net.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, jit_compile=jit_compile)
        x, y = _data(spec, np.random.default_rng(seed))
        training.fit(net, (x[: spec.batch], y[: spec.batch]), epochs=1, batch_size=spec.batch)  # compile, warm up
        before = resource.getrusage(resource.RUSAGE_SELF)
        trained = training.fit(net, (x, y), epochs=spec.epochs, batch_size=spec.batch)
        after = resource.getrusage(resource.RUSAGE_SELF)
        if spec.model == "unet":
            probe = np.random.default_rng(seed + 1).normal(
                size=(spec.infer_batch, *sizes.unet_scan, spec.shape[-1])).astype("float32")
        else:
            probe = x[: spec.infer_batch]
        infer = clock.time_call(lambda: net.predict_on_batch(probe), repeats=sizes.repeats)
        flops_per_sample = clock.model_flops(net, spec.shape)
        infer_flops = clock.model_flops(net, probe.shape[1:]) * spec.infer_batch
        peak = clock.matmul_gflops(sizes.matmul_size, repeats=sizes.repeats)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    train_seconds = trained.seconds
    train_gflops = 3 * flops_per_sample * spec.samples * spec.epochs / train_seconds / 1e9
    return {
        **{k: v for k, v in asdict(spec).items() if k != "shape"}, "shape": list(spec.shape),
        "backend": keras.backend.backend(), "api": api(), "jit_compile": str(jit_compile), "dtype_policy": dtype_policy,
        "train_s": train_seconds, "train_user_s": after.ru_utime - before.ru_utime,
        "train_system_s": after.ru_stime - before.ru_stime, "peak_rss_mb": clock.peak_memory_mb(),
        "cpu_allocator": os.environ.get("TF_CPU_ALLOCATOR_USE_BFC"),
        "final_loss": trained.history["loss"][-1],
        "inference_s": infer.median, "inference_shape": list(probe.shape),
        "train_gflops": train_gflops, "inference_gflops": infer_flops / infer.median / 1e9,
        "matmul_gflops": peak, "train_fraction_of_peak": train_gflops / peak,
        "inference_fraction_of_peak": infer_flops / infer.median / 1e9 / peak,
    }


def run_rows(rows: Sequence[Mapping], sizes: Sizes = FULL) -> Iterator[dict]:
    """``run`` for each of ``rows`` in turn (mappings of ``model`` and, optionally, ``jit_compile``: "auto",
    "true" or "false", and ``dtype_policy``), with Keras' session cleared between them. A row that fails
    yields a row with ``skipped`` saying why (its traceback goes to stderr), and the next row still runs."""
    for index, row in enumerate(rows):
        if index:  # the previous row's network and traced steps go before the next row is timed
            keras.backend.clear_session()
            gc.collect()
        jit = {"true": True, "false": False}.get(str(row.get("jit_compile", "auto")).lower(), "auto")
        try:
            yield run(row["model"], jit, row.get("dtype_policy", "float32"), sizes=sizes)
        except Exception as error:
            traceback.print_exc()
            yield {"model": row["model"], "backend": keras.backend.backend(), "skipped": f"failed: {error!r}"}


def data_parallel(epochs: int = 2, batch: int = 8, sizes: Sizes = FULL) -> dict:
    """Train a small U-Net on one device and with ``MirroredStrategy`` over two (the GPUs if there
    are two, else the CPU split into two logical devices), from the same initial weights, on
    ``sizes.parallel_samples`` scratch images. Must run in a fresh process: see ``data_parallel_in_subprocess``."""
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus if len(gpus) >= 2 else tf.config.list_logical_devices("CPU"))][:2]
    data = make_scratches(sizes.parallel_samples, 32, seed=0)

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
