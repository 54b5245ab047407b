"""Write docs/course.md: the course notebooks' questions answered by a trained sprites model.

The course's causal VAE on dSprites asked four kinds of question, judged by eye in a slider.
This script asks them of a model of the sprites world and writes what it answers, with the
exact answers of the graph beside it:

1. conditioning on a shape and a scale: pictures drawn given them, and the shares of the
   other factors the oracle reads off them beside the exact posterior;
2. an intervention on scale against conditioning on it: the exact tables of shape and posY
   under each (they differ: hearts tend to be large, so seeing a large sprite says it is
   likely a heart, while making it large does not), beside the shares read off drawn
   pictures;
3. a counterfactual strip: one test sprite, had it been a heart and had it been larger, each
   beside the true render of the same labels with the sprite's own recorded style;
4. a traversal of z: each coordinate of z swept with the labels held, and the grid class
   (inside the labels' bins) each picture matches best. z holds only what the graph does
   not name, so the labels the oracle reads stay put and only the offsets move.

The prose is the template ``docs/course.md.in``; ``$name`` fields are filled from the
outputs computed here (the pictures go to ``docs/img/course_*.png``)::

    python docs/course.py --run runs/sprites --oracle oracles/sprites      # make course
    python docs/course.py --run RUN --oracle ORACLE --out /tmp/course      # elsewhere
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from string import Template

import numpy as np
import torch

from causalvae import worlds
from causalvae.ask import read_labels
from causalvae.errors import CausalVAEError
from causalvae.exact import query
from causalvae.io import atomic_write_bytes, atomic_write_text
from causalvae.metrics import iou
from causalvae.metrics.effectiveness import read_right
from causalvae.metrics.distributions import empirical, total_variation
from causalvae.oracle import load_oracle
from causalvae.pictures import contact_sheet, display, named_value, titled
from causalvae.queries import counterfactual, sample
from causalvae.run import Run

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "course.md.in"
#: The conditioning of section 1 and the value of scale of section 2.
GIVEN = {"shape": "heart", "scale": "1.0"}
LARGE = "1.0"
#: Traversal of z: each coordinate from -SPAN to SPAN in STEPS steps.
SPAN, STEPS = 2.5, 7
#: The labels held during the traversal (value names of the sprites graph).
HELD = {"shape": "ellipse", "scale": "1.0", "orientation": "1", "posX": "3", "posY": "4"}


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _table(header: list[str], rows: list[list[str]], numeric: int = 1) -> str:
    """A Markdown table; its last ``numeric`` columns are right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i >= len(header) - numeric else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _caption(graph, values: dict[str, np.ndarray], i: int, names) -> str:
    """The values as a caption shows them: a word alone, a number with its name (scale=0.9)."""
    return " ".join(named_value(n, str(graph[n].values[int(values[n][i])])) for n in names)


def shares(oracle, graph, images: torch.Tensor, names: list[str]) -> dict[str, np.ndarray]:
    """The oracle's reading of ``names`` off ``images`` as empirical distributions."""
    read = read_labels(oracle, images, names)
    return {n: empirical(read[:, k], graph.card(n)) for k, n in enumerate(names)}


def conditioning(vae, oracle, graph, n: int, seed: int, img: Path) -> dict:
    """Section 1: P(. | shape=heart, scale=1.0), drawn and exact."""
    names = [v for v in graph.names if v not in GIVEN]
    drawn = sample(vae, n, GIVEN, {}, seed=seed)
    read = shares(oracle, graph, drawn.images, names)
    rows, tvs = [], {}
    for v in names:
        exact = query(graph, [v], GIVEN).table
        tvs[v] = total_variation(read[v], exact)
        rows.append([v, " ".join(f"{p:.2f}" for p in exact), " ".join(f"{p:.2f}" for p in read[v]), f"{tvs[v]:.3f}"])
    shown = min(16, n)
    sheet = contact_sheet(display(drawn.images[:shown], True, channels_first=True), [_caption(graph, drawn.values, i, graph.names) for i in range(shown)], 8, 2)
    atomic_write_bytes(img / "course_given.png", _png(titled(sheet, "given shape=heart, scale=1.0 (captions: shape scale orientation posX posY)")))
    read_given = read_labels(oracle, drawn.images, list(GIVEN))
    held = float((read_given == np.array([graph[k].index(v) for k, v in GIVEN.items()])).all(1).mean())
    return {
        "given_n": str(n),
        "given_table": _table(["factor", "exact P(factor \\| shape=heart, scale=1.0)", f"read off {n} drawn pictures", "TV"], rows),
        "given_worst_tv": f"{max(tvs.values()):.3f}",
        "given_worst_factor": max(tvs, key=tvs.get),
        "given_readback": f"{100 * held:.1f}%",
    }


