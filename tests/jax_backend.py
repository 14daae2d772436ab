"""The JAX side of the tests that compare Keras backends, computed in one JAX process per pytest run.

A process's Keras backend is fixed once Keras is imported, so a test that compares TensorFlow with JAX
computes the JAX side in another process, and starting one (Python, Keras, JAX, the library's models)
costs seconds of CPU before it computes anything. A test file declares its JAX side with ``declare``:
a function that writes the inputs into a folder (under TensorFlow), and code that computes from them
under JAX. The first test that asks for its side's numbers (``numbers``) starts one process for the
sides of every test file collected in the run; the workers of pytest-xdist share what it computed
through the run's temporary folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pcfilter_lib import runtime

ROOT = Path(__file__).resolve().parent.parent
# The environment of the tests' JAX processes: XLA compiles without optimising, as in any fast-mode process
# (runtime.setup), which gives the same numbers here (the sides agree with TensorFlow as closely; the
# workloads' JAX row: the same loss, 15 s of CPU instead of 25). Nothing in the tests times them.
QUICK_XLA = {"XLA_FLAGS": " ".join(dict.fromkeys([*os.environ.get("XLA_FLAGS", "").split(), runtime.FAST_XLA_FLAG]))}


@dataclass(frozen=True)
class _Side:
    test_file: Path
    prepare: Callable[[Path], None]
    code: str


_DECLARED: dict[str, _Side] = {}

# Each side's code runs in its own namespace; an exception fails that side's test alone, with its traceback.
_RUNNER = """
import json, sys, traceback
from pathlib import Path

import keras
import numpy as np

results = {}
for name, folder, code in json.loads(sys.argv[1]):
    scope = {"folder": Path(folder), "keras": keras, "np": np}
    try:
        exec(code, scope)
        results[name] = {"out": scope["out"]}
    except Exception:
        results[name] = {"error": traceback.format_exc()}
print(json.dumps(results))
"""


def declare(name: str, test_file: str, prepare: Callable[[Path], None], code: str) -> None:
    """The JAX side ``name`` of the test file ``test_file`` (its ``__file__``).

    Args:
        name: the side's name, unique among the test files.
        test_file: the declaring test file; its side is computed with the others only when it is collected.
        prepare: writes the side's inputs into the folder it is given (in the pytest process).
        code: Python run under JAX with ``folder`` (that folder, a ``Path``), ``keras`` and ``np`` defined;
            it leaves what it computed, as JSON-able values, in ``out``. The sides share one process, so
            the code leaves Keras's global settings (dtype policy, backend options) as it found them.
    """
    _DECLARED[name] = _Side(Path(test_file).resolve(), prepare, textwrap.dedent(code))


def numbers(name: str, request: pytest.FixtureRequest) -> tuple[Path, object]:
    """The folder of side ``name``'s inputs and the ``out`` its code computed under JAX."""
    base = request.getfixturevalue("tmp_path_factory").getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "jax_backend"
    shared.mkdir(exist_ok=True)
    collected = {Path(item.path).resolve() for item in request.session.items}
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker computing them: wait for its results
        stored = shared / "results.json"
        results = json.loads(stored.read_text()) if stored.exists() else {}
        if name not in results:
            wanted = [other for other, side in _DECLARED.items()
                      if other not in results and (other == name or side.test_file in collected)]
            results.update(_compute(wanted, shared))
            stored.write_text(json.dumps(results))
    assert "error" not in results[name], results[name]["error"]
    return shared / name, results[name]["out"]


def _compute(names: list[str], shared: Path) -> dict:
    sides = []
    for name in names:
        folder = shared / name
        folder.mkdir(exist_ok=True)
        _DECLARED[name].prepare(folder)
        sides.append((name, str(folder), _DECLARED[name].code))
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT), **QUICK_XLA}
    result = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(sides)], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=600)
    if result.returncode != 0:
        return {name: {"error": result.stderr[-3000:]} for name in names}
    return json.loads(result.stdout.strip().splitlines()[-1])
