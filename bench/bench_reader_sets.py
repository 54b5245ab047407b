"""The cost of ``--reader-sets`` in a training step of the sprites recipe's model.

Run from the repository root::

    .venv/bin/python bench/bench_reader_sets.py --out bench/results/reader_sets.json

Two models as ``causalvae train`` builds them with the Makefile's ``SPRITES_FLAGS`` (FiLM
decoder, width 16, z 8, counterfactual weight 10), one plain and one with ``--reader-sets``:
one optimiser step each (the ELBO plus the counterfactual term, whose reader then reads the
orientation on the set of bins the sprites world accepts) on the same batch of 64 causal
sprites, timed interleaved in one run, so the ratio does not depend on how fast the machine
runs that day. The world's tables of accepted readings are built before the timing, as a run
builds them once (their seconds are in the run's reader time).

``reader_sets.cost_per_step`` is the step time with the sets over the step time without.
It is a script, not a test: it reports what it measures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pyro
import torch

from _common import Figure, print_table, timeit_many, write_results
from _models import sprites_recipe_step

from causalvae.generate import generate

FLAGS = dict(epochs=6, z_dim=8, width=16, lr=0.002, beta=0.5, cf_weight=10.0, decoder="film")  # the Makefile's SPRITES_FLAGS
BATCH = 64


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeat", type=int, default=21)
    args = ap.parse_args(argv)
    pyro.settings.set(module_local_params=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = generate("sprites", Path(tmp) / "sprites", 256, seed=0)
        _, plain = sprites_recipe_step(data, Path(tmp) / "plain", BATCH, **FLAGS)
        _, sets = sprites_recipe_step(data, Path(tmp) / "sets", BATCH, reader_sets=True, **FLAGS)
        times = timeit_many({"plain": plain, "sets": sets}, repeat=args.repeat)
    figs = [
        Figure("reader_sets.plain_images_per_s", BATCH / times["plain"], "images/s", f"one optimiser step of the sprites recipe's model (ELBO + counterfactual term), batch {BATCH}"),
        Figure("reader_sets.sets_images_per_s", BATCH / times["sets"], "images/s", f"the same with --reader-sets, batch {BATCH}"),
        Figure("reader_sets.cost_per_step", times["sets"] / times["plain"], "x", "step time, with --reader-sets / without"),
    ]
    print_table(figs)
    write_results(args.out, "reader_sets", figs, notes=[f"torch threads: {torch.get_num_threads()}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
