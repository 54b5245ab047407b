"""The viewer's web application: one static page and a JSON API over a trained causal VAE.

:func:`create_app` loads the model (and optionally the oracle and the run's test split) once
and returns a FastAPI application:

    GET  /                    the page (static/index.html, app.js, style.css; no build step)
    GET  /api/graph           the causal graph: variables, values, hidden or labelled, layout
    POST /api/query           the exact answer to a query in the query language
                              (graphs with continuous variables: the mixed engine's, with its
                              method and error)
    POST /api/sample          pictures drawn under evidence and interventions, with the exact
                              distribution of every unset label beside what the oracle reads
    GET  /api/gallery         test pictures of the run's dataset with their labels
    POST /api/counterfactual  abduct, act, predict on a test picture or an uploaded PNG

Every answer comes from the library (:mod:`causalvae.queries`, :mod:`causalvae.exact`,
:mod:`causalvae.querylang`); this module only checks inputs, calls it, and turns arrays into
JSON and pictures into PNG data URLs. A continuous variable (a graph with continuous
variables, such as the morpho world's thickness and intensity) takes a JSON number where a
discrete one takes its value's name, and is answered with numbers, each with the error the
mixed engine (:mod:`causalvae.mixed`) states. A bad input is answered with a 400 (or 413,
422) whose ``detail`` says what is wrong: the library's
:class:`~causalvae.errors.CausalVAEError` messages are passed on as they are.

    >>> app = create_app("runs/scenes", oracle="oracles/scenes")   # doctest: +SKIP
    >>> import uvicorn; uvicorn.run(app, host="127.0.0.1", port=8000)   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, model_validator

from causalvae.errors import CausalVAEError, QueryStoppedError, QuerySyntaxError, QueryTooLargeError
from causalvae.exact import DEFAULT_BUDGET, Budget
from causalvae.graph import Graph, quote_name
from causalvae.pictures import decode_png, display, png_bytes
from causalvae.version import __version__

#: Largest uploaded PNG, in bytes (after base64 decoding).
MAX_UPLOAD_BYTES = 2 * 2**20
#: Largest request body: an upload in base64 (4/3 of its size) and its labels.
MAX_BODY_BYTES = 3 * 2**20
#: Most pictures per request (sample, gallery).
MAX_PICTURES = 64
#: The largest answer table /api/query returns (rows of a joint distribution).
MAX_TABLE_CELLS = 10_000
MAX_SEED = 2**32 - 1
#: The most refinement steps a counterfactual request may ask for (each is a decoder pass).
MAX_REFINE = 500
#: The longest an exact query may run (seconds) before it is stopped and answered with a 503.
QUERY_SECONDS = 30.0
#: Exact queries answered at once; one more is answered 503 (busy) rather than queued.
QUERY_WORKERS = 2
#: Importance samples (and their seed) of a query on a graph with continuous variables, when
#: no closed form or quadrature applies (see :mod:`causalvae.mixed`).
QUERY_SAMPLES = 100_000
QUERY_SEED = 0
#: The marginal quantiles /api/graph gives for each continuous variable: its inputs' range
#: (the outer two), typical values and median.
INPUT_LEVELS = (0.005, 0.05, 0.25, 0.5, 0.75, 0.95, 0.995)

STATIC = Path(str(resources.files("causalvae") / "viewer" / "static"))


class ViewerError(CausalVAEError):
    """An input error that deserves another status than 400 (413: too large, 404: absent)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------------------ the API's types

def _value(x: Any) -> str | float:
    """A variable's value as JSON gives it: a string (a discrete value's name) or a number (a
    continuous variable's value; ``true`` is no number). Which one the variable takes is
    checked against the graph by :func:`check_values`."""
    if isinstance(x, str):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        try:
            return float(x)
        except OverflowError:  # an integer beyond any float: refused as not finite
            return math.inf if x > 0 else -math.inf
    raise ValueError("Input should be a valid string (a value's name), or a number for a continuous variable")


Value = Annotated[Any, PlainValidator(_value, json_schema_input_type=str | float)]
Assignments = dict[str, Value]


#: Fields only graphs with continuous variables fill are left out of the other graphs'
#: answers, which stay as they were: ``Field(..., exclude_if=EMPTY)``.
EMPTY = lambda v: v is None or v is False or v == []  # noqa: E731


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so a misspelt field is an error, not ignored, and
    take JSON types as they are: ``true`` is not the number 1, nor ``"3"`` the number 3."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorBody(BaseModel):
    detail: str = Field(description="What is wrong, in one message.")
    position: int | None = Field(None, description="For a query syntax error: the offending character (0-based).")


class VariableInfo(BaseModel):
    name: str
    values: list[str] = Field(description="A discrete variable's values (a continuous one: none).")
    parents: list[str]
    hidden: bool = Field(description="Never observed: not a label of the dataset.")
    labelled: bool = Field(description="A label column of the model's dataset (discrete or continuous).")
    image_parent: bool = Field(description="A parent of the image: the decoder draws it.")
    description: str
    continuous: bool = Field(False, description="A real number (set it with a JSON number), not one of listed values.", exclude_if=EMPTY)
    support: list[float | None] | None = Field(None, description="A continuous variable's support [low, high] (None: unbounded).", exclude_if=EMPTY)
    quantiles: list[list[float]] | None = Field(
        None, description="A continuous variable's marginal quantiles, [level, value] pairs: the outer two make a sensible input range, the middle one is the median.", exclude_if=EMPTY)


