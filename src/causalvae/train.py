"""Training the causal VAE with PyTorch Lightning: one command for a CPU, a GPU or DDP.

:class:`LitCausalVAE` is a ``LightningModule`` around the Pyro ELBO, as in Pyro's own
Lightning example: the model's parameters are ordinary module parameters (Pyro's
``module_local_params`` setting; nothing lives in the global parameter store), the loss is
``TraceEnum_ELBO.differentiable_loss`` and the optimiser is a torch Adam, so Lightning moves
the module between devices and DDP averages its gradients across processes.

:func:`fit` drives a run directory::

    runs/NAME/
      train.json            the run's settings (a resumed run must match them)
      metrics.csv           epoch, step, wall_s, train_elbo, train_recon, train_kl, val_elbo, val_recon, val_kl
                            (and train_cf, the counterfactual term's mean, in runs with the term)
      checkpoints/step-*/   model, optimiser and random states every K steps (store.py)
      model.safetensors     the trained model, with
      config.json           graph, architecture, likelihood, dataset path and checksum, version
      ranks/rank-R.json     each process's data shard and final parameter checksum (of the
                            saved weights: with --ema, their moving average)
      tb/                   TensorBoard scalars, when tensorboard is installed

The ELBO columns are per image in nats, as a bound on log p(x | labels): the joint bound
minus the exact log p(labels) of the graph. Divide by H*W*C*ln 2 for bits per dimension.

Resuming. Data order is a pure function of (seed, epoch): each epoch is a permutation of the
training split, dealt round-robin to the processes. A checkpoint records the step, the epoch
and the position inside it, so a resumed run skips exactly the batches already done and
ends at the intended step count. A run killed at any moment loses only the steps after its
last checkpoint, and redoes them; SIGINT and SIGTERM write a checkpoint at the next step
boundary first.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import signal
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pyro
import torch
import torch.nn.functional as F
from torch import nn

from causalvae.data import Dataset, load as load_dataset, sha256
from causalvae.errors import CausalVAEError, unknown
from causalvae.graph import Graph
from causalvae.io import atomic_write_text
from causalvae.flows import column_stats, standardise
from causalvae.model import CausalVAE, check_mixed
from causalvae.nets import COORDINATES, DECODERS, PLACE_MODES, Classifier, NetConfig, decoded_mean, prepare, set_cross_entropy
from causalvae.pictures import shifted, warped

METRIC_COLUMNS = ["epoch", "step", "wall_s", "train_elbo", "train_recon", "train_kl", "val_elbo", "val_recon", "val_kl"]
#: Columns a run writes when it has what they measure (older runs lack them): ``train_cf``, the
#: counterfactual term's mean per step since the last row, in nats per picture before
#: ``--cf-weight`` (its readings, and its return trip where there is one).
OPTIONAL_METRIC_COLUMNS = ["train_cf"]
PRECISIONS = ("32", "bf16")


@dataclass
class TrainConfig:
    """Settings of a training run (saved as ``train.json``)."""

    data: str
    out: str
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 64
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    cpt_lr: float = 0.05
    seed: int = 0
    z_dim: int = 8
    width: int = 32
    depth: int = 4
    hidden: int = 256
    max_log_scale: float | None = -3.0  # 8-bit pictures only (binary ones have no scale)
    decoder: str = "film"
    coordinates: str = "cells"  # units of the broadcast decoder's grid (NetConfig.coordinates)
    place: list[str] = field(default_factory=list)  # parents that move the drawn picture (NetConfig.place)
    place_mode: str = "shift"  # how they move it: shift, or similarity (turn, scale, shift; z reaches only the placer)
    draw_scale: int = 1  # with place: the drawing made at this many times the picture's size (1 or 2), sampled by the placer
    ordinal: list[str] = field(default_factory=list)  # discrete parents entering the networks as one number each (NetConfig.ordinal)
    residual: bool = False
    beta: float = 2.0
    kl_warmup: int = 0  # steps over which z's KL weight rises linearly to beta (0: beta from the start)
    cf_weight: float = 1000.0
    reader_steps: int = 400  # at most as many as the run's own steps
    readers: int = 1  # readers of the counterfactual term (seeds seed, seed+1, ...): the term is their mean
    reader_shift: int = 0  # the reader's training pictures moved up to this many pixels each way
    reader_warp: float = 0.0  # half of each reader batch turned up to this many degrees (and scaled, sheared)
    cf_swap: str = "joint"  # the term's interventions: other rows' parent tuples (joint) or each parent from its own row (independent)
    cf_detach: bool = False  # the term's abducted codes detached: its gradient reaches the decoder only, never the encoder
    cf_prior_share: float = 0.5  # share of the term's rows decoded from a prior draw of z (generation); the rest keep their abducted z (counterfactuals)
    cf_cycle: float = 0.0  # weight of the term's return trip: a counterfactual, abducted again under its own parents (encoder frozen), must give back its code
    reader_sets: bool = False  # the reader and the term accept every reading the world says no reader can tell from the label
    adversary_weight: float = 0.0  # weight of z's confusion of an adversary that reads the discrete image parents off z (0: off)
    ema: float = 0.0  # decay of a moving average of the model's weights, which the run validates and saves (0: off)
    learn_cpts: bool = False
    graph: str | None = None
    withhold: dict[str, float] = field(default_factory=dict)
    classify: list[str] = field(default_factory=list)
    alpha: float = 50.0
    guide_steps: int = 0
    match_weight: float = 0.0
    precision: str = "32"
    devices: int = 1
    strategy: str = "auto"
    accelerator: str = "cpu"
    checkpoint_every: int = 200
    val_per_epoch: int = 1
    val_limit: int | None = None
    threads: int | None = None

    def check(self) -> None:
        for name in ("epochs", "batch_size", "z_dim", "width", "depth", "hidden", "devices", "checkpoint_every", "val_per_epoch", "reader_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise CausalVAEError(f"{name.replace('_', '-')} must be a positive integer, got {v!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise CausalVAEError(f"max-steps must be a positive integer, got {self.max_steps}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise unknown("learning-rate schedule", self.lr_schedule, ("cosine", "constant"))
        if self.precision not in PRECISIONS:
            raise unknown("precision", self.precision, PRECISIONS)
        if self.accelerator not in ("cpu", "gpu", "auto"):
            raise unknown("accelerator", self.accelerator, ("cpu", "gpu", "auto"))
        if self.strategy not in ("auto", "ddp"):
            raise unknown("strategy", self.strategy, ("auto", "ddp"))
        if self.devices > 1 and self.strategy != "ddp":
            raise CausalVAEError(f"--devices {self.devices} needs --strategy ddp (several processes share the data)")
        m = self.max_log_scale
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float)) or not -7.0 < m < 10.0):
            raise CausalVAEError(f"max-log-scale must be a number between -7 and 10 (the log-scale's floor is -7), got {m!r}")
        if self.decoder not in DECODERS:
            raise unknown("decoder", self.decoder, DECODERS)
        if self.coordinates not in COORDINATES:
            raise unknown("coordinates", self.coordinates, COORDINATES)
        if self.residual and self.decoder == "concat":
            raise CausalVAEError("--residual needs --decoder film or broadcast")
        if isinstance(self.place, (str, bytes)) or not all(isinstance(n, str) for n in self.place):
            raise CausalVAEError(f"place must be a list of parent names, got {self.place!r}")
        if len(set(self.place)) != len(self.place):
            raise CausalVAEError(f"place names a parent twice: {', '.join(self.place)}")
        if self.place_mode not in PLACE_MODES:
            raise unknown("place-mode", self.place_mode, PLACE_MODES)
        if self.place_mode != "shift" and not self.place:
            raise CausalVAEError(f"place-mode {self.place_mode} says how the parents named by --place move the picture: name them (--place)")
        if isinstance(self.draw_scale, bool) or not isinstance(self.draw_scale, int) or self.draw_scale not in (1, 2):
            raise CausalVAEError(f"draw-scale must be 1 or 2, got {self.draw_scale!r}")
        if self.draw_scale != 1 and not self.place:
            raise CausalVAEError("draw-scale makes the drawing larger for the placer to sample: name the placed parents (--place)")
        if isinstance(self.ordinal, (str, bytes)) or not all(isinstance(n, str) for n in self.ordinal):
            raise CausalVAEError(f"ordinal must be a list of parent names, got {self.ordinal!r}")
        if len(set(self.ordinal)) != len(self.ordinal):
            raise CausalVAEError(f"ordinal names a parent twice: {', '.join(self.ordinal)}")
        w = self.cf_weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w < 1e6:
            raise CausalVAEError(f"cf-weight must be a number >= 0, got {w!r}")
        a = self.adversary_weight
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0.0 <= a < 1e6:
            raise CausalVAEError(f"adversary-weight must be a number >= 0, got {a!r}")
        m = self.match_weight
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0.0 <= m < 1e6:
            raise CausalVAEError(f"match-weight must be a number >= 0, got {m!r}")
        n = self.readers
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 8:
            raise CausalVAEError(f"readers must be a whole number from 1 to 8, got {n!r}")
        if n > 1 and not self.cf_weight:
            raise CausalVAEError("readers sets how many readers the counterfactual term asks: it needs the term (cf-weight > 0)")
        r = self.reader_shift
        if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= 8:
            raise CausalVAEError(f"reader-shift must be a number of pixels from 0 to 8, got {r!r}")
        if r and not self.cf_weight:
            raise CausalVAEError("reader-shift moves the counterfactual term's reader's pictures: it needs the term (cf-weight > 0)")
        wp = self.reader_warp
        if isinstance(wp, bool) or not isinstance(wp, (int, float)) or not 0.0 <= wp <= 30.0:
            raise CausalVAEError(f"reader-warp must be a number of degrees from 0 to 30, got {wp!r}")
        if wp and not self.cf_weight:
            raise CausalVAEError("reader-warp turns the counterfactual term's reader's pictures: it needs the term (cf-weight > 0)")
        if self.cf_swap not in CF_SWAPS:
            raise unknown("cf-swap", self.cf_swap, CF_SWAPS)
        if self.cf_swap != "joint" and not self.cf_weight:
            raise CausalVAEError("cf-swap chooses the counterfactual term's interventions: it needs the term (cf-weight > 0)")
        if not isinstance(self.cf_detach, bool):
            raise CausalVAEError(f"cf-detach is on or off (true or false), got {self.cf_detach!r}")
        if self.cf_detach and not self.cf_weight:
            raise CausalVAEError("cf-detach stops the counterfactual term's gradient at the abducted codes: it needs the term (cf-weight > 0)")
        ps = self.cf_prior_share
        if isinstance(ps, bool) or not isinstance(ps, (int, float)) or not 0.0 <= ps <= 1.0:
            raise CausalVAEError(f"cf-prior-share is the share of the counterfactual term's rows that draw z from the prior: a number from 0 to 1, got {ps!r}")
        if ps != 0.5 and not self.cf_weight:
            raise CausalVAEError("cf-prior-share divides the counterfactual term's rows: it needs the term (cf-weight > 0)")
        cy = self.cf_cycle
        if isinstance(cy, bool) or not isinstance(cy, (int, float)) or not 0.0 <= cy < 1e6:
            raise CausalVAEError(f"cf-cycle is the weight of the counterfactual term's return trip: a finite number from 0 to below 1e6, got {cy!r}")
        if cy and not self.cf_weight:
            raise CausalVAEError("cf-cycle weighs a part of the counterfactual term: it needs the term (cf-weight > 0)")
        if cy and math.floor(min(self.batch_size, CF_ROWS) * (1.0 - ps) + 1e-9) == 0:
            raise CausalVAEError(f"cf-cycle abducts the term's counterfactuals again: with cf-prior-share {ps:g} and at most {min(self.batch_size, CF_ROWS)} rows a step, every row draws z from the prior and there is none")
        if self.cf_detach and math.floor(min(self.batch_size, CF_ROWS) * (1.0 - ps) + 1e-9) == 0:
            raise CausalVAEError(f"cf-detach stops the term's gradient at the abducted codes: with cf-prior-share {ps:g} and at most {min(self.batch_size, CF_ROWS)} rows a step, every row draws z from the prior and keeps none")
        if not isinstance(self.reader_sets, bool):
            raise CausalVAEError(f"reader-sets is on or off (true or false), got {self.reader_sets!r}")
        if self.reader_sets and not self.cf_weight:
            raise CausalVAEError("reader-sets changes how the counterfactual term's reader reads: it needs the term (cf-weight > 0)")
        e = self.ema
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not 0.0 <= e < 1.0:
            raise CausalVAEError(f"ema is the decay of the weights' moving average: a number from 0 (off) up to but not including 1, got {e!r}")
        g = self.guide_steps
        if isinstance(g, bool) or not isinstance(g, int) or g < 0:
            raise CausalVAEError(f"guide-steps must be an integer >= 0, got {g!r}")
        k = self.kl_warmup
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise CausalVAEError(f"kl-warmup must be a number of steps >= 0, got {k!r}")
        b = self.beta
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0.0 < b < 1e3:
            raise CausalVAEError(f"beta must be a positive number, got {b!r}")
        if not self.lr > 0 or not self.cpt_lr > 0:
            raise CausalVAEError("learning rates must be positive")
        for name, frac in self.withhold.items():
            if not 0.0 <= frac <= 1.0:
                raise CausalVAEError(f"withhold {name}={frac}: the fraction must be between 0 and 1")

    # Settings that may change when a run is resumed (they do not alter the computation).
    # ``out`` is where the run lives, not how it computes: a moved run folder resumes.
    RESUMABLE = ("out", "epochs", "max_steps", "threads", "checkpoint_every", "val_per_epoch", "val_limit")
    # What a settings file written before a field existed meant by its absence.
    LEGACY = {"decoder": "concat", "coordinates": "unit", "residual": False, "beta": 1.0, "kl_warmup": 0, "cf_weight": 0.0, "reader_steps": 400, "readers": 1, "reader_shift": 0, "reader_warp": 0.0, "cf_swap": "joint", "cf_prior_share": 0.5, "cf_detach": False, "cf_cycle": 0.0, "reader_sets": False, "adversary_weight": 0.0, "ema": 0.0, "guide_steps": 0, "match_weight": 0.0, "place": [], "place_mode": "shift", "draw_scale": 1, "ordinal": []}


# --------------------------------------------------------------------------------------- data


class ShardSampler(torch.utils.data.Sampler):
    """The stream of one process's training batches, from a given step on.

    Epoch ``e`` is ``default_rng((seed, e)).permutation(n)``, truncated to a multiple of
    ``world`` and dealt round-robin (rank r takes positions r, r + world, ...), then cut into
    batches (the last one may be short). The sampler yields ``length`` batches starting at
    batch ``skip`` of epoch ``start``, running on through the following epochs: to Lightning a
    run (or its resumed remainder) is one long epoch, so epochs of unequal length never
    confuse its loop, and the step count is exact.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1, *, start: int = 0, skip: int = 0, length: int | None = None, shuffle: bool = True):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.start, self.skip, self.shuffle = start, skip, shuffle
        self.length = self.batches_per_epoch() - skip if length is None else length

    def shard(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)[self.rank :: self.world]
        order = np.random.default_rng((self.seed, epoch)).permutation(self.n)
        return order[: self.n - self.n % self.world][self.rank :: self.world]

    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.shard(0)) / self.batch_size)

    def __iter__(self):
        epoch, b, left = self.start, self.skip, self.length
        while left > 0:
            shard = self.shard(epoch)
            while b * self.batch_size < len(shard) and left > 0:
                yield shard[b * self.batch_size : (b + 1) * self.batch_size].tolist()
                b, left = b + 1, left - 1
            epoch, b = epoch + 1, 0

    def __len__(self) -> int:
        return self.length


