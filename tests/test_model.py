"""The causal VAE's Pyro program: its discrete posterior is the exact engine's."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch

from causalvae.errors import CausalVAEError
from causalvae.exact import posterior
from causalvae.graph import Graph, ImageNode, Variable
from causalvae.model import CausalVAE
from causalvae.nets import NetConfig
from causalvae.noise import sample


def small_config(graph: Graph, channels: int = 3, likelihood: str = "dlogistic") -> NetConfig:
    dims = tuple(graph.card(p) for p in graph.image.parents)
    return NetConfig(image_size=16, channels=channels, parent_dims=dims, z_dim=4, width=8, depth=2, hidden=32, likelihood=likelihood)


def test_hidden_posterior_equals_the_exact_engine(scenes):
    """The image depends on the labelled parents only, so the hidden attributes' posterior
    inside the model must be exactly P(hidden | labels) from the tables."""
    pyro.set_rng_seed(0)
    vae = CausalVAE(scenes, small_config(scenes))
    s = sample(scenes, 12, seed=1)
    rows = np.stack([s.values[c] for c in vae.label_columns], axis=1)
    images = torch.randint(0, 256, (12, 3, 16, 16), dtype=torch.uint8)
    got = vae.hidden_posterior(images, torch.from_numpy(rows))
    for name in scenes.hidden:
        want = posterior(scenes, [name], vae.label_columns, rows)
        np.testing.assert_allclose(got[name].detach().numpy(), want, atol=1e-5, err_msg=name)


def test_missing_labels_off_the_image_are_enumerated_exactly():
    """A labelled variable that is not an image parent, missing in some rows, is summed out."""
    g = Graph(
        [
            Variable("a", ["x", "y"], cpt=[0.3, 0.7]),
            Variable("h", ["lo", "mid", "hi"], ["a"], observed=False, cpt=[[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]]),
            Variable("c", ["no", "yes"], ["h"], cpt=[[0.9, 0.1], [0.5, 0.5], [0.05, 0.95]]),
        ],
        image=ImageNode(["a"]),
    )
    pyro.set_rng_seed(0)
    vae = CausalVAE(g, small_config(g, channels=1, likelihood="bernoulli"))
    rows = np.array([[0, 1], [1, -1], [0, -1], [1, 0]])
    images = torch.randint(0, 2, (4, 1, 16, 16), dtype=torch.uint8)
    got = vae.hidden_posterior(images, torch.from_numpy(rows))
    np.testing.assert_allclose(got["h"].detach().numpy(), posterior(g, ["h"], ["a", "c"], rows), atol=1e-5)
    # c: its label where given, else P(c | a) summed over h.
    p_c = posterior(g, ["c"], ["a"], rows[:, :1])
    want_c = np.where((rows[:, 1] >= 0)[:, None], np.eye(2)[rows[:, 1].clip(0)], p_c)
    np.testing.assert_allclose(got["c"].detach().numpy(), want_c, atol=1e-5)


def test_training_steps_raise_the_elbo(scenes):
    pyro.set_rng_seed(0)
    torch.manual_seed(0)
    vae = CausalVAE(scenes, small_config(scenes))
    s = sample(scenes, 32, seed=2)
    rows = torch.from_numpy(np.stack([s.values[c] for c in vae.label_columns], axis=1))
    # Images that depend on a label: bright when the actor is a Golem.
    images = (torch.from_numpy(s.values["actor"]).view(-1, 1, 1, 1) * 150 + 50).expand(32, 3, 16, 16).to(torch.uint8)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    with torch.no_grad():
        before = vae.loss(images, rows).item()
    for _ in range(60):
        opt.zero_grad()
        loss = vae.loss(images, rows)
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = vae.loss(images, rows).item()
    assert np.isfinite(before) and np.isfinite(after)
    # 768 pixels per image: the bound must improve by at least 0.5 nat per pixel.
    assert after < before - 0.5 * 768, (before, after)


def test_bad_inputs(scenes):
    vae = CausalVAE(scenes, small_config(scenes))
    rows = torch.zeros((2, 6), dtype=torch.int64)
    with pytest.raises(CausalVAEError, match=r"images must have shape \(B, 3, 16, 16\)"):
        vae.loss(torch.zeros((2, 3, 8, 8), dtype=torch.uint8), rows)
    with pytest.raises(CausalVAEError, match=r"labels must have shape \(2, 6\)"):
        vae.loss(torch.zeros((2, 3, 16, 16), dtype=torch.uint8), rows[:, :5])
    rows[0, 2] = -1
    with pytest.raises(CausalVAEError, match="image parent .action. need its classifier"):
        vae.loss(torch.zeros((2, 3, 16, 16), dtype=torch.uint8), rows)
    with pytest.raises(CausalVAEError, match="do not match the image parents"):
        CausalVAE(scenes, NetConfig(image_size=16, channels=3, parent_dims=(2, 3), depth=2))


def _evidence_probability(graph: Graph, rows: np.ndarray) -> np.ndarray:
    """P(labels of each row) from the exact engine's joint; -1 entries are summed out."""
    from causalvae.exact import query

    cols = list(graph.observed)
    table = query(graph, cols).table
    out = []
    for r in rows:
        out.append(table[tuple(int(v) if v >= 0 else slice(None) for v in r)].sum())
    return np.array(out)


