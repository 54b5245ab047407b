"""Training speed of the default scene model at each precision and memory layout.

Run from the repository root::

    .venv/bin/python bench/bench_train.py --out bench/results/train.json

One optimiser step of the default scene model's ELBO (64x64 RGB, the networks of
``TrainConfig``'s defaults as ``causalvae train`` builds them; batch 64; the counterfactual
term is left out here and timed with the whole recipe step by bench_speed.py) on a fixed batch
of rendered scenes, timed interleaved:

- ``train.fp32_channels_last.images_per_s``: the default (float32, channels_last convolutions);
- ``train.fp32_contiguous.images_per_s``: float32 with the default memory layout;
- ``train.bf16_channels_last.images_per_s``: bf16 autocast of the networks (``--precision bf16``);
- ``train.channels_last_speedup`` and ``train.bf16_speedup``: the ratios that decide the defaults;
- ``decode.channels_last_speedup``: the same layout ratio for decoding without gradients
  (generation, counterfactuals), where channels_last is on by default;
- ``train.unlabelled_action_cost``: the cost per image of the semi-supervised path, as the
  step time of a batch whose ``action`` labels are all missing (the classifier q(action | x)
  is run and the 3 actions are enumerated through the encoder and decoder) over the step
  time of the fully labelled batch, same model with an ``action`` classifier.

Each step is the whole objective (Pyro ELBO with enumeration, backward, Adam). It is a
script, not a test: it reports what it measures.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext

import numpy as np
import pyro
import torch

from _common import Figure, print_table, timeit_many, write_results
from _models import recipe_model

from causalvae import nets
from causalvae.model import CausalVAE
from causalvae.noise import sample
from causalvae.graph import Graph
from causalvae.worlds.scenes import SceneRenderer
from causalvae.train import TrainConfig


def batch(n: int, seed: int):
    g = Graph.load("scenes")
    s = sample(g, n, seed=seed)
    r = SceneRenderer(64)
    rng = np.random.default_rng(seed)
    cols = list(g.observed)
    labels = {k: s.values[k] for k in cols}
    images = r.render(labels, r.sample_style(n, rng))
    return g, torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), torch.from_numpy(np.stack([s.values[c] for c in cols], 1).astype(np.int64))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    pyro.settings.set(module_local_params=True)
    d = TrainConfig(data="", out="")
    g, images, labels = batch(d.batch_size, 0)
    torch.manual_seed(0)
    vae, _ = recipe_model(g)
    cfg = vae.config
    opt = torch.optim.Adam(vae.parameters(), lr=1e-4)

    def step(channels_last: bool, bf16: bool):
        def run():
            nets.CHANNELS_LAST = channels_last
            vae.autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else nullcontext
            opt.zero_grad()
            vae.objective(images, labels).loss.backward()
            opt.step()

        return run

    torch.manual_seed(0)
    ss = CausalVAE(g, cfg, classified=["action"], beta=vae.beta)
    ss_opt = torch.optim.Adam(ss.parameters(), lr=1e-4)
    unlabelled = labels.clone()
    unlabelled[:, list(g.observed).index("action")] = -1

    def ss_step(lab):
        def run():
            ss_opt.zero_grad()
            ss.objective(images, lab).loss.backward()
            ss_opt.step()

        return run

    times = timeit_many(
        {
            "fp32_channels_last": step(True, False), "fp32_contiguous": step(False, False), "bf16_channels_last": step(True, True),
            "ss_labelled": ss_step(labels), "ss_unlabelled": ss_step(unlabelled),
        },
        repeat=args.repeat,
    )
    nets.CHANNELS_LAST = "inference"
    z = torch.randn(1024, cfg.z_dim)
    onehot = torch.zeros(1024, cfg.parent_size)
    onehot[:, 0] = 1

    def decode(channels_last: bool):
        def run():
            nets.CHANNELS_LAST = channels_last
            with torch.inference_mode():
                vae.decoder(z, onehot)

        return run

    fwd = timeit_many({"cl": decode(True), "contiguous": decode(False)}, repeat=args.repeat)
    nets.CHANNELS_LAST = "inference"
    b = d.batch_size
    figs = [Figure(f"train.{k}.images_per_s", b / times[k], "images/s", f"one optimiser step of the default scene model, batch {b}, {k.replace('_', ' ')}") for k in ("fp32_channels_last", "fp32_contiguous", "bf16_channels_last")]
    figs.append(Figure("train.channels_last_speedup", times["fp32_contiguous"] / times["fp32_channels_last"], "x", "float32 step time, contiguous / channels_last"))
    figs.append(Figure("decode.channels_last_speedup", fwd["contiguous"] / fwd["cl"], "x", "decoding 1024 pictures without gradients, contiguous / channels_last"))
    figs.append(Figure("train.bf16_speedup", times["fp32_channels_last"] / times["bf16_channels_last"], "x", "channels_last step time, float32 / bf16 autocast (below 1: bf16 is slower)"))
    figs.append(Figure("train.unlabelled_action_cost", times["ss_unlabelled"] / times["ss_labelled"], "x", "step time per image without action labels (classifier + 3-way enumeration) / with them"))
    print_table(figs)
    write_results(args.out, "train", figs, notes=[f"torch threads: {torch.get_num_threads()}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
