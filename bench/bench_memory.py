"""Peak memory while training on a large dataset: 200,000 scenes, 2.5 GB of pictures.

Run from the repository root::

    .venv/bin/python bench/bench_memory.py --out bench/results/memory.json

Generates ``--scenes`` (200,000) 64x64 scenes with ``causalvae generate scenes`` into a
temporary directory, then runs ``causalvae train`` on them (the default model, ``--steps``
optimiser steps with a validation pass and checkpoints, as a user would) in a child
process, and samples the memory of that process and its children every 10 ms from
``/proc/PID/status``:

- ``memory.train.peak_rss_anon_mb``: the peak anonymous resident memory (``RssAnon``: heap,
  tensors, the Python objects); the dataset's memory-mapped pages are file-backed and do not
  count (they can be dropped by the kernel at any time). Target <= 2 GB.
- ``memory.train.peak_rss_file_mb``: the file-backed resident pages at the same time, for
  information (pages of the memory map that happen to be cached in RAM).
- ``memory.generate.peak_rss_anon_mb``: the same peak while the dataset is generated.
- ``memory.dataset_gb``: the size of the pictures on disk.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import Figure, print_table, write_results


def _status(pid: int) -> dict[str, int]:
    """kB fields of /proc/PID/status (RssAnon, RssFile, ...); empty once the process is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if rest.strip().endswith("kB"):
                    out[key] = int(rest.split()[0])
    except (OSError, ValueError):  # the process ended between listing and reading
        pass
    return out


def _tree(pid: int) -> list[int]:
    """The process and all its descendants (DataLoader workers, DDP ranks)."""
    pids, frontier = [pid], [pid]
    while frontier:
        p = frontier.pop()
        kids = []
        for children in Path(f"/proc/{p}/task").glob("*/children"):  # children of every thread
            try:
                kids += [int(k) for k in children.read_text().split()]
            except (OSError, ValueError):
                pass
        pids += kids
        frontier += kids
    return pids


def watch(cmd: list[str], interval: float = 0.01) -> dict[str, float]:
    """Run ``cmd``; return its exit code, seconds and the peaks (MB) of the tree's summed
    RssAnon and of RssFile."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = {"anon": 0, "file": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            stats = [_status(p) for p in _tree(proc.pid)]
            peak["anon"] = max(peak["anon"], sum(s.get("RssAnon", 0) for s in stats))
            peak["file"] = max(peak["file"], sum(s.get("RssFile", 0) for s in stats))
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, err = proc.communicate()
    stop.set()
    thread.join()
    if peak["anon"] == 0:
        raise SystemExit(f"no memory sample of {' '.join(cmd)} was taken (is /proc readable?)")
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.decode(errors='replace')[-2000:]}")
    return {"seconds": time.perf_counter() - t0, "anon_mb": peak["anon"] / 1024, "file_mb": peak["file"] / 1024}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--scenes", type=int, default=200_000)
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args(argv)
    cli = str(Path(sys.executable).with_name("causalvae"))
    with tempfile.TemporaryDirectory(prefix="causalvae-bench-") as tmp:
        data, run = Path(tmp) / "scenes", Path(tmp) / "run"
        gen = watch([cli, "generate", "scenes", "--n", str(args.scenes), "--seed", "0", "--out", str(data)])
        size = os.path.getsize(data / "images.npy") / 1e9
        train = watch([cli, "train", "--data", str(data), "--out", str(run), "--max-steps", str(args.steps),
                       "--val-limit", "1000", "--checkpoint-every", str(max(1, args.steps // 2)), "--no-progress"])
    figs = [
        Figure("memory.train.peak_rss_anon_mb", train["anon_mb"], "MB", f"peak anonymous resident memory of `causalvae train` on {args.scenes:,} scenes ({args.steps} steps, validation, checkpoints)", target=("<=", 2048.0)),
        Figure("memory.train.peak_rss_file_mb", train["file_mb"], "MB", "peak file-backed resident memory at the same time (cached pages of the memory map and libraries)"),
        Figure("memory.train.seconds", train["seconds"], "s", "wall time of that training run, start-up included"),
        Figure("memory.generate.peak_rss_anon_mb", gen["anon_mb"], "MB", f"peak anonymous resident memory of `causalvae generate scenes --n {args.scenes}`"),
        Figure("memory.generate.seconds", gen["seconds"], "s", f"wall time of generating {args.scenes:,} scenes"),
        Figure("memory.dataset_gb", size, "GB", "size of the pictures on disk (images.npy, memory-mapped)"),
    ]
    print_table(figs)
    write_results(args.out, "memory", figs, notes=["RssAnon and RssFile summed over the process tree, sampled every 10 ms from /proc/PID/status"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
