"""Drawing graphs: PNG and SVG files are written atomically, legible, and name every variable."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import matplotlib.image
import pytest

from causalvae.bif import read_bif
from causalvae.draw import _layout, draw_graph
from causalvae.errors import GraphError
from causalvae.graph import Graph

ALARM = Path(str(resources.files("pgmpy") / "utils" / "example_models" / "alarm.bif.gz"))


@pytest.fixture(scope="module")
def alarm() -> Graph:
    return read_bif(ALARM)


def test_png_is_written_and_decodes(tmp_path, scenes):
    out = draw_graph(scenes, tmp_path / "scenes.png")
    assert out == tmp_path / "scenes.png"
    image = matplotlib.image.imread(out)
    height, width, channels = image.shape
    assert 600 <= width <= 6000 and 400 <= height <= 6000 and channels in (3, 4)
    assert image[..., :3].std() > 0.05  # not a blank canvas
    assert [p.name for p in tmp_path.iterdir()] == ["scenes.png"]  # no temporary file left


def test_svg_names_every_variable_and_the_legend(tmp_path, scenes):
    out = draw_graph(scenes, tmp_path / "scenes.svg", title="The duel")
    svg = out.read_text(encoding="utf-8")
    for name in [*scenes.names, scenes.image.name]:
        assert f">{name}<" in svg, name
    for text in ["The duel", "observed", "hidden (unobserved)"]:
        assert text in svg
    assert [p.name for p in tmp_path.iterdir()] == ["scenes.svg"]


def test_hidden_variables_have_dashed_boxes(tmp_path, scenes):
    survey = Graph.load("survey")
    dashes = {}
    for graph in (scenes, survey):
        svg = draw_graph(graph, tmp_path / f"{graph.name}.svg").read_text(encoding="utf-8")
        dashes[graph.name] = svg.count("stroke-dasharray")
    # One dashed box per hidden variable, plus the legend's dashed swatch in both.
    assert dashes["scenes"] - dashes["survey"] == len(scenes.hidden) == 6


def test_alarm_svg_names_all_37_variables(tmp_path, alarm):
    svg = draw_graph(alarm, tmp_path / "alarm.svg").read_text(encoding="utf-8")
    assert len(alarm) == 37
    assert all(f">{name}<" in svg for name in alarm.names)


def test_figure_grows_with_the_graph(tmp_path, alarm):
    small = matplotlib.image.imread(draw_graph(Graph.load("survey"), tmp_path / "survey.png"))
    big = matplotlib.image.imread(draw_graph(alarm, tmp_path / "alarm.png"))
    assert big.shape[0] > 2 * small.shape[0] and big.shape[1] > 2 * small.shape[1]


@pytest.mark.parametrize("name", ["scenes", "alarm"])
def test_layout_keeps_boxes_apart_and_arrows_downward(name, scenes, alarm):
    graph = scenes if name == "scenes" else alarm
    nodes, chains = _layout(graph)
    boxes = [n for n in nodes.values() if n.kind != "dummy"]
    assert len(boxes) == len(graph) + (graph.image is not None)
    by_layer: dict[int, list] = {}
    for node in nodes.values():
        by_layer.setdefault(node.layer, []).append(node)
    for row in by_layer.values():
        row.sort(key=lambda n: n.x)
        for left, right in zip(row, row[1:]):
            assert left.x + left.width / 2 < right.x - right.width / 2, (left.key, right.key)
    for chain in chains:
        layers = [nodes[k].layer for k in chain]
        assert layers == list(range(layers[0], layers[0] + len(chain)))  # one layer per step
    if graph.image is not None:
        assert nodes[graph.image.name].layer == max(n.layer for n in nodes.values())


def test_existing_file_is_replaced(tmp_path, scenes):
    target = tmp_path / "dag.png"
    target.write_bytes(b"old")
    draw_graph(scenes, target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["dag.png"]


@pytest.mark.parametrize("suffix", [".pdf", ".jpg", ""])
def test_other_formats_are_refused(tmp_path, scenes, suffix):
    with pytest.raises(GraphError, match=r"\.png or \.svg"):
        draw_graph(scenes, tmp_path / f"dag{suffix}")
    assert list(tmp_path.iterdir()) == []
