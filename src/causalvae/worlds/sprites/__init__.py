"""The sprites world: dSprites sampled through a causal graph (docs/sprites.md).

- :mod:`~causalvae.worlds.sprites.world`: the world itself (graph, style, its true
  mechanism, reference queries), registered as ``sprites``.
- :mod:`~causalvae.worlds.sprites.dsprites`: the dSprites grid renderer, grid writer and archive reader.
"""

from causalvae.worlds.sprites.world import WORLD, SpritesWorld

__all__ = ["SpritesWorld", "WORLD"]
