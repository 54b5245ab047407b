"""Exact inference on a discrete causal graph: conditioning, intervention, counterfactuals.

Everything is computed in float64 by contracting the graph's factors with one einsum whose
elimination order is found by ``opt_einsum`` (variable elimination in tensor form), after
dropping the variables that cannot matter (barren nodes: neither a target, evidence, nor an
ancestor of one). Nothing loops over joint states, so networks such as alarm (37 variables)
or hepar2 (70) answer in milliseconds.

- :func:`query` answers ``P(targets | evidence)``, ``P(targets | do(...), evidence)`` (the
  graph mutilated: each intervened variable loses its parents) and counterfactual queries
  whose terms live in several worlds, e.g. ``P(reaction[action=Walk] | action=Attack,
  reaction=Dying)``. Counterfactuals use a multi-world ("twin") network: every variable's
  noise U_V (see :mod:`causalvae.noise`) is shared across worlds and represented exactly by
  the cells between the merged cdf breakpoints of all rows of V's table.
- :func:`posterior` answers one query for N evidence rows at once (vectorised; -1 marks a
  missing value).
- :func:`causation` gives the probabilities of causation PN, PS and PNS (Pearl, Causality,
  ch. 9) of an event pair.

    >>> from causalvae.graph import Graph
    >>> from causalvae.exact import query
    >>> g = Graph.load("scenes")
    >>> round(query(g, ["action"], {"reaction": "Dying"}).prob("Attack"), 2)
    0.6
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Union

import numpy as np
import opt_einsum

from causalvae.errors import CausalVAEError, QueryStoppedError, QueryTooLargeError, ZeroProbabilityError, unknown
from causalvae.graph import Graph, Variable
from causalvae.noise import cdf, noise_cells

#: Largest joint table (entries) that :func:`posterior` builds for look-up; beyond it, the
#: evidence rows are contracted in chunks instead.
MAX_LOOKUP_TABLE = 2**23

#: The share of the machine's available memory that one query's largest table may take
#: by default.
MEMORY_SHARE = 0.25
#: The most multiply-adds one query may do by default: numpy's pairwise einsum does roughly
#: 10^7 to 10^8 a second on one core, so this is seconds to a minute of work at worst.
MAX_OPERATIONS = 2 * 10**9

Value = Union[str, int]
EvidenceValue = Union[str, int, Sequence[Union[str, int]], frozenset]


@dataclass(frozen=True)
class Term:
    """A variable in a world: ``Term("reaction", (("action", "Walk"),))`` is reaction[action=Walk].

    The world is the tuple of interventions that defines it; ``()`` is the factual world.
    """

    var: str
    world: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, item: Any) -> Term:
        if isinstance(item, Term):
            return item
        if isinstance(item, str):
            return cls(item)
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Mapping):
            return cls(item[0], tuple((str(k), v) for k, v in item[1].items()))
        raise TypeError(f"expected a variable name, a Term or (name, {{interventions}}), got {item!r}")

    @property
    def label(self) -> str:
        if not self.world:
            return self.var
        return f"{self.var}[" + ", ".join(f"{k}={v}" for k, v in self.world) + "]"


@dataclass(frozen=True)
class Distribution:
    """A joint distribution over ``variables`` (labels such as ``reaction[action=Walk]``)."""

    variables: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]
    table: np.ndarray

    def prob(self, *values: str) -> float:
        """The probability of one joint value (one value name per variable)."""
        if len(values) != len(self.variables):
            raise CausalVAEError(f"give one value for each of {', '.join(self.variables)}")
        idx = []
        for var, vals, v in zip(self.variables, self.values, values):
            if v not in vals:
                raise unknown("value", v, vals, f"of '{var}'")
            idx.append(vals.index(v))
        return float(self.table[tuple(idx)])

    def items(self) -> list[tuple[tuple[str, ...], float]]:
        """``((value, ...), probability)`` pairs in table order."""
        out = []
        for idx in np.ndindex(*self.table.shape):
            out.append((tuple(vals[i] for vals, i in zip(self.values, idx)), float(self.table[idx])))
        return out

    def to_dict(self) -> dict[str, float]:
        """Each joint value (names joined by commas) mapped to its probability."""
        return {",".join(k): p for k, p in self.items()}

    def marginal(self, variable: str) -> Distribution:
        """The marginal of one of the variables."""
        if variable not in self.variables:
            raise unknown("variable", variable, self.variables, "in this distribution")
        i = self.variables.index(variable)
        axes = tuple(j for j in range(len(self.variables)) if j != i)
        return Distribution((variable,), (self.values[i],), self.table.sum(axis=axes))


# ---------------------------------------------------------------------------- the budget


#: Seconds for which :func:`available_memory` keeps its last reading: reading /proc/meminfo
#: took a large share of a small warm query's time, and memory does not change that fast.
MEMORY_READING_TTL = 1.0
_memory_reading: tuple[float, int] = (-math.inf, 0)


def available_memory() -> int:
    """The bytes of memory the machine can still give (MemAvailable), or 4 GiB if unknown;
    read at most once every :data:`MEMORY_READING_TTL` seconds."""
    global _memory_reading
    now = time.monotonic()
    when, value = _memory_reading
    if now - when < MEMORY_READING_TTL:
        return value
    value = 4 * 2**30
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    value = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    _memory_reading = (now, value)
    return value


@dataclass(frozen=True)
class Budget:
    """Limits on the work of one exact query, checked against the plan before any work starts.

    ``max_table_bytes`` bounds the largest table (float64) the query's plan or its twin network
    creates (None: :data:`MEMORY_SHARE` of the available memory); ``max_operations`` bounds the
    multiply-adds of the contraction (None: no limit). ``deadline`` (a ``time.monotonic()``
    instant) and ``stop`` (an event another thread may set) end the work between two steps
    with :class:`QueryStoppedError`.

        >>> Budget.of(max_table_mb=64).max_table_bytes
        67108864
    """

    max_table_bytes: int | None = None
    max_operations: int | None = MAX_OPERATIONS
    deadline: float | None = None
    stop: threading.Event | None = None

    @classmethod
    def of(cls, max_table_mb: float | None = None, max_operations: float | None = MAX_OPERATIONS, **kwargs) -> Budget:
        """A budget from a size in MiB (the CLI's ``--max-table-mb``) and a number of operations
        (``inf``: no limit); checks the numbers."""
        if max_table_mb is not None and not (max_table_mb > 0 and math.isfinite(max_table_mb)):
            raise CausalVAEError(f"--max-table-mb must be a positive number of MB, got {max_table_mb}")
        if max_operations is not None and not max_operations > 0:
            raise CausalVAEError(f"--max-operations must be a positive number, got {max_operations}")
        ops = None if max_operations is None or math.isinf(max_operations) else int(max_operations)
        return cls(None if max_table_mb is None else int(max_table_mb * 2**20), ops, **kwargs)

    def checkpoint(self) -> None:
        """Raise :class:`QueryStoppedError` if the work was stopped or is past its deadline."""
        if self.stop is not None and self.stop.is_set():
            raise QueryStoppedError("the query was stopped before it finished")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise QueryStoppedError("the query ran past its time limit and was stopped; ask for fewer targets or counterfactual worlds")

    def table_limit(self) -> int:
        return self.max_table_bytes if self.max_table_bytes is not None else int(available_memory() * MEMORY_SHARE)

    def check_table(self, entries: int, variables: Sequence[str], what: str, relation: str = "over") -> None:
        """Refuse a table of ``entries`` float64 numbers over ``variables`` if over the limit."""
        limit = self.table_limit()
        if entries * 8 > limit:
            raise QueryTooLargeError(
                f"this query would build {what} of {_mb(entries * 8)} {relation} {_names(variables)} "
                f"(limit {_mb(limit)}); ask for fewer targets or counterfactual worlds, give evidence on "
                f"one of these variables, or raise the limit (--max-table-mb)"
            )

    def check_operations(self, operations: int, variables: Sequence[str]) -> None:
        if self.max_operations is not None and operations > self.max_operations:
            raise QueryTooLargeError(
                f"this query needs about {operations:.1e} operations (limit {self.max_operations:.1e}), most of them in "
                f"a step over {_names(variables)}; ask for fewer targets or counterfactual worlds, give evidence "
                f"on one of these variables, or raise the limit (--max-operations)"
            )


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n:,} bytes"


def _names(variables: Sequence[str], most: int = 8) -> str:
    shown = list(variables)[:most]
    return ", ".join(shown) + (f" and {len(variables) - most} more" if len(variables) > most else "")


DEFAULT_BUDGET = Budget()


# ---------------------------------------------------------------------------- contraction


@lru_cache(maxsize=4096)
def _expression(eq: str, shapes: tuple[tuple[int, ...], ...]):
    """A compiled einsum with its elimination order (cached per structure, never per answer)."""
    return opt_einsum.contract_expression(eq, *shapes, optimize="greedy" if len(shapes) > 8 else "auto")


def _contract(factors: Sequence[tuple[tuple[str, ...], np.ndarray]], output: Sequence[str], batch: str | None = None) -> np.ndarray:
    """Sum the product of ``factors`` over every axis not in ``output``.

    Each factor is ``(axis names, array)``. ``batch`` names an axis that some factors carry
    first (not a variable) and that stays first in the result.
    """
    symbols: dict[str, str] = {}

    def sym(name: str) -> str:
        if name not in symbols:
            symbols[name] = opt_einsum.get_symbol(len(symbols))
        return symbols[name]

    scalar = 1.0
    terms, arrays = [], []
    for axes, arr in factors:
        if not axes:
            scalar *= float(arr)
            continue
        terms.append("".join(sym(a) for a in axes))
        arrays.append(arr)
    out_axes = ([batch] if batch else []) + list(output)
    out = "".join(sym(a) for a in out_axes)
    if not arrays:
        return np.asarray(scalar)
    eq = ",".join(terms) + "->" + out
    result = _expression(eq, tuple(a.shape for a in arrays))(*arrays)
    return result * scalar if scalar != 1.0 else result


def _normalise_do(graph: Graph, do: Mapping[str, Value] | None) -> dict[str, int]:
    return {name: graph[name].index(v) for name, v in (do or {}).items()}


def _factor_of(var: Variable, do: Mapping[str, int]) -> tuple[tuple[str, ...], np.ndarray]:
    if var.name in do:
        point = np.zeros(var.card)
        point[do[var.name]] = 1.0
        return (var.name,), point
    return (*var.parents, var.name), var.cpt


def _relevant(graph: Graph, do: Mapping[str, int] | frozenset, names: Iterable[str]) -> list[str]:
    """``names`` and their ancestors in the mutilated graph, in topological order."""
    keep: set[str] = set()
    stack = list(names)
    while stack:
        n = stack.pop()
        if n in keep:
            continue
        keep.add(n)
        if n not in do:
            stack.extend(graph[n].parents)
    return [n for n in graph.topological_order if n in keep]


def _mask(var: Variable, value: EvidenceValue) -> np.ndarray | int:
    """An evidence value as an index (one value) or a 0/1 mask (a set of values)."""
    if isinstance(value, (str, int, np.integer)) and not isinstance(value, bool):
        return var.index(value)
    if isinstance(value, (list, tuple, set, frozenset)) and value:
        mask = np.zeros(var.card)
        for v in value:
            mask[var.index(v)] = 1.0
        return mask
    raise CausalVAEError(f"evidence on '{var.name}' must be a value or a non-empty set of values, got {value!r}")


@dataclass(frozen=True)
class _Cost:
    """What a plan's contraction creates and does: its largest table (entries and axes) and its
    multiply-adds (with the axes of the costliest step)."""

    largest: int = 0
    largest_axes: tuple[str, ...] = ()
    operations: int = 0
    costliest_axes: tuple[str, ...] = ()

    def check(self, budget: Budget) -> None:
        budget.check_table(self.largest, self.largest_axes, "a table")
        budget.check_operations(self.operations, self.costliest_axes)


@dataclass(frozen=True)
class _Plan:
    """How to answer one query *structure* (which targets, which evidence variables given how,
    which variables intervened), whatever the evidence and intervention values are.

    ``factors`` lists, per relevant variable, ``(name, table, slicer template, kept)``:
    ``table`` is the CPT, or None for an intervened variable (a point mass made per call);
    template entry ``k >= 0`` slices that axis at evidence slot ``k`` (None: no slicing);
    ``kept`` is False when every axis is sliced away (a scalar). ``steps`` are pairwise einsums in the elimination
    order opt_einsum found, each ``(operand positions, equation)``, or ``(operand positions,
    array)`` for a step whose inputs are all constant and was evaluated when planning.
    """

    factors: tuple[tuple[str, np.ndarray | None, tuple[int, ...] | None, bool], ...]
    masks: tuple[str, ...]
    steps: tuple[tuple[tuple[int, ...], str | np.ndarray], ...]
    final: str | None
    cost: _Cost


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def clear_caches() -> None:
    """Forget every compiled plan and einsum path (benchmarks use it to time cold queries)."""
    _PLANS.clear()
    _expression.cache_clear()


def _plan(graph: Graph, targets: tuple[str, ...], sliced: tuple[str, ...], masked: tuple[str, ...], done: frozenset, budget: Budget) -> _Plan:
    cache = _PLANS.setdefault(graph, {})
    key = (targets, sliced, masked, done)
    plan = cache.get(key)
    if plan is None:
        plan = cache[key] = _build_plan(graph, targets, sliced, masked, done, budget)
    else:
        plan.cost.check(budget)
    return plan


def _build_plan(graph: Graph, targets, sliced, masked, done, budget: Budget) -> _Plan:
    relevant = _relevant(graph, done, [*targets, *sliced, *masked])
    slot = {n: i for i, n in enumerate(sliced)}
    symbols: dict[str, str] = {}

    def sym(name: str) -> str:
        if name not in symbols:
            symbols[name] = opt_einsum.get_symbol(len(symbols))
        return symbols[name]

    factors, terms, shapes = [], [], []
    for name in relevant:
        intervened = name in done
        axes = (name,) if intervened else (*graph[name].parents, name)
        kept = [a for a in axes if a not in slot]
        template = tuple(slot.get(a, -1) for a in axes)
        table = None if intervened else graph[name].cpt
        factors.append((name, table, template if any(k >= 0 for k in template) else None, bool(kept)))
        if kept:
            terms.append("".join(sym(a) for a in kept))
            shapes.append(tuple(graph.card(a) for a in kept))
    for name in masked:
        terms.append(sym(name))
        shapes.append((graph.card(name),))
    out = "".join(sym(t) for t in targets)
    if not terms:
        return _Plan(tuple(factors), tuple(masked), (), None, _Cost())
    # Greedy finds good orders for these networks' small factors, and finds them fast.
    path, _ = opt_einsum.contract_path(",".join(terms) + "->" + out, *shapes, shapes=True, optimize="greedy")
    cost = _path_cost(path, terms, out, {s: graph.card(n) for n, s in symbols.items()}, {s: n for n, s in symbols.items()})
    cost.check(budget)  # before any table is made
    ops = list(terms)
    # Constant operands (a CPT neither sliced by evidence nor intervened) are known now;
    # steps whose inputs are all constant are evaluated once here (partial evaluation).
    consts: list[np.ndarray | None] = [table if template is None else None for _, table, template, kept in factors if kept]
    consts += [None] * len(masked)
    steps = []
    for contraction in path:
        positions = tuple(sorted(contraction, reverse=True))
        inputs = [ops.pop(p) for p in positions]
        arrays = [consts.pop(p) for p in positions]
        rest = "".join(ops) + out
        seen: list[str] = []
        for term in inputs:
            for c in term:
                if c in rest and c not in seen:
                    seen.append(c)
        result = "".join(seen)
        eq = _ascii(",".join(inputs) + "->" + result)
        if all(a is not None for a in arrays):
            budget.checkpoint()
            folded = np.einsum(eq, *arrays)
            steps.append((positions, folded))
            consts.append(folded)
        else:
            steps.append((positions, eq))
            consts.append(None)
        ops.append(result)
    final = None if ops[0] == out else _ascii(ops[0] + "->" + out)
    return _Plan(tuple(factors), tuple(masked), tuple(steps), final, cost)


def _path_cost(path, terms: Sequence[str], out: str, card: Mapping[str, int], name: Mapping[str, str]) -> _Cost:
    """Walk a contraction path symbolically: the largest result table and the multiply-adds
    (a pairwise einsum visits every combination of its operands' axes)."""
    ops = list(terms)
    largest, largest_axes, total, top, top_axes = 0, "", 0, -1, ""
    for contraction in path:
        inputs = [ops.pop(p) for p in sorted(contraction, reverse=True)]
        rest = "".join(ops) + out
        union = "".join(dict.fromkeys("".join(inputs)))
        result = "".join(c for c in union if c in rest)
        work = math.prod(card[c] for c in union)
        size = math.prod(card[c] for c in result)
        total += work
        if size > largest:
            largest, largest_axes = size, result
        if work > top:
            top, top_axes = work, union
        ops.append(result)
    return _Cost(largest, tuple(name[c] for c in largest_axes), total, tuple(name[c] for c in top_axes))


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _ascii(eq: str) -> str:
    """Rename one einsum step's symbols to ASCII letters: numpy's einsum takes only those,
    while a network of more than 52 variables needs more symbols than that in all."""
    names: dict[str, str] = {}
    out = []
    for c in eq:
        if c in ",->":
            out.append(c)
        else:
            if c not in names:
                if len(names) == len(_LETTERS):
                    raise CausalVAEError("an elimination step spans more than 52 variables; this network is too densely connected for exact inference")
                names[c] = _LETTERS[len(names)]
            out.append(names[c])
    return "".join(out)


def _joint(graph: Graph, targets: Sequence[str], evidence: Mapping[str, EvidenceValue], do: Mapping[str, int], budget: Budget = DEFAULT_BUDGET) -> np.ndarray:
    """The unnormalised table P(targets, evidence) over the targets' axes."""
    sliced, values, masked, masks = [], [], [], []
    for name, value in evidence.items():
        m = _mask(graph[name], value)
        if isinstance(m, int) and name not in targets:
            sliced.append(name)
            values.append(m)
        else:
            if isinstance(m, int):
                m = np.eye(graph[name].card)[m]
            masked.append(name)
            masks.append(m)
    plan = _plan(graph, tuple(targets), tuple(sliced), tuple(masked), frozenset(do), budget)
    arrays = []
    scalar = 1.0
    whole = slice(None)
    for name, table, template, kept in plan.factors:
        if table is None:
            table = np.zeros(graph.card(name))
            table[do[name]] = 1.0
        if template is not None:
            table = table[tuple(whole if k < 0 else values[k] for k in template)]
        if kept:
            arrays.append(table)
        else:
            scalar *= float(table)
    arrays.extend(masks)
    for positions, step in plan.steps:
        budget.checkpoint()
        operands = [arrays.pop(p) for p in positions]
        arrays.append(np.einsum(step, *operands) if type(step) is str else step)
    if not arrays:
        return np.asarray(scalar)
    result = np.einsum(plan.final, arrays[0]) if plan.final else arrays[0]
    return result * scalar if scalar != 1.0 else result


# ---------------------------------------------------------------------------- the twin network


def _world_key(graph: Graph, world: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    if not world:
        return ()
    return tuple(sorted(world.items(), key=lambda kv: graph.rank[kv[0]]))


def _world_label(graph: Graph, key: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{n}={graph[n].values[i]}" for n, i in key)


def twin_network(graph: Graph, worlds: Iterable[Mapping[str, Value]], budget: Budget = DEFAULT_BUDGET) -> tuple[Graph, dict[tuple, dict[str, str]]]:
    """Build the multi-world network of ``graph`` for the given intervention sets.

    The factual world keeps each variable's name. In a world ``w``, a variable gets its own
    copy (named ``V[x=a, ...]``) when it is intervened in ``w`` (a constant) or when one of
    its parents has a copy (then it is the same deterministic function of its parents and of
    the shared noise cell ``U_V`` as in the factual world). Everything else is shared.

    Returns the network and, for each world key, the map from variable to node name. A noise
    variable's table larger than ``budget`` allows raises :class:`QueryTooLargeError` before it
    is built.
    """
    keys: list[tuple] = []
    for w in worlds:
        key = _world_key(graph, _normalise_do(graph, w))
        if key and key not in keys:
            keys.append(key)
    cache = _PLANS.setdefault(graph, {})
    cached = cache.get(("twin", tuple(keys)))
    if cached is None:
        cached = cache[("twin", tuple(keys))] = _build_twin(graph, keys, budget)
    return cached


def _check_twin_size(graph: Graph, needs_noise: set[str], budget: Budget) -> None:
    """Refuse a twin network whose new tables would not fit the budget, before building any.

    A variable V that needs its noise gets a table over (parents, U_V cells, V): one row per
    parent value and cell between the merged cdf breakpoints of all of V's rows.
    """
    sizes = {}
    for n in needs_noise:
        cpt = graph[n].cpt
        cells = len(np.unique(np.concatenate([[0.0, 1.0], cdf(cpt).ravel()])))
        sizes[n] = cpt.size * cells
    if sizes:
        biggest = sorted(sizes, key=sizes.get, reverse=True)
        budget.check_table(sum(sizes.values()), biggest, "twin-network tables", "for the noise of")


def _build_twin(graph: Graph, keys: list[tuple], budget: Budget) -> tuple[Graph, dict[tuple, dict[str, str]]]:
    nodes: dict[tuple, dict[str, str]] = {(): {n: n for n in graph.names}}
    needs_noise: set[str] = set()
    for key in keys:
        w = dict(key)
        label = _world_label(graph, key)
        mapping: dict[str, str] = {}
        for n in graph.topological_order:
            if n in w or any(mapping[p] != p for p in graph[n].parents):
                mapping[n] = f"{n}[{label}]"
                if n not in w:
                    needs_noise.add(n)
            else:
                mapping[n] = n
        nodes[key] = mapping
    _check_twin_size(graph, needs_noise, budget)
    taken = set(graph.names)
    variables: list[Variable] = []
    for n in graph.topological_order:
        var = graph[n]
        if n not in needs_noise:
            variables.append(var)
        else:
            u_name = "U_" + n
            while u_name in taken:
                u_name = "_" + u_name
            taken.add(u_name)
            probs, f = noise_cells(var.cpt)
            cells = tuple(f"cell{k}" for k in range(len(probs)))
            variables.append(Variable(u_name, cells, (), probs, observed=False, description=f"noise cell of {n}"))
            # One-hot of f over V's values: shape (*parent cards, cells, card).
            det = (f[..., None] == np.arange(var.card)).astype(np.float64)
            variables.append(Variable(n, var.values, (*var.parents, u_name), det, var.observed, var.description))
        for key in keys:
            w = dict(key)
            copy = nodes[key][n]
            if copy == n:
                continue
            if n in w:
                point = np.zeros(var.card)
                point[w[n]] = 1.0
                variables.append(Variable(copy, var.values, (), point, var.observed))
            else:
                parents = tuple(nodes[key][p] for p in var.parents) + (u_name,)
                variables.append(Variable(copy, var.values, parents, det, var.observed))
    return Graph(variables, None, f"{graph.name} (twin network)"), nodes


# ---------------------------------------------------------------------------- public queries


def _resolve_terms(graph: Graph, terms: Sequence[Term], do: Mapping[str, int]) -> list[tuple[Term, tuple]]:
    """Check names and give each term the key of its effective world (global do + brackets)."""
    out = []
    for t in terms:
        graph[t.var]
        world = dict(do)
        world.update(_normalise_do(graph, dict(t.world)))
        out.append((t, _world_key(graph, world)))
    return out


def query(
    graph: Graph,
    targets: Sequence[str | Term] | str | Term,
    evidence: Mapping[Any, EvidenceValue] | Sequence[tuple[Any, EvidenceValue]] | None = None,
    do: Mapping[str, Value] | None = None,
    budget: Budget = DEFAULT_BUDGET,
) -> Distribution:
    """Exact ``P(targets | do(do), evidence)``, possibly across counterfactual worlds.

    ``targets`` are variable names or :class:`Term` s (a variable in a world). ``evidence``
    maps names or Terms to a value (a name, an index, or a set of allowed values). ``do``
    intervenes in every world. Raises :class:`ZeroProbabilityError` when the evidence is
    impossible, and :class:`QueryTooLargeError` (before the work) when the plan's largest table
    or its operations exceed ``budget``.

        >>> from causalvae.graph import Graph
        >>> g = Graph.load("scenes")
        >>> d = query(g, [Term("reaction", (("action", "Walk"),))], {"action": "Attack", "reaction": "Dying"})
        >>> d.variables
        ('reaction[action=Walk]',)
    """
    if isinstance(targets, (str, Term)):
        targets = [targets]
    if (
        all(type(t) is str for t in targets)
        and (evidence is None or isinstance(evidence, Mapping))
        and all(type(k) is str for k in (evidence or ()))
    ):
        return _factual_query(graph, list(targets), dict(evidence or {}), do, budget)
    tterms = [Term.of(t) for t in targets]
    if not tterms:
        raise CausalVAEError("a query needs at least one target")
    items = list(evidence.items()) if isinstance(evidence, Mapping) else list(evidence or [])
    eterms = [(Term.of(k), v) for k, v in items]
    do_idx = _normalise_do(graph, do)
    resolved_t = _resolve_terms(graph, tterms, do_idx)
    resolved_e = _resolve_terms(graph, [t for t, _ in eterms], do_idx)
    labels = [t.label for t in tterms]
    keys = list(dict.fromkeys([k for _, k in resolved_t] + [k for _, k in resolved_e]))  # in order: the same plan every run
    if len(keys) == 1:
        net, world = graph, dict(next(iter(keys)))
        tnames = [t.var for t, _ in resolved_t]
        ev: dict[str, EvidenceValue] = {}
        for (t, _), (_, v) in zip(resolved_e, eterms):
            _merge_evidence(ev, t.var, v, graph)
    else:
        net, nodes = twin_network(graph, [dict(k) for k in keys], budget)
        world = {}
        tnames = [nodes[k][t.var] for t, k in resolved_t]
        ev = {}
        for (t, k), (_, v) in zip(resolved_e, eterms):
            _merge_evidence(ev, nodes[k][t.var], v, graph, t.var)
    if len(set(labels)) != len(labels):
        raise CausalVAEError("a target is listed twice: " + ", ".join(labels))
    table = _diagonal_joint(net, tnames, ev, world, budget)
    shown = [(t.label, _value_name(graph, t.var, v)) for t, v in eterms]
    return _normalised(graph, labels, [t.var for t in tterms], table, shown, do_idx)


def _diagonal_joint(net: Graph, nodes: list[str], evidence, world, budget: Budget = DEFAULT_BUDGET) -> np.ndarray:
    """The joint over ``nodes``, some of which may be the same node (a variable shared by two
    worlds, or named twice): computed over the distinct nodes, then put on the diagonal."""
    distinct = list(dict.fromkeys(nodes))
    budget.check_table(math.prod(net.card(n) for n in nodes), nodes, "an answer table")
    table = _joint(net, distinct, evidence, world, budget)
    if len(distinct) == len(nodes):
        return table
    first = {n: _LETTERS[i] for i, n in enumerate(distinct)}
    extra, out = [], []
    for i, n in enumerate(nodes):
        if nodes.index(n) == i:
            out.append(first[n])
        else:
            sym = _LETTERS[len(distinct) + len(extra)]
            extra.append((first[n] + sym, np.eye(net.card(n))))
            out.append(sym)
    eq = ",".join(["".join(first[n] for n in distinct)] + [e for e, _ in extra]) + "->" + "".join(out)
    return np.einsum(eq, table, *[m for _, m in extra])


def _factual_query(graph: Graph, targets: list[str], evidence: dict[str, EvidenceValue], do: Mapping[str, Value] | None, budget: Budget) -> Distribution:
    """The common case, kept lean: plain variable names, one (possibly intervened) world."""
    if not targets:
        raise CausalVAEError("a query needs at least one target")
    for t in targets:
        graph[t]
    if len(set(targets)) != len(targets):
        raise CausalVAEError("a target is listed twice: " + ", ".join(targets))
    do_idx = _normalise_do(graph, do)
    table = _joint(graph, targets, evidence, do_idx, budget)
    return _normalised(graph, targets, targets, table, [(k, _value_name(graph, k, v)) for k, v in evidence.items()], do_idx)


def _value_name(graph: Graph, var: str, value: EvidenceValue) -> str:
    """An evidence value as the user knows it: its name (an index is turned into the name)."""
    vals = graph[var].values
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value < len(vals):
        return vals[int(value)]
    if isinstance(value, (list, tuple, set, frozenset)):
        return "{" + ", ".join(_value_name(graph, var, v) for v in sorted(value, key=str)) + "}"
    return str(value)


def _normalised(graph, labels, variables, table, shown, do_idx) -> Distribution:
    total = float(table.sum())
    if not total > 0.0:
        text = ", ".join(f"{k}={v}" for k, v in shown) or "(none)"
        raise ZeroProbabilityError(f"the evidence {text} has probability zero" + (f" under do({_fmt_do(graph, do_idx)})" if do_idx else ""))
    values = tuple(graph[v].values for v in variables)
    return Distribution(tuple(labels), values, table / total)


def _merge_evidence(ev: dict, node: str, value: EvidenceValue, graph: Graph, var: str | None = None) -> None:
    var = var or node
    if node in ev:
        a, b = _mask(graph[var], ev[node]), _mask(graph[var], value)
        ma = a if not isinstance(a, int) else np.eye(graph[var].card)[a]
        mb = b if not isinstance(b, int) else np.eye(graph[var].card)[b]
        both = ma * mb
        ev[node] = frozenset(graph[var].values[i] for i in np.flatnonzero(both)) or frozenset()
        if not ev[node]:
            raise ZeroProbabilityError(f"contradictory evidence on '{node}'")
    else:
        ev[node] = value


def _fmt_do(graph: Graph, do: Mapping[str, int]) -> str:
    return ", ".join(f"{n}={graph[n].values[i]}" for n, i in do.items())


def marginals(graph: Graph, do: Mapping[str, Value] | None = None) -> dict[str, np.ndarray]:
    """Every variable's marginal distribution (under ``do`` when given)."""
    do_idx = _normalise_do(graph, do)
    return {n: np.array(_joint(graph, [n], {}, do_idx)) for n in graph.names}


def posterior(
    graph: Graph,
    targets: Sequence[str] | str,
    evidence_vars: Sequence[str],
    rows: np.ndarray,
    do: Mapping[str, Value] | None = None,
    *,
    max_table: int = MAX_LOOKUP_TABLE,
) -> np.ndarray:
    """``P(targets | evidence row)`` for every row of ``rows`` at once.

    ``rows`` is an int array of shape ``(N, len(evidence_vars))`` of value indices; ``-1``
    marks a missing value. Returns an array of shape ``(N, *target cards)``.

    When the joint table over evidence and targets is small (the usual case), it is computed
    once by one contraction and the rows are looked up in it (each evidence axis padded with
    its sum, which ``-1`` selects); otherwise the distinct rows are contracted in chunks with
    indicator factors. Raises :class:`ZeroProbabilityError` naming the first impossible row.

        >>> import numpy as np
        >>> from causalvae.graph import Graph
        >>> g = Graph.load("scenes")
        >>> p = posterior(g, "action", ["reaction"], np.array([[0], [-1]]))
        >>> p.shape
        (2, 3)
    """
    if isinstance(targets, str):
        targets = [targets]
    targets = list(targets)
    evidence_vars = list(evidence_vars)
    for n in [*targets, *evidence_vars]:
        graph[n]
    if len(set(evidence_vars)) != len(evidence_vars):
        raise CausalVAEError("an evidence variable is listed twice")
    if set(targets) & set(evidence_vars):
        raise CausalVAEError(f"'{sorted(set(targets) & set(evidence_vars))[0]}' is both a target and evidence")
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != len(evidence_vars):
        raise CausalVAEError(f"rows must have shape (N, {len(evidence_vars)}), got {rows.shape}")
    if not np.issubdtype(rows.dtype, np.integer):
        raise CausalVAEError(f"rows must hold integer value indices, got dtype {rows.dtype}")
    ecards = np.array([graph.card(n) for n in evidence_vars], dtype=np.int64)
    bad = (rows < -1) | (rows >= ecards)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise CausalVAEError(
            f"row {r}: value index {rows[r, c]} is out of range for '{evidence_vars[c]}' "
            f"(0..{ecards[c] - 1}, or -1 for missing)"
        )
    do_idx = _normalise_do(graph, do)
    tcards = [graph.card(n) for n in targets]
    n_t = math.prod(tcards)
    padded = [int(c) + 1 for c in ecards]
    if len(rows) == 0:
        return np.zeros((0, *tcards))
    if math.prod(padded) * n_t <= max_table or not evidence_vars:
        table = _joint(graph, [*evidence_vars, *targets], {}, do_idx)
        for axis in range(len(evidence_vars)):
            table = np.concatenate([table, table.sum(axis=axis, keepdims=True)], axis=axis)
        flat = table.reshape(-1, n_t)
        p_evidence = flat.sum(axis=1)
        idx = np.where(rows < 0, ecards, rows).astype(np.int64)
        lin = np.ravel_multi_index(tuple(idx.T), padded) if len(evidence_vars) else np.zeros(len(rows), np.int64)
        _refuse_impossible_rows(graph, evidence_vars, rows, p_evidence[lin])
        conditional = flat / np.where(p_evidence > 0, p_evidence, 1.0)[:, None]
        return np.take(conditional, lin, axis=0).reshape(len(rows), *tcards)
    out = _posterior_chunked(graph, targets, evidence_vars, rows, do_idx)
    sums = out.sum(axis=1)
    _refuse_impossible_rows(graph, evidence_vars, rows, sums)
    out /= sums[:, None]
    return out.reshape(len(rows), *tcards)


def _refuse_impossible_rows(graph: Graph, evidence_vars: Sequence[str], rows: np.ndarray, p_rows: np.ndarray) -> None:
    zero = ~(p_rows > 0)
    if zero.any():
        r = int(np.flatnonzero(zero)[0])
        shown = ", ".join(f"{n}={graph[n].values[v] if v >= 0 else '?'}" for n, v in zip(evidence_vars, rows[r]))
        raise ZeroProbabilityError(f"row {r}: the evidence {shown} has probability zero")


def _posterior_chunked(graph, targets, evidence_vars, rows, do_idx, chunk: int = 4096) -> np.ndarray:
    """Unnormalised P(targets, row) for each distinct row, by contraction with indicators."""
    uniq, inverse = np.unique(rows, axis=0, return_inverse=True)
    relevant = _relevant(graph, do_idx, [*targets, *evidence_vars])
    base = [_factor_of(graph[n], do_idx) for n in relevant]
    results = []
    for start in range(0, len(uniq), chunk):
        part = uniq[start : start + chunk]
        factors = list(base)
        for j, name in enumerate(evidence_vars):
            card = graph.card(name)
            ind = np.zeros((len(part), card))
            col = part[:, j]
            ind[col < 0] = 1.0
            ind[np.flatnonzero(col >= 0), col[col >= 0]] = 1.0
            factors.append((("__row__", name), ind))
        results.append(_contract(factors, targets, batch="__row__").reshape(len(part), -1))
    return np.concatenate(results)[inverse.ravel()]


def _unit(p: float) -> float:
    """A probability computed as a difference of sums, clamped to [0, 1] (so rounding never
    shows as -2.2e-16)."""
    return min(1.0, max(0.0, float(p)))


@dataclass(frozen=True)
class Causation:
    """Probabilities of causation of ``treatment=value`` (vs ``contrast``) for ``outcome``.

    PN  = P(Y[X=x'] != y | X=x, Y=y)     probability of necessity
    PS  = P(Y[X=x] = y   | X=x', Y!=y)   probability of sufficiency
    PNS = P(Y[X=x] = y, Y[X=x'] != y)     probability of necessity and sufficiency
    A probability whose conditioning event is impossible is ``nan`` (undefined).
    """

    pn: float
    ps: float
    pns: float


def causation(
    graph: Graph,
    treatment: str,
    value: Value,
    outcome: str,
    outcome_value: Value,
    contrast: Value | None = None,
    evidence: Mapping[str, EvidenceValue] | None = None,
    do: Mapping[str, Value] | None = None,
    budget: Budget = DEFAULT_BUDGET,
) -> dict[str, Causation]:
    """PN, PS and PNS for each contrast value (every other value of the treatment by default).

    All three come from one exact joint P(X, Y, Y[X=x], Y[X=x'] | evidence) on the twin network.
    """
    tvar, ovar = graph[treatment], graph[outcome]
    if treatment == outcome:
        raise CausalVAEError("the treatment and the outcome must be different variables")
    x = tvar.values[tvar.index(value)]
    y = ovar.index(outcome_value)
    if do and treatment in do:
        raise CausalVAEError(f"'{treatment}' is the treatment; it cannot also be in do(...)")
    if contrast is None:
        contrasts = [v for v in tvar.values if v != x]
    else:
        contrasts = [tvar.values[tvar.index(contrast)]]
        if contrasts[0] == x:
            raise CausalVAEError(f"the contrast must differ from the treatment value '{x}'")
    out = {}
    for xp in contrasts:
        yx, yxp = Term(outcome, ((treatment, x),)), Term(outcome, ((treatment, xp),))
        d = query(graph, [treatment, outcome, yx, yxp], evidence or {}, do, budget)
        j = d.table
        xi, xpi = tvar.index(x), tvar.index(xp)
        pns = float(j[:, :, y, :].sum() - j[:, :, y, y].sum())
        num_pn = j[xi, y, :, :].sum() - j[xi, y, :, y].sum()
        den_pn = j[xi, y].sum()
        not_y = [k for k in range(ovar.card) if k != y]
        num_ps = j[xpi][not_y][:, y, :].sum()
        den_ps = j[xpi][not_y].sum()
        out[xp] = Causation(
            pn=_unit(num_pn / den_pn) if den_pn > 0 else float("nan"),
            ps=_unit(num_ps / den_ps) if den_ps > 0 else float("nan"),
            pns=_unit(pns),
        )
    return out
