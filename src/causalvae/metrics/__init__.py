"""Metrics, one per file, each a pure function of arrays or tensors returning named scores.

- :mod:`~causalvae.metrics.distributions`: total variation between distributions, pooled
  counterfactual label distributions against exact ones.
- :mod:`~causalvae.metrics.pixels`: pixel MAE (0-255) and IoU of binary pictures.
- :mod:`~causalvae.metrics.agreement`: agreement with a recorded true counterfactual beside
  its Bayes-optimal ceiling.
"""

from causalvae.metrics.agreement import agreement_with_truth
from causalvae.metrics.distributions import pooled_tv, total_variation
from causalvae.metrics.pixels import iou, pixel_mae

__all__ = ["agreement_with_truth", "iou", "pixel_mae", "pooled_tv", "total_variation"]
