"""Draw a causal graph as a layered picture (PNG or SVG), with matplotlib only.

The layout is the classic layered ("Sugiyama") drawing of a DAG, in four steps:

1. **Layers.** A variable's layer is the length of the longest path reaching it from a
   root, so every arrow points down. A root is then lowered to just above its highest
   child, which keeps arrows from root causes short. The image node, when the graph has
   one, gets a layer of its own at the bottom.
2. **Dummy nodes.** An arrow spanning several layers is cut into one step per layer by
   invisible dummy nodes; they take part in the ordering and the spacing, so long arrows
   run between boxes, never through them.
3. **Order within layers.** A few sweeps down and up sort every layer by the barycentre
   (mean position) of each node's neighbours in the layer above (or below), which pulls
   connected nodes together and removes most crossings; the order with the fewest
   crossings is kept.
4. **Coordinates.** Each node wants to sit at the mean x of its neighbours; boxes must keep
   their order and not overlap. That is an isotonic regression, solved exactly by the
   pool-adjacent-violators algorithm, alternating downward and upward passes.

Boxes are sized from the measured width of their text, and the figure from the widest
layer and the number of layers, so names never overlap. Observed variables are blue,
hidden ones grey with a dashed outline, the image node gold with a double outline.
Arrows are smooth curves that leave a box's bottom edge and end on the child's top edge.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
from matplotlib.path import Path as MplPath
from matplotlib.textpath import TextToPath

from causalvae.errors import GraphError
from causalvae.graph import Graph
from causalvae.io import atomic_write_bytes

__all__ = ["draw_graph", "layout"]

FORMATS = {".png": "png", ".svg": "svg"}
DPI = 150

NAME_SIZE = 9.0
VALUES_SIZE = 7.0
MAX_VALUES_WIDTH = 2.0  # inches; longer value lists are cut with "…"
BOX_PAD = 0.22
BOX_MIN_WIDTH = 0.9
BOX_HEIGHT = 0.52
LAYER_STEP = 1.25  # vertical distance between layer centres, inches
GAP = 0.3  # horizontal gap between boxes
DUMMY_WIDTH = 0.12
PORT_STEP = 0.2  # horizontal distance between arrow ends on a box edge
PORT_INSET = 0.2  # no arrow ends closer than this to a box's side
IMAGE_RIM = 0.05  # the gap of the image box's double outline
MARGIN = 0.45
TOP = 1.05  # room for the title and the legend
MIN_WIDTH = 6.0  # so that the title and the legend fit

_TEXT_METRICS = TextToPath()

OBSERVED_STYLE = {"facecolor": "#dbe9f6", "edgecolor": "#1f4e79", "linestyle": "-"}
HIDDEN_STYLE = {"facecolor": "#e4e4e4", "edgecolor": "#555555", "linestyle": (0, (4, 2.5))}
IMAGE_STYLE = {"facecolor": "#fff2cc", "edgecolor": "#b07d00", "linestyle": "-"}
EDGE_COLOR = "#3a3a3a"
IMAGE_EDGE_COLOR = "#b07d00"


@dataclass
class _Node:
    """A box (variable or image) or an invisible dummy point on a long arrow."""

    key: str
    layer: int
    width: float
    kind: str  # "observed", "hidden", "image" or "dummy"
    label: str = ""
    values: str = ""
    x: float = 0.0


def draw_graph(graph: Graph, out_path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Draw ``graph`` to ``out_path`` (``.png`` at 150 dpi, or ``.svg``) and return the path.

    The file is written atomically: a reader never sees a half-written picture.
    """
    if not isinstance(graph, Graph):
        raise GraphError(f"draw_graph needs a Graph, got {type(graph).__name__}")
    target = Path(out_path)
    fmt = FORMATS.get(target.suffix.lower())
    if fmt is None:
        allowed = " or ".join(FORMATS)
        raise GraphError(f"cannot draw to '{target}': use a file name ending in {allowed}")
    nodes, chains = _layout(graph)
    fig = _render(graph, nodes, chains, title)
    buffer = io.BytesIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "causalvae"}):
        fig.savefig(buffer, format=fmt, dpi=DPI, metadata={"Date": None} if fmt == "svg" else None)
    fig.clear()
    return atomic_write_bytes(target, buffer.getvalue())


