"""Bad input, round 3: the cluster cases that need a signal. Ctrl-C while the workers of ``--jobs 2``
start ends with the client's one line, not with the workers' tracebacks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
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
