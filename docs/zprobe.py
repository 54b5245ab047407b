"""How much of an image parent a model's code z still holds: encode pictures with their own
labels (the abduction q(z | x, parents) of every counterfactual), fit a probe (a linear map and
an MLP) that reads the parent off z on training pictures, and score it on validation pictures.
Chance is the share of the commonest value; a probe well above it reads the parent in z, and a
counterfactual that keeps z keeps that trace of the source picture.

    python docs/zprobe.py --runs runs/morpho,runs/morpho-adv --names "recipe,adversary" \\
        --parent digit --out docs/reports/morpho/zprobe.md

Only training and validation pictures are used (never the test split).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from causalvae.errors import CausalVAEError
from causalvae.io import atomic_write_text
from causalvae.run import Run
from causalvae.train import continuous_image_parents


@torch.no_grad()
def codes(run: Run, split: str, n: int, parent: str, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's mean of z for the first ``n`` pictures of ``split`` (given their own
    labelled image parents) and the values of the discrete ``parent``."""
    vae = run.model.eval()
    if parent not in vae.label_columns:
        raise CausalVAEError(f"{parent!r} is not a discrete labelled variable of this model ({', '.join(vae.label_columns)})")
    ds = run.dataset(split)
    pos = np.arange(min(n, len(ds)))
    images, labels = ds.batch(pos)
    cont = ds.continuous_batch(pos)
    values = {p: labels[:, vae.label_columns.index(p)] for p in vae.graph.image.parents if p in vae.label_columns}
    values.update({p: cont[:, vae.continuous_columns.index(p)] for p in continuous_image_parents(vae)})
    if any((v < 0).any() for p, v in values.items() if p in vae.label_columns):
        raise CausalVAEError("every picture's image parents must be labelled to encode it with them")
    zs = [vae.encode(images[i:i + batch], {p: v[i:i + batch] for p, v in values.items()})[0] for i in range(0, len(pos), batch)]
    return torch.cat(zs).float(), values[parent] if parent in values else labels[:, vae.label_columns.index(parent)]


def probe(z_fit: torch.Tensor, y_fit: torch.Tensor, z_score: torch.Tensor, y_score: torch.Tensor, kind: str, steps: int = 3000, seed: int = 0) -> float:
    """Accuracy on (z_score, y_score) of a probe fitted on (z_fit, y_fit): ``linear`` (a
    logistic regression) or ``mlp`` (two hidden layers of 256), Adam, batches of 256."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    k = int(max(y_fit.max(), y_score.max())) + 1
    d = z_fit.shape[1]
    net = nn.Linear(d, k) if kind == "linear" else nn.Sequential(nn.Linear(d, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, k))
    mean, sd = z_fit.mean(0), z_fit.std(0).clamp_min(1e-6)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(steps):
        b = torch.randint(0, len(z_fit), (256,), generator=g)
        loss = F.cross_entropy(net((z_fit[b] - mean) / sd), y_fit[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((net((z_score - mean) / sd).argmax(1) == y_score).float().mean())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", required=True, help="comma-separated run folders")
    ap.add_argument("--names", help="comma-separated names of the runs, for the table's columns")
    ap.add_argument("--parent", default="digit")
    ap.add_argument("--n-train", type=int, default=10000, help="training pictures the probe is fitted on")
    ap.add_argument("--n-val", type=int, default=2000, help="validation pictures it is scored on")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    runs = a.runs.split(",")
    names = a.names.split(",") if a.names else runs
    if len(names) != len(runs):
        raise SystemExit(f"--names gives {len(names)} names for {len(runs)} runs")
    rows = {"linear": [], "mlp": []}
    chance = []
    for path in runs:
        run = Run.open(path)
        zt, yt = codes(run, "train", a.n_train, a.parent)
        zv, yv = codes(run, "val", a.n_val, a.parent)
        chance.append(float(torch.bincount(yv).max()) / len(yv))
        for kind in rows:
            rows[kind].append(probe(zt, yt, zv, yv, kind, a.steps))
        print(f"{path}: " + ", ".join(f"{kind} {rows[kind][-1]:.1%}" for kind in rows), flush=True)
    head = f"| {a.parent} read off z (validation pictures) | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names) + "\n"
    lines = [f"| chance (the commonest {a.parent}) | " + " | ".join(f"{c:.1%}" for c in chance) + " |"]
    lines += [f"| {'a linear probe' if kind == 'linear' else 'an MLP probe (2 x 256)'} | " + " | ".join(f"{v:.1%}" for v in rows[kind]) + " |" for kind in rows]
    text = (f"Probes fitted on the codes of {a.n_train:,} training pictures, scored on {a.n_val:,} validation pictures "
            f"(`python docs/zprobe.py`):\n\n" + head + "\n".join(lines) + "\n")
    atomic_write_text(Path(a.out), text)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
