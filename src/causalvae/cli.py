"""The ``causalvae`` command line: thin commands over the library.

    causalvae query "P(action | reaction=Dying)"
    causalvae query "P(reaction | do(actor_attack=High, reactor_defense=Low))" --json
    causalvae graph show scenes
    causalvae graph draw scenes --out dag.png
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from causalvae.errors import CausalVAEError
from causalvae.graph import Graph, quote_name

out = Console()
err = Console(stderr=True)


class _Commands(TyperGroup):
    """The command group with the CLI's one error handler: a library error (bad input, a
    missing or damaged file) is printed as one line and exits with status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (CausalVAEError, OSError) as exc:
            _fail(exc)


app = typer.Typer(cls=_Commands, add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False, help="Causal generative models of images.")
graph_app = typer.Typer(no_args_is_help=True, help="Inspect, draw and convert causal graphs.")
app.add_typer(graph_app, name="graph")
class _Worlds(TyperGroup):
    """``generate``: a command for every registered world (``generate WORLD``), built from the
    world's own options, beside the commands registered here (``generate dsprites``)."""

    def list_commands(self, ctx):
        from causalvae import worlds

        return sorted({*super().list_commands(ctx), *worlds.names()})

    def get_command(self, ctx, name):
        from causalvae import worlds

        return super().get_command(ctx, name) or _generate_command(worlds.get(name))


generate_app = typer.Typer(cls=_Worlds, no_args_is_help=True, help="Generate a world's dataset: causalvae generate WORLD --n N --out DIR (see causalvae generate WORLD --help).")
app.add_typer(generate_app, name="generate")
data_app = typer.Typer(no_args_is_help=True, help="Import and inspect datasets.")
app.add_typer(data_app, name="data")
oracle_app = typer.Typer(no_args_is_help=True, help="Attribute readers that read labels off pictures.")
app.add_typer(oracle_app, name="oracle")

GRAPH_HELP = "A built-in graph (scenes, sprites, survey, morpho) or a FILE.yaml / FILE.bif."


#: Seconds between two "still working" lines of a long exact query (:func:`_still_working`).
HEARTBEAT_S = 5.0


@contextmanager
def _still_working(what: str, every: float | None = None, say: Callable[[str], None] | None = None):
    """While the block runs, say every ``every`` seconds (after the first ``every``) that
    ``what`` is still being worked on, so that a long exact query never looks like a hang."""
    every = HEARTBEAT_S if every is None else every
    say = say or (lambda text: err.print(escape(text), highlight=False))
    done = threading.Event()
    start = time.monotonic()

    def beat():
        while not done.wait(every):
            say(f"still working on {what} ({time.monotonic() - start:.0f} s; Ctrl-C stops it)")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _fail(exc: Exception) -> None:
    err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _clean_stale(out_path: Path) -> None:
    """Remove the staging folders that killed runs left beside ``out_path``; say so in one line."""
    from causalvae.io import clean_stale_stages

    parent = Path(out_path).resolve().parent
    removed = clean_stale_stages(parent)
    if removed:
        err.print(escape(f"removed {len(removed)} staging folder(s) left in {parent} by runs that were killed: {', '.join(p.name for p in removed)}"), highlight=False, soft_wrap=True)


def _load(spec: str) -> Graph:
    return Graph.load(spec)


def _fmt(p: float) -> str:
    """Four decimals; a tiny non-zero probability is shown as such, never as 0.0000."""
    if math.isnan(p):
        return "undefined"
    if 0 < p < 5e-5:
        return f"{p:.1e}"
    return f"{p:.4f}"


