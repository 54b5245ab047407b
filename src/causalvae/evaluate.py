"""The evaluation report: every answer of a trained model scored against the world's truth.

Definitions follow ``docs/evaluation.md`` (and the field's axiomatic scores of Monteiro et
al. 2023). Sections:

- **likelihood**: test ELBO and an importance-weighted bound (k samples), nats per picture;
- **reconstruction**: pixel MAE (0-255), IoU for binary worlds (and, when the world
  renders and the dataset records its truth, the best IoU over the input's symmetric
  equivalents), the oracle's accuracy on reconstructions, and how often it reads every label
  of a reconstruction and of a test picture itself right (the latter: the ceiling the oracle
  sets to effectiveness);
- **classifiers**: for a model with classifiers q(y | x) (a hidden image parent has one), each
  one's accuracy against the recorded truth of the test pictures, and its confusion counts
  (test pictures of each true value by the guess);
- **generation**: for each reference query, pictures generated under it, read by the oracle;
  per target variable the total variation from the exact distribution, beside the same
  distance for as many true renders read by the same oracle (the noise floor), and how often
  the oracle reads back every label the decoder was given;
- **counterfactuals**: on test pictures, per intervention: TV between the pooled
  counterfactual labels (read off the pictures; and the values used) and the exact
  twin-network distribution; effectiveness; pixel distance to the true render of the model's
  counterfactual labels with the picture's recorded style (for a binary world whose style is
  enumerable, also the IoU to the nearest render of those labels under any style: the share
  of the error that lies in the style a model keeps in z); agreement with the recorded-noise
  true counterfactual beside an exact sampler's rate and the Bayes-optimal ceiling;
- **axioms**: composition after 1 and 10 null interventions, reversibility after 1 and 3 cycles.

A model whose picture has **continuous parents** (the morpho world's thickness and
intensity) is scored on them too, by the oracle's regression heads, in their own units:

- **reconstruction**: the oracle's mean absolute error on reconstructions (and on the test
  pictures themselves);
- **generation**: per continuous target, the Wasserstein-1 distance between the oracle's
  reading of the generated pictures and the exact distribution (:data:`REFERENCE_DRAWS`
  draws from the graph), beside the same distance for true renders of as many draws;
- **realism**: the Fréchet distance between the oracle's features of pictures generated
  without evidence or intervention and of real test pictures ("FD in the oracle's feature
  space"; not FID, which needs an Inception network), beside its floor: the same distance
  between two halves of the real test pictures;
- **counterfactuals**: interventions on continuous variables at :data:`CONTINUOUS_VALUES`
  values spread over the variable's marginal in the graph (its quantiles, from draws at the
  report's seed); per continuous
  column, the oracle's mean absolute error against the value the counterfactual should show
  (the intervened value, or the value its mechanism gives) and how far its reading moved
  from the factual picture's (minimality).

Every reading is scored as the world's :meth:`~causalvae.worlds.World.accepted` says: the
true value, or for a variable a picture leaves ambiguous (:attr:`World.ambiguous`: the
sprites' orientation, defined only modulo the shape's symmetry) any value the picture cannot
be told from. The exact-value figures of those variables are kept beside, as ``*_raw``.

A world may sum the counterfactuals up per factor (:attr:`World.factor_summary`) and name
its own goals (:attr:`World.goals`, written into the report as ``"targets"``).

:func:`evaluate` returns the report as a dict (each score computed by a pure function of
:mod:`causalvae.metrics`); :func:`causalvae.report.write_report` writes JSON, Markdown and
figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from causalvae import worlds
from causalvae.ask import read_labels, read_numbers
from causalvae.data import Dataset
from causalvae.errors import CausalVAEError
from causalvae.exact import query
from causalvae.metrics import (
    agreement_with_truth, bits_per_dim, composition, effectiveness, frechet_distance, iou, iw_bound, masked_accuracy, misreadings, pixel_mae,
    pooled_tv, read_right, reversibility, total_variation, wasserstein_1,
)
from causalvae.metrics.distributions import empirical
from causalvae.model import CausalVAE
from causalvae.noise import propagate
from causalvae.oracle import Oracle
from causalvae.pictures import to_255
from causalvae.queries import (
    abduct, act, counterfactual, counterfactual_distributions, counterfactual_distributions_mixed, predict, reconstruct, sample, sample_values,
)
from causalvae.run import Run

#: Draws from the graph that stand for the exact distribution of a continuous target.
REFERENCE_DRAWS = 20_000
#: Values at which each continuous variable is intervened on, spread over its marginal.
CONTINUOUS_VALUES = 4

@dataclass
class EvalSettings:
    n_generate: int = 10000
    iw_k: int = 100
    iw_images: int = 200
    cf_images: int | None = 400  # test pictures per intervention (None: all)
    axiom_images: int = 256
    batch: int = 256
    seed: int = 0
    #: Counterfactual pictures keep their factual pixel noise (``counterfactual(...,
    #: abduct_noise=True)``). The axioms always use the decoder's mean: with the noise carried
    #: over, a null intervention returns the picture exactly and they would say nothing.
    abduct_noise: bool = False
    #: Steps refining each abducted code z from the encoder's mean toward the mode of the
    #: model's posterior (``queries.refine_code``), in reconstructions, counterfactuals and
    #: the axioms alike. 0: the encoder's mean.
    refine: int = 0
    interventions: list[dict] | None = None  # default: every single-variable one + the joint ones

    def __post_init__(self):
        for name in ("n_generate", "iw_k", "axiom_images", "batch"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise CausalVAEError(f"{name} must be a positive whole number, got {getattr(self, name)!r}")
        if not (isinstance(self.iw_images, int) and self.iw_images >= 0) or (self.cf_images is not None and not (isinstance(self.cf_images, int) and self.cf_images >= 1)):
            raise CausalVAEError(f"iw_images must be >= 0 and cf_images >= 1 (or None: all), got {self.iw_images!r}, {self.cf_images!r}")
        from causalvae.queries import check_refine

        self.refine = check_refine(self.refine)
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2**32):
            raise CausalVAEError(f"seed must be a whole number in [0, 2**32), got {self.seed!r}")


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def _accepted(world: worlds.World, graph, columns: list[str], values: dict[str, np.ndarray], style: np.ndarray | None) -> dict[int, np.ndarray]:
    """For each of ``columns`` the world reads ambiguously, by its index: the readings a
    perfect reader may give for the pictures of ``values`` and ``style`` (None: unknown),
    :meth:`~causalvae.worlds.World.accepted`. Empty for a world without ambiguity."""
    return {k: world.accepted(c, graph.card(c), values, style) for k, c in enumerate(columns) if c in world.ambiguous}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}


@torch.no_grad()
def log_weights(vae: CausalVAE, images: torch.Tensor, labels: torch.Tensor, k: int, generator: torch.Generator,
                continuous: torch.Tensor | None = None) -> np.ndarray:
    """``(k, N)`` importance log-weights ``log p(x | parents, z) + log p(z) - log q(z | x, parents)``
    of k draws of z from the encoder, for the importance-weighted bound on log p(x | labels)
    (:func:`causalvae.metrics.iw_bound`). The picture's parents must be labelled (a mixed
    model's continuous ones in ``continuous``, as :class:`~causalvae.model.CausalVAE` takes them)."""
    from causalvae.nets import pixel_distribution

    values = {p: labels[:, vae.label_columns.index(p)] if p in vae.label_columns else torch.full((len(labels),), -1) for p in vae.image_parents}
    for j, c in enumerate(vae.continuous_columns):
        if c in values:
            values[c] = continuous[:, j].to(torch.float32)
    if any(bool((v < 0).any()) for p, v in values.items() if p not in vae.continuous_columns):
        raise CausalVAEError("the importance-weighted bound needs every image parent labelled")
    loc, scale = vae.encode(images, values)
    onehot = vae.parents_onehot(values)
    eps = torch.randn((k,) + tuple(loc.shape), generator=generator)
    z = loc + scale * eps
    log_w = []
    for j in range(k):
        px = pixel_distribution(vae.decoder(z[j], onehot), vae.config.likelihood).log_prob(images)
        log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z[j]).sum(-1)
        log_qz = torch.distributions.Normal(loc, scale).log_prob(z[j]).sum(-1)
        log_w.append(px + log_pz - log_qz)
    return torch.stack(log_w).numpy()


