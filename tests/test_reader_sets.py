"""--reader-sets: the counterfactual term's reader is trained, and asked, on the set of readings
the world says no reader can tell apart from a label (the sprites world's orientation, modulo
the shape's symmetry), with the style unknown."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from causalvae import worlds
from causalvae.data import load as load_dataset
from causalvae.errors import CausalVAEError
from causalvae.train import ReadingSets, TrainConfig, build_model, counterfactual_term, fit, make_reader, reading_sets, train_reader
from causalvae.worlds.sprites.world import orientation_bins

TINY = dict(batch_size=32, width=8, depth=3, hidden=32, z_dim=4, threads=1)
UNITS = ("shape", "scale", "orientation", "posX", "posY")


@pytest.fixture(scope="module")
def morpho_tiny(tmp_path_factory):
    from causalvae.generate import generate

    return generate("morpho", tmp_path_factory.mktemp("sets") / "morpho", 120, seed=5)


@pytest.fixture(scope="module")
def sprites_tiny(tmp_path_factory):
    from causalvae.generate import generate

    return generate("sprites", tmp_path_factory.mktemp("sets") / "sprites", 60, seed=5)


def _vae(data, **kw):
    ds = load_dataset(data, split="train", verify=False)
    return build_model(TrainConfig(data=str(data), out="o", **{**TINY, **kw}), ds), ds


class _Accepting:
    """A world that reads the digit ambiguously: ``accepted`` gives ``rows`` (a function of the
    values) for it."""

    name = "fake"

    def __init__(self, rows):
        self.ambiguous = {"digit": "test"}
        self.rows = rows

    def accepted(self, column, card, values, style):
        assert style is None  # the style is never known in training
        return self.rows(np.asarray(values[column]), card)


def test_style_free_readings_are_the_union_of_the_exact_ones_over_every_offset():
    """The sprites world's accepted orientations of every graph unit of one shape and scale,
    with the style unknown, are exactly the bins of every symmetric equivalent of every picture
    in the unit's bins (its 80 offsets); a heart, which has no symmetry, is read in its own
    bin only (0 = 2 pi: bins 0 and 7 share the upright heart)."""
    w = worlds.get("sprites")
    o, x, y = (a.ravel() for a in np.meshgrid(np.arange(8), np.arange(8), np.arange(8), indexing="ij"))
    offsets = np.array([(do, dx, dy) for do in range(5) for dx in range(4) for dy in range(4)])
    for shape in (1, 2):  # an ellipse (whose sets differ between posX and posY), a heart
        classes = np.zeros((len(o), len(offsets), 6), dtype=np.int64)
        classes[..., 1], classes[..., 2] = shape, 3
        classes[..., 3] = 5 * o[:, None] + offsets[None, :, 0]
        classes[..., 4] = 4 * x[:, None] + offsets[None, :, 1]
        classes[..., 5] = 4 * y[:, None] + offsets[None, :, 2]
        union = orientation_bins(classes.reshape(-1, 6)).reshape(len(o), len(offsets), 8).any(1)
        values = dict(zip(UNITS, (np.full(len(o), shape), np.full(len(o), 3), o, x, y)))
        got = w.accepted("orientation", 8, values, None)
        assert (got == union).all()
        if shape == 2:
            own = np.eye(8, dtype=bool)[o]
            assert (got[(o > 0) & (o < 7)] == own[(o > 0) & (o < 7)]).all()
        else:
            assert (got.sum(1) >= 2).all() and got[np.arange(len(o)), o].all()
    with pytest.raises(CausalVAEError, match="posX"):
        w.accepted("orientation", 8, {**{k: np.array([1]) for k in UNITS}, "posX": np.array([-1])}, None)
    with pytest.raises(CausalVAEError, match="8 bins"):
        w.accepted("orientation", 6, {k: np.array([1]) for k in UNITS}, None)


def test_a_parent_not_known_accepts_the_union_over_its_values(sprites_tiny):
    """A hidden shape (-1) accepts every orientation any shape would accept; a known one its own."""
    vae, _ = _vae(sprites_tiny)
    sets = reading_sets(worlds.get("sprites"), vae)
    assert sets is not None and list(sets.columns.values()) == ["orientation"]
    k = list(sets.columns)[0]
    row = {"scale": torch.tensor([5]), "orientation": torch.tensor([3]), "posX": torch.tensor([4]), "posY": torch.tensor([4])}
    each = [sets({**row, "shape": torch.tensor([s])})[k][0] for s in range(3)]
    assert each[2].tolist() == [b == 3 for b in range(8)]  # the heart: its own bin
    assert each[0].sum() > each[2].sum()  # the square: its quarter turns too
    unknown = sets({**row, "shape": torch.tensor([-1])})[k][0]
    assert unknown.tolist() == (each[0] | each[1] | each[2]).tolist()
    unread = sets({**row, "shape": torch.tensor([2]), "orientation": torch.tensor([-1])})[k][0]
    assert not unread.any()  # a row without its own orientation accepts nothing


def test_the_term_asks_for_the_set(morpho_tiny):
    """One accepted value per row gives the plain term; accepting every digit takes the digit
    out of it, leaving the continuous parents' part, which does not depend on the sets."""
    vae, ds = _vae(morpho_tiny, cf_weight=1.0)
    images, labels = ds.batch(np.arange(24))
    cont = ds.continuous_batch(np.arange(24))
    torch.manual_seed(0)
    reader = make_reader(vae)

    def term(rows):
        torch.manual_seed(3)
        sets = None if rows is None else ReadingSets(_Accepting(rows), vae)
        with torch.no_grad():
            return float(counterfactual_term(vae, reader, images, labels, cont, sets=sets))

    def one_hot(v, card):
        return np.eye(card, dtype=bool)[v]

    def everything(v, card):
        return np.ones((len(v), card), dtype=bool)

    plain, own, free = term(None), term(one_hot), term(everything)
    assert own == pytest.approx(plain, rel=1e-6)
    assert free < plain - 1.0  # a digit read among 10 by an untrained reader costs about log 10
    # what is left is the continuous parents' Gaussian part: the same with a reader that
    # reads every digit as sure as can be right
    assert plain - free == pytest.approx(math.log(10), abs=1.0)


