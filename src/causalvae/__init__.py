"""causalvae: causal generative models of images.

A causal graph over a scene's variables (:mod:`causalvae.graph`) answers conditional,
interventional and counterfactual questions exactly (:mod:`causalvae.exact`); queries are
written in a small language (:mod:`causalvae.querylang`).
"""

from causalvae.errors import CausalVAEError, GraphError, QuerySyntaxError, UnknownNameError
from causalvae.graph import Graph, ImageNode, Variable

__version__ = "0.1.0"

__all__ = ["CausalVAEError", "Graph", "GraphError", "ImageNode", "QuerySyntaxError", "UnknownNameError", "Variable"]
