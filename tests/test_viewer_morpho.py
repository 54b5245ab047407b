"""The viewer's API serves a morpho model: continuous image parents (thickness, intensity)
beside a discrete one (digit). Continuous values go in as JSON numbers and come back as
numbers; queries on them are the mixed engine's answers with their error; the oracle's
regressors read thickness and intensity off the pictures; a counterfactual sets the
intervened value, recomputes its descendants from the abducted noise and keeps the rest."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import pytest
from PIL import Image
from scipy import special, stats

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from causalvae.data import load as load_dataset  # noqa: E402
from causalvae.graph import Graph  # noqa: E402
from causalvae.mixed import evaluate  # noqa: E402
from causalvae.viewer import create_app  # noqa: E402

# Every test shares the morpho fixture: generating its digits takes most of 10 s.
pytestmark = pytest.mark.slow

#: thickness = 0.5 + Gamma(concentration 10, rate 5): its mean and median.
THICKNESS = stats.gamma(10, loc=0.5, scale=1 / 5)


@pytest.fixture(scope="module")
def client(morpho_viewer_run):
    _, run, oracle = morpho_viewer_run
    return TestClient(create_app(run, oracle=oracle))


@pytest.fixture(scope="module")
def test_split(morpho_viewer_run):
    return load_dataset(morpho_viewer_run[0], split="test", verify=False)


def error(res, status: int) -> str:
    assert res.status_code == status, res.text
    return res.json()["detail"]


def grey(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as im:
        assert im.mode == "L"
        return np.asarray(im)


def logit_intensity(i: float) -> float:
    """The intensity mechanism's argument: intensity = 64 + 191 sigmoid(argument)."""
    return float(special.logit((i - 64.0) / 191.0))


def test_the_graph_says_which_variables_are_continuous(client):
    g = client.get("/api/graph").json()
    v = {x["name"]: x for x in g["variables"]}
    assert v["thickness"]["continuous"] and v["intensity"]["continuous"]
    assert "continuous" not in v["digit"] and v["digit"]["values"] == [str(d) for d in range(10)]
    assert v["thickness"]["values"] == [] and v["thickness"]["support"] == [0.5, None]  # unbounded above
    assert v["intensity"]["support"] == [64.0, 255.0]
    levels = dict(map(tuple, v["thickness"]["quantiles"]))
    assert min(levels) == 0.005 and max(levels) == 0.995  # the inputs' range
    for level, value in levels.items():  # the gamma's own quantiles (closed form)
        assert value == pytest.approx(THICKNESS.ppf(level), abs=1e-6)
    assert g["label_columns"] == ["digit", "thickness", "intensity"]
    assert all(client.post("/api/query", json={"query": q}).status_code == 200 for q in g["examples"])


def test_a_query_on_a_continuous_target_is_summed_up_with_its_error(client):
    done = client.post("/api/query", json={"query": "P(thickness | do(intensity=200))"}).json()
    assert done["kind"] == "summary" and done["variables"] == ["thickness"]
    # Intervening on the effect leaves the cause's marginal: mean 2.5, up to the stated error.
    assert abs(done["mean"]["value"] - THICKNESS.mean()) <= done["mean"]["error"] + 1e-9
    assert [q["level"] for q in done["quantiles"]] == [0.05, 0.25, 0.5, 0.75, 0.95]
    for q in done["quantiles"]:
        assert q["value"] == pytest.approx(THICKNESS.ppf(q["level"]), abs=1e-6)
    # Seeing a bright stroke says it is thick: conditioning moves the distribution.
    seen = client.post("/api/query", json={"query": "P(thickness | intensity=200)"}).json()
    assert seen["mean"]["error_kind"] == "quadrature" and seen["mean"]["error"] < 1e-6
    assert seen["mean"]["value"] == pytest.approx(evaluate(Graph.load("morpho"), "E(thickness | intensity=200)").value, abs=1e-9)
    assert seen["mean"]["value"] > THICKNESS.mean() + 0.3
    one = client.post("/api/query", json={"query": "P(intensity > 200 | do(thickness=3))"}).json()
    assert one["kind"] == "estimate" and one["estimate"]["value"] == pytest.approx(0.5751, abs=1e-4)
    assert one["estimate"]["method"] == "closed form (linear-Gaussian)"
    digit = client.post("/api/query", json={"query": 'P(digit="3" | thickness=3)'}).json()
    assert digit["kind"] == "distribution" and digit["probability"] == pytest.approx(0.1) and digit["method"]
    assert "must be a finite number" in error(client.post("/api/query", json={"query": "P(thickness | intensity=abc)"}), 400)


