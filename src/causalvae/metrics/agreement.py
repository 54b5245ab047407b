"""Agreement with one recorded true counterfactual, beside what is achievable.

The factual labels leave the noise uncertain, so the true counterfactual value of a unit is
itself a draw from the exact counterfactual distribution p. A model that draws its value
from p agrees with the truth with probability sum_v p(v)^2; the best any model can do is
to always answer the most probable value, max_v p(v) (the Bayes-optimal ceiling).

Where a picture cannot show every value (a square's orientation is only defined modulo a
quarter turn), ``accepted[i, u, v]`` says whether reading v agrees with a true value u for
unit i. Then the exact sampler agrees with probability sum_u sum_v p(u) p(v) A[u, v], and
the best answer v scores max_v sum_u p(u) A[u, v]; with A the identity these are the two
rates above.
"""

from __future__ import annotations

import numpy as np


def agreement_with_truth(model: np.ndarray, truth: np.ndarray, exact: np.ndarray, accepted: np.ndarray | None = None) -> dict[str, float]:
    """``model`` and ``truth``: (N,) value indices; ``exact``: (N, card) each unit's exact
    counterfactual distribution given its factual labels; ``accepted`` (optional): bool
    (N, card, card), whether each reading (last axis) agrees with each true value.

    Returns the model's agreement rate, the rate expected of an exact sampler (mean of
    sum p^2) and the Bayes-optimal ceiling (mean of max p), with ``accepted`` their
    generalisations above.
    """
    model, truth, exact = np.asarray(model), np.asarray(truth), np.asarray(exact, dtype=np.float64)
    if accepted is None:
        return {
            "agreement": float((model == truth).mean()),
            "exact_sampler": float((exact**2).sum(axis=1).mean()),
            "ceiling": float(exact.max(axis=1).mean()),
        }
    a = np.asarray(accepted, dtype=bool)
    if a.shape != exact.shape + exact.shape[-1:]:
        raise ValueError(f"accepted must be (N, card, card) = {exact.shape + exact.shape[-1:]}, got {a.shape}")
    answer = np.einsum("iu,iuv->iv", exact, a)  # P(reading v agrees with the truth) per unit
    return {
        "agreement": float(a[np.arange(len(model)), truth, model].mean()),
        "exact_sampler": float((answer * exact).sum(axis=1).mean()),
        "ceiling": float(answer.max(axis=1).mean()),
    }
