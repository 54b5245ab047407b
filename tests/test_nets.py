"""The image networks and pixel likelihoods: proper probabilities, shapes under enumeration, training."""

from __future__ import annotations

import json
import math

import pyro
import pyro.distributions as pdist
import pytest
import torch
import torch.nn.functional as F
from pyro.infer import TraceEnum_ELBO, config_enumerate

from causalvae.errors import CausalVAEError
from causalvae.nets import (
    DiscretizedLogistic,
    NetConfig,
    count_parameters,
    make_nets,
    pixel_distribution,
    prepare,
)

ALL_PIXELS = torch.arange(256.0).reshape(256, 1, 1, 1)  # every value of a 1x1x1 image


def small(**kw) -> NetConfig:
    base = dict(image_size=16, channels=3, parent_dims=(2, 3), z_dim=4, width=8, depth=2, hidden=32)
    return NetConfig(**(base | kw))


def onehot(batch: int, dims=(2, 3)) -> torch.Tensor:
    return torch.cat([torch.nn.functional.one_hot(torch.randint(0, d, (batch,)), d).float() for d in dims], -1)


# --- discretised logistic -------------------------------------------------------------------


@pytest.mark.parametrize("loc", [-1.0, -0.999, 0.0, 0.3, 1.0, 1.7, -3.0])
@pytest.mark.parametrize("log_scale", [-12.0, -7.0, -3.0, 0.0, 3.0, 8.0])
def test_dlogistic_probabilities_over_256_values_sum_to_one(loc, log_scale):
    d = DiscretizedLogistic(torch.full((1, 1, 1), loc), torch.full((1, 1, 1), log_scale))
    logp = d.log_prob(ALL_PIXELS)
    assert logp.shape == (256,) and logp.dtype == torch.float32
    assert torch.isfinite(logp).all()
    assert abs(logp.double().exp().sum().item() - 1.0) < 1e-5


def test_dlogistic_edge_values_finite_and_gradients_finite():
    loc = torch.tensor([-1.0, 0.0, 1.0, 5.0]).reshape(4, 1, 1, 1).requires_grad_()
    log_scale = torch.tensor([-7.0, -7.0, 4.0, -7.0]).reshape(4, 1, 1, 1).requires_grad_()
    d = DiscretizedLogistic(loc, log_scale)
    for value in (0, 255):
        lp = d.log_prob(torch.full((4, 1, 1, 1), value, dtype=torch.uint8))
        assert torch.isfinite(lp).all()
        lp.sum().backward()
        assert torch.isfinite(loc.grad).all() and torch.isfinite(log_scale.grad).all()
    # a logistic centred far above the range puts almost all of its mass on 255
    assert d.log_prob(torch.full((4, 1, 1, 1), 255.0))[3].exp() > 0.999


def test_dlogistic_integer_and_float_values_agree_and_event_is_the_image():
    loc, log_scale = torch.randn(2, 3, 4, 4) * 0.5, torch.randn(2, 3, 4, 4) - 2
    d = DiscretizedLogistic(loc, log_scale)
    assert d.batch_shape == (2,) and d.event_shape == (3, 4, 4)
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    per_pixel = DiscretizedLogistic(loc[..., None, None, None], log_scale[..., None, None, None])
    by_hand = per_pixel.log_prob(x[..., None, None, None]).sum(dim=(-3, -2, -1))
    assert torch.allclose(d.log_prob(x), d.log_prob(x.float()))
    assert torch.allclose(d.log_prob(x), by_hand, rtol=1e-5)


def test_dlogistic_sampling_with_tiny_scale_returns_the_locs_pixel_and_matches_probabilities():
    pixels = torch.tensor([0.0, 1.0, 17.0, 128.0, 254.0, 255.0]).reshape(6, 1, 1, 1)
    d = DiscretizedLogistic(pixels / 127.5 - 1.0, torch.full_like(pixels, -10.0))
    s = d.sample((5,))
    assert s.shape == (5, 6, 1, 1, 1)
    assert torch.equal(s, pixels.expand(5, 6, 1, 1, 1))
    assert torch.allclose(d.mean, pixels)
    # a wide one: sample frequencies of the value 0 agree with its probability
    torch.manual_seed(0)
    wide = DiscretizedLogistic(torch.full((1, 1, 1), -0.9), torch.full((1, 1, 1), -2.0))
    draws = wide.sample((20000,))
    assert draws.min() >= 0 and draws.max() <= 255 and torch.equal(draws, draws.round())
    p0 = wide.log_prob(torch.zeros(1, 1, 1)).exp().item()
    freq = (draws == 0).float().mean().item()
    assert abs(freq - p0) < 4 * math.sqrt(p0 * (1 - p0) / 20000)


