"""Regenerate the outputs shown in the README and docs, so no number is typed by hand.

Two kinds of marked blocks are filled in:

    <!-- run: causalvae query "P(action | reaction=Dying)" -->
    ...replaced by the command's real output...
    <!-- end -->

    <!-- run-fails: causalvae query "P(acton)" -->
    ...the same, for a command that must fail (its error message is shown)...
    <!-- end -->

    <!-- bench: bench/results/exact.json -->
    ...replaced by a table of that benchmark result file's figures...
    <!-- end -->

    <!-- include: docs/reports/scenes/report.md -->
    ...replaced by that file, written by a command (its headings shifted one level down)...
    <!-- end -->

    python docs/render.py            # rewrite the files in place
    python docs/render.py --check    # exit 1 if any block is stale (the tests run this)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from causalvae.io import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- (run|run-fails|bench|include): (.*?) -->\n)(.*?)(<!-- end -->)", re.S)


def run_block(command: str, should_fail: bool = False) -> str:
    argv = shlex.split(command)
    if argv[0] != "causalvae":
        raise SystemExit(f"only causalvae commands may run in docs, got: {command}")
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.run(
        [sys.executable, "-m", "causalvae.cli", *argv[1:]], capture_output=True, text=True, env=env, cwd=ROOT
    )
    if (proc.returncode != 0) != should_fail:
        raise SystemExit(f"docs command exited {proc.returncode}: {command}\n{proc.stderr}")
    lines = [line.rstrip() for line in (proc.stdout + proc.stderr).rstrip().splitlines()]
    return "```text\n$ " + command + "\n" + "\n".join(lines) + "\n```\n"


def bench_block(path: str) -> str:
    data = json.loads((ROOT / path).read_text())
    machine = data["machine"]
    rows = ["| figure | value | target | met |", "|---|---:|---|---|"]
    for f in data["figures"]:
        target = f.get("target")
        tgt = f"{target['op']} {target['value']:g} {f['unit']}" if target else ""
        met = {True: "yes", False: "**no**"}.get(f.get("met"), "")
        desc = f["description"].replace("|", "\\|")
        if f["value"] is None:  # not finite: e.g. a time to quality never reached
            value = "not reached" if f.get("reached") is False else "n/a"
        else:
            value = f"{f['value']:.4g} {f['unit']}"
        rows.append(f"| {desc} | {value} | {tgt} | {met} |")
    head = (
        f"Measured {data['date'][:10]} on {machine.get('cpu_count')} cores "
        f"({machine.get('processor') or machine.get('platform')}) by `{data['command']}`:\n\n"
    )
    return head + "\n".join(rows) + "\n"


def include_block(path: str) -> str:
    text = (ROOT / path).read_text()
    if not path.endswith(".md"):  # a command's saved output
        return "```text\n" + "\n".join(line.rstrip() for line in text.rstrip().splitlines()) + "\n```\n"
    return "\n".join("#" + line if line.startswith("#") else line for line in text.rstrip().splitlines()) + "\n"


def run_all(texts: list[str]) -> dict[tuple[str, bool], str]:
    """The output of every distinct run block in ``texts``, the commands run as many at once as
    there are cores (each is a fresh interpreter: most of its time is the import)."""
    blocks = [m for t in texts for m in BLOCK.finditer(t) if m.group(2) in ("run", "run-fails")]
    commands = sorted({(m.group(3), m.group(2) == "run-fails") for m in blocks})
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        outputs = pool.map(lambda c: run_block(*c), commands)
        return dict(zip(commands, outputs))


def render(text: str, outputs: dict[tuple[str, bool], str] | None = None) -> str:
    outputs = run_all([text]) if outputs is None else outputs

    def fill(m: re.Match) -> str:
        kind, arg = m.group(2), m.group(3)
        if kind == "include":
            body = include_block(arg)
        elif kind == "bench":
            body = bench_block(arg)
        else:
            body = outputs[(arg, kind == "run-fails")]
        return m.group(1) + body + m.group(5)

    return BLOCK.sub(fill, text)


NUMBER = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?")


def same(old: str, new: str) -> bool:
    """Equal texts, up to floating-point noise: numbers written to full precision (a query's
    --json output) may differ in their last digits from one CPU to another, and differences
    below 1e-9, absolute or relative, are not staleness."""
    if old == new:
        return True
    a, b = NUMBER.split(old), NUMBER.split(new)
    if a != b:
        return False
    return all(abs(float(x) - float(y)) <= 1e-9 * max(1.0, abs(float(x))) for x, y in zip(NUMBER.findall(old), NUMBER.findall(new)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report stale blocks instead of rewriting")
    args = parser.parse_args()
    stale = []
    texts = {path: path.read_text() for path in FILES}
    outputs = run_all(list(texts.values()))
    for path, old in texts.items():
        new = render(old, outputs)
        if not same(old, new):
            stale.append(path.relative_to(ROOT))
            if not args.check:
                atomic_write_text(path, new)
    if stale:
        verb = "stale" if args.check else "updated"
        print(f"{verb}: " + ", ".join(map(str, stale)))
    return 1 if (stale and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
