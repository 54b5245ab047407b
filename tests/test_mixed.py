"""Queries on mixed graphs: closed forms by hand, quadrature against scipy, sampling against
brute-force Monte Carlo of the SCM itself."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import integrate, special, stats
from typer.testing import CliRunner

from causalvae import continuous as C
from causalvae.cli import app
from causalvae.errors import CausalVAEError, QuerySyntaxError, ZeroProbabilityError
from causalvae.graph import Graph
from causalvae.mixed import evaluate, parse, summarize
from causalvae.querylang import ProbabilityQuery
from causalvae.querylang import evaluate as evaluate_any
from causalvae.querylang import parse as parse_any

CHAIN = """
name: chain
variables:
  - {name: x, type: continuous, distribution: {family: normal, mean: 1, sd: 2}}
  - name: y
    type: continuous
    parents: [x]
    mechanism: {link: identity, intercept: 0.5, weights: {x: 1.5}, scale: 1}
  - name: z
    type: continuous
    parents: [y]
    mechanism: {link: identity, intercept: -1, weights: {y: 2}, scale: 0.5}
"""

CLOSED = "closed form (linear-Gaussian)"


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.fixture(scope="module")
def chain():
    return Graph.from_yaml("chain", text=CHAIN)


@pytest.fixture(scope="module")
def morpho():
    return Graph.load("morpho")


def chain_joint():
    """Mean and covariance of (x, y, z) of the chain, written out by hand."""
    vx = 4.0
    vy = 1.5**2 * vx + 1
    vz = 4 * vy + 0.25
    cxy, cyz = 1.5 * vx, 2 * vy
    cxz = 2 * cxy
    mean = np.array([1.0, 0.5 + 1.5, -1 + 2 * 2.0])
    cov = np.array([[vx, cxy, cxz], [cxy, vy, cyz], [cxz, cyz, vz]])
    return mean, cov


def condition(mean, cov, i, j, value):
    """Mean and sd of component i given component j = value."""
    m = mean[i] + cov[i, j] / cov[j, j] * (value - mean[j])
    return m, math.sqrt(cov[i, i] - cov[i, j] ** 2 / cov[j, j])


def test_linear_gaussian_conditioning_is_the_closed_form(chain):
    mean, cov = chain_joint()
    mx, sx = condition(mean, cov, 0, 2, 3.0)
    my, sy = condition(mean, cov, 1, 2, 3.0)
    a = evaluate(chain, "E(x | z=3)")
    assert a.method == CLOSED and a.error == 0
    assert a.value == pytest.approx(mx, rel=1e-12)
    assert evaluate(chain, "P(y > 2 | z=3)").value == pytest.approx(stats.norm(my, sy).sf(2), rel=1e-12)
    assert evaluate(chain, "P(y <= 2 | z=3)").value == pytest.approx(stats.norm(my, sy).cdf(2), rel=1e-12)
    assert evaluate(chain, "Q(y, 0.9 | z=3)").value == pytest.approx(stats.norm(my, sy).ppf(0.9), rel=1e-12)
    assert evaluate(chain, "p(y=1 | z=3)").value == pytest.approx(stats.norm(my, sy).pdf(1), rel=1e-12)
    # two pieces of evidence: the middle of the chain screens x off from z
    assert evaluate(chain, "E(x | y=2, z=-7)").value == pytest.approx(condition(mean, cov, 0, 1, 2.0)[0], rel=1e-12)


def test_linear_gaussian_do_and_counterfactuals(chain):
    assert evaluate(chain, "E(z | do(y=2))").value == pytest.approx(3.0)
    assert evaluate(chain, "P(z > 3.5 | do(y=2))").value == pytest.approx(stats.norm.sf(1.0), rel=1e-12)
    assert evaluate(chain, "E(x | do(y=2))").value == pytest.approx(1.0)  # x is not a descendant
    # Abduct U_z = (5 - (-1 + 2 * 3)) / 0.5 = 0, so z[y=2] = -1 + 4 = 3, deterministically.
    a = evaluate(chain, "E(z[y=2] | x=1, y=3, z=5)")
    assert a.method == CLOSED and a.value == pytest.approx(3.0, abs=1e-12)
    assert evaluate(chain, "P(z[y=2] > 2.9 | x=1, y=3, z=5)").value == 1.0
    # z = 3x + 2 U_y + 0.5 U_z: seeing x=1, z=5 fixes 2 U_y + 0.5 U_z = 2, so z[x=2] = 8 exactly,
    # while y[x=2] = 3.5 + U_y with U_y | (2 U_y + 0.5 U_z = 2) ~ N(4 / 4.25, 1 - 4 / 4.25).
    assert evaluate(chain, "E(z[x=2] | x=1, z=5)").value == pytest.approx(8.0, abs=1e-12)
    b = evaluate(chain, "Q(y[x=2], 0.25 | x=1, z=5)")
    assert b.value == pytest.approx(3.5 + 4 / 4.25 + math.sqrt(1 - 4 / 4.25) * stats.norm.ppf(0.25), rel=1e-12)
    with pytest.raises(ZeroProbabilityError):
        evaluate(chain, "E(x | do(y=2), y=3)")


def test_a_number_with_a_negative_exponent_is_one_number(morpho):
    """``25e-1`` is 2.5 and ``-1.5e-3`` is -0.0015 (they used to split into '25e' and '-1')."""
    from causalvae.querylang import tokenize

    assert [t.text for t in tokenize("P(x > -1.5e-3 | y=3-4)", numeric=True)][3:9] == [">", "-1.5e-3", "|", "y", "=", "3"]
    assert evaluate(morpho, "E(intensity | do(thickness=25e-1))").value == evaluate(morpho, "E(intensity | do(thickness=2.5))").value
    assert evaluate(morpho, "P(intensity > 2e-3)").value == evaluate(morpho, "P(intensity > 0.002)").value


def test_morpho_interventional_and_counterfactual_answers_by_hand(morpho):
    # do(thickness=3): intensity = 64 + 191 sigmoid(1 + 0.5 U)
    c = special.logit((200 - 64) / 191)
    a = evaluate(morpho, "P(intensity > 200 | do(thickness=3))")
    assert a.method == CLOSED and a.value == pytest.approx(stats.norm.sf((c - 1) / 0.5), rel=1e-12)
    assert evaluate(morpho, "P(intensity > 200 | thickness=3)").value == pytest.approx(a.value, rel=1e-12)
    q = evaluate(morpho, "Q(intensity, 0.9 | do(thickness=3))").value
    assert q == pytest.approx(64 + 191 * sigmoid(1 + 0.5 * stats.norm.ppf(0.9)), rel=1e-12)
    t = special.logit((180 - 64) / 191)
    dens = stats.norm.pdf((t - 1) / 0.5) / 0.5 / (180 - 64) / (1 - (180 - 64) / 191)
    assert evaluate(morpho, "p(intensity=180 | do(thickness=3))").value == pytest.approx(dens, rel=1e-10)
    mean, _ = integrate.quad(lambda u: (64 + 191 * sigmoid(1 + 0.5 * u)) * stats.norm.pdf(u), -12, 12, epsabs=1e-12)
    e = evaluate(morpho, "E(intensity | do(thickness=3))")
    assert e.value == pytest.approx(mean, rel=1e-12) and e.error < 1e-9
    # thickness 2 gave intensity 150; had it been 3: the same U, so logit shifts by 2 * (3 - 2)
    cf = evaluate(morpho, "E(intensity[thickness=3] | thickness=2, intensity=150)")
    assert cf.method == CLOSED and cf.error == 0
    assert cf.value == pytest.approx(64 + 191 * sigmoid(special.logit(86 / 191) + 2), rel=1e-12)
    assert evaluate(morpho, "E(thickness | do(intensity=200))").value == pytest.approx(2.5, rel=1e-12)


def thickness_posterior(i_obs):
    """p(t | intensity=i_obs) up to a constant, and its normaliser, by scipy."""
    prior = stats.gamma(10, loc=0.5, scale=0.2)
    t_of = special.logit((i_obs - 64) / 191)

    def joint(t):
        return prior.pdf(t) * stats.norm.pdf((t_of - 2 * (t - 2.5)) / 0.5)

    z, _ = integrate.quad(joint, 0.5, 10, points=[2.5, 3], limit=200, epsabs=1e-14)
    return joint, z


def test_morpho_conditioning_by_quadrature_matches_scipy(morpho):
    joint, z = thickness_posterior(200)
    mean = integrate.quad(lambda t: t * joint(t), 0.5, 10, points=[2.5, 3], limit=200, epsabs=1e-14)[0] / z
    above = integrate.quad(joint, 3, 10, limit=200, epsabs=1e-14)[0] / z
    a = evaluate(morpho, "E(thickness | intensity=200)")
    assert a.method.startswith("quadrature (1-D Gauss-Hermite")
    assert a.value == pytest.approx(mean, abs=1e-8) and a.error < 1e-8
    b = evaluate(morpho, "P(thickness > 3 | intensity=200)")
    assert b.value == pytest.approx(above, abs=1e-8) and b.error < 1e-8
    assert evaluate(morpho, "p(thickness=2 | intensity=200)").value == pytest.approx(joint(2.0) / z, rel=1e-7)
    med = evaluate(morpho, "Q(thickness, 0.5 | intensity=200)").value
    assert integrate.quad(joint, 0.5, med, limit=200, epsabs=1e-14)[0] / z == pytest.approx(0.5, abs=1e-8)
    # a counterfactual whose thickness is unseen: averaged over its posterior
    l150 = special.logit(86 / 191)
    joint150, z150 = thickness_posterior(150)
    cf = integrate.quad(lambda t: (64 + 191 * sigmoid(l150 + 2 * (3 - t))) * joint150(t), 0.5, 10, limit=200, epsabs=1e-12)[0] / z150
    c = evaluate(morpho, "E(intensity[thickness=3] | intensity=150)")
    assert c.value == pytest.approx(cf, abs=1e-7)


def test_importance_sampling_states_its_error_and_is_reproducible(morpho):
    l150 = special.logit(86 / 191)
    joint, z = thickness_posterior(150)
    # intensity[thickness=3] > 200  <=>  l150 + 2 (3 - t) > logit(136/191)  <=>  t < t*
    t_star = 3 + (l150 - special.logit(136 / 191)) / 2
    truth = integrate.quad(joint, 0.5, t_star, limit=200, epsabs=1e-14)[0] / z
    a = evaluate(morpho, "P(intensity[thickness=3] > 200 | intensity=150)", samples=50_000, seed=1)
    assert a.method == "importance sampling (50000 samples, seed 1)" and a.error_kind == "standard error"
    assert 0.001 < a.error < 0.01
    assert abs(a.value - truth) < 4 * a.error
    again = evaluate(morpho, "P(intensity[thickness=3] > 200 | intensity=150)", samples=50_000, seed=1)
    assert again.value == a.value
    other = evaluate(morpho, "P(intensity[thickness=3] > 200 | intensity=150)", samples=50_000, seed=2)
    assert other.value != a.value and abs(other.value - truth) < 4 * other.error


def test_discrete_parts_of_mixed_graphs_use_the_exact_engine(morpho):
    a = evaluate(morpho, "P(digit=3)")
    assert a.method == "exact (discrete engine)" and a.details["probability"] == pytest.approx(0.1)
    b = evaluate_any(morpho, "P(digit | intensity=150)")  # independent: still 0.1 each
    assert all(e.value == pytest.approx(0.1, abs=1e-12) for e in b.estimates)


RANDOM = """
variables:
  - {{name: a, values: [a0, a1, a2], cpt: {pa}}}
  - {{name: x, type: continuous, distribution: {dist}}}
  - name: y
    type: continuous
    parents: [a, x]
    mechanism: {{link: {link}, {bounds} intercept: {{a0: {i0}, a1: {i1}, a2: {i2}}}, weights: {{x: {{a0: {w0}, a1: {w1}, a2: {w2}}}}}, scale: {{a0: {s0}, a1: {s1}, a2: {s2}}}}}
  - name: b
    values: [no, yes]
    parents: [a, y]
    softmax: {{intercept: {{a0: [0, {c0}], a1: [0, {c1}], a2: [0, {c2}]}}, weights: {{y: [0, {v}]}}}}
  - name: w
    type: continuous
    parents: [b, y]
    mechanism: {{link: identity, intercept: {{no: {d0}, yes: {d1}}}, weights: {{y: {e}}}, scale: 0.7}}
