"""The ``pcfilter`` command line in a fresh process per call, without paying Python's start-up each time.

The bad-input tests run the command line once per case, each in a process of its own, to see what
reaches its standard error (C++ logs included) and whether TensorFlow started. Starting Python and
importing NumPy, SciPy, Open3D, laspy and the commands' modules costs over a second of CPU per process.
Here a fork server (multiprocessing's ``forkserver``, itself a fresh interpreter) imports them once, and
each command runs in a child forked from it: its own process, working folder, environment and file
descriptors 1 and 2, which has imported TensorFlow only if the command did.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from dataclasses import dataclass
from pathlib import Path

# What every command imports before it decides anything, and the modules of the commands the rows run
# (SciPy's statistics among what they import: half a second per child); never TensorFlow or Keras, which
# a command imports only when it runs, so the child's flag still says whether the command started it.
PRELOAD = ["pcfilter_lib.cli", "numpy", "scipy.spatial", "open3d", "laspy",
           *(f"pcfilter_lib.cli.{command}" for command in ("filter", "reconstruct", "evaluate", "simulate",
                                                           "modelnet"))]
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(PRELOAD)


@dataclass(frozen=True)
class Result:
    returncode: int | None  # None: still running at the timeout, then killed
    stdout: str
    stderr: str
    tensorflow: bool  # whether the command imported TensorFlow


def _command(folder: str, argv: list[str], env: dict[str, str], logs: str) -> None:
    """In the forked child: become the process a shell would start in ``folder``, then run the command."""
    os.chdir(folder)
    os.environ.clear()
    os.environ.update(env)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        target = os.open(os.path.join(logs, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    from pcfilter_lib.cli import main

    try:
        sys.exit(main(argv))  # the exit status, as the console script gives it
    finally:
        Path(logs, "tensorflow").write_text(str(int("tensorflow" in sys.modules)))


def run(argv: list[str], folder: Path, env: dict[str, str], logs: Path, timeout: float) -> Result:
    """Run ``pcfilter *argv`` in ``folder`` with environment ``env``; its outputs go to files in ``logs``."""
    logs.mkdir(parents=True, exist_ok=True)
    for name in ("stdout", "stderr"):
        (logs / name).write_text("")
    (logs / "tensorflow").unlink(missing_ok=True)
    process = _CONTEXT.Process(target=_command, args=(str(folder), [str(a) for a in argv], env, str(logs)))
    process.start()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()
        code = None
    else:
        code = process.exitcode
    flag = logs / "tensorflow"
    return Result(code, (logs / "stdout").read_text(), (logs / "stderr").read_text(),
                  flag.exists() and flag.read_text() == "1")
