"""Time to quality: how long each model trains before its pictures show what they were asked to.

Run from the repository root::

    .venv/bin/python bench/bench_quality.py --out bench/results/quality.json

The default scene model and the two baselines (``baselines.py``) train on the same dataset
(20,000 rendered scenes, the training split) with the same cores, each with its own batch
size and Adam at its own learning rate (1e-3 for all three, constant). Every
``--eval-every`` seconds of training the model draws pictures for 500 label sets sampled from
the scene graph (the same sets and the same z seed for every model and every check; z from
the prior; each picture the decoder's mean), and the oracle reads them back. A picture
counts as read correctly when the oracle reads all six of its labels as asked.

The clock counts training only: it stops while a check runs (the checks' cost differs
between models and is not part of learning). A model stops at the first check with at least
``--target`` (98%) of its pictures read correctly, or after ``--minutes`` (8) of training;
"not reached in 8 min" is reported as such, with the last read-back rate.

The oracle is trained first (``oracle.train_oracle``, on fresh renders, never on the
training set) unless ``--oracle DIR`` gives a saved one. The curves of read-back rate against
training time are drawn to ``--figure``.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import Figure, print_table, write_results
from _models import LABELS, NAMES, Contender

from causalvae.data import load as load_dataset
from causalvae.generate import generate
from causalvae.io import atomic_write_bytes
from causalvae.noise import sample as ancestral
from causalvae.oracle import load_oracle, train_oracle


class Stopwatch:
    """Seconds of training: runs only between :meth:`start` and :meth:`stop`."""

    def __init__(self):
        self.total, self._t0 = 0.0, None

    def start(self):
        self._t0 = time.perf_counter()

    def stop(self):
        self.total += time.perf_counter() - self._t0
        self._t0 = None

    def now(self) -> float:
        return self.total + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)


def readback(contender: Contender, oracle, labels: torch.Tensor, z_seed: int) -> tuple[float, dict[str, float]]:
    """Fraction of pictures whose labels the oracle reads all correctly, and per label."""
    cols = list(contender.graph.observed)
    pictures = torch.cat([contender.draw(labels[i : i + 250], torch.Generator().manual_seed(z_seed + i)) for i in range(0, len(labels), 250)])
    read = oracle.read(pictures)
    want = labels.numpy()[:, [cols.index(c) for c in oracle.config.columns]]
    ok = read == want
    return float(ok.all(axis=1).mean()), {c: float(ok[:, k].mean()) for k, c in enumerate(oracle.config.columns)}


def race(contender: Contender, data, oracle, eval_labels: torch.Tensor, *, minutes: float, every: float, target: float, seed: int, log) -> dict:
    """Train until the read-back rate reaches ``target`` or ``minutes`` of training pass."""
    rng = np.random.default_rng(seed)
    watch, curve = Stopwatch(), []
    steps = images = 0
    order, at = rng.permutation(len(data)), 0
    next_check, reached = every, None
    watch.start()
    contender.warm_up(data, seed)  # on the clock: the recipe's reader is part of its training
    watch.stop()
    while True:
        watch.start()
        while watch.now() < next_check and watch.now() < minutes * 60:
            b = contender.batch_size
            if at + b > len(order):
                order, at = rng.permutation(len(data)), 0
            pictures, labels = data.batch(order[at : at + b])
            at += b
            contender.step(pictures, labels)
            steps, images = steps + 1, images + b
        watch.stop()
        rate, per_label = readback(contender, oracle, eval_labels, seed)
        t = watch.now()
        curve.append({"seconds": round(t, 2), "steps": steps, "images": images, "readback": rate, "per_label": per_label})
        log(f"  {contender.name:14s} {t:6.0f} s  {steps:6d} steps  read back {rate:6.1%}  (worst label {min(per_label.values()):.1%})")
        if rate >= target:
            reached = t
            break
        if t >= minutes * 60:
            break
        next_check = t + every
    return {"seconds_to_target": reached, "curve": curve, "steps": steps, "images": images}


def figure(results: dict, target: float, minutes: float, path: Path, labels: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for name, r in results.items():
        xs = [0.0] + [p["seconds"] / 60 for p in r["curve"]]
        ys = [0.0] + [100 * p["readback"] for p in r["curve"]]
        ax.plot(xs, ys, marker="o", ms=3, label=(labels or LABELS)[name])
    ax.axhline(100 * target, color="grey", ls="--", lw=1)
    ax.text(0.1, 100 * target - 6, f"target {target:.0%}", color="grey")
    ax.set_xlim(0, max([minutes] + [p["seconds"] / 60 for r in results.values() for p in r["curve"]]))
    ax.set_ylim(0, 100)
    ax.set_xlabel("minutes of training (2 CPU cores)")
    ax.set_ylabel("pictures read back correctly by the oracle (%)")
    ax.set_title("Time to quality on the scene world")
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, 0.88))  # below the target's label
    ax.grid(alpha=0.3)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--figure", default=None, help="PNG of the read-back curves (default: beside --out)")
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--eval-every", type=float, default=30.0, help="seconds of training between checks")
    ap.add_argument("--target", type=float, default=0.98)
    ap.add_argument("--scenes", type=int, default=20000)
    ap.add_argument("--oracle", default=None, help="a saved oracle (default: train one now)")
    ap.add_argument("--models", default=",".join(NAMES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-log-scale", type=float, default=None, help="train ours with this cap on the pixel likelihood's log-scale (TrainConfig.max_log_scale)")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.models.split(",")]
    for n in names:
        if n not in NAMES:
            ap.error(f"unknown model {n!r}; valid: {', '.join(NAMES)}")

    def log(msg):
        print(msg, flush=True)

    t0 = time.perf_counter()
    if args.oracle:
        oracle, oracle_acc = load_oracle(args.oracle), None
    else:
        oracle, oracle_acc = train_oracle("scenes", seed=args.seed)
    oracle_s = time.perf_counter() - t0
    log(f"oracle ready in {oracle_s:.0f} s" + (f"; held-out accuracy {min(oracle_acc.values()):.2%} (worst label)" if oracle_acc else ""))
    results = {}
    with tempfile.TemporaryDirectory(prefix="causalvae-bench-") as tmp:
        data = load_dataset(generate("scenes", Path(tmp) / "scenes", args.scenes, seed=args.seed), split="train")
        g = data.graph
        s = ancestral(g, 500, seed=args.seed + 1)
        eval_labels = torch.from_numpy(np.stack([s.values[c] for c in g.observed], 1).astype(np.int64))
        for name in names:
            contender = Contender(name, g, seed=args.seed, max_log_scale=args.max_log_scale if name == "ours" else None)
            results[name] = race(contender, data, oracle, eval_labels, minutes=args.minutes, every=args.eval_every, target=args.target, seed=args.seed, log=log)

    cap = args.minutes * 60
    figs = []
    for name, r in results.items():
        t = r["seconds_to_target"]
        last = r["curve"][-1]["readback"]
        label = f"causalvae (default architecture, max log-scale {args.max_log_scale:g})" if name == "ours" and args.max_log_scale is not None else LABELS[name]
        desc = f"{label}: seconds of training until {args.target:.0%} of decoded samples are read back correctly" + ("" if t is not None else f" (not reached in {args.minutes:g} min)")
        figs.append(Figure(f"quality.{name}.seconds", t if t is not None else math.inf, "s", desc, extra={"reached": t is not None}))
        figs.append(Figure(f"quality.{name}.final_readback", last, "prob", f"{label}: read-back rate at the last check ({r['curve'][-1]['seconds']:.0f} s, {r['steps']} steps)"))
    if "ours" in results and len(results) > 1:
        ours = results["ours"]["seconds_to_target"]
        others = {n: r["seconds_to_target"] for n, r in results.items() if n != "ours"}
        # Time ratio baseline / ours; a model that never reached the target counts as the cap,
        # which makes the ratio a bound (lower if only the baseline failed).
        reached = [t for t in others.values() if t is not None]
        if ours is None and reached:
            value, bound = min(reached) / cap, "upper bound: ours did not reach the target, counted at the cap"
        elif ours is None:
            value, bound = math.nan, "no model reached the target"
        else:
            best = min((t if t is not None else cap) for t in others.values())
            value = best / ours
            bound = "exact" if all(t is not None for t in others.values()) else "lower bound: a baseline did not reach the target, counted at the cap"
        figs.append(Figure("quality.ours_vs_fastest_baseline", value, "x", f"time to quality, the faster baseline / ours ({bound})", target=(">=", 3.0)))
    print_table(figs)
    fig_path = Path(args.figure) if args.figure else Path(args.out).with_suffix(".png")
    notes = [
        f"torch threads: {torch.get_num_threads()}; the clock counts training only (checks excluded)",
        f"oracle: {'loaded from ' + args.oracle if args.oracle else f'trained in {oracle_s:.0f} s'}",
        f"data: {args.scenes} rendered scenes (training split), the same batches order seed for every model",
    ]
    write_results(args.out, "quality", figs, notes=notes, curves={n: r["curve"] for n, r in results.items()},
                  settings={"minutes": args.minutes, "eval_every_s": args.eval_every, "target": args.target, "eval_pictures": 500})
    names = {n: (f"causalvae (default architecture, max log-scale {args.max_log_scale:g})" if n == "ours" and args.max_log_scale is not None else LABELS[n]) for n in results}
    figure(results, args.target, args.minutes, fig_path, names)  # after the results are safe on disk
    return 0


if __name__ == "__main__":
    sys.exit(main())