"""


def random_graph(seed: int) -> Graph:
    r = np.random.default_rng(seed)
    dists = [
        "{family: normal, mean: 0.5, sd: 1.2}",
        "{family: gamma, concentration: 3, rate: 2, shift: -1}",
        "{family: uniform, low: -1, high: 2}",
        "{family: beta, a: 2, b: 5, low: -1, high: 3}",
    ]
    link = ["identity", "exp", "softplus", "sigmoid"][seed % 4]
    pa = r.dirichlet(np.ones(3) * 2)
    pa = np.round(pa / pa.sum(), 6)
    pa[-1] = 1 - pa[:-1].sum()
    text = RANDOM.format(
        pa=[float(v) for v in pa], dist=dists[(seed // 4) % 4], link=link,
        bounds="lo: -2, hi: 3," if link == "sigmoid" else "",
        **{f"i{k}": round(float(r.normal(0, 0.5)), 3) for k in range(3)},
        **{f"w{k}": round(float(r.normal(0, 0.7)), 3) for k in range(3)},
        **{f"s{k}": round(float(r.uniform(0.2, 0.8)), 3) for k in range(3)},
        **{f"c{k}": round(float(r.normal(0, 1)), 3) for k in range(3)},
        v=round(float(r.normal(0, 1)), 3), d0=round(float(r.normal()), 3), d1=round(float(r.normal()), 3),
        e=round(float(r.normal()), 3),
    )
    return Graph.from_yaml(f"random{seed}", text=text)


def brute(values: np.ndarray, keep: np.ndarray) -> tuple[float, float]:
    v = values[keep].astype(np.float64)
    return float(v.mean()), float(v.std() / math.sqrt(len(v)))


@pytest.mark.parametrize("seed", range(8))
def test_random_mixed_graphs_match_brute_force_monte_carlo(seed):
    g = random_graph(seed)
    n = 200_000
    s = C.sample(g, n, seed=100 + seed)
    a, b, y, w = (s.values[k] for k in ("a", "b", "y", "w"))
    med = float(np.median(y))
    cases = [
        (f"E(w | b=yes)", w, b == 1),
        (f"P(y > {med:.4f} | a=a1)", (y > float(f"{med:.4f}")), a == 1),
        (f"P(b=yes | a=a2)", b == 1, a == 2),
        (f"E(y | b=no, a=a0)", y, (b == 0) & (a == 0)),
    ]
    # under do(x=0.4), from the same units' noise
    sd = C.propagate(g, s.noise, do={"x": 0.4})
    cases.append(("E(w | do(x=0.4))", sd["w"], np.ones(n, bool)))
    # counterfactual: w had a been a1, for units that had a=a0 and b=yes (true potential outcomes)
    cf = C.propagate(g, s.noise, do={"a": "a1"})
    cases.append(("E(w[a=a1] | a=a0, b=yes)", cf["w"], (a == 0) & (b == 1)))
    cases.append(("E(w[a=a1])", cf["w"], np.ones(n, bool)))  # a world whose b is only a copy
    for text, values, keep in cases:
        ans = evaluate(g, text, samples=60_000, seed=seed)
        got = ans.details.get("probability", ans.value if len(ans.estimates) == 1 else None)
        se = ans.error if len(ans.estimates) == 1 else max(e.error for e in ans.estimates)
        want, mc_se = brute(values, keep)
        assert abs(got - want) < 4.5 * math.hypot(se, mc_se) + 1e-9, (text, ans.method, got, want, se, mc_se)


def test_parser_for_continuous_queries(morpho):
    q = parse("Q(intensity, 0.9 | thickness=2.5, do(digit=3))", morpho)
    assert q.measure == "Q" and q.level == 0.9 and q.evidence[0][1] == 2.5 and q.do == (("digit", "3"),)
    assert parse("P(intensity >= -1e3 | thickness=2)", morpho).threshold == -1000.0
    assert isinstance(parse_any("P(digit | thickness=2.5)", morpho), ProbabilityQuery)
    for text, message in [
        ("P(intensity | thickness=2)", "'intensity' is continuous"),
        ("E(digit)", "'digit' is discrete"),
        ("P(digit > 3)", "'digit' is discrete"),
        ("Q(intensity, 1.5)", "level must be in \\(0, 1\\)"),
        ("E(intensity | thickness=thick)", "must be a finite number"),
        ("p(intensity | thickness=2)", "expected '='"),
    ]:
        with pytest.raises(QuerySyntaxError, match=message):
            parse(text, morpho)
    with pytest.raises(ZeroProbabilityError, match="outside the support"):
        evaluate(morpho, "E(thickness | intensity=300)")


def test_a_continuous_targets_whole_distribution_is_summed_up(morpho):
    q = parse("P(intensity[thickness=3] | thickness=2, do(digit=3))", morpho, whole=True)
    assert q.measure == "P" and q.op is None and q.target.world == (("thickness", 3.0),) and q.do == (("digit", "3"),)
    with pytest.raises(QuerySyntaxError, match="expected '\\)' to close P"):
        parse("P(intensity | thickness=2", morpho, whole=True)
    thickness = stats.gamma(10, loc=0.5, scale=1 / 5)
    s = summarize(morpho, "P(thickness | do(intensity=200))", levels=(0.1, 0.5))
    assert s.mean.value == pytest.approx(2.5, abs=1e-12) and s.mean.error_kind == "exact"
    assert s.levels == (0.1, 0.5) and [a.value for a in s.quantiles] == pytest.approx(thickness.ppf([0.1, 0.5]), abs=1e-8)
    seen = summarize(morpho, "P(thickness | intensity=200)")  # conditioning on the effect moves the cause
    assert seen.mean.value == pytest.approx(evaluate(morpho, "E(thickness | intensity=200)").value)
    assert seen.mean.value > 2.8 and [a.query.level for a in seen.quantiles] == [0.05, 0.25, 0.5, 0.75, 0.95]
    assert all(a.error < 1e-6 for a in seen.quantiles) and np.all(np.diff([a.value for a in seen.quantiles]) > 0)
    with pytest.raises(CausalVAEError, match="summarize answers P\\(y"):
        summarize(morpho, "E(thickness)")


def test_cli_prints_method_and_error_and_json_carries_them():
    runner = CliRunner()
    r = runner.invoke(app, ["query", "-g", "morpho", "P(intensity > 200 | do(thickness=3))"])
    assert r.exit_code == 0, r.output
    assert "probability: 0.575093" in r.output and "method: closed form (linear-Gaussian)" in r.output
    args = ["query", "-g", "morpho", "E(intensity[thickness=3] | intensity=150, digit=2)", "--json"]
    r = runner.invoke(app, args)
    data = json.loads(r.output)
    assert data["graph"] == "morpho" and data["method"].startswith("quadrature") and data["error"] < 1e-7
    args = ["query", "-g", "morpho", "P(intensity[thickness=3] > 200 | intensity=150)", "--json", "--samples", "5000", "--seed", "4"]
    first, second = (json.loads(runner.invoke(app, args).output) for _ in range(2))
    assert first == second and first["error_kind"] == "standard error" and first["samples"] == 5000


def test_a_roots_own_distribution_is_a_closed_form(morpho):
    prior = stats.gamma(10, loc=0.5, scale=0.2)
    for text, want in [
        ("E(thickness | do(intensity=200))", 2.5),
        ("Q(thickness, 0.3 | digit=3)", prior.ppf(0.3)),
        ("p(thickness=2)", prior.pdf(2)),
        ("P(thickness < 2)", prior.cdf(2)),
    ]:
        a = evaluate(morpho, text)
        assert a.method == "closed form (root distribution)" and a.value == pytest.approx(want, rel=1e-12), text


NONLINEAR = """
variables:
  - {name: x, type: continuous, distribution: {family: beta, a: 2, b: 3, low: -1, high: 2}}
  - name: y
    type: continuous
    parents: [x]
    mechanism: {link: softplus, intercept: 0.2, weights: {x: 1.3}, scale: 0.6}
  - name: z
    type: continuous
    parents: [y]
    mechanism: {link: sigmoid, lo: -1, hi: 4, intercept: -1, weights: {y: 1.1}, scale: 0.4}
