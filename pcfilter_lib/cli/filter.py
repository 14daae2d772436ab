"""``pcfilter filter``: remove artefacts from a scan or cloud, or from each file of a folder.

A scan or an organised cloud is read whole; an unorganised .ply or .xyz for the point or neighbour
filter, or for SOR or ROR when it is larger than one tile, is streamed in tiles and chunks, so memory
stays bounded whatever its size. A LAS or LAZ file (``io.lidar``) is always streamed, and its kept
points are written with every attribute they had; ``--classify`` writes every point instead, the
removed ones as ASPRS class 7 (noise). A folder's files are filtered in worker processes
(``folders.run_in_workers``). With ``--jobs`` above 1 or ``--scheduler`` the files of a folder, or the
tiles of a cloud, are tasks on a Dask cluster (``cli.cluster``, loaded only then).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import multiprocessing
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pcfilter_lib import filters, runtime  # filters' names load Keras when first used, after runtime.setup
from pcfilter_lib.cli.app import Interrupts
from pcfilter_lib.cli.folders import INPUT_SUFFIXES, folder_inputs, run_in_workers
from pcfilter_lib.cli.inputs import check_filter_fits, make_filter, needs_keras, read_filter_input
from pcfilter_lib.cli.options import (
    MAX_TILE_POINTS,
    MIN_TILE_POINTS,
    check_jobs,
    check_model,
    check_new_folder_outputs,
    check_new_outputs,
    check_threshold,
    cluster_module,
    cluster_tasks,
    on_cluster,
    option_range,
)
from pcfilter_lib.filters.methods import TILED_METHODS
from pcfilter_lib.filters.neighbour_tiles import (
    NEIGHBOUR_TILE_POINTS,
    NEIGHBOUR_WHOLE_POINTS,
    tiled_neighbour_probability,
)
from pcfilter_lib.filters.neighbours import NeighbourFilter
from pcfilter_lib.filters.tile_store import TILE_POINTS, serial_cells
from pcfilter_lib.geometry.point_features import COORDINATE_LIMIT, MIN_POINTS
from pcfilter_lib.io.clouds import CHUNK_POINTS, CloudError, CloudStream, CloudWriter, open_stream
from pcfilter_lib.io.files import check_input_file, check_output_file, check_output_folder, naming_errors
from pcfilter_lib.io.lidar import LIDAR_SUFFIXES, NOISE_CLASS, LidarStream, check_scores_dimension, lidar_header
from pcfilter_lib.io.organised import phoxi_sensor, write_filtered
from pcfilter_lib.io.ptx import (
    PTX_SUFFIXES,
    PointLines,
    is_ptx,
    read_ptx_header,
    stem_of,
    suffix_of,
)

READ_AHEAD_POSITIONS = 1 << 20  # PTX grids of this many positions or more are read in a second process
OUTPUT_SUFFIXES = (".ply", ".pcd", ".xyz", *LIDAR_SUFFIXES, *PTX_SUFFIXES)


class Progress:
    """Points filtered so far, on stderr: a tqdm bar (points/s, time left) on a terminal, otherwise
    the same line at most every ``every`` seconds while work remains (none for a short run); nothing with
    ``--quiet``."""

    def __init__(self, total: int, quiet: bool, name: str, every: float = 5.0):
        self.total, self.done, self.name, self.every, self.clock = total, 0, name, every, time.monotonic
        self.start = self.last = self.clock()
        self.meter = tqdm.format_meter
        self.bar = None
        self.quiet = quiet
        if not quiet and sys.stderr.isatty():
            self.bar = tqdm(total=total, unit="pt", unit_scale=True, desc=name, file=sys.stderr, leave=False)

    def __call__(self, points: int) -> None:
        Interrupts.check()
        self.done += points
        if self.bar is not None:
            self.bar.update(points)
        elif not self.quiet and self.done < self.total and self.clock() - self.last >= self.every:
            self.last = self.clock()
            line = self.meter(self.done, self.total, self.last - self.start, prefix=self.name, unit="pt",
                              unit_scale=True)
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _targets(args: argparse.Namespace) -> list[Path]:
    return [path for _, path in _named_targets(args)]


def _named_targets(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """(option, path) of each output asked for."""
    return [(option, Path(p)) for option, p in (("-o", args.output), ("--removed", args.removed),
                                                ("--scores", args.scores)) if p]


def _is_lidar(path) -> bool:
    return Path(path).suffix.lower() in LIDAR_SUFFIXES


def _check_outputs(source: Path, outputs: list[tuple[str, Path]], overwrite: bool) -> None:
    """Outputs are .ply, .xyz, .pcd, .las or .laz files in writable folders, never the input, new unless
    ``overwrite``, and two outputs differ."""
    targets = [target for _, target in outputs]
    for target in targets:
        if target.resolve() == source.resolve() or (target.exists() and os.path.samefile(target, source)):
            raise ValueError(f"{target} is the input file; choose another output name (the input is never "
                             "overwritten)")
        if suffix_of(target) not in OUTPUT_SUFFIXES:
            raise ValueError(f"{target}: outputs are written as .ply, .xyz, .las or .laz (points), .pcd (points "
                             "or an organised grid) or .ptx / .ptx.gz (an organised grid)")
        check_output_file(target)
    if len({target.resolve() for target in targets}) < len(targets):
        raise ValueError("-o, --removed and --scores must name different files")
    check_new_outputs(outputs, overwrite)


def _check_options(args: argparse.Namespace, source: Path) -> None:
    """The options of ``filter`` that need no reading of the input."""
    _check_outputs(source, _named_targets(args), args.overwrite)
    if args.scores and Path(args.scores).suffix.lower() not in (".ply", *LIDAR_SUFFIXES):
        raise ValueError(f"--scores {args.scores}: the keep probabilities are written as a .ply scalar property "
                         "or a LAS extra-bytes dimension; name a .ply, .las or .laz file")
    if args.scores and _is_lidar(args.scores) and _is_lidar(source):  # the input's own keep_probability
        check_scores_dimension(source, f"--scores {args.scores}", args.overwrite)
    if args.classify and not _is_lidar(args.output):
        raise ValueError(f"--classify writes every point with the removed ones as ASPRS class {NOISE_CLASS} (noise), "
                         f"which only LAS can hold; name a .las or .laz file with -o, not {args.output}")
    if _is_lidar(source) and (args.model == "unet" or args.method == "morph"):
        raise ValueError(f"{source} is a LAS/LAZ file, an unorganised cloud; "
                         f"{'the U-Net' if args.model == 'unet' else '--method morph'} needs the pixel grid of an "
                         "organised scan (use the point filter, --model neighbours, or --method sor / ror)")
    if getattr(args, "grid", None) and suffix_of(source) != ".ply":
        raise ValueError(f"--grid reads a .ply exported without its grid size; {source} is a {suffix_of(source)} "
                         "file, which says whether it is organised itself")
    check_jobs(args)
    if args.tile_points is not None:
        option_range("--tile-points", args.tile_points, MIN_TILE_POINTS, MAX_TILE_POINTS, "a whole number")
    check_threshold(args)
    check_model(args)


def run(args: argparse.Namespace) -> int:
    """Remove artefacts from one scan or cloud (or each file of a folder) and write the kept (and removed)
    points, and optionally every point with its keep probability."""
    if Path(args.input).is_dir():
        return _filter_folder(args)
    source = check_input_file(args.input, "input")
    _check_options(args, source)
    streamed = _is_lidar(source) or (args.method is None and args.model != "unet")  # LAS/LAZ: always
    stream = open_stream(source) if streamed else None
    if stream is None and args.method in TILED_METHODS:  # SOR and ROR go in tiles on a cloud larger than one tile
        with contextlib.suppress(CloudError):  # a damaged file is reported as the in-memory reading reports it
            stream = open_stream(source)
    if isinstance(stream, CloudStream) and stream.header is not None and (
            getattr(args, "grid", None) or phoxi_sensor(stream.header.count)):
        stream = None  # PhoXi's organised .ply: a grid, read whole
    if stream is not None:
        ptx = [str(target) for _, target in _named_targets(args) if is_ptx(target)]
        if ptx:
            raise ValueError(f"{ptx[0]}: PTX holds an organised grid and {source} is an unorganised cloud; write it "
                             "as .ply, .pcd, .xyz, .las or .laz")
        return _filter_stream(args, source, stream)
    return _filter_in_memory(args, source)


class ReadAhead:
    """A large PTX scan read in a second process, with its point lines for a PTX output
    (``io.ptx.read_ptx(..., lines=True)``), while this one starts the filter.

    Reading a whole sensor's PTX text is most of the time of filtering it, and it runs in Python on
    one core; a learned filter meanwhile starts TensorFlow and loads its network, also on one core.
    The second process reads while this one does the rest, on the other core, and sends the scan
    and then the lines through a pipe. Used only where forking is safe (before TensorFlow or Open3D
    have started their threads) and worth it (at least ``READ_AHEAD_POSITIONS`` grid positions); a
    damaged file is then reported after TensorFlow has started, with the same message.
    """

    def __init__(self, source: Path, grid, lines: bool, shape: tuple[int, int]):
        context = multiprocessing.get_context("fork")
        self._pipe, child = context.Pipe(duplex=False)
        self._process = context.Process(target=self._read, args=(source, grid, lines, child), daemon=True)
        self._process.start()
        child.close()
        self._lines = lines
        self.shape = shape

    @classmethod
    def open(cls, args: argparse.Namespace, source: Path) -> ReadAhead | None:
        """The read-ahead of ``source``, or None where it is read here (see the class)."""
        if (not is_ptx(source) or "fork" not in multiprocessing.get_all_start_methods()
                or multiprocessing.current_process().daemon  # a worker of a pool may not start processes
                or {"tensorflow", "open3d", "jax", "torch"} & set(sys.modules)):
            return None
        try:
            header = read_ptx_header(source)
        except (CloudError, OSError):
            return None  # read here, where the damage is reported
        if header.points < READ_AHEAD_POSITIONS:
            return None
        return cls(source, getattr(args, "grid", None), _ptx_output(args), (header.blocks, header.per_block))

    @staticmethod
    def _read(source: Path, grid, lines: bool, pipe) -> None:
        try:
            scan = read_filter_input(source, grid, lines)
            text = scan.pop("lines", None)
            _send(pipe, "scan", scan)
            del scan  # the parent has it
            _give_back_memory()
            if lines:
                chunks = [] if text is None else text.chunks
                if text is not None:
                    text.chunks = []
                _send(pipe, "lines", (text, len(chunks)))
                chunks.reverse()
                while chunks:  # one at a time, each freed once sent: neither side holds two copies of the lines
                    _send(pipe, "chunk", chunks.pop())
        except BaseException as error:  # noqa: BLE001 - every failure is raised again in the parent
            _send(pipe, "error", error)
        finally:
            pipe.close()

    def _receive(self):
        try:
            kind, value = _receive(self._pipe)
        except EOFError:
            raise CloudError(f"the process reading the scan ended without a word (exit status "
                             f"{self._process.exitcode}); too little memory?") from None
        if kind == "error":
            raise value
        return value

    def scan(self) -> dict:
        return self._receive()

    def lines(self) -> PointLines | None:
        """The scan's point lines for a PTX output (None without one), sent once the filter is done:
        meanwhile they stay in the second process, which has given back the rest of its memory."""
        if not self._lines:
            return None
        text, count = self._receive()
        chunks = [self._receive() for _ in range(count)]
        if text is not None:
            text.chunks = chunks
        return text

    def close(self) -> None:
        """End the second process: done, or no longer needed (an error here, Ctrl-C)."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._pipe.close()


