"""The cost of one training step of the sprites recipe's model with the spatial broadcast
decoder, against the recipe's FiLM decoder.

Run from the repository root::

    .venv/bin/python bench/bench_sprites_decoders.py --out bench/results/sprites_decoders.json

Two models as ``causalvae train`` builds them with the Makefile's ``SPRITES_FLAGS`` (width 16,
z 8, counterfactual weight 10), one with ``--decoder film`` (the recipe) and one with
``--decoder broadcast`` (coordinates in grid cells, ``BROADCAST_FLAGS``); one optimiser step
each (the ELBO plus the counterfactual term, its frozen reader reading the decoded
counterfactuals back) on the same batch of 64 causal sprites, timed interleaved in one run, so
the ratio does not depend on how fast the machine runs that day (which moves the training
minutes of the runs' records by half from one day to another on these cores).

``sprites_decoders.broadcast_cost_per_step`` is the broadcast step time over the FiLM one.
A third step is the FiLM one as training ran it before ``bench/bench_step.py``'s two savings
(the ELBO through Pyro, the counterfactual term encoding its pictures again): the step of the
FiLM recipe's recorded run (``docs/runs/sprites/``, trained before them).
``sprites_decoders.broadcast_vs_recorded_film`` is the broadcast step time (with the savings,
as training runs it now) over that one: times the recorded run's minutes of steps, it gives
the minutes the broadcast decoder's steps would have taken on that machine that day. It
overstates them a little: the code before the savings encoded all of the term's pictures,
this baseline only half. It is a script, not a test: it reports what it measures.
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

FLAGS = dict(epochs=6, z_dim=8, width=16, lr=0.002, beta=0.5, cf_weight=10.0)  # the Makefile's SPRITES_FLAGS
BATCH = 64


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeat", type=int, default=21)
    args = ap.parse_args(argv)
    pyro.settings.set(module_local_params=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = generate("sprites", Path(tmp) / "sprites", 256, seed=0)
        film, step_film = sprites_recipe_step(data, Path(tmp) / "film", BATCH, decoder="film", **FLAGS)
        broadcast, step_broadcast = sprites_recipe_step(data, Path(tmp) / "broadcast", BATCH, decoder="broadcast", **FLAGS)
        before, step_before = sprites_recipe_step(data, Path(tmp) / "before", BATCH, savings=False, decoder="film", **FLAGS)
        assert film.config.decoder == "film" and broadcast.config.decoder == "broadcast" and broadcast.config.coordinates == "cells"
        assert film.direct_elbo and broadcast.direct_elbo and not before.direct_elbo
        times = timeit_many({"film": step_film, "broadcast": step_broadcast, "before": step_before}, repeat=args.repeat)
    figs = [
        Figure("sprites_film.images_per_s", BATCH / times["film"], "images/s", f"one optimiser step of the sprites recipe's model, FiLM decoder (ELBO + counterfactual term), batch {BATCH}"),
        Figure("sprites_broadcast.images_per_s", BATCH / times["broadcast"], "images/s", f"the same with the spatial broadcast decoder (coordinates in grid cells), batch {BATCH}"),
        Figure("sprites_decoders.broadcast_cost_per_step", times["broadcast"] / times["film"], "x", "step time, broadcast decoder / FiLM decoder"),
        Figure("sprites_film_before.images_per_s", BATCH / times["before"], "images/s", f"the FiLM step as the recorded FiLM recipe's run took it (before the two savings of bench_step.py), batch {BATCH}"),
        Figure("sprites_decoders.broadcast_vs_recorded_film", times["broadcast"] / times["before"], "x", "step time, broadcast decoder (as trained now) / FiLM decoder (as the recorded run trained)"),
    ]
    print_table(figs)
    write_results(args.out, "sprites_decoders", figs, notes=[f"torch threads: {torch.get_num_threads()}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
