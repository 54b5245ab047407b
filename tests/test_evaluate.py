"""The evaluation report runs end to end on a tiny model, and its oracle is a real reader."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from causalvae.data import load as load_dataset
from causalvae.errors import CausalVAEError
from causalvae.evaluate import EvalSettings, evaluate
from causalvae.metrics import iou
from causalvae.queries import reconstruct
from causalvae.report import goals, goals_markdown, markdown, summary_rows, write_report
from causalvae.generate import generate
from causalvae.oracle import OracleError, load_oracle, renderer, save_oracle, train_oracle
from causalvae.store import load
from causalvae.train import TrainConfig, fit


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = generate("scenes", root / "scenes", 300, seed=8)
    run = fit(TrainConfig(data=str(data), out=str(root / "run"), max_steps=4, batch_size=32, width=8, depth=3, hidden=32, z_dim=4, threads=1), progress=False)
    return data, run


@pytest.mark.parametrize("world", ["scenes", "sprites"])
def test_true_renderer_redraws_a_dataset_from_its_recorded_truth(world, tmp_path):
    """The true mechanism behind the metrics: a dataset's pictures are exactly the renders of
    its recorded values and style."""
    from causalvae import worlds
    from causalvae.generate import generate

    ds = load_dataset(generate(world, tmp_path / world, 24, seed=2), truth=True)
    cols = list(ds.manifest["truth_columns"])
    values = {v: ds.truth_values[:, cols.index(v)].astype(np.int64) for v in cols}
    redrawn = worlds.get(world).renderer().render(values, ds.truth_style)
    np.testing.assert_array_equal(redrawn, np.asarray(ds.images).transpose(0, 3, 1, 2))


@pytest.mark.slow
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
    assert report["likelihood"]["iw_bound"] >= report["likelihood"]["elbo_on_iw_pictures"] - 50  # a tighter bound on the same pictures, up to noise
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
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "## Counterfactuals" in text
    # What the misses are: per variable, wrong readings only, most frequent first, adding up to
    # no more than what its effectiveness misses.
    for r in cf:
        for c, v in r["variables"].items():
            shares = [m["share"] for m in v["misread"]]
            assert shares == sorted(shares, reverse=True) and all(m["used"] != m["read"] for m in v["misread"])
            assert sum(shares) <= 1 - v["effectiveness"] + 1e-9
            if v["effectiveness"] < 1:
                assert v["misread"] and f"| {c} | {v['misread'][0]['used']} | {v['misread'][0]['read']} |" in text
            for m in v["misread"]:
                assert 0.0 <= m["share_true_renders"] <= 1.0
    # No continuous image parent: none of their sections (tests/test_morpho_evaluate.py has them).
    assert "realism" not in report and "oracle_mae" not in report["reconstruction"]
    assert all("continuous_targets" not in g for g in gen) and all("continuous" not in r for r in cf)
    assert "## Realism" not in text and "### Continuous" not in text and "W1" not in text
    assert (tmp_path / "rep" / "generation_tv.png").stat().st_size > 1000
    with pytest.raises(CausalVAEError, match="truth=True"):
        evaluate(vae, oracle, load_dataset(data, split="test", verify=False), settings)


def test_the_likelihood_section_is_seeded_by_the_reports_seed(tiny_run):
    """The ELBO draws z from torch's global generator: the report seeds it, so the same seed
    gives the same bound whatever the caller drew before, and another seed another draw."""
    data, run = tiny_run
    vae = load(run)
    oracle, _ = train_oracle("scenes", steps=1, batch_size=4, held_out=4)
    test = load_dataset(data, split="test", truth=True, verify=False)

    def likelihood(seed: int) -> dict:
        s = EvalSettings(n_generate=1, iw_k=2, iw_images=4, cf_images=1, axiom_images=2, interventions=[{"action": "Walk"}], seed=seed)
        return evaluate(vae, oracle, test, s)["likelihood"]

    torch.manual_seed(123)
    first = likelihood(0)
    torch.rand(7)  # the caller's generator moved on
    again = likelihood(0)
    assert again["elbo"] == first["elbo"] and again["elbo_on_iw_pictures"] == first["elbo_on_iw_pictures"]
    assert likelihood(1)["elbo"] != first["elbo"]


def test_query_commands_on_a_trained_run(tiny_run, tmp_path):
    """The picture commands run on a run directory, and bad inputs get one clear error."""
    from PIL import Image
    from typer.testing import CliRunner

    from causalvae.cli import app

    data, run = tiny_run
    cli = CliRunner()
    res = cli.invoke(app, ["sample", str(run), "--given", "reaction=Dying", "--n", "4", "--beside-truth", "--out", str(tmp_path / "s.png")])
    assert res.exit_code == 0, res.output
    assert "│ action " in res.output and "│ reaction " not in res.output  # the evidence is not listed
    with Image.open(tmp_path / "s.png") as im:
        assert im.width > 4 * 64
    res = cli.invoke(app, ["counterfactual", str(run), "--match", "actor=Golem", "--do", "action=Walk", "--out", str(tmp_path / "cf.png")])
    assert res.exit_code == 0, res.output
    assert "matches actor=Golem" in res.output
    for cmd in (["counterfactual", str(run), "--index", "0", "--do", "action=Walk"], ["reconstruct", str(run), "--n", "2"]):
        res = cli.invoke(app, [*cmd, "--refine", "2", "--out", str(tmp_path / "refined.png")])
        assert res.exit_code == 0 and (tmp_path / "refined.png").exists(), res.output
        (tmp_path / "refined.png").unlink()
        for bad in ("-1", "501"):  # at most 500 steps, as `causalvae serve --refine`
            res = cli.invoke(app, [*cmd, "--refine", bad, "--out", str(tmp_path / "refined.png")])
            assert res.exit_code == 2 and "--refine" in res.output and not (tmp_path / "refined.png").exists(), (cmd, bad, res.output)
    res = cli.invoke(app, ["evaluate", str(run), "--oracle", str(tmp_path), "--refine", "501", "--out", str(tmp_path / "report")])
    assert res.exit_code == 2 and "--refine" in res.output and "500" in res.output and not (tmp_path / "report").exists(), res.output
    small = tmp_path / "small.png"
    Image.new("RGB", (32, 32)).save(small)
    res = cli.invoke(app, ["counterfactual", str(run), "--image", str(small), "--labels", "actor=Golem", "--do", "action=Walk", "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "the picture is 32x32; this model needs 64x64" in res.output
    grey = tmp_path / "grey.png"
    Image.new("L", (64, 64)).save(grey)
    res = cli.invoke(app, ["counterfactual", str(run), "--image", str(grey), "--labels", "actor=Golem", "--do", "action=Walk", "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "needs a colour (RGB) picture" in res.output
    res = cli.invoke(app, ["sample", str(run), "--do", "action=Wlak", "--out", str(tmp_path / "y.png")])
    assert res.exit_code == 2 and "Wlak" in res.output
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


def test_sprites_evaluation_scores_iou_over_symmetric_equivalents(tmp_path):
    from causalvae import worlds
    from causalvae.generate import generate

    data = generate("sprites", tmp_path / "sprites", 200, seed=4)
    run = fit(TrainConfig(data=str(data), out=str(tmp_path / "run"), max_steps=3, batch_size=32, width=8, depth=3, hidden=32, z_dim=4, threads=1), progress=False)
    vae = load(run)
    oracle, _ = train_oracle("sprites", steps=2, batch_size=8, held_out=16)
    test = load_dataset(data, split="test", truth=True, verify=False)
    # Every abduction of this report refines z three steps (--refine 3), and the report says so:
    # the reconstructions (one batch), the counterfactual (one batch), ten null interventions
    # and three intervene-and-back cycles of two abductions each.
    from causalvae import queries

    steps, real = [], queries.refine_code
    settings = EvalSettings(n_generate=24, iw_k=2, iw_images=4, cf_images=8, axiom_images=4, interventions=[{"shape": "square"}], refine=3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(queries, "refine_code", lambda *a: steps.append(a[-1]) or real(*a))
        report = evaluate(vae, oracle, test, settings)
    assert steps == [3] * (1 + 1 + 10 + 6)
    assert report["settings"]["refine"] == 3 and "refined by 3 steps" in markdown(report)
    # A second intervention abducts the same pictures with the same parents: their refined
    # codes are kept from the first (queries.abduct's codes; equal to a fresh refinement,
    # test_queries).
    steps.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(queries, "refine_code", lambda *a: steps.append(a[-1]) or real(*a))
        two = evaluate(vae, oracle, test, replace(settings, interventions=[{"shape": "heart"}, {"shape": "square"}]))
    assert steps == [3] * (1 + 1 + 10 + 6) and [c["do"] for c in two["counterfactuals"]] == [{"shape": "heart"}, {"shape": "square"}]
    assert report["reconstruction"]["iou"] is not None
    cf = report["counterfactuals"][0]
    assert 0.0 <= cf["iou_to_true_render"] <= 1.0
    # Reconstructions are scored against the input's symmetric equivalents too, on the
    # counterfactuals' pictures: never below the plain IoU of the same pictures.
    R = report["reconstruction"]
    assert R["iou_to_true_render_pictures"] == 8
    recon = reconstruct(vae, *test.batch(np.arange(8)), refine=3)
    plain = iou(test.batch(np.arange(8))[0].numpy(), recon.numpy()).mean()
    assert report["reconstruction"]["iou"] == pytest.approx(iou(test.batch(np.arange(len(test)))[0].numpy(), reconstruct(vae, *test.batch(np.arange(len(test))), refine=3).numpy()).mean(), abs=1e-6)
    assert plain - 1e-9 <= R["iou_to_true_render"] <= 1.0
    # The sprites world sums counterfactuals up per factor and scores its own goals (issue 17's table).
    assert report["counterfactual_factors"] == {"shape": {
        "interventions": 1, "effectiveness": cf["effectiveness"], "effectiveness_own": cf["variables"]["shape"]["effectiveness"],
        "iou_to_true_render": cf["iou_to_true_render"], "iou_to_nearest_render": cf["iou_to_nearest_render"],
        "effectiveness_true_renders": cf["effectiveness_true_renders"]}}
    assert 0.0 <= cf["iou_to_nearest_render"] <= 1.0
    table = {g["goal"]: g for g in goals(report)}
    assert table["counterfactual effectiveness, worst factor"]["value"] == cf["effectiveness"]
    assert table["counterfactual IoU to the true render (symmetry-aware), mean"]["value"] == cf["iou_to_true_render"]
    assert table["reconstruction IoU to the input, mean (symmetry-aware)"]["value"] == R["iou_to_true_render"]
    assert "reconstruction pixel MAE (0-255)" not in table and "classifier" not in " ".join(table)  # no classifier: no row
    text = markdown(report)
    assert "### Per factor" in text and "| shape | 1 |" in text
    assert f"| {cf['iou_to_true_render']:.3f} | {cf['iou_to_nearest_render']:.3f} |" in text
    assert summary_rows(report)["counterfactual_iou_to_nearest_render"] == cf["iou_to_nearest_render"]
    write_report(report, tmp_path / "rep")
    assert (tmp_path / "rep" / "factors.md").read_text() in text  # the per-factor table, on its own for the docs
    write_report({**report, "counterfactual_factors": {}}, tmp_path / "rep", force=True)
    assert not (tmp_path / "rep" / "factors.md").exists()  # an earlier report's table does not stay behind
    with pytest.raises(CausalVAEError, match="goals name one of the figures"):
        goals({**report, "targets": [["reconstruction_iuo", ">=", 0.9]]})
    # The true picture itself scores 1, and a square's quarter turn counts as the same picture.
    truth = worlds.get("sprites").renderer()
    cols = list(test.manifest["truth_columns"])
    values = {v: test.truth_values[test.indices, cols.index(v)].astype(np.int64) for v in cols}
    style = test.truth_style[test.indices]
    pics = truth.render(values, style)
    np.testing.assert_allclose(truth.best_iou(values, style, pics), 1.0)
    # An ellipse turned half a turn (grid class 20 = orientation bin 4, offset 0) is the same
    # picture up to the grid's rounding: plain IoU says they differ, the symmetry-aware score
    # counts it as the true picture.
    n = len(pics)
    ellipse = {**values, "shape": np.ones(n, np.int64), "scale": np.full(n, 5), "orientation": np.zeros(n, np.int64)}
    half = dict(ellipse, orientation=np.full(n, 4))
    upright = style.copy()
    upright[:, truth.style_fields.index("orientation_offset")] = 0
    pictures = truth.render(ellipse, upright)
    assert (iou(truth.render(half, upright), pictures) < 0.99).all()
    np.testing.assert_allclose(truth.best_iou(half, upright, pictures), 1.0)
    # The judge's ceiling: under the null intervention every true render is the test picture
    # itself, so the oracle reads the true renders exactly as it reads the test pictures
    # (symmetric readings accepted alike), whatever its quality (this one trained 2 steps).
    null = evaluate(vae, oracle, test, replace(settings, interventions=[{}], cf_images=None, refine=0))
    row = null["counterfactuals"][0]
    assert row["pictures"] == len(test)
    for c in oracle.config.columns:
        assert row["variables"][c]["effectiveness_true_renders"] == pytest.approx(null["reconstruction"]["oracle_accuracy_on_test_pictures"][c])
    assert row["effectiveness_true_renders"] == pytest.approx(null["reconstruction"]["oracle_all_right_on_test_pictures"])
    # In the report, the same reading stands beside the goals it bounds.
    table = {g["goal"]: g for g in goals(report)}
    assert table["counterfactual effectiveness, worst factor"]["true_renders"] == pytest.approx(cf["effectiveness_true_renders"])
    assert "true_renders" not in table["composition after 10 cycles / after 1"]
    assert "| true renders, same oracle |" in goals_markdown(report)


def test_nearest_render_frees_only_the_style():
    """The nearest render of a picture's values under any style: 1 for the true picture drawn
    with any offsets inside the bins, whatever offsets one believes it has; below 1 when the
    values themselves are wrong; None for a world whose style is not enumerable."""
    from causalvae import worlds

    truth = worlds.get("sprites").renderer()
    grid = truth.style_grid()
    assert grid.shape == (5 * 4 * 4, 3) and len(np.unique(grid, axis=0)) == 80
    rng = np.random.default_rng(3)
    n = 12
    values = {"shape": rng.integers(0, 3, n), "scale": rng.integers(0, 6, n), "orientation": rng.integers(0, 8, n),
              "posX": rng.integers(0, 8, n), "posY": rng.integers(0, 8, n)}
    drawn = grid[rng.integers(0, 80, n)]
    believed = grid[rng.integers(0, 80, n)]
    pictures = truth.render(values, drawn)
    np.testing.assert_allclose(truth.nearest_iou(values, pictures, chunk=5), 1.0)
    assert truth.best_iou(values, believed, pictures).mean() < 1.0  # the recorded style matters there
    # Any picture at all: the nearest render is at least as close as the render at any one style.
    blobs = np.zeros_like(pictures)
    blobs[:, :, 20:40, 10:50] = 1
    nearest = truth.nearest_iou(values, blobs)
    for s in grid[::7]:
        assert (nearest >= iou(truth.render(values, np.tile(s, (n, 1))), blobs) - 1e-12).all()
    assert (nearest > 0).any() and (nearest < 1).all()
    moved = dict(values, posX=(values["posX"] + 4) % 8)
    assert (truth.nearest_iou(moved, pictures) < 0.5).all()  # another bin is not a style
    assert worlds.get("scenes").renderer().nearest_iou(values, pictures) is None


def test_sprites_with_a_hidden_shape_reports_its_classifier(tmp_path):
    """``--hide shape``: the report scores q(shape | x) against the recorded truth, and the
    counterfactuals on the labelled factors."""
    data = generate("sprites", tmp_path / "sprites", 200, seed=5, hide=["shape"])
    # The counterfactual term (on by default) reads the labelled parents and keeps the hidden
    # one at each picture's inferred value, and its record says so. The classifier is guided
    # for the first two steps (--guide-steps) and its counts are held to the graph's in every
    # step (--match-weight), and the record says so.
    run = fit(TrainConfig(data=str(data), out=str(tmp_path / "run"), max_steps=3, batch_size=32, width=8, depth=3, hidden=32, z_dim=4, threads=1, guide_steps=2, match_weight=5.0), progress=False)
    settings_saved = json.loads((run / "train.json").read_text())
    assert settings_saved["guide_steps"] == 2 and settings_saved["match_weight"] == 5.0
    from typer.testing import CliRunner

    from causalvae.cli import app

    shown = " ".join(CliRunner().invoke(app, ["summary", str(run)]).output.split())
    assert "guide_steps=2" in shown and "match_weight=5" in shown
    record = json.loads((run / "reader.json").read_text())
    assert record["steps"] == 3 and record["hidden_kept"] == ["shape"] and 0.0 <= record["val_accuracy_all_parents"] <= 1.0
    vae = load(run)
    assert vae.classified == ["shape"] and "shape" not in vae.label_columns
    oracle, _ = train_oracle("sprites", steps=2, batch_size=8, held_out=16)
    test = load_dataset(data, split="test", truth=True, verify=False)
    settings = EvalSettings(n_generate=24, iw_k=2, iw_images=4, cf_images=8, axiom_images=4, interventions=[{"scale": "1.0"}, {"shape": "heart"}])
    report = evaluate(vae, oracle, test, settings)
    # The oracle reads the hidden shape too: whether do(shape=heart) shows a heart is scored.
    heart = report["counterfactuals"][1]["hidden_read_as_used"]["shape"]
    assert 0.0 <= heart <= 1.0 and report["counterfactual_factors"]["shape"]["effectiveness_own"] == heart
    images, _ = test.batch(np.arange(len(test)))
    truth = test.truth_values[test.indices, list(test.manifest["truth_columns"]).index("shape")]
    expected = float((vae.classify(images)["shape"].argmax(-1).numpy() == truth).mean())
    guess = vae.classify(images)["shape"].argmax(-1).numpy()
    confusion = {t: {g: int(((truth == a) & (guess == b)).sum()) for b, g in enumerate(["square", "ellipse", "heart"])} for a, t in enumerate(["square", "ellipse", "heart"])}
    assert report["classifiers"] == {"shape": {"hidden": True, "accuracy": pytest.approx(expected), "pictures": len(test), "confusion": confusion}}
    assert sum(sum(row.values()) for row in confusion.values()) == len(test)
    assert list(report["counterfactuals"][0]["variables"]) == ["scale", "orientation", "posX", "posY"]
    # Every label read right: no more often than the worst column, no less than the union bound.
    R = report["reconstruction"]
    for joint, each in ((R["oracle_all_right"], R["oracle_accuracy"]), (R["oracle_all_right_on_test_pictures"], R["oracle_accuracy_on_test_pictures"])):
        assert 1 - sum(1 - a for a in each.values()) - 1e-9 <= joint <= min(each.values()) + 1e-9
    table = {g["goal"]: g["value"] for g in goals(report)}
    assert table["hidden factor: classifier accuracy on test pictures, worst"] == pytest.approx(expected)
    text = markdown(report)
    assert "| shape | no (hidden) |" in text
    assert "| ellipse | " + " | ".join(str(confusion["ellipse"][g]) for g in ("square", "ellipse", "heart")) + " |" in text
    # Reversibility intervenes on an image parent and back: left out, and said so.
    assert "axioms: reversibility" in [item["section"] for item in report["left_out"]]
    assert "| reversibility, 3 cycles | - |" in text
