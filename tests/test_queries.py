"""Queries on pictures: conditioning, intervention and counterfactual semantics."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch

from causalvae.errors import CausalVAEError, UnknownNameError
from causalvae.exact import Term, query
from causalvae.model import CausalVAE
from causalvae.nets import NetConfig
from causalvae.noise import sample as ancestral
from causalvae.queries import abduct, act, counterfactual, counterfactual_distributions, predict, reconstruct, sample


@pytest.fixture(scope="module")
def vae(scenes):
    torch.manual_seed(0)
    pyro.set_rng_seed(0)
    dims = tuple(scenes.card(p) for p in scenes.image.parents)
    return CausalVAE(scenes, NetConfig(image_size=16, channels=3, parent_dims=dims, z_dim=4, width=8, depth=2, hidden=32)).eval()


def _units(scenes, vae, n, seed):
    s = ancestral(scenes, n, seed=seed)
    labels = torch.from_numpy(np.stack([s.values[c] for c in vae.label_columns], 1))
    images = torch.randint(0, 256, (n, 3, 16, 16), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return s, images, labels


def test_conditioned_samples_follow_the_exact_posterior(scenes, vae):
    """Conditioning is inference: P(action | reaction=Dying) is 0.60 attack, not the prior."""
    n = 4000
    g = sample(vae, n, evidence={"reaction": "Dying"}, seed=1)
    assert g.images.shape == (n, 3, 16, 16) and g.images.dtype == torch.uint8
    assert (g.values["reaction"] == scenes.value_index("reaction", "Dying")).all()
    want = query(scenes, ["action"], {"reaction": "Dying"}).table
    got = np.bincount(g.values["action"], minlength=3) / n
    se = np.sqrt(want * (1 - want) / n)
    assert np.all(np.abs(got - want) < 4 * se), (got, want)


def test_intervened_samples_follow_the_mutilated_graph(scenes, vae):
    n = 4000
    g = sample(vae, n, do={"reaction": "Dying"}, seed=2)
    assert (g.values["reaction"] == scenes.value_index("reaction", "Dying")).all()
    want = query(scenes, ["action"]).table  # do() on a child leaves the action's prior
    got = np.bincount(g.values["action"], minlength=3) / n
    assert np.all(np.abs(got - want) < 4 * np.sqrt(want * (1 - want) / n)), (got, want)
    a = sample(vae, 8, evidence={"reaction": "Dying"}, seed=3)
    b = sample(vae, 8, evidence={"reaction": "Dying"}, seed=3)
    assert torch.equal(a.images, b.images)


def test_null_intervention_returns_the_factual_world(scenes, vae):
    s, images, labels = _units(scenes, vae, 32, seed=4)
    cf = counterfactual(vae, images, labels, {}, seed=0)
    for j, c in enumerate(vae.label_columns):
        np.testing.assert_array_equal(cf.values[c], labels[:, j].numpy())
    # The encoder and decoder ran: the picture is the reconstruction, not the input.
    assert torch.equal(cf.images, reconstruct(vae, images, labels))
    assert not torch.equal(cf.images, images)
    for row, exact in zip(labels.numpy(), cf.exact):
        for j, c in enumerate(vae.label_columns):
            assert exact[c][row[j]] == pytest.approx(1.0)


def test_intervention_sets_its_value_and_leaves_non_descendants(scenes, vae):
    s, images, labels = _units(scenes, vae, 64, seed=5)
    unit = abduct(vae, images, labels, seed=1)
    do = act(scenes, {"action": "Walk"})
    _, values = predict(vae, unit, do)
    assert (values["action"] == scenes.value_index("action", "Walk")).all()
    for name in set(scenes.names) - scenes.descendants("action") - {"action"}:
        np.testing.assert_array_equal(values[name], unit.values[name], err_msg=name)
    # The abducted noise reproduces the factual world exactly.
    from causalvae.noise import propagate

    for name, v in propagate(scenes, unit.noise).items():
        np.testing.assert_array_equal(v, unit.values[name], err_msg=name)


def test_counterfactual_values_follow_the_twin_network(scenes, vae):
    """Pooled over many abductions of one factual row, the counterfactual reaction has the
    exact twin-network distribution P(reaction[action=Attack] | factual labels)."""
    n = 3000
    s, _, _ = _units(scenes, vae, 1, seed=6)
    row = torch.tensor([[scenes.value_index(c, v) for c, v in zip(vae.label_columns, ["Golem", "type2", "Taunt", "Satyr", "type1", "Idle"])]])
    labels = row.expand(n, -1).clone()
    images = torch.zeros((n, 3, 16, 16), dtype=torch.uint8)
    cf = counterfactual(vae, images, labels, {"action": "Attack"}, seed=7)
    got = np.bincount(cf.values["reaction"], minlength=4) / n
    evidence = dict(zip(vae.label_columns, ["Golem", "type2", "Taunt", "Satyr", "type1", "Idle"]))
    want = query(scenes, [Term("reaction", (("action", "Attack"),))], evidence).table
    assert np.all(np.abs(got - want) < 4 * np.sqrt(want * (1 - want) / n) + 1e-9), (got, want)
    np.testing.assert_allclose(cf.exact[0]["reaction"], want, atol=1e-12)


def test_bad_queries(scenes, vae):
    with pytest.raises(UnknownNameError, match="actoin"):
        sample(vae, 2, evidence={"actoin": "Walk"})
    with pytest.raises(CausalVAEError, match="Wlak"):
        sample(vae, 2, do={"action": "Wlak"})
    with pytest.raises(CausalVAEError, match="n must be at least 1"):
        sample(vae, 0)


def test_abduction_with_missing_labels_fills_them_from_the_posterior(scenes, vae):
    """A column labelled in some rows only: its labels are kept, the missing ones drawn from
    P(value | that row's labels), and the abducted noise reproduces the filled-in world."""
    from causalvae.exact import posterior
    from causalvae.noise import propagate

    n = 4000
    row = [scenes.value_index(c, v) for c, v in zip(vae.label_columns, ["Golem", "type2", "Taunt", "Satyr", "type1", "Idle"])]
    labels = torch.tensor([row] * n)
    k = vae.label_columns.index("action")
    labels[n // 2 :, k] = -1  # half the rows lose the action
    images = torch.zeros((n, 3, 16, 16), dtype=torch.uint8)
    unit = abduct(vae, images, labels, seed=3)
    assert (unit.values["action"][: n // 2] == row[k]).all()
    filled = unit.values["action"][n // 2 :]
    evidence = [c for c in vae.label_columns if c != "action"]
    want = posterior(scenes, ["action"], evidence, np.array([[r for c, r in zip(vae.label_columns, row) if c != "action"]]))[0]
    got = np.bincount(filled, minlength=3) / len(filled)
    assert np.all(np.abs(got - want) < 4 * np.sqrt(want * (1 - want) / len(filled)) + 1e-9), (got, want)
    for name, v in propagate(scenes, unit.noise).items():
        np.testing.assert_array_equal(v, unit.values[name], err_msg=name)


def test_counterfactual_distributions_match_one_query_per_row(scenes):
    """The batched twin-network answer (one joint query, indexed per row) equals asking the
    exact engine row by row, with missing labels summed out."""
    cols = list(scenes.observed)
    s = ancestral(scenes, 40, seed=11)
    rows = np.stack([s.values[c] for c in cols], 1)
    rows[::5, cols.index("action")] = -1
    rows[::7, cols.index("reaction")] = -1
    do = {"action": 0, "reactor_defense": 1}
    world = tuple((k, scenes[k].values[i]) for k, i in sorted(do.items()))
    got = counterfactual_distributions(scenes, cols, rows, do)
    for row, answer in zip(rows, got):
        evidence = {c: int(v) for c, v in zip(cols, row) if v >= 0}
        for c in cols:
            np.testing.assert_allclose(answer[c], query(scenes, [Term(c, world)], evidence).table, atol=1e-12)
    assert got[0]["action"][0] == pytest.approx(1.0)  # the intervened variable takes its value


def test_counterfactual_distributions_of_a_large_joint_ask_row_by_row():
    """The sprites world's five labels (9,216 joint values) would make a twin joint of 85
    million cells: each row is asked on its own instead, with the same answers."""
    from causalvae.graph import Graph

    g = Graph.load("sprites")
    cols = list(g.observed)
    s = ancestral(g, 3, seed=2)
    rows = np.stack([s.values[c] for c in cols], 1)
    do = {"shape": 1}
    world = (("shape", g["shape"].values[1]),)
    got = counterfactual_distributions(g, cols, rows, do)
    for row, answer in zip(rows, got):
        evidence = {c: int(v) for c, v in zip(cols, row)}
        for c in cols:
            np.testing.assert_allclose(answer[c], query(g, [Term(c, world)], evidence).table, atol=1e-12)


def test_inference_in_chunks_equals_one_pass(scenes, vae):
    """Without gradients the networks run in chunks of INFERENCE_CHUNK pictures; the result
    is that of one pass (pictures are independent)."""
    from causalvae import nets

    n = 2 * nets.INFERENCE_CHUNK + 3
    s, images, labels = _units(scenes, vae, n, seed=12)
    parents = vae.parents_onehot({p: torch.from_numpy(s.values[p]) for p in vae.image_parents})
    z = torch.randn(n, vae.config.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        chunked = (vae.decoder(z, parents), vae.encode(images, {p: torch.from_numpy(s.values[p]) for p in vae.image_parents})[0])
        old, nets.INFERENCE_CHUNK = nets.INFERENCE_CHUNK, 10**6
        try:
            whole = (vae.decoder(z, parents), vae.encode(images, {p: torch.from_numpy(s.values[p]) for p in vae.image_parents})[0])
        finally:
            nets.INFERENCE_CHUNK = old
    for a, b in zip(chunked, whole):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_abducted_pixel_noise_returns_the_factual_picture_and_carries_its_detail(scenes, vae):
    """With the picture's pixel noise abducted, the null intervention gives back the factual
    picture exactly (not the decoder's mean); under an intervention the residual carried over
    is the factual one, so x_cf - mu_cf equals (x - mu) where the scales agree."""
    from causalvae.queries import abduct_pixel_noise, apply_pixel_noise

    s, images, labels = _units(scenes, vae, 8, seed=3)
    null = counterfactual(vae, images, labels, {}, seed=0, abduct_noise=True)
    assert torch.equal(null.images, images)
    assert not torch.equal(counterfactual(vae, images, labels, {}, seed=0).images, images)
    cf = counterfactual(vae, images, labels, {"action": "Attack"}, seed=0, abduct_noise=True)
    plain = counterfactual(vae, images, labels, {"action": "Attack"}, seed=0)
    assert all((cf.values[k] == plain.values[k]).all() for k in cf.values)
    # Under the counterfactual parents, the noise reproduces the counterfactual picture.
    parents = {p: torch.from_numpy(cf.values[p]) for p in vae.image_parents}
    params = vae.decoder(cf.abduction.z, vae.parents_onehot(parents)).detach()
    eps = abduct_pixel_noise(vae, params, cf.images)
    assert torch.equal(apply_pixel_noise(vae, params, eps), cf.images)


def test_abducted_bernoulli_noise_lies_in_the_pixels_cell():
    """Bernoulli pixels: U is drawn where x = [U < p], so the factual picture comes back for
    every draw, and p = 1/2 everywhere gives U uniform on [0, 1) (mean 1/2 within 0.01)."""
    from causalvae.graph import Graph, ImageNode, Variable
    from causalvae.queries import abduct_pixel_noise, apply_pixel_noise

    g = Graph([Variable("a", ["0", "1"], cpt=[0.5, 0.5])], image=ImageNode(["a"]))
    v = CausalVAE(g, NetConfig(image_size=8, channels=1, parent_dims=(2,), depth=1, width=4, hidden=8, z_dim=2, likelihood="bernoulli"))
    x = torch.randint(0, 2, (64, 1, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(64, 1, 8, 8, generator=gen)
    u = abduct_pixel_noise(v, logits, x, gen)
    assert torch.equal(apply_pixel_noise(v, logits, u), x)
    u0 = abduct_pixel_noise(v, torch.zeros(64, 1, 8, 8), x, gen)
    assert abs(float(u0.mean()) - 0.5) < 0.01 and float(u0.min()) >= 0 and float(u0.max()) < 1


def test_refined_abduction_raises_the_posterior_density_row_by_row(scenes, vae):
    """refine=N: z starts at the encoder's mean and climbs log p(x | z, parents) + log N(z; 0, I)
    (the mode of the model's posterior over z). 0 steps is the encoder's mean itself; every
    row's objective rises; a row's refined code does not depend on the rest of the batch; the
    counterfactual's causal semantics are those of the unrefined abduction."""
    from causalvae.nets import pixel_distribution
    from causalvae.queries import refine_code

    s, images, labels = _units(scenes, vae, 12, seed=9)
    own = {p: labels[:, vae.label_columns.index(p)] for p in scenes.image.parents}
    with torch.no_grad():
        mean, _ = vae.encode(images, own)

    def objective(z):
        with torch.no_grad():
            return pixel_distribution(vae.decoder(z, vae.parents_onehot(own)), vae.config.likelihood).log_prob(images) - 0.5 * z.square().sum(-1)

    assert torch.equal(refine_code(vae, images, own, mean, 0), mean)
    refined = refine_code(vae, images, own, mean, 20)
    gain = objective(refined) - objective(mean)
    assert (gain > 0.1).all() and float(gain.mean()) > 1.0, gain  # nats; every row
    one = refine_code(vae, images[3:4], {p: v[3:4] for p, v in own.items()}, mean[3:4], 20)
    torch.testing.assert_close(one, refined[3:4], rtol=1e-4, atol=1e-5)
    assert all(p.grad is None for p in vae.parameters())  # the networks are not touched
    unit = abduct(vae, images, labels, seed=1, refine=20)
    torch.testing.assert_close(unit.z, refined, rtol=1e-4, atol=1e-5)
    plain = abduct(vae, images, labels, seed=1)  # the same unit but for z
    for name in scenes.names:
        np.testing.assert_array_equal(unit.values[name], plain.values[name], err_msg=name)
        np.testing.assert_array_equal(unit.noise[name], plain.noise[name], err_msg=name)
    torch.testing.assert_close(plain.z, mean)
    assert torch.equal(reconstruct(vae, images, labels, refine=20), counterfactual(vae, images, labels, {}, seed=0, refine=20).images)
    _, values = predict(vae, unit, act(scenes, {"action": "Walk"}))
    assert (values["action"] == scenes.value_index("action", "Walk")).all()
    for name in set(scenes.names) - scenes.descendants("action") - {"action"}:
        np.testing.assert_array_equal(values[name], unit.values[name], err_msg=name)
    with pytest.raises(CausalVAEError, match="refine must be a whole number of steps >= 0, got -1"):
        abduct(vae, images, labels, seed=1, refine=-1)
    with pytest.raises(CausalVAEError, match="refine applies to the encoder's mean"):
        reconstruct(vae, images, labels, sample=True, refine=3)
    assert torch.equal(reconstruct(vae, images, labels, refine=np.int64(20)), reconstruct(vae, images, labels, refine=20))


def test_abduction_keeps_refined_codes_for_the_same_pictures_and_parents(scenes, vae):
    """abduct(codes=...): the refined code of the same pictures, image parents and steps is
    computed once and reused, equal to a fresh refinement; other pictures, other parents'
    values or another number of steps are refined anew."""
    from causalvae import queries

    s, images, labels = _units(scenes, vae, 8, seed=11)
    calls, real = [], queries.refine_code
    codes: dict = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(queries, "refine_code", lambda *a: calls.append(a[-1]) or real(*a))
        first = abduct(vae, images, labels, seed=1, refine=5, codes=codes)
        again = abduct(vae, images, labels, seed=2, refine=5, codes=codes, pixel_noise=True)
        assert calls == [5] and len(codes) == 1
        torch.testing.assert_close(again.z, first.z, rtol=0, atol=0)
        fresh = abduct(vae, images, labels, seed=2, refine=5, pixel_noise=True)
        torch.testing.assert_close(fresh.z, first.z, rtol=1e-5, atol=1e-6)
        # The pixel noise is drawn after the code: the same stream with the memo as without.
        torch.testing.assert_close(again.pixels, fresh.pixels, rtol=1e-4, atol=1e-4)
        again.z.add_(1.0)  # a caller changing its unit's z leaves the kept code alone
        torch.testing.assert_close(abduct(vae, images, labels, seed=3, refine=5, codes=codes).z, first.z, rtol=0, atol=0)
        calls.clear()
        abduct(vae, images[:4], labels[:4], seed=1, refine=5, codes=codes)  # other pictures
        abduct(vae, images, labels, seed=1, refine=3, codes=codes)  # other steps
        other = labels.clone()
        p = scenes.image.parents[0]
        j = vae.label_columns.index(p)
        other[:, j] = (other[:, j] + 1) % scenes.card(p)  # other values of an image parent
        abduct(vae, images, other, seed=1, refine=5, codes=codes)
        assert calls == [5, 3, 5] and len(codes) == 4
        calls.clear()
        abduct(vae, images, labels, seed=1, refine=0, codes=codes)  # the encoder's mean is not kept
        assert calls == [0] and len(codes) == 4
