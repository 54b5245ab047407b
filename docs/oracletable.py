"""The held-out table of a trained oracle, read from its config.json (what `causalvae oracle
train` measured and recorded): its accuracy and errors on the held-out renders, and which
oracle it is (its training and the first hex digits of its weights' SHA-256), so that a report
names its judge even when the oracle was trained in an earlier run of the recipe.

    python docs/oracletable.py oracles/morpho --held-out "test sources" --out docs/reports/morpho/oracle.md
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from causalvae.errors import CausalVAEError
from causalvae.io import atomic_write_text
from causalvae.store import read_json


def _field(config: dict, path: str, ok, kind: str):
    """``config``'s field at dotted ``path``, which must pass ``ok``: else one error naming it."""
    v: object = config
    for key in path.split("."):
        if not isinstance(v, dict) or key not in v:
            raise CausalVAEError(f"no '{path}'")
        v = v[key]
    if not ok(v):
        raise CausalVAEError(f"'{path}' must be {kind}, got {v!r}")
    return v


def _names(v) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _figure(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def table(oracle: Path, held_out: str) -> str:
    """The markdown table of the oracle in folder ``oracle``."""
    path = oracle / "config.json"
    config = read_json(path)
    try:
        columns = _field(config, "config.columns", _names, "a list of names")
        continuous = _field(config, "config.continuous", _names, "a list of names") if "continuous" in config.get("config", {}) else []
        figure = {n: _field(config, f"held_out_accuracy.{n}", _figure, "a finite number >= 0") for n in columns + continuous}
        steps = _field(config, "training.steps", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a whole number")
        shift = config["training"].get("shift", 0)
        if not (isinstance(shift, int) and not isinstance(shift, bool) and shift >= 0):
            raise CausalVAEError(f"'training.shift' must be a whole number, got {shift!r}")
        sha = _field(config, "weights_sha256", lambda v: isinstance(v, str) and len(v) >= 8 and all(c in "0123456789abcdef" for c in v), "a hex digest")
    except CausalVAEError as e:
        raise CausalVAEError(f"{path}: not an oracle's config ({e})") from None
    rows = [(f"{name} accuracy", f"{100 * figure[name]:.2f}%") for name in columns]
    unit = {"thickness": " (px)", "intensity": " (0-255)"}
    rows += [(f"{name} MAE{unit.get(name, '')}", f"{figure[name]:.3f}" if name == "thickness" else f"{figure[name]:.2f}") for name in continuous]
    rows += [("training: steps, pictures moved up to (px)", f"{steps:,}, {shift}"), ("weights (SHA-256, first 8 hex)", f"`{sha[:8]}`")]
    return "\n".join([f"| oracle, held out ({held_out}) | value |", "|---|---:|", *(f"| {a} | {b} |" for a, b in rows)]) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("oracle", type=Path, help="the oracle's folder")
    p.add_argument("--held-out", required=True, help="what the held-out renders are, for the table's heading")
    p.add_argument("--out", type=Path, required=True, help="the markdown file to write")
    args = p.parse_args()
    if args.out.is_dir():
        sys.exit(f"error: --out {args.out}: is a directory; name the Markdown file to write")
    if not args.out.parent.is_dir():
        sys.exit(f"error: --out {args.out}: the folder {args.out.parent} does not exist")
    try:
        text = table(args.oracle, args.held_out)
    except CausalVAEError as e:
        sys.exit(f"error: {e}")
    try:
        atomic_write_text(args.out, text)
    except OSError as e:
        sys.exit(f"error: --out {args.out}: cannot be written ({e.strerror or e})")


if __name__ == "__main__":
    main()
