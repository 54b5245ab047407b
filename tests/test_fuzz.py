"""Property tests (hypothesis): the query parser, the graph readers and the viewer's JSON
bodies answer every input with a result or the project's own error, never another exception.
Small example counts here; more examples with HYPOTHESIS_EXAMPLES=N."""

from __future__ import annotations

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


@SETTINGS
@given(queries())
def test_parse_print_parse_is_the_identity(q):
    text = format_query(q)
    again = parse(text, AWKWARD)
    assert _same(again, q), text
    assert format_query(again) == text


SCENES = Graph.load("scenes")
TOKENS = ["P", "PN", "PNS", "(", ")", "[", "]", ",", "=", "|", "->", "do", "vs", " ", '"', "'", "\\", "action", "reaction", "Dying", "Walk", "actor", "Golem", "x", "é", "\u202e", "\0"]


@SETTINGS
@given(st.one_of(st.lists(st.sampled_from(TOKENS), max_size=20).map("".join), st.text(max_size=40)))
def test_any_string_parses_or_raises_the_projects_error(text):
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


@SETTINGS
@given(mutations(VALID_YAML))
def test_mutated_yaml_is_a_graph_or_the_projects_error(text):
    try:
        Graph.from_yaml("g.yaml", text=text)
    except CausalVAEError:
        pass


@SETTINGS
@given(mutations(VALID_BIF))
def test_mutated_bif_is_a_graph_or_the_projects_error(text):
    try:
        read_bif(text=text, name="n")
    except CausalVAEError:
        pass


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12) | st.sampled_from(["reaction", "Dying", "action", "Walk", "P(action)"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["evidence", "do", "n", "seed", "query", "index", "image", "labels", "reaction", "x"]), children, max_size=4),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def client(viewer_run):
    from fastapi.testclient import TestClient

    from causalvae.viewer import create_app

    data, run, oracle = viewer_run
    return TestClient(create_app(run, warm=False), raise_server_exceptions=False)


@pytest.mark.parametrize("path", ["/api/query", "/api/sample", "/api/counterfactual"])
def test_viewer_json_bodies_never_get_a_500(client, path):
    @settings(max_examples=max(10, EXAMPLES // 3), deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(JSON_VALUES)
    def check(body):
        import json

        try:
            payload = json.dumps(body, allow_nan=True)
        except ValueError:
            return
        r = client.post(path, content=payload, headers={"content-type": "application/json"})
        assert r.status_code < 500 or r.status_code == 503, (payload, r.status_code, r.text)
        assert "detail" in r.json() or r.status_code == 200

    check()
