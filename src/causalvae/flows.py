"""The graph's continuous mechanisms as Pyro distributions, fixed or learned as flows.

:mod:`causalvae.continuous` writes a continuous variable's mechanism as data (numpy); the
causal VAE (:mod:`causalvae.model`) needs the same mechanisms as torch distributions inside its
Pyro program, so that an observed continuous label adds its exact ``log p(y | parents)`` to
the ELBO. Every mechanism of the family is invertible in its noise, so that density is the
change of variables ``log N(U) + log |dU/dy|``, which a ``TransformedDistribution`` computes:

    linear   y = g(a + b.c + s U),  U ~ N(0, 1):   N(0, 1) -> affine(a + b.c, s) -> link g
    root     y = F^-1(U):                          the named distribution itself

The affine step is a **conditional affine flow** (:class:`ConditionalAffine`, a Pyro
``ConditionalTransformModule``): its location ``a + b.c`` and log-scale ``log s`` are
functions of the parents (a, b, s indexed by the configuration of the discrete parents, b
weighing the continuous ones). With ``learn=True`` they are parameters that the ELBO fits by
maximum likelihood (``--learn-cpts``), as the conditional flows of DeepSCM (Pawlowski et al.
2020) do; the learned mechanism stays in the family, so it is still invertible and
abduction stays exact (:meth:`ConditionalAffine.law` gives it back as data). Roots and the
softmax tables of discrete variables with continuous parents stay fixed by the graph.

    >>> import torch
    >>> from causalvae.graph import Graph
    >>> g = Graph.load("morpho")
    >>> m = ConditionalAffine(g["intensity"].law)
    >>> d = mechanism_distribution(g["intensity"].law, {"thickness": torch.tensor([2.5])}, m)
    >>> round(float(d.log_prob(torch.tensor([159.5]))), 4)   # the median, 64 + 191 * sigmoid(0)
    -4.0918
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pyro.distributions as dist
import torch
from pyro.distributions.conditional import ConditionalTransformModule
from pyro.distributions.transforms import AffineTransform, ExpTransform, SigmoidTransform, SoftplusTransform
from pyro.ops.indexing import Vindex
from torch import nn

from causalvae import continuous as C


def link_transforms(link: C.Link) -> list:
    """``g`` as torch transforms (applied after the affine step)."""
    if link.name == "identity":
        return []
    if link.name == "exp":
        return [ExpTransform()]
    if link.name == "softplus":
        return [SoftplusTransform()]
    return [SigmoidTransform(), AffineTransform(link.lo, link.hi - link.lo)]


class ConditionalAffine(ConditionalTransformModule):
    """``t = loc(parents) + scale(parents) * U`` of a linear mechanism: the noise's
    conditional affine transform, with ``loc = a + sum_j b_j c_j`` and ``scale = exp(log s)``,
    a, b and s indexed by the discrete parents' values.

    Fixed (buffers, not saved: the graph holds them) or, with ``learn``, parameters started at
    the graph's values and saved with the model's weights.
    """

    def __init__(self, law: C.Linear, learn: bool = False):
        super().__init__()
        self.discrete, self.continuous, self.link = law.discrete, law.continuous, law.link
        self.learn = learn
        tensors = {
            "intercept": torch.tensor(law.intercept, dtype=torch.float32),
            "weights": torch.tensor(law.weights, dtype=torch.float32),
            "log_scale": torch.log(torch.tensor(law.scale, dtype=torch.float32)),
        }
        for key, t in tensors.items():
            if learn:
                self.register_parameter(key, nn.Parameter(t))
            else:
                self.register_buffer(key, t, persistent=False)

    def loc_scale(self, values: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The argument's mean ``a + b.c`` and ``s`` for each unit (broadcast over its parents)."""
        idx = tuple(values[p] for p in self.discrete)
        a = Vindex(self.intercept)[idx] if idx else self.intercept
        log_s = Vindex(self.log_scale)[idx] if idx else self.log_scale
        w = Vindex(self.weights)[idx + (slice(None),)] if idx else self.weights
        loc = a
        for j, p in enumerate(self.continuous):
            loc = loc + w[..., j] * values[p].to(w.dtype)
        return torch.broadcast_tensors(loc, log_s.exp())

    def condition(self, context: Mapping[str, torch.Tensor]) -> AffineTransform:
        loc, scale = self.loc_scale(context)
        return AffineTransform(loc, scale)

    def law(self) -> C.Linear:
        """The current mechanism as data (float64), e.g. the learned one."""
        def arr(t):
            return t.detach().double().cpu().numpy()

        return C.Linear(self.link, self.discrete, self.continuous, arr(self.intercept), arr(self.weights), np.exp(arr(self.log_scale)))


