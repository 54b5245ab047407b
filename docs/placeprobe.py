"""Where the decoder of a ``--place`` run moves what it draws: the shift its placer gives
(in pixels, along x) for each posX bin, averaged over codes z drawn from the prior with posY
held at bin 3, and the spread of that shift over z within a bin. Writes a Markdown table.

    python docs/placeprobe.py runs/sprites-place runs/sprites-place-seed1 \\
        --names "seed 0,seed 1" --out docs/reports/sprites/place-probe.md

A placer that does the placing moves the sprite further right bin after bin, by about the
same step; where the drawing itself (from z) takes part of the placing, the steps break.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from causalvae.errors import CausalVAEError
from causalvae.io import atomic_write_text
from causalvae.run import Run


def probe(run: str, n: int = 500, seed: int = 0, y_bin: int = 3) -> tuple[list[float], float]:
    vae = Run.open(Path(run)).model
    dec, parents = vae.decoder, vae.graph.image.parents
    placed = [parents[i] for i in vae.config.place]
    if placed != ["posX", "posY"]:
        raise CausalVAEError(f"{run}: its decoder is not moved by posX and posY (moved by: {', '.join(placed) or 'nothing'})")
    nx, ny = vae.graph.card("posX"), vae.graph.card("posY")
    torch.manual_seed(seed)
    z = torch.randn(n, vae.config.z_dim)
    half = vae.config.image_size / 2  # a shift of 1 is half the picture
    shifts = []
    with torch.no_grad():
        for b in range(nx):
            p = torch.zeros(n, nx + ny)
            p[:, b] = 1.0
            p[:, nx + y_bin] = 1.0
            shifts.append(dec.placer(torch.cat([z, p], -1))[:, 0] * half)
    s = torch.stack(shifts)
    return [float(v) for v in s.mean(1)], float(s.std(1).mean())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--names", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    names = [x.strip() for x in a.names.split(",")]
    if len(names) != len(a.runs):
        raise SystemExit(f"--names gives {len(names)} names for {len(a.runs)} runs")
    rows = [probe(r) for r in a.runs]
    nx = len(rows[0][0])
    lines = [
        "The placer's shift along x (pixels; negative: left) for each posX bin, the mean over 500 codes z drawn from the prior (posY bin 3), and its standard deviation over z within a bin (the mean over bins):",
        "",
        "| run | " + " | ".join(f"posX {b}" for b in range(nx)) + " | sd over z |",
        "|---|" + "---:|" * (nx + 1),
    ]
    for name, (means, sd) in zip(names, rows):
        lines.append(f"| {name} | " + " | ".join(f"{m:+.1f}" for m in means) + f" | {sd:.2f} |")
    atomic_write_text(Path(a.out), "\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
