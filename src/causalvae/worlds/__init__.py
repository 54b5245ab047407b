"""Worlds: one package per world behind one protocol, :class:`World`.

A world is everything the rest of the library needs to know about where pictures come from:

- its causal **graph** (:meth:`World.graph`);
- its exogenous **style**: the variation the labels do not explain (:attr:`World.style_fields`);
- whether its pictures are **binary** (0/1, one channel) and how many channels they have;
- its true image mechanism, the **renderer** (:meth:`World.renderer`): how to draw style and
  how to draw the picture of given labels with given style. Metrics use it to draw what a
  picture *should* be, the oracle to draw fresh training pictures, ``generate`` to write
  datasets. A world without one (a user's imported dataset) is still a world: it can be
  trained, shown, sampled, counterfactualised and evaluated on every score that needs no
  renderer;
- which readings of a picture count as right (:meth:`World.accepted`): the true value, or
  for an **ambiguous** variable every value the picture cannot be told from (a square's
  orientation is only defined modulo a quarter turn);
- its generator **options** (:attr:`World.options`), which ``causalvae generate WORLD``
  takes on the command line and :meth:`World.plan` receives;
- the **reference queries** and **joint interventions** its evaluation report scores, and
  the report's **goals** (its own targets, or the project's defaults);
- how to **caption** a picture, and how to draw a labelled **sheet** of a dataset.

Worlds register themselves (every package under ``worlds/`` is imported on first use);
:func:`get` returns one by name and :func:`for_dataset` the world of a dataset (its
registered world, or an :class:`~causalvae.worlds.imported.ImportedWorld` built from the
dataset itself). Adding a world is one package under ``worlds/`` that subclasses
:class:`World` and calls :func:`register`::

    class Dots(World):
        name = "dots"
        ...
    register(Dots())
    worlds.get("dots").renderer().render(values, style)
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from causalvae.errors import CausalVAEError, unknown
from causalvae.graph import Graph

if TYPE_CHECKING:
    from PIL import Image

    from causalvae.data import Dataset


#: A reference query of the evaluation report: (its label, evidence, interventions).
ReferenceQuery = tuple[str, dict[str, str], dict[str, str]]


class Renderer:
    """A world's true image mechanism at one size: draw style, draw pictures.

    ``values`` maps (at least) the image's parents to value indices of the world's graph;
    ``style`` is float64 ``(N, S)`` in the order of :attr:`style_fields`, as datasets record it.
    """

    style_fields: tuple[str, ...] = ()
    channels: int = 3
    resolution: int = 64

    def sample_style(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` styles drawn from the world's style distribution: float64 ``(n, S)``."""
        raise NotImplementedError

    def render(self, values: Mapping[str, np.ndarray], style: np.ndarray) -> np.ndarray:
        """The pictures of ``values`` with ``style``: uint8 ``(N, C, H, W)``."""
        raise NotImplementedError

    def best_iou(self, values: Mapping[str, np.ndarray], style: np.ndarray, pictures: np.ndarray) -> np.ndarray:
        """Per picture, the IoU of binary ``pictures`` against the true render of ``values``
        with ``style`` (worlds whose pictures have symmetric equivalents take the best)."""
        from causalvae.metrics import iou

        return iou(self.render(values, style), pictures)

    def style_grid(self) -> np.ndarray | None:
        """Every style the renderer draws, float64 ``(K, S)``, when there are few enough to try
        each one (None: the style is not enumerable, as a continuous one is not)."""
        return None

    def nearest_iou(self, values: Mapping[str, np.ndarray], pictures: np.ndarray, chunk: int = 32) -> np.ndarray | None:
        """Per picture, the best IoU of binary ``pictures`` against the true renders of
        ``values`` under every style of :meth:`style_grid`: how well each picture would score
        if its style (what the graph does not name, which a model keeps in z) were free.
        None when the style is not enumerable."""
        from causalvae.metrics import iou

        grid = self.style_grid()
        if grid is None:
            return None
        k, n = len(grid), len(pictures)
        out = np.empty(n)
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            vals = {name: np.repeat(np.asarray(v)[a:b], k) for name, v in values.items()}
            renders = self.render(vals, np.tile(grid, (b - a, 1)))
            pics = np.repeat(np.asarray(pictures[a:b]), k, axis=0)
            out[a:b] = iou(renders, pics).reshape(b - a, k).max(1)
        return out

    def check_style(self, style: np.ndarray) -> np.ndarray:
        style = np.asarray(style, dtype=np.float64)
        if style.ndim != 2 or style.shape[1] != len(self.style_fields):
            raise CausalVAEError(f"style must have shape (N, {len(self.style_fields)}), got {style.shape}")
        return style