def test_sample_under_do_thickness_reads_the_pictures_as_numbers(client):
    res = client.post("/api/sample", json={"n": 6, "seed": 2, "do": {"thickness": 3.5}}).json()
    assert res["do"] == {"thickness": 3.5} and res["values"]["thickness"] == [3.5] * 6
    assert all(isinstance(x, float) and 64 < x < 255 for x in res["values"]["intensity"])
    assert all(d in [str(k) for k in range(10)] for d in res["values"]["digit"])
    for url in res["images"]:
        assert grey(url).shape == (32, 32)
    read = res["read"]  # the oracle's regressors, one number per picture
    assert set(read) == {"thickness", "intensity"} and all(len(read[c]) == 6 and all(map(math.isfinite, read[c])) for c in read)
    out = {c["variable"]: c for c in res["continuous"]}
    assert out["thickness"]["set"] == "do" and out["thickness"]["expected"] is None and out["thickness"]["drawn_mean"] == 3.5
    assert out["thickness"]["read_mean"] == pytest.approx(np.mean(read["thickness"]))
    assert out["thickness"]["read_error"] == pytest.approx(np.mean(np.abs(np.array(read["thickness"]) - 3.5)))
    # The effect of the intervention, as the mixed engine gives it: E(intensity | do(thickness=3.5)).
    exact = evaluate(Graph.load("morpho"), "E(intensity | do(thickness=3.5))")
    assert out["intensity"]["set"] is None and out["intensity"]["expected"]["value"] == pytest.approx(exact.value)
    assert out["intensity"]["expected"]["error"] == pytest.approx(exact.error)
    assert out["intensity"]["drawn_mean"] == pytest.approx(np.mean(res["values"]["intensity"]))
    digit = next(d for d in res["distributions"] if d["variable"] == "digit")
    assert digit["exact"] == pytest.approx([0.1] * 10) and sum(digit["read"]) == pytest.approx(1.0)
    assert [d["variable"] for d in res["distributions"]] == ["digit"]  # continuous ones are not tables


def test_sample_given_intensity_is_conditioning(client):
    seen = client.post("/api/sample", json={"n": 4, "seed": 0, "evidence": {"intensity": 200}}).json()
    made = client.post("/api/sample", json={"n": 4, "seed": 0, "do": {"intensity": 200}}).json()
    assert seen["values"]["intensity"] == [200.0] * 4 == made["values"]["intensity"]
    e_seen = next(c for c in seen["continuous"] if c["variable"] == "thickness")["expected"]
    e_made = next(c for c in made["continuous"] if c["variable"] == "thickness")["expected"]
    assert e_made["value"] == pytest.approx(THICKNESS.mean()) and e_seen["value"] > THICKNESS.mean() + 0.3


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"do": {"thickness": "3.5"}}, 400, "do.thickness: 'thickness' is continuous: give a number, not the string \"3.5\""),
        ({"do": {"thickness": 0.2}}, 400, "do.thickness: 0.2 is outside the support of 'thickness' (0.5, inf)"),
        ({"evidence": {"intensity": 300}}, 400, "evidence.intensity: 300 is outside the support of 'intensity' (64, 255)"),
        ({"do": {"digit": 3}}, 422, "do.digit: Input should be a valid string ('digit' is discrete"),
        ({"do": {"thickness": True}}, 422, "do.thickness: Input should be a valid string (a value's name), or a number for a continuous variable"),
        ({"do": {"thickness": None}}, 422, "do.thickness: Input should be a valid string"),
    ],
)
def test_bad_continuous_values_get_one_clear_error(client, body, status, message):
    assert message in error(client.post("/api/sample", json={"n": 2, **body}), status)


def test_not_a_number_is_refused(client):
    res = client.post("/api/sample", content=b'{"n": 2, "do": {"thickness": NaN}}', headers={"content-type": "application/json"})
    assert error(res, 400) == "do.thickness: 'thickness' must be a finite number, got nan"
    res = client.post("/api/counterfactual", content=b'{"index": 0, "do": {"intensity": Infinity}}', headers={"content-type": "application/json"})
    assert error(res, 400) == "do.intensity: 'intensity' must be a finite number, got inf"


def test_gallery_labels_are_numbers(client, test_split):
    g = client.get("/api/gallery", params={"n": 3}).json()
    assert g["total"] == len(test_split)
    images, labels = test_split.batch([0, 1, 2])
    numbers = test_split.continuous_batch([0, 1, 2]).numpy()
    for item, im, row, cont in zip(g["items"], images, labels, numbers):
        np.testing.assert_array_equal(grey(item["image"]), im[0].numpy())
        assert item["labels"]["digit"] == str(int(row[0]))
        assert [item["labels"]["thickness"], item["labels"]["intensity"]] == pytest.approx(cont.tolist())


