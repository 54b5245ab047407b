"""Saved models and checkpoints: exact round trips, one clear error per bad file, atomic writes."""

from __future__ import annotations

import copy
import json
import os
import random
import re
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from causalvae import store
from causalvae.data import sha256
from causalvae.errors import CausalVAEError
from causalvae.graph import Graph
from causalvae.model import CausalVAE
from causalvae.nets import NetConfig
from causalvae.store import (
    CHECKPOINT_FORMAT,
    FORMAT,
    ModelFileError,
    latest_checkpoint,
    load,
    load_checkpoint,
    save_checkpoint,
    save_model,
)


def tiny_vae(graph: Graph, *, learned: bool = False, seed: int = 0) -> CausalVAE:
    torch.manual_seed(seed)
    dims = tuple(graph.card(p) for p in graph.image.parents)
    config = NetConfig(image_size=16, channels=3, parent_dims=dims, z_dim=4, width=8, depth=2, hidden=32)
    if learned:
        return CausalVAE(graph, config, learn_cpts=True, classified=["action"], alpha=7.5)
    return CausalVAE(graph, config)


def random_step(model: nn.Module, opt: torch.optim.Optimizer) -> None:
    """One optimizer step along a random gradient (draws from torch's RNG)."""
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()


def fixed_step(model: nn.Module, opt: torch.optim.Optimizer, grads: list[torch.Tensor]) -> None:
    for p, g in zip(model.parameters(), grads):
        p.grad = g.clone()
    opt.step()


def perturbed(graph: Graph, **kw) -> CausalVAE:
    vae = tiny_vae(graph, **kw)
    opt = torch.optim.Adam(vae.parameters(), lr=0.05)
    for _ in range(3):
        random_step(vae, opt)
    return vae


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def flip_last_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------------------------------------
# Trained models


@pytest.mark.parametrize("learned", [False, True], ids=["fixed-tables", "learned-tables"])
def test_saved_model_loads_identically(tmp_path, scenes, learned):
    vae = perturbed(scenes, learned=learned)
    dataset = {"path": "data/scenes", "manifest_sha256": "ab" * 32}
    out = save_model(vae, tmp_path / "run", dataset=dataset, training={"steps": 3})
    assert out == tmp_path / "run"
    back = load(out)
    assert not back.training

    assert_same_state(vae, back)
    assert (back.learned, back.classified, back.alpha) == (vae.learned, vae.classified, vae.alpha)
    want, got = vae.current_graph(), back.current_graph()
    for name in scenes.names:
        assert np.array_equal(got.cpt(name), want.cpt(name)), name
    if learned:  # the learned tables did move away from the specified ones
        assert not np.allclose(want.cpt("actor"), scenes.cpt("actor"))

    vae.eval()
    z = torch.randn(5, 4)
    parents = torch.rand(5, vae.config.parent_size)
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(back.decoder(z, parents), vae.decoder(z, parents))
        for name, probs in vae.classify(images).items():
            assert torch.equal(back.classify(images)[name], probs)

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["format"] == FORMAT
    assert cfg["dataset"] == dataset and cfg["training"] == {"steps": 3}
    assert cfg["weights"]["sha256"] == sha256(out / "model.safetensors")
    assert (cfg["learned_graph"] is not None) == learned
    if learned:
        stored = Graph.from_dict(cfg["learned_graph"])
        np.testing.assert_allclose(stored.cpt("actor"), want.cpt("actor"), rtol=1e-12)
    # The config file itself is accepted too, and "auto" picks an available device.
    assert_same_state(vae, load(out / "config.json", device="auto").cpu())


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved model with fixed tables, and another (learned tables, a classifier) to swap in."""
    graph = Graph.load("scenes")
    root = tmp_path_factory.mktemp("saved")
    save_model(perturbed(graph), root / "plain")
    save_model(perturbed(graph, learned=True), root / "other")
    return root


def edit_config(run, change) -> None:
    cfg = json.loads((run / "config.json").read_text())
    change(cfg)
    (run / "config.json").write_text(json.dumps(cfg))


def fix_checksum(run) -> None:
    """Record the weights' true checksum, so that a later check is the one that fires."""
    edit_config(run, lambda c: c["weights"].update(sha256=sha256(run / "model.safetensors")))


def cut_weights(run, other):
    path = run / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_weights(run, other):
    flip_last_byte(run / "model.safetensors")


