"""Training throughput and model FLOPs utilisation, against the tutorial's and the course's VAEs.

Run from the repository root::

    .venv/bin/python bench/bench_speed.py --out bench/results/speed.json

In one process:

1. **The hardware's peak**: a matmul probe (square float32 and bfloat16 matrices, doubling
   the size while a call takes under half a second; the best GFLOP/s seen). It is the
   denominator of every utilisation figure, measured in the same run.
2. **FLOPs per image** of one training step (forward and backward) of each model, counted by
   ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matmuls; the elementwise
   work of the likelihoods is not counted, so utilisation is, if anything, understated).
3. **Images per second** of one optimiser step of each model at its own batch size (ours 64,
   tutorial conv VAE 32, course MLP VAE 256), float32 timed interleaved over ``--repeat``
   rounds; then bf16 autocast. When the probe finds bf16 matmuls much slower than float32
   (a CPU without native bf16: the kernels are emulated), each bf16 step is timed once on a
   probe batch of 8 pictures, since a full batch would take minutes; the figure says so.
4. **Utilisation** = FLOPs per image x images/s / peak, at each precision; and the targets:
   ours at its best precision >= 3x the faster baseline at its best, and >= 40% of the
   machine's best peak (the bf16 peak on a CPU with native bf16; the float32 peak here if
   bf16 is emulated, both reported).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from _common import Figure, print_table, timeit, timeit_many, write_results
from _models import LABELS, NAMES, Contender, scene_batch


def matmul_peak(dtype: torch.dtype, max_n: int = 4096, budget: float = 1.0) -> tuple[float, int]:
    """Best GFLOP/s of an (n x n) @ (n x n) product, n doubling from 256 while one call takes
    under half a second; each size timed for about ``budget`` seconds. Returns (GFLOP/s, n)."""
    best, best_n, n = 0.0, 0, 256
    while n <= max_n:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        t0 = time.perf_counter()
        a @ b
        first = time.perf_counter() - t0
        calls = max(1, int(budget / max(first, 1e-6)))
        t0 = time.perf_counter()
        for _ in range(calls):
            a @ b
        per = (time.perf_counter() - t0) / calls
        gflops = 2 * n**3 / per / 1e9
        if gflops > best:
            best, best_n = gflops, n
        if per > 0.5:
            break
        n *= 2
    return best, best_n


def step_flops(c: Contender, images: torch.Tensor, labels: torch.Tensor) -> float:
    """FLOPs of one optimiser step (forward + backward) per image."""
    with FlopCounterMode(display=False) as counter:
        c.opt.zero_grad(set_to_none=True)
        c.loss(images, labels).backward()
    c.opt.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(images)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    peak = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    emulated = peak["bf16"][0] < 0.25 * peak["fp32"][0]
    g, images, labels = scene_batch(256, seed=0)
    models = {name: Contender(name, g, seed=0) for name in NAMES}
    batch = {name: (images[: m.batch_size], labels[: m.batch_size]) for name, m in models.items()}
    flops = {name: step_flops(m, *batch[name]) for name, m in models.items()}

    def stepper(m, b):
        return lambda: m.step(*b)

    seconds = {"fp32": timeit_many({n: stepper(m, batch[n]) for n, m in models.items()}, repeat=args.repeat)}
    ips = {(n, "fp32"): models[n].batch_size / s for n, s in seconds["fp32"].items()}
    bf16_batch = {}
    for name, m in models.items():
        m.bf16 = True
        b = (images[:8], labels[:8]) if emulated else batch[name]
        bf16_batch[name] = len(b[0])
        t = timeit(stepper(m, b), repeat=1 if emulated else max(1, args.repeat // 2))
        ips[(name, "bf16")] = len(b[0]) / t
        m.bf16 = False

    figs = [
        Figure("peak.fp32.gflops", peak["fp32"][0], "GFLOP/s", f"float32 matmul probe, best at n = {peak['fp32'][1]}"),
        Figure("peak.bf16.gflops", peak["bf16"][0], "GFLOP/s", f"bfloat16 matmul probe, best at n = {peak['bf16'][1]}"
               + (" (emulated: far below float32, no native bf16 on this CPU)" if emulated else "")),
    ]
    best = {}
    for name in NAMES:
        figs.append(Figure(f"train.{name}.gflop_per_image", flops[name] / 1e9, "GFLOP", f"{LABELS[name]}: FLOPs of one training step per image (flop_counter)"))
        for prec in ("fp32", "bf16"):
            rate = ips[(name, prec)]
            note = f"batch {models[name].batch_size}" if prec == "fp32" or not emulated else f"probe batch {bf16_batch[name]} (bf16 emulated)"
            figs.append(Figure(f"train.{name}.{prec}.images_per_s", rate, "images/s", f"{LABELS[name]}: optimiser steps, {prec}, {note}"))
            figs.append(Figure(f"train.{name}.{prec}.mfu", flops[name] * rate / (peak[prec][0] * 1e9), "of peak",
                               f"{LABELS[name]}: achieved FLOP/s / {prec} matmul peak"))
        # An emulated bf16 step is timed on a probe batch: it never competes for "best".
        best[name] = "fp32" if emulated else max(("fp32", "bf16"), key=lambda p: ips[(name, p)])
    fastest = max(NAMES[1:], key=lambda n: ips[(n, best[n])])
    ours = ips[("ours", best["ours"])]
    top = max(peak["fp32"][0], peak["bf16"][0])
    figs.append(Figure("train.ours_vs_fastest_baseline", ours / ips[(fastest, best[fastest])], "x",
                       f"images/s, ours at {best['ours']} / {LABELS[fastest]} at {best[fastest]} (the faster baseline)", target=(">=", 3.0)))
    figs.append(Figure("train.ours.mfu_of_best_peak", flops["ours"] * ours / (top * 1e9), "of peak",
                       f"ours at {best['ours']}: achieved FLOP/s / the machine's best matmul peak ({'fp32' if peak['fp32'][0] >= peak['bf16'][0] else 'bf16'}, {top:.0f} GFLOP/s)",
                       target=(">=", 0.40)))
    figs.append(Figure("train.ours.mfu_of_bf16_peak", flops["ours"] * ours / (peak["bf16"][0] * 1e9), "of peak",
                       f"ours at {best['ours']}: achieved FLOP/s / the bf16 matmul peak (above 1 when bf16 is emulated)"))
    print_table(figs)
    notes = [f"torch threads: {torch.get_num_threads()}",
             "images/s: one optimiser step (forward, backward, Adam) on a fixed batch of rendered 64x64 scenes; float32 steps of the three models timed interleaved"]
    if emulated:
        notes.append(f"bf16 matmuls run at {peak['bf16'][0]:.1f} GFLOP/s against {peak['fp32'][0]:.0f} in float32: this CPU has no native bf16 (no AVX512-BF16/AMX), so bf16 is each model's worse precision here")
    write_results(args.out, "speed", figs, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
