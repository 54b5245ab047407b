"""The evaluation report runs end to end on a tiny model, and its oracle is a real reader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from causalvae.data import load as load_dataset
from causalvae.errors import CausalVAEError
from causalvae.evaluate import EvalSettings, evaluate, markdown, summary_rows, write_report
from causalvae.generate import generate_scenes
from causalvae.oracle import OracleError, load_oracle, renderer, save_oracle, train_oracle
from causalvae.store import load
from causalvae.train import TrainConfig, fit


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = generate_scenes(root / "scenes", 300, seed=8)
    run = fit(TrainConfig(data=str(data), out=str(root / "run"), max_steps=4, batch_size=32, width=8, depth=3, hidden=32, z_dim=4, threads=1), progress=False)
    return data, run


@pytest.mark.parametrize("world", ["scenes", "sprites"])
def test_true_renderer_redraws_a_dataset_from_its_recorded_truth(world, tmp_path):
    """The true mechanism behind the metrics: a dataset's pictures are exactly the renders of
    its recorded values and style."""
    from causalvae.generate import generate_sprites
    from causalvae.worlds.truth import TrueRenderer

    make = generate_scenes if world == "scenes" else generate_sprites
    ds = load_dataset(make(tmp_path / world, 24, seed=2), truth=True)
    cols = list(ds.manifest["truth_columns"])
    values = {v: ds.truth_values[:, cols.index(v)].astype(np.int64) for v in cols}
    redrawn = TrueRenderer(world).render(values, ds.truth_style)
    np.testing.assert_array_equal(redrawn, np.asarray(ds.images).transpose(0, 3, 1, 2))


def test_oracle_learns_and_round_trips(tmp_path):
    """A short training already reads the characters far above chance; files round-trip and
    corrupt ones are refused."""
    oracle, acc = train_oracle("scenes", steps=40, batch_size=32, held_out=200, seed=1)
    assert acc["actor"] > 0.9 and acc["reactor"] > 0.9, acc
    save_oracle(oracle, tmp_path / "o", acc, {"steps": 40})
    again = load_oracle(tmp_path / "o")
    x = torch.from_numpy(renderer("scenes")[1](8, np.random.default_rng(3))[0])
    np.testing.assert_array_equal(again.read(x), oracle.read(x))
    w = tmp_path / "o" / "oracle.safetensors"
    w.write_bytes(w.read_bytes()[:-10])
    with pytest.raises(OracleError, match="does not match config.json"):
        load_oracle(tmp_path / "o")


def test_evaluation_report_end_to_end(tiny_run, tmp_path):
    data, run = tiny_run
    vae = load(run)
    oracle, acc = train_oracle("scenes", steps=2, batch_size=8, held_out=16)
    test = load_dataset(data, split="test", truth=True, verify=False)
    settings = EvalSettings(n_generate=40, iw_k=3, iw_images=6, cf_images=12, axiom_images=6, interventions=[{"action": "Walk"}, {"actor_attack": "High", "reactor_defense": "Low"}])
    report = evaluate(vae, oracle, test, settings)
    assert report["likelihood"]["iw_bound"] >= report["likelihood"]["elbo"] - 50  # a tighter bound, up to noise
    gen = report["generation"]
    assert [g["query"] for g in gen][0] == "P(. | reaction=Dying)"
    assert "reaction" not in gen[0]["targets"] and "action" in gen[0]["targets"]
    # The exact column is the engine's answer: P(action=Attack | reaction=Dying) = 0.60.
    assert gen[0]["targets"]["action"]["exact"][0] == pytest.approx(0.6, abs=0.005)
    for g in gen:
        for t in g["targets"].values():
            assert 0.0 <= t["tv_model"] <= 1.0 and 0.0 <= t["tv_true_renders"] <= 1.0
    cf = report["counterfactuals"]
    assert [r["do"] for r in cf] == settings.interventions
    walk = cf[0]["variables"]
    # Non-descendants of the action keep their factual labels: the values used equal the exact (point mass).
    assert walk["actor"]["tv_used"] == pytest.approx(0.0)
    assert walk["actor"]["truth_ceiling"] == pytest.approx(1.0)
    s = summary_rows(report)
    assert set(s) >= {"generation_tv_model", "counterfactual_truth_ceiling"}
    write_report(report, tmp_path / "rep")
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["world"] == "scenes"
    assert "## Counterfactuals" in (tmp_path / "rep" / "report.md").read_text()
    assert (tmp_path / "rep" / "generation_tv.png").stat().st_size > 1000
    with pytest.raises(CausalVAEError, match="truth=True"):
        evaluate(vae, oracle, load_dataset(data, split="test", verify=False), settings)
