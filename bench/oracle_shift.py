"""How the morpho oracle's settings change how well it reads unseen handwriting.

Run from the repository root::

    .venv/bin/python bench/oracle_shift.py --out bench/results/oracle_shift.json

The morpho oracle judges every model of that world: its digit accuracy on writers it never saw
is the ceiling of the reports' "read as the intervened value, under do(digit)". This script
compares its training settings on the **validation** sources (never the test sources, which
score only the oracle kept, in ``causalvae oracle train``):

- one fixed pool of ``--pool`` renders (default 16,000) of training sources, digit uniform,
  thickness and intensity uniform over the oracle's ranges (``oracle.continuous_ranges``), and
  ``--val`` renders (default 3,000) of validation sources drawn the same way;
- for each setting of :data:`SETTINGS` (steps; the largest move of a training picture,
  ``pictures.shifted``), an oracle of the world's network trained by ``oracle._fit`` (Adam, the
  cosine schedule, batches of 64 from the pool, seed 0), then scored on the validation renders:
  digit accuracy, thickness and intensity mean absolute errors.

Fixed pool rather than ``train_oracle``'s refreshed one, so that only the settings differ. It
is a script, not a test: it reports what it measures (each setting's seconds are printed).
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch

from _common import Figure, print_table, write_results

from causalvae import oracle as O
from causalvae import worlds
from causalvae.io import atomic_write_text
from causalvae.pictures import shifted

#: (steps, shift) settings compared: the old default first, the recipe's last.
SETTINGS = ((3000, 0), (3000, 2), (10000, 2))


def renders(n: int, split: int, rng: np.random.Generator):
    w = worlds.get("morpho")
    truth, graph = w.renderer(None), w.graph()
    ranges = O.continuous_ranges(graph)
    values = {"digit": rng.integers(0, 10, n)}
    values.update({c: rng.uniform(lo, hi, n) for c, (lo, hi) in ranges.items()})
    style = truth.style_for(values, np.full(n, split, dtype=np.int8), rng)
    return truth.render(values, style), values["digit"].astype(np.int64)[:, None], np.stack([values[c] for c in ranges], 1), ranges


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/results/oracle_shift.json")
    ap.add_argument("--pool", type=int, default=16000)
    ap.add_argument("--val", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(123)
    t0 = time.perf_counter()
    print(f"rendering {args.pool:,} training-source and {args.val:,} validation-source digits", flush=True)
    xt, yt, nt, ranges = renders(args.pool, 0, rng)
    xv, yv, nv, _ = renders(args.val, 1, rng)
    print(f"rendered in {time.perf_counter() - t0:.0f} s", flush=True)
    scales = tuple(((lo + hi) / 2, (hi - lo) / math.sqrt(12)) for lo, hi in ranges.values())
    figures, rows = [], []
    for steps, shift in SETTINGS:
        torch.manual_seed(0)
        picks, moves = np.random.default_rng(0), np.random.default_rng(1)
        w = worlds.get("morpho")
        cfg = O.OracleConfig(w.name, w.resolution, w.channels, ("digit",), (w.graph().card("digit"),), binary=w.binary,
                             continuous=tuple(ranges), scales=scales)

        def batch():
            i = picks.integers(0, len(xt), 64)
            return shifted(xt[i], shift, moves), yt[i], nt[i], {}

        t = time.perf_counter()
        every = max(1, steps // 5)
        oracle = O._fit(cfg, batch, steps=steps, lr=2e-3, seed=0,
                        progress=lambda s, loss: print(f"  {steps} steps, shift {shift}: step {s:,}", flush=True) if s % every == 0 else None)
        acc = O.accuracy(oracle, xv, yv, nv)
        tag = f"oracle.steps{steps}.shift{shift}"
        figures += [Figure(f"{tag}.digit", acc["digit"], "share", f"digit accuracy on {args.val:,} validation-source renders"),
                    Figure(f"{tag}.thickness_mae", acc["thickness"], "px", "thickness mean absolute error"),
                    Figure(f"{tag}.intensity_mae", acc["intensity"], "grey levels", "intensity mean absolute error")]
        rows.append((steps, shift, acc, time.perf_counter() - t))
        print(f"{steps} steps, shift {shift}: digit {acc['digit']:.2%} ({time.perf_counter() - t:.0f} s)", flush=True)
    print_table(figures)
    write_results(args.out, "oracle_shift", figures, notes=[f"pool {args.pool} training-source renders, {args.val} validation-source renders, seed 123"])
    table = ["| steps | largest move (px) | digit accuracy | thickness MAE (px) | intensity MAE (0-255) |", "|---:|---:|---:|---:|---:|"]
    table += [f"| {s:,} | {m} | {100 * a['digit']:.2f}% | {a['thickness']:.3f} | {a['intensity']:.2f} |" for s, m, a, _ in rows]
    atomic_write_text(args.out.removesuffix(".json") + ".md", "\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
