"""Continuous variables: the graph format, validation, sampling and the noise convention."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from causalvae import continuous as C
from causalvae.errors import CausalVAEError, GraphError
from causalvae.graph import Graph, ImageNode, Variable


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_morpho_is_the_deepscm_scm_exactly():
    g = Graph.load("morpho")
    assert g.topological_order == ("digit", "thickness", "intensity")
    assert g.continuous == ("thickness", "intensity") and g.mixed
    assert g.image.parents == ("digit", "thickness", "intensity")
    np.testing.assert_array_equal(g.cpt("digit"), np.full(10, 0.1))
    s = C.sample(g, 1000, seed=3)
    u_t, u_i = s.noise["thickness"], s.noise["intensity"]
    # thickness = 0.5 + Gamma(concentration 10, rate 5) through its inverse CDF
    np.testing.assert_allclose(s.values["thickness"], 0.5 + stats.gamma(10, scale=1 / 5).ppf(u_t), rtol=1e-12)
    # intensity = 64 + 191 * sigmoid(2 * (thickness - 2.5) + 0.5 * U), U ~ N(0, 1)
    t = s.values["thickness"]
    np.testing.assert_allclose(s.values["intensity"], 64 + 191 * sigmoid(2 * (t - 2.5) + 0.5 * u_i), rtol=1e-12)


def test_sampled_moments_match_the_distributions():
    g = Graph.load("morpho")
    n = 100_000
    s = C.sample(g, n, seed=0)
    t, u = s.values["thickness"], s.noise["intensity"]
    assert abs(t.mean() - 2.5) < 4 * np.sqrt(0.4 / n)  # mean 0.5 + 10/5, variance 10/25
    assert abs(t.var() - 0.4) < 0.01
    assert abs(u.mean()) < 4 / np.sqrt(n) and abs(u.std() - 1) < 0.01
    # digits stay uniform and the same seed gives the same units
    counts = np.bincount(s.values["digit"], minlength=10) / n
    assert np.abs(counts - 0.1).max() < 0.005
    again = C.sample(g, n, seed=0)
    np.testing.assert_array_equal(again.values["intensity"], s.values["intensity"])


def test_yaml_round_trip_and_python_api():
    g = Graph.load("morpho")
    back = Graph.from_yaml("back", text=g.to_yaml())
    assert back.to_yaml() == g.to_yaml()
    api = Graph(
        [
            Variable("digit", [str(i) for i in range(10)], cpt=[0.1] * 10),
            C.Continuous("thickness", distribution={"family": "gamma", "concentration": 10, "rate": 5, "shift": 0.5}),
            C.Continuous("intensity", ["thickness"], mechanism={
                "link": "sigmoid", "lo": 64, "hi": 255, "intercept": -5, "weights": {"thickness": 2}, "scale": 0.5}),
        ],
        image=ImageNode(["digit", "thickness", "intensity"]),
        name="morpho",
    )
    for seed in (0, 1):
        a, b = C.sample(api, 50, seed=seed), C.sample(g, 50, seed=seed)
        np.testing.assert_array_equal(a.values["intensity"], b.values["intensity"])


MIXED = """
name: mixed
variables:
  - name: group
    values: [a, b]
    cpt: [0.3, 0.7]
  - name: dose
    type: continuous
    distribution: {family: uniform, low: 0, high: 2}
  - name: response
    type: continuous
    parents: [group, dose]
    mechanism:
      link: identity
      intercept: {a: 1.0, b: -1.0}
      weights: {dose: {a: 2.0, b: 0.5}}
      scale: {a: 0.1, b: 0.3}
  - name: outcome
    values: [low, high]
    parents: [group, response]
    softmax:
      intercept: {a: [0, -1], b: [0, 1]}
      weights: {response: [0, 1.5]}
