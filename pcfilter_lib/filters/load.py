"""One entry to the learned filters: a saved model file becomes the filter of its kind."""

from __future__ import annotations

import os
from pathlib import Path

from pcfilter_lib.filters.pixels import unet_filter, wrap_unet
from pcfilter_lib.filters.points import point_filter, wrap_point_model
from pcfilter_lib.models.saved import load_saved_model


def load_filter(path: str | os.PathLike | None = None, threshold: float | None = None, organised: bool = True):
    """A learned filter for scans or unorganised clouds.

    Args:
        path: a ``.keras`` file; None gives the shipped U-Net (``organised``) or point filter.
            A saved model's input rank tells which kind it is.
        threshold: overrides the threshold recorded in the model card.
        organised: whether the input has a pixel grid (a scan or organised cloud).

    Returns:
        a ``UNetFilter`` or ``PointFilter``.

    Raises:
        ValueError: a U-Net was given for an unorganised cloud.
    """
    if path is None:
        return unet_filter(None, threshold) if organised else point_filter(None, threshold)
    path = Path(path)
    model = load_saved_model(path)
    if len(model.input_shape) == 3:
        return wrap_point_model(model, path, threshold)
    if not organised:
        raise ValueError(f"{path} is a U-Net filter, which needs an organised scan; this input is an unorganised "
                         "cloud (use the point filter: leave out --model)")
    return wrap_unet(model, path, threshold)
