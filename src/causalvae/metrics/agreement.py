"""Agreement with one recorded true counterfactual, beside what is achievable.

The factual labels leave the noise uncertain, so the true counterfactual value of a unit is
itself a draw from the exact counterfactual distribution p. A model that draws its value
from p agrees with the truth with probability sum_v p(v)^2; the best any model can do is
to always answer the most probable value, max_v p(v) (the Bayes-optimal ceiling).
"""

from __future__ import annotations

import numpy as np


def agreement_with_truth(model: np.ndarray, truth: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """``model`` and ``truth``: (N,) value indices; ``exact``: (N, card) each unit's exact
    counterfactual distribution given its factual labels.

    Returns the model's agreement rate, the rate expected of an exact sampler (mean of
    sum p^2) and the Bayes-optimal ceiling (mean of max p).
    """
    model, truth, exact = np.asarray(model), np.asarray(truth), np.asarray(exact, dtype=np.float64)
    return {
        "agreement": float((model == truth).mean()),
        "exact_sampler": float((exact**2).sum(axis=1).mean()),
        "ceiling": float(exact.max(axis=1).mean()),
    }