class LayoutNode(BaseModel):
    name: str
    kind: Literal["observed", "hidden", "image"]
    x: float
    y: float
    width: float
    values: str


class LayoutEdge(BaseModel):
    source: str
    target: str
    points: list[list[float]]


class Layout(BaseModel):
    """Boxes and arrows in inches, as ``causalvae graph draw`` places them."""

    width: float
    height: float
    box_height: float
    nodes: list[LayoutNode]
    edges: list[LayoutEdge]


class GraphResponse(BaseModel):
    name: str
    description: str
    variables: list[VariableInfo]
    image_name: str | None = Field(description="The image node's name (None: the graph has none).")
    image_parents: list[str]
    label_columns: list[str]
    layout: Layout
    run: str
    image_size: int
    oracle: str | None = Field(description="The oracle's path, when the viewer has one.")
    gallery: int = Field(description="Test pictures available to /api/gallery (0: none).")
    gallery_note: str | None = Field(None, description="Why there is no gallery, when there is none.")
    examples: list[str] = Field(description="Queries to try, built from the graph's names.")


class QueryRequest(Strict):
    query: str = Field(min_length=1, max_length=2000, examples=["P(action | reaction=Dying)"])


class QueryRow(BaseModel):
    values: list[str]
    probability: float
    error: float | None = Field(None, description="Graphs with continuous variables: the probability's error (see error_kind).", exclude_if=EMPTY)


class Estimate(BaseModel):
    """One number of the mixed engine's answer, with how it was computed and its error."""

    label: str = Field(description="What the number is about, e.g. 'thickness' or 'intensity > 200'.")
    what: str = Field(description="expectation, quantile at 0.9, density at 180 or probability.")
    value: float
    error: float = Field(description="Its error: see error_kind.")
    error_kind: str = Field(description="exact (round-off only), quadrature (difference of the last two rules) or standard error (importance sampling).")
    method: str
    level: float | None = Field(None, description="A quantile's level.")


class Contrast(BaseModel):
    contrast: str
    PN: float | None
    PS: float | None
    PNS: float | None


class QueryResponse(BaseModel):
    query: str
    graph: str
    kind: Literal["distribution", "causation", "estimate", "summary"] = Field(
        description="distribution: rows of probabilities; causation: PN, PS, PNS; estimate: one number "
        "(E, Q, p or P(y > c) of a continuous y); summary: P(y | ...) of a continuous y as its mean and quantiles.")
    variables: list[str] = Field(description="The targets (a distribution's columns).")
    rows: list[QueryRow] = Field(description="Every joint value of the targets with its probability.")
    event: list[str] | None = Field(None, description="The asked values, for P(target=value | ...).")
    probability: float | None = Field(None, description="The probability of the asked values.")
    measure: str | None = None
    treatment: str | None = None
    outcome: str | None = None
    contrasts: list[Contrast] = []
    method: str | None = Field(None, description="Graphs with continuous variables: how the distribution was computed.", exclude_if=EMPTY)
    error_kind: str | None = Field(None, description="Graphs with continuous variables: what each row's error is.", exclude_if=EMPTY)
    estimate: Estimate | None = Field(None, exclude_if=EMPTY)
    mean: Estimate | None = Field(None, description="A summary's mean.", exclude_if=EMPTY)
    quantiles: list[Estimate] = Field([], description="A summary's quantiles.", exclude_if=EMPTY)


class SampleRequest(Strict):
    evidence: Assignments = Field({}, description="Conditioning: {variable: value}.", examples=[{"reaction": "Dying"}])
    do: Assignments = Field({}, description="Interventions: {variable: value}.", examples=[{"actor_attack": "High"}])
    n: int = Field(16, ge=1, le=MAX_PICTURES)
    seed: int = Field(0, ge=0, le=MAX_SEED)


class LabelDistribution(BaseModel):
    variable: str
    values: list[str]
    exact: list[float] = Field(description="P(variable | do, evidence), exactly.")
    drawn: list[float] = Field(description="Share of the pictures drawn with each value.")
    read: list[float] | None = Field(description="Share of the pictures the oracle reads as each value.")


class ContinuousOutcome(BaseModel):
    """A continuous variable in a sample: its value or expectation, and what the pictures show."""

    variable: str
    set: Literal["given", "do"] | None = Field(description="How it was set (None: not set).")
    expected: Estimate | None = Field(description="Not set: E(variable | evidence, do) by the mixed engine, with its error.")
    drawn_mean: float = Field(description="The mean of the values the pictures were drawn with.")
    read_mean: float | None = Field(description="The mean of the oracle's readings off the pictures (None: no oracle, or not a label).")
    read_error: float | None = Field(description="The mean absolute difference between the oracle's readings and the drawn values.")


class SampleResponse(BaseModel):
    n: int
    seed: int
    evidence: Assignments
    do: Assignments
    images: list[str] = Field(description="PNG data URLs, one per picture.")
    values: dict[str, list[str] | list[float]] = Field(description="Per variable (hidden ones too), the value each picture was drawn with (numbers for continuous ones).")
    distributions: list[LabelDistribution] = Field(description="Every discrete label column that is neither evidence nor intervened on.")
    read_back: float | None = Field(description="Share of pictures whose every discrete label the oracle reads as drawn.")
    continuous: list[ContinuousOutcome] = Field([], description="Every continuous variable (graphs with continuous variables).", exclude_if=EMPTY)
    read: dict[str, list[float]] | None = Field(None, description="The oracle's reading of each continuous label column off each picture.", exclude_if=EMPTY)


