"""Bridges to other tools: the same network as a pgmpy model.

pgmpy is optional (the test extra installs it): ``to_pgmpy`` imports it when called.

    >>> from causalvae.graph import Graph          # doctest: +SKIP
    >>> model = to_pgmpy(Graph.load("survey"))     # doctest: +SKIP
"""

from __future__ import annotations

import warnings

from causalvae.errors import CausalVAEError
from causalvae.graph import Graph


def to_pgmpy(graph: Graph):
    """The same network as a pgmpy ``DiscreteBayesianNetwork``: same variables, value names
    and numbers, so both libraries answer the same question (the image node is left out)."""
    try:
        from pgmpy.factors.discrete import TabularCPD
        from pgmpy.models import DiscreteBayesianNetwork
    except ImportError:
        raise CausalVAEError("pgmpy is not installed: pip install pgmpy") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = DiscreteBayesianNetwork()
        model.add_nodes_from(graph.names)
        model.add_edges_from([(p, n) for n in graph.names for p in graph.parents(n)])
        cpds = []
        for n in graph.names:
            v = graph[n]
            cards = [graph.card(p) for p in v.parents]
            state_names = {n: list(v.values), **{p: list(graph[p].values) for p in v.parents}}
            # pgmpy's layout: one row per value of the variable, one column per parent row.
            values = v.cpt.reshape(-1, v.card).T
            cpds.append(TabularCPD(n, v.card, values, evidence=list(v.parents) or None, evidence_card=cards or None, state_names=state_names))
        model.add_cpds(*cpds)
        model.check_model()
    return model
