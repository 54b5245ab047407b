"""Fuzz every hypothesis target of the suite with many examples (``make fuzz``).

The targets are the suite's own (tests/test_fuzz.py: ``TARGETS`` and ``viewer_targets``):
the query parser, the YAML and BIF readers, and the viewer's JSON bodies (its app in-process,
through FastAPI's TestClient, over a tiny model trained into a temporary folder). Each target
runs with ``--examples`` examples (default 10^5; the tests run about 60) from a fixed
``--seed``; this script counts the examples its check actually ran, and times it.

It writes ``bench/results/fuzz.json`` (schema ``causalvae-bench/1``; per target the examples
asked for and run, the failures found (target 0), the seconds and the rate, with the
hypothesis settings) and ``fuzz.md`` beside it. A failure is recorded with hypothesis's
shrunk example, and the run goes on to the next target; the exit status is 1 when any
target failed.

    python bench/fuzz.py                                  # all targets, 10^5 examples each
    python bench/fuzz.py --jobs 2                         # the same, two targets at a time
    python bench/fuzz.py --examples 2000 --only yaml      # a quick look at one target

With ``--jobs N`` the targets run in N worker processes (one torch thread each), the slowest
first (the viewer's); each target's counts and CPU time are its own process's. A running
target prints a line every minute.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
import traceback
from pathlib import Path

from _common import Figure, print_table, write_results

from causalvae.io import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent


def suite_targets(tmp: Path) -> dict:
    """The suite's fuzz targets, ``{name: (strategy, check)}``, as functions that make them:
    the viewer's train a tiny run and start its app on first use."""
    spec = importlib.util.spec_from_file_location("test_fuzz", ROOT / "tests" / "test_fuzz.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    targets = {name: (lambda t=t: t) for name, t in module.TARGETS.items()}
    clients = []

    def viewer_target(name):
        if not clients:
            from fastapi.testclient import TestClient

            from bench_viewer_load import tiny_run
            from causalvae.viewer import create_app

            clients.append(TestClient(create_app(tiny_run(tmp), warm=False), raise_server_exceptions=False))
        return module.viewer_targets(clients[0])[name]

    for path in module.VIEWER_PATHS:
        name = f"viewer.{path.rsplit('/', 1)[1]}"
        targets[name] = lambda name=name: viewer_target(name)
    return targets


class TimeUp(BaseException):
    """Raised by a check past ``--max-seconds``: hypothesis passes a BaseException through at
    once (it shrinks only Exceptions), so the run stops with its count so far."""


def fuzz(strategy, check, examples: int, seed: int, max_seconds: float | None = None, name: str = "", every: float = 60.0) -> dict:
    """Run ``check`` on ``examples`` examples of ``strategy`` (one hypothesis run, seeded):
    the count actually run, the wall and CPU seconds, and the failure (hypothesis's shrunk
    example) if one was found. Past ``max_seconds`` the run stops at its next example."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fixed_seed

    ran, start, cpu = 0, time.perf_counter(), time.process_time()
    said = start

    def counted(value):
        nonlocal ran, said
        now = time.perf_counter()
        if max_seconds is not None and now - start > max_seconds:
            raise TimeUp
        if now - said >= every:
            said = now
            print(f"  {name}: {ran:,} of {examples:,} examples, {now - start:,.0f} s", flush=True)
        ran += 1
        check(value)

    options = dict(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                   phases=[Phase.generate, Phase.shrink])
    failure, stopped = None, False
    try:
        fixed_seed(seed)(settings(**options)(given(strategy)(counted)))()
    except TimeUp:
        stopped = True
    except Exception as exc:  # the check's failure, shrunk by hypothesis: recorded, not raised
        failure = "".join(traceback.format_exception_only(type(exc), exc)).strip()[-2000:]
    return {"ran": ran, "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
            "stopped_at_max_seconds": stopped, "failure": failure}


def run_target(name: str, examples: int, seed: int, max_seconds: float | None, threads: int | None = None) -> dict:
    """One target in this process (a worker of ``--jobs``): its own temporary folder, and for
    the viewer's targets its own tiny run."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        strategy, check = suite_targets(Path(tmp))[name]()
        print(f"{name}: {examples:,} examples ...", flush=True)
        r = fuzz(strategy, check, examples, seed, max_seconds, name=name)
    r["failures"] = 0 if r["failure"] is None else 1
    print(f"  {name}: {r['ran']:,} run, {r['failures']} failures, {r['seconds']:,.0f} s ({r['cpu_seconds']:,.0f} s CPU)", flush=True)
    return r


def markdown(data: dict) -> str:
    lines = [
        "# Fuzzing (`make fuzz`)", "",
        f"{data['date']}; `{data['command']}`; hypothesis {data['settings']['hypothesis']}, seed {data['settings']['seed']}, "
        f"{data['settings']['examples']:,} examples asked per target.", "",
        "| target | examples run | failures | wall s | examples/s (wall) | CPU ms per example | CPU minutes for all asked |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    asked = data["settings"]["examples"]
    for name, t in data["targets"].items():
        cpu_ms = 1000 * t["cpu_seconds"] / max(t["ran"], 1)
        stopped = " (stopped at --max-seconds)" if t["stopped_at_max_seconds"] else ""
        lines.append(f"| `{name}` | {t['ran']:,}{stopped} | {t['failures']} | {t['seconds']:,.0f} | {t['ran'] / max(t['seconds'], 1e-9):,.1f} "
                     f"| {cpu_ms:,.1f} | {asked * cpu_ms / 60_000:,.0f} |")
    for name, t in data["targets"].items():
        if t["failure"]:
            lines += ["", f"**{name}** failed:", "", "```", t["failure"], "```"]
    lines += [""] + [f"- {n}" for n in data["notes"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000, help="examples per target (default 10^5)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis's seed (default 0)")
    parser.add_argument("--max-seconds", type=float, default=None, help="stop a target after this many seconds (default: none)")
    parser.add_argument("--only", action="append", default=[], help="run the targets whose name contains this (repeatable)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "fuzz.json"), help="the result file (and .md beside it)")
    parser.add_argument("--jobs", type=int, default=1, help="targets run at once, in worker processes (default 1: in this process)")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")

    import hypothesis

    with tempfile.TemporaryDirectory() as tmp:
        wanted = lambda name: not args.only or any(w in name for w in args.only)  # noqa: E731
        names = [n for n in suite_targets(Path(tmp)) if wanted(n)]
    if args.jobs == 1:
        results = {n: run_target(n, args.examples, args.seed, args.max_seconds) for n in names}
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        slowest_first = sorted(names, key=lambda n: not n.startswith("viewer."))
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {n: pool.submit(run_target, n, args.examples, args.seed, args.max_seconds, 1) for n in slowest_first}
            results = {n: futures[n].result() for n in names}
    figures = []
    for name, r in results.items():
        figures += [
            Figure(f"{name}.examples", r["ran"], "examples", f"{name}: examples the check ran", target=(">=", args.examples)),
            Figure(f"{name}.failures", r["failures"], "failures", f"{name}: failing examples found (hypothesis stops at the first)", target=("<=", 0)),
            Figure(f"{name}.seconds", r["seconds"], "s", f"{name}: wall time"),
            Figure(f"{name}.cpu_ms_per_example", 1000 * r["cpu_seconds"] / max(r["ran"], 1), "ms", f"{name}: CPU time per example"),
        ]
    notes = [
        "Each target is a strategy and a check of tests/test_fuzz.py (the suite runs the same ones with ~60 examples).",
        "Examples run counts the calls of the check; hypothesis may run fewer than asked when a strategy's space is exhausted, "
        "and stops a target at its first failure (after shrinking it).",
        "The viewer's targets post to its app in-process (FastAPI TestClient) over a tiny model trained for the run (4 steps).",
        "Settings: one hypothesis run per target at the seed; no example database, no deadline, health checks off, "
        "phases generate and shrink. With --max-seconds a target stops at its first example past the limit.",
        "CPU seconds are the process's (all threads; the viewer's server threads too): the rate they give does not "
        "depend on what else the machine runs, unlike the wall time.",
    ] + ([f"--jobs {args.jobs}: targets ran {args.jobs} at a time in worker processes with one torch thread each."] if args.jobs > 1 else [])
    print_table(figures)
    settings = {"examples": args.examples, "jobs": args.jobs, "seed": args.seed, "max_seconds": args.max_seconds, "hypothesis": hypothesis.__version__, "deadline": None, "database": None, "phases": ["generate", "shrink"]}
    data = write_results(args.out, "fuzz", figures, notes, settings=settings,
                         targets={n: {k: r[k] for k in ("ran", "failures", "seconds", "cpu_seconds", "stopped_at_max_seconds", "failure")} for n, r in results.items()})
    atomic_write_text(Path(args.out).with_suffix(".md"), markdown(data))
    sys.exit(1 if any(r["failures"] for r in results.values()) else 0)


if __name__ == "__main__":
    main()