def _release_large_arrays() -> None:
    """Have the C library (glibc) give every block of 4 MiB or more back to the system as soon as it is
    freed, instead of raising its threshold and keeping such blocks for reuse: the arrays of one tile
    then do not stay resident through the next (the neighbour filter's peak on 2 million points in tiles
    of 500 000, over its start: 0.49 GB -> 0.33 GB)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 22)  # M_MMAP_THRESHOLD, fixed


def _give_back_memory() -> None:
    """Return the C library's free memory to the system (glibc), where the system has the call."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _send(pipe, kind: str, value) -> None:
    """Send ``value`` (a dict, a tuple or anything that pickles) through ``pipe`` as ``_receive``
    takes it: its NumPy arrays and bytes (a dict's values, a tuple's items) go as raw bytes after a
    pickled outline, and are received into memory of their own, so neither side makes a pickled
    copy of a whole sensor's scan (0.2 GB)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, tuple) else ()
    raw = {key: item for key, item in items if isinstance(item, np.ndarray | bytes)}
    outline = {key: None if isinstance(item, bytes) else (item.dtype.str, item.shape) for key, item in raw.items()}
    if isinstance(value, dict):
        value = {key: item for key, item in value.items() if key not in raw}
    elif isinstance(value, tuple):
        value = tuple(None if i in raw else item for i, item in enumerate(value))
    pipe.send((kind, value, outline))
    for item in raw.values():
        pipe.send_bytes(item if isinstance(item, bytes) else np.ascontiguousarray(item).reshape(-1).view(np.uint8))


def _receive(pipe) -> tuple[str, object]:
    """(kind, value) of one message of ``_send``."""
    kind, value, outline = pipe.recv()
    raw = {}
    for key, spec in outline.items():
        if spec is None:
            raw[key] = pipe.recv_bytes()
        else:
            raw[key] = np.empty(spec[1], np.dtype(spec[0]))
            pipe.recv_bytes_into(raw[key].reshape(-1).view(np.uint8))
    if isinstance(value, dict):
        value.update(raw)
    elif isinstance(value, tuple):
        value = tuple(raw.get(i, item) for i, item in enumerate(value))
    return kind, value


def _ptx_output(args: argparse.Namespace) -> bool:
    """Whether the kept or the removed points go to a PTX file."""
    return any(path and is_ptx(path) for path in (args.output, args.removed))


def _filter_in_memory(args: argparse.Namespace, source: Path) -> int:
    """``filter`` on a scan or a cloud read whole (organised clouds, .pcd, the baselines)."""
    ahead = ReadAhead.open(args, source)
    if ahead is None:
        return _filter_scan(args, source, read_filter_input(source, getattr(args, "grid", None), _ptx_output(args)),
                            None)
    try:
        if needs_keras(args, True):  # a PTX scan is organised; TensorFlow starts while the other process reads
            runtime.setup(seed=None)
        scan_filter = make_filter(args, True)  # and the network is loaded
        if hasattr(scan_filter, "prepare"):
            scan_filter.prepare(ahead.shape)  # and compiled for the scan's size
        return _filter_scan(args, source, ahead.scan(), ahead, scan_filter)
    finally:
        ahead.close()


def _filter_scan(args: argparse.Namespace, source: Path, scan: dict, ahead: ReadAhead | None,
                 scan_filter=None) -> int:
    """``filter`` on a scan or cloud read whole (``_filter_in_memory``), with the filter made ahead or here."""
    check_filter_fits(args, source, scan)
    ptx = [str(target) for _, target in _named_targets(args) if is_ptx(target)]
    if ptx and not scan["organised"]:
        raise ValueError(f"{ptx[0]}: PTX holds an organised grid and {source} is an unorganised cloud; write it as "
                         ".ply, .pcd, .xyz, .las or .laz")
    if scan_filter is None:
        if needs_keras(args, scan["organised"]):
            runtime.setup(seed=None)  # keep TensorFlow's start-up logs off stderr
        scan_filter = make_filter(args, scan["organised"])
    valid = scan["valid"]
    n = int(valid.sum())
    progress = Progress(n, args.quiet, scan_filter.name)
    with warnings.catch_warnings():  # points far out (1e30) overflow their float32 features: they are removed
        warnings.simplefilter("ignore", RuntimeWarning)
        prob = scan_filter.keep_probability(scan)
    progress(n)
    progress.close()
    keep = (prob >= scan_filter.threshold) & valid
    removed = valid & ~keep
    Interrupts.check()
    lines = scan.pop("lines", None) if ahead is None else ahead.lines()
    if not keep.any() and not args.allow_empty:
        raise ValueError(f"{scan_filter.name} removed all {n} points of {source}, so nothing was written; check the "
                         "filter (or its --threshold), or pass --allow-empty to write the empty result")
    xyz = np.asarray(scan["xyz"])
    intensity = None if scan["intensity"] is None else np.asarray(scan["intensity"]).reshape(-1)
    flat = xyz.reshape(-1, 3)
    for path, mask in ((args.output, valid if args.classify else keep), (args.removed, removed)):
        rows = mask.reshape(-1)
        if path and _is_lidar(path):  # kept points with their intensity; removed ones as noise with --classify
            header = _lidar_header(None, flat[valid.reshape(-1)], intensity is not None)
            with CloudWriter(path, int(rows.sum()), xyz.dtype, header=header) as writer:
                noise = removed.reshape(-1)[rows] if args.classify and path == args.output else None
                writer.write(flat[rows], None if intensity is None else intensity[rows], noise=noise)
        elif path and Path(path).suffix.lower() == ".xyz":  # text: the points only
            with CloudWriter(path, int(mask.sum()), xyz.dtype) as writer:
                writer.write(xyz[mask])
        elif path:
            write_filtered([path], scan, [mask], lines)
    if args.scores:
        scalars = ["keep_probability"]
        header = _lidar_header(None, xyz[valid], intensity is not None, scalars) if _is_lidar(args.scores) else None
        with CloudWriter(args.scores, n, xyz.dtype, scalars=scalars, header=header) as writer:
            writer.write(xyz[valid], None if intensity is None else intensity[valid.reshape(-1)],
                         keep_probability=prob[valid])
    _report(scan_filter.name, int(keep.sum()), n, args)
    far = int(scan.get("far", 0))
    if not scan["organised"] and n + far < valid.size:
        print(f"dropped {valid.size - n - far} points with NaN or infinite coordinates (written to neither file)")
    if far:
        print(f"dropped {far} points with coordinates beyond ±{scan['far_limit']:.1e}, too far to measure distances "
              "(written to neither file)")
    return 0


def _lidar_header(stream, xyz: np.ndarray | None, intensity: bool, scalars=()):
    """The header of a LAS/LAZ output: the input's own for a LAS/LAZ ``stream``, else one whose scales
    and offsets fit the extent of the finite points of ``xyz`` (the points, or the two corners of their
    extent; ``io.lidar.lidar_header``)."""
    if isinstance(stream, LidarStream):
        return lidar_header(stream.header, scalars=scalars)
    xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
    finite = xyz[np.isfinite(xyz).all(axis=1)]
    if not len(finite):  # nothing to write (--allow-empty): any scales will do
        finite = np.zeros((1, 3))
    return lidar_header(None, (finite.min(axis=0), finite.max(axis=0)), intensity, scalars)


def _report(name: str, kept: int, n: int, args: argparse.Namespace) -> None:
    removed = n - kept
    share = f"{removed} ({removed / max(n, 1):.2%})"
    what = f"classified {share} as noise (ASPRS class {NOISE_CLASS})" if args.classify else f"removed {share}"
    print(f"{name}: kept {kept} of {n} points, {what}; wrote {', '.join(map(str, _targets(args)))}")


def _scan_stream(stream, keep_up_to: int = 0, spill: Path | None = None
                 ) -> tuple[int, int, int, list[dict] | None, np.ndarray]:
    """(points, finite points, points beyond ``COORDINATE_LIMIT``, the chunks, the (2, 3) extent of the
    finite points) of a streamed cloud, read once before TensorFlow starts, so that an unreadable or
    empty file is reported first. The chunks are kept when the cloud has at most ``keep_up_to`` points
    (one tile: reading it again would cost more than keeping it), else None; then, given ``spill``, the
    coordinates are also written there as they are read (``_spilled_chunks`` reads them again)."""
    total = finite = far = 0
    kept: list[dict] | None = []
    extent = np.array([[np.inf] * 3, [-np.inf] * 3])
    with contextlib.ExitStack() as files:
        spilled = None
        for chunk in stream.chunks():
            xyz, earlier = chunk["xyz"], kept
            total += len(xyz)
            usable = np.isfinite(xyz).all(axis=1)
            finite += int(usable.sum())
            if usable.any():
                extent = np.stack([np.minimum(extent[0], xyz[usable].min(axis=0)),
                                   np.maximum(extent[1], xyz[usable].max(axis=0))])
            if float(np.finfo(xyz.dtype).max) > COORDINATE_LIMIT:  # single precision never reaches it
                far += int((np.abs(xyz[usable]) > COORDINATE_LIMIT).any(axis=1).sum())
            if kept is not None:
                kept = kept + [chunk] if total <= keep_up_to else None
            if kept is None and spill is not None:
                if spilled is None:  # the chunks kept until now first
                    spilled = files.enter_context(open(spill, "wb"))
                for part in [*(earlier or []), chunk]:
                    np.ascontiguousarray(part["xyz"], np.float64).tofile(spilled)
    if total == 0:
        raise CloudError(f"{stream.path}: the cloud holds no points")
    if finite == 0:
        raise CloudError(f"{stream.path}: no point has finite coordinates (all NaN or infinite); there is nothing "
                         "to filter")
    if finite < MIN_POINTS:
        raise ValueError(f"{stream.path}: the cloud holds {finite} point{'s' * (finite != 1)} with finite "
                         f"coordinates; the point filter needs at least {MIN_POINTS} to compare each point with its "
                         "neighbours")
    return total, finite, far, kept, extent


def _spilled_chunks(path: Path, size: int = CHUNK_POINTS):
    """The chunks ``_scan_stream`` spilled to ``path``: dicts ``xyz`` ((n, 3) float64) and ``intensity``
    (None), as a text cloud's ``CloudStream.chunks`` yields them."""
    with open(path, "rb") as file:
        while len(xyz := np.fromfile(file, np.float64, count=3 * size)):
            yield {"xyz": xyz.reshape(-1, 3), "intensity": None}


