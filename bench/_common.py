"""Shared helpers for the benchmark scripts in ``bench/`` (see ``bench/README.md``).

Every benchmark is a plain script that measures, prints a short table and writes one JSON
result file (schema ``causalvae-bench/1``) atomically. This module holds what they share:

- :func:`machine_info` and :func:`versions`: where and with what the numbers were taken;
- :func:`timeit`: the median wall-clock seconds of one call (``time.perf_counter``), and
  :func:`timeit_many`: the same for several functions timed interleaved (for ratios);
- :class:`Figure`: one reported number, with an optional target and whether it is met;
- :func:`write_results` / :func:`print_table`: the JSON file and the readable summary;
- :func:`quiet`: silence third-party warnings (pgmpy) inside a block;
- :func:`bnlearn_path` / :func:`pgmpy_model`: pgmpy's shipped bnlearn networks and a pgmpy
  model built from one of our :class:`~causalvae.graph.Graph` s (pgmpy is imported lazily,
  only inside the functions that need it).

Scripts import it as ``from _common import ...``: Python puts the script's directory
(``bench/``) first on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import platform
import shlex
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from causalvae.io import atomic_write_text

SCHEMA = "causalvae-bench/1"

#: Packages whose versions every result file records (``torch`` only when installed).
VERSIONED = ("causalvae", "numpy", "opt_einsum", "pgmpy", "torch")


# ---------------------------------------------------------------------------- environment


def _cpu_model() -> str:
    """The processor's marketing name (``platform.processor()`` is often empty on Linux)."""
    name = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return name or platform.machine()


def _numpy_blas() -> str:
    """A short description of numpy's BLAS, e.g. ``scipy-openblas 0.3.31 (2 threads)``."""
    import numpy as np

    text = "unknown"
    try:
        cfg = np.show_config(mode="dicts")  # numpy >= 1.26
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        if blas.get("name"):
            text = f"{blas['name']} {blas.get('version', '')}".strip()
    except Exception:  # older numpy: show_config() only prints
        pass
    try:
        from threadpoolctl import threadpool_info

        threads = [i.get("num_threads") for i in threadpool_info() if i.get("user_api") == "blas"]
        if threads:
            text += f" ({threads[0]} threads)"
    except Exception:
        pass
    return text


def machine_info() -> dict[str, Any]:
    """Where the numbers were taken: platform, CPU, cores, Python, numpy's BLAS."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "numpy_blas": _numpy_blas(),
        "loadavg_1m": _loadavg(),
    }


def _loadavg() -> float | None:
    """The 1-minute load average (other processes competing for the CPUs), if known."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def versions(packages: Iterable[str] = VERSIONED) -> dict[str, str]:
    """Installed versions of ``packages``, read from their metadata (nothing is imported,
    so e.g. torch's thread pools never start in a benchmark that does not use torch).
    ``torch`` is left out when it is not installed; any other missing package is
    recorded as ``"not installed"``."""
    out = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if name == "torch" and importlib.util.find_spec("torch") is None:
                continue
            out[name] = "not installed"
    return out


# ---------------------------------------------------------------------------- timing


def timeit(fn: Callable[[], Any], repeat: int = 7, number: int = 1, warmup: int = 1) -> float:
    """The median over ``repeat`` runs of the seconds per call of ``fn()``.

    ``warmup`` calls are made first and not timed. Each run times ``number`` consecutive
    calls with ``time.perf_counter`` and divides by ``number``.
    """
    if repeat < 1 or number < 1:
        raise ValueError("repeat and number must be >= 1")
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - t0) / number)
    return statistics.median(runs)


