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
    with pytest.raises(CausalVAEError, match="image parent 'action' need the semi-supervised guide"):
        vae.loss(torch.zeros((2, 3, 16, 16), dtype=torch.uint8), rows)
    with pytest.raises(CausalVAEError, match="do not match the image parents"):
        CausalVAE(scenes, NetConfig(image_size=16, channels=3, parent_dims=(2, 3), depth=2))
