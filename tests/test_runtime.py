"""runtime: the quiet start-up of TensorFlow and Keras."""

import subprocess
import sys


def test_runtime_setup_keeps_tensorflow_quiet():
    code = ("from pcfilter_lib import runtime; runtime.setup(); import keras; "
            "keras.layers.Dense(2)(keras.ops.zeros((1, 3)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


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
