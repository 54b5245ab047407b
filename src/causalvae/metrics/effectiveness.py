"""Effectiveness and read-back: does a picture show the values it was drawn with?

Both compare the labels an oracle reads off pictures with the values the model was given
(Monteiro et al. 2023's effectiveness of a counterfactual; the read-back rate of generated
pictures is the same score on samples).
"""

from __future__ import annotations

import numpy as np


def effectiveness(read: np.ndarray, used: np.ndarray) -> dict[str, object]:
    """``read`` and ``used``: ``(N, K)`` value indices (what the oracle reads, what the model
    drew with). Returns the share of pictures whose every label is read as used
    (``"all"``) and, per column, the share read right (``"columns"``, a list of K).

        >>> effectiveness(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]]))
        {'all': 0.5, 'columns': [0.5, 1.0]}
    """
    read, used = np.asarray(read), np.asarray(used)
    if read.shape != used.shape or read.ndim != 2:
        raise ValueError(f"read and used must be (N, K) of one shape, got {read.shape} and {used.shape}")
    if len(read) == 0:
        raise ValueError("no pictures")
    same = read == used
    return {"all": float(same.all(axis=1).mean()), "columns": [float(c) for c in same.mean(axis=0)]}


def masked_accuracy(read: np.ndarray, labels: np.ndarray) -> list[float]:
    """Per column, the share of labelled rows (label >= 0) that are read right (NaN for a
    column with no label)."""
    read, labels = np.asarray(read), np.asarray(labels)
    out = []
    for k in range(labels.shape[1]):
        seen = labels[:, k] >= 0
        out.append(float((read[seen, k] == labels[seen, k]).mean()) if seen.any() else float("nan"))
    return out
