"""Write DeepSCM's demonstrations into docs/morpho.md, asked of a trained morpho model.

DeepSCM (Pawlowski, Castro and Glocker, 2020) showed its Morpho-MNIST model with three
pictures; this script asks them of a model of the morpho world and shows each answer beside
the truth, which this world can draw:

1. do(thickness) on a thin test digit: the model's counterfactuals at five thicknesses
   beside the **true counterfactual renders** (the same source digit redrawn by the
   world's renderer, :func:`causalvae.worlds.morpho.true_counterfactual`), each tile
   captioned with what the oracle reads off it. Intensity follows a new thickness through
   its mechanism with the picture's own U, so the true answer is re-inked too;
2. do(intensity) on the same digit at five grey levels, the same two rows;
3. conditioning against intervening on intensity: pictures drawn given intensity=200 and
   under do(intensity=200), and the thickness the oracle reads off them against its exact
   density under each (the graph's mechanisms, normalised on a grid; the means from the
   mixed engine, :func:`causalvae.mixed.evaluate`);
4. do(digit) on a few test digits beside their stand-in true renders (the source of the
   new class at the same rank: another writer's digit, docs/morpho.md).

The prose is the template ``docs/deepscm.md.in``; its ``$name`` fields are filled from the
outputs computed here, and the result replaces the block of docs/morpho.md between
``<!-- deepscm: ... -->`` and ``<!-- end -->`` (the rest of the page is kept). The pictures
go to ``docs/img/morpho_*.png``::

    python docs/deepscm.py --run runs/morpho --oracle oracles/morpho        # in place
    python docs/deepscm.py --run RUN --oracle ORACLE --out /tmp/morpho-docs  # elsewhere
"""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path
from string import Template

import numpy as np
import torch

from causalvae import continuous as C
from causalvae.ask import read_labels, read_numbers
from causalvae.errors import CausalVAEError
from causalvae.io import atomic_write_bytes, atomic_write_text
from causalvae.metrics import pixel_mae
from causalvae.mixed import evaluate as answer
from causalvae.oracle import load_oracle
from causalvae.pictures import contact_sheet, display, png_bytes, titled
from causalvae.queries import counterfactual, reconstruct, sample
from causalvae.run import Run
from causalvae.worlds.morpho import true_counterfactual

HERE = Path(__file__).resolve().parent
PAGE = HERE / "morpho.md"
TEMPLATE = HERE / "deepscm.md.in"
#: The generated block of the page: its opening line is kept, its body replaced.
BLOCK = re.compile(r"(<!-- deepscm: [^\n]*? -->\n)(.*?)(<!-- end -->)", re.S)
#: The thin digit: the test picture whose measured thickness is nearest THIN pixels.
THIN = 1.5
#: The strips' interventions, inside the range the oracle is trained on (the 0.5% and 99.5%
#: quantiles of each marginal: about 1.25-4.5 px and 74-252 grey levels).
THICKNESSES = (1.5, 2.25, 3.0, 3.75, 4.5)
INTENSITIES = (80.0, 120.0, 160.0, 200.0, 240.0)
#: Conditioning against intervening: the grey level seen or set.
INK = 200.0
#: Pictures shown per sheet of section 3, and test digits of section 4.
SHOWN, DIGITS = 16, 4
#: do(digit=MISS_TO) on MISS_N test pictures of other classes, and the misses shown: 2 is the
#: class whose counterfactuals the morpho recipe's validation report reads worst.
MISS_TO, MISS_N, SHOWN_MISSES = 2, 200, 8
READ = ["thickness", "intensity"]


