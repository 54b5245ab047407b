"""Generate a world's dataset: sample the causal graph, render each scene, write the format.

Every scene is drawn from the scene graph by ancestral sampling under the noise convention
(:mod:`causalvae.noise`); its exogenous style is drawn from the renderer's style ranges.
Everything is recorded: the observed labels, every variable (hidden ones too), every U and
the style values. The same seed gives the same bytes.

Random streams are independent children of one ``SeedSequence(seed)``: 0 for the graph's
noise, 1 for the style, 2 for the label mask of ``label_fraction``, 3 for the splits.

:func:`generate_scenes` writes the scene world; :func:`generate_sprites` the sprites world
(dSprites through the ``sprites`` graph; its style is the grid class inside each bin).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
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


def generate_sprites(
    out: str | os.PathLike,
    n: int,
    *,
    seed: int = 0,
    source: str | os.PathLike | None = None,
    hide: Sequence[str] | str = (),
    label_fraction: float = 1.0,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write ``n`` sprites of the sprites world (dSprites through a causal graph) to ``out``.

    Factors are drawn from the built-in ``sprites`` graph under the noise convention; the
    grid class within each bin of orientation, posX and posY (the style,
    :data:`~causalvae.worlds.dsprites.STYLE_FIELDS`) uniformly. Each image is the dSprites
    grid image of those classes: rendered here (``source=None``), or read from a grid
    directory (``causalvae generate dsprites``) or the official .npz archive. Images are
    binary, stored 0/1 with one channel. Besides the shared truth files the dataset holds
    ``truth_grid.npy``: each image's official factor classes ``(N, 6)`` int64.

    ``hide`` lists factors whose labels are withheld: they stay in the graph (the dataset's
    ``graph.yaml`` marks them ``observed: false``) as hidden parents of the image, and their
    true values stay in the truth files. ``label_fraction`` keeps each remaining label with
    that probability. Streams of ``SeedSequence(seed)``: 0 the graph's noise, 1 the style,
    2 the label mask, 3 the splits.
    """
    from causalvae.graph import Variable
    from causalvae.worlds.dsprites import GRAPH_BINS, RESOLUTION, STYLE_FIELDS, graph_classes, images, latents_to_index, read_images

    if not 0.0 <= label_fraction <= 1.0:
        raise CausalVAEError(f"label fraction must be in [0, 1], got {label_fraction}")
    if n < 1:
        raise CausalVAEError(f"n must be at least 1, got {n}")
    graph = Graph.load("sprites")
    hidden = [hide] if isinstance(hide, str) else list(hide)
    for name in hidden:
        graph[name]  # an unknown name is refused with the valid ones
    if hidden:
        graph = Graph(
            [Variable(v.name, v.values, v.parents, v.cpt, v.observed and v.name not in hidden, v.description) for v in (graph[k] for k in graph.names)],
            graph.image, graph.name, graph.description,
        )
    if source is not None and not Path(source).exists():
        raise CausalVAEError(f"{source}: no such grid directory or archive (causalvae never downloads dSprites)")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    units = sample(graph, n, streams[0])
    offsets = {f: streams[1].integers(0, GRAPH_BINS[f.removesuffix("_offset")], n) for f in STYLE_FIELDS}
    classes = graph_classes(units.values, offsets)
    label_columns = list(graph.observed)
    labels = np.stack([units.values[c] for c in label_columns], axis=1).astype(np.int16).reshape(n, len(label_columns))
    if label_fraction < 1.0:
        labels[streams[2].random(labels.shape) >= label_fraction] = MISSING
    split = assign_splits(n, streams[3])
    with DatasetBuilder(out, n, RESOLUTION, RESOLUTION, 1, force=force) as builder:
        if source is None:
            for start in range(0, n, CHUNK):
                stop = min(n, start + CHUNK)
                builder.images[start:stop, :, :, 0] = images(classes[start:stop])
                if progress is not None:
                    progress(stop)
        else:
            read_images(source, latents_to_index(classes), out=builder.images[:, :, :, 0])
            if progress is not None:
                progress(n)
        np.save(builder.stage / "truth_grid.npy", classes.astype(np.int64), allow_pickle=False)
        return builder.finish(
            graph=graph,
            world="sprites",
            labels=labels,
            label_columns=label_columns,
            seed=seed,
            split=split,
            truth_values=np.stack([units.values[v] for v in graph.names], axis=1),
            truth_noise=np.stack([units.noise[v] for v in graph.names], axis=1),
            truth_style=np.stack([offsets[f] for f in STYLE_FIELDS], axis=1).astype(np.float64),
            style_fields=STYLE_FIELDS,
            meta={
                "label_fraction": label_fraction,
                "hidden": hidden,
                "image_parents": list(graph.image.parents) if graph.image else [],
                "image_values": "binary: 0 background, 1 sprite",
                "grid_bins": dict(GRAPH_BINS),
                "grid_source": "rendered by causalvae" if source is None else str(source),
            },
        )
