"""``pcfilter filter`` on a real Dask cluster writes the bytes one process writes, and survives a killed worker.

One ``LocalCluster`` serves the module (``--scheduler``), with three worker processes, then two, then one
(``tests/test_cli_filter.py`` runs ``--jobs 2``, which starts a cluster of its own, on a folder). The cloud
is small (about 9 000 points, clusters on tile corners, specks whose neighbours lie beyond the first
halo) and ``--tile-points`` forced small, so that a run has from three to a dozen tiles.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time

import dask
import numpy as np
import pytest
from distributed import LocalCluster
from distributed.diagnostics.plugin import SchedulerPlugin
from distributed.utils import get_mp_context
from test_classical_tiles import awkward_cloud

from pcfilter_lib.cli import main
from pcfilter_lib.io.organised import write_points

OUTPUTS = ("-o", "kept.ply", "--removed", "removed.ply", "--scores", "scores.ply")


# What the workers' tasks import (the filters with Open3D, the simulator): each worker, and each one that a
# nanny starts again after a kill, forks from a server that has imported them once, instead of spending
# some 3 s of CPU on importing them itself.
PRELOAD = ["distributed", "numpy", "pcfilter_lib.cli.cluster", "pcfilter_lib.cli.filter", "pcfilter_lib.cli.simulate",
           "pcfilter_lib.filters.classical_tiles"]


@pytest.fixture(scope="module")
def cluster():
    """Three workers at first; the tests scale it down to two, then one."""
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        get_mp_context().set_forkserver_preload(PRELOAD)  # after Dask's own list, which it sets once
        with LocalCluster(n_workers=3, threads_per_worker=1, processes=True, dashboard_address=":0") as running:
            yield running


def scale(cluster, workers):
    cluster.scale(workers)
    for _ in range(400):
        if len(cluster.scheduler.workers) == workers:
            return
        time.sleep(0.05)
    raise AssertionError(f"the cluster kept {len(cluster.scheduler.workers)} workers, not {workers}")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    points = awkward_cloud(3)
    path = tmp_path_factory.mktemp("cloud") / "cloud.ply"
    write_points(path, np.concatenate([points, points + [10.0, 0.0, 0.0]]))  # two side by side: more tiles
    return path


def filtered(cloud, folder, *options) -> dict[str, bytes]:
    """Run ``pcfilter filter`` in this process; the bytes of each file it left in ``folder``."""
    folder.mkdir()
    outputs = [str(folder / value) if value.endswith(".ply") else value for value in OUTPUTS]
    assert main(["filter", str(cloud), *outputs, "--quiet", *options]) == 0
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def one_process(cloud, tmp_path_factory):
    """The outputs of one process, by (method, tile points)."""
    found = {}

    def outputs(method, tile_points):
        if (method, tile_points) not in found:
            folder = tmp_path_factory.mktemp("one") / f"{method}-{tile_points}"
            found[method, tile_points] = filtered(cloud, folder, *choice(method), "--tile-points", str(tile_points))
        return found[method, tile_points]

    return outputs


def choice(method):
    return ("--model", "neighbours") if method == "neighbours" else ("--method", method)


# Every method and output at two tile sizes, on three workers, then two (then, at the end, one).
MATRIX = pytest.mark.parametrize(("method", "tile_points"),
                                 [(m, t) for m in ("sor", "ror", "neighbours") for t in (1000, 3000)])


def same_bytes(cluster, workers, cloud, one_process, folder, method, tile_points):
    scale(cluster, workers)
    expected = one_process(method, tile_points)
    assert sorted(expected) == ["kept.ply", "removed.ply", "scores.ply"]  # nothing else left beside them
    assert filtered(cloud, folder, *choice(method), "--tile-points", str(tile_points),
                    "--scheduler", cluster.scheduler_address) == expected


@MATRIX
def test_three_workers_write_the_bytes_of_one_process(method, tile_points, cluster, cloud, one_process, tmp_path):
    same_bytes(cluster, 3, cloud, one_process, tmp_path / "three", method, tile_points)


@MATRIX
def test_two_workers_write_the_bytes_of_one_process(method, tile_points, cluster, cloud, one_process, tmp_path):
    same_bytes(cluster, 2, cloud, one_process, tmp_path / "two", method, tile_points)


def test_simulate_makes_each_scan_as_a_task_with_the_bytes_of_one_process(cluster, tmp_path):
    common = ["simulate", "--n", "3", "--size", "32x24", "--seed", "5", "--split", "0.34/0.33/0.33"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--out", str(tmp_path / "many"), "--scheduler", cluster.scheduler_address]) == 0
    made = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(made) == 4 and made == sorted(p.relative_to(tmp_path / "many")  # 3 scans and the manifest
                                             for p in (tmp_path / "many").rglob("*") if p.is_file())
    for name in made:
        assert (tmp_path / "many" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name


def test_each_file_of_a_folder_is_a_task(cluster, cloud, one_process, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a.ply", "b.ply"):
        (inputs / name).write_bytes(cloud.read_bytes())
    assert main(["filter", str(inputs), "-o", str(tmp_path / "many"), "--method", "ror", "--tile-points", "3000",
                 "--quiet", "--scheduler", cluster.scheduler_address]) == 0
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["a.ply", "b.ply"]
    for name in ("a.ply", "b.ply"):  # each file's tiles filtered one after the other inside its task
        assert (tmp_path / "many" / name).read_bytes() == one_process("ror", 3000)["kept.ply"]


class KillWorkers(SchedulerPlugin):
    """SIGKILL the worker running a tile of ``pass_name`` after ``after`` of that pass's tiles have
    finished (``times`` times), or, with ``cell``, each worker that is given that tile (``times`` times)."""

    name = "kill-workers"

    def __init__(self, scheduler, pass_name, after=0, cell=None, times=1):
        self.scheduler, self.pass_name, self.after, self.cell, self.times = scheduler, pass_name, after, cell, times
        self.finished, self.killed = 0, []

    def transition(self, key, start, finish, *args, **kwargs):
        if not isinstance(key, str) or not key.startswith(f"pcfilter-{self.pass_name}-") or not self.times:
            return
        if self.cell is None and start == "processing" and finish == "memory":
            self.finished += 1
            if self.finished == self.after:
                busy = [ws for ws in self.scheduler.workers.values()
                        if any(str(ts.key).startswith(f"pcfilter-{self.pass_name}-") for ts in ws.processing)]
                if busy:
                    self.kill(busy[0])
        elif self.cell is not None and finish == "processing" and key.endswith(f"-{self.cell}"):
            self.kill(self.scheduler.tasks[key].processing_on)

    def kill(self, worker):
        self.times -= 1
        self.killed.append((worker.pid, self.finished))
        os.kill(worker.pid, signal.SIGKILL)


def test_a_killed_worker_changes_nothing(cluster, cloud, one_process, tmp_path):
    expected = one_process("sor", 1000)
    killer = KillWorkers(cluster.scheduler, "sor_tile", after=2)
    cluster.scheduler.add_plugin(killer)
    try:
        found = filtered(cloud, tmp_path / "killed", "--method", "sor", "--tile-points", "1000",
                         "--scheduler", cluster.scheduler_address)
    finally:
        cluster.scheduler.remove_plugin(name=killer.name)
    assert [finished for _, finished in killer.killed] == [2]  # one worker killed, with tiles still to filter
    assert found == expected  # no partial or repeated tile, and no tiles' folder left beside the outputs


def test_a_tile_that_keeps_killing_workers_ends_the_run_with_one_line(cluster, cloud, tmp_path, capsys):
    allowed, cluster.scheduler.allowed_failures = cluster.scheduler.allowed_failures, 0  # one death is too many
    killer = KillWorkers(cluster.scheduler, "ror_tile", cell=5)
    cluster.scheduler.add_plugin(killer)
    try:
        status = main(["filter", str(cloud), "-o", str(tmp_path / "kept.ply"), "--method", "ror", "--quiet",
                       "--tile-points", "1000", "--scheduler", cluster.scheduler_address])
    finally:
        cluster.scheduler.remove_plugin(name=killer.name)
        cluster.scheduler.allowed_failures = allowed
    error = capsys.readouterr().err.strip()
    assert status == 1 and len(killer.killed) == 1
    # the tile killed, or another that its worker held
    assert len(error.splitlines()) == 1 and "--tile-points" in error and "(1 try;" in error, error
    assert list(tmp_path.iterdir()) == []  # no output, no tiles' folder


@MATRIX
def test_one_worker_writes_the_bytes_of_one_process(method, tile_points, cluster, cloud, one_process, tmp_path):
    same_bytes(cluster, 1, cloud, one_process, tmp_path / "one", method, tile_points)


# `pcfilter filter` in a process that presses Ctrl-C as a terminal does (SIGINT to every process of its
# group, the workers of --jobs included) once the first tile's result has come back.
INTERRUPT_AFTER_A_TILE = """
import os, signal, sys
from pcfilter_lib.cli import cluster, main
run = cluster.TaskCells.__call__
def interrupt_after_the_first_tile(self, *args, **kwargs):
    for n, result in enumerate(run(self, *args, **kwargs)):
        yield result
        if n == 0:
            os.killpg(os.getpgrp(), signal.SIGINT)
cluster.TaskCells.__call__ = interrupt_after_the_first_tile
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_ends_a_run_on_local_workers_with_one_line_and_leaves_nothing(cloud, tmp_path):
    out, temporary = tmp_path / "out", tmp_path / "tmp"  # the tiles of --jobs go to the temporary folder
    out.mkdir()
    temporary.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPT_AFTER_A_TILE, "filter", str(cloud), "-o", str(out / "kept.ply"),
         "--removed", str(out / "removed.ply"), "--method", "sor", "--tile-points", "1000", "--jobs", "2",
         "--quiet"],  # a first tile later than 5 s (the workers' start on a busy machine) would print progress
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "TMPDIR": str(temporary)})
    try:
        _, stderr = process.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever still runs, so that a failure leaves nothing
    assert process.returncode == 130, stderr
    # One line, from the client: the workers leave Ctrl-C to it instead of printing tracebacks.
    assert stderr == "pcfilter filter: interrupted; no output file was left half-written\n"
    assert list(out.iterdir()) == [] and list(temporary.iterdir()) == []