def cut_config(run, other):
    text = (run / "config.json").read_text()
    (run / "config.json").write_text(text[: len(text) // 2])


def config_not_object(run, other):
    (run / "config.json").write_text("[1, 2]")


def wrong_format(run, other):
    edit_config(run, lambda c: c.update(format="causalvae-model/99"))


def missing_key(run, other):
    edit_config(run, lambda c: c.pop("alpha"))


def unknown_key(run, other):
    edit_config(run, lambda c: c.update(alpah=1.0))


def broken_graph(run, other):
    edit_config(run, lambda c: c["graph"].update(variables=[]))


def other_z_dim(run, other):
    edit_config(run, lambda c: c["net"].update(z_dim=6))
    fix_checksum(run)


def swapped_weights(run, other):
    shutil.copy(other / "model.safetensors", run / "model.safetensors")


def swapped_weights_checksum_fixed(run, other):
    swapped_weights(run, other)
    fix_checksum(run)


def missing_weights(run, other):
    (run / "model.safetensors").unlink()


REFUSED = [
    (cut_weights, "model.safetensors", "truncated or corrupt"),
    (flip_weights, "model.safetensors", "does not match config.json: it was changed or belongs to another model"),
    (cut_config, "config.json", "not valid JSON"),
    (config_not_object, "config.json", "expected a JSON object"),
    (wrong_format, "config.json", r"format is 'causalvae-model/99', expected 'causalvae-model/1'"),
    (missing_key, "config.json", r"missing key\(s\) alpha"),
    (unknown_key, "config.json", r"unknown key 'alpah' \(did you mean 'alpha'\?\)"),
    (broken_graph, "config.json", "cannot be built: graph: 'variables' must be a non-empty list"),
    (other_z_dim, "model.safetensors", r"tensor '[\w.]+' has shape \[\d+(, \d+)*\], but the model built from config.json needs"),
    (swapped_weights, "model.safetensors", "does not match config.json: it was changed or belongs to another model"),
    (swapped_weights_checksum_fixed, "model.safetensors", r"unexpected tensor\(s\) 'classifiers\.0\.[\w.]+', .* and \d+ more"),
    (missing_weights, "model.safetensors", "file is missing"),
]


@pytest.mark.parametrize(("damage", "file", "message"), REFUSED, ids=[d.__name__ for d, _, _ in REFUSED])
def test_bad_model_files_are_refused(tmp_path, saved, damage, file, message):
    run = tmp_path / "run"
    shutil.copytree(saved / "plain", run)
    damage(run, saved / "other")
    with pytest.raises(ModelFileError, match=message) as info:
        load(run)
    assert str(run / file) in str(info.value)
    assert isinstance(info.value, CausalVAEError)


def test_missing_model_directory_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="no such model directory") as info:
        load(tmp_path / "nowhere")
    assert "nowhere" in str(info.value)


def test_another_package_version_still_loads(tmp_path, saved):
    run = tmp_path / "run"
    shutil.copytree(saved / "plain", run)
    edit_config(run, lambda c: c.update(package_version="0.0.1"))
    load(run)


@pytest.mark.parametrize("failing_write", [1, 2], ids=["weights", "config"])
def test_failed_save_keeps_the_previous_model(tmp_path, scenes, monkeypatch, failing_write):
    """The disk fails midway through writing the weights, or the config after the weights:
    the model already in the directory still loads, and no temporary file is left."""
    run = tmp_path / "run"
    old = perturbed(scenes)
    save_model(old, run)
    new = perturbed(scenes, seed=1)

    real_write = store.atomic_write_bytes
    calls = []

    def write(path, data):
        calls.append(path)
        if len(calls) != failing_write:
            return real_write(path, data)
        with monkeypatch.context() as m:  # the data is in a temporary file when fsync fails
            m.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
            return real_write(path, data)

    monkeypatch.setattr(store, "atomic_write_bytes", write)
    with pytest.raises(OSError, match="No space left"):
        save_model(new, run)
    assert len(calls) == failing_write
    assert sorted(os.listdir(run)) == ["config.json", "model.safetensors"]
    assert_same_state(load(run), old)

    monkeypatch.setattr(store, "atomic_write_bytes", real_write)
    save_model(new, run)
    assert sorted(os.listdir(run)) == ["config.json", "model.safetensors"]
    assert_same_state(load(run), new)


# ---------------------------------------------------------------------------------------------
# Checkpoints


def test_checkpoint_resumes_training_exactly(tmp_path, scenes):
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    model = tiny_vae(scenes, learned=True)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.95))
    for _ in range(3):
        random_step(model, opt)
    meta = {"epoch": 1, "best_elbo": -123.5, "note": "warm-up done"}
    directory = save_checkpoint(tmp_path / "ck", 3, model=model, optimizer=opt, meta=meta)
    assert directory.name == "step-00000003"
    draws = (torch.rand(3), random.random(), np.random.rand())

    # The original run, continued by one step from exactly where it was saved...
    grads = [torch.randn_like(p) for p in model.parameters()]
    reference, reference_opt = copy.deepcopy((model, opt))
    fixed_step(reference, reference_opt, grads)
    # ...while the run itself goes on and moves away from the checkpoint.
    for _ in range(2):
        random_step(model, opt)

    fresh = tiny_vae(scenes, learned=True, seed=5)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.5)
    info = load_checkpoint(directory, model=fresh, optimizer=fresh_opt)
    assert info == {"step": 3, "meta": meta}
    assert torch.equal(torch.rand(3), draws[0])
    assert random.random() == draws[1] and np.random.rand() == draws[2]
    assert fresh_opt.param_groups[0]["lr"] == 0.01 and fresh_opt.param_groups[0]["betas"] == (0.8, 0.95)

    fixed_step(fresh, fresh_opt, grads)
    assert_same_state(fresh, reference)

    state = json.loads((directory / "state.json").read_text())
    assert state["format"] == CHECKPOINT_FORMAT and state["step"] == 3


