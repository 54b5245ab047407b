"""The image mechanism's ablation: each design choice alone and the chosen combination, trained
for the same number of steps on the same data, scored on the validation split.

Run from the repository root (``make ablation``)::

    .venv/bin/python bench/ablation.py --data data/scenes --oracle oracles/scenes \\
        --steps 750 --out bench/results/ablation.json

Every setting trains the scene world's causal VAE for ``--steps`` optimiser steps (batch 64,
Adam 1e-3 with the recipe's cosine schedule, seed ``--seed``), then :func:`causalvae.evaluate`
scores it with the oracle protocol of the evaluation report, on the **validation** split and
on fresh renders: never on the test split, which only the report of the chosen recipe sees.
Scores are smaller-sample versions of the report's (``--n-generate`` pictures per reference
query, ``--cf-images`` pictures per intervention).

Every setting gets the same step budget rather than the same seconds: the machine is shared,
so seconds measured here would rank settings by the load beside them. Each row records its
training seconds, and ``bench/bench_speed.py`` measures the cost per step of each network
quietly. A result is written after every setting, so an interrupted run keeps what it did;
``--only NAME`` reruns some settings and keeps the others' rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from causalvae.data import load as load_dataset
from causalvae.evaluate import EvalSettings, evaluate
from causalvae.io import atomic_write_text
from causalvae.oracle import load_oracle
from causalvae.store import load as load_model
from causalvae.train import TrainConfig, fit

#: The starting point every setting changes: the mechanism before this ablation (the
#: training defaults are now the chosen combination, so they are not the baseline).
BASE = {"decoder": "concat", "max_log_scale": None, "z_dim": 16, "beta": 1.0, "cf_weight": 0.0}

#: name -> (what it changes, TrainConfig fields, evaluation options). A setting with only
#: evaluation options scores the model of the setting named by its ``"model"`` option.
SETTINGS: dict[str, tuple[str, dict, dict]] = {
    "before": ("the previous default: parents joined to z once, learned scale", {"decoder": "concat"}, {}),
    "capped": ("log-scale capped at -3", {"decoder": "concat", "max_log_scale": -3.0}, {}),
    "film": ("parents by FiLM at every decoder resolution", {"decoder": "film"}, {}),
    "film+cap": ("FiLM and the cap", {"decoder": "film", "max_log_scale": -3.0}, {}),
    "film+cap+z8": ("FiLM, the cap, z of 8 dimensions", {"decoder": "film", "max_log_scale": -3.0, "z_dim": 8}, {}),
    "film+cap+z8+beta2": ("... and beta = 2", {"decoder": "film", "max_log_scale": -3.0, "z_dim": 8, "beta": 2.0}, {}),
    "film+cap+z8+beta4": ("... and beta = 4", {"decoder": "film", "max_log_scale": -3.0, "z_dim": 8, "beta": 4.0}, {}),
    "film+cap+z8+beta2+cf": (
        "FiLM, the cap, z8, beta 2 and the counterfactual training term (weight 1000)",
        {"decoder": "film", "max_log_scale": -3.0, "z_dim": 8, "beta": 2.0, "cf_weight": 1000.0},
        {},
    ),
    "film+cap+res": ("FiLM, the cap, residual blocks", {"decoder": "film", "max_log_scale": -3.0, "residual": True}, {}),
}


def summarise(report: dict) -> dict:
    """The ablation's columns from an evaluation report."""
    cf = report["counterfactuals"]
    gens = report["generation"]
    rec = report["reconstruction"]
    eff = [r["effectiveness"] for r in cf]
    mae = [r["pixel_mae_to_true_render"] for r in cf if "pixel_mae_to_true_render" in r]
    return {
        "oracle_accuracy_recon_worst": min(rec["oracle_accuracy"].values()),
        "recon_mae": rec["pixel_mae"],
        "readback_worst": min(g["readback"] for g in gens),
        "readback_mean": float(np.mean([g["readback"] for g in gens])),
        "tv_above_floor_worst": max(t["tv_model"] - t["tv_true_renders"] for g in gens for t in g["targets"].values()),
        "effectiveness_mean": float(np.mean(eff)),
        "effectiveness_worst": float(np.min(eff)),
        "cf_mae_ratio": float(np.mean(mae)) / rec["pixel_mae"] if mae else None,
        "composition_10_over_1": report["axioms"]["composition_10"] / max(report["axioms"]["composition_1"], 1e-9),
        "elbo": report["likelihood"]["elbo"],
        "bits_per_dim": report["likelihood"]["elbo_bits_per_dim"],
    }


