"""Generate a world's dataset: sample the causal graph, render each picture, write the format.

One generator serves every world (:mod:`causalvae.worlds`). Every unit is drawn from the
world's graph by ancestral sampling under the noise convention (:mod:`causalvae.noise`);
its exogenous style from the world's style distribution. Everything is recorded: the
observed labels, every variable (hidden ones too), every U and the style values. The same
seed gives the same bytes.

Random streams are independent children of one ``SeedSequence(seed)``: 0 for the graph's
noise, 1 for the style, 2 for the label mask of ``label_fraction``, 3 for the splits. A
world may draw each unit's style knowing its values and split (``Plan.style_for``: the
morpho world's source digits are partitioned between the splits). Continuous variables are
recorded in ``labels_continuous.npy`` and ``truth_continuous.npy`` (:mod:`causalvae.data`).

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
    split = assign_splits(n, streams[3])
    style = plan.style_for(units.values, split, streams[1]) if plan.style_for else (plan.sample_style or renderer.sample_style)(n, streams[1])
    label_columns = [c for c in graph.observed if c not in graph.continuous]
    continuous_columns = [c for c in graph.observed if c in graph.continuous]
    labels = _columns(units.values, label_columns, n).astype(np.int16)
    numbers = _columns(units.values, continuous_columns, n)
    if label_fraction < 1.0:  # one mask over every observed column, in declared order
        keep = streams[2].random((n, len(label_columns) + len(continuous_columns))) < label_fraction
        labels[~keep[:, : len(label_columns)]] = MISSING
        numbers[~keep[:, len(label_columns) :]] = np.nan
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
            continuous_labels=numbers if continuous_columns else None,
            truth_values=_columns({**units.values, **{v: np.full(n, MISSING) for v in graph.continuous}}, graph.names, n),
            truth_continuous=_columns(units.values, graph.continuous, n) if graph.continuous else None,
            truth_noise=_columns(units.noise, graph.names, n),
            truth_style=style,
            style_fields=renderer.style_fields,
            meta={
                **plan.meta,
                "label_fraction": label_fraction,
                "image_parents": list(graph.image.parents) if graph.image else [],
            },
        )


def _columns(values, names, n: int) -> np.ndarray:
    """The named columns side by side, ``(n, len(names))`` (``(n, 0)`` for none)."""
    return np.stack([values[c] for c in names], axis=1) if names else np.zeros((n, 0))


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
