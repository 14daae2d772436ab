"""U-Net for per-pixel segmentation of images and organised scans.

``pad_to_multiple`` / ``crop_to`` let the network, whose input sides must be multiples of
``2 ** depth``, run on images of any size.
"""

from __future__ import annotations

import numpy as np


def pad_to_multiple(image: np.ndarray, multiple: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad the first two axes of ``image`` (H, W, ...) up to multiples of ``multiple``.

    Returns the padded array and a bool mask of shape (H', W'), True on the original pixels. Padding
    goes after the image (bottom and right), so ``crop_to(padded, image.shape[:2])`` undoes it.
    """
    image = np.asarray(image)
    if image.ndim < 2 or min(image.shape[:2]) < 1:
        raise ValueError(f"image must have shape (H, W, ...) with H, W >= 1, got {image.shape}")
    if multiple < 1:
        raise ValueError(f"multiple must be positive, got {multiple}")
    h, w = image.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    padded = np.pad(image, [(0, ph), (0, pw)] + [(0, 0)] * (image.ndim - 2))
    mask = np.zeros(padded.shape[:2], dtype=bool)
    mask[:h, :w] = True
    return padded, mask


def crop_to(array: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
    """Undo ``pad_to_multiple`` on one image (H', W', ...): keep its top-left ``shape_hw``."""
    h, w = shape_hw
    return array[:h, :w]
