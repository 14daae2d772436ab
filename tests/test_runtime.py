"""runtime: the quiet start-up of TensorFlow and Keras."""

import json
import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def fast_start() -> subprocess.CompletedProcess:
    """A fresh process in fast mode, with no TF_CPP_MIN_LOG_LEVEL of the user's: ``runtime.setup``, the
    graph optimiser's state, a first layer. Its quiet start and its optimiser are two tests of one start."""
    env = {**{k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}, "PCFILTER_FAST": "1"}
    code = ("from pcfilter_lib import runtime; runtime.setup(); print(runtime.graph_optimiser()); "
            "print(runtime.xla_optimisation()); import keras; keras.layers.Dense(2)(keras.ops.zeros((1, 3)))")
    env.pop("XLA_FLAGS", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)


def test_runtime_setup_keeps_tensorflow_quiet(fast_start):
    assert fast_start.returncode == 0, fast_start.stderr
    assert fast_start.stderr == ""


def test_a_failed_import_shows_what_tensorflow_wrote(tmp_path):
    # A stand-in TensorFlow that writes to the raw descriptor 2 and fails, as a broken install would.
    (tmp_path / "tensorflow.py").write_text(
        "import os\nos.write(2, b'native note before the failure\\n')\nraise ImportError('broken build')\n")
    code = "from pcfilter_lib import runtime; runtime.setup()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "native note before the failure" in result.stderr
    assert "broken build" in result.stderr


# Training a convolution followed by a LeakyReLU made the graph optimiser (grappler) of earlier TensorFlow versions
# try to fuse the two, fail on the gradient graph and log "remapper failed" from C++, as the book's chapters
# 2, 3, 5 and 6 did at full size; whatever the installed TensorFlow logs, none of it may reach stderr.
LEAKY_FIT = ("import numpy as np; import keras; "
             "m = keras.Sequential([keras.Input((16, 16, 2)), keras.layers.Conv2D(4, 3, padding='same'), "
             "keras.layers.LeakyReLU(), keras.layers.Conv2D(1, 1)]); m.compile('adam', 'mse'); "
             "m.fit(np.zeros((4, 16, 16, 2)), np.zeros((4, 16, 16, 1)), epochs=1, verbose=0)")


def test_graph_optimiser_notes_stay_off_stderr():
    # Full size, where the graph optimiser runs (fast mode turns it off) and would leave its notes.
    env = {**{k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "XLA_FLAGS")},
           "PCFILTER_FAST": "0"}
    code = ("from pcfilter_lib import runtime; runtime.setup(); print(runtime.graph_optimiser()); "
            "print(runtime.xla_optimisation()); " + LEAKY_FIT)
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.split() == ["on", "on"] and quiet.stderr == ""


def test_fast_mode_runs_without_the_graph_optimiser_and_xla_optimisation(fast_start):
    # (full size keeps both: the test above)
    assert fast_start.returncode == 0, fast_start.stderr
    assert fast_start.stdout.split() == ["off", "off"]


# TensorFlow names the allocator it creates in a debug log line: "bfc_cpu_allocator_for_gpu" is the pooling
# allocator that TF_CPU_ALLOCATOR_USE_BFC=true asks for; by default (oneDNN builds) it is "mklcpu", which pools
# small blocks only and hands large tensors back to the system after every step. The probe imports the
# package (which sets both variables unless the user has) and then TensorFlow, with its log on stdout.

