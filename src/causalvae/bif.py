"""Read and write BIF, the Bayesian Interchange Format of bnlearn and pgmpy.

A BIF file declares each discrete variable with its states, then gives one probability
block per variable::

    network survey {
    }
    variable A {
      type discrete [ 3 ] { young, adult, old };
    }
    variable E {
      type discrete [ 2 ] { high, uni };
      property observed = false ;
    }
    probability ( A ) {
      table 0.3, 0.5, 0.2;
    }
    probability ( E | A ) {
      (young) 0.75, 0.25;
      (adult) 0.72, 0.28;
      default 0.9, 0.1;
    }

A conditional block lists one row per parent configuration, ``(parent states) p, p, ...;``,
with the child's probabilities in the order of its states. ``default p, ...;`` fills every
configuration not listed. A ``table`` inside a conditional block gives all numbers at once
with the child's state varying *slowest* and the parent configurations in C order (the
last parent fastest), which is the layout of pgmpy's ``TabularCPD``. Comments are ``//``
to the end of the line and ``/* ... */``.

State names are taken verbatim (stripped), so ``<5``, ``12+``, ``0-3_days``, ``Asy/Patch``
and names with inner spaces all survive. A CPT read here has the shape
``(*parent cardinalities, cardinality)``, the parents in the order of the block's header.

BIF has no image node and no observed/hidden flag; a hidden variable is written as the
property ``observed = false``, which pgmpy tolerates and :func:`read_bif` reads back.
Numbers are written with ``repr(float)``, so a write/read round trip is exact.

Every malformed file is refused with a :class:`~causalvae.errors.GraphError` naming the file,
the line and what was expected there::

    survey.bif line 14: expected ';' after the state list, got 'variable'
"""

from __future__ import annotations

import bisect
import itertools
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from causalvae.errors import GraphError, unknown
from causalvae.graph import ROW_SUM_TOLERANCE, Graph, Variable, read_graph_text, shape_cpt

__all__ = ["read_bif", "write_bif"]

#: Rows of published BIF tables are rounded decimals; a table whose rows all sum to one
#: within this is normalised on reading, a table further off is refused by :class:`Graph`.
ROUNDING_TOLERANCE = 1e-3

_SPACE = re.compile(r"\s*")
_KEYWORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(r'"([^"\n]*)"|([^\s{}();,|"]+)')
_TOKEN = re.compile(r'"[^"\n]{0,30}"?|[^\s{}();,|"]{1,30}|\S')
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NUMBER_LIST = re.compile(
    r"\s*(?:{n}(?:\s*,\s*|\s+)(?=[^\s,]))*{n}\s*,?\s*".format(n=_NUMBER.pattern)
)
_COMMENT = re.compile(r'("[^"\n]*")|(/\*.*?\*/|//[^\n]*)|(/\*)', re.DOTALL)
_OBSERVED = re.compile(r"observed\s*=\s*(\S+)", re.IGNORECASE)
_BARE_NETWORK_NAME = re.compile(r"[\w-]+")
_UNTIL: dict[str, re.Pattern] = {}


# ----------------------------------------------------------------------------- reading


def read_bif(
    path: str | os.PathLike | None = None, *, text: str | None = None, name: str | None = None
) -> Graph:
    """Read a BIF network (``.bif`` or ``.bif.gz``, or ``text``) into a :class:`Graph`.

    Variables keep the order of their ``variable`` declarations. The graph is named
    ``name``, else the file's network name unless it is ``unknown``, else the file's stem
    (``alarm`` for ``alarm.bif.gz``). With ``text``, ``path`` (optional) only names the source.
    """
    if text is None:
        if path is None:
            raise TypeError("read_bif needs a path or text=")
        text = read_graph_text(path)
    source = str(path) if path is not None else "<text>"
    scan = _Scanner(text, source)
    network, declarations, blocks = _parse(scan)
    graph_name = name or _default_name(network, path)
    variables = _build_variables(scan, declarations, blocks)
    try:
        return Graph(variables, name=graph_name)
    except GraphError as exc:
        raise GraphError(f"{source}: {exc}") from None


def _default_name(network: str | None, path: str | os.PathLike | None) -> str:
    if network and network.lower() != "unknown":
        return network
    if path is not None:
        stem = Path(path).name
        for suffix in (".gz", ".bif"):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
        if stem:
            return stem
    return "graph"


