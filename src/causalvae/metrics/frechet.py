"""The Fréchet distance between two sets of feature vectors.

Each set is summarised by its mean and covariance, and the distance is that of the two
Gaussians (Dowson and Landau 1982)::

    FD = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)

FID (Heusel et al. 2017) is this distance in the feature space of an Inception network
trained on ImageNet. This project has no such network (it would be downloaded); the
report computes the distance in the feature space of its own oracle and names it so:
"FD in the oracle's feature space", never FID. Its value depends on the sample sizes
(the covariances are estimated), so the report sets it beside the same distance between
two halves of real pictures.
"""

from __future__ import annotations

import numpy as np


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FD between feature sets ``a`` (N, D) and ``b`` (M, D), each with at least 2 rows: 0
    for identical sets (up to rounding), ``|c|^2`` for a set and its copy shifted by c."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"feature sets must be (N, D) and (M, D) with N, M >= 2, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False).reshape(a.shape[1], -1), np.cov(b, rowvar=False).reshape(b.shape[1], -1)
    # S_a^1/2 from its eigendecomposition; the matrix under the trace's root is then
    # symmetric and positive semi-definite, so its root's trace is the sum of the roots of
    # its eigenvalues (rounding may leave tiny negative ones: they are zero).
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    inner = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    cross = np.sqrt(np.clip(inner, 0.0, None)).sum()
    return float(max(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2.0 * cross, 0.0))