def layout(graph: Graph) -> dict:
    """The drawing's geometry as plain data, for other renderers (the web viewer draws it as SVG).

    Lengths are in inches, ``y`` growing downwards from the top layer. Each node has its
    centre (``x``, ``y``), ``width``, ``kind`` (observed, hidden or image) and ``values`` text;
    each edge runs through ``points``: it leaves the parent's bottom edge, crosses every layer
    in between straight down (past the boxes), and enters the child's top edge. Joining
    consecutive points with cubic curves whose tangents are vertical gives
    :func:`draw_graph`'s arrows.

        >>> g = Graph.load("scenes")
        >>> sorted(n["kind"] for n in layout(g)["nodes"])[:3]
        ['hidden', 'hidden', 'hidden']
    """
    if not isinstance(graph, Graph):
        raise GraphError(f"layout needs a Graph, got {type(graph).__name__}")
    nodes, chains = _layout(graph)
    depth = max(n.layer for n in nodes.values()) + 1

    def y_of(node: _Node) -> float:
        return MARGIN / 2 + BOX_HEIGHT / 2 + node.layer * LAYER_STEP

    starts = _ports(nodes, chains, outgoing=True)
    ends = _ports(nodes, chains, outgoing=False)
    edges = []
    for index, chain in enumerate(chains):
        points = [(starts[index], y_of(nodes[chain[0]]) + BOX_HEIGHT / 2)]
        for key in chain[1:-1]:
            x, y = nodes[key].x, y_of(nodes[key])
            points += [(x, y - BOX_HEIGHT / 2), (x, y + BOX_HEIGHT / 2)]
        rim = IMAGE_RIM if nodes[chain[-1]].kind == "image" else 0.0
        points.append((ends[index], y_of(nodes[chain[-1]]) - BOX_HEIGHT / 2 - rim))
        edges.append({"source": chain[0], "target": chain[-1], "points": [[round(x, 4), round(y, 4)] for x, y in points]})
    boxes = [
        {"name": n.key, "kind": n.kind, "x": round(n.x, 4), "y": round(y_of(n), 4), "width": round(n.width, 4), "values": n.values}
        for n in nodes.values() if n.kind != "dummy"
    ]
    width = max(n.x + n.width / 2 for n in nodes.values()) + MARGIN
    height = MARGIN + (depth - 1) * LAYER_STEP + BOX_HEIGHT
    return {"width": round(width, 4), "height": round(height, 4), "box_height": BOX_HEIGHT, "nodes": boxes, "edges": edges}


# ----------------------------------------------------------------------------- layout


def _layers(graph: Graph) -> dict[str, int]:
    """Longest path from a root; roots then sit just above their highest child."""
    layer: dict[str, int] = {}
    for name in graph.topological_order:
        layer[name] = 1 + max((layer[p] for p in graph.parents(name)), default=-1)
    for name in graph.names:
        children = graph.children(name)
        if not graph.parents(name) and children:
            layer[name] = min(layer[c] for c in children) - 1
    return layer


def _layout(graph: Graph) -> tuple[dict[str, _Node], list[list[str]]]:
    """Place every box; return the nodes and, per arrow, its chain of node keys."""
    layer = _layers(graph)
    nodes = {name: _variable_node(graph, name, layer[name]) for name in graph.names}
    edges = [(p, name) for name in graph.names for p in graph.parents(name)]
    if graph.image is not None:
        image = graph.image
        bottom = max(layer.values()) + 1
        nodes[image.name] = _Node(image.name, bottom, 0.0, "image", image.name, "image node")
        nodes[image.name].width = _box_width(image.name, "image node")
        edges += [(p, image.name) for p in image.parents]
    chains = []
    for parent, child in edges:
        chain = [parent]
        for step in range(nodes[parent].layer + 1, nodes[child].layer):
            key = f"\0{parent}\0{child}\0{step}"
            nodes[key] = _Node(key, step, DUMMY_WIDTH, "dummy")
            chain.append(key)
        chains.append(chain + [child])
    _widen_for_ports(nodes, chains)
    rows = _order(nodes, chains)
    _coordinates(nodes, rows, chains)
    return nodes, chains


