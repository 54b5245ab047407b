"""The scene world: two game characters in a duel (the "Causal Scene Generation" tutorial).

- :mod:`~causalvae.worlds.scenes.render`: the procedural renderer (:class:`SceneRenderer`);
- :mod:`~causalvae.worlds.scenes.world`: the world itself (graph, style, reference queries,
  captions, its labelled dataset sheet), registered as ``scenes``.
"""

from causalvae.worlds.scenes.render import LABELS, RESOLUTIONS, STYLE_FIELDS, VALUES, RenderError, SceneRenderer, StyleRanges
from causalvae.worlds.scenes.world import WORLD, ScenesWorld

__all__ = ["LABELS", "VALUES", "STYLE_FIELDS", "RESOLUTIONS", "StyleRanges", "SceneRenderer", "RenderError", "ScenesWorld", "WORLD"]
