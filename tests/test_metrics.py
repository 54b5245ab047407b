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
