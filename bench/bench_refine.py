"""The cost of a refined abduction (``--refine N``) against the encoder's mean.

Run from the repository root::

    .venv/bin/python bench/bench_refine.py --out bench/results/refine.json

Two models as ``causalvae train`` builds them with the Makefile's flags (the sprites recipe's
``SPRITES_BASE``; the morpho recipe's ``MORPHO_FLAGS``), each on 64 pictures of its world
generated here. For each, one counterfactual of the 64 pictures (abduct, act, predict:
``queries.counterfactual``) with the encoder's mean and with the code refined ``--steps``
steps (default the Makefile's ``REFINE``, 30), timed interleaved. The weights are untrained:
the time of a step does not depend on them.

``refine.<world>.cost`` is the refined counterfactual's time over the plain one's.

``refine.<world>.kept_codes_speedup``: the evaluation's counterfactual section abducts the
same pictures once per intervention; with ``queries.abduct(codes=...)`` it refines each
batch once and keeps the codes. Here, :data:`INTERVENTIONS` refined counterfactuals of the
same 64 pictures (abduct, act, predict), each refining anew, against the same with one dict
of kept codes, new for every timed run (so each run pays its first refinement).

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
from causalvae.queries import abduct, act, counterfactual, predict
from causalvae.train import TrainConfig, build_model

FLAGS = {
    "sprites": dict(z_dim=8, width=16, decoder="film"),  # the Makefile's SPRITES_BASE (what sets the networks)
    "morpho": dict(z_dim=16, max_log_scale=-3.0, decoder="film"),  # MORPHO_FLAGS
}
DO = {"sprites": {"scale": "1.0"}, "morpho": {"thickness": 3.0}}
BATCH = 64
#: Interventions per picture in the kept-codes figure (the sprites report makes 35, morpho 18).
INTERVENTIONS = 8


def setup(root: Path, world: str, steps: int):
    data = generate(world, root / world, 2 * BATCH + 64, seed=0)
    ds = load_dataset(data, split="train", verify=False)
    torch.manual_seed(0)
    vae = build_model(TrainConfig(data=str(data), out=str(root / "run"), **FLAGS[world]), ds).eval()
    rows = np.arange(BATCH)
    images, labels = ds.batch(rows)
    cont = ds.continuous_batch(rows) if vae.continuous_columns else None

    def section(codes_kept: bool):
        def run():
            codes = {} if codes_kept else None
            for k in range(INTERVENTIONS):
                unit = abduct(vae, images, labels, cont, seed=k, pixel_noise=True, refine=steps, codes=codes)
                predict(vae, unit, act(vae.current_graph(), DO[world]))
        return run

    return {
        "plain": lambda: counterfactual(vae, images, labels, DO[world], continuous=cont, seed=0),
        "refined": lambda: counterfactual(vae, images, labels, DO[world], continuous=cont, seed=0, refine=steps),
        "section": section(False),
        "section_kept": section(True),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    pyro.settings.set(module_local_params=True)
    figs = []
    with tempfile.TemporaryDirectory() as tmp:
        for world in ("sprites", "morpho"):
            fns = setup(Path(tmp), world, args.steps)
            times = timeit_many(fns, repeat=args.repeat)
            figs += [
                Figure(f"refine.{world}.plain_images_per_s", BATCH / times["plain"], "images/s", f"{world}: counterfactuals of {BATCH} pictures, z the encoder's mean"),
                Figure(f"refine.{world}.refined_images_per_s", BATCH / times["refined"], "images/s", f"{world}: the same, z refined {args.steps} steps (--refine {args.steps})"),
                Figure(f"refine.{world}.cost", times["refined"] / times["plain"], "x", f"{world}: time of a refined counterfactual / a plain one"),
                Figure(f"refine.{world}.kept_codes_speedup", times["section"] / times["section_kept"], "x",
                       f"{world}: {INTERVENTIONS} refined counterfactuals of the same pictures, time refining each anew / keeping the codes (abduct's codes)"),
            ]
    print_table(figs)
    write_results(args.out, "refine", figs, notes=[f"torch threads: {torch.get_num_threads()}", f"refinement steps: {args.steps}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
