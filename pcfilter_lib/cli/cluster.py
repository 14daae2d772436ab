"""``filter``, ``simulate`` and ``reconstruct`` on a Dask cluster: ``--jobs N`` starts a ``LocalCluster``
of N worker processes of one thread each, ``--scheduler tcp://HOST:PORT`` uses a running one
(``dask scheduler``, ``dask worker``).

One mechanism for a folder and for one large cloud: each file of a folder, or each tile of a cloud
with its halo, is one task. A tile's task reads its points from the ``filters.tile_store.TileStore``
files, in a folder every worker sees (the client never ships a cloud), and hands back its
(indices, results); ``TaskCells``, the cluster's ``tile_store.CellRunner``, gives them back in tile
order, not in the order the tasks finish, so the outputs are the bytes of one process; the progress
bar counts tiles as they finish. A file's task runs the command on it inside the worker and writes
its output atomically. A worker that dies (killed, out of memory) loses only its running task, which
the scheduler runs again on another worker; a task that kills ``ALLOWED_FAILURES`` + 1 workers (with
``--jobs``; a running cluster's scheduler has its own ``distributed.scheduler.allowed-failures``) ends
the run with one line naming ``--tile-points``.

``simulate`` makes each scan as a task that writes its file (``simulate.dataset.write_dataset``).

This module alone imports ``distributed``; the commands load it (``options.cluster_tasks``) only for
``--jobs`` above 1 or ``--scheduler``, so one process runs as before and ``pcfilter --help`` stays quick.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import logging
import multiprocessing.forkserver
import multiprocessing.util
import os
import signal
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import dask
from distributed import Client, LocalCluster, WorkerPlugin, as_completed
from distributed.scheduler import KilledWorker

from pcfilter_lib import config
from pcfilter_lib.cli.app import build_parser, one_line
from pcfilter_lib.cli.folders import PER_FILE
from pcfilter_lib.cli.options import option_line

ALLOWED_FAILURES = 2  # workers a task may take down with it before the run stops (Dask's default is 3)
# One thread per worker for the numerical libraries, and no TensorFlow start-up logs on the terminal.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
CONNECT_TIMEOUT = 10  # seconds for --scheduler to answer
NO_SCHEDULER = ("start one with 'dask scheduler' and workers with 'dask worker ADDRESS', or use --jobs N for "
                "workers on this machine")


def check_address(address: str) -> None:
    """Refuse at once a ``--scheduler`` address that no scheduler can have: a port that is not a whole
    number from 1 to 65535, a host that does not resolve, nothing listening there, or (plain TCP) a
    listener that does not answer as a scheduler does within ``CONNECT_TIMEOUT`` seconds.
    A scheme other than tcp:// or tls:// is left to Dask."""
    scheme, _, location = address.rpartition("://")
    if scheme and scheme not in ("tcp", "tls"):
        return
    host, colon, port = location.rpartition(":")
    host = host.strip("[]")  # an IPv6 address is written [::1]:8786
    if not colon or not host:
        raise ValueError(f"--scheduler {address}: give the scheduler's address as 'dask scheduler' prints it, "
                         "such as tcp://HOST:8786")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"--scheduler {address}: the port {port!r} is not a whole number from 1 to 65535; give "
                         "the address 'dask scheduler' prints, such as tcp://HOST:8786")
    try:
        socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise ValueError(f"--scheduler {address}: the host {host!r} is unknown ({one_line(error)}); check its "
                         "name, or give its IP address") from None
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT) as connection:
            # A Dask scheduler speaks first on plain TCP (its handshake); Dask's own connect would wait
            # for it without end on a port where something else listens and says nothing.
            if scheme in ("", "tcp") and not connection.recv(1):
                raise ConnectionResetError("the connection was closed without a word")
    except TimeoutError:
        raise OSError(f"--scheduler {address}: no Dask scheduler answered within {CONNECT_TIMEOUT} s (is "
                      f"something else listening there, or a firewall in the way?); {NO_SCHEDULER}") from None
    except OSError as error:
        raise OSError(f"--scheduler {address}: no Dask scheduler listens there ({one_line(error)}); "
                      f"{NO_SCHEDULER}") from None


def wait_for_workers(client: Client, address: str) -> None:
    """Refuse a running scheduler that has no worker after ``config.worker_wait()`` seconds: its tasks
    would wait forever, and say nothing."""
    wait = config.worker_wait()
    try:
        client.wait_for_workers(1, timeout=wait)
    except TimeoutError:
        raise OSError(f"--scheduler {address}: the scheduler has no workers (waited {wait:g} s); start some "
                      f"with 'dask worker {address}' on machines that see the inputs and outputs, or use --jobs N "
                      "for workers on this machine") from None


