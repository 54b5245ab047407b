"""The viewer as a real server on loopback (uvicorn in a thread, raw HTTP): a query too costly
is refused at once while the model keeps answering, a slow query never holds up a sample, a
query whose client went away stops, and a body over the limit is refused whatever its
headers say. Every wait here is bounded."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest

pytest.importorskip("uvicorn")

import uvicorn  # noqa: E402

from causalvae.exact import Budget  # noqa: E402
from causalvae.viewer import create_app  # noqa: E402
from causalvae.viewer.app import MAX_BODY_BYTES, QUERY_WORKERS  # noqa: E402

#: Issue 19's query: six counterfactual worlds, about 200 characters, 10^10 operations.
SIX_WORLDS = (
    "P(action | reaction[actor=Satyr]=Idle, reaction[actor=Golem]=Idle, reaction[actor_type=type1]=Idle, "
    "reaction[actor_type=type2]=Idle, reaction[actor_type=type3]=Idle, reaction[actor_strength=Low]=Idle)"
)


def serve(app):
    """Start ``app`` on a free loopback port; returns (port, stop)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)

    def stop():
        server.should_exit = True
        thread.join(timeout=20)

    return port, stop


def post(port: int, path: str, body: dict, timeout: float = 60) -> tuple[int, dict, float]:
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read()), time.monotonic() - start
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server(viewer_run):
    """The viewer with a budget generous enough that a four-world query takes seconds."""
    data, run, oracle = viewer_run
    app = create_app(run, oracle=oracle, budget=Budget.of(max_table_mb=512, max_operations=2e10))
    port, stop = serve(app)
    yield port, app.state.viewer
    stop()


@pytest.fixture(scope="module")
def default_server(viewer_run):
    data, run, oracle = viewer_run
    port, stop = serve(create_app(run, oracle=oracle, warm=False))
    yield port
    stop()


def test_the_six_world_query_is_refused_at_once_while_a_sample_is_answered(default_server):
    results = {}
    sampler = threading.Thread(target=lambda: results.setdefault("sample", post(default_server, "/api/sample", {"n": 64, "seed": 1})))
    sampler.start()
    status, body, seconds = post(default_server, "/api/query", {"query": SIX_WORLDS})
    sampler.join(timeout=60)
    assert status == 422, body
    assert seconds < 1.0
    assert "operations (limit 2.0e+09)" in body["detail"] and "ask for fewer targets or counterfactual worlds" in body["detail"]
    assert results["sample"][0] == 200 and len(results["sample"][1]["images"]) == 64


def test_a_small_table_limit_names_the_size_and_the_variables(viewer_run):
    data, run, oracle = viewer_run
    port, stop = serve(create_app(run, oracle=oracle, warm=False, budget=Budget.of(max_table_mb=0.001)))
    try:
        status, body, _ = post(port, "/api/query", {"query": "P(reaction[action=Walk], reaction[action=Taunt] | action=Attack)"})
    finally:
        stop()
    assert status == 422, body
    assert body["detail"].startswith("this query would build") and "(limit 1,048 bytes)" in body["detail"]
    assert "--max-table-mb" in body["detail"]


def test_a_sample_never_waits_behind_a_slow_query_which_stops_when_its_client_leaves(server):
    port, viewer = server
    five = "P(action | " + ", ".join(SIX_WORLDS.split("| ")[1].split(", ")[:5]) + ")"  # ~10^10 operations
    body = json.dumps({"query": five}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /api/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(0.5)  # the query is at work
        status, answer, seconds = post(port, "/api/sample", {"n": 2, "seed": 3})
        assert status == 200, answer
        assert viewer.query_slots._value == QUERY_WORKERS - 1, "the query should still be running"
        s.setblocking(False)
        with pytest.raises(BlockingIOError):
            s.recv(1)  # and has not been answered
    # The client has gone: the worker is free again well before the query could have finished.
    deadline = time.monotonic() + 5
    while viewer.query_slots._value < QUERY_WORKERS:
        assert time.monotonic() < deadline, "the query went on after its client left"
        time.sleep(0.05)


def test_a_chunked_body_over_the_limit_is_refused_with_413(default_server):
    chunk = b"x" * 2**16
    with socket.create_connection(("127.0.0.1", default_server), timeout=10) as s:
        s.sendall(b"POST /api/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        sent = 0
        try:
            while sent <= 2 * MAX_BODY_BYTES:
                s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
            s.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may close the connection once it has refused
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            part = s.recv(65536)
            if not part:
                break
            reply += part
    head, _, text = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert f"the limit is {MAX_BODY_BYTES:,} bytes".encode() in text
    status, body, _ = post(default_server, "/api/query", {"query": "P(action)"})
    assert status == 200 and body["variables"] == ["action"]  # and the server goes on serving
