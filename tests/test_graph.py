"""The graph specification: loading, validation errors, round trips, the noise convention."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from causalvae.errors import GraphError, UnknownNameError
from causalvae.graph import Graph, ImageNode, Variable, quote_name
from causalvae.noise import cdf, noise_cells, value_from_noise


def spec(**over):
    base = {
        "name": "tiny",
        "variables": [
            {"name": "a", "values": ["x", "y"], "cpt": [0.4, 0.6]},
            {"name": "b", "values": ["u", "v", "w"], "parents": ["a"], "cpt": {"x": [0.2, 0.3, 0.5], "y": [0.1, 0.1, 0.8]}},
        ],
    }
    base.update(over)
    return base


def load(d) -> Graph:
    return Graph.from_yaml("test.yaml", text=yaml.safe_dump(d))


def test_scene_graph_structure(scenes):
    assert scenes.hidden == tuple(f"{w}_{a}" for w in ("actor", "reactor") for a in ("strength", "defense", "attack"))
    assert scenes.parents("reaction") == ("reactor_strength", "reactor_defense", "reactor_attack", "action")
    assert scenes.image is not None and scenes.image.parents[-1] == "reaction"
    assert scenes.cpt("reaction").shape == (2, 2, 2, 3, 4)
    # Reaction table axis order: strength, defense, attack, action, reaction (reference row).
    np.testing.assert_array_equal(scenes.cpt("reaction")[1, 0, 0, 0], [0.3, 0.3, 0.399, 0.001])
    # Actor and reactor share the same tables (typed once, via YAML anchors).
    for attr in ("type", "strength", "defense", "attack"):
        np.testing.assert_array_equal(scenes.cpt(f"actor_{attr}"), scenes.cpt(f"reactor_{attr}"))


def test_survey_graph():
    g = Graph.load("survey")
    assert set(g.names) == {"A", "S", "E", "O", "R", "T"}
    assert g.parents("E") == ("A", "S") and g.parents("T") == ("O", "R")
    np.testing.assert_allclose(g.cpt("T")[1, 0], [0.56, 0.36, 0.08])  # (self, small)


@pytest.mark.parametrize("form", ["nested", "flat", "rows", "array", "leafdict"])
def test_cpt_forms_are_equivalent(form):
    table = {"x": [0.2, 0.3, 0.5], "y": [0.1, 0.1, 0.8]}
    forms = {
        "nested": table,
        "flat": [0.2, 0.3, 0.5, 0.1, 0.1, 0.8],
        "rows": [[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]],
        "array": np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]),
        "leafdict": {"x": {"u": 0.2, "v": 0.3, "w": 0.5}, "y": {"w": 0.8, "u": 0.1, "v": 0.1}},
    }
    g = Graph([Variable("a", ["x", "y"], cpt=[0.4, 0.6]), Variable("b", ["u", "v", "w"], ["a"], forms[form])])
    np.testing.assert_array_equal(g.cpt("b"), [[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])


def test_yaml_round_trip_is_exact(scenes, tmp_path):
    path = tmp_path / "scenes.yaml"
    scenes.to_yaml(path)
    back = Graph.load(path)
    assert back.names == scenes.names and back.hidden == scenes.hidden
    assert back.image == scenes.image
    for n in scenes.names:
        np.testing.assert_array_equal(back.cpt(n), scenes.cpt(n))
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d["variables"][0].update(parents=["b"], cpt={"u": [0.5, 0.5], "v": [0.5, 0.5], "w": [0.5, 0.5]}), r"cycle: (a -> b -> a|b -> a -> b)"),
        (lambda d: d["variables"][1].update(parents=["c"]), r"unknown parent 'c' of 'b'"),
        (lambda d: d["variables"][1].update(name="a", parents=[]), r"duplicate variable name 'a'"),
        (lambda d: d["variables"][0].update(cpt=[0.4, 0.3, 0.3]), r"CPT of 'a' has shape \(3,\); expected \(2,\)"),
        (lambda d: d["variables"][0].update(cpt=[1.4, -0.4]), r"CPT of 'a' has a negative entry -0.4"),
        (lambda d: d["variables"][1]["cpt"].update(y=[0.1, 0.1, 0.7]), r"CPT of 'b': row \(a=y\) sums to 0.9"),
        (lambda d: d["variables"][1]["cpt"].update(z=[0.1, 0.1, 0.8]), r"unknown value 'z' of parent 'a'"),
        (lambda d: d["variables"][1]["cpt"].pop("y"), r"misses the rows for a=y"),
        (lambda d: d["variables"][0].update(values=["x", "x"]), r"lists the value 'x' twice"),
        (lambda d: d["variables"][0].update(colour="red"), r"unknown key 'colour'"),
        (lambda d: d.update(image={"parents": ["q"]}), r"unknown image parent 'q'"),
        (lambda d: d["variables"][0].pop("cpt"), r"variable 'a' has no 'cpt'"),
        (lambda d: d["variables"][1].update(cpt={"x": [0.2, 0.3, 0.5], "y": "high"}), r"row \(a=y\) is not a list of numbers"),
        (lambda d: d.update(variables=[]), r"'variables' must be a non-empty list"),
    ],
)
def test_malformed_specifications_name_the_problem(mutate, message):
    d = spec()
    mutate(d)
    with pytest.raises(GraphError, match=message):
        load(d)


def test_longer_cycle_is_named():
    vs = [
        Variable("a", ["0", "1"], ["c"], [[0.5, 0.5]] * 2),
        Variable("b", ["0", "1"], ["a"], [[0.5, 0.5]] * 2),
        Variable("c", ["0", "1"], ["b"], [[0.5, 0.5]] * 2),
        Variable("d", ["0", "1"], [], [0.5, 0.5]),
    ]
    with pytest.raises(GraphError, match=r"cycle: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)"):
        Graph(vs)


def test_normalize_flag():
    d = spec()
    d["variables"][1]["cpt"]["y"] = [1, 1, 2]
    d["variables"][1]["normalize"] = True
    np.testing.assert_allclose(load(d).cpt("b")[1], [0.25, 0.25, 0.5])


def test_bad_yaml_and_missing_files(tmp_path):
    with pytest.raises(GraphError, match="not valid YAML"):
        Graph.from_yaml("x.yaml", text="variables: [a: b: c")
    with pytest.raises(GraphError, match="no such file"):
        Graph.load(tmp_path / "nope.yaml")
    with pytest.raises(UnknownNameError, match="unknown graph 'scene'.*did you mean 'scenes'"):
        Graph.load("scene")
    (tmp_path / "g.txt").write_text("x")
    with pytest.raises(GraphError, match="unknown graph file type"):
        Graph.load(tmp_path / "g.txt")


def test_names_admit_bif_states_and_quote_when_needed():
    g = Graph([Variable("age group", ["<5", "5-12", "12+"], cpt=[0.2, 0.3, 0.5])])
    assert g.value_index("age group", "12+") == 2
    assert quote_name("0-3_days") == "0-3_days"
    assert quote_name("12+") == '"12+"'
    assert quote_name('say "hi"') == '"say \\"hi\\""'


def test_intervene_mutilates(scenes):
    m = scenes.intervene({"action": "Walk"})
    assert m.parents("action") == ()
    np.testing.assert_array_equal(m.cpt("action"), [0, 0, 1])
    assert m.parents("reaction") == scenes.parents("reaction")


def test_ancestors_descendants(scenes):
    assert scenes.ancestors("action") == {"actor", "actor_type", "actor_strength", "actor_defense", "actor_attack"}
    assert scenes.descendants("actor_attack") == {"action", "reaction"}


# ---------------------------------------------------------------- the noise convention


def test_noise_convention_is_searchsorted_right():
    row = np.array([0.2, 0.0, 0.5, 0.3])
    c = cdf(row)
    assert c[-1] == 1.0
    us = np.array([0.0, 0.1999, 0.2, 0.69, 0.7, 0.99999])
    expect = [np.searchsorted(c, u, side="right") for u in us]
    np.testing.assert_array_equal(value_from_noise(c, us), expect)
    assert 1 not in value_from_noise(c, np.linspace(0, 0.999, 1000))  # a zero-probability value is never drawn


def test_noise_cells_reproduce_every_row():
    table = np.array([[0.3, 0.4, 0.3], [0.1, 0.1, 0.8], [0.5, 0.5, 0.0]])
    probs, f = noise_cells(table)
    assert probs.sum() == pytest.approx(1.0, abs=1e-15)
    for r in range(3):
        dist = np.bincount(f[r], weights=probs, minlength=3)
        np.testing.assert_allclose(dist, table[r], atol=1e-15)
    # Cells cut exactly at the merged breakpoints {0, .1, .2, .3, .5, .7, 1}.
    np.testing.assert_allclose(probs, [0.1, 0.1, 0.1, 0.2, 0.2, 0.3], atol=1e-15)


def test_image_node_validation():
    a = Variable("a", ["x", "y"], cpt=[0.5, 0.5])
    with pytest.raises(GraphError, match="also a variable's name"):
        Graph([a], ImageNode(["a"], name="a"))
    g = Graph([a], ImageNode(["a"]))
    assert g.image.name == "image"


def test_a_number_names_a_numeric_value():
    """scale=1.0 in the Python API is the value "1.0" (a float once gave "unknown value '1.0'
    (did you mean '1.0'?)"); a number that is no value, or a float for a named value, is refused."""
    sprites = Graph.load("sprites")
    scale = sprites["scale"]
    assert scale.index(1.0) == scale.values.index("1.0") == 5
    assert scale.index(np.float32(0.5)) == 0 and scale.index("0.6") == 1
    with pytest.raises(UnknownNameError, match="unknown value '0.55' of 'scale'"):
        scale.index(0.55)
    with pytest.raises(UnknownNameError, match="unknown value '1.5' of 'shape'"):
        sprites["shape"].index(1.5)
