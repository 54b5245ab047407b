"""Two savings in a training step, measured: the ELBO computed without Pyro's run, and the
counterfactual term's abduction reused from the ELBO's guide.

Run from the repository root::

    .venv/bin/python bench/bench_step.py --out bench/results/step.json

A fully labelled batch of a model with fixed tables computes its ELBO directly
(``CausalVAE.direct_elbo``: the same loss, gradients and draw of z as the Pyro run,
``tests/test_model.py``), and training passes the guide's mean of q(z | x, labels)
(``Objective.z_loc``) to the counterfactual term, which then encodes nothing (the same values
and gradients, ``tests/test_train.py``). Models as ``causalvae train`` builds them with the
Makefile's ``MORPHO_FLAGS`` and ``SPRITES_FLAGS``; one optimiser step (the ELBO, the
counterfactual term with a frozen reader, backward, Adam) on the same batch of 64 training
pictures, three ways, timed interleaved in one run:

- ``pyro``: the ELBO through Pyro, the term encoding its pictures again (only the half of its
  rows that keep their abducted z; the code before the savings encoded all of them, so the
  ratios understate the saving a little);
- ``pyro_reuse``: the ELBO through Pyro, the abduction reused;
- ``direct_reuse``: both savings (what training does).

``*.step_cost`` is the step time with both savings over the step time without, and
``*.reuse_cost`` the Pyro step with the reuse over that without. ``*.adam_*``: Adam's update
alone (gradients set), PyTorch's default multi-tensor loop against the fused update training
uses (:func:`causalvae.train.adam`), and the time it saves as a share of the training step.
It is a script, not a test: it reports what it measures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyro
import torch

from _common import Figure, print_table, timeit_many, write_results

from causalvae.data import load as load_dataset
from causalvae.generate import generate
from causalvae.train import TrainConfig, adam, build_model, counterfactual_term, make_reader

BATCH = 64
# The Makefile's MORPHO_FLAGS and SPRITES_FLAGS (the settings that change a step's cost).
WORLDS = {
    "morpho": dict(epochs=24, z_dim=16, max_log_scale=-3.0, beta=1.0, cf_weight=40.0, decoder="film"),
    "sprites": dict(epochs=6, z_dim=8, width=16, lr=0.002, beta=0.5, cf_weight=10.0, decoder="film"),
}


def recipe_step(world: str, tmp: Path):
    """The world's recipe model and one optimiser step of it on a fixed batch of 64 training
    pictures: ``(vae, step)``, ``step(reuse, direct)`` (``reuse=direct=True``: as training
    takes it)."""
    data = generate(world, tmp / world, 256, seed=0)
    ds = load_dataset(data, split="train", verify=False)
    cfg = TrainConfig(data=str(data), out=str(tmp / f"{world}-run"), **WORLDS[world])
    torch.manual_seed(0)
    vae = build_model(cfg, ds)
    images, labels = ds.batch(np.arange(BATCH))
    cont = (ds.continuous_batch(np.arange(BATCH)),) if vae.continuous_columns else ()
    reader = make_reader(vae).eval().requires_grad_(False)  # its weights do not change its cost
    opt = adam(vae.parameters(), lr=1e-6)  # as training makes it (fused)

    def step(reuse: bool, direct: bool):
        vae.direct_elbo = direct
        opt.zero_grad()
        obj = vae.objective(images, labels, *cont)
        assert obj.z_loc is not None
        term = counterfactual_term(vae, reader, images, labels, *cont, z_loc=obj.z_loc if reuse else None)
        (obj.loss + cfg.cf_weight * term).backward()
        opt.step()

    return vae, step


def optimiser_steps(vae) -> dict:
    """Adam's update alone over ``vae``'s parameters (with gradients set), two ways: ``loop``,
    PyTorch's default (a loop of multi-tensor operations), and ``fused`` (:func:`adam`, what
    training uses)."""
    params = list(vae.parameters())
    for p in params:
        p.grad = torch.full_like(p, 1e-3)
    loop = torch.optim.Adam(params, lr=1e-9)
    fused = adam(params, lr=1e-9)
    return {"loop": loop.step, "fused": fused.step}


def steps(world: str, tmp: Path):
    """The world's recipe model's training step three ways (see the module's docstring)."""
    vae, step = recipe_step(world, tmp)
    return vae, {"pyro": lambda: step(False, False), "pyro_reuse": lambda: step(True, False), "direct_reuse": lambda: step(True, True)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeat", type=int, default=21)
    args = ap.parse_args(argv)
    pyro.settings.set(module_local_params=True)
    figs = []
    with tempfile.TemporaryDirectory() as tmp:
        for world in WORLDS:
            vae, timed = steps(world, Path(tmp))
            t = timeit_many(timed, repeat=args.repeat)
            figs += [
                Figure(f"{world}.pyro.images_per_s", BATCH / t["pyro"], "images/s", f"{world} recipe's model, one training step, batch {BATCH}: the ELBO through Pyro, the counterfactual term encoding its pictures again"),
                Figure(f"{world}.pyro_reuse.images_per_s", BATCH / t["pyro_reuse"], "images/s", "the same, the term reusing the guide's abduction"),
                Figure(f"{world}.direct_reuse.images_per_s", BATCH / t["direct_reuse"], "images/s", "the same, the ELBO also computed directly (what training does)"),
                Figure(f"{world}.reuse_cost", t["pyro_reuse"] / t["pyro"], "x", f"{world}: step time, abduction reused / encoded again (ELBO through Pyro)"),
                Figure(f"{world}.step_cost", t["direct_reuse"] / t["pyro"], "x", f"{world}: step time, both savings / neither"),
            ]
            o = timeit_many(optimiser_steps(vae), repeat=args.repeat)
            figs += [
                Figure(f"{world}.adam_loop_ms", 1e3 * o["loop"], "ms", f"{world}: Adam's update of the model's parameters, PyTorch's default (multi-tensor loop)"),
                Figure(f"{world}.adam_fused_ms", 1e3 * o["fused"], "ms", f"{world}: the same, fused (what training uses)"),
                Figure(f"{world}.adam_fused_share", (o["loop"] - o["fused"]) / t["direct_reuse"], "share", f"{world}: time the fused update saves, as a share of the training step (both savings)"),
            ]
    print_table(figs)
    write_results(args.out, "step", figs, notes=[f"torch threads: {torch.get_num_threads()}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
