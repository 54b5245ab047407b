"""Benchmark of the morpho world's renderer: does a redrawn digit measure what it was asked?

Run from the repository root::

    .venv/bin/python bench/bench_morpho.py --out bench/results/morpho.json

It draws ``--n`` units (default 2,000) from the ``morpho`` graph (thickness and intensity
from DeepSCM's mechanisms), gives each a source digit uniform over the 5,000, renders them
with the world's renderer and measures every written picture again with the Morpho-MNIST
measurement (:mod:`causalvae.worlds.morpho.morphology`):

- ``morpho.thickness.mae``: mean absolute error of the measured thickness against the target,
  in pixels (target <= 0.1 px), with its 95th percentile, maximum and the share within 0.1 px;
- ``morpho.intensity.mae``: the same for the bright pixels' median against the target intensity;
- ``morpho.null.pixel_mae``: each of ``--null`` sources redrawn at its own measured thickness
  and intensity, against the original MNIST picture (mean absolute grey-level difference, 0-255):
  what the redrawing itself changes;
- ``morpho.render.cpu_ms`` and ``morpho.render.wall_ms``: per digit, one process, one thread
  (CPU time is the figure to compare when other processes load the machine).

It also draws the contact sheet ``--sheet`` (default ``docs/img/morpho_sheet.png``): one test
digit at thicknesses 1.5-5 px (rows) and intensities 64-255 (columns), each tile captioned
with its measured thickness. It is a script, not a test: a missed target is reported, not raised.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from _common import Figure, format_table, print_table, write_results

from causalvae import continuous as C
from causalvae import worlds
from causalvae.io import atomic_write_text
from causalvae.worlds.morpho import digits, morphology
from causalvae.worlds.morpho.world import PAD

THICKNESSES = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
INTENSITIES = (64, 96, 128, 160, 192, 224, 255)
#: A render with fewer bright pixels than this is a digit all but erased (a source's median is about 100).
ERASED = 20


def fidelity(n: int, seed: int) -> tuple[list[Figure], dict]:
    world = worlds.get("morpho")
    renderer = world.renderer()
    images, classes = digits.sources()
    rng = np.random.default_rng(seed)
    units = C.sample(world.graph(), n, rng)
    source = rng.integers(0, digits.COUNT, n)
    values = {"digit": classes[source], "thickness": units.values["thickness"], "intensity": units.values["intensity"]}
    cpu, wall = time.process_time(), time.perf_counter()
    pictures = renderer.render(values, source[:, None].astype(np.float64))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    crops = pictures[:, 0, PAD:-PAD, PAD:-PAD]
    thick = np.array([morphology.thickness(p) for p in crops])
    ink = np.array([morphology.intensity(p) for p in crops])
    te = np.abs(thick - values["thickness"])
    ie = np.abs(ink - values["intensity"])
    bright = (crops >= 0.5 * values["intensity"][:, None, None]).sum((1, 2))
    figures = [
        Figure("morpho.thickness.mae", te.mean(), "px", f"measured vs target stroke thickness, mean absolute error over {n} renders", target=("<=", 0.1)),
        Figure("morpho.thickness.p95", np.percentile(te, 95), "px", "measured vs target thickness, 95th percentile of the absolute error"),
        Figure("morpho.thickness.max", te.max(), "px", "measured vs target thickness, largest absolute error"),
        Figure("morpho.thickness.within_0.1", (te <= 0.1).mean(), "share", "renders measured within 0.1 px of their target"),
        Figure("morpho.intensity.mae", ie.mean(), "grey levels", "bright pixels' median vs target intensity (0-255), mean absolute error"),
        Figure("morpho.intensity.max", ie.max(), "grey levels", "bright pixels' median vs target intensity, largest absolute error"),
        Figure("morpho.render.nearly_erased", (bright < ERASED).mean(), "share",
               f"renders with fewer than {ERASED} pixels at half their target intensity or more: digits all but erased (a thick source thinned far), whatever their measured thickness"),
        Figure("morpho.render.cpu_ms", 1000 * cpu / n, "ms", "CPU time per digit (upscale, morphology, measurement of each tried radius), one thread"),
        Figure("morpho.render.wall_ms", 1000 * wall / n, "ms", "wall-clock time per digit, one process (depends on the machine's load)"),
    ]
    worst = int(np.argmax(te))
    return figures, {"worst": {"source": int(source[worst]), "target": float(values["thickness"][worst]), "measured": float(thick[worst])}}


def null_redraw(count: int, seed: int) -> Figure:
    """Sources redrawn at their own measured thickness and intensity, against themselves."""
    images, _ = digits.sources()
    rng = np.random.default_rng(seed + 1)
    diffs = []
    for s in rng.choice(digits.COUNT, count, replace=False):
        x = images[s] / 255.0
        picture, _ = morphology.morph(x, morphology.thickness(x), morphology.intensity(images[s].astype(np.float64)))
        diffs.append(np.abs(picture.astype(np.float64) - images[s]).mean())
    return Figure("morpho.null.pixel_mae", float(np.mean(diffs)), "grey levels",
                  f"{count} sources redrawn at their own thickness and intensity vs the original MNIST picture, mean |difference| per pixel")


def contact_sheet(path: Path, source: int) -> None:
    from PIL import Image, ImageDraw

    images, classes = digits.sources()
    x = images[source] / 255.0
    scale, tile, head = 3, 28 * 3, 16
    sheet = Image.new("L", (48 + len(INTENSITIES) * (tile + 4), 2 * head + len(THICKNESSES) * (tile + head)), 255)
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 2), f"MNIST source {source} (a {classes[source]}): thickness (rows, px) x intensity (columns)", fill=0)
    for j, ink in enumerate(INTENSITIES):
        draw.text((48 + j * (tile + 4) + tile // 2 - 8, head + 2), str(ink), fill=0)
    for i, target in enumerate(THICKNESSES):
        y = 2 * head + i * (tile + head)
        draw.text((4, y + tile // 2 - 6), f"{target:g}", fill=0)
        for j, ink in enumerate(INTENSITIES):
            picture, measured = morphology.morph(x, target, float(ink))
            sheet.paste(Image.fromarray(picture).resize((tile, tile), Image.NEAREST), (48 + j * (tile + 4), y))
            draw.text((48 + j * (tile + 4) + 2, y + tile + 1), f"measured {measured:.2f}", fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    sheet.save(tmp, format="PNG")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="renders measured (default 2000)")
    ap.add_argument("--null", type=int, default=200, help="sources redrawn at their own thickness and intensity (default 200)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/results/morpho.json"), help="result JSON file (a .md beside it)")
    ap.add_argument("--sheet", type=Path, default=Path("docs/img/morpho_sheet.png"), help="contact sheet PNG ('' for none)")
    ap.add_argument("--sheet-source", type=int, default=None, help="the sheet's source digit (default: the first test source of class 3)")
    args = ap.parse_args(argv)
    loadavg = os.getloadavg()[0]
    figures, extra = fidelity(args.n, args.seed)
    figures.append(null_redraw(args.null, args.seed))
    notes = [f"load average at start: {loadavg:.1f} on {os.cpu_count()} cores (other processes shared the machine)",
             f"the worst render: source {extra['worst']['source']}, target {extra['worst']['target']:.3f} px, measured {extra['worst']['measured']:.3f} px"]
    write_results(args.out, "morpho", figures, notes, **extra)
    atomic_write_text(args.out.with_suffix(".md"), "# Morpho renderer fidelity\n\n```text\n" + format_table(figures) + "\n```\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    if str(args.sheet):
        source = args.sheet_source if args.sheet_source is not None else int(digits.members()[(3, digits.TEST)][0])
        contact_sheet(args.sheet, source)
    print_table(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