def evaluate(
    vae: CausalVAE,
    oracle: Oracle,
    test: Dataset,
    settings: EvalSettings = EvalSettings(),
    progress: Callable[[str], None] | None = None,
    world: str | worlds.World | None = None,
) -> dict:
    """Score ``vae`` on the ``test`` split of its world's dataset with ``oracle``.

    ``world`` defaults to the dataset's (:func:`causalvae.worlds.for_dataset`). The scores
    that need the world's true mechanism (a renderer) or the dataset's recorded truth (its
    noise and style, ``truth=True``) run when both are there; otherwise they are left out,
    and ``report["left_out"]`` says which and why.
    """
    say = progress or (lambda msg: None)
    world = worlds.for_dataset(test) if world is None else worlds.get(world)
    cols = list(vae.label_columns)
    ccols = list(vae.continuous_columns)  # continuous labels, read by the oracle's regressor
    if not set(cols) <= set(oracle.config.columns) or not set(ccols) <= set(oracle.config.continuous):
        raise CausalVAEError(f"the oracle reads {list(oracle.config.columns) + list(oracle.config.continuous)}, the model's labels are {cols + ccols}")
    # The truth is the world's: the dataset's own graph (its tables and what it labels), never
    # the model's (which may have learned tables or be a hypothesis given with --graph).
    graph = test.graph
    if [c for c in graph.observed if c not in graph.continuous] != cols or [c for c in graph.observed if c in graph.continuous] != ccols:
        raise CausalVAEError(f"the model's labels {cols + ccols} are not the dataset's {list(graph.observed)}")
    if not test.truth and test.manifest.get("truth_columns"):
        raise CausalVAEError(f"{test.root}: the dataset records its truth; open the test split with truth=True")
    truth = world.renderer(vae.config.image_size) if world.renders else None
    recorded = bool(test.truth)
    left_out = []
    if truth is None:
        why = f"the {world.name} world has no renderer (no true image mechanism)"
        left_out += [{"section": "generation: noise floor of true renders", "why": why},
                     {"section": "counterfactuals: pixel distance to the true render", "why": why}]
    elif not recorded:
        left_out.append({"section": "counterfactuals: pixel distance to the true render", "why": f"{test.root}: the dataset records no style"})
    if not recorded:
        left_out.append({"section": "counterfactuals: agreement with the recorded-noise true counterfactual", "why": f"{test.root}: the dataset records no noise (no truth)"})
    binary = vae.config.likelihood == "bernoulli"
    gen = torch.Generator().manual_seed(settings.seed)
    n_test = len(test)
    images, labels = test.batch(np.arange(n_test))
    numbers = test.continuous_batch(np.arange(n_test)) if ccols else None

    def cont(sl):  # the continuous labels of some test pictures (None: a discrete model)
        return numbers[sl] if numbers is not None else None

    rows = test.indices
    if recorded:
        truth_cols = list(test.manifest["truth_columns"])
        truth_noise = {v: test.truth_noise[rows, truth_cols.index(v)] for v in truth_cols}
        truth_style = test.truth_style[rows]
        truth_all = {v: test.truth_values[rows, truth_cols.index(v)].astype(np.int64) for v in truth_cols}
    report: dict = {"world": world.name, "dataset": str(test.root), "test_pictures": n_test, "settings": asdict(settings), "left_out": left_out}
    if any(c in world.ambiguous for c in cols):
        report["scored_modulo"] = {c: world.ambiguous[c] for c in cols if c in world.ambiguous}
    if world.stand_in_renders:
        report["stand_in_renders"] = dict(world.stand_in_renders)
    if world.goals is not None:
        report["targets"] = [list(g) for g in world.goals]

    # ---------------------------------------------------------------- likelihood
    say("likelihood")
    elbos, n_el = 0.0, 0
    # The ELBO draws z through torch's global generator (Pyro's samplers use it): seeded from the
    # report's seed, inside a fork so the caller's generator state is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        for sl in _batches(n_test, settings.batch):
            obj = vae.objective(images[sl], labels[sl], cont(sl))
            elbos += obj.elbo * obj.n
            n_el += obj.n
    # The bound needs the picture's parents: the first test pictures whose image parents are all labelled.
    parent_cols = [vae.label_columns.index(p) for p in vae.image_parents if p in vae.label_columns]
    complete = all(p in vae.label_columns or p in ccols for p in vae.image_parents)
    usable = np.flatnonzero((labels[:, parent_cols] >= 0).all(dim=1).numpy()) if complete else np.zeros(0, np.int64)
    iw_rows = usable[: settings.iw_images]
    n_iw = len(iw_rows)
    if settings.iw_images and not n_iw:
        report["left_out"].append({"section": "likelihood: importance-weighted bound", "why": "no test picture has every image parent labelled"})
    iw_x, iw_l, iw_c = images[iw_rows], labels[iw_rows], cont(iw_rows)
    iw = np.concatenate([iw_bound(log_weights(vae, iw_x[sl], iw_l[sl], settings.iw_k, gen, None if iw_c is None else iw_c[sl])) for sl in _batches(n_iw, 64)]) if n_iw else np.zeros(0)
    # The ELBO of the same pictures, for a like-for-like comparison with the tighter bound.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed + 1)
        elbo_iw = sum(vae.objective(iw_x[sl], iw_l[sl], None if iw_c is None else iw_c[sl]).elbo * (sl.stop - sl.start) for sl in _batches(n_iw, settings.batch)) / max(n_iw, 1)
    dims = vae.config.channels * vae.config.image_size**2
    report["likelihood"] = {
        "elbo": elbos / n_el,
        "iw_bound": float(iw.mean()) if n_iw else None,
        "elbo_on_iw_pictures": float(elbo_iw) if n_iw else None,
        "iw_k": settings.iw_k,
        "iw_pictures": int(n_iw),
        "elbo_bits_per_dim": bits_per_dim(elbos / n_el, dims),
    }

    # ---------------------------------------------------------------- reconstruction
    say("reconstruction")
    recon = torch.cat([reconstruct(vae, images[sl], labels[sl], cont(sl), refine=settings.refine) for sl in _batches(n_test, settings.batch)])
    read = read_labels(oracle, recon, cols)
    read_test = read_labels(oracle, images, cols)
    lab = labels.numpy()
    # A reconstruction should show its input: read as the input's true values are (symmetries: given the recorded truth).
    seen = _accepted(world, graph, cols, truth_all, truth_style) if recorded else {}
    report["reconstruction"] = {
        "pixel_mae": float(pixel_mae(to_255(images, binary), to_255(recon, binary)).mean()),
        "iou": float(iou(images.numpy(), recon.numpy()).mean()) if binary else None,
        "oracle_accuracy": {c: float(a) for c, a in zip(cols, masked_accuracy(read, lab, seen))},
        "oracle_accuracy_on_test_pictures": {c: float(a) for c, a in zip(cols, masked_accuracy(read_test, lab, seen))},
    }
    if len(cols) > 1:
        # Every label of a picture read right (rows with every label): on the test pictures
        # themselves, the ceiling the oracle sets to any "every label read as used" figure.
        full = (lab >= 0).all(1)
        if full.any():
            report["reconstruction"]["oracle_all_right"] = float(read_right(read, lab, seen)[full].all(1).mean())
            report["reconstruction"]["oracle_all_right_on_test_pictures"] = float(read_right(read_test, lab, seen)[full].all(1).mean())
    if ccols:
        truth_numbers = numbers.numpy().astype(np.float64)
        report["reconstruction"]["oracle_mae"] = dict(zip(ccols, np.abs(read_numbers(oracle, recon, ccols) - truth_numbers).mean(0).tolist()))
        report["reconstruction"]["oracle_mae_on_test_pictures"] = dict(zip(ccols, np.abs(read_numbers(oracle, images, ccols) - truth_numbers).mean(0).tolist()))
    if seen:
        report["reconstruction"]["oracle_accuracy_raw"] = {c: float(a) for c, a in zip(cols, masked_accuracy(read, lab))}
        report["reconstruction"]["oracle_accuracy_on_test_pictures_raw"] = {c: float(a) for c, a in zip(cols, masked_accuracy(read_test, lab))}
    n_cf = n_test if settings.cf_images is None else min(settings.cf_images, n_test)
    if binary and truth is not None and recorded:
        # The input is the true render of its recorded values and style: the best IoU over
        # its symmetric equivalents (a square turned a quarter turn is the same picture).
        true_values = {v: test.truth_values[rows[:n_cf], truth_cols.index(v)].astype(np.int64) for v in truth_cols}
        report["reconstruction"]["iou_to_true_render"] = float(truth.best_iou(true_values, truth_style[:n_cf], recon[:n_cf].numpy()).mean())
        report["reconstruction"]["iou_to_true_render_pictures"] = int(n_cf)
    if vae.classified:
        if recorded:
            guessed = torch.cat([torch.stack([q.argmax(-1) for q in vae.classify(images[sl]).values()], 1) for sl in _batches(n_test, settings.batch)]).numpy()
            right = read_right(guessed, np.stack([truth_all[p] for p in vae.classified], 1), _accepted(world, graph, list(vae.classified), truth_all, truth_style))
            report["classifiers"] = {
                p: {"hidden": p not in cols, "accuracy": float(right[:, j].mean()), "pictures": int(n_test),
                    # How many test pictures of each true value got each guess (true -> guessed -> count).
                    "confusion": {t: {g: int(((truth_all[p] == a) & (guessed[:, j] == b)).sum()) for b, g in enumerate(graph[p].values)}
                                  for a, t in enumerate(graph[p].values)}}
                for j, p in enumerate(vae.classified)
            }
        else:
            left_out.append({"section": "classifiers: accuracy of q(y | x) on test pictures", "why": f"{test.root}: the dataset records no truth values"})

    # ---------------------------------------------------------------- generation
    rng = np.random.default_rng(settings.seed)
    gens = []
    unconditional = []  # pictures generated without evidence or intervention (realism)
    for name, evidence, do in world.reference_queries:
        say(f"generation {name}")
        n = settings.n_generate
        given, read_model, read_true, numbers_model, numbers_true, drawn = [], [], [], [], [], []
        for sl in _batches(n, settings.batch * 4):
            g = sample(vae, sl.stop - sl.start, evidence, do, seed=int(rng.integers(2**62)))
            given.append(np.stack([g.values[c] for c in cols], 1))
            drawn.append(g.values)
            read_model.append(read_labels(oracle, g.images, cols))
            if ccols:
                numbers_model.append(read_numbers(oracle, g.images, ccols))
                if not evidence and not do:
                    unconditional.append(g.images)
            if truth is not None:
                values = sample_values(graph, sl.stop - sl.start, evidence, do, rng=rng)
                true_images = torch.from_numpy(truth.render(values, truth.sample_style(sl.stop - sl.start, rng)))
                read_true.append(read_labels(oracle, true_images, cols))
                if ccols:
                    numbers_true.append(read_numbers(oracle, true_images, ccols))
        given, read_model = np.concatenate(given), np.concatenate(read_model)
        read_true = np.concatenate(read_true) if read_true else None
        targets = {}
        for k, c in enumerate(cols):
            if c in evidence or c in do:
                continue
            exact = _exact_table(graph, c, evidence, do)
            targets[c] = {
                "exact": exact.tolist(),
                "tv_model": total_variation(empirical(read_model[:, k], graph.card(c)), exact),
                "tv_true_renders": total_variation(empirical(read_true[:, k], graph.card(c)), exact) if read_true is not None else None,
            }
        # The style of a generated picture is the model's choice: unknown (World.accepted's looser test).
        shown = _accepted(world, graph, cols, _concat(drawn), None)
        gens.append({"query": name, "evidence": evidence, "do": do, "n": n, "targets": targets,
                     "readback": effectiveness(read_model, given, shown)["all"],
                     **({"readback_raw": effectiveness(read_model, given)["all"]} if shown else {}),
                     "readback_true_renders": None})
        if ccols:
            gens[-1]["continuous_targets"] = _continuous_targets(
                graph, ccols, evidence, do, np.concatenate(numbers_model), np.concatenate(numbers_true) if numbers_true else None,
                np.random.default_rng([settings.seed, len(gens)]))
    report["generation"] = gens
    if ccols:
        if unconditional and n_test >= 4:
            report["realism"] = realism(oracle, torch.cat(unconditional), images, settings.seed)
        else:
            left_out.append({"section": "realism: FD in the oracle's feature space",
                             "why": "no reference query generates without evidence or intervention" if not unconditional else "fewer than 4 test pictures"})

    # ---------------------------------------------------------------- counterfactuals
    interventions = settings.interventions
    if interventions is None:
        interventions = [{v: val} for v in graph.names for val in _intervention_values(graph, v, settings.seed)] + [dict(d) for d in world.joint_interventions]
    model_graph = vae.current_graph()  # the model's own tables act, as in queries.counterfactual
    # Hidden factors the oracle can read: whether a counterfactual shows their new value too.
    unlabelled = [v for v in graph.names if v not in cols and v in oracle.config.columns]
    # The oracle's reading of the factual pictures' continuous parents: how far a
    # counterfactual's reading moved from it (minimality, for those not intervened on).
    factual_numbers = read_numbers(oracle, images[:n_cf], ccols) if ccols else None
    cf_rows = []
    # Every intervention abducts the same pictures: a refined code is computed once per batch
    # and image parents' values, and kept here (queries.abduct's codes).
    codes: dict = {}
    for do in interventions:
        say(f"counterfactual do({', '.join(f'{k}={v}' for k, v in do.items())})")
        used, readc, exact_rows, pix, pix_noise, hidden_same, used_numbers, read_cf_numbers, drawn, near = [], [], [], [], [], [], [], [], [], []
        read_truth, read_truth_numbers = [], []  # the oracle's reading of the true renders: a reference
        for sl in _batches(n_cf, settings.batch):
            # One abduction, the picture's pixel noise included; the counterfactual is drawn
            # as the decoder's mean and with that noise carried over, and both are scored.
            interventions_idx = act(model_graph, do)
            unit = abduct(vae, images[sl], labels[sl], cont(sl), seed=int(rng.integers(2**62)), pixel_noise=True, refine=settings.refine, codes=codes)
            mean_images, values = predict(vae, replace(unit, pixels=None), interventions_idx)
            noise_images, _ = predict(vae, unit, interventions_idx)
            cf_images = noise_images if settings.abduct_noise else mean_images
            used.append(np.stack([values[c] for c in cols], 1))
            drawn.append(values)
            readc.append(read_labels(oracle, cf_images, cols))
            if unlabelled:
                hidden_same.append(read_right(read_labels(oracle, cf_images, unlabelled), np.stack([values[v] for v in unlabelled], 1),
                                              _accepted(world, graph, unlabelled, values, truth_style[sl] if recorded else None)))
            if ccols:
                used_numbers.append(np.stack([values[c] for c in ccols], 1))
                read_cf_numbers.append(read_numbers(oracle, cf_images, ccols))
                exact_rows.extend(counterfactual_distributions_mixed(graph, cols, ccols, lab[sl], numbers[sl].numpy().astype(np.float64), act(graph, do)))
            else:
                exact_rows.extend(counterfactual_distributions(graph, cols, lab[sl], act(graph, do)))
            if truth is not None and recorded:
                # The true counterfactual pictures (a stand-in's, see stand_in_renders), read by
                # the same oracle against the same values: how it reads real pictures of
                # these counterfactuals (a reference, not a bound).
                true_pics = truth.render(values, truth_style[sl])
                read_truth.append(read_labels(oracle, torch.from_numpy(true_pics), cols))
                if ccols:
                    read_truth_numbers.append(read_numbers(oracle, torch.from_numpy(true_pics), ccols))
            if truth is None or not recorded:
                pass
            elif binary:  # IoU against the true render, the best over its symmetric equivalents
                pix.append(truth.best_iou(values, truth_style[sl], cf_images.numpy()))
                # The same with the style free (the offsets a model keeps in z). The recorded style
                # is one of the grid's, but best_iou also accepts its symmetric equivalents, which
                # the grid's renders do not list: the larger of the two is the nearest render.
                nearest = truth.nearest_iou(values, cf_images.numpy())
                if nearest is not None:
                    near.append(np.maximum(nearest, pix[-1]))
            else:
                pix.append(pixel_mae(true_pics, cf_images.numpy()))
                pix_noise.append(pixel_mae(true_pics, noise_images.numpy()))
        used, readc = np.concatenate(used), np.concatenate(readc)
        pix = np.concatenate(pix) if pix else None
        near = np.concatenate(near) if near else None
        pix_noise = np.concatenate(pix_noise) if pix_noise else None
        true_cf = propagate(graph, {v: truth_noise[v][:n_cf] for v in graph.names}, act(graph, do)) if recorded else None
        groups = lab[:n_cf]
        per_var = {}
        # The counterfactual keeps the factual picture's style: its readings are judged with it.
        style_cf = truth_style[:n_cf] if recorded else None
        shown = _accepted(world, graph, cols, _concat(drawn), style_cf)
        eff, eff_raw = effectiveness(readc, used, shown), effectiveness(readc, used)
        eff_truth = effectiveness(np.concatenate(read_truth), used, shown) if read_truth else None
        # What the misses are: each variable's most frequent (value used, value read) pairs,
        # and how often the oracle reads the true renders of the same pictures so.
        truth_read = np.concatenate(read_truth) if read_truth else None
        truth_wrong = ~read_right(truth_read, used, shown) if read_truth else None

        def named(rows: list[dict], k: int, c: str) -> list[dict]:
            out = []
            for m in rows:
                row = {"used": graph[c].values[m["used"]], "read": graph[c].values[m["read"]], "share": m["share"]}
                if truth_read is not None:
                    row["share_true_renders"] = float((truth_wrong[:, k] & (used[:, k] == m["used"]) & (truth_read[:, k] == m["read"])).mean())
                out.append(row)
            return out

        mis = misreadings(readc, used, shown)
        for k, c in enumerate(cols):
            ex = np.stack([e[c] for e in exact_rows])
            raw = {"effectiveness_raw": eff_raw["columns"][k]} if k in shown else {}
            if true_cf is None:
                agr = {"agreement": None, "exact_sampler": None, "ceiling": None}
            else:
                agr = agreement_with_truth(readc[:, k], true_cf[c], ex)
                if k in shown:
                    raw.update({f"truth_{key}_raw": val for key, val in agr.items()})
                    # Reading v agrees with a true value u when the true counterfactual's picture, with u, accepts v.
                    card = graph.card(c)
                    each_u = {**{v: np.repeat(x, card) for v, x in true_cf.items()}, c: np.tile(np.arange(card), n_cf)}
                    sym = world.accepted(c, card, each_u, np.repeat(style_cf, card, axis=0)).reshape(n_cf, card, card)
                    agr = agreement_with_truth(readc[:, k], true_cf[c], ex, sym)
            per_var[c] = {
                "tv_read": pooled_tv(groups, readc[:, k], ex, graph.card(c))["tv"],
                "tv_used": pooled_tv(groups, used[:, k], ex, graph.card(c))["tv"],
                "effectiveness": eff["columns"][k],
                **({"effectiveness_true_renders": eff_truth["columns"][k]} if eff_truth else {}),
                "misread": named(mis[k], k, c),
                **{f"truth_{key}": val for key, val in agr.items()},
                **raw,
            }
        cf_rows.append({
            "do": do,
            "pictures": int(n_cf),
            "effectiveness": eff["all"],
            **({"effectiveness_raw": eff_raw["all"]} if shown else {}),
            **({"effectiveness_true_renders": eff_truth["all"]} if eff_truth else {}),
            "pixel_mae_to_true_render" if not binary else "iou_to_true_render": float(pix.mean()) if pix is not None else None,
            **({"pixel_mae_to_true_render_noise_abducted": float(pix_noise.mean())} if pix_noise is not None else {}),
            **({"iou_to_nearest_render": float(near.mean())} if near is not None else {}),
            "variables": per_var,
            **({"hidden_read_as_used": dict(zip(unlabelled, np.concatenate(hidden_same).mean(0).tolist()))} if unlabelled else {}),
        })
        if ccols:
            read_cf_numbers, used_numbers = np.concatenate(read_cf_numbers), np.concatenate(used_numbers)
            read_truth_numbers = np.concatenate(read_truth_numbers) if read_truth_numbers else None
            cf_rows[-1]["continuous"] = {c: {
                "mae_read": float(np.abs(read_cf_numbers[:, k] - used_numbers[:, k]).mean()),
                **({"mae_read_true_renders": float(np.abs(read_truth_numbers[:, k] - used_numbers[:, k]).mean())} if read_truth_numbers is not None else {}),
                "moved": float(np.abs(read_cf_numbers[:, k] - factual_numbers[:, k]).mean()),
            } for k, c in enumerate(ccols)}
    report["counterfactuals"] = cf_rows
    if world.factor_summary:
        report["counterfactual_factors"] = factor_summary(cf_rows)

    # ---------------------------------------------------------------- axioms
    say("axioms")
    n_ax = min(settings.axiom_images, n_test)
    x0, l0, c0 = images[:n_ax], labels[:n_ax], cont(slice(0, n_ax))
    x = x0
    after = {}
    for m in range(1, 11):
        x = counterfactual(vae, x, l0, {}, continuous=c0, seed=settings.seed + m, refine=settings.refine).images
        if m in (1, 10):
            after[m] = to_255(x, binary)
    report["axioms"] = {**composition(to_255(x0, binary), after), **_reversibility(vae, x0, l0, settings.seed, binary, c0, settings.refine)}
    if report["axioms"]["reversibility_1"] != report["axioms"]["reversibility_1"]:
        left_out.append({"section": "axioms: reversibility", "why": "it intervenes on an image parent and back, and some image parent is unlabelled"})
    return report