@contextlib.contextmanager
def cluster_client(args: argparse.Namespace) -> Iterator[Client]:
    """A client of the cluster ``args`` asks for: a new ``LocalCluster`` of ``args.jobs`` workers (closed
    at the end), or the running scheduler ``args.scheduler``."""
    config = {"distributed.scheduler.allowed-failures": ALLOWED_FAILURES, "distributed.admin.tick.limit": "1h",
              # A worker near its memory limit is restarted (its task tried again elsewhere, then KilledWorker),
              # never paused: a paused worker holding the last tiles would hang the run.
              "distributed.worker.memory.pause": False, "distributed.worker.memory.spill": False,
              "distributed.worker.memory.target": False}
    with dask.config.set(config), contextlib.ExitStack() as stack:
        if args.scheduler:
            check_address(args.scheduler)
            try:
                client = stack.enter_context(Client(args.scheduler, timeout=f"{CONNECT_TIMEOUT}s"))
            except (OSError, TimeoutError, ValueError) as error:
                raise OSError(f"--scheduler {args.scheduler}: no Dask scheduler answered ({one_line(error)}); "
                              f"{NO_SCHEDULER}") from None
            wait_for_workers(client, args.scheduler)
        else:
            # The scheduler's and the workers' scratch folders go into a temporary folder of this run,
            # removed with it (by default Dask leaves a dask-scratch-space folder in the system's).
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="pcfilter-dask-"))
            stack.enter_context(dask.config.set({"temporary-directory": scratch}))
            with ctrl_c_held():
                cluster = stack.enter_context(LocalCluster(n_workers=args.jobs, threads_per_worker=1,
                                                           processes=True, dashboard_address=":0",
                                                           silence_logs=logging.CRITICAL, env=WORKER_ENV))
            client = stack.enter_context(Client(cluster))
            client.register_plugin(LeaveCtrlCToTheClient())
        yield client


