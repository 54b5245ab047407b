"""Does the model draw the digit, or what its reader looks for? The counterfactual term's reader
and the oracle read the same do(digit) counterfactuals of validation pictures: how often each
reads the intervened digit, and how often the reader does while the oracle does not.

The reader is retrained exactly as the run trained its first one (the run's reader settings
and seed: the same weights, a deterministic function of the data and the seed), so runs of the
same data, seed and reader settings are read by one reader.

    python docs/readers.py --runs runs/morpho,runs/morpho-readers3 --names "one reader,three readers" \\
        --oracle oracles/morpho --refine 30 --out docs/reports/morpho/readers.md

Only validation pictures are used (never the test split).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from causalvae.ask import read_labels
from causalvae.errors import CausalVAEError
from causalvae.io import atomic_write_text
from causalvae.nets import prepare
from causalvae.oracle import load_oracle
from causalvae.queries import counterfactual
from causalvae.run import Run
from causalvae.train import read_discrete_parents, reading_sets, train_reader


def first_reader(run: Run):
    """The run's first reader, retrained from its settings (the run's seed)."""
    s = run.settings
    if not s.get("cf_weight"):
        raise CausalVAEError(f"{run.path}: the run has no counterfactual term, hence no reader")
    sets = None
    if s.get("reader_sets"):
        from causalvae import worlds

        sets = reading_sets(worlds.for_dataset(run.dataset("train")), run.model)
    return train_reader(run.model, run.dataset("train"), None, int(s["reader_steps"]), int(s["seed"]),
                        shift=int(s.get("reader_shift", 0)), warp=float(s.get("reader_warp", 0.0)), sets=sets)[0]


@torch.no_grad()
def readings(run: Run, reader, oracle, n: int, refine: int, seed: int = 0) -> dict[str, float]:
    """do(digit=d) for each digit d on the first ``n`` validation pictures of other digits,
    read by the reader and by the oracle; shares over all of them."""
    vae = run.model
    if "digit" not in read_discrete_parents(vae):
        raise CausalVAEError(f"{run.path}: the run's reader does not read a digit")
    val = run.dataset("val", truth=True)
    digits, _ = val.truth_table()
    digits = digits["digit"]
    first = read_discrete_parents(vae).index("digit")
    offset = sum(vae.graph.card(p) for p in read_discrete_parents(vae)[:first])
    oracle_hit, reader_hit, fooled = [], [], []
    for to in range(vae.graph.card("digit")):
        picks = np.flatnonzero(digits != to)[:n]
        images, labels = val.batch(picks)
        cf = counterfactual(vae, images, labels, {"digit": str(to)}, continuous=val.continuous_batch(picks), seed=seed, refine=refine).images
        o = read_labels(oracle, cf, ["digit"])[:, 0] == to
        r = (reader(prepare(torch.as_tensor(cf), vae.config.likelihood))[:, offset:offset + vae.graph.card("digit")].argmax(1).numpy() == to)
        oracle_hit.append(o)
        reader_hit.append(r)
        fooled.append(r & ~o)
    share = lambda xs: float(np.concatenate(xs).mean())  # noqa: E731
    return {"oracle": share(oracle_hit), "reader": share(reader_hit), "fooled": share(fooled), "n": int(sum(len(x) for x in oracle_hit))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", required=True, help="comma-separated run folders")
    ap.add_argument("--names", help="comma-separated names of the runs, for the table's columns")
    ap.add_argument("--oracle", required=True)
    ap.add_argument("--n", type=int, default=200, help="validation pictures per asked digit")
    ap.add_argument("--refine", type=int, default=0, help="steps refining each abducted code (as the report's --refine)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    runs = a.runs.split(",")
    names = a.names.split(",") if a.names else runs
    if len(names) != len(runs):
        raise SystemExit(f"--names gives {len(names)} names for {len(runs)} runs")
    oracle = load_oracle(a.oracle)
    readers: dict[tuple, object] = {}
    cols = []
    for path in runs:
        run = Run.open(path)
        s = run.settings
        key = (str(run.dataset_path), s.get("seed"), s.get("reader_steps"), s.get("reader_shift", 0), s.get("reader_warp", 0.0), s.get("reader_sets", False))
        if key not in readers:
            t = time.perf_counter()
            print(f"{path}: training its first reader ({s.get('reader_steps')} steps)", flush=True)
            readers[key] = first_reader(run)
            print(f"  {time.perf_counter() - t:.0f} s", flush=True)
        cols.append(readings(run, readers[key], oracle, a.n, a.refine))
        print(f"{path}: {cols[-1]}", flush=True)
    head = "| do(digit) counterfactuals of validation pictures | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names) + "\n"
    rows = [("read as the intervened digit by the oracle", "oracle"), ("read so by the run's first reader", "reader"),
            ("read so by the reader and not by the oracle", "fooled")]
    body = "\n".join(f"| {label} | " + " | ".join(f"{c[k]:.1%}" for c in cols) + " |" for label, k in rows)
    text = (f"Each model's do(digit=d), for every digit d, on the first {a.n} validation pictures of the other digits "
            f"({cols[0]['n']:,} counterfactuals per model; codes refined {a.refine} steps), read by the oracle `{Path(a.oracle).name}` "
            f"and by the counterfactual term's first reader, retrained as the run trained it (`python docs/readers.py`):\n\n" + head + body + "\n")
    atomic_write_text(Path(a.out), text)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
