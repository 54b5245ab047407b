"""The causal graph: discrete variables, their parents and conditional probability tables.

One :class:`Graph` is the single source of truth for a world: exact inference
(:mod:`causalvae.exact`), the worlds' generators and the deep model all read the same
tables. A graph is built from a YAML specification (documented in
``docs/graph-format.md``), from a BIF file (bnlearn, pgmpy), or in Python::

    >>> from causalvae.graph import Graph, Variable
    >>> g = Graph([
    ...     Variable("rain", ["no", "yes"], cpt=[0.8, 0.2]),
    ...     Variable("wet", ["no", "yes"], parents=["rain"], cpt={"no": [0.9, 0.1], "yes": [0.2, 0.8]}),
    ... ])
    >>> g.topological_order
    ('rain', 'wet')

A CPT is stored as a float64 array of shape ``(*parent cardinalities, cardinality)``:
one axis per parent in the listed parent order, the variable's own values last.
"""

from __future__ import annotations

import io
import math
import os
import re
import unicodedata
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from causalvae.errors import GraphError, UnknownGraphNameError, unknown

#: Tolerance on a CPT row's sum when the table is not marked ``normalize: true``.
ROW_SUM_TOLERANCE = 1e-6

#: Names usable without quotes in queries: letters, digits, ``_`` and ``.``, with single
#: inner hyphens (``0-3_days``). Anything else (``12+``, ``<5``, spaces) is quoted.
BARE_NAME = re.compile(r"[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*")