@dataclass
class _Declaration:
    """A ``variable`` block: its states and where it was declared."""

    name: str
    states: list[str]
    pos: int
    observed: bool = True


@dataclass
class _Entries:
    """The numbers of one ``probability`` block, not yet checked against the declarations."""

    child: str
    parents: list[str]
    pos: int
    rows: list[tuple[list[str], list[float], int]] = field(default_factory=list)
    table: tuple[list[float], int] | None = None
    default: tuple[list[float], int] | None = None


class _Scanner:
    """A cursor over the comment-free text that reports errors by line."""

    def __init__(self, text: str, source: str):
        self.source = source
        self.text = _strip_comments(text.lstrip("\ufeff"), source)
        self.pos = 0
        self._newlines = [m.start() for m in re.finditer("\n", self.text)]

    def line(self, pos: int | None = None) -> int:
        return bisect.bisect_left(self._newlines, self.pos if pos is None else pos) + 1

    def error(self, message: str, pos: int | None = None) -> GraphError:
        return GraphError(f"{self.source} line {self.line(pos)}: {message}")

    def skip(self) -> None:
        self.pos = _SPACE.match(self.text, self.pos).end()

    def at_end(self) -> bool:
        self.skip()
        return self.pos >= len(self.text)

    def found(self) -> str:
        """The next token, quoted, for an error message."""
        if self.at_end():
            return "the end of the file"
        return repr(_TOKEN.match(self.text, self.pos).group(0))

    def next_is(self, char: str) -> bool:
        self.skip()
        return self.text.startswith(char, self.pos)

    def expect(self, char: str, context: str) -> None:
        if not self.next_is(char):
            raise self.error(f"expected '{char}' {context}, got {self.found()}")
        self.pos += len(char)

    def keyword(self) -> str | None:
        self.skip()
        match = _KEYWORD.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return match.group(0)

    def name(self, what: str) -> str:
        self.skip()
        match = _NAME.match(self.text, self.pos)
        if match is None:
            raise self.error(f"expected {what}, got {self.found()}")
        self.pos = match.end()
        return match.group(1) if match.group(1) is not None else match.group(2)

    def until(self, stops: str) -> str:
        """The raw text up to (not including) the first of ``stops``."""
        pattern = _UNTIL.get(stops)
        if pattern is None:
            pattern = _UNTIL[stops] = re.compile(f"[^{re.escape(stops)}]*")
        chunk = pattern.match(self.text, self.pos).group(0)
        self.pos += len(chunk)
        return chunk

    def numbers(self, context: str) -> list[float]:
        """A list of numbers separated by commas or spaces, ended by ';'."""
        self.skip()
        start = self.pos
        chunk = self.until(";{}")
        if not _NUMBER_LIST.fullmatch(chunk):
            raise self._bad_number(chunk, start, context)
        self.expect(";", f"after the numbers {context}")
        return [float(tok) for tok in re.split(r"[\s,]+", chunk.strip().rstrip(",").strip())]

    def _bad_number(self, chunk: str, start: int, context: str) -> GraphError:
        for k, match in enumerate(re.finditer(r"[^\s,]+", chunk)):
            if not _NUMBER.fullmatch(match.group(0)):
                wanted = "a number or ';'" if k else "a number"
                return self.error(f"expected {wanted} {context}, got {match.group(0)[:30]!r}", start + match.start())
        if not chunk.strip():
            self.pos = start + len(chunk)
            return self.error(f"expected numbers {context}, got {self.found()}", start + len(chunk))
        return self.error(f"expected numbers separated by ',' {context}", start)


def _strip_comments(text: str, source: str) -> str:
    """Blank out ``//`` and ``/* */`` comments (not inside quotes), keeping line numbers."""
    if "//" not in text and "/*" not in text:
        return text

    def blank(match: re.Match) -> str:
        if match.group(1) is not None:
            return match.group(1)
        if match.group(3) is not None:
            line = text.count("\n", 0, match.start()) + 1
            raise GraphError(f"{source} line {line}: a '/*' comment is never closed with '*/'")
        return re.sub(r"[^\n]", " ", match.group(2))

    return _COMMENT.sub(blank, text)