"""


def test_conditional_linear_gaussian_and_softmax_children():
    g = Graph.from_yaml("mixed", text=MIXED)
    assert g.continuous == ("dose", "response")
    s = C.sample(g, 200_000, seed=1)
    grp, dose, resp, out = (s.values[k] for k in ("group", "dose", "response", "outcome"))
    for k, (a, b, sd) in enumerate([(1.0, 2.0, 0.1), (-1.0, 0.5, 0.3)]):
        resid = resp[grp == k] - (a + b * dose[grp == k])
        assert abs(resid.mean()) < 0.01 and abs(resid.std() - sd) < 0.01
    # P(outcome=high | group, response) = sigmoid(c_high - c_low + 1.5 * response)
    p_high = sigmoid(np.where(grp == 0, -1.0, 1.0) + 1.5 * resp)
    assert abs(out.mean() - p_high.mean()) < 4 * np.sqrt(0.25 / len(out))
    np.testing.assert_allclose(C.probs_of(g["outcome"], s.values)[:, 1], p_high, rtol=1e-12)
    assert Graph.from_yaml("again", text=g.to_yaml()).to_yaml() == g.to_yaml()


def test_abduction_is_exact_and_counterfactuals_deterministic():
    g = Graph.load("morpho")
    s = C.sample(g, 500, seed=7)
    u = C.abduct(g, s.values)
    np.testing.assert_allclose(u["intensity"], s.noise["intensity"], atol=1e-9)
    np.testing.assert_allclose(u["thickness"], s.noise["thickness"], rtol=1e-9)
    # intensity had the thickness been 3: the shared U of each unit, by hand
    cf = C.propagate(g, {**s.noise, **u}, do={"thickness": 3.0})
    t, i = s.values["thickness"], s.values["intensity"]
    by_hand = 64 + 191 * sigmoid(special.logit((i - 64) / 191) + 2 * (3.0 - t))
    np.testing.assert_allclose(cf["intensity"], by_hand, rtol=1e-9)
    np.testing.assert_array_equal(cf["digit"], s.values["digit"])  # non-descendants untouched
    np.testing.assert_array_equal(cf["thickness"], 3.0)


@pytest.mark.parametrize(
    "mechanism, message",
    [
        ("{link: identity, intercept: 0, weights: {x: 1}, scale: -1}", "scales must be positive"),
        ("{link: identity, intercept: .nan, weights: {x: 1}, scale: 1}", "non-finite"),
        ("{link: sigmoid, lo: 5, hi: 5, weights: {x: 1}, scale: 1}", "lo < hi"),
        ("{link: logit, weights: {x: 1}, scale: 1}", "unknown link 'logit'"),
        ("{link: identity, weights: {}, scale: 1}", "no entry for the continuous parent 'x'"),
        ("{link: identity, weights: {x: 1, z: 2}, scale: 1}", "unknown continuous parent 'z'"),
        ("{link: identity, weights: {x: 1}}", "has no 'scale'"),
        ("{link: exp, lo: 0, weights: {x: 1}, scale: 1}", "'lo' belongs to the sigmoid"),
        ("{link: identity, weights: {x: 1}, scale: 1, colour: red}", "unknown key 'colour'"),
    ],
)
def test_bad_mechanisms_get_one_clear_error(mechanism, message):
    text = f"""
variables:
  - {{name: x, type: continuous, distribution: {{family: normal, mean: 0, sd: 1}}}}
  - {{name: y, type: continuous, parents: [x], mechanism: {mechanism}}}