def test_dlogistic_expand_and_bf16_params_are_scored_in_float32():
    d = DiscretizedLogistic(torch.zeros(3, 2, 2, dtype=torch.bfloat16), torch.zeros(3, 2, 2, dtype=torch.bfloat16))
    assert d.loc.dtype == torch.float32
    e = d.expand((5, 4))
    assert e.batch_shape == (5, 4) and e.event_shape == (3, 2, 2)
    assert e.log_prob(torch.zeros(3, 2, 2)).shape == (5, 4)


# --- Bernoulli ------------------------------------------------------------------------------


def test_bernoulli_log_prob_matches_hand_computation():
    logits = torch.tensor([[[[2.0, -1.0], [0.0, 3.0]]]])  # (1, C=1, 2, 2)
    x = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    d = pixel_distribution(logits, "bernoulli")
    assert d.batch_shape == (1,) and d.event_shape == (1, 2, 2)

    def sig(t):
        return 1 / (1 + math.exp(-t))

    expected = math.log(sig(2.0)) + math.log(sig(-1.0)) + math.log(1 - sig(0.0)) + math.log(1 - sig(3.0))
    assert d.log_prob(x).item() == pytest.approx(expected, rel=1e-6)
    assert d.log_prob(x.to(torch.uint8)).item() == pytest.approx(expected, rel=1e-6)  # stored dtype
    assert d.expand((3, 1)).log_prob(x.to(torch.uint8)).shape == (3, 1)


# --- networks -------------------------------------------------------------------------------


@pytest.mark.parametrize("likelihood,out_channels", [("bernoulli", 1), ("dlogistic", 6)])
def test_decoder_shapes_with_enumeration_dims_on_the_left(likelihood, out_channels):
    cfg = small(likelihood=likelihood, channels=1 if likelihood == "bernoulli" else 3)
    _, dec = make_nets(cfg)
    z = torch.randn(3, 1, 5, cfg.z_dim)
    parents = onehot(5).expand(3, 1, 5, 5)
    params = dec(z, parents)
    assert params.shape == (3, 1, 5, out_channels, 16, 16) and params.dtype == torch.float32
    # broadcasting: enumerated parents (3, 1, 1, P) against per-image z (5, D)
    params = dec(torch.randn(5, cfg.z_dim), onehot(3)[:, None, None, :])
    assert params.shape == (3, 1, 5, out_channels, 16, 16)
    # leading dims are independent: each slice equals the un-batched call
    assert torch.allclose(dec(z, parents)[2, 0], dec(z[2, 0], parents[2, 0]), atol=1e-5)
    if likelihood == "dlogistic":
        assert (params[..., 3:, :, :] >= -7.0).all()
    x = torch.randint(0, 2 if likelihood == "bernoulli" else 256, (5, cfg.channels, 16, 16)).float()
    assert pixel_distribution(params, likelihood).log_prob(x).shape == (3, 1, 5)


def test_encoder_shapes_broadcasts_parents_and_gradients_flow():
    cfg = small()
    enc, dec = make_nets(cfg)
    x = prepare(torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8), "dlogistic")
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    loc, scale = enc(x, onehot(5))
    assert loc.shape == scale.shape == (5, cfg.z_dim) and (scale > 0).all()
    loc_e, _ = enc(x, onehot(3)[:, None, :])  # enumerated parents: convs once, MLP broadcast
    assert loc_e.shape == (3, 5, cfg.z_dim)

    parents = onehot(5)
    loc, scale = enc(x, parents)
    z = loc + scale * torch.randn_like(loc)
    loss = -pixel_distribution(dec(z, parents), "dlogistic").log_prob(x.add(1).mul(127.5).round()).mean()
    loss.backward()
    for net in (enc, dec):
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert sum(g.abs().sum().item() for g in grads) > 0
    assert count_parameters(enc) == sum(p.numel() for p in enc.parameters()) > 0