def test_counterfactual_do_thickness(client, test_split):
    res = client.post("/api/counterfactual", json={"index": 0, "do": {"thickness": 3.5}, "seed": 0})
    assert res.status_code == 200, res.text
    body = res.json()
    out = {v["variable"]: v for v in body["variables"]}
    _, labels = test_split.batch([0])
    t_f, i_f = test_split.continuous_batch([0])[0].tolist()
    assert out["thickness"]["factual"] == pytest.approx(t_f) and out["intensity"]["factual"] == pytest.approx(i_f)
    assert out["thickness"]["counterfactual"] == 3.5  # the intervened value
    assert out["digit"]["factual"] == out["digit"]["counterfactual"] == str(int(labels[0, 0]))  # not a descendant: kept
    # The descendant is recomputed with the unit's own noise U: the mechanism's argument
    # moves by exactly 2 * (3.5 - thickness).
    moved = logit_intensity(out["intensity"]["counterfactual"]) - logit_intensity(i_f)
    assert moved == pytest.approx(2 * (3.5 - t_f), abs=1e-3)
    for name in ("thickness", "intensity"):  # the oracle's readings of both pictures, as numbers
        assert out[name]["continuous"] and math.isfinite(out[name]["read_factual"]) and math.isfinite(out[name]["read_counterfactual"])
    assert out["digit"]["exact"][int(labels[0, 0])] == pytest.approx(1.0)
    np.testing.assert_array_equal(grey(body["factual"]), test_split.batch([0])[0][0, 0].numpy())
    null = client.post("/api/counterfactual", json={"index": 0, "do": {}, "seed": 0}).json()
    for v in null["variables"]:  # the null intervention keeps every value
        assert v["counterfactual"] == v["factual"]


def test_counterfactual_of_an_upload_needs_its_continuous_labels(client, test_split):
    images, labels = test_split.batch([1])
    t_f, i_f = test_split.continuous_batch([1])[0].tolist()
    buf = io.BytesIO()
    Image.fromarray(images[0, 0].numpy()).save(buf, format="PNG")
    upload = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    post = lambda body: client.post("/api/counterfactual", json={"image": upload, **body})  # noqa: E731
    assert "give the continuous labels too (intensity)" in error(post({"labels": {"thickness": t_f}, "do": {}}), 400)
    assert "'intensity' is continuous: give a number" in error(post({"labels": {"thickness": t_f, "intensity": "150"}, "do": {}}), 400)
    res = post({"labels": {"thickness": t_f, "intensity": i_f}, "do": {"intensity": 100}})
    assert res.status_code == 200, res.text
    out = {v["variable"]: v for v in res.json()["variables"]}
    assert out["intensity"]["counterfactual"] == 100.0
    assert out["thickness"]["counterfactual"] == pytest.approx(t_f)  # the cause is not a descendant of intensity
    assert out["digit"]["factual"] == out["digit"]["counterfactual"]  # digit unknown: abducted, then kept


def test_the_documented_morpho_queries_are_answered_as_shown(client):
    """The query lines of docs/viewer.md's morpho examples: the kind and every number shown
    (rounded to 4 decimals there; the answers are the graph's, not the model's)."""
    import json
    import re
    import shlex
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "viewer.md").read_text()
    examples = re.findall(r"^(curl -s -X POST localhost:8000/api/query .*)\n(\{.*\})$", text, re.M)
    assert len(examples) >= 2
    for command, shown in examples:
        words = shlex.split(command)
        answer = client.post("/api/query", json=json.loads(words[words.index("-d") + 1])).json()
        assert f'"kind": "{answer["kind"]}"' in shown, command
        numbers = [e["value"] for e in [answer.get("estimate"), answer.get("mean"), *answer.get("quantiles", [])] if e]
        documented = [float(x) for x in re.findall(r'"value": (-?[0-9.e-]+)', shown)]
        assert documented and documented == pytest.approx(numbers[: len(documented)], abs=1e-4), command


def test_a_number_beyond_any_float_is_not_finite(client):
    body = b'{"n": 2, "do": {"intensity": -' + b"9" * 400 + b"}}"
    res = client.post("/api/sample", content=body, headers={"content-type": "application/json"})
    assert error(res, 400) == "do.intensity: 'intensity' must be a finite number, got -inf"
