"""The causal VAE as a Pyro program built from a world's graph.

Generative story (one image)::

    for V in topological order:  V ~ Categorical(CPT[V | parents])   observed V scored against its label
    z ~ Normal(0, I_d)                                               the image's exogenous code
    x ~ p(x | image's parents, z)                                    the decoder (nets.py)

Hidden variables, and observed ones whose label is missing in a row, are marginalised
exactly by parallel enumeration (``TraceEnum_ELBO``): the posterior over them is the model's
own, computed from the graph's tables, never a fixed "inverse table" made elsewhere.

The guide is the amortised encoder q(z | x, image's parents) with the reparameterisation
trick; it is also the abduction step of counterfactuals. A parent of the image without a
label (hidden from every row, or missing in some) cannot be enumerated in the model alone,
because the decoder needs it; the guide then infers it with an amortised classifier
q(y | x) and enumerates it, as in the semi-supervised VAE (Kingma et al. 2014, "M2"; Pyro's
SS-VAE): the ELBO of an unlabelled row is

    E_q(y|x) [ E_q(z|x,y) log p(x | y, z) + log p(y | ...) - log q(y | x) ] - KL(q(z|x,y) || p(z)),

and labelled rows add ``alpha * log q(y_label | x)`` to the training objective so that the
classifier learns from the labels too. Rows whose image parents are all labelled never
enumerate them: :meth:`CausalVAE.objective` splits a batch into the two kinds, so only the
unlabelled rows pay the enumeration (one decoder pass per joint value of their unlabelled
image parents).

CPTs are buffers fixed by the graph, or, for ``learn_cpts``, parameters (softmax of logits,
structural zeros kept) for tables whose whole family (the variable and its parents) is
labelled: the ELBO's label term is then the exact log-likelihood of the labels, so gradient
ascent finds their maximum-likelihood tables, using rows with missing labels too. Tables that
involve a hidden variable cannot be identified from the data and stay as specified.

Networks may run in bf16; log-probabilities, enumeration and the ELBO stay in float32.
This module knows nothing of data files or the command line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import TraceEnum_ELBO
from pyro.ops.indexing import Vindex
from torch import nn

from causalvae import continuous as C
from causalvae.errors import CausalVAEError, unknown
from causalvae.flows import ConditionalAffine, SoftmaxTable, mechanism_distribution, standardise
from causalvae.graph import Graph
from causalvae.nets import Classifier, NetConfig, make_nets, pixel_distribution, prepare


def learnable_tables(graph: Graph) -> list[str]:
    """Variables whose family (the variable and all its parents) is labelled and whose law
    can be learned from a dataset: discrete tables, and continuous linear mechanisms (as
    conditional affine flows, :mod:`causalvae.flows`). Families with a hidden variable cannot
    be learned; roots' named distributions and softmax tables stay as specified."""
    def learnable(n):
        var = graph[n]
        if C.is_continuous(var):
            return isinstance(var.law, C.Linear)
        return not C.is_softmax(var)

    return [n for n in graph.names if graph[n].observed and all(graph[p].observed for p in graph.parents(n)) and learnable(n)]


def check_mixed(graph: Graph) -> None:
    """Refuse what the causal VAE cannot do with continuous variables: a hidden continuous
    variable cannot be enumerated (and a hidden continuous parent of the image would need an
    amortised regression the model does not have), so every continuous variable must be
    labelled."""
    for name in graph.continuous:
        if graph[name].observed:
            continue
        if graph.image is not None and name in graph.image.parents:
            raise CausalVAEError(
                f"the image's parent '{name}' is continuous and hidden: the causal VAE cannot infer a hidden "
                f"continuous parent of the image (label it, or make it discrete)"
            )
        raise CausalVAEError(
            f"'{name}' is continuous and hidden: the causal VAE needs every continuous variable labelled "
            f"(a hidden one cannot be summed out exactly)"
        )


def default_classified(graph: Graph) -> list[str]:
    """Image parents that need a classifier whatever the data: the hidden ones."""
    return [p for p in graph.image.parents if not graph[p].observed] if graph.image else []