def small_graph() -> Graph:
    """a (labelled image parent), b (image parent, classified), h hidden, c a labelled child."""
    return Graph(
        [
            Variable("a", ["x", "y"], cpt=[0.3, 0.7]),
            Variable("h", ["lo", "mid", "hi"], ["a"], observed=False, cpt=[[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]]),
            Variable("b", ["u", "v", "w"], ["h"], cpt=[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.0, 0.3, 0.7]]),
            Variable("c", ["no", "yes"], ["h", "b"], cpt=[[[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]], [[0.6, 0.4], [0.3, 0.7], [0.1, 0.9]], [[0.5, 0.5], [0.05, 0.95], [0.4, 0.6]]]),
        ],
        image=ImageNode(["a", "b"]),
    )


def test_log_p_labels_is_exact_with_missing_labels(scenes):
    """Labelled rows add exactly log 1 through the point mass of their `_unobserved` site."""
    s = sample(scenes, 10, seed=3)
    cols = list(scenes.observed)
    rows = np.stack([s.values[c] for c in cols], axis=1)
    rng = np.random.default_rng(0)
    rows[rng.random(rows.shape) < 0.3] = -1
    rows[0] = -1
    vae = CausalVAE(scenes, small_config(scenes))
    for i in range(len(rows)):
        got = vae.log_p_labels(torch.from_numpy(rows[i : i + 1]))
        want = np.log(_evidence_probability(scenes, rows[i : i + 1]))[0]
        assert got == pytest.approx(want, abs=1e-4), (i, rows[i])
    assert vae.log_p_labels(torch.from_numpy(rows)) == pytest.approx(np.log(_evidence_probability(scenes, rows)).sum(), abs=1e-3)


def test_complete_labels_are_scored_by_table_lookup(scenes):
    """The training step's shortcut for log p(labels) (complete labels, fixed tables) equals
    the enumerated Pyro value; it steps aside for missing labels and learned tables."""
    s = sample(scenes, 64, seed=5)
    rows = torch.from_numpy(np.stack([s.values[c] for c in scenes.observed], axis=1))
    vae = CausalVAE(scenes, small_config(scenes))
    assert vae._log_p_complete_labels(rows) == pytest.approx(vae.log_p_labels(rows), rel=1e-6)
    assert vae._log_p_complete_labels(rows) == pytest.approx(np.log(_evidence_probability(scenes, rows.numpy())).sum(), rel=1e-9)
    partial = rows.clone()
    partial[0, 0] = -1
    assert vae._log_p_complete_labels(partial) is None
    learned = CausalVAE(scenes, small_config(scenes), learn_cpts=["actor"])
    assert learned._log_p_complete_labels(rows) is None


