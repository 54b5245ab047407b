"""Exact inference: agreement with pgmpy, causal semantics, closed forms, batching."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from causalvae.errors import CausalVAEError, ZeroProbabilityError
from causalvae.exact import Term, causation, marginals, posterior, query, twin_network
from causalvae.graph import Graph, Variable
from causalvae.noise import propagate, sample

from conftest import bnlearn_path, pgmpy_model

TOL = 1e-9


def _pgmpy_answer(model, targets, evidence, do=None):
    from pgmpy.inference import CausalInference, VariableElimination

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if do:
            f = CausalInference(model).query(targets, do=do, evidence=evidence or None, show_progress=False)
        else:
            f = VariableElimination(model).query(targets, evidence=evidence or None, joint=True, show_progress=False)
    return f


def _compare(graph, model, targets, evidence, do=None):
    ours = query(graph, targets, evidence, do)
    f = _pgmpy_answer(model, targets, evidence, do)
    for values, p in ours.items():
        want = f.get_value(**dict(zip(targets, values)))
        assert abs(p - want) < TOL, (targets, evidence, do, values, p, want)


@pytest.mark.parametrize("name", ["scenes", "asia", "survey", "alarm", "child", "insurance", "sachs"])
def test_conditional_queries_agree_with_pgmpy(name, scenes):
    graph = scenes if name == "scenes" else Graph.load(bnlearn_path(name))
    model = pgmpy_model(graph)
    rng = np.random.default_rng(0)
    names = list(graph.names)
    for _ in range(6):
        k = int(rng.integers(0, 3))
        chosen = rng.choice(len(names), size=k + 1, replace=False)
        target, ev_names = names[chosen[0]], [names[i] for i in chosen[1:]]
        # Evidence drawn from the model itself, so it has positive probability.
        s = sample(graph, 1, seed=int(rng.integers(1 << 30)))
        evidence = {e: graph[e].values[s.values[e][0]] for e in ev_names}
        _compare(graph, model, [target], evidence)


def test_joint_targets_agree_with_pgmpy(scenes):
    model = pgmpy_model(scenes)
    _compare(scenes, model, ["actor_attack", "action"], {"reaction": "Dying", "reactor": "Golem"})


@pytest.mark.parametrize("name", ["scenes", "asia", "alarm", "insurance"])
def test_interventional_queries_agree_with_pgmpy(name, scenes):
    graph = scenes if name == "scenes" else Graph.load(bnlearn_path(name))
    model = pgmpy_model(graph)
    rng = np.random.default_rng(1)
    names = list(graph.names)
    treatments = [n for n in names if graph.descendants(n)]
    for _ in range(3):
        treat = treatments[int(rng.integers(len(treatments)))]
        desc = sorted(graph.descendants(treat))
        target = desc[int(rng.integers(len(desc)))]
        value = graph[treat].values[int(rng.integers(graph.card(treat)))]
        # pgmpy's CausalInference (it refuses targets upstream of the intervention) ...
        _compare(graph, model, [target], {}, {treat: value})
        # ... and its VariableElimination on the mutilated graph, for any target.
        other = names[int(rng.integers(len(names)))]
        mutilated = pgmpy_model(graph.intervene({treat: value}))
        ours = query(graph, [other], do={treat: value})
        f = _pgmpy_answer(mutilated, [other], {})
        for values, p in ours.items():
            assert abs(p - f.get_value(**{other: values[0]})) < TOL


def test_scene_world_reference_numbers(scenes):
    """The numbers of shared/reference/scene-world.md."""
    p_cond = query(scenes, "action", {"reaction": "Dying"}).prob("Attack")
    p_do = query(scenes, "action", do={"reaction": "Dying"}).prob("Attack")
    assert round(p_cond, 2) == 0.60
    assert round(p_do, 2) == 0.27
    assert abs(p_do - query(scenes, "action").prob("Attack")) < 1e-12
    before = query(scenes, "reaction").prob("Dying")
    after = query(scenes, "reaction", do={"actor_attack": "High", "reactor_defense": "Low"})
    assert round(before, 3) == 0.133 and round(after.prob("Dying"), 3) == 0.246
    assert after.prob("Hurt") > after.prob("Dying") and after.prob("Idle") > after.prob("Dying")


def test_no_confounding_between_action_and_reaction(scenes):
    cond = query(scenes, "reaction", {"action": "Attack"}).table
    do = query(scenes, "reaction", do={"action": "Attack"}).table
    np.testing.assert_allclose(cond, do, atol=1e-12)


def test_original_action_row_is_normalised(scenes):
    row = scenes.cpt("action")[0, 1, 0]  # strength Low, defense High, attack Low
    np.testing.assert_allclose(row, np.array([0.3, 0.4, 0.4]) / 1.1, rtol=0, atol=1e-15)


@pytest.mark.parametrize("treat,value", [("action", "Walk"), ("actor_attack", "High"), ("reactor_type", "type2")])
def test_intervention_leaves_non_descendants_unchanged(scenes, treat, value):
    before, after = marginals(scenes), marginals(scenes, do={treat: value})
    desc = scenes.descendants(treat)
    for n in scenes.names:
        if n == treat:
            assert after[n][scenes[n].index(value)] == pytest.approx(1.0, abs=1e-15)
        elif n not in desc:
            np.testing.assert_allclose(after[n], before[n], atol=1e-12)
    changed = [n for n in desc if not np.allclose(after[n], before[n], atol=1e-9)]
    assert changed, "an intervention with descendants should move at least one of them"


def test_null_intervention_returns_the_factual_world(scenes):
    evidence = {"actor": "Golem", "action": "Taunt", "reactor": "Satyr", "reaction": "Idle"}
    targets = [Term(n, (("action", "Taunt"),)) for n in ("reaction", "action")]
    d = query(scenes, targets, evidence)
    assert d.prob("Idle", "Taunt") == pytest.approx(1.0, abs=1e-12)
    # Hidden variables keep their posterior in the null world.
    h = query(scenes, [Term("reactor_attack", (("actor", "Golem"),))], evidence).table
    np.testing.assert_allclose(h, query(scenes, "reactor_attack", evidence).table, atol=1e-12)


def test_counterfactual_chain_closed_forms(chain):
    px, a, b, c, d = 0.3, 0.2, 0.7, 0.1, 0.6
    g = chain(px, a, b, c, d)
    # Y = 1 iff U_Y >= 1 - p(x): comonotone coupling. Given X=1, Y=1: U_Y >= 1-b.
    y0 = query(g, [Term("Y", (("X", "0"),))], {"X": "1", "Y": "1"})
    assert y0.prob("1") == pytest.approx(a / b, abs=1e-12)
    res = causation(g, "X", "1", "Y", "1")["0"]
    assert res.pns == pytest.approx(b - a, abs=1e-12)
    assert res.pn == pytest.approx((b - a) / b, abs=1e-12)
    assert res.ps == pytest.approx((b - a) / (1 - a), abs=1e-12)
    # Z[X=0] given X=1, Y=1, Z=1: Y[X=0]=1 w.p. a/b (then Z unchanged: 1), else Y=0 and
    # Z = 1 iff U_Z >= 1-c given U_Z >= 1-d (Z=1 under Y=1): c/d.
    z0 = query(g, [Term("Z", (("X", "0"),))], {"X": "1", "Y": "1", "Z": "1"})
    assert z0.prob("1") == pytest.approx(a / b + (1 - a / b) * c / d, abs=1e-12)


def test_counterfactuals_match_simulation_of_the_noise_convention(scenes):
    """Exact twin-network answers equal Monte Carlo over recorded U (400,000 units)."""
    n = 400_000
    s = sample(scenes, n, seed=7)
    cf = propagate(scenes, s.noise, do={"action": "Walk"})
    sel = (s.values["action"] == 0) & (s.values["reaction"] == 0)
    mc = np.bincount(cf["reaction"][sel], minlength=4) / sel.sum()
    exact = query(scenes, [Term("reaction", (("action", "Walk"),))], {"action": "Attack", "reaction": "Dying"}).table
    # Standard error of a proportion with ~sel.sum() samples is below 0.004 here.
    assert sel.sum() > 20_000
    np.testing.assert_allclose(mc, exact, atol=0.01)


def test_joint_across_worlds_is_consistent(scenes):
    w_walk, w_taunt = (("action", "Walk"),), (("action", "Taunt"),)
    joint = query(scenes, [Term("reaction", w_walk), Term("reaction", w_taunt)], {"action": "Attack"})
    np.testing.assert_allclose(joint.table.sum(axis=1), query(scenes, [Term("reaction", w_walk)], {"action": "Attack"}).table, atol=1e-12)
    # Interventional marginal: a potential outcome with no factual evidence is P(Y | do(x)).
    np.testing.assert_allclose(joint.table.sum(axis=0), query(scenes, "reaction", do={"action": "Taunt"}).table, atol=1e-12)


def test_twin_network_shares_non_descendants(scenes):
    net, nodes = twin_network(scenes, [{"action": "Walk"}])
    key = (("action", 2),)
    assert nodes[key]["reactor_attack"] == "reactor_attack"
    assert nodes[key]["reaction"] == "reaction[action=Walk]"
    assert "U_reaction" in net and "U_actor" not in net


def test_zero_probability_evidence_is_refused(scenes):
    with pytest.raises(ZeroProbabilityError, match="probability zero"):
        query(scenes, "reaction", {"action": "Walk"}, do={"action": "Attack"})


def test_unknown_names_suggest(scenes):
    with pytest.raises(CausalVAEError, match="did you mean 'action'"):
        query(scenes, "acton")
    with pytest.raises(CausalVAEError, match="did you mean 'Dying'"):
        query(scenes, "action", {"reaction": "dying"})


@pytest.mark.parametrize("force_chunked", [False, True])
def test_batched_posterior_matches_single_queries(scenes, force_chunked):
    ev = ["actor", "action", "reaction", "reactor"]
    rng = np.random.default_rng(3)
    s = sample(scenes, 300, seed=3)
    rows = np.stack([s.values[e] for e in ev], axis=1)
    rows[rng.random(rows.shape) < 0.3] = -1
    post = posterior(scenes, ["actor_attack", "reactor_defense"], ev, rows, max_table=1 if force_chunked else 2**23)
    assert post.shape == (300, 2, 2)
    for r in range(0, 300, 37):
        evidence = {e: int(v) for e, v in zip(ev, rows[r]) if v >= 0}
        want = query(scenes, ["actor_attack", "reactor_defense"], evidence).table
        np.testing.assert_allclose(post[r], want, atol=1e-12)


def test_batched_posterior_bad_rows(scenes):
    with pytest.raises(CausalVAEError, match="row 1: value index 5 is out of range for 'action'"):
        posterior(scenes, "actor_attack", ["action"], np.array([[0], [5]]))
    with pytest.raises(CausalVAEError, match=r"shape \(N, 1\)"):
        posterior(scenes, "actor_attack", ["action"], np.array([0, 1]))
    with pytest.raises(ZeroProbabilityError, match="row 0"):
        posterior(scenes, "reaction", ["action"], np.array([[0]]), do={"action": "Walk"})


def test_sampling_matches_exact_marginals(scenes):
    s = sample(scenes, 200_000, seed=11)
    exact = marginals(scenes)
    for n in scenes.names:
        freq = np.bincount(s.values[n], minlength=scenes.card(n)) / 200_000
        # 5 standard errors of a proportion at n = 2e5 is under 0.0056.
        np.testing.assert_allclose(freq, exact[n], atol=0.0056)


def test_sampling_is_deterministic_and_shares_noise_across_worlds(scenes):
    a, b = sample(scenes, 50, seed=5), sample(scenes, 50, seed=5)
    for n in scenes.names:
        np.testing.assert_array_equal(a.values[n], b.values[n])
    c = sample(scenes, 50, seed=5, do={"action": "Walk"})
    for n in scenes.names:
        np.testing.assert_array_equal(a.noise[n], c.noise[n])
        if n not in scenes.descendants("action") and n != "action":
            np.testing.assert_array_equal(a.values[n], c.values[n])
    assert (c.values["action"] == 2).all()


def test_networks_with_more_than_52_variables():
    """numpy's einsum knows 52 letters; a 60-variable chain still answers exactly."""
    vs = [Variable("v0", ["a", "b"], cpt=[0.5, 0.5])]
    vs += [Variable(f"v{i}", ["a", "b"], [f"v{i - 1}"], [[0.9, 0.1], [0.2, 0.8]]) for i in range(1, 60)]
    g = Graph(vs)
    # Two-state chain: P(v59 | v0) is the 59th power of the transition matrix.
    step = np.array([[0.9, 0.1], [0.2, 0.8]])
    want = np.linalg.matrix_power(step, 59)[1]
    np.testing.assert_allclose(query(g, "v59", {"v0": "b"}).table, want, atol=1e-12)
    np.testing.assert_allclose(query(g, [f"v{i}" for i in (3, 30, 59)]).table.sum(axis=(0, 1)), query(g, "v59").table, atol=1e-12)


def test_causation_of_a_non_descendant_is_zero(scenes):
    """The reaction does not cause the action: attacking is unchanged in every world."""
    for c in causation(scenes, "reaction", "Dying", "action", "Attack").values():
        assert c.pn == 0.0 and c.ps == 0.0 and c.pns == 0.0


def test_same_variable_in_two_names_of_one_world(scenes):
    d = query(scenes, [Term("reaction", (("action", "Walk"),)), "reaction"], do={"action": "Walk"})
    np.testing.assert_allclose(d.table, np.diag(query(scenes, "reaction", do={"action": "Walk"}).table), atol=1e-15)
