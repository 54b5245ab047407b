"""Property tests (hypothesis): the query parser, the graph readers and the viewer's JSON
bodies answer every input with a result or the project's own error, never another exception.

Each property is a fuzz target: a strategy and a check, named in :data:`TARGETS` (and
:func:`viewer_targets` for the viewer's bodies). The tests run each with a small example
count (``HYPOTHESIS_EXAMPLES=N`` for more); ``make fuzz`` (bench/fuzz.py) runs the same
targets with 10^5 examples each and records the counts."""

from __future__ import annotations

import json
import os

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from causalvae.bif import read_bif  # noqa: E402
from causalvae.errors import CausalVAEError  # noqa: E402
from causalvae.exact import Term  # noqa: E402
from causalvae.graph import Graph, Variable  # noqa: E402
from causalvae.querylang import CausationQuery, ProbabilityQuery, format_query, parse  # noqa: E402

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "60"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

# Awkward names: the query language's own words, symbols, quotes, spaces, non-ASCII.
NAMES = ["x", "do", "P", "vs", "PNS", "12+", "a b", 'say "hi"', "back\\slash", "é-t", "y.z", "-lead", "k=v"]
AWKWARD = Graph([
    Variable(n, [f"{n}0", "do", "vs", "1", "two words"] if i % 2 else ["0", "1"], [NAMES[i - 1]] if i else [],
             cpt=([[0.1, 0.2, 0.3, 0.2, 0.2]] * (2 if i % 2 else 5)) if i % 2 else ([[0.5, 0.5]] * (5 if i > 1 else 1) if i else [0.5, 0.5]))
    for i, n in enumerate(NAMES)
], name="awkward")


def assignment(graph: Graph, draw) -> tuple[str, str]:
    name = draw(st.sampled_from(graph.names))
    return name, draw(st.sampled_from(graph[name].values))


@st.composite
def queries(draw, graph: Graph = AWKWARD):
    def assignments(most: int) -> tuple:
        return tuple(dict(assignment(graph, draw) for _ in range(draw(st.integers(0, most)))).items())

    do = assignments(2)
    if draw(st.booleans()):
        evidence = tuple(dict((Term(n, assignments(2)), v) for n, v in assignments(3)).items())
        terms = list(dict.fromkeys(Term(draw(st.sampled_from(graph.names)), assignments(2)) for _ in range(draw(st.integers(1, 3)))))
        with_values = draw(st.booleans())
        values = tuple(draw(st.sampled_from(graph[t.var].values)) if with_values else None for t in terms)
        return ProbabilityQuery("", tuple(terms), values, evidence, do)
    treatment, value = assignment(graph, draw)
    outcome, outcome_value = assignment(graph, draw)
    contrast = draw(st.one_of(st.none(), st.sampled_from(graph[treatment].values)))
    evidence = tuple((Term(n), v) for n, v in assignments(3))
    return CausationQuery("", draw(st.sampled_from(["PN", "PS", "PNS"])), treatment, value, outcome, outcome_value, contrast, evidence, do)


def _same(a, b) -> bool:
    return {k: v for k, v in vars(a).items() if k != "text"} == {k: v for k, v in vars(b).items() if k != "text"}


def check_parse_print_parse(q) -> None:
    """Printing a query and parsing it back gives the same query, and prints the same."""
    text = format_query(q)
    again = parse(text, AWKWARD)
    assert _same(again, q), text
    assert format_query(again) == text


SCENES = Graph.load("scenes")
TOKENS = ["P", "PN", "PNS", "(", ")", "[", "]", ",", "=", "|", "->", "do", "vs", " ", '"', "'", "\\", "action", "reaction", "Dying", "Walk", "actor", "Golem", "x", "é", "\u202e", "\0"]


ANY_STRING = st.one_of(st.lists(st.sampled_from(TOKENS), max_size=20).map("".join), st.text(max_size=40))


def check_any_string(text: str) -> None:
    """Any string parses as a query on the scene graph or raises the project's error."""
    try:
        parse(text, SCENES)
    except CausalVAEError:
        pass


