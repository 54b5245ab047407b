"""Where a morpho model's do(digit) counterfactuals fail: for each asked digit, do(digit) on the
first 200 test pictures of other classes, read by an oracle, with the stand-in true renders
read beside them (docs/deepscm.py's digit_misses); writes one sheet of misses per digit to
docs/img/ and a table to a markdown file that docs/morpho.md includes (its links are relative
to docs/, where it is included).

    python docs/misses.py --run runs/morpho-full --oracle oracles/morpho-full --digits 1,2,7 \\
        --refine 30 --prefix morpho_full_misses --out docs/reports/morpho-full/misses.md
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from causalvae.errors import CausalVAEError
from causalvae.io import atomic_write_text
from causalvae.oracle import load_oracle
from causalvae.run import Run
from causalvae.worlds import get

HERE = Path(__file__).resolve().parent


def _deepscm():
    spec = importlib.util.spec_from_file_location("deepscm", HERE / "deepscm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def misses(run_path: str, oracle_path: str, asked: list[int], prefix: str, out: Path, img: Path, refine: int = 0, seed: int = 0) -> str:
    deepscm = _deepscm()
    run = Run.open(run_path)
    if not run.world.name.startswith("morpho"):
        raise CausalVAEError(f"{run_path}: a model of the {run.world.name} world; do(digit) needs a morpho model")
    world = get(run.world.name)
    test = run.dataset("test", truth=True)
    vae, oracle = run.model, load_oracle(oracle_path)
    rows = ["| do | test pictures asked | model's counterfactuals misread | stand-ins misread | read instead (how often) | sheet |", "|---|---:|---:|---:|---|---|"]
    for to in asked:
        name = f"{prefix}_{to}.png"
        f = deepscm.digit_misses(vae, oracle, test, seed, img, refine, to=to, world=world, name=name)
        sheet = f"[{name}](img/{name})" if int(f["miss_model"]) else "-"
        rows.append(f"| do(digit={to}) | {f['miss_n']} | {f['miss_model']} | {f['miss_truth']} | {f['miss_instead']} | {sheet} |")
    text = "\n".join(rows) + "\n"
    atomic_write_text(out, text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--oracle", required=True)
    parser.add_argument("--digits", default="2", help="the digits asked, comma-separated")
    parser.add_argument("--refine", type=int, default=0)
    parser.add_argument("--prefix", default="morpho_misses", help="the sheets' file names in docs/img/: PREFIX_DIGIT.png")
    parser.add_argument("--out", required=True, help="the markdown table to write")
    args = parser.parse_args(argv)
    try:
        asked = [int(d) for d in args.digits.split(",")]
        if any(not 0 <= d <= 9 for d in asked):
            raise ValueError
    except ValueError:
        raise SystemExit(f"error: --digits must be digits 0-9, comma-separated, got {args.digits!r}") from None
    try:
        print(misses(args.run, args.oracle, asked, args.prefix, Path(args.out), HERE / "img", args.refine), end="")
    except CausalVAEError as exc:
        raise SystemExit(f"error: {exc}") from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
