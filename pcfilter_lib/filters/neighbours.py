"""The neighbour filter: one k-nearest-neighbour search per point, the statistics of what it sees, and
a small dense network giving P(keep), all in NumPy.

1. **Search.** Each point's k = 12 nearest neighbours, in one float32 KD-tree query.
2. **Features.** The 24 statistics of ``geometry.neighbour_statistics`` (distances, shares within
   2 and 4 spacings, distance to the neighbours' centroid and plane, the shape of their spread, and
   the mean of these over the neighbours), every length in the cloud's own point spacing, so that
   units and placement change nothing.
3. **Network.** ``DenseNetwork``: the features standardised, two dense layers with ReLU and one
   sigmoid unit, trained in Keras by ``recipes.neighbour_filter`` and run here as plain matrix
   products, so the filter needs neither TensorFlow nor Keras.

The network and its settings travel in one ``.npz`` file (``SHIPPED_NEIGHBOUR_MODEL`` and its model
card beside it), read by ``neighbour_filter`` and written by ``NeighbourFilter.save``:

* ``format``: ``FORMAT``; ``features``: the feature names, in order (``FEATURES``); ``neighbours``: k;
  ``threshold``: the decision threshold;
* ``mean``, ``scale``: (F,) the standardisation, (x - mean) / scale;
* ``kernel_0``, ``bias_0``, ... ``kernel_L``, ``bias_L``: the dense layers, (F_in, F_out) and
  (F_out,); ReLU after every layer but the last, a sigmoid after the last (F_out = 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pcfilter_lib.filters.base import CloudFilter, check_threshold
from pcfilter_lib.geometry.neighbour_statistics import CHUNK, FEATURES, NEIGHBOURS, THREADS, neighbour_statistics
from pcfilter_lib.geometry.point_features import finite_points
from pcfilter_lib.io.files import atomic_write_with
from pcfilter_lib.io.model_cards import WEIGHTS, check_model_file

SHIPPED_NEIGHBOUR_MODEL = WEIGHTS / "neighbour_filter.npz"
FORMAT = "pcfilter neighbour filter 1"


@dataclass
class DenseNetwork:
    """A per-point network of dense layers, in NumPy: standardise, ReLU layers, one sigmoid unit.

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

    @property
    def features(self) -> int:
        """F, the number of inputs."""
        return len(self.mean)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """P(keep) of each row.

        Args:
            features: (m, F) float32.

        Returns:
            (m,) float32 in [0, 1].
        """
        x = (np.asarray(features, np.float32) - self.mean) / self.scale
        for kernel, bias in zip(self.kernels[:-1], self.biases[:-1], strict=True):
            x = x @ kernel
            x += bias
            np.maximum(x, 0, out=x)
        z = (x @ self.kernels[-1])[:, 0] + self.biases[-1][0]
        return 0.5 + 0.5 * np.tanh(0.5 * z)  # the sigmoid, without overflow for large |z|


@dataclass
class NeighbourFilter(CloudFilter):
    """A trained neighbour filter: its network, decision threshold and number of neighbours.

    ``keep_probability_points(points)`` works on any (N, 3) cloud; ``keep_probability(scan)`` and
    ``keep_mask(scan)`` on the scan-like dicts of ``io.scan`` and ``io.organised`` (``base.CloudFilter``).

    Raises:
        ValueError: the threshold is not strictly between 0 and 1, k is below 1, or the network does
            not read the features of ``FEATURES``.
    """

    network: DenseNetwork
    threshold: float = 0.5
    neighbours: int = NEIGHBOURS
    name: str = "neighbour_filter"
    threads: int = THREADS
    chunk: int = CHUNK

    def __post_init__(self):
        self.threshold = check_threshold(self.threshold)
        if int(self.neighbours) < 1:
            raise ValueError(f"the neighbour filter needs at least 1 neighbour per point, got {self.neighbours}")
        if self.network.features != len(FEATURES):
            raise ValueError(f"the network reads {self.network.features} features per point; the neighbour filter "
                             f"computes {len(FEATURES)}")

    def keep_probability_points(self, points) -> np.ndarray:
        """P(keep) of each point of a cloud.

        Args:
            points: (N, 3) coordinates in any unit; rows with NaN or infinite coordinates are allowed.

        Returns:
            (N,) float32; 0 for points with NaN or infinite coordinates and for points too far from
            the rest to be searched (``neighbour_statistics.REACH``), which are never kept.

        Raises:
            ValueError: the array is not (N, 3), or fewer than ``point_features.MIN_POINTS`` of its
                points are finite, or they all coincide.
        """
        points, finite = finite_points(points)
        statistics = neighbour_statistics(points[finite], self.neighbours, self.chunk, self.threads)
        prob = np.zeros(len(points), np.float32)
        prob[np.flatnonzero(finite)[statistics.searched]] = statistics.map(self.network, self.chunk)
        return prob

    def save(self, path: str | os.PathLike) -> Path:
        """Write the filter to an ``.npz`` file in the layout this module describes (atomically).

        Returns:
            the path.
        """
        arrays = {"format": np.array(FORMAT), "features": np.array(FEATURES), "neighbours": np.array(self.neighbours),
                  "threshold": np.array(self.threshold), "mean": self.network.mean, "scale": self.network.scale}
        for i, (kernel, bias) in enumerate(zip(self.network.kernels, self.network.biases, strict=True)):
            arrays[f"kernel_{i}"], arrays[f"bias_{i}"] = kernel, bias
        path = Path(path)
        atomic_write_with(path, lambda tmp: np.savez(tmp, **arrays))
        return path


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
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a neighbour filter (.npz): {error}") from error
    if str(arrays.get("format", "")) != FORMAT:
        raise ValueError(f"{path} is not a neighbour filter file of this version ({FORMAT!r})")
    if missing := sorted({"features", "neighbours", "threshold", "mean", "scale", "kernel_0", "bias_0"} - set(arrays)):
        raise ValueError(f"{path} lacks the arrays {missing} of a neighbour filter")
    if tuple(str(name) for name in arrays["features"]) != FEATURES:
        raise ValueError(f"{path} reads the features {list(arrays['features'])}; this version computes "
                         f"{list(FEATURES)}: retrain the filter")
    layers = next(i for i in range(len(arrays) + 1) if f"kernel_{i}" not in arrays or f"bias_{i}" not in arrays)
    network = DenseNetwork(arrays["mean"], arrays["scale"], [arrays[f"kernel_{i}"] for i in range(layers)],
                           [arrays[f"bias_{i}"] for i in range(layers)])
    return NeighbourFilter(network, threshold=float(arrays["threshold"]) if threshold is None else threshold,
                           neighbours=int(arrays["neighbours"]), name=path.stem)