def factor_summary(rows: list[dict]) -> dict[str, dict]:
    """The counterfactual rows of single-variable interventions summed up per factor: for
    each factor intervened on, the mean over its values of the effectiveness (every label
    read as used), of the share of pictures showing the factor's new value (``own``: when
    the factor is labelled, or hidden but read by the oracle) and of the IoU to the true
    render (binary worlds), and, where the world's style is enumerable, of the IoU to the
    nearest render of the same values under any style; and, where the true renders were read,
    of their effectiveness (the oracle's ceiling)."""
    out: dict[str, dict] = {}
    for r in rows:
        if len(r["do"]) != 1:
            continue
        (f,) = r["do"]
        out.setdefault(f, []).append(r)
    summary = {}
    for f, rs in out.items():
        own = [r["variables"][f]["effectiveness"] if f in r["variables"] else r.get("hidden_read_as_used", {}).get(f) for r in rs]
        own = [x for x in own if x is not None]
        ious = [r["iou_to_true_render"] for r in rs if r.get("iou_to_true_render") is not None]
        nearest = [r["iou_to_nearest_render"] for r in rs if r.get("iou_to_nearest_render") is not None]
        judged = [r["effectiveness_true_renders"] for r in rs if r.get("effectiveness_true_renders") is not None]
        summary[f] = {
            "interventions": len(rs),
            "effectiveness": float(np.mean([r["effectiveness"] for r in rs])),
            "effectiveness_own": float(np.mean(own)) if own else None,
            "iou_to_true_render": float(np.mean(ious)) if ious else None,
            **({"iou_to_nearest_render": float(np.mean(nearest))} if nearest else {}),
            **({"effectiveness_true_renders": float(np.mean(judged))} if len(judged) == len(rs) else {}),
        }
    return summary


