"""The docs never rot: every shown output is current and every example runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from causalvae.graph import Graph

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_rendered_outputs_are_current():
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "render.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, f"run `python docs/render.py`: {proc.stdout}{proc.stderr}"


def test_graph_format_examples_run(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "graph-format.md").read_text()
    g = Graph.from_yaml("graph-format.md", text=re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    assert g.variables["rain"].values == ("no", "yes")  # YAML 1.2 booleans: no/yes stay names
    np.testing.assert_array_equal(g.cpt("grass")[1, 1], [0.01, 0.99])
    monkeypatch.chdir(tmp_path)
    python = re.search(r"## Python\n\n```python\n(.*?)```", text, re.S).group(1)
    exec(compile(python, "graph-format.md", "exec"), {})
    assert Graph.load(tmp_path / "garden.bif").cpt("grass").shape == (2, 2)


def test_query_doc_examples_run():
    text = (ROOT / "docs" / "queries.md").read_text()
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        exec(compile(block, "queries.md", "exec"), {})


def test_documented_style_defaults_match_the_code():
    from causalvae.worlds.scenes import StyleRanges

    text = (ROOT / "docs" / "dataset-format.md").read_text()
    for name, (low, high) in vars(StyleRanges()).items():
        assert re.search(rf"`{name}`[^`]*?{low:g}:{high:g}", text), name


def test_sprites_doc_tables_are_the_graphs_tables():
    """docs/sprites.md shows the sprites graph's CPTs; they must be the YAML's numbers."""
    g = Graph.load("sprites")
    text = (ROOT / "docs" / "sprites.md").read_text()
    root = re.search(r"^\| P\(shape\) \|(.*)\|$", text, re.M)
    np.testing.assert_allclose([float(x) for x in root.group(1).split("|")], g.cpt("shape"))
    tables = re.findall(r"^\| P\((\w+) \\\| (\w+)\) \|.*\n\|[-:|]+\n((?:\|.*\n)+)", text, re.M)
    assert {t[0] for t in tables} == {"scale", "orientation", "posX", "posY"}
    for var, parent, body in tables:
        assert g.parents(var) == (parent,)
        rows = [[c.strip() for c in line.strip("|").split("|")] for line in body.strip().splitlines()]
        assert len(rows) == g.card(parent)
        for i, row in enumerate(rows):
            np.testing.assert_allclose([float(x) for x in row[1:]], g.cpt(var)[i], atol=5e-4, err_msg=f"{var} row {row[0]}")


def test_the_error_catalogue_is_current():
    """docs/errors.md shows the message each bad input gets, produced by running it."""
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "errors.py"), "--check"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"run `python docs/errors.py`: {proc.stdout}{proc.stderr}"
