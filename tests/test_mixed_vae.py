"""The causal VAE over mixed discrete and continuous parents (issue 15, item 5), on a tiny
synthetic world built here: a bar whose length is the continuous ``length``, drawn at the top
or the bottom by the discrete ``side``, and whose grey level is the continuous ``shade``, a
descendant of ``length`` through a sigmoid mechanism (as intensity follows thickness in the
Morpho-MNIST SCM)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from causalvae import continuous as C
from causalvae import queries
from causalvae.data import DatasetBuilder, load
from causalvae.errors import CausalVAEError
from causalvae.graph import Graph
from causalvae.model import CausalVAE
from causalvae.nets import NetConfig
from causalvae.store import load as load_model
from causalvae.train import TrainConfig, fit

BARS = {
    "name": "bars",
    "variables": [
        {"name": "side", "values": ["top", "bottom"], "cpt": [0.5, 0.5]},
        {"name": "length", "type": "continuous", "distribution": {"family": "uniform", "low": 3, "high": 15}},
        {
            "name": "shade", "type": "continuous", "parents": ["length", "side"],
            "mechanism": {"link": "sigmoid", "lo": 0, "hi": 1, "intercept": {"top": -1.5, "bottom": -0.5},
                          "weights": {"length": 0.2}, "scale": 0.3},
        },
    ],
    "image": {"name": "image", "parents": ["side", "length", "shade"]},
}
SIZE = 16


def bars_graph() -> Graph:
    return Graph.from_dict(BARS, source="test")


def draw(values: dict) -> np.ndarray:
    """The true picture: a 2-pixel-high bar of ``length`` pixels (the last one partly
    covered), at rows 3-4 (top) or 11-12 (bottom), its grey level 55 + 200 * shade."""
    n = len(values["side"])
    img = np.zeros((n, SIZE, SIZE, 1), dtype=np.float64)
    cols = np.arange(SIZE)[None, :]
    cover = np.clip(values["length"][:, None] - cols, 0.0, 1.0)  # (n, SIZE)
    grey = 55 + 200 * values["shade"]
    for i in range(n):
        r = 3 if values["side"][i] == 0 else 11
        img[i, r : r + 2, :, 0] = cover[i] * grey[i]
    return np.round(img).astype(np.uint8)


@pytest.fixture(scope="module")
def bars_data(tmp_path_factory):
    g = bars_graph()
    n = 240
    s = C.sample(g, n, seed=0)
    path = tmp_path_factory.mktemp("bars") / "data"
    with DatasetBuilder(path, n, SIZE, SIZE, 1) as b:
        b.images[:] = draw(s.values)
        cont = np.stack([s.values["length"], s.values["shade"]], 1)
        b.finish(graph=g, world="bars", labels=s.values["side"][:, None], continuous_labels=cont, seed=0)
    return path


@pytest.fixture(scope="module")
def bars_run(bars_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("bars-run") / "run"
    # The counterfactual term (cf_weight) has its own test in test_train.py; here it would
    # only add its reader's training time.
    cfg = TrainConfig(data=str(bars_data), out=str(out), max_steps=30, batch_size=16, z_dim=2, width=8, depth=2,
                      hidden=32, checkpoint_every=30, val_per_epoch=2, val_limit=32, lr=3e-3, cf_weight=0.0, threads=1)
    fit(cfg, progress=False)
    return out


def test_training_on_continuous_parents_improves_the_elbo(bars_run):
    rows = [line.split(",") for line in (bars_run / "metrics.csv").read_text().splitlines()[1:]]
    elbo = [float(r[3]) for r in rows]
    assert len(elbo) >= 2 and elbo[-1] > elbo[0] + 50  # nats per image
    vae = load_model(bars_run)
    assert vae.label_columns == ["side"] and vae.continuous_columns == ["length", "shade"]
    assert vae.config.parent_dims == (2, 1, 1)


def mean_of(vae, name):
    return vae.parent_stats[name][0]


def test_standardisation_is_the_training_splits_and_round_trips(bars_data, bars_run):
    ds = load(bars_data, split="train")
    vae = load_model(bars_run)
    for j, c in enumerate(["length", "shade"]):
        col = ds.continuous_labels[ds.indices, j].astype(np.float64)
        mean, sd = vae.parent_stats[c]
        assert mean == pytest.approx(col.mean(), rel=1e-9) and sd == pytest.approx(col.std(), rel=1e-9)
    saved = json.loads((bars_run / "config.json").read_text())["net"]["parent_stats"]
    assert saved[0] is None and saved[1] == [pytest.approx(vae.parent_stats["length"][0]), pytest.approx(vae.parent_stats["length"][1])]
    # the code the networks see: one-hot side, then (value - mean) / sd
    code = vae.parents_onehot({"side": torch.tensor([1]), "length": torch.tensor([mean_of(vae, "length")]), "shade": torch.tensor([0.5])})
    assert code[0, :3].tolist() == [0.0, 1.0, 0.0]
    assert float(code[0, 3]) == pytest.approx((0.5 - vae.parent_stats["shade"][0]) / vae.parent_stats["shade"][1], rel=1e-5)


def test_old_configs_without_parent_stats_still_load():
    old = {"image_size": 16, "channels": 1, "parent_dims": [2, 3], "z_dim": 4}
    cfg = NetConfig.from_dict(old)
    assert cfg.parent_stats == () and "parent_stats" not in cfg.to_dict()
    with pytest.raises(CausalVAEError, match="parent_stats entries of continuous parents must be"):
        NetConfig(image_size=16, channels=1, parent_dims=(2, 3), parent_stats=(None, (0.0, 1.0)))


def _batch(ds, k=6):
    pos = np.arange(k)
    images, labels = ds.batch(pos)
    return images, labels, ds.continuous_batch(pos)


def test_the_label_term_is_each_mechanisms_exact_density(bars_data, bars_run):
    vae = load_model(bars_run)
    ds = load(bars_data, split="test")
    _, labels, cont = _batch(ds)
    g = vae.graph
    values = {"side": labels[:, 0].numpy(), "length": cont[:, 0].double().numpy(), "shade": cont[:, 1].double().numpy()}
    expected = np.log(0.5) * len(labels) + C.log_density(g["length"], values["length"], values).sum() + C.log_density(g["shade"], values["shade"], values).sum()
    assert vae.log_p_labels(labels, cont) == pytest.approx(expected, abs=1e-3)


def test_counterfactual_of_fully_observed_continuous_parents(bars_data, bars_run):
    vae = load_model(bars_run)
    ds = load(bars_data, split="test")
    images, labels, cont = _batch(ds)
    a = queries.counterfactual(vae, images, labels, {"length": 10.0}, continuous=cont, seed=0)
    b = queries.counterfactual(vae, images, labels, {"length": 10.0}, continuous=cont, seed=1)
    # deterministic: no hidden variable, every continuous U abducted exactly
    assert torch.equal(a.images, b.images)
    for k in a.values:
        np.testing.assert_array_equal(a.values[k], b.values[k])
    # the intervened variable takes its value; the non-descendant side keeps the factual one
    np.testing.assert_array_equal(a.values["length"], np.full(len(labels), 10.0))
    np.testing.assert_array_equal(a.values["side"], labels[:, 0].numpy())
    # the descendant shade is recomputed by its mechanism from the abducted U
    u = (special_logit(cont[:, 1].double().numpy()) - np.where(labels[:, 0].numpy() == 0, -1.5, -0.5) - 0.2 * cont[:, 0].double().numpy()) / 0.3
    want = 1 / (1 + np.exp(-(np.where(labels[:, 0].numpy() == 0, -1.5, -0.5) + 0.2 * 10.0 + 0.3 * u)))
    np.testing.assert_allclose(a.values["shade"], want, rtol=1e-6)
    np.testing.assert_allclose(a.abduction.noise["shade"], u, rtol=1e-6, atol=1e-9)
    assert set(a.exact[0]) == {"side"} and a.exact[0]["side"][int(labels[0, 0])] == pytest.approx(1.0)
    # the null intervention returns the factual labels
    null = queries.counterfactual(vae, images, labels, {}, continuous=cont, seed=0)
    np.testing.assert_array_equal(null.values["side"], labels[:, 0].numpy())
    np.testing.assert_allclose(null.values["length"], cont[:, 0].double().numpy(), rtol=1e-12)
    np.testing.assert_allclose(null.values["shade"], cont[:, 1].double().numpy(), rtol=1e-9)


def special_logit(p):
    return np.log(p) - np.log1p(-p)


def test_reconstruct_and_sample_on_a_mixed_model(bars_data, bars_run):
    vae = load_model(bars_run)
    ds = load(bars_data, split="test")
    images, labels, cont = _batch(ds)
    recon = queries.reconstruct(vae, images, labels, cont)
    assert recon.shape == images.shape and recon.dtype == torch.uint8
    with pytest.raises(CausalVAEError, match="needs the continuous labels"):
        queries.reconstruct(vae, images, labels)
    s1 = queries.sample(vae, 8, do={"length": 12.0}, seed=0)
    s2 = queries.sample(vae, 8, do={"length": 12.0}, seed=0)
    assert torch.equal(s1.images, s2.images)
    assert (s1.values["length"] == 12.0).all()
    given = queries.sample(vae, 4, evidence={"shade": 0.7}, seed=0)
    assert (given.values["shade"] == 0.7).all()
    with pytest.raises(CausalVAEError, match="outside the support"):
        queries.sample(vae, 2, do={"length": 20.0}, seed=0)


def test_sampling_given_continuous_evidence_matches_the_mixed_engine():
    """Likelihood weighting and resampling against mixed.evaluate's answer, at a fixed seed:
    E(length | shade=0.85) within 4 standard errors of the draws."""
    from causalvae.mixed import evaluate

    g = bars_graph()
    draws = queries.sample_values_mixed(g, 4000, {"shade": 0.85}, None, rng=np.random.default_rng(0))
    exact = evaluate(g, "E(length | shade=0.85)")
    se = draws["length"].std() / np.sqrt(4000)
    assert abs(draws["length"].mean() - exact.value) < 4 * se + 4 * exact.error
    assert abs(draws["length"].mean() - evaluate(g, "E(length)").value) > 10 * se  # the evidence matters


def test_hidden_continuous_variables_and_missing_continuous_labels_are_refused(tmp_path):
    spec = json.loads(json.dumps(BARS))
    spec["variables"][1]["observed"] = False
    hidden = Graph.from_dict(spec, source="test")
    cfg = NetConfig(image_size=16, channels=1, parent_dims=(2, 1, 1), depth=2, width=8, parent_stats=(None, (9.0, 3.0), (0.5, 0.2)))
    with pytest.raises(CausalVAEError, match="the image's parent 'length' is continuous and hidden"):
        CausalVAE(hidden, cfg)
    vae = CausalVAE(bars_graph(), cfg)
    images = torch.zeros(2, 1, 16, 16, dtype=torch.uint8)
    cont = torch.tensor([[5.0, 0.5], [float("nan"), 0.4]])
    with pytest.raises(CausalVAEError, match="the continuous label 'length' is missing in row 1"):
        vae.objective(images, torch.zeros(2, 1, dtype=torch.int64), cont)
    with pytest.raises(CausalVAEError, match="must give \\(mean, sd\\) for exactly the continuous image parents"):
        CausalVAE(bars_graph(), NetConfig(image_size=16, channels=1, parent_dims=(2, 1, 1), depth=2, width=8))


LINEAR = {
    "name": "linear",
    "variables": [
        {"name": "d", "values": ["u", "v"], "cpt": [0.4, 0.6]},
        {"name": "x", "type": "continuous", "distribution": {"family": "normal", "mean": 1.0, "sd": 2.0}},
        {"name": "y", "type": "continuous", "parents": ["x", "d"],
         "mechanism": {"intercept": {"u": 1.5, "v": -0.5}, "weights": {"x": {"u": 2.0, "v": -0.7}}, "scale": {"u": 0.3, "v": 1.2}}},
    ],
    "image": {"name": "image", "parents": ["d", "x"]},
}


def _linear(intercept=0.0, weight=0.0, scale=1.0) -> Graph:
    spec = json.loads(json.dumps(LINEAR))
    if intercept is not None:
        spec["variables"][2]["mechanism"] = {"intercept": intercept, "weights": {"x": weight}, "scale": scale}
    return Graph.from_dict(spec, source="test")


def test_learned_linear_mechanism_is_the_maximum_likelihood_flow():
    """--learn-cpts on a linear-Gaussian mechanism: the conditional affine flow, started far
    from the truth and fitted on labels alone, reaches the closed-form maximum-likelihood
    estimate (least squares per discrete configuration, s^2 = the mean squared residual), which
    lies within sampling error of the true a, b, s (seed 0, 4,000 units)."""
    truth = _linear(None)
    s = C.sample(truth, 4000, seed=0)
    labels = torch.from_numpy(s.values["d"][:, None])
    cont = torch.tensor(np.stack([s.values["x"], s.values["y"]], 1), dtype=torch.float32)
    cfg = NetConfig(image_size=16, channels=1, parent_dims=(2, 1), depth=2, width=8, hidden=16, parent_stats=(None, (1.0, 2.0)))
    vae = CausalVAE(_linear(), cfg, learn_cpts=True)
    assert vae.learned == ["d", "y"]
    params = list(vae.mechanisms.parameters())
    opt = torch.optim.LBFGS(params, max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = vae.label_loss(labels, cont) / len(labels)
        loss.backward()
        return loss

    opt.step(closure)
    law = vae.current_graph()["y"].law
    want = {"a": (1.5, -0.5), "b": (2.0, -0.7), "s": (0.3, 1.2)}
    for k in (0, 1):
        rows = s.values["d"] == k
        x, y = s.values["x"][rows], s.values["y"][rows]
        design = np.stack([np.ones_like(x), x], 1)
        (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
        sd = np.sqrt(np.mean((y - a - b * x) ** 2))
        assert law.intercept[k] == pytest.approx(a, abs=2e-3)
        assert law.weights[k, 0] == pytest.approx(b, abs=2e-3)
        assert law.scale[k] == pytest.approx(sd, abs=2e-3)
        n = rows.sum()  # the least-squares estimate is within 4 standard errors of the truth
        assert abs(b - want["b"][k]) < 4 * sd / (x.std() * np.sqrt(n))
        assert abs(a - want["a"][k]) < 4 * sd * np.sqrt(1 / n + x.mean() ** 2 / (n * x.var()))
        assert abs(sd - want["s"][k]) < 4 * want["s"][k] / np.sqrt(2 * n)
    # the learned mechanism stays in the family: abduction inverts it exactly
    u = C.abduct(vae.current_graph(), s.values)["y"]
    np.testing.assert_allclose(C.propagate(vae.current_graph(), {**s.noise, "y": u})["y"], s.values["y"], rtol=1e-9, atol=1e-9)


def test_a_learned_mechanism_round_trips_through_the_model_files(tmp_path):
    from causalvae.store import save_model

    cfg = NetConfig(image_size=16, channels=1, parent_dims=(2, 1), depth=2, width=8, hidden=16, parent_stats=(None, (1.0, 2.0)))
    vae = CausalVAE(_linear(), cfg, learn_cpts=["y"])
    with torch.no_grad():
        vae.mechanisms["y"].intercept.copy_(torch.tensor([0.25, -1.0]))
        vae.mechanisms["y"].log_scale.fill_(np.log(0.5))
    save_model(vae, tmp_path / "m")
    back = load_model(tmp_path / "m")
    law = back.current_graph()["y"].law
    np.testing.assert_allclose(law.intercept, [0.25, -1.0])
    np.testing.assert_allclose(law.scale, [0.5, 0.5], rtol=1e-6)
    assert back.parent_stats == {"x": (1.0, 2.0)}
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["learned_graph"]["variables"][2]["mechanism"]["intercept"] == {"u": 0.25, "v": -1.0}


WIDE = {
    "name": "wide",
    "variables": [
        {"name": "a", "type": "continuous", "distribution": {"family": "normal", "mean": 0, "sd": 1}},
        {"name": "b", "type": "continuous", "distribution": {"family": "normal", "mean": 0, "sd": 1}},
        {"name": "c", "type": "continuous", "distribution": {"family": "gamma", "concentration": 3, "rate": 1}},
        {"name": "y", "type": "continuous", "parents": ["a", "b", "c"],
         "mechanism": {"link": "softplus", "intercept": 0.5, "weights": {"a": 1, "b": -1, "c": 0.5}, "scale": 0.5}},
    ],
}


def test_plot_draws_the_density_and_the_sampling_band(tmp_path):
    """--plot: the closed-form density integrates to the probability asked, and a sampled
    answer (three unknown noises: importance sampling) draws its +-2 standard-error band."""
    from causalvae.plots import query_figure

    fig = query_figure(Graph.load("morpho"), "P(intensity > 200 | do(thickness=3))", samples=1000, seed=0, points=401)
    ax = fig.axes[0]
    x, y = ax.lines[0].get_data()
    above = x > 200
    xs, ys = np.r_[200.0, x[above]], np.r_[np.interp(200.0, x, y), y[above]]
    # the grid ends at the 99.9% quantile: the mass above 200 on it is 0.001 short
    assert np.trapezoid(ys, xs) == pytest.approx(0.575093 - 0.001, abs=2e-4)
    assert ax.title.get_text().endswith("closed form (linear-Gaussian)") and not ax.collections
    wide = Graph.from_dict(WIDE, source="test")
    fig = query_figure(wide, "E(y)", samples=2000, seed=0, points=21)
    ax = fig.axes[0]
    assert "importance sampling" in ax.title.get_text() and len(ax.collections) == 1  # the band
    import matplotlib.pyplot as plt

    plt.close("all")


def test_cli_on_a_mixed_model(bars_data, bars_run, tmp_path):
    from typer.testing import CliRunner

    from causalvae.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["sample", str(bars_run), "--out", str(tmp_path / "s.png"), "--n", "4", "--do", "length=12"])
    assert r.exit_code == 0, r.output
    assert "shade" in r.output and (tmp_path / "s.png").exists()
    r = runner.invoke(app, ["counterfactual", str(bars_run), "--out", str(tmp_path / "c.png"), "--index", "0", "--do", "length=10"])
    assert r.exit_code == 0, r.output
    assert "length: factual" in r.output and "counterfactual 10" in r.output
    r = runner.invoke(app, ["sample", str(bars_run), "--out", str(tmp_path / "x.png"), "--do", "length=abc"])
    assert r.exit_code != 0 and "must be a finite number" in r.output
