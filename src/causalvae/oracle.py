"""The attribute reader (oracle): classifiers that read a world's labels off its pictures.

Scores of generated and counterfactual pictures need their labels, and a picture made by a
model has none. The oracle reads them: one convolutional trunk with a head per labelled
variable, trained on pictures rendered fresh by the world's own renderer at every step
(labels uniform over every combination, style uniform in its ranges), never on a model's
training set, and checked on a held-out set of renders from another seed.

    causalvae oracle train --world scenes --out oracles/scenes

A world with continuous labelled variables (the morpho world's thickness and intensity)
gets a regression head per continuous variable beside the classifier heads, trained on
standardised targets (mean squared error) and scored by the mean absolute error in the
variable's own units. Its fresh renders draw each continuous variable uniformly between the
0.5% and 99.5% quantiles of its marginal in the graph, independently of the others (so that
the oracle cannot read one through another); a world whose renderer draws style per split
(``style_for``: the morpho world's source digits) trains on the training split's styles and
is scored on the test split's. The discrete path is unchanged.

A world whose pictures are slow to render (the morpho world: about 35 ms of CPU a digit, many
times a training step's share of a picture) trains from a **pool** of renders instead
(:attr:`causalvae.worlds.World.oracle_pool`, or ``--pool``): the pool is rendered once at the
training seed, batches are drawn from it at random, and every :data:`REFRESH_EVERY` steps a
share :data:`REFRESH_SHARE` of it is rendered afresh, so that rendering costs a bounded part
of the training time.

Where a picture leaves a variable ambiguous (:attr:`causalvae.worlds.World.ambiguous`: a
square's orientation is only defined modulo a quarter turn), the held-out accuracy is given
twice: the exact value's, and the accepted readings' (``"orientation (modulo symmetry)"``,
:meth:`~causalvae.worlds.World.accepted`). With ``set_targets`` such a column is trained on
its set of accepted readings, loss ``-log sum_{v accepted} p(v)``: the oracle is not
penalised for an answer the picture cannot tell from the true one.

It is saved like a model (``oracle.safetensors`` + ``config.json``; loading runs no code).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from causalvae import worlds
from causalvae.errors import CausalVAEError
from causalvae.graph import Graph
from causalvae.io import atomic_write_bytes, atomic_write_text
from causalvae.nets import set_cross_entropy
from causalvae.pictures import shifted

FORMAT = "causalvae-oracle/1"


class OracleError(CausalVAEError):
    """An oracle file that is missing, foreign or corrupt (its config.json's problems are
    reported as :class:`~causalvae.store.ModelFileError`, also a CausalVAEError)."""


# ------------------------------------------------------------------------------ fresh renders


def renderer(world: str | worlds.World, resolution: int | None = 64) -> tuple[Graph, Callable[..., tuple[np.ndarray, ...]]]:
    """The world's graph and a function drawing ``n`` fresh labelled pictures:
    ``(images uint8 (n, C, H, W), labels int64 (n, K))`` for the graph's labelled discrete
    variables, labels uniform and independent (every combination is seen, none favoured),
    style drawn from the world's style distribution. A world with labelled continuous
    variables adds ``numbers`` float64 ``(n, Kc)``, each uniform in :func:`continuous_ranges`;
    ``draw(n, rng, held_out=True)`` draws the held-out split's styles when the renderer has
    ``style_for``."""
    graph, draw_units = _renders(world, resolution)

    def draw(n: int, rng: np.random.Generator, held_out: bool = False):
        images, labels, numbers, _, _ = draw_units(n, rng, held_out)
        return (images, labels) if numbers is None else (images, labels, numbers)

    return graph, draw


def _renders(world: str | worlds.World, resolution: int | None) -> tuple[Graph, Callable[..., tuple]]:
    """:func:`renderer`'s graph and draw, whose draw returns ``(images, labels, numbers or
    None, values, style)``: also the values and style each picture was drawn with."""
    w = worlds.get(world)
    truth = w.renderer(resolution)
    graph = w.graph()
    cols = [c for c in graph.observed if c not in graph.continuous]
    ranges = continuous_ranges(graph)

    def draw(n: int, rng: np.random.Generator, held_out: bool = False):
        values = {c: rng.integers(0, graph.card(c), n) for c in cols}
        values.update({c: rng.uniform(lo, hi, n) for c, (lo, hi) in ranges.items()})
        if hasattr(truth, "style_for"):
            style = truth.style_for(values, np.full(n, 2 if held_out else 0, dtype=np.int8), rng)
        else:
            style = truth.sample_style(n, rng)
        images = truth.render(values, style)
        labels = np.stack([values[c] for c in cols], 1).astype(np.int64).reshape(n, len(cols))
        return images, labels, np.stack([values[c] for c in ranges], 1) if ranges else None, values, style

    return graph, draw


def continuous_ranges(graph: Graph, seed: int = 0, n: int = 20_000) -> dict[str, tuple[float, float]]:
    """Each labelled continuous variable's range of fresh renders: the 0.5% and 99.5%
    quantiles of its marginal in the graph (from ``n`` ancestral samples at ``seed``)."""
    cont = [c for c in graph.observed if c in graph.continuous]
    if not cont:
        return {}
    from causalvae.noise import sample

    units = sample(graph, n, seed)
    return {c: (float(np.quantile(units.values[c], 0.005)), float(np.quantile(units.values[c], 0.995))) for c in cont}


def pooled(draw: Callable[..., tuple[np.ndarray, ...]], size: int, batch_size: int, rng: np.random.Generator,
           refresh_every: int | None = None, refresh_share: float | None = None) -> Callable[[], tuple[np.ndarray, ...]]:
    """A source of training batches drawn at random from a pool of ``size`` renders
    (``draw(size, rng)`` once); every ``refresh_every`` batches (default
    :data:`REFRESH_EVERY`), a share ``refresh_share`` (default :data:`REFRESH_SHARE`) of the
    pool, at random places, is replaced by new renders."""
    every = REFRESH_EVERY if refresh_every is None else refresh_every
    share = REFRESH_SHARE if refresh_share is None else refresh_share
    if size < 1 or every < 1 or not 0.0 <= share <= 1.0:
        raise CausalVAEError(f"a render pool needs size >= 1, refresh_every >= 1 and a share in [0, 1], got {size}, {every}, {share}")
    pool = [np.array(a) for a in draw(size, rng)]
    calls = 0

    def batch() -> tuple[np.ndarray, ...]:
        nonlocal calls
        calls += 1
        fresh = int(round(share * size))
        if calls % every == 0 and fresh:
            places = rng.choice(size, fresh, replace=False)
            for a, new in zip(pool, draw(fresh, rng)):
                a[places] = new
        pick = rng.integers(0, size, batch_size)
        return tuple(a[pick] for a in pool)

    return batch


#: Training steps between two refreshes of a render pool, and the share of it refreshed.
REFRESH_EVERY = 100
REFRESH_SHARE = 0.02


# ------------------------------------------------------------------------------ the network


@dataclass(frozen=True)
class OracleConfig:
    world: str
    resolution: int
    channels: int
    columns: tuple[str, ...]
    cards: tuple[int, ...]
    width: int = 32
    binary: bool = False  # pictures stored 0/1
    #: Continuous columns read by regression, and each one's (mean, sd) of standardisation.
    continuous: tuple[str, ...] = ()
    scales: tuple[tuple[float, float], ...] = ()

    def to_dict(self) -> dict:
        d = {"world": self.world, "resolution": self.resolution, "channels": self.channels,
             "columns": list(self.columns), "cards": list(self.cards), "width": self.width, "binary": self.binary}
        if self.continuous:
            d.update(continuous=list(self.continuous), scales=[list(m) for m in self.scales])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> OracleConfig:
        # Oracles saved before "binary" was recorded were of a registered world.
        binary = bool(d["binary"]) if "binary" in d else worlds.get(d["world"]).binary
        continuous = tuple(d.get("continuous", ()))
        scales = tuple((float(m), float(s)) for m, s in d.get("scales", ()))
        if len(scales) != len(continuous) or any(not s > 0 for _, s in scales):
            raise CausalVAEError("an oracle config needs one (mean, sd > 0) scale per continuous column")
        return cls(d["world"], int(d["resolution"]), int(d["channels"]), tuple(d["columns"]), tuple(int(c) for c in d["cards"]), int(d["width"]), binary,
                   continuous, scales)


class Oracle(nn.Module):
    """One conv trunk, one linear head per labelled discrete variable (and one linear
    regressor over the continuous ones, when there are any)."""

    def __init__(self, config: OracleConfig):
        super().__init__()
        self.config = config
        w = config.width
        chans = [config.channels, w, 2 * w, 4 * w, 4 * w]
        layers = []
        for a, b in zip(chans, chans[1:]):  # four stride-2 stages: 64 -> 4 pixels
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.GroupNorm(8, b), nn.SiLU()]
        self.trunk = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten(1), nn.Linear(16 * chans[-1], 256), nn.SiLU())
        self.heads = nn.ModuleList(nn.Linear(256, k) for k in config.cards)
        if config.continuous:
            self.regressor = nn.Linear(256, len(config.continuous))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) pictures -> the trunk's (B, 256) features."""
        c = self.config
        if images.dim() != 4 or tuple(images.shape[1:]) != (c.channels, c.resolution, c.resolution):
            raise CausalVAEError(f"the oracle reads pictures of shape (B, {c.channels}, {c.resolution}, {c.resolution}), got {tuple(images.shape)}")
        x = images.float()
        x = x * 2.0 - 1.0 if c.binary else x / 127.5 - 1.0  # binary or 8-bit pixels
        return self.trunk(x.contiguous(memory_format=torch.channels_last))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """uint8 (B, C, H, W) pictures -> a list of (B, card) logits, one per discrete column."""
        h = self.features(images)
        return [head(h) for head in self.heads]

    @torch.no_grad()
    def regress(self, images: torch.Tensor, batch: int = 512) -> np.ndarray:
        """The continuous columns read off the pictures, in their own units: float64 (B, Kc)."""
        if not self.config.continuous:
            raise CausalVAEError("this oracle reads no continuous variable")
        self.eval()
        device = next(self.parameters()).device
        z = torch.cat([self.regressor(self.features(images[i : i + batch].to(device))).cpu() for i in range(0, len(images), batch)])
        mean, sd = (torch.tensor(v, dtype=torch.float64) for v in zip(*self.config.scales))
        return (z.double() * sd + mean).numpy()

    @torch.no_grad()
    def probs(self, images: torch.Tensor, batch: int = 512) -> dict[str, torch.Tensor]:
        """``{column: (B, card) probabilities}`` for every labelled variable."""
        self.eval()
        outs = [[] for _ in self.config.columns]
        device = next(self.parameters()).device
        for i in range(0, len(images), batch):
            for k, logits in enumerate(self(images[i : i + batch].to(device))):
                outs[k].append(logits.softmax(-1).cpu())
        return {c: torch.cat(o) for c, o in zip(self.config.columns, outs)}

    def read(self, images: torch.Tensor) -> np.ndarray:
        """The most probable value of every column: int64 (B, K)."""
        p = self.probs(images)
        return np.stack([p[c].argmax(-1).numpy() for c in self.config.columns], 1)


