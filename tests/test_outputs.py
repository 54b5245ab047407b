"""Output directories: no command writes over another kind of artefact (a run, an oracle, a
dataset, a report), and one of the same kind only with --force; checked before the work."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from causalvae.errors import CausalVAEError
from causalvae.io import check_output_dir, output_kind


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "causalvae", *args], capture_output=True, text=True, timeout=600)


def make(path, *files):
    path.mkdir()
    for f in files:
        (path / f).write_text("{}")
    return path


def test_each_kind_is_known_by_its_files(tmp_path):
    assert output_kind(make(tmp_path / "run", "train.json", "config.json", "model.safetensors")) == "training run"
    assert output_kind(make(tmp_path / "oracle", "config.json", "oracle.safetensors")) == "oracle"
    assert output_kind(make(tmp_path / "data", "manifest.json")) == "dataset"
    assert output_kind(make(tmp_path / "report", "report.json", "report.md")) == "report"
    assert output_kind(make(tmp_path / "other", "notes.txt")) is None
    assert output_kind(tmp_path / "missing") is None


def test_the_one_check(tmp_path):
    run = make(tmp_path / "run", "train.json", "config.json")
    with pytest.raises(CausalVAEError, match=r"holds a training run, not an oracle; choose another output \(--force replaces only an oracle\)"):
        check_output_dir(run, "oracle", force=True)
    with pytest.raises(CausalVAEError, match="already holds a report; pass --force to replace it"):
        check_output_dir(make(tmp_path / "rep", "report.json"), "report")
    assert check_output_dir(tmp_path / "rep", "report", force=True) == (tmp_path / "rep").resolve()
    with pytest.raises(CausalVAEError, match="holds something else than a report"):
        check_output_dir(make(tmp_path / "mine", "thesis.tex"), "report", force=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(CausalVAEError, match="exists and is not a directory"):
        check_output_dir(tmp_path / "file", "report", force=True)
    assert check_output_dir(make(tmp_path / "empty"), "oracle") == (tmp_path / "empty").resolve()
    assert check_output_dir(tmp_path / "new", "oracle") == (tmp_path / "new").resolve()


def test_oracle_train_refuses_a_trained_run_and_leaves_it_whole(viewer_run):
    data, run, oracle = viewer_run
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    start = time.monotonic()
    r = cli("oracle", "train", "--world", "scenes", "--out", str(run), "--steps", "1", "--force")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "holds a training run, not an oracle" in r.stderr and "Traceback" not in r.stderr
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    r = cli("oracle", "train", "--world", "scenes", "--out", str(oracle), "--steps", "1")
    assert r.returncode == 2 and "already holds an oracle; pass --force" in r.stderr


def test_generate_and_evaluate_refuse_other_artefacts_before_working(viewer_run, tmp_path):
    data, run, oracle = viewer_run
    r = cli("generate", "scenes", "--n", "10", "--out", str(run), "--force")
    assert r.returncode == 2 and "holds a training run, not a causalvae dataset" in r.stderr
    r = cli("evaluate", str(run), "--oracle", str(oracle), "--out", str(data))
    assert r.returncode == 2 and "holds a dataset, not a report" in r.stderr
    existing = tmp_path / "report.txt"
    existing.write_text("mine")
    start = time.monotonic()
    r = cli("evaluate", str(run), "--oracle", str(oracle), "--out", str(existing))
    assert r.returncode == 2 and "exists and is not a directory" in r.stderr
    assert existing.read_text() == "mine"
