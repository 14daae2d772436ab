"""Start-up of the deep-learning stack: a quiet TensorFlow import and reproducible seeds.

TensorFlow writes start-up notes (oneDNN, missing CUDA drivers) straight to file descriptor 2,
below Python, so notebooks would show them as error output in every chapter; Open3D announces its
web visualiser on descriptor 1 when it finds Jupyter. ``setup`` imports both with those descriptors
pointed at a temporary file, and replays what was written there
only if the import fails, so a real problem is never hidden (not when the user interrupts it:
Ctrl-C during the start-up leaves stderr to the caller's own one-line message). It also sets ``TF_CPP_MIN_LOG_LEVEL``
to 3 (unless already set): the C++ runtime then keeps quiet about graph-optimiser fallbacks (such
as "remapper failed" on LeakyReLU fusion); real failures still raise Python exceptions.

In fast mode (``PCFILTER_FAST=1``) ``setup`` also turns TensorFlow's graph optimiser (Grappler) off
and has XLA compile without its optimisation passes (``XLA_FLAGS``, inherited by the processes this one
starts): a fast run calls each traced function or compiled program a few times, too few to repay the
time spent optimising it first (a few training steps of chapter 7's network take about a sixth less time
without Grappler; chapter 6's U-Net row on JAX, which compiles a program for every operation it meets,
takes 18 s instead of 34). Full-size runs keep both.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import signal
import sys
import tempfile
import threading

from pcfilter_lib import CPU_ALLOCATOR_VARIABLE, ONEDNN_VARIABLE, config

_ready = False
# XLA's flag for compiling without the backend's optimisation passes (fast mode's programs).
FAST_XLA_FLAG = "--xla_backend_optimization_level=0"


def cpu_allocator() -> str:
    """Which CPU allocator TensorFlow uses (or will use) in this process: "bfc (pooling)" or "default".

    ``pcfilter_lib`` sets ``TF_CPU_ALLOCATOR_USE_BFC=true`` when it is imported unless the variable is
    set already; TensorFlow reads it when it creates its CPU allocator, at its first operation.
    """
    raw = os.environ.get(CPU_ALLOCATOR_VARIABLE, "").strip().lower()
    return "bfc (pooling)" if raw in {"1", "true"} else "default"


def graph_optimiser() -> str:
    """Whether TensorFlow optimises its graphs before running them in this process: "on" or "off"
    (fast mode, once ``setup`` has run)."""
    import tensorflow as tf

    return "off" if tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer") else "on"


def xla_optimisation() -> str:
    """Whether XLA optimises the programs it compiles in this process and those it starts: "on", or "off"
    where ``XLA_FLAGS`` turns the backend's optimisation off (fast mode's ``setup``, or the user)."""
    return "off" if FAST_XLA_FLAG in os.environ.get("XLA_FLAGS", "").split() else "on"


def onednn() -> str:
    """Whether TensorFlow runs (or will run) oneDNN's CPU kernels in this process: "on" or "off".

    ``pcfilter_lib`` sets ``TF_ENABLE_ONEDNN_OPTS=1`` when it is imported unless the variable is set
    already; TensorFlow reads it when it is imported.
    """
    raw = os.environ.get(ONEDNN_VARIABLE, "").strip().lower()
    return "on" if raw in {"1", "true"} else "off"


def setup(seed: int | None = 0, cpu_devices: int = 1) -> str:
    """Import TensorFlow and Keras quietly (once) and seed Python, NumPy and Keras.

    Call it at the top of a notebook or script, before ``import keras``.

    Args:
        seed: the seed of Python's, NumPy's and Keras's generators; None leaves them alone.
        cpu_devices: 2 splits the CPU into two logical devices, so that data-parallel training
            (``tf.distribute.MirroredStrategy``) can be tried without a second GPU; it only takes
            effect in the first call of a process.

    Returns:
        The stack in force, for a chapter's or a script's first line of output, e.g.
        "Keras 3.6.0 on the tensorflow backend".

    Raises:
        ValueError: ``cpu_devices`` < 1, or a ``PCFILTER_FAST`` it does not understand.
        KeyboardInterrupt: Ctrl-C during the import, delivered once the import is complete
            (nothing is replayed on stderr then).
    """
    global _ready
    if cpu_devices < 1:
        raise ValueError(f"cpu_devices must be >= 1, got {cpu_devices}")
    if not _ready:
        fast = config.fast_mode()  # a setting it does not understand stops here, before TensorFlow starts
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        flags = os.environ.get("XLA_FLAGS", "")
        if fast and "--xla_backend_optimization_level" not in flags:  # a level the user set stays
            os.environ["XLA_FLAGS"] = f"{flags} {FAST_XLA_FLAG}".strip()
        with _interrupts_held():
            _quiet_import(cpu_devices, fast)
        # TensorFlow's and Keras's million objects, here for good, go to the permanent generation: the
        # garbage collections that follow skip them, the last one at exit among them (1.2 s otherwise).
        gc.freeze()
        _ready = True
    import keras  # imported by _quiet_import above; here only to reach it

    if seed is not None:
        keras.utils.set_random_seed(seed)
    return f"Keras {keras.__version__} on the {keras.backend.backend()} backend"


@contextlib.contextmanager
def _interrupts_held():
    """Hold Ctrl-C (SIGINT) back while the block runs and deliver it when the block ends.

    A KeyboardInterrupt in the middle of TensorFlow's import leaves it half imported, and what it
    logged so far is replayed as if the import had failed. Held back, Ctrl-C reaches the handler in
    force (KeyboardInterrupt by default) a few seconds later, once the import is complete. Only the
    main thread handles signals; elsewhere, or with SIGINT ignored, the block just runs.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield
        return
    noted = []
    signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if noted:
            previous(signal.SIGINT, None)


def _quiet_import(cpu_devices: int, fast: bool) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    said = io.StringIO()  # what Python code prints while importing (Open3D under Jupyter)
    with tempfile.TemporaryFile(mode="w+b") as sink, contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:  # the point of this module: the heavy imports happen here, with the logs redirected
            import keras  # noqa: F401
            import open3d  # noqa: F401
            import tensorflow as tf

            if cpu_devices > 1:
                cpu = tf.config.list_physical_devices("CPU")[0]
                tf.config.set_logical_device_configuration(
                    cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(cpu_devices)])
            # The first operation initialises the devices, which logs once more.
            tf.config.list_physical_devices("GPU")
            tf.constant(0.0).numpy()
            if fast:
                tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
        except KeyboardInterrupt:
            raise  # the user stopped the start-up: nothing went wrong that the logs would explain
        except BaseException:
            os.dup2(saved[1], 2)
            sink.seek(0)
            sys.__stderr__.write(sink.read().decode(errors="replace") + said.getvalue())
            raise
        finally:
            for fd, copy in enumerate(saved, start=1):
                os.dup2(copy, fd)
                os.close(copy)
