"""The image networks and the pixel likelihoods of the causal VAE.

The image X of a world has a few parents in the causal graph (a character, a pose, ...) and an
exogenous code z ~ N(0, I) for everything the graph does not name (style, position, lighting).
Two networks connect them::

    Decoder   p(x | parents, z)    z, one-hot parents  -> MLP -> transposed convs -> pixel params
    Encoder   q(z | x, parents)    image -> convs -> flatten, + one-hot parents -> MLP -> loc, scale

The decoder is the causal mechanism of X; the encoder is the amortised posterior the ELBO
trains, and later the *abduction* step of a counterfactual (infer z from a factual image, then
decode it under intervened parents).

Shapes. Images are stored as uint8 (N, H, W, C) (``docs/dataset-format.md``) and reach the
networks as (B, C, H, W); :func:`prepare` turns them into the networks' float input. Both
networks accept any number of *leading* batch dimensions, because Pyro's parallel enumeration
of a discrete parent adds dimensions on the left: a decoder called with z of shape (B, D) and
parents of shape (E, 1, B, P) returns parameters of shape (E, 1, B, ...). The encoder runs its
convolutions once per image and broadcasts only the small MLP against enumerated parents.

Likelihoods. A density on raw pixel values is unbounded (a Gaussian can put infinite density
on a constant pixel), so the ELBO would be meaningless. Both likelihoods here give each pixel
value a proper probability:

* ``"bernoulli"``: binary worlds (pixels 0/1); the decoder outputs logits (..., C, H, W).
* ``"dlogistic"``: 8-bit images; the discretised logistic of PixelCNN++ (Salimans et al.
  2017). Pixel value k in 0..255 gets the logistic's mass over the bin
  [(k - 0.5)/127.5 - 1, (k + 0.5)/127.5 - 1], with the lowest bin extended to -inf and the
  highest to +inf, so the 256 probabilities sum to exactly 1 and the log-likelihood is a
  true (discrete) log-probability, in nats per image, comparable across models. The
  decoder outputs (..., 2C, H, W): C channels of location (in [-1, 1] when it fits the data),
  then C channels of log-scale (clamped at >= -7).

:func:`pixel_distribution` wraps either in a Pyro distribution whose event is the whole image
(C, H, W), so ``pyro.sample("x", pixel_distribution(params, lik), obs=x)`` scores an image and
its ``log_prob`` has the (possibly enumerated) batch shape.

Precision. The networks run in bf16 under ``torch.autocast("cpu", dtype=torch.bfloat16)`` and
can run their convolutions channels_last (:data:`CHANNELS_LAST`); their outputs are returned in float32, and the
distributions cast their parameters to float32, so log-probabilities, enumeration and the ELBO
stay in fp32.

    >>> import torch
    >>> from causalvae.nets import NetConfig, make_nets, prepare, pixel_distribution
    >>> cfg = NetConfig(image_size=16, channels=3, parent_dims=(2, 3), depth=2, width=8)
    >>> enc, dec = make_nets(cfg)
    >>> pixels = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)   # stored images
    >>> parents = torch.zeros(4, 5); parents[:, 0] = 1; parents[:, 2] = 1  # (2, 3) one-hots
    >>> loc, scale = enc(prepare(pixels, cfg.likelihood), parents)
    >>> px = pixel_distribution(dec(loc, parents), cfg.likelihood)
    >>> px.log_prob(pixels).shape                                            # nats per image
    torch.Size([4])
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

import pyro.distributions as pdist
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import constraints

from causalvae.errors import CausalVAEError, unknown

LIKELIHOODS = ("bernoulli", "dlogistic")
DECODERS = ("concat", "film", "broadcast")
#: 3x3 FiLM-modulated convolutions at the broadcast grid of ``decoder="broadcast"``.
BROADCAST_LAYERS = 3
MIN_LOG_SCALE = -7.0

#: The values that fields added after the first release take when a saved config lacks them:
#: the behaviour of the models that were saved without them.
LEGACY: dict[str, Any] = {"decoder": "concat", "residual": False, "parent_stats": (), "coordinates": "unit", "place": (), "place_mode": "shift", "draw_scale": 1, "ordinal": ()}
#: Units of the broadcast grid's coordinates: ``"unit"`` ([-1, 1] across the grid: the first
#: broadcast decoders) or ``"cells"`` (one per place of the grid, centred on it: -(g-1)/2 .. (g-1)/2).
COORDINATES = ("unit", "cells")
#: How ``NetConfig.place`` moves what the decoder draws: ``"shift"`` (a translation; z reaches
#: the drawing too) or ``"similarity"`` (a turn, a scaling and a translation; z reaches only
#: the placer, so the drawing is one picture per value of the other parents).
PLACE_MODES = ("shift", "similarity")

#: When to run the convolutions on channels_last tensors: "inference" (the default: without
#: gradients only), True (always) or False (never). On the benches' 2-core CPUs channels_last gives a
#: training step no reliable gain and a forward pass a clear one (``bench/bench_train.py``
#: measures both in each run). A module switch, not a config field: the memory layout never changes what a
#: model computes.
CHANNELS_LAST: bool | str = "inference"  # training step: no reliable gain; decoding: faster


#: Without gradients, convolutions run over at most this many pictures at a time: the
#: activations of a chunk stay in the CPU's caches (``bench/bench_queries.py`` measures the
#: effect). Pictures are independent (GroupNorm has no batch statistics), so the result is
#: the same.
INFERENCE_CHUNK = 64


def _convolve(layers: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layers(x)`` in the memory layout :data:`CHANNELS_LAST` chooses; without gradients, in
    chunks of :data:`INFERENCE_CHUNK` pictures."""
    if torch.is_grad_enabled() or len(x) <= INFERENCE_CHUNK:
        return layers(_memory_format(x))
    return torch.cat([layers(_memory_format(part)) for part in x.split(INFERENCE_CHUNK)])