def _parse(scan: _Scanner) -> tuple[str | None, dict[str, _Declaration], dict[str, _Entries]]:
    """Parse the whole file into the network name, the declarations and the blocks."""
    network = None
    declarations: dict[str, _Declaration] = {}
    blocks: dict[str, _Entries] = {}
    while not scan.at_end():
        start = scan.pos
        word = scan.keyword()
        if word == "network":
            if network is not None:
                raise scan.error("a second 'network' block", start)
            network = _parse_network(scan)
        elif word == "variable":
            decl = _parse_variable(scan, start)
            if decl.name in declarations:
                first = scan.line(declarations[decl.name].pos)
                raise scan.error(f"variable '{decl.name}' is declared twice (first on line {first})", start)
            declarations[decl.name] = decl
        elif word == "probability":
            entries = _parse_probability(scan, start)
            if entries.child in blocks:
                first = scan.line(blocks[entries.child].pos)
                raise scan.error(
                    f"a second probability block for '{entries.child}' (first on line {first})", start
                )
            blocks[entries.child] = entries
        else:
            scan.pos = start
            raise scan.error(f"expected 'network', 'variable' or 'probability', got {scan.found()}")
    if not declarations:
        raise GraphError(f"{scan.source}: no variables are declared")
    return network, declarations, blocks


def _parse_network(scan: _Scanner) -> str:
    name = scan.name("a network name after 'network'")
    scan.expect("{", f"after the network name '{name}'")
    _parse_properties_until_close(scan, f"the network block '{name}'")
    return name


def _parse_properties_until_close(scan: _Scanner, where: str) -> list[str]:
    properties = []
    while not scan.next_is("}"):
        start = scan.pos
        if scan.keyword() != "property":
            scan.pos = start
            raise scan.error(f"expected 'property' or '}}' in {where}, got {scan.found()}")
        properties.append(_parse_property(scan))
    scan.pos += 1
    return properties


def _parse_property(scan: _Scanner) -> str:
    scan.skip()
    chunk = scan.until(";{}")
    scan.expect(";", "after the property")
    return chunk.strip().strip('"').strip()


def _parse_variable(scan: _Scanner, start: int) -> _Declaration:
    name = scan.name("a variable name after 'variable'")
    scan.expect("{", f"after the variable name '{name}'")
    decl = _Declaration(name, [], start)
    typed = False
    while not scan.next_is("}"):
        here = scan.pos
        word = scan.keyword()
        if word == "type":
            if typed:
                raise scan.error(f"variable '{name}' has a second 'type' line", here)
            decl.states = _parse_type(scan, name)
            typed = True
        elif word == "property":
            decl.observed = _observed_property(scan, _parse_property(scan), name, decl.observed)
        else:
            scan.pos = here
            raise scan.error(f"expected 'type', 'property' or '}}' in variable '{name}', got {scan.found()}")
    scan.pos += 1
    if not typed:
        raise scan.error(f"variable '{name}' has no 'type discrete [ N ] {{ ... }};' line", start)
    return decl


def _parse_type(scan: _Scanner, name: str) -> list[str]:
    here = scan.pos
    kind = scan.keyword()
    if kind != "discrete":
        scan.pos = here
        raise scan.error(f"expected 'discrete' after 'type' in variable '{name}', got {scan.found()}")
    scan.expect("[", "after 'type discrete'")
    scan.skip()
    count_at = scan.pos
    count = scan.until("]{};").strip()
    if not count.isdigit():
        raise scan.error(f"expected the number of states of '{name}', got {count[:30]!r}", count_at)
    scan.expect("]", "after the number of states")
    scan.expect("{", "before the state list")
    states_at = scan.pos
    states = _split_names(scan.until("};{"), whitespace=True)
    scan.expect("}", "after the state list")
    scan.expect(";", "after the state list")
    if not states:
        raise scan.error(f"variable '{name}' lists no states", states_at)
    if len(states) != int(count):
        raise scan.error(
            f"variable '{name}' declares {int(count)} states but lists {len(states)}: {', '.join(states)}",
            states_at,
        )
    seen: set[str] = set()
    for state in states:
        if state in seen:
            raise scan.error(f"variable '{name}' lists the state '{state}' twice", states_at)
        seen.add(state)
    return states


