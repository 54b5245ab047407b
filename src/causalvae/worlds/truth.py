"""The true image mechanism of each built-in world, behind one interface.

A :class:`TrueRenderer` draws the picture of given graph values with given style: the
renderer of the scene world, or the dSprites grid for the sprites world. Metrics use it to
draw what a picture *should* be (the true counterfactual of a test scene with its recorded
style), and the oracle to draw fresh training pictures.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from causalvae.errors import CausalVAEError, unknown
from causalvae.graph import Graph

WORLDS = ("scenes", "sprites")


class TrueRenderer:
    """``render(values, style)`` -> uint8 (N, C, H, W) pictures of a world.

    ``values`` maps (at least) the image's parents to value indices of the world's graph;
    ``style`` is (N, S) in the order of :attr:`style_fields`, as the datasets record it.
    """

    def __init__(self, world: str, resolution: int = 64):
        if world not in WORLDS:
            raise unknown("world", world, WORLDS)
        self.world = world
        if world == "scenes":
            from causalvae.worlds.scenes import STYLE_FIELDS, SceneRenderer

            self._r = SceneRenderer(resolution)
            self.style_fields = STYLE_FIELDS
            self.channels = 3
        else:
            from causalvae.worlds.dsprites import RESOLUTION, STYLE_FIELDS

            if resolution != RESOLUTION:
                raise CausalVAEError(f"the sprites world is {RESOLUTION}x{RESOLUTION}")
            self.style_fields = STYLE_FIELDS
            self.channels = 1
        self.resolution = resolution
        self.graph = Graph.load(world)

    def draw_style(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` styles, uniform in the world's default ranges: (n, S) float64."""
        if self.world == "scenes":
            style = self._r.sample_style(n, rng)
            return np.stack([style[f] for f in self.style_fields], 1)
        from causalvae.worlds.dsprites import GRAPH_BINS

        return np.stack([rng.integers(0, GRAPH_BINS[f.removesuffix("_offset")], n) for f in self.style_fields], 1).astype(np.float64)

    def render(self, values: Mapping[str, np.ndarray], style: np.ndarray) -> np.ndarray:
        style = np.asarray(style, dtype=np.float64)
        if style.ndim != 2 or style.shape[1] != len(self.style_fields):
            raise CausalVAEError(f"style must have shape (N, {len(self.style_fields)}), got {style.shape}")
        named = {f: style[:, k] for k, f in enumerate(self.style_fields)}
        if self.world == "scenes":
            return np.ascontiguousarray(self._r.render(values, named).transpose(0, 3, 1, 2))
        from causalvae.worlds.dsprites import graph_classes, images

        offsets = {f: named[f].astype(np.int64) for f in self.style_fields}
        return images(graph_classes(values, offsets))[:, None].astype(np.uint8)

    def best_iou(self, values: Mapping[str, np.ndarray], style: np.ndarray, pictures: np.ndarray) -> np.ndarray:
        """Per picture, the IoU against the true render of ``values`` with ``style``; for the
        sprites world the best over every symmetric equivalent of that render (a square
        turned a quarter turn is the same picture), as ``worlds.dsprites.equivalent`` lists."""
        from causalvae.metrics import iou

        if self.world != "sprites":
            return iou(self.render(values, style), pictures)
        from causalvae.worlds.dsprites import equivalent, graph_classes, images

        named = {f: np.asarray(style)[:, k].astype(np.int64) for k, f in enumerate(self.style_fields)}
        classes = graph_classes(values, named)
        out = np.empty(len(classes))
        for i, c in enumerate(classes):
            options = images(equivalent(c))[:, None]
            out[i] = iou(options, np.repeat(pictures[i : i + 1], len(options), axis=0)).max()
        return out