class _Batched(torch.utils.data.Dataset):
    """A dataset split read a whole batch at a time (``__getitems__``); ``hide`` (N, K) marks
    labels withheld from training (read as missing). A batch is ``(images, labels)``, and
    ``(images, labels, continuous labels)`` when the dataset has continuous columns."""

    def __init__(self, ds: Dataset, hide: np.ndarray | None = None):
        self.ds, self.hide = ds, hide

    def __len__(self) -> int:
        return len(self.ds)

    def __getitems__(self, positions):
        images, labels = self.ds.batch(positions)
        if self.hide is not None:
            labels[torch.from_numpy(self.hide[np.asarray(positions)])] = -1
        if self.ds.continuous_columns:
            return images, labels, self.ds.continuous_batch(positions)
        return images, labels


def withheld(ds: Dataset, fractions: dict[str, float], seed: int) -> np.ndarray | None:
    """The (N, K) mask of training labels withheld by ``--withhold NAME=FRACTION`` (seeded)."""
    if not fractions:
        return None
    rng = np.random.default_rng((seed, 104729))
    mask = np.zeros((len(ds), len(ds.label_columns)), dtype=bool)
    for name, frac in fractions.items():
        if name not in ds.label_columns:
            raise unknown("labelled variable", name, ds.label_columns, where="to withhold")
        mask[:, ds.label_columns.index(name)] = rng.random(len(ds)) < frac
    return mask


def _collate(batch):
    return batch


# --------------------------------------------------------------------------------------- module


class _Sums:
    """Running sums of per-image ELBO terms (nats), reducible across processes."""

    def __init__(self):
        self.t = torch.zeros(6, dtype=torch.float64)  # elbo, recon, kl, count; the counterfactual term's sum and steps

    def add(self, obj) -> None:
        self.t[:4] += torch.tensor([obj.elbo * obj.n, obj.recon * obj.n, obj.kl * obj.n, obj.n], dtype=torch.float64)

    def add_cf(self, value: float) -> None:
        """One step's counterfactual term (nats per picture, before its weight)."""
        self.t[4] += value
        self.t[5] += 1

    def cf_mean(self) -> float:
        n = self.t[5].item()
        return self.t[4].item() / n if n else math.nan

    def means(self) -> tuple[float, float, float]:
        n = self.t[3].item()
        if n == 0:
            return (math.nan, math.nan, math.nan)
        return tuple((self.t[:3] / n).tolist())


