"""Questions asked of a trained causal VAE, in pictures.

:func:`reconstruct` encodes images with their labels (the abduction of z) and decodes them
again; it is the first half of every counterfactual.

    >>> from causalvae import load                         # doctest: +SKIP
    >>> vae = load("runs/scenes")                          # doctest: +SKIP
    >>> recon = reconstruct(vae, images, labels)           # doctest: +SKIP

A model whose graph has continuous variables (a *mixed* model) takes their labels as a float
``(B, Kc)`` tensor ``continuous`` beside the discrete ``labels`` (see
:class:`~causalvae.model.CausalVAE`), and every value dictionary holds floats for them.
Its queries: :func:`sample` draws the graph's values ancestrally under ``do`` (exact), and
given evidence by likelihood weighting and resampling (approximate; see
:func:`sample_values_mixed`); :func:`abduct` recovers each continuous U exactly by inverting
its mechanism (:func:`causalvae.continuous.abduct`), enumerates the unknown discrete values
against the exact joint density, and :func:`predict` propagates the U's under ``do``
(:func:`causalvae.continuous.propagate`), so a descendant of an intervened variable is
recomputed by its mechanism.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from causalvae import continuous as C
from causalvae.errors import CausalVAEError, ZeroProbabilityError
from causalvae.model import CausalVAE
from causalvae.nets import pixel_distribution


def to_pixels(vae: CausalVAE, params: torch.Tensor, *, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """Decoder parameters -> uint8 pixels (B, C, H, W): the distribution's mean (default) or a
    draw from it (``sample=True``, seeded through ``generator``)."""
    if vae.config.likelihood == "bernoulli":
        p = torch.sigmoid(params.float())
        if sample:
            return (torch.rand(p.shape, generator=generator, device=p.device) < p).to(torch.uint8)
        return (p > 0.5).to(torch.uint8)
    if sample:
        if generator is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
                return pixel_distribution(params, vae.config.likelihood).sample().to(torch.uint8)
        return pixel_distribution(params, vae.config.likelihood).sample().to(torch.uint8)
    return pixel_distribution(params, vae.config.likelihood).mean.round().to(torch.uint8)


@torch.no_grad()
def reconstruct(
    vae: CausalVAE,
    images: torch.Tensor,
    labels: torch.Tensor,
    continuous: torch.Tensor | None = None,
    *,
    sample: bool = False,
    generator: torch.Generator | None = None,
    refine: int = 0,
) -> torch.Tensor:
    """Encode ``images`` (uint8 (B, C, H, W)) with their ``labels`` ((B, K) value indices of
    ``vae.label_columns``; and, for a mixed model, ``continuous`` (B, Kc) values of
    ``vae.continuous_columns``) and decode them: z is the encoder's mean (refined by
    ``refine`` steps, :func:`refine_code`), or a draw from q(z | x, parents) with
    ``sample=True``. An image parent whose label is missing (-1) is read off the image by its
    classifier (the most probable value). Returns uint8 images.
    """
    vae.check_batch(images, labels, continuous)
    if check_refine(refine) and sample:
        raise CausalVAEError("refine applies to the encoder's mean; a reconstruction drawn from q(z | x, parents) (sample=True) is not refined")
    device = next(vae.parameters()).device
    images, labels = images.to(device), labels.to(device=device, dtype=torch.int64)
    values = {}
    for j, c in enumerate(vae.continuous_columns):
        values[c] = continuous[:, j].to(device=device, dtype=torch.float32)
    guessed = vae.classify(images) if vae.classified else {}
    for p in vae.image_parents:
        if p in values:
            continue
        col = labels[:, vae.label_columns.index(p)] if p in vae.label_columns else torch.full_like(labels[:, 0], -1)
        if bool((col < 0).any()):
            if p not in guessed:
                raise CausalVAEError(f"the label of the image parent '{p}' is missing and the model has no classifier for it")
            col = torch.where(col < 0, guessed[p].argmax(-1), col)
        values[p] = col
    loc, scale = vae.encode(images, values)
    if sample:
        z = loc + scale * torch.randn(loc.shape, generator=generator, device=loc.device)
    else:
        z = refine_code(vae, images, values, loc, refine)
    params = vae.decoder(z, vae.parents_onehot(values))
    return to_pixels(vae, params, sample=sample, generator=generator)


#: Adam's step size in :func:`refine_code` (z is on the prior's unit scale).
REFINE_LR = 0.05


def check_refine(steps) -> int:
    """``steps`` as the whole number of refinement steps it must be (>= 0), or one clear error."""
    if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise CausalVAEError(f"refine must be a whole number of steps >= 0, got {steps!r}")
    return int(steps)


def refine_code(vae: CausalVAE, images: torch.Tensor, values: dict[str, torch.Tensor], z: torch.Tensor, steps: int) -> torch.Tensor:
    """The picture's code refined from the encoder's mean ``z`` toward the mode of the model's
    posterior p(z | x, parents): ``steps`` Adam steps (step size :data:`REFINE_LR`) of
    gradient ascent on log p(x | z, parents) + log N(z; 0, I), each row on its own (the
    loss is a sum over rows and Adam's moments are per coordinate). 0 steps: ``z`` itself.

    The amortised encoder's mean is not the code that redraws the picture best, and it is
    biased toward the prior's centre; repeated null interventions then drift (the composition
    axiom). The refined code is nearly a fixed point: the decoder's most probable picture
    from it is again best explained by about the same code."""
    steps = check_refine(steps)
    if steps == 0:
        return z
    from causalvae.nets import pixel_distribution

    onehot = vae.parents_onehot(values)
    z = z.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=REFINE_LR)
    with torch.enable_grad():
        for _ in range(steps):
            log_joint = pixel_distribution(vae.decoder(z, onehot), vae.config.likelihood).log_prob(images) - 0.5 * z.square().sum(-1)
            (grad,) = torch.autograd.grad(-log_joint.sum(), [z])
            z.grad = grad
            opt.step()
    return z.detach()


# ----------------------------------------------------------------------------- sampling


def _value_indices(graph, assignments) -> dict[str, int]:
    """``{name: value}`` (names or indices) -> ``{name: index}``, checked; on a mixed graph a
    continuous variable's value is a finite number (inside its support)."""
    out = {}
    for name, value in dict(assignments or {}).items():
        var = graph[name]
        if C.is_continuous(var):
            try:
                x = float(value)
            except (TypeError, ValueError):
                raise CausalVAEError(f"the value of the continuous '{name}' must be a number, got {value!r}") from None
            lo, hi = var.support
            if not (np.isfinite(x) and lo <= x <= hi):
                raise CausalVAEError(f"{name}={value} is outside the support of '{name}' {var.describe()[11:]}")
            out[name] = x
        else:
            out[name] = var.index(value)
    return out


