"""Exact answers against brute force on random small graphs.

Brute force enumerates every joint combination of noise cells (the exact discretisation of
all U's), computes every world by running the mechanisms forward, and sums probabilities:
no elimination, no twin network, no plan. Random graphs have zero entries in their tables,
so impossible evidence is exercised too.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from causalvae.errors import ZeroProbabilityError
from causalvae.exact import Term, causation, posterior, query
from causalvae.graph import Graph, Variable
from causalvae.noise import cdf, noise_cells, value_from_noise


def random_graph(rng: np.random.Generator, n: int) -> Graph:
    cards = [int(rng.integers(2, 4)) for _ in range(n)]
    variables = []
    for i in range(n):
        k = min(i, int(rng.integers(0, 3)))
        parents = sorted(rng.choice(i, size=k, replace=False).tolist()) if k else []
        rows = math.prod(cards[p] for p in parents)
        table = rng.dirichlet(np.ones(cards[i]), size=rows)
        table[rng.random(table.shape) < 0.25] = 0.0
        for r in range(rows):
            if table[r].sum() == 0:
                table[r, rng.integers(cards[i])] = 1.0
        table /= table.sum(axis=1, keepdims=True)
        variables.append(Variable(f"V{i}", [f"v{j}" for j in range(cards[i])], [f"V{p}" for p in parents], table.reshape(*(cards[p] for p in parents), cards[i])))
    return Graph(variables, name="random")


class Brute:
    """Every unit of the population: one combination of noise cells, with its weight."""

    def __init__(self, g: Graph):
        self.g = g
        cells = {n: noise_cells(g.cpt(n)) for n in g.names}
        lefts = {}
        for n in g.names:
            c = cdf(g.cpt(n))
            points = np.unique(np.concatenate([[0.0], c.ravel()]))
            lefts[n] = points[points < 1.0]
            assert len(lefts[n]) == len(cells[n][0])
        grids = np.meshgrid(*[np.arange(len(cells[n][0])) for n in g.names], indexing="ij")
        self.cell = {n: grid.ravel() for n, grid in zip(g.names, grids)}
        self.weight = np.prod([cells[n][0][self.cell[n]] for n in g.names], axis=0)
        self.u = {n: lefts[n][self.cell[n]] for n in g.names}

    def world(self, do: dict) -> dict[str, np.ndarray]:
        vals: dict[str, np.ndarray] = {}
        for n in self.g.topological_order:
            var = self.g[n]
            if n in do:
                vals[n] = np.full(len(self.weight), var.index(do[n]))
                continue
            c = cdf(var.cpt)
            rows = c[tuple(vals[p] for p in var.parents)] if var.parents else np.broadcast_to(c, (len(self.weight), var.card))
            vals[n] = value_from_noise(rows, self.u[n])
        return vals

    def answer(self, targets, evidence, do):
        mask = np.ones(len(self.weight), bool)
        for (var, world), value in evidence:
            mask &= self.world({**do, **world})[var] == self.g[var].index(value)
        total = self.weight[mask].sum()
        if total <= 0:
            return None
        out = np.zeros([self.g.card(v) for v, _ in targets])
        np.add.at(out, tuple(self.world({**do, **w})[v][mask] for v, w in targets), self.weight[mask])
        return out / total


def term(var, world):
    return Term(var, tuple(world.items()))


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    g = random_graph(rng, int(rng.integers(3, 6)))
    brute = Brute(g)
    names = list(g.names)

    def pick_world():
        if rng.random() < 0.5:
            return {}
        v = names[int(rng.integers(len(names)))]
        return {v: g[v].values[int(rng.integers(g.card(v)))]}

    for _ in range(6):
        do = pick_world() if rng.random() < 0.3 else {}
        targets = [(names[int(rng.integers(len(names)))], pick_world()) for _ in range(int(rng.integers(1, 3)))]
        evidence = []
        for _ in range(int(rng.integers(0, 3))):
            v = names[int(rng.integers(len(names)))]
            evidence.append(((v, pick_world()), g[v].values[int(rng.integers(g.card(v)))]))
        labels = [term(v, w).label for v, w in targets]
        if len(set(labels)) < len(labels):
            continue
        want = brute.answer(targets, evidence, do)
        ev = [(term(v, w), value) for (v, w), value in evidence]
        if want is None:
            with pytest.raises(ZeroProbabilityError):
                query(g, [term(v, w) for v, w in targets], ev, do)
            continue
        got = query(g, [term(v, w) for v, w in targets], ev, do).table
        np.testing.assert_allclose(got, want, atol=1e-9, err_msg=f"{labels} | {evidence} do {do}")

    x, y = rng.choice(len(names), size=2, replace=False)
    X, Y = names[x], names[y]
    xv, xpv = rng.choice(g.card(X), size=2, replace=False)
    yv = int(rng.integers(g.card(Y)))
    res = causation(g, X, int(xv), Y, yv, contrast=int(xpv))[g[X].values[xpv]]
    wx, wxp = {X: g[X].values[xv]}, {X: g[X].values[xpv]}
    joint = brute.answer([(X, {}), (Y, {}), (Y, wx), (Y, wxp)], [], {})
    pns = joint[:, :, yv, :].sum() - joint[:, :, yv, yv].sum()
    assert res.pns == pytest.approx(pns, abs=1e-9)
    den = joint[xv, yv].sum()
    if den > 0:
        assert res.pn == pytest.approx((den - joint[xv, yv, :, yv].sum()) / den, abs=1e-9)
    else:
        assert math.isnan(res.pn)


@pytest.mark.parametrize("seed", range(10))
def test_random_batched_posteriors_against_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    g = random_graph(rng, 5)
    brute = Brute(g)
    target, *ev_vars = rng.choice(list(g.names), size=3, replace=False).tolist()
    rows = np.array(list(itertools.product(*[range(-1, g.card(v)) for v in ev_vars])))
    possible = []
    for row in rows:
        ev = [((v, {}), g[v].values[i]) for v, i in zip(ev_vars, row) if i >= 0]
        possible.append(brute.answer([(target, {})], ev, {}))
    keep = [i for i, p in enumerate(possible) if p is not None]
    for max_table in (2**23, 1):
        got = posterior(g, [target], ev_vars, rows[keep], max_table=max_table)
        np.testing.assert_allclose(got, np.stack([possible[i] for i in keep]), atol=1e-9)
