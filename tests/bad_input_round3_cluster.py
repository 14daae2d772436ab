"""Bad input, round 3: the rows of the cluster cases (run by ``test_bad_input_round3.py``): a running
scheduler without workers (``filter`` of a tiled cloud and of a folder, ``simulate``, ``reconstruct``),
and ``--scheduler`` addresses with an unknown host, a port out of range, nothing listening, or a
listener that never answers.

The scheduler without workers is a real one, started once in this process (``LocalCluster`` of no
workers) when a row first needs it, and closed when the tests end."""

from __future__ import annotations

import atexit
import socket

from test_bad_input import CLOUD, Case, write_xyz

_RUNNING: dict[str, object] = {}


def _scheduler_without_workers() -> str:
    """The address of a running Dask scheduler that has no worker."""
    if "cluster" not in _RUNNING:
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1",
                               dashboard_address=":0")
        _RUNNING["cluster"] = cluster
        atexit.register(cluster.close)
    return _RUNNING["cluster"].scheduler_address


def _silent_listener() -> str:
    """The address of a socket that takes connections and never says a word (a firewall or another
    server on the scheduler's port)."""
    if "silent" not in _RUNNING:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        _RUNNING["silent"] = listener
        atexit.register(listener.close)
    return f"tcp://127.0.0.1:{_RUNNING['silent'].getsockname()[1]}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _filter_tiles(address):
    def make(folder):
        write_xyz(folder / "c.xyz", CLOUD)
        return ["filter", "c.xyz", "-o", "out.ply", "--method", "sor", "--tile-points", "1000",
                "--scheduler", address() if callable(address) else address]
    return make


def _folder(command):
    def make(folder):
        (folder / "in").mkdir()
        write_xyz(folder / "in" / "a.xyz", CLOUD)
        write_xyz(folder / "in" / "b.xyz", CLOUD)
        return [command, "in", "-o", "out", "--method", "sor", "--scheduler", _scheduler_without_workers()]
    return make


def _simulate(folder):
    return ["simulate", "--n", "2", "--size", "32x24", "--out", "scans", "--scheduler",
            _scheduler_without_workers()]


NO_WORKERS = "the scheduler has no workers"
NOT_LISTENING = "no Dask scheduler listens there"

ROWS: list[Case] = [
    Case("3.1 cluster: filter a tiled cloud on a scheduler without workers",
         _filter_tiles(_scheduler_without_workers), 1, NO_WORKERS),
    Case("3.2 cluster: filter a folder on a scheduler without workers", _folder("filter"), 1, NO_WORKERS),
    Case("3.3 cluster: simulate on a scheduler without workers", _simulate, 1, NO_WORKERS),
    Case("3.4 cluster: reconstruct a folder on a scheduler without workers", _folder("reconstruct"), 1, NO_WORKERS),
    Case("3.5 cluster: --scheduler with an unknown host", _filter_tiles("tcp://no-such-host.invalid:8786"), 1,
         "the host 'no-such-host.invalid' is unknown"),
    Case("3.6 cluster: --scheduler with a port out of range", _filter_tiles("tcp://127.0.0.1:70000"), 1,
         "the port '70000' is not a whole number from 1 to 65535"),
    Case("3.7 cluster: --scheduler with a port that is not a number", _filter_tiles("tcp://127.0.0.1:port"), 1,
         "the port 'port' is not a whole number from 1 to 65535"),
    Case("3.8 cluster: --scheduler where nothing listens", lambda folder: _filter_tiles(
        f"tcp://127.0.0.1:{_free_port()}")(folder), 1, NOT_LISTENING),
    Case("3.9 cluster: --scheduler at a listener that never answers", _filter_tiles(_silent_listener), 1,
         "no Dask scheduler answered"),
]