"""
    with pytest.raises(GraphError, match=message):
        Graph.from_yaml("bad", text=text)


@pytest.mark.parametrize(
    "dist, message",
    [
        ("{family: gamma, concentration: 10, rate: 0}", "'rate' must be positive"),
        ("{family: normal, mean: 0, sd: .inf}", "finite number"),
        ("{family: uniform, low: 1, high: 0}", "low < high"),
        ("{family: beta, a: 2}", "has no 'b'"),
        ("{family: cauchy}", "unknown distribution family 'cauchy'"),
    ],
)
def test_bad_root_distributions(dist, message):
    with pytest.raises(GraphError, match=message):
        Graph.from_yaml("bad", text=f"variables:\n  - {{name: x, type: continuous, distribution: {dist}}}\n")


def test_structural_refusals():
    root = "  - {name: x, type: continuous, distribution: {family: normal, mean: 0, sd: 1}}\n"
    with pytest.raises(GraphError, match="give it a 'softmax'"):
        Graph.from_yaml("b", text="variables:\n" + root + "  - {name: d, values: [a, b], parents: [x], cpt: [0.5, 0.5]}\n")
    with pytest.raises(GraphError, match="a 'distribution' is for roots"):
        Graph.from_yaml("b", text="variables:\n" + root + "  - {name: y, type: continuous, parents: [x], distribution: {family: normal, mean: 0, sd: 1}}\n")
    with pytest.raises(GraphError, match="'type' must be discrete or continuous"):
        Graph.from_yaml("b", text="variables:\n  - {name: y, type: real, distribution: {family: normal, mean: 0, sd: 1}}\n")
    with pytest.raises(GraphError, match="BIF holds discrete variables only"):
        Graph.load("morpho").to_bif()
    with pytest.raises(C.ContinuousError, match="'thickness' is continuous"):
        Graph.load("morpho").card("thickness")


def test_supports_fit_the_link():
    g = Graph.load("morpho")
    with pytest.raises(CausalVAEError, match="outside the support of 'intensity'"):
        C.abduct(g, {"digit": np.array([0]), "thickness": np.array([2.0]), "intensity": np.array([300.0])})
    with pytest.raises(CausalVAEError, match="outside its support"):
        C.sample(g, 2, seed=0, do={"thickness": 0.1})  # below the gamma's shift of 0.5
    for name, (lo, hi) in [("thickness", (0.5, np.inf)), ("intensity", (64.0, 255.0))]:
        assert g[name].support == (lo, hi)


def test_link_inverses_and_densities():
    x = np.linspace(-3, 3, 13)
    for link in (C.Link("identity"), C.Link("exp"), C.Link("softplus"), C.Link("sigmoid", -2.0, 5.0)):
        y = link(x)
        np.testing.assert_allclose(link.inverse(y), x, atol=1e-9)
        h = 1e-6  # log |d g^-1 / dy| against a finite difference
        fd = (link.inverse(y + h) - link.inverse(y - h)) / (2 * h)
        np.testing.assert_allclose(link.log_dinverse(y), np.log(fd), rtol=1e-5, atol=1e-6)
    for root, ref in [
        (C._root("r", {"family": "gamma", "concentration": 10, "rate": 5, "shift": 0.5}), stats.gamma(10, loc=0.5, scale=0.2)),
        (C._root("r", {"family": "beta", "a": 2, "b": 3, "low": 1, "high": 3}), stats.beta(2, 3, loc=1, scale=2)),
        (C._root("r", {"family": "normal", "mean": 1, "sd": 2}), stats.norm(1, 2)),
        (C._root("r", {"family": "uniform", "low": -1, "high": 3}), stats.uniform(-1, 4)),
    ]:
        u = np.array([0.01, 0.3, 0.5, 0.9])
        np.testing.assert_allclose(root.ppf(u), ref.ppf(u), rtol=1e-10)
        np.testing.assert_allclose(root.cdf(ref.ppf(u)), u, rtol=1e-10)
        np.testing.assert_allclose(root.logpdf(ref.ppf(u)), ref.logpdf(ref.ppf(u)), rtol=1e-10)
        assert root.mean() == pytest.approx(ref.mean())


def test_noise_module_follows_the_continuous_convention_on_mixed_graphs():
    from causalvae import noise

    g = Graph.load("morpho")
    a = noise.sample(g, 20, seed=5)
    b = C.sample(g, 20, seed=5)
    np.testing.assert_array_equal(a.values["intensity"], b.values["intensity"])


def test_graph_format_continuous_examples_run():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "graph-format.md").read_text()
    section = text[text.index("## Continuous variables"):]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    morpho = Graph.from_yaml("doc", text=blocks[0])
    strip = [{k: v for k, v in d.items() if k != "description"} for d in Graph.load("morpho").to_dict()["variables"]]
    assert morpho.to_dict()["variables"] == strip  # the doc shows the built-in graph
    a, b = C.sample(morpho, 20, seed=1), C.sample(Graph.load("morpho"), 20, seed=1)
    np.testing.assert_array_equal(a.values["intensity"], b.values["intensity"])
    assert Graph.from_yaml("doc", text=blocks[1]).continuous == ("dose", "response")
    for block in re.findall(r"```python\n(.*?)```", section, re.S):
        scope: dict = {}
        exec(compile(block, "graph-format.md", "exec"), scope)
    np.testing.assert_allclose(scope["u"]["intensity"], scope["units"].noise["intensity"], atol=1e-9)
    t, i = scope["units"].values["thickness"], scope["units"].values["intensity"]
    np.testing.assert_allclose(scope["world"]["intensity"], 64 + 191 * sigmoid(special.logit((i - 64) / 191) + 2 * (3 - t)), rtol=1e-9)


def test_graph_show_and_draw_describe_continuous_variables(tmp_path):
    from typer.testing import CliRunner

    from causalvae.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["graph", "show", "morpho"])
    assert r.exit_code == 0 and "continuous (0.5, inf)" in r.output and "continuous (64, 255)" in r.output
    r = runner.invoke(app, ["graph", "draw", "morpho", "--out", str(tmp_path / "dag.svg")])
    assert r.exit_code == 0, r.output
    assert "continuous (64, 255)" in (tmp_path / "dag.svg").read_text()
    r = runner.invoke(app, ["graph", "convert", "morpho", "--out", str(tmp_path / "m.bif")])
    assert r.exit_code == 2 and "BIF holds discrete variables only" in r.output