def _tile_folder(args: argparse.Namespace) -> Path | None:
    """Where the tiles' files go: a temporary folder beside -o for a running cluster (whose workers must
    see it), else the system's temporary folder."""
    return Path(args.output).resolve().parent if getattr(args, "scheduler", None) else None


def _filter_stream(args: argparse.Namespace, source: Path, stream) -> int:
    """``filter`` with the point or neighbour filter on an unorganised .ply or .xyz, SOR or ROR on one larger
    than ``CLASSICAL_WHOLE_POINTS`` (or than ``--tile-points`` when given), or any filter on a LAS/LAZ file,
    in tiles and in chunks: memory stays bounded whatever the cloud's size. A .ply or .xyz cloud with points
    too far away to measure distances goes through the in-memory path, which drops them and says so; a LAS
    cloud is refused.

    A learned filter reads a cloud larger than a tile four times (once checked, then for its bounds, its
    tiles and the outputs): an .xyz cloud's text is parsed once, and its coordinates are read again from a
    binary copy in a temporary folder (24 bytes a point): the four parses of 10 million lines were 44% of the
    neighbour filter's time."""
    if args.method or not isinstance(stream, CloudStream) or stream.header is not None:
        return _filter_streamed(args, source, stream)
    with tempfile.TemporaryDirectory(dir=_tile_folder(args), prefix="pcfilter-read-") as folder:
        return _filter_streamed(args, source, stream, Path(folder) / "xyz.f8")


