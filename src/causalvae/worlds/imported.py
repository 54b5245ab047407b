"""An imported dataset's world: a world without a renderer.

``causalvae data import`` turns a user's pictures and labels into a dataset whose world is
``imported``. Its graph is the dataset's own; whether its pictures are binary is read off
the pictures (one channel holding only 0 and 1, as ``train`` decides the likelihood). It has
no true image mechanism, so the scores that need one (noise floors of true renders, pixel
distance to the true counterfactual render, agreement with recorded-noise counterfactuals)
are left out of its evaluation; everything else runs, with an oracle trained on the
dataset's own labelled pictures (:func:`causalvae.oracle.train_oracle_on_dataset`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from causalvae.graph import Graph
from causalvae.worlds import World

if TYPE_CHECKING:
    from causalvae.data import Dataset


class ImportedWorld(World):
    """The world of one dataset that no renderer made."""

    def __init__(self, name: str, graph: Graph, channels: int, resolution: int, binary: bool):
        self.name = name
        self._graph = graph
        self.channels = channels
        self.resolution = resolution
        self.binary = binary

    @classmethod
    def of(cls, ds: Dataset) -> ImportedWorld:
        m = ds.manifest
        channels = int(m["channels"])
        binary = channels == 1 and int(np.asarray(ds.images[: min(len(ds.images), 256)]).max()) <= 1
        return cls(str(m.get("world") or "imported"), ds.graph, channels, int(m["resolution"][0]), binary)

    def graph(self) -> Graph:
        return self._graph
