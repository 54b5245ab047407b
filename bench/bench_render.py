"""Benchmark of the scene renderer (``causalvae.worlds.scenes.SceneRenderer``).

Run from the repository root::

    .venv/bin/python bench/bench_render.py --out bench/results/render.json

For each resolution (64, 96, 128) it renders ``--n`` scenes (default 20,000) with random
labels (uniform over the 432 combinations) and random style (uniform in the default
``StyleRanges``), in one ``render`` call, and reports:

- ``render.<res>.scenes_per_s``: warm throughput, the median of ``--repeat`` timed runs
  after the sprite cache is filled (target >= 5,000 scenes/s at 64x64, one process);
- ``render.<res>.cold_s``: the first call, which also draws every sprite the batch needs
  (42 poses x 16 scale levels at most), in seconds;
- ``render.<res>.neutral_scenes_per_s``: warm throughput with the neutral style (whole-pixel
  anchors, no sub-pixel resampling; the ``--no-style`` world), for information;
- ``render.<res>.sprite_cache_mb``: memory held by the sprites cached for that resolution.

One process, one thread: the renderer is a Python loop over scenes with numpy work per
sprite. It is a script, not a test: it never fails on a missed target, it reports it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from _common import Figure, print_table, timeit, write_results

from causalvae.worlds.scenes import render as scenes
from causalvae.worlds.scenes import LABELS, VALUES, SceneRenderer

TARGET_64 = 5000.0


def random_batch(r: SceneRenderer, n: int, seed: int):
    rng = np.random.default_rng(seed)
    labels = {k: rng.integers(0, len(VALUES[k]), n) for k in LABELS}
    return labels, r.sample_style(n, rng)


def cache_megabytes(resolution: int, labels, style) -> float:
    """Bytes of the distinct sprites the batch used (they are all cached after a render)."""
    act = ("Attack", "Taunt", "Walk")
    rea = ("Dying", "Hurt", "Idle", "Attack")
    keys = set()
    lvl_a = np.rint(style["actor_scale"] / scenes.SCALE_STEP).astype(int)
    lvl_r = np.rint(style["reactor_scale"] / scenes.SCALE_STEP).astype(int)
    for i in range(len(lvl_a)):
        keys.add((resolution, int(labels["actor"][i]), int(labels["actor_type"][i]), act[labels["action"][i]], False, int(lvl_a[i])))
        keys.add((resolution, int(labels["reactor"][i]), int(labels["reactor_type"][i]), rea[labels["reaction"][i]], True, int(lvl_r[i])))
    return sum(scenes._sprite(*k).z.nbytes for k in keys) / 2**20, len(keys)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results/render.json"), help="result JSON file")
    ap.add_argument("--n", type=int, default=20_000, help="scenes per render call")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per figure (median reported)")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[64, 96, 128])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t_start = time.perf_counter()
    figures: list[Figure] = []
    notes = [
        f"{args.n} scenes per render call, labels uniform over the 432 combinations, style uniform in "
        "the default StyleRanges (offset_x +-0.06, offset_y +-0.04, scale 0.85..1.15, background 0..1).",
        "Warm figures: median of the timed runs after one untimed call that fills the sprite cache. "
        "One process, one thread.",
        f"Scale is quantised to {scenes.SCALE_STEP} for the sprite cache; positions are sub-pixel (bilinear).",
        f"1-minute load average at start: {load0:.2f} (other processes competing for the CPUs).",
    ]
    for res in args.resolutions:
        scenes._sprite.cache_clear()
        r = SceneRenderer(res)
        labels, style = random_batch(r, args.n, args.seed)
        t0 = time.perf_counter()
        r.render(labels, style)
        cold = time.perf_counter() - t0
        sec = timeit(lambda: r.render(labels, style), repeat=args.repeat, warmup=0)
        neutral = r.neutral_style(args.n)
        sec_neutral = timeit(lambda: r.render(labels, neutral), repeat=args.repeat, warmup=1)
        mb, count = cache_megabytes(res, labels, style)
        figures += [
            Figure(f"render.{res}.scenes_per_s", args.n / sec, "scenes/s",
                   f"{res}x{res}, random labels and style, warm sprite cache",
                   target=(">=", TARGET_64) if res == 64 else None),
            Figure(f"render.{res}.cold_s", cold, "s",
                   f"{res}x{res}, first render call of {args.n} scenes, drawing the sprites it needs ({count})"),
            Figure(f"render.{res}.neutral_scenes_per_s", args.n / sec_neutral, "scenes/s",
                   f"{res}x{res}, random labels, neutral style (whole-pixel anchors), warm"),
            Figure(f"render.{res}.sprite_cache_mb", mb, "MB", f"{res}x{res}, memory of the {count} cached sprites"),
        ]
        print(f"{res}: {args.n / sec:,.0f} scenes/s (cold call {cold:.2f} s)", file=sys.stderr)
    notes.append(f"Whole benchmark took {time.perf_counter() - t_start:.0f} s.")
    write_results(args.out, "render", figures, notes)
    print_table(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
