"""The neighbour filter: one k-nearest-neighbour search per point, the statistics of what it sees, and
small dense networks giving P(keep), all in NumPy.

1. **Search.** Each point's k = 12 nearest neighbours, in one float32 KD-tree query.
2. **Features.** The 48 statistics of ``geometry.neighbour_statistics.FEATURES``: distances, shares
   within 2 and 4 spacings, distance to the neighbours' centroid and plane, the shape of their spread,
   and the mean of these over 1, 2 and 3 hops of neighbours; every length in the cloud's own point
   spacing, so that units and placement change nothing.
3. **Networks, in stages.** ``DenseNetwork``: the inputs standardised, two dense layers with ReLU and
   one sigmoid unit. The first stage reads the features; each later stage reads them and the previous
   stage's P(keep) with its mean over 1 to ``PROBABILITY_HOPS`` hops of neighbours
   (``stage_columns``), so that a point's decision can lean on what the first stage thought of the
   points around it: a whole sheet of ghost points, or a lone stray one. The last stage's output is
   the filter's P(keep). The networks are trained in Keras by ``recipes.neighbour_filter`` and run
   here as plain matrix products, so the filter needs neither TensorFlow nor Keras.
4. **Far points.** A point whose k-th nearest neighbour lies more than ``FAR`` spacings away (the
   cloud's spacing: the median nearest distance, which a handful of far points cannot move) is
   removed whatever the networks say (``far_points``). Beyond ``neighbour_statistics.CAP`` spacings
   every length a feature holds is at its cap, and a few points scattered kilometres from a scan
   (garbage records of a damaged file, say) have each other as neighbours: to features measured in
   spacings they look like a sparse sheet, and the networks, which never met such points in training,
   kept most of them. A surface whose 12th nearest point lies that far is sampled thousands of times
   more sparsely than the cloud's median; SOR removes such points too.

The networks and settings travel in one ``.npz`` file (``SHIPPED_NEIGHBOUR_MODEL`` and its model card
beside it), read by ``neighbour_filter`` and written by ``NeighbourFilter.save``:

* ``format``: ``FORMAT``; ``features``: the feature names, in order (``FEATURES``); ``neighbours``: k;
  ``probability_hops``: the hops of a stage's P(keep) the next stage reads; ``threshold``: the
  decision threshold; ``stages``: S;
* for each stage s = 0 .. S - 1: ``stage{s}_mean``, ``stage{s}_scale``: (F,) the standardisation,
  (x - mean) / scale; ``stage{s}_kernel_0``, ``stage{s}_bias_0``, ... the dense layers, (F_in, F_out)
  and (F_out,), ReLU after every layer but the last, a sigmoid after the last (F_out = 1).
"""

from __future__ import annotations

import os
import time
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pcfilter_lib.filters.base import CloudFilter, check_threshold
from pcfilter_lib.geometry.neighbour_statistics import (
    CAP,
    CHUNK,
    FEATURES,
    HOPS,
    NEIGHBOURS,
    THREADS,
    NeighbourStatistics,
    neighbour_statistics,
)
from pcfilter_lib.geometry.point_features import finite_points
from pcfilter_lib.io.files import atomic_write_with
from pcfilter_lib.io.model_cards import WEIGHTS, check_model_file

SHIPPED_NEIGHBOUR_MODEL = WEIGHTS / "neighbour_filter.npz"
FORMAT = "pcfilter neighbour filter 2"
ROWS = 2048  # rows per matrix product of the networks (see ``DenseNetwork.__call__``)
PROBABILITY_HOPS = 4  # a later stage reads the previous stage's P(keep) and its means over 1 to 4 hops
FAR = CAP  # in spacings: a point whose k-th nearest neighbour lies farther is removed (``far_points``)


def stage_inputs(stage: int, probability_hops: int = PROBABILITY_HOPS) -> tuple[str, ...]:
    """The names of the inputs of network ``stage`` (0 is the first)."""
    if stage == 0:
        return FEATURES
    return FEATURES + tuple(f"around{hop if hop > 1 else ''}_keep" if hop else "keep"
                            for hop in range(probability_hops + 1))


def stage_columns(statistics: NeighbourStatistics, networks: Sequence[DenseNetwork],
                  probability_hops: int = PROBABILITY_HOPS) -> list[np.ndarray]:
    """The inputs of the stage that follows ``networks``, as groups of columns (``neighbour_statistics.gather``
    puts rows of them side by side).

    Args:
        statistics: the cloud's ``NeighbourStatistics``.
        networks: the stages before (none for the first stage's inputs).
        probability_hops: the hops of a stage's P(keep) the next one reads.

    Returns:
        (M, c) float32 arrays whose columns, side by side, are ``stage_inputs(len(networks))``.
    """
    features = statistics.features()
    columns = features
    for network in networks:
        prob = statistics.map(lambda rows, network=network, columns=columns: network([c[rows] for c in columns]))
        columns = features + [np.concatenate(statistics.hop_means(prob[:, None], probability_hops), axis=1)]
    return columns


