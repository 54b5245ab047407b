"""How closely the rendered dSprites grid reproduces real dSprites images.

Run from the repository root::

    .venv/bin/python bench/bench_sprites_real.py --out bench/results/sprites_real.json

The only real dSprites pixels at hand are the 160 frames of ``dsprites_frames_even.gif``
(every second frame of ``dsprites.gif`` from the official repository, deepmind/dsprites-dataset),
kept beside the repository in ``../shared/reference/`` and never copied into it
(``--frames`` or the environment variable ``CAUSALVAE_DSPRITES_FRAMES`` name another copy).
For each frame it finds the grid image that overlaps it best
(``causalvae.worlds.sprites.dsprites.best_matches``: intersection over union of the 1-pixels,
searched over the (shape, scale, orientation) triples whose area and bounding box are close
to the frame's, at the positions within two classes of where the centroids meet; every
image tried is an exact grid image, so each IoU is a lower bound of the best over the whole
grid), and reports:

- ``sprites_real.iou.mean`` and ``sprites_real.iou.min``: the best IoU per frame, averaged
  and at its worst (targets >= 0.99 and >= 0.95);
- ``sprites_real.exact``: the share of frames with an exact match (IoU 1);
- ``sprites_real.hist.*``: how many frames fall in each IoU band;
- ``sprites_real.seconds``: the search's wall-clock time, one process.

The per-frame matches (IoU and factor classes) are written under ``matches``, and a figure
(``--figure``, default ``docs/img/sprites_real_match.png``) shows the worst frames and a
spread of others, each as real frame | best grid match | difference (white: both, red: the
real frame only, cyan: the grid image only). A script, not a test: it never fails on a
missed target, it reports it.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from _common import Figure, print_table, write_results

from causalvae.io import atomic_write_bytes
from causalvae.worlds.sprites import dsprites
from causalvae.pictures import contact_sheet

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FRAMES = ROOT.parent / "shared" / "reference" / "dsprites_frames_even.gif"
#: IoU bands of the histogram: [lo, hi) each, the last one is exactly 1.
BANDS = [(0.0, 0.9), (0.9, 0.95), (0.95, 0.99), (0.99, 1.0)]


def difference(real: np.ndarray, ours: np.ndarray) -> np.ndarray:
    """An RGB picture of two binary images: white where both are 1, red where only the real
    one is, cyan where only ours is."""
    r, o = real.astype(bool), ours.astype(bool)
    out = np.zeros(real.shape + (3,), dtype=np.uint8)
    out[r & o] = 255
    out[r & ~o] = (255, 40, 40)
    out[~r & o] = (40, 220, 255)
    return out


def figure(frames: np.ndarray, iou: np.ndarray, classes: np.ndarray, rows: int = 6) -> bytes:
    """PNG bytes: ``2 * rows`` frames, two triplets a row: the worst frames by IoU, then an
    even spread of the others."""
    order = np.argsort(iou, kind="stable")
    worst = order[:rows].tolist()
    others = [k for k in range(len(frames)) if k not in worst]
    picks = worst + [others[k] for k in np.linspace(0, len(others) - 1, rows).round().astype(int).tolist()]
    pv = dsprites.possible_values()
    tiles, captions = [], []
    for k in picks:
        real = frames[k]
        c = classes[k]
        ours = dsprites.image(c)
        name = dsprites.SHAPES[int(c[1])]
        deg = np.degrees(pv["orientation"][int(c[3])])
        tiles += [np.repeat(real[..., None] * 255, 3, axis=-1), np.repeat(ours[..., None] * 255, 3, axis=-1), difference(real, ours)]
        captions += [
            f"real frame {k}",
            f"grid: {name} s={pv['scale'][int(c[2])]:.1f} or={int(c[3])} ({deg:.0f} deg) x={int(c[4])} y={int(c[5])}",
            f"IoU {iou[k]:.3f}, {int((real != ours).sum())} px differ",
        ]
    img = contact_sheet(np.stack(tiles).astype(np.uint8), captions, columns=6, scale=3)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=Path, default=None,
                    help="the GIF of real frames (default: $CAUSALVAE_DSPRITES_FRAMES or ../shared/reference/dsprites_frames_even.gif)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/sprites_real.json"), help="result JSON file")
    ap.add_argument("--figure", type=Path, default=Path("docs/img/sprites_real_match.png"), help="figure PNG ('' for none)")
    args = ap.parse_args(argv)
    path = args.frames or Path(os.environ.get("CAUSALVAE_DSPRITES_FRAMES") or DEFAULT_FRAMES)
    if not path.is_file():
        print(f"{path}: no such file (the real dSprites frames; pass --frames or set CAUSALVAE_DSPRITES_FRAMES)", file=sys.stderr)
        return 2
    frames = dsprites.read_frames(path)
    t0 = time.perf_counter()
    iou, classes = dsprites.best_matches(frames)
    seconds = time.perf_counter() - t0
    n = len(frames)
    figures = [
        Figure("sprites_real.iou.mean", float(iou.mean()), "IoU", f"best IoU per real frame against the grid, mean over the {n} frames",
               target=(">=", 0.99)),
        Figure("sprites_real.iou.min", float(iou.min()), "IoU", "best IoU per real frame, the worst frame", target=(">=", 0.95)),
        Figure("sprites_real.exact", float((iou == 1).mean()), "share", "frames with an exact match in the grid (IoU 1)"),
    ]
    for lo, hi in BANDS:
        count = int(((iou >= lo) & (iou < hi)).sum())
        figures.append(Figure(f"sprites_real.hist.{lo:g}_{hi:g}", count, "frames", f"frames whose best IoU is in [{lo:g}, {hi:g})"))
    figures.append(Figure("sprites_real.hist.1", int((iou == 1).sum()), "frames", "frames whose best IoU is 1"))
    figures.append(Figure("sprites_real.seconds", seconds, "s", f"the search for the {n} frames' best matches, one process"))
    notes = [
        f"Frames: {path.name}, {n} real 64x64 frames (every second frame of the official dsprites.gif).",
        "Search: dsprites.best_matches (triples with area within 15% and bounding box within 2 px of the "
        "frame's, positions within 2 classes of the centroid alignment); each IoU is a lower bound of the "
        "frame's best over the whole grid, exact when 1.",
    ]
    matches = [{"frame": k, "iou": round(float(iou[k]), 6), "classes": classes[k].tolist()} for k in range(n)]
    write_results(args.out, "sprites_real", figures, notes, matches=matches)
    if str(args.figure):
        atomic_write_bytes(args.figure, figure(frames, iou, classes))
        print(f"wrote {args.figure}", file=sys.stderr)
    print_table(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
