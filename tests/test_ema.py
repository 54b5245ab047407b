"""The moving average of the weights (--ema): its update is the stated exponential average, a
run with it validates and saves the average (not the live weights), checkpoints it and
resumes exactly, and bad decays are refused."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from causalvae.errors import CausalVAEError
from causalvae.store import latest_checkpoint
from causalvae.train import TrainConfig, WeightAverage, fit

TINY = dict(batch_size=32, width=8, depth=3, hidden=32, z_dim=4, threads=1)


@pytest.fixture(scope="module")
def morpho_tiny(tmp_path_factory):
    from causalvae.generate import generate

    return generate("morpho", tmp_path_factory.mktemp("ema") / "morpho", 120, seed=4)


def test_the_average_moves_each_weight_by_one_minus_the_decay_and_swaps_back_exactly():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    net.register_buffer("count", torch.tensor(3))
    start = {k: t.clone() for k, t in net.state_dict().items()}
    avg = WeightAverage(net, 0.9)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
        net.count.fill_(7)
    avg.update(net)
    for k, a in avg.entries().items():
        if a.is_floating_point():
            torch.testing.assert_close(a, 0.9 * start[k] + 0.1 * (start[k] + 1.0), rtol=0, atol=1e-6)
    assert int(avg.entries()["count"]) == 7  # integer entries are copied, not averaged
    live = {k: t.clone() for k, t in net.state_dict().items()}
    params = list(net.parameters())
    with avg.swapped_in(net):
        torch.testing.assert_close(net[0].weight, avg.entries()["0.weight"], rtol=0, atol=0)
    assert all(a is b for a, b in zip(params, net.parameters()))  # the optimiser's tensors stay
    for k, t in net.state_dict().items():
        torch.testing.assert_close(t, live[k], rtol=0, atol=0)
    # A second update moves it again by a tenth of the remaining gap.
    before = avg.entries()["1.bias"].clone()
    avg.update(net)
    torch.testing.assert_close(avg.entries()["1.bias"], before + 0.1 * (net[1].bias.detach() - before), rtol=0, atol=1e-6)


def _checkpoint(ck):
    return load_file(ck / json.loads((ck / "state.json").read_text())["tensors"]["file"])


def test_a_run_with_the_average_saves_it_and_resumes_exactly(morpho_tiny, tmp_path):
    """The average moves after each optimiser step by half the gap (decay 0.5) to that step's
    live weights; the model file is the average held in the last checkpoint, not the live
    weights beside it; the validation rows score the average; a run of 2 steps extended to 4
    ends with the model of a 4-step run (which needs the average in the checkpoint); and a
    finished run whose model files are lost writes the average again."""
    kw = dict(data=str(morpho_tiny), cf_weight=0.0, lr_schedule="constant", checkpoint_every=1, val_limit=16, **TINY)
    whole = fit(TrainConfig(out=str(tmp_path / "whole"), max_steps=4, ema=0.5, **kw), progress=False)
    fit(TrainConfig(out=str(tmp_path / "parts"), max_steps=2, ema=0.5, **kw), progress=False)
    parts = fit(TrainConfig(out=str(tmp_path / "parts"), max_steps=4, ema=0.5, **kw), progress=False)
    plain = fit(TrainConfig(out=str(tmp_path / "plain"), max_steps=4, **kw), progress=False)
    step3, step4 = sorted((whole / "checkpoints").glob("step-*"))
    before, tensors = _checkpoint(step3), _checkpoint(step4)
    model = load_file(whole / "model.safetensors")
    for k in model:  # ema_4 = lerp(ema_3, live_4, 1 - decay), and not with the step-3 live weights
        ema3, ema4 = before["model.ema." + k.replace(".", "/")], tensors["model.ema." + k.replace(".", "/")]
        torch.testing.assert_close(ema4, torch.lerp(ema3, tensors["model.vae." + k], 0.5), rtol=0, atol=0, msg=k)
    assert any(not torch.equal(tensors["model.ema." + k.replace(".", "/")], torch.lerp(before["model.ema." + k.replace(".", "/")], before["model.vae." + k], 0.5)) for k in model)
    # The live weights take the plain run's steps; the validation columns score the average.
    rows = [r.split(",") for r in (whole / "metrics.csv").read_text().splitlines()]
    rows_plain = [r.split(",") for r in (plain / "metrics.csv").read_text().splitlines()]
    head = rows[0]
    train_cols = [head.index(c) for c in ("train_elbo", "train_recon", "train_kl")]
    val_cols = [head.index(c) for c in ("val_elbo", "val_recon")]
    assert len(rows) == len(rows_plain) > 1
    for r, q in zip(rows[1:], rows_plain[1:]):
        assert [r[i] for i in train_cols] == [q[i] for i in train_cols]
        assert all(r[i] != q[i] for i in val_cols)
    plain_model = load_file(plain / "model.safetensors")
    for k in model:
        torch.testing.assert_close(plain_model[k], tensors["model.vae." + k], rtol=0, atol=0, msg=k)
    assert not any("ema" in k or "/" in k for k in model)
    moved = 0
    for k, t in model.items():
        torch.testing.assert_close(t, tensors["model.ema." + k.replace(".", "/")], rtol=0, atol=0, msg=k)
        moved += int(t.is_floating_point() and not torch.equal(t, tensors["model.vae." + k]))
    assert moved > 0  # the average is not the live weights
    other = load_file(parts / "model.safetensors")
    assert other.keys() == model.keys()
    for k in model:
        torch.testing.assert_close(other[k], model[k], rtol=0, atol=0, msg=k)
    assert json.loads((whole / "train.json").read_text())["ema"] == 0.5
    # A finished run whose model files are lost writes them again from the checkpoint: the average.
    (whole / "config.json").unlink()
    (whole / "model.safetensors").unlink()
    fit(TrainConfig(out=str(tmp_path / "whole"), max_steps=4, ema=0.5, **kw), progress=False)
    again = load_file(whole / "model.safetensors")
    for k in model:
        torch.testing.assert_close(again[k], model[k], rtol=0, atol=0, msg=k)


def test_a_run_without_the_average_saves_its_live_weights(morpho_tiny, tmp_path):
    run = fit(TrainConfig(data=str(morpho_tiny), out=str(tmp_path / "plain"), max_steps=2, cf_weight=0.0, checkpoint_every=1, val_limit=16, **TINY), progress=False)
    ck = latest_checkpoint(run / "checkpoints")
    tensors = load_file(ck / json.loads((ck / "state.json").read_text())["tensors"]["file"])
    model = load_file(run / "model.safetensors")
    assert not any(k.startswith("model.ema") for k in tensors)
    for k, t in model.items():
        torch.testing.assert_close(t, tensors["model." + k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, True, "x"])
def test_a_decay_outside_zero_to_one_is_refused(bad):
    with pytest.raises(CausalVAEError, match="ema is the decay of the weights' moving average"):
        TrainConfig(data="d", out="o", ema=bad).check()
