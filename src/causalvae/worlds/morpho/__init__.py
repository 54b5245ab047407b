"""The morpho world: real MNIST digits redrawn by the Morpho-MNIST morphology through
DeepSCM's causal model (docs/morpho.md).

- :mod:`~causalvae.worlds.morpho.world`: the world (graph, style, renderer, true
  counterfactuals), registered as ``morpho``;
- :mod:`~causalvae.worlds.morpho.morphology`: measuring and setting stroke thickness and
  intensity;
- :mod:`~causalvae.worlds.morpho.digits`: the 5,000 source digits and their fixed split.
"""

from causalvae.worlds.morpho.world import WORLD, MorphoWorld, true_counterfactual

__all__ = ["MorphoWorld", "WORLD", "true_counterfactual"]
