"""``pcfilter filter`` in one process, and on a Dask cluster of 1 and 2 workers: points per second and
each process's peak resident memory.

For each size it builds a cloud as ``benchmarks/filter_memory.py`` does (simulated 640x480 scans laid
side by side, written as a binary ``.ply``) and filters it in tiles of ``--tile-points``:

* one process: ``pcfilter filter CLOUD -o KEPT --tile-points T``, its peak from the kernel
  (``filter_memory.peak_memory``);
* N workers: a ``LocalCluster`` of N worker processes of one thread each (started here, before the
  clock starts, with the thread caps of ``cli.cluster.WORKER_ENV``: Open3D, BLAS and the neighbour
  filter's pools at one thread) and ``pcfilter filter ... --scheduler ADDRESS`` as the client; the
  client's peak as above, each worker's from its ``VmHWM`` (``client.run``). The workers import the
  filter's modules (Open3D) before the clock starts, as a long-running cluster would have.

Every run's kept points are checked byte for byte against the one process's. Prints and writes
``benchmarks/results/filter_cluster.json`` and ``.md``.

    python benchmarks/filter_cluster.py [--method sor|ror | --model neighbours] [--sizes 2e6 4e6]
        [--tile-points T] [--workers 1 2] [--out DIR] [--work DIR]
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import resource
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
sys.path.insert(0, str(Path(__file__).parent))

from distributed import Client, LocalCluster  # noqa: E402
from filter_memory import peak_memory, write_large_cloud  # noqa: E402

from pcfilter_lib.cli.cluster import WORKER_ENV  # noqa: E402

MODULES = {"sor": "pcfilter_lib.filters.classical_tiles", "ror": "pcfilter_lib.filters.classical_tiles",
           "neighbours": "pcfilter_lib.filters.neighbour_tiles"}  # what a worker imports for each filter


def worker_peak() -> int:
    """This process's peak resident bytes (run inside a worker by ``client.run``): ``VmHWM``, the peak of
    its own address space; ``ru_maxrss`` would count the pages of the process it was started from (the
    kernel keeps that high-water mark across exec), here this one, which built the cloud."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # not Linux: an upper bound


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=["sor", "ror"], default="sor", help="the classical filter (default sor)")
    parser.add_argument("--model", choices=["neighbours"], default=None, help="the neighbour filter instead")
    parser.add_argument("--sizes", type=float, nargs="+", default=[2e7], help="cloud sizes in points (default 2e7)")
    parser.add_argument("--tile-points", type=int, default=250_000, help="points per tile (default 250000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="cluster sizes (default 1 2)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for the results")
    parser.add_argument("--work", type=Path, default=None, help="folder for the clouds (default: a temporary one)")
    args = parser.parse_args(argv)

    name, option = (args.model, ["--model", args.model]) if args.model else (args.method, ["--method", args.method])
    pcfilter = Path(sys.executable).with_name("pcfilter")
    rows = []
    with tempfile.TemporaryDirectory(dir=args.work, prefix="pcfilter-cluster-") as work:
        for size in (int(s) for s in args.sizes):
            cloud = Path(work) / f"cloud_{size}.ply"
            points = write_large_cloud(cloud, size)

            def command(kept, *more, cloud=cloud):
                return [str(pcfilter), "filter", str(cloud), "-o", str(kept), "--quiet", *option,
                        "--tile-points", str(args.tile_points), *more]

            one = Path(work) / "one.ply"
            peak, wall, _ = peak_memory(command(one))
            rows.append({"filter": name, "points": points, "tile_points": args.tile_points, "workers": 0,
                         "wall_s": wall, "points_per_s": points / wall, "client_peak_bytes": peak,
                         "worker_peak_bytes": [], "load_average": os.getloadavg()[0]})
            print(f"{points:,} points, one process: {points / wall:,.0f} points/s, peak {peak / 1e9:.2f} GB",
                  flush=True)
            for workers in args.workers:
                with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.CRITICAL, env=WORKER_ENV) as cluster, Client(cluster) as client:
                    client.run(importlib.import_module, MODULES[name])
                    kept = Path(work) / f"kept_{workers}.ply"
                    peak, wall, _ = peak_memory(command(kept, "--scheduler", cluster.scheduler_address))
                    peaks = sorted(client.run(worker_peak).values())
                same = kept.read_bytes() == one.read_bytes()
                kept.unlink()
                rows.append({"filter": name, "points": points, "tile_points": args.tile_points, "workers": workers,
                             "wall_s": wall, "points_per_s": points / wall, "client_peak_bytes": peak,
                             "worker_peak_bytes": peaks, "same_bytes": same,
                             "load_average": os.getloadavg()[0]})
                print(f"{points:,} points, {workers} worker(s): {points / wall:,.0f} points/s, client peak "
                      f"{peak / 1e9:.2f} GB, worker peaks {', '.join(f'{p / 1e9:.2f}' for p in peaks)} GB, "
                      f"{'the same bytes' if same else 'DIFFERENT bytes'} as one process", flush=True)
                if not same:
                    raise SystemExit("the cluster's kept points differ from one process's")
            one.unlink()
            cloud.unlink()
    from pcfilter_lib.io.files import atomic_write_text
    from pcfilter_lib.timing import clock

    device = clock.device_report()
    table = "\n".join([
        f"`pcfilter filter --{'model' if args.model else 'method'} {name} --tile-points T` on binary .ply clouds, "
        f"in one process and with `--scheduler` on a LocalCluster of N workers of one thread each (started "
        f"before the clock); CPU {device['cpu']} ({device['cores']} cores). Peaks: ru_maxrss of the client "
        "process, VmHWM of each worker; the machine's load average (1 min) after each run, other work included.",
        "",
        "| filter | points | tile points | workers | wall time | points/s | client peak | worker peaks | load |",
        "|---|---|---|---|---|---|---|---|---|",
        *(f"| {r['filter']} | {r['points']:,} | {r['tile_points']:,} | {r['workers'] or 'one process'} | "
          f"{r['wall_s']:,.1f} s | {r['points_per_s']:,.0f} | {r['client_peak_bytes'] / 1e9:.2f} GB | "
          f"{', '.join(f'{p / 1e9:.2f} GB' for p in r['worker_peak_bytes']) or '-'} | {r['load_average']:.1f} |"
          for r in rows)])
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "filter_cluster.md", table + "\n")
    atomic_write_text(args.out / "filter_cluster.json", json.dumps({"device": device, "runs": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
