"""The morpho world's chain, tiny: generate -> train -> oracle (from a render pool) ->
``causalvae evaluate``. The report scores the continuous parents (thickness, intensity) and
keeps its causal sense: exact reference distributions that tell conditioning from
intervening, interventions named by their values, non-descendants kept."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from causalvae.data import load as load_dataset
from causalvae.evaluate import _intervention_values
from causalvae.generate import generate
from causalvae.oracle import pooled, save_oracle, train_oracle
from causalvae.report import goals, markdown
from causalvae.train import TrainConfig, fit
from causalvae.worlds.morpho import true_counterfactual


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """A tiny morpho dataset and a model trained 3 steps on it: ``(root, data, run)``."""
    root = tmp_path_factory.mktemp("morpho-chain")
    data = generate("morpho", root / "data", 160, seed=5)
    run = fit(TrainConfig(data=str(data), out=str(root / "run"), max_steps=3, batch_size=32, width=8, depth=3, hidden=32, z_dim=4,
                          cf_weight=0.0, threads=1), progress=False)
    return root, data, run


@pytest.fixture(scope="module")
def report(chain):
    from typer.testing import CliRunner

    from causalvae.cli import app

    root, data, run = chain
    oracle, scores = train_oracle("morpho", steps=3, batch_size=8, held_out=8, pool=16, seed=1)
    save_oracle(oracle, root / "oracle", scores, {"steps": 3})
    res = CliRunner().invoke(app, ["evaluate", str(run), "--oracle", str(root / "oracle"), "--out", str(root / "report"),
                                   "--n-generate", "8", "--iw-k", "2", "--iw-images", "4", "--cf-images", "3"])
    assert res.exit_code == 0, res.output
    return data, json.loads((root / "report" / "report.json").read_text()), (root / "report" / "report.md").read_text()


def _numbers(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _numbers(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from _numbers(v)
    elif isinstance(tree, float):
        yield tree


@pytest.mark.slow  # the chain: about 25 s of CPU, most of it rendering digits (35 ms each)
def test_the_report_scores_the_continuous_parents(report):
    data, rep, text = report
    assert rep["world"] == "morpho" and all(math.isfinite(x) for x in _numbers(rep))
    assert set(rep["reconstruction"]["oracle_mae"]) == {"thickness", "intensity"}
    gen = {g["query"]: g for g in rep["generation"]}
    assert list(gen) == ["P(.)", "P(. | intensity=200)", "P(. | do(intensity=200))"]
    assert set(gen["P(.)"]["continuous_targets"]) == {"thickness", "intensity"}
    assert set(gen["P(. | intensity=200)"]["continuous_targets"]) == {"thickness"}  # the evidence is not a target
    # The exact references: thickness = 0.5 + Gamma(10, 5) has mean 2.5 (sd 0.63; 20,000
    # draws: a standard error of 0.005). Intervening on the ink leaves it there; seeing a
    # bright stroke (intensity 200: 2 (t - 2.5) + 0.5 U = logit(136 / 191)) makes it thicker.
    marginal = gen["P(.)"]["continuous_targets"]["thickness"]["mean_exact"]
    done = gen["P(. | do(intensity=200))"]["continuous_targets"]["thickness"]["mean_exact"]
    seen = gen["P(. | intensity=200)"]["continuous_targets"]["thickness"]["mean_exact"]
    assert marginal == pytest.approx(2.5, abs=0.02) and done == pytest.approx(2.5, abs=0.02)
    assert seen > done + 0.2
    for g in rep["generation"]:
        for t in g["continuous_targets"].values():
            assert t["w1_model"] >= 0 and t["w1_true_renders"] >= 0
        assert g["targets"]["digit"]["exact"] == pytest.approx([0.1] * 10)  # the digit is independent of the ink
    assert rep["realism"]["pictures"] >= 2 and rep["realism"]["fd_model"] >= 0 and rep["realism"]["fd_real_halves"] >= 0


@pytest.mark.slow  # the chain: about 25 s of CPU, most of it rendering digits (35 ms each)
def test_counterfactual_rows_name_their_values_and_keep_non_descendants(report):
    data, rep, text = report
    cf = rep["counterfactuals"]
    from causalvae.graph import Graph

    graph = Graph.load("morpho")
    for v in ("thickness", "intensity"):
        rows = [r for r in cf if list(r["do"]) == [v]]
        assert [r["do"][v] for r in rows] == _intervention_values(graph, v, 0) and len(rows) == 4
        values = [r["do"][v] for r in rows]
        assert values == sorted(values) and len(set(values)) == 4
        for r in rows:
            assert set(r["continuous"]) == {"thickness", "intensity"} and r["pixel_mae_to_true_render"] >= 0
            # the digit is no descendant of the stroke: the model keeps its label, and the
            # exact twin network says the same (a point mass)
            assert r["variables"]["digit"]["tv_used"] == pytest.approx(0.0) and r["variables"]["digit"]["truth_ceiling"] == pytest.approx(1.0)
    assert [r["do"] for r in cf[:10]] == [{"digit": str(d)} for d in range(10)]
    # the goals name the intervened variables' own scores, computed from these rows
    table = {g["goal"]: g["value"] for g in goals(rep)}
    thick = [r["continuous"]["thickness"]["mae_read"] for r in cf if list(r["do"]) == ["thickness"]]
    assert table["counterfactual thickness: oracle-read mean absolute error to the intervened value"] == pytest.approx(np.mean(thick))
    digit = [r["variables"]["digit"]["effectiveness"] for r in cf[:10]]
    assert table["counterfactual digit: read as the intervened value, under do(digit)"] == pytest.approx(np.mean(digit))
    assert rep["axioms"]["reversibility_target"] == "digit" and rep["axioms"]["reversibility_3"] >= 0
    for section in ("### Continuous variables", "## Realism", "| FD in the oracle's feature space, ", "### Continuous parents", "| thickness=1.8 |"):
        assert section in text
    assert markdown(rep) == text


@pytest.mark.slow  # the chain: about 25 s of CPU, most of it rendering digits (35 ms each)
def test_the_true_counterfactual_of_the_null_intervention_is_the_test_picture(report):
    data = report[0]
    test = load_dataset(data, split="test", truth=True, verify=False)
    values, noise = test.truth_table()
    _, pictures = true_counterfactual(values, noise, test.truth_style[test.indices], {})
    np.testing.assert_array_equal(pictures, test.batch(np.arange(len(test)))[0].numpy())


def test_a_render_pool_is_drawn_once_and_partly_refreshed():
    calls = []

    def draw(n, rng):  # each render carries the number of its draw and its place in that draw
        calls.append(n)
        return np.full((n, 1), len(calls)), np.arange(n)[:, None]

    batch = pooled(draw, 50, 5000, np.random.default_rng(0), refresh_every=2, refresh_share=0.1)
    assert calls == [50]  # the pool is rendered once, up front
    which, place = batch()
    assert (which == 1).all() and len(np.unique(place)) == 50 and calls == [50]  # 5000 picks cover the 50 renders
    which, place = batch()  # every second batch first re-renders 10% of the pool, at random places
    assert calls == [50, 5]
    pairs = set(zip(which[:, 0].tolist(), place[:, 0].tolist()))
    assert sum(1 for w, _ in pairs if w == 2) == 5 and sum(1 for w, _ in pairs if w == 1) == 45


@pytest.mark.slow  # the chain: about 25 s of CPU, most of it rendering digits (35 ms each)
def test_the_pixel_goal_leaves_out_the_stand_in_renders_of_do_digit(report):
    """do(digit) has no true picture of the same writer (its true render is another writer's
    digit): its rows stay, named as stand-ins, but the goal comparing the counterfactual's
    pixel MAE with the reconstruction's averages the same-writer interventions only."""
    data, rep, text = report
    assert set(rep["stand_in_renders"]) == {"digit"} and "do(digit): the source of the new digit" in text
    same_writer = [r["pixel_mae_to_true_render"] for r in rep["counterfactuals"] if "digit" not in r["do"]]
    assert same_writer and len(same_writer) < len(rep["counterfactuals"])
    row = {g["goal"]: g for g in goals(rep)}["counterfactual pixel MAE to the true render / reconstruction MAE"]
    assert row["value"] == pytest.approx(np.mean(same_writer) / rep["reconstruction"]["pixel_mae"])