def _filter_streamed(args: argparse.Namespace, source: Path, stream, spill: Path | None = None) -> int:
    """``_filter_stream``; an .xyz cloud's coordinates spilled to ``spill`` after its first reading."""
    keras, lidar = needs_keras(args, organised=False), isinstance(stream, LidarStream)
    whole_points = 0
    if args.method:  # SOR or ROR, in tiles of filters.classical_tiles (which loads Open3D)
        classical = filters.classical_tiles
        tile_points = args.tile_points or classical.CLASSICAL_TILE_POINTS
        whole_points = args.tile_points or classical.CLASSICAL_WHOLE_POINTS  # one pass is faster while it fits
        tiled = functools.partial(classical.tiled_classical_keep, whole_points=whole_points)
    elif keras:  # the point filter, in tiles of filters.point_tiles (which loads Keras)
        tiled, tile_points = None, args.tile_points or TILE_POINTS
    else:  # the neighbour filter, in one pass up to NEIGHBOUR_WHOLE_POINTS (faster while it fits)
        tile_points = args.tile_points or NEIGHBOUR_TILE_POINTS
        whole_points = args.tile_points or NEIGHBOUR_WHOLE_POINTS
        tiled = functools.partial(tiled_neighbour_probability, whole_points=whole_points)
        _release_large_arrays()
    try:
        total, finite, far, kept_chunks, extent = _scan_stream(stream, 0 if args.method else
                                                               max(tile_points, whole_points), spill)
    except (CloudError, ValueError):
        if not args.method or lidar:
            raise
        return _filter_in_memory(args, source)  # SOR and ROR report a file they cannot stream as before
    if far and lidar:
        raise CloudError(f"{source}: {far} points lie beyond ±{COORDINATE_LIMIT:.1e}, too far from the origin to "
                         "measure distances; the header's scales or offsets are damaged: export the file again")
    if far or (args.method and not lidar and finite <= whole_points):  # SOR, ROR: a cloud that fits is read whole
        return _filter_in_memory(args, source)
    if keras:
        runtime.setup(seed=None)
    scan_filter = make_filter(args, organised=False)
    if keras and isinstance(scan_filter, filters.PointFilter):
        tiled = filters.point_tiles.tiled_keep_probability
    elif not isinstance(scan_filter, NeighbourFilter) and not args.method:
        return _filter_in_memory(args, source)
    chunks = stream.chunks if kept_chunks is None else lambda size=None: iter(kept_chunks)
    if kept_chunks is None and spill is not None:
        chunks = functools.partial(_spilled_chunks, spill)
    progress = Progress(total, args.quiet, scan_filter.name)
    with warnings.catch_warnings(), cluster_tasks(args, "tile") as cells:
        warnings.simplefilter("ignore", RuntimeWarning)
        prob = tiled(scan_filter, lambda: (chunk["xyz"] for chunk in chunks()), tile_points, folder=_tile_folder(args),
                     progress=progress, cells=cells or serial_cells)
    progress.close()
    Interrupts.check()
    keep = prob >= scan_filter.threshold
    kept = int(keep.sum())
    if not kept and not args.allow_empty:
        raise ValueError(f"{scan_filter.name} removed all {finite} points of {source}, so nothing was written; check "
                         "the filter (or its --threshold), or pass --allow-empty to write the empty result")
    _write_stream(args, stream, prob, keep, finite, chunks, extent, as_read_whole=bool(args.method) and not lidar)
    _report(scan_filter.name, kept, finite, args)
    if finite < total:
        print(f"dropped {total - finite} points with NaN or infinite coordinates (written to neither file)")
    return 0


