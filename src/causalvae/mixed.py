"""Queries on mixed graphs (discrete and continuous variables), each answer with its method
and its error.

The query language (:mod:`causalvae.querylang`) gains, for continuous variables::

    E(intensity | do(thickness=3))                 an expectation
    P(intensity > 200 | thickness=2.5)             the probability of an event (> < >= <=)
    Q(intensity, 0.9 | do(thickness=3))            a quantile (level in (0, 1))
    p(intensity=180 | do(thickness=3))             a density
    E(intensity[thickness=3] | thickness=2, intensity=150)   a counterfactual

with continuous evidence ``x=1.3``, interventions ``do(x=1.3)`` and worlds ``[x=1.3]``.
Counterfactual worlds share every variable's noise U (:mod:`causalvae.continuous`), as in
the discrete twin network.

The method is chosen for the query, most exact first:

1. **exact (discrete engine)**: every variable the answer depends on is discrete;
2. **closed form (linear-Gaussian)**: every unknown is an affine function of Gaussian noises
   (identity links, normal roots; other variables observed or intervened); conditioning on
   point evidence is Gaussian conditioning, ``do`` is surgery, and counterfactuals condition
   the shared noises (additive noise: abduction is exact). Only the target passes through its
   link: its CDF, quantile and density are closed forms; its mean too for identity and exp,
   and a Gauss-Hermite rule (with its error) for softplus and sigmoid;
3. **quadrature**: at most two continuous noises unknown (observed continuous variables pin
   their noise by abduction and weigh by their density; unobserved discrete ones are
   enumerated): a tensor Gauss-Hermite rule in the standard-normal noises, refined until two
   rules agree; the error stated is the difference between the last two rules (an estimate,
   not a guaranteed bound);
4. **importance sampling** (likelihood weighting) beyond that: noises drawn from their prior,
   observed variables pinned and weighted as above, a self-normalised estimate with its
   standard error (batch means for quantiles); reproducible by ``seed``.

Where the target's own noise is used by nothing else, it is integrated in closed form at each
point (Rao-Blackwellised): P(y > c | parents) and the density of y given its parents are
exact, so the numerical error comes from the other unknowns only.

    >>> from causalvae.graph import Graph
    >>> a = evaluate(Graph.load("morpho"), "P(intensity > 200 | do(thickness=3))")
    >>> a.method, round(a.value, 4)
    ('closed form (linear-Gaussian)', 0.5751)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import special

from causalvae import continuous as C
from causalvae.errors import CausalVAEError, QuerySyntaxError, ZeroProbabilityError, suggest
from causalvae.exact import Term
from causalvae.graph import Graph
from causalvae.querylang import CausationQuery, Parser, ProbabilityQuery, Token

#: Samples of importance sampling and its seed, unless the caller says otherwise.
DEFAULT_SAMPLES = 100_000
DEFAULT_SEED = 0
#: Gauss-Hermite nodes per dimension tried in turn until two rules agree to TOLERANCE.
QUADRATURE_NODES = {0: (1,), 1: (16, 32, 64, 128, 256), 2: (16, 32, 64, 128)}
TOLERANCE = 1e-10
#: Largest number of points of a quadrature grid (nodes x enumerated discrete values).
MAX_POINTS = 2_000_000
#: Nodes of the inner rule for the mean of a link of a Gaussian (sigmoid, softplus).
INNER_NODES = 96

HEADS = ("P", "PN", "PS", "PNS", "E", "Q", "p")


@dataclass(frozen=True)
class MixedQuery:
    """A query about one target on a mixed graph.

    ``measure`` is ``P`` (a discrete target's distribution, or an event ``op threshold``;
    with no ``op``, a continuous target's whole distribution: see :func:`summarize`),
    ``E`` (expectation), ``Q`` (quantile at ``level``) or ``p`` (density at ``at``).
    """

    text: str
    measure: str
    target: Term
    op: str | None = None
    threshold: Any = None
    level: float | None = None
    at: float | None = None
    evidence: tuple[tuple[Term, Any], ...] = ()
    do: tuple[tuple[str, Any], ...] = ()


class _MixedParser(Parser):
    numeric = True
    #: Take ``P(y | ...)`` of a continuous ``y`` as its whole distribution (see :func:`parse`).
    whole = False

    def is_continuous(self, var: str) -> bool:
        return self.graph is not None and C.is_continuous(self.graph[var])

    def number(self, tok: Token, what: str) -> float:
        try:
            x = float(tok.text)
        except ValueError:
            x = math.nan
        if tok.quoted or not math.isfinite(x):
            raise self.error(f"{what} must be a finite number, found '{tok.text}'", tok)
        return x

    def value(self, var: str, tok: Token) -> Any:
        if self.is_continuous(var):
            return self.number(tok, f"the value of the continuous '{var}'")
        return super().value(var, tok)

    def parse(self):
        head = self.name("P, E, Q, p, PN, PS or PNS")
        if head.text not in HEADS:
            raise self.error(f"a query starts with P, E, Q, p, PN, PS or PNS{suggest(head.text, HEADS)}", head)
        self.expect("(", f"after {head.text}")
        if head.text in ("PN", "PS", "PNS"):
            q = self.causation(head.text)
        elif head.text == "P":
            q = self.probability()
        else:
            q = self.moment(head.text)
        if self.tok.kind != "end":
            raise self.error(f"unexpected '{self.tok.text}' after the end of the query")
        return q

    def term(self) -> tuple[Term, Token]:
        start = self.tok
        var = self.variable(self.name("a target variable"))
        world = self.world() if self.at("[") else ()
        return Term(var, world), start

    def tail(self):
        evidence, do = (), ()
        if self.at("|"):
            self.i += 1
            evidence, do = self.conds()
        return evidence, do

    def moment(self, measure: str) -> MixedQuery:
        target, start = self.term()
        if self.graph is not None and not self.is_continuous(target.var):
            raise self.error(f"{measure}(...) asks about a continuous variable; '{target.var}' is discrete (ask P({target.var} | ...))", start)
        level = at = None
        if measure == "Q":
            self.expect(",", "and a level, as in Q(y, 0.9 | ...)")
            tok = self.name("a level in (0, 1)")
            level = self.number(tok, "the quantile's level")
            if not 0 < level < 1:
                raise self.error(f"the quantile's level must be in (0, 1), got {tok.text}", tok)
        elif measure == "p":
            self.expect("=", "and a point, as in p(y=1.3 | ...)")
            at = self.number(self.name("a number"), "the density's point")
        evidence, do = self.tail()
        self.expect(")", f"to close {measure}(...)")
        return MixedQuery(self.text, measure, target, level=level, at=at, evidence=evidence, do=do)

    def probability(self):
        target, start = self.term()
        if self.tok.kind == "sym" and self.tok.text in (">", "<", ">=", "<="):
            op = self.tok.text
            self.i += 1
            if self.graph is not None and not self.is_continuous(target.var):
                raise self.error(f"'{target.var}' is discrete: compare continuous variables only (ask P({target.var}=VALUE | ...))", start)
            threshold = self.number(self.name("a number"), "the threshold")
            evidence, do = self.tail()
            self.expect(")", "to close P(...)")
            return MixedQuery(self.text, "P", target, op, threshold, evidence=evidence, do=do)
        if self.is_continuous(target.var) and self.whole:
            evidence, do = self.tail()
            self.expect(")", "to close P(...)")
            return MixedQuery(self.text, "P", target, evidence=evidence, do=do)
        if self.is_continuous(target.var):
            raise self.error(
                f"'{target.var}' is continuous: ask P({target.var} > x | ...), E({target.var} | ...), "
                f"Q({target.var}, 0.5 | ...) or p({target.var}=x | ...)", start)
        self.i = self.tokens.index(start)
        return super().probability()


def parse_assignments(text: str, graph: Graph) -> dict[str, Any]:
    """``"kind=a, length=3.1"`` as ``--given``/``--do`` take it on a mixed graph: ``{name:
    value}``, a number for a continuous variable (checked finite), a value name otherwise."""
    p = _MixedParser(text, graph)
    if p.tok.kind == "end":
        return {}
    evidence, do = p.conds()
    if p.tok.kind != "end":
        raise p.error(f"unexpected '{p.tok.text}'")
    if do or any(term.world for term, _ in evidence):
        raise QuerySyntaxError("give plain assignments here (no do(...) or [...] worlds)", text, 0)
    return {t.var: v for t, v in evidence}


def query_text(value: Any) -> str:
    """A value as the query language writes it: a number without an exponent, or a quoted name."""
    if isinstance(value, (float, np.floating)):
        return np.format_float_positional(float(value), trim="-")
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse(text: str, graph: Graph | None = None, *, whole: bool = False):
    """Parse any query (discrete or continuous); with ``graph``, check every name and value.

    ``whole``: ``P(y | ...)`` of a continuous ``y`` asks for its whole distribution (a
    :class:`MixedQuery` with measure ``P`` and no ``op``, answered by :func:`summarize`, not
    :func:`evaluate`); without it, such a query is refused with the measures to ask instead.
    """
    if not isinstance(text, str) or not text.strip():
        raise QuerySyntaxError("empty query", text or "", 0)
    parser = _MixedParser(text, graph)
    parser.whole = whole
    return parser.parse()


# ---------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Estimate:
    """One number of an answer: ``label`` (the event or value), ``value`` and ``error``."""

    label: str
    value: float
    error: float


@dataclass(frozen=True)
class MixedAnswer:
    """The answer to a query on a mixed graph: numbers with their method and error.

    ``error_kind`` says what ``error`` is: ``exact`` (float64 round-off only), ``quadrature``
    (difference between the last two rules: an estimate) or ``standard error``.
    """

    query: Any
    method: str
    error_kind: str
    estimates: tuple[Estimate, ...]
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        """The answer when it is one number (E, Q, p, or the probability of an event)."""
        if len(self.estimates) != 1:
            raise CausalVAEError("this answer is a distribution; read .estimates")
        return self.estimates[0].value

    @property
    def error(self) -> float:
        if len(self.estimates) != 1:
            return max(e.error for e in self.estimates)
        return self.estimates[0].error

    def to_json(self) -> dict:
        q = self.query
        out: dict[str, Any] = {"query": q.text, "method": self.method, "error_kind": self.error_kind}
        if len(self.estimates) == 1 and not (isinstance(q, ProbabilityQuery)):
            out["value"] = self.estimates[0].value
            out["error"] = self.estimates[0].error
        else:
            out["distribution"] = {e.label: e.value for e in self.estimates}
            out["errors"] = {e.label: e.error for e in self.estimates}
        out.update({k: v for k, v in self.details.items()})
        return out

    def describe(self) -> str:
        """What was asked, in words: ``expectation``, ``quantile at 0.9``, ``density at 180``."""
        q = self.query
        if not isinstance(q, MixedQuery):
            return "distribution"
        if q.measure == "Q":
            return f"quantile at {q.level:g}"
        if q.measure == "p":
            return f"density at {q.at:g}"
        return "expectation" if q.measure == "E" else "probability"


# ---------------------------------------------------------------------------- the node network


@dataclass(frozen=True)
class _Node:
    key: str
    var: str
    world: int
    parents: tuple[str, ...]
    fixed: Any = None  # an intervened value (float, or a value index)


@dataclass
class _Problem:
    """One query unrolled over its worlds: the nodes it depends on and how each is known."""

    graph: Graph
    nodes: list[_Node]  # relevant, in a topological order
    target: _Node
    evidence: dict[str, Any]  # variable -> observed value in the base world (index or float)
    node_of: dict[str, _Node]


def _value(graph: Graph, var: str, value: Any) -> Any:
    v = graph[var]
    if C.is_continuous(v):
        x = float(value)
        if not math.isfinite(x):
            raise CausalVAEError(f"the value of '{var}' must be a finite number")
        return x
    return v.index(value)


def _intervention(graph: Graph, var: str, value: Any) -> Any:
    x = _value(graph, var, value)
    if C.is_continuous(graph[var]):
        lo, hi = graph[var].support
        if not lo <= x <= hi:
            raise CausalVAEError(f"do({var}={x:g}) is outside the support of '{var}' {graph[var].describe()[11:]}")
    return x


def _problem(graph: Graph, target: Term, evidence: Sequence[tuple[Term, Any]], do: Mapping[str, Any]) -> _Problem:
    base = {n: _intervention(graph, n, v) for n, v in do.items()}
    worlds: list[dict[str, Any]] = [{}]
    maps: list[dict[str, _Node]] = []

    def world_index(bracket: Sequence[tuple[str, Any]]) -> int:
        w = {n: _intervention(graph, n, v) for n, v in bracket}
        if not w:
            return 0
        if w not in worlds:
            worlds.append(w)
        return worlds.index(w)

    for t, _ in evidence:
        if t.world:
            raise CausalVAEError(
                f"evidence in a counterfactual world ({t.label}) is answered on discrete graphs only; "
                f"on a mixed graph give factual evidence and ask about the counterfactual world"
            )
    t_world = world_index(target.world)
    for w_i, bracket in enumerate(worlds):
        mapping: dict[str, _Node] = {}
        for n in graph.topological_order:
            var = graph[n]
            if w_i == 0:
                mapping[n] = _Node(n, n, 0, () if n in base else tuple(var.parents), base.get(n))
            elif n in bracket:
                mapping[n] = _Node(f"{n}[w{w_i}]", n, w_i, (), bracket[n])
            elif n not in base and any(mapping[p].world != 0 for p in var.parents):
                mapping[n] = _Node(f"{n}[w{w_i}]", n, w_i, tuple(mapping[p].key for p in var.parents))
            else:
                mapping[n] = maps[0][n]
        maps.append(mapping)
    node_of = {node.key: node for m in maps for node in m.values()}
    ev: dict[str, Any] = {}
    for t, value in evidence:
        x = _value(graph, t.var, value)
        if t.var in ev and ev[t.var] != x:
            raise ZeroProbabilityError(f"contradictory evidence on '{t.var}'")
        node = maps[0][t.var]
        if node.fixed is not None:
            if node.fixed != x:
                raise ZeroProbabilityError(f"the evidence {t.var}={value} contradicts do({t.var}={do[t.var]})")
            continue
        ev[t.var] = x
    tnode = maps[t_world][target.var]
    keep: set[str] = set()
    stack = [tnode.key, *(maps[0][v].key for v in ev)]
    while stack:
        k = stack.pop()
        if k not in keep:
            keep.add(k)
            stack.extend(node_of[k].parents)
    order = sorted((node_of[k] for k in keep), key=lambda nd: (graph.rank[nd.var], nd.world))
    for var, x in ev.items():
        v = graph[var]
        if C.is_continuous(v):
            lo, hi = v.support
            if not lo <= x <= hi:
                raise ZeroProbabilityError(f"the evidence {var}={x:g} is outside the support of '{var}' {v.describe()[11:]}")
    return _Problem(graph, order, tnode, ev, node_of)


# ---------------------------------------------------------------------------- closed form


class _NotGaussian(Exception):
    """The query leaves the linear-Gaussian family: use a numerical method."""


def _closed_form(p: _Problem):
    """``(kind, data)``: ``("const", value)``, ``("gauss", (mu, sd, link))`` or
    ``("probs", row)``, conditioned on the evidence; raises _NotGaussian otherwise."""
    g = p.graph
    dims: dict[str, int] = {}
    const: dict[str, Any] = {}
    affine: dict[str, tuple[float, dict[int, float]]] = {}
    links: dict[str, C.Link] = {}
    rows: list[dict[int, float]] = []
    rhs: list[float] = []
    count = {}
    for nd in p.nodes:
        if nd.fixed is None:
            count[nd.var] = count.get(nd.var, 0) + 1

    def dim(var: str) -> int:
        if var not in dims:
            dims[var] = len(dims)
        return dims[var]

    target_probs = target_root = None
    for nd in p.nodes:
        var = g[nd.var]
        if nd.fixed is not None:
            const[nd.key] = nd.fixed
            continue
        observed = nd.world == 0 and nd.var in p.evidence
        pk = dict(zip(var.parents, nd.parents))
        if not C.is_continuous(var):
            if any(k not in const for k in nd.parents) or count[nd.var] > 1:
                raise _NotGaussian
            row = C.probs_of(var, {q: np.array([const[k]]) for q, k in pk.items()})[0]
            if observed:
                if not row[p.evidence[nd.var]] > 0:
                    raise ZeroProbabilityError(f"the evidence {nd.var}={var.values[p.evidence[nd.var]]} has probability zero")
                const[nd.key] = p.evidence[nd.var]
            elif nd is p.target:
                target_probs = row
            else:
                raise _NotGaussian
            continue
        law = var.law
        if isinstance(law, C.Root):
            if observed:
                const[nd.key] = p.evidence[nd.var]
                continue
            if law.family != "normal":
                used = any(nd.key in other.parents for other in p.nodes)
                if nd is p.target and count[nd.var] == 1 and not used:
                    target_root = law  # its own distribution: the rest is independent of it
                    continue
                raise _NotGaussian
            affine[nd.key] = (law.p("mean"), {dim(nd.var): law.p("sd")})
            links[nd.key] = C.Link("identity")
            continue
        dvals = {}
        for q in law.discrete:
            if pk[q] not in const:
                raise _NotGaussian
            dvals[q] = np.array([const[pk[q]]])
        loc, s = law.loc_scale({**dvals, **{q: np.array([0.0]) for q in law.continuous}})
        c0, coef = float(np.ravel(loc)[0]), {dim(nd.var): float(np.ravel(s)[0])}
        idx = tuple(dvals[q][0] for q in law.discrete)
        w = law.weights[idx] if idx else law.weights
        for j, q in enumerate(law.continuous):
            k = pk[q]
            if k in const:
                c0 += w[j] * const[k]
            elif k in affine and links[k].name == "identity":
                pc, pcoef = affine[k]
                c0 += w[j] * pc
                for d, a in pcoef.items():
                    coef[d] = coef.get(d, 0.0) + w[j] * a
            else:
                raise _NotGaussian
        if observed:
            x = p.evidence[nd.var]
            t = float(law.link.inverse(np.array(x)))
            if math.isnan(t):
                raise ZeroProbabilityError(f"the evidence {nd.var}={x:g} is outside the support of '{nd.var}'")
            rows.append(coef)
            rhs.append(t - c0)
            const[nd.key] = x
        else:
            affine[nd.key] = (c0, coef)
            links[nd.key] = law.link
    tk = p.target.key
    if target_root is not None:
        return "root", target_root
    if tk in const:
        return "const", const[tk]
    if target_probs is not None:
        return "probs", target_probs
    c0, coef = affine[tk]
    a = np.zeros(len(dims))
    for d, v in coef.items():
        a[d] = v
    mean, cov = np.zeros(len(dims)), np.eye(len(dims))
    if rows:
        m = np.zeros((len(rows), len(dims)))
        for i, r in enumerate(rows):
            for d, v in r.items():
                m[i, d] = v
        r = np.array(rhs)
        s = m @ m.T
        sol, *_ = np.linalg.lstsq(s, r, rcond=None)
        if np.max(np.abs(s @ sol - r)) > 1e-9 * max(1.0, np.max(np.abs(r))):
            raise ZeroProbabilityError("the evidence is contradictory (its values are impossible together)")
        gain = np.linalg.pinv(s)
        mean = m.T @ sol
        cov = cov - m.T @ gain @ m
    mu = c0 + float(a @ mean)
    var = max(float(a @ cov @ a), 0.0)
    return "gauss", (mu, math.sqrt(var), links[tk])


def _gauss_answer(q: MixedQuery, mu: float, sd: float, link: C.Link) -> tuple[float, float, str]:
    """(value, error, note) of the target ``link(N(mu, sd^2))``."""
    if sd < 1e-12 * max(1.0, abs(mu)):
        x = float(link(np.array(mu)))
        if q.measure == "E" or q.measure == "Q":
            return x, 0.0, ""
        if q.measure == "P":
            return float(_compare(np.array(x), q.op, q.threshold)), 0.0, ""
        raise CausalVAEError(f"{q.target.label} is determined by the evidence (it equals {x:.6g}): it has no density")
    if q.measure == "P":
        lo, hi = link.support
        c = q.threshold
        if c <= lo:
            above = 1.0
        elif c >= hi:
            above = 0.0
        else:
            above = float(special.ndtr(-(float(link.inverse(np.array(c))) - mu) / sd))
        return (above if q.op in (">", ">=") else 1.0 - above), 0.0, ""
    if q.measure == "Q":
        return float(link(np.array(mu + sd * special.ndtri(q.level)))), 0.0, ""
    if q.measure == "p":
        t = link.inverse(np.array(q.at))
        if np.isnan(t):
            return 0.0, 0.0, ""
        z = (t - mu) / sd
        return float(np.exp(-0.5 * z * z - 0.5 * math.log(2 * math.pi) - math.log(sd) + link.log_dinverse(np.array(q.at)))), 0.0, ""
    if link.name == "identity":
        return mu, 0.0, ""
    if link.name == "exp":
        return math.exp(mu + sd * sd / 2), 0.0, ""
    v1, v2 = (_gh_mean(link, mu, sd, n) for n in (INNER_NODES // 2, INNER_NODES))
    return v2, abs(v2 - v1), "1-D Gauss-Hermite for the mean of the link"


def _root_answer(q: MixedQuery, law: C.Root) -> float:
    """E, an event, a quantile or a density of a root's own distribution."""
    if q.measure == "E":
        return law.mean()
    if q.measure == "P":
        below = float(law.cdf(np.array(q.threshold)))
        return below if q.op in ("<", "<=") else 1.0 - below
    if q.measure == "Q":
        return float(law.ppf(np.array(q.level)))
    return float(np.exp(law.logpdf(np.array(q.at))))


@lru_cache(maxsize=32)
def _hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights for E f(Z), Z ~ N(0, 1) (weights sum to 1)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    x.setflags(write=False)
    w = w / w.sum()
    w.setflags(write=False)
    return x, w


def _gh_mean(link: C.Link, mu, sd, n: int):
    x, w = _hermite(n)
    mu, sd = np.asarray(mu, dtype=np.float64), np.asarray(sd, dtype=np.float64)
    return (link(mu[..., None] + sd[..., None] * x) * w).sum(axis=-1)


def _compare(x: np.ndarray, op: str, c: float) -> np.ndarray:
    return {">": x > c, ">=": x >= c, "<": x < c, "<=": x <= c}[op].astype(np.float64)


# ---------------------------------------------------------------------------- points (quadrature, sampling)


@dataclass
class _Plan:
    cont: list[str]  # continuous variables whose noise is a dimension
    disc: list[str]  # discrete variables whose U is sampled (importance sampling only)
    enum: list[str]  # discrete variables enumerated (quadrature) or sampled as values (sampling)
    rb: bool  # the target's own noise is integrated at each point


def _plan(p: _Problem) -> _Plan:
    g = p.graph
    free = [nd for nd in p.nodes if nd.fixed is None]
    count: dict[str, int] = {}
    for nd in free:
        count[nd.var] = count.get(nd.var, 0) + 1
    t = p.target
    used = {k for nd in p.nodes for k in nd.parents}
    rb = t.fixed is None and t.var not in p.evidence and count[t.var] == 1 and t.key not in used
    cont, disc, enum = [], [], []
    for var in dict.fromkeys(nd.var for nd in free):
        if rb and var == t.var:
            continue
        if C.is_continuous(g[var]):
            if var not in p.evidence:
                cont.append(var)
        elif var in p.evidence:
            if count[var] > 1:
                disc.append(var)
        elif count[var] == 1:
            enum.append(var)
        else:
            disc.append(var)
    return _Plan(cont, disc, enum, rb)


def _run_points(p: _Problem, plan: _Plan, z: np.ndarray, ud: np.ndarray, ev: Mapping[str, np.ndarray]):
    """Every node at M points: returns (log weight, target values or None, target parents)."""
    g = p.graph
    m = len(z)
    logw = np.zeros(m)
    vals: dict[str, np.ndarray] = {}
    noise: dict[str, np.ndarray] = {}
    observed = {**{k: np.full(m, v) for k, v in p.evidence.items()}, **ev}
    tparents = None
    for nd in p.nodes:
        var = g[nd.var]
        pv = {q: vals[k] for q, k in zip(var.parents, nd.parents)}
        if nd.fixed is not None:
            vals[nd.key] = np.full(m, nd.fixed)
            continue
        if nd is p.target and plan.rb:
            tparents = pv
            continue
        if (nd.world == 0 and nd.var in p.evidence) or nd.var in ev:  # seen, or enumerated (one node)
            x = observed[nd.var]
            if C.is_continuous(var):
                logw = logw + C.log_density(var, x, pv)
                if isinstance(var.law, C.Root):
                    noise[nd.var] = var.law.cdf(x)
                else:
                    loc, s = var.law.loc_scale(pv)
                    noise[nd.var] = (var.law.link.inverse(x) - loc) / s
            else:
                probs = C.probs_of(var, pv)
                probs = np.broadcast_to(probs, (m, var.card))
                xi = x.astype(np.int64)
                with np.errstate(divide="ignore"):
                    logw = logw + np.log(probs[np.arange(m), xi])
                if nd.var in plan.disc:
                    from causalvae.noise import cdf

                    c = cdf(probs)
                    hi = c[np.arange(m), xi]
                    lo = np.where(xi > 0, c[np.arange(m), np.maximum(xi - 1, 0)], 0.0)
                    u = lo + (hi - lo) * ud[:, plan.disc.index(nd.var)]
                    noise[nd.var] = np.minimum(u, np.nextafter(hi, 0.0))  # inside [lo, hi) despite rounding
            vals[nd.key] = x
            continue
        if nd.var not in noise:
            if C.is_continuous(var):
                zc = z[:, plan.cont.index(nd.var)]
                noise[nd.var] = zc if isinstance(var.law, C.Linear) else np.clip(special.ndtr(zc), C.TINY, 1 - 2.0**-53)
            else:
                noise[nd.var] = ud[:, plan.disc.index(nd.var)]
        vals[nd.key] = C.value_of(var, pv, noise[nd.var])
    return logw, (None if plan.rb else vals[p.target.key]), tparents


def _functional(p: _Problem, q, plan: _Plan, target, tparents, m: int) -> np.ndarray:
    """Each point's value of the asked quantity: (M,) or (M, card) for a distribution."""
    var = p.graph[p.target.var]
    if not C.is_continuous(var):
        if plan.rb:
            return np.broadcast_to(C.probs_of(var, tparents), (m, var.card))
        return np.eye(var.card)[target.astype(np.int64)]
    if not plan.rb:
        if q.measure == "E":
            return target
        if q.measure == "P":
            return _compare(target, q.op, q.threshold)
        raise CausalVAEError(
            f"{q.target.label} is a deterministic function of the other unknowns here, so its density "
            f"is not computed; ask P({q.target.label} > x | ...) or a quantile instead"
        )
    law = var.law
    if isinstance(law, C.Root):
        if q.measure == "E":
            return np.full(m, law.mean())
        if q.measure == "P":
            above = 1.0 - law.cdf(np.array(q.threshold))
            return np.full(m, above if q.op in (">", ">=") else 1.0 - above)
        return np.full(m, np.exp(law.logpdf(np.array(q.at))))
    loc, s = law.loc_scale(tparents)
    loc, s = np.broadcast_to(loc, (m,)), np.broadcast_to(s, (m,))
    if q.measure == "E":
        if law.link.name == "identity":
            return loc.astype(np.float64)
        if law.link.name == "exp":
            return np.exp(loc + s * s / 2)
        return _gh_mean(law.link, loc, s, INNER_NODES)
    if q.measure == "P":
        return _cdf_above(law.link, loc, s, q.threshold, q.op)
    return np.exp(C.log_density(var, np.full(m, q.at), tparents))


def _cdf_above(link: C.Link, loc, s, c: float, op: str) -> np.ndarray:
    lo, hi = link.support
    if c <= lo:
        above = np.ones_like(loc, dtype=np.float64)
    elif c >= hi:
        above = np.zeros_like(loc, dtype=np.float64)
    else:
        above = special.ndtr(-(float(link.inverse(np.array(c))) - loc) / s)
    return above if op in (">", ">=") else 1.0 - above


def _grid(p: _Problem, plan: _Plan, n: int):
    """Tensor Gauss-Hermite nodes x enumerated discrete values: (z, weights, ev)."""
    d = len(plan.cont)
    x, w = _hermite(n) if d else (np.zeros(1), np.ones(1))
    axes = [x] * d + [np.arange(p.graph.card(v)) for v in plan.enum]
    weights = [w] * d + [np.ones(p.graph.card(v)) for v in plan.enum]
    if not axes:
        return np.zeros((1, 0)), np.ones(1), {}
    mesh = np.meshgrid(*axes, indexing="ij")
    wmesh = np.meshgrid(*weights, indexing="ij")
    pts = np.stack([a.ravel() for a in mesh], axis=1)
    wt = np.prod(np.stack([a.ravel() for a in wmesh], axis=1), axis=1)
    ev = {v: pts[:, d + i].astype(np.int64) for i, v in enumerate(plan.enum)}
    return pts[:, :d], wt, ev


def _estimate(f: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    total = w.sum()
    if not total > 0:
        raise ZeroProbabilityError("the evidence has probability (density) zero")
    return np.tensordot(w, f, axes=(0, 0)) / total, total


def _quantile(cdf_at, lo: float, hi: float, level: float, tol: float = 1e-10) -> float:
    """Solve cdf(q) = level by bisection on [lo, hi] (widened when infinite)."""
    if not math.isfinite(lo):
        lo = -1.0
        while cdf_at(lo) > level:
            lo = lo * 2 - 1
    if not math.isfinite(hi):
        hi = max(lo + 1.0, 1.0)
        while cdf_at(hi) < level:
            hi = hi * 2 + 1
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if cdf_at(mid) < level:
            lo = mid
        else:
            hi = mid
        if hi - lo <= tol * max(1.0, abs(mid)):
            break
    return 0.5 * (lo + hi)


def _below_fn(p: _Problem, plan: _Plan, target, tparents, m: int):
    """F(c) at each point: P(target <= c | point)."""
    var = p.graph[p.target.var]

    def below(c: float) -> np.ndarray:
        if not plan.rb:
            return (target <= c).astype(np.float64)
        law = var.law
        if isinstance(law, C.Root):
            return np.full(m, float(law.cdf(np.array(c))))
        loc, s = law.loc_scale(tparents)
        return _cdf_above(law.link, np.broadcast_to(loc, (m,)), np.broadcast_to(s, (m,)), c, "<=")

    return below


def _labels(p: _Problem, q) -> list[str]:
    var = p.graph[p.target.var]
    label = q.target.label if isinstance(q, MixedQuery) else p.target.var
    if not C.is_continuous(var):
        return list(var.values)
    if q.measure == "P":
        return [f"{label} {q.op} {q.threshold:g}"]
    return [label]


def _by_quadrature(p: _Problem, q, plan: _Plan):
    """Gauss-Hermite rules of growing size until two agree; None when the grid would be too
    large before two rules could be compared (then importance sampling answers)."""
    d = len(plan.cont)
    smooth = plan.rb or q.measure == "E" or not C.is_continuous(p.graph[p.target.var])
    if not smooth:
        # An event, quantile or density of a target computed from the unknowns: an indicator
        # is no integrand for Gauss-Hermite. A factual target is integrated over its value.
        return _by_value_quadrature(p, q, plan) if p.target.world == 0 else None
    done: list[tuple[int, np.ndarray]] = []
    for n in QUADRATURE_NODES[d]:
        if n**d * math.prod(p.graph.card(v) for v in plan.enum) > MAX_POINTS:
            break
        value = _rule(p, q, plan, n)
        if d == 0:
            return value, np.zeros_like(value), n
        done.append((n, value))
        if len(done) >= 2:
            err = np.abs(done[-1][1] - done[-2][1])
            if np.max(err) <= TOLERANCE * max(1.0, float(np.max(np.abs(value)))):
                break
    if len(done) < 2:
        return None
    return done[-1][1], np.abs(done[-1][1] - done[-2][1]), done[-1][0]


def _normaliser(p: _Problem, plan: _Plan, n: int) -> tuple[float, float, float]:
    """The evidence's probability (density) Z, and the target's mean and sd given it."""
    z, w, ev = _grid(p, plan, n)
    logw, target, _ = _run_points(p, plan, z, np.zeros((len(z), 0)), ev)
    w = w * np.exp(logw)
    total = float(w.sum())
    if not total > 0:
        raise ZeroProbabilityError("the evidence has probability (density) zero")
    mean = float(w @ target) / total
    sd = math.sqrt(max(float(w @ (target - mean) ** 2) / total, 0.0))
    return total, mean, sd


def _by_value_quadrature(p: _Problem, q, plan: _Plan):
    """P(y > c | E), quantiles and densities of a factual continuous target y that other
    unknowns depend on: its density given the evidence is Z(E, y) / Z(E) (y taken as one more
    piece of evidence, its noise pinned by abduction), a smooth function of y that adaptive
    Gauss-Kronrod (scipy's quad) integrates with an error estimate."""
    from scipy import integrate, optimize

    var = p.graph[p.target.var]
    inner = _Plan([v for v in plan.cont if v != var.name], plan.disc, plan.enum, False)
    rules = QUADRATURE_NODES[len(plan.cont)]
    found = []
    for n in rules:
        if n ** len(plan.cont) * math.prod(p.graph.card(v) for v in plan.enum) > MAX_POINTS:
            break
        found.append((n, *_normaliser(p, plan, n)))
        if len(found) >= 2 and abs(found[-1][1] - found[-2][1]) <= TOLERANCE * found[-1][1]:
            break
    if len(found) < 2:
        return None
    n, total, mean, sd = found[-1]
    z_rel = abs(found[-1][1] - found[-2][1]) / total
    z, w, ev = _grid(p, inner, n)

    def density(y: float) -> float:
        logw, _, _ = _run_points(p, inner, z, np.zeros((len(z), 0)), {**ev, var.name: np.full(len(z), float(y))})
        return float(w @ np.exp(logw)) / total

    lo, hi = var.support
    a, b = max(lo, mean - 12 * sd), min(hi, mean + 12 * sd)

    def mass(x0: float, x1: float) -> tuple[float, float]:
        x0, x1 = max(x0, a), min(x1, b)
        if x1 <= x0:
            return 0.0, 0.0
        inside = [m for m in (mean,) if x0 < m < x1]
        val, err = integrate.quad(density, x0, x1, points=inside or None, limit=200, epsabs=1e-12, epsrel=1e-10)
        return val, err

    if q.measure == "p":
        v = density(q.at) if lo < q.at < hi else 0.0
        return np.array([v]), np.array([v * z_rel]), n
    if q.measure == "P":
        below, err = mass(a, q.threshold)
        above = 1.0 - below
        v = above if q.op in (">", ">=") else below
        return np.array([v]), np.array([err + z_rel]), n
    root = optimize.brentq(lambda x: mass(a, x)[0] - q.level, a, b, xtol=1e-12, rtol=1e-12)
    _, err = mass(a, root)
    return np.array([root]), np.array([(err + z_rel) / max(density(root), 1e-300)]), n


def _rule(p: _Problem, q, plan: _Plan, n: int) -> np.ndarray:
    z, w, ev = _grid(p, plan, n)
    logw, target, tparents = _run_points(p, plan, z, np.zeros((len(z), 0)), ev)
    w = w * np.exp(logw)
    if isinstance(q, MixedQuery) and q.measure == "Q":
        total = w.sum()
        if not total > 0:
            raise ZeroProbabilityError("the evidence has probability (density) zero")
        below = _below_fn(p, plan, target, tparents, len(w))
        lo, hi = p.graph[p.target.var].support
        return np.array([_quantile(lambda c: float(w @ below(c)) / total, lo, hi, q.level)])
    value, _ = _estimate(_functional(p, q, plan, target, tparents, len(w)), w)
    return np.atleast_1d(value)


def _by_sampling(p: _Problem, q, plan: _Plan, samples: int, seed: int):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((samples, len(plan.cont)))
    ud = rng.random((samples, len(plan.disc) + len(plan.enum)))
    plan = _Plan(plan.cont, plan.disc + plan.enum, [], plan.rb)  # sampled, not enumerated
    logw, target, tparents = _run_points(p, plan, z, ud, {})
    finite = np.isfinite(logw)
    if not finite.any():
        raise ZeroProbabilityError("no sample is compatible with the evidence (its probability or density is zero)")
    w = np.where(finite, np.exp(logw - logw[finite].max()), 0.0)
    ess = float(w.sum() ** 2 / (w * w).sum())
    if isinstance(q, MixedQuery) and q.measure == "Q":
        below = _below_fn(p, plan, target, tparents, samples)
        lo, hi = p.graph[p.target.var].support
        value = _quantile(lambda c: float(w @ below(c)) / w.sum(), lo, hi, q.level, tol=1e-8)
        batches = np.array_split(np.arange(samples), 20)
        qs = []
        for b in batches:
            wb = w[b]
            if wb.sum() > 0:
                qs.append(_quantile(lambda c: float(wb @ below(c)[b]) / wb.sum(), lo, hi, q.level, tol=1e-8))
        se = float(np.std(qs, ddof=1) / math.sqrt(len(qs))) if len(qs) > 1 else math.inf
        return np.array([value]), np.array([se]), ess
    f = _functional(p, q, plan, target, tparents, samples)
    mean, total = _estimate(f, w)
    mean = np.atleast_1d(mean)
    f2 = f.reshape(samples, -1)
    se = np.sqrt(((w[:, None] * (f2 - mean)) ** 2).sum(axis=0)) / total
    return mean, se, ess


# ---------------------------------------------------------------------------- evaluate


def _discrete_closure(graph: Graph, names: Sequence[str]) -> Graph | None:
    """The ancestral subgraph of ``names`` when it is purely discrete (else None)."""
    keep: set[str] = set()
    stack = list(names)
    while stack:
        n = stack.pop()
        if n not in keep:
            keep.add(n)
            stack.extend(graph[n].parents)
    sub = [graph[n] for n in graph.names if n in keep]
    if any(C.is_continuous(v) or not isinstance(v.cpt, np.ndarray) for v in sub):
        return None
    return Graph(sub, None, graph.name, graph.description)


def evaluate(graph: Graph, q, *, samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED):
    """Answer a parsed (or textual) query on a mixed graph with the most exact method that
    applies (see the module docstring); the answer states its method and error."""
    from causalvae import querylang

    if isinstance(q, str):
        q = parse(q, graph)
    else:
        q = parse(q.text, graph)
    if samples < 100:
        raise CausalVAEError(f"importance sampling needs at least 100 samples, got {samples}")
    names = set()
    if isinstance(q, CausationQuery):
        names = {q.treatment, q.outcome, *(t.var for t, _ in q.evidence), *(v for v, _ in q.do)}
    else:
        targets = [q.target] if isinstance(q, MixedQuery) else list(q.targets)
        for t in [*targets, *(t for t, _ in q.evidence)]:
            names |= {t.var, *(k for k, _ in t.world)}
        names |= {v for v, _ in q.do}
    sub = _discrete_closure(graph, sorted(names))
    if sub is not None and not isinstance(q, MixedQuery):
        answer = querylang.evaluate(sub, q)
        if isinstance(q, CausationQuery):
            return answer
        d = answer.distribution
        est = tuple(Estimate(",".join(k), p, 0.0) for k, p in d.items())
        details = {} if answer.probability is None else {"event": ",".join(q.target_values), "probability": answer.probability}
        return MixedAnswer(q, "exact (discrete engine)", "exact", est, details)
    if isinstance(q, CausationQuery):
        raise CausalVAEError("PN, PS and PNS are answered on discrete variables only (this one depends on continuous ones)")
    if isinstance(q, ProbabilityQuery):
        if len(q.targets) != 1:
            raise CausalVAEError("on a mixed graph a query has one target (ask about each in turn)")
        target, value = q.targets[0], q.target_values[0]
    else:
        target, value = q.target, None
    p = _problem(graph, target, q.evidence, dict(q.do))
    labels = _labels(p, q)
    try:
        kind, data = _closed_form(p)
    except _NotGaussian:
        kind = None
    if kind is not None:
        details: dict[str, Any] = {}
        if kind == "probs":
            est = tuple(Estimate(lab, float(x), 0.0) for lab, x in zip(labels, data))
            return _pick(MixedAnswer(q, "closed form (linear-Gaussian)", "exact", est, details), value)
        if kind == "root":
            v = _root_answer(q, data)
            return MixedAnswer(q, "closed form (root distribution)", "exact", (Estimate(labels[0], v, 0.0),), {})
        if kind == "const":
            var = graph[target.var]
            if not C.is_continuous(var):
                est = tuple(Estimate(lab, float(i == data), 0.0) for i, lab in enumerate(labels))
                return _pick(MixedAnswer(q, "closed form (linear-Gaussian)", "exact", est, details), value)
            data = (float(data), 0.0, C.Link("identity"))
        mu, sd, link = data
        v, err, note = _gauss_answer(q, mu, sd, link)
        method = "closed form (linear-Gaussian)" + (f" + {note}" if note else "")
        kind_err = "quadrature" if note else "exact"
        details = {"gaussian": {"mean": mu, "sd": sd, "link": link.name}}
        return MixedAnswer(q, method, kind_err, (Estimate(labels[0], v, err),), details)
    plan = _plan(p)
    result = None
    if not plan.disc and len(plan.cont) <= 2:
        result = _by_quadrature(p, q, plan)
    if result is not None:
        values, errors, n = result
        d = len(plan.cont)
        what = f"{d}-D Gauss-Hermite, {n} nodes per dimension" if d else "a single point: no unknown noise"
        if plan.enum:
            what += f", enumerating {', '.join(plan.enum)}"
        est = tuple(Estimate(lab, float(v), float(e)) for lab, v, e in zip(labels, values, errors))
        return _pick(MixedAnswer(q, f"quadrature ({what})", "quadrature" if d else "exact", est, {"nodes": n, "dimensions": d}), value)
    values, errors, ess = _by_sampling(p, q, plan, samples, seed)
    est = tuple(Estimate(lab, float(v), float(e)) for lab, v, e in zip(labels, values, errors))
    details = {"samples": samples, "seed": seed, "effective_sample_size": round(ess, 1)}
    return _pick(MixedAnswer(q, f"importance sampling ({samples} samples, seed {seed})", "standard error", est, details), value)


def _pick(answer: MixedAnswer, value: Any) -> MixedAnswer:
    """``P(d=v | ...)``: keep the distribution and add the asked value's probability."""
    if value is None:
        return answer
    chosen = next(e for e in answer.estimates if e.label == value)
    return MixedAnswer(answer.query, answer.method, answer.error_kind, answer.estimates, {**answer.details, "event": value, "probability": chosen.value})


# ---------------------------------------------------------------------------- summaries

#: The quantile levels :func:`summarize` answers.
SUMMARY_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class Summary:
    """A continuous target's distribution in a few numbers: its mean and its quantiles at
    ``levels``, each a :class:`MixedAnswer` with its own method and error."""

    query: MixedQuery
    mean: MixedAnswer
    levels: tuple[float, ...]
    quantiles: tuple[MixedAnswer, ...]


def _term_text(t: Term) -> str:
    from causalvae.graph import quote_name

    if not t.world:
        return quote_name(t.var)
    return f"{quote_name(t.var)}[" + ", ".join(f"{quote_name(k)}={query_text(v)}" for k, v in t.world) + "]"


def summarize(graph: Graph, q, *, levels: Sequence[float] = SUMMARY_LEVELS, samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED) -> Summary:
    """``P(y | ...)`` of a continuous ``y``, its whole distribution, summarised: ``E(y | ...)``
    and ``Q(y, level | ...)`` at each level, each answered by :func:`evaluate`.

        >>> s = summarize(Graph.load("morpho"), "P(thickness | do(intensity=200))")
        >>> round(s.mean.value, 4), s.mean.method
        (2.5, 'closed form (root distribution)')
    """
    if isinstance(q, str):
        q = parse(q, graph, whole=True)
    if not (isinstance(q, MixedQuery) and q.measure == "P" and q.op is None):
        raise CausalVAEError("summarize answers P(y | ...) of a continuous y (its whole distribution)")
    conds = [f"{_term_text(t)}={query_text(v)}" for t, v in q.evidence]
    conds += [f"do({_term_text(Term(k, ()))}={query_text(v)})" for k, v in q.do]
    tail = f" | {', '.join(conds)}" if conds else ""
    y = _term_text(q.target)
    mean = evaluate(graph, f"E({y}{tail})", samples=samples, seed=seed)
    quantiles = tuple(evaluate(graph, f"Q({y}, {query_text(float(level))}{tail})", samples=samples, seed=seed) for level in levels)
    return Summary(q, mean, tuple(float(x) for x in levels), quantiles)