def far_points(statistics: NeighbourStatistics, far: float = FAR) -> np.ndarray:
    """(M,) bool: the points whose k-th nearest other point lies more than ``far`` spacings away, which
    the filter removes whatever its networks say (point 4 of the module's description).

    The whole cloud's spacing and each point's own k-th distance are what ``filters.neighbour_tiles``
    keeps between its passes, bit for bit as one pass finds them, so tiles decide these points as one
    pass does.
    """
    return statistics.farthest > far * statistics.spacing


@dataclass
class DenseNetwork:
    """A per-point network of dense layers, in NumPy: standardise, ReLU layers, one sigmoid unit.

    The standardisation is folded into the first layer's weights once, so a call costs only the
    matrix products (on a million points, the subtraction and division alone took as long as the
    first two layers).

    Attributes:
        mean: (F,) float32 subtracted from each feature.
        scale: (F,) float32 each feature is divided by, after the mean is subtracted (positive).
        kernels: the (F_in, F_out) float32 weights of each layer; the last has F_out = 1.
        biases: the (F_out,) float32 biases of each layer.

    Raises:
        ValueError: the shapes do not chain from F features to one output.
    """

    mean: np.ndarray
    scale: np.ndarray
    kernels: list[np.ndarray] = field(default_factory=list)
    biases: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self):
        self.mean, self.scale = (np.asarray(a, np.float32).reshape(-1) for a in (self.mean, self.scale))
        self.kernels = [np.asarray(w, np.float32) for w in self.kernels]
        self.biases = [np.asarray(b, np.float32).reshape(-1) for b in self.biases]
        width = len(self.mean)
        if len(self.scale) != width or not (self.scale > 0).all():
            raise ValueError(f"the standardisation needs {width} positive scales, got {self.scale.shape}")
        if not self.kernels or len(self.kernels) != len(self.biases):
            raise ValueError(f"a dense network needs one bias per kernel and at least one layer, got "
                             f"{len(self.kernels)} kernels and {len(self.biases)} biases")
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases, strict=True)):
            if kernel.ndim != 2 or kernel.shape[0] != width or bias.shape != (kernel.shape[1],):
                raise ValueError(f"layer {i} of the network has kernel {kernel.shape} and bias {bias.shape}; "
                                 f"it must take {width} inputs")
            width = kernel.shape[1]
        if width != 1:
            raise ValueError(f"the network's last layer must give one output, not {width}")
        kernel = self.kernels[0].astype(np.float64) / self.scale[:, None]
        self._first = (kernel, self.biases[0] - self.mean.astype(np.float64) @ kernel)
        self._rest = [(k.astype(np.float64), b.astype(np.float64))
                      for k, b in zip(self.kernels[1:], self.biases[1:], strict=True)]

    @property
    def features(self) -> int:
        """F, the number of inputs."""
        return len(self.mean)

    def __call__(self, inputs: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """P(keep) of each row.

        A point's P(keep) must not depend on the tile it was filtered in, but BLAS sums a row's
        products in an order that depends on how many rows a call holds and, on some processors (AVX-512
        kernels of OpenBLAS), on where the row stands among them. So the rows go through the layers
        ``ROWS`` at a time (the last block padded with zeros), in float64, and only the output is
        rounded to float32: the order of the sums then moves a result by about 1e-16, below what that
        rounding keeps (of 8 million rows put at other places in their blocks, none changed).

        Args:
            inputs: (m, F) float32, or (m, c) arrays whose columns side by side are the F inputs
                (each is multiplied by its rows of the first layer's weights: nothing is copied).

        Returns:
            (m,) float32 in [0, 1].

        Raises:
            ValueError: the inputs do not have F columns.
        """
        groups = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
        if sum(group.shape[1] for group in groups) != self.features:
            raise ValueError(f"the network reads {self.features} inputs per point, got "
                             f"{sum(group.shape[1] for group in groups)}")
        rows = len(groups[0])
        out = np.empty(rows, np.float32)
        for start in range(0, rows, ROWS):
            block = [np.asarray(group[start:start + ROWS], np.float64) for group in groups]
            if len(block[0]) < ROWS:
                block = [np.concatenate([b, np.zeros((ROWS - len(b), b.shape[1]))]) for b in block]
            out[start:start + ROWS] = self._block(block)[:rows - start]
        return out

    def _block(self, groups: list[np.ndarray]) -> np.ndarray:
        """P(keep) of ``ROWS`` rows given as groups of columns."""
        kernel, bias = self._first
        x, start = None, 0
        for group in groups:
            part = group @ kernel[start:start + group.shape[1]]
            x, start = part if x is None else np.add(x, part, out=x), start + group.shape[1]
        x += bias
        for kernel, bias in self._rest:
            np.maximum(x, 0, out=x)
            x = x @ kernel
            x += bias
        return 0.5 + 0.5 * np.tanh(0.5 * x[:, 0])  # the sigmoid, without overflow for large |z|


@dataclass
class NeighbourFilter(CloudFilter):
    """A trained neighbour filter: its networks (stages), decision threshold and number of neighbours.

    ``keep_probability_points(points)`` works on any (N, 3) cloud; ``keep_probability(scan)`` and
    ``keep_mask(scan)`` on the scan-like dicts of ``io.scan`` and ``io.organised`` (``base.CloudFilter``).
    ``far`` is the distance, in spacings, beyond which a point's k-th nearest neighbour makes it a far
    point, removed whatever the networks say (``far_points``).

    Raises:
        ValueError: the threshold is not strictly between 0 and 1, k is below 1, ``far`` is not
            positive, or a network does not read the inputs of its stage (``stage_inputs``).
    """

    networks: list[DenseNetwork]
    threshold: float = 0.5
    neighbours: int = NEIGHBOURS
    probability_hops: int = PROBABILITY_HOPS
    name: str = "neighbour_filter"
    threads: int = THREADS
    chunk: int = CHUNK
    far: float = FAR

    def __post_init__(self):
        self.threshold = check_threshold(self.threshold)
        self.networks = list(self.networks)
        if int(self.neighbours) < 1:
            raise ValueError(f"the neighbour filter needs at least 1 neighbour per point, got {self.neighbours}")
        if not self.far > 0:
            raise ValueError(f"the distance of far points must be a positive number of spacings, got {self.far}")
        if not self.networks:
            raise ValueError("the neighbour filter needs at least one network")
        for stage, network in enumerate(self.networks):
            wanted = len(stage_inputs(stage, self.probability_hops))
            if network.features != wanted:
                raise ValueError(f"the network of stage {stage} reads {network.features} inputs per point; that stage "
                                 f"has {wanted}")

    def keep_probability_points(self, points) -> np.ndarray:
        """P(keep) of each point of a cloud.

        Args:
            points: (N, 3) coordinates in any unit; rows with NaN or infinite coordinates are allowed.

        Returns:
            (N,) float32; 0 for points with NaN or infinite coordinates, for points too far from the
            rest to be searched (``neighbour_statistics.REACH``) and for points whose k-th nearest
            neighbour lies more than ``far`` spacings away (``far_points``), which are never kept.

        Raises:
            ValueError: the array is not (N, 3), or fewer than ``point_features.MIN_POINTS`` of its
                points are finite, or they all coincide.
        """
        points, finite = finite_points(points)
        searched_prob, statistics = self.region_probability(points[finite])
        prob = np.zeros(len(points), np.float32)
        prob[np.flatnonzero(finite)[statistics.searched]] = searched_prob
        return prob

    def region_probability(self, points: np.ndarray) -> tuple[np.ndarray, NeighbourStatistics]:
        """P(keep) of the searched points of a finite cloud, and the statistics they came from.

        Returns:
            ``(prob, statistics)``: (M,) float32 P(keep) of the points ``statistics.searched`` marks.
        """
        statistics = neighbour_statistics(points, self.neighbours, self.chunk, self.threads)
        return self.statistics_probability(statistics), statistics

    def statistics_probability(self, statistics: NeighbourStatistics) -> np.ndarray:
        """(M,) float32 P(keep) of the points ``statistics`` describes: the last network's, and 0 for
        ``far_points``."""
        columns = stage_columns(statistics, self.networks[:-1], self.probability_hops)
        last = self.networks[-1]
        prob = statistics.map(lambda rows: last([column[rows] for column in columns]))
        prob[far_points(statistics, self.far)] = 0
        return prob

    @property
    def reach_hops(self) -> int:
        """How many hops of neighbours a point's P(keep) reads: the features reach ``HOPS`` hops, and
        each later stage reads the P(keep) of the stage before over ``probability_hops`` more."""
        return HOPS + (len(self.networks) - 1) * self.probability_hops

    def save(self, path: str | os.PathLike) -> Path:
        """Write the filter to an ``.npz`` file in the layout this module describes (atomically).

        Returns:
            the path.
        """
        arrays = {"format": np.array(FORMAT), "features": np.array(FEATURES), "neighbours": np.array(self.neighbours),
                  "probability_hops": np.array(self.probability_hops), "threshold": np.array(self.threshold),
                  "stages": np.array(len(self.networks))}
        for stage, network in enumerate(self.networks):
            arrays[f"stage{stage}_mean"], arrays[f"stage{stage}_scale"] = network.mean, network.scale
            for i, (kernel, bias) in enumerate(zip(network.kernels, network.biases, strict=True)):
                arrays[f"stage{stage}_kernel_{i}"], arrays[f"stage{stage}_bias_{i}"] = kernel, bias
        path = Path(path)
        atomic_write_with(path, lambda tmp: np.savez(tmp, **arrays))
        return path


def stage_seconds(scan_filter: NeighbourFilter, points) -> dict[str, float]:
    """Where the neighbour filter's time goes on a cloud: seconds of each step, run once.

    Steps: ``search`` (the KD-tree and the k nearest neighbours of every point), ``statistics``
    (each neighbourhood's own statistics), ``features`` (their means over 1 to 3 hops), ``stages``
    (every network but the last, with the hop means of their P(keep)), ``last network``.

    Args:
        scan_filter: a ``NeighbourFilter``.
        points: a finite (N, 3) cloud.

    Returns:
        the seconds of each step, in order, and ``total``.
    """
    times: dict[str, float] = {}
    statistics = neighbour_statistics(points, scan_filter.neighbours, scan_filter.chunk, scan_filter.threads, times)
    for name, step in (("features", statistics.features),
                       ("stages", lambda: stage_columns(statistics, scan_filter.networks[:-1],
                                                        scan_filter.probability_hops))):
        start = time.perf_counter()
        result = step()
        times[name] = time.perf_counter() - start
    last = scan_filter.networks[-1]
    start = time.perf_counter()
    statistics.map(lambda rows: last([column[rows] for column in result]))
    times["last network"] = time.perf_counter() - start
    times["total"] = sum(times.values())
    return times


def neighbour_filter(path: str | os.PathLike | None = None, threshold: float | None = None) -> NeighbourFilter:
    """The neighbour filter saved at ``path`` (default: the shipped one).

    Args:
        path: an ``.npz`` file written by ``NeighbourFilter.save``.
        threshold: keep a point when P(keep) >= this; default the file's own threshold.

    Raises:
        FileNotFoundError: there is no such file (for the shipped one, the message names the command
            that trains it).
        ValueError: the file is not a neighbour filter of this version.
    """
    path = check_model_file(SHIPPED_NEIGHBOUR_MODEL if path is None else path, "neighbour filter")
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = dict(stored)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise ValueError(f"{path} is damaged or no neighbour filter (.npz: {error}); write it again with "
                         "pcfilter finetune, or leave --model out for the shipped filter") from error
    if str(arrays.get("format", "")) != FORMAT:
        raise ValueError(f"{path} is not a neighbour filter file of this version ({FORMAT!r})")
    needed = {"features", "neighbours", "probability_hops", "threshold", "stages"}
    if missing := sorted(needed - set(arrays)):
        raise ValueError(f"{path} lacks the arrays {missing} of a neighbour filter")
    if tuple(str(name) for name in arrays["features"]) != FEATURES:
        raise ValueError(f"{path} reads the features {list(arrays['features'])}; this version computes "
                         f"{list(FEATURES)}: retrain the filter")
    networks = []
    for stage in range(int(arrays["stages"])):
        key = f"stage{stage}_"
        layers = next(i for i in range(len(arrays) + 1)
                      if f"{key}kernel_{i}" not in arrays or f"{key}bias_{i}" not in arrays)
        if f"{key}mean" not in arrays or f"{key}scale" not in arrays or not layers:
            raise ValueError(f"{path} lacks the network of stage {stage}")
        networks.append(DenseNetwork(arrays[f"{key}mean"], arrays[f"{key}scale"],
                                     [arrays[f"{key}kernel_{i}"] for i in range(layers)],
                                     [arrays[f"{key}bias_{i}"] for i in range(layers)]))
    return NeighbourFilter(networks, threshold=float(arrays["threshold"]) if threshold is None else threshold,
                           neighbours=int(arrays["neighbours"]), probability_hops=int(arrays["probability_hops"]),
                           name=path.stem)
