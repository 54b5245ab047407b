"""The cost per picture of the sprites recipe with its shape hidden, against the labelled recipe.

Run from the repository root::

    .venv/bin/python bench/bench_sprites_hidden.py --out bench/results/sprites_hidden.json

Two models as ``causalvae train`` builds them with the Makefile's ``SPRITES_FLAGS`` (FiLM
decoder, width 16, z 8, beta 1, counterfactual weight 10), one optimiser step each on the same batch of
64 causal sprites, timed interleaved:

- ``labelled``: every factor labelled; the step is the ELBO plus the counterfactual term (its
  frozen reader reads the decoded counterfactuals back), as ``make recipe-sprites`` trains;
- ``hidden``: the same sprites generated with ``--hide shape``; the step runs the classifier
  q(shape | x) and enumerates the three shapes through the encoder and the decoder, plus the
  counterfactual term on the four labelled factors (the shape kept at the classifier's most
  probable value) and the classifier's aggregate match to the graph (``--match-weight``,
  ``train.prior_matching``), as ``make recipe-sprites-hidden`` trains after its first 1,000
  guided steps.

``sprites_hidden.cost_per_image`` is the step time of the hidden model over the labelled one.
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

FLAGS = dict(epochs=2, z_dim=8, width=16, lr=0.002, beta=1.0, cf_weight=10.0, decoder="film")  # the Makefile's SPRITES_BASE (beta: no cost)
HIDDEN = dict(match_weight=10.0)  # what the Makefile's HIDDEN_FLAGS add to the step
BATCH = 64


def setup(root: Path, hide: list[str]):
    data = generate("sprites", root / ("hidden" if hide else "labelled"), 256, seed=0, hide=hide)
    return sprites_recipe_step(data, root / "run", BATCH, **FLAGS, **(HIDDEN if hide else {}))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    pyro.settings.set(module_local_params=True)
    with tempfile.TemporaryDirectory() as tmp:
        labelled, step_labelled = setup(Path(tmp), [])
        hidden, step_hidden = setup(Path(tmp), ["shape"])
        assert hidden.classified == ["shape"] and not labelled.classified
        times = timeit_many({"labelled": step_labelled, "hidden": step_hidden}, repeat=args.repeat)
    figs = [
        Figure("sprites_labelled.images_per_s", BATCH / times["labelled"], "images/s", f"one optimiser step of the sprites recipe's model, every factor labelled (ELBO + counterfactual term), batch {BATCH}"),
        Figure("sprites_hidden.images_per_s", BATCH / times["hidden"], "images/s", f"the same with the shape hidden (classifier q(shape | x) + 3-way enumeration + counterfactual term + aggregate match), batch {BATCH}"),
        Figure("sprites_hidden.cost_per_image", times["hidden"] / times["labelled"], "x", "step time per picture, shape hidden / every factor labelled"),
    ]
    print_table(figs)
    write_results(args.out, "sprites_hidden", figs, notes=[f"torch threads: {torch.get_num_threads()}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
