"""What every artefact filter offers, so that evaluation, threshold choice and the command line
treat the U-Net, the point filter and the classical baselines alike.

A filter turns a scan (the dict of ``pcfilter_lib.io.scan``, or the scan-like dict of an
unorganised cloud from ``io.clouds.cloud_scan``) into an (H, W) keep probability and, through its
threshold, an (H, W) bool keep mask: True where the scan has a point and the filter keeps it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Filter(Protocol):
    """The interface of every filter in ``pcfilter_lib.filters``.

    Attributes:
        name: a short name for tables and progress bars.
        threshold: P(keep) at or above which a point is kept, strictly between 0 and 1.
    """

    name: str
    threshold: float

    def keep_probability(self, scan: Mapping) -> np.ndarray:
        """The filter's probability that each point is true geometry.

        Args:
            scan: a scan dict, or the scan-like dict of an unorganised cloud.

        Returns:
            (H, W) float32 P(keep) of each pixel; 0 where there is no point.
        """

    def keep_probabilities(self, scans: Sequence[Mapping]) -> list[np.ndarray]:
        """``keep_probability`` of each scan (a filter may batch them).

        Args:
            scans: scan dicts.

        Returns:
            One (H, W) float32 array per scan.
        """

    def keep_mask(self, scan: Mapping) -> np.ndarray:
        """The filter's decision for each point.

        Args:
            scan: a scan dict, or the scan-like dict of an unorganised cloud.

        Returns:
            (H, W) bool: True where the scan has a point and the filter keeps it.
        """


def check_threshold(threshold: float) -> float:
    """Check a decision threshold.

    Args:
        threshold: P(keep) at or above which a point is kept.

    Returns:
        ``threshold`` as a float.

    Raises:
        ValueError: it does not lie strictly between 0 and 1.
    """
    threshold = float(threshold)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"the decision threshold must lie strictly between 0 and 1, got {threshold}")
    return threshold


class CloudFilter:
    """The ``Filter`` methods of a filter that judges points alone, whatever grid they came on.

    A subclass gives ``keep_probability_points`` ((N, 3) points -> (N,) P(keep)) and a ``threshold``;
    this class applies them to the measured points of scan-like dicts (``io.scan``, ``io.organised``),
    ignoring the grid.
    """

    threshold: float

    def keep_probability_points(self, points) -> np.ndarray:
        """(N,) float32 P(keep) of each point of an (N, 3) cloud."""
        raise NotImplementedError

    def keep_probability(self, scan: Mapping) -> np.ndarray:
        """P(keep) on the scan's grid (H, W); 0 where there is no point."""
        valid = np.asarray(scan["valid"], bool)
        prob = np.zeros(valid.shape, np.float32)
        prob[valid] = self.keep_probability_points(np.asarray(scan["xyz"])[valid])
        return prob

    def keep_probabilities(self, scans: Sequence[Mapping]) -> list[np.ndarray]:
        """``keep_probability`` of each scan."""
        return [self.keep_probability(scan) for scan in scans]

    def keep_mask(self, scan: Mapping) -> np.ndarray:
        """(H, W) bool: True where the scan has a point and the filter keeps it."""
        valid = np.asarray(scan["valid"], bool)
        return (self.keep_probability(scan) >= self.threshold) & valid

    def __call__(self, scan: Mapping) -> np.ndarray:
        """The same as ``keep_mask``."""
        return self.keep_mask(scan)