# ------------------------------------------------------------------------------ training


def accuracy(oracle: Oracle, images: np.ndarray, labels: np.ndarray, numbers: np.ndarray | None = None,
             accepted: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Each discrete column's accuracy and (given ``numbers``) each continuous column's mean
    absolute error in its own units. For each column of ``accepted`` (bool ``(N, card)``,
    the readings a perfect reader may give: :meth:`~causalvae.worlds.World.accepted`) also
    ``"COLUMN (modulo symmetry)"``, the share read as one of them."""
    pred = oracle.read(torch.from_numpy(images))
    out = {c: float((pred[:, k] == labels[:, k]).mean()) for k, c in enumerate(oracle.config.columns)}
    for k, c in enumerate(oracle.config.columns):
        if c in (accepted or {}):
            out[f"{c} (modulo symmetry)"] = float(accepted[c][np.arange(len(pred)), pred[:, k]].mean())
    if numbers is not None and oracle.config.continuous:
        read = oracle.regress(torch.from_numpy(images))
        out.update({c: float(np.abs(read[:, k] - numbers[:, k]).mean()) for k, c in enumerate(oracle.config.continuous)})
    return out


def train_oracle(
    world: str | worlds.World,
    *,
    steps: int = 500,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    resolution: int | None = None,
    held_out: int = 4000,
    pool: int | None = None,
    set_targets: bool = False,
    shift: int | None = None,
    progress: Callable[[int, float], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> tuple[Oracle, dict[str, float]]:
    """Train on fresh renders (seed stream 0) and measure on ``held_out`` renders from a
    different stream (seed stream 1; the held-out split's styles when the world draws style
    per split). Returns the oracle and its held-out score per column: the accuracy of a
    discrete column, the mean absolute error of a continuous one, and for a column the
    world reads ambiguously its accuracy modulo symmetry too. ``set_targets``: train those
    columns on their sets of accepted readings. ``resolution=None``: the world's own.
    ``pool``: train on batches from a pool of that many renders (:func:`pooled`) instead of
    fresh renders at every step; None: the world's
    :attr:`~causalvae.worlds.World.oracle_pool` (0: fresh renders). ``shift``: move each
    training picture by up to that many pixels each way (:func:`causalvae.pictures.shifted`; the held-out renders
    are never moved); None: the world's :attr:`~causalvae.worlds.World.oracle_shift`.
    ``say``: told (one line each) when the held-out renders and the pool, which may take
    minutes before the first step, are being drawn."""
    w = worlds.get(world)
    resolution = w.resolution if resolution is None else resolution
    shift = w.oracle_shift if shift is None else shift
    if isinstance(shift, bool) or not isinstance(shift, int) or not 0 <= shift < resolution // 4:
        raise CausalVAEError(f"the oracle's shift is a number of pixels from 0 to {resolution // 4 - 1} (a quarter of the picture), got {shift!r}")
    # (checked before the held-out renders, which may take minutes)
    graph, draw = _renders(w, resolution)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)]
    say = say or (lambda message: None)
    say(f"rendering {held_out:,} held-out pictures")
    images, labels, numbers, values, style = draw(held_out, streams[1], held_out=True)
    cols = [c for c in graph.observed if c not in graph.continuous]
    ambiguous = [c for c in cols if c in w.ambiguous]
    ranges = continuous_ranges(graph)
    scales = tuple(((lo + hi) / 2, (hi - lo) / math.sqrt(12)) for lo, hi in ranges.values())  # a uniform's mean and sd
    cfg = OracleConfig(w.name, resolution, int(images.shape[1]), tuple(cols), tuple(graph.card(c) for c in cols), binary=w.binary,
                       continuous=tuple(ranges), scales=scales)
    pool = w.oracle_pool if pool is None else pool
    if not (isinstance(pool, int) and pool >= 0):
        raise CausalVAEError(f"the render pool is a number of pictures >= 0 (0: fresh renders at every step), got {pool!r}")
    targets = [(k, c) for k, c in enumerate(cols) if c in ambiguous] if set_targets else []

    def arrays(n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        # Pictures, labels, numbers ((n, 0) without continuous columns) and each set-valued
        # column's accepted readings: arrays only, so that a pool can hold them.
        x, y, num, v, st = draw(n, rng)
        return (x, y, np.zeros((n, 0)) if num is None else num, *(w.accepted(c, graph.card(c), v, st) for _, c in targets))

    if pool:
        say(f"rendering a pool of {pool:,} training pictures")
    source = pooled(arrays, pool, batch_size, streams[0]) if pool else lambda: arrays(batch_size, streams[0])

    moves = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])

    def batch():
        x, y, num, *sets = source()
        return shifted(x, shift, moves), y, (num if num.shape[1] else None), {k: a for (k, _), a in zip(targets, sets)}

    oracle = _fit(cfg, batch, steps=steps, lr=lr, seed=seed, progress=progress)
    return oracle, accuracy(oracle, images, labels, numbers, {c: w.accepted(c, graph.card(c), values, style) for c in ambiguous})


def train_oracle_on_dataset(
    data: str | os.PathLike,
    *,
    steps: int = 500,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[Oracle, dict[str, float]]:
    """The oracle of a world without a renderer (an imported dataset): trained on batches of
    the dataset's own training split (a missing label is left out of its column's loss),
    measured on its validation split (on the labelled rows of each column)."""
    from causalvae.data import load

    train = load(data, split="train", verify=False)
    val = load(data, split="val", verify=False)
    if len(train) == 0 or len(val) == 0:
        raise CausalVAEError(f"{data}: the oracle needs pictures in the train and val splits (it has {len(train)} and {len(val)})")
    w = worlds.for_dataset(train)
    graph, cols = train.graph, list(train.label_columns)
    if not cols:
        raise CausalVAEError(f"{data}: the dataset labels no variable; there is nothing for an oracle to read")
    rng = np.random.default_rng(seed)
    cfg = OracleConfig(w.name, w.resolution, w.channels, tuple(cols), tuple(graph.card(c) for c in cols), binary=w.binary)

    def draw():
        images, labels = train.batch(rng.integers(0, len(train), batch_size))
        return images.numpy(), labels.numpy().astype(np.int64), None, {}

    oracle = _fit(cfg, draw, steps=steps, lr=lr, seed=seed, progress=progress)
    images, labels = val.batch(np.arange(len(val)))
    pred, lab = oracle.read(images), labels.numpy()
    acc = {c: float((pred[lab[:, k] >= 0, k] == lab[lab[:, k] >= 0, k]).mean()) if (lab[:, k] >= 0).any() else float("nan") for k, c in enumerate(cols)}
    return oracle, acc


def _fit(cfg: OracleConfig, draw: Callable[[], tuple], *, steps: int, lr: float, seed: int, progress) -> Oracle:
    """Adam on a cosine schedule over ``steps`` batches from ``draw()``: ``(images, labels
    (-1: missing), numbers or None, sets)``. The loss is the cross-entropy of each discrete
    column, or for a column ``k`` of ``sets`` (bool ``(B, card)``, the readings accepted for
    each picture) ``-log sum_{v accepted} p(v)``; plus, given continuous ``numbers``, the mean
    squared error of the standardised continuous columns."""
    torch.manual_seed(seed)
    oracle = Oracle(cfg)
    opt = torch.optim.Adam(oracle.parameters(), lr=lr)
    oracle.train()
    for step in range(1, steps + 1):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        images, labels, numbers, sets = draw()
        h = oracle.features(torch.from_numpy(images))
        logits = [head(h) for head in oracle.heads]
        target = torch.from_numpy(labels)
        loss = sum(set_cross_entropy(lg, torch.from_numpy(sets[k])) if k in sets else F.cross_entropy(lg, target[:, k], ignore_index=-1)
                   for k, lg in enumerate(logits) if bool((target[:, k] >= 0).any()))
        if numbers is not None and cfg.continuous:
            mean, sd = (torch.tensor(v, dtype=torch.float32) for v in zip(*cfg.scales))
            loss = loss + F.mse_loss(oracle.regressor(h), (torch.from_numpy(numbers).float() - mean) / sd)
        opt.zero_grad()
        if isinstance(loss, torch.Tensor):
            loss.backward()
            opt.step()
        if progress is not None:
            progress(step, loss.item() if isinstance(loss, torch.Tensor) else float("nan"))
    oracle.eval()
    return oracle


# ------------------------------------------------------------------------------ files


def save_oracle(oracle: Oracle, out: str | os.PathLike, held_out_accuracy: dict[str, float], training: dict, *, force: bool = False) -> Path:
    """Write the oracle's weights and config.json into ``out``: a new or empty directory, or
    (with ``force``) an earlier oracle; never a run, a dataset or anything else."""
    from safetensors.torch import save

    from causalvae.io import check_output_dir

    out = check_output_dir(out, "oracle", force=force)
    weights = save({k: v.detach().cpu().contiguous() for k, v in oracle.state_dict().items()})
    config = {
        "format": FORMAT,
        "config": oracle.config.to_dict(),
        "held_out_accuracy": held_out_accuracy,
        "training": training,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    atomic_write_bytes(out / "oracle.safetensors", weights)
    atomic_write_text(out / "config.json", json.dumps(config, indent=2) + "\n")
    return out


def load_oracle(path: str | os.PathLike, device: str | torch.device = "cpu") -> Oracle:
    from safetensors.torch import load

    from causalvae.store import read_json, resolve_device

    device = resolve_device(device)  # "auto" too, as the model's
    root = Path(path)
    cfg_path, w_path = root / "config.json", root / "oracle.safetensors"
    if not w_path.exists():
        raise OracleError(f"{w_path}: missing (train one with `causalvae oracle train --world WORLD --out {root}`)")
    cfg = read_json(cfg_path)
    if cfg.get("format") != FORMAT:
        raise OracleError(f"{cfg_path}: not an oracle file (format should be {FORMAT})")
    data = w_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != cfg.get("weights_sha256"):
        raise OracleError(f"{w_path}: does not match config.json (changed, truncated or from another oracle)")
    try:
        oracle = Oracle(OracleConfig.from_dict(cfg["config"]))
        oracle.load_state_dict(load(data))
    except Exception as exc:  # a foreign or damaged file: one clear error
        raise OracleError(f"{w_path}: cannot be loaded as this oracle ({exc})") from None
    oracle.held_out_accuracy = cfg.get("held_out_accuracy", {})
    oracle.weights_sha256 = cfg["weights_sha256"]  # names this judge instance (checked above)
    return oracle.to(device).eval()
