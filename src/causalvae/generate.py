"""Generate a world's dataset: sample the causal graph, render each scene, write the format.

Every scene is drawn from the scene graph by ancestral sampling under the noise convention
(:mod:`causalvae.noise`); its exogenous style is drawn from the renderer's style ranges.
Everything is recorded: the observed labels, every variable (hidden ones too), every U and
the style values. The same seed gives the same bytes.

Random streams are independent children of one ``SeedSequence(seed)``: 0 for the graph's
noise, 1 for the style, 2 for the label mask of ``label_fraction``, 3 for the splits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from causalvae.data import MISSING, DatasetBuilder, assign_splits
from causalvae.errors import CausalVAEError
from causalvae.graph import Graph
from causalvae.noise import sample

CHUNK = 2048


def generate_scenes(
    out: str | os.PathLike,
    n: int,
    *,
    seed: int = 0,
    resolution: int = 64,
    style: bool = True,
    label_fraction: float = 1.0,
    ranges=None,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write ``n`` scenes of the duel world to the dataset directory ``out``.

    ``style=False`` renders every scene with the neutral style (the original tutorial's
    one-picture-per-label-combination world). ``label_fraction`` keeps each observed label
    with that probability (a dropped label is stored as -1). ``progress`` is called with the
    number of scenes written so far.
    """
    from causalvae.worlds.scenes import LABELS, STYLE_FIELDS, SceneRenderer, StyleRanges

    if not 0.0 <= label_fraction <= 1.0:
        raise CausalVAEError(f"label fraction must be in [0, 1], got {label_fraction}")
    if n < 1:
        raise CausalVAEError(f"n must be at least 1, got {n}")
    ranges = ranges if ranges is not None else StyleRanges()
    renderer = SceneRenderer(resolution, ranges)
    graph = Graph.load("scenes")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    units = sample(graph, n, streams[0])
    styles = renderer.sample_style(n, streams[1]) if style else renderer.neutral_style(n)
    label_columns = list(graph.observed)
    labels = np.stack([units.values[c] for c in label_columns], axis=1).astype(np.int16)
    if label_fraction < 1.0:
        labels[streams[2].random(labels.shape) >= label_fraction] = MISSING
    split = assign_splits(n, streams[3])
    with DatasetBuilder(out, n, resolution, resolution, 3, force=force) as builder:
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            chunk_labels = {k: units.values[k][start:stop] for k in LABELS}
            chunk_style = {k: styles[k][start:stop] for k in STYLE_FIELDS}
            builder.images[start:stop] = renderer.render(chunk_labels, chunk_style)
            if progress is not None:
                progress(stop)
        return builder.finish(
            graph=graph,
            world="scenes",
            labels=labels,
            label_columns=label_columns,
            seed=seed,
            split=split,
            truth_values=np.stack([units.values[v] for v in graph.names], axis=1),
            truth_noise=np.stack([units.noise[v] for v in graph.names], axis=1),
            truth_style=np.stack([styles[k] for k in STYLE_FIELDS], axis=1),
            style_fields=STYLE_FIELDS,
            meta={
                "style": bool(style),
                "style_ranges": {k: list(v) for k, v in vars(ranges).items()},
                "label_fraction": label_fraction,
                "image_parents": list(graph.image.parents) if graph.image else [],
            },
        )