VALID_YAML = """name: g
variables:
  - name: a
    values: [x, y]
    cpt: [0.3, 0.7]
  - name: b
    values: [u, v]
    parents: [a]
    cpt:
      x: [0.1, 0.9]
      y: [0.6, 0.4]
"""

VALID_BIF = """network n { }
variable a { type discrete [ 2 ] { x, y }; }
variable b { type discrete [ 2 ] { u, v }; }
probability ( a ) { table 0.3, 0.7; }
probability ( b | a ) { (x) 0.1, 0.9; default 0.6, 0.4; }
"""


def mutations(text: str):
    """A valid file with a few characters replaced, inserted or deleted."""
    alphabet = st.sampled_from(list("[]{}(),;:|-&*!#'\"\n 0123456789.eExyuvab") + ["default", "table", "\t", "\u202e", "1e999"])
    edit = st.tuples(st.integers(0, len(text)), st.sampled_from(["insert", "delete", "replace"]), alphabet)

    def apply(edits):
        out = text
        for pos, kind, s in edits:
            pos = min(pos, len(out))
            out = out[:pos] + s + out[pos:] if kind == "insert" else out[:pos] + out[pos + 1:] if kind == "delete" else out[:pos] + s + out[pos + 1:]
        return out

    return st.lists(edit, min_size=1, max_size=4).map(apply)


def check_yaml(text: str) -> None:
    """A graph file's text is a graph or the project's error."""
    try:
        Graph.from_yaml("g.yaml", text=text)
    except CausalVAEError:
        pass


def check_bif(text: str) -> None:
    """A BIF file's text is a graph or the project's error."""
    try:
        read_bif(text=text, name="n")
    except CausalVAEError:
        pass


#: The fuzz targets that need nothing but the library: name -> (strategy, check).
TARGETS = {
    "querylang.parse_print_parse": (queries(), check_parse_print_parse),
    "querylang.any_string": (ANY_STRING, check_any_string),
    "yaml.mutations": (mutations(VALID_YAML), check_yaml),
    "bif.mutations": (mutations(VALID_BIF), check_bif),
}


@pytest.mark.parametrize("name", TARGETS)
def test_fuzz_target(name):
    strategy, check = TARGETS[name]
    SETTINGS(given(strategy)(check))()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12) | st.sampled_from(["reaction", "Dying", "action", "Walk", "P(action)"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["evidence", "do", "n", "seed", "query", "index", "image", "labels", "reaction", "x"]), children, max_size=4),
    max_leaves=8,
)


VIEWER_PATHS = ["/api/query", "/api/sample", "/api/counterfactual"]


def viewer_targets(client) -> dict:
    """The viewer's fuzz targets for a TestClient of its app: per JSON endpoint, any JSON
    body gets an answer below 500 (or a 503, busy), with a ``detail`` unless it is a 200."""

    def target(path):
        def check(body) -> None:
            try:
                payload = json.dumps(body, allow_nan=True)
            except ValueError:
                return
            r = client.post(path, content=payload, headers={"content-type": "application/json"})
            assert r.status_code < 500 or r.status_code == 503, (payload, r.status_code, r.text)
            assert "detail" in r.json() or r.status_code == 200

        return JSON_VALUES, check

    return {f"viewer.{path.rsplit('/', 1)[1]}": target(path) for path in VIEWER_PATHS}


@pytest.fixture(scope="module")
def client(viewer_run):
    from fastapi.testclient import TestClient

    from causalvae.viewer import create_app

    data, run, oracle = viewer_run
    return TestClient(create_app(run, warm=False), raise_server_exceptions=False)


@pytest.mark.parametrize("path", VIEWER_PATHS)
def test_viewer_json_bodies_never_get_a_500(client, path):
    strategy, check = viewer_targets(client)[f"viewer.{path.rsplit('/', 1)[1]}"]
    few = settings(max_examples=max(10, EXAMPLES // 3), deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    few(given(strategy)(check))()