def test_a_reader_accepting_every_reading_learns_nothing_and_is_always_right(morpho_tiny):
    """Trained on sets that accept every digit, the digit's loss is 0: the reader's digit block
    does not move from its start, and its validation accuracy counts every reading right."""
    vae, ds = _vae(morpho_tiny, cf_weight=1.0)
    sets = ReadingSets(_Accepting(lambda v, card: np.ones((len(v), card), dtype=bool)), vae)
    start, _ = train_reader(vae, ds, None, 0, seed=0, sets=sets)
    trained, acc = train_reader(vae, ds, None, 5, seed=0, batch_size=16, sets=sets)
    assert acc == 1.0
    # The digit's head rows (the first 10 outputs) get no gradient from the digit...
    last = [m for m in trained.mlp if isinstance(m, torch.nn.Linear)][-1]
    first = [m for m in start.mlp if isinstance(m, torch.nn.Linear)][-1]
    assert torch.equal(last.weight[:10], first.weight[:10]) and torch.equal(last.bias[:10], first.bias[:10])
    # ...while the continuous readings' rows learn
    assert not torch.equal(last.weight[10:], first.weight[10:])


def test_the_reader_is_asked_for_the_sets_of_its_own_rows(morpho_tiny, monkeypatch):
    """In the reader's training (withheld labels, continuous parents beside) each row's set is
    built from that row's own label: with sets accepting the label alone, every set marks the
    target its loss row reads, and no withheld label reaches the world."""
    import causalvae.train as train

    vae, ds = _vae(morpho_tiny, cf_weight=1.0)
    hide = np.zeros((len(ds), len(ds.label_columns)), dtype=bool)
    hide[::3, ds.label_columns.index("digit")] = True  # a third of the digits withheld

    def one_hot(v, card):
        assert (v >= 0).all()
        return np.eye(card, dtype=bool)[v]

    calls = []
    real = train._read_loss
    monkeypatch.setattr(train, "_read_loss", lambda logits, target, accepted: calls.append((target.clone(), accepted)) or real(logits, target, accepted))
    sets = ReadingSets(_Accepting(one_hot), vae)
    train_reader(vae, ds, hide, 6, seed=0, batch_size=16, sets=sets)
    assert len(calls) == 6
    for target, accepted in calls:
        assert accepted[0].shape == (len(target), 10)
        assert torch.equal(accepted[0].to(torch.int64).argmax(-1), target[:, 0]) and int(accepted[0].sum()) == len(target)


def test_reader_sets_is_refused_where_nothing_is_ambiguous_or_without_the_term(morpho_tiny, tmp_path):
    with pytest.raises(CausalVAEError, match="reader-sets.*unambiguously"):
        fit(TrainConfig(data=str(morpho_tiny), out=str(tmp_path / "r"), max_steps=2, cf_weight=1.0, reader_steps=1, reader_sets=True, **TINY))
    assert not (tmp_path / "r").exists()  # refused before the run folder is written
    with pytest.raises(CausalVAEError, match="reader-sets.*cf-weight"):
        TrainConfig(data=str(morpho_tiny), out="o", cf_weight=0.0, reader_sets=True).check()