def _observed_property(scan: _Scanner, prop: str, name: str, current: bool) -> bool:
    match = _OBSERVED.fullmatch(prop)
    if match is None:
        return current
    flag = match.group(1).strip('"').lower()
    if flag not in ("true", "false"):
        raise scan.error(f"property 'observed' of '{name}' must be true or false, got {match.group(1)!r}")
    return flag == "true"


def _split_names(chunk: str, whitespace: bool) -> list[str]:
    """Split a state or parent list: on commas, or on spaces when there is no comma."""
    if "," in chunk:
        items = chunk.split(",")
        if not items[-1].strip():
            items = items[:-1]
    elif whitespace:
        items = re.findall(r'"[^"]*"|[^\s"]+', chunk)
    else:
        items = [chunk] if chunk.strip() else []
    return [_unquote(item) for item in items]


def _unquote(item: str) -> str:
    item = item.strip()
    if len(item) >= 2 and item[0] == item[-1] == '"':
        return item[1:-1].strip()
    return item


def _parse_probability(scan: _Scanner, start: int) -> _Entries:
    scan.expect("(", "after 'probability'")
    scan.skip()
    header_at = scan.pos
    header = scan.until("(){};")
    scan.expect(")", "to close the probability header")
    child, parents = _split_header(header)
    if not child or any(not p for p in parents):
        raise scan.error(f"expected 'probability ( X | P1, P2 )', got 'probability ({header.strip()})'", header_at)
    scan.expect("{", f"after the probability header of '{child}'")
    entries = _Entries(child, parents, start)
    while not scan.next_is("}"):
        here = scan.pos
        if scan.next_is("("):
            scan.pos += 1
            states = _split_names(scan.until("(){};"), whitespace=len(parents) > 1)
            scan.expect(")", f"to close the parent states of a row of '{child}'")
            entries.rows.append((states, scan.numbers(f"in a row of '{child}'"), here))
            continue
        word = scan.keyword()
        if word == "table":
            if entries.table is not None:
                raise scan.error(f"the probability block of '{child}' has a second 'table'", here)
            entries.table = (scan.numbers(f"in the table of '{child}'"), here)
        elif word == "default":
            if entries.default is not None:
                raise scan.error(f"the probability block of '{child}' has a second 'default'", here)
            entries.default = (scan.numbers(f"in the default row of '{child}'"), here)
        elif word == "property":
            _parse_property(scan)
        else:
            scan.pos = here
            raise scan.error(
                f"expected a row '( ... )', 'table', 'default', 'property' or '}}' in the probability "
                f"block of '{child}', got {scan.found()}"
            )
    scan.pos += 1
    return entries


def _split_header(header: str) -> tuple[str, list[str]]:
    """``X | P1, P2`` (or the old ``X P1 P2``) into the child and its parents."""
    if "|" in header:
        left, _, right = header.partition("|")
        return _unquote(left), [_unquote(p) for p in right.split(",")]
    names = [_unquote(n) for n in re.split(r"[\s,]+", header.strip()) if n]
    if not names:
        return "", []
    return names[0], names[1:]


# ----------------------------------------------------------------------------- tables


def _build_variables(
    scan: _Scanner, declarations: dict[str, _Declaration], blocks: dict[str, _Entries]
) -> list[Variable]:
    """Check every block against the declarations and make the variables, declared order."""
    for entries in blocks.values():
        _check_declared(scan, entries, declarations)
    tables = {child: _table(scan, entries, declarations) for child, entries in blocks.items()}
    variables = {}
    for name, decl in declarations.items():
        if name not in blocks:
            raise scan.error(f"variable '{name}' has no probability block", decl.pos)
        table = tables[name]
        sums = table.reshape(-1, len(decl.states)).sum(axis=1)
        off = float(np.max(np.abs(sums - 1.0)))
        normalize = ROW_SUM_TOLERANCE < off <= ROUNDING_TOLERANCE and bool(np.all(table >= 0))
        try:
            variables[name] = Variable(
                name, decl.states, blocks[name].parents, table, decl.observed, normalize=normalize
            )
        except GraphError as exc:
            raise scan.error(str(exc), decl.pos) from None
    for name, var in variables.items():
        try:
            shape_cpt(var, [variables[p] for p in var.parents])
        except GraphError as exc:
            raise scan.error(str(exc), blocks[name].pos) from None
    return list(variables.values())


