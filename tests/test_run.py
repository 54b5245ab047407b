"""Run.open: one way to read a run directory."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from causalvae import worlds
from causalvae.errors import CausalVAEError
from causalvae.run import Run


def test_a_run_gives_its_model_settings_metrics_dataset_and_world(viewer_run, tmp_path):
    data, run, _ = viewer_run
    r = Run.open(run)
    assert r.finished and r.model.label_columns == list(r.dataset().label_columns)
    assert r.settings["max_steps"] == 4 and r.metrics and r.metrics[-1]["step"] == 4
    assert r.dataset_path.resolve() == data.resolve() and r.world is worlds.get("scenes")
    assert len(r.dataset("test")) < len(r.dataset())
    assert Run.open(run / "config.json").path == run  # its config.json opens it too
    # Another dataset replaces the recorded one.
    assert Run.open(run, data=tmp_path / "elsewhere").dataset_path == tmp_path / "elsewhere"


def test_an_unfinished_run_and_bad_paths(viewer_run, tmp_path):
    data, run, _ = viewer_run
    part = tmp_path / "part"
    part.mkdir()
    shutil.copy(run / "train.json", part / "train.json")
    r = Run.open(part)
    assert not r.finished and r.metrics == []
    assert r.dataset_path == data or r.dataset_path.resolve() == data.resolve()  # from train.json
    with pytest.raises(CausalVAEError, match="config.json"):
        r.model
    with pytest.raises(CausalVAEError, match="no such model directory"):
        Run.open(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CausalVAEError, match="not a run directory"):
        Run.open(tmp_path / "empty")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "train.json").write_text(json.dumps({"epochs": 1}))
    with pytest.raises(CausalVAEError, match="names no dataset"):
        Run.open(bare).dataset()


def test_a_dataset_path_of_another_type_is_one_error_naming_file_and_key(viewer_run, tmp_path):
    """A hand-edited train.json whose 'data' is not a string, or a config.json whose
    'dataset.path' is not, is one error naming the file and the key, not a TypeError from
    Path() deep in whichever command opened the dataset."""
    _, run, _ = viewer_run
    part = tmp_path / "part"
    part.mkdir()
    settings = json.loads((run / "train.json").read_text())
    for value in (5, 0, False, ["data/scenes"], {"path": "x"}):
        (part / "train.json").write_text(json.dumps({**settings, "data": value}))
        with pytest.raises(CausalVAEError, match=r"train\.json: 'data' must be a string, got"):
            Run.open(part).dataset_path
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text())
    config["dataset"] = {**config["dataset"], "path": 7}
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CausalVAEError, match=r"config\.json: 'dataset\.path' must be a string, got 7"):
        Run.open(copy).dataset()
    for dataset, message in (("data/y", "'dataset' must be an object"), ([1], "'dataset' must be an object"), ({"path": 0}, "'dataset.path' must be a string, got 0"),
                             ({"path": False}, "'dataset.path' must be a string, got False")):
        (copy / "config.json").write_text(json.dumps({**config, "dataset": dataset}))
        with pytest.raises(CausalVAEError, match=re.escape(message)):
            Run.open(copy).dataset_path
    # Another setting of the wrong type does not stop the dataset from opening (summary names it).
    (part / "train.json").write_text(json.dumps({**settings, "lr": "fast"}))
    assert Run.open(part).dataset_path == Path(settings["data"])
    # Given --data, the recorded one is not read.
    assert Run.open(copy, data=tmp_path / "elsewhere").dataset_path == tmp_path / "elsewhere"
