"""Asking a trained model, the same way from every interface.

The CLI and the viewer both ask through this module, so they give the same answer to the
same question:

- :func:`counterfactual`: this very picture had the interventions held. One abduction
  gives both the reconstruction (the null intervention) and the counterfactual, so their
  difference map shows only what the interventions changed; beside them, the exact
  distribution of every counterfactual label given the factual labels;
- :func:`summarize_sample`: pictures drawn under evidence and interventions, beside the
  exact distribution of every variable not set, how often each value was drawn, and what
  an oracle reads off the pictures.

The steps themselves are :mod:`causalvae.queries`' (abduct, act, predict; sample); extra
keyword arguments are passed on to them.

    >>> res = counterfactual(vae, images, labels, {"action": "Walk"}, seed=0)   # doctest: +SKIP
    >>> res.counterfactual, res.reconstruction, res.difference                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from causalvae import queries
from causalvae.errors import CausalVAEError
from causalvae.exact import query
from causalvae.model import CausalVAE
from causalvae.pictures import difference_map


@dataclass
class CounterfactualResult:
    """Pictures are uint8 ``(N, C, H, W)``; values ``{variable: (N,) value indices}``."""

    factual: torch.Tensor
    reconstruction: torch.Tensor  # the null intervention, from the same abduction
    counterfactual: torch.Tensor
    abduction: queries.Abduction  # the factual unit: every value (abducted or given), U and z
    values: dict[str, np.ndarray]  # every variable under the interventions
    exact: list[dict[str, np.ndarray]]  # per picture: {label column: P(counterfactual value | factual labels)}
    difference: np.ndarray  # uint8 (N, H, W): |counterfactual - reconstruction|, the largest change white
    difference_max: np.ndarray  # (N,) the largest change of a pixel value (0-255; binary pictures: 0 or 1)
    interventions: dict[str, int]


def counterfactual(vae: CausalVAE, images: torch.Tensor, labels: torch.Tensor, do: Mapping[str, str | int | float], *, continuous: torch.Tensor | None = None, seed: int | None = 0, **options: Any) -> CounterfactualResult:
    """Abduct, act, predict (:func:`causalvae.queries.counterfactual`, which gets
    ``options``), then predict the null intervention from the same abduction. A mixed model
    takes its ``continuous`` labels too (continuous interventions are numbers)."""
    graph = vae.current_graph()
    interventions = queries.act(graph, dict(do))
    cf = queries.counterfactual(vae, images, labels, interventions, continuous=continuous, seed=seed, **options)
    recon, _ = queries.predict(vae, cf.abduction, {}, seed=seed)
    binary = vae.config.likelihood == "bernoulli"
    maps = [difference_map(c, r, binary) for c, r in zip(cf.images, recon)]
    return CounterfactualResult(
        factual=images.cpu(), reconstruction=recon, counterfactual=cf.images, abduction=cf.abduction, values=cf.values,
        exact=cf.exact, difference=np.stack([m for m, _ in maps]), difference_max=np.array([t for _, t in maps]),
        interventions=interventions,
    )


@dataclass
class SampleSummary:
    """Pictures drawn under evidence and interventions, and what they show."""

    drawn: queries.Generated  # the pictures and every variable's drawn values
    variables: list[str]  # the variables not set, in topological order
    exact: dict[str, np.ndarray]  # P(variable | evidence, do), exactly
    frequencies: dict[str, np.ndarray]  # share of pictures drawn with each value
    read: np.ndarray | None  # (n, K) the oracle's reading of the label columns, or None
    read_frequencies: dict[str, np.ndarray]  # label columns: share of pictures read as each value
    read_back: float | None  # share of pictures whose every label the oracle reads as drawn
    #: Mixed models: each unset continuous variable's (expected value, its error, mean of the draws).
    continuous: dict[str, tuple[float, float, float]] | None = None
    #: Mixed models: each unset continuous variable's expectation as the mixed engine answers it
    #: (its method and the kind of its error).
    expectations: dict[str, Any] | None = None
    #: Mixed models with an oracle: its reading of every continuous label column off each
    #: picture, float64 ``(n, Kc)`` in the variables' own units (columns: ``vae.continuous_columns``).
    read_numbers: np.ndarray | None = None


def read_labels(oracle, images: torch.Tensor, columns: Sequence[str]) -> np.ndarray:
    """The oracle's reading of ``columns`` off ``images``: int64 ``(n, len(columns))``."""
    have = list(oracle.config.columns)
    missing = [c for c in columns if c not in have]
    if missing:
        raise CausalVAEError(f"the oracle reads {', '.join(have)}, not {', '.join(missing)}")
    return oracle.read(images)[:, [have.index(c) for c in columns]]