def do_versus_see(vae, oracle, graph, n: int, seed: int, img: Path) -> dict:
    """Section 2: shape and posY given scale=1.0 against under do(scale=1.0)."""
    out, rows = {}, []
    draws = {"see": sample(vae, n, {"scale": LARGE}, {}, seed=seed), "do": sample(vae, n, {}, {"scale": LARGE}, seed=seed + 1)}
    for v in ("shape", "posY"):
        for kind, (evidence, do) in {"see": ({"scale": LARGE}, {}), "do": ({}, {"scale": LARGE})}.items():
            exact = query(graph, [v], evidence, do).table
            read = shares(oracle, graph, draws[kind].images, [v])[v]
            label = f"P({v} \\| scale={LARGE})" if kind == "see" else f"P({v} \\| do(scale={LARGE}))"
            rows.append([label, " ".join(f"{p:.3f}" for p in exact), " ".join(f"{p:.3f}" for p in read), f"{total_variation(read, exact):.3f}"])
            out[f"{kind}_{v}_exact"] = exact
            out[f"{kind}_{v}_read"] = read
    heart = graph["shape"].index("heart")
    prior = query(graph, ["shape"]).table
    for kind, title in (("see", f"given scale={LARGE}"), ("do", f"do(scale={LARGE})")):
        d = draws[kind]
        sheet = contact_sheet(display(d.images[:16], True, channels_first=True), [_caption(graph, d.values, i, ["shape", "posY"]) for i in range(min(16, n))], 8, 2)
        atomic_write_bytes(img / f"course_{kind}_scale.png", _png(titled(sheet, f"{title} (captions: shape posY)")))
    return {
        "dosee_n": str(n),
        "dosee_table": _table(["distribution", "exact", f"read off {n} drawn pictures", "TV"], rows),
        "see_heart": f"{out['see_shape_exact'][heart]:.3f}",
        "do_heart": f"{out['do_shape_exact'][heart]:.3f}",
        "prior_heart": f"{prior[heart]:.3f}",
        "see_heart_read": f"{out['see_shape_read'][heart]:.3f}",
        "do_heart_read": f"{out['do_shape_read'][heart]:.3f}",
        "posY_same": "the same" if np.allclose(out["see_posY_exact"], out["do_posY_exact"]) else "different",
    }


def pick_sprite(test, graph) -> int:
    """The first test picture of a square of scale 0.5 to 0.7 (so that a heart and a larger
    sprite both differ from it), else the first picture."""
    cols = list(test.manifest["truth_columns"])
    tv = test.truth_values[test.indices]
    small = np.flatnonzero((tv[:, cols.index("shape")] == graph["shape"].index("square")) & (tv[:, cols.index("scale")] <= 2))
    return int(small[0]) if len(small) else 0


def strip(vae, graph, test, renderer, seed: int, img: Path, refine: int = 0) -> dict:
    """Section 3: one sprite had it been a heart, had it been larger, beside the true renders."""
    k = pick_sprite(test, graph)
    images, labels = test.batch([k])
    cols = list(test.manifest["truth_columns"])
    style = test.truth_style[test.indices[k : k + 1]]
    factual = {v: test.truth_values[test.indices[k : k + 1], cols.index(v)].astype(np.int64) for v in cols}
    tiles, captions, rows = [display(images[0], True, channels_first=True)], [f"factual\n{_caption(graph, factual, 0, graph.names)}"], []
    for name, do in (("a heart", {"shape": "heart"}), ("larger", {"scale": LARGE})):
        cf = counterfactual(vae, images, labels, do, seed=seed, refine=refine)
        values = {v: cf.values[v][:1] for v in graph.names}
        true = renderer.render(values, style)
        score_plain = float(iou(true, cf.images.numpy())[0])
        score = float(renderer.best_iou(values, style, cf.images.numpy())[0])
        tiles += [display(cf.images[0], True, channels_first=True), display(true[0], True, channels_first=True)]
        label = _caption(graph, values, 0, graph.names)
        captions += [f"had it been {name}: model\n{label}", f"true render\nIoU {score:.2f}"]
        rows.append([f"had it been {name}: do({', '.join(f'{a}={b}' for a, b in do.items())})", label, f"{score:.3f}", f"{score_plain:.3f}"])
    sheet = contact_sheet(np.stack(tiles), captions, 5, 3)
    atomic_write_bytes(img / "course_counterfactual.png", _png(titled(sheet, f"test sprite {k}: the model's counterfactuals beside the true renders")))
    return {
        "cf_index": str(k),
        "cf_factual": _caption(graph, factual, 0, graph.names),
        "cf_table": _table(["counterfactual", "its labels", "IoU to the true render, symmetry-aware", "plain IoU"], rows, 2),
    }


