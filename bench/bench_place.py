"""The cost of one training step of the sprites recipe's model whose decoder moves what it
draws by posX and posY (``--place posX,posY``), against the recipe's plain FiLM decoder.

Run from the repository root::

    .venv/bin/python bench/bench_place.py --out bench/results/place.json

Two models as ``causalvae train`` builds them with the Makefile's ``SPRITES_FLAGS`` (width 16,
z 8, counterfactual weight 10, FiLM decoder), one of them with ``--place posX,posY``; one
optimiser step each (the ELBO plus the counterfactual term, its frozen reader reading the
decoded counterfactuals back) on the same batch of 64 causal sprites, timed interleaved in one
run, so that the ratio does not depend on how fast the machine runs that day.
``place.cost_per_step`` is the moved decoder's step time over the plain one's: the extra work
is a small MLP and one bilinear resampling of the 64 x 64 logits per decoded picture. It is a
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
        plain, step_plain = sprites_recipe_step(data, Path(tmp) / "plain", BATCH, **FLAGS)
        moved, step_moved = sprites_recipe_step(data, Path(tmp) / "moved", BATCH, place=["posX", "posY"], **FLAGS)
        assert plain.config.place == () and moved.config.place == (3, 4)
        times = timeit_many({"plain": step_plain, "moved": step_moved}, repeat=args.repeat)
    figs = [
        Figure("place.plain_images_per_s", BATCH / times["plain"], "images/s", f"one optimiser step of the sprites recipe's model, FiLM decoder (ELBO + counterfactual term), batch {BATCH}"),
        Figure("place.moved_images_per_s", BATCH / times["moved"], "images/s", f"the same with --place posX,posY, batch {BATCH}"),
        Figure("place.cost_per_step", times["moved"] / times["plain"], "x", "step time, with --place posX,posY / without"),
    ]
    print_table(figs)
    write_results(args.out, "place", figs, notes=[f"torch threads: {torch.get_num_threads()}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