class LitCausalVAE(L.LightningModule):
    """The causal VAE as a LightningModule: the loss is the Pyro ELBO (module-local params)."""

    def __init__(self, vae: CausalVAE, cfg: TrainConfig, reader: Classifier | None = None):
        super().__init__()
        self.vae = vae
        self.cfg = cfg
        self.train_sums = _Sums()
        self.optimizer_state: dict | None = None  # restored from a checkpoint
        self.done = 0  # steps taken before this process started (a resumed run)
        # The frozen reader of the counterfactual term: not a submodule (never saved, never
        # optimised; its weights are a deterministic function of the data and the seed).
        self.__dict__["reader"] = reader
        self.__dict__["sets"] = None  # ReadingSets of --reader-sets
        # The adversary of z (adversary_weight > 0): trained with the networks, saved in the
        # checkpoints beside the model (``saved``), never in the model files.
        self.adversary = ZAdversary(vae) if cfg.adversary_weight else None
        # The moving average of the model's weights (--ema): in the checkpoints, and what the
        # run validates and saves at its end.
        self.ema = WeightAverage(vae, cfg.ema) if cfg.ema else None

    @property
    def saved(self) -> nn.Module:
        """What a checkpoint holds: the model, and the adversary of z and the weights' moving
        average when there are."""
        extra = {k: m for k, m in (("adversary", self.adversary), ("ema", self.ema)) if m is not None}
        return self.vae if not extra else nn.ModuleDict({"vae": self.vae, **extra})

    def _precision(self):
        if self.cfg.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def training_step(self, batch, batch_idx):
        images, labels, *continuous = batch
        self.vae.autocast = self._precision
        obj = self.vae.objective(images, labels, *continuous)
        self.train_sums.add(obj)
        self.log("elbo", obj.elbo, prog_bar=True, on_step=True, logger=False, batch_size=obj.n)
        loss = obj.loss
        step = self.done + self.global_step  # a resumed run's Lightning counts from 0
        guided = step < self.cfg.guide_steps
        if guided and self.cfg.match_weight:  # both read q(y | x) and P(y | labels): once
            with self._precision():
                parts = _classified_and_graph(self.vae, images, labels)
        else:
            parts = None
        if guided:
            # The first steps: the hidden parents' classifiers also learn what the graph says
            # of them given each row's labels, fading out linearly (prior_guidance).
            fade = 1.0 - step / self.cfg.guide_steps
            with self._precision():
                loss = loss + self.vae.alpha * fade * prior_guidance(self.vae, images, labels, parts)
        if self.cfg.match_weight:
            with self._precision():
                loss = loss + self.cfg.match_weight * prior_matching(self.vae, images, labels, parts)
        if self.adversary is not None:
            fit_loss, confusion, accuracy = adversary_terms(self.vae, self.adversary, labels, obj.z_loc)
            self.log("adv", accuracy, prog_bar=True, on_step=True, logger=False, batch_size=obj.n)
            loss = loss + fit_loss + self.cfg.adversary_weight * confusion
        if self.reader is None or not self.cfg.cf_weight:
            return loss
        for one in ([self.reader] if isinstance(self.reader, nn.Module) else self.reader):
            one.to(images.device)
        with self._precision():
            cf = counterfactual_term(self.vae, self.reader, images, labels, *continuous, z_loc=obj.z_loc, swap=self.cfg.cf_swap, sets=self.sets, prior_share=self.cfg.cf_prior_share, detach=self.cfg.cf_detach, cycle=self.cfg.cf_cycle)
        value = cf.item()
        self.train_sums.add_cf(value)
        self.log("cf", value, prog_bar=True, on_step=True, logger=False, batch_size=obj.n)
        return loss + self.cfg.cf_weight * cf

    @torch.no_grad()
    def validate(self, loader) -> torch.Tensor:
        """Sums of the per-image ELBO terms over this process's share of the validation split."""
        sums = _Sums()
        was_training = self.vae.training
        self.vae.eval()
        self.vae.autocast = self._precision
        with (self.ema.swapped_in(self.vae) if self.ema is not None else nullcontext()):  # the weights the run saves
            for images, labels, *continuous in loader:
                sums.add(self.vae.objective(images.to(self.device), labels.to(self.device), *(c.to(self.device) for c in continuous)))
        self.vae.train(was_training)
        return sums.t

    def configure_optimizers(self):
        # The graph's learned laws (tables' logits, continuous mechanisms' flows) take the
        # tables' learning rate; the networks theirs.
        law = ("cpt_logit_", "mechanisms.")
        cpts = [p for n, p in self.vae.named_parameters() if n.startswith(law)]
        nets = [p for n, p in self.vae.named_parameters() if not n.startswith(law)]
        groups = [{"params": nets, "lr": self.cfg.lr, "base_lr": self.cfg.lr}]
        if cpts:
            groups.append({"params": cpts, "lr": self.cfg.cpt_lr, "base_lr": self.cfg.cpt_lr})
        if self.adversary is not None:
            groups.append({"params": list(self.adversary.parameters()), "lr": self.cfg.lr, "base_lr": self.cfg.lr})
        opt = adam(groups)
        if self.optimizer_state is not None:
            opt.load_state_dict(self.optimizer_state)
        return opt


def adam(params: Any, **kwargs: Any) -> torch.optim.Adam:
    """``torch.optim.Adam(params, **kwargs)``, fused where PyTorch has a fused kernel for every
    parameter (floating point, on the CPU or a CUDA device): one pass over all the tensors
    instead of a loop of small operations. The same update up to rounding; on two CPU cores it
    takes the morpho recipe's optimiser step several times faster (``bench/bench_step.py``)."""
    groups = list(params)
    tensors = [t for g in groups for t in (g["params"] if isinstance(g, dict) else [g])]
    fused = bool(tensors) and all(t.device.type in ("cpu", "cuda") and t.is_floating_point() for t in tensors)
    return torch.optim.Adam(groups, fused=True if fused else None, **kwargs)


class WeightAverage(nn.Module):
    """An exponential moving average of a model's weights (Polyak averaging, as generative
    models commonly sample from): after each optimiser step, every floating-point entry ``a``
    of the model's state becomes ``decay * a + (1 - decay) * w`` (``torch.lerp``) of the live
    weight ``w``; other entries are copied. It starts at the model's initial weights.

    Its entries are buffers named after the model's state with ``/`` for ``.``, so a checkpoint
    holds them (``model.ema.*``) and a resumed run continues the same average."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise CausalVAEError(f"a weights' moving average needs a decay between 0 and 1, got {decay!r}")
        self.decay = float(decay)
        self.names = list(model.state_dict())
        for name, t in model.state_dict().items():
            self.register_buffer(name.replace(".", "/"), t.detach().clone())

    def entries(self) -> dict[str, torch.Tensor]:
        """The averaged state, under the model's own names."""
        return {name: getattr(self, name.replace(".", "/")) for name in self.names}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        mine = self.entries()
        for name, t in model.state_dict().items():
            a = mine[name]
            if a.is_floating_point():
                a.lerp_(t.detach().to(a.dtype), 1.0 - self.decay)
            else:
                a.copy_(t)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (in place: its parameters stay the same objects)."""
        model.load_state_dict(self.entries(), strict=True)

    @contextmanager
    def swapped_in(self, model: nn.Module):
        """``model`` holds the averaged weights inside the block and its own, exactly, after it."""
        live = {k: t.detach().clone() for k, t in model.state_dict().items()}
        self.copy_to(model)
        try:
            yield model
        finally:
            model.load_state_dict(live, strict=True)


# --------------------------------------------------------------------------------------- counterfactual training


def continuous_image_parents(vae: CausalVAE) -> list[str]:
    """The image's continuous parents (those of ``vae.parent_stats``), in the graph's order."""
    return [p for p in vae.image_parents if p in vae.parent_stats]


def read_discrete_parents(vae: CausalVAE) -> list[str]:
    """The discrete image parents the reader reads and the counterfactual term intervenes on:
    those with a label column. A parent never labelled (hidden, read by its classifier
    q(y | x)) is not read; the term keeps each picture's inferred value of it."""
    return [p for p in discrete_image_parents(vae) if p in vae.label_columns]


def hidden_image_parents(vae: CausalVAE) -> list[str]:
    """The discrete image parents without a label column (each has a classifier)."""
    return [p for p in discrete_image_parents(vae) if p not in vae.label_columns]


def read_image_parents(vae: CausalVAE) -> list[str]:
    """The image parents the reader reads and the counterfactual term intervenes on, in the
    order of the reader's outputs: the labelled discrete ones, then the continuous ones."""
    return read_discrete_parents(vae) + continuous_image_parents(vae)


class ReadingSets:
    """Which readings of the reader's discrete parents no reader could tell apart from the
    label, as the world says (:meth:`~causalvae.worlds.World.accepted` with the style unknown:
    the sprites world's orientation, where a square turned a quarter turn is the same picture).

    Calling it with the values of every discrete image parent (value indices; -1: not known,
    e.g. a hidden parent in the reader's training rows) gives ``{k: bool (R, card)}`` for the
    k-th parent of :func:`read_discrete_parents` that the world reads ambiguously: the readings
    accepted for each row, the union over every value of a parent not known (a row without the
    parent's own value accepts nothing). The reader learns a hidden parent's union; the term,
    which knows each picture's inferred value of it, asks for that value's set. A reader trained
    and asked this way (``--reader-sets``) is never pushed to tell apart what the pictures do
    not show, which a plain cross-entropy does: a reader that cannot see which quarter turn a
    square has guesses it from what goes with it in the data (its position), and the
    counterfactual term would then move a turned square to where that guess points.
    """

    def __init__(self, world: Any, vae: CausalVAE):
        self.world = world
        self.graph = vae.graph
        self.names = discrete_image_parents(vae)
        self.columns = {k: p for k, p in enumerate(read_discrete_parents(vae)) if p in world.ambiguous}

    def __call__(self, values: dict[str, Any]) -> dict[int, torch.Tensor]:
        vals = {n: np.asarray(values[n].cpu() if isinstance(values[n], torch.Tensor) else values[n], dtype=np.int64) for n in self.names}
        return {k: torch.from_numpy(self._accepted(p, vals)) for k, p in self.columns.items()}

    def _accepted(self, column: str, vals: dict[str, np.ndarray]) -> np.ndarray:
        unread = vals[column] < 0
        if unread.any():  # a row without the column's own value accepts nothing
            out = self._accepted(column, {**vals, column: np.where(unread, 0, vals[column])})
            out[unread] = False
            return out
        missing = next((n for n, a in vals.items() if n != column and bool((a < 0).any())), None)
        if missing is None:
            try:
                return self.world.accepted(column, self.graph.card(column), vals, None)
            except KeyError as e:
                raise CausalVAEError(f"the {self.world.name} world's readings of {column} need the value of {e.args[0]}, which is not a discrete parent of the image") from None
        out = None
        for v in range(self.graph.card(missing)):
            acc = self._accepted(column, {**vals, missing: np.where(vals[missing] < 0, v, vals[missing])})
            out = acc if out is None else out | acc
        return out


def _check_reader_sets(graph: Graph, ds: Dataset) -> None:
    """Refuse ``--reader-sets`` (before anything is written) where the dataset's world reads
    every labelled discrete parent of the image unambiguously."""
    from causalvae import worlds

    world = worlds.for_dataset(ds)
    read = [p for p in graph.image.parents if p not in graph.continuous and p in ds.label_columns]
    if not any(p in world.ambiguous for p in read):
        raise CausalVAEError(f"--reader-sets: the {world.name} world reads each of the image's labelled parents ({', '.join(read) or 'none discrete'}) "
                             "unambiguously; there is no set of readings to accept (leave the option out)")


def reading_sets(world: Any, vae: CausalVAE) -> ReadingSets | None:
    """:class:`ReadingSets` of ``vae``'s read parents in ``world``, or None when the world
    reads every one of them unambiguously."""
    sets = ReadingSets(world, vae)
    return sets if sets.columns else None


def _read_loss(logits: Sequence[torch.Tensor], target: torch.Tensor, accepted: dict[int, torch.Tensor] | None) -> torch.Tensor:
    """Sum over the discrete parents of the cross-entropy of ``target[:, k]``, or where
    ``accepted`` has the parent, of the set of readings it accepts (:func:`set_cross_entropy`)."""
    accepted = accepted or {}
    return sum(set_cross_entropy(lg.float(), accepted[k].to(lg.device)) if k in accepted else F.cross_entropy(lg.float(), target[:, k]) for k, lg in enumerate(logits))


#: Floor of a continuous parent's residual sd in the counterfactual term (standardised units):
#: a near-perfect reader must not make the term's Gaussian NLL explode.
MIN_RESIDUAL_SD = 0.05