class GalleryItem(BaseModel):
    index: int
    image: str
    labels: dict[str, str | float | None] = Field(description="Value names, numbers for continuous labels; None: missing.")


class GalleryResponse(BaseModel):
    total: int
    offset: int
    items: list[GalleryItem]


class CounterfactualRequest(Strict):
    index: int | None = Field(None, ge=0, description="A test picture (see /api/gallery).")
    image: str | None = Field(None, max_length=MAX_BODY_BYTES, description="Or a PNG of the model's size: a data URL or plain base64.")
    labels: Assignments = Field({}, description="The uploaded picture's labels (unlisted discrete labels count as missing; continuous ones are needed).")
    do: Assignments = Field({}, description="The interventions: {variable: value}; none reconstructs the picture.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the abduction of the hidden values and noise.")
    refine: int | None = Field(None, ge=0, le=MAX_REFINE, description="Steps refining the abducted code z toward the mode of the model's posterior (default: the viewer's, `causalvae serve --refine`).")

    @model_validator(mode="after")
    def _one_picture(self):
        if (self.index is None) == (self.image is None):
            raise ValueError("give either 'index' (a gallery picture) or 'image' (an uploaded PNG), not both or neither")
        if self.index is not None and self.labels:
            raise ValueError("'labels' go with an uploaded 'image'; a gallery picture has its own")
        return self


class VariableOutcome(BaseModel):
    variable: str
    hidden: bool
    values: list[str]
    factual: str | float = Field(description="The value abducted (labels: the given one); a number for a continuous variable.")
    counterfactual: str | float = Field(description="The value recomputed under the interventions (from the abducted noise).")
    exact: list[float] | None = Field(description="Discrete label columns: P(counterfactual value | factual labels), exactly.")
    continuous: bool = Field(False, exclude_if=EMPTY)
    read_factual: float | None = Field(None, description="Continuous label columns: the oracle's reading off the factual picture.", exclude_if=EMPTY)
    read_counterfactual: float | None = Field(None, description="Continuous label columns: the oracle's reading off the counterfactual picture.", exclude_if=EMPTY)


class CounterfactualResponse(BaseModel):
    index: int | None
    seed: int
    do: Assignments
    refine: int = Field(description="The steps that refined the abducted code z (the request's, else the viewer's default).")
    factual: str
    reconstruction: str
    counterfactual: str
    difference: str = Field(description="|counterfactual - reconstruction|, scaled so the largest change is white.")
    difference_max: float = Field(description="The largest change of a pixel value (0-255).")
    variables: list[VariableOutcome]


# ------------------------------------------------------------------------------ pictures