def root_distribution(root: C.Root, like: torch.Tensor) -> dist.TorchDistribution:
    """A root's named distribution in torch (float32, on ``like``'s device)."""
    def t(key):
        return torch.tensor(root.p(key), dtype=torch.float32, device=like.device)

    f = root.family
    if f == "normal":
        return dist.Normal(t("mean"), t("sd"))
    if f == "gamma":
        return dist.TransformedDistribution(dist.Gamma(t("concentration"), t("rate")), [AffineTransform(t("shift"), 1.0)])
    if f == "uniform":
        return dist.Uniform(t("low"), t("high"))
    return dist.TransformedDistribution(dist.Beta(t("a"), t("b")), [AffineTransform(t("low"), t("high") - t("low"))])


def mechanism_distribution(law, values: Mapping[str, torch.Tensor], flow: ConditionalAffine | None = None) -> dist.TorchDistribution:
    """p(y | parents) of a continuous variable, for each unit: a root's distribution, or
    N(0, 1) through the conditional affine flow and the link (``flow``: the module holding a
    linear mechanism's parameters; ``law``'s fixed values when None)."""
    if isinstance(law, C.Root):
        like = next(iter(values.values()), torch.zeros(()))
        return root_distribution(law, like)
    flow = flow if flow is not None else ConditionalAffine(law)
    affine = flow.condition(values)
    base = dist.Normal(torch.zeros_like(affine.loc), torch.ones_like(affine.loc))
    return dist.TransformedDistribution(base, [affine, *link_transforms(law.link)])


class SoftmaxTable(nn.Module):
    """P(v | parents) of a discrete variable with continuous parents: the softmax of
    ``c_k + sum_j w_kj c_j`` (:class:`causalvae.continuous.Softmax`), fixed by the graph."""

    def __init__(self, law: C.Softmax):
        super().__init__()
        self.discrete, self.continuous = law.discrete, law.continuous
        self.register_buffer("intercept", torch.tensor(law.intercept, dtype=torch.float32), persistent=False)
        self.register_buffer("weights", torch.tensor(law.weights, dtype=torch.float32), persistent=False)

    def probs(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        idx = tuple(values[p] for p in self.discrete)
        logits = Vindex(self.intercept)[idx + (slice(None),)] if idx else self.intercept
        w = Vindex(self.weights)[idx + (slice(None), slice(None))] if idx else self.weights
        for j, p in enumerate(self.continuous):
            logits = logits + w[..., j] * values[p].to(w.dtype)[..., None]
        return logits.softmax(-1)


def standardise(x: torch.Tensor, stats: tuple[float, float]) -> torch.Tensor:
    """``(x - mean) / sd``: a continuous parent as the networks see it."""
    mean, sd = stats
    return (x.to(torch.float32) - mean) / sd


def column_stats(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of a column (NaN ignored; sd 1 when it is constant or
    empty): the standardisation of a continuous parent."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (0.0, 1.0)
    sd = float(v.std())
    return (float(v.mean()), sd if sd > 0 and math.isfinite(sd) else 1.0)