def test_channels_last_and_bf16_autocast():
    cfg = small()
    enc, dec = make_nets(cfg)
    x = prepare(torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8), "dlogistic")
    parents = onehot(4)
    with torch.no_grad():
        ref = enc(x, parents)[0]
        enc_cl = enc.to(memory_format=torch.channels_last)
        assert torch.allclose(enc_cl(x.contiguous(memory_format=torch.channels_last), parents)[0], ref, atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loc, scale = enc(x, parents)
            params = dec(loc, parents)
            lp = pixel_distribution(params, "dlogistic").log_prob(torch.zeros(4, 3, 16, 16))
    for t in (loc, scale, params, lp):
        assert t.dtype == torch.float32 and torch.isfinite(t).all()
    assert (loc - ref).abs().max() < 0.1  # bf16 agrees roughly with fp32


def test_pyro_parallel_enumeration_over_an_image_parent():
    """A hidden binary parent of the image, enumerated in parallel: the ELBO is finite and
    the decoder sees both values at once (log_prob with an enumeration dim on the left)."""
    pyro.clear_param_store()
    cfg = small(parent_dims=(2,), channels=1, likelihood="bernoulli")
    enc, dec = make_nets(cfg)
    x = torch.randint(0, 2, (6, 1, 16, 16)).float()

    @config_enumerate
    def model(x):
        pyro.module("dec", dec)
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", pdist.Categorical(torch.tensor([0.3, 0.7])))
            z = pyro.sample("z", pdist.Normal(torch.zeros(cfg.z_dim), 1.0).to_event(1))
            yo = torch.nn.functional.one_hot(y, 2).float()
            pyro.sample("x", pixel_distribution(dec(z, yo), "bernoulli"), obs=x)

    def guide(x):
        pyro.module("enc", enc)
        with pyro.plate("data", x.shape[0]):
            loc, scale = enc(x, torch.full((x.shape[0], 2), 0.5))
            pyro.sample("z", pdist.Normal(loc, scale).to_event(1))

    loss = TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, x)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw,field",
    [
        (dict(image_size=100), "image_size"),
        (dict(channels=2), "channels"),
        (dict(likelihood="gaussian"), "likelihood"),
        (dict(parent_dims=(2, 0)), "parent_dims"),
        (dict(z_dim=0), "z_dim"),
        (dict(width=True), "width"),
        (dict(depth=-1), "depth"),
        (dict(max_log_scale=-8.0), "max_log_scale"),
        (dict(max_log_scale="big"), "max_log_scale"),
        (dict(ordinal=(2,)), "ordinal"),
        (dict(ordinal=(1, 1)), "ordinal"),
        (dict(ordinal="1"), "ordinal"),
        (dict(parent_dims=(1, 3), ordinal=(0,)), "ordinal"),
        (dict(parent_dims=(1, 3), parent_stats=((0.0, 1.0), None), ordinal=(0,)), "ordinal"),
    ],
)
def test_netconfig_validation_names_the_field(kw, field):
    base = dict(image_size=64, channels=3, parent_dims=(2, 3))
    with pytest.raises(CausalVAEError, match=field):
        NetConfig(**(base | kw))


def test_netconfig_json_round_trip_and_unknown_keys():
    import json

    cfg = NetConfig(image_size=96, channels=1, parent_dims=(3, 5, 2), z_dim=8, likelihood="bernoulli")
    back = NetConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.parent_dims == (3, 5, 2)
    assert NetConfig(image_size=64, channels=3, parent_dims=(2,)).stage_channels == [32, 64, 128, 256]
    with pytest.raises(CausalVAEError, match=r"unknown key 'zdim'.*z_dim.*valid: image_size, channels"):
        NetConfig.from_dict(cfg.to_dict() | {"zdim": 8})
    with pytest.raises(CausalVAEError, match="missing channels"):
        NetConfig.from_dict({"image_size": 64, "parent_dims": [2]})


def test_ordinal_parents_take_one_slot_each_and_the_field_is_written_only_when_set():
    """An ordinal parent enters as one number: the parent code shrinks by its values less one,
    the placed columns follow, the networks take that width; a config without the field (every
    model saved before it) loads with none, and one without ordinal parents is written without it."""
    import json

    cfg = NetConfig(image_size=16, channels=1, parent_dims=(3, 6, 8), depth=2, width=8, hidden=16, likelihood="bernoulli", ordinal=(2, 1), place=(2,))
    assert cfg.ordinal == (1, 2) and cfg.parent_slots == (3, 1, 1) and cfg.parent_size == 5
    assert cfg.columns(placed=True) == [4] and cfg.columns(placed=False) == [0, 1, 2, 3]
    assert NetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    plain = NetConfig(image_size=16, channels=1, parent_dims=(3, 6, 8), depth=2, width=8, hidden=16)
    assert "ordinal" not in plain.to_dict() and NetConfig.from_dict(plain.to_dict()).ordinal == ()
    enc, dec = make_nets(cfg)
    z, p = torch.zeros(2, cfg.z_dim), torch.zeros(2, 5)
    assert dec(z, p).shape == (2, 1, 16, 16) and enc(torch.zeros(2, 1, 16, 16), p)[0].shape == (2, cfg.z_dim)