def _stream_writer(path, count: int, stream, extent, scalars=(), as_read_whole: bool = False) -> CloudWriter:
    """A ``CloudWriter`` for an output of a streamed cloud; a LAS/LAZ output gets ``_lidar_header``.
    ``as_read_whole``: the header ``_filter_in_memory`` writes for kept and removed points (that of
    ``io.organised.write_points``)."""
    header = None
    if _is_lidar(path):
        intensity = isinstance(stream, LidarStream) or (stream.header is not None
                                                        and "intensity" in stream.header.record.names)
        header = _lidar_header(stream, extent, intensity, scalars)
    notes = {".ply": None, ".pcd": "pcfilter organised scan"} if as_read_whole and not scalars else {}
    return CloudWriter(path, count, stream.precision, scalars, header=header,
                       comment=notes.get(Path(path).suffix.lower(), "pcfilter filtered cloud"))


def _write_stream(args: argparse.Namespace, stream, prob, keep, finite: int, chunks, extent,
                  as_read_whole: bool = False) -> None:
    """Write the kept (with ``--classify``, every finite point, the removed ones as noise), removed and
    scored points of a streamed cloud, reading it once more (``chunks()``). A LAS/LAZ input's records
    go to LAS/LAZ outputs as they are; scores in a LAS file cover the finite points only (LAS has no NaN).
    ``as_read_whole``: the same files, byte for byte, as ``_filter_in_memory`` writes (its headers,
    scores of the finite points only)."""
    kept = int(keep.sum())
    selects = (("kept" if not args.classify else "all", args.output, finite if args.classify else kept),
               ("removed", args.removed, finite - kept))
    with contextlib.ExitStack() as files:
        outputs = [(files.enter_context(_stream_writer(path, count, stream, extent, as_read_whole=as_read_whole)),
                    select, path == args.output) for select, path, count in selects if path]
        scores = None
        if args.scores:
            finite_scores = _is_lidar(args.scores) or as_read_whole
            scores = files.enter_context(_stream_writer(args.scores, finite if finite_scores else len(prob), stream,
                                                        extent, ["keep_probability"]))
        start = 0
        for chunk in chunks():
            xyz = chunk["xyz"]
            part, mine = prob[start:start + len(xyz)], keep[start:start + len(xyz)]
            finite_rows = np.isfinite(xyz).all(axis=1)
            for writer, select, main in outputs:
                rows = {"kept": mine, "all": finite_rows, "removed": finite_rows & ~mine}[select]
                noise = (~mine)[rows] if main and args.classify else None
                _write_rows(writer, chunk, rows, noise=noise)
            if scores is not None:
                rows = finite_rows if finite_scores else np.ones(len(xyz), bool)
                _write_rows(scores, chunk, rows, keep_probability=part[rows])
            start += len(xyz)
            Interrupts.check()