def read_numbers(oracle, images: torch.Tensor, columns: Sequence[str]) -> np.ndarray:
    """The oracle's reading of continuous ``columns`` off ``images``, in their own units:
    float64 ``(n, len(columns))``."""
    have = list(oracle.config.continuous)
    missing = [c for c in columns if c not in have]
    if missing:
        raise CausalVAEError(f"the oracle reads no continuous {', '.join(missing)} (it reads {', '.join(have) or 'none'})")
    return oracle.regress(images)[:, [have.index(c) for c in columns]]


def summarize_sample(
    vae: CausalVAE,
    n: int,
    evidence: Mapping[str, str] | None = None,
    do: Mapping[str, str] | None = None,
    *,
    seed: int | None = 0,
    oracle=None,
    **options: Any,
) -> SampleSummary:
    """``n`` pictures drawn under ``evidence`` and ``do`` (:func:`causalvae.queries.sample`,
    which gets ``options``), with the exact distribution and drawn frequencies of every
    variable not set, and, with an ``oracle``, what it reads off the pictures."""
    evidence, do = dict(evidence or {}), dict(do or {})
    graph = vae.current_graph()
    cols = list(vae.label_columns)
    drawn = queries.sample(vae, n, evidence, do, seed=seed, **options)
    if graph.mixed:
        return _summarize_mixed(vae, graph, drawn, evidence, do, n, oracle)
    unset = [v for v in graph.topological_order if v not in evidence and v not in do]
    exact = {v: query(graph, [v], evidence, do).table for v in unset}
    freq = {v: np.bincount(drawn.values[v], minlength=graph.card(v)) / n for v in unset}
    read, read_freq, read_back = None, {}, None
    if oracle is not None:
        read = read_labels(oracle, drawn.images, cols)
        read_freq = {c: np.bincount(read[:, k], minlength=graph.card(c)) / n for k, c in enumerate(cols) if c in unset}
        given = np.stack([drawn.values[c] for c in cols], 1)
        read_back = float((read == given).all(axis=1).mean())
    return SampleSummary(drawn, unset, exact, freq, read, read_freq, read_back)


def _summarize_mixed(vae: CausalVAE, graph, drawn: queries.Generated, evidence: Mapping, do: Mapping, n: int, oracle=None) -> SampleSummary:
    """:func:`summarize_sample` on a mixed graph: each unset variable's answer by
    :func:`causalvae.mixed.evaluate` (P of a discrete one; E of a continuous one, with its
    error) beside the draws; an oracle reads the discrete labels (their shares, and how often
    all are read as drawn) and the continuous ones (as numbers, ``read_numbers``)."""
    from causalvae.mixed import evaluate, query_text

    conds = [f"{k}={query_text(v)}" for k, v in evidence.items()]
    conds += [f"do({k}={query_text(v)})" for k, v in do.items()]
    tail = f" | {', '.join(conds)}" if conds else ""
    unset = [v for v in graph.topological_order if v not in evidence and v not in do]
    exact, freq, moments, answers = {}, {}, {}, {}
    for v in unset:
        if v in graph.continuous:
            a = evaluate(graph, f"E({v}{tail})")
            moments[v] = (a.value, a.error, float(np.mean(drawn.values[v])))
            answers[v] = a
        else:
            exact[v] = np.array([e.value for e in evaluate(graph, f"P({v}{tail})").estimates])
            freq[v] = np.bincount(drawn.values[v], minlength=graph.card(v)) / n
    read, read_freq, read_back, numbers = None, {}, None, None
    if oracle is not None:
        cols = list(vae.label_columns)
        if cols:
            read = read_labels(oracle, drawn.images, cols)
            read_freq = {c: np.bincount(read[:, k], minlength=graph.card(c)) / n for k, c in enumerate(cols) if c in unset}
            given = np.stack([drawn.values[c] for c in cols], 1)
            read_back = float((read == given).all(axis=1).mean())
        if vae.continuous_columns:
            numbers = read_numbers(oracle, drawn.images, vae.continuous_columns)
    return SampleSummary(drawn, unset, exact, freq, read, read_freq, read_back, moments, answers, numbers)