@dataclass
class Plan:
    """How ``generate`` writes one dataset of a world (see :meth:`World.plan`).

    ``sample_style(n, rng)`` draws the recorded style; ``fill(images, values, style, progress)``
    writes uint8 ``(N, H, W, C)`` pictures into ``images`` (default: render in chunks);
    ``extra_files(values, style)`` returns further ``{name.npy: array}`` files for the dataset.
    A world whose style depends on the units sets ``style_for(values, split, rng)``: each
    unit's style given its values and its split (int8: 0 train, 1 val, 2 test), in place of
    ``sample_style``.
    """

    graph: Graph
    renderer: Renderer
    meta: dict[str, Any] = field(default_factory=dict)
    sample_style: Callable[[int, np.random.Generator], np.ndarray] | None = None
    fill: Callable[..., None] | None = None
    extra_files: Callable[[Mapping[str, np.ndarray], np.ndarray], dict[str, np.ndarray]] | None = None
    style_for: Callable[[Mapping[str, np.ndarray], np.ndarray, np.random.Generator], np.ndarray] | None = None


@dataclass(frozen=True)
class Option:
    """One of a world's generator options, as ``causalvae generate WORLD`` takes it:
    ``--NAME VALUE``, or ``--NAME`` alone when ``flag``; given any number of times when
    ``repeat``. :meth:`World.plan` receives ``keyword=parse(given)``, where ``given`` is the
    text (None when absent), the list of texts (``repeat``) or True/False (``flag``)::

        Option("hide", "hide", "Withhold this factor's labels (repeatable).", repeat=True)
    """

    name: str
    keyword: str
    help: str
    flag: bool = False
    repeat: bool = False
    parse: Callable[[Any], Any] | None = None

    def value(self, given: Any) -> Any:
        """The keyword argument of :meth:`World.plan` for what the command line gave."""
        return given if self.parse is None else self.parse(given)