def _memory_format(x: torch.Tensor) -> torch.Tensor:
    last = (not torch.is_grad_enabled()) if CHANNELS_LAST == "inference" else bool(CHANNELS_LAST)
    return x.contiguous(memory_format=torch.channels_last if last else torch.contiguous_format)


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class NetConfig:
    """The architecture of the encoder and decoder, saved as JSON beside the weights.

    ``width`` is the channel count of the first conv stage; each of the ``depth`` stride-2
    stages doubles it, up to ``8 * width``. ``image_size`` must be divisible by ``2**depth``
    (64, 96 and 128 all are for the default depth 4). ``parent_dims`` lists the number of
    values of each parent of the image; their one-hot codes are concatenated in that order
    (a continuous parent, see ``parent_stats``, takes one slot: its standardised value; so does
    an ordinal one, see ``ordinal``).
    """

    image_size: int
    channels: int
    parent_dims: tuple[int, ...]
    z_dim: int = 16
    width: int = 32
    depth: int = 4
    hidden: int = 256
    likelihood: str = "dlogistic"
    #: Upper bound of the discretised logistic's log-scale (None: unbounded). A bound stops
    #: the decoder from explaining detail it has not learned as pixel noise, which leaves its
    #: mean blurred (``bench/bench_quality.py --max-log-scale`` measures the effect).
    max_log_scale: float | None = None
    #: How the parents reach the decoder: ``"concat"`` (once, joined to z before the first
    #: layer: the original design), ``"film"`` (also embedded and injected at every decoder
    #: resolution by feature-wise affine modulation, FiLM: Perez et al. 2018) or
    #: ``"broadcast"`` (FiLM, and z with the parents' embedding broadcast over a grid of a
    #: quarter of the picture's size beside each place's coordinates: a spatial broadcast
    #: decoder, Watters et al. 2019, see :class:`Decoder`).
    decoder: str = "film"
    #: A residual block (two 3x3 convolutions, FiLM-modulated) after each decoder upsampling.
    residual: bool = False
    #: One entry per parent: ``None`` for a discrete one (its one-hot code), or ``(mean, sd)``
    #: of a continuous one, which enters as the single number ``(value - mean) / sd`` (its
    #: ``parent_dims`` entry is 1); mean and sd are the training split's. Empty: every parent
    #: is discrete (the models saved before continuous parents existed).
    parent_stats: tuple[tuple[float, float] | None, ...] = ()
    #: Units of the broadcast decoder's coordinates (:data:`COORDINATES`; the other decoders
    #: have none). The first layer's coordinate weights start as PyTorch draws a linear layer
    #: of two inputs, below 0.71 in size: in ``"cells"`` its ramps already change by up to 0.71
    #: from one place to the next, so a code can move an edge by a place from the first step;
    #: in ``"unit"`` they change at most twice that much across the whole grid, and the weights must grow
    #: (g-1)/2-fold (7.5 on a 16x16 grid) before neighbouring places differ as much, which
    #: delays the learning of where things sit (docs/sprites.md sets the two side by side).
    coordinates: str = "cells"
    #: Indices (into ``parent_dims``) of the parents that say *where* the picture's content
    #: sits: the decoder draws the picture from z and the other parents alone, and a small MLP
    #: of z and these parents moves it by a translation (:class:`Decoder`). Empty: no move.
    place: tuple[int, ...] = ()
    #: How the placed parents move the drawing (:data:`PLACE_MODES`): ``"shift"``, a
    #: translation, the drawing seeing z too; ``"similarity"``, a turn, a scaling and a
    #: translation from z and the placed parents, the drawing seeing the other parents only.
    place_mode: str = "shift"
    #: With ``place``: the drawing is made at this many times the picture's size (1 or 2; 2
    #: adds one upsampling stage at the picture's size) and the placer's transform samples it
    #: at the picture's pixels. A drawing with saturated logits puts a moved or turned edge on
    #: its own pixel step, which a finer drawing halves; one with smooth logits needs no more
    #: than the picture's size (docs/sprites.md measures both).
    draw_scale: int = 1
    #: Indices (into ``parent_dims``) of discrete parents whose values are ordered (a size, a
    #: position bin, an angle bin): each enters the networks as one number, its value's index
    #: ``v`` of ``K`` mapped to ``(2v - (K - 1)) / (K - 1)`` in [-1, 1], instead of its one-hot
    #: code. The decoder is then a smooth function of the value, as of a continuous parent, so
    #: a code z tends to mean the same offset whatever the value (docs/sprites.md tries it).
    ordinal: tuple[int, ...] = ()

    def __post_init__(self):
        def positive(name):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CausalVAEError(f"NetConfig.{name} must be a positive integer, got {value!r}")

        for name in ("image_size", "channels", "z_dim", "width", "depth", "hidden"):
            positive(name)
        if self.channels not in (1, 3):
            raise CausalVAEError(f"NetConfig.channels must be 1 or 3, got {self.channels}")
        if self.image_size % 2**self.depth:
            raise CausalVAEError(
                f"NetConfig.image_size {self.image_size} is not divisible by 2**depth = "
                f"{2**self.depth}; use a smaller depth or another size (64, 96, 128)"
            )
        if self.likelihood not in LIKELIHOODS:
            raise CausalVAEError(
                f"NetConfig.likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.likelihood!r}"
            )
        if self.decoder not in DECODERS:
            raise CausalVAEError(f"NetConfig.decoder must be one of {', '.join(DECODERS)}, got {self.decoder!r}")
        if self.coordinates not in COORDINATES:
            raise CausalVAEError(f"NetConfig.coordinates must be one of {', '.join(COORDINATES)}, got {self.coordinates!r}")
        if not isinstance(self.residual, bool):
            raise CausalVAEError(f"NetConfig.residual must be true or false, got {self.residual!r}")
        if self.residual and self.decoder == "concat":
            raise CausalVAEError("NetConfig.residual needs decoder 'film' or 'broadcast'")
        if self.decoder == "broadcast" and self.depth < 2:  # its grid is a quarter of the picture: two upsamplings
            raise CausalVAEError(f"NetConfig.decoder 'broadcast' needs depth >= 2, got depth {self.depth}")
        m = self.max_log_scale
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float)) or not MIN_LOG_SCALE < m < 10):
            raise CausalVAEError(f"NetConfig.max_log_scale must be a number between {MIN_LOG_SCALE:g} and 10, or null; got {m!r}")
        dims = self.parent_dims
        if isinstance(dims, (str, bytes)) or not hasattr(dims, "__iter__"):
            raise CausalVAEError(f"NetConfig.parent_dims must be a list of integers, got {dims!r}")
        dims = tuple(dims)
        if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
            raise CausalVAEError(f"NetConfig.parent_dims must hold positive integers, got {list(dims)}")
        object.__setattr__(self, "parent_dims", dims)  # JSON gives a list; keep it hashable
        stats = self.parent_stats
        if isinstance(stats, (str, bytes)) or not hasattr(stats, "__iter__"):
            raise CausalVAEError(f"NetConfig.parent_stats must be a list, got {stats!r}")
        stats = tuple(None if s is None else tuple(s) for s in stats)
        if stats and len(stats) != len(dims):
            raise CausalVAEError(f"NetConfig.parent_stats has {len(stats)} entries for {len(dims)} parents")
        for s, d in zip(stats, dims):
            if s is None:
                continue
            ok = len(s) == 2 and all(not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x) for x in s)
            if not ok or s[1] <= 0 or d != 1:
                raise CausalVAEError(f"NetConfig.parent_stats entries of continuous parents must be [mean, sd > 0] with parent_dims 1, got {list(s)} (dims {d})")
        object.__setattr__(self, "parent_stats", tuple(None if s is None else (float(s[0]), float(s[1])) for s in stats))
        place = _parent_indices("place", self.place, len(dims))
        if place and len(place) == len(dims):
            raise CausalVAEError("NetConfig.place cannot hold every parent: the decoder draws the picture from the others")
        object.__setattr__(self, "place", tuple(sorted(place)))
        if self.place_mode not in PLACE_MODES:
            raise CausalVAEError(f"NetConfig.place_mode must be one of {', '.join(PLACE_MODES)}, got {self.place_mode!r}")
        if self.place_mode != "shift" and not place:
            raise CausalVAEError(f"NetConfig.place_mode {self.place_mode!r} says how the parents in place move the picture, and place is empty")
        if isinstance(self.draw_scale, bool) or not isinstance(self.draw_scale, int) or self.draw_scale not in (1, 2):
            raise CausalVAEError(f"NetConfig.draw_scale must be 1 or 2, got {self.draw_scale!r}")
        if self.draw_scale != 1 and not place:
            raise CausalVAEError("NetConfig.draw_scale draws the picture larger for the placer to sample: it needs place")
        ordinal = _parent_indices("ordinal", self.ordinal, len(dims))
        for i in ordinal:
            if (self.parent_stats and self.parent_stats[i] is not None) or dims[i] < 2:
                raise CausalVAEError(f"NetConfig.ordinal: parent {i} is not discrete with two values or more (it enters as a number already)")
        object.__setattr__(self, "ordinal", tuple(sorted(ordinal)))

    @property
    def parent_slots(self) -> tuple[int, ...]:
        """Each parent's width in the networks' parent code: its number of values (one-hot),
        or 1 for a continuous or ordinal parent (one number)."""
        stats = self.parent_stats or (None,) * len(self.parent_dims)
        return tuple(1 if s is not None or i in self.ordinal else d for i, (d, s) in enumerate(zip(self.parent_dims, stats)))

    @property
    def parent_size(self) -> int:
        """Length of the concatenated parent code (one-hot codes and numbers)."""
        return sum(self.parent_slots)

    def columns(self, placed: bool) -> list[int]:
        """The columns of the concatenated parent code that belong to the parents in
        ``place`` (``placed``) or to the others."""
        out, start = [], 0
        for i, d in enumerate(self.parent_slots):
            if (i in self.place) == placed:
                out.extend(range(start, start + d))
            start += d
        return out

    @property
    def stage_channels(self) -> list[int]:
        """Channels after each conv stage: width, 2*width, ..., capped at 8*width."""
        return [min(self.width * 2**i, 8 * self.width) for i in range(self.depth)]

    @property
    def bottom_size(self) -> int:
        """Spatial size after the last stride-2 stage."""
        return self.image_size // 2**self.depth

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["parent_dims"] = list(self.parent_dims)
        if self.place:  # written only when set: older files stay as they were
            d["place"] = list(self.place)
        else:
            del d["place"]
        if self.place_mode == "shift":
            del d["place_mode"]
        if self.draw_scale == 1:
            del d["draw_scale"]
        if self.ordinal:  # written only when set: older files stay as they were
            d["ordinal"] = list(self.ordinal)
        else:
            del d["ordinal"]
        if self.parent_stats:  # written only when a parent is continuous: older files stay as they were
            d["parent_stats"] = [None if s is None else list(s) for s in self.parent_stats]
        else:
            del d["parent_stats"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetConfig:
        valid = [f.name for f in fields(cls)]
        for key in d:
            if key not in valid:
                raise unknown("key", str(key), valid, where="in the network config")
        missing = [f.name for f in fields(cls) if f.name not in d and f.default is MISSING]
        if missing:
            raise CausalVAEError(f"network config is missing {', '.join(missing)}")
        # A config written before a field existed meant that field's original behaviour.
        return cls(**{**LEGACY, **d})


def _parent_indices(name: str, value: Any, n: int) -> tuple[int, ...]:
    """``NetConfig.<name>`` checked as distinct indices of the ``n`` parents: a tuple, or one
    error naming the field."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise CausalVAEError(f"NetConfig.{name} must be a list of parent indices, got {value!r}")
    value = tuple(value)
    if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n for i in value):
        raise CausalVAEError(f"NetConfig.{name} must hold indices of the {n} parents (0 to {n - 1}), got {list(value)}")
    if len(set(value)) != len(value):
        raise CausalVAEError(f"NetConfig.{name} names a parent twice: {list(value)}")
    return value


def prepare(x: torch.Tensor, likelihood: str) -> torch.Tensor:
    """Stored uint8 pixels -> network input: [-1, 1] for dlogistic, {0., 1.} for bernoulli."""
    if likelihood == "dlogistic":
        return x.to(torch.float32) / 127.5 - 1.0
    if likelihood == "bernoulli":
        return x.to(torch.float32)
    raise CausalVAEError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {likelihood!r}")


# ---------------------------------------------------------------------------------------------
# Networks


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, n_out))


def _broadcast_lead(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    """Broadcast the leading dims of two (..., features) tensors; return them flattened to 2-D."""
    lead = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    a = a.expand(*lead, a.shape[-1]).reshape(-1, a.shape[-1])
    b = b.expand(*lead, b.shape[-1]).reshape(-1, b.shape[-1])
    return a, b, tuple(lead)


def _conv_trunk(config: NetConfig) -> tuple[nn.Sequential, int]:
    """``depth`` stride-2 conv stages: (B, C, S, S) -> (B, features)."""
    layers, c_in = [], config.channels
    for c_out in config.stage_channels:
        layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), _norm(c_out), nn.SiLU()]
        c_in = c_out
    layers.append(nn.Flatten(1))
    return nn.Sequential(*layers), c_in * config.bottom_size**2


def _run_trunk(trunk: nn.Sequential, x: torch.Tensor, config: NetConfig) -> torch.Tensor:
    """Apply a conv trunk to (..., C, H, W) images (in the memory layout
    :data:`CHANNELS_LAST` chooses); returns (..., features)."""
    lead = x.shape[:-3]
    x = x.reshape(-1, config.channels, config.image_size, config.image_size)
    h = _convolve(trunk, x)
    return h.reshape(*lead, -1)


class Encoder(nn.Module):
    """q(z | x, parents): a diagonal Gaussian over the image's exogenous code."""

    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        self.convs, n_feat = _conv_trunk(config)
        self.mlp = _mlp(n_feat + config.parent_size, config.hidden, 2 * config.z_dim)

    def forward(self, x: torch.Tensor, parents_onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (..., C, H, W) prepared images; parents: (..., P). Returns float32 loc, scale (..., z_dim)."""
        c = self.config
        h = _run_trunk(self.convs, x, c)  # conv features once per image
        h, p, lead = _broadcast_lead(h, parents_onehot.to(h.dtype))
        out = self.mlp(torch.cat([h, p], dim=-1)).float().reshape(*lead, 2 * c.z_dim)
        loc, raw = out.chunk(2, dim=-1)
        return loc, F.softplus(raw) + 1e-4


class Decoder(nn.Module):
    """p(x | parents, z): pixel parameters for :func:`pixel_distribution`.

    ``decoder="concat"``: the parents' one-hot code joins z before the first layer, and only
    there. ``decoder="film"``: it also passes through an embedding MLP, and every upsampling
    stage (and its residual block, when ``residual``) scales and shifts its normalised
    features by ``(1 + gamma(e), beta(e))`` of that embedding, so the parents act at every
    resolution and the decoder cannot leave them to z. The FiLM layers start at the identity.

    ``decoder="broadcast"``: a spatial broadcast decoder (Watters et al. 2019) at a quarter of
    the picture's size. Each place of that grid starts from ``A [z, e] + B (x, y) + b``: the
    same linear image of z and the parents' embedding ``e`` everywhere, plus a linear function
    of the place's coordinates (in grid cells, ``NetConfig.coordinates``; [-1, 1] in the first
    broadcast models). z enters every place alike and position comes from
    the coordinates, which makes it easy for a code to keep its meaning (the offset of a
    sprite inside its position bin, say) when an intervention changes the parents (not a
    guarantee: the layers after the first are modulated by the parents). Then
    :data:`BROADCAST_LAYERS` FiLM-modulated 3x3 convolutions at the grid, one upsampling stage
    and the output's.

    ``place`` (any decoder): the parents it names never reach the layers above. They draw
    the picture from z and the other parents, which cannot say where its content sits; a
    small MLP of z and the named parents gives a shift (x, y), and the drawn maps (logits, or
    location and log-scale) are moved by it (:func:`translate`). Where a thing sits is then
    one mechanism shared by every shape, and what z says about it (the offset inside a
    position bin) can add to what the parents say, whatever their values: the structure of a
    renderer that draws a sprite and then places it. Nothing enforces that split (z reaches
    the drawing too). The shift starts at zero.

    ``place_mode="similarity"``: the placer gives a shift, a log-scale and an angle, and the
    drawn maps are turned, scaled and moved by them (:func:`transform`); z reaches the placer
    only (the drawing's layers are fed a zero code), so the drawing is one picture per value
    of the other parents, and everything z says (the offsets inside the placed parents' bins)
    can only turn, scale or move it: the same way whatever the other parents are. The
    transform starts at the identity.

    ``draw_scale=2`` (with ``place``): one more upsampling stage makes the drawing twice the
    picture's size, and the placer's move samples it at the picture's pixels. Resampling a
    drawing with saturated logits puts a moved or turned edge on that drawing's pixel step;
    a drawing twice as fine puts it on half that step (smooth logits need neither).
    """

    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        chs = config.stage_channels
        film = config.decoder in ("film", "broadcast")
        n_parents = config.parent_size
        self.placer = None
        if config.place:  # the content is drawn from the other parents, then moved
            glyph, placed = config.columns(False), config.columns(True)
            self.register_buffer("glyph_columns", torch.tensor(glyph), persistent=False)
            self.register_buffer("place_columns", torch.tensor(placed), persistent=False)
            n_parents = len(glyph)
            self.placer = _mlp(config.z_dim + len(placed), config.hidden, 2 if config.place_mode == "shift" else 4)
            nn.init.zeros_(self.placer[-1].weight)  # no move at first
            nn.init.zeros_(self.placer[-1].bias)
        self.embed = _mlp(n_parents, config.hidden, config.hidden) if film else None
        n_out = config.channels * (2 if config.likelihood == "dlogistic" else 1)
        if config.decoder == "broadcast":
            c0, g = chs[1], config.image_size // 4  # 2 x width channels at the grid
            self.project = nn.Linear(config.z_dim + config.hidden, c0)
            self.place = nn.Linear(2, c0, bias=False)
            axis = torch.linspace(-1.0, 1.0, g) * ((g - 1) / 2 if config.coordinates == "cells" else 1.0)
            self.register_buffer("grid", torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1), persistent=False)  # (g, g, 2): x, y
            self.grid_convs = nn.ModuleList(nn.ModuleList([nn.Conv2d(c0, c0, 3, padding=1), _FiLM(c0, config.hidden)]) for _ in range(BROADCAST_LAYERS))
            self.stages = nn.ModuleList([_UpStage(c0, chs[0], config.hidden, config.residual)])
            if config.draw_scale == 2:  # one more stage: the drawing at twice the picture's size
                self.stages.append(_UpStage(chs[0], chs[0], config.hidden, config.residual))
            self.out = nn.ConvTranspose2d(chs[0], n_out, 4, stride=2, padding=1)
            return
        n_in = config.z_dim + (config.hidden if film else n_parents)
        self.mlp = _mlp(n_in, config.hidden, chs[-1] * config.bottom_size**2)
        self.stages = nn.ModuleList()
        for c_in, c_out in zip(chs[::-1], chs[-2::-1]):
            self.stages.append(_UpStage(c_in, c_out, config.hidden if film else 0, config.residual))
        if config.draw_scale == 2:  # one more stage: the drawing at twice the picture's size
            self.stages.append(_UpStage(chs[0], chs[0], config.hidden if film else 0, config.residual))
        self.out = nn.ConvTranspose2d(chs[0], n_out, 4, stride=2, padding=1)
        self._register_load_state_dict_pre_hook(self._rename_legacy)

    def _rename_legacy(self, state, prefix, *args):
        """Model files written before the decoder had stages name its layers
        ``deconvs.{3i}`` (conv), ``deconvs.{3i+1}`` (norm) and the last conv
        ``deconvs.{3(depth-1)}``: rename them, so those files still load."""
        last = 3 * (self.config.depth - 1)
        for key in [k for k in state if k.startswith(prefix + "deconvs.")]:
            index, rest = key[len(prefix + "deconvs."):].split(".", 1)
            i, part = divmod(int(index), 3)
            new = "out" if int(index) == last else f"stages.{i}.up" if part == 0 else f"stages.{i}.film.norm"
            state[f"{prefix}{new}.{rest}"] = state.pop(key)

    def forward(self, z: torch.Tensor, parents_onehot: torch.Tensor) -> torch.Tensor:
        """z: (..., z_dim); parents: (..., P), leading dims broadcast.

        Returns float32 (..., C, H, W) Bernoulli logits, or (..., 2C, H, W) for dlogistic:
        channels [:C] the location, [C:] the log-scale (>= -7, and <= ``max_log_scale`` when set).
        """
        c = self.config
        z, p, lead = _broadcast_lead(z, parents_onehot.to(z.dtype))
        shift = None
        if self.placer is not None:
            shift = self.placer(torch.cat([z, p[:, self.place_columns]], dim=-1))  # (B, 2): x, y in [-1, 1] units; (B, 4) with log-scale, angle
            p = p[:, self.glyph_columns]
            if c.place_mode == "similarity":
                z = torch.zeros_like(z)  # the drawing never sees the code: only the placer does
        e = F.silu(self.embed(p)) if self.embed is not None else None
        if c.decoder == "broadcast":
            v = self.project(torch.cat([z, e], dim=-1))  # (B, c0): the same at every place
            h = F.silu(v[:, :, None, None] + self.place(self.grid).permute(2, 0, 1)[None])
        else:
            h = F.silu(self.mlp(torch.cat([z, e if e is not None else p], dim=-1)))
            h = h.reshape(-1, c.stage_channels[-1], c.bottom_size, c.bottom_size)
        out = _decode(self, h, e).float()
        if shift is not None:
            size = c.image_size  # the drawing (draw_scale times larger) is sampled at the picture's pixels
            out = translate(out, shift.float(), size) if c.place_mode == "shift" else transform(out, shift.float(), size)
        out = out.reshape(*lead, *out.shape[1:])
        if c.likelihood == "dlogistic":
            loc, log_scale = out.chunk(2, dim=-3)
            out = torch.cat([loc, log_scale.clamp(min=MIN_LOG_SCALE, max=c.max_log_scale)], dim=-3)
        return out


def translate(maps: torch.Tensor, shift: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """``maps`` (B, C, H, W) moved by ``shift`` (B, 2): x and y in units of half the picture
    (a shift of 2 / W is one pixel; positive moves right and down), by bilinear interpolation;
    places that come from outside the picture repeat its border. ``size``: the output's
    height and width (default the maps'), sampled from the maps over the same extent."""
    theta = torch.zeros(len(maps), 2, 3, dtype=maps.dtype, device=maps.device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, :, 2] = -shift  # the grid samples the place the content comes from
    grid = F.affine_grid(theta, _out_shape(maps, size), align_corners=False)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _out_shape(maps: torch.Tensor, size: int | None) -> list[int]:
    b, c, h, w = maps.shape
    return [b, c, h, w] if size is None else [b, c, size, size]


#: The bound on the similarity placer's log-scale (:func:`transform`).
MAX_LOG_PLACE_SCALE = 4.0


def transform(maps: torch.Tensor, params: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """``maps`` (B, C, H, W) turned by ``angle``, scaled by ``exp(log_scale)`` about the
    picture's centre, then moved by ``(x, y)``, for ``params`` (B, 4) = (x, y, log_scale,
    angle): what sits at ``q`` (in units of half the picture, y down) lands at ``s R(angle) q
    + (x, y)``; an angle of pi / 2 turns what lay right of the centre below it. Bilinear
    interpolation; places that come from outside the picture repeat its border. Zero params
    are the identity. ``size``: the output's height and width (default the maps'), sampled
    from the maps over the same extent (maps twice the size: a finer drawing)."""
    x, y, log_scale, angle = params.unbind(-1)
    # A scale beyond e^+-MAX_LOG_PLACE_SCALE (1/55 to 55 times) is held there: the placer's output is
    # unbounded, and exp(-log_scale) of a far code would be inf or 0 and the picture NaN.
    log_scale = log_scale.clamp(-MAX_LOG_PLACE_SCALE, MAX_LOG_PLACE_SCALE)
    cos, sin, inv = torch.cos(angle), torch.sin(angle), torch.exp(-log_scale)
    # The grid samples where each place's content comes from: q = R(-angle) (p - t) / s.
    a = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2) * inv[:, None, None]
    t = torch.stack([x, y], -1)
    theta = torch.cat([a, -(a @ t[:, :, None])], dim=-1).to(maps.dtype)
    grid = F.affine_grid(theta, _out_shape(maps, size), align_corners=False)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)


class _FiLM(nn.Module):
    """Feature-wise affine modulation: GroupNorm(h) * (1 + gamma(e)) + beta(e), identity at
    initialisation (gamma and beta start at zero); a plain GroupNorm without an embedding."""

    def __init__(self, channels: int, n_embed: int):
        super().__init__()
        self.norm = _norm(channels)
        self.proj = nn.Linear(n_embed, 2 * channels) if n_embed else None
        if self.proj is not None:
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, e: torch.Tensor | None) -> torch.Tensor:
        h = self.norm(h)
        if self.proj is None or e is None:
            return h
        gamma, beta = self.proj(e)[:, :, None, None].chunk(2, dim=1)
        return h * (1.0 + gamma) + beta


class _UpStage(nn.Module):
    """One decoder resolution: a stride-2 transposed conv, FiLM, SiLU; optionally a residual
    block of two FiLM-modulated 3x3 convs."""

    def __init__(self, c_in: int, c_out: int, n_embed: int, residual: bool):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
        self.film = _FiLM(c_out, n_embed)
        self.res = nn.ModuleList([nn.Conv2d(c_out, c_out, 3, padding=1), _FiLM(c_out, n_embed), nn.Conv2d(c_out, c_out, 3, padding=1), _FiLM(c_out, n_embed)]) if residual else None

    def forward(self, h: torch.Tensor, e: torch.Tensor | None) -> torch.Tensor:
        h = F.silu(self.film(self.up(h), e))
        if self.res is not None:
            conv1, film1, conv2, film2 = self.res
            h = h + F.silu(film2(conv2(F.silu(film1(conv1(h), e))), e))
        return h


def _decode(dec: Decoder, h: torch.Tensor, e: torch.Tensor | None) -> torch.Tensor:
    """The decoder's convolutions (in the layout :data:`CHANNELS_LAST` chooses); without
    gradients in chunks of :data:`INFERENCE_CHUNK` pictures, as :func:`_convolve` does."""

    def run(h, e):
        h = _memory_format(h)
        for conv, film in getattr(dec, "grid_convs", ()):
            h = F.silu(film(conv(h), e))
        for stage in dec.stages:
            h = stage(h, e)
        return dec.out(h)

    if torch.is_grad_enabled() or len(h) <= INFERENCE_CHUNK:
        return run(h, e)
    parts = h.split(INFERENCE_CHUNK)
    embeds = e.split(INFERENCE_CHUNK) if e is not None else [None] * len(parts)
    return torch.cat([run(a, b) for a, b in zip(parts, embeds)])


class Classifier(nn.Module):
    """q(y | x): an amortised classifier of one unlabelled parent of the image (the
    semi-supervised VAE of Kingma et al. 2014). Returns float32 logits (..., n_classes)."""

    def __init__(self, config: NetConfig, n_classes: int):
        super().__init__()
        self.config = config
        self.convs, n_feat = _conv_trunk(config)
        self.mlp = _mlp(n_feat, config.hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(_run_trunk(self.convs, x, self.config)).float()


def set_cross_entropy(logits: torch.Tensor, accepted: torch.Tensor) -> torch.Tensor:
    """``-log sum_{v accepted} p(v)`` for logits ``(B, card)`` and bool ``accepted`` ``(B, card)``,
    the mean over the rows that accept something (a one-hot row gives the cross-entropy; a row
    accepting every value gives 0). The loss of a reading that may be any of several values a
    picture cannot tell apart (a square turned a quarter turn)."""
    keep = accepted.any(-1)
    inside = logits.masked_fill(~accepted, float("-inf")).logsumexp(-1)
    return (logits.logsumexp(-1) - inside)[keep].mean()


def decoded_mean(params: torch.Tensor, likelihood: str) -> torch.Tensor:
    """The decoder's picture as network input, differentiably: the discretised logistic's
    location clamped to [-1, 1], or the Bernoulli probabilities (the scale of :func:`prepare`)."""
    if likelihood == "bernoulli":
        return torch.sigmoid(params.float())
    loc, _ = params.float().chunk(2, dim=-3)
    return loc.clamp(-1.0, 1.0)


def make_nets(config: NetConfig) -> tuple[Encoder, Decoder]:
    return Encoder(config), Decoder(config)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------------------
# Pixel likelihoods


class DiscretizedLogistic(pdist.TorchDistribution):
    """Discretised logistic over 8-bit pixels, one component per pixel (PixelCNN++).

    ``loc`` and ``log_scale`` have shape (..., C, H, W) on the [-1, 1] pixel scale; the event is
    the image (C, H, W) and ``log_prob`` sums over it. Values are pixels 0..255 (integer or
    float tensors holding integers). With a, b the standardised upper and lower bin edges
    (a - b = (2/255) / scale), the bin's mass is computed in log space in closed form,

        sigmoid(a) - sigmoid(b) = sigmoid(a) * sigmoid(-b) * (1 - exp(-(a - b))),

    which is stable for any loc and scale: neither a difference of two numbers near 1 nor the
    midpoint-density approximation that PixelCNN++ falls back on for tiny bins is needed. The
    edge bins use log sigmoid(a) (k = 0) and log sigmoid(-b) (k = 255). Adjacent bins share the
    same computed edge, so the 256 probabilities sum to 1 up to float32 rounding.
    """

    arg_constraints = {"loc": constraints.real, "log_scale": constraints.real}
    support = constraints.integer_interval(0, 255)
    has_rsample = False

    def __init__(self, loc: torch.Tensor, log_scale: torch.Tensor, validate_args=None):
        loc, log_scale = torch.broadcast_tensors(loc.float(), log_scale.float())
        if loc.dim() < 3:
            raise CausalVAEError(f"DiscretizedLogistic needs (..., C, H, W) parameters, got shape {tuple(loc.shape)}")
        self.loc, self.log_scale = loc, log_scale
        super().__init__(loc.shape[:-3], loc.shape[-3:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(DiscretizedLogistic, _instance)
        shape = torch.Size(batch_shape) + self.event_shape
        new.loc = self.loc.expand(shape)
        new.log_scale = self.log_scale.expand(shape)
        super(DiscretizedLogistic, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        k = value.to(torch.float32)
        inv_scale = torch.exp(-self.log_scale)
        a = ((k + 0.5) / 127.5 - 1.0 - self.loc) * inv_scale  # upper edge, standardised
        b = ((k - 0.5) / 127.5 - 1.0 - self.loc) * inv_scale  # lower edge
        # Each log-sigmoid once; the edge bins keep only their one-sided term.
        logp = torch.where(k < 0.5, 0.0, F.logsigmoid(-b)) + torch.where(k > 254.5, 0.0, F.logsigmoid(a))
        width = torch.log(-torch.expm1(-(2.0 / 255.0) * inv_scale))
        logp = logp + torch.where((k > 0.5) & (k < 254.5), width, 0.0)
        return logp.sum(dim=(-3, -2, -1))

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """Inverse-cdf samples, rounded to pixel values 0..255 (float tensor)."""
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            u = torch.rand(shape, device=self.loc.device).clamp(1e-6, 1 - 1e-6)
            y = self.loc.expand(shape) + torch.exp(self.log_scale).expand(shape) * (torch.log(u) - torch.log1p(-u))
            return torch.round((y + 1.0) * 127.5).clamp(0, 255)

    @property
    def mean(self) -> torch.Tensor:
        """Approximate mean: the location mapped to 0..255 (exact up to the edge bins' clipping)."""
        return ((self.loc.clamp(-1.0, 1.0) + 1.0) * 127.5)


class PixelBernoulli(pdist.Bernoulli):
    """Bernoulli that scores pixels of any dtype (the stored uint8 0/1 images included)."""

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return super().log_prob(value.to(self.logits.dtype))


def pixel_distribution(params: torch.Tensor, likelihood: str) -> pdist.TorchDistribution:
    """The decoder's output as a Pyro distribution over whole images, event dims (C, H, W).

    Observations are the stored pixels (any dtype), not the [-1, 1] network input: 0..255 for
    dlogistic, 0/1 for bernoulli. Parameters are cast to float32.
    """
    if likelihood == "bernoulli":
        return PixelBernoulli(logits=params.float()).to_event(3)
    if likelihood == "dlogistic":
        loc, log_scale = params.chunk(2, dim=-3)
        return DiscretizedLogistic(loc, log_scale)
    raise CausalVAEError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {likelihood!r}")
