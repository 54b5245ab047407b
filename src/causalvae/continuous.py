"""Continuous variables: their mechanisms written as data, and their noise convention.

A continuous variable is a deterministic, invertible function of its parents and one
exogenous number U (documented in ``docs/graph-format.md``):

- a **linear mechanism** (conditional linear Gaussian through a link)::

      x = g(a + sum_j b_j * parent_j + s * U),   U ~ N(0, 1)

  where the sum runs over the continuous parents, ``a``, ``b`` and ``s > 0`` may depend on
  the configuration of the discrete parents, and ``g`` is ``identity``, ``exp``,
  ``softplus`` or the affine ``sigmoid`` ``lo + (hi - lo) * sigmoid(.)``;
- a **root distribution**, drawn through its inverse CDF: ``x = F^-1(U)``, U ~ Uniform(0, 1),
  with F one of ``normal(mean, sd)``, ``gamma(concentration, rate, shift)``,
  ``uniform(low, high)``, ``beta(a, b, low, high)``.

A discrete variable may have continuous parents through a **softmax** of linear logits,
``P(v = k | parents) = softmax_k(c_k + sum_j w_kj * parent_j)`` (``c`` and ``w`` may depend on
the discrete parents); its noise convention is the discrete one (:mod:`causalvae.noise`).

Because every mechanism is invertible in its noise, abduction is exact: given a unit's
variable and its parents, :func:`abduct` recovers U, so a counterfactual given fully
observed continuous parents is deterministic.

    >>> from causalvae.graph import Graph
    >>> g = Graph.load("morpho")
    >>> s = sample(g, 3, seed=0)
    >>> bool(np.allclose(abduct(g, s.values)["intensity"], s.noise["intensity"]))
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from causalvae.errors import CausalVAEError, GraphError, unknown
from causalvae import noise
from causalvae.graph import Graph, Variable, check_name
from causalvae.noise import Sample, propagate, sample  # the convention's one loop serves mixed graphs too

LINKS = ("identity", "exp", "softplus", "sigmoid")
FAMILIES = {
    "normal": {"mean": None, "sd": None},
    "gamma": {"concentration": None, "rate": None, "shift": 0.0},
    "uniform": {"low": None, "high": None},
    "beta": {"a": None, "b": None, "low": 0.0, "high": 1.0},
}

#: Uniform noise is kept inside [TINY, 1 - 2^-53] so that inverse CDFs stay finite.
TINY = 1e-300


class ContinuousError(CausalVAEError):
    """A continuous variable used where only a discrete one makes sense (or the reverse)."""


# ---------------------------------------------------------------------------- links


@dataclass(frozen=True)
class Link:
    """``g`` of a linear mechanism, with its inverse and the log-derivative of the inverse."""

    name: str = "identity"
    lo: float = 0.0
    hi: float = 1.0

    @property
    def support(self) -> tuple[float, float]:
        if self.name == "identity":
            return (-math.inf, math.inf)
        if self.name in ("exp", "softplus"):
            return (0.0, math.inf)
        return (self.lo, self.hi)

    def __call__(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        if self.name == "identity":
            return t
        if self.name == "exp":
            return np.exp(t)
        if self.name == "softplus":
            return np.logaddexp(0.0, t)
        return self.lo + (self.hi - self.lo) * special.expit(t)

    def inverse(self, x: np.ndarray) -> np.ndarray:
        """``g^-1(x)``; outside the support it is nan."""
        x = np.asarray(x, dtype=np.float64)
        lo, hi = self.support
        inside = (x > lo) & (x < hi)
        xs = np.where(inside, x, np.nan)
        if self.name == "identity":
            return xs
        if self.name == "exp":
            return np.log(xs)
        if self.name == "softplus":
            return xs + np.log(-np.expm1(-xs))  # log(exp(x) - 1), stable for small and large x
        return special.logit((xs - self.lo) / (self.hi - self.lo))

    def log_dinverse(self, x: np.ndarray) -> np.ndarray:
        """``log |d g^-1(x) / dx|`` (the change of variables of a density)."""
        x = np.asarray(x, dtype=np.float64)
        if self.name == "identity":
            return np.zeros_like(x)
        if self.name == "exp":
            return -np.log(x)
        if self.name == "softplus":
            return -np.log(-np.expm1(-x))
        p = (x - self.lo) / (self.hi - self.lo)
        return -np.log(p) - np.log1p(-p) - math.log(self.hi - self.lo)


# ---------------------------------------------------------------------------- roots


@dataclass(frozen=True)
class Root:
    """A root's named distribution, drawn as ``x = F^-1(U)`` with U ~ Uniform(0, 1)."""

    family: str
    params: tuple[tuple[str, float], ...]

    def p(self, key: str) -> float:
        return dict(self.params)[key]

    @property
    def support(self) -> tuple[float, float]:
        f = self.family
        if f == "normal":
            return (-math.inf, math.inf)
        if f == "gamma":
            return (self.p("shift"), math.inf)
        return (self.p("low"), self.p("high"))

    def ppf(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        f = self.family
        if f == "normal":
            return self.p("mean") + self.p("sd") * special.ndtri(u)
        if f == "gamma":
            return self.p("shift") + special.gammaincinv(self.p("concentration"), u) / self.p("rate")
        lo, hi = self.p("low"), self.p("high")
        if f == "uniform":
            return lo + (hi - lo) * u
        return lo + (hi - lo) * special.betaincinv(self.p("a"), self.p("b"), u)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        f = self.family
        if f == "normal":
            return special.ndtr((x - self.p("mean")) / self.p("sd"))
        if f == "gamma":
            return special.gammainc(self.p("concentration"), np.maximum(x - self.p("shift"), 0.0) * self.p("rate"))
        lo, hi = self.p("low"), self.p("high")
        t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
        return t if f == "uniform" else special.betainc(self.p("a"), self.p("b"), t)

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        lo, hi = self.support
        inside = (x > lo) & (x < hi) if math.isfinite(lo) else (x < hi)
        f = self.family
        with np.errstate(divide="ignore", invalid="ignore"):
            if f == "normal":
                z = (x - self.p("mean")) / self.p("sd")
                out = -0.5 * z * z - 0.5 * math.log(2 * math.pi) - math.log(self.p("sd"))
            elif f == "gamma":
                k, r = self.p("concentration"), self.p("rate")
                y = x - self.p("shift")
                out = k * math.log(r) + (k - 1) * np.log(y) - r * y - special.gammaln(k)
            elif f == "uniform":
                out = np.full_like(x, -math.log(hi - lo))
            else:
                a, b = self.p("a"), self.p("b")
                t = (x - lo) / (hi - lo)
                out = (a - 1) * np.log(t) + (b - 1) * np.log1p(-t) - special.betaln(a, b) - math.log(hi - lo)
        return np.where(inside, out, -np.inf)

    def mean(self) -> float:
        f = self.family
        if f == "normal":
            return self.p("mean")
        if f == "gamma":
            return self.p("shift") + self.p("concentration") / self.p("rate")
        lo, hi = self.p("low"), self.p("high")
        if f == "uniform":
            return (lo + hi) / 2
        return lo + (hi - lo) * self.p("a") / (self.p("a") + self.p("b"))


# ---------------------------------------------------------------------------- mechanisms


@dataclass(frozen=True, eq=False)
class Linear:
    """``x = g(a + sum_j b_j * c_j + s * U)`` with a, b, s indexed by the discrete parents.

    ``intercept`` and ``scale`` have shape ``(*discrete parent cards,)``, ``weights`` shape
    ``(*discrete parent cards, n continuous parents)``.
    """

    link: Link
    discrete: tuple[str, ...]
    continuous: tuple[str, ...]
    intercept: np.ndarray
    weights: np.ndarray
    scale: np.ndarray

    def loc_scale(self, values: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The argument's mean ``a + b.c`` and ``s`` for each unit, from its parents' values."""
        idx = tuple(np.asarray(values[p], dtype=np.int64) for p in self.discrete)
        a = self.intercept[idx] if idx else self.intercept[()]
        s = self.scale[idx] if idx else self.scale[()]
        w = self.weights[idx] if idx else self.weights
        loc = np.asarray(a, dtype=np.float64)
        for j, p in enumerate(self.continuous):
            loc = loc + w[..., j] * np.asarray(values[p], dtype=np.float64)
        return loc, np.broadcast_to(s, np.shape(loc)) if np.ndim(loc) else s


@dataclass(frozen=True, eq=False)
class Softmax:
    """Logits ``c_k + sum_j w_kj * c_j`` of a discrete variable with continuous parents.

    ``intercept``: ``(*discrete parent cards, card)``; ``weights``: ``(*discrete cards, card,
    n continuous parents)``.
    """

    discrete: tuple[str, ...]
    continuous: tuple[str, ...]
    intercept: np.ndarray
    weights: np.ndarray
    spec: Any = None

    is_mechanism = True

    def probs(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        """Each unit's row of probabilities, shape ``(units, card)``."""
        idx = tuple(np.asarray(values[p], dtype=np.int64) for p in self.discrete)
        c = self.intercept[idx] if idx else self.intercept
        w = self.weights[idx] if idx else self.weights
        logits = np.asarray(c, dtype=np.float64)
        for j, p in enumerate(self.continuous):
            logits = logits + w[..., j] * np.asarray(values[p], dtype=np.float64)[..., None]
        return special.softmax(np.atleast_2d(logits), axis=-1)


@dataclass(frozen=True, eq=False)
class Continuous:
    """A continuous variable: a root ``distribution`` or a linear ``mechanism`` (see module).

    Both are given as plain data (the YAML's mappings), e.g.
    ``Continuous("thickness", distribution={"family": "gamma", "concentration": 10, "rate": 5,
    "shift": 0.5})``; :class:`~causalvae.graph.Graph` checks them against the parents.
    """

    name: str
    parents: Sequence[str] = ()
    mechanism: Any = None
    distribution: Any = None
    observed: bool = True
    description: str = ""

    is_continuous = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", check_name(self.name, "variable name"))
        if isinstance(self.parents, (str, bytes)) or not isinstance(self.parents, Iterable):
            raise GraphError(f"parents of '{self.name}' must be a list of names")
        parents = tuple(check_name(p, f"a parent of '{self.name}'") for p in self.parents)
        if len(set(parents)) != len(parents):
            raise GraphError(f"variable '{self.name}' lists a parent twice")
        if self.name in parents:
            raise GraphError(f"variable '{self.name}' is its own parent (cycle: {self.name} -> {self.name})")
        object.__setattr__(self, "parents", parents)
        if not isinstance(self.observed, bool):
            raise GraphError(f"'observed' of '{self.name}' must be true or false")
        if (self.mechanism is None) == (self.distribution is None):
            raise GraphError(f"continuous variable '{self.name}' needs exactly one of 'mechanism' or 'distribution'")
        if self.distribution is not None and parents:
            raise GraphError(
                f"continuous variable '{self.name}' has parents, so it needs a 'mechanism' "
                f"(a 'distribution' is for roots)"
            )

    @property
    def hidden(self) -> bool:
        return not self.observed

    @property
    def law(self) -> Linear | Root:
        return self.mechanism if self.mechanism is not None else self.distribution

    @property
    def support(self) -> tuple[float, float]:
        return self.law.support if isinstance(self.law, Root) else self.law.link.support

    def describe(self) -> str:
        """A short text for tables and drawings: ``continuous (64, 255)``."""
        lo, hi = self.support
        return f"continuous ({_num(lo)}, {_num(hi)})"

    def _refuse(self, what: str):
        raise ContinuousError(
            f"'{self.name}' is continuous: it has no {what} (the exact discrete engine and "
            f"value tables are for discrete variables; causalvae.mixed answers queries on mixed graphs)"
        )

    @property
    def values(self):
        self._refuse("list of values")

    @property
    def card(self):
        self._refuse("cardinality")

    @property
    def cpt(self):
        self._refuse("probability table")

    def index(self, value):
        self._refuse("value index")


def _num(x: float) -> str:
    return "-inf" if x == -math.inf else "inf" if x == math.inf else f"{x:g}"


def is_continuous(var: Any) -> bool:
    return getattr(var, "is_continuous", False) is True


def is_softmax(var: Any) -> bool:
    return isinstance(var, Variable) and isinstance(var.cpt, (Softmax, SoftmaxSpec))


@dataclass(frozen=True)
class SoftmaxSpec:
    """The user's ``softmax:`` data of a discrete variable, before the graph shapes it."""

    data: Any

    is_mechanism = True


# ---------------------------------------------------------------------------- building


def needs_finish(var: Any, parent_vars: Sequence[Any]) -> bool:
    """True for the variables this module shapes (not plain discrete tables)."""
    return is_continuous(var) or is_softmax(var) or any(is_continuous(p) for p in parent_vars)


def finish(var: Any, parent_vars: Sequence[Any]) -> Any:
    """Validate and shape a continuous variable, or a discrete one with continuous parents."""
    discrete = [p for p in parent_vars if not is_continuous(p)]
    cont = tuple(p.name for p in parent_vars if is_continuous(p))
    dcards = tuple(p.card for p in discrete)
    dnames = tuple(p.name for p in discrete)
    if not is_continuous(var):
        if not is_softmax(var):
            raise GraphError(
                f"'{var.name}' is discrete with continuous parents ({', '.join(cont)}): give it a "
                f"'softmax' (linear logits) instead of a 'cpt'"
            )
        if isinstance(var.cpt, Softmax):
            return var
        spec = var.cpt.data
        where = f"softmax of '{var.name}'"
        if not isinstance(spec, Mapping):
            raise GraphError(f"the {where} must be a mapping with 'intercept' and 'weights'")
        _keys(spec, {"intercept", "weights"}, where)
        intercept = _by_config(spec.get("intercept", 0.0), discrete, (var.card,), f"'intercept' of the {where}")
        weights = _weights(spec.get("weights"), cont, discrete, (var.card,), where)
        law = Softmax(dnames, cont, intercept, weights, spec)
        return Variable(var.name, var.values, var.parents, law, var.observed, var.description)
    if var.distribution is not None:
        root = var.distribution if isinstance(var.distribution, Root) else _root(var.name, var.distribution)
        return Continuous(var.name, (), None, root, var.observed, var.description)
    mech = var.mechanism
    if isinstance(mech, Linear):
        return var
    where = f"mechanism of '{var.name}'"
    if not isinstance(mech, Mapping):
        raise GraphError(f"the {where} must be a mapping (link, intercept, weights, scale)")
    _keys(mech, {"link", "lo", "hi", "intercept", "weights", "scale"}, where)
    link = _link(mech, where)
    if "scale" not in mech:
        raise GraphError(f"the {where} has no 'scale' (the s of g(a + b.parents + s U))")
    intercept = _by_config(mech.get("intercept", 0.0), discrete, (), f"'intercept' of the {where}")
    scale = _by_config(mech["scale"], discrete, (), f"'scale' of the {where}")
    if np.any(scale <= 0):
        raise GraphError(f"the {where} has a scale {float(scale[scale <= 0].flat[0]):g}; scales must be positive")
    weights = _weights(mech.get("weights"), cont, discrete, (), where)
    linear = Linear(link, dnames, cont, intercept, weights, scale)
    return Continuous(var.name, var.parents, linear, None, var.observed, var.description)


def _keys(d: Mapping, allowed: set[str], where: str) -> None:
    for k in d:
        if k not in allowed:
            from causalvae.errors import UnknownGraphNameError

            raise unknown("key", str(k), sorted(allowed), f"in the {where}", error=UnknownGraphNameError)


def _finite(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.floating, np.integer)):
        raise GraphError(f"{what} must be a number, got {x!r}")
    if not math.isfinite(float(x)):
        raise GraphError(f"{what} must be a finite number, got {x!r}")
    return float(x)


def _link(mech: Mapping, where: str) -> Link:
    name = mech.get("link", "identity")
    if name not in LINKS:
        raise unknown("link", str(name), LINKS, f"in the {where}", error=GraphError)
    if name != "sigmoid":
        for k in ("lo", "hi"):
            if k in mech:
                raise GraphError(f"the {where}: '{k}' belongs to the sigmoid link, not to '{name}'")
        return Link(name)
    lo = _finite(mech.get("lo", 0.0), f"'lo' of the {where}")
    hi = _finite(mech.get("hi", 1.0), f"'hi' of the {where}")
    if not lo < hi:
        raise GraphError(f"the {where}: the sigmoid's support needs lo < hi, got lo={lo:g}, hi={hi:g}")
    return Link("sigmoid", lo, hi)


def _root(name: str, spec: Any) -> Root:
    where = f"distribution of '{name}'"
    if not isinstance(spec, Mapping) or "family" not in spec:
        raise GraphError(f"the {where} must be a mapping with a 'family' ({', '.join(FAMILIES)})")
    family = spec["family"]
    if family not in FAMILIES:
        raise unknown("distribution family", str(family), list(FAMILIES), f"in the {where}", error=GraphError)
    _keys(spec, {"family", *FAMILIES[family]}, where)
    params = {}
    for key, default in FAMILIES[family].items():
        if key not in spec and default is None:
            raise GraphError(f"the {where} ({family}) has no '{key}'")
        params[key] = _finite(spec.get(key, default), f"'{key}' of the {where}")
    for key in ("sd", "concentration", "rate", "a", "b"):
        if key in params and params[key] <= 0:
            raise GraphError(f"the {where}: '{key}' must be positive, got {params[key]:g}")
    if "low" in params and not params["low"] < params["high"]:
        raise GraphError(f"the {where}: the support needs low < high, got low={params['low']:g}, high={params['high']:g}")
    return Root(family, tuple(params.items()))


def _by_config(raw: Any, discrete: Sequence[Variable], leaf: tuple[int, ...], what: str) -> np.ndarray:
    """A parameter given once for all discrete-parent configurations, or nested by their
    value names (first discrete parent outermost), or as an array of the full shape."""
    shape = (*(p.card for p in discrete), *leaf)
    if isinstance(raw, Mapping):
        if not discrete:
            raise GraphError(f"{what} is nested by parent values, but the variable has no discrete parents")
        head, rest = discrete[0], discrete[1:]
        keys = {str(k): k for k in raw}
        for k in keys:
            if k not in head.values:
                raise unknown("value", k, head.values, f"of parent '{head.name}' in {what}", error=GraphError)
        for v in head.values:
            if v not in keys:
                raise GraphError(f"{what} misses the entry for {head.name}={v}")
        return np.stack([_by_config(raw[keys[v]], rest, leaf, f"{what} ({head.name}={v})") for v in head.values])
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise GraphError(f"{what} is not a number or a list of numbers") from None
    if not np.all(np.isfinite(arr)):
        raise GraphError(f"{what} has a non-finite entry")
    if arr.shape == leaf:
        return np.array(np.broadcast_to(arr, shape))
    if arr.shape == shape:
        return arr
    raise GraphError(f"{what} has shape {arr.shape}; expected {leaf or 'a number'} or {shape}")


def _weights(raw: Any, cont: Sequence[str], discrete: Sequence[Variable], leaf: tuple[int, ...], where: str) -> np.ndarray:
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise GraphError(f"'weights' of the {where} must map each continuous parent to its weight")
    for k in raw:
        if str(k) not in cont:
            raise unknown("continuous parent", str(k), cont, f"in 'weights' of the {where}", error=GraphError)
    for c in cont:
        if c not in {str(k) for k in raw}:
            raise GraphError(f"'weights' of the {where} has no entry for the continuous parent '{c}'")
    cols = [_by_config(raw[c], discrete, leaf, f"weight of '{c}' in the {where}") for c in cont]
    shape = (*(p.card for p in discrete), *leaf, 0)
    return np.stack(cols, axis=-1) if cols else np.zeros(shape)


# ---------------------------------------------------------------------------- serialisation


def to_dict(var: Any, graph: Graph) -> dict[str, Any]:
    """The YAML form of a continuous or softmax variable."""
    if not is_continuous(var):
        d: dict[str, Any] = {"name": var.name, "values": list(var.values), "parents": list(var.parents)}
        _common(d, var)
        law: Softmax = var.cpt
        dv = [graph[p].values for p in law.discrete]
        d["softmax"] = {
            "intercept": _nest(law.intercept, dv, 1),
            "weights": {c: _nest(law.weights[..., j], dv, 1) for j, c in enumerate(law.continuous)},
        }
        return d
    d = {"name": var.name, "type": "continuous"}
    if var.parents:
        d["parents"] = list(var.parents)
    _common(d, var)
    if isinstance(var.law, Root):
        d["distribution"] = {"family": var.law.family, **dict(var.law.params)}
        return d
    m: Linear = var.law
    dv = [graph[p].values for p in m.discrete]
    mech: dict[str, Any] = {"link": m.link.name}
    if m.link.name == "sigmoid":
        mech.update(lo=m.link.lo, hi=m.link.hi)
    mech["intercept"] = _nest(m.intercept, dv, 0)
    if m.continuous:
        mech["weights"] = {c: _nest(m.weights[..., j], dv, 0) for j, c in enumerate(m.continuous)}
    mech["scale"] = _nest(m.scale, dv, 0)
    d["mechanism"] = mech
    return d


def _common(d: dict, var: Any) -> None:
    if not var.observed:
        d["observed"] = False
    if var.description:
        d["description"] = var.description


def _nest(arr: np.ndarray, parent_values: Sequence[Sequence[str]], leaf_rank: int) -> Any:
    if not parent_values:
        return float(arr) if leaf_rank == 0 else [float(x) for x in arr]
    flat = np.asarray(arr).reshape(-1, *np.shape(arr)[len(parent_values):])
    if np.all(flat == flat[0]):  # the same for every configuration: written once
        return _nest(flat[0], (), leaf_rank)
    return {v: _nest(arr[i], parent_values[1:], leaf_rank) for i, v in enumerate(parent_values[0])}


def from_spec(rv: Mapping, label: str) -> Any:
    """Build the variable of a YAML entry that has ``type: continuous`` or a ``softmax``."""
    kind = rv.get("type", "discrete")
    if kind not in ("discrete", "continuous"):
        raise GraphError(f"{label}: 'type' must be discrete or continuous, got {kind!r}")
    if kind == "continuous":
        _keys(rv, {"name", "type", "parents", "mechanism", "distribution", "observed", "description"}, label)
        if "name" not in rv:
            raise GraphError(f"{label} has no 'name'")
        return Continuous(
            rv["name"], rv.get("parents") or (), rv.get("mechanism"), rv.get("distribution"),
            rv.get("observed", True), str(rv.get("description", "") or ""),
        )
    _keys(rv, {"name", "type", "values", "parents", "softmax", "observed", "description"}, label)
    for key in ("name", "values", "parents"):
        if key not in rv:
            raise GraphError(f"{label} has no '{key}'")
    if "cpt" in rv:
        raise GraphError(f"{label}: give a 'cpt' or a 'softmax', not both")
    return Variable(rv["name"], rv["values"], rv["parents"], SoftmaxSpec(rv["softmax"]), rv.get("observed", True), str(rv.get("description", "") or ""))


# ---------------------------------------------------------------------------- the noise convention


def normal_noise(graph: Graph) -> tuple[str, ...]:
    """The variables whose U is N(0, 1) (linear mechanisms); every other U is Uniform(0, 1)."""
    return tuple(n for n in graph.names if is_continuous(graph[n]) and isinstance(graph[n].law, Linear))


def draw_noise(graph: Graph, n: int, seed: int | np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """U for ``n`` units: one column per variable, drawn as one Uniform block in declared order
    (as :func:`causalvae.noise.draw_noise`), the columns of linear mechanisms turned into N(0, 1)
    by the normal inverse CDF."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    block = rng.random((n, len(graph)), dtype=np.float64)
    normal = set(normal_noise(graph))
    out = {}
    for i, name in enumerate(graph.names):
        u = block[:, i].copy()
        if is_continuous(graph[name]):
            u = np.clip(u, TINY, 1.0 - 2.0**-53)
            if name in normal:
                u = special.ndtri(u)
        out[name] = u
    return out


def value_of(var: Any, values: Mapping[str, np.ndarray], u: np.ndarray) -> np.ndarray:
    """One variable's value for each unit from its parents' values and its U."""
    if is_continuous(var):
        law = var.law
        if isinstance(law, Root):
            return law.ppf(u)
        loc, s = law.loc_scale(values)
        return law.link(loc + s * u)
    if isinstance(var.cpt, Softmax):
        return noise.value_from_noise(noise.cdf(var.cpt.probs(values)), u)
    rows = noise.cdf(var.cpt)[tuple(np.asarray(values[p], dtype=np.int64) for p in var.parents)] if var.parents else noise.cdf(var.cpt)
    return noise.value_from_noise(rows, u)


def probs_of(var: Variable, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """A discrete variable's probability row for each unit, shape ``(units, card)``."""
    if isinstance(var.cpt, Softmax):
        return var.cpt.probs(values)
    if not var.parents:
        return np.asarray(var.cpt)[None, :]
    return var.cpt[tuple(np.asarray(values[p], dtype=np.int64) for p in var.parents)]


def log_density(var: Continuous, x: np.ndarray, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """``log p(x | parents)`` of a continuous variable (``-inf`` outside its support)."""
    law = var.law
    if isinstance(law, Root):
        return law.logpdf(x)
    loc, s = law.loc_scale(values)
    t = law.link.inverse(x)
    z = (t - loc) / s
    with np.errstate(invalid="ignore"):
        out = -0.5 * z * z - 0.5 * math.log(2 * math.pi) - np.log(s) + law.link.log_dinverse(x)
    return np.where(np.isnan(t), -np.inf, out)


def abduct_one(var: Continuous, x: np.ndarray, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """The U that gives ``x`` from these parents: ``(g^-1(x) - a - b.c) / s``, or ``F(x)``.

    Outside the support there is no such U: a :class:`CausalVAEError` names the variable.
    """
    x = np.asarray(x, dtype=np.float64)
    lo, hi = var.support
    bad = ~((x > lo) & (x < hi)) if isinstance(var.law, Linear) else ~((x >= lo) & (x <= hi))
    if np.any(bad):
        raise CausalVAEError(f"{float(x[bad].flat[0]):g} is outside the support of '{var.name}' {var.describe()[11:]}")
    law = var.law
    if isinstance(law, Root):
        return law.cdf(x)
    loc, s = law.loc_scale(values)
    return (law.link.inverse(x) - loc) / s


def intervention_column(var: Any, value: Any, n: int) -> np.ndarray:
    """The values of ``do(var=value)`` for ``n`` units: a number (or one per unit) for a
    continuous variable, as :func:`causalvae.noise.intervention_column` for a discrete one."""
    if is_continuous(var):
        col = np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()
        lo, hi = var.support
        if np.any(~np.isfinite(col)):
            raise CausalVAEError(f"do({var.name}=...) needs a finite number")
        if np.any((col < lo) | (col > hi)):
            raise CausalVAEError(f"do({var.name}={float(col[(col < lo) | (col > hi)][0]):g}) is outside its support {var.describe()[11:]}")
        return col
    return noise.intervention_column(var, value, n)


def abduct(graph: Graph, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each continuous variable's U from fully observed values of it and its parents.

    Exact and deterministic (the mechanisms are invertible in U). Discrete variables' U is
    only known to lie in a cell of their cdf, so they are not returned.
    """
    out = {}
    for name in graph.topological_order:
        var = graph[name]
        if is_continuous(var):
            missing = [p for p in (name, *var.parents) if p not in values]
            if missing:
                raise CausalVAEError(f"abducting U of '{name}' needs the value of '{missing[0]}'")
            out[name] = abduct_one(var, values[name], values)
    return out
