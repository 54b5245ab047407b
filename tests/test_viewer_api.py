"""The viewer's JSON API, through FastAPI's test client: every answer means what it says (the
query endpoint is the exact engine, sampled pictures obey their evidence and interventions, the
null intervention keeps the factual labels), and every bad input gets a 400 or 422 whose
message names the problem."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from causalvae.data import load as load_dataset  # noqa: E402
from causalvae.errors import CausalVAEError  # noqa: E402
from causalvae.exact import Term, causation, query  # noqa: E402
from causalvae.queries import counterfactual_distributions  # noqa: E402
from causalvae.store import load  # noqa: E402
from causalvae.viewer import create_app  # noqa: E402
from causalvae.viewer.app import MAX_UPLOAD_BYTES  # noqa: E402


@pytest.fixture(scope="module")
def client(viewer_run):
    data, run, oracle = viewer_run
    return TestClient(create_app(run, oracle=oracle))


@pytest.fixture(scope="module")
def graph(viewer_run):
    return load(viewer_run[1]).current_graph()


@pytest.fixture(scope="module")
def test_split(viewer_run):
    return load_dataset(viewer_run[0], split="test", verify=False)


def pixels(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as im:
        return np.asarray(im)


def png(array: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> str:
    buf = io.BytesIO()
    im = Image.fromarray(array)
    (im.convert(mode) if mode else im).save(buf, format=fmt)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def error(response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()["detail"]


# ----------------------------------------------------------------------------- graph, page, schema


def test_graph_describes_every_variable_and_its_layout(client, graph, test_split):
    g = client.get("/api/graph").json()
    assert [v["name"] for v in g["variables"]] == list(graph.topological_order)
    assert {v["name"] for v in g["variables"] if v["hidden"]} == set(graph.hidden)
    assert g["label_columns"] == list(graph.observed) and g["image_parents"] == list(graph.image.parents)
    assert g["gallery"] == len(test_split) and g["oracle"] is not None
    nodes = {n["name"]: n for n in g["layout"]["nodes"]}
    assert set(nodes) == set(graph.names) | {"image"} and nodes["image"]["kind"] == "image"
    assert nodes["actor_attack"]["kind"] == "hidden" and nodes["action"]["kind"] == "observed"
    for child in graph.names:  # every arrow points down, from parent to child
        for parent in graph.parents(child):
            assert nodes[parent]["y"] < nodes[child]["y"]
    for row in {n["y"] for n in nodes.values()}:  # boxes of one layer never overlap
        boxes = sorted((n["x"] - n["width"] / 2, n["x"] + n["width"] / 2) for n in nodes.values() if n["y"] == row)
        assert all(a[1] <= b[0] for a, b in zip(boxes, boxes[1:]))
    assert len(g["layout"]["edges"]) == sum(len(graph.parents(n)) for n in graph.names) + len(graph.image.parents)
    for q in g["examples"]:
        assert client.post("/api/query", json={"query": q}).status_code == 200, q


def test_the_page_and_the_schema_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "causalvae viewer" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert client.get("/docs").status_code == 404  # no schema browser: it would load scripts from a CDN
    schema = client.get("/openapi.json").json()
    assert {"/api/graph", "/api/query", "/api/sample", "/api/gallery", "/api/counterfactual"} <= set(schema["paths"])
    post = schema["paths"]["/api/counterfactual"]["post"]
    assert {"200", "400", "422"} <= set(post["responses"])
    assert {"SampleRequest", "CounterfactualRequest", "QueryResponse", "ErrorBody"} <= set(schema["components"]["schemas"])


# ----------------------------------------------------------------------------- query


def rows_of(answer: dict) -> dict[tuple[str, ...], float]:
    return {tuple(r["values"]): r["probability"] for r in answer["rows"]}


@pytest.mark.parametrize(
    "text, targets, evidence, do",
    [
        ("P(action | reaction=Dying)", ["action"], {"reaction": "Dying"}, None),
        ("P(reaction | do(actor_attack=High, reactor_defense=Low))", ["reaction"], {}, {"actor_attack": "High", "reactor_defense": "Low"}),
        ("P(reaction[action=Attack] | action=Taunt, reaction=Idle)", [Term("reaction", (("action", "Attack"),))], {"action": "Taunt", "reaction": "Idle"}, None),
        ("P(actor, action)", ["actor", "action"], {}, None),
    ],
)
def test_query_answers_exactly(client, graph, text, targets, evidence, do):
    answer = client.post("/api/query", json={"query": text}).json()
    d = query(graph, targets, evidence, do)
    assert answer["kind"] == "distribution" and answer["variables"] == list(d.variables)
    assert rows_of(answer) == pytest.approx(dict(d.items()), abs=1e-12)


def test_query_of_one_probability_and_of_causation(client, graph):
    one = client.post("/api/query", json={"query": "P(action=Attack | reaction=Dying)"}).json()
    assert one["event"] == ["Attack"]
    assert one["probability"] == pytest.approx(query(graph, ["action"], {"reaction": "Dying"}).prob("Attack"))
    pns = client.post("/api/query", json={"query": "PNS(action=Attack vs Walk -> reaction=Dying)"}).json()
    c = causation(graph, "action", "Attack", "reaction", "Dying", "Walk")["Walk"]
    assert pns["kind"] == "causation" and pns["measure"] == "PNS"
    assert [(x["contrast"], x["PN"], x["PS"], x["PNS"]) for x in pns["contrasts"]] == [("Walk", pytest.approx(c.pn), pytest.approx(c.ps), pytest.approx(c.pns))]


def test_bad_queries_are_refused_with_what_is_wrong(client):
    res = client.post("/api/query", json={"query": "P(action | reaction=Dying"})
    assert "expected ')'" in error(res, 400) and "at character 26" in res.json()["detail"]
    assert res.json()["position"] == 25
    assert "did you mean 'reaction'" in error(client.post("/api/query", json={"query": "P(action | raction=Dying)"}), 400)
    assert "unknown value 'Dyng'" in error(client.post("/api/query", json={"query": "P(action | reaction=Dyng)"}), 400)
    assert "probability zero" in error(client.post("/api/query", json={"query": "P(action | do(reaction=Idle), reaction=Dying)"}), 400)
    assert "query" in error(client.post("/api/query", json={"query": ""}), 422)
    assert "query: Field required" in error(client.post("/api/query", json={}), 422)
    bad = client.post("/api/query", content=b'{"query": "P(a"', headers={"content-type": "application/json"})
    assert "malformed JSON" in error(bad, 422)


# ----------------------------------------------------------------------------- sample


def test_sample_obeys_evidence_and_interventions(client, graph):
    body = {"evidence": {"reaction": "Dying"}, "do": {"actor": "Golem"}, "n": 6, "seed": 3}
    s = client.post("/api/sample", json=body).json()
    assert len(s["images"]) == 6 and pixels(s["images"][0]).shape == (64, 64, 3)
    assert s["values"]["reaction"] == ["Dying"] * 6 and s["values"]["actor"] == ["Golem"] * 6
    assert set(s["values"]) == set(graph.names)  # hidden values too
    dists = {d["variable"]: d for d in s["distributions"]}
    assert set(dists) == set(graph.names) - {"reaction", "actor"}  # hidden ones too
    hidden = query(graph, ["actor_attack"], {"reaction": "Dying"}, {"actor": "Golem"}).table
    np.testing.assert_allclose(dists["actor_attack"]["exact"], hidden)
    assert dists["actor_attack"]["read"] is None  # the oracle reads labels only
    dists = {k: d for k, d in dists.items() if k in graph.observed}
    exact = query(graph, ["action"], {"reaction": "Dying"}, {"actor": "Golem"}).table
    np.testing.assert_allclose(dists["action"]["exact"], exact)
    for d in dists.values():
        assert sum(d["drawn"]) == pytest.approx(1.0) and sum(d["read"]) == pytest.approx(1.0)
        counts = [s["values"][d["variable"]].count(v) / 6 for v in d["values"]]
        assert d["drawn"] == pytest.approx(counts)
    assert 0.0 <= s["read_back"] <= 1.0
    again = client.post("/api/sample", json=body).json()
    assert again["images"] == s["images"]  # seeded: the same answer
    other = client.post("/api/sample", json={**body, "seed": 4}).json()
    assert other["images"] != s["images"]


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"evidence": {"raction": "Dying"}}, 400, ["unknown variable 'raction'", "did you mean 'reaction'"]),
        ({"do": {"action": "Jump"}}, 400, ["unknown value 'Jump'", "Attack, Taunt, Walk"]),
        ({"evidence": {"reaction": "Dying"}, "do": {"reaction": "Idle"}}, 400, ["probability zero"]),
        ({"n": 0}, 422, ["n: Input should be greater than or equal to 1"]),
        ({"n": 65}, 422, ["n: Input should be less than or equal to 64"]),
        ({"seed": -1}, 422, ["seed"]),
        ({"given": {"reaction": "Dying"}}, 422, ["given: Extra inputs are not permitted"]),
        ({"evidence": {"reaction": 3}}, 422, ["evidence.reaction: Input should be a valid string"]),
        ({"evidence": ["reaction=Dying"]}, 422, ["evidence: Input should be a valid dictionary"]),
        ({"n": True}, 422, ["n: Input should be a valid integer"]),
        ({"n": "3"}, 422, ["n: Input should be a valid integer"]),
        ([{"n": 3}], 422, ["the request body must be a JSON object"]),
    ],
)
def test_bad_samples_are_refused(client, body, status, words):
    detail = error(client.post("/api/sample", json=body), status)
    for w in words:
        assert w in detail


def test_malformed_json_is_a_readable_422(client):
    res = client.post("/api/sample", content=b'{"n": 4,', headers={"content-type": "application/json"})
    assert error(res, 422).startswith("malformed JSON at character")
    assert error(client.post("/api/sample"), 422) == "the request needs a JSON body"


# ----------------------------------------------------------------------------- gallery


def test_gallery_lists_test_pictures_with_their_labels(client, graph, test_split):
    g = client.get("/api/gallery", params={"n": 3, "offset": 2}).json()
    assert g["total"] == len(test_split) and [i["index"] for i in g["items"]] == [2, 3, 4]
    images, labels = test_split.batch([2, 3, 4])
    for item, image, row in zip(g["items"], images, labels):
        np.testing.assert_array_equal(pixels(item["image"]), image.numpy().transpose(1, 2, 0))
        assert item["labels"] == {c: graph[c].values[int(v)] for c, v in zip(test_split.label_columns, row)}
    assert "n: Input should be less than or equal to 64" in error(client.get("/api/gallery", params={"n": 65}), 422)
    assert "offset: Input should be greater than or equal to 0" in error(client.get("/api/gallery", params={"offset": -1}), 422)
    assert "past the end" in error(client.get("/api/gallery", params={"offset": len(test_split)}), 400)
    assert "valid integer" in error(client.get("/api/gallery", params={"n": "many"}), 422)


# ----------------------------------------------------------------------------- counterfactual


def test_the_null_intervention_keeps_the_factual_picture_and_labels(client):
    cf = client.post("/api/counterfactual", json={"index": 1}).json()
    for v in cf["variables"]:
        assert v["counterfactual"] == v["factual"], v
        if v["exact"] is not None:  # a point mass on the factual label
            assert v["exact"] == [float(x == v["factual"]) for x in v["values"]]
    np.testing.assert_array_equal(pixels(cf["counterfactual"]), pixels(cf["reconstruction"]))
    assert cf["difference_max"] == 0.0 and pixels(cf["difference"]).max() == 0


def test_a_counterfactual_sets_the_intervention_and_keeps_the_rest(client, graph, test_split):
    index = next(i for i in range(len(test_split)) if test_split.batch([i])[1][0, test_split.label_columns.index("action")] != 2)
    cf = client.post("/api/counterfactual", json={"index": index, "do": {"action": "Walk"}, "seed": 5}).json()
    out = {v["variable"]: v for v in cf["variables"]}
    _, labels = test_split.batch([index])
    factual = {c: graph[c].values[int(v)] for c, v in zip(test_split.label_columns, labels[0])}
    assert out["action"]["counterfactual"] == "Walk" and out["action"]["factual"] == factual["action"] != "Walk"
    for name in set(graph.names) - graph.descendants("action") - {"action"}:  # non-descendants keep their values
        assert out[name]["counterfactual"] == out[name]["factual"], name
    for c in test_split.label_columns:
        assert out[c]["factual"] == factual[c]
    exact = counterfactual_distributions(graph, test_split.label_columns, labels.numpy(), {"action": 2})[0]
    for c in test_split.label_columns:
        np.testing.assert_allclose(out[c]["exact"], exact[c])
    assert cf["difference_max"] > 0
    assert client.post("/api/counterfactual", json={"index": index, "do": {"action": "Walk"}, "seed": 5}).json() == cf


def test_an_uploaded_picture_answers_as_its_gallery_twin(client, graph, test_split):
    images, labels = test_split.batch([0])
    given = {c: graph[c].values[int(v)] for c, v in zip(test_split.label_columns, labels[0])}
    body = {"do": {"reactor": "Satyr"}, "seed": 2}
    by_index = client.post("/api/counterfactual", json={"index": 0, **body}).json()
    uploaded = client.post("/api/counterfactual", json={"image": png(images[0].numpy().transpose(1, 2, 0)), "labels": given, **body}).json()
    assert uploaded["index"] is None
    for k in ("factual", "reconstruction", "counterfactual", "variables"):
        assert uploaded[k] == by_index[k], k


def test_bad_counterfactuals_are_refused(client, test_split):
    rgb = np.zeros((64, 64, 3), np.uint8)
    post = lambda body: client.post("/api/counterfactual", json=body)  # noqa: E731
    assert "give either 'index'" in error(post({"do": {}}), 422)
    assert "give either 'index'" in error(post({"index": 0, "image": png(rgb)}), 422)
    assert "'labels' go with an uploaded 'image'" in error(post({"index": 0, "labels": {"actor": "Golem"}}), 422)
    assert "out of range: the test split has" in error(post({"index": len(test_split)}), 400)
    assert "unknown value 'Run'" in error(post({"index": 0, "do": {"action": "Run"}}), 400)
    assert "not valid base64" in error(post({"image": "data:image/png;base64,@@@"}), 400)
    assert "not a PNG picture" in error(post({"image": base64.b64encode(b"hello, I am text").decode()}), 400)
    assert "not a PNG picture" in error(post({"image": png(rgb, fmt="JPEG")}), 400)  # no other decoder runs
    assert "the picture is 32x32; this model needs 64x64" in error(post({"image": png(np.zeros((32, 32, 3), np.uint8))}), 400)
    assert "needs a colour (RGB) picture" in error(post({"image": png(np.zeros((64, 64), np.uint8))}), 400)
    bomb = png(np.zeros((10000, 10000), bool))  # a small file of 10^8 pixels: refused before decoding
    assert "the picture has too many pixels; this model needs 64x64" in error(post({"image": bomb}), 400)
    assert "'actor_attack' is a hidden variable, not a label" in error(post({"image": png(rgb), "labels": {"actor_attack": "High"}}), 400)
    assert "'hero' is not a variable" in error(post({"image": png(rgb), "labels": {"hero": "Golem"}}), 400)
    assert "unknown value 'Elf'" in error(post({"image": png(rgb), "labels": {"actor": "Elf"}}), 400)
    big = base64.b64encode(b"\0" * (MAX_UPLOAD_BYTES + 1)).decode()
    assert "the image is 2,097,153 bytes; the limit is 2,097,152 bytes" in error(post({"image": big}), 400)
    huge = base64.b64encode(b"\0" * 3 * MAX_UPLOAD_BYTES).decode()
    assert "the request is" in error(post({"image": huge}), 413)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_damaged_and_unusual_pngs_are_refused_with_a_reason(client):
    """Pillow raises many kinds of errors on crafted files; each is a 400, never a 500."""
    post = lambda image: client.post("/api/counterfactual", json={"image": image})  # noqa: E731
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    signature = b"\x89PNG\r\n\x1a\n"
    short_header = signature + struct.pack(">I", 5) + b"IHDR" + b"\0" * 9
    assert "damaged" in error(post(b64(short_header)), 400)
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
    bomb_text = _chunk(b"zTXt", b"k\0\0" + zlib.compress(b"\0" * (4 * 2**20)))
    assert "damaged" in error(post(b64(signature + ihdr + bomb_text + _chunk(b"IEND", b""))), 400)
    truncated = base64.b64decode(png(np.zeros((64, 64, 3), np.uint8)).split(",")[1])[:-30]
    assert "damaged" in error(post(b64(truncated)), 400)
    clear = np.zeros((64, 64, 4), np.uint8)
    assert "transparent pixels" in error(post(png(clear)), 400)
    deep = Image.fromarray(np.zeros((64, 64), np.uint16))
    buf = io.BytesIO()
    deep.save(buf, format="PNG")
    assert "mode is I;16; this model needs a colour (RGB) picture" in error(post(b64(buf.getvalue())), 400)
    ok = post(png(np.full((64, 64, 4), 255, np.uint8)))  # opaque RGBA is fine
    assert ok.status_code == 200, ok.text


def test_oversized_answers_are_refused(client):
    """Seven counterfactual copies of reaction: 4**7 rows, refused before any work."""
    worlds = ["", "[action=Attack]", "[action=Taunt]", "[action=Walk]", "[actor=Golem]", "[actor=Satyr]", "[reactor=Golem]"]
    text = "P(" + ", ".join(f"reaction{w}" for w in worlds) + ")"
    assert "the answer would have 16,384 rows" in error(client.post("/api/query", json={"query": text}), 400)


# ----------------------------------------------------------------------------- creating the app


def test_bad_runs_oracles_and_missing_datasets(viewer_run, tmp_path):
    from typer.testing import CliRunner

    from causalvae.cli import app

    data, run, oracle = viewer_run
    with pytest.raises(CausalVAEError, match="no such model directory"):
        create_app(tmp_path / "nothing")
    with pytest.raises(CausalVAEError, match="oracle.safetensors: missing"):
        create_app(run, oracle=tmp_path)
    res = CliRunner().invoke(app, ["serve", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "no such model directory" in res.output
    # Without the dataset there is no gallery, but uploads still work.
    alone = TestClient(create_app(run, data=tmp_path / "gone", warm=False))
    g = alone.get("/api/graph").json()
    assert g["gallery"] == 0 and g["oracle"] is None and "cannot be opened" in g["gallery_note"]
    assert "no gallery" in error(alone.get("/api/gallery"), 404)
    assert "no gallery" in error(alone.post("/api/counterfactual", json={"index": 0}), 404)
    s = alone.post("/api/sample", json={"n": 2}).json()
    assert s["read_back"] is None and all(d["read"] is None for d in s["distributions"])


# ----------------------------------------------------------------------------- the documentation


def test_the_documented_examples_are_answered_as_shown(client):
    """Every `$ curl` line of docs/viewer.md, sent to the tiny model: the documented fields come
    back, with the documented numbers and messages where the model plays no part (queries on
    the same graph, input errors)."""
    import json
    import re
    import shlex
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "viewer.md").read_text()
    examples = re.findall(r"^\$ (curl .*)\n(\{.*\})$", text, re.M)
    assert len(examples) >= 10

    def rounded(x):
        if isinstance(x, float):
            return round(x, 4)
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items()}
        if isinstance(x, list):
            return [rounded(v) for v in x]
        return x

    for command, shown in examples:
        method, path, body, words = "GET", None, None, iter(shlex.split(command)[1:])
        for word in words:
            if word == "-X":
                method = next(words)
            elif word == "-H":
                next(words)
            elif word == "-d":
                body = next(words)
            elif "localhost:8000" in word:
                path = word.split("localhost:8000", 1)[1]
        res = client.request(method, path, content=body, headers={"content-type": "application/json"})
        expected = json.loads(shown)
        if "detail" in expected:
            assert res.status_code in (400, 422), (command, res.text)
        else:
            assert res.status_code == 200, (command, res.text)
        answer = res.json()
        assert set(answer) == set(expected), command
        if "detail" in expected or path == "/api/query":
            assert rounded(answer) == expected, command