def _check_declared(scan: _Scanner, entries: _Entries, declarations: dict[str, _Declaration]) -> None:
    if entries.child not in declarations:
        err = unknown("variable", entries.child, declarations, "in a probability block")
        raise scan.error(f"{err}; declare it with a 'variable' block", entries.pos)
    for parent in entries.parents:
        if parent not in declarations:
            err = unknown("parent", parent, declarations, f"in the probability block of '{entries.child}'")
            raise scan.error(str(err), entries.pos)


def _table(scan: _Scanner, entries: _Entries, declarations: dict[str, _Declaration]) -> np.ndarray:
    """The block's CPT as an array of shape ``(*parent cards, card)``."""
    child = declarations[entries.child]
    card = len(child.states)
    parents = [declarations[p] for p in entries.parents]
    pcards = [len(p.states) for p in parents]
    n_configs = math.prod(pcards)
    if entries.table is not None:
        if entries.rows or entries.default is not None:
            what = "rows" if entries.rows else "a 'default' row"
            raise scan.error(f"the probability block of '{child.name}' has both a 'table' and {what}", entries.pos)
        numbers, pos = entries.table
        if len(numbers) != n_configs * card:
            layout = f"{card} states x {n_configs} parent configurations" if parents else "one per state"
            raise scan.error(
                f"the table of '{child.name}' has {len(numbers)} numbers; expected {n_configs * card} ({layout})",
                pos,
            )
        return np.asarray(numbers, dtype=np.float64).reshape(card, n_configs).T.reshape(*pcards, card)
    if not parents and not entries.rows:
        if entries.default is None:
            raise scan.error(f"the probability block of '{child.name}' has no 'table'", entries.pos)
        return _row(scan, entries.default, child, "the default row")
    return _rows_table(scan, entries, child, parents)


def _row(scan: _Scanner, given: tuple[list[float], int], child: _Declaration, label: str) -> np.ndarray:
    numbers, pos = given
    if len(numbers) != len(child.states):
        raise scan.error(
            f"{label} of '{child.name}' has {len(numbers)} numbers; expected {len(child.states)} "
            f"(one per state: {', '.join(child.states)})",
            pos,
        )
    return np.asarray(numbers, dtype=np.float64)


#: The most entries a table read from BIF may have (2**22 float64: 32 MB); the largest
#: table of the bnlearn networks (mildew's) has 280,000. At 2**25 a `default` row over 24
#: binary parents was accepted and took minutes to read.
MAX_TABLE_ENTRIES = 2**22


def _rows_table(
    scan: _Scanner, entries: _Entries, child: _Declaration, parents: Sequence[_Declaration]
) -> np.ndarray:
    """Fill a conditional table from its ``(states) p, ...;`` rows and its default row."""
    pcards = [len(p.states) for p in parents]
    entries_needed = math.prod(pcards) * len(child.states)
    if entries_needed > MAX_TABLE_ENTRIES:
        raise scan.error(
            f"the table of '{child.name}' would have {entries_needed:,} entries ({len(parents)} parents); "
            f"the limit is {MAX_TABLE_ENTRIES:,}: this network is too large to tabulate",
            entries.pos,
        )
    index = [{s: i for i, s in enumerate(p.states)} for p in parents]
    table = np.zeros((*pcards, len(child.states)))
    given = np.zeros(pcards, dtype=bool)
    seen: dict[tuple[int, ...], int] = {}
    for states, numbers, pos in entries.rows:
        if len(states) != len(parents):
            raise scan.error(
                f"a row of '{child.name}' names {len(states)} parent state(s) ({', '.join(states)}); "
                f"expected {len(parents)}, one for each of {', '.join(p.name for p in parents) or 'no parents'}",
                pos,
            )
        key = []
        for state, parent, lookup in zip(states, parents, index):
            if state not in lookup:
                err = unknown("state", state, parent.states, f"of '{parent.name}' in a row of '{child.name}'")
                raise scan.error(str(err), pos)
            key.append(lookup[state])
        config = tuple(key)
        label = f"the row ({', '.join(states)})"
        if config in seen:
            first = scan.line(seen[config])
            raise scan.error(f"{label} of '{child.name}' is given twice (first on line {first})", pos)
        seen[config] = pos
        given[config] = True
        table[config] = _row(scan, (numbers, pos), child, label)
    n_missing = int(given.size - np.count_nonzero(given))
    if n_missing:
        if entries.default is None:
            first = ", ".join(p.states[i] for p, i in zip(parents, np.argwhere(~given)[0]))
            raise scan.error(
                f"the probability block of '{child.name}' has no row for ({first}) and no 'default' row "
                f"({n_missing} of {math.prod(pcards)} parent configurations missing)",
                entries.pos,
            )
        table[~given] = _row(scan, entries.default, child, "the default row")
    return table