def _widen_for_ports(nodes: dict[str, _Node], chains: list[list[str]]) -> None:
    """Make a box wide enough that its arrows' ends are ``PORT_STEP`` apart."""
    ends: dict[str, list[int]] = {}
    for chain in chains:
        ends.setdefault(chain[0], [0, 0])[0] += 1
        ends.setdefault(chain[-1], [0, 0])[1] += 1
    for key, counts in ends.items():
        nodes[key].width = max(nodes[key].width, PORT_STEP * (max(counts) - 1) + 2 * PORT_INSET)


def _variable_node(graph: Graph, name: str, layer: int) -> _Node:
    var = graph[name]
    values = var.describe() if getattr(var, "is_continuous", False) else _values_text(var.values)
    kind = "hidden" if var.hidden else "observed"
    return _Node(name, layer, _box_width(name, values), kind, name, values)


def _text_width(text: str, size: float, bold: bool = False) -> float:
    """The width of ``text`` in inches at ``size`` points."""
    if not text:
        return 0.0
    prop = FontProperties(size=size, weight="bold" if bold else "normal")
    width, _, _ = _TEXT_METRICS.get_text_width_height_descent(text, prop, ismath=False)
    return width / 72.0


def _values_text(values: Sequence[str]) -> str:
    """The values on one line, cut with "…" when the list is too long to read."""
    full = ", ".join(values)
    if _text_width(full, VALUES_SIZE) <= MAX_VALUES_WIDTH:
        return full
    shown: list[str] = []
    for value in values:
        candidate = ", ".join(shown + [value]) + f", … ({len(values)})"
        if shown and _text_width(candidate, VALUES_SIZE) > MAX_VALUES_WIDTH:
            break
        shown.append(value)
    return ", ".join(shown) + f", … ({len(values)})"


def _box_width(name: str, values: str) -> float:
    text = max(_text_width(name, NAME_SIZE, bold=True), _text_width(values, VALUES_SIZE))
    return max(BOX_MIN_WIDTH, text + 2 * BOX_PAD)


