"""Total variation between discrete distributions."""

from __future__ import annotations

import numpy as np


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """TV(p, q) = 1/2 sum |p - q|: 0 for equal distributions, 1 for disjoint ones.

        >>> total_variation(np.array([0.5, 0.5]), np.array([1.0, 0.0]))
        0.5
    """
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"distributions of different shapes {p.shape} and {q.shape}")
    return float(0.5 * np.abs(p - q).sum())


def empirical(values: np.ndarray, card: int) -> np.ndarray:
    """The empirical distribution of integer ``values`` over 0..card-1."""
    values = np.asarray(values, dtype=np.int64)
    if len(values) == 0:
        raise ValueError("no values")
    return np.bincount(values, minlength=card)[:card] / len(values)


def pooled_tv(groups: np.ndarray, values: np.ndarray, exact: np.ndarray, card: int) -> dict[str, float]:
    """TV between the empirical distribution of ``values`` within each group (e.g. test
    scenes with the same factual labels) and that group's exact distribution, weighted by
    group size. ``exact[i]`` is the exact distribution for row i (equal within a group).

    Returns ``{"tv": weighted mean TV, "groups": number of groups, "rows": rows}``.
    """
    groups = np.asarray(groups)
    keys, inverse = np.unique(groups, return_inverse=True, axis=0) if groups.ndim > 1 else np.unique(groups, return_inverse=True)
    inverse = inverse.reshape(-1)
    total, n = 0.0, len(values)
    for g in range(len(keys)):
        rows = np.flatnonzero(inverse == g)
        total += len(rows) * total_variation(empirical(values[rows], card), exact[rows[0]])
    return {"tv": total / n, "groups": int(len(keys)), "rows": int(n)}
