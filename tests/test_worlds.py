"""A world is one package: a third world written only here runs the whole chain, and an
imported dataset (a world without a renderer) runs it through the CLI. Tiny sizes."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from causalvae import worlds
from causalvae.cli import app
from causalvae.errors import CausalVAEError
from causalvae.graph import Graph, ImageNode, Variable

SIZE = 16
#: A tiny model: trains a few steps in seconds.
TINY = ["--max-steps", "3", "--batch-size", "16", "--width", "8", "--depth", "2", "--hidden", "16", "--z-dim", "2", "--threads", "1", "--no-progress"]
#: A tiny evaluation.
TINY_EVAL = ["--n-generate", "16", "--iw-k", "2", "--iw-images", "4", "--cf-images", "4"]


def dots_graph() -> Graph:
    """place -> shade, and a hidden cause of both: a picture shows a square left or right,
    dim or bright."""
    return Graph([
        Variable("light", ["off", "on"], cpt=[0.5, 0.5], observed=False),
        Variable("place", ["left", "right"], ["light"], cpt=[[0.7, 0.3], [0.2, 0.8]]),
        Variable("shade", ["dim", "bright"], ["light", "place"], cpt=[[[0.9, 0.1], [0.6, 0.4]], [[0.3, 0.7], [0.1, 0.9]]]),
    ], ImageNode(["place", "shade"]), name="dots")


def draw_dots(place: np.ndarray, shade: np.ndarray, jitter: np.ndarray) -> np.ndarray:
    """uint8 (N, 1, 16, 16): a 6x6 square on a dark ground."""
    n = len(place)
    out = np.full((n, 1, SIZE, SIZE), 20, np.uint8)
    for i in range(n):
        x = (2 if place[i] == 0 else 8) + int(jitter[i])
        out[i, 0, 5:11, x : x + 6] = 120 if shade[i] == 0 else 250
    return out


class DotsRenderer(worlds.Renderer):
    style_fields = ("jitter",)
    channels = 1
    resolution = SIZE

    def sample_style(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, 2, (n, 1)).astype(np.float64)

    def render(self, values: Mapping[str, np.ndarray], style: np.ndarray) -> np.ndarray:
        style = self.check_style(style)
        return draw_dots(np.asarray(values["place"]), np.asarray(values["shade"]), style[:, 0])


class DotsWorld(worlds.World):
    name = "dots"
    style_fields = ("jitter",)
    channels = 1
    resolution = SIZE
    reference_queries = (("P(. | shade=bright)", {"shade": "bright"}, {}),)
    joint_interventions = ({"place": "left", "shade": "dim"},)

    def graph(self) -> Graph:
        return dots_graph()

    def renderer(self, resolution: int | None = None) -> DotsRenderer:
        return DotsRenderer()


@pytest.fixture
def dots():
    world = worlds.register(DotsWorld())
    yield world
    worlds.unregister("dots")


def test_a_world_registers_and_lists(dots):
    assert worlds.get("dots") is dots and "dots" in worlds.names()
    assert dots.renders and not worlds.World().renders
    with pytest.raises(CausalVAEError, match="unknown world 'dot'.*did you mean 'dots'"):
        worlds.get("dot")


class StillDotsWorld(DotsWorld):
    """Dots that can be drawn without jitter: a world with a generator option of its own."""

    name = "stilldots"
    options = (worlds.Option("still", "still", "Draw every square without jitter.", flag=True),)

    def plan(self, resolution: int | None = None, *, still: bool = False) -> worlds.Plan:
        plan = super().plan(resolution)
        if still:
            plan.sample_style = lambda n, rng: np.zeros((n, 1))
        return plan


def test_generate_takes_each_worlds_own_options(tmp_path):
    """``generate WORLD`` has the options every world has and the world's own, which reach its
    plan; an option of another world, or an unknown world, is refused in one error."""
    from causalvae.data import load

    worlds.register(StillDotsWorld())
    try:
        cli = CliRunner()
        res = cli.invoke(app, ["generate", "stilldots", "--n", "30", "--out", str(tmp_path / "still"), "--still"])
        assert res.exit_code == 0, res.output
        assert (load(tmp_path / "still", truth=True).truth_style == 0).all()
        res = cli.invoke(app, ["generate", "stilldots", "--n", "30", "--out", str(tmp_path / "moving")])
        assert res.exit_code == 0, res.output
        assert set(load(tmp_path / "moving", truth=True).truth_style[:, 0]) == {0.0, 1.0}
        res = cli.invoke(app, ["generate", "stilldots", "--n", "30", "--out", str(tmp_path / "x"), "--hide", "place"])
        assert res.exit_code == 2 and "No such option: --hide" in res.output and not (tmp_path / "x").exists()
        res = cli.invoke(app, ["generate", "scenes", "--n", "3", "--out", str(tmp_path / "y"), "--still"])
        assert res.exit_code == 2 and "No such option: --still" in res.output
        res = cli.invoke(app, ["generate", "stildots", "--n", "3", "--out", str(tmp_path / "z")])
        assert res.exit_code == 2 and "unknown world 'stildots' (did you mean 'stilldots'?)" in res.output
        assert "--still" in cli.invoke(app, ["generate", "stilldots", "--help"]).output
    finally:
        worlds.unregister("stilldots")


def test_a_third_world_runs_generate_train_sample_counterfactual_evaluate(dots, tmp_path):
    from causalvae.data import load

    cli = CliRunner()
    data = tmp_path / "dots"
    res = cli.invoke(app, ["generate", "dots", "--n", "240", "--seed", "3", "--out", str(data)])
    assert res.exit_code == 0, res.output
    ds = load(data, truth=True)
    assert ds.manifest["world"] == "dots" and ds.manifest["style_fields"] == ["jitter"]
    assert ds.label_columns == ["place", "shade"]  # the hidden cause is not a label
    # The pictures are the world's true renders of the recorded values and style.
    cols = list(ds.manifest["truth_columns"])
    values = {v: ds.truth_values[:, cols.index(v)].astype(np.int64) for v in cols}
    np.testing.assert_array_equal(draw_dots(values["place"], values["shade"], ds.truth_style[:, 0]), np.asarray(ds.images).transpose(0, 3, 1, 2))
    # The graph's law: P(place = right) = 0.5 * 0.3 + 0.5 * 0.8 = 0.55 (240 draws: 4 standard errors).
    assert abs(values["place"].mean() - 0.55) < 4 * np.sqrt(0.55 * 0.45 / 240)

    run = tmp_path / "run"
    res = cli.invoke(app, ["train", "--data", str(data), "--out", str(run), *TINY])
    assert res.exit_code == 0, res.output
    res = cli.invoke(app, ["sample", str(run), "--do", "place=right", "--n", "4", "--beside-truth", "--out", str(tmp_path / "s.png")])
    assert res.exit_code == 0, res.output
    res = cli.invoke(app, ["counterfactual", str(run), "--index", "0", "--do", "place=left", "--out", str(tmp_path / "cf.png")])
    assert res.exit_code == 0, res.output
    res = cli.invoke(app, ["oracle", "train", "--world", "dots", "--resolution", str(SIZE), "--steps", "3", "--batch-size", "8", "--out", str(tmp_path / "oracle")])
    assert res.exit_code == 0, res.output
    res = cli.invoke(app, ["evaluate", str(run), "--oracle", str(tmp_path / "oracle"), "--out", str(tmp_path / "report"), *TINY_EVAL])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["world"] == "dots" and report["left_out"] == []
    assert [g["query"] for g in report["generation"]] == ["P(. | shade=bright)"]
    # The world's joint intervention is scored after every single-variable one.
    assert report["counterfactuals"][-1]["do"] == {"place": "left", "shade": "dim"}
    assert report["counterfactuals"][-1]["pixel_mae_to_true_render"] is not None
    for r in report["counterfactuals"]:
        # A variable intervened on takes its value in every counterfactual.
        for c, v in r["do"].items():
            if c in r["variables"]:
                assert r["variables"][c]["tv_used"] == pytest.approx(0.0)


def write_folder(root, n: int = 48, seed: int = 0):
    """A folder of grey PNGs of dots and a CSV of their labels (some missing), as a user has."""
    rng = np.random.default_rng(seed)
    place, shade = rng.integers(0, 2, n), rng.integers(0, 2, n)
    pictures = draw_dots(place, shade, rng.integers(0, 2, n))
    (root / "png").mkdir(parents=True)
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "place", "shade"])
        for i in range(n):
            Image.fromarray(pictures[i, 0]).save(root / "png" / f"{i:03d}.png")
            w.writerow([f"{i:03d}.png", ["left", "right"][place[i]], "" if i % 3 == 0 else ["dim", "bright"][shade[i]]])
    dots_graph().to_yaml(root / "dots.yaml")
    return place, shade


def test_an_imported_dataset_runs_the_whole_chain_through_the_cli(tmp_path):
    write_folder(tmp_path)
    cli = CliRunner()
    data, run, oracle = tmp_path / "data", tmp_path / "run", tmp_path / "oracle"
    steps = [
        ["data", "import", "--images", str(tmp_path / "png"), "--labels", str(tmp_path / "labels.csv"), "--graph", str(tmp_path / "dots.yaml"), "--out", str(data)],
        ["show", str(data), "--out", str(tmp_path / "sheet.png")],
        ["train", "--data", str(data), "--out", str(run), *TINY],
        ["summary", str(run)],
        ["reconstruct", str(run), "--n", "4", "--out", str(tmp_path / "recon.png")],
        ["sample", str(run), "--given", "shade=bright", "--n", "4", "--out", str(tmp_path / "s.png")],
        ["counterfactual", str(run), "--index", "0", "--do", "place=right", "--out", str(tmp_path / "cf.png")],
        ["oracle", "train", "--data", str(data), "--steps", "3", "--batch-size", "8", "--out", str(oracle)],
        ["sample", str(run), "--n", "4", "--oracle", str(oracle), "--out", str(tmp_path / "s2.png")],
        ["evaluate", str(run), "--oracle", str(oracle), "--out", str(tmp_path / "report"), *TINY_EVAL],
    ]
    for args in steps:
        res = cli.invoke(app, args)
        assert res.exit_code == 0, (args[:2], res.output)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["world"] == "imported"
    left = {item["section"]: item["why"] for item in report["left_out"]}
    assert "generation: noise floor of true renders" in left and "no renderer" in left["generation: noise floor of true renders"]
    assert "counterfactuals: agreement with the recorded-noise true counterfactual" in left
    # What needs no renderer is there: likelihood, reconstruction, read-back, effectiveness, axioms.
    assert np.isfinite(report["likelihood"]["elbo"]) and report["reconstruction"]["pixel_mae"] >= 0
    # A third of the pictures lack a parent's label: the bound uses the fully labelled ones.
    from causalvae.data import load

    test = load(data, split="test")
    complete = int((test.labels[test.indices] >= 0).all(axis=1).sum())
    assert 0 < complete < len(test)
    assert report["likelihood"]["iw_pictures"] == min(4, complete) and report["likelihood"]["iw_bound"] is not None
    assert 0.0 <= report["generation"][0]["readback"] <= 1.0
    assert all(0.0 <= r["effectiveness"] <= 1.0 for r in report["counterfactuals"])
    assert report["axioms"]["composition_1"] >= 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Left out of this report" in md and "no renderer" in md
    # A world without a renderer says so when asked for one.
    res = cli.invoke(app, ["sample", str(run), "--n", "2", "--beside-truth", "--out", str(tmp_path / "t.png")])
    assert res.exit_code == 2 and "has no renderer" in res.output


def test_the_sprites_world_states_its_grid_constants():
    """The sprites world's package registers without importing the grid module; the
    constants it states are the grid's."""
    from causalvae.worlds.sprites import dsprites, world

    assert world.STYLE_FIELDS == dsprites.STYLE_FIELDS and world.RESOLUTION == dsprites.RESOLUTION
    assert worlds.get("sprites").style_fields == dsprites.STYLE_FIELDS and worlds.get("sprites").binary