def best_offsets(renderer, held: dict[str, np.ndarray], pictures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each picture, the within-bin grid class (orientation, posX and posY offsets) whose
    true render it matches best, and that IoU: ``(N, 3)`` offsets and ``(N,)`` IoUs."""
    from causalvae.worlds.sprites import dsprites

    fields = renderer.style_fields
    sizes = [dsprites.GRAPH_BINS[f.removesuffix("_offset")] for f in fields]
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), -1).reshape(-1, len(sizes)).astype(np.float64)
    renders = renderer.render({v: np.repeat(a[:1], len(grid)) for v, a in held.items()}, grid)
    offsets, scores = [], []
    for p in pictures:
        s = iou(renders, np.repeat(p[None], len(grid), axis=0))
        offsets.append(grid[int(np.argmax(s))].astype(np.int64))
        scores.append(float(s.max()))
    return np.stack(offsets), np.array(scores)


@torch.no_grad()
def traversal(vae, oracle, graph, renderer, img: Path) -> dict:
    """Section 4: each coordinate of z swept with the labels held."""
    d = vae.config.z_dim
    steps = np.linspace(-SPAN, SPAN, STEPS)
    z = torch.zeros(d * STEPS, d)
    for j in range(d):
        z[j * STEPS : (j + 1) * STEPS, j] = torch.from_numpy(steps).float()
    held = {v: np.full(len(z), graph[v].index(x), np.int64) for v, x in HELD.items()}
    parents = {p: torch.from_numpy(held[p]) for p in vae.image_parents}
    from causalvae.queries import to_pixels

    pictures = to_pixels(vae, vae.decoder(z, vae.parents_onehot(parents)))
    cols = list(vae.label_columns)
    read = read_labels(oracle, pictures, cols)
    # Orientation is read modulo the shape's symmetry (an ellipse turned half a turn is the
    # same picture), as the evaluation report reads it: the offsets are z's choice, so any.
    world = worlds.get("sprites")
    accepted = {k: world.accepted(c, graph.card(c), held, None) for k, c in enumerate(cols) if c in world.ambiguous}
    kept = float(read_right(read, np.stack([held[c] for c in cols], 1), accepted).all(1).mean())
    offsets, scores = best_offsets(renderer, held, pictures.numpy())
    rows = []
    for j in range(d):
        o = offsets[j * STEPS : (j + 1) * STEPS]
        moved = [f.removesuffix("_offset") for k, f in enumerate(renderer.style_fields) if len(set(o[:, k].tolist())) > 1]
        rows.append([f"z{j}", " ".join("/".join(str(x) for x in row) for row in o.tolist()), ", ".join(moved) or "nothing",
                     f"{float(scores[j * STEPS : (j + 1) * STEPS].mean()):.2f}"])
    captions = [f"z{j}={steps[i]:+.1f}" for j in range(d) for i in range(STEPS)]
    sheet = contact_sheet(display(pictures, True, channels_first=True), captions, STEPS, 2)
    held_text = ", ".join(f"{k}={v}" for k, v in HELD.items())
    atomic_write_bytes(img / "course_traversal.png", _png(titled(sheet, f"each row one coordinate of z from -{SPAN} to {SPAN}; labels held: {held_text}")))
    return {
        "trav_held": held_text,
        "trav_kept": f"{100 * kept:.1f}%",
        "trav_pictures": str(len(z)),
        "trav_dims": str(d),
        "trav_iou": f"{float(scores.mean()):.2f}",
        "trav_table": _table(["coordinate", "best-matching offsets (orientation/posX/posY) from -2.5 to +2.5", "what moves", "mean IoU of the match"], rows),
    }


def course(run_path: str, oracle_path: str, out: Path, n: int = 2000, seed: int = 0, refine: int = 0) -> Path:
    """Answer the course's questions with the run's model and write ``out/course.md`` and its
    pictures in ``out/img/`` (``refine``: the counterfactuals' abduction, as ``--refine``).
    Returns the page's path."""
    run = Run.open(run_path)
    if run.world.name != "sprites":
        raise CausalVAEError(f"{run_path}: a model of the {run.world.name} world; the course page needs a sprites model")
    vae, oracle = run.model, load_oracle(oracle_path)
    graph = vae.current_graph()
    test = run.dataset("test", truth=True)
    renderer = worlds.get("sprites").renderer()
    img = out / "img"
    img.mkdir(parents=True, exist_ok=True)
    fields = {"run": Path(run_path).name, "model_labels": ", ".join(vae.label_columns), "z_dim": str(vae.config.z_dim), "refine": str(refine)}
    fields |= conditioning(vae, oracle, graph, n, seed, img)
    fields |= do_versus_see(vae, oracle, graph, n, seed + 10, img)
    fields |= strip(vae, graph, test, renderer, seed, img, refine)
    fields |= traversal(vae, oracle, graph, renderer, img)
    page = Template(TEMPLATE.read_text()).substitute(fields)
    atomic_write_text(out / "course.md", page)
    return out / "course.md"


def main(argv=None) -> int:
    def _steps(text: str) -> int:
        if not text.isdigit():
            raise argparse.ArgumentTypeError(f"--refine must be a whole number of steps >= 0, got {text!r}")
        return int(text)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a trained sprites run directory")
    parser.add_argument("--oracle", required=True, help="an oracle of the sprites world")
    parser.add_argument("--out", default=str(HERE), help="where course.md and img/ go (default: docs/)")
    parser.add_argument("--n", type=int, default=2000, help="pictures drawn per distribution")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--refine", type=_steps, default=0, help="steps refining each abducted code (causalvae counterfactual --refine)")
    args = parser.parse_args(argv)
    try:
        path = course(args.run, args.oracle, Path(args.out), args.n, args.seed, args.refine)
    except CausalVAEError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