def evaluate_run(run: Run, oracle: Oracle, settings: EvalSettings = EvalSettings(), progress: Callable[[str], None] | None = None) -> dict:
    """:func:`evaluate` of a run's model on the test split of its dataset, with the dataset's
    recorded truth when it has one."""
    from causalvae.data import load

    path = run.dataset_path
    if path is None:
        raise CausalVAEError(f"{run.path}: the run names no dataset; give --data")
    test = load(path, split="test", verify=False)
    if test.manifest.get("truth_columns"):
        test = load(path, split="test", truth=True, verify=False)
    return evaluate(run.model, oracle, test, settings, progress)


def _reversibility(vae: CausalVAE, x0: torch.Tensor, l0: torch.Tensor, seed: int, binary: bool, c0: torch.Tensor | None = None, refine: int = 0) -> dict[str, float]:
    """Intervene each picture's first discrete image parent to its next value (a model whose
    image parents are all continuous: the first one to a value drawn from its marginal),
    then every image parent back to its original value; mean |x - x_back| after 1 and 3
    such cycles. ``c0``: a mixed model's continuous labels; ``refine``: as EvalSettings'."""
    graph = vae.current_graph()
    ccols = list(vae.continuous_columns)
    labelled = [p for p in vae.image_parents if p in ccols or (p in vae.label_columns and bool((l0[:, vae.label_columns.index(p)] >= 0).all()))]
    if len(labelled) < len(vae.image_parents):
        return {"reversibility_1": float("nan"), "reversibility_3": float("nan"), "reversibility_target": "(skipped: an image parent is unlabelled)"}
    discrete = [p for p in labelled if p not in ccols]
    target = discrete[0] if discrete else labelled[0]
    if target in ccols:
        from causalvae.noise import sample as sample_units

        other = sample_units(graph, len(x0), seed).values[target]
    else:
        other = (l0[:, vae.label_columns.index(target)].numpy().astype(np.int64) + 1) % graph.card(target)
    back = {p: c0[:, ccols.index(p)].numpy().astype(np.float64) if p in ccols else l0[:, vae.label_columns.index(p)].numpy().astype(np.int64)
            for p in vae.image_parents}

    def labels_of(values):
        lab = torch.from_numpy(np.stack([values[c] for c in vae.label_columns], 1)) if vae.label_columns else torch.zeros((len(x0), 0), dtype=torch.int64)
        return lab, torch.from_numpy(np.stack([values[c] for c in ccols], 1)).float() if ccols else None

    x, lab, num = x0, l0, c0
    after = {}
    for cycle in range(1, 4):
        unit = abduct(vae, x, lab, num, seed=seed + cycle, refine=refine)
        x1, v1 = predict(vae, unit, {target: other})
        unit = abduct(vae, x1, *labels_of(v1), seed=seed + 100 + cycle, refine=refine)
        x, v2 = predict(vae, unit, back)
        lab, num = labels_of(v2)
        if cycle in (1, 3):
            after[cycle] = to_255(x, binary)
    return {**reversibility(to_255(x0, binary), after), "reversibility_target": target}


