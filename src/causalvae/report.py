"""The evaluation report as files: Markdown tables, the goals, a figure, the JSON.

:func:`causalvae.evaluate.evaluate` returns the report as a dict; this module writes it:
``report.json``, ``report.md`` (every section, and which were left out and why),
``goals.md`` (the project's named targets beside the measured values) and
``generation_tv.png``. The sections on continuous image parents (Wasserstein-1 distances of
generation, "FD in the oracle's feature space", the oracle's errors on counterfactuals) are
shown only for a model that has them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from causalvae.errors import CausalVAEError


def _mean(values) -> float | None:
    """The mean of the values that were measured (None: none was)."""
    got = [v for v in values if v is not None]
    return float(np.mean(got)) if got else None


def _pix_key(report: dict) -> str:
    return "pixel_mae_to_true_render" if "pixel_mae_to_true_render" in report["counterfactuals"][0] else "iou_to_true_render"


def summary_rows(report: dict) -> dict:
    """Headline numbers (means over queries, interventions and variables); a score that was
    left out (see ``report["left_out"]``) is absent."""
    gen = report["generation"]
    cfs = report["counterfactuals"]
    pix_key = _pix_key(report)
    obs = [v for r in cfs for c, v in r["variables"].items() if c not in r["do"]]
    rows = {
        "generation_tv_model": _mean(t["tv_model"] for g in gen for t in g["targets"].values()),
        "generation_tv_true_renders": _mean(t["tv_true_renders"] for g in gen for t in g["targets"].values()),
        "generation_readback": _mean(g["readback"] for g in gen),
        "counterfactual_tv_read": _mean(v["tv_read"] for v in obs),
        "counterfactual_tv_used": _mean(v["tv_used"] for v in obs),
        "counterfactual_effectiveness": _mean(r["effectiveness"] for r in cfs),
        f"counterfactual_{pix_key}": _mean(r[pix_key] for r in cfs),
        "counterfactual_iou_to_nearest_render": _mean(r.get("iou_to_nearest_render") for r in cfs),
        "counterfactual_truth_agreement": _mean(v["truth_agreement"] for v in obs),
        "counterfactual_truth_exact_sampler": _mean(v["truth_exact_sampler"] for v in obs),
        "counterfactual_truth_ceiling": _mean(v["truth_ceiling"] for v in obs),
    }
    for c in _continuous_columns(report):
        rows[f"generation_w1_model_{c}"] = _mean(g["continuous_targets"][c]["w1_model"] for g in gen if c in g["continuous_targets"])
        rows[f"generation_w1_true_renders_{c}"] = _mean(g["continuous_targets"][c]["w1_true_renders"] for g in gen if c in g["continuous_targets"])
        rows[f"counterfactual_intervened_mae_{c}"] = _intervened_mae(report, c)
    if report.get("realism"):
        rows["realism_fd_model"] = report["realism"]["fd_model"]
        rows["realism_fd_real_halves"] = report["realism"]["fd_real_halves"]
    return {k: v for k, v in rows.items() if v is not None}


def _continuous_columns(report: dict) -> list[str]:
    """The continuous image parents the report scores (none for a discrete model)."""
    first = report["counterfactuals"][0] if report["counterfactuals"] else {}
    return list(first.get("continuous", {}))


def _intervened_mae(report: dict, column: str, key: str = "mae_read") -> float | None:
    """The oracle's mean absolute error on ``column`` against its intervened value, mean
    over the single-variable interventions on it (None: none was scored). ``key``
    ``"mae_read_true_renders"``: the same read off the true renders."""
    return _mean(r["continuous"][column].get(key) for r in report["counterfactuals"] if list(r["do"]) == [column])


def _intervened_accuracy(report: dict, column: str, key: str = "effectiveness") -> float | None:
    """The share of counterfactuals whose discrete ``column`` is read as its intervened value,
    mean over the single-variable interventions on it (None: none was scored). ``key``
    ``"effectiveness_true_renders"``: the same read off the true renders."""
    return _mean(r["variables"][column].get(key) for r in report["counterfactuals"] if list(r["do"]) == [column])


def _true_render_figures(report: dict) -> dict[str, float]:
    """The goals' figures that the oracle also reads off the true counterfactual renders (a
    stand-in's, where the world names one): how the oracle reads real pictures of the same
    counterfactuals, a reference beside the model's figure, not a bound on it. Empty for a report made before the true renders were read."""
    cfs = report["counterfactuals"]
    truth = [r.get("effectiveness_true_renders") for r in cfs]
    if not cfs or any(t is None for t in truth):
        return {}
    out = {"counterfactual_effectiveness_mean": _mean(truth), "counterfactual_effectiveness_worst": min(truth)}
    factors = [f.get("effectiveness_true_renders") for f in report.get("counterfactual_factors", {}).values()]
    if factors and None not in factors:
        out["counterfactual_effectiveness_factor_mean"], out["counterfactual_effectiveness_factor_worst"] = _mean(factors), min(factors)
    for c in _continuous_columns(report):
        out[f"counterfactual_intervened_mae_{c}"] = _intervened_mae(report, c, "mae_read_true_renders")
    for c in cfs[0]["variables"]:
        out[f"counterfactual_intervened_accuracy_{c}"] = _intervened_accuracy(report, c, "effectiveness_true_renders")
    return {k: v for k, v in out.items() if v is not None}