def test_semi_supervised_elbo_equals_brute_force():
    """With z fixed, the guide-enumerated ELBO equals sum_y q(y|x) [log p(x|a,y,z) + log p(y, labels)]
    + H(q) + log p(z), computed here by hand for labelled, unlabelled and partly labelled rows."""
    import pyro.distributions as dist
    from pyro import poutine

    g = small_graph()
    pyro.set_rng_seed(0)
    torch.manual_seed(0)
    vae = CausalVAE(g, small_config(g, channels=1, likelihood="bernoulli"), classified=["b"])
    rows = torch.tensor([[0, 1, 1], [1, -1, 0], [0, -1, -1], [-1, -1, 1]])  # columns a, b, c
    with pytest.raises(CausalVAEError, match="image parent 'a' need its classifier"):
        vae.loss(torch.zeros((4, 1, 16, 16), dtype=torch.uint8), rows)
    rows[3, 0] = 1
    images = torch.randint(0, 2, (4, 1, 16, 16), dtype=torch.uint8)
    z0 = torch.randn(4, 4)
    fixed = {"z": z0}
    with torch.no_grad():
        # z is observed in the model and hidden from the guide's trace: only y is inferred.
        got = -vae._neg_elbo(poutine.condition(vae.model, fixed), poutine.block(vae.guide, hide=["z"]), images, rows).item()
        q = vae.classify(images)["b"]
        want = 0.0
        for i in range(4):
            bs = [int(rows[i, 1])] if rows[i, 1] >= 0 else range(3)
            for b in bs:
                w = 1.0 if rows[i, 1] >= 0 else q[i, b].item()
                filled = rows[i : i + 1].clone()
                filled[0, 1] = b
                parents = {"a": filled[:, 0], "b": filled[:, 1]}
                onehot = vae.parents_onehot(parents)
                log_px = dist.Bernoulli(logits=vae.decoder(z0[i : i + 1], onehot)).log_prob(images[i : i + 1].float()).sum()
                log_lab = np.log(_evidence_probability(g, filled.numpy()))[0]
                want += w * (log_px.item() + log_lab - (np.log(w) if w > 0 else 0.0))
            want += dist.Normal(0.0, 1.0).log_prob(z0[i]).sum().item()
    assert got == pytest.approx(want, rel=1e-5, abs=1e-2)


