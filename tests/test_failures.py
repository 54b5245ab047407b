"""No traceback reaches a user: failures that are not plain input errors become one line
(memory, recursion, the disk, permissions, Pillow), anything unexpected one line and the
path of a log file holding its traceback; the viewer answers them with a 503 JSON error."""

from __future__ import annotations

import errno

import pytest
from PIL import Image

from causalvae import cli
from causalvae.errors import CausalVAEError
from causalvae.failures import explain, one_line


def test_known_failures_are_one_line():
    assert explain(MemoryError()).startswith("out of memory: this work is too large for the machine")
    assert explain(RecursionError()) == "the input is nested too deeply to be processed"
    assert explain(OSError(errno.ENOSPC, "No space left on device", "/data/x")) == "/data/x: no space left on the disk; free some space and run the command again"
    assert explain(PermissionError(errno.EACCES, "Permission denied", "/etc/x")) == "/etc/x: permission denied (Permission denied)"
    assert explain(Image.DecompressionBombError("too big")) == "a picture cannot be read: too big"
    assert explain(KeyError("x")) is None


def test_an_unexpected_failure_is_one_line_and_a_log(tmp_path, monkeypatch):
    monkeypatch.setenv("CAUSALVAE_LOG_DIR", str(tmp_path))
    try:
        {}["missing"]
    except KeyError as exc:
        line = one_line(exc)
    assert line.startswith("unexpected error (KeyError: 'missing'); the details are in ")
    log = next(tmp_path.glob("causalvae-error-*.log"))
    assert str(log) in line and "Traceback" in log.read_text() and "{}[\"missing\"]" in log.read_text()


@pytest.mark.parametrize(
    "exc, status, words",
    [
        (MemoryError(), 1, "error: out of memory"),
        (RuntimeError("boom"), 1, "error: unexpected error (RuntimeError: boom); the details are in"),
        (CausalVAEError("a clear one"), 2, "error: a clear one"),
    ],
)
def test_the_cli_prints_one_line_whatever_fails(exc, status, words, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("CAUSALVAE_LOG_DIR", str(tmp_path))

    def failing():
        raise exc

    monkeypatch.setattr(cli, "app", failing)
    with pytest.raises(SystemExit) as ended:
        cli.main()
    assert ended.value.code == status
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_viewer_answers_an_unexpected_failure_with_503_json_and_keeps_serving(viewer_run, monkeypatch, tmp_path):
    from fastapi.testclient import TestClient

    from causalvae.viewer import create_app

    monkeypatch.setenv("CAUSALVAE_LOG_DIR", str(tmp_path))
    data, run, oracle = viewer_run
    app = create_app(run, warm=False)
    client = TestClient(app)
    viewer = app.state.viewer
    real = viewer.sample
    for exc, words in ((MemoryError(), "out of memory"), (ZeroDivisionError("bug"), "unexpected error (ZeroDivisionError: bug)")):
        def failing(req, exc=exc):
            raise exc

        monkeypatch.setattr(viewer, "sample", failing)
        r = client.post("/api/sample", json={"n": 1})
        assert r.status_code == 503 and words in r.json()["detail"]
    monkeypatch.setattr(viewer, "sample", real)
    assert client.post("/api/sample", json={"n": 1}).status_code == 200
