"""One way to ask: the CLI and the viewer give the same counterfactual for the same picture,
and the shared orchestration (causalvae.ask) keeps its meaning."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from causalvae import ask  # noqa: E402
from causalvae.cli import app  # noqa: E402
from causalvae.data import load as load_dataset  # noqa: E402
from causalvae.pictures import PAD  # noqa: E402
from causalvae.run import Run  # noqa: E402
from causalvae.viewer import create_app  # noqa: E402


@pytest.fixture(scope="module")
def client(viewer_run):
    data, run, oracle = viewer_run
    with TestClient(create_app(run, oracle=oracle, warm=False)) as c:
        yield c


def _data_url_pixels(url: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as im:
        return np.asarray(im.convert("RGB"))


def _cli_tiles(path, size: int, scale: int = 3, count: int = 4) -> list[np.ndarray]:
    """The tiles of the CLI's counterfactual sheet (one row, no caption above), at 1:1."""
    with Image.open(path) as im:
        sheet = np.asarray(im.convert("RGB"))
    side = size * scale
    return [sheet[PAD : PAD + side : scale, PAD + k * (side + PAD) : PAD + k * (side + PAD) + side : scale] for k in range(count)]


def test_cli_and_viewer_answer_the_same_counterfactual(viewer_run, client, tmp_path):
    data, run, _ = viewer_run
    vae = Run.open(run).model
    test = load_dataset(data, split="test", verify=False)
    index, do, seed = 3, {"action": "Walk"}, 5
    images, labels = test.batch([index])
    expected = ask.counterfactual(vae, images, labels, do, seed=seed)
    # The reconstruction comes from the same abduction: the null intervention gives it back.
    null = ask.counterfactual(vae, images, labels, {}, seed=seed)
    assert torch.equal(null.counterfactual, expected.reconstruction)
    assert (null.difference == 0).all()

    body = client.post("/api/counterfactual", json={"index": index, "do": do, "seed": seed}).json()
    res = CliRunner().invoke(app, ["counterfactual", str(run), "--index", str(index), "--do", "action=Walk", "--seed", str(seed), "--out", str(tmp_path / "cf.png")])
    assert res.exit_code == 0, res.output
    tiles = _cli_tiles(tmp_path / "cf.png", vae.config.image_size, count=5)  # the fourth: the true counterfactual render
    for k, (key, picture) in enumerate([("factual", expected.factual), ("reconstruction", expected.reconstruction), ("counterfactual", expected.counterfactual)]):
        want = picture[0].permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(_data_url_pixels(body[key]), want, err_msg=f"viewer {key}")
        np.testing.assert_array_equal(tiles[k], want, err_msg=f"CLI {key}")
    diff = np.repeat(expected.difference[0][..., None], 3, axis=-1)
    np.testing.assert_array_equal(_data_url_pixels(body["difference"]), diff)
    np.testing.assert_array_equal(tiles[4], diff)
    assert body["difference_max"] == pytest.approx(float(expected.difference_max[0]))

    # The same picture uploaded as a PNG, with its labels, gets the same answer in both.
    png = tmp_path / "mine.png"
    Image.fromarray(images[0].permute(1, 2, 0).numpy()).save(png)
    graph = vae.current_graph()
    given = {c: graph[c].values[int(v)] for c, v in zip(vae.label_columns, labels[0].tolist())}
    url = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
    up = client.post("/api/counterfactual", json={"image": url, "labels": given, "do": do, "seed": seed}).json()
    res = CliRunner().invoke(app, ["counterfactual", str(run), "--image", str(png), "--labels", ", ".join(f"{c}={v}" for c, v in given.items()),
                                   "--do", "action=Walk", "--seed", str(seed), "--out", str(tmp_path / "up.png")])
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(_data_url_pixels(up["counterfactual"]), _data_url_pixels(body["counterfactual"]))
    np.testing.assert_array_equal(_cli_tiles(tmp_path / "up.png", vae.config.image_size)[2], tiles[2])


def test_options_reach_the_counterfactual_step(viewer_run):
    """Extra keyword arguments go to queries.counterfactual: with the picture's own pixel
    noise abducted, the reconstruction from the same abduction is the factual picture."""
    data, run, _ = viewer_run
    vae = Run.open(run).model
    images, labels = load_dataset(data, split="test", verify=False).batch([0, 1])
    res = ask.counterfactual(vae, images, labels, {"action": "Walk"}, seed=2, abduct_noise=True)
    assert torch.equal(res.reconstruction, images)
    assert res.abduction.pixels is not None


def test_the_cli_refuses_the_pngs_the_viewer_refuses(viewer_run, tmp_path):
    _, run, _ = viewer_run
    size = Run.open(run).model.config.image_size
    cases = {
        "transparent.png": (Image.new("RGBA", (size, size), (10, 20, 30, 100)), "transparent pixels"),
        "deep.png": (Image.new("I;16", (size, size)), "I;16"),
        "small.png": (Image.new("RGB", (size // 2, size // 2)), f"needs {size}x{size}"),
    }
    for name, (im, words) in cases.items():
        im.save(tmp_path / name)
        res = CliRunner().invoke(app, ["counterfactual", str(run), "--image", str(tmp_path / name), "--labels", "actor=Satyr",
                                       "--do", "action=Walk", "--out", str(tmp_path / "x.png")])
        assert res.exit_code == 2 and words in res.output and name in res.output, res.output
    (tmp_path / "fake.png").write_bytes(b"GIF89a not a png")
    res = CliRunner().invoke(app, ["counterfactual", str(run), "--image", str(tmp_path / "fake.png"), "--labels", "actor=Satyr",
                                   "--do", "action=Walk", "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "not a PNG" in res.output


def test_summarize_sample_obeys_evidence_and_interventions(viewer_run):
    _, run, oracle_dir = viewer_run
    from causalvae.oracle import load_oracle

    vae = Run.open(run).model
    s = ask.summarize_sample(vae, 40, {"reaction": "Dying"}, {"actor": "Golem"}, seed=1, oracle=load_oracle(oracle_dir))
    graph = vae.current_graph()
    assert "reaction" not in s.variables and "actor" not in s.variables
    assert (s.drawn.values["actor"] == graph["actor"].index("Golem")).all()
    assert (s.drawn.values["reaction"] == graph["reaction"].index("Dying")).all()
    # Exact: seeing the reactor die makes an attack likely; making it die changes nothing upstream.
    seen = ask.summarize_sample(vae, 8, {"reaction": "Dying"}, seed=1)
    made = ask.summarize_sample(vae, 8, {}, {"reaction": "Dying"}, seed=1)
    np.testing.assert_allclose(seen.exact["action"], [0.5993, 0.3977, 0.0029], atol=1e-4)
    np.testing.assert_allclose(made.exact["action"], [0.2728, 0.3372, 0.3900], atol=1e-4)
    assert seen.read is None and seen.read_back is None
    for v in s.variables:
        assert s.frequencies[v].sum() == pytest.approx(1.0) and s.exact[v].sum() == pytest.approx(1.0)
    assert s.read.shape == (40, len(vae.label_columns))
    given = np.stack([s.drawn.values[c] for c in vae.label_columns], 1)
    assert s.read_back == pytest.approx(float((s.read == given).all(axis=1).mean()))
