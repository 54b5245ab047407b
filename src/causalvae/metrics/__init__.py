"""Metrics, one per file, each a pure function of arrays returning named scores.

- :mod:`~causalvae.metrics.distributions`: total variation between distributions, pooled
  counterfactual label distributions against exact ones.
- :mod:`~causalvae.metrics.pixels`: pixel MAE (0-255) and IoU of binary pictures.
- :mod:`~causalvae.metrics.agreement`: agreement with a recorded true counterfactual beside
  its Bayes-optimal ceiling.
- :mod:`~causalvae.metrics.effectiveness`: effectiveness and read-back (labels read off
  pictures against the values drawn), accuracy over labelled rows; each counts a reading
  right when it is among the picture's accepted readings (a world's symmetries).
- :mod:`~causalvae.metrics.likelihood`: the importance-weighted bound from log-weights,
  bits per dimension.
- :mod:`~causalvae.metrics.axioms`: composition and reversibility of counterfactuals.
- :mod:`~causalvae.metrics.transport`: the Wasserstein-1 distance between two samples of a
  continuous variable.
- :mod:`~causalvae.metrics.frechet`: the Fréchet distance between two sets of feature vectors.
"""

from causalvae.metrics.agreement import agreement_with_truth
from causalvae.metrics.axioms import composition, reversibility
from causalvae.metrics.distributions import pooled_tv, total_variation
from causalvae.metrics.effectiveness import effectiveness, masked_accuracy, misreadings, read_right
from causalvae.metrics.frechet import frechet_distance
from causalvae.metrics.likelihood import bits_per_dim, iw_bound
from causalvae.metrics.pixels import iou, pixel_mae
from causalvae.metrics.transport import wasserstein_1

__all__ = [
    "agreement_with_truth", "bits_per_dim", "composition", "effectiveness", "frechet_distance", "iou", "iw_bound", "masked_accuracy", "misreadings",
    "pixel_mae", "pooled_tv", "read_right", "reversibility", "total_variation", "wasserstein_1",
]