@contextlib.contextmanager
def ctrl_c_held() -> Iterator[None]:
    """Hold Ctrl-C while a ``LocalCluster`` starts, then let it through.

    A Ctrl-C in the terminal reaches the whole process group: a worker still importing Python would
    print its own traceback, and a cluster interrupted half-way through its start more at exit. The
    workers are forked from a fork server started with SIGINT ignored, which they inherit (restarted
    ones too); this process notes a Ctrl-C while the cluster starts and raises it once the cluster is
    up, which is then closed, with one line saying the run was interrupted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came = []
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        method = {}
        if forkserver_fits():
            multiprocessing.forkserver.ensure_running()
            method = {"distributed.worker.multiprocessing-method": "forkserver"}
        signal.signal(signal.SIGINT, lambda signum, frame: came.append(signum))
        with dask.config.set(method):
            yield
    finally:
        signal.signal(signal.SIGINT, handler)
    if came:
        raise KeyboardInterrupt


def forkserver_fits() -> bool:
    """Whether a fork server can listen here: its Unix socket lies in the temporary folder, and a path
    over 107 bytes is refused ('AF_UNIX path too long'). Under a deeper TMPDIR the workers start as
    Dask starts them, and a Ctrl-C during their start may print their tracebacks."""
    socket_path = Path(multiprocessing.util.get_temp_dir()) / "listener-xxxxxxxx"
    return len(os.fsencode(socket_path)) < 100


class LeaveCtrlCToTheClient(WorkerPlugin):
    """Ctrl-C in a terminal reaches every process of its group, the workers of ``--jobs`` included: they
    ignore it (restarted ones too) and leave it to the client, which closes the cluster and says in one
    line that the run was interrupted, instead of each worker printing its own traceback."""

    name = "pcfilter-leave-ctrl-c-to-the-client"

    def setup(self, worker) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class TaskCells:
    """The ``filters.tile_store.CellRunner`` of a cluster: each cell a task, results in cell order.

    With ``--scheduler`` the client connects on entering; with ``--jobs`` the cluster starts at the first
    pass over the cells, so that a cloud filtered in one pass never starts one. Leaving ends them.
    """

    def __init__(self, args: argparse.Namespace, what: str = "tile"):
        self.args, self.what, self.client, self.stack = args, what, None, contextlib.ExitStack()

    def __enter__(self) -> TaskCells:
        if self.args.scheduler:  # a running cluster that cannot be reached is reported before any work
            self.client = self.stack.enter_context(cluster_client(self.args))
        return self

    def __exit__(self, *failure) -> None:
        self.stack.close()

    def __call__(self, task: Callable[[int], object], cells: Sequence[int],
                 done: Callable[[int], None] | None = None) -> Iterator:
        """``task(cell)`` of each cell, run as tasks, in the order of ``cells``; ``done(cell)`` as each finishes."""
        if self.client is None:
            self.client = self.stack.enter_context(cluster_client(self.args))
        run, name = uuid.uuid4().hex[:12], _name(task)
        # The task itself (the filter, the store's grid) goes to the cluster once; the scheduler can
        # compute it again if the worker holding it dies.
        shared = self.client.submit(_itself, task, key=f"pcfilter-task-{run}", pure=False)
        futures = [self.client.submit(_call, shared, cell, key=f"pcfilter-{name}-{run}-{cell}", pure=False)
                   for cell in cells]
        yield from in_order(self.client, futures, [f"{self.what} {cell}" for cell in cells],
                            None if done is None else lambda i: done(cells[i]))
        shared.release()


def _name(task) -> str:
    """The name of a cell's task in its tasks' keys (``pcfilter-sor_tile-RUN-CELL``)."""
    return getattr(getattr(task, "func", task), "__name__", "cell").strip("_")


def _itself(value):
    return value


def _call(task: Callable[[int], object], cell: int):
    return task(cell)


def in_order(client: Client, futures: list, names: list[str], done: Callable[[int], None] | None = None) -> Iterator:
    """The results of ``futures`` in their order, each handed on as soon as those before it are in;
    ``done(i)`` as the i-th finishes, in whatever order they finish. A task that took down too many
    workers stops the run with a RuntimeError naming ``--tile-points``; on any error, or when the
    caller stops early, the tasks left are cancelled."""
    position = {future.key: i for i, future in enumerate(futures)}
    results, next_one = {}, 0
    try:
        for future in as_completed(futures):
            i = position[future.key]
            try:
                results[i] = future.result()
            except KilledWorker as error:
                tries = getattr(error, "allowed_failures", ALLOWED_FAILURES) + 1
                raise RuntimeError(f"{names[i]} took down every Dask worker that ran it ({tries} tr"
                                   f"{'y' if tries == 1 else 'ies'}; a worker out of memory, most often); run again "
                                   "with a smaller --tile-points, or give each worker more memory") from None
            future.release()
            if done:
                done(i)
            while next_one in results:
                yield results.pop(next_one)
                next_one += 1
    finally:
        client.cancel([future for future in futures if not future.done()])


def run_on_cluster(args: argparse.Namespace, files: list[tuple[Path, Path]]) -> Iterator[tuple[Path, str, str | None]]:
    """``folders.run_in_workers`` on a cluster: each (input, output) of ``files`` one task that runs
    ``args.command`` on it inside a worker, with every option of ``args`` but those of ``PER_FILE``.

    Yields:
        (input, the command's first line on stdout, None) for a file done, or (input, None, its
        one-line error) for one that failed, in the order of ``files``.
    """
    options = option_line(args, build_parser().commands[args.command], leave_out=(*PER_FILE, "scheduler",
                                                                                  "overwrite"))
    # The outputs were checked before any work (new, or --overwrite): a task run again after its worker
    # died may find the output it had already written.
    where = Path.resolve if args.scheduler else Path  # a running cluster's workers may run in other folders
    commands = [[args.command, str(where(source)), "-o", str(where(target)), *options, "--quiet", "--overwrite"]
                for source, target in files]
    run = uuid.uuid4().hex[:12]
    with cluster_client(args) as client:
        futures = [client.submit(run_command, command, key=f"pcfilter-file-{run}-{i}", pure=False)
                   for i, command in enumerate(commands)]
        results = in_order(client, futures, [source.name for source, _ in files])
        for (source, _), (line, reason) in zip(files, results, strict=True):
            yield source, line, reason
    for _, target in files:  # what a killed worker was writing
        for part in target.parent.glob(f".{target.stem}.*.part{target.suffix}"):
            part.unlink(missing_ok=True)


def run_command(argv: list[str]) -> tuple[str | None, str | None]:
    """Run one ``pcfilter`` command (``argv`` without the program's name) in this process: (its first
    line on stdout, None), or (None, its one-line error)."""
    args = build_parser().parse_args(argv)
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):
            importlib.import_module(f"pcfilter_lib.cli.{args.command}").run(args)
    except Exception as error:  # the file is skipped and the reason reported, as a worker process's would be
        return None, one_line(error)
    return (said.getvalue().strip().splitlines() or [""])[0], None