def _probe(**env: str) -> dict:
    """In a fresh process that imports the package first, with ``env`` set: what ``runtime`` says of the
    CPU allocator and of oneDNN, the BFC allocators TensorFlow creates for its first tensor, whether
    TensorFlow's own port reports its oneDNN kernels on, and JAX's threefry setting as JAX reads it.
    ``runtime.setup`` runs after that first tensor, so that its muted import cannot hide the allocator's
    log line."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("TF_CPU_ALLOCATOR_USE_BFC", "TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL",
                          "JAX_THREEFRY_PARTITIONABLE")}
    code = ("import json, os, sys\n"
            "from pcfilter_lib import runtime\n"
            "said = {'allocator': runtime.cpu_allocator(), 'onednn': runtime.onednn()}\n"
            "sys.stdout.flush()\n"
            "os.dup2(1, 2)\n"
            "import tensorflow as tf\n"
            "tf.ones((9, 9)).numpy()\n"
            "try:  # a failure here fails the oneDNN test only\n"
            "    runtime.setup()\n"
            "    from tensorflow.python.util import _pywrap_util_port as port\n"
            "    said['onednn_enabled'] = port.IsMklEnabled()\n"
            "except Exception as error:\n"
            "    said['onednn_enabled'] = repr(error)\n"
            "import jax\n"
            "said['threefry_partitionable'] = jax.config.jax_threefry_partitionable\n"
            "print('probe:', json.dumps(said), flush=True)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**clean, "TF_CPP_MIN_LOG_LEVEL": "0", "TF_CPP_VMODULE": "bfc_allocator=1", **env})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    report = json.loads(next(line for line in lines if line.startswith("probe: ")).removeprefix("probe: "))
    report["created"] = [line.rsplit(" ", 1)[-1] for line in lines if "Creating new BFCAllocator named" in line]
    return report


# TensorFlow and JAX read each variable by themselves: one process reports the settings as they are by default, one
# as the user chose them.
@pytest.fixture(scope="module")
def defaults() -> dict:
    return _probe()


@pytest.fixture(scope="module")
def user_choices() -> dict:
    return _probe(TF_CPU_ALLOCATOR_USE_BFC="false", TF_ENABLE_ONEDNN_OPTS="0", JAX_THREEFRY_PARTITIONABLE="1")


def test_every_process_pools_cpu_memory_unless_the_user_says_otherwise(defaults, user_choices):
    # set by importing pcfilter_lib
    assert [defaults["allocator"], *defaults["created"]] == ["bfc (pooling)", "bfc_cpu_allocator_for_gpu"]
    # the user's own choice wins (oneDNN is off in that process too; TensorFlow pools with BFC whenever the
    # variable asks for it, with oneDNN or without)
    assert user_choices["allocator"] == "default" and "bfc_cpu_allocator_for_gpu" not in user_choices["created"]


def test_every_process_runs_onednn_kernels_unless_the_user_says_otherwise(defaults, user_choices):
    # TensorFlow turns them on by itself only where the CPU has AVX-512 VNNI or AMX: set here, every CPU runs them
    assert (defaults["onednn"], defaults["onednn_enabled"]) == ("on", True)
    assert (user_choices["onednn"], user_choices["onednn_enabled"]) == ("off", False)


def test_jax_draws_random_bits_the_quickly_compiled_way_unless_the_user_says_otherwise(defaults, user_choices):
    # Keras draws every weight's first values with a compiled random draw per shape under JAX
    assert defaults["threefry_partitionable"] is False
    assert user_choices["threefry_partitionable"] is True


def test_the_command_line_reports_the_allocator_and_onednn():
    clean = {k: v for k, v in os.environ.items() if k not in ("TF_CPU_ALLOCATOR_USE_BFC", "TF_ENABLE_ONEDNN_OPTS")}
    code = "import sys; from pcfilter_lib.cli import main; sys.exit(main(['info', '--no-devices', '--json']))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=clean)
    assert result.returncode == 0, result.stderr
    assert '"cpu_allocator": "bfc (pooling)"' in result.stdout
    assert '"onednn": "on"' in result.stdout


def test_the_graph_optimiser_is_off_inside_the_block_only():
    # In a fresh full-size process, where the optimiser starts on (this test process may be in fast mode).
    env = {**{k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}, "PCFILTER_FAST": "0"}
    code = ("from pcfilter_lib import runtime; runtime.setup(); before = runtime.graph_optimiser()\n"
            "from pcfilter_lib.nn.fit import graph_optimiser_off\n"
            "with graph_optimiser_off():\n    inside = runtime.graph_optimiser()\n"
            "print(before, inside, runtime.graph_optimiser())")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["on", "off", "on"]
