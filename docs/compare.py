"""Two evaluation reports of one world side by side, as a Markdown file for the docs.

    python docs/compare.py A/report.json B/report.json --names "labelled,shape hidden" --out FILE.md

Writes the goals of the world (each report's measured value), the reconstruction's oracle
accuracy per variable (mean absolute error per continuous one), each classifier's accuracy, and the counterfactuals per intervened
factor (effectiveness, the share showing the new value, IoU to the true render), and the
ELBO and the reconstructions' pixel error (or IoU). Every number
comes from the two files; a figure one report lacks is shown as "-".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from causalvae.io import atomic_write_text
from causalvae.report import goals


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def per_value(a: dict, b: dict, names: tuple[str, str], var: str) -> list[str]:
    """One row per value of ``var``: under do(var=value), the share of counterfactuals whose
    ``var`` the oracle reads as the value, in each report, beside the share of its true renders
    read so (the first report's; both reports' true renders are the same pictures when they
    score the same split of the same data)."""
    def rows(r: dict) -> dict:
        return {c["do"][var]: c["variables"][var] for c in r.get("counterfactuals", []) if list(c["do"]) == [var] and var in c.get("variables", {})}

    ra, rb = rows(a), rows(b)
    if not ra and not rb:
        raise SystemExit(f"--per-value {var}: neither report has a counterfactual do({var}=...)")
    out = ["", f"do({var}) per value: the share of counterfactuals whose {var} the oracle reads as the value set (and of the true renders, read by the same oracle):", "",
           f"| intervention | {names[0]} | {names[1]} | true renders |", "|---|---:|---:|---:|"]
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    for v in list(ra) + [k for k in rb if k not in ra]:
        x, y = ra.get(v, {}), rb.get(v, {})
        out.append(f"| do({var}={v}) | {_pct(x.get('effectiveness'))} | {_pct(y.get('effectiveness'))} | {_pct((x or y).get('effectiveness_true_renders'))} |")
    out.append(f"| mean | {_pct(mean([x['effectiveness'] for x in ra.values()]))} | {_pct(mean([y['effectiveness'] for y in rb.values()]))} | "
               f"{_pct(mean([x['effectiveness_true_renders'] for x in (ra or rb).values() if x.get('effectiveness_true_renders') is not None]))} |")
    return out


def compare(a: dict, b: dict, names: tuple[str, str], split: str = "test", per: str | None = None) -> str:
    if a["world"] != b["world"]:
        raise SystemExit(f"the reports are of two worlds: {a['world']} and {b['world']}")
    head = f"| figure | {names[0]} | {names[1]} |\n|---|---:|---:|"
    lines = [f"Goals of the {a['world']} world (the target in brackets):", "", head]
    ga, gb = ({g["goal"]: g for g in goals(r)} for r in (a, b))
    for key in list(ga) + [k for k in gb if k not in ga]:
        g = ga.get(key) or gb[key]
        lines.append(f"| {key} ({g['op']} {g['target']:g}) | {_num(ga[key]['value']) if key in ga else '-'} | {_num(gb[key]['value']) if key in gb else '-'} |")
    ra, rb = a["reconstruction"], b["reconstruction"]
    lines += ["", f"The oracle's accuracy on reconstructions of the {split} pictures, and the classifiers' accuracy on the {split} pictures:", "", head]
    for c in ra["oracle_accuracy"]:
        lines.append(f"| {c}, read off the reconstruction | {_pct(ra['oracle_accuracy'].get(c))} | {_pct(rb['oracle_accuracy'].get(c))} |")
    for c in ra.get("oracle_mae", {}):
        lines.append(f"| {c}, read off the reconstruction: mean absolute error | {_num(ra['oracle_mae'].get(c))} | {_num(rb.get('oracle_mae', {}).get(c))} |")
    for c in sorted(set(a.get("classifiers", {})) | set(b.get("classifiers", {}))):
        acc = [r.get("classifiers", {}).get(c, {}).get("accuracy") for r in (a, b)]
        lines.append(f"| {c}: its classifier q({c} \\| x) | {_pct(acc[0])} | {_pct(acc[1])} |")
    fa, fb = a.get("counterfactual_factors", {}), b.get("counterfactual_factors", {})
    if fa or fb:
        lines += ["", "Counterfactuals per intervened factor, mean over its values: effectiveness (every label read as used) / the new value read / IoU to the true render:", "", head]
        for c in list(fa) + [k for k in fb if k not in fa]:
            cells = []
            for f in (fa.get(c), fb.get(c)):
                cells.append("-" if f is None else f"{_pct(f['effectiveness'])} / {_pct(f['effectiveness_own'])} / {_num(f.get('iou_to_true_render'))}")
            lines.append(f"| do({c}) | {cells[0]} | {cells[1]} |")
    la, lb = a.get("likelihood", {}), b.get("likelihood", {})
    if la.get("elbo") is not None or lb.get("elbo") is not None:
        lines += ["", f"The likelihood and the reconstructions of the {split} pictures:", "", head,
                  f"| ELBO, nats per picture | {_num(la.get('elbo'))} | {_num(lb.get('elbo'))} |"]
        if ra.get("iou") is not None or rb.get("iou") is not None:  # a binary world's pictures: their IoU
            lines.append(f"| reconstruction IoU to the input (plain, not symmetry-aware) | {_num(ra.get('iou'))} | {_num(rb.get('iou'))} |")
        else:
            lines.append(f"| reconstruction pixel MAE (0-255) | {_num(ra.get('pixel_mae'))} | {_num(rb.get('pixel_mae'))} |")
    if per:
        lines += per_value(a, b, names, per)
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
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--names", required=True, help="the two columns' names, comma-separated")
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-value", help="a discrete variable: one row per do(VAR=value), the oracle's reading of VAR beside the true renders'")
    ap.add_argument("--split", default="test", choices=("test", "validation"), help="the split both reports scored (named in the captions)")
    args = ap.parse_args(argv)
    names = tuple(n.strip() for n in args.names.split(","))
    if len(names) != 2:
        raise SystemExit(f"--names: give two names, comma-separated, got {args.names!r}")
    reports = [_load(args.a), _load(args.b)]
    try:
        text = compare(*reports, names, args.split, args.per_value)
    except (KeyError, TypeError, AttributeError) as e:
        raise SystemExit(f"the reports are not both evaluation reports (report.json of causalvae evaluate): missing {e}")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise SystemExit(f"--out {out}: the folder {out.parent} does not exist")
    atomic_write_text(out, text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
