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
import sys
import time
from pathlib import Path
from typing import NoReturn

import torch

from causalvae.data import load
from causalvae.errors import CausalVAEError
from causalvae.evaluate import EvalSettings, evaluate
from causalvae.io import atomic_write_text
from causalvae.oracle import load_oracle
from causalvae.run import Run

ROOT = Path(__file__).resolve().parent.parent


class _Parser(argparse.ArgumentParser):
    """argparse whose errors (a bad number, an unknown option) are one line, exit status 2."""

    def error(self, message: str) -> NoReturn:
        _fail(message)


def _fail(message: str) -> NoReturn:
    print(f"valeval: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    ap = _Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--oracle", required=True)
    ap.add_argument("--refine", type=int, default=0, help="steps refining each abducted code, 0 to 500 (as the report's --refine)")
    ap.add_argument("--n-generate", type=int, default=3000)
    ap.add_argument("--cf-images", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    # Every argument is checked before the minutes of evaluation, each error naming its option.
    for option, value, low in (("--n-generate", a.n_generate, 1), ("--cf-images", a.cf_images, 1), ("--threads", a.threads, 1)):
        if value < low:
            _fail(f"{option} must be a whole number >= {low}, got {value}")
    if not 0 <= a.refine <= 500:  # as `causalvae evaluate --refine`
        _fail(f"--refine must be from 0 to 500, got {a.refine}")
    out = Path(a.out)
    if out.is_dir():
        _fail(f"--out {a.out}: is a directory; name the report's .json file")
    if not out.parent.is_dir():
        _fail(f"--out {a.out}: the folder {out.parent} does not exist")
    try:
        run = Run.open(a.run)
    except CausalVAEError as e:
        _fail(str(e))  # it names the run folder
    if run.dataset_path is None:
        _fail(f"{a.run}: the run names no dataset")
    try:
        oracle = load_oracle(a.oracle)
    except CausalVAEError as e:
        _fail(f"--oracle: {e}")
    torch.set_num_threads(a.threads)
    try:
        val = load(run.dataset_path, split="val", verify=False)
        if val.manifest.get("truth_columns"):
            val = load(run.dataset_path, split="val", truth=True, verify=False)
        settings = EvalSettings(n_generate=a.n_generate, iw_images=0, cf_images=a.cf_images, axiom_images=a.cf_images, refine=a.refine)
        t0 = time.time()
        report = evaluate(run.model, oracle, val, settings, progress=lambda m: print(m, flush=True))
    except (CausalVAEError, OSError) as e:  # a damaged model or dataset, an oracle of other labels: one line
        _fail(str(e))
    report["split"] = "validation"
    report["wall_s"] = time.time() - t0
    report["oracle"] = {"path": a.oracle, "weights_sha256": oracle.weights_sha256}
    text = json.dumps(report, indent=1, default=float).replace(f"{ROOT}/", "")
    try:
        atomic_write_text(out, text)
    except OSError as e:
        _fail(f"--out {a.out}: cannot be written ({e.strerror or e})")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
