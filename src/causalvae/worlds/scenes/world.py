"""The scene world behind the :class:`~causalvae.worlds.World` protocol.

Its graph is the built-in ``scenes`` graph; its style the seven fields of
:data:`~causalvae.worlds.scenes.render.STYLE_FIELDS` (each character's offset and size, the
background's time of day), drawn uniformly in :class:`StyleRanges`; its pictures RGB.
Datasets are written by :func:`causalvae.generate.generate` with the options ``style``
(False: every scene with the neutral style) and ``ranges`` (a :class:`StyleRanges`); on the
command line ``--no-style`` and ``--style-range NAME=LOW:HIGH`` (:func:`parse_style_ranges`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from causalvae.errors import CausalVAEError, unknown
from causalvae.graph import Graph
from causalvae.worlds import Option, Plan, Renderer, World, register
from causalvae.worlds.scenes.render import LABELS, STYLE_FIELDS, SceneRenderer, StyleRanges

if TYPE_CHECKING:
    from PIL import Image

    from causalvae.data import Dataset

#: Short names of characters and types in captions.
SHORT = {"Satyr": "Sat", "Golem": "Gol", "type1": "1", "type2": "2", "type3": "3"}


class ScenesRenderer(Renderer):
    """:class:`SceneRenderer` with style as an ``(N, 7)`` array and pictures as ``(N, 3, H, W)``."""

    style_fields = STYLE_FIELDS
    channels = 3

    def __init__(self, resolution: int = 64, ranges: StyleRanges | None = None):
        self.scene = SceneRenderer(resolution, ranges if ranges is not None else StyleRanges())
        self.resolution = self.scene.resolution

    def sample_style(self, n: int, rng: np.random.Generator) -> np.ndarray:
        style = self.scene.sample_style(n, rng)
        return np.stack([style[f] for f in STYLE_FIELDS], 1)

    def neutral_style(self, n: int) -> np.ndarray:
        style = self.scene.neutral_style(n)
        return np.stack([style[f] for f in STYLE_FIELDS], 1)

    def render(self, values: Mapping[str, np.ndarray], style: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.render_hwc(values, style).transpose(0, 3, 1, 2))

    def render_hwc(self, values: Mapping[str, np.ndarray], style: np.ndarray) -> np.ndarray:
        """The same pictures as ``(N, H, W, 3)``, the layout datasets store."""
        style = self.check_style(style)
        return self.scene.render(values, {f: style[:, k] for k, f in enumerate(STYLE_FIELDS)})


def parse_style_ranges(items: Sequence[str]) -> StyleRanges:
    """:class:`StyleRanges` with the ranges given as ``NAME=LOW:HIGH`` texts overridden.

        >>> parse_style_ranges(["scale=0.9:1.1"]).scale
        (0.9, 1.1)
    """
    overrides = {}
    for item in items:
        key, sep, span = item.partition("=")
        low, colon, high = span.partition(":")
        if not sep or not colon:
            raise CausalVAEError(f"--style-range {item!r}: write NAME=LOW:HIGH, e.g. scale=0.8:1.2")
        try:
            overrides[key.strip()] = (float(low), float(high))
        except ValueError:
            raise CausalVAEError(f"--style-range {item!r}: LOW and HIGH must be numbers") from None
    names = sorted(StyleRanges.__dataclass_fields__)
    for key in overrides:
        if key not in names:
            raise unknown("style range", key, names)
    return StyleRanges(**overrides)


class ScenesWorld(World):
    """Two game characters in a duel: who they are, what they do, how it ends."""

    name = "scenes"
    style_fields = STYLE_FIELDS
    binary = False
    channels = 3
    resolution = 64
    reference_queries = (
        ("P(. | reaction=Dying)", {"reaction": "Dying"}, {}),
        ("P(. | actor=Satyr, reactor=Golem)", {"actor": "Satyr", "reactor": "Golem"}, {}),
        ("P(. | do(actor_attack=High, reactor_defense=Low))", {}, {"actor_attack": "High", "reactor_defense": "Low"}),
        ("P(. | do(reaction=Dying))", {}, {"reaction": "Dying"}),
    )
    joint_interventions = (
        {"actor_attack": "High", "reactor_defense": "Low"},
        {"actor": "Golem", "action": "Attack"},
        {"reactor": "Satyr", "reactor_type": "type3", "reaction": "Dying"},
    )
    options = (
        Option("no-style", "style", "No exogenous style (one picture per label combination).", flag=True, parse=lambda given: not given),
        Option(
            "style-range", "ranges", "Override a style range, e.g. --style-range scale=0.8:1.2 (offset_x, offset_y, scale, background).",
            repeat=True, parse=parse_style_ranges,
        ),
    )

    def graph(self) -> Graph:
        return Graph.load(self.name)

    def renderer(self, resolution: int | None = None, ranges: StyleRanges | None = None) -> ScenesRenderer:
        return ScenesRenderer(self.resolution if resolution is None else resolution, ranges)

    def plan(self, resolution: int | None = None, *, style: bool = True, ranges: StyleRanges | None = None) -> Plan:
        ranges = ranges if ranges is not None else StyleRanges()
        renderer = self.renderer(resolution, ranges)
        graph = self.graph()

        def fill(images: np.ndarray, values: Mapping[str, np.ndarray], style_rows: np.ndarray, progress) -> None:
            from causalvae.generate import CHUNK

            for start in range(0, len(images), CHUNK):
                stop = min(len(images), start + CHUNK)
                images[start:stop] = renderer.render_hwc({k: values[k][start:stop] for k in LABELS}, style_rows[start:stop])
                if progress is not None:
                    progress(stop)

        return Plan(
            graph=graph,
            renderer=renderer,
            sample_style=renderer.sample_style if style else (lambda n, rng: renderer.neutral_style(n)),
            fill=fill,
            meta={
                "style": bool(style),
                "style_ranges": {k: list(v) for k, v in vars(ranges).items()},
            },
        )

    def caption(self, graph: Graph, labels: Mapping[str, int]) -> str:
        if not all(c in labels for c in LABELS):
            return super().caption(graph, labels)
        a, at, act, r, rt, rea = ("?" if int(labels[c]) < 0 else graph[c].values[int(labels[c])] for c in LABELS)
        return f"{SHORT.get(a, a)}{SHORT.get(at, at)} {act}\n{SHORT.get(r, r)}{SHORT.get(rt, rt)} {rea}"

    def sheet(self, ds: Dataset, columns: int = 8, scale: int = 2, limit: int = 48) -> Image.Image:
        """Every character x type x pose at least once, for the actor and for the reactor:
        pictures are picked greedily until every (character, type, action) and (character,
        type, reaction) combination is covered; the same labels are drawn again without
        style beside them, so what the style changes is plain. A dataset without recorded
        truth gets the plain sheet of its first pictures."""
        from PIL import Image

        from causalvae.pictures import contact_sheet, titled

        if not ds.manifest.get("truth_columns"):
            return super().sheet(ds, columns, scale, limit)
        names = ds.manifest["truth_columns"]
        tv = np.asarray(np.load(ds.root / "truth_values.npy", mmap_mode="r", allow_pickle=False))
        groups = [[names.index(c) for c in LABELS[:3]], [names.index(c) for c in LABELS[3:]]]
        picks = covering_indices(tv, groups)
        order = sorted(picks, key=lambda k: tuple(tv[k, groups[0] + groups[1]]))
        images = np.stack([ds.images[k] for k in order])
        captions = [self.caption(ds.graph, dict(zip(ds.label_columns, ds.labels[k].tolist()))) for k in order]
        styled = contact_sheet(images, captions, columns, scale)
        renderer = SceneRenderer(int(ds.manifest["resolution"][0]))
        labels = {c: tv[order, names.index(c)] for c in LABELS}
        plain = renderer.render(labels, renderer.neutral_style(len(order)))
        unstyled = contact_sheet(plain, captions, columns, scale)
        a = titled(styled, f"{ds.root.name}: {len(order)} scenes covering every character x type x pose (with style)")
        b = titled(unstyled, "the same labels without style")
        sheet = Image.new("RGB", (max(a.width, b.width), a.height + b.height + 8), (255, 255, 255))
        sheet.paste(a, (0, 0))
        sheet.paste(b, (0, a.height + 8))
        return sheet


def covering_indices(truth_values: np.ndarray, groups: list[list[int]]) -> list[int]:
    """Greedy set cover: rows until every value combination of each column group is seen.

    ``groups`` lists column-index groups (e.g. the actor's and the reactor's columns); the
    result covers every combination of each group that occurs in the data.
    """
    keys = [np.ravel_multi_index(truth_values[:, g].T, [int(truth_values[:, c].max()) + 1 for c in g]) for g in groups]
    needed = [set(np.unique(k).tolist()) for k in keys]
    chosen: list[int] = []
    while any(needed):
        gains = np.zeros(len(truth_values), dtype=np.int64)
        for k, need in zip(keys, needed):
            gains += np.isin(k, list(need))
        best = int(np.argmax(gains))
        if gains[best] == 0:
            break
        chosen.append(best)
        for k, need in zip(keys, needed):
            need.discard(int(k[best]))
    return chosen


WORLD = register(ScenesWorld())
