"""A cloud of any size on disk, cut into the cells of a grid, for filters that work tile by tile.

``TileGrid`` cuts the bounding box over its two widest axes into square cells of about
``tile_points`` points; ``TileStore`` keeps each cell's finite points (with their index among the
cloud's finite points) in a file of its own, sorted into ``BLOCKS`` x ``BLOCKS`` blocks, and loads a
cell with the points of its neighbours within a margin or inside a few boxes (its halo), reading from
each neighbouring file only the blocks the halo meets. How wide the halo must be is the filter's
business (``filters.point_tiles`` for the point filter, ``filters.neighbour_tiles`` for the neighbour
filter, ``filters.classical_tiles`` for SOR and ROR); ``tiled_probability`` is what the learned
filters share: the passes over the chunks (``cloud_bounds``), the store (``store_cloud``), the
cloud's exact median (``cloud_centre``), and the cells filtered. ``cloud_spacing`` measures the whole
cloud's point spacing cell by cell. Memory holds one tile with its halo and a few numbers per point;
the points stay on disk.

Every pass over the cells goes through a ``CellRunner``: ``serial_cells`` runs them one after the other
in this process; ``cli.cluster`` runs each cell as a task on a Dask cluster. A cell's task is a
picklable function of the cell alone, which reads its points (and halo) from the store's files, so
the store's folder must be one that every worker sees; the runner hands the results back in the order
of the cells, whatever order the tasks finish in, so the outputs are the same bytes either way.
"""

from __future__ import annotations

import functools
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcfilter_lib.geometry.neighbour_search import nearest_neighbours
from pcfilter_lib.geometry.point_features import MIN_POINTS

BLOCKS = 16  # each cell's file is sorted into BLOCKS x BLOCKS blocks, so a halo reads only the blocks it meets
TILE_POINTS = 250_000  # the point filter's tiles: smaller ones redo more halo work (100 000: much slower on 1M)
SELECT_LIMIT = 1 << 21  # values of one search range sorted at once (select_ranks: three ranges may be at once)
_RECORD = np.dtype([("xyz", "<f8", (3,)), ("index", "<i8")])  # one point in a cell's file

# (task, cells, done) -> task(cell) of each cell, in the order of ``cells``; done(cell) as each task finishes
CellRunner = Callable[[Callable[[int], object], Sequence[int], Callable[[int], None] | None], Iterator]
# (store, centre, low, high, runner) -> a picklable function from a cell to (indices among the finite points, P(keep))
CellFilter = Callable[[int], tuple[np.ndarray, np.ndarray]]
CellFilters = Callable[["TileStore", np.ndarray, np.ndarray, np.ndarray, CellRunner], CellFilter]


def serial_cells(task: Callable[[int], object], cells: Sequence[int],
                 done: Callable[[int], None] | None = None) -> Iterator:
    """The ``CellRunner`` of one process: ``task(cell)`` of each cell, one after the other.

    Args:
        task: a function of one cell.
        cells: the cells, in the order their results are wanted.
        done: called with each cell once its task has finished.

    Yields:
        ``task(cell)`` of each cell of ``cells``, in that order.
    """
    for cell in cells:
        result = task(cell)
        if done:
            done(cell)
        yield result


