"""Interop: a linear-Gaussian graph answers as pgmpy's LinearGaussianBayesianNetwork does."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from causalvae.continuous import Continuous
from causalvae.graph import Graph
from causalvae.interop import to_pgmpy_linear_gaussian
from causalvae.mixed import evaluate

pd = pytest.importorskip("pandas")
pytest.importorskip("pgmpy")


def random_linear_gaussian(seed: int, n: int = 6) -> Graph:
    r = np.random.default_rng(seed)
    names = [f"v{i}" for i in range(n)]
    variables = []
    for i, name in enumerate(names):
        parents = [names[j] for j in range(i) if r.random() < 0.5]
        if not parents:
            variables.append(Continuous(name, distribution={"family": "normal", "mean": float(r.normal()), "sd": float(r.uniform(0.5, 2))}))
        else:
            variables.append(Continuous(name, parents, mechanism={
                "intercept": float(r.normal()), "weights": {p: float(r.normal()) for p in parents}, "scale": float(r.uniform(0.3, 1.5))}))
    return Graph(variables, name=f"lg{seed}")


@pytest.mark.parametrize("seed", range(4))
def test_conditional_laws_agree_with_pgmpy(seed):
    """pgmpy rounds its joint Gaussian to 8 decimals, hence the tolerance of 1e-6."""
    g = random_linear_gaussian(seed)
    model = to_pgmpy_linear_gaussian(g)
    evidence = {"v5": 1.7, "v2": -0.4}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        missing, mu_cond, cov_cond = model.predict_probability(pd.DataFrame({k: [v] for k, v in evidence.items()}))
    text = ", ".join(f"{k}={v}" for k, v in evidence.items())
    assert sorted(missing) == ["v0", "v1", "v3", "v4"]
    for i, target in enumerate(missing):
        mu, sd = float(mu_cond[0, i]), math.sqrt(cov_cond[i, i])  # one evidence row
        ours = evaluate(g, f"E({target} | {text})")
        assert ours.method == "closed form (linear-Gaussian)"
        assert ours.value == pytest.approx(mu, rel=1e-6, abs=1e-6)
        assert evaluate(g, f"P({target} > 0.3 | {text})").value == pytest.approx(stats.norm(mu, sd).sf(0.3), rel=1e-6, abs=1e-6)
        assert evaluate(g, f"Q({target}, 0.2 | {text})").value == pytest.approx(stats.norm(mu, sd).ppf(0.2), rel=1e-6, abs=1e-6)


def test_non_gaussian_graphs_are_refused():
    from causalvae.errors import CausalVAEError

    with pytest.raises(CausalVAEError, match="'thickness' is not linear-Gaussian"):
        to_pgmpy_linear_gaussian(Graph([Graph.load("morpho")["thickness"]]))
