"""Timing helpers for benchmarks: warm-up, repeats, median and spread, a measured matmul peak and memory
speed (the two roofs of a roofline), and the FLOPs and bytes of a model's layers.

Benchmarks compare things measured side by side in the same run (a model against a baseline, a
model against the machine's own matmul speed), never against numbers typed in.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pcfilter_lib.lessons import convmath


@dataclass(frozen=True)
class Timing:
    """Seconds per call, from ``time_call``.

    Attributes:
        median: the median over the timed calls, in seconds.
        low: the fastest call, in seconds.
        high: the slowest call, in seconds.
        repeats: the number of timed calls.
    """

    median: float
    low: float
    high: float
    repeats: int

    def __str__(self) -> str:
        return f"{self.median * 1e3:.2f} ms (min {self.low * 1e3:.2f}, max {self.high * 1e3:.2f}, n={self.repeats})"


def time_call(fn: Callable[[], object], repeats: int = 10, warmup: int = 2,
              sync: Callable[[object], object] | None = None) -> Timing:
    """Time a call honestly: untimed warm-up calls first, then the median of several timed ones.

    Args:
        fn: the work, a function of no arguments.
        repeats: timed calls.
        warmup: untimed calls before them (tracing, compilation, caches).
        sync: called on each result inside the timed region, such as converting a tensor to NumPy,
            so that asynchronous device work is finished before the clock stops.

    Returns:
        The ``Timing``.

    Raises:
        ValueError: ``repeats`` < 1 or ``warmup`` < 0.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")
    for _ in range(warmup):
        result = fn()
        if sync:
            sync(result)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        if sync:
            sync(result)
        times.append(time.perf_counter() - start)
    return Timing(statistics.median(times), min(times), max(times), repeats)


def _keras():
    """Keras, imported on first use: timing helpers that measure plain Python start no deep-learning backend."""
    import keras  # deferred, for the functions below that time or describe Keras

    return keras


def matmul_gflops(n: int = 1024, repeats: int = 10, dtype: str = "float32") -> float:
    """This machine's measured matmul speed under the current Keras backend: the peak to compare with.

    Reducing the result to one number before reading it waits for asynchronous device work without
    copying the whole matrix back.

    Args:
        n: the side of the square matrices.
        repeats: timed products.
        dtype: their float type.

    Returns:
        GFLOP/s, counting 2 n ** 3 operations per product.
    """
    keras = _keras()
    a = keras.random.normal((n, n), dtype=dtype, seed=1)
    b = keras.random.normal((n, n), dtype=dtype, seed=2)
    timing = time_call(lambda: keras.ops.matmul(a, b), repeats=repeats, warmup=2,
                       sync=lambda r: float(keras.ops.convert_to_numpy(keras.ops.sum(r))))
    return 2 * n**3 / timing.median / 1e9


def memory_bandwidth_gbs(megabytes: float = 64, repeats: int = 10, dtype: str = "float32") -> float:
    """This machine's measured memory speed under the current Keras backend: the other roof of a roofline.

    Adds two vectors of ``megabytes`` each, far larger than a processor's caches, so that every element
    is read from and written to main memory (the STREAM benchmark's "add"): 3 values move per addition.
    Reading back one element waits for asynchronous device work without copying the whole vector.

    Args:
        megabytes: the size of each of the three vectors.
        repeats: timed additions.
        dtype: their float type.

    Returns:
        GB/s (10 ** 9 bytes), counting two vectors read and one written per addition.
    """
    keras = _keras()
    itemsize = np.dtype(dtype).itemsize
    n = int(megabytes * 1e6) // itemsize
    a = keras.random.normal((n,), dtype=dtype, seed=1)
    b = keras.random.normal((n,), dtype=dtype, seed=2)
    timing = time_call(lambda: keras.ops.add(a, b), repeats=repeats, warmup=2,
                       sync=lambda r: keras.ops.convert_to_numpy(r[:1]))
    return 3 * n * itemsize / timing.median / 1e9


def _counted_layers(model):
    """The layers ``model_flops`` counts, in the model's order."""
    keras = _keras()
    kinds = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.Conv3D,
             keras.layers.Conv3DTranspose, keras.layers.Dense)
    return [layer for layer in model.layers if isinstance(layer, kinds)]


def _symbolic_input(input_shape):
    """A symbolic batch of one input of ``input_shape``: calling a model on it gives every tensor's shape
    without computing anything (on JAX, running the layers on zeros compiled a program for each, about
    3 s for the U-Net)."""
    return _keras().KerasTensor((1, *input_shape), dtype="float32")


def model_bytes(model, input_shape, batch: int = 1, itemsize: int = 4) -> int:
    """Bytes that a forward pass of ``batch`` inputs of ``input_shape`` moves through ``model``'s counted
    layers (those of ``model_flops``), each reading its input and its weights and writing its output once.

    This is the traffic of a processor without caches between layers, the usual first estimate of a
    roofline: a real run moves less where layers fuse or activations stay in cache, and more for the
    layers left out (pooling, normalisation, activations). The weights are read once per batch, the
    activations once per input, so the bytes per FLOP fall as the batch grows.

    Args:
        model: a functional Keras model.
        input_shape: the shape of one input, without the batch axis.
        batch: inputs per call.
        itemsize: bytes per value (4 for float32).

    Returns:
        The bytes of one call.
    """
    keras = _keras()
    counted = _counted_layers(model)
    probe = keras.Model(model.input, [t for layer in counted for t in (layer.input, layer.output)])
    tensors = probe(_symbolic_input(input_shape))
    activations = sum(int(np.prod(t.shape[1:])) for t in tensors)
    weights = sum(int(np.prod(w.shape)) for layer in counted for w in layer.weights)
    return (batch * activations + weights) * itemsize