def timeit_many(
    fns: Mapping[str, Callable[[], Any]],
    repeat: int = 7,
    number: int = 1,
    warmup: int = 1,
    rewarm: bool = False,
) -> dict[str, float]:
    """:func:`timeit` for several functions whose times will be compared, interleaved.

    After the warm-up calls, each round times every function once (``number`` calls), the
    order rotating from round to round, so that a change in machine load (other processes)
    hits all of them alike. Returns each function's median seconds per call.

    ``rewarm=True`` makes one untimed call before every timed run: needed when one of the
    functions clears a cache the others rely on (e.g. a "cold" variant).
    """
    if repeat < 1 or number < 1:
        raise ValueError("repeat and number must be >= 1")
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    runs: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeat):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn = fns[name]
            if rewarm:
                fn()
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            runs[name].append((time.perf_counter() - t0) / number)
    return {name: statistics.median(runs[name]) for name in names}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence warnings and pgmpy's logger inside the block (restored afterwards)."""
    logger = logging.getLogger("pgmpy")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


# ---------------------------------------------------------------------------- figures


_OPS = {"<=": lambda v, t: v <= t, ">=": lambda v, t: v >= t}


@dataclass
class Figure:
    """One reported number.

    ``target`` is ``("<=", 20.0)`` or ``(">=", 10.0)`` when the figure has a goal; ``met``
    then says whether ``value`` reaches it. ``unit`` is e.g. ``"ms"``, ``"x"`` (a ratio),
    ``"rows/s"``.
    """

    name: str
    value: float
    unit: str
    description: str
    target: tuple[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.value = float(self.value)
        if self.target is not None:
            op, val = self.target
            if op not in _OPS:
                raise ValueError(f"target op must be '<=' or '>=', got {op!r}")
            self.target = (op, float(val))

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        op, val = self.target
        return bool(_OPS[op](self.value, val))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "value": _json_float(self.value),
            "unit": self.unit,
            "description": self.description,
        }
        if self.target is not None:
            d["target"] = {"op": self.target[0], "value": self.target[1]}
            d["met"] = self.met
        d.update(self.extra)
        return d


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _fmt_value(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    a = abs(x)
    if a >= 1e5:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 0.01 or a == 0:
        return f"{x:.3f}"
    return f"{x:.2e}"


def format_table(figures: Sequence[Figure]) -> str:
    """The figures as a fixed-width text table: name, value, unit, target, met."""
    rows = [("figure", "value", "unit", "target", "met")]
    for f in figures:
        target = f"{f.target[0]} {_fmt_value(f.target[1])}" if f.target else ""
        met = "" if f.met is None else ("yes" if f.met else "NO")
        rows.append((f.name, _fmt_value(f.value), f.unit, target, met))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    aligns = ["<", ">", "<", "<", "<"]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(f"{c:{a}{w}}" for c, a, w in zip(r, aligns, widths)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(figures: Sequence[Figure], file=None) -> None:
    print(format_table(figures), file=file or sys.stdout)


# ---------------------------------------------------------------------------- results


def command_line() -> str:
    """The command that ran this process, as typed (interpreter included when known)."""
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    return shlex.join(argv)


def write_results(
    path: str | os.PathLike,
    benchmark: str,
    figures: Sequence[Figure],
    notes: Sequence[str] = (),
    **extra: Any,
) -> dict[str, Any]:
    """Write the result file (schema ``causalvae-bench/1``) atomically and return its data.

    ``extra`` adds benchmark-specific top-level keys (allowed by the schema).
    """
    names = [f.name for f in figures]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"figure names must be unique; repeated: {sorted(dup)}")
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "benchmark": benchmark,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
        "machine": machine_info(),
        "versions": versions(),
        "figures": [f.to_dict() for f in figures],
        "notes": list(notes),
    }
    data.update(extra)
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
    return data


# ---------------------------------------------------------------------------- pgmpy


def bnlearn_path(name: str) -> Path:
    """A bnlearn BIF network shipped inside pgmpy (``alarm``, ``hepar2``, ...)."""
    spec = importlib.util.find_spec("pgmpy")
    if spec is None:
        raise RuntimeError("pgmpy is not installed; install the test extra: pip install -e '.[test]'")
    return Path(str(resources.files("pgmpy") / "utils" / "example_models" / f"{name}.bif.gz"))


def pgmpy_model(graph):
    """The same network as a pgmpy ``DiscreteBayesianNetwork`` (see causalvae.interop)."""
    from causalvae.interop import to_pgmpy

    return to_pgmpy(graph)
