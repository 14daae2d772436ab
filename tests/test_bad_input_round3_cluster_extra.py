"""Bad input, round 3: the cluster cases that need a signal. Ctrl-C while the workers of ``--jobs 2``
start ends with the client's one line, not with the workers' tracebacks, and a killed resource tracker
leaves a correct run (Python's tracker, relaunched, still reports what it lost)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from test_bad_input import CLOUD, TIMEOUT, write_xyz

# `pcfilter filter --jobs 2` that presses Ctrl-C as a terminal does (SIGINT to every process of its group)
# one second after the LocalCluster began to start its workers.
CTRL_C_WHILE_THE_CLUSTER_STARTS = """
import os, signal, sys, threading
from pcfilter_lib.cli import cluster, main
delay = float(sys.argv.pop(1))
class Interrupted(cluster.LocalCluster):
    def __init__(self, *args, **kwargs):
        threading.Timer(delay, os.killpg, (os.getpgrp(), signal.SIGINT)).start()
        super().__init__(*args, **kwargs)
cluster.LocalCluster = Interrupted
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_while_the_workers_start_gives_one_line(tmp_path):
    write_xyz(tmp_path / "c.xyz", CLOUD)
    # A short temporary folder, as a terminal's /tmp is: the fork server's socket must fit 107 bytes.
    temporary = Path(tempfile.mkdtemp(prefix="pcf-", dir="/tmp"))
    for delay in ("0.3", "1.5"):  # while the workers import, and once they are up
        process = subprocess.Popen(
            [sys.executable, "-c", CTRL_C_WHILE_THE_CLUSTER_STARTS, delay, "filter", "c.xyz", "-o", "out.ply",
             "--method", "sor", "--tile-points", "1000", "--jobs", "2", "--quiet"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            env={**os.environ, "TMPDIR": str(temporary)})
        try:
            _, stderr = process.communicate(timeout=TIMEOUT)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        assert process.returncode == 130, stderr[-3000:]
        assert stderr == "pcfilter filter: interrupted; no output file was left half-written\n", stderr[-3000:]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["c.xyz"] and not list(temporary.iterdir())
    temporary.rmdir()


TRACKER = "from multiprocessing.resource_tracker import main"


def test_a_killed_resource_tracker_leaves_a_correct_run_without_tracebacks(tmp_path):
    """Case 3 of the cluster: the multiprocessing resource tracker of a --jobs 2 run is killed while
    the workers filter; the run still ends with its one line, exit status 0 and its whole output."""
    import psutil

    write_xyz(tmp_path / "c.xyz", CLOUD)
    temporary = Path(tempfile.mkdtemp(prefix="pcf-", dir="/tmp"))
    process = subprocess.Popen(
        [sys.executable, "-m", "pcfilter_lib.cli", "filter", "c.xyz", "-o", "out.ply", "--method", "sor",
         "--tile-points", "1000", "--jobs", "2", "--quiet"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TMPDIR": str(temporary)})
    try:
        killed = False
        for _ in range(400):  # up to 40 s for the tracker to start
            # The tracker by its own command line: the fork server's names the working folder,
            # which pytest named after this test ("..._resource_tracker0").
            trackers = [p for p in psutil.Process(process.pid).children(recursive=True)
                        if TRACKER in " ".join(p.cmdline())]
            if trackers:
                for tracker in trackers:
                    tracker.kill()
                killed = True
                break
            if process.poll() is not None:
                break
            time.sleep(0.1)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    assert killed, "no resource tracker started"
    assert process.returncode == 0, stdout + stderr[-3000:]
    assert stdout.startswith("sor: kept ") and (tmp_path / "out.ply").is_file()
    # What stderr holds comes from Python's own tracker, relaunched by multiprocessing, saying that
    # its record of the run's semaphores was lost: true, and not pcfilter's or Dask's to hide.
    foreign = [line for line in stderr.splitlines() if line.strip() and not (
        "resource_tracker" in line or line.startswith(("Traceback", "KeyError: '/mp-"))
        or line.strip().startswith(("cache[rtype].remove", "warnings.warn(")))]
    assert not foreign, stderr[-3000:]
    shutil.rmtree(temporary)
