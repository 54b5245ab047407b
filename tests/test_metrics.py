"""Metrics pinned on perfect and degenerate inputs."""

from __future__ import annotations

import numpy as np
import pytest

from causalvae.metrics import agreement_with_truth, iou, pixel_mae, pooled_tv, total_variation


def test_total_variation():
    assert total_variation(np.array([0.2, 0.8]), np.array([0.2, 0.8])) == 0.0
    assert total_variation(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 1.0
    assert total_variation(np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.25, 0.5])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="different shapes"):
        total_variation(np.ones(2) / 2, np.ones(3) / 3)


def test_pooled_tv_weights_groups_by_size():
    groups = np.array([0, 0, 0, 0, 1, 1])
    values = np.array([0, 0, 1, 1, 1, 1])
    exact = np.array([[0.5, 0.5]] * 4 + [[1.0, 0.0]] * 2)
    got = pooled_tv(groups, values, exact, 2)
    # group 0 matches exactly (TV 0), group 1 is disjoint (TV 1): weighted 2/6.
    assert got == {"tv": pytest.approx(2 / 6), "groups": 2, "rows": 6}
    rows = np.array([[0, 1], [0, 1], [1, 0]])  # groups given as label rows
    assert pooled_tv(rows, np.array([0, 1, 1]), np.array([[0.5, 0.5]] * 2 + [[0.0, 1.0]]), 2)["tv"] == pytest.approx(0.0)


def test_pixel_scores():
    a = np.zeros((2, 3, 4, 4), np.uint8)
    b = a.copy()
    b[1] = 255
    np.testing.assert_array_equal(pixel_mae(a, a), [0.0, 0.0])
    np.testing.assert_array_equal(pixel_mae(a, b), [0.0, 255.0])
    m = np.zeros((3, 1, 4, 4), np.uint8)
    n = m.copy()
    m[0, 0, :2] = 1
    n[0, 0, :1] = 1
    m[1] = 1
    np.testing.assert_allclose(iou(m, n), [0.5, 0.0, 1.0])  # half overlap; disjoint; both empty


def test_agreement_beside_its_ceiling():
    exact = np.array([[0.5, 0.5], [0.9, 0.1]])
    got = agreement_with_truth(np.array([0, 0]), np.array([1, 0]), exact)
    assert got == {"agreement": 0.5, "exact_sampler": pytest.approx((0.5 + 0.82) / 2), "ceiling": pytest.approx(0.7)}


def test_effectiveness_on_perfect_and_degenerate_readings():
    from causalvae.metrics import effectiveness, masked_accuracy

    used = np.array([[0, 1, 2], [1, 0, 2], [1, 1, 0], [0, 0, 1]])
    assert effectiveness(used, used) == {"all": 1.0, "columns": [1.0, 1.0, 1.0]}
    # A reader that always says value 0 is right only where 0 was used.
    assert effectiveness(np.zeros_like(used), used) == {"all": 0.0, "columns": [0.5, 0.5, 0.25]}
    with pytest.raises(ValueError, match="one shape"):
        effectiveness(used[:, :2], used)
    labels = np.array([[0, -1], [1, -1], [1, -1]])
    got = masked_accuracy(np.array([[0, 5], [0, 5], [1, 5]]), labels)
    assert got[0] == pytest.approx(2 / 3) and np.isnan(got[1])  # no labelled row: undefined, not 0


def test_misreadings_are_what_effectiveness_misses():
    from causalvae.metrics import effectiveness, misreadings

    used = np.array([[2, 0], [2, 0], [2, 1], [2, 1], [5, 1]])
    read = np.array([[8, 0], [8, 1], [3, 1], [2, 1], [8, 1]])
    mis = misreadings(read, used)
    # column 0: 2 read as 8 twice, 2 as 3 once, 5 as 8 once (ties by value used, then read); column 1: 0 as 1 once
    assert mis[0] == [{"used": 2, "read": 8, "share": 0.4}, {"used": 2, "read": 3, "share": 0.2}, {"used": 5, "read": 8, "share": 0.2}]
    assert mis[1] == [{"used": 0, "read": 1, "share": 0.2}]
    # with every kind of miss listed, their shares add up to what effectiveness misses
    cols = effectiveness(read, used)["columns"]
    assert [sum(m["share"] for m in col) for col in misreadings(read, used, top=10)] == pytest.approx([1 - c for c in cols])
    assert misreadings(read, used, top=1)[0] == mis[0][:1]
    # an accepted reading (a symmetric picture) is no miss
    accepted = {0: np.zeros((5, 10), dtype=bool)}
    accepted[0][:, 8] = accepted[0][np.arange(5), used[:, 0]] = True
    assert misreadings(read, used, accepted)[0] == [{"used": 2, "read": 3, "share": 0.2}]
    assert misreadings(used, used) == [[], []]