def _f(value, spec: str, scale: float = 1.0, unit: str = "") -> str:
    """A table cell: the formatted value, or "-" for a score that was left out."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value * scale:{spec}}{unit}"


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
    ]
    judge = report.get("oracle") or {}
    if judge.get("weights_sha256"):  # two reports with the same hash were scored by one oracle instance
        lines += [f"Judge: the oracle in `{judge['path']}`, its weights' SHA-256 `{judge['weights_sha256'][:16]}` (reports that show the same hash were scored by the same oracle instance).", ""]
    refine = report.get("settings", {}).get("refine", 0)
    lines += [("Abduction: each picture's code z is the encoder's mean, refined by "
               f"{refine} steps toward the mode of the model's posterior (`--refine {refine}`), "
               "in reconstructions, counterfactuals and the axioms alike.") if refine else
              "Abduction: each picture's code z is the encoder's mean (no refinement, `--refine 0`).", ""]
    if report.get("stand_in_renders"):
        lines += ["True renders that stand in (the unit's own counterfactual picture does not exist):", ""]
        lines += [f"- do({c}): {how}" for c, how in report["stand_in_renders"].items()]
        lines.append("")
    if report.get("scored_modulo"):
        lines += ["Readings of these variables are scored modulo the picture's symmetry (a reading is right when no picture could tell it from the true value; report.json keeps the exact-value figures beside, as `*_raw`):", ""]
        lines += [f"- {c}: {how}" for c, how in report["scored_modulo"].items()]
        lines.append("")
    if report.get("left_out"):
        lines += ["Left out of this report (shown as -):", ""]
        lines += [f"- {item['section']}: {item['why']}" for item in report["left_out"]]
        lines.append("")
    lines += [
        "## Likelihood and reconstruction",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| test ELBO (bound on log p(x \\| labels)) | {L['elbo']:.1f} nats ({L['elbo_bits_per_dim']:.3f} bits/dim) |",
        f"| importance-weighted bound, k = {L['iw_k']}, on the first {L['iw_pictures']} fully labelled pictures (their ELBO: {L['elbo_on_iw_pictures']:.1f}) | {L['iw_bound']:.1f} nats |" if L["iw_bound"] is not None else "",
        f"| reconstruction pixel MAE | {R['pixel_mae']:.2f} |",
    ]
    if R["iou"] is not None:
        lines.append(f"| reconstruction IoU | {R['iou']:.3f} |")
    if R.get("iou_to_true_render") is not None:
        lines.append(f"| reconstruction IoU to the input, the best over its symmetric equivalents (first {R['iou_to_true_render_pictures']} pictures) | {R['iou_to_true_render']:.3f} |")
    raw = R.get("oracle_accuracy_raw", {})
    for c, a in R["oracle_accuracy"].items():
        exact = f"; the exact value: {_f(raw[c], '.1f', 100, '%')} and {_f(R['oracle_accuracy_on_test_pictures_raw'][c], '.1f', 100, '%')}" if c in report.get("scored_modulo", {}) and c in raw else ""
        lines.append(f"| oracle accuracy on reconstructions: {c} | {_f(a, '.1f', 100, '%')} (on the test pictures themselves: {_f(R['oracle_accuracy_on_test_pictures'][c], '.1f', 100, '%')}{exact}) |")
    if R.get("oracle_all_right") is not None:
        lines.append(f"| oracle reads every label of the reconstruction right | {_f(R['oracle_all_right'], '.1f', 100, '%')} (of the test picture itself: {_f(R['oracle_all_right_on_test_pictures'], '.1f', 100, '%')}, the ceiling the oracle sets to effectiveness) |")
    for c, e in R.get("oracle_mae", {}).items():
        lines.append(f"| oracle mean absolute error on reconstructions: {c} | {e:.3g} (on the test pictures themselves: {R['oracle_mae_on_test_pictures'][c]:.3g}) |")
    if report.get("classifiers"):
        lines += ["", "## Classifiers", "", "Each classified image parent's q(y | x), its most probable value against the recorded truth of the test pictures.", "",
                  "| variable | labelled | accuracy |", "|---|---|---:|"]
        for c, v in report["classifiers"].items():
            lines.append(f"| {c} | {'no (hidden)' if v['hidden'] else 'yes'} | {100 * v['accuracy']:.1f}% |")
        for c, v in report["classifiers"].items():
            if "confusion" not in v:
                continue
            names = list(v["confusion"])
            lines += ["", f"{c}: test pictures of each true value (rows) by the classifier's guess (columns).", "",
                      "| true value | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
            lines += [f"| {t} | " + " | ".join(str(row[g]) for g in names) + " |" for t, row in v["confusion"].items()]
    lines += ["", "## Generation", "",
              "Total variation between the oracle-read distribution of generated pictures and the exact one, beside the same distance for as many true renders (the noise floor).", "",
              "| query | n | variable | TV model | TV true renders | readback |", "|---|---:|---|---:|---:|---:|"]
    for g in report["generation"]:
        for i, (c, t) in enumerate(g["targets"].items()):
            lines.append(f"| {_md(g['query'])} | {g['n']} | {c} | {t['tv_model']:.3f} | {_f(t['tv_true_renders'], '.3f')} | {100 * g['readback']:.1f}% |" if i == 0 else f"| | | {c} | {t['tv_model']:.3f} | {_f(t['tv_true_renders'], '.3f')} | |")
    if any(g.get("continuous_targets") for g in report["generation"]):
        lines += ["", "### Continuous variables", "",
                  "The oracle's reading of each continuous variable off the generated pictures against its exact distribution under the query (draws from the graph): "
                  "the Wasserstein-1 distance in the variable's own units, beside the same distance for true renders (the noise floor), and the means.", "",
                  "| query | variable | W1 model | W1 true renders | mean model | mean true renders | mean exact |", "|---|---|---:|---:|---:|---:|---:|"]
        for g in report["generation"]:
            for c, t in g.get("continuous_targets", {}).items():
                lines.append(f"| {_md(g['query'])} | {c} | {t['w1_model']:.3g} | {_f(t['w1_true_renders'], '.3g')} | {t['mean_model']:.4g} | {_f(t['mean_true_renders'], '.4g')} | {t['mean_exact']:.4g} |")
    if report.get("realism"):
        F = report["realism"]
        lines += ["", "## Realism", "",
                  "FD in the oracle's feature space: the Fréchet distance between the oracle's trunk features of pictures generated without evidence or intervention and of real test pictures "
                  "(not FID: no Inception network here), beside the same distance between two halves of the real test pictures (its floor at these sample sizes).", "",
                  "| figure | value |", "|---|---:|",
                  f"| FD in the oracle's feature space, {F['pictures']} generated vs {F['reference_pictures']} real test pictures | {F['fd_model']:.3g} |",
                  f"| the same, {F['pictures']} real vs {F['reference_pictures']} other real test pictures (floor) | {F['fd_real_halves']:.3g} |"]
    pix = _pix_key(report)
    nearest = any(r.get("iou_to_nearest_render") is not None for r in report["counterfactuals"])
    judged = any(r.get("effectiveness_true_renders") is not None for r in report["counterfactuals"])
    lines += ["", "## Counterfactuals", "",
              "Per intervention, over the test pictures. TV: pooled per factual-label pattern, oracle-read counterfactual labels (and the values the model used) against the exact twin network, mean over the variables not intervened on. "
              "Agreement: oracle-read counterfactual labels equal to the recorded-noise true counterfactual, beside the rate of an exact sampler and the Bayes-optimal ceiling.", "",
              *([] if not nearest else ["IoU to nearest render: the best IoU to a true render of the same values under any style the world draws (sprites: any offsets inside the bins). "
                                        "The model keeps the style in z; the true counterfactual keeps the factual picture's. The gap to the IoU to the true render bounds from above "
                                        "the part of the error that lies in the style z keeps under the new values (a drawing slightly off may also fit another style better).", ""]),
              *([] if not judged else ["Effectiveness of the true renders: the true counterfactual pictures read by the same oracle against the same values: how the oracle reads real pictures of these counterfactuals, a reference, not a bound (a model's pictures can read better or worse).", ""]),
              f"| do | effectiveness |{' effectiveness of the true renders |' if judged else ''} {'pixel MAE' if pix.startswith('pixel') else 'IoU'} to true render |{' IoU to nearest render |' if nearest else ''} TV read | TV used | agreement | exact sampler | ceiling |",
              "|---|---:|" + ("---:|" if judged else "") + "---:|" + ("---:|" if nearest else "") + "---:|---:|---:|---:|---:|"]
    for r in report["counterfactuals"]:
        vs = [v for c, v in r["variables"].items() if c not in r["do"]]
        m = lambda key: _mean(v[key] for v in vs) if vs else float("nan")
        do = ", ".join(f"{k}={v}" for k, v in r["do"].items())
        near = f" {_f(r.get('iou_to_nearest_render'), '.2f')} |" if nearest else ""
        judge = f" {_f(r.get('effectiveness_true_renders'), '.1f', 100, '%')} |" if judged else ""
        lines.append(f"| {do} | {100 * r['effectiveness']:.1f}% |{judge} {_f(r[pix], '.2f')} |{near} {_f(m('tv_read'), '.3f')} | {_f(m('tv_used'), '.3f')} | {_f(m('truth_agreement'), '.1f', 100, '%')} | {_f(m('truth_exact_sampler'), '.1f', 100, '%')} | {_f(m('truth_ceiling'), '.1f', 100, '%')} |")
    mis = [(r, c, m) for r in report["counterfactuals"] for c, v in r["variables"].items() for m in v.get("misread", [])[:2]]
    if mis:
        lines += ["", "### What the misses are", "",
                  "Per intervention, the two most frequent wrong readings of each label (the value the counterfactual should show, the value the oracle read instead), as a share of "
                  "the intervention's pictures" + (", beside the share of true renders read so" if judged else "") + ".", "",
                  "| do | label | should show | read as | share |" + (" share, true renders |" if judged else ""),
                  "|---|---|---|---|---:|" + ("---:|" if judged else "")]
        for r, c, m in mis:
            do = ", ".join(f"{k}={v}" for k, v in r["do"].items())
            lines.append(f"| {do} | {c} | {m['used']} | {m['read']} | {100 * m['share']:.1f}% |" + (f" {_f(m.get('share_true_renders'), '.1f', 100, '%')} |" if judged else ""))
    ccols = _continuous_columns(report)
    if ccols:
        lines += ["", "### Continuous parents", "",
                  "Per intervention, the oracle's reading of each continuous parent off the counterfactual pictures: its mean absolute error against the value the counterfactual should show "
                  "(the intervened value, or what its mechanism gives from the unit's noise), and how far it moved from the oracle's reading of the factual picture (minimality, for a parent "
                  "the intervention leaves alone). Effectiveness above: every discrete label read as used.", "",
                  *([] if not judged else ["True renders' MAE: the same reading off the true counterfactual pictures (a reference for the oracle's own error, not a bound).", ""]),
                  "| do | " + " | ".join(f"{c} MAE |{f' {c} MAE, true renders |' if judged else ''} {c} moved" for c in ccols) + f" | {'pixel MAE' if pix.startswith('pixel') else 'IoU'} to true render |",
                  "|---|" + ("---:|---:|---:|" if judged else "---:|---:|") * len(ccols) + "---:|"]
        for r in report["counterfactuals"]:
            do = ", ".join(f"{k}={v}" for k, v in r["do"].items())
            cells = " | ".join(f"{r['continuous'][c]['mae_read']:.3g} |{' ' + _f(r['continuous'][c].get('mae_read_true_renders'), '.3g') + ' |' if judged else ''} {r['continuous'][c]['moved']:.3g}" for c in ccols)
            lines.append(f"| {do} | {cells} | {_f(r[pix], '.2f')} |")
    if report.get("counterfactual_factors"):
        lines += ["", "### Per factor", "", factors_markdown(report).rstrip()]
    lines += ["", "## Axioms", "", "| score | pixel MAE |", "|---|---:|",
              f"| composition, 1 null intervention | {A['composition_1']:.2f} |",
              f"| composition, 10 null interventions | {A['composition_10']:.2f} |",
              f"| reversibility ({A['reversibility_target']} and back), 1 cycle | {_f(A['reversibility_1'], '.2f')} |",
              f"| reversibility, 3 cycles | {_f(A['reversibility_3'], '.2f')} |",
              "", "## Goals", "", goals_markdown(report).rstrip(),
              "", "## Summary", "", "| figure | value |", "|---|---:|"]
    for k, v in s.items():
        lines.append(f"| {k} | {v:.4f} |")
    return "\n".join(l for l in lines if l is not None) + "\n"


def _ratio(a, b) -> float | None:
    return None if a is None or b is None else a / max(b, 1e-9)


def _figures(report: dict) -> dict[str, tuple[str, float | None]]:
    """Every figure a goal may name: ``{key: (its label in the goals table, its value or None
    when it was not measured)}``."""
    gen = report["generation"]
    cfs = report["counterfactuals"]
    obs = [v for r in cfs for c, v in r["variables"].items() if c not in r["do"]]
    pix_key = "pixel_mae_to_true_render" if "pixel_mae_to_true_render" in cfs[0] else None
    A, R = report["axioms"], report["reconstruction"]
    floors = [t["tv_model"] - t["tv_true_renders"] for g in gen for t in g["targets"].values() if t["tv_true_renders"] is not None]
    effs = [r["effectiveness"] for r in cfs]
    factors = [f["effectiveness"] for f in report.get("counterfactual_factors", {}).values()]
    stand_in = set(report.get("stand_in_renders", {}))  # no same-unit true render: not in the pixel MAE goal
    mae = _mean(r[pix_key] for r in cfs if not stand_in & set(r["do"])) if pix_key is not None else None
    noise = [r["pixel_mae_to_true_render_noise_abducted"] for r in cfs if r.get("pixel_mae_to_true_render_noise_abducted") is not None]
    reversible = isinstance(A.get("reversibility_1"), float) and A["reversibility_1"] == A["reversibility_1"]
    symmetric = R.get("iou_to_true_render")
    classifiers = [c["accuracy"] for c in report.get("classifiers", {}).values()]
    continuous = {}
    ccols = _continuous_columns(report)
    if ccols:  # a model with continuous image parents: each intervened variable's own score
        for c in ccols:
            continuous[f"counterfactual_intervened_mae_{c}"] = (f"counterfactual {c}: oracle-read mean absolute error to the intervened value", _intervened_mae(report, c))
        for c in cfs[0]["variables"]:
            continuous[f"counterfactual_intervened_accuracy_{c}"] = (f"counterfactual {c}: read as the intervened value, under do({c})", _intervened_accuracy(report, c))
    return {
        **continuous,
        "reconstruction_oracle_accuracy_worst": ("oracle accuracy on reconstructions, worst variable", min(R["oracle_accuracy"].values())),
        "reconstruction_pixel_mae": ("reconstruction pixel MAE (0-255)", R["pixel_mae"] if pix_key is not None else None),
        "reconstruction_iou": ("reconstruction IoU to the input, mean" + (" (symmetry-aware)" if symmetric is not None else ""), symmetric if symmetric is not None else R.get("iou")),
        "generation_readback_worst": ("generation read-back rate, worst query", min(g["readback"] for g in gen)),
        "generation_tv_above_floor_worst": ("generation TV above its noise floor, worst target", max(floors) if floors else None),
        "counterfactual_effectiveness_mean": ("counterfactual effectiveness, mean over interventions", _mean(effs)),
        "counterfactual_effectiveness_worst": ("counterfactual effectiveness, worst intervention", min(effs) if effs else None),
        "counterfactual_effectiveness_factor_mean": ("counterfactual effectiveness, mean over factors", _mean(factors)),
        "counterfactual_effectiveness_factor_worst": ("counterfactual effectiveness, worst factor", min(factors) if factors else None),
        # The labels the model drew come from the exact twin network, so their own pooled TV is
        # the sampling floor of this statistic at this many pictures (groups are small): the
        # goal is what the oracle's reading of the pictures adds to it.
        "counterfactual_label_tv_mean": ("counterfactual label TV (oracle-read, pooled) above the drawn labels' (its sampling floor), mean", _mean(v["tv_read"] - v["tv_used"] for v in obs)),
        "counterfactual_pixel_mae_ratio": ("counterfactual pixel MAE to the true render / reconstruction MAE", _ratio(mae, R["pixel_mae"])),
        "counterfactual_pixel_mae_noise_ratio": ("the same, with each picture's pixel noise abducted (--abduct-noise)", _ratio(_mean(noise), R["pixel_mae"]) if noise else None),
        "counterfactual_iou_mean": ("counterfactual IoU to the true render (symmetry-aware), mean", _mean(r.get("iou_to_true_render") for r in cfs)),
        "classifier_accuracy_worst": ("hidden factor: classifier accuracy on test pictures, worst", min(classifiers) if classifiers else None),
        "composition_ratio": ("composition after 10 cycles / after 1", A["composition_10"] / max(A["composition_1"], 1e-9)),
        "reversibility_ratio": ("reversibility after 3 cycles / after 1", A["reversibility_3"] / max(A["reversibility_1"], 1e-9) if reversible else None),
    }


#: The project's targets for a model of a world that names none of its own
#: (:attr:`causalvae.worlds.World.goals`): the image mechanism's (docs/training.md).
DEFAULT_GOALS: tuple[tuple[str, str, float], ...] = (
    ("reconstruction_oracle_accuracy_worst", ">=", 0.995),
    ("reconstruction_pixel_mae", "<=", 6.0),
    ("generation_readback_worst", ">=", 0.98),
    ("generation_tv_above_floor_worst", "<=", 0.02),
    ("counterfactual_effectiveness_mean", ">=", 0.98),
    ("counterfactual_effectiveness_worst", ">=", 0.95),
    ("counterfactual_label_tv_mean", "<=", 0.02),
    ("counterfactual_pixel_mae_ratio", "<=", 1.25),
    ("counterfactual_pixel_mae_noise_ratio", "<=", 1.25),
    ("composition_ratio", "<=", 1.5),
    ("reversibility_ratio", "<=", 1.5),
)

def goals(report: dict) -> list[dict]:
    """The named targets for a model, each with its measured value and whether it is met:
    the world's own (``report["targets"]``, from :attr:`causalvae.worlds.World.goals`) or
    :data:`DEFAULT_GOALS`. The targets are fixed; only the measurements change. A target
    whose score was left out of the report (see ``report["left_out"]``) is not listed."""
    figures = _figures(report)
    truth = _true_render_figures(report)
    rows = []
    for key, op, target in report.get("targets") or DEFAULT_GOALS:
        if key not in figures or op not in ("<=", ">="):
            raise CausalVAEError(f"goal {key} {op} {target}: goals name one of the figures {', '.join(figures)} and compare with <= or >=")
        label, value = figures[key]
        if value is not None:
            rows.append({"goal": label, "value": float(value), "op": op, "target": target, "met": bool(value <= target if op == "<=" else value >= target),
                         **({"true_renders": float(truth[key])} if key in truth else {})})
    return rows


def goals_markdown(report: dict) -> str:
    rows = goals(report)
    if not any("true_renders" in g for g in rows):
        lines = ["| goal | measured | target | met |", "|---|---:|---:|---|"]
        for g in rows:
            lines.append(f"| {g['goal']} | {g['value']:.4g} | {g['op']} {g['target']:g} | {'yes' if g['met'] else '**no**'} |")
        return "\n".join(lines) + "\n"
    # The same figure read off the true counterfactual renders: a reference for the oracle's
    # own errors on real pictures (not a bound: a model's pictures may read better or worse).
    lines = ["| goal | measured | true renders, same oracle | target | met |", "|---|---:|---:|---:|---|"]
    for g in rows:
        t = f"{g['true_renders']:.4g}" if "true_renders" in g else "-"
        lines.append(f"| {g['goal']} | {g['value']:.4g} | {t} | {g['op']} {g['target']:g} | {'yes' if g['met'] else '**no**'} |")
    return "\n".join(lines) + "\n" + ("\nTrue renders, same oracle: the figure read off the true counterfactual pictures (a stand-in's where the report names one) "
                                       "by the oracle that reads the model's: how that oracle reads real pictures of the same counterfactuals. It is a reference, not a bound: "
                                       "a model's pictures can read better or worse than real ones, and a stand-in is another picture than the model's own.\n")


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
            floor.append(np.nan if t["tv_true_renders"] is None else t["tv_true_renders"])
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


def factors_markdown(report: dict) -> str:
    """The per-factor summary of the counterfactuals (worlds with factors, e.g. sprites), as
    markdown ("" without one)."""
    factors = report.get("counterfactual_factors")
    if not factors:
        return ""
    nearest = any(v.get("iou_to_nearest_render") is not None for v in factors.values())
    lines = ["Single-variable interventions on each factor, mean over its values: effectiveness (every label read as used), the share of pictures showing the factor's new value, the IoU to the true render"
             + (" and to the nearest render (style free)." if nearest else "."), "",
             "| factor | interventions | effectiveness | new value read | IoU to true render |" + (" IoU to nearest render |" if nearest else ""),
             "|---|---:|---:|---:|---:|" + ("---:|" if nearest else "")]
    for f, v in factors.items():
        near = f" {_f(v.get('iou_to_nearest_render'), '.3f')} |" if nearest else ""
        lines.append(f"| {f} | {v['interventions']} | {100 * v['effectiveness']:.1f}% | {_f(v['effectiveness_own'], '.1f', 100, '%')} | {_f(v['iou_to_true_render'], '.3f')} |{near}")
    return "\n".join(lines) + "\n"


def write_report(report: dict, out: str | Path, *, force: bool = False) -> Path:
    """``report.json``, ``report.md``, ``goals.md`` (and ``factors.md`` for a world with factors)
    and ``generation_tv.png`` in ``out`` (atomically): a new
    or empty directory, or (with ``force``) an earlier report; never another artefact."""
    import io as _io

    from causalvae.io import atomic_write_bytes, atomic_write_text, check_output_dir

    out = check_output_dir(out, "report", force=force)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, default=float) + "\n")
    atomic_write_text(out / "report.md", markdown(report))
    atomic_write_text(out / "goals.md", goals_markdown(report))
    if report.get("counterfactual_factors"):
        atomic_write_text(out / "factors.md", factors_markdown(report))
    else:  # an earlier report's table must not pass for this one's
        (out / "factors.md").unlink(missing_ok=True)
    buf = _io.BytesIO()
    tv_figure(report).savefig(buf, format="png")
    atomic_write_bytes(out / "generation_tv.png", buf.getvalue())
    return out