def make_reader(vae: CausalVAE) -> Classifier:
    """An untrained reader of ``vae``'s image parents: ``Classifier(config, sum(cards) + Kc)``,
    its outputs the logits of each discrete parent, then one reading per continuous parent
    (the standardised value ``(v - mean) / sd``). Its non-persistent buffer ``residual_sd``
    (Kc,) holds each continuous reading's residual sd, 1 until :func:`train_reader` measures it."""
    n_cont = len(continuous_image_parents(vae))
    reader = Classifier(vae.config, sum(vae.graph.card(p) for p in read_discrete_parents(vae)) + n_cont)
    reader.register_buffer("residual_sd", torch.ones(n_cont), persistent=False)
    return reader


def train_reader(vae: CausalVAE, ds: Dataset, hide: np.ndarray | None, steps: int, seed: int, batch_size: int = 64, shift: int = 0,
                 warp: float = 0.0, tick: Callable[[int], None] | None = None, sets: ReadingSets | None = None) -> tuple[Classifier, float | None]:
    """A reader of the image's parents, trained on the real training pictures and their
    labels, then frozen: the judge of :func:`counterfactual_term`. (Never the evaluation
    oracle, which must not take part in training.) ``shift``: each training picture is moved
    by up to that many whole pixels each way, at random (:func:`~causalvae.pictures.shifted`),
    for pictures whose labels say nothing of where the object sits (the validation pictures
    are never moved). ``warp``: half of each batch, drawn at random, is also turned by up to
    that many degrees, scaled and sheared (:func:`~causalvae.pictures.warped`), for the
    discrete parents' loss only: a continuous parent such as a stroke's thickness is not kept
    by a scaling, so those rows count as missing its value (the other half teaches it);
    without discrete parents nothing is warped. ``tick``, if given, is called with the number
    of steps done before each step and once at the end (progress). ``sets``: the parents the
    world reads ambiguously are learnt, and scored, on the set of readings it accepts
    (:class:`ReadingSets`; the accuracy then counts a reading right when it is in the set).

    Its loss is the cross-entropy of each discrete parent (rows with every discrete label)
    plus, for each continuous parent k, the squared error of its standardised value
    ``(v - mean_k) / sd_k`` (``vae.parent_stats``; rows with that value, NaN = missing).
    Returns the reader and its accuracy (all discrete parents right; None without discrete
    parents) on up to 1,000 validation pictures of ``ds``'s dataset. On the same pictures it
    measures each continuous reading's residual sd ``sigma_k = sqrt(mean((reading - target)^2))``
    in standardised units, floored at :data:`MIN_RESIDUAL_SD`, into ``reader.residual_sd``;
    ``reader.validation`` holds ``val_residual_sd`` (sigma_k) and ``val_mae`` (the mean absolute
    error in the variable's own units) per continuous parent (None when not measured), or is
    empty without continuous parents."""
    cols = list(ds.label_columns)
    parents = read_discrete_parents(vae)
    cont = continuous_image_parents(vae)
    idx = [cols.index(p) for p in parents]
    warp = warp if parents else 0.0  # warped rows teach only discrete parents: none, no warp
    cidx = [list(ds.continuous_columns).index(p) for p in cont]
    dims = [vae.graph.card(p) for p in parents]
    mean = torch.tensor([vae.parent_stats[p][0] for p in cont], dtype=torch.float32)
    sd = torch.tensor([vae.parent_stats[p][1] for p in cont], dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):  # the training stream of z stays untouched
        torch.manual_seed(seed + 15485863)
        reader = make_reader(vae)
    opt = adam(reader.parameters(), lr=2e-3)
    rng = np.random.default_rng((seed, 15485863))
    moves = np.random.default_rng((seed, 15485863, 1))  # its own stream: the batches stay those of shift 0
    turns = np.random.default_rng((seed, 15485863, 2))  # and the warps theirs
    for step in range(steps):
        if tick is not None:  # the steps done so far (a step without rows to learn from counts too)
            tick(step)
        for g in opt.param_groups:
            g["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * step / steps))
        positions = np.sort(rng.choice(len(ds), size=min(batch_size, len(ds)), replace=False))
        images, labels = ds.batch(positions)
        if shift:
            images = torch.from_numpy(shifted(images.numpy(), shift, moves))
        # Half of the batch, picked at random (the batch's positions are sorted: its first half
        # would always be the lower-numbered pictures), is warped.
        turned = torch.from_numpy(turns.permutation(len(images))[: len(images) // 2]) if warp else None
        if turned is not None and len(turned):
            images = images.clone()
            images[turned] = torch.from_numpy(warped(images[turned].numpy(), warp, turns))
        if hide is not None:  # withheld labels stay withheld
            labels[torch.from_numpy(hide[positions])] = -1
        y = labels[:, idx]
        keep = (y >= 0).all(1)
        if not cont:  # discrete parents only: the rows with every label
            if not bool(keep.any()):
                continue
            logits = reader(prepare(images[keep], vae.config.likelihood)).split(dims, dim=-1)
            loss = _read_loss(logits, y[keep], _known_sets(sets, vae, labels[keep], cols))
        else:  # a row takes part in each target it has
            target = (ds.continuous_batch(positions)[:, cidx] - mean) / sd
            if turned is not None:
                target[turned] = float("nan")  # warped rows: their continuous values are not kept
            has = torch.isfinite(target)
            use = (keep | has.any(1)) if parents else has.any(1)  # (keep is all True without discrete parents)
            if not bool(use.any()):
                continue
            keep, has, y, target = keep[use], has[use], y[use], target[use]
            *logits, reading = reader(prepare(images[use], vae.config.likelihood)).split([*dims, len(cont)], dim=-1)
            loss = _read_loss([lg[keep] for lg in logits], y[keep], _known_sets(sets, vae, labels[use][keep], cols)) if bool(keep.any()) else 0.0
            for k in range(len(cont)):
                if bool(has[:, k].any()):
                    loss = loss + F.mse_loss(reading[has[:, k], k], target[has[:, k], k])
        opt.zero_grad()
        loss.backward()
        opt.step()
    if tick is not None:
        tick(steps)
    reader.eval()
    for p in reader.parameters():
        p.requires_grad_(False)
    reader.validation = {}
    val = load_dataset(ds.root, split="val", verify=False)
    n = min(len(val), 1000)
    if cont:
        reader.validation = {"val_residual_sd": dict.fromkeys(cont), "val_mae": dict.fromkeys(cont)}
    if n == 0:
        return reader, (float("nan") if parents else None)
    images, labels = val.batch(np.arange(n))
    with torch.no_grad():
        *logits, reading = reader(prepare(images, vae.config.likelihood)).split([*dims, len(cont)], dim=-1)
    accuracy = None
    if parents:
        accepted = _known_sets(sets, vae, labels, cols)
        right = torch.stack([accepted[k][torch.arange(n), lg.argmax(-1)] if k in accepted else lg.argmax(-1) == labels[:, i]
                             for k, (lg, i) in enumerate(zip(logits, idx))], 1).all(1)
        accuracy = float(right.float().mean())
    if cont:
        target = (val.continuous_batch(np.arange(n))[:, cidx] - mean) / sd
        for k, p in enumerate(cont):
            has = torch.isfinite(target[:, k])
            if not bool(has.any()):
                continue
            err = reading[has, k] - target[has, k]
            sigma = max(float(err.square().mean().sqrt()), MIN_RESIDUAL_SD)
            reader.residual_sd[k] = sigma
            reader.validation["val_residual_sd"][p] = sigma
            reader.validation["val_mae"][p] = float(err.abs().mean() * sd[k])
    return reader, accuracy


def _known_sets(sets: ReadingSets | None, vae: CausalVAE, labels: torch.Tensor, cols: list[str]) -> dict[int, torch.Tensor]:
    """``sets`` of rows of a dataset's labels (a parent without a label column: not known)."""
    if sets is None:
        return {}
    return sets({p: labels[:, cols.index(p)] if p in cols else torch.full((len(labels),), -1) for p in sets.names})


#: Pictures of a batch that take part in the counterfactual term (it costs an encoder, a
#: decoder and a reader pass with their gradients; half a batch of 64 keeps it to ~40%).
CF_ROWS = 32
#: How the counterfactual term draws its interventions (TrainConfig.cf_swap).
CF_SWAPS = ("joint", "independent")


def prior_guidance(vae: CausalVAE, images: torch.Tensor, labels: torch.Tensor, parts: list | None = None) -> torch.Tensor:
    """Cross-entropy of each hidden image parent's classifier q(y | x) to P(y | the row's
    labels) under the graph's tables, per picture (0 without a hidden image parent).

    A never-labelled parent of the picture starts training with no meaning: the decoder
    responds to it at random, and the enumeration's gradient drives its classifier by that
    noise. The graph knows something of it from the labelled variables (sprites: hearts
    tend to be large and upright), which ``--guide-steps`` teaches the classifier during the
    first steps; the decoder then learns what the parent looks like from these soft guesses,
    and the ELBO takes over as the guidance fades.
    """
    total = images.new_zeros((), dtype=torch.float32)
    for _, q, target, _ in _classified_and_graph(vae, images, labels) if parts is None else parts:
        total = total - (target * q.clamp_min(1e-12).log()).sum(-1).mean()
    return total


def prior_matching(vae: CausalVAE, images: torch.Tensor, labels: torch.Tensor, parts: list | None = None) -> torch.Tensor:
    """How far each hidden image parent's classifier strays from the graph in aggregate, in
    nats: for each labelled variable v and each of its values k in the batch, KL(q_k || t_k),
    the divergence of q_k, the mean of q(y | x) over the rows with v = k, from t_k, the mean of
    P(y | the row's labels) over the same rows; weighted by the rows' share and summed.

    Per picture the graph says little of a hidden parent (P(heart | tilted, small) is small,
    not 0), so the ELBO lets a classifier call a whole kind of picture by the wrong name at
    a small cost per picture. In aggregate the graph says much: among the tilted sprites of
    a batch, so many are hearts. A classifier that names half the tilted ellipses hearts
    breaks that count, whichever pictures it names. The direction KL(q_k || t_k) stays finite
    when a small group holds no picture the classifier names y (q_k(y) = 0), which the
    reverse would punish without end; it is large where the classifier names y far more
    often than the graph expects."""
    total = images.new_zeros((), dtype=torch.float32)
    for _, q, target, rows in _classified_and_graph(vae, images, labels) if parts is None else parts:
        for j in range(rows.shape[1]):
            col = torch.as_tensor(rows[:, j], device=images.device)
            for k in torch.unique(col[col >= 0]).tolist():
                m = col == k
                t_bar, q_bar = target[m].mean(0), q[m].mean(0)
                kl = (q_bar * (q_bar.clamp_min(1e-12).log() - t_bar.clamp_min(1e-12).log())).sum()
                total = total + m.float().mean() * kl
    return total


def _classified_and_graph(vae: CausalVAE, images: torch.Tensor, labels: torch.Tensor):
    """For each hidden image parent y: (name, q(y | x) (B, card), P(y | the row's labels) under
    the graph's tables (B, card), the labels as int64 numpy rows); nothing without one. The
    ``parts`` that :func:`prior_guidance` and :func:`prior_matching` take (computed here when
    not given)."""
    from causalvae.exact import posterior

    hidden = hidden_image_parents(vae)
    if not hidden:
        return []
    rows = labels.detach().cpu().numpy().astype(np.int64)
    q = vae.classify(images)
    return [(p, q[p], torch.as_tensor(posterior(vae.graph, [p], vae.label_columns, rows), dtype=torch.float32, device=images.device), rows) for p in hidden]


def _check_guided(graph: Graph, option: str = "--guide-steps") -> None:
    """--guide-steps and --match-weight need a hidden discrete image parent and P(y | labels)
    computed exactly."""
    parents = list(graph.image.parents) if graph.image is not None else []
    if not any(p not in graph.continuous and not graph[p].observed for p in parents):
        raise CausalVAEError(f"{option} concerns the classifier of a hidden image parent, and every parent of this dataset's image is labelled")
    if graph.mixed:
        raise CausalVAEError(f"{option} needs a graph of discrete variables (P(y | labels) is computed exactly by the tables)")


def discrete_image_parents(vae: CausalVAE) -> list[str]:
    """The image's discrete parents: the reader's classification outputs."""
    return [p for p in vae.image_parents if p not in vae.parent_stats]


def counterfactual_term(vae: CausalVAE, reader: Classifier | Sequence[Classifier], images: torch.Tensor, labels: torch.Tensor, continuous: torch.Tensor | None = None, z_loc: torch.Tensor | None = None, swap: str = "joint",
                        sets: ReadingSets | None = None, prior_share: float = 0.5, detach: bool = False, cycle: float = 0.0) -> torch.Tensor:
    """The counterfactual training term, in nats per picture: decode under other parents and
    ask the frozen reader to read those parents back.

    Each picture's image parents, discrete and continuous, are replaced at once by another
    picture's of the batch (one permutation: a random intervention drawn from the tuples the
    data holds). The first ``floor(n * (1 - prior_share))`` of the ``n`` rows keep their own
    abducted z (the encoder's mean: a counterfactual, and the gradient teaches the encoder to
    leave the parents out of z), the others draw z from the prior (generation); by default
    half and half (``--cf-prior-share``). ``detach`` (``--cf-detach``) stops the term's
    gradient at the abducted codes: the encoder then learns from the ELBO alone, and the term
    teaches only the decoder to draw the new parents from the code it is given. (The term
    otherwise also rewards an encoder that puts less of the picture into z: a code that says
    nothing can never contradict the parents.) Rows missing any parent value (-1 or NaN)
    take no part, and at most :data:`CF_ROWS` rows do. An image parent that is never labelled
    (:func:`hidden_image_parents`) is not swapped and not read: each picture keeps the value its
    classifier q(y | x) finds most probable, in the abduction and in the counterfactual alike.

    The term is the mean over rows of ``sum_d CE_d + sum_k 0.5 * ((r_k - t_k) / sigma_k)^2``:
    the reader's cross-entropy of each intended discrete parent, and for each continuous
    parent the Gaussian NLL (constants dropped) of its intended standardised value
    ``t_k = (v_k - mean_k) / sd_k`` under the reader's reading ``r_k``, with the reader's
    validation residual sd ``sigma_k`` (``reader.residual_sd``, see :func:`train_reader`).

    ``reader`` may be several readers (``--readers N``: the same training, seeds ``seed``,
    ``seed + 1``, ...): the term is then the mean of their terms on the same counterfactuals.
    A decoder pushed by one reader learns that reader's blind spots as well as the digit (it
    draws 2s the reader reads as 2 and an independent judge reads as 8); to satisfy several at
    once it has to draw what they agree on.

    ``swap="independent"`` draws each parent's new value from a row of its own (one
    permutation per parent): the interventions then come from the product of the parents'
    marginals, so combinations the data makes rare (a heart turned upside down) are asked for
    as often as an intervention can ask for them, instead of as rarely as the data shows them.

    ``sets`` (``--reader-sets``): a parent the world reads ambiguously is asked for the set of
    readings the world accepts for the intervened values (:class:`ReadingSets`), not for the
    one value (the reader must have been trained so too).

    ``cycle`` (``--cf-cycle``): the weight of the return trip. Each counterfactual row (one
    that kept its abducted code z) is abducted again, under the parents it was drawn with, by
    the encoder with its weights frozen, and ``cycle * 0.5 * ||z_back - z||^2`` (z in the
    prior's units; the mean over those rows) joins the term. Its gradient reaches the decoder
    through the counterfactual picture (and, without ``detach``, the encoder through the code
    the picture was drawn from), never the frozen encoder's reading: the decoder must keep in
    the picture what the code said of the source (the writer's hand), whatever the new
    parents are. The reader alone asks only that the new parents be read, which a generic
    digit satisfies as well.

    ``z_loc``: the encoder's mean for every row of the batch as the ELBO's guide computed it
    (``Objective.z_loc``, given the same labels): the abduction then reuses it, the same
    values and gradients as encoding the pictures again, at the cost of none.
    """
    if swap not in CF_SWAPS:
        raise unknown("cf-swap", swap, CF_SWAPS)
    if not 0.0 <= prior_share <= 1.0:
        raise CausalVAEError(f"prior_share must be from 0 to 1, got {prior_share}")
    if isinstance(cycle, bool) or not math.isfinite(cycle) or cycle < 0.0:
        raise CausalVAEError(f"cycle must be a finite weight >= 0, got {cycle!r}")
    readers = [reader] if isinstance(reader, nn.Module) else list(reader)
    if not readers:
        raise CausalVAEError("the counterfactual term needs at least one reader")
    cols = vae.label_columns
    labels = labels.to(torch.int64)
    parents = read_discrete_parents(vae)
    hidden = hidden_image_parents(vae)
    cont = continuous_image_parents(vae)
    if not (parents or cont):
        return images.new_zeros((), dtype=torch.float32)
    dims = [vae.graph.card(p) for p in parents]
    if cont:
        if continuous is None:
            raise CausalVAEError(f"the counterfactual term needs the continuous labels ({', '.join(vae.continuous_columns)}) beside the discrete ones")
        for one in readers:
            sigma = getattr(one, "residual_sd", None)
            if not isinstance(sigma, torch.Tensor) or sigma.shape != (len(cont),):
                raise CausalVAEError(f"the reader has no residual sd of its {len(cont)} continuous reading(s): build it with make_reader or train_reader")
    y = torch.stack([labels[:, cols.index(p)] for p in parents], 1) if parents else labels[:, :0]
    keep = (y >= 0).all(1)
    if cont:
        c = continuous[:, [vae.continuous_columns.index(p) for p in cont]].to(torch.float32)
        keep = keep & torch.isfinite(c).all(1)
    if int(keep.sum()) < 2:
        return images.new_zeros((), dtype=torch.float32)
    if z_loc is not None and (hidden or z_loc.shape != (len(images), vae.config.z_dim)):
        raise CausalVAEError(f"z_loc must be the guide's mean of q(z | x, labels) for the batch's {len(images)} rows, with no hidden image parent")
    images, y = images[keep][:CF_ROWS], y[keep][:CF_ROWS]
    n = len(y)
    own = {p: y[:, k] for k, p in enumerate(parents)}
    if cont:
        c = c[keep][:CF_ROWS]
        own.update({p: c[:, k] for k, p in enumerate(cont)})
    if hidden:  # kept at the value the classifier reads off each picture (no gradient through argmax)
        with torch.no_grad():
            guessed = vae.classify(images)
        own.update({p: guessed[p].argmax(-1) for p in hidden})
    n_post = n // 2 if prior_share == 0.5 else int(math.floor(n * (1.0 - prior_share) + 1e-9))
    if z_loc is not None:
        z_post = z_loc[keep][:n_post]
    elif n_post == 0:  # every row from the prior: nothing to encode
        z_post = torch.zeros(0, vae.config.z_dim, dtype=torch.float32, device=images.device)
    else:  # only the first n_post rows keep their abducted z (GroupNorm: each row encodes alone)
        with torch.no_grad() if detach else contextlib.nullcontext():
            z_post, _ = vae.encode(images[:n_post], {p: v[:n_post] for p, v in own.items()})
    if detach:
        z_post = z_post.detach()
    z = torch.cat([z_post, torch.randn(n - n_post, z_post.shape[1], dtype=z_post.dtype, device=z_post.device)])
    if swap == "joint":
        perm = torch.randperm(n, device=y.device)
        other = y[perm]
        c_other = c[perm] if cont else None
    else:  # one permutation per parent, discrete then continuous
        other = torch.stack([y[torch.randperm(n, device=y.device), k] for k in range(len(parents))], 1) if parents else y
        c_other = torch.stack([c[torch.randperm(n, device=c.device), k] for k in range(len(cont))], 1) if cont else None
    do = {p: other[:, k] for k, p in enumerate(parents)}
    do.update({p: own[p] for p in hidden})
    if cont:
        do.update({p: c_other[:, k] for k, p in enumerate(cont)})
    x = decoded_mean(vae.decoder(z, vae.parents_onehot(do)), vae.config.likelihood)
    target = torch.stack([standardise(c_other[:, k], vae.parent_stats[p]) for k, p in enumerate(cont)], 1) if cont else None
    accepted = sets({p: do[p] for p in sets.names}) if sets is not None else None

    def read_loss(one: Classifier) -> torch.Tensor:
        out = one(x)
        if out.shape[-1] != sum(dims) + len(cont):
            raise CausalVAEError(f"the reader gives {out.shape[-1]} outputs; the image's parents need {sum(dims) + len(cont)} (make it with make_reader)")
        if not cont:
            return _read_loss(out.split(dims, dim=-1), other, accepted)
        *logits, reading = out.float().split([*dims, len(cont)], dim=-1)
        loss = _read_loss(logits, other, accepted)
        return loss + (0.5 * ((reading - target) / one.residual_sd.to(reading)).square()).sum(1).mean()

    term = sum(read_loss(one) for one in readers) / len(readers)
    if cycle and n_post:
        term = term + cycle * return_trip(vae, x[:n_post], {p: v[:n_post] for p, v in do.items()}, z_post)
    return term


def return_trip(vae: CausalVAE, pictures: torch.Tensor, values: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """``0.5 * ||z_back - z||^2``, the mean over rows: ``z_back`` is the encoder's mean of
    q(z | pictures, values) computed with the encoder's weights detached (a functional call:
    the gradient reaches the pictures only, and no module's state changes), ``z`` the codes
    they were decoded from (detached). ``pictures`` are in the network's input scale
    (:func:`decoded_mean`)."""
    frozen = {name: p.detach() for name, p in vae.encoder.named_parameters()}
    z_back, _ = torch.func.functional_call(vae.encoder, frozen, (pictures, vae.parents_onehot(values)))
    return 0.5 * (z_back.float() - z.detach().float()).square().sum(1).mean()


# --------------------------------------------------------------------------------------- adversary of z


class ZAdversary(nn.Module):
    """An adversary that reads the labelled discrete image parents off the abducted code z
    (the encoder's mean): an MLP ``z_dim -> 256 -> 256 -> sum(cards)`` of logits, one block
    per parent of :func:`read_discrete_parents`."""

    def __init__(self, vae: CausalVAE, hidden: int = 256):
        super().__init__()
        self.parents = read_discrete_parents(vae)
        if not self.parents:
            raise CausalVAEError("--adversary-weight reads the image's labelled discrete parents off z: this graph's image has none")
        self.dims = [vae.graph.card(p) for p in self.parents]
        self.net = nn.Sequential(nn.Linear(vae.config.z_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, sum(self.dims)))

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        return list(self.net(z.float()).split(self.dims, dim=-1))


def adversary_terms(vae: CausalVAE, adversary: ZAdversary, labels: torch.Tensor, z_loc: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The two sides of the adversary of z, on the rows whose parents are all labelled.

    - ``fit``: the adversary's cross-entropy of the true parents from the *detached* code: its
      gradient trains the adversary only.
    - ``confusion``: sum over parents of KL(uniform || adversary's reading of z), read by the
      adversary with its weights frozen: its gradient reaches the encoder only, and vanishes
      when nothing of the parents can be read off z (Tzeng et al.'s domain confusion). It is in
      nats per picture: 0 when the reading is flat, growing as the adversary grows sure.
    - the adversary's accuracy (all parents right) on the batch, a float for the progress bar.

    A counterfactual keeps z and changes the parents: whatever of the parents z still holds
    is drawn from the source picture (a 7 drawn from a 2 keeps the 2's foot). The confusion
    term teaches the encoder to leave the parents out of z.
    """
    if z_loc is None:
        raise CausalVAEError("the adversary of z needs every image parent labelled in every row (no hidden or withheld image parent)")
    labels = labels.to(torch.int64)
    y = torch.stack([labels[:, vae.label_columns.index(p)] for p in adversary.parents], 1)
    keep = (y >= 0).all(1)
    if int(keep.sum()) == 0:
        zero = z_loc.new_zeros((), dtype=torch.float32)
        return zero, zero, float("nan")
    z, y = z_loc[keep], y[keep]
    fit_logits = adversary(z.detach())
    fit = sum(F.cross_entropy(lg, y[:, k]) for k, lg in enumerate(fit_logits))
    frozen = {name: p.detach() for name, p in adversary.named_parameters()}
    read = torch.func.functional_call(adversary, frozen, (z,))
    confusion = sum((-F.log_softmax(lg, -1).mean(-1) - math.log(lg.shape[-1])).mean() for lg in read)
    with torch.no_grad():
        right = torch.stack([lg.argmax(-1) == y[:, k] for k, lg in enumerate(fit_logits)], 1).all(1)
    return fit, confusion, float(right.float().mean())


# --------------------------------------------------------------------------------------- callback


def kl_weight(cfg: TrainConfig, step: int) -> float:
    """The weight of z's KL term at optimiser step ``step`` (counted from 0): ``beta``, or
    during a warm-up (``kl_warmup`` steps) ``beta * (step + 1) / kl_warmup``, rising linearly
    from near 0 (Bowman et al. 2016; Sonderby et al. 2016)."""
    if not cfg.kl_warmup:
        return float(cfg.beta)
    return float(cfg.beta) * min(1.0, (step + 1) / cfg.kl_warmup)


class RunKeeper(L.Callback):
    """Checkpoints, metrics.csv and TensorBoard scalars of a run."""

    def __init__(self, run: Path, cfg: TrainConfig, total_steps: int, done: int, epoch_steps: int, wall0: float, rows: list[dict], train_sums: torch.Tensor | None):
        self.run, self.cfg = run, cfg
        self.val_every = max(1, epoch_steps // cfg.val_per_epoch)
        self.val_loader = None  # set by fit() once the process's rank is known
        self.total_steps, self.done, self.epoch_steps = total_steps, done, epoch_steps
        self.wall0, self.rows = wall0, rows
        self.carry_sums = train_sums
        self.t0 = time.perf_counter()
        self.stop_requested = False
        self.tb = None
        self.say = None  # set by fit(): a callable taking one progress line, every LINE_EVERY_S
        self.said = time.perf_counter()

    def step(self, trainer) -> int:
        return self.done + trainer.global_step

    def wall(self) -> float:
        return self.wall0 + time.perf_counter() - self.t0

    def on_train_start(self, trainer, pl_module):
        if self.carry_sums is not None:
            pl_module.train_sums.t = self.carry_sums.clone()
        if trainer.is_global_zero:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.tb = None
            else:
                self.tb = SummaryWriter(str(self.run / "tb"))
        if _main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._request_stop)

    def _request_stop(self, signum, frame):
        self.stop_requested = True

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        # The learning rate is a function of the step alone (nothing to checkpoint):
        # cosine from the base rate down to a tenth of it at the last step.
        step = self.step(trainer)
        f = 1.0
        if self.cfg.lr_schedule == "cosine":
            f = 0.1 + 0.45 * (1.0 + math.cos(math.pi * min(1.0, step / max(1, self.total_steps))))
        for group in trainer.optimizers[0].param_groups:
            group["lr"] = group["base_lr"] * f
        # So is z's KL weight during a warm-up.
        pl_module.vae.beta = kl_weight(self.cfg, step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.ema is not None:  # after the optimiser's step, before validating or checkpointing
            pl_module.ema.update(pl_module.vae)
        step = self.step(trainer)
        now = time.perf_counter()
        if self.say is not None and trainer.is_global_zero and (now - self.said >= LINE_EVERY_S or step == self.total_steps):
            self.said = now
            self.say(f"step {step:,}/{self.total_steps:,} ({100 * step / self.total_steps:.0f}%), {self.wall():.0f} s")
        if trainer.world_size > 1:  # every process stops at the same step, or none does
            self.stop_requested = trainer.strategy.reduce_boolean_decision(self.stop_requested, all=False)
        if step % self.val_every == 0 or step == self.total_steps:
            self.validate(trainer, pl_module)
        if step % self.cfg.checkpoint_every == 0 or step == self.total_steps or self.stop_requested:
            self.checkpoint(trainer, pl_module)
        if self.stop_requested:
            trainer.should_stop = True

    def checkpoint(self, trainer, pl_module) -> None:
        from causalvae.store import save_checkpoint

        step = self.step(trainer)
        sums = _reduce_sum(trainer, pl_module, pl_module.train_sums.t) if trainer.world_size > 1 else pl_module.train_sums.t
        if trainer.is_global_zero:
            meta = {
                "epoch": step // self.epoch_steps,
                "batch": step % self.epoch_steps,
                "wall_s": self.wall(),
                "train_sums": (sums / max(trainer.world_size, 1)).tolist() if trainer.world_size > 1 else sums.tolist(),
                "world_size": trainer.world_size,
            }
            save_checkpoint(self.run / "checkpoints", step, model=pl_module.saved, optimizer=trainer.optimizers[0], meta=meta)
        if trainer.world_size > 1:
            trainer.strategy.barrier()

    def validate(self, trainer, pl_module) -> None:
        """Append a metrics.csv row: training means since the last row, validation ELBO now."""
        # Validation draws z from its own seeded stream, so that training is the same
        # however often it is validated (and a resumed run repeats an uninterrupted one).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed + 7919 * self.step(trainer))
            val = pl_module.validate(self.val_loader) if self.val_loader is not None else _Sums().t
        train = pl_module.train_sums.t
        if trainer.world_size > 1:
            val = _reduce_sum(trainer, pl_module, val)
            train = _reduce_sum(trainer, pl_module, train)
        pl_module.train_sums = _Sums()
        if not trainer.is_global_zero:
            return
        step = self.step(trainer)
        tv, vv = _Sums(), _Sums()
        tv.t, vv.t = train, val
        row = {"epoch": round(step / self.epoch_steps, 4), "step": step, "wall_s": round(self.wall(), 3)}
        for prefix, sums in (("train", tv), ("val", vv)):
            for key, value in zip(("elbo", "recon", "kl"), sums.means()):
                row[f"{prefix}_{key}"] = round(value, 4)
        if self.cfg.cf_weight and pl_module.reader is not None:
            row["train_cf"] = round(tv.cf_mean(), 4)
        self.rows.append(row)
        write_metrics(self.run / "metrics.csv", self.rows)
        if self.tb is not None:
            for key in METRIC_COLUMNS[3:]:
                self.tb.add_scalar(key.replace("_", "/", 1), row[key], step)
            self.tb.flush()

    def on_train_end(self, trainer, pl_module):
        if self.tb is not None:
            self.tb.close()


def _reduce_sum(trainer, pl_module, t: torch.Tensor) -> torch.Tensor:
    """Sum a small CPU tensor over the processes (on the module's device, as NCCL needs)."""
    return trainer.strategy.reduce(t.clone().to(pl_module.device), reduce_op="sum").cpu()


@contextmanager
def _quiet_lightning():
    """Silence Lightning's banners and the warnings about choices made here on purpose
    (no dataloader workers: batches are read from a memory map in one call)."""
    import logging

    loggers = [logging.getLogger(n) for n in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric.utilities.distributed")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for msg in (".*does not have many workers.*", ".*log_every_n_steps.*", ".*LeafSpec.*is deprecated.*", ".*litlogger.*"):
                warnings.filterwarnings("ignore", msg)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def write_metrics(path: Path, rows: list[dict]) -> None:
    """The rows as metrics.csv, atomically: the required columns, then each optional one some
    row has (left empty in the rows without it)."""
    buf = io.StringIO()
    extra = [c for c in OPTIONAL_METRIC_COLUMNS if any(c in r for r in rows)]
    w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS + extra, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    if not path.is_file():
        raise CausalVAEError(f"{path}: not a metrics file of a run (not a regular file)")
    try:
        return _read_metrics(path)
    except UnicodeDecodeError:
        raise CausalVAEError(f"{path}: not a metrics file of a run (not text: corrupt?)") from None


def _read_metrics(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in METRIC_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CausalVAEError(f"{path}: not a metrics file of a run (missing columns: {', '.join(missing)})")
        extra = [c for c in OPTIONAL_METRIC_COLUMNS if c in (reader.fieldnames or [])]
        out = []
        for line, r in enumerate(reader, start=2):
            try:
                row = {k: (int(r[k]) if k == "step" else float(r[k])) for k in METRIC_COLUMNS}
                row.update({k: float(r[k]) for k in extra if r[k] not in ("", None)})
                out.append(row)
            except (TypeError, ValueError):
                raise CausalVAEError(f"{path}: line {line} is not a row of numbers (truncated or edited?)") from None
    return out


# --------------------------------------------------------------------------------------- fit


def model_graph(cfg: TrainConfig, ds: Dataset) -> Graph:
    """The dataset's graph, or ``cfg.graph`` when given: the same labelled variables and values
    and the same image parents, with other tables or hidden variables (a hypothesis to fit)."""
    if cfg.graph is None:
        return ds.graph
    graph = Graph.load(cfg.graph)
    discrete = [c for c in graph.observed if c not in graph.continuous]
    continuous = [c for c in graph.observed if c in graph.continuous]
    if discrete != list(ds.label_columns) or continuous != list(ds.continuous_columns):
        raise CausalVAEError(f"{cfg.graph}: its labelled variables {list(graph.observed)} differ from the dataset's {list(ds.label_columns) + list(ds.continuous_columns)}")
    for name in discrete:
        if tuple(graph[name].values) != tuple(ds.graph[name].values):
            raise CausalVAEError(f"{cfg.graph}: the values of '{name}' differ from the dataset's {list(ds.graph[name].values)}")
    if graph.image is None or ds.graph.image is None or tuple(graph.image.parents) != tuple(ds.graph.image.parents):
        raise CausalVAEError(f"{cfg.graph}: the image's parents must be the dataset's {list(ds.graph.image.parents) if ds.graph.image else []}")
    return graph


def build_model(cfg: TrainConfig, ds: Dataset, hide: np.ndarray | None = None) -> CausalVAE:
    """The causal VAE for a dataset: its graph, its image size and likelihood, the config's nets."""
    graph = model_graph(cfg, ds)
    if graph.image is None:
        raise CausalVAEError(f"{ds.root}: the dataset's graph has no image node")
    m = ds.manifest
    h, w = m["resolution"]
    if h != w:
        raise CausalVAEError(f"{ds.root}: images are {h}x{w}; the networks need square images")
    binary = int(m["channels"]) == 1 and int(np.asarray(ds.images[: min(len(ds.images), 256)]).max()) <= 1
    check_mixed(graph)
    for j, c in enumerate(ds.continuous_columns):
        gaps = np.isnan(ds.continuous_labels[ds.indices, j])
        if gaps.any():
            raise CausalVAEError(
                f"{ds.root}: the continuous label '{c}' is missing in {int(gaps.sum())} training rows; the causal VAE "
                f"needs every continuous label (a missing continuous value cannot be summed out exactly)"
            )
    # A continuous parent enters the networks standardised by the training split's mean and sd.
    stats = tuple(
        column_stats(ds.continuous_labels[ds.indices, ds.continuous_columns.index(p)]) if p in graph.continuous else None
        for p in graph.image.parents
    )
    _check_place(graph, cfg.place)
    _check_ordinal(graph, cfg.ordinal)
    net = NetConfig(
        image_size=int(h), channels=int(m["channels"]),
        parent_dims=tuple(1 if p in graph.continuous else graph.card(p) for p in graph.image.parents),
        parent_stats=stats if any(s is not None for s in stats) else (),
        z_dim=cfg.z_dim, width=cfg.width, depth=cfg.depth, hidden=cfg.hidden, likelihood="bernoulli" if binary else "dlogistic",
        max_log_scale=None if binary else cfg.max_log_scale, decoder=cfg.decoder, residual=cfg.residual,
        coordinates=cfg.coordinates, place=tuple(graph.image.parents.index(n) for n in cfg.place), place_mode=cfg.place_mode, draw_scale=cfg.draw_scale,
        ordinal=tuple(graph.image.parents.index(n) for n in cfg.ordinal),
    )
    cols = list(ds.label_columns)
    classified = set(cfg.classify)
    labels = ds.labels[ds.indices] if hide is None else np.where(hide, -1, ds.labels[ds.indices])
    for p in graph.image.parents:
        if p in graph.continuous:
            continue
        if not graph[p].observed or (labels[:, cols.index(p)] < 0).any():
            classified.add(p)
    return CausalVAE(graph, net, learn_cpts=cfg.learn_cpts, classified=sorted(classified, key=graph.image.parents.index), alpha=cfg.alpha, beta=cfg.beta)


def _check_place(graph, place: list[str]) -> None:
    """Every name in ``--place`` is a parent of the picture, and some parent is left to draw it."""
    for name in place:
        if name not in graph.image.parents:
            raise unknown("parent of the picture", name, graph.image.parents, where="in --place")
    if place and set(place) >= set(graph.image.parents):
        raise CausalVAEError(f"--place names every parent of the picture ({', '.join(graph.image.parents)}); leave at least one to draw it")


def _check_ordinal(graph, ordinal: list[str]) -> None:
    """Every name in ``--ordinal`` is a discrete parent of the picture with two values or more."""
    for name in ordinal:
        if name not in graph.image.parents:
            raise unknown("parent of the picture", name, graph.image.parents, where="in --ordinal")
        if name in graph.continuous:
            raise CausalVAEError(f"--ordinal {name}: '{name}' is continuous; it enters the networks as a number already")
        if graph.card(name) < 2:
            raise CausalVAEError(f"--ordinal {name}: '{name}' has one value; there is no order to give the networks")


def _check_resume(run: Path, cfg: TrainConfig, force: bool) -> bool:
    """True when ``run`` holds an unfinished run with the same settings (resume it)."""
    from causalvae.store import latest_checkpoint

    saved = run / "train.json"
    if not run.exists() or not any(run.iterdir()):
        return False
    if force:
        import shutil

        from causalvae.io import output_kind

        kind = output_kind(run)
        if kind not in ("training run", "model"):
            what = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}" if kind else "something else"
            raise CausalVAEError(f"{run} holds {what} and is not a training run; refusing to delete it with --force")
        shutil.rmtree(run)
        return False
    if not saved.exists():
        raise CausalVAEError(f"{run} exists and is not a training run; choose another --out")
    from causalvae.store import read_json

    old = read_json(saved)  # a damaged file: one error naming it
    new = asdict(cfg)
    old = {**TrainConfig.LEGACY, **old}
    # The grid's units concern the broadcast decoder alone: an older run of another decoder resumes.
    ignored = () if new["decoder"] == "broadcast" else ("coordinates",)
    # The placed, ordinal and classified parents are sets: the model takes them in the graph's
    # order (NetConfig and build_model sort them), so the same names in another order resume.
    def same(k: str) -> bool:
        o = old.get(k)
        if k in ("place", "ordinal", "classify") and isinstance(o, list) and isinstance(new[k], list) and all(isinstance(x, str) for x in o):
            return sorted(o) == sorted(new[k])
        return o == new[k]

    diff = [k for k in new if k not in TrainConfig.RESUMABLE + ignored and not same(k)]
    if diff:
        raise CausalVAEError(
            f"{run} holds a run with other settings ({', '.join(f'{k}: {old.get(k)!r} -> {new[k]!r}' for k in diff)}); "
            f"use --force to start it over, or another --out"
            + (f" (or --coordinates {old.get('coordinates')} to resume it)" if "coordinates" in diff else "")
        )
    return latest_checkpoint(run / "checkpoints") is not None


#: Seconds between two progress lines of :func:`fit` when it is given ``say``.
LINE_EVERY_S = 30.0


@contextmanager
def _reader_progress(steps: int, bar: bool, say: Callable[[str], None] | None):
    """The reader's progress (its steps run before Lightning's bar): a rich bar on stderr when
    ``bar``, else a line to ``say`` every ``LINE_EVERY_S`` seconds and at the end; yields the
    callback :func:`train_reader` calls after each step (None when neither)."""
    if bar:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        with Progress(TextColumn("reader"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=Console(stderr=True), transient=True) as shown:
            task = shown.add_task("reader", total=steps)
            yield lambda done: shown.update(task, completed=done)
        return
    if say is None:
        yield None
        return
    t0 = last = time.perf_counter()

    def tick(done: int) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= LINE_EVERY_S or done == steps:
            last = now
            say(f"reader: step {done:,}/{steps:,} ({100 * done / max(1, steps):.0f}%), {now - t0:.0f} s")

    yield tick


def fit(cfg: TrainConfig, *, force: bool = False, progress: bool = True, say: Callable[[str], None] | None = None) -> Path:
    """Train (or resume) the run ``cfg.out`` and write its model files; returns the run path.

    ``progress`` shows Lightning's progress bar (for a terminal); ``say``, if given, receives a
    line now and then instead (for a log: the reader's training, then the step count every
    ``LINE_EVERY_S`` seconds)."""
    from causalvae.store import latest_checkpoint, load_checkpoint, save_model

    cfg.check()
    run = Path(cfg.out)
    rank_env = int(os.environ.get("LOCAL_RANK", "0"))
    ds = load_dataset(cfg.data, split="train", verify=rank_env == 0)
    val = load_dataset(cfg.data, split="val", verify=False)
    if len(ds) == 0:
        raise CausalVAEError(f"{cfg.data}: the training split is empty")
    size = int(ds.images.shape[1])
    if cfg.reader_shift >= size // 4:
        raise CausalVAEError(f"reader-shift {cfg.reader_shift} moves {size}x{size} pictures too far: at most {size // 4 - 1} pixels (under a quarter of the picture)")
    if cfg.guide_steps:
        _check_guided(model_graph(cfg, ds))
    if cfg.match_weight:
        _check_guided(model_graph(cfg, ds), "--match-weight")
    if cfg.reader_sets:
        _check_reader_sets(model_graph(cfg, ds), ds)
    if cfg.place:
        _check_place(model_graph(cfg, ds), cfg.place)
    if cfg.ordinal:
        _check_ordinal(model_graph(cfg, ds), cfg.ordinal)
    resume = _check_resume(run, cfg, force) if rank_env == 0 else True
    if rank_env == 0:
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run / "train.json", json.dumps(asdict(cfg), indent=2) + "\n")
    pyro.settings.set(module_local_params=True)
    pyro.clear_param_store()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif cfg.devices > 1 and cfg.accelerator == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg.devices))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    pyro.set_rng_seed(cfg.seed)

    hide = withheld(ds, cfg.withhold, cfg.seed)
    vae = build_model(cfg, ds, hide)
    module = LitCausalVAE(vae, cfg)
    world = cfg.devices if cfg.strategy == "ddp" else 1
    per_rank = (len(ds) - len(ds) % world) // world if world > 1 else len(ds)
    epoch_steps = math.ceil(per_rank / cfg.batch_size)
    total = cfg.max_steps or cfg.epochs * epoch_steps
    # Continuous image parents are always labelled (check_mixed): only discrete ones can be hidden.
    unlabelled = hidden_image_parents(vae)
    if cfg.adversary_weight:
        withheld_parents = sorted(p for p, f in cfg.withhold.items() if f > 0 and p in vae.graph.image.parents)
        if unlabelled or withheld_parents:
            raise CausalVAEError(f"--adversary-weight reads the image's parents off z and needs each of them labelled in every row: {', '.join(unlabelled + withheld_parents)} {'is' if len(unlabelled + withheld_parents) == 1 else 'are'} not")
    if cfg.cf_weight and not read_image_parents(vae) and unlabelled and rank_env == 0:
        # The reader learns from labels: with every image parent hidden the term is off.
        atomic_write_text(run / "reader.json", json.dumps({"steps": 0, "off": f"hidden image parents: {', '.join(unlabelled)}"}) + "\n")
        if say is not None:
            say(f"the counterfactual term is off: the image's parent(s) {', '.join(unlabelled)} are hidden")
    if cfg.cf_weight and unlabelled and read_image_parents(vae) and rank_env == 0 and say is not None:
        say(f"the counterfactual term keeps the hidden parent(s) {', '.join(unlabelled)} at each picture's inferred value")
    sets = None
    if cfg.reader_sets:
        from causalvae import worlds

        sets = reading_sets(worlds.for_dataset(ds), vae)  # not None: _check_reader_sets
        module.__dict__["sets"] = sets
    if cfg.cf_weight and read_image_parents(vae):
        steps = min(cfg.reader_steps, total)
        if say is not None and rank_env == 0:
            capped = f"; {cfg.reader_steps} asked, and a reader takes at most the run's own {total} steps" if cfg.reader_steps > total else ""
            say(f"training the counterfactual term's reader ({steps} steps{capped})")
        t_reader = time.perf_counter()
        readers, accuracies = [], []
        with _reader_progress(steps * cfg.readers, progress and rank_env == 0, say if rank_env == 0 else None) as tick:
            for k in range(cfg.readers):  # seeds seed, seed + 1, ...: the first is the single reader's
                on = (lambda done, k=k: tick(k * steps + done)) if tick is not None else None
                one, acc = train_reader(vae, ds, hide, steps, cfg.seed + k, shift=cfg.reader_shift, warp=cfg.reader_warp, tick=on, sets=sets)
                readers.append(one)
                accuracies.append(None if acc is not None and math.isnan(acc) else acc)  # no validation pictures: null, as NaN is no JSON
        reader, reader_accuracy = readers[0], accuracies[0]
        module.__dict__["reader"] = reader if cfg.readers == 1 else readers
        if rank_env == 0:
            # Their seconds are training time too (metrics.csv's clock starts after them).
            each = {"readers": cfg.readers, "each": [{"val_accuracy_all_parents": a, **r.validation} for a, r in zip(accuracies, readers)]} if cfg.readers > 1 else {}
            atomic_write_text(run / "reader.json", json.dumps({"steps": steps, "val_accuracy_all_parents": reader_accuracy, **each,
                                                               "seconds": round(time.perf_counter() - t_reader, 1), **reader.validation,
                                                               **({"shift": cfg.reader_shift} if cfg.reader_shift else {}),
                                                               **({"warp": cfg.reader_warp} if cfg.reader_warp else {}),
                                                               **({"sets": list(sets.columns.values())} if sets is not None else {}),
                                                               **({"hidden_kept": unlabelled} if unlabelled else {})}) + "\n")

    done, wall0, rows, sums, start = 0, 0.0, [], None, (0, 0)
    opt_state = None
    ckpt = latest_checkpoint(run / "checkpoints") if resume else None
    if ckpt is not None:
        opt = module.configure_optimizers()
        state = load_checkpoint(ckpt, model=module.saved, optimizer=opt)
        done, meta = state["step"], state["meta"]
        if meta.get("world_size", 1) != world:
            raise CausalVAEError(f"{run}: the checkpoint was written by {meta.get('world_size')} processes; resume it with --devices {meta.get('world_size')}")
        wall0 = float(meta["wall_s"])
        sums = torch.zeros(6, dtype=torch.float64)  # a checkpoint of an older version holds the first 4
        held = torch.tensor(meta["train_sums"], dtype=torch.float64).flatten()[:6]
        sums[: len(held)] = held
        start = (int(meta["epoch"]), int(meta["batch"]))
        rows = [r for r in read_metrics(run / "metrics.csv") if r["step"] <= done]
        opt_state = opt.state_dict()
    if done >= total:
        if module.ema is not None:
            module.ema.copy_to(vae)
        if not (run / "config.json").exists() and rank_env == 0:
            save_model(vae, run, dataset=_dataset_info(cfg.data), training=_training_info(cfg, done, wall0))
        return run

    keeper = RunKeeper(run, cfg, total, done, epoch_steps, wall0, rows, sums)
    keeper.say = say
    module.optimizer_state = opt_state
    module.done = done

    def loader(d: Dataset, sampler: ShardSampler, hide: np.ndarray | None = None):
        # Its own generator: a loader draws a seed when iterated, which must not move the
        # global stream that z is sampled from (else a resumed run would differ).
        return torch.utils.data.DataLoader(
            _Batched(d, hide), batch_sampler=sampler, collate_fn=_collate, num_workers=0, generator=torch.Generator().manual_seed(cfg.seed)
        )

    def train_loader():
        rank, world_size = module.global_rank, module.trainer.world_size
        module.train_sampler = ShardSampler(len(ds), cfg.batch_size, cfg.seed, rank, world_size, start=start[0], skip=start[1], length=total - done)
        n_val = len(val) if cfg.val_limit is None else min(len(val), cfg.val_limit)
        if n_val:
            keeper.val_loader = loader(val, ShardSampler(n_val, cfg.batch_size, cfg.seed, rank, world_size, shuffle=False))
        return loader(ds, module.train_sampler, hide)

    module.train_dataloader = train_loader

    strategy: Any = cfg.strategy
    if cfg.strategy == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        # No buffer is broadcast before each step (they are still synced once, at the start):
        # the model's buffers are constants (tables, grids) and the weights' moving average,
        # which every rank updates alike from the same all-reduced weights (each rank's record
        # holds its digest; the DDP test compares them). Older torch has only broadcast_buffers,
        # which skips the start's sync as well: every rank builds the same model from the seed.
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        no_forward_sync = (
            {"forward_sync_buffers": False}
            if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
            else {"broadcast_buffers": False}
        )
        strategy = DDPStrategy(
            find_unused_parameters=bool(vae.classified),
            process_group_backend="gloo" if cfg.accelerator == "cpu" else None, **no_forward_sync,
        )
    with _quiet_lightning():
        trainer = L.Trainer(
            accelerator=cfg.accelerator, devices=cfg.devices, strategy=strategy,
            max_steps=total - done, max_epochs=1, logger=False, enable_checkpointing=False,
            enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
            limit_val_batches=0, callbacks=[keeper], use_distributed_sampler=False,
        )
        trainer.fit(module)
    vae.beta = float(cfg.beta)  # the model object left at its settled weight, even mid-warm-up
    _write_rank(run, trainer, keeper, vae)  # the live weights' digest (and the average's, apart)
    if module.ema is not None:  # the run's model is the weights' moving average
        module.ema.copy_to(vae)
    if trainer.global_rank == 0 and keeper.step(trainer) >= total:
        save_model(vae, run, dataset=_dataset_info(cfg.data), training=_training_info(cfg, keeper.step(trainer), keeper.wall()))
    return run


def _state_sha256(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _write_rank(run: Path, trainer, cb, vae: CausalVAE) -> None:
    module = trainer.lightning_module
    sampler = module.train_sampler
    info = {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "step": cb.step(trainer),
        "parameters_sha256": _state_sha256(vae),
        "first_epoch_shard": sampler.shard(sampler.start).tolist(),
    }
    if module.ema is not None:
        info["ema_sha256"] = _state_sha256(module.ema)
    atomic_write_text(run / "ranks" / f"rank-{trainer.global_rank}.json", json.dumps(info) + "\n")


def _dataset_info(path: str) -> dict:
    root = Path(path)
    return {"path": str(root.resolve()), "manifest_sha256": sha256(root / "manifest.json")}


def _training_info(cfg: TrainConfig, steps: int, wall: float) -> dict:
    return {"steps": steps, "wall_s": round(wall, 3), "settings": asdict(cfg)}