def test_iw_bound_on_perfect_and_degenerate_weights():
    from causalvae.metrics import bits_per_dim, iw_bound

    # Equal weights (a perfect proposal): the bound is the log-weight itself, for any k.
    np.testing.assert_allclose(iw_bound(np.full((7, 3), -2.5)), [-2.5] * 3)
    # One weight dominates: log(mean of exp) = log(e^0 / k) with the others at -inf-like values.
    np.testing.assert_allclose(iw_bound(np.array([[0.0], [-1e4], [-1e4], [-1e4]])), [np.log(1 / 4)])
    # Never below the mean log-weight (Jensen), far below the largest.
    lw = np.random.default_rng(0).normal(size=(50, 10))
    assert (iw_bound(lw) >= lw.mean(axis=0)).all() and (iw_bound(lw) <= lw.max(axis=0)).all()
    assert bits_per_dim(-np.log(2) * 12, 12) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"\(k, N\)"):
        iw_bound(np.zeros(3))


def test_axioms_on_perfect_and_degenerate_pictures():
    from causalvae.metrics import composition, reversibility

    x = np.random.default_rng(1).integers(0, 256, (4, 3, 8, 8)).astype(np.uint8)
    assert composition(x, {1: x, 10: x}) == {"composition_1": 0.0, "composition_10": 0.0}
    assert reversibility(x, {1: x, 3: x}) == {"reversibility_1": 0.0, "reversibility_3": 0.0}
    black, white = np.zeros_like(x), np.full_like(x, 255)
    assert composition(black, {1: white})["composition_1"] == 255.0
    assert reversibility(black, {3: white})["reversibility_3"] == 255.0


def test_wasserstein_1_on_known_samples():
    from causalvae.metrics import wasserstein_1

    a = np.array([0.0, 1.0, 3.0])
    assert wasserstein_1(a, a) == 0.0
    assert wasserstein_1(a, a + 2.5) == pytest.approx(2.5)  # a shift moves every unit of mass by 2.5
    # {0, 1} to {0, 3}: half the mass moves from 1 to 3
    assert wasserstein_1(np.array([0.0, 1.0]), np.array([0.0, 3.0])) == pytest.approx(1.0)
    # unequal sizes: {0} to {0, 0, 0, 6}: a quarter of the mass moves 6
    assert wasserstein_1(np.array([0.0]), np.array([0.0, 0.0, 0.0, 6.0])) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="finite"):
        wasserstein_1(np.array([0.0, np.nan]), a)


def test_frechet_distance_on_known_feature_sets():
    from causalvae.metrics import frechet_distance

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    # the same set shifted: only the means differ, by |c|^2
    c = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    assert frechet_distance(x, x + c) == pytest.approx((c**2).sum(), rel=1e-9)
    # scaled by 2: Tr(S + 4S - 2 * 2S) = Tr(S), the means of x and 2x differ by mean(x)
    s = np.cov(x, rowvar=False)
    assert frechet_distance(x, 2 * x) == pytest.approx(np.trace(s) + (x.mean(0) ** 2).sum(), rel=1e-9)
    # one-dimensional features: (mu_a - mu_b)^2 + (sd_a - sd_b)^2
    a, b = rng.normal(0, 1, (400, 1)), rng.normal(3, 2, (400, 1))
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match=r"\(N, D\) and \(M, D\)"):
        frechet_distance(x, x[:, :3])
