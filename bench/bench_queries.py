"""Queries on pictures: counterfactuals per second in batches, and the latency of one answer.

Run from the repository root::

    .venv/bin/python bench/bench_queries.py --out bench/results/queries.json

The default scene model (``TrainConfig`` defaults; freshly initialised, since the cost of a
query does not depend on the weights) answers, through the public API of
``causalvae.queries``:

- ``queries.counterfactual.batched_per_s``: ``counterfactual(vae, images, labels,
  do={"action": "Attack"})`` for batches of 256 rendered test scenes (abduction with the
  exact posterior of the hidden variables, the encoder, the twin network's exact
  distributions, the decoder); counterfactuals per second. Target >= 2,000.
- ``queries.counterfactual.single_ms``: the same for one picture. Target <= 20 ms.
- ``queries.sample.single_ms``: one conditioned sample, ``sample(vae, 1, evidence=
  {"reaction": "Dying"})`` (exact posterior of every variable, z from the prior, decoder).
- ``queries.counterfactual.gflop`` and ``queries.counterfactual.flop_bound_per_s``: the FLOPs
  of one counterfactual (torch's flop counter) and the rate they would allow at the machine's
  measured float32 matmul peak: the ceiling no implementation of this model can pass here.
- ``queries.counterfactual.stages``: where the time of a batched counterfactual goes
  (abduct, predict, exact distributions), for the profile.

Each time is the median of ``--repeat`` runs after a warm-up, single-threaded Python driving
torch's intra-op threads (all cores).
"""

from __future__ import annotations

import argparse
import sys

import torch

from _common import Figure, print_table, timeit, write_results
from _models import Contender, scene_batch

from bench_speed import matmul_peak
from torch.utils.flop_counter import FlopCounterMode

from causalvae.queries import abduct, act, counterfactual, counterfactual_distributions, predict, sample


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args(argv)
    g, images, labels = scene_batch(args.batch, seed=3)
    vae = Contender("ours", g).model.eval()
    do = {"action": "Attack"}
    batched = timeit(lambda: counterfactual(vae, images, labels, do, seed=0), repeat=args.repeat)
    single = timeit(lambda: counterfactual(vae, images[:1], labels[:1], do, seed=0), repeat=3 * args.repeat)
    one_sample = timeit(lambda: sample(vae, 1, evidence={"reaction": "Dying"}, seed=0), repeat=3 * args.repeat)

    graph = vae.current_graph()
    unit = abduct(vae, images, labels, seed=0)
    stages = {
        "abduct": timeit(lambda: abduct(vae, images, labels, seed=0), repeat=args.repeat),
        "predict": timeit(lambda: predict(vae, unit, act(graph, do), seed=0), repeat=args.repeat),
        "exact": timeit(lambda: counterfactual_distributions(graph, vae.label_columns, unit.labels, act(graph, do)), repeat=args.repeat),
    }
    b = args.batch
    with FlopCounterMode(display=False) as counter:
        counterfactual(vae, images[:8], labels[:8], do, seed=0)
    flops = counter.get_total_flops() / 8
    peak, _ = matmul_peak(torch.float32)
    figs = [
        Figure("queries.counterfactual.batched_per_s", b / batched, "1/s", f"counterfactuals per second, batches of {b} pictures, do(action=Attack)", target=(">=", 2000.0)),
        Figure("queries.counterfactual.gflop", flops / 1e9, "GFLOP", "FLOPs of one counterfactual (encoder, decoder; flop_counter)"),
        Figure("queries.counterfactual.flop_bound_per_s", peak * 1e9 / flops, "1/s", f"counterfactuals per second at the measured float32 matmul peak ({peak:.0f} GFLOP/s): the ceiling for this model here"),
        Figure("queries.counterfactual.single_ms", 1000 * single, "ms", "latency of one counterfactual (one picture)", target=("<=", 20.0)),
        Figure("queries.sample.single_ms", 1000 * one_sample, "ms", "latency of one conditioned sample, evidence reaction=Dying"),
    ]
    for k, t in stages.items():
        figs.append(Figure(f"queries.counterfactual.stage.{k}_ms_per_picture", 1000 * t / b, "ms", f"batched counterfactual, the {k} step, per picture"))
    print_table(figs)
    write_results(args.out, "queries", figs, notes=[f"torch threads: {torch.get_num_threads()}", "model: the default scene model's architecture, freshly initialised (the cost does not depend on the weights)"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
