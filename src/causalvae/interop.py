"""Bridges to other tools: the same network as a pgmpy model (discrete, or linear-Gaussian).

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


def to_pgmpy_linear_gaussian(graph: Graph):
    """A linear-Gaussian graph (continuous variables only, identity links, normal roots) as a
    pgmpy ``LinearGaussianBayesianNetwork`` with the same coefficients: ``x = a + b . parents
    + s U`` becomes ``LinearGaussianCPD(x, [a, *b], s, parents)``."""
    from causalvae import continuous as C

    try:
        from pgmpy.factors.continuous import LinearGaussianCPD
        from pgmpy.models import LinearGaussianBayesianNetwork
    except ImportError:
        raise CausalVAEError("pgmpy is not installed: pip install pgmpy") from None
    cpds = []
    for n in graph.names:
        v = graph[n]
        law = v.law if C.is_continuous(v) else None
        if isinstance(law, C.Root) and law.family == "normal":
            cpds.append(LinearGaussianCPD(n, [law.p("mean")], law.p("sd")))
        elif isinstance(law, C.Linear) and law.link.name == "identity" and not law.discrete:
            beta = [float(law.intercept), *(float(w) for w in law.weights)]
            cpds.append(LinearGaussianCPD(n, beta, float(law.scale), list(law.continuous)))
        else:
            raise CausalVAEError(f"'{n}' is not linear-Gaussian (a continuous variable with an identity link, or a normal root)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LinearGaussianBayesianNetwork()
        model.add_nodes_from(graph.names)
        model.add_edges_from([(p, n) for n in graph.names for p in graph.parents(n)])
        model.add_cpds(*cpds)
        model.check_model()
    return model
