"""Figures of a training run: the ELBO against wall-clock time, and reconstructions.

Both return objects (a matplotlib Figure, a PIL Image); the CLI writes them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from causalvae.data import Dataset
from causalvae.model import CausalVAE
from causalvae.pictures import contact_sheet, display, rgb
from causalvae.queries import reconstruct


def elbo_curve(rows: Sequence[dict], dims: int, title: str = ""):
    """ELBO per image (nats, left axis; bits per dimension on the right) against minutes of
    training, for the training batches and the validation split (``metrics.csv`` rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = np.array([r["wall_s"] for r in rows]) / 60.0
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=110)
    ax.plot(minutes, [r["train_elbo"] for r in rows], "o-", ms=3, label="train (mean since the last point)")
    ax.plot(minutes, [r["val_elbo"] for r in rows], "s-", ms=3, label="validation")
    ax.set_xlabel("wall-clock time (minutes)")
    ax.set_ylabel("ELBO, nats per image")
    to_bpd = lambda nats: -nats / (dims * math.log(2))
    from_bpd = lambda bpd: -bpd * dims * math.log(2)
    sec = ax.secondary_yaxis("right", functions=(to_bpd, from_bpd))
    sec.set_ylabel("bits per dimension (lower is better)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def reconstruction_sheet(vae: CausalVAE, ds: Dataset, positions: Sequence[int], columns: int = 8, scale: int = 2, binary: bool | None = None) -> Image.Image:
    """Each image of ``ds`` at ``positions`` beside its reconstruction (encoder mean, decoder
    mean), captioned with its labels. ``binary`` (default: the model's likelihood says)
    shows 0/1 pictures as 0/255."""
    images, labels = ds.batch(np.asarray(positions))
    cont = ds.continuous_batch(np.asarray(positions)) if vae.continuous_columns else None
    recon = reconstruct(vae, images, labels, cont).cpu()
    binary = vae.config.likelihood == "bernoulli" if binary is None else binary
    tiles, captions = [], []
    for i in range(len(positions)):
        for img, what in ((images[i], "input"), (recon[i], "reconstruction")):
            tiles.append(rgb(display(img, binary, channels_first=True)))
            captions.append(what if what == "reconstruction" else _caption(ds, labels[i], None if cont is None else cont[i]))
    return contact_sheet(np.stack(tiles), captions, columns=columns, scale=scale)


def _caption(ds: Dataset, labels: torch.Tensor, continuous: torch.Tensor | None = None) -> str:
    vals = []
    for c, v in zip(ds.label_columns, labels.tolist()):
        vals.append("?" if v < 0 else str(ds.graph[c].values[int(v)]))
    if continuous is not None:
        vals += ["?" if math.isnan(x) else f"{x:.3g}" for x in continuous.tolist()]
    return " ".join(vals)