def test_max_log_scale_bounds_the_decoders_scale_and_older_configs_load():
    """The cap bounds the log-scale the decoder outputs; the likelihood stays a proper
    distribution; a config saved before the field existed loads with no cap."""
    torch.manual_seed(0)
    cfg = NetConfig(image_size=16, channels=3, parent_dims=(2,), depth=2, width=8, max_log_scale=-3.0)
    _, dec = make_nets(cfg)
    with torch.no_grad():
        for p in dec.out.parameters():
            p.fill_(0.5)  # a large raw log-scale everywhere
        out = dec(torch.randn(4, cfg.z_dim), torch.ones(4, 2))
    assert out[:, 3:].max() == pytest.approx(-3.0)
    d = DiscretizedLogistic(torch.zeros(1, 1, 1), torch.full((1, 1, 1), -3.0))
    assert abs(d.log_prob(ALL_PIXELS).double().exp().sum().item() - 1.0) < 1e-5
    old = cfg.to_dict()
    del old["max_log_scale"]
    assert NetConfig.from_dict(old).max_log_scale is None


# --- training -------------------------------------------------------------------------------


def test_autoencoder_overfits_16_images():
    """A plain autoencoder (z = encoder loc) on 16 blocky 16x16 RGB images: 100 Adam steps cut
    the discretised-logistic NLL by at least 1.5 nats per pixel value (from about 6.3 nats,
    above the 5.55 of a uniform guess)."""
    torch.manual_seed(0)
    cfg = small(parent_dims=(2,), z_dim=16, width=16, hidden=64)
    enc, dec = make_nets(cfg)
    coarse = torch.randint(0, 256, (16, 3, 4, 4), dtype=torch.uint8)
    pixels = coarse.repeat_interleave(4, dim=-1).repeat_interleave(4, dim=-2)
    x, parents = prepare(pixels, "dlogistic"), onehot(16, (2,))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=3e-3)

    def nll_per_value():
        params = dec(enc(x, parents)[0], parents)
        return -pixel_distribution(params, "dlogistic").log_prob(pixels).mean() / pixels[0].numel()

    start = nll_per_value().item()
    for _ in range(100):
        opt.zero_grad()
        loss = nll_per_value()
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = nll_per_value().item()
    assert start > 5.5
    assert end < start - 1.5, (start, end)


def test_film_decoder_uses_its_parents_at_every_stage_and_old_concat_files_load():
    """A FiLM decoder starts as the identity modulation; once its FiLM layers are non-zero,
    changing only the parents changes the output. A state dict in the layout of the original
    decoder (``deconvs.N``) loads into a config saved without the new fields, and computes the
    same function as the layers it names."""
    torch.manual_seed(0)
    cfg = NetConfig(image_size=16, channels=3, parent_dims=(2, 3), depth=2, width=8, hidden=16, residual=True)
    assert cfg.decoder == "film"
    _, dec = make_nets(cfg)
    films = [m for m in dec.modules() if m.__class__.__name__ == "_FiLM"]
    assert len(films) == 3 * cfg.depth - 3 and all(float(f.proj.weight.detach().abs().sum()) == 0 for f in films)
    z = torch.randn(2, cfg.z_dim)
    a, b = torch.tensor([[1.0, 0, 1, 0, 0]] * 2), torch.tensor([[0.0, 1, 0, 0, 1]] * 2)
    with torch.no_grad():
        for f in films:
            f.proj.weight.normal_()
        assert not torch.allclose(dec(z, a), dec(z, b))

    old = NetConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k not in ("decoder", "residual")})
    assert (old.decoder, old.residual) == ("concat", False)
    _, legacy = make_nets(old)
    renamed = {}
    for key, value in legacy.state_dict().items():
        for i in range(old.depth - 1):
            key = key.replace(f"stages.{i}.up.", f"deconvs.{3 * i}.").replace(f"stages.{i}.film.norm.", f"deconvs.{3 * i + 1}.")
        renamed[key.replace("out.", f"deconvs.{3 * (old.depth - 1)}.")] = value
    assert any(k.startswith("deconvs.") for k in renamed)
    _, fresh = make_nets(old)
    fresh.load_state_dict(renamed, strict=True)
    with torch.no_grad():
        assert torch.equal(fresh(z, a), legacy(z, a))


