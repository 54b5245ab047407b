"""The causal VAE as a Pyro program built from a world's graph.

Generative story (one image)::

    for V in topological order:  V ~ Categorical(CPT[V | parents])   observed V scored against its label
    z ~ Normal(0, I_d)                                               the image's exogenous code
    x ~ p(x | image's parents, z)                                    the decoder (nets.py)

Hidden variables, and observed ones whose label is missing in a row, are marginalised
exactly by parallel enumeration (``TraceEnum_ELBO``): the posterior over them is the model's
own, computed from the graph's tables, never a fixed "inverse table" made elsewhere. The
guide is the amortised encoder q(z | x, image's parents) with the reparameterisation trick;
it is also the abduction step of counterfactuals.

Networks may run in bf16; log-probabilities, enumeration and the ELBO stay in float32.

This module knows nothing of data files or the command line.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
from pyro import poutine
import torch
import torch.nn.functional as F
from pyro.infer import TraceEnum_ELBO
from pyro.ops.indexing import Vindex
from torch import nn

from causalvae.errors import CausalVAEError
from causalvae.graph import Graph
from causalvae.nets import NetConfig, make_nets, pixel_distribution, prepare


class CausalVAE(nn.Module):
    """Model and guide of the causal VAE for ``graph`` (which must have an image node).

    ``labels`` given to :meth:`model` and :meth:`guide` are int64 ``(B, K)`` value indices of
    ``self.label_columns`` (the graph's observed variables, in declared order), -1 = missing.
    Images are uint8 ``(B, C, H, W)``.
    """

    def __init__(self, graph: Graph, config: NetConfig):
        super().__init__()
        if graph.image is None:
            raise CausalVAEError(f"graph '{graph.name}' has no image node; the causal VAE needs one")
        self.graph = graph
        self.config = config
        self.label_columns = list(graph.observed)
        self.image_parents = list(graph.image.parents)
        dims = tuple(graph.card(p) for p in self.image_parents)
        if tuple(config.parent_dims) != dims:
            raise CausalVAEError(f"config.parent_dims {tuple(config.parent_dims)} do not match the image parents' cardinalities {dims}")
        self.encoder, self.decoder = make_nets(config)
        for i, name in enumerate(graph.names):
            self.register_buffer(f"cpt_{i}", torch.tensor(graph.cpt(name), dtype=torch.float32), persistent=False)
        self._cpt_index = {name: i for i, name in enumerate(graph.names)}

    def cpt(self, name: str) -> torch.Tensor:
        return getattr(self, f"cpt_{self._cpt_index[name]}")

    # ------------------------------------------------------------------ helpers

    def parents_onehot(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """Concatenated one-hot codes of the image's parents, broadcast to a common shape."""
        vals = torch.broadcast_tensors(*[values[p] for p in self.image_parents])
        return torch.cat([F.one_hot(v, self.graph.card(p)).float() for v, p in zip(vals, self.image_parents)], dim=-1)

    def _label_values(self, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {c: labels[:, j] for j, c in enumerate(self.label_columns)}

    def _check(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        c, s = self.config.channels, self.config.image_size
        if images.dim() != 4 or tuple(images.shape[1:]) != (c, s, s):
            raise CausalVAEError(f"images must have shape (B, {c}, {s}, {s}), got {tuple(images.shape)}")
        if labels.shape != (images.shape[0], len(self.label_columns)):
            raise CausalVAEError(f"labels must have shape ({images.shape[0]}, {len(self.label_columns)}), got {tuple(labels.shape)}")

    # ------------------------------------------------------------------ the Pyro program

    def model(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self._check(images, labels)
        pyro.module("causalvae", self)
        cols = self._label_values(labels)
        batch = images.shape[0]
        with pyro.plate("data", batch, dim=-1):
            values: dict[str, torch.Tensor] = {}
            for name in self.graph.topological_order:
                parents = self.graph.parents(name)
                probs = Vindex(self.cpt(name))[tuple(values[p] for p in parents)] if parents else self.cpt(name)
                d = dist.Categorical(probs=probs)
                if name in cols:
                    label = cols[name]
                    seen = label >= 0
                    if bool(seen.all()):
                        values[name] = pyro.sample(name, d, obs=label)
                    else:
                        # Labelled rows score the label; the others enumerate the value.
                        with poutine.mask(mask=seen):
                            observed = pyro.sample(name, d, obs=label.clamp(min=0))
                        with poutine.mask(mask=~seen):
                            guessed = pyro.sample(f"{name}_unobserved", d, infer={"enumerate": "parallel"})
                        values[name] = torch.where(seen, observed, guessed)
                else:
                    values[name] = pyro.sample(name, d, infer={"enumerate": "parallel"})
            prior = dist.Normal(images.new_zeros((), dtype=torch.float32), 1.0)
            z = pyro.sample("z", prior.expand([batch, self.config.z_dim]).to_event(1))
            onehot = self.parents_onehot(values)
            z = z.expand(onehot.shape[:-1] + z.shape[-1:])
            params = self.decoder(z, onehot)
            pyro.sample("x", pixel_distribution(params, self.config.likelihood), obs=images)

    def guide(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self._check(images, labels)
        pyro.module("causalvae", self)
        cols = self._label_values(labels)
        missing = [p for p in self.image_parents if bool((cols[p] < 0).any())]
        if missing:
            raise CausalVAEError(
                f"rows without a label for the image parent '{missing[0]}' need the semi-supervised "
                f"guide, which is not built yet"
            )
        with pyro.plate("data", images.shape[0], dim=-1):
            loc, scale = self.encode(images, cols)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def encode(self, images: torch.Tensor, values: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x, image's parents): the abduction of the latent code."""
        x = prepare(images, self.config.likelihood)
        return self.encoder(x, self.parents_onehot(values))

    # ------------------------------------------------------------------ objectives

    def elbo(self) -> TraceEnum_ELBO:
        return TraceEnum_ELBO(max_plate_nesting=1)

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Negative ELBO per image (nats): a bound on -log p(x, labels)."""
        if not torch.is_grad_enabled():
            return torch.tensor(self.elbo().loss(self.model, self.guide, images, labels) / images.shape[0])
        return self.elbo().differentiable_loss(self.model, self.guide, images, labels) / images.shape[0]

    def hidden_posterior(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The model's posterior marginals of every enumerated variable, per image.

        Returns ``{name: (B, card)}`` for hidden variables and for observed ones with a
        missing label in some row (rows where it is labelled give its label's point mass).
        """
        marginals = self.elbo().compute_marginals(self.model, self.guide, images, labels)
        out = {}
        cols = self._label_values(labels)
        for name in self.graph.names:
            key = name if name not in cols else f"{name}_unobserved"
            if key in marginals:
                probs = marginals[key].probs if hasattr(marginals[key], "probs") else marginals[key].logits.softmax(-1)
                probs = probs.reshape(-1, self.graph.card(name))
                if name in cols:
                    seen = cols[name] >= 0
                    probs = torch.where(seen[:, None], F.one_hot(cols[name].clamp(min=0), self.graph.card(name)).float(), probs)
                out[name] = probs
        return out