def _table(header: list[str], rows: list[list[str]], numeric: int = 1) -> str:
    """A Markdown table; its last ``numeric`` columns are right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i >= len(header) - numeric else "---" for i in range(len(header))) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _tiles(images) -> np.ndarray:
    return display(images, False, channels_first=True)


def pick_thin(test) -> int:
    """The position (in the test split) of the picture whose thickness, as measured on the
    written picture (``truth_thickness_measured.npy``), is nearest :data:`THIN` pixels."""
    path = test.root / "truth_thickness_measured.npy"
    if not path.exists():
        raise CausalVAEError(f"{test.root}: no truth_thickness_measured.npy (a dataset written by `causalvae generate morpho` has one)")
    measured = np.load(path, allow_pickle=False)[test.indices]
    return int(np.argmin(np.abs(measured - THIN)))


def strip(vae, oracle, test, k: int, name: str, levels, seed: int, img: Path, refine: int = 0) -> dict:
    """One test picture had ``name`` been each of ``levels``: the model's counterfactuals
    (top row, after its reconstruction) beside the true counterfactual renders (bottom row,
    after the picture itself), each tile captioned with what the oracle reads off it.
    Returns the numbers: per level the true counterfactual values, both readings and the
    pixel MAE; their means; the reconstruction's pixel MAE."""
    images, labels = test.batch([k])
    cont = test.continuous_batch([k])
    values, noise = test.truth_table([k])
    style = test.truth_style[test.indices[[k]]]
    recon = reconstruct(vae, images, labels, cont, refine=refine)
    model, true, want = [], [], []
    for level in levels:
        model.append(counterfactual(vae, images, labels, {name: level}, continuous=cont, seed=seed, refine=refine).images)
        cf, pictures = true_counterfactual(values, noise, style, {name: level})
        true.append(torch.from_numpy(pictures))
        want.append([float(cf[c][0]) for c in READ])
    model, true, want = torch.cat(model), torch.cat(true), np.array(want)
    read_model, read_true = read_numbers(oracle, model, READ), read_numbers(oracle, true, READ)
    read_factual = read_numbers(oracle, torch.cat([images, recon]), READ)
    mae = pixel_mae(model.numpy(), true.numpy())
    recon_mae = float(pixel_mae(recon.numpy(), images.numpy())[0])
    short = {"thickness": "t", "intensity": "i"}[name]

    def reads(r):
        return f"reads t={r[0]:.2f} i={r[1]:.0f}"

    tiles = np.concatenate([_tiles(recon), _tiles(model), _tiles(images), _tiles(true)])
    captions = [f"model: recon\n{reads(read_factual[1])}"]
    captions += [f"model, {short}={lv:g}\n{reads(r)}" for lv, r in zip(levels, read_model)]
    captions += [f"factual t={values['thickness'][0]:.2f} i={values['intensity'][0]:.0f}\n{reads(read_factual[0])}"]
    captions += [f"true t={w[0]:.2f} i={w[1]:.0f}\n{reads(r)}" for w, r in zip(want, read_true)]
    sheet = contact_sheet(tiles, captions, len(levels) + 1, 3)
    digit = int(values["digit"][0])
    atomic_write_bytes(img / f"morpho_cf_{name}.png", png_bytes(titled(sheet, f"test digit {k} (a {digit}), do({name}): top the model, bottom the true render; captions: what the oracle reads")))
    rows = [[f"do({name}={lv:g})", f"{w[0]:.2f} px, {w[1]:.1f}", f"{rm[0]:.2f} px, {rm[1]:.1f}", f"{rt[0]:.2f} px, {rt[1]:.1f}", f"{m:.2f}"]
            for lv, w, rm, rt, m in zip(levels, want, read_model, read_true, mae)]
    err_model, err_true = np.abs(read_model - want).mean(0), np.abs(read_true - want).mean(0)
    return {
        "want": want, "read_model": read_model, "read_true": read_true, "pixel_mae": mae, "recon_mae": recon_mae,
        "table": _table(["intervention", "true counterfactual (thickness, intensity)", "oracle reads the model's",
                         "oracle reads the true render", "pixel MAE, model vs true"], rows, 4),
        "err_model_t": f"{err_model[0]:.2f}", "err_model_i": f"{err_model[1]:.1f}",
        "err_true_t": f"{err_true[0]:.2f}", "err_true_i": f"{err_true[1]:.1f}",
        "mae": f"{mae.mean():.2f}", "recon": f"{recon_mae:.2f}",
    }