def _neighbours(chains: list[list[str]]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per node, its neighbours in the layer above and in the layer below."""
    up: dict[str, list[str]] = {}
    down: dict[str, list[str]] = {}
    for chain in chains:
        for a, b in zip(chain, chain[1:]):
            down.setdefault(a, []).append(b)
            up.setdefault(b, []).append(a)
    return up, down


def _order(nodes: dict[str, _Node], chains: list[list[str]], sweeps: int = 6) -> list[list[str]]:
    """Order each layer by barycentre sweeps; keep the ordering with the fewest crossings."""
    depth = max(n.layer for n in nodes.values()) + 1
    rows: list[list[str]] = [[] for _ in range(depth)]
    for key, node in nodes.items():
        rows[node.layer].append(key)
    up, down = _neighbours(chains)
    best = [list(r) for r in rows]
    best_crossings = _crossings(rows, down)
    for _ in range(sweeps):
        for i in range(1, depth):
            _sort_by_barycentre(rows, i, i - 1, up)
        for i in range(depth - 2, -1, -1):
            _sort_by_barycentre(rows, i, i + 1, down)
        crossings = _crossings(rows, down)
        if crossings < best_crossings:
            best, best_crossings = [list(r) for r in rows], crossings
    return best


def _sort_by_barycentre(rows: list[list[str]], i: int, ref: int, links: dict[str, list[str]]) -> None:
    position = {key: p for p, key in enumerate(rows[ref])}

    def centre(item: tuple[int, str]) -> float:
        index, key = item
        linked = [position[k] for k in links.get(key, ()) if k in position]
        return sum(linked) / len(linked) if linked else float(index) * len(rows[ref]) / max(len(rows[i]), 1)

    rows[i] = [key for _, key in sorted(enumerate(rows[i]), key=centre)]


def _crossings(rows: list[list[str]], down: dict[str, list[str]]) -> int:
    """Pairs of arrows that cross between consecutive layers."""
    total = 0
    for upper, lower in zip(rows, rows[1:]):
        position = {key: p for p, key in enumerate(lower)}
        pairs = [(a, position[b]) for a, key in enumerate(upper) for b in down.get(key, ()) if b in position]
        for k, (a1, b1) in enumerate(pairs):
            for a2, b2 in pairs[k + 1:]:
                total += (a1 - a2) * (b1 - b2) < 0
    return total


def _coordinates(nodes: dict[str, _Node], rows: list[list[str]], chains: list[list[str]]) -> None:
    """x of every node: near its neighbours' mean, in order, without overlaps."""
    up, down = _neighbours(chains)
    for row in rows:
        _place(nodes, row, [0.0] * len(row))
    for sweep in range(8):
        links = up if sweep % 2 == 0 else down
        order = range(1, len(rows)) if sweep % 2 == 0 else range(len(rows) - 2, -1, -1)
        for i in order:
            desired = []
            for key in rows[i]:
                linked = [nodes[k].x for k in links.get(key, ())]
                desired.append(float(np.mean(linked)) if linked else nodes[key].x)
            _place(nodes, rows[i], desired)
    left = min(n.x - n.width / 2 for n in nodes.values())
    for node in nodes.values():
        node.x += MARGIN - left


def _place(nodes: dict[str, _Node], row: list[str], desired: list[float]) -> None:
    """Closest positions to ``desired`` keeping order and gaps (pool adjacent violators)."""
    if not row:
        return
    offsets = [0.0]
    for a, b in zip(row, row[1:]):
        gap = GAP if "dummy" not in (nodes[a].kind, nodes[b].kind) else GAP / 2
        offsets.append(offsets[-1] + (nodes[a].width + nodes[b].width) / 2 + gap)
    weights = [0.3 if nodes[k].kind == "dummy" else 1.0 for k in row]
    targets = [d - o for d, o in zip(desired, offsets)]
    blocks: list[list[float]] = []  # [weighted sum, weight, count]
    for t, w in zip(targets, weights):
        blocks.append([t * w, w, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, wt, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += wt
            blocks[-1][2] += n
    values = [b[0] / b[1] for b in blocks for _ in range(int(b[2]))]
    for key, y, o in zip(row, values, offsets):
        nodes[key].x = y + o


# ----------------------------------------------------------------------------- rendering


def _render(graph: Graph, nodes: dict[str, _Node], chains: list[list[str]], title: str | None) -> Figure:
    depth = max(n.layer for n in nodes.values()) + 1
    content = max(n.x + n.width / 2 for n in nodes.values()) + MARGIN
    width = max(MIN_WIDTH, content)
    for node in nodes.values():
        node.x += (width - content) / 2
    height = TOP + (depth - 1) * LAYER_STEP + BOX_HEIGHT + MARGIN
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")

    def y_of(node: _Node) -> float:
        return height - TOP - BOX_HEIGHT / 2 - node.layer * LAYER_STEP

    _draw_edges(ax, nodes, chains, y_of)
    for node in nodes.values():
        if node.kind != "dummy":
            _draw_box(ax, node, y_of(node))
    hidden = len(graph.hidden)
    heading = title or f"{graph.name}: {len(graph)} variables, {hidden} hidden"
    fig.text(0.5, 1 - 0.3 / height, heading, ha="center", va="center", fontsize=13, weight="bold")
    handles = [
        Patch(**OBSERVED_STYLE, label="observed"),
        Patch(**HIDDEN_STYLE, label="hidden (unobserved)"),
    ]
    if graph.image is not None:
        handles.append(Patch(**IMAGE_STYLE, label="image"))
    fig.legend(
        handles=handles, loc="center", bbox_to_anchor=(0.5, 1 - 0.72 / height), ncol=len(handles),
        frameon=False, fontsize=10, handlelength=2.6, handleheight=1.5, columnspacing=2.5,
    )
    return fig


def _draw_box(ax, node: _Node, y: float) -> None:
    style = {"observed": OBSERVED_STYLE, "hidden": HIDDEN_STYLE, "image": IMAGE_STYLE}[node.kind]
    left, bottom = node.x - node.width / 2, y - BOX_HEIGHT / 2
    box = "round,pad=0,rounding_size=0.09"
    if node.kind == "image":
        outer = IMAGE_RIM
        ax.add_patch(FancyBboxPatch(
            (left - outer, bottom - outer), node.width + 2 * outer, BOX_HEIGHT + 2 * outer,
            boxstyle="round,pad=0,rounding_size=0.13", facecolor="white", edgecolor=style["edgecolor"],
            linewidth=1.4, zorder=2,
        ))
    ax.add_patch(FancyBboxPatch(
        (left, bottom), node.width, BOX_HEIGHT, boxstyle=box, linewidth=1.3, zorder=3, **style,
    ))
    italic = "italic" if node.kind == "hidden" else "normal"
    ax.text(node.x, y + 0.085, node.label, ha="center", va="center", fontsize=NAME_SIZE,
            weight="bold", style=italic, zorder=4, color="#111111")
    ax.text(node.x, y - 0.12, node.values, ha="center", va="center", fontsize=VALUES_SIZE,
            color="#404040", zorder=4, style="italic" if node.kind == "image" else "normal")


def _draw_edges(ax, nodes: dict[str, _Node], chains: list[list[str]], y_of) -> None:
    """Smooth arrows from the parent's bottom edge to the child's top edge.

    Through a dummy node an arrow runs straight down across the layer's band of boxes, so
    it only bends in the free space between layers.
    """
    starts = _ports(nodes, chains, outgoing=True)
    ends = _ports(nodes, chains, outgoing=False)
    for index, chain in enumerate(chains):
        points = [(starts[index], y_of(nodes[chain[0]]) - BOX_HEIGHT / 2)]
        for key in chain[1:-1]:
            x, y = nodes[key].x, y_of(nodes[key])
            points += [(x, y + BOX_HEIGHT / 2), (x, y - BOX_HEIGHT / 2)]
        rim = IMAGE_RIM if nodes[chain[-1]].kind == "image" else 0.0
        points.append((ends[index], y_of(nodes[chain[-1]]) + BOX_HEIGHT / 2 + rim))
        to_image = nodes[chain[-1]].kind == "image"
        ax.add_patch(FancyArrowPatch(
            path=_curve(points), arrowstyle="-|>", mutation_scale=11, shrinkA=0, shrinkB=0,
            linewidth=1.0, color=IMAGE_EDGE_COLOR if to_image else EDGE_COLOR,
            alpha=0.85, zorder=1,
        ))


def _ports(nodes: dict[str, _Node], chains: list[list[str]], outgoing: bool) -> list[float]:
    """Where each arrow meets its box: spread along the edge, sorted by direction."""
    groups: dict[str, list[int]] = {}
    for index, chain in enumerate(chains):
        groups.setdefault(chain[0] if outgoing else chain[-1], []).append(index)
    where = [0.0] * len(chains)
    for key, members in groups.items():
        node = nodes[key]
        other = [nodes[chains[i][1] if outgoing else chains[i][-2]].x for i in members]
        members = [m for _, m in sorted(zip(other, members))]
        span = PORT_STEP * (len(members) - 1)
        for k, index in enumerate(members):
            offset = 0.0 if len(members) == 1 else span * (k / (len(members) - 1) - 0.5)
            where[index] = node.x + offset
    return where


def _curve(points: list[tuple[float, float]]) -> MplPath:
    """Cubic Béziers through the points, leaving and entering each one vertically."""
    verts = [points[0]]
    codes = [MplPath.MOVETO]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        bend = (y0 - y1) / 2
        verts += [(x0, y0 - bend), (x1, y1 + bend), (x1, y1)]
        codes += [MplPath.CURVE4] * 3
    return MplPath(verts, codes)
