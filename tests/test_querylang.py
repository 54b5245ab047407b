"""The query language and the CLI that uses it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from causalvae.cli import app
from causalvae.errors import QuerySyntaxError, UnknownNameError
from causalvae.exact import Term, query
from causalvae.querylang import CausationQuery, ProbabilityQuery, evaluate, parse, parse_assignments

runner = CliRunner()


def test_parse_conditional_interventional_counterfactual():
    q = parse("P(action | reaction=Dying)")
    assert isinstance(q, ProbabilityQuery)
    assert q.targets == (Term("action"),) and q.evidence == ((Term("reaction"), "Dying"),)
    q = parse("P(reaction | do(actor_attack=High, reactor_defense=Low), actor=Golem)")
    assert q.do == (("actor_attack", "High"), ("reactor_defense", "Low"))
    assert q.evidence == ((Term("actor"), "Golem"),)
    q = parse("P(reaction[action=Walk], reaction[action=Taunt] | action=Attack, reaction=Dying)")
    assert q.targets == (Term("reaction", (("action", "Walk"),)), Term("reaction", (("action", "Taunt"),)))
    q = parse("PN(action=Attack vs Walk -> reaction=Dying | actor=Golem)")
    assert isinstance(q, CausationQuery)
    assert (q.measure, q.treatment, q.value, q.contrast, q.outcome, q.outcome_value) == ("PN", "action", "Attack", "Walk", "reaction", "Dying")


def test_quoted_names():
    q = parse('P("age group" | "weird var"="12+", x=0-3_days)')
    assert q.targets[0].var == "age group"
    assert q.evidence == ((Term("weird var"), "12+"), (Term("x"), "0-3_days"))


@pytest.mark.parametrize(
    "text,pos,message",
    [
        ("P(action | reaction=Dying", 25, "expected '\\)'"),
        ("P(action | reaction)", 19, "evidence needs a value"),
        ("Q(action)", 0, "starts with P, PN, PS or PNS"),
        ("P(action | reaction=Dying) extra", 27, "unexpected 'extra'"),
        ("P(action ; x)", 9, "unexpected character ';'"),
        ("PNS(action=Attack reaction=Dying)", 18, "expected '->'"),
        ("P(action | reaction=12+)", 22, "unexpected character '\\+'"),
        ("P(action | do(reaction=Dying)", 29, "expected '\\)' to close P"),
    ],
)
def test_syntax_errors_point_at_the_character(text, pos, message):
    with pytest.raises(QuerySyntaxError, match=message) as info:
        parse(text)
    assert info.value.position == pos
    caret_line = str(info.value).splitlines()[-1]
    assert caret_line.index("^") - 2 == pos


def test_unknown_names_suggest_nearest(scenes):
    with pytest.raises(UnknownNameError, match=r"unknown variable 'acton' \(did you mean 'action'\?\)"):
        parse("P(acton | reaction=Dying)", scenes)
    with pytest.raises(UnknownNameError, match=r"unknown value 'Dyin' of 'reaction' \(did you mean 'Dying'\?\)"):
        parse("P(action | reaction=Dyin)", scenes)
    with pytest.raises(UnknownNameError, match="did you mean 'actor_attack'"):
        parse("P(reaction | do(actor_atack=High))", scenes)


def test_evaluate_matches_the_engine(scenes):
    a = evaluate(scenes, "P(action=Attack | reaction=Dying)")
    assert a.probability == pytest.approx(query(scenes, "action", {"reaction": "Dying"}).prob("Attack"), abs=1e-15)
    a = evaluate(scenes, "P(reaction[action=Walk] | action=Attack, reaction=Dying)")
    want = query(scenes, [Term("reaction", (("action", "Walk"),))], {"action": "Attack", "reaction": "Dying"})
    np.testing.assert_array_equal(a.distribution.table, want.table)


def test_parse_assignments(scenes):
    ev, do = parse_assignments("actor=Golem, do(action=Walk)", scenes, allow_do=True)
    assert ev == {"actor": "Golem"} and do == {"action": "Walk"}
    with pytest.raises(QuerySyntaxError, match="do\\(...\\) is not allowed"):
        parse_assignments("do(action=Walk)", scenes)


# ---------------------------------------------------------------- CLI


def test_cli_json_distribution(scenes):
    res = runner.invoke(app, ["query", "P(reaction | do(actor_attack=High, reactor_defense=Low))", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    want = query(scenes, "reaction", do={"actor_attack": "High", "reactor_defense": "Low"}).to_dict()
    assert data["distribution"] == pytest.approx(want, abs=1e-15)
    assert round(data["distribution"]["Dying"], 3) == 0.246


def test_cli_joint_keys_are_comma_joined():
    res = runner.invoke(app, ["query", "P(actor, reactor | reaction=Dying)", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data["distribution"]) == {"Satyr,Satyr", "Satyr,Golem", "Golem,Satyr", "Golem,Golem"}
    assert sum(data["distribution"].values()) == pytest.approx(1.0, abs=1e-12)


def test_cli_table_and_causation():
    res = runner.invoke(app, ["query", "P(action | reaction=Dying)"])
    assert res.exit_code == 0 and "Attack" in res.stdout and "0.5993" in res.stdout
    res = runner.invoke(app, ["query", "PNS(action=Attack vs Walk -> reaction=Dying)", "--json"])
    data = json.loads(res.stdout)
    assert set(data["contrasts"]) == {"Walk"} and 0 < data["contrasts"]["Walk"]["PNS"] < 1


def test_cli_errors_are_one_clear_line():
    res = runner.invoke(app, ["query", "P(acton | reaction=Dying)"])
    assert res.exit_code == 2
    assert "did you mean 'action'" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["query", "P(action)", "--graph", "nope.yaml"])
    assert res.exit_code == 2 and "no such file" in res.output


def test_cli_graph_show_and_convert(tmp_path):
    res = runner.invoke(app, ["graph", "show", "scenes"])
    assert res.exit_code == 0 and "reactor_attack" in res.stdout and "hidden" in res.stdout
    out = tmp_path / "scenes.yaml"
    res = runner.invoke(app, ["graph", "convert", "scenes", "--out", str(out)])
    assert res.exit_code == 0
    res = runner.invoke(app, ["query", "P(action=Attack | reaction=Dying)", "--graph", str(out), "--json"])
    assert round(json.loads(res.stdout)["probability"], 2) == 0.60


def test_undefined_probability_of_causation_is_null_in_json(tmp_path):
    """PS conditions on X=x', Y!=y: impossible here (Y is always 1), so PS is undefined."""
    from causalvae.graph import Graph, Variable

    g = Graph([Variable("X", ["0", "1"], cpt=[0.5, 0.5]), Variable("Y", ["0", "1"], ["X"], cpt=[[0.0, 1.0], [0.0, 1.0]])])
    g.to_yaml(tmp_path / "g.yaml")
    res = runner.invoke(app, ["query", "PNS(X=1 -> Y=1)", "--graph", str(tmp_path / "g.yaml"), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)["contrasts"]["0"]
    assert data["PS"] is None and data["PNS"] == 0.0 and data["PN"] == 0.0
    res = runner.invoke(app, ["query", "PNS(X=1 -> Y=1)", "--graph", str(tmp_path / "g.yaml")])
    assert "undefined" in res.stdout


@pytest.mark.parametrize(
    "text,pos,message",
    [
        ("P(action | do(actor=Golem, actor=Satyr))", 27, "'actor' is intervened on twice"),
        ("PN(action=Attack -> reaction=Dying | actor=Golem, actor=Satyr)", 50, "evidence on 'actor' is given twice"),
    ],
)
def test_repeated_conditions_are_refused(text, pos, message):
    with pytest.raises(QuerySyntaxError, match=message) as info:
        parse(text)
    assert info.value.position == pos


def test_mixed_valued_targets_point_at_the_unvalued_one():
    with pytest.raises(QuerySyntaxError, match="give a value for every target or for none") as info:
        parse("P(action=Attack, reaction | actor=Golem)")
    assert info.value.position == 17