@pytest.mark.slow  # the chain: about 25 s of CPU, most of it rendering digits (35 ms each)
def test_the_true_renders_read_by_the_judge_give_its_ceiling(report):
    # Under the null intervention the true counterfactual render of every test picture is the
    # picture itself: the oracle's reading of the true renders is then exactly its reading of
    # the test pictures, whatever the oracle's quality (this one trained 3 steps).
    from pathlib import Path

    from causalvae.evaluate import EvalSettings, evaluate_run
    from causalvae.oracle import load_oracle
    from causalvae.run import Run

    data, rep, text = report
    root = Path(data).parent
    null = evaluate_run(Run.open(root / "run"), load_oracle(root / "oracle"),
                        EvalSettings(n_generate=4, iw_k=2, iw_images=0, cf_images=None, axiom_images=2, interventions=[{}]))
    row, R = null["counterfactuals"][0], null["reconstruction"]
    assert row["do"] == {} and row["pictures"] == null["test_pictures"]
    assert row["variables"]["digit"]["effectiveness_true_renders"] == pytest.approx(R["oracle_accuracy_on_test_pictures"]["digit"])
    for c in ("thickness", "intensity"):
        assert row["continuous"][c]["mae_read_true_renders"] == pytest.approx(R["oracle_mae_on_test_pictures"][c], rel=1e-6, abs=1e-6)
    # The full report carries the ceiling beside each goal it bounds, from the same rows.
    table = {g["goal"]: g for g in goals(rep)}
    digit = [r["variables"]["digit"]["effectiveness_true_renders"] for r in rep["counterfactuals"][:10]]
    assert table["counterfactual digit: read as the intervened value, under do(digit)"]["true_renders"] == pytest.approx(np.mean(digit))
    assert "| effectiveness of the true renders |" in text and "thickness MAE, true renders" in text