def builtin_graphs() -> dict[str, str]:
    """The built-in graphs, name -> file name: every ``.yaml`` and ``.bif`` file shipped in the
    package's ``worlds`` folder (``scenes`` is ``worlds/scenes.yaml``)."""
    files = sorted(f.name for f in resources.files("causalvae").joinpath("worlds").iterdir())
    return {name.rsplit(".", 1)[0]: name for name in files if name.endswith((".yaml", ".bif"))}


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false are booleans, so ``values: [no, yes]`` stays text;
    and a key given twice in one mapping is an error (plain YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        keys = [k for k, _ in node.value] if isinstance(node, yaml.MappingNode) else []
        if not any(k.tag == "tag:yaml.org,2002:merge" for k in keys):
            first = {}
            for k in keys:
                if not isinstance(k, yaml.ScalarNode):
                    continue
                if k.value in first:
                    line = k.start_mark.line + 1
                    raise yaml.constructor.ConstructorError(None, None, f"the key '{k.value}' is given twice (lines {first[k.value] + 1} and {line})")
                first[k.value] = k.start_mark.line
        return super().construct_mapping(node, deep)


_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def check_name(name: Any, what: str) -> str:
    """Validate a variable or value name: any non-empty string without control characters.

    Numbers in YAML (``values: [0, 1]``) are accepted and turned into their text.
    """
    if isinstance(name, bool) or not isinstance(name, (str, int, float)):
        raise GraphError(f"{what} must be a string, got {name!r}")
    text = str(name)
    if not text or text != text.strip():
        raise GraphError(f"{what} {text!r} is empty or has leading/trailing spaces")
    if any(ord(c) < 32 for c in text):
        raise GraphError(f"{what} {text!r} contains a control character")
    odd = next((c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")), None)
    if odd is not None:
        kind = "a bidirectional or invisible formatting" if unicodedata.category(odd) == "Cf" else "a control or unassigned"
        raise GraphError(f"{what} {text!r} contains {kind} character (U+{ord(odd):04X}), which makes misleading output")
    return text


def quote_name(name: str) -> str:
    """Return ``name`` as written in a query: bare when it can be, else double-quoted."""
    if BARE_NAME.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, eq=False)
class Variable:
    """A discrete variable of the graph.

    ``cpt`` may be given nested by parent value names (dicts), as nested lists of shape
    ``(*parent cards, card)``, as a list of rows (parent configurations in C order, the
    last parent varying fastest), or flat in C order over ``(*parents, variable)``.
    It needs the parents' cardinalities to be shaped, so :class:`Graph` finishes it.
    """

    name: str
    values: Sequence[str]
    parents: Sequence[str] = ()
    cpt: Any = None
    observed: bool = True
    description: str = ""
    normalize: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", check_name(self.name, "variable name"))
        if isinstance(self.values, (str, bytes)) or not isinstance(self.values, Iterable):
            raise GraphError(f"values of '{self.name}' must be a list of names")
        values = tuple(check_name(v, f"a value of '{self.name}'") for v in self.values)
        if len(values) < 1:
            raise GraphError(f"variable '{self.name}' has no values")
        dup = _first_duplicate(values)
        if dup is not None:
            raise GraphError(f"variable '{self.name}' lists the value '{dup}' twice")
        object.__setattr__(self, "values", values)
        if isinstance(self.parents, (str, bytes)) or not isinstance(self.parents, Iterable):
            raise GraphError(f"parents of '{self.name}' must be a list of names")
        parents = tuple(check_name(p, f"a parent of '{self.name}'") for p in self.parents)
        dup = _first_duplicate(parents)
        if dup is not None:
            raise GraphError(f"variable '{self.name}' lists the parent '{dup}' twice")
        if self.name in parents:
            raise GraphError(f"variable '{self.name}' is its own parent (cycle: {self.name} -> {self.name})")
        object.__setattr__(self, "parents", parents)
        if not isinstance(self.observed, bool):
            raise GraphError(f"'observed' of '{self.name}' must be true or false")
        if self.cpt is None:
            raise GraphError(f"variable '{self.name}' has no cpt")

    @property
    def card(self) -> int:
        return len(self.values)

    @property
    def hidden(self) -> bool:
        return not self.observed

    def index(self, value: str | int) -> int:
        """The index of ``value`` (a name, or an index already) in this variable's values."""
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if 0 <= int(value) < self.card:
                return int(value)
            raise unknown("value index", str(value), [str(i) for i in range(self.card)], f"of '{self.name}'")
        try:
            return self.values.index(value)
        except ValueError:
            pass
        if isinstance(value, (float, np.floating)):  # a number names a numeric value: scale=1.0 is "1.0"
            same = [i for i, v in enumerate(self.values) if _number(v) == float(value)]
            if len(same) == 1:
                return same[0]
        raise unknown("value", str(value), self.values, f"of '{self.name}'")


def _number(text: str) -> float | None:
    """A value name read as a number, or None when it is not one."""
    try:
        return float(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class ImageNode:
    """The image: a child of some of the graph's variables (and of a latent code z)."""

    parents: Sequence[str]
    name: str = "image"
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", check_name(self.name, "image name"))
        object.__setattr__(self, "parents", tuple(check_name(p, "an image parent") for p in self.parents))


def _first_duplicate(items: Iterable[str]) -> str | None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def shape_cpt(var: Variable, parent_vars: Sequence[Variable]) -> np.ndarray:
    """Turn the user's CPT (any accepted form) into a validated float64 array."""
    pcards = tuple(p.card for p in parent_vars)
    shape = (*pcards, var.card)
    raw = var.cpt
    if isinstance(raw, Mapping):
        table = _from_nested(raw, var, parent_vars, ())
    else:
        try:
            table = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            raise GraphError(f"CPT of '{var.name}' is not a table of numbers") from None
        n_rows = math.prod(pcards)
        if table.shape == shape:
            pass
        elif table.ndim == 1 and table.size == n_rows * var.card:
            table = table.reshape(shape)
        elif table.ndim == 2 and table.shape == (n_rows, var.card):
            table = table.reshape(shape)
        else:
            raise GraphError(
                f"CPT of '{var.name}' has shape {table.shape}; expected {shape} "
                f"(parents {list(var.parents)} then the variable), {(n_rows, var.card)} rows, "
                f"or a flat list of {n_rows * var.card} numbers"
            )
    if not np.all(np.isfinite(table)):
        raise GraphError(f"CPT of '{var.name}' has a non-finite entry")
    if np.any(table < 0):
        where = np.argwhere(table < 0)[0]
        raise GraphError(
            f"CPT of '{var.name}' has a negative entry {float(table[tuple(where)])} at "
            f"{_row_label(var, parent_vars, tuple(where[:-1]))}, value '{var.values[where[-1]]}'"
        )
    if var.normalize:  # scale each row by its largest entry first: 1e308 + 1e308 must not overflow
        top = table.max(axis=-1, keepdims=True)
        table = table / np.where(top > 0, top, 1.0)
    sums = table.sum(axis=-1)
    if var.normalize:
        if np.any(sums <= 0):
            where = tuple(np.argwhere(sums <= 0)[0])
            raise GraphError(f"CPT of '{var.name}' has an all-zero row at {_row_label(var, parent_vars, where)}")
        table = table / sums[..., None]
    else:
        bad = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
        if np.any(bad):
            where = tuple(np.argwhere(bad)[0])
            raise GraphError(
                f"CPT of '{var.name}': row {_row_label(var, parent_vars, where)} sums to "
                f"{float(sums[where]):.10g}, not 1 (within {ROW_SUM_TOLERANCE}); fix it or mark the table "
                f"'normalize: true'"
            )
        # Rows accepted within the tolerance are rescaled, so that summing a variable out is
        # exact; rows already summing to 1 up to rounding are left bit for bit as typed.
        off = np.abs(sums - 1.0) > 1e-12
        if np.any(off):
            table = np.where(off[..., None], table / sums[..., None], table)
    table = np.ascontiguousarray(table, dtype=np.float64)
    table.setflags(write=False)
    return table


def _row_label(var: Variable, parent_vars: Sequence[Variable], idx: tuple) -> str:
    if not parent_vars:
        return "(no parents)"
    return "(" + ", ".join(f"{p.name}={p.values[int(i)]}" for p, i in zip(parent_vars, idx)) + ")"


def _from_nested(node: Any, var: Variable, parent_vars: Sequence[Variable], path: tuple) -> np.ndarray:
    """Read a CPT nested by parent value names; leaves are rows (list or {value: p})."""
    depth = len(path)
    if depth == len(parent_vars):
        if isinstance(node, Mapping):
            extra = [k for k in node if str(k) not in var.values]
            if extra:
                raise unknown("value", str(extra[0]), var.values, f"in the CPT of '{var.name}'", error=UnknownGraphNameError)
            missing = [v for v in var.values if v not in {str(k) for k in node}]
            if missing:
                raise GraphError(f"CPT of '{var.name}' row {_row_path(parent_vars, path)} misses value '{missing[0]}'")
            row = [node[k] for v in var.values for k in node if str(k) == v]
        else:
            row = node
        try:
            arr = np.asarray(row, dtype=np.float64)
        except (TypeError, ValueError):
            raise GraphError(f"CPT of '{var.name}' row {_row_path(parent_vars, path)} is not a list of numbers") from None
        if arr.shape != (var.card,):
            raise GraphError(
                f"CPT of '{var.name}' row {_row_path(parent_vars, path)} has {arr.size} entries; "
                f"expected {var.card} ({', '.join(var.values)})"
            )
        return arr
    parent = parent_vars[depth]
    if not isinstance(node, Mapping):
        raise GraphError(
            f"CPT of '{var.name}' at {_row_path(parent_vars, path)} should map each value of "
            f"'{parent.name}' to a sub-table"
        )
    keys = {str(k): k for k in node}
    for k in keys:
        if k not in parent.values:
            raise unknown("value", k, parent.values, f"of parent '{parent.name}' in the CPT of '{var.name}'", error=UnknownGraphNameError)
    for v in parent.values:
        if v not in keys:
            raise GraphError(f"CPT of '{var.name}' misses the rows for {parent.name}={v} at {_row_path(parent_vars, path)}")
    return np.stack([_from_nested(node[keys[v]], var, parent_vars, path + (v,)) for v in parent.values])


def _row_path(parent_vars: Sequence[Variable], path: tuple) -> str:
    if not path:
        return "(top level)"
    return "(" + ", ".join(f"{p.name}={v}" for p, v in zip(parent_vars, path)) + ")"


class Graph:
    """A causal DAG of discrete variables with their CPTs, and optionally an image node.

    Construction validates everything and refuses with a :class:`GraphError` that names the
    problem: a cycle (listed), an unknown parent, a duplicate name, a CPT of the wrong shape,
    a negative entry, a row not summing to one, an unknown value.
    """

    def __init__(
        self,
        variables: Iterable[Variable],
        image: ImageNode | None = None,
        name: str = "graph",
        description: str = "",
    ):
        variables = list(variables)
        if not variables:
            raise GraphError("a graph needs at least one variable")
        for v in variables:
            if not isinstance(v, Variable) and not getattr(v, "is_continuous", False):
                raise GraphError(f"expected Variable objects, got {type(v).__name__}")
        dup = _first_duplicate(v.name for v in variables)
        if dup is not None:
            raise GraphError(f"duplicate variable name '{dup}'")
        by_name = {v.name: v for v in variables}
        for v in variables:
            for p in v.parents:
                if p not in by_name:
                    raise unknown("parent", p, by_name, f"of '{v.name}'", error=UnknownGraphNameError)
        self.name = name
        self.description = description
        self._order = _topological_order(variables)
        #: Position of each variable in the topological order.
        self.rank = {n: i for i, n in enumerate(self._order)}
        shaped: dict[str, Variable] = {}
        for v in variables:
            parent_vars = [by_name[p] for p in v.parents]
            if type(v) is not Variable or getattr(v.cpt, "is_mechanism", False) or any(type(p) is not Variable for p in parent_vars):
                from causalvae import continuous  # continuous variables and softmax tables

                shaped[v.name] = continuous.finish(v, parent_vars)
                continue
            table = shape_cpt(v, parent_vars)
            shaped[v.name] = Variable(
                v.name, v.values, v.parents, table, v.observed, v.description, normalize=False
            )
        self._declared = tuple(v.name for v in variables)
        self.variables: dict[str, Variable] = {n: shaped[n] for n in self._declared}
        if image is not None:
            if image.name in self.variables:
                raise GraphError(f"the image node's name '{image.name}' is also a variable's name")
            for p in image.parents:
                if p not in self.variables:
                    raise unknown("image parent", p, self.variables, error=UnknownGraphNameError)
            dup = _first_duplicate(image.parents)
            if dup is not None:
                raise GraphError(f"the image lists the parent '{dup}' twice")
        self.image = image
        children: dict[str, list[str]] = {n: [] for n in self._order}
        for n in self._order:
            for p in self.variables[n].parents:
                children[p].append(n)
        self._children = {n: tuple(c) for n, c in children.items()}

    # ----------------------------------------------------------------- structure

    @property
    def topological_order(self) -> tuple[str, ...]:
        """Variable names, every parent before its children (ties kept in declared order)."""
        return self._order

    @property
    def names(self) -> tuple[str, ...]:
        """Variable names in declared order."""
        return self._declared

    @property
    def observed(self) -> tuple[str, ...]:
        return tuple(n for n in self._declared if self.variables[n].observed)

    @property
    def hidden(self) -> tuple[str, ...]:
        return tuple(n for n in self._declared if not self.variables[n].observed)

    @property
    def continuous(self) -> tuple[str, ...]:
        """The continuous variables, in declared order (see :mod:`causalvae.continuous`)."""
        return tuple(n for n in self._declared if getattr(self.variables[n], "is_continuous", False))

    @property
    def mixed(self) -> bool:
        """True when some variable is continuous or has continuous parents (not a discrete graph)."""
        return any(type(v) is not Variable or not isinstance(v.cpt, np.ndarray) for v in self.variables.values())

    def __getitem__(self, name: str) -> Variable:
        try:
            return self.variables[name]
        except KeyError:
            raise unknown("variable", str(name), self._declared) from None

    def __contains__(self, name: object) -> bool:
        return name in self.variables

    def __len__(self) -> int:
        return len(self.variables)

    def __repr__(self) -> str:
        return f"Graph(name={self.name!r}, {len(self)} variables, image={'yes' if self.image else 'no'})"

    def card(self, name: str) -> int:
        return self[name].card

    def cpt(self, name: str) -> np.ndarray:
        """The CPT of ``name``: shape ``(*parent cards, card)``, read-only float64."""
        return self[name].cpt

    def parents(self, name: str) -> tuple[str, ...]:
        return tuple(self[name].parents)

    def children(self, name: str) -> tuple[str, ...]:
        self[name]
        return self._children[name]

    def ancestors(self, names: str | Iterable[str]) -> set[str]:
        """Strict ancestors of ``names`` (a name or several)."""
        stack = [names] if isinstance(names, str) else list(names)
        seen: set[str] = set()
        while stack:
            for p in self[stack.pop()].parents:
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        return seen

    def descendants(self, names: str | Iterable[str]) -> set[str]:
        """Strict descendants of ``names`` (a name or several)."""
        stack = [names] if isinstance(names, str) else list(names)
        seen: set[str] = set()
        while stack:
            n = stack.pop()
            self[n]
            for c in self._children[n]:
                if c not in seen:
                    seen.add(c)
                    stack.append(c)
        return seen

    def value_index(self, name: str, value: str | int) -> int:
        return self[name].index(value)

    # ----------------------------------------------------------------- surgery

    def intervene(self, interventions: Mapping[str, str | int]) -> Graph:
        """The mutilated graph of ``do(interventions)``: each intervened variable loses its
        parents and takes its value with probability one; everything else is unchanged."""
        if not interventions:
            return self
        new = []
        for n in self._declared:
            v = self.variables[n]
            if n in interventions:
                idx = v.index(interventions[n])
                point = np.zeros(v.card)
                point[idx] = 1.0
                v = Variable(n, v.values, (), point, v.observed, v.description)
            new.append(v)
        for n in interventions:
            self[n]
        return Graph(new, self.image, self.name, self.description)

    def with_cpts(self, tables: Mapping[str, Any]) -> Graph:
        """A copy whose CPTs of the named variables are replaced (rows rescaled to sum to 1).

        Used to carry tables learned from data (``--learn-cpts``) into the exact engine.
        """
        new = []
        for n in self._declared:
            v = self.variables[n]
            if n in tables:
                t = np.asarray(tables[n], dtype=np.float64)
                if t.shape != v.cpt.shape:
                    raise GraphError(f"new table of '{n}' has shape {t.shape}, expected {v.cpt.shape}")
                t = t / t.sum(axis=-1, keepdims=True)
                v = Variable(n, v.values, v.parents, t, v.observed, v.description)
            new.append(v)
        for n in tables:
            self[n]
        return Graph(new, self.image, self.name, self.description)

    # ----------------------------------------------------------------- serialisation

    def to_dict(self) -> dict[str, Any]:
        """The YAML specification as plain data (CPTs nested by parent value names)."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["variables"] = [self._var_dict(self.variables[n]) for n in self._declared]
        if self.image is not None:
            img: dict[str, Any] = {"name": self.image.name, "parents": list(self.image.parents)}
            if self.image.description:
                img["description"] = self.image.description
            out["image"] = img
        return out

    def _var_dict(self, v: Variable) -> dict[str, Any]:
        if type(v) is not Variable or not isinstance(v.cpt, np.ndarray):
            from causalvae.continuous import to_dict

            return to_dict(v, self)
        d: dict[str, Any] = {"name": v.name, "values": list(v.values)}
        if v.parents:
            d["parents"] = list(v.parents)
        if not v.observed:
            d["observed"] = False
        if v.description:
            d["description"] = v.description
        d["cpt"] = _nest(v.cpt, [self.variables[p].values for p in v.parents])
        return d

    def to_yaml(self, path: str | os.PathLike | None = None) -> str:
        """Write the graph as YAML (atomically, when ``path`` is given) and return the text."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)
        if path is not None:
            from causalvae.io import atomic_write_text

            atomic_write_text(path, text)
        return text

    @classmethod
    def from_dict(cls, spec: Any, source: str = "specification") -> Graph:
        """Build a graph from parsed YAML; unknown keys are refused."""
        if not isinstance(spec, Mapping):
            raise GraphError(f"{source}: the top level must be a mapping with a 'variables' list")
        _refuse_unknown_keys(spec, {"name", "description", "variables", "image"}, source)
        raw_vars = spec.get("variables")
        if not isinstance(raw_vars, list) or not raw_vars:
            raise GraphError(f"{source}: 'variables' must be a non-empty list")
        variables = []
        for i, rv in enumerate(raw_vars):
            if not isinstance(rv, Mapping):
                raise GraphError(f"{source}: variable #{i + 1} must be a mapping")
            label = f"{source}: variable '{rv.get('name', f'#{i + 1}')}'"
            if "type" in rv or "softmax" in rv:  # continuous variables: see causalvae.continuous
                from causalvae.continuous import from_spec

                variables.append(from_spec(rv, label))
                continue
            _refuse_unknown_keys(rv, {"name", "values", "parents", "cpt", "observed", "description", "normalize"}, label)
            for key in ("name", "values", "cpt"):
                if key not in rv:
                    raise GraphError(f"{label} has no '{key}'")
            normalize = rv.get("normalize", False)
            if not isinstance(normalize, bool):
                raise GraphError(f"{label}: 'normalize' must be true or false")
            variables.append(
                Variable(
                    rv["name"],
                    rv["values"],
                    rv.get("parents") or (),
                    rv["cpt"],
                    rv.get("observed", True),
                    str(rv.get("description", "") or ""),
                    normalize,
                )
            )
        image = None
        if spec.get("image") is not None:
            ri = spec["image"]
            if not isinstance(ri, Mapping):
                raise GraphError(f"{source}: 'image' must be a mapping with 'parents'")
            _refuse_unknown_keys(ri, {"name", "parents", "description"}, f"{source}: image")
            if not isinstance(ri.get("parents"), list):
                raise GraphError(f"{source}: image needs a 'parents' list")
            image = ImageNode(ri["parents"], ri.get("name", "image"), str(ri.get("description", "") or ""))
        return cls(variables, image, str(spec.get("name", "graph")), str(spec.get("description", "") or ""))

    @classmethod
    def from_yaml(cls, source: str | os.PathLike, *, text: str | None = None) -> Graph:
        """Load a YAML graph from a path (or from ``text``, with ``source`` naming it)."""
        if text is None:
            text = read_graph_text(source)
        if len(text) > MAX_GRAPH_BYTES:
            raise GraphError(f"{source}: larger than {MAX_GRAPH_BYTES // 2**20} MB of text; not a graph file this program reads")
        try:
            _check_nesting(text, source)
            _check_depth(yaml.compose(io.StringIO(text), Loader=_Loader), source)
            spec = yaml.load(io.StringIO(text), Loader=_Loader)  # noqa: S506 (a SafeLoader)
        except yaml.YAMLError as exc:
            raise GraphError(f"{source}: not valid YAML: {exc}") from None
        except (ValueError, TypeError) as exc:  # a constructor refusing a typed scalar, e.g. !!float y
            if isinstance(exc, GraphError):
                raise
            raise GraphError(f"{source}: not valid YAML: {exc}") from None
        except RecursionError:
            raise GraphError(f"{source}: nested too deeply (more than {MAX_YAML_DEPTH} levels)") from None
        return cls.from_dict(spec, str(source))

    @classmethod
    def load(cls, spec: str | os.PathLike) -> Graph:
        """Load a built-in graph by name (``scenes``, ``sprites``, ``survey``, ``morpho``) or a ``.yaml``/``.bif`` file."""
        key = str(spec)
        builtin = builtin_graphs()
        if key in builtin:
            res = resources.files("causalvae").joinpath("worlds", builtin[key])
            text = res.read_text(encoding="utf-8")
            if res.name.endswith(".bif"):
                from causalvae.bif import read_bif

                return read_bif(text=text, name=key)
            return cls.from_yaml(key, text=text)
        path = Path(key)
        lower = path.name.lower()
        if lower.endswith((".bif", ".bif.gz")):
            from causalvae.bif import read_bif

            return read_bif(path)
        if lower.endswith((".yaml", ".yml")):
            return cls.from_yaml(path)
        if not path.exists():
            raise unknown("graph", key, list(builtin) + ["FILE.yaml", "FILE.bif"])
        raise GraphError(f"{key}: unknown graph file type; use .yaml, .yml, .bif or .bif.gz")

    def to_bif(self, path: str | os.PathLike | None = None) -> str:
        """Write the graph as BIF (atomically, when ``path`` is given) and return the text."""
        from causalvae.bif import write_bif

        if self.mixed:
            raise GraphError(f"BIF holds discrete variables only; '{self.name}' has continuous ones ({', '.join(self.continuous) or 'as parents'}): write YAML instead")
        return write_bif(self, path)


def _refuse_unknown_keys(d: Mapping, allowed: set[str], where: str) -> None:
    for k in d:
        if k not in allowed:
            raise unknown("key", str(k), sorted(allowed), f"in {where}", error=UnknownGraphNameError)


def _nest(table: np.ndarray, parent_values: Sequence[Sequence[str]]) -> Any:
    if not parent_values:
        return [float(x) for x in table]
    return {v: _nest(table[i], parent_values[1:]) for i, v in enumerate(parent_values[0])}


#: The largest graph file (YAML or BIF) read, after decompression: the biggest bnlearn
#: network (diabetes) is 5.3 MB of text.
MAX_GRAPH_BYTES = 64 * 2**20
#: The deepest nesting of YAML a graph file may have (a graph needs a few levels per parent).
MAX_YAML_DEPTH = 200
#: The most YAML nodes (scalars, lists, mappings), aliases expanded, a graph file may hold.
MAX_YAML_NODES = 2_000_000


def _check_nesting(text: str, source) -> None:
    """Refuse YAML nested more than MAX_YAML_DEPTH levels, from the parser's events (the
    composer recurses per level, and a few thousand levels exhaust Python's stack)."""
    level = 0
    for event in yaml.parse(io.StringIO(text), Loader=_Loader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            level += 1
            if level > MAX_YAML_DEPTH:
                raise GraphError(f"{source}: nested too deeply (more than {MAX_YAML_DEPTH} levels)")
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            level -= 1


def _check_depth(root, source) -> None:
    """Refuse YAML nested more than MAX_YAML_DEPTH levels, holding more than MAX_YAML_NODES
    nodes once its aliases are expanded (a "billion laughs"), or an alias inside itself.
    Walked without recursion, each node once."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_ = set()
    stack = [(root, False)] if root is not None else []
    while stack:
        node, done = stack.pop()
        if id(node) in size:
            continue
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        if not done:
            if id(node) in open_:
                raise GraphError(f"{source}: a YAML alias refers to a node that contains it")
            open_.add(id(node))
            stack.append((node, True))
            for child in children:
                if id(child) in open_:
                    raise GraphError(f"{source}: a YAML alias refers to a node that contains it")
                stack.append((child, False))
            if len(open_) > MAX_YAML_DEPTH:
                raise GraphError(f"{source}: nested too deeply (more than {MAX_YAML_DEPTH} levels)")
            continue
        open_.discard(id(node))
        size[id(node)] = 1 + sum(size[id(c)] for c in children)
        depth[id(node)] = 1 + max((depth[id(c)] for c in children), default=0)
        if depth[id(node)] > MAX_YAML_DEPTH:
            raise GraphError(f"{source}: nested too deeply (more than {MAX_YAML_DEPTH} levels)")
        if size[id(node)] > MAX_YAML_NODES:
            raise GraphError(f"{source}: more than {MAX_YAML_NODES:,} YAML nodes once its aliases are expanded")


def read_graph_text(path: str | os.PathLike) -> str:
    """A graph file's text: a regular file, gunzipped for ``.gz``, at most MAX_GRAPH_BYTES."""
    p = Path(path)
    if not p.exists():
        raise GraphError(f"{p}: no such file")
    if p.is_dir():
        raise GraphError(f"{p}: is a directory, not a graph file")
    if not p.is_file():
        raise GraphError(f"{p}: not a regular file")
    too_big = f"{p}: larger than {MAX_GRAPH_BYTES // 2**20} MB of text; not a graph file this program reads"
    with open(p, "rb") as fh:
        data = fh.read(MAX_GRAPH_BYTES + 1)
    if p.name.lower().endswith(".gz"):
        import gzip

        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
                data = gz.read(MAX_GRAPH_BYTES + 1)  # a bomb stops here, however far it would expand
        except (OSError, EOFError, zlib.error) as exc:
            raise GraphError(f"{p}: corrupt gzip file ({exc})") from None
    if len(data) > MAX_GRAPH_BYTES:
        raise GraphError(too_big)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise GraphError(f"{p}: not a UTF-8 text file") from None


def _topological_order(variables: Sequence[Variable]) -> tuple[str, ...]:
    """Kahn's algorithm, stable in declared order; a cycle is named in the error."""
    parents = {v.name: list(v.parents) for v in variables}
    remaining = {n: len(ps) for n, ps in parents.items()}
    children: dict[str, list[str]] = {n: [] for n in parents}
    for n, ps in parents.items():
        for p in ps:
            children[p].append(n)
    declared = [v.name for v in variables]
    rank = {n: i for i, n in enumerate(declared)}
    import heapq

    ready = [rank[n] for n in declared if remaining[n] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        n = declared[heapq.heappop(ready)]
        order.append(n)
        for c in children[n]:
            remaining[c] -= 1
            if remaining[c] == 0:
                heapq.heappush(ready, rank[c])
    if len(order) < len(declared):
        left = {n for n in declared if remaining[n] > 0}
        raise GraphError("the graph has a cycle: " + " -> ".join(_find_cycle(left, parents)))
    return tuple(order)


def _find_cycle(left: set[str], parents: Mapping[str, list[str]]) -> list[str]:
    """Walk parent links inside the unsorted remainder until a node repeats."""
    start = min(left)
    path: list[str] = []
    pos: dict[str, int] = {}
    node = start
    while node not in pos:
        pos[node] = len(path)
        path.append(node)
        node = next(p for p in parents[node] if p in left)
    cycle = path[pos[node]:] + [node]
    return list(reversed(cycle))
