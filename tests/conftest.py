"""Shared fixtures: the built-in graphs, pgmpy's bnlearn networks, small hand-made graphs."""

from __future__ import annotations

import warnings
from importlib import resources
from pathlib import Path

import pytest

from causalvae.graph import Graph, Variable


def bnlearn_path(name: str) -> Path:
    """A BIF network shipped inside pgmpy (bnlearn repository copies)."""
    return Path(str(resources.files("pgmpy") / "utils" / "example_models" / f"{name}.bif.gz"))


def pgmpy_model(graph: Graph):
    """The same network as a pgmpy DiscreteBayesianNetwork (built from our tables)."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    model = DiscreteBayesianNetwork()
    model.add_nodes_from(graph.names)
    model.add_edges_from([(p, n) for n in graph.names for p in graph.parents(n)])
    cpds = []
    for n in graph.names:
        v = graph[n]
        pc = [graph.card(p) for p in v.parents]
        values = v.cpt.reshape(-1, v.card).T
        state_names = {n: list(v.values), **{p: list(graph[p].values) for p in v.parents}}
        cpds.append(TabularCPD(n, v.card, values, evidence=list(v.parents) or None, evidence_card=pc or None, state_names=state_names))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.add_cpds(*cpds)
        model.check_model()
    return model


@pytest.fixture(scope="session")
def scenes() -> Graph:
    return Graph.load("scenes")


@pytest.fixture
def chain():
    """X -> Y -> Z, binary, values ordered (0, 1)."""

    def make(px=0.3, a=0.2, b=0.7, c=0.1, d=0.6):
        return Graph([
            Variable("X", ["0", "1"], cpt=[1 - px, px]),
            Variable("Y", ["0", "1"], ["X"], cpt=[[1 - a, a], [1 - b, b]]),
            Variable("Z", ["0", "1"], ["Y"], cpt=[[1 - c, c], [1 - d, d]]),
        ], name="chain")

    return make
