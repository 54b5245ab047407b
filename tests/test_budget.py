"""The exact engine's budget: a query whose plan (or twin network) would create a table or do
work over the limit is refused before any work, with one message naming the size, the
variables and what to do instead; a stopped query stops between two steps."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from causalvae.errors import QueryStoppedError, QueryTooLargeError
from causalvae.exact import Budget, query
from causalvae.graph import Graph
from causalvae.querylang import evaluate
from conftest import bnlearn_path

SIX_WORLDS = (
    "P(action | reaction[actor=Satyr]=Idle, reaction[actor=Golem]=Idle, reaction[actor_type=type1]=Idle, "
    "reaction[actor_type=type2]=Idle, reaction[actor_type=type3]=Idle, reaction[actor_strength=Low]=Idle)"
)


@pytest.fixture(scope="module")
def barley():
    from causalvae.bif import read_bif

    return read_bif(bnlearn_path("barley"))


def test_the_six_world_query_is_refused_before_any_work(scenes):
    start = time.monotonic()
    with pytest.raises(QueryTooLargeError, match=r"operations \(limit 2\.0e\+09\), most of them in a step over .*actor"):
        evaluate(scenes, SIX_WORLDS)
    assert time.monotonic() - start < 1.0


def test_within_the_budget_the_answer_is_unchanged(scenes):
    text = "P(reaction[action=Walk], reaction[action=Taunt] | action=Attack)"
    free = evaluate(scenes, text, Budget(max_operations=None)).distribution
    tight = evaluate(scenes, text, Budget.of(max_table_mb=1)).distribution
    assert (free.table == tight.table).all()
    with pytest.raises(QueryTooLargeError, match=r"table of [\d,]+ bytes over .*reaction\[action=Walk\].*\(limit 64 bytes\)"):
        evaluate(scenes, text, Budget(max_table_bytes=64))


def test_a_twin_network_too_large_for_memory_is_refused_at_once(barley):
    start = time.monotonic()
    with pytest.raises(QueryTooLargeError, match=r"twin-network tables of [\d,]+ MB for the noise of .*protein"):
        evaluate(barley, "P(protein[jordtype=JB_9] | protein=x_9)", Budget.of(max_table_mb=1024))
    assert time.monotonic() - start < 5.0


@pytest.mark.parametrize("name", ["barley", "munin"])
def test_many_target_joints_are_refused_with_their_size(name):
    from causalvae.bif import read_bif

    g = read_bif(bnlearn_path(name))
    targets = g.topological_order[-12:]
    start = time.monotonic()
    with pytest.raises(QueryTooLargeError, match=r"this query would build a table of [\d,]+ MB over .*give evidence on one of these variables"):
        query(g, targets, budget=Budget.of(max_table_mb=1024))
    assert time.monotonic() - start < 5.0


def test_a_stopped_query_stops_between_steps(scenes):
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    start = time.monotonic()
    with pytest.raises(QueryStoppedError, match="stopped before it finished"):
        evaluate(scenes, SIX_WORLDS, Budget(max_operations=None, stop=stop))
    assert time.monotonic() - start < 10.0
    with pytest.raises(QueryStoppedError, match="time limit"):
        evaluate(scenes, SIX_WORLDS, Budget(max_operations=None, deadline=time.monotonic()))


def test_bad_limits_are_refused():
    with pytest.raises(Exception, match="--max-table-mb must be a positive number of MB, got -1"):
        Budget.of(max_table_mb=-1)
    with pytest.raises(Exception, match="--max-operations must be a positive number, got nan"):
        Budget.of(max_operations=float("nan"))
    assert Budget.of(max_operations=float("inf")).max_operations is None


def test_the_cli_refuses_in_one_line():
    run = lambda *args: subprocess.run([sys.executable, "-m", "causalvae", "query", *args], capture_output=True, text=True, timeout=600)  # noqa: E731
    r = run(SIX_WORLDS)
    assert r.returncode == 2 and r.stderr.startswith("error: this query needs about") and "Traceback" not in r.stderr
    r = run("P(reaction[action=Walk], reaction[action=Taunt] | action=Attack)", "--max-table-mb", "0.00001")
    assert r.returncode == 2 and "this query would build" in r.stderr and "--max-table-mb" in r.stderr
    assert run("P(action)", "--max-table-mb", "1").returncode == 0


def test_a_long_query_says_now_and_then_that_it_is_still_working(monkeypatch):
    """The CLI's heartbeat around an exact query: a line every few seconds while it runs (a
    query within the budget may take tens of seconds on a big network), none once it is done."""
    from typer.testing import CliRunner

    from causalvae import cli, querylang

    said = []
    with cli._still_working("the query", every=0.05, say=said.append):
        time.sleep(0.32)
    assert 3 <= len(said) <= 7 and all(s.startswith("still working on the query (") for s in said)
    before = len(said)
    time.sleep(0.15)
    assert len(said) == before  # silent once the work is done

    real = querylang.evaluate

    def slow(*args, **kwargs):
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(querylang, "evaluate", slow)
    monkeypatch.setattr(cli, "HEARTBEAT_S", 0.1)
    r = CliRunner().invoke(cli.app, ["query", "P(action | reaction=Dying)"])
    assert r.exit_code == 0, r.output
    assert "still working on the query" in r.output and "Attack" in r.output


def test_the_memory_reading_is_kept_for_its_ttl_and_then_read_again(monkeypatch):
    from causalvae import exact

    # Only the module's own clock and open() are replaced: nothing else in the process sees them.
    clock = [1000.0]
    reads = []
    free_kb = [1000]
    monkeypatch.setattr(exact, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(exact, "_memory_reading", (-float("inf"), 0))

    def fake_open(path, *args, **kwargs):
        assert path == "/proc/meminfo"
        reads.append(path)
        return io.StringIO(f"MemTotal: 99999 kB\nMemAvailable: {free_kb[0]} kB\n")

    monkeypatch.setattr(exact, "open", fake_open, raising=False)
    assert exact.available_memory() == 1000 * 1024 and len(reads) == 1
    free_kb[0] = 2000
    clock[0] += exact.MEMORY_READING_TTL / 2
    assert exact.available_memory() == 1000 * 1024 and len(reads) == 1  # kept: no second read
    clock[0] += exact.MEMORY_READING_TTL
    assert exact.available_memory() == 2000 * 1024 and len(reads) == 2  # stale: read again, the new value
