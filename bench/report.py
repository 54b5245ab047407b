"""Gather one benchmark run's result files into the run's record and its Markdown table.

Run by ``make bench`` (and ``make bench-quick``) after the benchmarks::

    .venv/bin/python bench/report.py exact render grid train speed queries memory quality

reads ``bench/results/<name>.json`` (or ``--dir``) for each name given and writes

- ``bench/results/<date>-<host>.json``: schema ``causalvae-bench/1`` with ``benchmark``
  ``"suite"``, the machine and versions, every figure (names prefixed by their benchmark
  when they are not already), each part's command and date under ``parts``, and the
  ``command`` that made the whole run;
- ``bench/results/<date>-<host>.md``: the headline table (every figure with a target, and
  the throughputs beside them), then every figure;
- with ``--latest``: copies of both as ``bench/results/latest.json`` and ``latest.md``,
  which the README includes (``make docs``).

``--suffix quick`` names the files ``<date>-<host>-quick.*`` (the quick run never replaces
the latest full table). A part whose file is older than ``--since`` seconds is refused: the
record holds one run's numbers only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import socket
import sys
import time
from pathlib import Path

from _common import SCHEMA, _fmt_value, machine_info, versions

from causalvae.io import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"

#: Figures shown in the headline table besides those with a target (throughputs and times
#: that the targets compare).
HEADLINE = (
    "render.64.scenes_per_s", "grid.process_s", "grid.peak_rss_mb",
    "speed.peak.fp32.gflops", "speed.peak.bf16.gflops",
    "speed.train.ours.fp32.images_per_s", "speed.train.tutorial_conv.fp32.images_per_s", "speed.train.course_mlp.fp32.images_per_s",
    "speed.train.ours.bf16.images_per_s", "speed.train.tutorial_conv.bf16.images_per_s", "speed.train.course_mlp.bf16.images_per_s",
    "speed.train.ours.fp32.mfu", "speed.train.tutorial_conv.fp32.mfu", "speed.train.course_mlp.fp32.mfu",
    "quality.ours.seconds", "quality.tutorial_conv.seconds", "quality.course_mlp.seconds",
    "quality.ours.final_readback", "quality.tutorial_conv.final_readback", "quality.course_mlp.final_readback",
    "queries.sample.single_ms", "memory.train.seconds",
)


def _name(benchmark: str, figure: str) -> str:
    return figure if figure.split(".")[0] == benchmark else f"{benchmark}.{figure}"


def gather(names: list[str], since: float | None, folder: Path = RESULTS) -> tuple[list[dict], list[dict]]:
    figures, parts = [], []
    for name in names:
        path = folder / f"{name}.json"
        if not path.exists():
            raise SystemExit(f"{path} is missing: run bench/bench_{name}.py first")
        if since is not None and time.time() - path.stat().st_mtime > since:
            raise SystemExit(f"{path} is older than {since:.0f} s: not from this run")
        data = json.loads(path.read_text())
        if data.get("schema") != SCHEMA:
            raise SystemExit(f"{path}: schema {data.get('schema')!r}, expected {SCHEMA!r}")
        parts.append({"benchmark": data["benchmark"], "command": data["command"], "date": data["date"], "notes": data.get("notes", []),
                      "loadavg_1m": data["machine"].get("loadavg_1m")})
        for f in data["figures"]:
            figures.append({**f, "name": _name(data["benchmark"], f["name"])})
    return figures, parts


def _value(f: dict) -> str:
    v = f["value"]
    if v is None:
        return "not reached" if f.get("reached") is False else "n/a"
    return f"{_fmt_value(v)} {f['unit']}"


def _row(f: dict) -> str:
    t = f.get("target")
    target = f"{t['op']} {_fmt_value(t['value'])} {f['unit']}" if t else ""
    met = {True: "yes", False: "**no**"}.get(f.get("met"), "")
    desc = f["description"].replace("|", "\\|")
    return f"| `{f['name']}` | {desc} | {_value(f)} | {target} | {met} |"


def markdown(record: dict, full: bool) -> str:
    m = record["machine"]
    v = record["versions"]
    head = (
        f"Measured {record['date'][:16].replace('T', ' ')} UTC on `{record['host']}`: {m['processor']}, "
        f"{m['cpu_usable']} of {m['cpu_count']} cores usable, {m['python']}, torch {v.get('torch', '?')}; "
        f"command `{record['command']}` ({record['wall_s'] / 60:.1f} min).\n\n"
    )
    rows = ["| figure | what | value | target | met |", "|---|---|---:|---|---|"]
    figs = record["figures"]
    headline = [f for f in figs if f.get("target") or f["name"] in HEADLINE]
    text = head + "\n".join(rows + [_row(f) for f in headline]) + "\n"
    if full:
        text += "\n### Every figure\n\n" + "\n".join(rows + [_row(f) for f in figs]) + "\n"
        notes = [f"- **{p['benchmark']}** (`{p['command']}`, load {p['loadavg_1m']}): " + " ".join(p["notes"]) for p in record["parts"]]
        text += "\n### Notes\n\n" + "\n".join(notes) + "\n"
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="+", help="benchmark names: results/<name>.json")
    ap.add_argument("--dir", default=str(RESULTS), help="where the parts' files are (default bench/results)")
    ap.add_argument("--suffix", default="")
    ap.add_argument("--latest", action="store_true", help="also write results/latest.json and latest.md")
    ap.add_argument("--since", type=float, default=None, help="refuse part files older than this many seconds")
    ap.add_argument("--command", default="make bench", help="the command that made the whole run")
    ap.add_argument("--wall", type=float, default=None, help="wall seconds of the whole run")
    args = ap.parse_args(argv)
    figures, parts = gather(args.parts, args.since, Path(args.dir))
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "host"
    now = dt.datetime.now(dt.timezone.utc)
    record = {
        "schema": SCHEMA,
        "benchmark": "suite",
        "date": now.isoformat(timespec="seconds"),
        "host": host,
        "command": args.command,
        "wall_s": args.wall if args.wall is not None else 0.0,
        "machine": machine_info(),
        "versions": versions(),
        "figures": figures,
        "notes": [f"parts: {', '.join(args.parts)}"],
        "parts": parts,
    }
    stem = f"{now:%Y-%m-%d}-{host}" + (f"-{args.suffix}" if args.suffix else "")
    body = json.dumps(record, indent=2, allow_nan=False) + "\n"
    atomic_write_text(RESULTS / f"{stem}.json", body)
    atomic_write_text(RESULTS / f"{stem}.md", markdown(record, full=True))
    if args.latest:
        atomic_write_text(RESULTS / "latest.json", body)
        atomic_write_text(RESULTS / "latest.md", markdown(record, full=False) + f"\nEvery figure and the notes of this run: `bench/results/{stem}.md`.\n")
    met = [f for f in figures if f.get("target")]
    print(f"wrote bench/results/{stem}.json and .md: {len(figures)} figures, {sum(bool(f['met']) for f in met)} of {len(met)} targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
