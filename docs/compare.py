"""Two or more evaluation reports of one world side by side, as a Markdown file for the docs.

    python docs/compare.py A/report.json B/report.json --names "labelled,shape hidden" --out FILE.md

Writes the goals of the world (each report's measured value), the reconstruction's oracle
accuracy per variable (mean absolute error per continuous one), each classifier's accuracy, and the counterfactuals per intervened
factor (effectiveness, the share showing the new value, IoU to the true render), and the
ELBO and the reconstructions' pixel error (or IoU). Every number
comes from the files; a figure one report lacks is shown as "-".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from causalvae.errors import CausalVAEError
from causalvae.io import atomic_write_text
from causalvae.report import goals


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def _value_rows(r: dict, var: str) -> dict:
    """A report's counterfactuals that set ``var`` alone: each value set, and ``var``'s figures."""
    return {c["do"][var]: c["variables"][var] for c in r.get("counterfactuals", []) if list(c["do"]) == [var] and var in c.get("variables", {})}


def per_value(reports: list[dict], names: tuple[str, ...], var: str) -> list[str]:
    """One row per value of ``var``: under do(var=value), the share of counterfactuals whose
    ``var`` the oracle reads as the value, in each report, beside the share of its true renders
    read so (the first report's that has them; the reports' true renders are the same pictures
    when they score the same split of the same data)."""
    each = [_value_rows(r, var) for r in reports]
    if not any(each):
        raise SystemExit(f"--per-value {var}: no report has a counterfactual do({var}=...)")
    out = ["", f"do({var}) per value: the share of counterfactuals whose {var} the oracle reads as the value set (and of the true renders, read by the same oracle):", "",
           "| intervention | " + " | ".join(names) + " | true renders |", "|---|" + "---:|" * (len(names) + 1)]
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    values = list(dict.fromkeys(v for r in each for v in r))
    first = next(r for r in each if r)
    for v in values:
        cells = [r.get(v, {}) for r in each]
        truth = next((c.get("effectiveness_true_renders") for c in cells if c), None)
        out.append(f"| do({var}={v}) | " + " | ".join(_pct(c.get("effectiveness")) for c in cells) + f" | {_pct(truth)} |")
    out.append("| mean | " + " | ".join(_pct(mean([x["effectiveness"] for x in r.values()])) for r in each) + " | "
               f"{_pct(mean([x['effectiveness_true_renders'] for x in first.values() if x.get('effectiveness_true_renders') is not None]))} |")
    return out


def compare(*args, split: str = "test", per: str | None = None) -> str:
    """``compare(report, report, ..., names)``: two or more reports of one world, and one name
    per report (the columns)."""
    *reports, names = args
    if len(names) != len(reports) or len(reports) < 2:
        raise SystemExit(f"give two or more reports and one name per report (got {len(reports)} reports, {len(names)} names)")
    worlds_ = list(dict.fromkeys(r["world"] for r in reports))
    if len(worlds_) > 1:
        raise SystemExit(f"the reports are of {'two' if len(worlds_) == 2 else len(worlds_)} worlds: {' and '.join(worlds_)}")
    a = reports[0]
    head = "| figure | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names)
    row = lambda label, cells: f"| {label} | " + " | ".join(cells) + " |"  # noqa: E731
    lines = [f"Goals of the {a['world']} world (the target in brackets):", "", head]
    gs = [{g["goal"]: g for g in goals(r)} for r in reports]
    for key in dict.fromkeys(k for g in gs for k in g):
        g = next(x[key] for x in gs if key in x)
        lines.append(row(f"{key} ({g['op']} {g['target']:g})", [_num(x[key]["value"]) if key in x else "-" for x in gs]))
    rs = [r["reconstruction"] for r in reports]
    lines += ["", f"The oracle's accuracy on reconstructions of the {split} pictures, and the classifiers' accuracy on the {split} pictures:", "", head]
    for c in rs[0]["oracle_accuracy"]:
        lines.append(row(f"{c}, read off the reconstruction", [_pct(r["oracle_accuracy"].get(c)) for r in rs]))
    for c in rs[0].get("oracle_mae", {}):
        lines.append(row(f"{c}, read off the reconstruction: mean absolute error", [_num(r.get("oracle_mae", {}).get(c)) for r in rs]))
    for c in sorted(set().union(*(r.get("classifiers", {}) for r in reports))):
        lines.append(row(f"{c}: its classifier q({c} \\| x)", [_pct(r.get("classifiers", {}).get(c, {}).get("accuracy")) for r in reports]))
    fs = [r.get("counterfactual_factors", {}) for r in reports]
    if any(fs):
        lines += ["", "Counterfactuals per intervened factor, mean over its values: effectiveness (every label read as used) / the new value read / IoU to the true render:", "", head]
        for c in dict.fromkeys(k for f in fs for k in f):
            lines.append(row(f"do({c})", ["-" if f.get(c) is None else f"{_pct(f[c]['effectiveness'])} / {_pct(f[c]['effectiveness_own'])} / {_num(f[c].get('iou_to_true_render'))}" for f in fs]))
    ls = [r.get("likelihood", {}) for r in reports]
    if any(x.get("elbo") is not None for x in ls):
        lines += ["", f"The likelihood and the reconstructions of the {split} pictures:", "", head, row("ELBO, nats per picture", [_num(x.get("elbo")) for x in ls])]
        if any(r.get("iou") is not None for r in rs):  # a binary world's pictures: their IoU
            lines.append(row("reconstruction IoU to the input (plain, not symmetry-aware)", [_num(r.get("iou")) for r in rs]))
        else:
            lines.append(row("reconstruction pixel MAE (0-255)", [_num(r.get("pixel_mae")) for r in rs]))
    if per:
        lines += per_value(reports, names, per)
    return "\n".join(lines) + "\n"


def _load(path: str) -> dict:
    try:
        report = json.loads(Path(path).read_text())
    except OSError as e:
        raise SystemExit(f"{path}: cannot read it ({e.strerror})")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SystemExit(f"{path}: not a JSON report (truncated or corrupt?): {e}")
    if not isinstance(report, dict) or "world" not in report:
        raise SystemExit(f"{path}: not an evaluation report (no 'world'): write it with causalvae evaluate")
    if not isinstance(report["world"], str):
        raise SystemExit(f"{path}: not an evaluation report ('world' is not a name): write it with causalvae evaluate")
    return report


def _check_shape(path: str, report: dict, split: str, per: str | None) -> None:
    """Compare ``report`` with itself (and read its rows of ``per``): a report whose fields are
    missing or of another shape than causalvae evaluate writes is one error naming its file."""
    try:
        compare(report, report, ("a", "b"), split=split)
        if per and _value_rows(report, per):
            per_value([report], ("a",), per)
    except KeyError as e:
        raise SystemExit(f"{path}: not an evaluation report as causalvae evaluate writes it (no {e.args[0]!r} where the comparison reads one)") from None
    except (TypeError, AttributeError, ValueError, IndexError, CausalVAEError):
        raise SystemExit(f"{path}: not an evaluation report as causalvae evaluate writes it (a field of another type or shape)") from None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", nargs="+", help="two or more report.json files of one world")
    ap.add_argument("--names", required=True, help="the columns' names, one per report, comma-separated")
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-value", help="a discrete variable: one row per do(VAR=value), the oracle's reading of VAR beside the true renders'")
    ap.add_argument("--split", default="test", choices=("test", "validation"), help="the split both reports scored (named in the captions)")
    ap.add_argument("--same-judge", action="store_true", help="refuse reports not scored by one oracle instance (the weights' hash each records)")
    args = ap.parse_args(argv)
    names = tuple(n.strip() for n in args.names.split(","))
    if len(args.reports) < 2:
        raise SystemExit("give two or more reports")
    if len(names) != len(args.reports):
        raise SystemExit(f"--names: give {len(args.reports)} names, one per report, comma-separated, got {args.names!r}")
    out = Path(args.out)
    if out.is_dir():
        raise SystemExit(f"--out {out}: is a directory; name the Markdown file to write")
    if not out.parent.is_dir():
        raise SystemExit(f"--out {out}: the folder {out.parent} does not exist")
    reports = [_load(p) for p in args.reports]
    for path, report in zip(args.reports, reports):
        _check_shape(path, report, args.split, args.per_value)
    if args.same_judge:
        judges = {path: (r.get("oracle") or {}).get("weights_sha256") if isinstance(r.get("oracle"), dict) else None for path, r in zip(args.reports, reports)}
        if None in judges.values() or len(set(judges.values())) > 1:
            raise SystemExit("--same-judge: the reports were not all scored by one oracle instance ("
                             + ", ".join(f"{p}: {str(h)[:8] if h else 'no hash recorded'}" for p, h in judges.items())
                             + "); score them again with one oracle")
    text = compare(*reports, names, split=args.split, per=args.per_value)
    try:
        atomic_write_text(out, text)
    except OSError as e:
        raise SystemExit(f"--out {out}: cannot be written ({e.strerror or e})") from None
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
