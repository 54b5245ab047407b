"""The adversary of z (--adversary-weight): its two sides reach only their own weights, its
confusion measures what z says of the parents, and a run with it trains, checkpoints and
resumes exactly."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from causalvae.errors import CausalVAEError
from causalvae.store import latest_checkpoint
from causalvae.train import TrainConfig, ZAdversary, adversary_terms, build_model, fit
from causalvae.data import load as load_dataset

TINY = dict(batch_size=32, width=8, depth=3, hidden=32, z_dim=4, threads=1)


@pytest.fixture(scope="module")
def morpho_tiny(tmp_path_factory):
    from causalvae.generate import generate

    return generate("morpho", tmp_path_factory.mktemp("adv") / "morpho", 120, seed=4)


def _vae(data, **kw):
    ds = load_dataset(data, split="train", verify=False)
    return build_model(TrainConfig(data=str(data), out="o", **{**TINY, **kw}), ds), ds


def test_each_side_reaches_only_its_own_weights(morpho_tiny):
    """The fit term trains the adversary and not the code; the confusion term moves the code
    and not the adversary; the accuracy counts rows whose digit the adversary reads right."""
    vae, ds = _vae(morpho_tiny)
    adv = ZAdversary(vae)
    assert adv.parents == ["digit"] and adv.dims == [10]
    _, labels = ds.batch(np.arange(16))
    z = torch.randn(16, TINY["z_dim"], requires_grad=True)
    fit_loss, confusion, accuracy = adversary_terms(vae, adv, labels, z)
    digit = labels[:, vae.label_columns.index("digit")]
    assert accuracy == pytest.approx(float((adv(z)[0].argmax(-1) == digit).float().mean()))
    g_adv = torch.autograd.grad(fit_loss, list(adv.parameters()), allow_unused=True)
    assert all(g is not None and g.abs().sum() > 0 for g in g_adv)
    assert not fit_loss.grad_fn is None and torch.autograd.grad(fit_loss, z, allow_unused=True)[0] is None
    (g_z,) = torch.autograd.grad(confusion, z, retain_graph=True)
    assert g_z.abs().sum() > 0
    assert all(p.grad is None for p in adv.parameters())
    confusion.backward()
    assert all(p.grad is None for p in adv.parameters())


def test_confusion_is_zero_for_a_flat_reading_and_log_k_for_a_certain_one(morpho_tiny):
    """KL(uniform || reading), in nats: 0 when the adversary reads nothing, and its exact
    value for a reading sure of one digit; rows with an unlabelled digit take no part."""
    vae, ds = _vae(morpho_tiny)
    adv = ZAdversary(vae)
    _, labels = ds.batch(np.arange(8))
    digit = labels[:, vae.label_columns.index("digit")]
    last = adv.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    _, flat, _ = adversary_terms(vae, adv, labels, torch.randn(8, TINY["z_dim"]))
    assert float(flat) == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        last.bias.copy_(torch.tensor([5.0] + [0.0] * 9))  # always reads "0", at p = e^5 / (e^5 + 9)
    _, sure, acc = adversary_terms(vae, adv, labels, torch.randn(8, TINY["z_dim"]))
    # mean over the classes of -log p, less log 10: log(e^5 + 9) - 5/10 - log 10
    assert float(sure) == pytest.approx(math.log(math.exp(5) + 9) - 0.5 - math.log(10), rel=1e-5)
    assert acc == pytest.approx(float((digit == 0).float().mean()))
    labels[:, vae.label_columns.index("digit")] = -1
    fit_loss, confusion, acc = adversary_terms(vae, adv, labels, torch.randn(8, TINY["z_dim"]))
    assert float(fit_loss) == 0.0 and float(confusion) == 0.0 and math.isnan(acc)


def test_a_run_with_the_adversary_checkpoints_it_and_resumes_exactly(morpho_tiny, tmp_path):
    """The adversary's weights are in the checkpoints (not in the model files), and a run
    stopped after 2 steps and resumed to 4 ends with the weights of an uninterrupted run."""
    kw = dict(data=str(morpho_tiny), cf_weight=0.0, adversary_weight=5.0, lr_schedule="constant", checkpoint_every=1, val_limit=16, **TINY)
    whole = fit(TrainConfig(out=str(tmp_path / "whole"), max_steps=4, **kw), progress=False)
    fit(TrainConfig(out=str(tmp_path / "parts"), max_steps=2, **kw), progress=False)
    parts = fit(TrainConfig(out=str(tmp_path / "parts"), max_steps=4, **kw), progress=False)
    from safetensors.torch import load_file

    ck = latest_checkpoint(whole / "checkpoints")
    state = json.loads((ck / "state.json").read_text())
    tensors = load_file(ck / state["tensors"]["file"])
    assert any(k.startswith("model.adversary.") for k in tensors) and any(k.startswith("model.vae.") for k in tensors)
    model_a = load_file(whole / "model.safetensors")
    model_b = load_file(parts / "model.safetensors")
    assert not any("adversary" in k for k in model_a)
    assert model_a.keys() == model_b.keys()
    for k in model_a:
        torch.testing.assert_close(model_a[k], model_b[k], rtol=0, atol=0, msg=k)
    assert json.loads((whole / "train.json").read_text())["adversary_weight"] == 5.0


def test_the_adversary_refuses_a_graph_it_cannot_read_and_bad_weights(morpho_tiny, tmp_path):
    for bad in (-1.0, True, "x"):
        with pytest.raises(CausalVAEError, match="adversary-weight must be a number >= 0"):
            TrainConfig(data="d", out="o", adversary_weight=bad).check()
    with pytest.raises(CausalVAEError, match="adversary-weight reads the image's parents off z.*digit is not"):
        fit(TrainConfig(data=str(morpho_tiny), out=str(tmp_path / "w"), max_steps=1, cf_weight=0.0, adversary_weight=1.0, withhold={"digit": 0.5}, **TINY), progress=False)
    assert not (tmp_path / "w" / "config.json").exists()


def test_several_readers_give_the_mean_of_their_terms_on_the_same_counterfactuals(morpho_tiny):
    """counterfactual_term with readers [a, b] is (term(a) + term(b)) / 2 at the same random
    draws (the same interventions and prior codes), and a list of one is the reader itself."""
    from causalvae.train import counterfactual_term, make_reader

    vae, ds = _vae(morpho_tiny)
    images, labels = ds.batch(np.arange(16))
    cont = ds.continuous_batch(np.arange(16))
    torch.manual_seed(1)
    a, b = make_reader(vae).eval(), make_reader(vae).eval()

    def term(r):
        torch.manual_seed(7)
        with torch.no_grad():
            return float(counterfactual_term(vae.eval(), r, images, labels, cont))

    assert term([a, b]) == pytest.approx((term(a) + term(b)) / 2, rel=1e-5)
    assert term([a]) == pytest.approx(term(a), rel=1e-6)
    assert term(a) != pytest.approx(term(b), rel=1e-3)
    with pytest.raises(CausalVAEError, match="at least one reader"):
        counterfactual_term(vae, [], images, labels, cont)


def test_a_run_with_two_readers_trains_both_and_records_each(morpho_tiny, tmp_path):
    """--readers 2: two readers of seeds seed and seed + 1 (the first is the one reader a
    single-reader run trains), each recorded in reader.json; the training steps ask both."""
    import causalvae.train as T

    seen = []
    real = T.counterfactual_term

    def spy(vae, reader, *a, **kw):
        seen.append(reader)
        return real(vae, reader, *a, **kw)

    kw = dict(data=str(morpho_tiny), cf_weight=1.0, reader_steps=3, max_steps=2, val_limit=16, **TINY)
    import unittest.mock as mock

    with mock.patch.object(T, "counterfactual_term", spy):
        two = fit(TrainConfig(out=str(tmp_path / "two"), readers=2, **kw), progress=False)
    one = fit(TrainConfig(out=str(tmp_path / "one"), **kw), progress=False)
    rec2, rec1 = (json.loads((r / "reader.json").read_text()) for r in (two, one))
    assert rec2["readers"] == 2 and len(rec2["each"]) == 2 and "readers" not in rec1
    assert rec2["val_accuracy_all_parents"] == rec1["val_accuracy_all_parents"] == rec2["each"][0]["val_accuracy_all_parents"]
    assert rec2["each"][0]["val_residual_sd"] == rec1["val_residual_sd"] != rec2["each"][1]["val_residual_sd"]
    assert len(seen) == 2 and all(isinstance(r, list) and len(r) == 2 for r in seen)
    for bad in (0, 9, True, 1.5):
        with pytest.raises(CausalVAEError, match="readers must be a whole number from 1 to 8"):
            TrainConfig(data="d", out="o", readers=bad).check()
    with pytest.raises(CausalVAEError, match="readers sets how many readers.*cf-weight > 0"):
        TrainConfig(data="d", out="o", readers=2, cf_weight=0.0).check()