COLUMNS = [
    ("oracle_accuracy_recon_worst", "oracle acc. on recon, worst", "{:.1%}"),
    ("recon_mae", "recon MAE", "{:.2f}"),
    ("readback_worst", "read-back, worst query", "{:.1%}"),
    ("tv_above_floor_worst", "gen. TV above floor, worst", "{:.3f}"),
    ("effectiveness_mean", "CF effectiveness, mean", "{:.1%}"),
    ("effectiveness_worst", "CF effectiveness, worst", "{:.1%}"),
    ("cf_mae_ratio", "CF MAE to truth / recon MAE", "{:.2f}"),
    ("composition_10_over_1", "composition 10 / 1", "{:.2f}"),
    ("elbo", "val ELBO (nats)", "{:,.0f}"),
    ("bits_per_dim", "bits/dim", "{:.2f}"),
    ("train_s", "training s", "{:.0f}"),
]


def markdown(doc: dict) -> str:
    """The ablation table (one row per setting and seed), in the order of :data:`SETTINGS`."""
    order = {name: i for i, name in enumerate(SETTINGS)}
    rows = sorted(doc["rows"], key=lambda r: (order.get(r["setting"], 99), r["seed"]))
    head = "| setting | seed | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(COLUMNS)]
    for r in rows:
        cells = [("n/a" if r.get(k) is None else fmt.format(r[k])) for k, _, fmt in COLUMNS]
        lines.append(f"| `{r['setting']}` | {r['seed']} | " + " | ".join(cells) + " |")
    steps = sorted({r["steps"] for r in rows})
    lines += ["", f"Each setting trained {', '.join(map(str, steps))} steps (batch 64) on the scene world's training split; scored on "
              f"the validation split with {doc['n_generate']} generated pictures per reference query and {doc['cf_images']} "
              "pictures per intervention. Settings:", ""]
    lines += [f"- `{name}`: {SETTINGS[name][0]}" for name in SETTINGS if any(r["setting"] == name for r in rows)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="data/scenes")
    ap.add_argument("--oracle", default="oracles/scenes")
    ap.add_argument("--runs", default="runs/ablation", help="where the trained settings are kept")
    ap.add_argument("--steps", type=int, default=750)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-generate", type=int, default=1000)
    ap.add_argument("--cf-images", type=int, default=200)
    ap.add_argument("--train-only", action="store_true", help="train the settings, score none (the oracle may not exist yet)")
    ap.add_argument("--only", action="append", default=[], help="run only these settings (repeatable)")
    ap.add_argument("--out", default="bench/results/ablation.json")
    args = ap.parse_args(argv)

    out = Path(args.out)
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    names = args.only or list(SETTINGS)
    for name in names:
        if name not in SETTINGS:
            ap.error(f"unknown setting {name!r}; valid: {', '.join(SETTINGS)}")
    oracle = None if args.train_only else load_oracle(args.oracle)
    val = load_dataset(args.data, split="val", truth=True)
    for name in names:
        what, fields, opts = SETTINGS[name]
        if "model" in opts:  # scored again with other evaluation options, not retrained
            run = Path(args.runs) / f"{opts['model']}-s{args.seed}"
            fields = SETTINGS[opts["model"]][1]
            done = next((r for r in rows if (r["setting"], r["seed"]) == (opts["model"], args.seed)), None)
            if done is None or not (run / "config.json").exists():
                print(f"[ablation] {name}: run '{opts['model']}' first", file=sys.stderr)
                return 2
            train_s = done["train_s"]
        else:
            run = Path(args.runs) / f"{name}-s{args.seed}"
            cfg = TrainConfig(data=args.data, out=str(run), max_steps=args.steps, seed=args.seed, val_per_epoch=1, val_limit=500, **{**BASE, **fields})
            print(f"[ablation] {name} (seed {args.seed}): training {args.steps} steps", flush=True)
            fit(cfg, progress=sys.stderr.isatty())  # a finished run of the same settings is kept
            train_s = json.loads((run / "config.json").read_text())["training"]["wall_s"]
            if args.train_only:
                continue
        vae = load_model(run)
        print(f"[ablation] {name}: trained in {train_s:.0f} s of training; scoring on the validation split", flush=True)
        settings = EvalSettings(n_generate=args.n_generate, iw_images=0, cf_images=args.cf_images, seed=args.seed, abduct_noise=bool(opts.get("abduct_noise")))
        report = evaluate(vae, oracle, val, settings, progress=lambda msg: None)
        row = {"setting": name, "what": what, "fields": fields, "abduct_noise": settings.abduct_noise, "seed": args.seed, "steps": args.steps, "train_s": round(train_s, 1), **summarise(report)}
        print("[ablation] " + json.dumps(row), flush=True)
        rows = [r for r in rows if (r["setting"], r["seed"]) != (name, args.seed)] + [row]
        doc = {"schema": "causalvae-ablation/1", "data": args.data, "split": "val", "n_generate": args.n_generate, "cf_images": args.cf_images, "rows": rows}
        atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
        atomic_write_text(out.with_suffix(".md"), markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
