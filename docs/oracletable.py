"""The held-out table of a trained oracle, read from its config.json (what `causalvae oracle
train` measured and recorded): its accuracy and errors on the held-out renders, and which
oracle it is (its training and the first hex digits of its weights' SHA-256), so that a report
names its judge even when the oracle was trained in an earlier run of the recipe.

    python docs/oracletable.py oracles/morpho --held-out "test sources" --out docs/reports/morpho/oracle.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from causalvae.errors import CausalVAEError
from causalvae.io import atomic_write_text
from causalvae.store import read_json


def table(oracle: Path, held_out: str) -> str:
    """The markdown table of the oracle in folder ``oracle``."""
    config = read_json(oracle / "config.json")
    try:
        acc, training, sha = config["held_out_accuracy"], config["training"], config["weights_sha256"]
        rows = [(f"{name} accuracy", f"{100 * acc[name]:.2f}%") for name in config["config"]["columns"]]
        rows += [(f"{name} MAE" + (" (px)" if name == "thickness" else " (0-255)" if name == "intensity" else ""),
                  f"{acc[name]:.3f}" if name == "thickness" else f"{acc[name]:.2f}") for name in config["config"].get("continuous", [])]
        rows += [("training: steps, pictures moved up to (px)", f"{training['steps']:,}, {training.get('shift', 0)}"),
                 ("weights (SHA-256, first 8 hex)", f"`{sha[:8]}`")]
    except (KeyError, TypeError) as e:
        raise CausalVAEError(f"{oracle / 'config.json'}: not an oracle's config (missing or wrong {e})") from None
    return "\n".join([f"| oracle, held out ({held_out}) | value |", "|---|---:|", *(f"| {a} | {b} |" for a, b in rows)]) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("oracle", type=Path, help="the oracle's folder")
    p.add_argument("--held-out", required=True, help="what the held-out renders are, for the table's heading")
    p.add_argument("--out", type=Path, required=True, help="the markdown file to write")
    args = p.parse_args()
    try:
        atomic_write_text(args.out, table(args.oracle, args.held_out))
    except CausalVAEError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
