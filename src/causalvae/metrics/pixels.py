"""Pixel distances between pictures."""

from __future__ import annotations

import numpy as np


def pixel_mae(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute error per picture on the 0-255 scale, for uint8 (N, ...) arrays
    (binary 0/1 pictures are scaled to 0/255 when ``binary``-valued)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"pictures of different shapes {a.shape} and {b.shape}")
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).reshape(len(a), -1).mean(axis=1)
    return diff.astype(np.float64)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of binary pictures, per picture (1 when both are empty)."""
    a, b = np.asarray(a).astype(bool).reshape(len(a), -1), np.asarray(b).astype(bool).reshape(len(b), -1)
    inter = (a & b).sum(1)
    union = (a | b).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)