def test_keep_and_latest_checkpoint(tmp_path):
    root = tmp_path / "ck"
    assert latest_checkpoint(root) is None
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in (10, 20, 30, 40):
        random_step(model, opt)
        save_checkpoint(root, step, model=model, optimizer=opt, meta={}, keep=2)
    assert sorted(os.listdir(root)) == ["step-00000030", "step-00000040"]
    assert latest_checkpoint(root).name == "step-00000040"

    # A staging directory left by a crash, a step directory without state.json, and one whose
    # state.json is unreadable are all passed over.
    shutil.copytree(root / "step-00000040", root / ".step-00000050.x7q.partial")
    (root / "step-00000060").mkdir()
    (root / "step-00000070").mkdir()
    (root / "step-00000070" / "state.json").write_text('{"format": ')
    assert latest_checkpoint(root).name == "step-00000040"

    fresh = nn.Linear(3, 2)
    fresh_opt = torch.optim.SGD(fresh.parameters(), lr=0.5)
    assert load_checkpoint(latest_checkpoint(root), model=fresh, optimizer=fresh_opt)["step"] == 40
    assert_same_state(fresh, model)
    assert torch.equal(fresh_opt.state[fresh.weight]["momentum_buffer"], opt.state[model.weight]["momentum_buffer"])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (flip_last_byte, "does not match state.json"),
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "truncated or corrupt"),
    ],
    ids=["flipped-byte", "truncated"],
)
def test_corrupt_checkpoint_is_refused_not_skipped(tmp_path, damage, message):
    root = tmp_path / "ck"
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    random_step(model, opt)
    save_checkpoint(root, 1, model=model, optimizer=opt, meta={})
    newest = save_checkpoint(root, 2, model=model, optimizer=opt, meta={})
    damage(newest / "state.safetensors")
    assert latest_checkpoint(root) == newest
    with pytest.raises(ModelFileError, match=message) as info:
        load_checkpoint(newest, model=nn.Linear(3, 2), optimizer=torch.optim.Adam(model.parameters()))
    assert "state.safetensors" in str(info.value)


def test_checkpoint_of_another_model_is_refused(tmp_path):
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    directory = save_checkpoint(tmp_path / "ck", 5, model=model, optimizer=opt, meta={})
    other = nn.Linear(4, 2)
    with pytest.raises(ModelFileError, match=r"tensor 'weight' has shape \[2, 3\], but the model given needs \[2, 4\]"):
        load_checkpoint(directory, model=other, optimizer=torch.optim.Adam(other.parameters()))


def test_resolve_device_names_a_device_it_cannot_use(monkeypatch):
    """cpu, cuda (where there is CUDA) and auto (CUDA where there is one, else the CPU) are
    devices; another name, or CUDA without it, is one clear error naming the setting."""
    import torch

    from causalvae.store import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == resolve_device("auto") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    for bad, message in (("tpu", "device tpu: expected cpu, cuda or auto"), ("", "device '': expected cpu, cuda or auto"), (3, "device 3: expected"),
                         ("cuda", "device cuda: no CUDA device is available")):
        with pytest.raises(CausalVAEError, match=re.escape(message)):
            resolve_device(bad)
    with pytest.raises(CausalVAEError, match="^--device mps: expected cpu, cuda or auto$"):
        resolve_device("mps", "--device")
