"""The width of a layer in a network scaled by one factor: the ``width`` argument of the point
networks' builders (PointNet, PointNet++, DGCNN) and of YOVO."""

from __future__ import annotations

MIN_CHANNELS = 8  # a narrower layer carries too little to learn from


def scaled_channels(channels: int, width: float) -> int:
    """``channels`` (the paper's width of a layer) times ``width``, rounded, at least ``MIN_CHANNELS``.

    Args:
        channels: the layer's channels in the paper's network.
        width: the scale of the whole network (1.0: the paper's; 0.25: a quarter as wide).

    Returns:
        The scaled number of channels, an int.
    """
    return max(MIN_CHANNELS, int(round(channels * width)))
