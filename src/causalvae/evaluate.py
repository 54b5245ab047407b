"""The evaluation report: every answer of a trained model scored against the world's truth.

Definitions follow ``docs/evaluation.md`` (and the field's axiomatic scores of Monteiro et
al. 2023). Sections:

- **likelihood**: test ELBO and an importance-weighted bound (k samples), nats per picture;
- **reconstruction**: pixel MAE (0-255), IoU for binary worlds, the oracle's accuracy on
  reconstructions;
- **generation**: for each reference query, pictures generated under it, read by the oracle;
  per target variable the total variation from the exact distribution, beside the same
  distance for as many true renders read by the same oracle (the noise floor), and how often
  the oracle reads back every label the decoder was given;
- **counterfactuals**: on test pictures, per intervention: TV between the pooled
  counterfactual labels (read off the pictures; and the values used) and the exact
  twin-network distribution; effectiveness; pixel distance to the true render of the model's
  counterfactual labels with the picture's recorded style; agreement with the recorded-noise
  true counterfactual beside an exact sampler's rate and the Bayes-optimal ceiling;
- **axioms**: composition after 1 and 10 null interventions, reversibility after 1 and 3 cycles.

:func:`evaluate` returns the report as a dict; :func:`write_report` writes JSON, Markdown
and figures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from causalvae.data import Dataset
from causalvae.errors import CausalVAEError
from causalvae.exact import query
from causalvae.metrics import agreement_with_truth, iou, pixel_mae, pooled_tv, total_variation
from causalvae.metrics.distributions import empirical
from causalvae.model import CausalVAE
from causalvae.noise import propagate
from causalvae.oracle import Oracle
from causalvae.queries import abduct, counterfactual, counterfactual_distributions, predict, reconstruct, sample, sample_values
from causalvae.worlds.truth import TrueRenderer

#: The reference queries of each world: (label, evidence, do).
REFERENCE_QUERIES = {
    "scenes": [
        ("P(. | reaction=Dying)", {"reaction": "Dying"}, {}),
        ("P(. | actor=Satyr, reactor=Golem)", {"actor": "Satyr", "reactor": "Golem"}, {}),
        ("P(. | do(actor_attack=High, reactor_defense=Low))", {}, {"actor_attack": "High", "reactor_defense": "Low"}),
        ("P(. | do(reaction=Dying))", {}, {"reaction": "Dying"}),
    ],
    "sprites": [
        ("P(.)", {}, {}),
        ("P(. | shape=heart)", {"shape": "heart"}, {}),
        ("P(. | do(scale=1.0))", {}, {"scale": "1.0"}),
    ],
}

#: Joint interventions scored beside every single-variable one.
JOINT_INTERVENTIONS = {
    "scenes": [
        {"actor_attack": "High", "reactor_defense": "Low"},
        {"actor": "Golem", "action": "Attack"},
        {"reactor": "Satyr", "reactor_type": "type3", "reaction": "Dying"},
    ],
    "sprites": [{"shape": "heart", "orientation": "0"}, {"scale": "0.5", "posX": "7"}],
}


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
    interventions: list[dict] | None = None  # default: every single-variable one + the joint ones

    def __post_init__(self):
        for name in ("n_generate", "iw_k", "axiom_images", "batch"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise CausalVAEError(f"{name} must be a positive whole number, got {getattr(self, name)!r}")
        if not (isinstance(self.iw_images, int) and self.iw_images >= 0) or (self.cf_images is not None and not (isinstance(self.cf_images, int) and self.cf_images >= 1)):
            raise CausalVAEError(f"iw_images must be >= 0 and cf_images >= 1 (or None: all), got {self.iw_images!r}, {self.cf_images!r}")
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2**32):
            raise CausalVAEError(f"seed must be a whole number in [0, 2**32), got {self.seed!r}")


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


@torch.no_grad()
def iw_bound(vae: CausalVAE, images: torch.Tensor, labels: torch.Tensor, k: int, generator: torch.Generator) -> np.ndarray:
    """Importance-weighted bound on log p(x | labels) per picture (Burda et al. 2016), with
    k draws of z from the encoder. The picture's parents must be labelled."""
    from causalvae.nets import pixel_distribution

    cols = vae._label_values(labels)
    values = {p: cols[p] for p in vae.image_parents}
    if any(bool((v < 0).any()) for v in values.values()):
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
    log_w = torch.stack(log_w)
    return (torch.logsumexp(log_w, 0) - math.log(k)).numpy()


