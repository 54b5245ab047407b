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
from causalvae.errors import CausalVAEError
from causalvae.model import CausalVAE
from causalvae.pictures import contact_sheet, display, named_value, rgb
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


def reconstruction_sheet(vae: CausalVAE, ds: Dataset, positions: Sequence[int], columns: int = 8, scale: int = 2, binary: bool | None = None, refine: int = 0) -> Image.Image:
    """Each image of ``ds`` at ``positions`` beside its reconstruction (the encoder's mean,
    refined by ``refine`` steps; the decoder's mean), captioned with its labels. ``binary``
    (default: the model's likelihood says) shows 0/1 pictures as 0/255."""
    images, labels = ds.batch(np.asarray(positions))
    cont = ds.continuous_batch(np.asarray(positions)) if vae.continuous_columns else None
    recon = reconstruct(vae, images, labels, cont, refine=refine).cpu()
    binary = vae.config.likelihood == "bernoulli" if binary is None else binary
    tiles, captions = [], []
    for i in range(len(positions)):
        for img, what in ((images[i], "input"), (recon[i], "reconstruction")):
            tiles.append(rgb(display(img, binary, channels_first=True)))
            captions.append(what if what == "reconstruction" else _caption(ds, labels[i], None if cont is None else cont[i]))
    scale = max(scale, -(-96 // images.shape[-1]))  # tiles of 96 px at least: "reconstruction" fits on a line
    return contact_sheet(np.stack(tiles), captions, columns=columns, scale=scale)


def _caption(ds: Dataset, labels: torch.Tensor, continuous: torch.Tensor | None = None) -> str:
    vals = []
    for c, v in zip(ds.label_columns, labels.tolist()):
        vals.append(f"{c}=?" if v < 0 else named_value(c, str(ds.graph[c].values[int(v)])))
    if continuous is not None:
        vals += [f"{c}=?" if math.isnan(x) else f"{c}={x:.3g}" for c, x in zip(ds.continuous_columns, continuous.tolist())]
    return " ".join(vals)


def query_figure(graph, text: str, *, samples: int, seed: int, points: int = 121):
    """The distribution a query on a mixed graph is about, as a figure: a continuous
    target's density p(y | conditions) on a grid between its 0.1% and 99.9% quantiles, each
    point answered by :func:`causalvae.mixed.evaluate` (a closed form, quadrature, or
    importance sampling with a shaded band of +-2 standard errors); a discrete target's
    probabilities as bars with their error bars. The query's own conditions are kept; the
    measure asked (E, Q, P(y > c), ...) is marked on the curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from causalvae import continuous as C
    from causalvae.mixed import MixedQuery, evaluate, parse, query_text

    q = parse(text, graph, whole=True)
    if not hasattr(q, "evidence") or not hasattr(q, "do"):
        raise CausalVAEError("--plot draws the distribution of a query's target (P, E, Q or p)")
    targets = [q.target] if isinstance(q, MixedQuery) else list(getattr(q, "targets", []))
    if len(targets) != 1:
        raise CausalVAEError("--plot draws one target's distribution")
    target = targets[0]

    def term(t):
        return t.var if not t.world else f"{t.var}[" + ", ".join(f"{k}={query_text(v)}" for k, v in t.world) + "]"

    conds = [f"{term(t)}={query_text(v)}" for t, v in q.evidence] + [f"do({k}={query_text(v)})" for k, v in q.do]
    tail = f" | {', '.join(conds)}" if conds else ""
    whole = isinstance(q, MixedQuery) and q.measure == "P" and q.op is None  # P(y | ...): its mean is marked
    answer = evaluate(graph, f"E({term(target)}{tail})" if whole else text, samples=samples, seed=seed)
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=110)
    if not C.is_continuous(graph[target.var]):
        labels = [e.label for e in answer.estimates]
        values = np.array([e.value for e in answer.estimates])
        errors = np.array([e.error for e in answer.estimates])
        ax.bar(labels, values, yerr=2 * errors if errors.any() else None, color="#4c72b0", capsize=3)
        ax.set_ylabel("probability")
    else:
        lo = evaluate(graph, f"Q({term(target)}, 0.001{tail})", samples=samples, seed=seed).value
        hi = evaluate(graph, f"Q({term(target)}, 0.999{tail})", samples=samples, seed=seed).value
        grid = np.linspace(lo, hi, points)
        dens = [evaluate(graph, f"p({term(target)}={query_text(float(t))}{tail})", samples=samples, seed=seed) for t in grid]
        y = np.array([d.value for d in dens])
        err = np.array([d.error for d in dens])
        ax.plot(grid, y, color="#4c72b0", label="density")
        if dens[0].error_kind == "standard error":
            ax.fill_between(grid, np.maximum(y - 2 * err, 0), y + 2 * err, color="#4c72b0", alpha=0.25, label="+-2 standard errors")
        ax.set_ylabel("density")
        mark = (answer.value, f"E = {answer.value:.4g}") if whole else _mark(q, answer)
        if mark is not None:
            ax.axvline(mark[0], color="#c44e52", ls="--", lw=1, label=mark[1])
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel(term(target))
    ax.set_title(f"{text}\n{answer.method}", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _mark(q, answer):
    """Where the asked measure sits on the target's axis, and its legend text."""
    m = getattr(q, "measure", None)
    if m == "E":
        return answer.value, f"E = {answer.value:.4g}"
    if m == "Q":
        return answer.value, f"Q({q.level:g}) = {answer.value:.4g}"
    if m == "p":
        return q.at, f"p({q.at:g}) = {answer.value:.4g}"
    if m == "P" and q.op is not None:
        return q.threshold, f"P({q.op} {q.threshold:g}) = {answer.value:.4g}"
    return None
