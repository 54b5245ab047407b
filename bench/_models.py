"""The three models the speed benchmarks train side by side, behind one small interface.

A :class:`Contender` owns a model and its optimiser and knows how to take one optimiser step
on a batch of stored scenes (uint8 pictures and label indices, as a dataset hands them out)
and how to draw pictures for given labels. ``ours`` is the library's default scene model,
trained as ``make recipe`` trains it (``TrainConfig`` defaults: the FiLM decoder, the capped
pixel scale, z 8, beta 2, the Pyro ELBO plus the counterfactual term read by a frozen reader,
and Adam); the two baselines are in ``baselines.py``. Labels reach the baselines one-hot and concatenated; the causal VAE takes
them as the image's parents in the graph (for the scene world: the same six variables).
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pyro
import torch
import torch.nn.functional as F

from baselines import BASELINES

from causalvae.graph import Graph
from causalvae.model import CausalVAE
from causalvae.nets import NetConfig
from causalvae.noise import sample as ancestral
from causalvae.queries import to_pixels
from causalvae import worlds
from causalvae.train import TrainConfig, build_model, counterfactual_term, make_reader, prior_matching, reading_sets, train_reader
from causalvae.worlds.scenes import SceneRenderer

NAMES = ("ours", "tutorial_conv", "course_mlp")
LABELS = {"ours": "causalvae (default scene model)", "tutorial_conv": "tutorial conv VAE", "course_mlp": "course MLP VAE"}


def scene_batch(n: int, seed: int, size: int = 64) -> tuple[Graph, torch.Tensor, torch.Tensor]:
    """``n`` rendered scenes: the graph, uint8 (n, 3, size, size) pictures, int64 (n, K) labels
    (the graph's observed variables in declared order)."""
    g = Graph.load("scenes")
    s = ancestral(g, n, seed=seed)
    r = SceneRenderer(size)
    cols = list(g.observed)
    images = r.render({k: s.values[k] for k in cols}, r.sample_style(n, np.random.default_rng(seed)))
    pictures = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return g, pictures, torch.from_numpy(np.stack([s.values[c] for c in cols], 1).astype(np.int64))


def recipe_model(graph: Graph, size: int = 64, max_log_scale: float | None = None) -> tuple[CausalVAE, TrainConfig]:
    """The default scene model as ``causalvae train`` builds it from ``TrainConfig``'s defaults
    (``max_log_scale`` overrides the cap), and those defaults."""
    d = TrainConfig(data="", out="")
    cfg = NetConfig(image_size=size, channels=3, parent_dims=tuple(graph.card(p) for p in graph.image.parents),
                    z_dim=d.z_dim, width=d.width, depth=d.depth, hidden=d.hidden,
                    max_log_scale=d.max_log_scale if max_log_scale is None else max_log_scale, decoder=d.decoder, residual=d.residual)
    return CausalVAE(graph, cfg, beta=d.beta), d


def onehot(graph: Graph, labels: torch.Tensor) -> torch.Tensor:
    """int64 (B, K) label indices of the observed variables -> float (B, sum of cards)."""
    return torch.cat([F.one_hot(labels[:, j], graph.card(c)).float() for j, c in enumerate(graph.observed)], -1)


class Contender:
    """One model, its optimiser, and its training step at a chosen precision."""

    def __init__(self, name: str, graph: Graph, seed: int = 0, size: int = 64, max_log_scale: float | None = None):
        self.name, self.graph = name, graph
        torch.manual_seed(seed)
        self.reader = None
        if name == "ours":
            pyro.settings.set(module_local_params=True)
            self.model, d = recipe_model(graph, size, max_log_scale)
            self.batch_size, self.lr, self.z_dim, self.cf_weight, self.reader_steps = d.batch_size, d.lr, d.z_dim, d.cf_weight, d.reader_steps
            if self.cf_weight:
                # Until :meth:`warm_up` trains it, the reader is an untrained frozen classifier:
                # the same cost per step, for the benchmarks that time steps only.
                self.reader = make_reader(self.model).eval()
                self.reader.requires_grad_(False)
        else:
            n_labels = sum(graph.card(c) for c in graph.observed)
            cls = BASELINES[name]
            self.model = cls(n_labels) if name == "tutorial_conv" else cls(n_labels, (3, size, size))
            self.batch_size, self.lr, self.z_dim = cls.batch_size, cls.lr, cls.z_dim
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        self.bf16 = False

    def warm_up(self, data, seed: int = 0) -> None:
        """What training does before its first step: for ours, the counterfactual term's reader
        trained on ``data`` (a training split) as ``causalvae train`` trains it."""
        if self.reader is not None:
            self.reader, _ = train_reader(self.model, data, None, self.reader_steps, seed)

    def _autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.name == "ours":
            self.model.autocast = self._autocast
            obj = self.model.objective(images, labels)
            loss = obj.loss
            if self.reader is not None:
                with self._autocast():  # the abduction reuses the guide's mean, as training does
                    loss = loss + self.cf_weight * counterfactual_term(self.model, self.reader, images, labels, z_loc=obj.z_loc)
            return loss
        with self._autocast():
            return self.model.loss(images.float() / 255.0, onehot(self.graph, labels))

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """One optimiser step on a batch (uint8 pictures, int64 labels); returns the loss."""
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(images, labels)
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    @torch.no_grad()
    def draw(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Pictures (uint8, the decoder's mean) for int64 (B, K) labels, z from the prior."""
        self.model.eval()
        z = torch.randn(len(labels), self.z_dim, generator=generator)
        if self.name == "ours":
            cols = list(self.graph.observed)
            parents = {p: labels[:, cols.index(p)] for p in self.model.image_parents}
            return to_pixels(self.model, self.model.decoder(z, self.model.parents_onehot(parents)))
        return (self.model.decode(z, onehot(self.graph, labels)) * 255.0).round().to(torch.uint8)


def sprites_recipe_step(data, out, batch: int = 64, savings: bool = True, **settings):
    """A model as ``causalvae train`` builds it for the sprites dataset ``data`` with
    ``TrainConfig`` ``settings``, and one optimiser step of it (the ELBO, the counterfactual
    term with a frozen reader, and the aggregate match when ``match_weight`` is set) on the
    dataset's first ``batch`` training pictures: ``(vae, step)``. ``savings=False`` steps as
    training did before ``bench/bench_step.py``'s two savings: the ELBO through Pyro, the term
    encoding its pictures again (only half of them: the code before encoded all, so such a
    step is still a little cheaper than it was)."""
    from causalvae.data import load as load_dataset

    ds = load_dataset(data, split="train", verify=False)
    cfg = TrainConfig(data=str(data), out=str(out), **settings)
    torch.manual_seed(0)
    vae = build_model(cfg, ds)
    images, labels = ds.batch(np.arange(batch))
    reader = make_reader(vae).eval().requires_grad_(False)  # its weights do not change its cost
    opt = torch.optim.Adam(vae.parameters(), lr=1e-4)
    vae.direct_elbo = vae.direct_elbo and savings
    sets = reading_sets(worlds.for_dataset(ds), vae) if cfg.reader_sets else None
    if sets is not None:  # the world's tables are built once, before any timing, as training builds them
        sets({p: labels[:, vae.label_columns.index(p)] for p in sets.names})

    def step():
        opt.zero_grad()
        obj = vae.objective(images, labels)
        loss = obj.loss + cfg.cf_weight * counterfactual_term(vae, reader, images, labels, z_loc=obj.z_loc if savings else None, sets=sets)
        if cfg.match_weight:
            loss = loss + cfg.match_weight * prior_matching(vae, images, labels)
        loss.backward()
        opt.step()

    return vae, step


#: The Makefile's SPRITES_FLAGS, as TrainConfig settings.
SPRITES_FLAGS = dict(epochs=6, z_dim=8, width=16, lr=0.002, beta=0.5, cf_weight=10.0, decoder="film")


def sprites_option_cost(argv, doc: str, benchmark: str, short: str, label: str, **option) -> int:
    """The main of a benchmark of one ``train`` option's cost per step: the sprites recipe's
    model (:data:`SPRITES_FLAGS`) without and with ``option`` (TrainConfig settings, e.g.
    ``place=["posX", "posY"]``), one optimiser step each on the same batch of 64 causal
    sprites, timed interleaved in one run. Writes the figures ``<benchmark>.plain_images_per_s``,
    ``<benchmark>.<short>_images_per_s`` and ``<benchmark>.cost_per_step`` (with / without) to
    ``--out``; ``label`` names the option in their descriptions."""
    import argparse
    import tempfile
    from pathlib import Path

    from _common import Figure, print_table, timeit_many, write_results

    from causalvae.generate import generate

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeat", type=int, default=21)
    args = ap.parse_args(argv)
    pyro.settings.set(module_local_params=True)
    batch = 64
    with tempfile.TemporaryDirectory() as tmp:
        data = generate("sprites", Path(tmp) / "sprites", 256, seed=0)
        _, plain = sprites_recipe_step(data, Path(tmp) / "plain", batch, **SPRITES_FLAGS)
        _, other = sprites_recipe_step(data, Path(tmp) / short, batch, **option, **SPRITES_FLAGS)
        times = timeit_many({"plain": plain, short: other}, repeat=args.repeat)
    figs = [
        Figure(f"{benchmark}.plain_images_per_s", batch / times["plain"], "images/s", f"one optimiser step of the sprites recipe's model, FiLM decoder (ELBO + counterfactual term), batch {batch}"),
        Figure(f"{benchmark}.{short}_images_per_s", batch / times[short], "images/s", f"the same with {label}, batch {batch}"),
        Figure(f"{benchmark}.cost_per_step", times[short] / times["plain"], "x", f"step time, with {label} / without"),
    ]
    print_table(figs)
    write_results(args.out, benchmark, figs, notes=[f"torch threads: {torch.get_num_threads()}"])
    return 0
