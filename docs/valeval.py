"""The evaluation report of a run on its VALIDATION split (never the test split): where the
trials of docs/morpho.md and docs/sprites.md are compared and settings are chosen. The same
evaluation as ``causalvae evaluate`` with the settings the kept validation reports were made
with (3,000 generated pictures per query, 200 counterfactual and 200 axiom pictures, no
importance-weighted likelihood); written as JSON with the split and the oracle's weights hash,
paths relative to the repository.

    python docs/valeval.py runs/morpho-adv20 --oracle oracles/morpho --refine 30 \\
        --out docs/reports/morpho/validation/adversary20.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from causalvae.data import load
from causalvae.evaluate import EvalSettings, evaluate
from causalvae.io import atomic_write_text
from causalvae.oracle import load_oracle
from causalvae.run import Run

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--oracle", required=True)
    ap.add_argument("--refine", type=int, default=0, help="steps refining each abducted code (as the report's --refine)")
    ap.add_argument("--n-generate", type=int, default=3000)
    ap.add_argument("--cf-images", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    run = Run.open(a.run)
    oracle = load_oracle(a.oracle)
    val = load(run.dataset_path, split="val", verify=False)
    if val.manifest.get("truth_columns"):
        val = load(run.dataset_path, split="val", truth=True, verify=False)
    settings = EvalSettings(n_generate=a.n_generate, iw_images=0, cf_images=a.cf_images, axiom_images=a.cf_images, refine=a.refine)
    t0 = time.time()
    report = evaluate(run.model, oracle, val, settings, progress=lambda m: print(m, flush=True))
    report["split"] = "validation"
    report["wall_s"] = time.time() - t0
    report["oracle"] = {"path": a.oracle, "weights_sha256": oracle.weights_sha256}
    text = json.dumps(report, indent=1, default=float).replace(f"{ROOT}/", "")
    atomic_write_text(Path(a.out), text)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