def thickness_density(graph, grid: np.ndarray, ink: float | None = None) -> np.ndarray:
    """The exact density of thickness on ``grid``: given intensity = ``ink``, p(t) p(ink | t)
    normalised over the grid (Bayes' rule with the graph's mechanism); without, its prior p(t),
    which is also its density under do(intensity): the intervention cuts intensity off from
    its cause and tells nothing about it."""
    log = graph["thickness"].law.logpdf(grid)
    if ink is not None:
        log = log + C.log_density(graph["intensity"], np.full_like(grid, float(ink)), {"thickness": grid})
    dens = np.exp(log - log[np.isfinite(log)].max())
    return dens / np.trapezoid(dens, grid)


def see_versus_do(vae, oracle, graph, n: int, seed: int, img: Path) -> dict:
    """Pictures drawn given intensity=INK and under do(intensity=INK); the thickness the
    oracle reads off them against its exact density under each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    queries = {"see": ({"intensity": INK}, {}), "do": ({}, {"intensity": INK})}
    grid = np.linspace(0.5, 7.0, 2601)[1:]
    out = {}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=110, sharey=True)
    for ax, (kind, (evidence, do)) in zip(axes, queries.items()):
        drawn = sample(vae, n, evidence, do, seed=seed if kind == "see" else seed + 1)
        read = read_numbers(oracle, drawn.images, READ)
        dens = thickness_density(graph, grid, evidence.get("intensity"))
        text = f"intensity={INK:g}" if evidence else f"do(intensity={INK:g})"
        exact_mean = answer(graph, f"E(thickness | {text})").value
        out[kind] = {"exact": exact_mean, "drawn": float(drawn.values["thickness"].mean()),
                     "read": float(read[:, 0].mean()), "read_intensity": float(read[:, 1].mean())}
        shown = min(SHOWN, n)
        captions = [f"t={t:.2f}\nreads t={r:.2f}" for t, r in zip(drawn.values["thickness"][:shown], read[:shown, 0])]
        sheet = contact_sheet(_tiles(drawn.images[:shown]), captions, 8, 2)
        atomic_write_bytes(img / f"morpho_{kind}_intensity.png", png_bytes(titled(sheet, f"{'given ' if evidence else ''}{text}: the thickness drawn, and what the oracle reads")))
        ax.hist(read[:, 0], bins=40, range=(0.5, 5.5), density=True, color="#4c72b0", alpha=0.45, label=f"oracle reads {n} drawn pictures")
        ax.plot(grid, dens, color="#c44e52", lw=1.5, label="exact density")
        ax.axvline(exact_mean, color="#c44e52", ls="--", lw=1, label="exact mean")
        ax.axvline(out[kind]["read"], color="#4c72b0", ls="--", lw=1, label="mean read")
        ax.set_title(f"thickness | {text}\nexact mean {exact_mean:.2f} px, mean read {out[kind]['read']:.2f} px", fontsize=9)
        ax.set_xlabel("thickness (px)")
        ax.set_xlim(0.5, 5.5)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("density")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(img / "morpho_see_do_thickness.png", buf.getvalue())
    return out


def digit_strips(vae, oracle, test, seed: int, img: Path, refine: int = 0) -> dict:
    """do(digit) on the first test picture of each of the first :data:`DIGITS` classes, to
    the class five away: the picture, the model's counterfactual, the stand-in true render."""
    values_all, _ = test.truth_table()
    picks = [int(np.flatnonzero(values_all["digit"] == d)[0]) for d in range(10) if (values_all["digit"] == d).any()][:DIGITS]
    tiles, captions, rows, right = [], [], [], 0
    for k in picks:
        images, labels = test.batch([k])
        values, noise = test.truth_table([k])
        style = test.truth_style[test.indices[[k]]]
        to = (int(values["digit"][0]) + 5) % 10
        model = counterfactual(vae, images, labels, {"digit": str(to)}, continuous=test.continuous_batch([k]), seed=seed, refine=refine).images
        _, true = true_counterfactual(values, noise, style, {"digit": str(to)})
        read = read_labels(oracle, torch.cat([images, model, torch.from_numpy(true)]), ["digit"])[:, 0]
        mae = float(pixel_mae(model.numpy(), true)[0])
        right += int(read[1] == to)
        tiles += [_tiles(images)[0], _tiles(model)[0], _tiles(true)[0]]
        captions += [f"factual, a {values['digit'][0]}\nreads {read[0]}", f"model, do(digit={to})\nreads {read[1]}", f"stand-in, a {to}\nreads {read[2]}"]
        rows.append([f"{k} (a {values['digit'][0]})", f"do(digit={to})", str(read[1]), str(read[2]), f"{mae:.2f}"])
    sheet = contact_sheet(np.stack(tiles), captions, 6, 3)
    atomic_write_bytes(img / "morpho_cf_digit.png", png_bytes(titled(sheet, "do(digit): the picture, the model's counterfactual, the stand-in true render")))
    return {
        "digit_table": _table(["test picture", "intervention", "oracle reads the model's", "oracle reads the stand-in", "pixel MAE, model vs stand-in"], rows, 3),
        "digit_right": str(right),
        "digit_count": str(len(picks)),
    }