def _tensors(vae: CausalVAE, values: dict[str, np.ndarray], device) -> dict[str, torch.Tensor]:
    """The image parents' values as tensors: int64 indices, float32 for continuous ones."""
    return {
        p: torch.as_tensor(np.asarray(values[p]), device=device).to(torch.float32 if p in vae.parent_stats else torch.int64)
        for p in vae.image_parents
    }


@dataclass
class Generated:
    """Pictures and the graph values they were drawn from (value indices per variable)."""

    images: torch.Tensor  # uint8 (n, C, H, W)
    values: dict[str, np.ndarray]  # every graph variable, (n,): value indices, floats for continuous ones
    z: torch.Tensor  # (n, z_dim)


def sample_values(graph, n: int, evidence=None, do=None, *, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` joint draws of every variable from P(V | do(do), evidence), exactly: the joint
    table of the (mutilated) graph given the evidence, from the exact engine."""
    from causalvae.exact import query

    if graph.mixed:
        return sample_values_mixed(graph, n, evidence, do, rng=rng)
    names = list(graph.topological_order)
    joint = query(graph, names, evidence=_value_indices(graph, evidence), do=_value_indices(graph, do)).table
    flat = joint.ravel() / joint.sum()
    picks = rng.choice(flat.size, size=n, p=flat)
    idx = np.unravel_index(picks, joint.shape)
    return {name: idx[i].astype(np.int64) for i, name in enumerate(names)}


#: Particles per requested draw of :func:`sample_values_mixed` given evidence (at least
#: :data:`MIN_PARTICLES`).
PARTICLES_PER_DRAW = 50
MIN_PARTICLES = 10_000


def sample_values_mixed(graph, n: int, evidence=None, do=None, *, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` joint draws of every variable of a mixed graph from P(V | do(do), evidence).

    Without evidence: ancestral sampling of the mutilated graph (the noise convention of
    :mod:`causalvae.continuous`), exact. With evidence: likelihood weighting and resampling
    (sampling-importance-resampling): ``max(50 n, 10,000)`` particles are drawn with the
    evidence pinned, each weighed by the evidence's likelihood given its parents (a density
    for a continuous variable, a probability for a discrete one), and ``n`` are resampled in
    proportion to their weights: approximate, its error shrinking with the particle count.
    """
    evidence, do = _value_indices(graph, evidence), _value_indices(graph, do)
    both = sorted(set(evidence) & set(do))
    if both:
        raise CausalVAEError(f"'{both[0]}' is both given and intervened on")
    m = n if not evidence else max(PARTICLES_PER_DRAW * n, MIN_PARTICLES)
    noise = C.draw_noise(graph, m, rng)
    values: dict[str, np.ndarray] = {}
    logw = np.zeros(m)
    for name in graph.topological_order:
        var = graph[name]
        if name in do:
            values[name] = C.intervention_column(var, do[name], m)
        elif name in evidence:
            x = C.intervention_column(var, evidence[name], m)
            if C.is_continuous(var):
                logw += C.log_density(var, x, values)
            else:
                probs = np.broadcast_to(C.probs_of(var, values), (m, var.card))
                with np.errstate(divide="ignore"):
                    logw += np.log(probs[np.arange(m), x])
            values[name] = x
        else:
            values[name] = C.value_of(var, values, noise[name])
    if evidence:
        if not np.isfinite(logw).any():
            raise ZeroProbabilityError(f"the evidence {evidence} has probability zero under the graph (no particle fits it)")
        w = np.exp(logw - logw.max())
        picks = rng.choice(m, size=n, p=w / w.sum())
        values = {k: v[picks] for k, v in values.items()}
    return values


@torch.no_grad()
def sample(
    vae: CausalVAE,
    n: int,
    evidence=None,
    do=None,
    *,
    seed: int | None = None,
    sample_pixels: bool = False,
) -> Generated:
    """``n`` pictures of the world under ``evidence`` and ``do``.

    The graph's values come from the exact posterior (conditioning is inference, never a
    forward run with clamped values) or from the mutilated graph (``do``); z from the prior
    N(0, I); the decoder draws the picture (its mean, or a draw with ``sample_pixels``).
    Seeded: the same seed gives the same pictures.
    """
    if n < 1:
        raise CausalVAEError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    graph = vae.current_graph()
    values = sample_values(graph, n, evidence, do, rng=rng)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    device = next(vae.parameters()).device
    z = torch.randn(n, vae.config.z_dim, generator=gen).to(device)
    params = vae.decoder(z, vae.parents_onehot(_tensors(vae, values, device)))
    return Generated(to_pixels(vae, params, sample=sample_pixels, generator=gen).cpu(), values, z.cpu())


# ----------------------------------------------------------------------------- counterfactuals


@dataclass
class Abduction:
    """What a factual picture and its labels say about the unit: every graph value, every U
    (under the project's noise convention) and the picture's code z."""

    values: dict[str, np.ndarray]
    noise: dict[str, np.ndarray]
    z: torch.Tensor
    labels: np.ndarray  # the factual labels (n, K), -1 missing
    #: The picture's own pixel noise under the decoder's likelihood (``abduct(...,
    #: pixel_noise=True)``), or None: see :func:`abduct_pixel_noise`.
    pixels: torch.Tensor | None = None


@dataclass
class Counterfactual:
    """Counterfactual pictures with the values they were decoded from, and the exact
    distribution of the counterfactual labels given each factual row's labels."""

    images: torch.Tensor
    values: dict[str, np.ndarray]
    exact: list[dict[str, np.ndarray]]  # per row: {label column: P(counterfactual value)}
    abduction: Abduction


def abduct_pixel_noise(vae: CausalVAE, params: torch.Tensor, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The exogenous noise of each pixel of ``images`` under the decoder's parameters ``params``
    (those of the factual parents and the abducted z): what the decoder does not explain.

    Discretised logistic: the standardised residual ``eps = (x - mu) / sigma`` on the [-1, 1]
    pixel scale (x at its bin's centre), so that ``mu + sigma * eps`` gives the picture back.
    Bernoulli: a uniform ``U`` with ``x = [U < p]``, drawn in the cell the pixel occupies
    (``U < p`` where x = 1, ``U >= p`` where x = 0), seeded through ``generator``.
    """
    if vae.config.likelihood == "bernoulli":
        p = torch.sigmoid(params.float())
        u = torch.rand(p.shape, generator=generator, device=p.device)
        x = images.to(p.device) > 0
        return torch.where(x, u * p, p + u * (1.0 - p))
    loc, log_scale = params.float().chunk(2, dim=-3)
    x = images.to(loc.device).float() / 127.5 - 1.0
    return (x - loc) * torch.exp(-log_scale)


def apply_pixel_noise(vae: CausalVAE, params: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Decoder parameters and abducted pixel noise -> uint8 pixels: ``mu + sigma * eps``
    rounded to its bin (discretised logistic) or ``[U < p]`` (Bernoulli). With the factual
    parameters it returns the factual picture (:func:`abduct_pixel_noise` inverted)."""
    if vae.config.likelihood == "bernoulli":
        return (noise < torch.sigmoid(params.float())).to(torch.uint8)
    loc, log_scale = params.float().chunk(2, dim=-3)
    y = loc + torch.exp(log_scale) * noise
    return torch.round((y + 1.0) * 127.5).clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def abduct(vae: CausalVAE, images: torch.Tensor, labels: torch.Tensor, continuous: torch.Tensor | None = None, *, seed: int | None = None, pixel_noise: bool = False, refine: int = 0,
           codes: dict | None = None) -> Abduction:
    """Step 1: infer the unit. Hidden values are drawn from the exact posterior given the
    labels, each U uniformly in the cdf cell its value occupies (the posterior of U given the
    family's values), and z is the encoder's mean of q(z | x, image's parents), refined by
    ``refine`` steps toward the mode of the model's posterior (:func:`refine_code`). With
    ``pixel_noise`` the picture's own pixel noise is abducted too (:func:`abduct_pixel_noise`), so that
    a counterfactual can keep the detail the decoder does not draw.

    A mixed model takes the ``continuous`` labels too: every continuous U is then exact
    (the mechanism inverted, :func:`causalvae.continuous.abduct_one`).

    ``codes``: a dict the caller keeps across abductions of the same pictures with the same
    model, unchanged in between (the evaluation's interventions): a refined code is computed
    once per pictures and image parents' values and taken from it afterwards (a copy;
    :func:`_code_key`); on the CPU these are the codes refinement would give again (it is
    deterministic there), only sooner. Image parents drawn at random (hidden or unlabelled
    ones) key a new code whenever the draw differs."""
    from causalvae.exact import posterior
    from causalvae.noise import cdf

    vae.check_batch(images, labels, continuous)
    check_refine(refine)
    rng = np.random.default_rng(seed)
    if vae.graph.mixed:
        values, noise = _abduct_mixed(vae, images, labels, continuous, rng)
        return _finish_abduction(vae, images, values, noise, labels.cpu().numpy().astype(np.int64), rng, pixel_noise, refine, codes)
    graph = vae.current_graph()
    lab = labels.cpu().numpy().astype(np.int64)
    cols = vae.label_columns
    n = len(lab)
    missing = [c for j, c in enumerate(cols) if (lab[:, j] < 0).any()]
    known = [c for c in cols if c not in missing]
    unknown = [v for v in graph.names if v not in cols] + missing
    values = {c: lab[:, j].copy() for j, c in enumerate(cols)}
    if unknown:
        # P(unknown | the columns labelled in every row); then, per row, the labels it does
        # have among the partly labelled columns select their slice.
        post = posterior(graph, unknown, known, lab[:, [cols.index(c) for c in known]]) if known else np.broadcast_to(
            posterior(graph, unknown, [], np.zeros((1, 0), np.int64)), (n,) + tuple(graph.card(v) for v in unknown)
        )
        post = np.array(post, dtype=np.float64)
        for axis, v in enumerate(unknown):
            shape = [1] * len(unknown)
            shape[axis] = graph.card(v)
            if v in cols:
                given = lab[:, cols.index(v)]
                keep = (given[:, None] < 0) | (given[:, None] == np.arange(graph.card(v))[None, :])
                post *= keep.reshape((n, *shape))
            if v in vae.classified:
                # An image parent without a label is also seen in the picture: weigh by q(y | x).
                q = vae.classify(images)[v].detach().cpu().numpy().astype(np.float64)
                if v in cols:
                    q = np.where((lab[:, cols.index(v)] >= 0)[:, None], 1.0, q)
                post *= q.reshape((n, *shape))
        post = post.reshape(n, -1)
        total = post.sum(axis=1, keepdims=True)
        if (total <= 0).any():
            raise CausalVAEError(f"the labels of row {int(np.flatnonzero(total[:, 0] <= 0)[0])} are impossible under the graph")
        post = post / total
        picks = np.array([rng.choice(post.shape[1], p=row) for row in post])
        idx = np.unravel_index(picks, tuple(graph.card(v) for v in unknown))
        for v, i in zip(unknown, idx):
            values[v] = np.where(values[v] >= 0, values[v], i) if v in cols else i.astype(np.int64)
    noise = {}
    for name in graph.topological_order:
        c = cdf(graph.cpt(name))
        rows = c[tuple(values[p] for p in graph.parents(name))] if graph.parents(name) else np.broadcast_to(c, (n, c.shape[-1]))
        v = values[name]
        hi = rows[np.arange(n), v]
        lo = np.where(v > 0, rows[np.arange(n), np.maximum(v - 1, 0)], 0.0)
        if (hi <= lo).any():
            raise CausalVAEError(f"'{name}' = {graph[name].values[int(v[np.flatnonzero(hi <= lo)[0]])]} is impossible given its parents in row {int(np.flatnonzero(hi <= lo)[0])}")
        noise[name] = lo + (hi - lo) * rng.random(n)
    return _finish_abduction(vae, images, values, noise, lab, rng, pixel_noise, refine, codes)


def _finish_abduction(vae: CausalVAE, images, values, noise, lab, rng, pixel_noise: bool, refine: int = 0, codes: dict | None = None) -> Abduction:
    """z (the encoder's mean given the image's parents, refined by ``refine`` steps; taken
    from ``codes`` when it holds it) and, optionally, the pixel noise."""
    device = next(vae.parameters()).device
    parents = _tensors(vae, values, device)
    key = _code_key(vae, images, parents, refine) if codes is not None and refine else None
    loc = codes.get(key) if key is not None else None
    if loc is not None:
        loc = loc.clone()  # the caller may change its unit's z; the kept code stays
    else:
        loc, _ = vae.encode(images.to(device), parents)
        loc = refine_code(vae, images.to(device), parents, loc, refine)
        if key is not None:
            codes[key] = loc
    pixels = None
    if pixel_noise:
        gen = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
        pixels = abduct_pixel_noise(vae, vae.decoder(loc, vae.parents_onehot(parents)), images, gen)
    return Abduction(values, noise, loc, lab, pixels)


def _code_key(vae: CausalVAE, images: torch.Tensor, parents: dict[str, torch.Tensor], refine: int) -> tuple:
    """What a refined code depends on: the model, the pictures, the image parents' values
    and the number of steps (a digest of the bytes; the model by identity, so a dict of codes
    must not outlive a change of its weights or device)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(images.detach().cpu().numpy()).tobytes())
    for name in sorted(parents):
        h.update(name.encode())
        h.update(np.ascontiguousarray(parents[name].detach().cpu().numpy()).tobytes())
    return id(vae), tuple(images.shape), refine, h.hexdigest()


#: The most joint values of unknown discrete variables :func:`_abduct_mixed` enumerates.
MAX_ENUMERATED = 2**16


def _abduct_mixed(vae: CausalVAE, images, labels, continuous, rng) -> tuple[dict, dict]:
    """Values and U's of a mixed model's units. Every continuous variable is labelled
    (the model refuses hidden ones), so the unknown discrete values (hidden, or missing in a
    row) have an exact posterior: their joint values are enumerated and weighed by the
    product of every variable's probability or density given its parents (and, for a
    classified image parent, by q(y | x)); one is drawn per row. Then each discrete U is
    drawn uniformly in its cdf cell and each continuous U is the mechanism inverted."""
    import itertools

    from causalvae.noise import cdf

    graph = vae.current_graph()
    lab = labels.cpu().numpy().astype(np.int64)
    n = len(lab)
    values: dict[str, np.ndarray] = {c: lab[:, j].copy() for j, c in enumerate(vae.label_columns)}
    for j, c in enumerate(vae.continuous_columns):
        values[c] = continuous[:, j].cpu().numpy().astype(np.float64)
    for c in vae.continuous_columns:
        lo, hi = graph[c].support
        bad = ~((values[c] > lo) & (values[c] < hi)) if isinstance(graph[c].law, C.Linear) else ~((values[c] >= lo) & (values[c] <= hi))
        if bad.any():
            raise CausalVAEError(f"row {int(np.flatnonzero(bad)[0])}: {c}={values[c][bad][0]:g} is outside its support {graph[c].describe()[11:]}")
    unknown = [v for v in graph.names if v not in values or (values[v] < 0).any()]
    if unknown:
        configs = list(itertools.product(*[range(graph.card(v)) for v in unknown]))
        if len(configs) > MAX_ENUMERATED:
            raise CausalVAEError(f"abducting {len(configs)} joint values of {', '.join(unknown)} is more than {MAX_ENUMERATED}")
        q = vae.classify(images) if any(v in vae.classified for v in unknown) else {}
        logp = np.zeros((n, len(configs)))
        for k, config in enumerate(configs):
            vals = dict(values)
            for v, i in zip(unknown, config):
                vals[v] = np.where(vals[v] >= 0, vals[v], i) if v in values else np.full(n, i, dtype=np.int64)
                if v in values:  # rows with this label keep only the configurations that agree
                    logp[:, k] += np.where((values[v] < 0) | (values[v] == i), 0.0, -np.inf)
                if v in q:
                    with np.errstate(divide="ignore"):
                        logp[:, k] += np.where(values.get(v, np.full(n, -1)) >= 0, 0.0, np.log(q[v][:, i].cpu().numpy().astype(np.float64)))
            logp[:, k] += _log_joint(graph, vals)
        finite = np.isfinite(logp).any(axis=1)
        if not finite.all():
            raise ZeroProbabilityError(f"the labels of row {int(np.flatnonzero(~finite)[0])} are impossible under the graph")
        w = np.exp(logp - logp.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        picks = np.array([rng.choice(len(configs), p=row) for row in w])
        chosen = np.asarray(configs, dtype=np.int64)[picks]
        for a, v in enumerate(unknown):
            values[v] = np.where(values[v] >= 0, values[v], chosen[:, a]) if v in values else chosen[:, a]
    noise: dict[str, np.ndarray] = {}
    for name in graph.topological_order:
        var = graph[name]
        if C.is_continuous(var):
            noise[name] = C.abduct_one(var, values[name], values)
            continue
        rows = np.broadcast_to(cdf(C.probs_of(var, values)), (n, var.card))
        v = values[name]
        hi = rows[np.arange(n), v]
        lo = np.where(v > 0, rows[np.arange(n), np.maximum(v - 1, 0)], 0.0)
        noise[name] = lo + (hi - lo) * rng.random(n)
    return values, noise


def _log_joint(graph, values: dict[str, np.ndarray]) -> np.ndarray:
    """log p(every variable) of each unit: the sum of each variable's log probability
    (discrete) or log density (continuous) given its parents."""
    total = 0.0
    for name in graph.topological_order:
        var = graph[name]
        if C.is_continuous(var):
            total = total + C.log_density(var, values[name], values)
        else:
            p = C.probs_of(var, values)
            p = np.broadcast_to(p, (len(values[name]), var.card))
            with np.errstate(divide="ignore"):
                total = total + np.log(p[np.arange(len(p)), values[name]])
    return total


def act(graph, do) -> dict[str, int | float]:
    """Step 2: the interventions, as value indices, and numbers for continuous variables
    (checked against the graph)."""
    return _value_indices(graph, do)


@torch.no_grad()
def predict(vae: CausalVAE, unit: Abduction, do: dict[str, int], *, sample_pixels: bool = False, seed: int | None = None) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """Step 3: recompute every variable from the abducted U's under ``do`` (descendants of
    the intervention change, everything else keeps its factual value), then decode the new
    image parents with the abducted z: the decoder's mean, or, when the unit carries its
    pixel noise, ``mu_cf + sigma_cf * eps`` (the factual picture's own residual carried over:
    the null intervention then gives back the factual picture itself)."""
    from causalvae.noise import propagate

    graph = vae.current_graph()
    values = C.propagate(graph, unit.noise, do) if graph.mixed else propagate(graph, unit.noise, do)
    device = unit.z.device
    params = vae.decoder(unit.z, vae.parents_onehot(_tensors(vae, values, device)))
    if unit.pixels is not None and not sample_pixels:
        return apply_pixel_noise(vae, params, unit.pixels).cpu(), values
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    return to_pixels(vae, params, sample=sample_pixels, generator=gen).cpu(), values


def counterfactual(vae: CausalVAE, images: torch.Tensor, labels: torch.Tensor, do, *, continuous: torch.Tensor | None = None, seed: int | None = None, abduct_noise: bool = False, refine: int = 0) -> Counterfactual:
    """"This very picture, had ``do`` been so": abduct, act, predict. The encoder and the
    decoder always run, the null intervention included (it reconstructs the picture).

    ``abduct_noise``: abduct the picture's pixel noise as well as z and carry it over
    (``x_cf = mu_cf + sigma_cf * (x - mu) / sigma``), so the counterfactual keeps the
    picture's own detail where the intervention does not change it; the null intervention
    then returns the factual picture exactly."""
    graph = vae.current_graph()
    interventions = act(graph, do)
    unit = abduct(vae, images, labels, continuous, seed=seed, pixel_noise=abduct_noise, refine=refine)
    cf_images, values = predict(vae, unit, interventions, seed=seed)
    if graph.mixed:
        cont = continuous.cpu().numpy().astype(np.float64)
        exact = counterfactual_distributions_mixed(graph, vae.label_columns, vae.continuous_columns, unit.labels, cont, interventions)
    else:
        exact = counterfactual_distributions(graph, vae.label_columns, unit.labels, interventions)
    return Counterfactual(cf_images, values, exact, unit)


#: The largest joint table (cells) :func:`counterfactual_distributions` builds at once.
JOINT_CELLS = 2**21


def counterfactual_distributions(graph, columns, rows: np.ndarray, do: dict[str, int]) -> list[dict[str, np.ndarray]]:
    """For each factual label row (value indices, -1 missing), the exact twin-network
    distribution of every label column in the world ``do(do)``: ``[{column: probabilities}]``.

    One exact query gives the joint of every column in both worlds, P(columns[do],
    columns); a row's answer is that table at the row's factual labels (summed over the
    missing ones), normalised, and its marginals. When that table would be too large (over
    :data:`JOINT_CELLS` cells: the sprites world's five factors), each distinct row is asked
    on its own instead. Rows with the same labels share one answer.
    """
    from causalvae.errors import ZeroProbabilityError
    from causalvae.exact import Term, query

    columns = list(columns)
    rows = np.asarray(rows)
    k = len(columns)
    world = tuple((name, graph[name].values[i]) for name, i in sorted(do.items()))
    small = math.prod(graph.card(c) for c in columns) ** 2 <= JOINT_CELLS
    joint = query(graph, [Term(c, world) for c in columns] + columns).table if world and small else None
    out, cache = [], {}
    for row in rows:
        key = tuple(row.tolist())
        if key not in cache:
            if world and not small:
                evidence = {c: int(v) for c, v in zip(columns, row) if v >= 0}
                cache[key] = {c: query(graph, [Term(c, world)], evidence).table for c in columns}
            elif world:
                index = tuple(int(v) if v >= 0 else slice(None) for v in row)
                cf = joint[(slice(None),) * k + index]
                cf = cf.reshape(cf.shape[:k] + (-1,)).sum(-1)
                total = cf.sum()
                if total <= 0:
                    raise ZeroProbabilityError(f"the factual labels {dict(zip(columns, key))} have probability zero under the graph")
                cf = cf / total
                cache[key] = {c: cf.sum(axis=tuple(a for a in range(k) if a != j)) for j, c in enumerate(columns)}
            else:  # the factual world: the labels themselves, or their posterior when missing
                evidence = {c: int(v) for c, v in zip(columns, row) if v >= 0}
                cache[key] = {c: np.eye(graph.card(c))[int(v)] if v >= 0 else query(graph, [c], evidence).table for c, v in zip(columns, row)}
        out.append(cache[key])
    return out


def counterfactual_distributions_mixed(graph, columns, continuous_columns, rows: np.ndarray, values: np.ndarray, do: dict) -> list[dict[str, np.ndarray]]:
    """The mixed graph's counterfactual distribution of each discrete label column in the
    world ``do(do)`` given each factual row (discrete labels, -1 missing, and continuous
    values): ``[{column: probabilities}]``, each by :func:`causalvae.mixed.evaluate` (its
    exact or numerical method; continuous columns are in the counterfactual ``values``)."""
    from causalvae.mixed import evaluate, query_text

    world = ", ".join(f"{k}={query_text(graph[k].values[v] if not C.is_continuous(graph[k]) else v)}" for k, v in sorted(do.items()))
    out, cache = [], {}
    for row, cont in zip(np.asarray(rows), np.asarray(values)):
        key = (tuple(row.tolist()), tuple(cont.tolist()))
        if key not in cache:
            given = [f"{c}={query_text(graph[c].values[int(v)])}" for c, v in zip(columns, row) if v >= 0]
            given += [f"{c}={query_text(float(x))}" for c, x in zip(continuous_columns, cont)]
            answers = {}
            for j, c in enumerate(columns):
                target = f"{c}[{world}]" if world else c
                a = evaluate(graph, f"P({target} | {', '.join(given)})" if given else f"P({target})")
                answers[c] = np.array([e.value for e in a.estimates])
            cache[key] = answers
        out.append(cache[key])
    return out