"""


def test_two_dimensional_quadrature_agrees_with_importance_sampling():
    from causalvae import mixed

    g = Graph.from_yaml("nonlinear", text=NONLINEAR)
    for text in ("E(x | z=2.5)", "P(y > 1 | z=2.5)", "E(z[x=0.5] | z=2.5)"):
        quad = evaluate(g, text)
        assert quad.method.startswith("quadrature (2-D Gauss-Hermite") and quad.error < 1e-6, (text, quad.method)
        q = parse(text, g)
        p = mixed._problem(g, q.target, q.evidence, dict(q.do))
        values, se, ess = mixed._by_sampling(p, q, mixed._plan(p), 100_000, 11)
        assert ess > 5_000 and abs(values[0] - quad.value) < 4 * se[0], (text, values[0], quad.value, se[0])


def test_the_cli_sums_up_a_continuous_targets_whole_distribution(tmp_path):
    """`causalvae query "P(thickness | ...)"` answers with the mean and quantiles (the same
    numbers as :func:`summarize`), in JSON too, and --plot draws the density with the mean."""
    runner = CliRunner()
    res = runner.invoke(app, ["query", "P(thickness | do(intensity=200))", "--graph", "morpho", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["statistic"]: r for r in json.loads(res.stdout)["summary"]}
    thickness = stats.gamma(10, loc=0.5, scale=1 / 5)  # intervening on the ink leaves its cause alone
    assert rows["mean"]["value"] == pytest.approx(2.5, abs=1e-12) and rows["mean"]["error_kind"] == "exact"
    assert rows["quantile 0.95"]["value"] == pytest.approx(thickness.ppf(0.95), abs=1e-8)
    res = runner.invoke(app, ["query", "P(thickness | intensity=200)", "--graph", "morpho", "--plot", str(tmp_path / "t.png")])
    assert res.exit_code == 0, res.output
    seen = summarize(Graph.load("morpho"), "P(thickness | intensity=200)")
    assert f"{seen.mean.estimates[0].value:.6g}" in res.output and "quantile 0.5" in res.output
    assert (tmp_path / "t.png").stat().st_size > 5000