@pytest.mark.slow  # the chain: about 25 s of CPU, most of it rendering digits (35 ms each)
def test_the_report_names_its_judge_by_the_hash_of_its_weights(report):
    # Two reports can be said to share one judge only if they name it: the hash of the
    # oracle's weights file, as read, in report.json and in report.md.
    import hashlib
    from pathlib import Path

    _, rep, text = report
    root = Path(rep["oracle"]["path"])
    digest = hashlib.sha256((root / "oracle.safetensors").read_bytes()).hexdigest()
    assert rep["oracle"]["weights_sha256"] == digest == json.loads((root / "config.json").read_text())["weights_sha256"]
    assert f"SHA-256 `{digest[:16]}`" in text


@pytest.mark.slow
def test_the_cli_counterfactual_calls_the_render_of_a_new_digit_a_stand_in(chain, tmp_path):
    """`causalvae counterfactual` of a test digit: under do(digit) the render beside the
    model's is another writer's digit, captioned and explained as a stand-in; under
    do(thickness) it is the same writer's true counterfactual, and called so."""
    from typer.testing import CliRunner

    from causalvae.cli import app

    _, data, run = chain
    test = load_dataset(data, split="test", verify=False)
    _, labels = test.batch(np.arange(1))
    new = (int(np.asarray(labels)[0, list(test.label_columns).index("digit")]) + 1) % 10  # another digit than test picture 0's
    r = CliRunner().invoke(app, ["counterfactual", str(run), "--index", "0", "--do", f"digit={new}", "--out", str(tmp_path / "d.png")], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert "the render beside it is a stand-in under a new digit: the source of the new digit at the same rank" in " ".join(r.output.split())  # wrapped at any width
    r = CliRunner().invoke(app, ["counterfactual", str(run), "--index", "0", "--do", "thickness=3", "--out", str(tmp_path / "t.png")], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert "stand-in" not in r.output