def _write_rows(writer: CloudWriter, chunk: dict, rows: np.ndarray, noise=None, **scalars) -> None:
    """Write the ``rows`` of a chunk: their LAS records too when the input and the output are LAS/LAZ. A
    write that fails without naming a file (a full disk) names this writer's: several are open at once."""
    intensity, records = chunk["intensity"], chunk.get("records")
    records = records[rows] if records is not None and writer.header is not None else None
    with naming_errors(writer.path):
        writer.write(chunk["xyz"][rows], None if intensity is None else intensity[rows], records=records,
                     noise=noise, **scalars)


def _folder_files(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """(input, output) of each cloud or scan in the folder ``args.input`` (LAS/LAZ files too); outputs go
    to the folder ``-o`` in the input's own format where it can be written, else .ply."""
    folder, out = Path(args.input), Path(args.output)
    if args.removed or args.scores:
        raise ValueError("--removed and --scores name one file; with a folder of inputs give only -o FOLDER")
    suffixes = (*INPUT_SUFFIXES, *LIDAR_SUFFIXES)
    inputs = folder_inputs(folder, out, suffixes)
    if args.classify and not all(_is_lidar(p) for p in inputs):
        raise ValueError(f"--classify marks noise in LAS files, and {folder} holds files of other formats, which "
                         "are written in their own format; filter the .las / .laz files in a folder of their own")
    check_jobs(args)
    check_threshold(args)
    check_model(args)
    check_output_folder(out, "-o")
    suffix = {s: s if s in OUTPUT_SUFFIXES else ".ply" for s in suffixes}
    names = [stem_of(p) + suffix[suffix_of(p)] for p in inputs]
    # a.npz and a.ply would both make a.ply: such inputs keep their whole names (a.npz.ply)
    files = [(p, out / (name if names.count(name) == 1 else p.name + suffix[suffix_of(p)]))
             for p, name in zip(inputs, names, strict=True)]
    check_new_folder_outputs(out, [target for _, target in files], args.overwrite)
    return files


def _filter_folder(args: argparse.Namespace) -> int:
    """``filter`` on every file of a folder, each in its own process, or each a task on a cluster
    (``--jobs`` above 1, ``--scheduler``); a file that fails is reported and skipped. Exit status 1 when
    any failed."""
    files = _folder_files(args)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    failed = 0
    runs = cluster_module().run_on_cluster(args, files) if on_cluster(args) else run_in_workers(args, files)
    for source, line, reason in runs:
        failed += reason is not None
        print(f"{source.name}: {line if reason is None else 'skipped: ' + reason}")
    print(f"{len(files) - failed} of {len(files)} files filtered into {args.output}"
          + (f"; {failed} skipped (see above)" if failed else ""))
    return 1 if failed else 0