def digit_misses(vae, oracle, test, seed: int, img: Path, refine: int = 0, to: int = MISS_TO, n: int = MISS_N, world=None,
                 name: str = "morpho_cf_digit_misses.png") -> dict:
    """do(digit=to) on the first ``n`` test pictures of another class, read by the oracle: how
    many of the model's counterfactuals and of their stand-in true renders it misreads, what it
    reads instead, and a sheet ``img/name`` of the first :data:`SHOWN_MISSES` the model's
    misses (the picture, the model's counterfactual, the stand-in). ``world``: the morpho
    world whose sources the test pictures redraw (default ``morpho``)."""
    values_all, _ = test.truth_table()
    picks = np.flatnonzero(values_all["digit"] != to)[:n]
    images, labels = test.batch(picks)
    values, noise = test.truth_table(picks)
    style = test.truth_style[test.indices[picks]]
    model = counterfactual(vae, images, labels, {"digit": str(to)}, continuous=test.continuous_batch(picks), seed=seed, refine=refine).images
    _, true = true_counterfactual(values, noise, style, {"digit": str(to)}, world=world)
    read = read_labels(oracle, torch.cat([model, torch.from_numpy(true)]), ["digit"])[:, 0]
    read_model, read_true = read[: len(picks)], read[len(picks):]
    missed = np.flatnonzero(read_model != to)
    instead = np.bincount(read_model[missed], minlength=10)
    tiles, captions = [], []
    for j in missed[:SHOWN_MISSES]:
        tiles += [_tiles(images[j : j + 1])[0], _tiles(model[j : j + 1])[0], _tiles(true[j : j + 1])[0]]
        captions += [f"test digit {picks[j]}, a {values['digit'][j]}", f"model, do(digit={to})\nreads {read_model[j]}", f"stand-in, a {to}\nreads {read_true[j]}"]
    if tiles:
        sheet = contact_sheet(np.stack(tiles), captions, 6, 3)
        atomic_write_bytes(img / name, png_bytes(titled(sheet, f"do(digit={to}) read as another digit: the picture, the model's counterfactual, the stand-in")))
    order = [d for d in np.argsort(-instead, kind="stable") if instead[d]]
    return {
        "miss_to": str(to), "miss_n": str(len(picks)), "miss_model": str(len(missed)), "miss_truth": str(int((read_true != to).sum())),
        "miss_instead": ", ".join(f"{d} ({instead[d]})" for d in order) or "none",
        "miss_shown": str(min(len(missed), SHOWN_MISSES)),
    }