def _intervention_values(graph, name: str, seed: int) -> list:
    """The values at which the report intervenes on ``name``: each value of a discrete
    variable; for a continuous one, :data:`CONTINUOUS_VALUES` spread over its marginal in
    the graph: the quantiles at levels (i + 1/2) / CONTINUOUS_VALUES of
    :data:`REFERENCE_DRAWS` ancestral draws at ``seed``, rounded to 2 decimals."""
    if name not in graph.continuous:
        return list(graph[name].values)
    from causalvae.noise import sample as sample_units

    drawn = sample_units(graph, REFERENCE_DRAWS, seed).values[name]
    levels = (np.arange(CONTINUOUS_VALUES) + 0.5) / CONTINUOUS_VALUES
    return [round(float(x), 2) for x in np.quantile(drawn, levels)]


def _exact_table(graph, name: str, evidence: dict, do: dict) -> np.ndarray:
    """P(name | evidence, do(do)) of a discrete variable: the exact engine's table, or on a
    mixed graph :func:`causalvae.mixed.evaluate`'s answer (exact or numerical, per its method)."""
    if not graph.mixed:
        return query(graph, [name], evidence, do).table
    from causalvae.mixed import evaluate as answer, query_text

    def text(k, v):  # a continuous variable's value is a number, a discrete one's a name
        return query_text(float(v) if k in graph.continuous else v)

    conds = [f"{k}={text(k, v)}" for k, v in evidence.items()] + [f"do({k}={text(k, v)})" for k, v in do.items()]
    return np.array([e.value for e in answer(graph, f"P({name} | {', '.join(conds)})" if conds else f"P({name})").estimates])


