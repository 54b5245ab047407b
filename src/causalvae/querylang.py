"""The query language: one parser for every command that takes evidence or interventions.

Grammar (names are bare, ``[A-Za-z0-9_.]`` with inner hyphens, or quoted ``"12+"``)::

    query     := "P" "(" targets [ "|" conds ] ")"
               | ("PN" | "PS" | "PNS") "(" NAME "=" VALUE [ "vs" VALUE ] "->" NAME "=" VALUE [ "|" conds ] ")"
    targets   := target ("," target)*
    target    := NAME [ world ] [ "=" VALUE ]
    world     := "[" assign ("," assign)* "]"          a counterfactual world: its interventions
    conds     := cond ("," cond)*
    cond      := "do" "(" assign ("," assign)* ")" | NAME [ world ] "=" VALUE
    assign    := NAME "=" VALUE

Examples::

    P(action | reaction=Dying)                                 conditioning
    P(reaction | do(actor_attack=High, reactor_defense=Low))   intervention
    P(reaction[action=Walk] | action=Attack, reaction=Dying)   a potential outcome
    P(reaction[action=Walk], reaction[action=Taunt] | action=Attack)   a joint across worlds
    P(action=Attack | reaction=Dying)                          one probability
    PNS(action=Attack -> reaction=Dying)                       probabilities of causation
    PN(action=Attack vs Walk -> reaction=Dying | actor=Golem)

``do(...)`` applies to every world of the query; a bracketed world adds its own
interventions on top. Syntax errors point at the offending character; with a graph, unknown
names are refused with the nearest valid one.

    >>> parse("P(action | reaction=Dying)").targets[0].var
    'action'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Union

from causalvae.errors import QuerySyntaxError, UnknownNameError, suggest
from causalvae.exact import DEFAULT_BUDGET, Budget, Causation, Distribution, Term, causation, query
from causalvae.graph import Graph, quote_name



def _token_pattern(numeric: bool) -> re.Pattern:
    """The tokens of the language; ``numeric`` adds comparisons and signed numbers
    (``-1.5``, ``2e-3``), which queries on graphs with continuous variables use."""
    comparison = "| (?P<cmp>>=|<=|[<>])" if numeric else ""
    number = "-?[0-9][0-9.]*[eE][-+]?[0-9]+(?![A-Za-z0-9_.])|-?[0-9][A-Za-z0-9_.]*(?:[eE][-+]?[0-9]+)?|" if numeric else ""
    return re.compile(
        rf"""
    (?P<ws>\s+)
  | (?P<arrow>->)
  {comparison}
  | (?P<sym>[()\[\],=|])
  | (?P<quoted>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<bare>{number}[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*)
    """,
        re.VERBOSE,
    )


_TOKENS = {False: _token_pattern(False), True: _token_pattern(True)}

MEASURES = ("P", "PN", "PS", "PNS")


@dataclass(frozen=True)
class Token:
    kind: str  # "name", "sym", "arrow", "end"
    text: str
    pos: int
    quoted: bool = False


def tokenize(text: str, numeric: bool = False) -> list[Token]:
    """Split a query into tokens; an unexpected character raises with a caret under it.
    ``numeric`` (graphs with continuous variables) also reads comparisons (``> < >= <=``,
    as ``sym`` tokens) and signed numbers."""
    pattern = _TOKENS[numeric]
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = pattern.match(text, pos)
        if m is None:
            ch = text[pos]
            hint = " (quote names with symbols, e.g. \"12+\")" if ch not in "\"'" else " (unterminated quote)"
            raise QuerySyntaxError(f"unexpected character {ch!r}{hint}", text, pos)
        kind = m.lastgroup
        if kind == "quoted":
            raw = m.group()[1:-1]
            tokens.append(Token("name", re.sub(r"\\(.)", r"\1", raw), pos, quoted=True))
        elif kind == "bare":
            tokens.append(Token("name", m.group(), pos))
        elif kind in ("sym", "arrow"):
            tokens.append(Token(kind, m.group(), pos))
        elif kind == "cmp":
            tokens.append(Token("sym", m.group(), pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


@dataclass(frozen=True)
class ProbabilityQuery:
    """``P(targets | do(...), evidence)``; ``target_values`` hold the asked values (or None)."""

    text: str
    targets: tuple[Term, ...]
    target_values: tuple[str | None, ...]
    evidence: tuple[tuple[Term, str], ...] = ()
    do: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CausationQuery:
    """``PN/PS/PNS(treatment=value [vs contrast] -> outcome=value | ...)``."""

    text: str
    measure: str
    treatment: str
    value: str
    outcome: str
    outcome_value: str
    contrast: str | None = None
    evidence: tuple[tuple[Term, str], ...] = ()
    do: tuple[tuple[str, str], ...] = ()


Query = Union[ProbabilityQuery, CausationQuery]


class Parser:
    """A recursive-descent parser of one query (``numeric``: the tokens of graphs with
    continuous variables; :mod:`causalvae.mixed` extends it)."""

    numeric = False

    def __init__(self, text: str, graph: Graph | None):
        self.text = text
        self.graph = graph
        self.tokens = tokenize(text, self.numeric)
        self.i = 0

    # -- token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, tok: Token | None = None) -> QuerySyntaxError:
        tok = tok or self.tok
        return QuerySyntaxError(message, self.text, tok.pos)

    def expect(self, text: str, what: str | None = None) -> Token:
        tok = self.tok
        if tok.kind in ("sym", "arrow") and tok.text == text:
            self.i += 1
            return tok
        found = "the end of the query" if tok.kind == "end" else f"'{tok.text}'"
        raise self.error(f"expected '{text}'{' ' + what if what else ''}, found {found}")

    def at(self, text: str) -> bool:
        return self.tok.kind in ("sym", "arrow") and self.tok.text == text

    def name(self, what: str) -> Token:
        tok = self.tok
        if tok.kind != "name":
            found = "the end of the query" if tok.kind == "end" else f"'{tok.text}'"
            raise self.error(f"expected {what}, found {found}")
        self.i += 1
        return tok

    # -- name checks against the graph
    def variable(self, tok: Token) -> str:
        if self.graph is not None and tok.text not in self.graph:
            raise UnknownNameError(
                f"unknown variable '{tok.text}'{suggest(tok.text, self.graph.names)} at character "
                f"{tok.pos + 1}:\n  {self.text}\n  {' ' * tok.pos}^"
            )
        return tok.text

    def value(self, var: str, tok: Token) -> str:
        if self.graph is not None and tok.text not in self.graph[var].values:
            vals = self.graph[var].values
            raise UnknownNameError(
                f"unknown value '{tok.text}' of '{var}'{suggest(tok.text, vals)}; valid: "
                f"{', '.join(vals)} (at character {tok.pos + 1}):\n  {self.text}\n  {' ' * tok.pos}^"
            )
        return tok.text

    # -- grammar
    def assign(self) -> tuple[str, str]:
        var = self.variable(self.name("a variable name"))
        self.expect("=", f"after '{var}'")
        return var, self.value(var, self.name(f"a value of '{var}'"))

    def world(self) -> tuple[tuple[str, str], ...]:
        self.expect("[")
        items = [self.assign()]
        while self.at(","):
            self.i += 1
            items.append(self.assign())
        self.expect("]", "to close the world")
        return tuple(items)

    def conds(self) -> tuple[tuple, tuple]:
        evidence, do = [], []
        seen_terms, seen_do = set(), set()  # sets: parsing stays linear in the number of items
        while True:
            tok = self.name("evidence or do(...)")
            if tok.text == "do" and not tok.quoted and self.at("("):
                self.i += 1
                while True:
                    start = self.tok
                    var, value = self.assign()
                    if var in seen_do:
                        raise self.error(f"'{var}' is intervened on twice", start)
                    seen_do.add(var)
                    do.append((var, value))
                    if not self.at(","):
                        break
                    self.i += 1
                self.expect(")", "to close do(...)")
            else:
                var = self.variable(tok)
                world = self.world() if self.at("[") else ()
                self.expect("=", f"after '{tok.text}' (evidence needs a value)")
                term = Term(var, world)
                if term in seen_terms:
                    raise self.error(f"evidence on '{term.label}' is given twice", tok)
                seen_terms.add(term)
                evidence.append((term, self.value(var, self.name(f"a value of '{var}'"))))
            if not self.at(","):
                return tuple(evidence), tuple(do)
            self.i += 1

    def parse(self) -> Query:
        head = self.name("P, PN, PS or PNS")
        if head.text not in MEASURES:
            raise self.error(f"a query starts with P, PN, PS or PNS{suggest(head.text, MEASURES)}", head)
        self.expect("(", f"after {head.text}")
        if head.text == "P":
            q = self.probability()
        else:
            q = self.causation(head.text)
        if self.tok.kind != "end":
            raise self.error(f"unexpected '{self.tok.text}' after the end of the query")
        return q

    def probability(self) -> ProbabilityQuery:
        targets, values, starts = [], [], []
        while True:
            starts.append(self.tok.pos)
            var = self.variable(self.name("a target variable"))
            world = self.world() if self.at("[") else ()
            value = None
            if self.at("="):
                self.i += 1
                value = self.value(var, self.name(f"a value of '{var}'"))
            targets.append(Term(var, world))
            values.append(value)
            if not self.at(","):
                break
            self.i += 1
        evidence, do = ((), ())
        if self.at("|"):
            self.i += 1
            evidence, do = self.conds()
        self.expect(")", "to close P(...)")
        if any(v is None for v in values) and any(v is not None for v in values):
            where = starts[values.index(None)]
            raise QuerySyntaxError("give a value for every target or for none", self.text, where)
        return ProbabilityQuery(self.text, tuple(targets), tuple(values), evidence, do)

    def causation(self, measure: str) -> CausationQuery:
        treatment, value = self.assign()
        contrast = None
        if self.tok.kind == "name" and self.tok.text == "vs":
            self.i += 1
            contrast = self.value(treatment, self.name(f"a contrast value of '{treatment}'"))
        self.expect("->", "between the cause and the effect")
        outcome, outcome_value = self.assign()
        evidence, do = ((), ())
        if self.at("|"):
            self.i += 1
            evidence, do = self.conds()
        self.expect(")", f"to close {measure}(...)")
        return CausationQuery(self.text, measure, treatment, value, outcome, outcome_value, contrast, evidence, do)


def parse(text: str, graph: Graph | None = None) -> Query:
    """Parse a query; with ``graph``, also check every variable and value name."""
    if not isinstance(text, str) or not text.strip():
        raise QuerySyntaxError("empty query", text or "", 0)
    if graph is not None and graph.mixed:  # continuous variables: E, Q, p, comparisons, numbers
        from causalvae import mixed

        return mixed.parse(text, graph)
    return Parser(text, graph).parse()


def parse_assignments(text: str, graph: Graph | None = None, *, allow_do: bool = False) -> tuple[dict[str, str], dict[str, str]]:
    """Parse ``"a=x, b=y"`` (and, with ``allow_do``, ``do(c=z)``) as used by ``--given``/``--do``.

    Returns ``(evidence, do)`` as plain dicts of variable to value name.
    """
    p = Parser(text, graph)
    if p.tok.kind == "end":
        return {}, {}
    evidence, do = p.conds()
    if p.tok.kind != "end":
        raise p.error(f"unexpected '{p.tok.text}'")
    for term, _ in evidence:
        if term.world:
            raise QuerySyntaxError("counterfactual worlds [...] are not allowed here", text, 0)
    if do and not allow_do:
        raise QuerySyntaxError("do(...) is not allowed here", text, 0)
    return {t.var: v for t, v in evidence}, dict(do)


@dataclass(frozen=True)
class Answer:
    """The answer to a query: a distribution (P), or probabilities of causation per contrast."""

    query: Query
    distribution: Distribution | None = None
    probability: float | None = None
    causation: Mapping[str, Causation] = field(default_factory=dict)

    def to_json(self) -> dict:
        q = self.query
        if isinstance(q, ProbabilityQuery):
            assert self.distribution is not None
            out: dict = {"query": q.text, "targets": list(self.distribution.variables)}
            out["distribution"] = self.distribution.to_dict()
            if self.probability is not None:
                out["event"] = ",".join(v or "" for v in q.target_values)
                out["probability"] = self.probability
            return out
        return {
            "query": q.text,
            "measure": q.measure,
            "treatment": f"{q.treatment}={q.value}",
            "outcome": f"{q.outcome}={q.outcome_value}",
            "contrasts": {k: {"PN": _num(c.pn), "PS": _num(c.ps), "PNS": _num(c.pns)} for k, c in self.causation.items()},
        }


def _num(p: float) -> float | None:
    """JSON has no NaN: an undefined probability is null."""
    return None if math.isnan(p) else p


def evaluate(graph: Graph, q: Query | str, budget: Budget = DEFAULT_BUDGET) -> Answer:
    """Answer a parsed (or textual) query exactly on ``graph``, within ``budget`` (a query over
    it raises :class:`~causalvae.errors.QueryTooLargeError` before any work). A graph with
    continuous variables is answered by :func:`causalvae.mixed.evaluate`, with its method and
    error."""
    if graph.mixed:
        from causalvae import mixed

        return mixed.evaluate(graph, q)
    if isinstance(q, str):
        q = parse(q, graph)
    else:
        parse(q.text, graph)  # re-check names against this graph
    if isinstance(q, ProbabilityQuery):
        d = query(graph, list(q.targets), list(q.evidence), dict(q.do), budget)
        prob = d.prob(*q.target_values) if q.target_values and q.target_values[0] is not None else None
        return Answer(q, d, prob)
    evidence = {}
    for term, value in q.evidence:
        if term.world:
            raise QuerySyntaxError("the context of PN/PS/PNS is factual evidence; drop the [...]", q.text, 0)
        evidence[term.var] = value
    result = causation(graph, q.treatment, q.value, q.outcome, q.outcome_value, q.contrast, evidence, dict(q.do), budget)
    return Answer(q, causation=result)


def format_term(term: Term) -> str:
    """A term written back in query syntax (names quoted where needed)."""
    if not term.world:
        return quote_name(term.var)
    return f"{quote_name(term.var)}[" + ", ".join(f"{quote_name(k)}={quote_name(v)}" for k, v in term.world) + "]"


def format_query(q: Query) -> str:
    """A parsed query written back in the query language (names quoted where needed):
    ``parse(format_query(q))`` gives ``q`` again (but for its ``text``).

        >>> format_query(parse("P( action|reaction = Dying )"))
        'P(action | reaction=Dying)'
    """
    conds = [f"{format_term(t)}={quote_name(v)}" for t, v in q.evidence]
    if q.do:
        conds.append("do(" + ", ".join(f"{quote_name(k)}={quote_name(v)}" for k, v in q.do) + ")")
    given = (" | " + ", ".join(conds)) if conds else ""
    if isinstance(q, ProbabilityQuery):
        targets = ", ".join(format_term(t) + (f"={quote_name(v)}" if v is not None else "") for t, v in zip(q.targets, q.target_values))
        return f"P({targets}{given})"
    contrast = f" vs {quote_name(q.contrast)}" if q.contrast is not None else ""
    return (
        f"{q.measure}({quote_name(q.treatment)}={quote_name(q.value)}{contrast} -> "
        f"{quote_name(q.outcome)}={quote_name(q.outcome_value)}{given})"
    )
