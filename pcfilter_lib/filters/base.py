"""What every artefact filter offers, so that evaluation, threshold choice and the command line
treat the U-Net, the point filter and the classical baselines alike.

A filter turns a scan (the dict of ``pcfilter_lib.io.scan``, or the scan-like dict of an
unorganised cloud from ``io.clouds.cloud_scan``) into an (H, W) keep probability and, through its
threshold, an (H, W) bool keep mask: True where the scan has a point and the filter keeps it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
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


def load_model_file(path: str | os.PathLike, shipped: Path, target: str):
    """The Keras model saved at ``path``, loaded for inference.

    Args:
        path: the ``.keras`` file.
        shipped: the shipped model of this kind, named in the advice when it is missing.
        target: the ``train_reference_models.py --target`` that retrains it.

    Returns:
        The ``keras.Model``, uncompiled; the library's custom layers, losses and metrics are
        registered first, so no ``custom_objects`` are needed.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: Keras cannot load it.
    """
    # Keras is imported here, not at the top, so that the command line starts fast.
    import keras

    import pcfilter_lib.models.dgcnn  # noqa: F401  (registers the custom objects load_model needs)
    import pcfilter_lib.models.pointnet  # noqa: F401
    import pcfilter_lib.models.pointnet2  # noqa: F401
    import pcfilter_lib.models.punet  # noqa: F401
    import pcfilter_lib.models.yovo  # noqa: F401
    import pcfilter_lib.nn.losses  # noqa: F401
    import pcfilter_lib.nn.metrics  # noqa: F401

    path = Path(path)
    if not path.is_file():
        hint = (f"train it with 'python data_scripts/train_reference_models.py --target {target}'"
                if path == shipped else "check the path")
        raise FileNotFoundError(f"model file {path} does not exist; {hint}")
    try:
        return keras.models.load_model(path, compile=False)
    except (ValueError, OSError, TypeError) as error:
        raise ValueError(f"{path} is not a loadable Keras model ({error})") from error
