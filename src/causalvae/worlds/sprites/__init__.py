"""The sprites world: dSprites sampled through a causal graph (docs/sprites.md).

- :mod:`~causalvae.worlds.sprites.world`: the world itself (graph, style, its true
  mechanism, reference queries), registered as ``sprites``.
- :mod:`~causalvae.worlds.sprites.factors`: the six dSprites factors, image indices, metadata;
- :mod:`~causalvae.worlds.sprites.render`: the dSprites renderer and its symmetries;
- :mod:`~causalvae.worlds.sprites.grid`: the grid writer (and reader);
- :mod:`~causalvae.worlds.sprites.archive`: the official archive's reader;
- :mod:`~causalvae.worlds.sprites.dsprites`: all of the above in one import, and a contact sheet.
"""

from causalvae.worlds.sprites.world import WORLD, SpritesWorld

__all__ = ["SpritesWorld", "WORLD"]