def _read(oracle: Oracle, images: torch.Tensor, columns: list[str]) -> np.ndarray:
    got = oracle.read(images)
    order = [oracle.config.columns.index(c) for c in columns]
    return got[:, order]


def evaluate(
    vae: CausalVAE,
    oracle: Oracle,
    test: Dataset,
    settings: EvalSettings = EvalSettings(),
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Score ``vae`` on the ``test`` split of its world's dataset (with truth) with ``oracle``."""
    say = progress or (lambda msg: None)
    world = test.manifest.get("world")
    if world not in REFERENCE_QUERIES:
        raise CausalVAEError(f"{test.root}: evaluation needs a built-in world's dataset (scenes or sprites), not {world!r}")
    if not test.truth:
        raise CausalVAEError(f"{test.root}: open the test split with truth=True")
    if not set(vae.label_columns) <= set(oracle.config.columns):
        raise CausalVAEError(f"the oracle reads {list(oracle.config.columns)}, the model's labels are {list(vae.label_columns)}")
    truth = TrueRenderer(world, vae.config.image_size)
    # The truth is the world's: the dataset's own graph (its tables and what it labels), never
    # the model's (which may have learned tables or be a hypothesis given with --graph).
    graph = test.graph
    if list(graph.observed) != list(vae.label_columns):
        raise CausalVAEError(f"the model's labels {list(vae.label_columns)} are not the dataset's {list(graph.observed)}")
    cols = list(vae.label_columns)
    binary = vae.config.likelihood == "bernoulli"
    gen = torch.Generator().manual_seed(settings.seed)
    n_test = len(test)
    images, labels = test.batch(np.arange(n_test))
    rows = test.indices
    truth_cols = list(test.manifest["truth_columns"])
    truth_values = {v: test.truth_values[rows, truth_cols.index(v)].astype(np.int64) for v in truth_cols}
    truth_noise = {v: test.truth_noise[rows, truth_cols.index(v)] for v in truth_cols}
    truth_style = test.truth_style[rows]
    report: dict = {"world": world, "dataset": str(test.root), "test_pictures": n_test, "settings": asdict(settings)}

    # ---------------------------------------------------------------- likelihood
    say("likelihood")
    elbos, n_el = 0.0, 0
    for sl in _batches(n_test, settings.batch):
        obj = vae.objective(images[sl], labels[sl])
        elbos += obj.elbo * obj.n
        n_el += obj.n
    n_iw = min(settings.iw_images, n_test)
    iw = np.concatenate([iw_bound(vae, images[sl], labels[sl], settings.iw_k, gen) for sl in _batches(n_iw, 64)]) if n_iw else np.zeros(0)
    # The ELBO of the same pictures, for a like-for-like comparison with the tighter bound.
    elbo_iw = sum(vae.objective(images[sl], labels[sl]).elbo * (sl.stop - sl.start) for sl in _batches(n_iw, settings.batch)) / max(n_iw, 1)
    dims = vae.config.channels * vae.config.image_size**2
    report["likelihood"] = {
        "elbo": elbos / n_el,
        "iw_bound": float(iw.mean()) if n_iw else None,
        "elbo_on_iw_pictures": float(elbo_iw) if n_iw else None,
        "iw_k": settings.iw_k,
        "iw_pictures": int(n_iw),
        "elbo_bits_per_dim": -(elbos / n_el) / (dims * math.log(2)),
    }

    # ---------------------------------------------------------------- reconstruction
    say("reconstruction")
    recon = torch.cat([reconstruct(vae, images[sl], labels[sl]) for sl in _batches(n_test, settings.batch)])
    read = _read(oracle, recon, cols)
    lab = labels.numpy()
    seen = lab >= 0
    report["reconstruction"] = {
        "pixel_mae": float(pixel_mae(_pixels(images, binary), _pixels(recon, binary)).mean()),
        "iou": float(iou(images.numpy(), recon.numpy()).mean()) if binary else None,
        "oracle_accuracy": {c: float((read[seen[:, k], k] == lab[seen[:, k], k]).mean()) for k, c in enumerate(cols)},
        "oracle_accuracy_on_test_pictures": {c: float(a) for c, a in zip(cols, _masked_accuracy(_read(oracle, images, cols), lab))},
    }

    # ---------------------------------------------------------------- generation
    rng = np.random.default_rng(settings.seed)
    gens = []
    for name, evidence, do in REFERENCE_QUERIES[world]:
        say(f"generation {name}")
        n = settings.n_generate
        given, read_model, read_true = [], [], []
        for sl in _batches(n, settings.batch * 4):
            g = sample(vae, sl.stop - sl.start, evidence, do, seed=int(rng.integers(2**62)))
            given.append(np.stack([g.values[c] for c in cols], 1))
            read_model.append(_read(oracle, g.images, cols))
            values = sample_values(graph, sl.stop - sl.start, evidence, do, rng=rng)
            true_images = truth.render(values, truth.draw_style(sl.stop - sl.start, rng))
            read_true.append(_read(oracle, torch.from_numpy(true_images), cols))
        given, read_model, read_true = np.concatenate(given), np.concatenate(read_model), np.concatenate(read_true)
        targets = {}
        for k, c in enumerate(cols):
            if c in evidence or c in do:
                continue
            exact = query(graph, [c], evidence, do).table
            targets[c] = {
                "exact": exact.tolist(),
                "tv_model": total_variation(empirical(read_model[:, k], graph.card(c)), exact),
                "tv_true_renders": total_variation(empirical(read_true[:, k], graph.card(c)), exact),
            }
        gens.append({"query": name, "evidence": evidence, "do": do, "n": n, "targets": targets,
                     "readback": float((read_model == given).all(axis=1).mean()),
                     "readback_true_renders": None})
    report["generation"] = gens

    # ---------------------------------------------------------------- counterfactuals
    interventions = settings.interventions
    if interventions is None:
        interventions = [{v: val} for v in graph.names for val in graph[v].values] + JOINT_INTERVENTIONS[world]
    n_cf = n_test if settings.cf_images is None else min(settings.cf_images, n_test)
    cf_rows = []
    for do in interventions:
        say(f"counterfactual do({', '.join(f'{k}={v}' for k, v in do.items())})")
        used, readc, exact_rows, pix = [], [], [], []
        for sl in _batches(n_cf, settings.batch):
            cf = counterfactual(vae, images[sl], labels[sl], do, seed=int(rng.integers(2**62)), abduct_noise=settings.abduct_noise)
            used.append(np.stack([cf.values[c] for c in cols], 1))
            readc.append(_read(oracle, cf.images, cols))
            exact_rows.extend(counterfactual_distributions(graph, cols, lab[sl], {k: graph[k].index(v) for k, v in do.items()}))
            if binary:  # IoU against the true render, the best over its symmetric equivalents
                pix.append(truth.best_iou(cf.values, truth_style[sl], cf.images.numpy()))
            else:
                true_pics = truth.render(cf.values, truth_style[sl])
                pix.append(pixel_mae(torch.from_numpy(true_pics).numpy(), cf.images.numpy()))
        used, readc, pix = np.concatenate(used), np.concatenate(readc), np.concatenate(pix)
        true_cf = propagate(graph, {v: truth_noise[v][:n_cf] for v in graph.names}, {k: graph[k].index(v) for k, v in do.items()})
        groups = lab[:n_cf]
        per_var = {}
        for k, c in enumerate(cols):
            ex = np.stack([e[c] for e in exact_rows])
            agr = agreement_with_truth(readc[:, k], true_cf[c], ex)
            per_var[c] = {
                "tv_read": pooled_tv(groups, readc[:, k], ex, graph.card(c))["tv"],
                "tv_used": pooled_tv(groups, used[:, k], ex, graph.card(c))["tv"],
                "effectiveness": float((readc[:, k] == used[:, k]).mean()),
                **{f"truth_{key}": val for key, val in agr.items()},
            }
        cf_rows.append({
            "do": do,
            "pictures": int(n_cf),
            "effectiveness": float((readc == used).all(axis=1).mean()),
            "pixel_mae_to_true_render" if not binary else "iou_to_true_render": float(pix.mean()),
            "variables": per_var,
        })
    report["counterfactuals"] = cf_rows

    # ---------------------------------------------------------------- axioms
    say("axioms")
    n_ax = min(settings.axiom_images, n_test)
    x0, l0 = images[:n_ax], labels[:n_ax]
    x = x0
    comp = {}
    for m in range(1, 11):
        x = counterfactual(vae, x, l0, {}, seed=settings.seed + m).images
        if m in (1, 10):
            comp[f"composition_{m}"] = float(pixel_mae(_pixels(x0, binary), _pixels(x, binary)).mean())
    report["axioms"] = {**comp, **_reversibility(vae, x0, l0, settings.seed, binary)}
    return report


def _masked_accuracy(read: np.ndarray, lab: np.ndarray) -> list[float]:
    """Per column, the share of labelled rows (label >= 0) that the oracle reads right."""
    return [float((read[lab[:, k] >= 0, k] == lab[lab[:, k] >= 0, k]).mean()) if (lab[:, k] >= 0).any() else float("nan") for k in range(lab.shape[1])]


def _pixels(images: torch.Tensor, binary: bool) -> np.ndarray:
    arr = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    return arr.astype(np.uint8) * 255 if binary else arr


def _reversibility(vae: CausalVAE, x0: torch.Tensor, l0: torch.Tensor, seed: int, binary: bool) -> dict[str, float]:
    """Intervene each picture's first image parent to its next value, then every image
    parent back to its original value; mean |x - x_back| after 1 and 3 such cycles."""
    graph = vae.current_graph()
    labelled = [p for p in vae.image_parents if p in vae.label_columns and bool((l0[:, vae.label_columns.index(p)] >= 0).all())]
    if len(labelled) < len(vae.image_parents):
        return {"reversibility_1": float("nan"), "reversibility_3": float("nan"), "reversibility_target": "(skipped: an image parent is unlabelled)"}
    target = labelled[0]
    k = vae.label_columns.index(target)
    original = l0[:, k].numpy().astype(np.int64)
    other = (original + 1) % graph.card(target)
    back = {p: l0[:, vae.label_columns.index(p)].numpy().astype(np.int64) for p in vae.image_parents}
    x, lab = x0, l0
    out = {}
    for cycle in range(1, 4):
        unit = abduct(vae, x, lab, seed=seed + cycle)
        x1, v1 = predict(vae, unit, {target: other})
        lab1 = torch.from_numpy(np.stack([v1[c] for c in vae.label_columns], 1))
        unit = abduct(vae, x1, lab1, seed=seed + 100 + cycle)
        x, v2 = predict(vae, unit, back)
        lab = torch.from_numpy(np.stack([v2[c] for c in vae.label_columns], 1))
        if cycle in (1, 3):
            out[f"reversibility_{cycle}"] = float(pixel_mae(_pixels(x0, binary), _pixels(x, binary)).mean())
    out["reversibility_target"] = target
    return out


# ------------------------------------------------------------------------------ report files


def summary_rows(report: dict) -> dict:
    """Headline numbers (means over queries, interventions and variables)."""
    gen = report["generation"]
    tv_m = [t["tv_model"] for g in gen for t in g["targets"].values()]
    tv_t = [t["tv_true_renders"] for g in gen for t in g["targets"].values()]
    cfs = report["counterfactuals"]
    pix_key = "pixel_mae_to_true_render" if "pixel_mae_to_true_render" in cfs[0] else "iou_to_true_render"
    obs = [(v, c) for r in cfs for c, v in r["variables"].items() if c not in r["do"]]
    return {
        "generation_tv_model": float(np.mean(tv_m)),
        "generation_tv_true_renders": float(np.mean(tv_t)),
        "generation_readback": float(np.mean([g["readback"] for g in gen])),
        "counterfactual_tv_read": float(np.mean([v["tv_read"] for v, _ in obs])),
        "counterfactual_tv_used": float(np.mean([v["tv_used"] for v, _ in obs])),
        "counterfactual_effectiveness": float(np.mean([r["effectiveness"] for r in cfs])),
        f"counterfactual_{pix_key}": float(np.mean([r[pix_key] for r in cfs])),
        "counterfactual_truth_agreement": float(np.mean([v["truth_agreement"] for v, _ in obs])),
        "counterfactual_truth_exact_sampler": float(np.mean([v["truth_exact_sampler"] for v, _ in obs])),
        "counterfactual_truth_ceiling": float(np.mean([v["truth_ceiling"] for v, _ in obs])),
    }


def markdown(report: dict) -> str:
    s = summary_rows(report)
    L = report["likelihood"]
    R = report["reconstruction"]
    A = report["axioms"]
    lines = [
        f"# Evaluation: {report['world']} world",
        "",
        f"Test split of `{report['dataset']}`: {report['test_pictures']} pictures. Nats per picture; pixel errors on the 0-255 scale.",
        "",
        "## Likelihood and reconstruction",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| test ELBO (bound on log p(x \\| labels)) | {L['elbo']:.1f} nats ({L['elbo_bits_per_dim']:.3f} bits/dim) |",
        f"| importance-weighted bound, k = {L['iw_k']}, on the first {L['iw_pictures']} pictures (their ELBO: {L['elbo_on_iw_pictures']:.1f}) | {L['iw_bound']:.1f} nats |" if L["iw_bound"] is not None else "",
        f"| reconstruction pixel MAE | {R['pixel_mae']:.2f} |",
    ]
    if R["iou"] is not None:
        lines.append(f"| reconstruction IoU | {R['iou']:.3f} |")
    for c, a in R["oracle_accuracy"].items():
        lines.append(f"| oracle accuracy on reconstructions: {c} | {100 * a:.1f}% (on the test pictures themselves: {100 * R['oracle_accuracy_on_test_pictures'][c]:.1f}%) |")
    lines += ["", "## Generation", "",
              "Total variation between the oracle-read distribution of generated pictures and the exact one, beside the same distance for as many true renders (the noise floor).", "",
              "| query | n | variable | TV model | TV true renders | readback |", "|---|---:|---|---:|---:|---:|"]
    for g in report["generation"]:
        for i, (c, t) in enumerate(g["targets"].items()):
            lines.append(f"| {_md(g['query']) if i == 0 else ''} | {g['n'] if i == 0 else ''} | {c} | {t['tv_model']:.3f} | {t['tv_true_renders']:.3f} | {100 * g['readback']:.1f}% |" if i == 0 else f"| | | {c} | {t['tv_model']:.3f} | {t['tv_true_renders']:.3f} | |")
    pix = "pixel_mae_to_true_render" if "pixel_mae_to_true_render" in report["counterfactuals"][0] else "iou_to_true_render"
    lines += ["", "## Counterfactuals", "",
              "Per intervention, over the test pictures. TV: pooled per factual-label pattern, oracle-read counterfactual labels (and the values the model used) against the exact twin network, mean over the variables not intervened on. "
              "Agreement: oracle-read counterfactual labels equal to the recorded-noise true counterfactual, beside the rate of an exact sampler and the Bayes-optimal ceiling.", "",
              f"| do | effectiveness | {'pixel MAE' if pix.startswith('pixel') else 'IoU'} to true render | TV read | TV used | agreement | exact sampler | ceiling |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["counterfactuals"]:
        vs = [v for c, v in r["variables"].items() if c not in r["do"]]
        m = lambda key: np.mean([v[key] for v in vs]) if vs else float("nan")
        do = ", ".join(f"{k}={v}" for k, v in r["do"].items())
        lines.append(f"| {do} | {100 * r['effectiveness']:.1f}% | {r[pix]:.2f} | {m('tv_read'):.3f} | {m('tv_used'):.3f} | {100 * m('truth_agreement'):.1f}% | {100 * m('truth_exact_sampler'):.1f}% | {100 * m('truth_ceiling'):.1f}% |")
    lines += ["", "## Axioms", "", "| score | pixel MAE |", "|---|---:|",
              f"| composition, 1 null intervention | {A['composition_1']:.2f} |",
              f"| composition, 10 null interventions | {A['composition_10']:.2f} |",
              f"| reversibility ({A['reversibility_target']} and back), 1 cycle | {A['reversibility_1']:.2f} |",
              f"| reversibility, 3 cycles | {A['reversibility_3']:.2f} |",
              "", "## Goals", "", goals_markdown(report).rstrip(),
              "", "## Summary", "", "| figure | value |", "|---|---:|"]
    for k, v in s.items():
        lines.append(f"| {k} | {v:.4f} |")
    return "\n".join(l for l in lines if l is not None) + "\n"


def goals(report: dict) -> list[dict]:
    """The default scene model's goals (issue 6), each with its measured value and whether it
    is met. The goals are fixed here; only the measurements change."""
    gen = report["generation"]
    cfs = report["counterfactuals"]
    obs = [v for r in cfs for c, v in r["variables"].items() if c not in r["do"]]
    pix_key = "pixel_mae_to_true_render" if "pixel_mae_to_true_render" in cfs[0] else None
    A, R = report["axioms"], report["reconstruction"]
    rows = [
        ("generation TV above its noise floor, worst target", max(t["tv_model"] - t["tv_true_renders"] for g in gen for t in g["targets"].values()), "<=", 0.01),
        ("generation read-back rate, worst query", min(g["readback"] for g in gen), ">=", 0.99),
        ("counterfactual label TV (oracle-read, pooled), mean", float(np.mean([v["tv_read"] for v in obs])), "<=", 0.02),
        ("counterfactual effectiveness, mean over interventions", float(np.mean([r["effectiveness"] for r in cfs])), ">=", 0.99),
        ("oracle accuracy on reconstructions, worst variable", min(R["oracle_accuracy"].values()), ">=", 0.99),
        ("composition after 10 cycles / after 1", A["composition_10"] / max(A["composition_1"], 1e-9), "<=", 2.0),
    ]
    if pix_key is not None:
        rows.insert(4, ("counterfactual pixel MAE / reconstruction MAE", float(np.mean([r[pix_key] for r in cfs])) / max(R["pixel_mae"], 1e-9), "<=", 1.25))
    return [{"goal": g, "value": float(v), "op": op, "target": t, "met": bool(v <= t if op == "<=" else v >= t)} for g, v, op, t in rows]


def goals_markdown(report: dict) -> str:
    lines = ["| goal | measured | target | met |", "|---|---:|---:|---|"]
    for g in goals(report):
        lines.append(f"| {g['goal']} | {g['value']:.4g} | {g['op']} {g['target']:g} | {'yes' if g['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def tv_figure(report: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, model, floor = [], [], []
    for g in report["generation"]:
        for c, t in g["targets"].items():
            labels.append(f"{g['query']}\n{c}")
            model.append(t["tv_model"])
            floor.append(t["tv_true_renders"])
    fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(labels) + 1.4), dpi=110)
    y = np.arange(len(labels))
    ax.barh(y + 0.2, model, 0.4, label="generated pictures")
    ax.barh(y - 0.2, floor, 0.4, label="true renders (noise floor)")
    ax.set_yticks(y, [l.replace("\n", "  ") for l in labels], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("total variation from the exact distribution (oracle-read)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def write_report(report: dict, out: str | Path, *, force: bool = False) -> Path:
    """``report.json``, ``report.md`` and ``generation_tv.png`` in ``out`` (atomically): a new
    or empty directory, or (with ``force``) an earlier report; never another artefact."""
    import io as _io

    from causalvae.io import atomic_write_bytes, atomic_write_text, check_output_dir

    out = check_output_dir(out, "report", force=force)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, default=float) + "\n")
    atomic_write_text(out / "report.md", markdown(report))
    atomic_write_text(out / "goals.md", goals_markdown(report))
    buf = _io.BytesIO()
    tv_figure(report).savefig(buf, format="png")
    atomic_write_bytes(out / "generation_tv.png", buf.getvalue())
    return out
