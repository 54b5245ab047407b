"""Likelihood bounds from log-weights, in nats per picture and bits per dimension."""

from __future__ import annotations

import math

import numpy as np


def iw_bound(log_weights: np.ndarray) -> np.ndarray:
    """The importance-weighted bound (Burda et al. 2016) per picture from ``(k, N)``
    log-weights ``log p(x, z_j) - log q(z_j | x)``: ``log (1/k sum_j exp(log w_j))``.
    With k = 1 it is the single-sample ELBO; it never falls below the mean log-weight.

        >>> iw_bound(np.log(np.array([[1.0], [3.0]])))
        array([0.69314718])
    """
    lw = np.asarray(log_weights, dtype=np.float64)
    if lw.ndim != 2 or lw.shape[0] == 0:
        raise ValueError(f"log-weights must be (k, N) with k >= 1, got {lw.shape}")
    top = lw.max(axis=0)
    return top + np.log(np.exp(lw - top).mean(axis=0))


def bits_per_dim(nats: float, dims: int) -> float:
    """A log-likelihood bound in nats per picture as bits per dimension (lower is better)."""
    if dims < 1:
        raise ValueError(f"dims must be positive, got {dims}")
    return -nats / (dims * math.log(2))
