"""The noise convention: how every variable is a deterministic function of its parents and U.

One convention, used by every part of the project (the worlds' generators, the deep model,
the twin network of :mod:`causalvae.exact`)::

    U_V ~ Uniform[0, 1)                      (float64, one per variable and unit)
    cdf = cumsum(CPT row of V)               (in V's listed value order, rounded to 12 decimals;
                                              last entry set to 1)
    V   = searchsorted(cdf, U_V, side="right")

Continuous variables (:mod:`causalvae.continuous`) have their own U: N(0, 1) for a linear
mechanism, Uniform[0, 1) through the inverse CDF for a root distribution; on a mixed graph
:func:`draw_noise` and :func:`propagate` follow that module.

Within a world this reproduces the CPT exactly. Across worlds (factual and counterfactual) it
couples the potential outcomes through the shared U_V: that coupling is an *assumption no
data can test*, and reordering a variable's values changes counterfactual answers (never
interventional or conditional ones).

Because V only changes where U_V crosses a breakpoint of some row's cdf, the continuous U_V
can be replaced exactly by a discrete cell index: the cells between the merged breakpoints of
all rows of V's table (:func:`noise_cells`). That is what makes counterfactuals exact.

    >>> import numpy as np
    >>> from causalvae.noise import value_from_noise, cdf
    >>> int(value_from_noise(cdf(np.array([0.2, 0.5, 0.3])), np.float64(0.69)))
    1
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from causalvae.errors import CausalVAEError
from causalvae.graph import Graph


#: Breakpoints are rounded to this many decimals, so that breakpoints equal in exact
#: arithmetic (0.3 + 0.4 and 0.7) coincide and a row summing to 1 - 1e-16 ends at 1.
CDF_DECIMALS = 12


def cdf(cpt: np.ndarray) -> np.ndarray:
    """Cumulative sums of CPT rows along the last axis, rounded to :data:`CDF_DECIMALS`
    decimals, the last entry set to exactly 1.

    The rounding moves a breakpoint by at most 5e-13: probabilities are reproduced to that
    precision, and a value whose probability is below it is never drawn. Without it, float
    error would open cells of width ~1e-16 that exist in no row's exact table, and
    conditioning on an impossible event could find "probability" in them.
    """
    c = np.round(np.cumsum(np.asarray(cpt, dtype=np.float64), axis=-1), CDF_DECIMALS)
    c[..., -1] = 1.0
    return np.minimum(c, 1.0)


def value_from_noise(cdf_rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``searchsorted(cdf_row, u, side='right')`` for each row/u pair (broadcast).

    ``cdf_rows`` has the values on its last axis; ``u`` broadcasts against the others.
    Counting breakpoints ``<= u`` is searchsorted's right-side rule, vectorised.
    """
    u = np.asarray(u, dtype=np.float64)
    return np.sum(cdf_rows <= u[..., None], axis=-1).astype(np.int64)


def noise_cells(cpt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Discretise U_V exactly: the cells between all rows' cdf breakpoints.

    Returns ``(probs, f)``: ``probs[k]`` is the length of cell ``k`` (they sum to 1) and
    ``f[*parents, k]`` is V's value for every U in cell ``k`` under that parent row.
    """
    c = cdf(cpt)
    points = np.unique(np.concatenate([[0.0], c.ravel(), [1.0]]))
    points = points[(points >= 0.0) & (points <= 1.0)]
    lefts, rights = points[:-1], points[1:]
    keep = rights > lefts
    lefts, rights = lefts[keep], rights[keep]
    probs = rights - lefts
    # Every u in [left, right) crosses the same breakpoints as u = left.
    f = value_from_noise(c[..., None, :], lefts)
    return probs, f


@dataclass(frozen=True)
class Sample:
    """Ancestral samples: each variable's value indices and the U that produced them."""

    values: dict[str, np.ndarray]
    noise: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.noise.values())))

    def labels(self, graph: Graph, name: str) -> list[str]:
        """The value names of ``name`` for every sample."""
        vals = graph[name].values
        return [vals[i] for i in self.values[name]]


def draw_noise(graph: Graph, n: int, seed: int | np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Draw U for ``n`` units: one float64 Uniform[0, 1) column per variable.

    The columns are drawn as one ``(n, len(graph))`` block in declared variable order, so the
    same seed gives the same units' noise whatever is later intervened on.
    """
    if graph.mixed:  # continuous variables: their convention is in causalvae.continuous
        from causalvae import continuous

        return continuous.draw_noise(graph, n, seed)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    block = rng.random((n, len(graph)), dtype=np.float64)
    return {name: block[:, i].copy() for i, name in enumerate(graph.names)}


def propagate(
    graph: Graph, noise: Mapping[str, np.ndarray], do: Mapping[str, str | int] | None = None
) -> dict[str, np.ndarray]:
    """Compute every variable from its parents and its U, in topological order.

    With ``do``, the intervened variables take their values and their U is ignored: applied to
    recorded noise this gives each unit's true counterfactual world. A value is a name or an
    index, or one index per unit (an array); on a mixed graph a continuous variable's is a
    number (or one per unit), and its mechanism computes it (:func:`causalvae.continuous.value_of`).
    """
    do = dict(do or {})
    for name in do:
        graph[name]
    value_of, intervened = _value_of, intervention_column
    if graph.mixed:
        from causalvae import continuous

        value_of, intervened = continuous.value_of, continuous.intervention_column
    n = len(next(iter(noise.values()))) if noise else 0
    values: dict[str, np.ndarray] = {}
    for name in graph.topological_order:
        var = graph[name]
        if name in do:
            values[name] = intervened(var, do[name], n)
            continue
        if name not in noise:
            raise KeyError(f"no noise given for variable '{name}'")
        values[name] = value_of(var, values, noise[name])
    return values


def _value_of(var, values: Mapping[str, np.ndarray], u: np.ndarray) -> np.ndarray:
    """A discrete variable's value index for each unit from its parents' values and its U."""
    rows = cdf(var.cpt)[tuple(values[p] for p in var.parents)] if var.parents else cdf(var.cpt)
    return value_from_noise(rows, u)


def intervention_column(var, value: str | int | np.ndarray, n: int) -> np.ndarray:
    """The value indices of ``do(var=value)`` for ``n`` units: a value name or index, or one
    index per unit."""
    if isinstance(value, np.ndarray):
        v = value.astype(np.int64)
        if v.shape != (n,) or (v < 0).any() or (v >= var.card).any():
            raise CausalVAEError(f"do({var.name}) per unit needs {n} value indices in 0..{var.card - 1}")
        return v
    return np.full(n, var.index(value), dtype=np.int64)


def sample(
    graph: Graph,
    n: int,
    seed: int | np.random.Generator | None = None,
    do: Mapping[str, str | int] | None = None,
) -> Sample:
    """Ancestral sampling of ``n`` units under the noise convention, recording every U.

    ``sample(g, n, seed)`` and ``sample(g, n, seed, do=...)`` share their noise, so together
    they are the same units' factual and counterfactual worlds.
    """
    noise = draw_noise(graph, n, seed)
    return Sample(propagate(graph, noise, do), noise)
