"""Screenshots of the web viewer for README.md and docs/viewer.md, one per mode.

Starts `causalvae serve` on the recipe's model (runs/scenes) with its oracle (oracles/scenes),
drives the page in the system's headless Chromium through Playwright (never a downloaded
browser: CHROMIUM_PATH, default /usr/bin/chromium) and writes

    docs/img/viewer_sample.png           evidence reaction=Dying, 16 pictures
    docs/img/viewer_counterfactual.png   a taunting test scene, had the actor attacked
    docs/img/viewer_query.png            the README's counterfactual query

Run it with `make screenshots` (or `.venv/bin/python docs/screenshots.py [--run R --oracle O]`).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, oracle: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cli = Path(sys.executable).parent / "causalvae"
    proc = subprocess.Popen([str(cli), "serve", str(run), "--oracle", str(oracle), "--port", str(port)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/graph", timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("the viewer did not start")
            time.sleep(0.3)


def first_gallery_match(url: str, wanted: dict[str, str]) -> int:
    """The first test picture on the gallery's first page whose labels include ``wanted``."""
    with urllib.request.urlopen(f"{url}/api/gallery?n=24&offset=0") as r:
        items = json.load(r)["items"]
    return next(i["index"] for i in items if all(i["labels"][k] == v for k, v in wanted.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/scenes"), help="relative to the checkout")
    ap.add_argument("--oracle", type=Path, default=Path("oracles/scenes"), help="relative to the checkout")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = ap.parse_args()
    proc, url = start_server(args.run, args.oracle)
    try:
        index = first_gallery_match(url, {"action": "Taunt"})
        with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=ARGS, viewport={"width": 1400, "height": 900}
            )
            page = context.new_page()
            page.set_default_timeout(180_000)  # a busy 2-core machine renders slowly
            expect.set_options(timeout=180_000)
            page.goto(url)
            expect(page.locator("body")).to_have_attribute("data-ready", "true")

            page.select_option("#value-reaction", "Dying")
            page.click("#sample-run")
            expect(page.locator("#sample-grid img")).to_have_count(16)
            page.screenshot(path=args.out / "viewer_sample.png", full_page=True)

            page.click("#clear-settings")
            page.click("#tab-counterfactual")
            page.click(f"#gallery-{index}")
            expect(page.locator("#cf-caption")).to_have_text("counterfactual: no intervention")
            page.select_option("#mode-action", "do")
            page.select_option("#value-action", "Attack")
            expect(page.locator("#cf-caption")).to_have_text("counterfactual: do(action=Attack)")
            page.screenshot(path=args.out / "viewer_counterfactual.png", full_page=True)

            page.click("#clear-settings")
            page.click("#tab-query")
            page.fill("#query-text", "P(reaction[action=Attack] | action=Taunt, reaction=Idle)")
            page.click("#query-run")
            expect(page.locator("#query-result table")).to_be_visible()
            page.screenshot(path=args.out / "viewer_query.png", full_page=True)
            context.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    for name in ("viewer_sample", "viewer_counterfactual", "viewer_query"):
        print(f"wrote {args.out / name}.png")


if __name__ == "__main__":
    main()