def test_broadcast_decoder_adds_the_code_the_same_way_under_every_parent():
    """decoder="broadcast": every place of the grid starts from A [z, e] + B (x, y) + b: z and
    the parents enter every place alike and the places differ by their coordinates only,
    whatever z and the parents. The model file round-trips; a depth below 2 is refused by
    name."""
    torch.manual_seed(0)
    cfg = NetConfig(image_size=16, channels=1, parent_dims=(2, 3), depth=2, width=8, hidden=16, decoder="broadcast")
    _, dec = make_nets(cfg)
    first = []
    dec.grid_convs[0][0].register_forward_pre_hook(lambda m, args: first.append(args[0]))
    z, z2 = torch.randn(2, cfg.z_dim), torch.randn(2, cfg.z_dim)
    a, b = torch.tensor([[1.0, 0, 1, 0, 0]] * 2), torch.tensor([[0.0, 1, 0, 0, 1]] * 2)
    with torch.no_grad():
        out = dec(z, a)
        assert out.shape == (2, 2, 16, 16)
        for p in (a, b):
            dec(z, p), dec(z2, p)
    v = {k: dec.project(torch.cat([zz, F.silu(dec.embed(p))], -1)).detach() for k, (zz, p) in {"za": (z, a), "z2a": (z2, a), "zb": (z, b), "z2b": (z2, b)}.items()}
    places = dec.place(dec.grid).permute(2, 0, 1).detach()
    for h, k in zip(first[1:], ("za", "z2a", "zb", "z2b")):  # the grid's first layer, under each code and parents
        torch.testing.assert_close(h, F.silu(v[k][:, :, None, None] + places[None]))
    assert not torch.allclose(places[:, 0, 0], places[:, -1, -1])  # the places do differ
    assert not torch.allclose(v["za"], v["zb"])  # the parents do enter
    assert len(first) == 5
    again = NetConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    _, loaded = make_nets(again)
    loaded.load_state_dict(dec.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(loaded(z, a), out)
        assert loaded(z[None].expand(3, 2, -1), a).shape == (3, 2, 2, 16, 16)  # leading dims broadcast
    with pytest.raises(CausalVAEError, match="'broadcast' needs depth >= 2"):
        NetConfig(image_size=16, channels=1, parent_dims=(2,), depth=1, decoder="broadcast")
    with pytest.raises(CausalVAEError, match="coordinates must be one of unit, cells, got 'pixels'"):
        NetConfig(image_size=16, channels=1, parent_dims=(2,), decoder="broadcast", coordinates="pixels")
    with pytest.raises(CausalVAEError, match="residual needs decoder 'film' or 'broadcast'"):
        NetConfig(image_size=16, channels=1, parent_dims=(2,), decoder="concat", residual=True)


def test_broadcast_coordinates_count_grid_cells_and_older_models_keep_the_unit_span():
    """The broadcast grid's coordinates run over -(g-1)/2 .. (g-1)/2 in steps of one place
    (the default, "cells"); a model config saved before the field existed means [-1, 1] (the
    first broadcast models), and decodes exactly as it did with the same weights."""
    cfg = NetConfig(image_size=32, channels=1, parent_dims=(2,), depth=3, width=8, hidden=16, decoder="broadcast")
    assert cfg.coordinates == "cells"
    _, dec = make_nets(cfg)
    g = 32 // 4
    x, y = dec.grid[..., 0], dec.grid[..., 1]
    torch.testing.assert_close(x[0], torch.arange(g, dtype=torch.float32) - (g - 1) / 2)
    torch.testing.assert_close(y[:, 0], torch.arange(g, dtype=torch.float32) - (g - 1) / 2)
    old_dict = cfg.to_dict()
    del old_dict["coordinates"]
    old = NetConfig.from_dict(old_dict)
    assert old.coordinates == "unit"
    _, legacy = make_nets(old)
    torch.testing.assert_close(legacy.grid[0, :, 0], torch.linspace(-1.0, 1.0, g))
    legacy.load_state_dict(dec.state_dict(), strict=True)
    torch.manual_seed(1)
    z, a = torch.randn(2, cfg.z_dim), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    with torch.no_grad():
        # Same weights, other units: the first layer's places differ by the factor (g-1)/2.
        torch.testing.assert_close(dec.place(dec.grid), legacy.place(legacy.grid) * (g - 1) / 2)
        assert not torch.allclose(dec(z, a), legacy(z, a))
    assert NetConfig.from_dict(json.loads(json.dumps(old.to_dict()))) == old


def test_translate_moves_maps_by_whole_pixels_and_repeats_the_border():
    """A shift of 2/W (2/H) moves the maps one pixel right (down), exactly; places that come
    from outside the picture repeat its border; a zero shift is the identity."""
    from causalvae.nets import translate

    maps = torch.zeros(2, 1, 8, 8)
    maps[0, 0, 3, 2] = 1.0
    maps[1, 0, 5, 5] = 1.0
    maps[1, 0, :, 0] = -4.0  # a left border
    shift = torch.tensor([[2 * 3 / 8, 0.0], [2 * -1 / 8, 2 * -2 / 8]])
    out = translate(maps, shift)
    assert out[0, 0, 3, 5] == pytest.approx(1.0) and out[0, 0].sum() == pytest.approx(1.0)
    assert out[1, 0, 3, 4] == pytest.approx(1.0) and out[1, 0, :, 1:7].sum() == pytest.approx(1.0)
    # Moved left by one: column 0 now holds what was column 1, and the -4 border left the picture.
    assert torch.allclose(out[1, 0, :, 0], torch.zeros(8))
    # Moved right by one: the places that come from outside on the left repeat the border (-4), not zeros.
    right = translate(maps[1:], torch.tensor([[2 / 8, 0.0]]))
    assert torch.allclose(right[0, 0, :, 0], torch.full((8,), -4.0)) and torch.allclose(right[0, 0, :, 1], torch.full((8,), -4.0))
    torch.testing.assert_close(translate(maps, torch.zeros(2, 2)), maps)


def _placed_rows() -> tuple[torch.Tensor, torch.Tensor]:
    """Parent codes of three rows for parent_dims (2, 3, 4): ``a``, and ``b`` that differs
    from it in parents 1 and 2 only (the placed ones in the tests below)."""
    a = torch.cat([F.one_hot(torch.tensor([0, 1, 1]), 2), F.one_hot(torch.tensor([0, 2, 1]), 3), F.one_hot(torch.tensor([3, 0, 1]), 4)], -1).float()
    b = torch.cat([a[:, :2], F.one_hot(torch.tensor([1, 1, 0]), 3).float(), F.one_hot(torch.tensor([0, 2, 2]), 4).float()], -1)
    return a, b


def test_transform_turns_scales_and_moves_as_documented():
    """nets.transform: zero params are the identity; a quarter turn puts what lay right of the
    centre below it; a log-scale of log 2 doubles a distance from the centre; a shift alone is
    translate's; the border repeats."""
    from causalvae.nets import transform, translate

    torch.manual_seed(0)
    maps = torch.randn(3, 2, 8, 8)
    torch.testing.assert_close(transform(maps, torch.zeros(3, 4)), maps)
    shift = torch.tensor([[2 / 8, 0.0], [0.0, -4 / 8], [6 / 8, 2 / 8]])
    torch.testing.assert_close(transform(maps, torch.cat([shift, torch.zeros(3, 2)], -1)), translate(maps, shift))
    # A quarter turn of an 8x8 picture maps pixel centres onto pixel centres exactly: (row r,
    # column c) -> (row c, column 7 - r), i.e. the picture turned clockwise on screen (y down).
    quarter = transform(maps, torch.tensor([[0.0, 0.0, 0.0, math.pi / 2]]).expand(3, 4))
    torch.testing.assert_close(quarter, maps.transpose(-1, -2).flip(-1), atol=1e-5, rtol=0)
    dot = torch.zeros(1, 1, 8, 8)
    dot[0, 0, 3:5, 5] = 1.0  # right of the centre (columns 3.5 is the centre; 5 is 1.5 to its right)
    turned = transform(dot, torch.tensor([[0.0, 0.0, 0.0, math.pi / 2]]))
    assert turned[0, 0, 5, 3:5].sum() == pytest.approx(2.0) and turned.sum() == pytest.approx(2.0)  # now below it
    # Doubled: a column 0.5 px right of the centre (3.5) lands, twice as wide, 1 px right of it.
    wide = torch.zeros(1, 1, 8, 8)
    wide[0, 0, :, 4] = 1.0
    row = transform(wide, torch.tensor([[0.0, 0.0, math.log(2.0), 0.0]]))[0, 0, 4]
    cols = torch.arange(8.0)
    assert row.sum() == pytest.approx(2.0) and (row * cols).sum() / row.sum() == pytest.approx(4.5)
    # All four at once: content at q lands at s R(angle) q + t (turned and scaled about the
    # centre, then moved), checked on the centroid of a small blob off the centre.
    big = torch.zeros(1, 1, 64, 64)
    big[0, 0, 30:34, 40:44] = 1.0  # centre at (41.5, 31.5): q = (10, 0) px from the centre (31.5, 31.5)
    s, angle, t = 1.5, math.pi / 2, torch.tensor([6.0, -4.0])  # t in pixels
    out = transform(big, torch.tensor([[t[0] / 32, t[1] / 32, math.log(s), angle]]))[0, 0]
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    centroid = torch.stack([(out * xs).sum(), (out * ys).sum()]) / out.sum() - 31.5
    expected = torch.tensor([0.0, 10.0 * s]) + t  # R(pi/2) (10, 0) = (0, 10), scaled, then moved
    torch.testing.assert_close(centroid, expected, atol=1e-3, rtol=0)
    border = torch.zeros(1, 1, 8, 8)
    border[0, 0, :, 0] = -4.0
    moved = transform(border, torch.tensor([[2 / 8, 0.0, 0.0, 0.0]]))
    assert torch.allclose(moved[0, 0, :, 0], torch.full((8,), -4.0))


def test_transform_holds_a_far_log_scale_at_its_bound_never_nan():
    """The similarity placer's log-scale is unbounded (a network's output): a far code's
    +-1e4 would make exp(-log_scale) inf or 0 and the picture NaN. Beyond MAX_LOG_PLACE_SCALE
    it is held at the bound, with the gradient of a clamp there (zero), finite inside."""
    from causalvae.nets import MAX_LOG_PLACE_SCALE, transform

    torch.manual_seed(0)
    maps = torch.randn(2, 1, 8, 8)
    for far in (1e4, -1e4, float("inf"), -float("inf")):
        params = torch.tensor([[0.1, -0.2, far, 0.3]] * 2)
        bound = math.copysign(MAX_LOG_PLACE_SCALE, far)
        out = transform(maps, params)
        assert torch.isfinite(out).all(), far
        torch.testing.assert_close(out, transform(maps, torch.tensor([[0.1, -0.2, bound, 0.3]] * 2)))
    inside = torch.tensor([[0.1, -0.2, 0.5, 0.3]], requires_grad=True)
    transform(maps[:1], inside).sum().backward()
    assert torch.isfinite(inside.grad).all() and inside.grad[0, 2] != 0


def test_similarity_placing_keeps_the_code_out_of_the_drawing():
    """place_mode="similarity": z and the placed parents reach only the placer, which gives a
    shift, a log-scale and an angle; the output is the drawing (of the other parents alone)
    transformed by them. At first the transform is the identity, so neither z nor the placed
    parents change anything; the mode round-trips through the config and needs place."""
    from causalvae.nets import transform

    torch.manual_seed(0)
    for decoder in ("film", "concat", "broadcast"):
        cfg = NetConfig(image_size=16, channels=1, parent_dims=(2, 3, 4), z_dim=4, width=8, depth=2, hidden=16, decoder=decoder, place=(1, 2), place_mode="similarity")
        _, dec = make_nets(cfg)
        z = torch.randn(3, 4)
        a, b = _placed_rows()
        with torch.no_grad():
            drawn = dec(z, a)
            assert torch.equal(dec(torch.randn(3, 4), b), drawn)  # neither z nor the placed parents draw
            for p in dec.placer[-1].parameters():
                p.normal_(0, 0.3)
            params = dec.placer(torch.cat([z, a[:, 2:]], -1))
            assert params.shape == (3, 4)
            torch.testing.assert_close(dec(z, a), transform(drawn, params))
            assert not torch.allclose(dec(torch.randn(3, 4), a), dec(z, a))  # z now turns, scales, moves
            other = a.clone()
            other[:, :2] = other[:, :2].flip(-1)
            assert not torch.allclose(dec(z, other), dec(z, a))  # a drawn parent changes the drawing
        again = NetConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg and again.to_dict()["place_mode"] == "similarity"
    assert "place_mode" not in NetConfig(image_size=16, channels=1, parent_dims=(2, 3, 4), place=(1,)).to_dict()  # shift: files as before
    with pytest.raises(CausalVAEError, match="place_mode must be one of shift, similarity"):
        NetConfig(image_size=16, channels=1, parent_dims=(2, 3, 4), place=(1,), place_mode="affine")
    with pytest.raises(CausalVAEError, match="and place is empty"):
        NetConfig(image_size=16, channels=1, parent_dims=(2, 3, 4), place_mode="similarity")


def test_a_drawing_twice_the_size_is_sampled_at_the_pictures_pixels():
    """draw_scale=2: the decoder draws at twice the picture's size (one more stage) and the
    placer's transform samples the drawing at the picture's pixels. A drawing made of 2x2
    blocks of a picture comes back as that picture under the identity (translate and
    transform alike), and moved by a whole pixel exactly; the option round-trips and needs
    place."""
    from causalvae.nets import transform, translate

    torch.manual_seed(0)
    small_maps = torch.randn(2, 1, 8, 8)
    big = small_maps.repeat_interleave(2, -1).repeat_interleave(2, -2)  # (2, 1, 16, 16)
    torch.testing.assert_close(transform(big, torch.zeros(2, 4), 8), small_maps)
    torch.testing.assert_close(translate(big, torch.zeros(2, 2), 8), small_maps)
    moved = transform(big, torch.tensor([[2 / 8, 0.0, 0.0, 0.0]]).expand(2, 4), 8)
    torch.testing.assert_close(moved[..., 1:], small_maps[..., :-1])
    for decoder in ("film", "concat", "broadcast"):
        cfg = NetConfig(image_size=16, channels=1, parent_dims=(2, 3, 4), z_dim=4, width=8, depth=2, hidden=16, decoder=decoder, place=(1, 2), place_mode="similarity", draw_scale=2)
        _, dec = make_nets(cfg)
        plain = make_nets(NetConfig(**{**cfg.to_dict(), "draw_scale": 1}))[1]
        assert len(dec.stages) == len(plain.stages) + 1
        z, p = torch.randn(3, 4), _placed_rows()[0]
        with torch.no_grad():
            assert dec(z, p).shape == (3, 2, 16, 16)  # the picture's size, location and log-scale
        again = NetConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg and again.to_dict()["draw_scale"] == 2
    assert "draw_scale" not in NetConfig(image_size=16, channels=1, parent_dims=(2, 3, 4), place=(1,)).to_dict()
    for bad, words in (({"place": (1,), "draw_scale": 3}, "draw_scale must be 1 or 2"), ({"draw_scale": 2}, "it needs place")):
        with pytest.raises(CausalVAEError, match=words):
            NetConfig(image_size=16, channels=1, parent_dims=(2, 3, 4), **bad)


def test_placed_parents_only_move_what_the_others_draw():
    """NetConfig.place: the parents it names never reach the drawing (with the shift held at
    zero, changing them changes nothing); the shift comes from z and them alone, and the
    output is the drawing moved by it. The shift starts at zero; the config round-trips, and
    wrong indices are one error each."""
    from causalvae.nets import translate

    torch.manual_seed(0)
    for decoder in ("film", "concat", "broadcast"):
        cfg = NetConfig(image_size=16, channels=1, parent_dims=(2, 3, 4), z_dim=4, width=8, depth=2, hidden=16, decoder=decoder, place=(2, 1))
        assert cfg.place == (1, 2) and cfg.columns(True) == [2, 3, 4, 5, 6, 7, 8] and cfg.columns(False) == [0, 1]
        _, dec = make_nets(cfg)
        z = torch.randn(3, 4)
        a, b = _placed_rows()
        with torch.no_grad():
            drawn = dec(z, a)
            assert torch.equal(dec(z, b), drawn)  # the shift starts at zero: the placed parents do nothing yet
            for p in dec.placer[-1].parameters():
                p.normal_(0, 0.3)
            for p in (a, b):
                shift = dec.placer(torch.cat([z, p[:, 2:]], -1))
                torch.testing.assert_close(dec(z, p), translate(drawn, shift))
            assert not torch.allclose(dec(z, a), dec(z, b))
            other = a.clone()
            other[:, :2] = other[:, :2].flip(-1)  # a drawn parent does change the drawing
            assert not torch.allclose(dec(z, other), dec(z, a))
        again = NetConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg
        _, loaded = make_nets(again)
        loaded.load_state_dict(dec.state_dict(), strict=True)
        with torch.no_grad():
            assert torch.equal(loaded(z, a), dec(z, a))
            assert loaded(z[None].expand(2, 3, -1), a).shape == (2, 3, 2, 16, 16)  # leading dims broadcast (location and log-scale)
    assert "place" not in small().to_dict()  # files of models without it stay as they were
    for bad, words in (((3,), "indices of the 3 parents"), ((1, 1), "names a parent twice"), ((0, 1, 2), "cannot hold every parent"), ("ab", "list of parent indices")):
        with pytest.raises(CausalVAEError, match=words):
            NetConfig(image_size=16, channels=1, parent_dims=(2, 3, 4), place=bad)
