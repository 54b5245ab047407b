"""Benchmark of the dSprites factor grid writer (``causalvae.worlds.sprites.dsprites.write_grid``).

Run from the repository root::

    .venv/bin/python bench/bench_grid.py --out bench/results/grid.json

It writes the whole grid (737,280 images, about 3.1 GB) in a child process, the way
``causalvae generate dsprites`` does, and reports:

- ``grid.write_s``: the wall-clock seconds of ``write_grid`` in the child, cold (it also
  scans the 702 distinct sprites) and including the latents, the metadata and the final rename
  (target <= 60 s on the reference CPU, 2 cores);
- ``grid.peak_rss_mb``: the child's peak resident memory, ``ru_maxrss`` of
  ``resource.getrusage(RUSAGE_CHILDREN)`` read after it exits, interpreter and numpy
  included (target <= 1 GB); the child does nothing but write the grid;
- ``grid.process_s``: the child's whole run, interpreter start-up and imports included;
- ``grid.images_per_s``, ``grid.size_gb``: throughput and size on disk;
- ``grid.sprites_s``: scanning the 702 distinct sprites (orientation 39 is 0) on their
  sub-pixel lattices alone (cache cleared), for information;
- ``grid.spot_check_mismatches``: images (of 2,000 random ones) whose bytes differ from
  the renderer's ``images()`` of their classes (must be 0; ``images()`` draws most of them
  alone, not from a lattice, so this also checks that both give the same pixels).

The last two are measured in the parent after the child has exited.

The grid goes to ``--dir`` (default ``out/bench-grid``) and is deleted afterwards unless
``--keep``. A script, not a test: it never fails on a missed target, it reports it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

TARGET_S = 60.0
TARGET_MB = 1024.0


def child(grid_dir: Path) -> int:
    """Write the grid and nothing else; print the time measured inside the process as JSON."""
    t0 = time.perf_counter()
    from causalvae.worlds.sprites import dsprites as d

    t1 = time.perf_counter()
    d.write_grid(grid_dir, force=True)
    print(json.dumps({"write_s": time.perf_counter() - t1, "import_s": t1 - t0}))
    return 0


def check(grid_dir: Path) -> tuple[int, float, int]:
    """In the parent, after the child exits: spot-check 2,000 random images against the
    renderer, time the 720 sprites alone, and measure the directory's size."""
    import numpy as np

    from causalvae.worlds.sprites import dsprites as d

    g = d.load_grid(grid_dir)
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(d.N_IMAGES, 2000, replace=False))
    got = d.read_images(grid_dir, idx)
    mismatches = int((got != d.images(g["latents_classes"][idx])).any(axis=(1, 2)).sum())
    d._lattice.cache_clear()
    t = time.perf_counter()
    for sh in range(3):
        for sc in range(6):
            for o in range(39):  # orientation 39 is drawn as 0
                d._lattice(sh, sc, o)
    sprites_s = time.perf_counter() - t
    size = sum(p.stat().st_size for p in grid_dir.iterdir())
    return mismatches, sprites_s, size


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results/grid.json"), help="result JSON file")
    ap.add_argument("--dir", type=Path, default=Path("out/bench-grid"), help="where the grid is written")
    ap.add_argument("--keep", action="store_true", help="keep the written grid")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        return child(args.child)

    from _common import Figure, print_table, write_results

    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", str(args.dir)], capture_output=True, text=True)
    process_s = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"the grid writer failed (exit {proc.returncode})")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kilobytes on Linux
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["mismatches"], res["sprites_s"], res["size"] = check(args.dir)
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)
    from causalvae.worlds.sprites.dsprites import N_IMAGES

    figures = [
        Figure("grid.write_s", res["write_s"], "s", f"write_grid: all {N_IMAGES:,} images, latents, metadata, atomic rename (cold)",
               target=("<=", TARGET_S)),
        Figure("grid.peak_rss_mb", peak_kb / 1024, "MB", "peak resident memory of the writing process (ru_maxrss)",
               target=("<=", TARGET_MB)),
        Figure("grid.process_s", process_s, "s", "the writing process from start to exit (interpreter and imports included)"),
        Figure("grid.images_per_s", N_IMAGES / res["write_s"], "images/s", "write_grid throughput"),
        Figure("grid.size_gb", res["size"] / 1e9, "GB", "the grid directory on disk (imgs.npy, latents, metadata)"),
        Figure("grid.sprites_s", res["sprites_s"], "s", "scanning the 702 distinct sprites alone (each on its 1024 x 1024 sub-pixel lattice), cache cleared"),
        Figure("grid.spot_check_mismatches", res["mismatches"], "images", "of 2,000 random images, those differing from images() of their classes",
               target=("<=", 0)),
    ]
    notes = [
        "The grid is written by a child process (the same code as `causalvae generate dsprites`); its peak "
        "resident memory is ru_maxrss of getrusage(RUSAGE_CHILDREN) after it exits.",
        "Images are streamed to imgs.npy one (shape, scale, orientation) block of 1,024 positions (4 MB) at a "
        "time through a file handle, so written pages belong to the page cache, not to the process.",
        f"Written to {args.dir} on the local disk; the file system's write-back speed bounds write_s.",
        f"1-minute load average at start: {load0:.2f} (other processes competing for the CPUs).",
    ]
    write_results(args.out, "grid", figures, notes)
    print_table(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
