"""Counterfactual strips of several runs side by side, on VALIDATION pictures (never the
test split): where the trials of docs/morpho.md are looked at. The first row is the first
``--n`` validation pictures of the first run's dataset; then, for each run, its
counterfactuals of those pictures under one intervention (``causalvae.queries.counterfactual``:
abduct U and z, z refined ``--refine`` steps, act, predict, the decoder's mean). Every run
must have been trained on the same dataset.

    python docs/trialstrip.py --runs runs/morpho-again,runs/morpho-detached-seed2 \\
        --names "the recipe,detached (seed 2)" --do thickness=3.23 --refine 30 \\
        --out docs/img/morpho_trials_thickness.png
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from causalvae.data import load
from causalvae.errors import CausalVAEError
from causalvae.io import atomic_write_bytes
from causalvae.queries import counterfactual
from causalvae.run import Run

SCALE = 3
LABEL_W = 270


def _row(pictures: np.ndarray) -> np.ndarray:
    """(N, C, H, W) uint8 pictures, one grey row (H, N * W)."""
    grey = pictures.mean(1) if pictures.shape[1] > 1 else pictures[:, 0]
    return np.concatenate(list(grey.astype(np.uint8)), 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", required=True, help="comma-separated run folders")
    ap.add_argument("--names", required=True, help="comma-separated names, one per run")
    ap.add_argument("--do", required=True, help="one intervention, e.g. thickness=3.23")
    ap.add_argument("--n", type=int, default=10, help="how many validation pictures (1 to 32)")
    ap.add_argument("--refine", type=int, default=0, help="steps refining each abducted code z (0 to 500)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    try:
        return strips(a)
    except CausalVAEError as e:
        raise SystemExit(f"trialstrip: {e}")


def strips(a: argparse.Namespace) -> int:
    runs, names = a.runs.split(","), a.names.split(",")
    if len(runs) != len(names):
        raise CausalVAEError(f"--names gives {len(names)} names for {len(runs)} runs")
    if not 1 <= a.n <= 32:
        raise CausalVAEError(f"--n must be from 1 to 32, got {a.n}")
    if not 0 <= a.refine <= 500:  # as `causalvae serve --refine`
        raise CausalVAEError(f"--refine must be from 0 to 500, got {a.refine}")
    if a.do.count("=") != 1:
        raise CausalVAEError(f"--do must be one intervention, variable=value, got {a.do!r}")
    var, value = a.do.split("=")
    torch.set_num_threads(2)
    rows, labels_of = [], []
    data = None
    for path, name in zip(runs, names):
        run = Run.open(path)
        if run.dataset_path is None:
            raise CausalVAEError(f"{path}: the run does not say which dataset it was trained on")
        if data is None:
            data = run.dataset_path
            val = load(data, split="val", verify=False)
            if len(val) == 0:
                raise CausalVAEError(f"{data}: the validation split is empty")
            pos = np.arange(min(a.n, len(val)))
            images, lab = val.batch(pos)
            cont = val.continuous_batch(pos) if val.continuous_columns else None
            rows.append(_row(np.asarray(images)))
            labels_of.append("validation pictures")
        elif Path(run.dataset_path).resolve() != Path(data).resolve():
            raise CausalVAEError(f"{path} was trained on {run.dataset_path}, not on {data}")
        vae = run.model.eval()
        graph = vae.current_graph()
        if var not in graph.names:
            raise CausalVAEError(f"--do: {var!r} is not a variable of the model ({', '.join(graph.names)})")
        if var in graph.continuous:
            try:
                do = {var: float(value)}
            except ValueError:
                raise CausalVAEError(f"--do: {var} is continuous, its value must be a number, got {value!r}") from None
        else:
            do = {var: value}
        res = counterfactual(vae, images, lab, do, continuous=cont if vae.continuous_columns else None, seed=a.seed, refine=a.refine)
        rows.append(_row(res.images.cpu().numpy()))
        labels_of.append(name)
    h, w = rows[0].shape
    sheet = Image.new("L", (LABEL_W + w * SCALE, h * SCALE * len(rows)), 0)
    draw = ImageDraw.Draw(sheet)
    for k, (row, text) in enumerate(zip(rows, labels_of)):
        sheet.paste(Image.fromarray(row).resize((w * SCALE, h * SCALE), Image.NEAREST), (LABEL_W, k * h * SCALE))
        draw.text((6, k * h * SCALE + h * SCALE // 2 - 6), text if k == 0 else f"{text}: do({a.do})", fill=255)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    atomic_write_bytes(Path(a.out), buf.getvalue())
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
