"""Load on the viewer: concurrent clients on sample and counterfactual (``make bench-viewer``).

Starts ``causalvae serve`` on loopback (127.0.0.1, a free port) over a run (``--run``; by
default a tiny scene model trained into a temporary folder, a few seconds), then lets
``--clients`` threads (20), each with its own HTTP connection, post for ``--seconds`` (60):
each request is at random ``/api/sample`` (``n`` pictures under one random intervention on
a label, a random seed) or ``/api/counterfactual`` (a random test picture under one random
intervention). It measures

- per endpoint: requests done, p50 and p99 latency (ms) and the error count (any answer
  other than 200, or no answer within the timeout; target 0);
- the server's resident memory (VmRSS of its process): when it is ready (after its own
  warm-up), after ``--warmup-seconds`` of the same load, not counted (threads and
  allocator pools settle), and at the end. The growth from the warmed-up figure to the end
  has the target <= 10%; the growth from ready is reported too.

The run directory is only read. Results go to ``bench/results/viewer_load.json`` (schema
``causalvae-bench/1``) and ``.md`` beside it.

    python bench/bench_viewer_load.py                          # tiny model, 20 clients, 60 s
    python bench/bench_viewer_load.py --run runs/scenes --seconds 30
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import Figure, print_table, write_results

from causalvae.io import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
ENDPOINTS = ("sample", "counterfactual")


def tiny_run(root: Path) -> Path:
    """A tiny scene model (300 scenes, 4 steps) trained into ``root``: a few seconds."""
    from causalvae.generate import generate
    from causalvae.train import TrainConfig, fit

    data = generate("scenes", root / "scenes", 300, seed=8)
    return fit(TrainConfig(data=str(data), out=str(root / "run"), max_steps=4, batch_size=32, width=8, depth=3, hidden=32, z_dim=4, threads=1), progress=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """The resident memory of process ``pid`` in MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def start_server(run: Path, port: int, threads: int, log) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "causalvae", "serve", str(run), "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_ready(server: subprocess.Popen, base: str, timeout: float) -> dict:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode} before answering")
        try:
            r = httpx.get(f"{base}/api/graph", timeout=5)
            if r.status_code == 200:
                return r.json()
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server did not answer within {timeout:.0f} s")


class Load:
    """``clients`` threads posting random sample and counterfactual requests until a deadline."""

    def __init__(self, base: str, graph: dict, n: int, timeout: float):
        self.base, self.n, self.timeout = base, n, timeout
        self.labels = {v["name"]: v["values"] for v in graph["variables"] if v["labelled"]}
        self.gallery = graph["gallery"]
        if not self.gallery:
            raise SystemExit(f"the run has no test pictures for counterfactuals: {graph.get('gallery_note')}")
        self.lock = threading.Lock()

    def body(self, rng: random.Random, endpoint: str) -> dict:
        var = rng.choice(sorted(self.labels))
        do = {var: rng.choice(self.labels[var])}
        if endpoint == "sample":
            return {"do": do, "n": self.n, "seed": rng.randrange(2**31)}
        return {"index": rng.randrange(self.gallery), "do": do, "seed": rng.randrange(2**31)}

    def run(self, clients: int, seconds: float, seed: int) -> dict:
        """Per endpoint: latencies (s) of the 200 answers and the errors (status or exception)."""
        import httpx

        results = {e: {"latencies": [], "errors": []} for e in ENDPOINTS}
        deadline = time.monotonic() + seconds

        def client(i: int) -> None:
            rng = random.Random(seed * 1000 + i)
            with httpx.Client(base_url=self.base, timeout=self.timeout) as http:
                while time.monotonic() < deadline:
                    endpoint = rng.choice(ENDPOINTS)
                    start = time.perf_counter()
                    try:
                        r = http.post(f"/api/{endpoint}", json=self.body(rng, endpoint))
                        error = None if r.status_code == 200 else f"{r.status_code}: {r.text[:200]}"
                    except httpx.HTTPError as exc:
                        error = f"{type(exc).__name__}: {exc}"
                    elapsed = time.perf_counter() - start
                    with self.lock:
                        if error is None:
                            results[endpoint]["latencies"].append(elapsed)
                        else:
                            results[endpoint]["errors"].append(error)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results


def percentile_ms(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.array(values) * 1000, q)) if values else float("nan")