# ----------------------------------------------------------------------------- writing

#: Characters that would end a name early in BIF (or, for '"', '//' and '/*', that pgmpy's
#: reader strips from the whole file).
_FORBIDDEN = (",", ";", "{", "}", "(", ")", "|", '"', "//", "/*", "\n", "\r")


def write_bif(graph: Graph, path: str | os.PathLike | None = None) -> str:
    """Write ``graph`` as BIF text (atomically to ``path`` when given) and return the text.

    Variables come in declared order; a conditional table is written as one
    ``( parent states ) p, ...;`` row per parent configuration, in C order (last parent
    fastest). A hidden variable gets ``property observed = false ;``. The image node and the
    descriptions are not part of BIF; they are written as ``//`` comments only.
    """
    for name in graph.names:
        _check_writable(graph[name])
    lines = _header_comments(graph)
    lines += [f"network {_network_name(graph.name)} {{", "}"]
    for name in graph.names:
        lines += _variable_block(graph[name])
    for name in graph.names:
        lines += _probability_block(graph, graph[name])
    text = "\n".join(lines) + "\n"
    if path is not None:
        from causalvae.io import atomic_write_text

        atomic_write_text(path, text)
    return text


def _check_writable(var: Variable) -> None:
    bad = _forbidden_in(var.name)
    if bad is None and any(c.isspace() for c in var.name):
        bad = "whitespace"
    if bad is not None:
        raise GraphError(f"variable name '{var.name}' cannot be written in BIF: it contains {bad}")
    for value in var.values:
        bad = _forbidden_in(value)
        if bad is None and var.card == 1 and any(c.isspace() for c in value):
            bad = "whitespace (the only state of a variable must be one word)"
        if bad is not None:
            raise GraphError(f"state name '{value}' of '{var.name}' cannot be written in BIF: it contains {bad}")


def _forbidden_in(name: str) -> str | None:
    for token in _FORBIDDEN:
        if token in name:
            return "a newline" if token in "\n\r" else f"'{token}'"
    return None


def _network_name(name: str) -> str:
    if _BARE_NETWORK_NAME.fullmatch(name):
        return name
    bad = _forbidden_in(name)
    if bad is not None:
        raise GraphError(f"graph name '{name}' cannot be written in BIF: it contains {bad}")
    return f'"{name}"'


def _header_comments(graph: Graph) -> list[str]:
    lines = [f"// {graph.name}: written by causalvae"]
    if graph.description:
        lines += ["// " + line for line in graph.description.splitlines()]
    if graph.image is not None:
        lines.append(
            f"// image node '{graph.image.name}' (not part of BIF), parents: {', '.join(graph.image.parents)}"
        )
    return lines


def _variable_block(var: Variable) -> list[str]:
    lines = [f"variable {var.name} {{"]
    if var.description:
        lines += ["  // " + line for line in var.description.splitlines()]
    lines.append(f"  type discrete [ {var.card} ] {{ {', '.join(var.values)} }};")
    if var.hidden:
        lines.append("  property observed = false ;")
    lines.append("}")
    return lines


def _probability_block(graph: Graph, var: Variable) -> list[str]:
    rows = var.cpt.reshape(-1, var.card)
    if not var.parents:
        return [f"probability ( {var.name} ) {{", f"  table {_numbers(rows[0])};", "}"]
    lines = [f"probability ( {var.name} | {', '.join(var.parents)} ) {{"]
    configs = itertools.product(*(graph[p].values for p in var.parents))
    for config, row in zip(configs, rows):
        lines.append(f"  ( {', '.join(config)} ) {_numbers(row)};")
    lines.append("}")
    return lines


def _numbers(row: np.ndarray) -> str:
    return ", ".join(repr(float(x)) for x in row)