def png_data_url(pixels: np.ndarray) -> str:
    """A uint8 (H, W, 3) or (H, W) array as a ``data:image/png;base64,...`` URL."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode("ascii")


def read_png(text: str, channels: int, size: int, binary: bool) -> torch.Tensor:
    """An uploaded PNG (a data URL or plain base64) as a (1, C, H, W) uint8 tensor, checked
    by :func:`causalvae.pictures.decode_png` (the CLI's reader too)."""
    payload = text.split(",", 1)[1] if text.startswith("data:") and "," in text else text
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise CausalVAEError("the image is not valid base64 (send a PNG as a data URL or plain base64)") from None
    if len(data) > MAX_UPLOAD_BYTES:
        raise CausalVAEError(f"the image is {len(data):,} bytes; the limit is {MAX_UPLOAD_BYTES:,} bytes")
    return decode_png(data, channels, size, binary)


# ------------------------------------------------------------------------------ the viewer


def _estimate(answer, level: float | None = None) -> Estimate:
    """One number of a :class:`causalvae.mixed.MixedAnswer` for the API."""
    e = answer.estimates[0]
    return Estimate(label=e.label, what=answer.describe(), value=e.value, error=e.error, error_kind=answer.error_kind, method=answer.method, level=level)


def _finite(p: float) -> float | None:
    return None if math.isnan(p) else float(p)


def check_values(graph: Graph, assignments: dict, field: str) -> dict:
    """``assignments`` ({variable: value}, as the request gives them) checked against the
    kind of each variable: a continuous one takes a finite number inside its support, a
    discrete one a value's name (whose spelling the library checks, as it checks unknown
    variables). One error names the field, the variable and what is wrong."""
    from causalvae import continuous as C

    for name, value in assignments.items():
        if name not in graph:
            continue
        var = graph[name]
        if C.is_continuous(var):
            if isinstance(value, str):
                raise CausalVAEError(f"{field}.{name}: '{name}' is continuous: give a number, not the string {json.dumps(value)}")
            if not math.isfinite(value):
                raise CausalVAEError(f"{field}.{name}: '{name}' must be a finite number, got {value}")
            lo, hi = var.support
            if not lo <= value <= hi:
                raise CausalVAEError(f"{field}.{name}: {value:g} is outside the support of '{name}' {var.describe().removeprefix('continuous ')}")
        elif not isinstance(value, str):
            raise ViewerError(f"{field}.{name}: Input should be a valid string ('{name}' is discrete: give one of its values, e.g. {json.dumps(var.values[0])})", 422)
    return dict(assignments)


def _round(x: float) -> float:
    """Two significant digits: a value that reads well in an example query."""
    return float(f"{x:.2g}")


def example_queries(graph: Graph, quantiles: dict[str, list[tuple[float, float]]] | None = None) -> list[str]:
    """A few queries of each kind, built from the graph: the last observed variable as the
    outcome, an observed parent of it (else an observed ancestor) as the cause. A graph with
    continuous variables needs their ``quantiles`` ([(level, value)], levels rising): its
    examples take their values at the quartiles."""
    observed = [n for n in graph.topological_order if graph[n].observed]
    outcome = observed[-1] if observed else graph.topological_order[-1]
    causes = [n for n in graph.parents(outcome) if graph[n].observed]
    causes = causes or [n for n in graph.topological_order if n in graph.ancestors(outcome) and graph[n].observed]
    if graph.mixed:
        return _mixed_examples(graph, outcome, causes[-1] if causes else None, quantiles or {})
    y, yv = quote_name(outcome), quote_name(graph[outcome].values[0])
    examples = [f"P({y})"]
    if causes:
        cause = causes[-1]
        x, xv = quote_name(cause), graph[cause].values
        examples += [f"P({x} | {y}={yv})", f"P({x} | do({y}={yv}))", f"P({y} | do({x}={quote_name(xv[0])}))"]
        if len(xv) > 1:
            examples += [
                f"P({y}[{x}={quote_name(xv[0])}] | {x}={quote_name(xv[1])}, {y}={yv})",
                f"PNS({x}={quote_name(xv[0])} vs {quote_name(xv[-1])} -> {y}={yv})",
            ]
    return examples


def _mixed_examples(graph: Graph, outcome: str, cause: str | None, quantiles: dict[str, list[tuple[float, float]]]) -> list[str]:
    """:func:`example_queries` on a graph with continuous variables: ``P(y | ...)`` of a
    continuous ``y`` is answered by its mean and quantiles; ``E`` and ``P(y > c)`` too."""
    from causalvae.mixed import query_text

    def value(name: str, high: bool) -> str:
        if name in graph.continuous:
            levels = dict(quantiles.get(name, []))
            return query_text(_round(levels.get(0.75 if high else 0.25, 1.0)))
        values = graph[name].values
        return quote_name(values[-1] if high else values[0])

    y = quote_name(outcome)
    examples = [f"P({y})"]
    if cause is None:
        return examples
    x = quote_name(cause)
    examples += [f"P({x} | {y}={value(outcome, True)})", f"P({x} | do({y}={value(outcome, True)}))", f"P({y} | do({x}={value(cause, True)}))"]
    if outcome in graph.continuous:
        examples += [f"E({y} | do({x}={value(cause, True)}))", f"P({y} > {value(outcome, True)} | do({x}={value(cause, False)}))"]
    examples.append(f"P({y}[{x}={value(cause, True)}] | {x}={value(cause, False)}, {y}={value(outcome, False)})")
    return examples


class Viewer:
    """The loaded model, oracle and test split, and one method per API call.

    One lock serialises the model's work: the model is used by one request at a time, so two
    requests never compete for the CPU cores, and seeded answers stay reproducible. Exact
    queries (/api/query) use no model: they run in their own few worker threads, within
    ``budget`` and :data:`QUERY_SECONDS`, and never wait for the model's lock nor hold it.
    """

    def __init__(self, run, oracle=None, device: str = "cpu", data=None, budget: Budget = DEFAULT_BUDGET, refine: int = 0):
        from causalvae.draw import layout
        from causalvae.oracle import load_oracle
        from causalvae.run import Run

        opened = Run.open(run, data=data, device=device)
        self.run = Path(run)
        self.vae = opened.model
        self.graph = self.vae.current_graph()
        self.binary = self.vae.config.likelihood == "bernoulli"
        self.lock = threading.Lock()
        self.budget = budget
        from causalvae.queries import check_refine

        if check_refine(refine) > MAX_REFINE:
            raise CausalVAEError(f"refine must be a whole number of steps from 0 to {MAX_REFINE}, got {refine!r}")
        self.refine = int(refine)
        self.query_slots = threading.BoundedSemaphore(QUERY_WORKERS)
        # More threads than slots: a query beyond QUERY_WORKERS finds no slot and gets a 503 at
        # once, instead of queueing behind the running ones.
        self.query_pool = ThreadPoolExecutor(2 * QUERY_WORKERS, thread_name_prefix="exact-query")
        self.oracle, self.oracle_path = None, None
        if oracle is not None:
            self.oracle = load_oracle(oracle, device=device)
            self.oracle_path = str(oracle)
            c = self.oracle.config
            cards = [self.graph.card(col) for col in self.vae.label_columns]
            same = list(c.columns) == self.vae.label_columns and list(c.cards) == cards and list(c.continuous) == self.vae.continuous_columns
            if not same or c.resolution != self.vae.config.image_size or c.channels != self.vae.config.channels:
                raise CausalVAEError(
                    f"{oracle}: this oracle reads {', '.join([*c.columns, *c.continuous])} off {c.resolution}x{c.resolution} pictures; "
                    f"the model draws {', '.join([*self.vae.label_columns, *self.vae.continuous_columns])} at {self.vae.config.image_size}x{self.vae.config.image_size}"
                )
        self.test, self.gallery_note = None, None
        data = opened.dataset_path
        if data is None:
            self.gallery_note = f"{self.run} names no dataset: upload a picture instead"
        else:
            try:
                self.test = opened.dataset("test")
            except (CausalVAEError, OSError) as exc:
                self.gallery_note = f"the run's dataset cannot be opened ({exc}): upload a picture instead"
            else:
                m, cfg = self.test.manifest, self.vae.config
                shape = (tuple(m["resolution"]), int(m["channels"]))
                same = self.test.label_columns == self.vae.label_columns and self.test.continuous_columns == self.vae.continuous_columns
                if not same or shape != ((cfg.image_size, cfg.image_size), cfg.channels):
                    raise CausalVAEError(
                        f"{data}: its pictures ({shape[0][0]}x{shape[0][1]}, {shape[1]} channels; labels "
                        f"{', '.join([*self.test.label_columns, *self.test.continuous_columns])}) do not fit the model ({cfg.image_size}x{cfg.image_size}, "
                        f"{cfg.channels} channels; labels {', '.join([*self.vae.label_columns, *self.vae.continuous_columns])})"
                    )
                labels = np.asarray(self.test.labels)
                cards = np.array([self.graph.card(c) for c in self.test.label_columns])
                if ((labels < -1) | (labels >= cards)).any():
                    raise CausalVAEError(f"{data}: its label table holds values outside the graph's (a damaged dataset)")
        self.layout = layout(self.graph)
        self.quantiles: dict[str, list[tuple[float, float]]] = {}
        if self.graph.mixed:
            from causalvae.mixed import summarize

            for n in self.graph.continuous:
                s = summarize(self.graph, f"P({quote_name(n)})", levels=INPUT_LEVELS, samples=QUERY_SAMPLES, seed=QUERY_SEED)
                self.quantiles[n] = [(level, a.value) for level, a in zip(s.levels, s.quantiles)]

    def _continuous(self, values: dict, rows: int):
        """The continuous label columns of ``values`` as the model takes them: float (rows, Kc), or None."""
        cols = self.vae.continuous_columns
        if not cols:
            return None
        return torch.tensor([[float(values[c][i]) for c in cols] for i in range(rows)], dtype=torch.float32)

    def warm_up(self) -> None:
        """One small sample and counterfactual, so the first request is as fast as the rest (with
        one step of refinement when the viewer refines: the gradient path warms up too)."""
        from causalvae.ask import counterfactual
        from causalvae.queries import sample

        g = sample(self.vae, 1, seed=0)
        labels = torch.from_numpy(np.stack([g.values[c] for c in self.vae.label_columns], 1)) if self.vae.label_columns else torch.zeros((1, 0), dtype=torch.int64)
        counterfactual(self.vae, g.images, labels, {}, continuous=self._continuous(g.values, 1), seed=0, refine=min(self.refine, 1))

    def _shown(self, name: str, value) -> str | float:
        """A variable's value as the API gives it: a number (continuous) or the value's name."""
        return float(value) if name in self.graph.continuous else self.graph[name].values[int(value)]

    # -- graph ------------------------------------------------------------------------------

    def graph_info(self) -> GraphResponse:
        g, vae = self.graph, self.vae
        variables = []
        for n in g.topological_order:
            labelled = n in vae.label_columns or n in vae.continuous_columns
            common = dict(name=n, parents=list(g.parents(n)), hidden=g[n].hidden, labelled=labelled,
                          image_parent=n in vae.image_parents, description=g[n].description)
            if n in g.continuous:
                support = [x if math.isfinite(x) else None for x in g[n].support]
                quantiles = [[level, value] for level, value in self.quantiles.get(n, [])]
                variables.append(VariableInfo(**common, values=[], continuous=True, support=support, quantiles=quantiles))
            else:
                variables.append(VariableInfo(**common, values=list(g[n].values)))
        return GraphResponse(
            name=g.name, description=g.description, variables=variables,
            image_name=g.image.name if g.image is not None else None, image_parents=list(vae.image_parents),
            label_columns=[*vae.label_columns, *vae.continuous_columns], layout=Layout(**self.layout), run=str(self.run),
            image_size=vae.config.image_size, oracle=self.oracle_path,
            gallery=len(self.test) if self.test is not None else 0, gallery_note=self.gallery_note,
            examples=example_queries(g, self.quantiles),
        )

    # -- query ------------------------------------------------------------------------------

    def query(self, text: str, stop: threading.Event | None = None) -> QueryResponse:
        """Answer a query within the budget and the time limit; ``stop`` ends it early."""
        from causalvae.querylang import CausationQuery, evaluate

        from causalvae.querylang import ProbabilityQuery, parse

        if self.graph.mixed:
            return self._query_mixed(text)
        q = parse(text, self.graph)
        if isinstance(q, ProbabilityQuery):
            cells = math.prod(self.graph.card(t.var) for t in q.targets)
            if cells > MAX_TABLE_CELLS:
                raise CausalVAEError(f"the answer would have {cells:,} rows; the viewer shows at most {MAX_TABLE_CELLS:,}: ask for fewer variables")
        if not self.query_slots.acquire(timeout=0.5):
            raise ViewerError("the viewer is busy answering other queries; try again in a moment", 503)
        try:
            budget = dataclasses.replace(self.budget, deadline=time.monotonic() + QUERY_SECONDS, stop=stop)
            answer = evaluate(self.graph, q, budget)
        finally:
            self.query_slots.release()
        q = answer.query
        if isinstance(q, CausationQuery):
            contrasts = [Contrast(contrast=k, PN=_finite(c.pn), PS=_finite(c.ps), PNS=_finite(c.pns)) for k, c in answer.causation.items()]
            return QueryResponse(
                query=q.text, graph=self.graph.name, kind="causation", variables=[], rows=[], measure=q.measure,
                treatment=f"{q.treatment}={q.value}", outcome=f"{q.outcome}={q.outcome_value}", contrasts=contrasts,
            )
        d = answer.distribution
        event = list(q.target_values) if answer.probability is not None else None
        return QueryResponse(
            query=q.text, graph=self.graph.name, kind="distribution", variables=list(d.variables),
            rows=[QueryRow(values=list(v), probability=p) for v, p in d.items()], event=event, probability=answer.probability,
        )

    def _query_mixed(self, text: str) -> QueryResponse:
        """A query on a graph with continuous variables, by :mod:`causalvae.mixed`: its answer
        with the method and the error it states. ``P(y | ...)`` of a continuous ``y`` is
        answered by its mean and quantiles (:func:`causalvae.mixed.summarize`)."""
        from causalvae.mixed import MixedQuery, evaluate, parse, summarize
        from causalvae.querylang import CausationQuery, ProbabilityQuery

        g = self.graph
        q = parse(text, g, whole=True)
        if isinstance(q, ProbabilityQuery):
            cells = math.prod(g.card(t.var) for t in q.targets)
            if cells > MAX_TABLE_CELLS:
                raise CausalVAEError(f"the answer would have {cells:,} rows; the viewer shows at most {MAX_TABLE_CELLS:,}: ask for fewer variables")
        if not self.query_slots.acquire(timeout=0.5):
            raise ViewerError("the viewer is busy answering other queries; try again in a moment", 503)
        try:
            if isinstance(q, MixedQuery) and q.measure == "P" and q.op is None:
                s = summarize(g, q, samples=QUERY_SAMPLES, seed=QUERY_SEED)
                return QueryResponse(
                    query=q.text, graph=g.name, kind="summary", variables=[q.target.label], rows=[],
                    mean=_estimate(s.mean), quantiles=[_estimate(a, level) for level, a in zip(s.levels, s.quantiles)],
                )
            answer = evaluate(g, q, samples=QUERY_SAMPLES, seed=QUERY_SEED)
        finally:
            self.query_slots.release()
        if isinstance(q, CausationQuery):
            contrasts = [Contrast(contrast=k, PN=_finite(c.pn), PS=_finite(c.ps), PNS=_finite(c.pns)) for k, c in answer.causation.items()]
            return QueryResponse(
                query=q.text, graph=g.name, kind="causation", variables=[], rows=[], measure=q.measure,
                treatment=f"{q.treatment}={q.value}", outcome=f"{q.outcome}={q.outcome_value}", contrasts=contrasts,
            )
        if isinstance(q, MixedQuery):
            return QueryResponse(query=q.text, graph=g.name, kind="estimate", variables=[q.target.label], rows=[], estimate=_estimate(answer))
        probability = answer.details.get("probability")
        return QueryResponse(
            query=q.text, graph=g.name, kind="distribution", variables=[t.label for t in q.targets],
            rows=[QueryRow(values=e.label.split(",") if len(q.targets) > 1 else [e.label], probability=e.value, error=e.error) for e in answer.estimates],
            event=list(q.target_values) if probability is not None else None, probability=probability,
            method=answer.method, error_kind=answer.error_kind,
        )

    # -- sample -----------------------------------------------------------------------------

    def sample(self, req: SampleRequest) -> SampleResponse:
        from causalvae.ask import summarize_sample

        g = self.graph
        evidence, do = check_values(g, req.evidence, "evidence"), check_values(g, req.do, "do")
        with self.lock:
            summary = summarize_sample(self.vae, req.n, evidence, do, seed=req.seed, oracle=self.oracle)
        drawn = summary.drawn
        distributions = [
            LabelDistribution(
                variable=c, values=list(g[c].values), exact=summary.exact[c].tolist(), drawn=summary.frequencies[c].tolist(),
                read=summary.read_frequencies[c].tolist() if c in summary.read_frequencies else None,
            )
            for c in summary.variables if c not in g.continuous
        ]
        cols = self.vae.continuous_columns
        numbers = summary.read_numbers
        read = {c: numbers[:, j].tolist() for j, c in enumerate(cols)} if numbers is not None else None
        continuous = []
        for c in g.continuous:
            drawn_c = np.asarray(drawn.values[c], dtype=np.float64)
            read_c = numbers[:, cols.index(c)] if numbers is not None and c in cols else None
            continuous.append(ContinuousOutcome(
                variable=c, set="given" if c in evidence else "do" if c in do else None,
                expected=_estimate(summary.expectations[c]) if summary.expectations and c in summary.expectations else None,
                drawn_mean=float(drawn_c.mean()),
                read_mean=float(read_c.mean()) if read_c is not None else None,
                read_error=float(np.abs(read_c - drawn_c).mean()) if read_c is not None else None,
            ))
        return SampleResponse(
            n=req.n, seed=req.seed, evidence=req.evidence, do=req.do,
            images=[png_data_url(display(im, self.binary, channels_first=True)) for im in drawn.images],
            values={n: [self._shown(n, v) for v in drawn.values[n]] for n in g.topological_order},
            distributions=distributions, read_back=summary.read_back, continuous=continuous, read=read,
        )

    # -- gallery ----------------------------------------------------------------------------

    def gallery(self, n: int, offset: int) -> GalleryResponse:
        if self.test is None:
            raise ViewerError(f"no gallery: {self.gallery_note}", 404)
        total = len(self.test)
        if offset >= total:
            raise CausalVAEError(f"offset {offset} is past the end: the test split has {total} pictures")
        positions = list(range(offset, min(offset + n, total)))
        images, labels = self.test.batch(positions)
        cols = self.test.label_columns
        numbers = self.test.continuous_batch(positions).tolist() if self.test.continuous_columns else [[] for _ in positions]
        items = []
        for p, im, row, cont in zip(positions, images, labels, numbers):
            shown: dict[str, str | float | None] = {c: (self.graph[c].values[int(v)] if v >= 0 else None) for c, v in zip(cols, row.tolist())}
            shown.update({c: (float(x) if math.isfinite(x) else None) for c, x in zip(self.test.continuous_columns, cont)})
            items.append(GalleryItem(index=p, image=png_data_url(display(im, self.binary, channels_first=True)), labels=shown))
        return GalleryResponse(total=total, offset=offset, items=items)

    # -- counterfactual ---------------------------------------------------------------------

    def counterfactual(self, req: CounterfactualRequest) -> CounterfactualResponse:
        from causalvae.ask import counterfactual
        from causalvae.queries import act

        g, cols, cont_cols = self.graph, self.vae.label_columns, self.vae.continuous_columns
        do = check_values(g, req.do, "do")
        act(g, do)  # unknown names and values are refused before any work
        if req.index is not None:
            if self.test is None:
                raise ViewerError(f"no gallery: {self.gallery_note}", 404)
            if req.index >= len(self.test):
                raise CausalVAEError(f"index {req.index} is out of range: the test split has {len(self.test)} pictures")
            images, labels = self.test.batch([req.index])
            numbers = self.test.continuous_batch([req.index]) if cont_cols else None
        else:
            given = check_values(g, req.labels, "labels")
            for c in given:
                if c not in cols and c not in cont_cols:
                    kind = "a hidden variable" if c in g else "not a variable"
                    raise CausalVAEError(f"'{c}' is {kind}, not a label; labels: {', '.join([*cols, *cont_cols])}")
            missing = [c for c in cont_cols if c not in given]
            if missing:
                raise CausalVAEError(f"labels: give the continuous labels too ({', '.join(missing)}): the model abducts their noise from them")
            labels = torch.tensor([[g.value_index(c, given[c]) if c in given else -1 for c in cols]], dtype=torch.int64).reshape(1, len(cols))
            numbers = self._continuous({c: [given[c]] for c in cont_cols}, 1)
        with self.lock:  # also around decoding: decode_png sets a warnings filter, which is process-wide
            if req.index is None:
                cfg = self.vae.config
                images = read_png(req.image, cfg.channels, cfg.image_size, self.binary)
            refine = self.refine if req.refine is None else req.refine
            res = counterfactual(self.vae, images, labels, do, continuous=numbers, seed=req.seed, refine=refine)
            read = None
            if self.oracle is not None and cont_cols:
                from causalvae.ask import read_numbers

                read = read_numbers(self.oracle, torch.cat([res.factual, res.counterfactual]), cont_cols)
        unit, values, exact = res.abduction, res.values, res.exact[0]
        variables = []
        for n in g.topological_order:
            outcome = VariableOutcome(
                variable=n, hidden=g[n].hidden, values=[] if n in g.continuous else list(g[n].values),
                factual=self._shown(n, unit.values[n][0]), counterfactual=self._shown(n, values[n][0]),
                exact=exact[n].tolist() if n in exact else None, continuous=n in g.continuous,
            )
            if read is not None and n in cont_cols:
                outcome.read_factual, outcome.read_counterfactual = float(read[0, cont_cols.index(n)]), float(read[1, cont_cols.index(n)])
            variables.append(outcome)
        show = lambda pictures: png_data_url(display(pictures[0], self.binary, channels_first=True))
        return CounterfactualResponse(
            index=req.index, seed=req.seed, do=req.do, refine=refine,
            factual=show(res.factual), reconstruction=show(res.reconstruction), counterfactual=show(res.counterfactual),
            difference=png_data_url(res.difference[0]), difference_max=float(res.difference_max[0]), variables=variables,
        )


# ------------------------------------------------------------------------------ the application


def _readable(errors) -> str:
    """FastAPI's validation errors as one line: ``where: what`` for each."""
    parts = []
    for e in errors:
        loc = [str(x) for x in e.get("loc", ()) if x != "body"]
        if e.get("type") == "json_invalid":
            where = f" at character {loc[-1]}" if loc else ""
            reason = (e.get("ctx") or {}).get("error", "")
            parts.append(f"malformed JSON{where}" + (f": {reason}" if reason else ""))
            continue
        if not loc and e.get("type") == "missing":
            parts.append("the request needs a JSON body")
            continue
        if not loc and e.get("type") in ("model_attributes_type", "model_type", "dict_type"):
            parts.append("the request body must be a JSON object")
            continue
        msg = e.get("msg", "invalid").removeprefix("Value error, ")
        parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


#: The status of the library's errors that are not the caller's plain mistake (400).
STATUS = {QueryTooLargeError: 422, QueryStoppedError: 503}


class Unexpected:
    """ASGI middleware: a request that fails unexpectedly (out of memory, a bug) is answered
    with a 503 and a JSON error naming the cause or the log file of its traceback, never a
    500 page; the server goes on serving."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except BodyTooLarge:
            raise
        except Exception as exc:
            from causalvae.failures import one_line

            if started:
                raise
            await _send_error(send, 503, one_line(exc))


class BodyTooLarge(Exception):
    """Raised to the app while it reads a body over the limit (BodyLimit answers 413)."""


class BodyLimit:
    """ASGI middleware: refuse a request body over ``limit`` bytes with a 413, counting the
    bytes actually received (a chunked body has no Content-Length to trust)."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                return await _send_error(send, 400, "the Content-Length header is not a number")
            if int(declared) > self.limit:
                return await _send_error(send, 413, self._too_large(int(declared)))
        seen, refused = 0, False

        async def counted():
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    raise BodyTooLarge(self._too_large(seen, "at least "))
            return message

        started = False

        async def guarded(message):
            nonlocal started
            if refused:  # whatever the app answers to the failed read, the answer is a 413
                if not started:
                    started = True
                    await _send_error(send, 413, self._too_large(seen, "at least "))
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except BodyTooLarge:
            if not started:
                await _send_error(send, 413, self._too_large(seen, "at least "))

    def _too_large(self, size: int, prefix: str = "") -> str:
        return f"the request is {prefix}{size:,} bytes; the limit is {self.limit:,} bytes (pictures: {MAX_UPLOAD_BYTES:,} bytes)"


async def _send_error(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail, "position": None}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def watched(request: Request, pool: ThreadPoolExecutor, work, *args):
    """Run ``work(*args, stop=event)`` in ``pool``, off the event loop; if the client goes
    away first, set the event so that the work stops at its next step."""
    stop = threading.Event()
    future = asyncio.get_running_loop().run_in_executor(pool, lambda: work(*args, stop=stop))
    try:
        while True:
            done, _ = await asyncio.wait({future}, timeout=0.2)
            if done:
                return future.result()
            if not stop.is_set() and await request.is_disconnected():
                stop.set()
    finally:
        stop.set()


ERRORS = {
    400: {"model": ErrorBody, "description": "An unknown name, an impossible evidence, a query syntax error, a bad or oversized picture, a query whose answer is too large."},
    413: {"model": ErrorBody, "description": "A request body over the size limit."},
    422: {"model": ErrorBody, "description": "Malformed JSON, a missing or mistyped field, a number out of range, a query over the work budget."},
    503: {"model": ErrorBody, "description": "A query that ran past the time limit, or too many queries at once."},
}


def create_app(run, oracle=None, device: str = "cpu", *, data=None, warm: bool = True, budget: Budget = DEFAULT_BUDGET, refine: int = 0) -> FastAPI:
    """The viewer's FastAPI application for the model in ``run``.

    ``oracle`` (an oracle directory) adds the labels read off sampled pictures; ``data``
    replaces the dataset recorded in the run's config.json for the gallery; ``warm`` runs
    one small sample and counterfactual before serving; ``budget`` bounds each exact query's
    tables and work (see :class:`~causalvae.exact.Budget`); ``refine`` is the counterfactuals'
    default number of steps refining each abducted code (``queries.refine_code``; a request
    may set its own). A bad run or oracle raises the
    library's :class:`~causalvae.errors.CausalVAEError` (or ``OSError``) at once.
    """
    viewer = Viewer(run, oracle, device, data, budget, refine)
    if warm:
        viewer.warm_up()
    app = FastAPI(
        title="causalvae viewer",
        version=__version__,
        description="Ask a trained causal VAE the three kinds of causal question: the page at / uses this API.",
        docs_url=None,  # FastAPI's schema browsers load their scripts from a CDN; the viewer fetches nothing
        redoc_url=None,
    )
    app.state.viewer = viewer

    @app.exception_handler(CausalVAEError)
    async def library_error(request: Request, exc: CausalVAEError):
        body = ErrorBody(detail=str(exc), position=exc.position if isinstance(exc, QuerySyntaxError) else None)
        return JSONResponse(body.model_dump(), status_code=getattr(exc, "status", STATUS.get(type(exc), 400)))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return JSONResponse(ErrorBody(detail=_readable(exc.errors())).model_dump(), status_code=422)

    app.add_middleware(Unexpected)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/graph", response_model=GraphResponse, tags=["graph"])
    def get_graph() -> GraphResponse:
        """The causal graph (variables, values, hidden or labelled) and its drawing's layout."""
        return viewer.graph_info()

    @app.post("/api/query", response_model=QueryResponse, responses=ERRORS, tags=["query"])
    async def post_query(req: QueryRequest, request: Request) -> QueryResponse:
        """The exact answer to a query in the query language (docs/queries.md)."""
        return await watched(request, viewer.query_pool, viewer.query, req.query)

    @app.post("/api/sample", response_model=SampleResponse, responses=ERRORS, tags=["sample"])
    def post_sample(req: SampleRequest) -> SampleResponse:
        """``n`` pictures under the evidence and interventions, seeded."""
        return viewer.sample(req)

    @app.get("/api/gallery", response_model=GalleryResponse, responses={**ERRORS, 404: {"model": ErrorBody, "description": "The run's dataset is not available."}}, tags=["counterfactual"])
    def get_gallery(n: int = Query(24, ge=1, le=MAX_PICTURES), offset: int = Query(0, ge=0)) -> GalleryResponse:
        """Test pictures of the run's dataset, ``n`` from ``offset``, with their labels."""
        return viewer.gallery(n, offset)

    @app.post(
        "/api/counterfactual", response_model=CounterfactualResponse,
        responses=ERRORS, tags=["counterfactual"],
    )
    def post_counterfactual(req: CounterfactualRequest) -> CounterfactualResponse:
        """This very picture, had the interventions held: abduct, act, predict."""
        return viewer.counterfactual(req)

    return app
