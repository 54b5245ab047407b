"""The Wasserstein-1 distance between two samples of a continuous variable.

W1 is the area between the two empirical cumulative distribution functions, in the
variable's own units (pixels of thickness, grey levels of intensity): how far, on average,
the mass of one sample must move to become the other. It is what the report uses where a
discrete variable's distribution is compared by total variation.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def wasserstein_1(a: np.ndarray, b: np.ndarray) -> float:
    """W1 between the empirical distributions of the samples ``a`` and ``b`` (1-d, finite):
    0 for the same sample, ``|c|`` for a sample and its copy shifted by c.

        >>> wasserstein_1(np.array([0.0, 1.0]), np.array([2.0, 3.0]))
        2.0
    """
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if len(a) == 0 or len(b) == 0:
        raise ValueError("no values")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("the samples must be finite numbers")
    return float(stats.wasserstein_distance(a, b))