def markdown(data: dict) -> str:
    f = {x["name"]: x for x in data["figures"]}
    s = data["settings"]
    lines = [
        "# Viewer under load (`make bench-viewer`)", "",
        f"{data['date']}; `{data['command']}`; {s['clients']} clients for {s['seconds']:.0f} s on loopback "
        f"(after {s['warmup_seconds']:.0f} s of warm-up), {s['n']} pictures per sample; run: {s['run']}.", "",
        "| endpoint | requests | errors | p50 ms | p99 ms |", "|---|---:|---:|---:|---:|",
    ]
    for e in ENDPOINTS:
        lines.append(f"| `/api/{e}` | {f[f'{e}.requests']['value']:,.0f} | {f[f'{e}.errors']['value']:,.0f} "
                     f"| {f[f'{e}.p50_ms']['value']:,.0f} | {f[f'{e}.p99_ms']['value']:,.0f} |")
    lines += [
        "", "| server RSS | MB |", "|---|---:|",
        f"| ready (after its own warm-up) | {f['rss.ready_mb']['value']:,.1f} |",
        f"| after the warm-up load (before) | {f['rss.before_mb']['value']:,.1f} |",
        f"| after the load (after) | {f['rss.after_mb']['value']:,.1f} |",
        f"| growth before -> after (target <= 10%) | {f['rss.growth_pct']['value']:+.1f}% |",
        f"| growth ready -> after | {f['rss.growth_from_ready_pct']['value']:+.1f}% |",
    ]
    if data["error_examples"]:
        lines += ["", "Errors (first few):", ""] + [f"- `{e}`" for e in data["error_examples"]]
    lines += [""] + [f"- {n}" for n in data["notes"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a trained run (only read); default: a tiny model trained into a temporary folder")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of measured load (default 60)")
    parser.add_argument("--warmup-seconds", type=float, default=10.0, help="seconds of the same load before 'before' is measured (default 10)")
    parser.add_argument("--n", type=int, default=4, help="pictures per sample request (default 4)")
    parser.add_argument("--threads", type=int, default=1, help="the server's torch threads (OMP_NUM_THREADS; default 1)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a request may take before it counts as an error (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "viewer_load.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        run = args.run if args.run is not None else tiny_run(Path(tmp))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with open(Path(tmp) / "server.log", "w+") as log:
            server = start_server(run, port, args.threads, log)
            try:
                graph = wait_ready(server, base, timeout=600)
                ready = rss_mb(server.pid)
                load = Load(base, graph, args.n, args.timeout)
                warm = load.run(args.clients, args.warmup_seconds, args.seed + 1)
                before = rss_mb(server.pid)
                start = time.monotonic()
                results = load.run(args.clients, args.seconds, args.seed)
                wall = time.monotonic() - start
                after = rss_mb(server.pid)
            finally:
                server.send_signal(signal.SIGINT)
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
                log.seek(0)
                server_log = log.read()
        run_name = "a tiny model (300 scenes, 4 steps)" if args.run is None else f"`{args.run.resolve().parent.name}/{args.run.resolve().name}`"

    figures = []
    for e in ENDPOINTS:
        lat, errs = results[e]["latencies"], results[e]["errors"]
        figures += [
            Figure(f"{e}.requests", len(lat) + len(errs), "requests", f"/api/{e}: requests done in the measured {args.seconds:.0f} s"),
            Figure(f"{e}.errors", len(errs), "requests", f"/api/{e}: answers other than 200, or none within {args.timeout:.0f} s", target=("<=", 0)),
            Figure(f"{e}.p50_ms", percentile_ms(lat, 50), "ms", f"/api/{e}: median latency (client side, 200 answers)"),
            Figure(f"{e}.p99_ms", percentile_ms(lat, 99), "ms", f"/api/{e}: 99th percentile latency"),
        ]
    total = sum(len(results[e]["latencies"]) for e in ENDPOINTS)
    figures += [
        Figure("requests_per_s", total / wall, "requests/s", "200 answers per second, both endpoints"),
        Figure("rss.ready_mb", ready, "MB", "server VmRSS once ready (after its own warm-up)"),
        Figure("rss.before_mb", before, "MB", f"server VmRSS after {args.warmup_seconds:.0f} s of warm-up load"),
        Figure("rss.after_mb", after, "MB", "server VmRSS after the measured load"),
        Figure("rss.growth_pct", 100 * (after / before - 1), "%", "RSS growth during the measured load", target=("<=", 10)),
        Figure("rss.growth_from_ready_pct", 100 * (after / ready - 1), "%", "RSS growth from ready to the end (warm-up included)"),
    ]
    warm_errors = sum(len(warm[e]["errors"]) for e in ENDPOINTS)
    notes = [
        "Server: `python -m causalvae serve RUN --host 127.0.0.1 --port FREE` in its own process; clients: threads with one "
        "httpx connection each, in this process. The model serves one request at a time (the viewer's lock), so latency "
        "under 20 clients is mostly queueing: about 20 x the time of one request.",
        f"Each request: sample (n={args.n}, do one random label value, random seed) or counterfactual (a random test "
        "picture, do one random label value, random seed), at random 50/50.",
        f"Warm-up load: {args.warmup_seconds:.0f} s, {sum(len(warm[e]['latencies']) for e in ENDPOINTS)} requests, "
        f"{warm_errors} errors (not counted above).",
        f"Load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: the latencies depend on it.",
    ]
    examples = [x for e in ENDPOINTS for x in results[e]["errors"][:3]]
    print_table(figures)
    data = write_results(
        args.out, "viewer_load", figures, notes, error_examples=examples, server_log_tail=server_log[-2000:] if examples else "",
        settings={"clients": args.clients, "seconds": args.seconds, "warmup_seconds": args.warmup_seconds, "n": args.n,
                  "threads": args.threads, "timeout": args.timeout, "seed": args.seed, "run": run_name},
    )
    atomic_write_text(Path(args.out).with_suffix(".md"), markdown(data))


if __name__ == "__main__":
    main()