def demonstrations(run_path: str, oracle_path: str, out: Path, n: int = 500, seed: int = 0, data: str | None = None, refine: int = 0) -> tuple[Path, dict[str, str]]:
    """Ask the run's model DeepSCM's questions; write the pictures to ``out/img/`` and
    ``out/morpho.md`` (docs/morpho.md with its generated block filled). Returns the page's
    path and the fields filled in."""
    page = PAGE.read_text()
    if len(BLOCK.findall(page)) != 1:
        raise CausalVAEError(f"{PAGE.name}: the page must hold one block between <!-- deepscm: ... --> and <!-- end --> to fill")
    run = Run.open(run_path, data=data)
    if run.world.name != "morpho":
        raise CausalVAEError(f"{run_path}: a model of the {run.world.name} world; the morpho page needs a morpho model")
    vae, oracle = run.model, load_oracle(oracle_path)
    graph = run.dataset().graph  # the world's own graph: the truth the answers are judged by
    test = run.dataset("test", truth=True)
    if len(test) == 0:
        raise CausalVAEError(f"{run.dataset_path}: the test split is empty")
    img = out / "img"
    img.mkdir(parents=True, exist_ok=True)
    k = pick_thin(test)
    values, noise = test.truth_table([k])
    fields = {"run": Path(run_path).name, "oracle": Path(oracle_path).name, "refine": str(refine), "thin": str(k), "thin_digit": str(int(values["digit"][0])),
              "thin_t": f"{values['thickness'][0]:.2f}", "thin_i": f"{values['intensity'][0]:.1f}", "thin_u": f"{noise['intensity'][0]:+.2f}"}
    for name, levels in (("thickness", THICKNESSES), ("intensity", INTENSITIES)):
        s = strip(vae, oracle, test, k, name, levels, seed, img, refine)
        fields |= {f"{name}_{key}": val for key, val in s.items() if isinstance(val, str)}
        if name == "thickness":  # the true intensity at the thinnest and thickest: its mechanism, the picture's own U
            fields["thickness_i_lo"], fields["thickness_i_hi"] = f"{s['want'][0, 1]:.1f}", f"{s['want'][-1, 1]:.1f}"
    sd = see_versus_do(vae, oracle, graph, n, seed, img)
    for kind in ("see", "do"):
        fields |= {f"{kind}_exact": f"{sd[kind]['exact']:.3f}", f"{kind}_drawn": f"{sd[kind]['drawn']:.3f}",
                   f"{kind}_read": f"{sd[kind]['read']:.3f}", f"{kind}_read_i": f"{sd[kind]['read_intensity']:.1f}"}
    fields |= {"n": str(n), "ink": f"{INK:g}", "prior_mean": f"{graph['thickness'].law.mean():.3f}",
               "gap_exact": f"{sd['see']['exact'] - sd['do']['exact']:.3f}", "gap_read": f"{sd['see']['read'] - sd['do']['read']:.3f}"}
    fields |= digit_strips(vae, oracle, test, seed, img, refine)
    fields |= digit_misses(vae, oracle, test, seed, img, refine)
    body = Template(TEMPLATE.read_text()).substitute(fields)
    text = BLOCK.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(3), page, count=1)
    atomic_write_text(out / "morpho.md", text)
    return out / "morpho.md", fields


def main(argv=None) -> int:
    def _steps(text: str) -> int:
        if not text.isdigit():
            raise argparse.ArgumentTypeError(f"--refine must be a whole number of steps >= 0, got {text!r}")
        return int(text)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a trained morpho run directory")
    parser.add_argument("--oracle", required=True, help="an oracle of the morpho world (it reads thickness and intensity)")
    parser.add_argument("--out", default=str(HERE), help="where morpho.md and img/ go (default: docs/)")
    parser.add_argument("--data", default=None, help="the dataset, if not the one the run records")
    parser.add_argument("--n", type=int, default=500, help="pictures drawn given intensity and under do(intensity)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--refine", type=_steps, default=0, help="steps refining each abducted code (causalvae counterfactual --refine)")
    args = parser.parse_args(argv)
    try:
        path, _ = demonstrations(args.run, args.oracle, Path(args.out), args.n, args.seed, args.data, args.refine)
    except CausalVAEError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
