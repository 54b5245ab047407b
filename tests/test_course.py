"""docs/course.py answers the course's questions on a tiny sprites model and fills its page."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def _course_module():
    spec = importlib.util.spec_from_file_location("course", ROOT / "docs" / "course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_course_page_on_a_tiny_sprites_model(tmp_path):
    from causalvae.errors import CausalVAEError
    from causalvae.generate import generate
    from causalvae.oracle import save_oracle, train_oracle
    from causalvae.train import TrainConfig, fit

    data = generate("sprites", tmp_path / "sprites", 300, seed=3)
    run = fit(TrainConfig(data=str(data), out=str(tmp_path / "run"), max_steps=3, batch_size=32, width=8, depth=3, hidden=32, z_dim=3, threads=1), progress=False)
    oracle, acc = train_oracle("sprites", steps=2, batch_size=8, held_out=16, seed=1)
    save_oracle(oracle, tmp_path / "oracle", acc, {"steps": 2})
    course = _course_module()
    page = course.course(str(run), str(tmp_path / "oracle"), tmp_path / "docs", n=40)
    text = page.read_text()
    # The exact tables of the sprites graph: P(heart | scale=1.0) = 0.30 * 0.40 / (0.35 * 0.05
    # + 0.35 * 0.05 + 0.30 * 0.40) = 0.774; under do(scale=1.0) the prior, 0.300.
    assert "P(shape=heart | scale=1.0) =\n0.774" in text and "P(shape=heart | do(scale=1.0)) = 0.300" in text
    assert "posY, a child of scale, is the same under both" in text
    assert "$" not in text.replace("$ ", "")  # every field filled
    assert text.count("| z") == 3  # one traversal row per coordinate of z
    for name in ("given", "see_scale", "do_scale", "counterfactual", "traversal"):
        with Image.open(tmp_path / "docs" / "img" / f"course_{name}.png") as im:
            assert im.width > 200 and im.height > 100
    scenes = generate("scenes", tmp_path / "scenes", 60, seed=1)
    other = fit(TrainConfig(data=str(scenes), out=str(tmp_path / "scene-run"), max_steps=1, batch_size=16, width=8, depth=3, hidden=16, z_dim=2, threads=1), progress=False)
    with pytest.raises(CausalVAEError, match="needs a sprites model"):
        course.course(str(other), str(tmp_path / "oracle"), tmp_path / "x")