@app.command("query")
def query_cmd(
    text: str = typer.Argument(..., help='A query, e.g. "P(action | reaction=Dying)". See docs/queries.md.'),
    graph: str = typer.Option("scenes", "--graph", "-g", help=GRAPH_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the answer as JSON."),
    samples: int = typer.Option(100_000, "--samples", help="Samples of importance sampling (graphs with continuous variables)."),
    seed: int = typer.Option(0, "--seed", help="Seed of importance sampling (graphs with continuous variables)."),
    max_table_mb: Optional[float] = typer.Option(None, "--max-table-mb", help="Refuse a query whose largest table exceeds this many MB (default: a quarter of the available memory)."),
    max_operations: float = typer.Option(2e9, "--max-operations", help="Refuse a query that needs more multiply-adds than this."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the target's distribution to this PNG (graphs with continuous variables): its density, with a standard-error band when sampled."),
) -> None:
    """Answer a conditional, interventional or counterfactual query (exactly, or with its error)."""
    from causalvae.exact import Budget
    from causalvae.querylang import CausationQuery, evaluate

    g = _load(graph)
    if plot is not None and plot.suffix.lower() != ".png":
        _fail(CausalVAEError(f"{plot}: the plot is written as .png"))
    if plot is not None and not g.mixed:
        _fail(CausalVAEError("--plot draws the distributions of graphs with continuous variables; this graph is discrete"))
    if g.mixed:
        from causalvae.mixed import MixedQuery, parse, summarize
        from causalvae.mixed import evaluate as evaluate_mixed

        q = parse(text, g, whole=True)
        if isinstance(q, MixedQuery) and q.measure == "P" and q.op is None:  # P(y | ...) of a continuous y
            _print_summary(summarize(g, q, samples=samples, seed=seed), g, as_json)
            if plot is None:
                return
        answer = evaluate_mixed(g, q, samples=samples, seed=seed) if not (isinstance(q, MixedQuery) and q.measure == "P" and q.op is None) else None
        if plot is not None:
            import io

            from causalvae.io import atomic_write_bytes
            from causalvae.plots import query_figure

            fig = query_figure(g, text, samples=samples, seed=seed)
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            import matplotlib.pyplot as plt

            plt.close(fig)
            atomic_write_bytes(plot, buf.getvalue())
            err.print(escape(f"wrote {plot}"), highlight=False)
        if answer is None:  # a summary, printed above
            return
    else:
        with _still_working("the query"):
            answer = evaluate(g, text, Budget.of(max_table_mb, max_operations))
    if as_json:
        payload = {"graph": g.name, **answer.to_json()}
        sys.stdout.write(json.dumps(payload, indent=2, allow_nan=False) + "\n")
        return
    if hasattr(answer, "method"):
        _print_mixed(answer, g)
        return
    q = answer.query
    if isinstance(q, CausationQuery):
        out.print(escape(f"{q.text}   (graph: {g.name})"), highlight=False)
        table = Table()
        table.add_column(escape(f"contrast ({q.treatment}=x')"))
        for m in ("PN", "PS", "PNS"):
            table.add_column(m + (" *" if m == q.measure else ""), justify="right")
        for xp, c in answer.causation.items():
            table.add_row(escape(xp), _fmt(c.pn), _fmt(c.ps), _fmt(c.pns))
        out.print(table)
        out.print(
            escape(f"x = {q.value}; PN = P({q.outcome}[x'] != {q.outcome_value} | x, {q.outcome_value}), "
            f"PS = P({q.outcome}[x] = {q.outcome_value} | x', not {q.outcome_value}), "
            f"PNS = P({q.outcome}[x] = {q.outcome_value}, {q.outcome}[x'] != {q.outcome_value})"),
            highlight=False,
        )
        return
    d = answer.distribution
    assert d is not None
    out.print(escape(f"{q.text}   (graph: {g.name})"), highlight=False)
    table = Table()
    for v in d.variables:
        table.add_column(escape(v))
    table.add_column("probability", justify="right")
    table.add_column("")
    for values, p in d.items():
        mark = values == tuple(q.target_values)
        row = [*(escape(v) for v in values), _fmt(p), "█" * int(round(p * 30))]
        table.add_row(*row, style="bold" if mark else None)
    out.print(table)
    if answer.probability is not None:
        event = ", ".join(f"{t.label}={v}" for t, v in zip(q.targets, q.target_values))
        out.print(escape(f"P({event} | ...) = {answer.probability:.6f}"), highlight=False)


def _print_summary(s, g: Graph, as_json: bool) -> None:
    """``P(y | ...)`` of a continuous ``y``: its mean and quantiles, each with its error and
    method (:func:`causalvae.mixed.summarize`)."""
    rows = [("mean", s.mean)] + [(f"quantile {level:g}", a) for level, a in zip(s.levels, s.quantiles)]
    if as_json:
        payload = {"graph": g.name, "query": s.query.text, "summary": [{"statistic": name, **a.to_json()} for name, a in rows]}
        sys.stdout.write(json.dumps(payload, indent=2, allow_nan=False) + "\n")
        return
    out.print(escape(f"{s.query.text}   (graph: {g.name}): its distribution in a few numbers"), highlight=False)
    methods = {a.method for _, a in rows}
    table = Table()
    for col in ("statistic", "value", "error") + (("method",) if len(methods) > 1 else ()):
        table.add_column(col, justify="left" if col in ("statistic", "method") else "right")
    for name, a in rows:
        e = a.estimates[0]
        table.add_row(name, f"{e.value:.6g}", f"{e.error:.2g} ({a.error_kind})", *((escape(a.method),) if len(methods) > 1 else ()))
    out.print(table)
    if len(methods) == 1:
        out.print(escape(f"method: {methods.pop()}"), highlight=False)


def _print_mixed(answer, g: Graph) -> None:
    """An answer on a graph with continuous variables: numbers, their error and the method."""
    out.print(escape(f"{answer.query.text}   (graph: {g.name})"), highlight=False)
    err_label = {"exact": "error", "quadrature": "error (quadrature)", "standard error": "standard error"}[answer.error_kind]
    if len(answer.estimates) == 1 and not hasattr(answer.query, "targets"):
        e = answer.estimates[0]
        out.print(escape(f"{answer.describe()}: {e.value:.6g}   {err_label}: {e.error:.2g}"), highlight=False)
    else:
        table = Table()
        table.add_column(escape(answer.query.targets[0].label if hasattr(answer.query, "targets") else "value"))
        table.add_column("probability", justify="right")
        table.add_column(err_label, justify="right")
        table.add_column("")
        for e in answer.estimates:
            table.add_row(escape(e.label), _fmt(e.value), f"{e.error:.1g}", "█" * int(round(e.value * 30)))
        out.print(table)
    if "probability" in answer.details:
        out.print(escape(f"P({answer.query.targets[0].label}={answer.details['event']} | ...) = {answer.details['probability']:.6f}"), highlight=False)
    out.print(escape(f"method: {answer.method}"), highlight=False)


@graph_app.command("show")
def graph_show(name: str = typer.Argument(..., help=GRAPH_HELP)) -> None:
    """List a graph's variables: values, parents, observed or hidden."""
    g = _load(name)
    table = Table(title=f"graph '{g.name}': {len(g)} variables", title_justify="left")
    for col in ("variable", "values", "parents", "kind"):
        table.add_column(col)
    for n in g.topological_order:
        v = g[n]
        values = v.describe() if getattr(v, "is_continuous", False) else ", ".join(v.values)
        table.add_row(escape(quote_name(n)), escape(values), escape(", ".join(v.parents) or "-"), "observed" if v.observed else "hidden")
    if g.image is not None:
        table.add_row(escape(g.image.name), "picture", escape(", ".join(g.image.parents)), "image")
    out.print(table)
    if g.description:
        out.print(escape(g.description), highlight=False)


@graph_app.command("draw")
def graph_draw(
    name: str = typer.Argument(..., help=GRAPH_HELP),
    out_path: Path = typer.Option(..., "--out", "-o", help="Output .png or .svg."),
) -> None:
    """Draw a graph; hidden variables are dashed and grey."""
    from causalvae.draw import draw_graph

    g = _load(name)
    path = draw_graph(g, out_path)
    out.print(f"wrote {path}", highlight=False)


@graph_app.command("convert")
def graph_convert(
    name: str = typer.Argument(..., help=GRAPH_HELP),
    out_path: Path = typer.Option(..., "--out", "-o", help="Output .yaml or .bif."),
) -> None:
    """Write a graph back as YAML or BIF."""
    g = _load(name)
    suffix = out_path.name.lower()
    if suffix.endswith((".yaml", ".yml")):
        g.to_yaml(out_path)
    elif suffix.endswith(".bif"):
        g.to_bif(out_path)
    else:
        raise CausalVAEError(f"{out_path}: use a .yaml, .yml or .bif file name")
    out.print(f"wrote {out_path}", highlight=False)


def _say(line: str) -> None:
    """One progress line on stderr, for a log (off a terminal, where no bar is drawn)."""
    err.print(f"{time.strftime('%H:%M:%S')} {line}", highlight=False, markup=False, soft_wrap=True)


class _Lines:
    """The progress bar's stand-in off a terminal: a line every ``every`` seconds and at the end."""

    def __init__(self, total: int, what: str, every: float = 30.0):
        self.total, self.what, self.every = total, what, every
        self.t0 = self.last = time.perf_counter()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if now - self.last >= self.every or done >= self.total:
            self.last = now
            _say(f"{self.what}: {done:,}/{self.total:,} ({100 * done / max(1, self.total):.0f}%), {now - self.t0:.0f} s")


def _progress(total: int, what: str):
    """A rich progress bar on stderr (a line now and then off a terminal); returns (context
    manager, callback(done))."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if not err.is_terminal:
        lines = _Lines(total, what)
        return lines, lines.update
    bar = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=err)
    task = bar.add_task(what, total=total)
    return bar, lambda done: bar.update(task, completed=done)


@generate_app.command("dsprites")
def generate_dsprites_cmd(
    out_path: Path = typer.Option(..., "--out", "-o", help="The grid directory to write (about 3.1 GB)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing directory."),
) -> None:
    """Render the whole dSprites factor grid (737,280 images) in the official order."""
    from causalvae.worlds.sprites.dsprites import N_IMAGES, write_grid

    bar, update = _progress(N_IMAGES, "rendering the dSprites grid")
    with bar:
        path = write_grid(out_path, update, force=force)
    out.print(f"wrote {N_IMAGES:,} images to {path}", highlight=False)


def _generate_shared(
    out_path: Path = typer.Option(..., "--out", "-o", help="The dataset directory to write."),
    n: int = typer.Option(20000, "--n", help="Number of pictures."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Random seed: the same seed gives the same bytes."),
    resolution: Optional[int] = typer.Option(None, "--resolution", help="Picture size (default: the world's own; the scenes world draws 64, 96 or 128)."),
    label_fraction: float = typer.Option(1.0, "--label-fraction", help="Keep each observed label with this probability."),
    force: bool = typer.Option(False, "--force", help="Replace an existing dataset directory."),
) -> None:
    """The options of ``generate WORLD`` that every world has (the signature is what counts)."""


def _generate_command(world):
    """The command ``generate WORLD``: the options every world has, then the world's own
    (:attr:`~causalvae.worlds.World.options`), which reach :meth:`~causalvae.worlds.World.plan`."""
    import inspect

    def generate_world(out_path: Path, n: int, seed: int, resolution: Optional[int], label_fraction: float, force: bool, **given) -> None:
        from causalvae.generate import generate

        options = {o.keyword: o.value(given[o.name.replace("-", "_")]) for o in world.options}
        _clean_stale(out_path)
        bar, update = _progress(n, f"rendering {world.name}")
        with bar:
            path = generate(
                world, out_path, n, seed=seed, resolution=resolution,
                label_fraction=label_fraction, force=force, progress=update, **options,
            )
        out.print(f"wrote {n} pictures of the {world.name} world to {path}", highlight=False)

    own = []
    for o in world.options:
        default, kind = (False, bool) if o.flag else ([], list[str]) if o.repeat else (None, Optional[str])
        option = typer.Option(default, f"--{o.name}", help=o.help)
        own.append(inspect.Parameter(o.name.replace("-", "_"), inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind))
    generate_world.__signature__ = inspect.Signature([*inspect.signature(_generate_shared).parameters.values(), *own])
    about = (type(world).__doc__ or "").strip()  # the world's own docstring, not the protocol's
    single = typer.Typer(add_completion=False)
    single.command(world.name, help=f"Sample N pictures of the {world.name} world and write a dataset. {about}".strip())(generate_world)
    return typer.main.get_command(single)


@data_app.command("import")
def data_import(
    images: Path = typer.Option(..., "--images", help="A folder of same-sized PNGs."),
    labels: Path = typer.Option(..., "--labels", help="A CSV: a 'file' column and one column per labelled variable."),
    graph: str = typer.Option(..., "--graph", "-g", help=GRAPH_HELP),
    out_path: Path = typer.Option(..., "--out", "-o", help="The dataset directory to write."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of the train/val/test split."),
    force: bool = typer.Option(False, "--force", help="Replace an existing dataset directory."),
) -> None:
    """Turn your own images and labels into a dataset, checking every row and image."""
    from causalvae.data import import_folder

    g = _load(graph)
    _clean_stale(out_path)
    path = import_folder(images, labels, g, out_path, force=force, seed=seed)
    out.print(f"wrote {path}", highlight=False)


@app.command("show")
def show_cmd(
    dataset: Path = typer.Argument(..., help="A dataset directory."),
    out_path: Path = typer.Option(..., "--out", "-o", help="The contact sheet to write (.png)."),
    scale: int = typer.Option(2, "--scale", help="Upscaling of each tile (nearest neighbour)."),
) -> None:
    """Draw a labelled contact sheet of a dataset."""
    import io

    from causalvae.data import load
    from causalvae.io import atomic_write_bytes
    from causalvae.show import dataset_sheet

    if out_path.suffix.lower() != ".png":
        _fail(CausalVAEError(f"{out_path}: the contact sheet is written as .png"))
    if not 1 <= scale <= 16:
        _fail(CausalVAEError(f"--scale must be between 1 and 16, got {scale}"))
    sheet = dataset_sheet(load(dataset), scale=scale)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    atomic_write_bytes(out_path, buf.getvalue())
    out.print(f"wrote {out_path}", highlight=False)


@app.command("train")
def train_cmd(
    data: Path = typer.Option(..., "--data", help="A dataset directory (causalvae generate ... / data import)."),
    out_path: Path = typer.Option(..., "--out", "-o", help="The run directory: metrics, checkpoints and the model files."),
    epochs: int = typer.Option(10, "--epochs", help="Passes over the training split."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimiser steps instead."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per step and process."),
    z_dim: int = typer.Option(8, "--z-dim", help="Dimension of the latent code z."),
    width: int = typer.Option(32, "--width", help="Channels of the first conv stage (doubling per stage)."),
    depth: int = typer.Option(4, "--depth", help="Number of stride-2 conv stages."),
    hidden: int = typer.Option(256, "--hidden", help="Width of the MLPs."),
    max_log_scale: Optional[float] = typer.Option(-3.0, "--max-log-scale", help="Cap of the pixel likelihood's log-scale (8-bit pictures): sharper decoded means (docs/training.md)."),
    decoder: str = typer.Option("film", "--decoder", help="How the parents reach the decoder: film (at every resolution), concat (once, beside z) or broadcast (film, with z and the parents broadcast over a grid beside each place's coordinates: a spatial broadcast decoder)."),
    coordinates: Optional[str] = typer.Option(None, "--coordinates", help="Units of the broadcast decoder's coordinates: cells (one per place of its grid; the default) or unit ([-1, 1] across the grid, as the first broadcast models had)."),
    residual: bool = typer.Option(False, "--residual/--no-residual", help="A FiLM-modulated residual block after each decoder upsampling."),
    place: Optional[str] = typer.Option(None, "--place", help="Comma-separated parents of the picture that say where its content sits (the sprites world: posX,posY): the decoder draws the picture from z and the other parents, and moves it by a shift learned from z and these (docs/training.md)."),
    draw_scale: int = typer.Option(1, "--draw-scale", help="With --place: the decoder draws the picture at this many times its size (1 or 2), and the placer samples that drawing at the picture's pixels."),
    ordinal: Optional[str] = typer.Option(None, "--ordinal", help="Comma-separated discrete parents of the picture whose values are ordered (the sprites world: scale,orientation,posX,posY): each enters the networks as one number, its value's index scaled to [-1, 1], instead of its one-hot code (docs/training.md)."),
    place_mode: str = typer.Option("shift", "--place-mode", help="How --place moves the picture: shift (a translation; z reaches the drawing too) or similarity (a turn, a scaling and a translation; z reaches only the placer, the drawing is one picture per value of the other parents)."),
    beta: float = typer.Option(2.0, "--beta", help="Weight of z's KL term in the training loss (the reported ELBO stays the true one)."),
    kl_warmup: int = typer.Option(0, "--kl-warmup", help="Raise z's KL weight linearly from near 0 to --beta over the first N steps (a KL warm-up; 0: --beta from the start)."),
    cf_weight: float = typer.Option(1000.0, "--cf-weight", help="Weight of the counterfactual training term: pictures decoded under other parents must be read back by a classifier trained on the real pictures (0: off)."),
    reader_steps: int = typer.Option(400, "--reader-steps", help="Training steps of that classifier (at most the run's own)."),
    readers: int = typer.Option(1, "--readers", help="How many such readers the term asks (seeds seed, seed+1, ...; each trained --reader-steps): the term is their mean, so the decoder draws what they agree on instead of one reader's blind spots."),
    reader_shift: int = typer.Option(0, "--reader-shift", help="Move that classifier's training pictures by up to this many pixels each way, at random (for pictures whose labels say nothing of where the object sits; 0: as they are)."),
    reader_warp: float = typer.Option(0.0, "--reader-warp", help="Turn half of each of that classifier's training batches by up to this many degrees, scaled and sheared in proportion (12: +-10%, +-0.15), for its discrete parents only (0: as they are)."),
    reader_sets: bool = typer.Option(False, "--reader-sets", help="Train the counterfactual term's reader, and ask it, on the set of readings the world says no reader can tell apart from a label (the sprites world's orientation: a square's quarter turns), instead of the one label."),
    cf_swap: str = typer.Option("joint", "--cf-swap", help="The counterfactual term's interventions: joint (each picture takes another picture's parents, as the data combines them) or independent (each parent from a picture of its own: every combination an intervention can ask for)."),
    cf_prior_share: float = typer.Option(0.5, "--cf-prior-share", help="Share of the counterfactual term's pictures decoded from a prior draw of z (generation); the others keep their own abducted z (counterfactuals). 0: every row a counterfactual."),
    cf_detach: bool = typer.Option(False, "--cf-detach", help="Stop the counterfactual term's gradient at the abducted codes: the term trains the decoder only, the encoder learns from the ELBO alone."),
    cf_cycle: float = typer.Option(0.0, "--cf-cycle", help="Weight of the counterfactual term's return trip: each counterfactual, abducted again under its new parents by the frozen encoder, must give back the code it was drawn from (the decoder keeps the source's style; 0: off). It weighs the trip against the term's readings; --cf-weight scales both."),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate of the networks."),
    lr_schedule: str = typer.Option("cosine", "--lr-schedule", help="cosine (down to a tenth at the last step) or constant."),
    learn_cpts: bool = typer.Option(False, "--learn-cpts", help="Learn the tables whose family is labelled (the others stay as specified)."),
    cpt_lr: float = typer.Option(0.05, "--cpt-lr", help="Adam learning rate of learned tables."),
    graph: Optional[str] = typer.Option(None, "--graph", "-g", help="Train under this graph instead of the dataset's (same labelled variables and image parents)."),
    withhold: list[str] = typer.Option([], "--withhold", help="NAME=FRACTION: hide that fraction of NAME's training labels (repeatable), e.g. for a semi-supervised run."),
    classify: list[str] = typer.Option([], "--classify", help="Give this image parent a classifier q(y|x) (repeatable); unlabelled ones get one anyway."),
    alpha: float = typer.Option(50.0, "--alpha", help="Weight of the classifiers' cross-entropy on labelled rows."),
    adversary_weight: float = typer.Option(0.0, "--adversary-weight", help="Weight of z's confusion of an adversary that reads the image's labelled discrete parents off z (train.adversary_terms): teaches the encoder to leave them out of z, so a counterfactual keeps no trace of the source's parents (0: off)."),
    ema: float = typer.Option(0.0, "--ema", help="Decay of a moving average of the model's weights (e.g. 0.999), updated after every step: the run validates and saves the average (train.WeightAverage; 0: off)."),
    match_weight: float = typer.Option(0.0, "--match-weight", help="Weight of the hidden image parents' aggregate match to the graph (train.prior_matching; 0: off)."),
    guide_steps: int = typer.Option(0, "--guide-steps", help="Teach the hidden image parents' classifiers what the graph says of them given the labels for the first N steps, fading out (docs/training.md; 0: off)."),
    precision: str = typer.Option("32", "--precision", help="32, or bf16 (autocast of the networks only)."),
    devices: int = typer.Option(1, "--devices", help="Processes (CPU) or GPUs."),
    strategy: str = typer.Option("auto", "--strategy", help="auto, or ddp for several processes."),
    accelerator: str = typer.Option("cpu", "--accelerator", help="cpu, gpu or auto."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of initialisation, data order and sampling."),
    checkpoint_every: int = typer.Option(200, "--checkpoint-every", help="Write a checkpoint every K steps."),
    val_per_epoch: int = typer.Option(1, "--val-per-epoch", help="Validation passes (metrics.csv rows) per epoch."),
    val_limit: Optional[int] = typer.Option(None, "--val-limit", help="Use at most this many validation images."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per process."),
    force: bool = typer.Option(False, "--force", help="Delete an earlier run in --out and start over."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train the causal VAE on a dataset; an interrupted run in --out resumes where it stopped."""
    from causalvae.train import TrainConfig, fit, read_metrics

    fractions = {}
    for item in withhold:
        name, sep, frac = item.partition("=")
        try:
            fractions[name.strip()] = float(frac)
        except ValueError:
            sep = ""
        if not sep:
            _fail(CausalVAEError(f"--withhold {item!r}: write NAME=FRACTION, e.g. posX=0.9"))
    if coordinates is not None and decoder != "broadcast":
        _fail(CausalVAEError(f"--coordinates sets the units of the broadcast decoder's grid; --decoder {decoder} has no grid"))
    placed = [n.strip() for n in (place or "").split(",") if n.strip()]
    if place is not None and not placed:
        _fail(CausalVAEError(f"--place {place!r}: name the parents, separated by commas, e.g. posX,posY"))
    ordered = [n.strip() for n in (ordinal or "").split(",") if n.strip()]
    if ordinal is not None and not ordered:
        _fail(CausalVAEError(f"--ordinal {ordinal!r}: name the parents, separated by commas, e.g. posX,posY"))
    cfg = TrainConfig(
        data=str(data), out=str(out_path), epochs=epochs, max_steps=max_steps, batch_size=batch_size,
        lr=lr, lr_schedule=lr_schedule, cpt_lr=cpt_lr, seed=seed, z_dim=z_dim, width=width, depth=depth, hidden=hidden, max_log_scale=max_log_scale,
        decoder=decoder, coordinates=coordinates or "cells", residual=residual, place=placed, place_mode=place_mode, draw_scale=draw_scale, ordinal=ordered, beta=beta, kl_warmup=kl_warmup, cf_weight=cf_weight, reader_steps=reader_steps, readers=readers, reader_shift=reader_shift, reader_warp=reader_warp, reader_sets=reader_sets, cf_swap=cf_swap, cf_prior_share=cf_prior_share, cf_detach=cf_detach, cf_cycle=cf_cycle, adversary_weight=adversary_weight, ema=ema, learn_cpts=learn_cpts, graph=graph, withhold=fractions, classify=list(classify), alpha=alpha, guide_steps=guide_steps, match_weight=match_weight, precision=precision,
        devices=devices, strategy=strategy, accelerator=accelerator, checkpoint_every=checkpoint_every,
        val_per_epoch=val_per_epoch, val_limit=val_limit, threads=threads,
    )
    _clean_stale(out_path)
    on_terminal = err.is_terminal
    run = fit(cfg, force=force, progress=progress and on_terminal, say=None if (on_terminal or not progress) else _say)
    import os

    if os.environ.get("LOCAL_RANK", "0") != "0":
        return
    rows = read_metrics(run / "metrics.csv")
    if rows:
        last = rows[-1]
        out.print(
            f"step {last['step']}  wall {last['wall_s']:.0f} s  val ELBO {last['val_elbo']:.1f} nats/image "
            f"(recon {last['val_recon']:.1f}, KL {last['val_kl']:.1f})", highlight=False,
        )
    if (run / "config.json").exists():
        out.print(f"wrote {run / 'model.safetensors'} and {run / 'config.json'}", highlight=False)
    else:
        out.print(f"stopped early; run the same command again to resume from {run / 'checkpoints'}", highlight=False)


def _open_run(run: Path, data: Optional[Path] = None):
    """The run in ``run`` (:class:`causalvae.run.Run`); ``data`` replaces its dataset."""
    from causalvae.run import Run

    return Run.open(run, data=data)


def _write_png(image, path: Path) -> None:
    import io

    from causalvae.io import atomic_write_bytes

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


@app.command("reconstruct")
def reconstruct_cmd(
    run: Path = typer.Argument(..., help="A trained run directory (or its config.json)."),
    out_path: Path = typer.Option(..., "--out", "-o", help="The PNG grid to write: each input beside its reconstruction."),
    n: int = typer.Option(16, "--n", help="Number of images."),
    split: str = typer.Option("test", "--split", help="train, val or test."),
    data: Optional[Path] = typer.Option(None, "--data", help="Another dataset of the same world (default: the run's)."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Which images: a seeded choice from the split."),
    columns: int = typer.Option(8, "--columns", min=1, max=64, help="Tiles per row (input and reconstruction are two tiles)."),
    refine: int = typer.Option(0, "--refine", min=0, max=500, help="Steps refining the abducted code z from the encoder's mean toward the mode of the model's posterior (0: the encoder's mean)."),
) -> None:
    """Encode held-out images with their labels and decode them again."""
    import numpy as np

    from causalvae.plots import reconstruction_sheet

    if out_path.suffix.lower() != ".png":
        _fail(CausalVAEError(f"{out_path}: the grid is written as .png"))
    if n < 1:
        _fail(CausalVAEError(f"--n must be at least 1, got {n}"))
    r = _open_run(run, data)
    vae, ds = r.model, r.dataset(split)
    if len(ds) == 0:
        _fail(CausalVAEError(f"the {split} split of {ds.root} is empty"))
    positions = np.sort(np.random.default_rng(seed).choice(len(ds), size=min(n, len(ds)), replace=False))
    _write_png(reconstruction_sheet(vae, ds, positions, columns=columns, binary=vae.config.likelihood == "bernoulli", refine=refine), out_path)
    out.print(f"wrote {out_path}", highlight=False)


@app.command("curve")
def curve_cmd(
    run: Path = typer.Argument(..., help="A run directory with metrics.csv."),
    out_path: Path = typer.Option(..., "--out", "-o", help="The figure to write (.png or .svg)."),
) -> None:
    """Plot a run's ELBO (train and validation) against wall-clock time."""
    import io

    from causalvae.io import atomic_write_bytes
    from causalvae.plots import elbo_curve

    if out_path.suffix.lower() not in (".png", ".svg"):
        _fail(CausalVAEError(f"{out_path}: write the figure as .png or .svg"))
    r = _open_run(run)
    rows = r.metrics
    if not rows:
        _fail(CausalVAEError(f"{run}: no metrics.csv rows yet"))
    ds = r.dataset("val")
    h, w = ds.manifest["resolution"]
    dims = int(h) * int(w) * int(ds.manifest["channels"])
    fig = elbo_curve(rows, dims, title=f"{run.name}: {rows[-1]['step']} steps, {rows[-1]['wall_s'] / 60:.1f} min")
    buf = io.BytesIO()
    fig.savefig(buf, format=out_path.suffix.lower()[1:])
    atomic_write_bytes(out_path, buf.getvalue())
    out.print(f"wrote {out_path}", highlight=False)


@app.command("summary")
def summary_cmd(run: Path = typer.Argument(..., help="A run directory (metrics.csv, train.json, config.json).")) -> None:
    """Print a training run's settings and its ELBO, in nats per image and bits per dimension."""
    r = _open_run(run)
    rows = r.metrics
    if not rows:
        _fail(CausalVAEError(f"{run}: no metrics.csv rows"))
    config, settings = r.config, r.checked_settings()
    reader = _reader_record(r.path)  # a damaged one: its error before any of the summary
    if config is not None:
        net = config["net"]
        dims = net["image_size"] ** 2 * net["channels"]
        n_params = sum(math.prod(shape) for shape, _ in config["weights"]["tensors"].values())
        decoder = net.get("decoder", "concat")  # what a config saved before the field meant (nets.LEGACY)
        if decoder == "broadcast":
            units = net.get("coordinates", "unit")
            decoder += " (coordinates in grid cells)" if units == "cells" else " (coordinates in [-1, 1])"
        if net.get("place"):
            names = list(((config.get("graph") or {}).get("image") or {}).get("parents") or [])
            moved = [names[i] if i < len(names) else str(i) for i in net["place"]]
            how = "turned, scaled and moved" if net.get("place_mode", "shift") == "similarity" else "moved"
            decoder += f", {how} by {', '.join(moved)}"
            if net.get("place_mode", "shift") == "similarity":
                decoder += " (z reaches only the placer)"
            if net.get("draw_scale", 1) != 1:
                decoder += f", drawn at {net['draw_scale']}x"
        if net.get("ordinal"):
            names = list(((config.get("graph") or {}).get("image") or {}).get("parents") or [])
            decoder += f"; {', '.join(names[i] if i < len(names) else str(i) for i in net['ordinal'])} entering as numbers"
        out.print(
            f"model: {config['likelihood']} likelihood, {net['image_size']}x{net['image_size']}x{net['channels']}, "
            f"z {net['z_dim']}, width {net['width']}, depth {net['depth']}, hidden {net['hidden']}, decoder {decoder}, "
            f"{n_params:,} parameters; learned tables: {', '.join(config['learn_cpts']) or 'none'}; "
            f"classifiers: {', '.join(config['classified']) or 'none'}", highlight=False,
        )
    else:
        dims = None
    keys = ("epochs", "max_steps", "batch_size", "lr", "seed", "devices", "precision")
    shown = [f"{k}={settings[k]}" for k in keys if k in settings and settings[k] is not None]
    for k in ("kl_warmup", "guide_steps", "match_weight", "ema"):  # only where used (and a number)
        if isinstance(settings.get(k), (int, float)) and not isinstance(settings[k], bool) and settings[k]:
            shown.append(f"{k}={settings[k]:g}")
    share = settings.get("cf_prior_share")
    if isinstance(share, (int, float)) and not isinstance(share, bool) and share != 0.5:  # the counterfactual term's rows
        shown.append(f"cf_prior_share={share:g}")
    if settings.get("cf_detach") is True:
        shown.append("cf_detach")
    cycle = settings.get("cf_cycle")
    if isinstance(cycle, (int, float)) and not isinstance(cycle, bool) and cycle:
        shown.append(f"cf_cycle={cycle:g}")
    out.print("settings: " + ", ".join(shown), highlight=False)
    if isinstance(settings.get("ema"), (int, float)) and settings["ema"]:
        out.print("the model is the moving average of the weights (ema): val columns score it, the train ELBO the live weights", highlight=False)
    table = Table(show_header=True, header_style="bold")
    with_cf = any("train_cf" in r for r in rows)  # the counterfactual term's mean (runs that log it)
    for col in ("epoch", "step", "minutes", "train ELBO", "val ELBO", "val recon", "val KL") + (("val bits/dim",) if dims else ()) + (("train cf term",) if with_cf else ()):
        table.add_column(col, justify="right")
    shown = rows if len(rows) <= 12 else [rows[i] for i in sorted({round(k * (len(rows) - 1) / 11) for k in range(12)})]
    for r in shown:
        cells = [f"{r['epoch']:g}", str(r["step"]), f"{r['wall_s'] / 60:.1f}", f"{r['train_elbo']:.0f}", f"{r['val_elbo']:.0f}", f"{r['val_recon']:.0f}", f"{r['val_kl']:.1f}"]
        if dims:
            cells.append(f"{-r['val_elbo'] / (dims * math.log(2)):.3f}")
        if with_cf:
            cells.append(f"{r['train_cf']:.3f}" if "train_cf" in r else "")
        table.add_row(*cells)
    out.print(table)
    out.print("ELBO, recon and KL in nats per image; the ELBO bounds log p(x | labels)." + (" The cf term: its mean per step since the row before, in nats per picture before --cf-weight." if with_cf else ""), highlight=False)
    figures = _reader_figures(reader) if reader else []
    if reader and isinstance(reader.get("steps"), int) and reader["steps"] > 0 and figures:
        line = f"counterfactual term's reader: {reader['steps']} steps, " + ", ".join(figures)
        n = reader.get("readers")
        if isinstance(n, int) and n > 1 and isinstance(reader.get("each"), list):
            accs = [e.get("val_accuracy_all_parents") for e in reader["each"] if isinstance(e, dict)]
            shown = ", ".join(f"{100 * a:.1f}%" for a in accs if isinstance(a, (int, float)))
            line = (f"counterfactual term's readers: {n} of {reader['steps']} steps each (seeds seed..seed+{n - 1}); the first: "
                    + ", ".join(figures) + (f"; accuracy of each: {shown}" if shown else ""))
        if isinstance(reader.get("seconds"), (int, float)):
            line += (f"{'; ' if isinstance(n, int) and n > 1 else ', '}{reader['seconds'] / 60:.1f} min before the steps above; training in all "
                     f"{(reader['seconds'] + rows[-1]['wall_s']) / 60:.1f} min")
        out.print(line, highlight=False)


def _reader_figures(reader: dict) -> list[str]:
    """The reader's validation figures as text: its accuracy, and (runs with continuous image
    parents) each continuous reading's residual sd in standardised units and its mean absolute
    error in the variable's units. Absent or odd entries are left out."""
    out = []
    sds = reader.get("val_residual_sd")
    maes = reader.get("val_mae")
    sds = {k: v for k, v in sds.items() if isinstance(v, (int, float))} if isinstance(sds, dict) else {}
    maes = {k: v for k, v in maes.items() if isinstance(v, (int, float))} if isinstance(maes, dict) else {}
    acc = reader.get("val_accuracy_all_parents")
    kept = reader.get("hidden_kept")
    kept = [str(k) for k in kept] if isinstance(kept, list) else []
    sets = reader.get("sets")
    sets = [str(k) for k in sets] if isinstance(sets, list) else []
    if isinstance(acc, (int, float)) and not isinstance(acc, bool):
        what = "all labelled parents" if kept else "all discrete parents" if sds or maes else "all parents"
        if sets:
            what += f"; {', '.join(sets)} right when in the set the world accepts"
        out.append(f"validation accuracy ({what}) {acc:.1%}")
    if kept:
        out.append(f"not read: {', '.join(kept)} (hidden; kept at each picture's inferred value)")
    if sds:
        out.append("residual sd (standardised) " + ", ".join(f"{k} {v:.3g}" for k, v in sds.items()))
    if maes:
        out.append("mean absolute error " + ", ".join(f"{k} {v:.3g}" for k, v in maes.items()))
    return out


def _reader_record(run: Path) -> dict | None:
    """The run's reader.json (the counterfactual term's reader), or None when absent (a run
    without the term). A present one that is damaged (not JSON, not an object, a field of the
    wrong type, a number that is not finite) is one error naming the file and the problem."""
    import reprlib

    from causalvae.store import read_json

    path = Path(run) / "reader.json"
    if not path.exists():
        return None
    data = read_json(path)

    def integer(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def figures(v):  # each continuous parent's figure, None where not measured
        return isinstance(v, dict) and all(x is None or number(x) for x in v.values())

    def names(v):
        return isinstance(v, list) and all(isinstance(x, str) for x in v)

    kinds = {"steps": (integer, "a whole number >= 0"), "readers": (integer, "a whole number >= 0"), "shift": (integer, "a whole number >= 0"),
             "seconds": (number, "a finite number"), "warp": (number, "a finite number"),
             "val_accuracy_all_parents": (lambda v: v is None or number(v), "a finite number or null"),
             "val_residual_sd": (figures, "an object of finite numbers (or null)"), "val_mae": (figures, "an object of finite numbers (or null)"),
             "hidden_kept": (names, "a list of names"), "sets": (names, "a list of names"), "off": (lambda v: isinstance(v, str), "a string"),
             "each": (lambda v: isinstance(v, list) and all(isinstance(e, dict) for e in v), "a list of objects")}
    records = [("", data)]  # and each reader's own figures (--readers N), once "each" is a list of them
    if kinds["each"][0](data.get("each")):
        records += [(f"each[{i}].", e) for i, e in enumerate(data["each"])]
    for prefix, record in records:
        for key, (ok, kind) in kinds.items():
            if key in record and not ok(record[key]):
                raise CausalVAEError(f"{path}: '{prefix}{key}' must be {kind}, got {reprlib.repr(record[key])}")
    return data


def _assignments(text: Optional[str], graph: Graph, what: str) -> dict:
    from causalvae.querylang import parse_assignments

    if not text:
        return {}
    if graph.mixed:  # continuous variables take numbers: "thickness=3.1"
        from causalvae.mixed import parse_assignments as parse_mixed

        try:
            return parse_mixed(text, graph)
        except CausalVAEError as exc:
            _fail(CausalVAEError(f"{what}: {exc}"))
            raise
    try:
        evidence, _ = parse_assignments(text, graph)
    except CausalVAEError as exc:
        _fail(CausalVAEError(f"{what}: {exc}"))
        raise
    return evidence


def _caption_values(graph: Graph, names, values: dict, i: int) -> str:
    from causalvae.pictures import named_value

    return " ".join(f"{n}={float(values[n][i]):.3g}" if n in graph.continuous else named_value(n, str(graph[n].values[int(values[n][i])])) for n in names)


def _distribution_table(title: str, headers: list[str], rows: list[tuple[str, str, list]]) -> Table:
    """One table of several variables' distributions: rows of (variable, value, [probabilities])."""
    table = Table(title=title, show_header=True, header_style="bold", title_justify="left")
    table.add_column("variable")
    table.add_column("value")
    for h in headers:
        table.add_column(h, justify="right")
    last = None
    for var, value, probs in rows:
        table.add_row(escape(var) if var != last else "", escape(str(value)), *[_fmt(float(p)) for p in probs])
        last = var
    return table


@app.command("sample")
def sample_cmd(
    run: Path = typer.Argument(..., help="A trained run directory."),
    out_path: Path = typer.Option(..., "--out", "-o", help="The PNG grid to write."),
    given: Optional[str] = typer.Option(None, "--given", help='Evidence, e.g. "reaction=Dying".'),
    do: Optional[str] = typer.Option(None, "--do", help='Interventions, e.g. "actor_attack=High, reactor_defense=Low".'),
    n: int = typer.Option(16, "--n", help="Number of pictures."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Random seed."),
    columns: int = typer.Option(8, "--columns", min=1, max=64, help="Tiles per row."),
    oracle_path: Optional[Path] = typer.Option(None, "--oracle", help="An oracle (causalvae oracle train) to read the labels off the pictures."),
    beside_truth: bool = typer.Option(False, "--beside-truth", help="Put the world's true render of the same values (random style) beside each picture."),
) -> None:
    """Draw pictures of the world given evidence and/or under interventions."""
    import numpy as np

    from causalvae.ask import summarize_sample
    from causalvae.pictures import contact_sheet, display, rgb

    if out_path.suffix.lower() != ".png":
        _fail(CausalVAEError(f"{out_path}: the grid is written as .png"))
    r = _open_run(run)
    vae = r.model
    graph = vae.current_graph()
    evidence, interventions = _assignments(given, graph, "--given"), _assignments(do, graph, "--do")
    oracle = None
    if oracle_path is not None:
        from causalvae.oracle import load_oracle

        oracle = load_oracle(oracle_path)
    summary = summarize_sample(vae, n, evidence, interventions, seed=seed, oracle=oracle)
    g = summary.drawn
    binary = vae.config.likelihood == "bernoulli"
    tiles = display(g.images, binary, channels_first=True)
    captions = [_caption_values(graph, vae.image_parents, g.values, i) for i in range(n)]
    if beside_truth:
        try:
            truth = r.world.renderer(vae.config.image_size)
        except CausalVAEError as exc:
            _fail(CausalVAEError(f"--beside-truth needs the true renderer of the run's world: {exc}"))
            return
        true = display(truth.render(g.values, truth.sample_style(n, np.random.default_rng(seed))), r.world.binary, channels_first=True)
        tiles = np.stack([tiles, true], 1).reshape(2 * n, *tiles.shape[1:])
        captions = [c for cap in captions for c in (f"model: {cap}", "true render")]
    _write_png(contact_sheet(rgb(tiles), captions, columns=columns, scale=2), out_path)
    read = summary.read
    headers = ["exact", f"drawn ({n})"] + ([f"read off the pictures ({n})"] if read is not None else [])
    if summary.continuous is not None:  # a mixed model: every unset variable, by the mixed engine
        rows = [(c, v, [summary.exact[c][k], summary.frequencies[c][k]] + ([summary.read_frequencies[c][k]] if c in summary.read_frequencies else []))
                for c in summary.exact for k, v in enumerate(graph[c].values)]
        if rows:
            out.print(_distribution_table("the discrete variables not set, given the evidence and interventions", headers, rows))
        numbers = summary.read_numbers
        table = Table(title="the continuous variables not set", title_justify="left")
        for col in ("variable", "expected value", "its error", f"mean drawn ({n})") + ((f"mean read ({n})",) if numbers is not None else ()):
            table.add_column(col, justify="left" if col == "variable" else "right")
        for c, (e, err, m) in summary.continuous.items():
            read_mean = [f"{numbers[:, vae.continuous_columns.index(c)].mean():.4g}"] if numbers is not None and c in vae.continuous_columns else []
            table.add_row(escape(c), f"{e:.4g}", f"{err:.1g}", f"{m:.4g}", *read_mean)
        out.print(table)
        if summary.read_back is not None:
            out.print(f"the oracle reads back every discrete label the decoder was given in {100 * summary.read_back:.1f}% of the pictures", highlight=False)
        if numbers is not None:
            for j, c in enumerate(vae.continuous_columns):
                mae = float(np.abs(numbers[:, j] - g.values[c]).mean())
                out.print(escape(f"the oracle reads {c} off the pictures within {mae:.3g} of the value drawn (mean absolute difference)"), highlight=False)
        out.print(f"wrote {out_path}", highlight=False)
        return
    rows = []
    for c in vae.label_columns:
        if c not in summary.exact:
            continue
        for k, v in enumerate(graph[c].values):
            rows.append((c, v, [summary.exact[c][k], summary.frequencies[c][k]] + ([summary.read_frequencies[c][k]] if read is not None else [])))
    out.print(_distribution_table("the variables not set, given the evidence and interventions", headers, rows))
    if read is not None:
        out.print(f"the oracle reads back every label the decoder was given in {100 * summary.read_back:.1f}% of the pictures", highlight=False)
    out.print(f"wrote {out_path}", highlight=False)


@app.command("counterfactual")
def counterfactual_cmd(
    run: Path = typer.Argument(..., help="A trained run directory."),
    out_path: Path = typer.Option(..., "--out", "-o", help="The PNG to write: factual, reconstruction, counterfactual, difference."),
    do: str = typer.Option(..., "--do", help='Interventions, e.g. "action=Walk".'),
    index: Optional[int] = typer.Option(None, "--index", help="A test-set picture of the run's dataset."),
    match: Optional[str] = typer.Option(None, "--match", help='The first test-set picture with these labels, e.g. "actor=Golem, action=Taunt".'),
    image: Optional[Path] = typer.Option(None, "--image", help="Your own picture (an opaque 8-bit PNG of the model's size)."),
    labels: Optional[str] = typer.Option(None, "--labels", help='Its labels, e.g. "actor=Golem, actor_type=type1, ...".'),
    data: Optional[Path] = typer.Option(None, "--data", help="Another dataset of the same world (default: the run's)."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Random seed of the abduction."),
    abduct_noise: bool = typer.Option(False, "--abduct-noise/--mean", help="Carry the picture's own pixel noise over (x_cf = mu_cf + sigma_cf (x - mu) / sigma), or draw the decoder's mean."),
    refine: int = typer.Option(0, "--refine", min=0, max=500, help="Steps refining the abducted code z from the encoder's mean toward the mode of the model's posterior (0: the encoder's mean)."),
) -> None:
    """This very picture, had the interventions held: abduct, act, predict."""
    import numpy as np
    import torch

    from causalvae.ask import counterfactual
    from causalvae.pictures import contact_sheet, display, read_png_file, rgb

    if out_path.suffix.lower() != ".png":
        _fail(CausalVAEError(f"{out_path}: the picture is written as .png"))
    if sum(x is not None for x in (index, image, match)) != 1:
        _fail(CausalVAEError("give one of --index or --match (a test-set picture) or --image with --labels"))
    r = _open_run(run, data)
    vae = r.model
    graph = vae.current_graph()
    binary = vae.config.likelihood == "bernoulli"
    interventions = _assignments(do, graph, "--do")
    if match is not None:
        ds = r.dataset("test")
        wanted = _assignments(match, graph, "--match")
        ok = np.ones(len(ds), dtype=bool)
        for c, v in wanted.items():
            if c not in ds.label_columns:
                _fail(CausalVAEError(f"--match: '{c}' is not a labelled variable ({', '.join(ds.label_columns)})"))
            ok &= ds.labels[ds.indices, ds.label_columns.index(c)] == graph.value_index(c, v)
        if not ok.any():
            _fail(CausalVAEError(f"--match: no test picture has {match}"))
        index = int(np.flatnonzero(ok)[0])
        out.print(f"test picture {index} matches {match}", highlight=False)
    if index is not None:
        ds = r.dataset("test")
        if not 0 <= index < len(ds):
            _fail(CausalVAEError(f"--index {index} is out of range: the test split has {len(ds)} pictures"))
        images, lab = ds.batch([index])
        cont = ds.continuous_batch([index]) if vae.continuous_columns else None
    else:
        if not labels:
            _fail(CausalVAEError("--image needs --labels"))
        images = read_png_file(image, vae.config.channels, vae.config.image_size, binary)
        given = _assignments(labels, graph, "--labels")
        lab = torch.tensor([[graph.value_index(c, given[c]) if c in given else -1 for c in vae.label_columns]])
        missing = [c for c in vae.continuous_columns if c not in given]
        if missing:
            _fail(CausalVAEError(f"--labels: give the continuous labels too ({', '.join(missing)}), e.g. \"{missing[0]}=1.5\""))
        cont = torch.tensor([[float(given[c]) for c in vae.continuous_columns]]) if vae.continuous_columns else None
    res = counterfactual(vae, images, lab, interventions, continuous=cont, seed=seed, abduct_noise=abduct_noise, refine=refine)
    pics = [display(p[0], binary, channels_first=True) for p in (res.factual, res.reconstruction, res.counterfactual)]
    top = float(res.difference_max[0])
    fact = _caption_values(graph, vae.image_parents, res.abduction.values, 0)
    counter = _caption_values(graph, vae.image_parents, res.values, 0)
    caps = [f"factual: {fact}", "reconstruction", f"counterfactual: {counter}"]
    # A test picture of a world with a renderer and a recorded style: its true counterfactual,
    # the same style drawn under the model's counterfactual values.
    true_pic = _true_counterfactual(r, index, res.values) if index is not None else None
    if true_pic is not None:
        pics.append(display(true_pic, binary, channels_first=True))
        # A hidden image parent enters the render at the model's inferred value, which may
        # not be the picture's true one: the caption says so.
        inferred = [p for p in vae.image_parents if p in vae.classified and p not in vae.label_columns and p not in interventions]
        # A changed value the world cannot draw in the same unit (the morpho digit: another
        # writer's) makes the render a stand-in, not this picture's counterfactual: said so.
        standing = [v for v in r.world.stand_in_renders if v in res.values and v in res.abduction.values
                    and np.asarray(res.values[v])[0] != np.asarray(res.abduction.values[v])[0]]
        what = f"stand-in render ({', '.join(standing)} changed)" if standing else "true counterfactual render"
        if inferred:
            caps.append(f"true render of these values ({', '.join(inferred)} as inferred)")
        elif binary:
            caps.append(what)
        else:
            mae = float(np.abs(true_pic.astype(np.float64) - res.counterfactual[0].numpy()).mean())
            caps.append(f"{what} (pixel MAE {mae:.1f})")
        for v in standing:
            out.print(escape(f"the render beside it is a stand-in under a new {v}: {r.world.stand_in_renders[v]}"), highlight=False)
    tiles = np.stack([rgb(p) for p in pics + [res.difference[0]]])
    caps.append(f"difference (largest: {top * (255 if binary else 1):.0f} of 255)")
    _write_png(contact_sheet(tiles, caps, columns=len(caps), scale=3), out_path)
    rows = [(c, v, [res.exact[0][c][k], float(res.values[c][0] == k)]) for c in vae.label_columns for k, v in enumerate(graph[c].values)]
    out.print(_distribution_table("counterfactual labels: exact distribution given the factual labels, and the values used", ["exact", "used"], rows))
    for c in vae.continuous_columns:
        out.print(escape(f"{c}: factual {float(res.abduction.values[c][0]):.4g}, counterfactual {float(res.values[c][0]):.4g} (U abducted: {float(res.abduction.noise[c][0]):.4g})"), highlight=False)
    out.print(f"wrote {out_path}", highlight=False)


def _true_counterfactual(r, index: int, values: dict):
    """The true render (C, H, W) of test picture ``index`` under ``values`` with its recorded
    style, or None when the run's world has no renderer or its dataset records no style."""
    import numpy as np

    world = r.world
    if not world.renders or not r.dataset("test").manifest.get("truth_columns"):
        return None
    ds = r.dataset("test", truth=True)
    style = ds.truth_style[ds.indices[[index]]]
    return world.renderer(r.model.config.image_size).render({k: np.asarray(v)[:1] for k, v in values.items()}, style)[0]


@oracle_app.command("train")
def oracle_train_cmd(
    world: Optional[str] = typer.Option(None, "--world", help="A world with a renderer (scenes, sprites): train on fresh renders."),
    data: Optional[Path] = typer.Option(None, "--data", help="Or a dataset (e.g. an imported one): train on its own labelled pictures."),
    out_path: Path = typer.Option(..., "--out", "-o", help="The oracle directory to write."),
    steps: int = typer.Option(500, "--steps", help="Optimiser steps, each on a fresh batch of renders."),
    batch_size: int = typer.Option(64, "--batch-size", help="Renders per step."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of the renders and the initialisation."),
    resolution: Optional[int] = typer.Option(None, "--resolution", help="Picture size (default: the world's; the scene world: 64, 96 or 128).", show_default=False),
    pool: Optional[int] = typer.Option(None, "--pool", min=0, help="--world: train on batches from a pool of this many renders, partly refreshed now and then (0: fresh renders at every step; default: the world's, 0 but for the morpho world).", show_default=False),
    held_out: int = typer.Option(4000, "--held-out", min=1, help="--world: fresh renders of held-out styles that score the oracle."),
    set_targets: bool = typer.Option(False, "--set-targets/--exact-targets", help="Train a variable the pictures leave ambiguous (the sprites' orientation) on its set of accepted readings, or on the exact value."),
    shift: Optional[int] = typer.Option(None, "--shift", min=0, help="--world: move each training picture by up to this many pixels each way, at random (default: the world's, 2 for the morpho world, 0 where a label is a position).", show_default=False),
    force: bool = typer.Option(False, "--force", help="Replace an earlier oracle in --out (never another kind of directory)."),
) -> None:
    """Train a world's attribute reader and report its held-out accuracy: on freshly rendered
    pictures (--world), or on a dataset's own labelled pictures (--data; held out: its val split)."""
    import time

    from causalvae.io import check_output_dir
    from causalvae.oracle import save_oracle, train_oracle, train_oracle_on_dataset

    if steps < 1 or batch_size < 1:
        _fail(CausalVAEError("--steps and --batch-size must be positive"))
    if (world is None) == (data is None):
        _fail(CausalVAEError("give --world (train on fresh renders) or --data (train on a dataset's labelled pictures)"))
    if set_targets and world is None:
        _fail(CausalVAEError("--set-targets needs --world: a dataset's labels name one value each"))
    if shift is not None and world is None:
        _fail(CausalVAEError("--shift needs --world (a dataset's oracle trains on its pictures as they are)"))
    check_output_dir(out_path, "oracle", force=force)
    bar, update = _progress(steps, f"training the {world or data.name} oracle")
    t0 = time.perf_counter()
    with bar:
        if world is not None:
            oracle, acc = train_oracle(world, steps=steps, batch_size=batch_size, seed=seed, resolution=resolution, held_out=held_out, pool=pool,
                                       set_targets=set_targets, shift=shift, progress=lambda step, loss: update(step),
                                       say=lambda message: err.print(escape(f"{time.strftime('%H:%M:%S')} {message}"), highlight=False))
        else:
            oracle, acc = train_oracle_on_dataset(data, steps=steps, batch_size=batch_size, seed=seed, progress=lambda step, loss: update(step))
    wall = time.perf_counter() - t0
    training = {"steps": steps, "batch_size": batch_size, "seed": seed, "wall_s": round(wall, 1)}
    if set_targets:
        training["targets"] = "sets of accepted readings"
    if data is not None:
        training["data"] = str(data)
    else:
        from causalvae import worlds

        used = worlds.get(world).oracle_pool if pool is None else pool
        moved = worlds.get(world).oracle_shift if shift is None else shift
        if moved:
            training["shift"] = moved
        if used:  # a render pool: its size, and the held-out renders' count
            training.update(pool=used, held_out=held_out)
    save_oracle(oracle, out_path, acc, training, force=force)
    title = f"held-out accuracy ({held_out:,} fresh renders)" if world is not None else f"held-out accuracy (the val split of {data})"
    table = Table(title=title, show_header=True, header_style="bold", title_justify="left")
    table.add_column("variable")
    table.add_column("accuracy", justify="right")
    for c, a in acc.items():  # a continuous variable's score is its mean absolute error
        table.add_row(c, f"MAE {a:.3g}" if c in oracle.config.continuous else f"{100 * a:.2f}%")
    out.print(table)
    out.print(f"wrote {out_path} ({wall / 60:.1f} min)", highlight=False)


@app.command("evaluate")
def evaluate_cmd(
    run: Path = typer.Argument(..., help="A trained run directory."),
    oracle_path: Path = typer.Option(..., "--oracle", help="The world's oracle (causalvae oracle train)."),
    out_path: Path = typer.Option(..., "--out", "-o", help="The report directory: report.json, report.md, figures."),
    data: Optional[Path] = typer.Option(None, "--data", help="Another dataset of the same world (default: the run's); its test split is used."),
    n_generate: Optional[int] = typer.Option(None, "--n-generate", min=1, help="Pictures generated per reference query (default 10000).", show_default=False),
    iw_k: Optional[int] = typer.Option(None, "--iw-k", min=1, help="Samples of the importance-weighted bound (default 100).", show_default=False),
    iw_images: Optional[int] = typer.Option(None, "--iw-images", min=0, help="Test pictures for the importance-weighted bound (default 200).", show_default=False),
    cf_images: Optional[int] = typer.Option(None, "--cf-images", min=0, help="Test pictures per intervention (0: all; default 400).", show_default=False),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, max=2**32 - 1, help="Random seed (default 0).", show_default=False),
    abduct_noise: bool = typer.Option(False, "--abduct-noise/--mean", help="Counterfactuals carry each picture's pixel noise over, or draw the decoder's mean."),
    refine: Optional[int] = typer.Option(None, "--refine", min=0, max=500, help="Steps refining each abducted code z from the encoder's mean toward the mode of the model's posterior (default 0: the encoder's mean).", show_default=False),
    force: bool = typer.Option(False, "--force", help="Replace an earlier report in --out (never another kind of directory)."),
) -> None:
    """Score a trained model against the world's truth: likelihood, generation, counterfactuals,
    axioms. A world without a renderer (an imported dataset) gets every score that needs none."""
    import time

    from causalvae.evaluate import EvalSettings, evaluate_run
    from causalvae.io import check_output_dir
    from causalvae.oracle import load_oracle
    from causalvae.report import summary_rows, write_report

    check_output_dir(out_path, "report", force=force)
    r = _open_run(run, data)
    t0 = time.perf_counter()
    oracle = load_oracle(oracle_path)
    given = {"n_generate": n_generate, "iw_k": iw_k, "iw_images": iw_images, "cf_images": cf_images, "seed": seed, "abduct_noise": abduct_noise, "refine": refine}
    settings = EvalSettings(**{k: v for k, v in given.items() if v is not None and (k, v) != ("cf_images", 0)})  # the defaults are EvalSettings'
    if cf_images == 0:
        settings.cf_images = None  # every test picture
    report = evaluate_run(r, oracle, settings, progress=lambda msg: err.print(f"[dim]{escape(msg)}[/]"))
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    report["model"] = str(run)
    report["oracle"] = {"path": str(oracle_path), "weights_sha256": getattr(oracle, "weights_sha256", None), "held_out_accuracy": getattr(oracle, "held_out_accuracy", {})}
    write_report(report, out_path, force=force)
    table = Table(show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    L = report["likelihood"]
    table.add_row("test ELBO (nats/picture)", f"{L['elbo']:.1f}")
    if L["iw_bound"] is not None:
        table.add_row(f"IW bound k={L['iw_k']}, {L['iw_pictures']} pictures (their ELBO {L['elbo_on_iw_pictures']:.1f})", f"{L['iw_bound']:.1f}")
    table.add_row("reconstruction pixel MAE", f"{report['reconstruction']['pixel_mae']:.2f}")
    for k, v in summary_rows(report).items():
        table.add_row(k.replace("_", " "), f"{v:.4f}")
    out.print(table)
    for item in report["left_out"]:
        out.print(escape(f"left out: {item['section']} ({item['why']})"), highlight=False)
    written = ["report.md", "report.json", "goals.md", *(["factors.md"] if report.get("counterfactual_factors") else []), "generation_tv.png"]
    out.print(f"wrote {out_path}/{', '.join(written)} ({report['wall_s'] / 60:.1f} min)", highlight=False)


@app.command("serve")
def serve_cmd(
    run: Path = typer.Argument(..., help="A trained run directory."),
    oracle_path: Optional[Path] = typer.Option(None, "--oracle", help="An oracle (causalvae oracle train) to read the labels off sampled pictures."),
    data: Optional[Path] = typer.Option(None, "--data", help="Another dataset of the same world for the gallery (default: the run's)."),
    host: str = typer.Option("127.0.0.1", "--host", help="The address to listen on (the default is this machine only)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="The port to listen on."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    refine: int = typer.Option(0, "--refine", min=0, max=500, help="Steps refining each counterfactual's abducted code z toward the mode of the model's posterior (0: the encoder's mean)."),
    max_table_mb: Optional[float] = typer.Option(None, "--max-table-mb", help="Refuse a query whose largest table exceeds this many MB (default: a quarter of the available memory)."),
) -> None:
    """Start the web viewer: the graph, sampling, counterfactuals and queries in a browser page."""
    import uvicorn

    from causalvae.exact import Budget
    from causalvae.store import resolve_device
    from causalvae.viewer import create_app

    resolve_device(device, "--device")  # cpu, cuda (where there is one) or auto: else one error, before anything loads
    if data is not None:  # a dataset named here must open (the viewer would serve without its gallery); the viewer checks it fits the model
        _open_run(run, data).dataset("test")
    viewer = create_app(run, oracle=oracle_path, device=device, data=data, budget=Budget.of(max_table_mb), refine=refine)
    out.print(f"serving {run} at http://{host}:{port}/ (Ctrl+C to stop)", highlight=False)
    uvicorn.run(viewer, host=host, port=port, log_level="warning")


def main() -> None:
    try:
        app()
    except Exception as exc:  # what no command turned into a clear error: one line, never a traceback
        from causalvae.failures import one_line

        err.print(f"[bold red]error:[/] {escape(one_line(exc))}", highlight=False, soft_wrap=True)
        raise SystemExit(2 if isinstance(exc, CausalVAEError) else 1) from None


if __name__ == "__main__":
    main()