class World:
    """The protocol every world follows (subclass it and override what differs)."""

    #: The world's name, as datasets record it in their manifest.
    name: str = ""
    #: The exogenous style fields of its pictures, as datasets record them.
    style_fields: tuple[str, ...] = ()
    #: Whether its pictures are binary (stored 0/1).
    binary: bool = False
    #: Channels of its pictures (3: RGB, 1: grey or binary).
    channels: int = 3
    #: The default picture size.
    resolution: int = 64
    #: The evaluation report's reference queries: (label, evidence, do).
    reference_queries: tuple[ReferenceQuery, ...] = (("P(.)", {}, {}),)
    #: Interventions on several variables scored beside every single-variable one.
    joint_interventions: tuple[dict[str, str], ...] = ()
    #: The evaluation report's targets: ``(figure, "<=" or ">=", target)`` rows naming figures
    #: of :mod:`causalvae.report` (None: its ``DEFAULT_GOALS``, the image mechanism's).
    goals: tuple[tuple[str, str, float], ...] | None = None
    #: Whether the report also sums its counterfactuals up per intervened factor (for worlds
    #: whose factors have many values, each intervention being one of them).
    factor_summary: bool = False
    #: Its generator options beyond those every world has (see :meth:`plan`).
    options: tuple[Option, ...] = ()
    #: Renders in the oracle's training pool (:func:`causalvae.oracle.train_oracle`); 0:
    #: the oracle trains on fresh renders at every step (worlds that render fast).
    oracle_pool: int = 0
    #: The oracle's training pictures are moved by up to this many pixels each way, at
    #: random (:func:`causalvae.pictures.shifted`): for a world none of whose labels is a
    #: position (0: never moved).
    oracle_shift: int = 0
    #: The labelled variables a picture may leave ambiguous, each with how its readings are
    #: scored (shown in the evaluation report): for these, :meth:`accepted` may accept more
    #: than the true value. Empty for most worlds.
    ambiguous: dict[str, str] = {}
    #: The variables whose intervention has no true counterfactual picture of the same unit,
    #: each with what its true render stands in with (shown in the report). Their
    #: counterfactuals keep their pixel MAE rows, but the goal comparing the counterfactual's
    #: pixel MAE with the reconstruction's leaves them out. Empty for most worlds.
    stand_in_renders: dict[str, str] = {}

    @property
    def renders(self) -> bool:
        """Whether the world has a true image mechanism (a renderer)."""
        return type(self).renderer is not World.renderer

    def graph(self) -> Graph:
        """The world's causal graph."""
        raise NotImplementedError

    def renderer(self, resolution: int | None = None, **options: Any) -> Renderer:
        """The true image mechanism at ``resolution`` (default :attr:`resolution`)."""
        raise CausalVAEError(f"the {self.name} world has no renderer: its pictures come from a dataset, not from a mechanism this library knows")

    def plan(self, resolution: int | None = None, **options: Any) -> Plan:
        """How to write a dataset of this world (``options``: the world's generator options)."""
        if options:
            raise CausalVAEError(f"the {self.name} world takes no generator option {', '.join(sorted(options))}")
        return Plan(graph=self.graph(), renderer=self.renderer(resolution))

    def accepted(self, column: str, card: int, values: Mapping[str, np.ndarray], style: np.ndarray | None) -> np.ndarray:
        """Which readings of ``column`` a perfect reader may give for each picture: bool
        ``(N, card)``, True for every value it cannot tell from the true one by looking.

        ``values`` maps the graph's variables to the value indices the pictures were drawn
        with; ``style`` is their style as datasets record it, or None when it is unknown (a
        generated picture's style is the model's choice). The default, for every column not
        in :attr:`ambiguous`, is the one-hot of the true value (a value of -1, missing,
        accepts nothing)::

            world.accepted("action", 3, {"action": np.array([2, -1])}, None)
            # [[False, False, True], [False, False, False]]
        """
        v = np.asarray(values[column], dtype=np.int64)
        out = np.zeros((len(v), card), dtype=bool)
        seen = np.flatnonzero(v >= 0)
        out[seen, v[seen]] = True
        return out

    def caption(self, graph: Graph, labels: Mapping[str, int]) -> str:
        """A short caption of a picture's labels (``-1``: missing, shown as ``?``)."""
        return "\n".join(_value(graph, c, v) for c, v in list(labels.items())[:3])

    def dataset_caption(self, ds: Dataset, k: int) -> str:
        """The caption of picture ``k`` of a dataset: :meth:`caption` of its discrete labels, then
        each continuous label rounded to 3 digits (``?`` when missing), a line each."""
        text = self.caption(ds.graph, dict(zip(ds.label_columns, ds.labels[k].tolist())))
        extra = [f"{c}=?" if np.isnan(x) else f"{c}={x:.3g}" for c, x in zip(ds.continuous_columns, ds.continuous_labels[k])]
        return "\n".join([text, *extra]) if extra else text

    def sheet(self, ds: Dataset, columns: int = 8, scale: int = 2, limit: int = 48) -> Image.Image:
        """A labelled contact sheet of a dataset of this world: its first ``limit`` pictures."""
        from causalvae.pictures import contact_sheet, display, titled

        n = len(ds.images)
        count = min(limit, n)
        scale = max(scale, -(-96 // ds.images.shape[1]))  # tiles of 96 px at least: room for a caption line
        images = display(np.stack([ds.images[k] for k in range(count)]), self.binary)
        captions = [self.dataset_caption(ds, k) for k in range(count)]
        return titled(contact_sheet(images, captions, columns, scale), f"{ds.root.name}: first {count} of {n}")

    def __repr__(self) -> str:
        return f"<world {self.name}>"


def _value(graph: Graph, column: str, v: int) -> str:
    return "?" if int(v) < 0 else str(graph[column].values[int(v)])


_REGISTRY: dict[str, World] = {}


def register(world: World) -> World:
    """Make ``world`` known to :func:`get` by its name (a later registration replaces it)."""
    if not isinstance(world, World) or not world.name:
        raise CausalVAEError("register a World instance with a name")
    _REGISTRY[world.name] = world
    return world


def unregister(name: str) -> None:
    """Forget the world called ``name`` (a world registered for a while, as tests do)."""
    _REGISTRY.pop(name, None)


def _load_builtins() -> None:
    """Import every package under ``worlds/`` (on first use), so that each registers its world."""
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg:
            importlib.import_module(f"{__name__}.{info.name}")


def names() -> list[str]:
    """The names of every registered world."""
    _load_builtins()
    return sorted(_REGISTRY)


def get(name: str | World) -> World:
    """The world called ``name`` (a World is returned as it is)."""
    if isinstance(name, World):
        return name
    _load_builtins()
    if name not in _REGISTRY:
        raise unknown("world", str(name), sorted(_REGISTRY))
    return _REGISTRY[name]


def for_dataset(ds: Dataset) -> World:
    """The world of a dataset: the registered world its manifest names, else (an imported
    dataset, or a world this process does not know) a world without a renderer built from
    the dataset's own graph and pictures."""
    _load_builtins()
    name = ds.manifest.get("world")
    if name in _REGISTRY:
        return _REGISTRY[name]
    from causalvae.worlds.imported import ImportedWorld

    return ImportedWorld.of(ds)
