"""The axiomatic scores of counterfactual pictures (Monteiro et al. 2023), from pictures.

- **composition**: a null intervention applied m times should give the picture back;
  the score is the mean pixel distance after m applications;
- **reversibility**: intervening and then intervening back should give the picture back;
  the score is the mean pixel distance after the round trips.

Both are pixel MAE (0-255) between the original pictures and the pictures after the
interventions; the evaluation computes the pictures with the model and calls these.
"""

from __future__ import annotations

import numpy as np

from causalvae.metrics.pixels import pixel_mae


def _mae(original: np.ndarray, after: np.ndarray) -> float:
    return float(pixel_mae(original, after).mean())


def composition(original: np.ndarray, after: dict[int, np.ndarray]) -> dict[str, float]:
    """``after``: ``{m: the pictures after m null interventions}`` (0-255 scale).
    Returns ``{"composition_m": mean pixel MAE}`` for each m (0: perfect)."""
    return {f"composition_{m}": _mae(original, pics) for m, pics in sorted(after.items())}


def reversibility(original: np.ndarray, after: dict[int, np.ndarray]) -> dict[str, float]:
    """``after``: ``{c: the pictures after c intervene-and-back cycles}`` (0-255 scale).
    Returns ``{"reversibility_c": mean pixel MAE}`` for each c (0: perfect)."""
    return {f"reversibility_{c}": _mae(original, pics) for c, pics in sorted(after.items())}
