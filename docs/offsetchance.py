"""What the sprites report's "counterfactual IoU to the true render" is when the offsets
inside the bins are guessed: for the first validation pictures and every single-factor
intervention the report makes, the true counterfactual render (the recorded noise and style,
the graph's values under the intervention) against the render of the same values with a
style drawn anew (the offsets of orientation, posX and posY inside their bins, uniform, as
the world draws them). A second column fixes the offsets at the middle of each bin
instead: a model that draws every label right and keeps nothing of the offsets through an
intervention draws some fixed offset, and scores about that; one that keeps them exactly
scores 1. No model and no oracle take part. Writes a Markdown table beside the figures of validation reports.

    python docs/offsetchance.py --data data/sprites \\
        --reports docs/reports/sprites/validation/film.json,... --names "the recipe,..." \\
        --out docs/reports/sprites/offset-chance.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from causalvae import worlds
from causalvae.data import load
from causalvae.evaluate import _intervention_values
from causalvae.io import atomic_write_text
from causalvae.noise import propagate
from causalvae.queries import act


#: A fixed guess of the offsets inside the bins (orientation 0..4, posX 0..3, posY 0..3): the
#: middle of each bin. A model that keeps nothing of the offsets draws some fixed offset,
#: which scores more than a random one.
MIDDLE = (2, 1, 1)


def chance(data: str, n: int = 200, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Per intervened factor: the mean over its values (each the mean over ``n`` pictures) of
    the best IoU of the true counterfactual render to the same values drawn with another style
    drawn at random, and with the offsets fixed at :data:`MIDDLE`."""
    ds = load(data, split="val", truth=True, verify=False)
    world = worlds.for_dataset(ds)
    truth = world.renderer(int(ds.manifest["resolution"][0]))
    graph = ds.graph
    rows = ds.indices[: min(n, len(ds))]  # the split's first pictures, as the report takes them
    cols = list(ds.manifest["truth_columns"])
    noise = {v: ds.truth_noise[rows, cols.index(v)] for v in cols}
    style = ds.truth_style[rows]
    rng = np.random.default_rng(seed)
    out = {}
    for v in graph.names:
        means = []
        for val in _intervention_values(graph, v, seed):
            values = propagate(graph, noise, act(graph, {v: val}))
            other = truth.render(values, truth.sample_style(len(rows), rng))[:, 0]
            fixed = truth.render(values, np.tile(np.asarray(MIDDLE, dtype=np.float64), (len(rows), 1)))[:, 0]
            means.append((float(truth.best_iou(values, style, other).mean()), float(truth.best_iou(values, style, fixed).mean())))
        out[v] = tuple(float(x) for x in np.mean(means, 0))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--reports", required=True, help="comma-separated validation report JSONs (docs/valeval.py)")
    ap.add_argument("--names", required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    paths, names = a.reports.split(","), [x.strip() for x in a.names.split(",")]
    if len(paths) != len(names):
        raise SystemExit(f"--names gives {len(names)} names for {len(paths)} reports")
    reports = [json.loads(Path(p).read_text()) for p in paths]
    guessed = chance(a.data, a.n)
    per = [r["counterfactual_factors"] for r in reports]
    factors = [f for f in guessed if all(f in p for p in per)]
    lines = [
        f"Counterfactual IoU to the true render (symmetry-aware), mean over each factor's values, on the first {a.n} validation pictures: each model's (its validation report), and the true counterfactual's values drawn with the offsets inside the bins drawn at random, or fixed at the middle of each bin (no model): `python docs/offsetchance.py`.",
        "",
        "| do | " + " | ".join(names) + " | every label right, offsets at random | every label right, offsets fixed at the middle |",
        "|---|" + "---:|" * (len(names) + 2),
    ]
    for f in factors:
        lines.append(f"| do({f}) | " + " | ".join(f"{p[f]['iou_to_true_render']:.3f}" for p in per) + f" | {guessed[f][0]:.3f} | {guessed[f][1]:.3f} |")
    lines.append("| mean of the rows above | " + " | ".join(f"{np.mean([p[f]['iou_to_true_render'] for f in factors]):.3f}" for p in per)
                 + f" | {np.mean([guessed[f][0] for f in factors]):.3f} | {np.mean([guessed[f][1] for f in factors]):.3f} |")
    atomic_write_text(Path(a.out), "\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
