"""The viewer's page in a real browser: the system's headless Chromium, driven by Playwright,
against `causalvae serve` started on a tiny model (of the scenes, sprites and morpho worlds). Set
evidence and sample, pick a test picture and intervene, ask a query: pictures and numbers appear,
and change.

Playwright never downloads a browser here: the executable is CHROMIUM_PATH (default
/usr/bin/chromium; `.ci/run` installs Debian's package when it is missing)."""

from __future__ import annotations

import base64
import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("playwright", reason="the browser test needs the playwright package (pip install -e '.[test]')")

from playwright.sync_api import expect, sync_playwright  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(viewer_run, tmp_path_factory):
    """`causalvae serve RUN --oracle ORACLE --port P` in a subprocess; yields its base URL."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CAUSALVAE_REQUIRE_BROWSER"):  # set by .ci/run: CI must not skip this
            pytest.fail(f"no Chromium at {CHROMIUM}, and CAUSALVAE_REQUIRE_BROWSER is set")
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium package or set CHROMIUM_PATH")
    data, run, oracle = viewer_run
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "causalvae", "serve", str(run), "--oracle", str(oracle), "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/graph", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(f"the server did not start:\n{log.read_text()}")
            time.sleep(0.25)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def server(viewer_run, tmp_path_factory):
    yield from serve(viewer_run, tmp_path_factory)


@pytest.fixture(scope="module")
def sprites_server(sprites_viewer_run, tmp_path_factory):
    yield from serve(sprites_viewer_run, tmp_path_factory)


def browse(server, tmp_path):
    """The viewer's page at ``server`` in headless Chromium, ready; no page error and no
    request outside the viewer."""
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS, viewport={"width": 1400, "height": 1000}
        )
        page = context.new_page()
        errors, elsewhere = [], []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda r: None if r.url.startswith((server, "data:")) else elsewhere.append(r.url))
        page.set_default_timeout(20_000)
        expect.set_options(timeout=20_000)  # assertions too: a loaded 2-core CI machine is slow
        page.goto(server, timeout=90_000)  # a cold Chromium on a loaded machine starts slowly
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        yield page
        context.close()
        assert not errors, errors
        assert not elsewhere, f"the page fetched from outside the viewer: {elsewhere}"


@pytest.fixture(scope="module")
def morpho_server(morpho_viewer_run, tmp_path_factory):
    yield from serve(morpho_viewer_run, tmp_path_factory)


@pytest.fixture
def page(server, tmp_path):
    yield from browse(server, tmp_path)


@pytest.fixture
def sprites_page(sprites_server, tmp_path):
    yield from browse(sprites_server, tmp_path)


@pytest.fixture
def morpho_page(morpho_server, tmp_path):
    yield from browse(morpho_server, tmp_path)


def _png(src: str) -> np.ndarray:
    """The pixels of a ``data:image/png;base64,...`` picture."""
    with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
        return np.asarray(im)


def test_sample_with_evidence(page):
    assert page.locator("#graph g.node[role=button]").count() == 12
    page.locator('#graph g.node[data-name="reaction"]').click()  # a node opens its controls
    expect(page.locator("#row-reaction")).to_have_class(re.compile("active"))
    expect(page.locator("#value-reaction")).to_be_focused()
    page.select_option("#value-reaction", "Dying")
    expect(page.locator('#graph g.node[data-name="reaction"] .values')).to_have_text("given = Dying")
    page.fill("#sample-n", "8")
    page.click("#sample-run")
    grid = page.locator("#sample-grid img")
    expect(grid).to_have_count(8)
    assert grid.first.get_attribute("src").startswith("data:image/png;base64,")
    for caption in page.locator("#sample-grid figcaption").all_inner_texts():
        assert caption.endswith("Dying")
    table = page.locator("#sample-table")
    expect(table).to_contain_text("0.5993")  # P(action=Attack | reaction=Dying), exactly
    expect(table).to_contain_text("read off the pictures (8)")
    first = grid.first.get_attribute("src")
    page.fill("#sample-seed", "1")
    page.click("#sample-run")
    expect(grid.first).not_to_have_attribute("src", first)


def test_counterfactual_of_a_gallery_picture(page):
    page.click("#tab-counterfactual")
    thumb = page.locator("#gallery-0")
    expect(thumb).to_be_visible()
    factual_action = re.search(r"action=(\w+)", thumb.get_attribute("title")).group(1)
    thumb.click()
    result = page.locator("#cf-result")
    expect(result).to_be_visible()
    for k in ("factual", "reconstruction", "counterfactual", "difference"):
        expect(page.locator(f"#cf-{k}")).to_have_attribute("src", re.compile("^data:image/png;base64,"))
    expect(page.locator("#cf-caption")).to_have_text("counterfactual: no intervention")
    before = page.locator("#cf-table").inner_text()
    picture = page.locator("#cf-counterfactual").get_attribute("src")
    other = next(v for v in ("Attack", "Taunt", "Walk") if v != factual_action)
    page.select_option("#mode-action", "do")
    page.select_option("#value-action", other)  # intervening re-asks at once
    expect(page.locator("#cf-caption")).to_have_text(f"counterfactual: do(action={other})")
    expect(page.locator("#cf-table")).not_to_have_text(before)
    expect(page.locator("#cf-counterfactual")).not_to_have_attribute("src", picture)
    row = page.locator("#cf-table tbody tr").filter(has=page.locator("th", has_text=re.compile("^action$")))
    expect(row.locator("td").nth(0)).to_have_text(factual_action)
    expect(row.locator("td").nth(1)).to_have_text(other)
    assert page.locator("#graph > path.edge.cut").count() == 3  # do() cuts the arrows into action


def test_counterfactual_of_an_upload(page, viewer_run, tmp_path):
    from PIL import Image

    from causalvae.data import load as load_dataset

    images, _ = load_dataset(viewer_run[0], split="test", verify=False).batch([1])
    Image.fromarray(images[0].numpy().transpose(1, 2, 0)).save(tmp_path / "mine.png")
    Image.new("RGB", (32, 32)).save(tmp_path / "small.png")
    page.click("#tab-counterfactual")
    page.click("#upload summary")
    page.set_input_files("#upload-file", str(tmp_path / "small.png"))
    page.click("#upload-run")
    expect(page.locator("#cf-error")).to_contain_text("the picture is 32x32; this model needs 64x64")
    page.set_input_files("#upload-file", str(tmp_path / "mine.png"))
    page.select_option("#upload-actor", "Golem")
    page.click("#upload-run")
    expect(page.locator("#cf-error")).to_be_hidden()
    expect(page.locator("#cf-factual")).to_have_attribute("src", re.compile("^data:image/png;base64,"))
    row = page.locator("#cf-table tbody tr").filter(has=page.locator("th", has_text=re.compile("^actor$")))
    expect(row.locator("td").nth(0)).to_have_text("Golem")  # the label given with the upload


def test_query_and_a_bad_query(page):
    page.click("#tab-query")
    page.fill("#query-text", "P(action | reaction=Dying)")
    page.press("#query-text", "Enter")
    expect(page.locator("#query-result table")).to_contain_text("0.5993")
    page.fill("#query-text", "P(reaction[action=Attack] | action=Taunt, reaction=Idle)")
    page.click("#query-run")
    expect(page.locator("#query-result table")).to_contain_text("0.6996")
    page.fill("#query-text", "P(action | reaction=Dying")
    page.click("#query-run")
    expect(page.locator("#query-error")).to_be_visible()
    expect(page.locator("#query-error")).to_contain_text("expected ')' to close P(...)")
    expect(page.locator("#query-result table")).to_have_count(0)


# ---------------------------------------------------------------------------- the sprites world


def test_sprites_sample_given_a_shape(sprites_page):
    page = sprites_page
    assert page.locator("#graph g.node[role=button]").count() == 5  # one per factor (the image is no control)
    page.locator('#graph g.node[data-name="shape"]').click()
    page.select_option("#value-shape", "heart")
    page.fill("#sample-n", "8")
    page.click("#sample-run")
    grid = page.locator("#sample-grid img")
    expect(grid).to_have_count(8)
    for caption in page.locator("#sample-grid figcaption").all_inner_texts():
        assert caption.startswith("heart ")
    # Binary one-channel 64 x 64 pictures: black and white only.
    pixels = _png(grid.first.get_attribute("src"))
    assert pixels.shape[:2] == (64, 64) and set(np.unique(pixels).tolist()) <= {0, 255}
    expect(page.locator("#sample-table")).to_contain_text("0.4000")  # P(scale=1.0 | shape=heart), exactly


def test_sprites_counterfactual_of_a_gallery_picture(sprites_page):
    page = sprites_page
    page.click("#tab-counterfactual")
    thumb = page.locator("#gallery-0")
    expect(thumb).to_be_visible()
    factual = re.search(r"scale=([0-9.]+)", thumb.get_attribute("title")).group(1)
    thumb.click()
    expect(page.locator("#cf-caption")).to_have_text("counterfactual: no intervention")
    picture = page.locator("#cf-counterfactual").get_attribute("src")
    other = "1.0" if factual != "1.0" else "0.5"
    page.select_option("#mode-scale", "do")
    page.select_option("#value-scale", other)
    expect(page.locator("#cf-caption")).to_have_text(f"counterfactual: do(scale={other})")
    expect(page.locator("#cf-counterfactual")).not_to_have_attribute("src", picture)
    row = page.locator("#cf-table tbody tr").filter(has=page.locator("th", has_text=re.compile("^scale$")))
    expect(row.locator("td").nth(0)).to_have_text(factual)
    expect(row.locator("td").nth(1)).to_have_text(other)
    for k in ("factual", "reconstruction", "counterfactual"):
        pixels = _png(page.locator(f"#cf-{k}").get_attribute("src"))
        assert pixels.shape[:2] == (64, 64) and set(np.unique(pixels).tolist()) <= {0, 255}


# ---------------------------------------------------------------------------- the morpho world


@pytest.mark.slow  # its fixture renders 100 digits (35 ms each)
def test_morpho_continuous_variables_take_and_show_numbers(morpho_page):
    """One page, to keep the browser's time small: number inputs within the support, a sample
    under do(thickness=3.5) with the oracle's readings, the counterfactual of a test digit, a
    query's summary with its error, and a value outside the support refused."""
    page = morpho_page
    thickness, intensity = page.locator("#value-thickness"), page.locator("#value-intensity")
    assert thickness.get_attribute("type") == "number" and thickness.get_attribute("min") == "0.5" and thickness.get_attribute("max") is None
    assert (intensity.get_attribute("min"), intensity.get_attribute("max")) == ("64", "255")
    expect(page.locator("#row-thickness .range")).to_have_text(re.compile(r"^ 1\.24 – 4\.5$"))  # the marginal's 0.5% and 99.5% quantiles
    assert page.locator("#value-digit").evaluate("e => e.tagName") == "SELECT"
    thickness.fill("3.5")
    thickness.press("Tab")  # the value is taken when the input is left
    page.select_option("#mode-thickness", "do")
    expect(page.locator('#graph g.node[data-name="thickness"] .values')).to_have_text("do = 3.5")
    page.fill("#sample-n", "4")
    page.click("#sample-run")
    expect(page.locator("#sample-grid img")).to_have_count(4)
    for caption in page.locator("#sample-grid figcaption:not(.read)").all_inner_texts():
        assert caption.split(" ")[1] == "3.5"  # digit thickness intensity
    reads = page.locator("#sample-grid figcaption.read").all_inner_texts()
    assert len(reads) == 4 and all(re.fullmatch(r"read [0-9.]+ [0-9.]+", r) for r in reads)  # the oracle's regressors
    row = page.locator("#sample-table tr[data-variable=intensity]")
    expect(row).to_contain_text("230.36")  # E(intensity | do(thickness=3.5)) by the mixed engine
    expect(page.locator("#sample-table tr[data-variable=thickness] td").first).to_have_text("do")

    page.click("#tab-counterfactual")
    thumb = page.locator("#gallery-0")
    expect(thumb).to_be_visible()
    digit = re.search(r"digit=(\d)", thumb.get_attribute("title")).group(1)
    thumb.click()
    expect(page.locator("#cf-caption")).to_have_text("counterfactual: do(thickness=3.5)")
    rows = page.locator("#cf-table tbody tr")
    cells = lambda name: rows.filter(has=page.locator("th", has_text=re.compile(f"^{name}$"))).locator("td")  # noqa: E731
    expect(cells("thickness").nth(1)).to_have_text("3.5")
    expect(cells("digit").nth(0)).to_have_text(digit)
    expect(cells("digit").nth(1)).to_have_text(digit)  # not a descendant of thickness
    expect(cells("intensity").nth(2)).to_contain_text("recomputed from its abducted noise")
    expect(cells("intensity").nth(2)).to_contain_text("the oracle reads")

    page.click("#tab-query")
    page.fill("#query-text", "P(thickness | do(intensity=200))")
    page.press("#query-text", "Enter")
    mean = page.locator("#query-result tbody tr").first
    expect(mean).to_contain_text("mean")
    expect(mean.locator("td").nth(0)).to_have_text("2.5")  # the marginal: intervening on the effect
    expect(mean.locator("td").nth(1)).to_have_text("exact")

    page.click("#tab-sample")
    thickness.fill("0.2")
    thickness.press("Tab")
    page.click("#sample-run")
    expect(page.locator("#sample-error")).to_have_text("do.thickness: 0.2 is outside the support of 'thickness' (0.5, inf)")