def test_objective_splits_rows_and_reports_a_conditional_bound():
    """The loss is the same whether the labelled rows are scored apart or not, and
    elbo = recon - kl is the joint bound minus the exact log p(labels)."""
    g = small_graph()
    pyro.set_rng_seed(0)
    vae = CausalVAE(g, small_config(g, channels=1, likelihood="bernoulli"), classified=["b"])
    rows = torch.tensor([[0, 1, 1], [1, -1, 0], [0, 2, -1], [1, -1, 1]])
    images = torch.randint(0, 2, (4, 1, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        obj = vae.objective(images, rows)
    assert obj.n == 4 and np.isfinite(obj.elbo)
    assert obj.recon - obj.kl == pytest.approx(obj.elbo, abs=1e-3)
    assert obj.classify > 0  # cross-entropy of the classifier on rows 0 and 2
    # The recon term is a pixel log-likelihood: at most 0, at least 256 * log(1e-6).
    assert -256 * 14 < obj.recon < 0


def test_beta_weighs_the_kl_in_the_loss_but_the_reported_elbo_is_the_true_one(scenes):
    """Two models with the same weights, beta 1 and 2, scored with the same draws: the same
    ELBO, recon and KL are reported, and the losses differ by exactly one KL."""
    s = sample(scenes, 6, seed=2)
    images = torch.randint(0, 256, (6, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    a = CausalVAE(scenes, small_config(scenes))
    b = CausalVAE(scenes, small_config(scenes), beta=2.0)
    b.load_state_dict(a.state_dict())
    labels = torch.from_numpy(np.stack([s.values[c] for c in a.label_columns], 1))
    with torch.no_grad():
        pyro.set_rng_seed(3)
        oa = a.objective(images, labels)
        pyro.set_rng_seed(3)
        ob = b.objective(images, labels)
    assert oa.kl > 0
    assert ob.elbo == pytest.approx(oa.elbo, rel=1e-6) and ob.kl == pytest.approx(oa.kl, abs=1e-2)  # float32 sums of ~5e3
    assert float(ob.loss - oa.loss) == pytest.approx(oa.kl, abs=1e-2)
    with pytest.raises(CausalVAEError, match="beta must be a positive number"):
        CausalVAE(scenes, small_config(scenes), beta=0)


@pytest.mark.parametrize("world", ["scenes", "morpho", "bernoulli"])
def test_the_direct_elbo_equals_pyros_in_loss_gradients_and_reports(world, scenes):
    """A fully labelled batch of a model with fixed tables skips Pyro (direct_elbo): the loss,
    the reported ELBO, recon and KL, the guide's mean of z and every gradient equal those of
    the Pyro run, at the same random draw of z (the scene graph's hidden variables, the morpho
    graph's continuous labels scored by their densities, a binary picture; beta 1.5). A batch
    with a missing image-parent label, and a model that learns a table, take the Pyro path."""
    gen = torch.Generator().manual_seed(4)
    cont = None
    if world == "morpho":
        g = Graph.load("morpho")
        cfg = NetConfig(image_size=16, channels=1, parent_dims=(10, 1, 1), z_dim=4, width=8, depth=2, hidden=32, parent_stats=(None, (2.5, 0.8), (160.0, 40.0)))
        s = sample(g, 8, seed=5)
        labels = torch.from_numpy(np.stack([s.values["digit"]], 1).astype(np.int64))
        cont = torch.from_numpy(np.stack([s.values["thickness"], s.values["intensity"]], 1)).float()
        images = torch.randint(0, 256, (8, 1, 16, 16), generator=gen, dtype=torch.uint8)
    elif world == "scenes":
        g, cfg = scenes, small_config(scenes)
        s = sample(g, 8, seed=5)
        images = torch.randint(0, 256, (8, 3, 16, 16), generator=gen, dtype=torch.uint8)
    else:
        g = small_graph()
        cfg = small_config(g, channels=1, likelihood="bernoulli")
        s = sample(g, 8, seed=5)
        images = torch.randint(0, 2, (8, 1, 16, 16), generator=gen, dtype=torch.uint8)
    torch.manual_seed(0)
    vae = CausalVAE(g, cfg, beta=1.5)
    if world != "morpho":
        labels = torch.from_numpy(np.stack([s.values[c] for c in vae.label_columns], 1).astype(np.int64))
    args = (images, labels) if cont is None else (images, labels, cont)

    calls = []
    direct_neg_elbo = vae._direct_neg_elbo

    def counted(*a):
        calls.append(1)
        return direct_neg_elbo(*a)

    vae._direct_neg_elbo = counted

    def run(direct):
        vae.direct_elbo = direct
        vae.zero_grad()
        torch.manual_seed(7)
        obj = vae.objective(*args)
        obj.loss.backward()
        assert len(calls) == int(direct)  # the path compared is the one asked for
        return obj, [p.grad.clone() for p in vae.parameters() if p.grad is not None]

    pyro_obj, pyro_grads = run(False)
    direct_obj, direct_grads = run(True)
    assert float(direct_obj.loss.detach()) == pytest.approx(float(pyro_obj.loss.detach()), rel=1e-5)
    for key in ("elbo", "recon", "kl"):
        assert getattr(direct_obj, key) == pytest.approx(getattr(pyro_obj, key), rel=1e-5, abs=1e-3), key
    torch.testing.assert_close(direct_obj.z_loc, pyro_obj.z_loc)
    assert len(direct_grads) == len(pyro_grads) > 0
    for a, b in zip(direct_grads, pyro_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)  # summation order only
    with torch.no_grad():  # evaluation's path (Pyro's loss without gradients) agrees too
        vae.direct_elbo = False
        torch.manual_seed(9)
        a = vae.objective(*args)
        vae.direct_elbo = True
        torch.manual_seed(9)
        b = vae.objective(*args)
    assert b.elbo == pytest.approx(a.elbo, rel=1e-5) and len(calls) == 2
    vae.direct_elbo = True
    called = []
    vae._direct_neg_elbo = lambda *a: called.append(1)  # would fail if taken
    if world == "bernoulli":  # a missing label of a classified image parent: Pyro enumerates
        clf = CausalVAE(g, cfg, classified=["b"])
        clf._direct_neg_elbo = vae._direct_neg_elbo
        rows = labels.clone()
        rows[0, vae.label_columns.index("b")] = -1
        assert np.isfinite(clf.objective(images, rows).elbo)
    if world == "scenes":  # a learned table: its gradient goes through Pyro's run
        learner = CausalVAE(g, cfg, learn_cpts=True)
        learner._direct_neg_elbo = vae._direct_neg_elbo
        learner.objective(images, labels).loss.backward()
        assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for n, p in learner.named_parameters() if n.startswith("cpt_logit"))
    assert called == []


def test_the_direct_elbo_with_missing_labels_off_the_image_equals_pyros():
    """A label of a variable that is not the image's parent may be missing (here c, a child of
    the hidden h and of the image parent b): the batch still takes the direct path, whose
    labels' term is then their exact marginal, and it equals Pyro's run (which sums the
    missing values out) in loss, reported ELBO and gradients, at the same draw of z."""
    g = small_graph()
    cfg = small_config(g, channels=1, likelihood="bernoulli")
    s = sample(g, 8, seed=5)
    images = torch.randint(0, 2, (8, 1, 16, 16), generator=torch.Generator().manual_seed(4), dtype=torch.uint8)
    torch.manual_seed(0)
    vae = CausalVAE(g, cfg, beta=1.5)
    labels = torch.from_numpy(np.stack([s.values[c] for c in vae.label_columns], 1).astype(np.int64))
    assert "c" in vae.label_columns and "c" not in g.image.parents
    labels[::3, vae.label_columns.index("c")] = -1  # rows 0, 3, 6
    calls = []
    direct_neg_elbo = vae._direct_neg_elbo
    vae._direct_neg_elbo = lambda *a: calls.append(1) or direct_neg_elbo(*a)

    def run(direct):
        vae.direct_elbo = direct
        vae.zero_grad()
        torch.manual_seed(7)
        obj = vae.objective(images, labels)
        obj.loss.backward()
        return obj, [p.grad.clone() for p in vae.parameters() if p.grad is not None]

    pyro_obj, pyro_grads = run(False)
    direct_obj, direct_grads = run(True)
    assert calls == [1]  # the direct path was taken
    assert float(direct_obj.loss.detach()) == pytest.approx(float(pyro_obj.loss.detach()), rel=1e-5)
    assert direct_obj.elbo == pytest.approx(pyro_obj.elbo, rel=1e-5)
    for a, b in zip(direct_grads, pyro_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_ordinal_parents_enter_the_networks_as_their_index_scaled_to_plus_minus_one():
    """With ``NetConfig.ordinal`` the sprites world's scale (6 values) and posX (8) enter as
    ``(2v - (K - 1)) / (K - 1)``: exactly -1 at the first value, +1 at the last, evenly spaced
    between (posX 3 -> -1/7); shape stays one-hot; enumerated values broadcast the same way."""
    from causalvae import worlds

    graph = worlds.get("sprites").graph()
    parents = list(graph.image.parents)
    dims = tuple(graph.card(p) for p in parents)
    cfg = NetConfig(image_size=16, channels=1, parent_dims=dims, z_dim=4, width=8, depth=2, hidden=32, likelihood="bernoulli",
                    ordinal=(parents.index("scale"), parents.index("posX")))
    vae = CausalVAE(graph, cfg)
    assert vae.ordinal == ["scale", "posX"]
    values = {p: torch.tensor([0, 1, 2]) for p in parents}
    values["scale"] = torch.tensor([0, 5, 2])
    values["posX"] = torch.tensor([3, 7, 0])
    code = vae.parents_onehot(values)
    assert code.shape == (3, cfg.parent_size) and cfg.parent_size == 3 + 1 + graph.card("orientation") + 1 + graph.card("posY")
    start = {p: sum(cfg.parent_slots[: parents.index(p)]) for p in parents}
    assert torch.equal(code[:, start["scale"]], torch.tensor([-1.0, 1.0, -0.2]))
    assert torch.allclose(code[:, start["posX"]], torch.tensor([-1 / 7, 1.0, -1.0]))
    assert torch.equal(code[:, start["shape"]: start["shape"] + 3], torch.eye(3))
    enumerated = dict(values, posX=torch.arange(8)[:, None])  # Pyro's enumeration: values on the left
    assert torch.allclose(vae.parents_onehot(enumerated)[:, 0, start["posX"]], torch.linspace(-1, 1, 8))
    with pytest.raises(CausalVAEError, match="parent_dims"):
        CausalVAE(graph, NetConfig(image_size=16, channels=1, parent_dims=dims[:-1] + (3,), likelihood="bernoulli", depth=2, ordinal=(1,)))
