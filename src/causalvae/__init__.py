"""causalvae: causal generative models of images.

A causal graph over a scene's variables (:mod:`causalvae.graph`) answers conditional,
interventional and counterfactual questions exactly (:mod:`causalvae.exact`); queries are
written in a small language (:mod:`causalvae.querylang`).
"""

from causalvae.errors import CausalVAEError, GraphError, QuerySyntaxError, UnknownNameError
from causalvae.graph import Graph, ImageNode, Variable

from causalvae.version import __version__


def load(path, device="cpu"):
    """A trained causal VAE from its run directory (model.safetensors + config.json)."""
    from causalvae.store import load as _load

    return _load(path, device=device)


__all__ = ["__version__", "load", "CausalVAEError", "Graph", "GraphError", "ImageNode", "QuerySyntaxError", "UnknownNameError", "Variable"]
