"""Effectiveness and read-back: does a picture show the values it was drawn with?

Both compare the labels an oracle reads off pictures with the values the model was given
(Monteiro et al. 2023's effectiveness of a counterfactual; the read-back rate of generated
pictures is the same score on samples).

A picture may not show every value: a square turned a quarter turn is the same picture, so
its orientation can be read only up to that turn. Each score takes ``accepted``: for some
columns (by index), which readings count as right for each picture, bool ``(N, card)``
(:meth:`causalvae.worlds.World.accepted`); every other column is right when read as used.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def read_right(read: np.ndarray, used: np.ndarray, accepted: Mapping[int, np.ndarray] | None = None) -> np.ndarray:
    """``(N, K)`` bool: each reading equal to the value used, or for a column ``k`` of
    ``accepted`` among that picture's accepted readings (``accepted[k][i, read[i, k]]``).

        >>> read_right(np.array([[2, 1]]), np.array([[0, 1]]), {0: np.array([[True, False, True]])}).tolist()
        [[True, True]]
    """
    read, used = np.asarray(read), np.asarray(used)
    right = read == used
    for k, a in (accepted or {}).items():
        a = np.asarray(a, dtype=bool)
        if a.ndim != 2 or len(a) != len(read):
            raise ValueError(f"accepted[{k}] must be (N, card) with N = {len(read)}, got {a.shape}")
        right[:, k] = a[np.arange(len(read)), read[:, k]]
    return right


def effectiveness(read: np.ndarray, used: np.ndarray, accepted: Mapping[int, np.ndarray] | None = None) -> dict[str, object]:
    """``read`` and ``used``: ``(N, K)`` value indices (what the oracle reads, what the model
    drew with). Returns the share of pictures whose every label is read right (as used, or
    among the ``accepted`` readings: :func:`read_right`) (``"all"``) and, per column, the
    share read right (``"columns"``, a list of K).

        >>> effectiveness(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]]))
        {'all': 0.5, 'columns': [0.5, 1.0]}
    """
    read, used = np.asarray(read), np.asarray(used)
    if read.shape != used.shape or read.ndim != 2:
        raise ValueError(f"read and used must be (N, K) of one shape, got {read.shape} and {used.shape}")
    if len(read) == 0:
        raise ValueError("no pictures")
    same = read_right(read, used, accepted)
    return {"all": float(same.all(axis=1).mean()), "columns": [float(c) for c in same.mean(axis=0)]}


def misreadings(read: np.ndarray, used: np.ndarray, accepted: Mapping[int, np.ndarray] | None = None, top: int = 3) -> list[list[dict]]:
    """Per column, its most frequent wrong readings: ``[{"used": u, "read": v, "share": s}]``,
    at most ``top``, most frequent first (ties: by value used, then read), where ``s`` is the
    share of *all* pictures whose value ``u`` was read as ``v`` (not right by
    :func:`read_right`). What an effectiveness below 1 is made of.

        >>> misreadings(np.array([[8], [8], [3], [2]]), np.array([[2], [2], [2], [2]]))
        [[{'used': 2, 'read': 8, 'share': 0.5}, {'used': 2, 'read': 3, 'share': 0.25}]]
    """
    read, used = np.asarray(read), np.asarray(used)
    wrong = ~read_right(read, used, accepted)
    out = []
    for k in range(read.shape[1]):
        pairs, counts = np.unique(np.stack([used[wrong[:, k], k], read[wrong[:, k], k]], 1), axis=0, return_counts=True)
        order = sorted(range(len(counts)), key=lambda j: (-counts[j], int(pairs[j, 0]), int(pairs[j, 1])))[:top]
        out.append([{"used": int(pairs[j, 0]), "read": int(pairs[j, 1]), "share": float(counts[j] / len(read))} for j in order])
    return out


def masked_accuracy(read: np.ndarray, labels: np.ndarray, accepted: Mapping[int, np.ndarray] | None = None) -> list[float]:
    """Per column, the share of labelled rows (label >= 0) that are read right (as labelled,
    or among the ``accepted`` readings: :func:`read_right`); NaN for a column with no label."""
    read, labels = np.asarray(read), np.asarray(labels)
    right = read_right(read, labels, accepted)
    out = []
    for k in range(labels.shape[1]):
        seen = labels[:, k] >= 0
        out.append(float(right[seen, k].mean()) if seen.any() else float("nan"))
    return out
