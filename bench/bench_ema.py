"""The cost of ``--ema`` (a moving average of the weights) in a training step of the morpho
recipe's model.

Run from the repository root::

    .venv/bin/python bench/bench_ema.py --out bench/results/ema.json

The model as ``causalvae train`` builds it with the Makefile's ``MORPHO_FLAGS`` (FiLM decoder,
z 16, counterfactual weight 40); one optimiser step as training takes it (the ELBO computed
directly, the counterfactual term reusing the guide's abduction, with a frozen reader) on the
same batch of 64 training pictures, without and with the average's update that
``--ema`` adds after every step (``train.WeightAverage.update``), timed interleaved in one run,
so the ratio does not depend on how fast the machine runs that day.

``ema.cost_per_step`` is the step time with the update over the step time without. It is a
script, not a test: it reports what it measures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pyro
import torch

from _common import Figure, print_table, timeit_many, write_results
from bench_step import BATCH, recipe_step

from causalvae.train import WeightAverage


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeat", type=int, default=21)
    args = ap.parse_args(argv)
    pyro.settings.set(module_local_params=True)
    with tempfile.TemporaryDirectory() as tmp:
        vae, step = recipe_step("morpho", Path(tmp))  # the Makefile's MORPHO_FLAGS, as bench_step.py builds it
        average = WeightAverage(vae, 0.999)
        n_weights = sum(t.numel() for t in vae.state_dict().values())

        def with_update():
            step(True, True)
            average.update(vae)

        t = timeit_many({"plain": lambda: step(True, True), "ema": with_update}, repeat=args.repeat)
    figs = [
        Figure("ema.plain_images_per_s", BATCH / t["plain"], "images/s", f"one training step of the morpho recipe's model (ELBO + counterfactual term), batch {BATCH}"),
        Figure("ema.ema_images_per_s", BATCH / t["ema"], "images/s", f"the same, then the moving average's update of its {n_weights:,} weights"),
        Figure("ema.cost_per_step", t["ema"] / t["plain"], "x", "step time, with --ema / without"),
    ]
    print_table(figs)
    write_results(args.out, "ema", figs, notes=[f"torch threads: {torch.get_num_threads()}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