@dataclass
class TileGrid:
    """Square cells over two axes of a cloud's bounding box (the third is never cut).

    Attributes:
        low, high: (3,) the bounding box of the cloud's finite points.
        axes: the two axes cut, widest first.
        size: the side of a cell.
        shape: cells along each of the two axes.
    """

    low: np.ndarray
    high: np.ndarray
    axes: tuple[int, int]
    size: float
    shape: tuple[int, int]

    @classmethod
    def cover(cls, low: np.ndarray, high: np.ndarray, count: int, tile_points: int) -> TileGrid:
        """The grid of about ``count / tile_points`` cells over a box holding ``count`` points."""
        extent = np.maximum(high - low, 0)
        axes = tuple(int(a) for a in np.argsort(-extent, kind="stable")[:2])
        share = min(tile_points / max(count, 1), 1.0)  # of the cloud in one cell
        # Square cells over the area, or slices along the widest axis of a cloud that is a line.
        size = max(math.sqrt(extent[axes[0]] * extent[axes[1]] * share), extent[axes[0]] * share)
        if not size > 0:  # every point in one place: one cell
            return cls(np.asarray(low, float), np.asarray(high, float), axes, 1.0, (1, 1))
        shape = tuple(max(1, math.ceil(extent[a] / size)) for a in axes)
        return cls(np.asarray(low, float), np.asarray(high, float), axes, size, shape)

    def cells(self, xyz: np.ndarray) -> np.ndarray:
        """(N,) int64 cell of each point (row-major over the two axes)."""
        ij = [np.clip(((xyz[:, a] - self.low[a]) // self.size).astype(np.int64), 0, n - 1)
              for a, n in zip(self.axes, self.shape, strict=True)]
        return ij[0] * self.shape[1] + ij[1]

    def box(self, cell: int, margin: float) -> tuple[np.ndarray, np.ndarray]:
        """The (2,) low and high corners of a cell grown by ``margin`` on each side."""
        ij = np.array(divmod(cell, self.shape[1]), float)
        low = self.low[list(self.axes)] + ij * self.size - margin
        return low, low + self.size + 2 * margin

    def meeting(self, low: np.ndarray, high: np.ndarray) -> list[int]:
        """The cells that meet the box [low, high] (corners on the two axes)."""
        first = np.clip(((low - self.low[list(self.axes)]) // self.size).astype(int), 0, np.array(self.shape) - 1)
        last = np.clip(((high - self.low[list(self.axes)]) // self.size).astype(int), 0, np.array(self.shape) - 1)
        return [a * self.shape[1] + b for a in range(first[0], last[0] + 1) for b in range(first[1], last[1] + 1)]

    def room(self, xyz: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """(N,) distance from each point to the nearest side of the box [low, high] beyond which the
        cloud has points (infinite where the box holds the whole cloud; negative outside the box)."""
        room = np.full(len(xyz), np.inf)
        for k, a in enumerate(self.axes):
            if low[k] > self.low[a]:
                room = np.minimum(room, xyz[:, a] - low[k])
            if high[k] < self.high[a]:
                room = np.minimum(room, high[k] - xyz[:, a])
        return room


class TileStore:
    """A cloud's finite points, with their index among the finite ones, in one file per cell of a grid."""

    def __init__(self, folder: Path, grid: TileGrid):
        self.folder, self.grid = Path(folder), grid
        self.counts = np.zeros(grid.shape[0] * grid.shape[1], np.int64)
        self.blocks: dict[int, np.ndarray] = {}  # per cell, where each block's rows start in its file (``finish``)

    def add(self, xyz: np.ndarray, index: np.ndarray) -> None:
        """Append points (float64 (n, 3)) and their indices to their cells' files."""
        cells = self.grid.cells(xyz)
        order = np.argsort(cells, kind="stable")
        rows = np.empty(len(xyz), _RECORD)
        rows["xyz"], rows["index"] = xyz[order], index[order]
        found, starts = np.unique(cells[order], return_index=True)
        for cell, start, end in zip(found, starts, [*starts[1:], len(rows)], strict=True):
            with open(self.folder / f"{cell}.bin", "ab") as file:
                rows[start:end].tofile(file)
            self.counts[cell] += end - start

    def finish(self) -> None:
        """Sort each cell's file by the ``BLOCKS`` x ``BLOCKS`` blocks the cell is cut into, so that ``load``
        reads from a neighbouring cell only the blocks its halo meets, not the whole file."""
        for cell in np.flatnonzero(self.counts):
            path = self.folder / f"{cell}.bin"
            rows = np.fromfile(path, _RECORD)
            block = self._block_of(int(cell), rows["xyz"][:, list(self.grid.axes)])
            order = np.argsort(block, kind="stable")
            rows[order].tofile(path)
            self.blocks[int(cell)] = np.searchsorted(block[order], np.arange(BLOCKS * BLOCKS + 1))

    def _block_of(self, cell: int, planar: np.ndarray) -> np.ndarray:
        """(n,) the block of a cell that each of n points falls in ((n, 2) coordinates on the grid's axes),
        clipped to the cell: it never decreases with a coordinate, so a point inside a box lies in a block
        between those of the box's corners."""
        origin, _ = self.grid.box(cell, 0.0)
        side = self.grid.size / BLOCKS
        ij = [np.clip(((planar[:, k] - origin[k]) // side).astype(np.int64), 0, BLOCKS - 1) for k in range(2)]
        return ij[0] * BLOCKS + ij[1]

    def _ranges(self, cell: int, boxes: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[tuple[int, int]]:
        """The runs of rows of a cell's file that hold its points inside any of ``boxes`` (and a few more)."""
        starts = self.blocks.get(cell)
        if starts is None:  # not sorted into blocks: the whole file
            return [(0, int(self.counts[cell]))]
        wanted = np.zeros(BLOCKS * BLOCKS + 1, bool)
        for low, high in boxes:
            first, last = self._block_of(cell, np.stack([low, high]))
            a0, c0 = divmod(int(first), BLOCKS)
            a1, c1 = divmod(int(last), BLOCKS)
            for a in range(a0, a1 + 1):
                wanted[a * BLOCKS + c0:a * BLOCKS + c1 + 1] = True
        # consecutive wanted blocks are one run of rows
        edges = np.flatnonzero(np.diff(np.r_[False, wanted]))
        return [(int(starts[a]), int(starts[b])) for a, b in zip(edges[::2], edges[1::2], strict=True)
                if starts[b] > starts[a]]

    def load(self, cell: int, margin: float, extra: Sequence[tuple[np.ndarray, np.ndarray]] = ()
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The cell's points and those of other cells within ``margin`` of it or inside one of the
        ``extra`` boxes ((2,) low and high corners on the grid's axes): (xyz (n, 3), index (n,), core (n,)
        bool, room (n,): how far each point is inside the loaded region, see ``TileGrid.room``)."""
        rows, core, room = self._load(cell, margin, extra)
        return rows["xyz"], rows["index"], core, room

    def attach(self, cell: int, name: str, records: np.ndarray) -> None:
        """Keep ``records``, one per point of ``cell`` in the cloud's order (as ``load`` gives the cell's
        own points), in a file beside the cell's, for ``load_attached``."""
        if len(records) != self.counts[cell]:
            raise ValueError(f"cell {cell} holds {self.counts[cell]} points; got {len(records)} records to attach")
        order = np.argsort(np.fromfile(self.folder / f"{cell}.bin", _RECORD)["index"], kind="stable")
        stored = np.empty_like(records)
        stored[order] = records  # in the order of the cell's file
        stored.tofile(self.folder / f"{cell}.{name}")

    def load_attached(self, cell: int, margin: float, extra: Sequence[tuple[np.ndarray, np.ndarray]],
                      name: str, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The points ``load`` loads, and the records ``attach`` kept under ``name`` for them, row for row:
        (xyz, index, core, records); no room."""
        rows, core, records = self._load(cell, margin, extra, (name, np.dtype(dtype)))
        return rows["xyz"], rows["index"], core, records

    def _load(self, cell: int, margin: float, extra: Sequence[tuple[np.ndarray, np.ndarray]],
              attached: tuple[str, np.dtype] | None = None) -> tuple:
        """(rows of ``_RECORD``, core, room) of ``load``, or (rows, core, attached records)."""
        boxes = [self.grid.box(cell, margin), *extra]
        meets = [set(self.grid.meeting(*box)) for box in boxes]
        parts, core, records = [], [], []
        for other in sorted(set().union(*meets)):
            if not self.counts[other]:
                continue
            here = [box for box, cells in zip(boxes, meets, strict=True) if other in cells]
            runs = [(0, int(self.counts[other]))] if other == cell else self._ranges(other, here)
            rows = _read_runs(self.folder / f"{other}.bin", _RECORD, runs)
            inside = slice(None)
            if other != cell:
                inside = np.zeros(len(rows), bool)
                planar = rows["xyz"][:, list(self.grid.axes)]
                for low, high in here:
                    inside |= (planar >= low).all(axis=1) & (planar <= high).all(axis=1)
                rows = rows[inside]
            if attached is not None:
                name, dtype = attached
                records.append(_read_runs(self.folder / f"{other}.{name}", dtype, runs)[inside])
            parts.append(rows)
            core.append(np.full(len(rows), other == cell))
        rows, core = np.concatenate(parts), np.concatenate(core)
        del parts  # each array is held twice at most, never three times
        order = np.argsort(rows["index"], kind="stable")  # the cloud's order, as in the in-memory filter
        rows, core = rows[order], core[order]
        if attached is not None:
            records = np.concatenate(records)
            return rows, core, records[order]
        # Inside the union of boxes, a point is as far from everything not loaded as it is from the sides
        # of the box it is deepest in.
        room = self.grid.room(rows["xyz"], *boxes[0])
        for low, high in boxes[1:]:
            np.maximum(room, self.grid.room(rows["xyz"], low, high), out=room)
        return rows, core, room

    def coordinates(self) -> Iterable[np.ndarray]:
        """The (n, 3) coordinates of every stored point, cell after cell."""
        for cell in np.flatnonzero(self.counts):
            yield np.fromfile(self.folder / f"{cell}.bin", _RECORD)["xyz"]


def _read_runs(path: Path, dtype: np.dtype, runs: Sequence[tuple[int, int]]) -> np.ndarray:
    """The rows [start, end) of each run of a file of ``dtype`` records, one after the other."""
    dtype = np.dtype(dtype)
    if len(runs) == 1 and runs[0][0] == 0:
        return np.fromfile(path, dtype, count=runs[0][1])
    parts = []
    with open(path, "rb") as file:
        for start, end in runs:
            file.seek(start * dtype.itemsize)
            parts.append(np.fromfile(file, dtype, count=end - start))
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def select_ranks(blocks: Callable[[], Iterable[np.ndarray]],
                 wanted: Sequence[tuple[int, int, float, float]]) -> list[float]:
    """The value of each ``(column, rank, low, high)`` of ``wanted``: the value of rank ``rank`` (0 first)
    among the values in [low, high] of one column of the blocks ``blocks()`` yields ((n, c) arrays, or
    (n,) for one column), found exactly in a few passes over them all.

    Each pass counts the values of every search in 1024 bins and narrows its range to the bin that holds
    its rank, until the range holds at most ``SELECT_LIMIT`` values, which are sorted. The searches share
    the passes, and those over one column and range (the two middle ranks of a median, nearly always)
    share the counting too: the three coordinates' medians take the passes of one.
    """
    searches = [(int(column), int(rank), float(low), float(high)) for column, rank, low, high in wanted]
    values: list[float | None] = [None] * len(searches)
    few: set[tuple[int, float, float]] = set()  # ranges whose values are sorted in the next pass
    while True:
        for i, (_, _, low, high) in enumerate(searches):
            if values[i] is None and not low < high:
                values[i] = low
        searching = [i for i, value in enumerate(values) if value is None]
        if not searching:
            return values
        ranges = {(searches[i][0], *searches[i][2:]) for i in searching}
        edges = {key: np.linspace(key[1], key[2], 1025) for key in ranges - few}
        counts = {key: np.zeros(1024, np.int64) for key in edges}
        inside: dict[tuple, list[np.ndarray]] = {key: [] for key in ranges & few}
        for block in blocks():
            block = np.asarray(block)
            block = block[:, None] if block.ndim == 1 else block
            for column, low, high in ranges:
                v = block[:, column]
                v = v[(v >= low) & (v <= high)]
                if (column, low, high) in inside:
                    inside[column, low, high].append(v)
                else:
                    bins = np.clip(np.searchsorted(edges[column, low, high], v, "right") - 1, 0, 1023)
                    counts[column, low, high] += np.bincount(bins, minlength=1024)
        for i in searching:
            column, rank, low, high = searches[i]
            key = (column, low, high)
            if key in inside:
                values[i] = float(np.partition(np.concatenate(inside[key]), rank)[rank])
            elif counts[key].sum() <= SELECT_LIMIT:
                few.add(key)
            else:
                b, e = int(np.searchsorted(np.cumsum(counts[key]), rank, "right")), edges[key]
                searches[i] = (column, rank - int(counts[key][:b].sum()), float(e[b]),
                               high if b == 1023 else float(np.nextafter(e[b + 1], -np.inf)))


def cloud_centre(store: TileStore, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(3,) the median of the stored points, bit for bit ``np.median(points, axis=0)``."""
    n = int(store.counts.sum())
    ranks = sorted({(n - 1) // 2, n // 2})
    middle = select_ranks(store.coordinates, [(axis, rank, low[axis], high[axis])
                                              for axis in range(3) for rank in ranks])
    # as np.median takes the middle two
    return np.array([np.mean(np.array(middle[i:i + len(ranks)], np.float64))
                     for i in range(0, len(middle), len(ranks))])


def tiled_probability(one_pass: Callable[[np.ndarray], np.ndarray], cell_filters: CellFilters,
                      chunks: Callable[[], Iterable[np.ndarray]], tile_points: int,
                      folder: str | Path | None = None, progress: Callable[[int], None] | None = None,
                      cells: CellRunner = serial_cells, whole_points: int | None = None) -> np.ndarray:
    """P(keep) of every point of a cloud read in chunks, cell by cell.

    Args:
        one_pass: the filter on a whole (N, 3) cloud (NaN rows allowed), for a cloud of at most one tile.
        cell_filters: given the store, the cloud's median, its bounding box and ``cells``, the function
            that filters one cell (picklable, for a cluster).
        chunks: called (up to three times) to read the cloud again: an iterable of (n, 3) arrays of
            coordinates, in the cloud's order; NaN or infinite rows are allowed.
        tile_points: points per tile.
        folder: where the cells' files go (a temporary folder, removed at the end, by default).
        progress: called with the number of points each finished tile held.
        cells: how the cells' tasks run (``serial_cells``: one after the other, here).
        whole_points: a cloud of at most this many finite points goes to ``one_pass`` (default
            ``tile_points``).

    Returns:
        (N,) float32 P(keep), 0 for points with NaN or infinite coordinates.
    """
    count, finite_count, low, high = cloud_bounds(chunks)
    if finite_count < MIN_POINTS or finite_count <= (tile_points if whole_points is None else whole_points):
        points = np.concatenate([np.asarray(c).reshape(-1, 3) for c in chunks()]) if count else np.zeros((0, 3))
        prob = one_pass(points)
        if progress:
            progress(count)
        return prob
    with tempfile.TemporaryDirectory(dir=folder, prefix="pcfilter-tiles-") as tmp:
        store, finite = store_cloud(Path(tmp), chunks, TileGrid.cover(low, high, finite_count, tile_points))
        filter_cell = cell_filters(store, cloud_centre(store, low, high), low, high, cells)
        finite_prob = np.zeros(finite_count, np.float32)
        done = (lambda cell: progress(int(store.counts[cell]))) if progress else None
        for index, values in cells(filter_cell, [int(c) for c in np.flatnonzero(store.counts)], done):
            finite_prob[index] = values
        if progress and count > finite_count:
            progress(count - finite_count)
        prob = np.zeros(count, np.float32)
        prob[finite] = finite_prob
        return prob


def cloud_bounds(chunks: Callable[[], Iterable[np.ndarray]]) -> tuple[int, int, np.ndarray, np.ndarray]:
    """(points, finite points, (3,) low and high corners of the finite points' bounding box) of a cloud
    read once in chunks (see ``tiled_probability``)."""
    count, finite_count, low, high = 0, 0, np.full(3, np.inf), np.full(3, -np.inf)
    for chunk in chunks():
        xyz = np.asarray(chunk, np.float64).reshape(-1, 3)
        finite = np.isfinite(xyz).all(axis=1)
        if finite.any():
            low, high = np.minimum(low, xyz[finite].min(0)), np.maximum(high, xyz[finite].max(0))
        count, finite_count = count + len(xyz), finite_count + int(finite.sum())
    return count, finite_count, low, high


def store_cloud(folder: Path, chunks: Callable[[], Iterable[np.ndarray]],
                grid: TileGrid) -> tuple[TileStore, np.ndarray]:
    """A ``TileStore`` in ``folder`` of the cloud's finite points, numbered among the finite ones as in
    memory, and the (N,) bool rows of the cloud that are finite."""
    store, start, finite_rows = TileStore(folder, grid), 0, []
    for chunk in chunks():
        xyz = np.asarray(chunk, np.float64).reshape(-1, 3)
        finite = np.isfinite(xyz).all(axis=1)
        store.add(xyz[finite], start + np.arange(int(finite.sum())))
        start += int(finite.sum())
        finite_rows.append(finite)
    store.finish()
    return store, np.concatenate(finite_rows) if finite_rows else np.zeros(0, bool)


def nearest_in_cells(store: TileStore, nearest: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                     cells: CellRunner = serial_cells) -> np.ndarray:
    """Every stored point's distance to its nearest other point, cell by cell (cells in order, each
    cell's points in the cloud's order), each cell loaded with a halo grown until every one of its
    points found its nearest inside the loaded region.

    Args:
        store: the cloud's cells.
        nearest: (loaded xyz (n, 3) with n >= 2) -> (the values kept, (n,); the same distances in the
            cloud's units, checked against the halo); picklable, for a cluster.
        cells: how the cells' tasks run.
    """
    task = functools.partial(_nearest_in_cell, store, nearest)
    found_all = list(cells(task, [int(c) for c in np.flatnonzero(store.counts)], None))
    return np.concatenate(found_all) if found_all else np.zeros(0)


def _nearest_in_cell(store: TileStore, nearest: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                     cell: int) -> np.ndarray:
    """``nearest``'s values of one cell's points (``nearest_in_cells``)."""
    margin = store.grid.size / 8
    while True:
        xyz, _, core, room = store.load(cell, margin)
        if len(xyz) < 2 and not np.isinf(room).all():  # a lone point: look farther
            margin *= 2
            continue
        if len(xyz) > 1:
            values, lengths = nearest(xyz)
        else:
            values = lengths = np.full(len(xyz), np.inf)
        if (lengths[core] < room[core]).all() or np.isinf(room).all():
            break
        margin *= 2
    return values[core]


def cloud_spacing(store: TileStore, centre: np.ndarray, cells: CellRunner = serial_cells) -> float:
    """The whole cloud's spacing, bit for bit ``geometry.point_features.point_spacing``: the median of
    the positive nearest distances of all its points, measured about ``centre`` (the cloud's median)."""
    nearest = nearest_in_cells(store, functools.partial(_centred_nearest, centre), cells)
    positive = nearest[nearest > 0]
    if not positive.size:
        raise ValueError("every point of the cloud coincides with another; there is no spacing to measure")
    return float(np.median(positive))


def _centred_nearest(centre: np.ndarray, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each point's distance to its nearest other point, measured about ``centre``, as the in-memory
    filter centres the cloud, so that the distances are its own (``cloud_spacing``)."""
    found = nearest_neighbours(xyz - centre, 2)[1][:, 1]
    return found, found
