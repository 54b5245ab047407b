"""Where the decoder of a ``--place`` run moves what it draws: the shift its placer gives
(in pixels, along x) for each posX bin, averaged over codes z drawn from the prior with posY
held at bin 3, and the spread of that shift over z within a bin. Writes a Markdown table.

    python docs/placeprobe.py runs/sprites-place runs/sprites-place-seed1 \\
        --names "seed 0,seed 1" --out docs/reports/sprites/place-probe.md

A placer that does the placing moves the sprite further right bin after bin, by about the
same step; where the drawing itself (from z) takes part of the placing, the steps break.

A run with ``--place-mode similarity`` gets its own table (``--similarity``): for each placed
parent and each of its values, the part of the transform that parent should drive (the angle
for orientation, the scale factor for scale, the shift for posX and posY), the mean over
codes z drawn from the prior with the other placed parents held at their middle value, and
the spread over z within a value (the mean over values).

    python docs/placeprobe.py runs/sprites-similar --names "similarity" --similarity \
        --out docs/reports/sprites/similarity-probe.md
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


#: For each parent a similarity placer may move: which of its four outputs (x, y, log-scale,
#: angle) that parent should drive, the unit it is shown in, and how to show it.
SIMILARITY_PART = {
    "posX": (0, "shift along x, pixels", lambda v, half: v * half),
    "posY": (1, "shift along y, pixels (down)", lambda v, half: v * half),
    "scale": (2, "scale factor", lambda v, half: torch.exp(v)),
    "orientation": (3, "angle, degrees", lambda v, half: torch.rad2deg(v)),
}


def probe_similarity(run: str, n: int = 500, seed: int = 0) -> list[tuple[str, str, list[float], float]]:
    """Per placed parent: (name, unit, mean of its part of the transform per value, mean sd over z)."""
    vae = Run.open(Path(run)).model
    dec, parents = vae.decoder, vae.graph.image.parents
    if getattr(vae.config, "place_mode", "shift") != "similarity":
        raise CausalVAEError(f"{run}: its decoder is not placed with --place-mode similarity")
    placed = [parents[i] for i in vae.config.place]
    cards = [vae.graph.card(p) for p in placed]
    offsets = [sum(cards[:k]) for k in range(len(cards))]
    torch.manual_seed(seed)
    z = torch.randn(n, vae.config.z_dim)
    half = vae.config.image_size / 2
    out = []
    with torch.no_grad():
        for k, name in enumerate(placed):
            if name not in SIMILARITY_PART:
                continue
            part, unit, show = SIMILARITY_PART[name]
            values = []
            for v in range(cards[k]):
                p = torch.zeros(n, sum(cards))
                for j, c in enumerate(cards):
                    p[:, offsets[j] + (v if j == k else c // 2)] = 1.0
                values.append(show(dec.placer(torch.cat([z, p], -1))[:, part], half))
            s = torch.stack(values)
            out.append((name, unit, [float(m) for m in s.mean(1)], float(s.std(1).mean())))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--names", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--similarity", action="store_true", help="runs placed with --place-mode similarity: a table of each placed parent's part of the transform")
    a = ap.parse_args(argv)
    names = [x.strip() for x in a.names.split(",")]
    if len(names) != len(a.runs):
        raise SystemExit(f"--names gives {len(names)} names for {len(a.runs)} runs")
    if a.similarity:
        lines = [
            "What each placed parent's value does to the drawing: its part of the placer's transform, the mean over 500 codes z drawn from the prior (the other placed parents at their middle value), and its standard deviation over z within a value (the mean over values):",
            "",
            "| run | parent | part of the transform | " + " | ".join(f"value {v}" for v in range(8)) + " | sd over z |",
            "|---|---|---|" + "---:|" * 9,
        ]
        for name, run in zip(names, a.runs):
            for parent, unit, means, sd in probe_similarity(run):
                cells = [f"{m:+.2f}" if "scale" in unit else f"{m:+.1f}" for m in means] + [""] * (8 - len(means))
                lines.append(f"| {name} | {parent} | {unit} | " + " | ".join(cells) + f" | {sd:.2f} |")
        atomic_write_text(Path(a.out), "\n".join(lines) + "\n")
        print(f"wrote {a.out}")
        return
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
