"""The viewer's API serves a sprites model: binary one-channel 64 x 64 pictures in the
gallery, in samples and in counterfactuals (uploads included), with the sprites graph's
exact answers."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from causalvae.data import load as load_dataset  # noqa: E402
from causalvae.viewer import create_app  # noqa: E402


@pytest.fixture(scope="module")
def client(sprites_viewer_run):
    _, run, oracle = sprites_viewer_run
    return TestClient(create_app(run, oracle=oracle))


@pytest.fixture(scope="module")
def test_split(sprites_viewer_run):
    return load_dataset(sprites_viewer_run[0], split="test", verify=False)


def pixels(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as im:
        assert im.mode == "L"  # one channel
        return np.asarray(im)


def binary(url: str) -> np.ndarray:
    arr = pixels(url)
    assert arr.shape == (64, 64) and set(np.unique(arr).tolist()) <= {0, 255}
    return arr


def test_gallery_shows_the_test_pictures(client, test_split):
    g = client.get("/api/gallery", params={"n": 3}).json()
    assert g["total"] == len(test_split)
    images, labels = test_split.batch([0, 1, 2])
    for item, im, row in zip(g["items"], images, labels):
        np.testing.assert_array_equal(binary(item["image"]), im[0].numpy() * 255)
        assert item["labels"]["shape"] == test_split.graph["shape"].values[int(row[0])]


def test_sample_given_a_shape(client):
    res = client.post("/api/sample", json={"n": 6, "seed": 1, "evidence": {"shape": "heart"}, "do": {}}).json()
    assert res["values"]["shape"] == ["heart"] * 6
    for url in res["images"]:
        binary(url)
    scale = next(d for d in res["distributions"] if d["variable"] == "scale")
    assert scale["exact"] == pytest.approx([0.03, 0.05, 0.10, 0.17, 0.25, 0.40])  # the graph's P(scale | heart)


def test_counterfactual_of_a_gallery_picture_and_of_an_upload(client, test_split):
    images, labels = test_split.batch([0])
    res = client.post("/api/counterfactual", json={"index": 0, "do": {"scale": "1.0"}, "seed": 0}).json()
    np.testing.assert_array_equal(binary(res["factual"]), images[0, 0].numpy() * 255)
    binary(res["reconstruction"]), binary(res["counterfactual"])
    out = {v["variable"]: v for v in res["variables"]}
    assert out["scale"]["counterfactual"] == "1.0"
    for name in ("shape", "orientation", "posX"):  # not descendants of scale: kept
        assert out[name]["counterfactual"] == out[name]["factual"]
    buf = io.BytesIO()
    Image.fromarray(images[0, 0].numpy() * 255).save(buf, format="PNG")
    upload = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    graph = test_split.graph
    given = {c: graph[c].values[int(v)] for c, v in zip(test_split.label_columns, labels[0].tolist())}
    res = client.post("/api/counterfactual", json={"image": upload, "labels": given, "do": {"shape": "heart"}, "seed": 0})
    assert res.status_code == 200, res.text
    body = res.json()
    np.testing.assert_array_equal(binary(body["factual"]), images[0, 0].numpy() * 255)
    assert {v["variable"]: v["counterfactual"] for v in body["variables"]}["shape"] == "heart"


def test_a_counterfactual_request_may_refine_the_abduction(client, sprites_viewer_run, test_split):
    """``refine`` in a counterfactual request (or the viewer's default, ``serve --refine``)
    refines the abducted code as ``causalvae counterfactual --refine`` does: the reconstruction
    is the library's refined one; out of range, one clear 422."""
    import torch

    from causalvae.queries import reconstruct
    from causalvae.store import load

    vae = load(sprites_viewer_run[1])
    images, labels = test_split.batch([0])
    refined = reconstruct(vae, images, labels.to(torch.int64), refine=5)[0, 0].numpy() * 255
    assert not np.array_equal(refined, reconstruct(vae, images, labels.to(torch.int64))[0, 0].numpy() * 255)
    res = client.post("/api/counterfactual", json={"index": 0, "do": {}, "refine": 5}).json()
    np.testing.assert_array_equal(binary(res["reconstruction"]), refined)
    viewer = TestClient(create_app(sprites_viewer_run[1], warm=False, refine=5))
    again = viewer.post("/api/counterfactual", json={"index": 0, "do": {}}).json()
    np.testing.assert_array_equal(binary(again["reconstruction"]), refined)
    assert (res["refine"], again["refine"]) == (5, 5)  # the answer says which steps it used
    assert client.post("/api/counterfactual", json={"index": 0, "do": {}}).json()["refine"] == 0
    bad = client.post("/api/counterfactual", json={"index": 0, "do": {}, "refine": 10_000})
    assert bad.status_code == 422 and "refine" in bad.text
    with pytest.raises(Exception, match="refine must be a whole number of steps >= 0, got -1"):
        create_app(sprites_viewer_run[1], warm=False, refine=-1)
    with pytest.raises(Exception, match="refine must be a whole number of steps from 0 to 500, got 501"):
        create_app(sprites_viewer_run[1], warm=False, refine=501)
