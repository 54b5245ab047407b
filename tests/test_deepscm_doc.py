"""docs/deepscm.py asks DeepSCM's questions of a tiny morpho model and fills the generated
block of docs/morpho.md: the pictures exist, the rest of the page is kept, and the numbers
filled in are the exact answers and the ones the script computed."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import integrate, special, stats

ROOT = Path(__file__).resolve().parent.parent
PICTURES = ("cf_thickness", "cf_intensity", "see_intensity", "do_intensity", "see_do_thickness", "cf_digit")


def _module():
    spec = importlib.util.spec_from_file_location("deepscm", ROOT / "docs" / "deepscm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    from causalvae.generate import generate
    from causalvae.oracle import save_oracle, train_oracle
    from causalvae.train import TrainConfig, fit

    root = tmp_path_factory.mktemp("deepscm")
    data = generate("morpho", root / "data", 80, seed=3)
    run = fit(TrainConfig(data=str(data), out=str(root / "run"), max_steps=2, batch_size=16, width=8, depth=3, hidden=16, z_dim=2,
                          cf_weight=0.0, threads=1), progress=False)
    oracle, scores = train_oracle("morpho", steps=2, batch_size=8, held_out=8, pool=16, seed=1)
    save_oracle(oracle, root / "oracle", scores, {"steps": 2})
    deepscm = _module()
    page, fields = deepscm.demonstrations(str(run), str(root / "oracle"), root / "docs", n=20)
    return deepscm, run, root, page, fields


def _exact_mean_given_intensity(ink: float) -> float:
    """E(thickness | intensity=ink) of DeepSCM's graph by scipy's adaptive quadrature:
    p(t | i) is proportional to Gamma(10, rate 5)(t - 0.5) times the density of i given t,
    N(logit((i - 64) / 191); 2 (t - 2.5), 0.5) (the Jacobian of i does not depend on t)."""
    a = special.logit((ink - 64) / 191)

    def w(t):
        return stats.gamma.pdf(t - 0.5, 10, scale=1 / 5) * stats.norm.pdf(a, 2 * (t - 2.5), 0.5)

    return integrate.quad(lambda t: t * w(t), 0.5, 12)[0] / integrate.quad(w, 0.5, 12)[0]


@pytest.mark.slow  # about 15 s: 80 digits and 30 true renders at 35 ms each, two tiny trainings
def test_the_page_is_filled_and_the_pictures_written(written):
    deepscm, _, root, page, fields = written
    for name in PICTURES:
        with Image.open(root / "docs" / "img" / f"morpho_{name}.png") as im:
            assert im.width > 300 and im.height > 150
    text, source = page.read_text(), deepscm.PAGE.read_text()
    head = source[: source.index("<!-- deepscm:")]
    tail = source[source.index("<!-- end -->", source.index("<!-- deepscm:")):]
    assert text.startswith(head) and text.endswith(tail)  # the prose outside the block is kept
    block = text[len(head): len(text) - len(tail)]
    assert "Not yet written" not in block and "$" not in block  # every field filled
    assert block.count("\n| do(thickness=") == len(deepscm.THICKNESSES) and block.count("\n| do(intensity=") == len(deepscm.INTENSITIES)
    for name in PICTURES:
        assert f"(img/morpho_{name}.png)" in block


@pytest.mark.slow
def test_the_exact_answers_are_the_graphs(written):
    deepscm, _, _, page, fields = written
    text = " ".join(page.read_text().split())
    # Seeing a bright stroke makes it thicker; inking it does not move thickness off its prior (mean 0.5 + 10 / 5).
    seen = _exact_mean_given_intensity(deepscm.INK)
    assert float(fields["see_exact"]) == pytest.approx(seen, abs=1e-3) and seen == pytest.approx(2.879, abs=1e-3)
    assert fields["do_exact"] == "2.500" and fields["prior_mean"] == "2.500"
    assert f"E(thickness | intensity=200) = {fields['see_exact']} px" in text
    assert f"E(thickness | do(intensity=200)) = {fields['do_exact']} px" in text
    assert float(fields["gap_exact"]) == pytest.approx(seen - 2.5, abs=1e-3)
    assert float(fields["gap_read"]) == pytest.approx(float(fields["see_read"]) - float(fields["do_read"]), abs=2e-3)
    # The density on the figure is the same distribution: its mean on the grid is the engine's.
    from causalvae.graph import Graph

    graph = Graph.load("morpho")
    grid = np.linspace(0.5, 7.0, 2601)[1:]
    for ink, mean in ((deepscm.INK, seen), (None, 2.5)):
        dens = deepscm.thickness_density(graph, grid, ink)
        assert np.trapezoid(dens, grid) == pytest.approx(1.0) and np.trapezoid(grid * dens, grid) == pytest.approx(mean, abs=1e-4)


@pytest.mark.slow
def test_the_strips_numbers_are_the_true_counterfactuals_and_the_ones_computed(written):
    from causalvae.metrics import pixel_mae
    from causalvae.queries import counterfactual
    from causalvae.run import Run
    from causalvae.worlds.morpho import true_counterfactual

    deepscm, run_path, _, page, fields = written
    run = Run.open(run_path)
    test = run.dataset("test", truth=True)
    k = int(fields["thin"])
    measured = np.load(test.root / "truth_thickness_measured.npy", allow_pickle=False)[test.indices]
    assert abs(measured[k] - deepscm.THIN) == pytest.approx(np.abs(measured - deepscm.THIN).min())  # the thinnest to hand
    values, noise = test.truth_table([k])
    u = float(noise["intensity"][0])
    # Intensity follows a new thickness through its mechanism, with the picture's own U.
    for key, t in (("thickness_i_lo", min(deepscm.THICKNESSES)), ("thickness_i_hi", max(deepscm.THICKNESSES))):
        assert float(fields[key]) == pytest.approx(64 + 191 / (1 + math.exp(-(2 * (t - 2.5) + 0.5 * u))), abs=0.051)
    text = page.read_text()
    for v in deepscm.INTENSITIES:  # do(intensity) keeps the thickness: intensity has no children
        assert f"| do(intensity={v:g}) | {values['thickness'][0]:.2f} px, {v:.1f} |" in text
    # The mean pixel MAE on the page is the model's counterfactuals against the true renders, asked again.
    images, labels = test.batch([k])
    cont = test.continuous_batch([k])
    style = test.truth_style[test.indices[[k]]]
    mae = []
    for t in deepscm.THICKNESSES:
        model = counterfactual(run.model, images, labels, {"thickness": t}, continuous=cont, seed=0).images
        _, true = true_counterfactual(values, noise, style, {"thickness": t})
        mae.append(pixel_mae(model.numpy(), true)[0])
    assert fields["thickness_mae"] == f"{np.mean(mae):.2f}"
    assert f"The model's pictures are {fields['thickness_mae']} grey levels per pixel from the true renders" in " ".join(text.split())


def test_a_page_without_the_block_and_a_missing_run_are_refused(tmp_path, monkeypatch):
    deepscm = _module()
    with pytest.raises(SystemExit, match="error: .*no such model directory"):
        deepscm.main(["--run", str(tmp_path / "nothing"), "--oracle", str(tmp_path / "nothing"), "--out", str(tmp_path)])
    text = deepscm.PAGE.read_text()
    assert len(deepscm.BLOCK.findall(text)) == 1  # docs/morpho.md holds exactly one block to fill
    # The block names the command that fills it, with the Makefile's refinement setting.
    import re

    refine = re.search(r"^REFINE := (\d+)$", (Path(__file__).parents[1] / "Makefile").read_text(), re.M).group(1)
    assert deepscm.BLOCK.search(text).group(1) == f"<!-- deepscm: python docs/deepscm.py --run runs/morpho --oracle oracles/morpho --refine {refine} -->\n"
    bare = tmp_path / "morpho.md"
    bare.write_text(text[: text.index("<!-- deepscm:")])
    monkeypatch.setattr(deepscm, "PAGE", bare)
    with pytest.raises(SystemExit, match="error: morpho.md: the page must hold one block"):
        deepscm.main(["--run", str(tmp_path / "nothing"), "--oracle", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()  # refused before writing anything


@pytest.mark.slow  # shares the module's tiny model and oracle
def test_the_digit_misses_are_counted_and_shown(written):
    deepscm, _, root, page, fields = written
    asked, missed = int(fields["miss_n"]), int(fields["miss_model"])
    assert 0 < asked <= deepscm.MISS_N and 0 <= missed <= asked and 0 <= int(fields["miss_truth"]) <= asked
    # what the oracle reads instead: digits other than the one intervened, their counts adding up to the misses
    if missed:
        pairs = [item.split(" (") for item in fields["miss_instead"].split(", ")]
        assert all(d != deepscm.MISS_TO for d, _ in ((int(d), c) for d, c in pairs))
        assert sum(int(c.rstrip(")")) for _, c in pairs) == missed
        with Image.open(root / "docs" / "img" / "morpho_cf_digit_misses.png") as im:
            assert im.width > 100 and im.height > 50
    else:
        assert fields["miss_instead"] == "none"
    text = " ".join(page.read_text().split())
    assert f"do(digit={fields['miss_to']}) gives {missed} counterfactuals the oracle reads as another digit" in text


@pytest.mark.slow  # shares the module's tiny model and oracle
def test_misses_writes_one_row_and_one_sheet_per_digit_asked(written, tmp_path):
    _, run, root, _, _ = written
    spec = importlib.util.spec_from_file_location("misses", ROOT / "docs" / "misses.py")
    misses = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(misses)
    text = misses.misses(str(run), str(root / "oracle"), [1, 7], "tiny_misses", tmp_path / "misses.md", tmp_path, refine=0)
    assert (tmp_path / "misses.md").read_text() == text
    rows = [line.split(" | ") for line in text.splitlines()[2:]]
    assert [r[0] for r in rows] == ["| do(digit=1)", "| do(digit=7)"]
    for (_, asked, model, truth, _, sheet), to in zip(rows, (1, 7)):
        assert 0 <= int(model) <= int(asked) and 0 <= int(truth) <= int(asked)
        assert (sheet == "- |") == (int(model) == 0) and (tmp_path / f"tiny_misses_{to}.png").exists() == (int(model) > 0)
    with pytest.raises(SystemExit, match="--digits must be digits 0-9"):
        misses.main(["--run", str(run), "--oracle", str(root / "oracle"), "--digits", "1,x", "--out", str(tmp_path / "m.md")])


def test_zprobe_reads_a_parent_written_into_the_code_and_not_one_left_out():
    """docs/zprobe.py's probe: a code that holds the digit (its one-hot plus noise) is read
    far above chance, a code of pure noise at about chance (10 values, 2,000 scored)."""
    spec = importlib.util.spec_from_file_location("zprobe", ROOT / "docs" / "zprobe.py")
    zprobe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zprobe)
    import torch

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (4000,), generator=g)
    holds = torch.cat([torch.eye(10)[y] + 0.15 * torch.randn(4000, 10, generator=g), torch.randn(4000, 6, generator=g)], 1)
    noise = torch.randn(4000, 16, generator=g)
    for kind in ("linear", "mlp"):
        assert zprobe.probe(holds[:2000], y[:2000], holds[2000:], y[2000:], kind, steps=400) > 0.95
        assert abs(zprobe.probe(noise[:2000], y[:2000], noise[2000:], y[2000:], kind, steps=400) - 0.1) < 0.04


@pytest.mark.slow  # about 10 s: 80 digits rendered, a tiny training and a tiny oracle
def test_readers_doc_reads_the_same_counterfactuals_with_reader_and_oracle(tmp_path):
    """docs/readers.py: the reader it retrains is the run's (the same settings and seed give
    the same weights), and its table's shares are consistent: the reader-but-not-oracle share
    lies between reader - oracle and the smaller of reader and 1 - oracle."""
    import torch

    from causalvae.errors import CausalVAEError
    from causalvae.generate import generate
    from causalvae.oracle import save_oracle, train_oracle
    from causalvae.run import Run
    from causalvae.train import TrainConfig, fit

    spec = importlib.util.spec_from_file_location("readers", ROOT / "docs" / "readers.py")
    readers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(readers)
    data = generate("morpho", tmp_path / "data", 80, seed=3)
    run = fit(TrainConfig(data=str(data), out=str(tmp_path / "run"), max_steps=2, batch_size=16, width=8, depth=3, hidden=16, z_dim=2,
                          cf_weight=1.0, reader_steps=2, threads=1), progress=False)
    oracle, scores = train_oracle("morpho", steps=2, batch_size=8, held_out=8, pool=16, seed=1)
    save_oracle(oracle, tmp_path / "oracle", scores, {"steps": 2})
    a, b = readers.first_reader(Run.open(run)), readers.first_reader(Run.open(run))
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), k
    from causalvae.oracle import load_oracle

    got = readers.readings(Run.open(run), a, load_oracle(tmp_path / "oracle"), n=3, refine=0)
    assert got["n"] == 30
    assert got["reader"] - got["oracle"] - 1e-9 <= got["fooled"] <= min(got["reader"], 1 - got["oracle"]) + 1e-9
    readers.main(["--runs", str(run), "--names", "tiny", "--oracle", str(tmp_path / "oracle"), "--n", "3", "--out", str(tmp_path / "r.md")])
    table = (tmp_path / "r.md").read_text()
    assert f"| read as the intervened digit by the oracle | {got['oracle']:.1%} |" in table
    assert f"| read so by the reader and not by the oracle | {got['fooled']:.1%} |" in table
    with pytest.raises(CausalVAEError, match="no counterfactual term"):
        readers.first_reader(Run.open(fit(TrainConfig(data=str(data), out=str(tmp_path / "plain"), max_steps=1, batch_size=16, width=8, depth=3,
                                                       hidden=16, z_dim=2, cf_weight=0.0, threads=1), progress=False)))


@pytest.mark.slow  # a tiny evaluation of the tiny model
def test_valeval_scores_the_validation_split_and_names_its_judge(written, tmp_path):
    """docs/valeval.py: the report of the validation split (as many test pictures as the split
    holds), marked so, with the oracle's weights hash."""
    import json

    from causalvae.data import load as load_data
    from causalvae.oracle import load_oracle
    from causalvae.run import Run

    _, run, root, _, _ = written
    spec = importlib.util.spec_from_file_location("valeval", ROOT / "docs" / "valeval.py")
    valeval = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(valeval)
    out = tmp_path / "val.json"
    valeval.main([str(run), "--oracle", str(root / "oracle"), "--n-generate", "20", "--cf-images", "3", "--threads", "1", "--out", str(out)])
    rep = json.loads(out.read_text())
    n_val = len(load_data(Run.open(run).dataset_path, split="val", verify=False))
    assert rep["split"] == "validation" and rep["test_pictures"] == n_val
    assert rep["oracle"]["weights_sha256"] == load_oracle(root / "oracle").weights_sha256
