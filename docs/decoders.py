"""Draw docs/img/sprites_decoders_cf.png: the same test sprites under one intervention, as the
FiLM decoder and the spatial broadcast decoder draw their counterfactuals, beside the true
renders (the sprites' own recorded offsets inside the new bins).

The first ``--n`` test pictures whose position X is not already the intervened value (no
choosing among them), one column each; rows: the factual picture, the true counterfactual
render, then each model's counterfactual with its IoU to the true render (the best over the
sprite's symmetric equivalents, as the report scores it)::

    python docs/decoders.py --runs runs/sprites runs/sprites-broadcast --names "FiLM,broadcast"
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from causalvae.data import load
from causalvae.errors import CausalVAEError
from causalvae.io import atomic_write_bytes
from causalvae.pictures import contact_sheet, display, titled
from causalvae.queries import check_refine, counterfactual
from causalvae.run import Run
from causalvae import worlds

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", required=True, help="trained sprites runs, one row each")
    ap.add_argument("--names", required=True, help="their names, comma-separated")
    ap.add_argument("--do", default="posX=7", help="one intervention, name=value")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--refine", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HERE / "img" / "sprites_decoders_cf.png"))
    args = ap.parse_args(argv)
    try:
        return draw(args)
    except CausalVAEError as exc:
        raise SystemExit(f"error: {exc}") from None


def draw(args) -> int:
    names = [s.strip() for s in args.names.split(",")]
    if len(names) != len(args.runs):
        raise CausalVAEError(f"--names gives {len(names)} names for {len(args.runs)} runs")
    if args.n < 1:
        raise CausalVAEError(f"--n must be at least 1, got {args.n}")
    refine = check_refine(args.refine)
    var, _, value = (part.strip() for part in args.do.partition("="))
    runs = [Run.open(r) for r in args.runs]
    if any(r.world.name != "sprites" for r in runs):
        raise CausalVAEError("the runs must be models of the sprites world")
    if len({str(Path(r.dataset_path).resolve()) for r in runs}) != 1:
        raise CausalVAEError("the runs must share their dataset (the same test pictures)")
    test = load(runs[0].dataset_path, split="test", truth=True, verify=False)
    graph = runs[0].model.graph
    if var not in graph.names:
        raise CausalVAEError(f"--do: unknown variable '{var}'; variables: {', '.join(graph.names)}")
    graph[var].index(value)  # an unknown value: one error naming the valid ones
    world = worlds.for_dataset(test)
    truth = world.renderer(runs[0].model.config.image_size)
    cols = list(test.manifest["truth_columns"])
    tv = test.truth_values[test.indices]
    rows = np.flatnonzero(tv[:, cols.index(var)] != graph[var].index(value))[: args.n]
    if not len(rows):
        raise CausalVAEError(f"no test picture has {var} other than {value}")
    images, labels = test.batch(rows)
    style = test.truth_style[test.indices[rows]]
    tiles, captions = [display(x, True, channels_first=True) for x in images], ["factual"] * len(rows)
    true = None
    for run, name in zip(runs, names):
        cf = counterfactual(run.model, images, labels, {var: value}, seed=args.seed, refine=refine)
        values = {v: cf.values[v] for v in graph.names}
        if true is None:
            true = truth.render(values, style)
            tiles += [display(t, True, channels_first=True) for t in true]
            captions += ["true render"] * len(rows)
        score = truth.best_iou(values, style, cf.images.numpy())
        tiles += [display(x, True, channels_first=True) for x in cf.images]
        captions += [f"{name}\nIoU {s:.2f}" for s in score]
    sheet = contact_sheet(np.stack(tiles), captions, len(rows), 2)
    buf = io.BytesIO()
    titled(sheet, f"test sprites under do({var}={value}), abductions refined {refine} steps: factual, true render, then each decoder's counterfactual").save(buf, format="PNG")
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
