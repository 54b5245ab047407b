"""Generate a world's dataset: sample the causal graph, render each picture, write the format.

One generator serves every world (:mod:`causalvae.worlds`). Every unit is drawn from the
world's graph by ancestral sampling under the noise convention (:mod:`causalvae.noise`);
its exogenous style from the world's style distribution. Everything is recorded: the
observed labels, every variable (hidden ones too), every U and the style values. The same
seed gives the same bytes.

Random streams are independent children of one ``SeedSequence(seed)``: 0 for the graph's
noise, 1 for the style, 2 for the label mask of ``label_fraction``, 3 for the splits.

    >>> generate("scenes", "data/scenes", 20000, seed=0)            # doctest: +SKIP
    >>> generate("sprites", "data/sprites", 20000, hide=["posY"])   # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from causalvae import worlds
from causalvae.data import MISSING, DatasetBuilder, assign_splits
from causalvae.errors import CausalVAEError
from causalvae.noise import sample

CHUNK = 2048


def generate(
    world: str | worlds.World,
    out: str | os.PathLike,
    n: int,
    *,
    seed: int = 0,
    resolution: int | None = None,
    label_fraction: float = 1.0,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    **options: Any,
) -> Path:
    """Write ``n`` pictures of ``world`` (a name or a :class:`~causalvae.worlds.World`) to
    the dataset directory ``out``.

    ``label_fraction`` keeps each observed label with that probability (a dropped label is
    stored as -1). ``progress`` is called with the number of pictures written so far.
    ``options`` are the world's own (the scene world: ``style``, ``ranges``; the sprites
    world: ``source``, ``hide``; see :meth:`~causalvae.worlds.World.plan`).
    """
    w = worlds.get(world)
    if not 0.0 <= label_fraction <= 1.0:
        raise CausalVAEError(f"label fraction must be in [0, 1], got {label_fraction}")
    if n < 1:
        raise CausalVAEError(f"n must be at least 1, got {n}")
    try:
        inspect.signature(w.plan).bind(resolution, **options)
    except TypeError as exc:  # an option this world does not have
        raise CausalVAEError(f"the {w.name} world's generator: {exc}") from None
    plan = w.plan(resolution, **options)
    graph, renderer = plan.graph, plan.renderer
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    units = sample(graph, n, streams[0])
    style = (plan.sample_style or renderer.sample_style)(n, streams[1])
    label_columns = list(graph.observed)
    labels = np.stack([units.values[c] for c in label_columns], axis=1).astype(np.int16).reshape(n, len(label_columns))
    if label_fraction < 1.0:
        labels[streams[2].random(labels.shape) >= label_fraction] = MISSING
    split = assign_splits(n, streams[3])
    r = renderer.resolution
    with DatasetBuilder(out, n, r, r, renderer.channels, force=force) as builder:
        (plan.fill or _fill(renderer))(builder.images, units.values, style, progress)
        for name, array in (plan.extra_files(units.values, style) if plan.extra_files else {}).items():
            np.save(builder.stage / name, array, allow_pickle=False)
        return builder.finish(
            graph=graph,
            world=w.name,
            labels=labels,
            label_columns=label_columns,
            seed=seed,
            split=split,
            truth_values=np.stack([units.values[v] for v in graph.names], axis=1),
            truth_noise=np.stack([units.noise[v] for v in graph.names], axis=1),
            truth_style=style,
            style_fields=renderer.style_fields,
            meta={
                **plan.meta,
                "label_fraction": label_fraction,
                "image_parents": list(graph.image.parents) if graph.image else [],
            },
        )


def _fill(renderer: worlds.Renderer):
    """Render in chunks into the dataset's ``(N, H, W, C)`` pictures."""

    def fill(images: np.ndarray, values, style: np.ndarray, progress) -> None:
        for start in range(0, len(images), CHUNK):
            stop = min(len(images), start + CHUNK)
            chunk = renderer.render({k: v[start:stop] for k, v in values.items()}, style[start:stop])
            images[start:stop] = chunk.transpose(0, 2, 3, 1)
            if progress is not None:
                progress(stop)

    return fill