@dataclass
class Objective:
    """One evaluation of the objective on a batch.

    ``loss`` is the differentiable training loss per image (negative ELBO of the images and
    their labels, plus the classification term). The others are detached per-image floats in
    nats: ``elbo`` bounds log p(x | labels) (the joint bound minus the exact log p(labels)),
    ``recon`` = E_q log p(x | parents, z), and ``kl`` = recon - elbo, the KL of the guide
    (z, and the classified parents) from the model's prior given the labels.
    """

    loss: torch.Tensor
    elbo: float
    recon: float
    kl: float
    classify: float
    n: int
    #: The guide's mean of q(z | x, parents) for every row, part of ``loss``'s graph (not
    #: detached): set when every row's image parents are labelled (one guide run, nothing
    #: enumerated), else None. The counterfactual term reuses it as its abduction instead of
    #: encoding the pictures again (:func:`causalvae.train.counterfactual_term`).
    z_loc: torch.Tensor | None = None


class CausalVAE(nn.Module):
    """Model and guide of the causal VAE for ``graph`` (which must have an image node).

    ``labels`` given to :meth:`model` and :meth:`guide` are int64 ``(B, K)`` value indices of
    ``self.label_columns`` (the graph's observed discrete variables, in declared order), -1 =
    missing. On a graph with continuous variables, ``continuous`` is float ``(B, Kc)``, the
    values of ``self.continuous_columns`` (the observed continuous variables), none missing:
    the layout of a dataset's ``labels.npy`` and ``labels_continuous.npy``. Images are uint8
    ``(B, C, H, W)``.

    A continuous parent of the image enters the encoder and decoder as one standardised
    number (``config.parent_stats``), beside the discrete parents' one-hot codes; its label
    is scored by its mechanism's exact density (:mod:`causalvae.flows`).

    ``learn_cpts``: True for every :func:`learnable_tables`, or a list of names.
    ``classified``: image parents given a classifier q(y | x) (default: the hidden ones; add
    observed parents whose label is missing in some rows). ``alpha`` weighs the
    classification term on labelled rows (per image, in nats).
    """

    def __init__(
        self,
        graph: Graph,
        config: NetConfig,
        *,
        learn_cpts: bool | Sequence[str] = False,
        classified: Sequence[str] | None = None,
        alpha: float = 50.0,
        beta: float = 1.0,
    ):
        super().__init__()
        if graph.image is None:
            raise CausalVAEError(f"graph '{graph.name}' has no image node; the causal VAE needs one")
        self.graph = graph
        self.config = config
        self.alpha = float(alpha)
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 < beta < 1e3:
            raise CausalVAEError(f"beta must be a positive number, got {beta!r}")
        #: Weight of z's KL term in the training loss (a beta-VAE, Higgins et al. 2017); the
        #: ELBO reported beside the loss is always the true one (beta = 1).
        self.beta = float(beta)
        check_mixed(graph)
        self.continuous_columns = [c for c in graph.observed if c in graph.continuous]
        self.label_columns = [c for c in graph.observed if c not in graph.continuous]
        self.image_parents = list(graph.image.parents)
        cont = [p in graph.continuous for p in self.image_parents]
        dims = tuple(1 if c else graph.card(p) for p, c in zip(self.image_parents, cont))
        if tuple(config.parent_dims) != dims:
            raise CausalVAEError(f"config.parent_dims {tuple(config.parent_dims)} do not match the image parents' cardinalities {dims} (a continuous parent counts 1)")
        stats = config.parent_stats or (None,) * len(dims)
        if [s is not None for s in stats] != cont:
            raise CausalVAEError(
                f"config.parent_stats must give (mean, sd) for exactly the continuous image parents "
                f"({', '.join(p for p, c in zip(self.image_parents, cont) if c) or 'none'})"
            )
        #: (mean, sd) of each continuous image parent: its standardisation for the networks.
        self.parent_stats = {p: s for p, s in zip(self.image_parents, stats) if s is not None}
        #: The discrete image parents that enter the networks as one number each, their value's
        #: index scaled to [-1, 1] (``NetConfig.ordinal``), instead of their one-hot code.
        self.ordinal = [self.image_parents[i] for i in config.ordinal]
        self.encoder, self.decoder = make_nets(config)
        #: Context for the networks' forward passes, e.g. bf16 autocast; the distributions,
        #: enumeration and ELBO always run in float32 outside it.
        self.autocast: Callable[[], AbstractContextManager] = nullcontext

        can_learn = learnable_tables(graph)
        learned = can_learn if learn_cpts is True else list(learn_cpts or [])
        for name in learned:
            if name not in can_learn:
                graph[name]
                raise CausalVAEError(
                    f"the table of '{name}' cannot be learned: its family includes a hidden variable"
                    f" ({', '.join(p for p in (name, *graph.parents(name)) if not graph[p].observed)})"
                )
        self.learned = [n for n in graph.names if n in learned]
        self._cpt_index = {name: i for i, name in enumerate(graph.names)}
        #: The torch mechanisms of continuous variables (conditional affine flows of linear
        #: ones; learned ones are parameters) and the softmax tables of discrete variables with
        #: continuous parents. Roots need no module (:func:`causalvae.flows.root_distribution`).
        self.mechanisms = nn.ModuleDict()
        for i, name in enumerate(graph.names):
            var = graph[name]
            if C.is_continuous(var):
                if isinstance(var.law, C.Linear):
                    self.mechanisms[name] = ConditionalAffine(var.law, learn=name in self.learned)
                continue
            if C.is_softmax(var):
                self.mechanisms[name] = SoftmaxTable(var.cpt)
                continue
            table = torch.tensor(graph.cpt(name), dtype=torch.float32)
            if name in self.learned:
                # Structural zeros of the specification stay zero (their logit is masked).
                self.register_buffer(f"cpt_zero_{i}", table == 0, persistent=False)
                self.register_parameter(f"cpt_logit_{i}", nn.Parameter(torch.log(table.clamp(min=1e-30))))
            else:
                self.register_buffer(f"cpt_{i}", table, persistent=False)

        classified = default_classified(graph) if classified is None else list(classified)
        for name in classified:
            if name not in self.image_parents:
                raise unknown("image parent", name, self.image_parents, where="to classify")
            if name in graph.continuous:
                raise CausalVAEError(f"the image parent '{name}' is continuous: only discrete parents can be classified (every continuous label must be given)")
        for name in default_classified(graph):
            if name not in classified:
                raise CausalVAEError(f"the hidden image parent '{name}' needs a classifier")
        self.classified = [p for p in self.image_parents if p in classified]
        self.classifiers = nn.ModuleList(Classifier(config, graph.card(p)) for p in self.classified)

    # ------------------------------------------------------------------ tables

    def cpt(self, name: str) -> torch.Tensor:
        """The current table of ``name``, shape (*parent cards, card), float32."""
        i = self._cpt_index[name]
        if name in self.learned:
            logits = getattr(self, f"cpt_logit_{i}").masked_fill(getattr(self, f"cpt_zero_{i}"), float("-inf"))
            return logits.softmax(-1)
        return getattr(self, f"cpt_{i}")

    def current_graph(self) -> Graph:
        """The graph with the learned tables (and learned continuous mechanisms) in place of
        the specified ones."""
        if not self.learned:
            return self.graph
        tables = [n for n in self.learned if n not in self.graph.continuous]
        graph = self.graph.with_cpts({n: self.cpt(n).detach().double().cpu().numpy() for n in tables}) if tables else self.graph
        flows = [n for n in self.learned if n in self.graph.continuous]
        if not flows:
            return graph
        new = []
        for n in graph.names:
            v = graph[n]
            if n in flows:
                v = C.Continuous(n, v.parents, self.mechanisms[n].law(), None, v.observed, v.description)
            new.append(v)
        return Graph(new, graph.image, graph.name, graph.description)

    # ------------------------------------------------------------------ helpers

    def parents_onehot(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """The image's parents as the networks see them, broadcast to a common shape and
        concatenated: a discrete parent's one-hot code, a continuous one's standardised value,
        an ordinal one's index ``v`` of ``K`` values as ``(2v - (K - 1)) / (K - 1)``."""
        vals = torch.broadcast_tensors(*[values[p] for p in self.image_parents])
        parts = []
        for v, p in zip(vals, self.image_parents):
            if p in self.parent_stats:
                parts.append(standardise(v, self.parent_stats[p])[..., None])
            elif p in self.ordinal:
                half = (self.graph.card(p) - 1) / 2
                parts.append(((v.to(torch.float32) - half) / half)[..., None])
            else:
                parts.append(F.one_hot(v, self.graph.card(p)).float())
        return torch.cat(parts, dim=-1)

    def _label_values(self, labels: torch.Tensor, continuous: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        cols = {c: labels[:, j] for j, c in enumerate(self.label_columns)}
        if self.continuous_columns:
            cols.update({c: continuous[:, j].to(torch.float32) for j, c in enumerate(self.continuous_columns)})
        return cols

    def check_batch(self, images: torch.Tensor, labels: torch.Tensor, continuous: torch.Tensor | None = None) -> None:
        """Refuse images that are not (B, C, S, S) for this model, or labels not (B, columns)."""
        c, s = self.config.channels, self.config.image_size
        if images.dim() != 4 or tuple(images.shape[1:]) != (c, s, s):
            raise CausalVAEError(f"images must have shape (B, {c}, {s}, {s}), got {tuple(images.shape)}")
        if labels.shape != (images.shape[0], len(self.label_columns)):
            raise CausalVAEError(f"labels must have shape ({images.shape[0]}, {len(self.label_columns)}), got {tuple(labels.shape)}")
        if not self.continuous_columns:
            if continuous is not None and continuous.numel():
                raise CausalVAEError("continuous labels were given, but the model's graph has no continuous variable")
            return
        kc = len(self.continuous_columns)
        if continuous is None:
            raise CausalVAEError(f"the model needs the continuous labels ({', '.join(self.continuous_columns)}) beside the discrete ones")
        if continuous.shape != (images.shape[0], kc):
            raise CausalVAEError(f"continuous labels must have shape ({images.shape[0]}, {kc}), got {tuple(continuous.shape)}")
        bad = ~torch.isfinite(continuous)
        if bool(bad.any()):
            r, j = (int(i) for i in bad.nonzero()[0])
            raise CausalVAEError(
                f"the continuous label '{self.continuous_columns[j]}' is missing in row {r}: the causal VAE needs every "
                f"continuous label (a missing continuous value cannot be summed out exactly)"
            )

    def _unlabelled_parents(self, cols: dict[str, torch.Tensor]) -> list[str]:
        """Image parents that the guide must infer for this batch (some row lacks a label)."""
        out = []
        for p in self.image_parents:
            if p in self.parent_stats:
                continue  # continuous: always labelled (checked)
            if p not in cols or bool((cols[p] < 0).any()):
                if p not in self.classified:
                    raise CausalVAEError(
                        f"rows without a label for the image parent '{p}' need its classifier: "
                        f"build the model with classified=[..., '{p}']"
                    )
                out.append(p)
        return out

    def classify(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """q(y | x) of every classified image parent: ``{name: (B, card) probabilities}``."""
        x = prepare(images, self.config.likelihood)
        return {p: net(x).softmax(-1) for p, net in zip(self.classified, self.classifiers)}

    # ------------------------------------------------------------------ the Pyro program

    def _graph_values(self, cols: dict[str, torch.Tensor], inferred: Sequence[str]) -> dict[str, torch.Tensor]:
        """Sample every graph variable in topological order (inside the data plate).

        Fully labelled columns are observed; partly labelled ones are split into a masked
        observed site and an ``{name}_unobserved`` site that is a point mass on the label
        where there is one (so labelled rows add exactly log 1); ``inferred`` image parents
        take their ``_unobserved``/hidden value from the guide, the rest are enumerated.
        """
        values: dict[str, torch.Tensor] = {}
        for name in self.graph.topological_order:
            parents = self.graph.parents(name)
            var = self.graph[name]
            if C.is_continuous(var):
                # A labelled continuous variable (check_mixed): its exact log p(y | parents).
                values[name] = pyro.sample(name, mechanism_distribution(var.law, values, self.mechanisms[name] if name in self.mechanisms else None), obs=cols[name])
                continue
            if C.is_softmax(var):
                probs = self.mechanisms[name].probs(values)
            else:
                probs = Vindex(self.cpt(name))[tuple(values[p] for p in parents)] if parents else self.cpt(name)
            d = dist.Categorical(probs=probs)
            enum = {} if name in inferred else {"enumerate": "parallel"}
            if name not in cols:
                values[name] = pyro.sample(name, d, infer=enum)
                continue
            label = cols[name]
            seen = label >= 0
            if bool(seen.all()):
                values[name] = pyro.sample(name, d, obs=label)
                continue
            with poutine.mask(mask=seen):
                pyro.sample(name, d, obs=label.clamp(min=0))
            point = F.one_hot(label.clamp(min=0), self.graph.card(name)).to(probs.dtype)
            rest = torch.where(seen[:, None], point, probs)
            values[name] = pyro.sample(f"{name}_unobserved", dist.Categorical(probs=rest), infer=enum)
        return values

    def model(self, images: torch.Tensor, labels: torch.Tensor, continuous: torch.Tensor | None = None) -> None:
        self.check_batch(images, labels, continuous)
        cols = self._label_values(labels, continuous)
        inferred = self._unlabelled_parents(cols)
        batch = images.shape[0]
        with pyro.plate("data", batch, dim=-1):
            values = self._graph_values(cols, inferred)
            prior = dist.Normal(torch.zeros((), dtype=torch.float32, device=images.device), 1.0)
            with poutine.scale(scale=self.beta):
                z = pyro.sample("z", prior.expand([batch, self.config.z_dim]).to_event(1))
            onehot = self.parents_onehot(values)
            z = z.expand(onehot.shape[:-1] + z.shape[-1:])
            with self.autocast():
                params = self.decoder(z, onehot)
            px = pixel_distribution(params, self.config.likelihood)
            self._stash["log_px"] = px.log_prob(images).detach()
            pyro.sample("x", px, obs=images)

    def guide(self, images: torch.Tensor, labels: torch.Tensor, continuous: torch.Tensor | None = None) -> None:
        self.check_batch(images, labels, continuous)
        cols = self._label_values(labels, continuous)
        inferred = self._unlabelled_parents(cols)
        x = prepare(images, self.config.likelihood)
        weights = []
        with pyro.plate("data", images.shape[0], dim=-1):
            values = {p: cols[p] for p in self.image_parents if p in cols}
            for p in inferred:
                net = self.classifiers[self.classified.index(p)]
                with self.autocast():
                    logits = net(x)
                q = logits.float().softmax(-1)
                if p in cols:  # labelled rows: a point mass on the label
                    seen = cols[p] >= 0
                    q = torch.where(seen[:, None], F.one_hot(cols[p].clamp(min=0), q.shape[-1]).to(q.dtype), q)
                    site = f"{p}_unobserved"
                else:
                    site = p
                y = pyro.sample(site, dist.Categorical(probs=q), infer={"enumerate": "parallel"})
                values[p] = y
                weights.append(q.T.reshape(y.shape[:-1] + q.shape[:1]))  # q(y) aligned with y's enum dim
            self._stash["q_weight"] = weights
            with self.autocast():
                loc, scale = self.encoder(x, self.parents_onehot(values))
            if not inferred and self._stash.get("want_z_loc"):
                self._stash["z_loc"] = loc  # kept with its graph for Objective.z_loc
            qz = dist.Normal(loc, scale).to_event(1)
            with poutine.scale(scale=self.beta):
                z = pyro.sample("z", qz)
            # log q(z) - log p(z) at the draw: the ELBO's z term, to undo beta in the report.
            self._stash["kl_z"] = (qz.log_prob(z) - dist.Normal(0.0, 1.0).log_prob(z).sum(-1)).detach()

    def encode(self, images: torch.Tensor, values: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x, image's parents): the abduction of the latent code."""
        x = prepare(images, self.config.likelihood)
        return self.encoder(x, self.parents_onehot(values))

    def labels_model(self, labels: torch.Tensor, continuous: torch.Tensor | None = None) -> None:
        """The graph alone, scoring the labels: its enumerated likelihood is log p(labels)."""
        cols = self._label_values(labels, continuous)
        with pyro.plate("data", labels.shape[0], dim=-1):
            self._graph_values(cols, ())

    # ------------------------------------------------------------------ objectives

    @property
    def _stash(self) -> dict:
        # Side values of the last model/guide run: log_px, kl_z and q_weight (detached) for the
        # recon/KL split; while objective runs, want_z_loc and the guide's z_loc (not detached).
        if not hasattr(self, "_stash_dict"):
            self._stash_dict = {}
        return self._stash_dict

    @staticmethod
    def elbo() -> TraceEnum_ELBO:
        # A batch may have nothing to enumerate (every variable labelled): not a mistake.
        return TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False)

    #: A batch whose every image parent is labelled, of a model whose tables and mechanisms
    #: are all fixed, computes the ELBO directly (:meth:`_direct_neg_elbo`) instead of through
    #: Pyro: the same loss, gradients and random draws (tests/test_model.py), without Pyro's
    #: overhead (measured by bench/bench_step.py). False: always through Pyro.
    direct_elbo: bool = True

    def _labels_fixed(self) -> bool:
        """No table or continuous mechanism learns: log p(labels) carries no gradient."""
        return not self.learned and not any(True for _ in self.mechanisms.parameters())

    def _direct_neg_elbo(self, images: torch.Tensor, cols: dict[str, torch.Tensor]):
        """The negative ELBO of :meth:`model` and :meth:`guide` summed over the rows, less the
        labels' log-probability, when every image parent is labelled: log p(x | parents, z)
        + beta (log p(z) - log q(z | x, parents)) at one reparameterised draw of z (the same
        draw from torch's generator as Pyro's run of the guide). Returns the loss, the detached
        per-row log p(x | ...) and log q(z) - log p(z), and the guide's mean of z."""
        onehot = self.parents_onehot({p: cols[p] for p in self.image_parents})
        x = prepare(images, self.config.likelihood)
        with self.autocast():
            loc, scale = self.encoder(x, onehot)
        qz = dist.Normal(loc, scale).to_event(1)
        z = qz.rsample()
        prior = dist.Normal(torch.zeros((), dtype=torch.float32, device=images.device), 1.0).expand(list(z.shape)).to_event(1)
        kl = qz.log_prob(z) - prior.log_prob(z)
        with self.autocast():
            params = self.decoder(z, onehot)
        log_px = pixel_distribution(params, self.config.likelihood).log_prob(images)
        neg = -(log_px.sum() - self.beta * kl.sum())
        return neg, log_px.detach(), kl.detach(), loc

    def _neg_elbo(self, model, guide, *args) -> torch.Tensor:
        """Negative ELBO summed over the rows: differentiable when gradients are on."""
        if torch.is_grad_enabled():
            return self.elbo().differentiable_loss(model, guide, *args)
        return torch.tensor(self.elbo().loss(model, guide, *args), dtype=torch.float32)

    def log_p_labels(self, labels: torch.Tensor, continuous: torch.Tensor | None = None) -> float:
        """Exact log p(labels) summed over the rows (hidden and missing values summed out;
        continuous labels count by their density)."""
        with torch.no_grad():
            return -float(self._neg_elbo(self.labels_model, _no_guide, *_args(labels, continuous)))

    def label_loss(self, labels: torch.Tensor, continuous: torch.Tensor | None = None) -> torch.Tensor:
        """-log p(labels) summed over the rows, differentiable: the part of the ELBO through
        which the learned tables and continuous mechanisms fit the labels (their maximum
        likelihood)."""
        return self.elbo().differentiable_loss(self.labels_model, _no_guide, *_args(labels, continuous))

    def _log_p_complete_labels(self, labels: torch.Tensor) -> float | None:
        """log p(labels) summed over the rows by a lookup in the exact joint table of the
        labelled columns, when every label is present and the tables are fixed (the common
        case of a training step: it saves an enumerated Pyro run per step). ``None`` when a
        label is missing, a table is learned or the joint has over 2**22 values: then
        :meth:`log_p_labels` does the work."""
        if self.learned or self.graph.mixed or bool((labels < 0).any()):
            return None
        if int(np.prod([self.graph.card(c) for c in self.label_columns], dtype=np.float64)) > 2**22:
            return None  # too many joint values to tabulate: let the enumeration do it
        table = getattr(self, "_label_log_joint", None)
        if table is None:
            from causalvae.exact import query

            joint = query(self.graph, self.label_columns).table
            with np.errstate(divide="ignore"):
                table = torch.from_numpy(np.log(joint))
            self._label_log_joint = table
        idx = labels.detach().cpu()
        return float(table[tuple(idx[:, j] for j in range(idx.shape[1]))].sum())

    def _elbo_terms(self, images, labels, continuous, cols, unlabelled, direct):
        """The negative ELBO summed over the rows (the labels' part left out on the direct
        path), the summed recon and z-KL, and the guide's mean of z when one run covered every
        row: :meth:`objective`'s Pyro calls or its direct computation."""
        n = images.shape[0]
        neg, recon, kl_z, z_loc = images.new_zeros((), dtype=torch.float32), 0.0, 0.0, None
        for rows in (~unlabelled, unlabelled):
            if not bool(rows.any()):
                continue
            if direct:  # every row: the same loss and gradients as the Pyro run below, less its overhead
                neg, log_px, kl, z_loc = self._direct_neg_elbo(images, cols)
                recon, kl_z = float(log_px.sum()), float(kl.sum())
                break
            img, lab = images[rows], labels[rows]
            neg = neg + self._neg_elbo(self.model, self.guide, img, *_args(lab, None if continuous is None else continuous[rows]))
            recon, kl_z = recon + self._expected("log_px"), kl_z + self._expected("kl_z")
            self._stash.pop("q_weight", None)
            loc = self._stash.pop("z_loc", None)
            if bool(rows.all()) and loc is not None and loc.shape == (n, self.config.z_dim):
                z_loc = loc  # one guide run over every row in order
        return neg, recon, kl_z, z_loc

    def objective(self, images: torch.Tensor, labels: torch.Tensor, continuous: torch.Tensor | None = None) -> Objective:
        """The training loss and the per-image ELBO, reconstruction and KL of a batch.

        Rows whose image parents are all labelled and rows that need the classifier are
        scored in two Pyro calls, so that only the latter enumerate. A batch with every image
        parent labelled, of a model that learns no table, skips Pyro (:attr:`direct_elbo`).
        """
        self.check_batch(images, labels, continuous)
        labels = labels.to(torch.int64)
        n = images.shape[0]
        cols = self._label_values(labels, continuous)
        unlabelled = torch.zeros(n, dtype=torch.bool, device=labels.device)
        for p in self.classified:
            unlabelled |= cols[p] < 0 if p in cols else torch.ones_like(unlabelled)
        self._stash.pop("z_loc", None)
        direct = bool(self.direct_elbo) and not bool(unlabelled.any()) and self._labels_fixed() and not self._unlabelled_parents(cols)
        self._stash["want_z_loc"] = True  # only objective's own guide runs keep their mean of z
        try:
            neg, recon, kl_z, z_loc = self._elbo_terms(images, labels, continuous, cols, unlabelled, direct)
        finally:
            self._stash.pop("want_z_loc", None)
            self._stash.pop("z_loc", None)
        classify = images.new_zeros((), dtype=torch.float32)
        labelled_any = [(p, cols[p] >= 0) for p in self.classified if p in cols]
        if labelled_any and any(bool(m.any()) for _, m in labelled_any):
            x = prepare(images, self.config.likelihood)
            for p, m in labelled_any:
                if bool(m.any()):
                    with self.autocast():
                        logits = self.classifiers[self.classified.index(p)](x[m]).float()
                    classify = classify + F.cross_entropy(logits, cols[p][m], reduction="sum")
        log_labels = self._log_p_complete_labels(labels)
        if log_labels is None:
            log_labels = self.log_p_labels(labels, continuous)
        if direct:  # the labels' part of the joint bound: a constant (no table or mechanism learns)
            neg = neg - log_labels
        # The loss weighs z's KL by beta; the reported ELBO is the true one.
        elbo_joint = -neg.item() - (1.0 - self.beta) * kl_z
        elbo_cond = (elbo_joint - log_labels) / n
        return Objective(
            loss=(neg + self.alpha * classify) / n,
            elbo=elbo_cond,
            recon=recon / n,
            kl=recon / n - elbo_cond,
            classify=classify.item() / n,
            n=n,
            z_loc=z_loc,
        )

    def _expected(self, key: str) -> float:
        """Sum over rows of E_q[term] for a stashed per-row term of the last model/guide run
        (``log_px``: log p(x | parents, z); ``kl_z``: log q(z) - log p(z)), weighted by the
        guide's enumerated q(y | x)."""
        term = self._stash.pop(key)
        w = torch.ones((), dtype=term.dtype, device=term.device)
        for q in self._stash.get("q_weight", []):
            w = w * q.detach()
        return float((w * term).sum())

    def loss(self, images: torch.Tensor, labels: torch.Tensor, continuous: torch.Tensor | None = None) -> torch.Tensor:
        """The training loss per image (differentiable when gradients are enabled)."""
        return self.objective(images, labels, continuous).loss

    def hidden_posterior(self, images: torch.Tensor, labels: torch.Tensor, continuous: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The model's posterior marginals of every model-enumerated variable, per image.

        Returns ``{name: (B, card)}`` for hidden variables and for observed ones with a
        missing label in some row (rows where it is labelled give its label's point mass).
        """
        labels = labels.to(torch.int64)
        marginals = self.elbo().compute_marginals(self.model, self.guide, images, *_args(labels, continuous))
        out = {}
        cols = self._label_values(labels, continuous)
        for name in self.graph.names:
            if name in self.graph.continuous:
                continue
            key = name if name not in cols else f"{name}_unobserved"
            if key in marginals:
                m = marginals[key]
                probs = m.probs if hasattr(m, "probs") else m.logits.softmax(-1)
                out[name] = probs.reshape(-1, self.graph.card(name))
        return out


def _args(labels: torch.Tensor, continuous: torch.Tensor | None) -> tuple:
    """The label arguments of the Pyro programs: the continuous ones only when there are some."""
    return (labels,) if continuous is None else (labels, continuous)


def _no_guide(*args) -> None:
    """The guide of :meth:`CausalVAE.labels_model`: every latent site is enumerated."""


def table_counts(graph: Graph, labels: np.ndarray, name: str) -> np.ndarray:
    """Counts of the family of ``name`` in rows where it is fully labelled: (*parent cards, card)."""
    cols = list(graph.observed)
    fam = [*graph.parents(name), name]
    idx = [cols.index(v) for v in fam]
    rows = labels[:, idx]
    rows = rows[(rows >= 0).all(axis=1)]
    counts = np.zeros(tuple(graph.card(v) for v in fam))
    np.add.at(counts, tuple(rows.T), 1)
    return counts