def model_flops(model, input_shape) -> int:
    """Forward-pass FLOPs of one input of ``input_shape`` (e.g. (H, W, C) or (N, 3)) through
    ``model``'s Conv1D, Conv2D, Conv2DTranspose, Conv3D, Conv3DTranspose and Dense layers, counted from
    their shapes (a multiply-add counts as two).

    Pooling, activations, normalisation and additions are left out: they are a few percent of a
    convolutional network's work. Training costs about three times this (forward, and two products
    of the same size for the gradients of inputs and weights).

    Args:
        model: a functional Keras model.
        input_shape: the shape of one input, without the batch axis.

    Returns:
        The FLOPs of one forward pass.
    """
    keras = _keras()

    counted = _counted_layers(model)
    probe = keras.Model(model.input, [layer.output for layer in counted])
    outputs = probe(_symbolic_input(input_shape))
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    total = 0
    for layer, out in zip(counted, outputs, strict=True):
        c_in = layer.input.shape[-1]
        if isinstance(layer, keras.layers.Dense):
            positions = int(np.prod(out.shape[1:-1])) if len(out.shape) > 2 else 1
            total += positions * convmath.dense_flops(c_in, layer.units)
        elif isinstance(layer, keras.layers.Conv1D):
            total += 2 * out.shape[1] * layer.filters * layer.kernel_size[0] * c_in
        elif isinstance(layer, keras.layers.Conv3D | keras.layers.Conv3DTranspose):
            # A transposed one scatters a patch from every input voxel: the products of the convolution
            # it transposes, the same count as one at its output's size divided by the strides.
            strides = layer.strides if isinstance(layer, keras.layers.Conv3DTranspose) else (1, 1, 1)
            positions = int(np.prod([n // s for n, s in zip(out.shape[1:4], strides, strict=True)]))
            total += 2 * positions * int(np.prod(layer.kernel_size)) * c_in * layer.filters
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            # Every input pixel scatters a kh x kw x c_out patch: the same products as the convolution
            # it transposes.
            h_in, w_in = out.shape[1] // layer.strides[0], out.shape[2] // layer.strides[1]
            total += convmath.conv2d_flops((h_in, w_in), layer.kernel_size, layer.filters, c_in)
        else:
            total += convmath.conv2d_flops(out.shape[1:3], layer.kernel_size, c_in, layer.filters)
    return int(total)


def reset_peak_memory() -> bool:
    """Start this process's peak resident memory afresh, so that ``peak_memory_mb`` measures what comes next.

    Returns:
        True on Linux (the kernel resets ``VmHWM`` when 5 is written to /proc/self/clear_refs); False where
        the system has no such reset, and the peak stays the process's own since it started.
    """
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def peak_memory_mb() -> float:
    """This process's peak resident memory in MiB since it started or since ``reset_peak_memory``: ``VmHWM``
    on Linux, else ``ru_maxrss`` (since the start only)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 1024  # bytes there, KiB elsewhere


def cpu_name() -> str:
    """The processor's model name and its widest vector instructions, for the rows of a benchmark table.

    Two machines with the same model name ("AMD EPYC") can differ twofold in TensorFlow's speed: one
    with AVX-512 runs oneDNN's wider kernels, one with AVX2 only does not, so the name says which.

    Returns:
        The "model name" of /proc/cpuinfo on Linux with "(AVX-512)" or "(AVX2)" when its flags hold them,
        or what Python's ``platform`` knows.
    """
    name, flags = None, set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name") and name is None:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
                if name is not None and flags:
                    break
    except OSError:
        pass
    if name is None:
        return platform.processor() or platform.machine()
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
    return f"{name} ({vector})" if vector else name


def device_report() -> dict[str, object]:
    """What the numbers were measured on.

    Returns:
        ``cpu``, ``cores``, ``gpus`` (their names), the ``tensorflow`` and ``keras`` versions, the
        ``keras_backend``, and the ``cuda`` and ``cudnn`` versions TensorFlow was built with.
    """
    import tensorflow as tf  # deferred: timing helpers that measure plain Python start no deep-learning backend

    keras = _keras()

    build = tf.sysconfig.get_build_info()
    gpus = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        gpus.append(details.get("device_name", gpu.name))
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "gpus": gpus,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "cuda": build.get("cuda_version", "none"),
        "cudnn": build.get("cudnn_version", "none"),
    }


def batches_per_second(batches, count: int) -> float:
    """How fast an input pipeline delivers batches, after one warm-up batch.

    Args:
        batches: an iterable of batches: a ``tf.data.Dataset``, or ``(loader[i] for i in ...)``
            for a ``PyDataset``; it must hold at least ``count + 1``.
        count: the batches timed.

    Returns:
        Batches per second.
    """
    iterator = iter(batches)
    next(iterator)
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return count / (time.perf_counter() - start)