def _continuous_targets(graph, columns: list[str], evidence: dict, do: dict, read_model: np.ndarray, read_true: np.ndarray | None,
                        rng: np.random.Generator) -> dict[str, dict]:
    """Per continuous column not set by the query: the Wasserstein-1 distance between the
    oracle's reading of generated pictures (``read_model``, (n, K)) and the exact
    distribution (:data:`REFERENCE_DRAWS` draws from the graph under the query), beside the
    same distance for true renders (``read_true``: the noise floor), and the means."""
    reference = sample_values(graph, REFERENCE_DRAWS, evidence, do, rng=rng)
    out = {}
    for k, c in enumerate(columns):
        if c in evidence or c in do:
            continue
        out[c] = {
            "mean_exact": float(reference[c].mean()),
            "mean_model": float(read_model[:, k].mean()),
            "mean_true_renders": float(read_true[:, k].mean()) if read_true is not None else None,
            "w1_model": wasserstein_1(read_model[:, k], reference[c]),
            "w1_true_renders": wasserstein_1(read_true[:, k], reference[c]) if read_true is not None else None,
        }
    return out


@torch.no_grad()
def _features(oracle: Oracle, images: torch.Tensor, batch: int = 512) -> np.ndarray:
    oracle.eval()
    device = next(oracle.parameters()).device
    return torch.cat([oracle.features(images[i : i + batch].to(device)).cpu() for i in range(0, len(images), batch)]).double().numpy()


def realism(oracle: Oracle, generated: torch.Tensor, real: torch.Tensor, seed: int) -> dict:
    """"FD in the oracle's feature space" (:func:`causalvae.metrics.frechet_distance` of the
    oracle's trunk features; not FID): the real pictures are split at random (``seed``) into
    halves A and B; the distance of m generated pictures to A beside the distance of m
    pictures of B to A (its floor: real against real at the same sizes), m the smaller of
    the half and the generated count."""
    order = np.random.default_rng([seed, 2]).permutation(len(real))
    half = len(real) // 2
    m = min(half, len(generated))
    if m < 2:
        raise CausalVAEError(f"the Fréchet distance needs at least 2 pictures a side, got {m}")
    a = _features(oracle, real[order[:half]])
    return {
        "fd_model": frechet_distance(_features(oracle, generated[:m]), a),
        "fd_real_halves": frechet_distance(_features(oracle, real[order[half : half + m]]), a),
        "pictures": int(m),
        "reference_pictures": int(half),
    }
