"""The colony graph as an SVG picture: agents sized by reputation, arrows as wide as the credits paid.

Drawn on the server from a `colony.market.graph_view.ColonyGraph`; no script, no style
attribute and no ``<style>`` element (the pages' policy allows styles only from the stylesheet),
so colours and sizes are presentation attributes. Text is ``currentColor``: embedded in a page
it follows the page's light or dark theme; served alone (``standalone=True``) the picture brings
its own white background and dark text.

The layout is Fruchterman–Reingold in NumPy, started from a circle in the graph's node order and
cooled on a fixed schedule: no randomness, so the same graph is always drawn the same way. Edges
attract in proportion to ``log(1 + credits)``, so agents that trade much sit close together.

Why the markup is built with `xml.etree.ElementTree`: agent names and auction goals are user
input, and ElementTree escapes every text and attribute value it writes — the result is safe
to embed in a page as it is, and well-formed XML by construction.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
from numpy.typing import NDArray

from colony.ledger import MICRO, format_amount
from colony.market.graph_view import ColonyGraph, GraphEdge, GraphNode

__all__ = ["GRAPH_H", "HEIGHT", "R_MAX", "R_MIN", "WIDTH", "W_MAX", "W_MIN", "edge_width", "layout", "node_radius", "render_svg"]

#: The picture's size in user units (it scales to its box on a page).
WIDTH, GRAPH_H, LEGEND_H = 880.0, 420.0, 100.0
HEIGHT = GRAPH_H + LEGEND_H
#: Node radius at reputation 0 and 1 (linear in between: 0.5, the prior, is 22).
R_MIN, R_MAX = 10.0, 34.0
#: Edge width at no credits and at the heaviest edge (linear in the credits in between).
W_MIN, W_MAX = 1.5, 12.0
#: Room kept around the drawing for the largest node and its label (two lines under the circle).
_MARGIN_X, _MARGIN_TOP, _MARGIN_BOTTOM = R_MAX + 60.0, R_MAX + 6.0, R_MAX + 36.0
_ITERATIONS = 150
#: The drawing area of node centres, and what separates two nodes beyond their radii.
_LOW = np.array([_MARGIN_X, _MARGIN_TOP])
_HIGH = np.array([WIDTH - _MARGIN_X, GRAPH_H - _MARGIN_BOTTOM])
_GAP, _SEPARATION_PASSES = 44.0, 60
#: Horizontal distance weighs this much in the separation (labels are wider than they are tall).
_SQUASH = np.array([0.6, 1.0])
_ACTIVE, _INACTIVE, _EDGE = "#2f6f6a", "#9a9fa4", "#c47f17"
_SVG_NS = "http://www.w3.org/2000/svg"


def node_radius(reputation: float) -> float:
    """``R_MIN + (R_MAX − R_MIN) · reputation``, the reputation clamped to [0, 1]."""
    return R_MIN + (R_MAX - R_MIN) * min(1.0, max(0.0, reputation))


def edge_width(credits: int, heaviest: int) -> float:
    """``W_MIN + (W_MAX − W_MIN) · credits / heaviest``: the heaviest edge is ``W_MAX`` wide."""
    if heaviest <= 0:
        return W_MIN
    return W_MIN + (W_MAX - W_MIN) * min(1.0, max(0.0, credits / heaviest))


def layout(graph: ColonyGraph) -> dict[str, tuple[float, float]]:
    """Each node's centre (account → x, y) inside the drawing area, margins kept for labels."""
    n = len(graph.nodes)
    if n == 0:
        return {}
    index = {node.account: i for i, node in enumerate(graph.nodes)}
    angles = 2 * np.pi * np.arange(n) / n + (np.pi if n == 2 else -np.pi / 2)  # two side by side
    pos: NDArray[np.float64] = np.column_stack([np.cos(angles), np.sin(angles)])
    if n > 2:
        pos = _relax(pos, _weights(graph, index))
    radii = np.array([node_radius(node.reputation) for node in graph.nodes])
    xy = _separate(_fit(pos), radii)
    return {node.account: (round(float(xy[i, 0]), 1), round(float(xy[i, 1]), 1)) for i, node in enumerate(graph.nodes)}


def _weights(graph: ColonyGraph, index: dict[str, int]) -> NDArray[np.float64]:
    """Symmetric attraction per pair: log(1 + credits) of both directions, the heaviest pair 1."""
    n = len(index)
    w = np.zeros((n, n))
    for edge in graph.edges:
        i, j = index.get(edge.payer), index.get(edge.payee)
        if i is None or j is None or i == j or edge.credits <= 0:
            continue
        strength = math.log1p(edge.credits / MICRO)
        w[i, j] += strength
        w[j, i] += strength
    top = w.max()
    return w / top if top > 0 else w


def _relax(pos: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """Fruchterman–Reingold on a fixed cooling schedule, with a little gravity toward the centre."""
    n = len(pos)
    k = 1.6 / math.sqrt(n)  # the ideal distance between nodes in a box about 2 wide
    linked = weights > 0
    heat = 0.2
    for _ in range(_ITERATIONS):
        delta = pos[:, None, :] - pos[None, :, :]
        dist = np.linalg.norm(delta, axis=-1)
        np.fill_diagonal(dist, 1.0)
        dist = np.maximum(dist, 1e-3)
        push = k * k / dist
        pull = np.where(linked, (0.15 + 0.45 * weights) * dist * dist / k, 0.0)
        strength = push - pull
        np.fill_diagonal(strength, 0.0)
        move = (delta * (strength / dist)[:, :, None]).sum(axis=1) - 0.25 * pos
        length = np.maximum(np.linalg.norm(move, axis=1), 1e-9)
        pos = pos + move * (np.minimum(length, heat) / length)[:, None]
        heat *= 0.97
    return pos


def _fit(pos: NDArray[np.float64]) -> NDArray[np.float64]:
    """Stretch the layout to fill the drawing area (a lone node, or a line, is centred)."""
    low, high = pos.min(axis=0), pos.max(axis=0)
    spread = high - low > 1e-9
    unit = np.where(spread, (pos - low) / np.where(spread, high - low, 1.0), 0.5)
    return np.asarray(_LOW + unit * (_HIGH - _LOW), dtype=np.float64)


def _separate(xy: NDArray[np.float64], radii: NDArray[np.float64]) -> NDArray[np.float64]:
    """Push apart, in the picture's units, nodes closer than their radii plus room for a label.

    Horizontal distance counts for less (labels are wide, and under the circle), so side by side
    nodes keep more room than stacked ones. Stays inside the drawing area.
    """
    n = len(xy)
    need = radii[:, None] + radii[None, :] + _GAP
    np.fill_diagonal(need, 0.0)
    # Coincident nodes part along a direction fixed by their order: deterministic, never 0/0.
    fallback = np.stack([np.cos(np.arange(n)), np.sin(np.arange(n))], axis=1)
    for _ in range(_SEPARATION_PASSES):
        delta = (xy[:, None, :] - xy[None, :, :]) * _SQUASH
        dist = np.linalg.norm(delta, axis=-1)
        short = np.maximum(need - dist, 0.0)
        if not short.any():
            break
        unit = np.where(dist[:, :, None] > 1e-6, delta / np.maximum(dist, 1e-6)[:, :, None],
                        fallback[:, None, :] - fallback[None, :, :])
        xy = np.clip(xy + 0.5 * (unit * short[:, :, None]).sum(axis=1) / _SQUASH, _LOW, _HIGH)
    return xy


# -- drawing -------------------------------------------------------------------------------------


def _n(value: float) -> str:
    """A coordinate or size: two decimals at most, no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()})
    if text is not None:
        element.text = text
    return element


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _node_title(node: GraphNode) -> str:
    parts = [f"{node.name} — reputation {node.reputation:.3f} from {_plural(node.ratings, 'rating')}",
             f"staked {format_amount(node.staked)} credits", _plural(node.wins, "win"),
             f"earned {format_amount(node.earned)} credits"]
    return " · ".join(parts) + ("" if node.active else " · deactivated")


def _edge_title(edge: GraphEdge, names: dict[str, str]) -> str:
    text = (f"{names[edge.payer]} → {names[edge.payee]}: {format_amount(edge.credits)} credits in "
            f"{_plural(edge.payments, 'payment')}")
    if edge.auctions:
        text += f" · {_plural(edge.auctions, 'paid auction')}: " + "; ".join(edge.goals)
    return text


def _draw_edge(parent: ET.Element, edge: GraphEdge, at: dict[str, tuple[float, float]],
               radius: dict[str, float], width: float, names: dict[str, str]) -> None:
    (px, py), (qx, qy) = at[edge.payer], at[edge.payee]
    dx, dy = qx - px, qy - py
    length = math.hypot(dx, dy) or 1.0
    # Bend to the payer's left: a payment each way between two agents draws two arcs, not one line.
    cx, cy = (px + qx) / 2 - dy / length * 0.18 * length, (py + qy) / 2 + dx / length * 0.18 * length
    sx, sy = _toward(px, py, cx, cy, radius[edge.payer])
    tip_x, tip_y = _toward(qx, qy, cx, cy, radius[edge.payee])
    head, half = 6.0 + 1.0 * width, 3.0 + 0.75 * width
    ux, uy = _unit(cx - tip_x, cy - tip_y)
    bx, by = tip_x + ux * head, tip_y + uy * head
    group = _sub(parent, "g", class_="cg-edge", data_payer=names[edge.payer], data_payee=names[edge.payee],
                 data_credits=str(edge.credits))
    _sub(group, "title", _edge_title(edge, names))
    _sub(group, "path", d=f"M{_n(sx)},{_n(sy)} Q{_n(cx)},{_n(cy)} {_n(bx)},{_n(by)}", fill="none", stroke=_EDGE,
         stroke_width=_n(width), stroke_opacity="0.75", stroke_linecap="round")
    _sub(group, "polygon", fill=_EDGE, fill_opacity="0.9", points=" ".join(
        f"{_n(x)},{_n(y)}" for x, y in ((tip_x, tip_y), (bx - uy * half, by + ux * half), (bx + uy * half, by - ux * half))))
    mx, my = 0.25 * px + 0.5 * cx + 0.25 * qx, 0.25 * py + 0.5 * cy + 0.25 * qy
    _sub(group, "text", format_amount(edge.credits), x=_n(mx), y=_n(my - width / 2 - 3), text_anchor="middle",
         font_size="11", fill="currentColor", fill_opacity="0.8")


def _unit(dx: float, dy: float) -> tuple[float, float]:
    length = math.hypot(dx, dy) or 1.0
    return dx / length, dy / length


def _toward(x: float, y: float, tx: float, ty: float, distance: float) -> tuple[float, float]:
    ux, uy = _unit(tx - x, ty - y)
    return x + ux * distance, y + uy * distance


def _draw_node(parent: ET.Element, node: GraphNode, x: float, y: float, r: float) -> None:
    group = _sub(parent, "g", class_="cg-node", data_agent=node.name, data_reputation=f"{node.reputation:.4f}")
    _sub(group, "title", _node_title(node))
    _sub(group, "circle", cx=_n(x), cy=_n(y), r=_n(r), fill=_ACTIVE if node.active else _INACTIVE,
         fill_opacity="0.85", stroke="currentColor", stroke_opacity="0.35", stroke_width="1")
    _sub(group, "text", node.name, x=_n(x), y=_n(y + r + 14), text_anchor="middle", font_size="13",
         font_weight="600", fill="currentColor", class_="cg-label")
    _sub(group, "text", f"{node.reputation:.2f}", x=_n(x), y=_n(y + r + 27), text_anchor="middle", font_size="11",
         fill="currentColor", fill_opacity="0.65")


def _legend(parent: ET.Element, heaviest: int) -> None:
    group = _sub(parent, "g", class_="cg-legend")
    top = GRAPH_H + 4
    _sub(group, "line", x1="12", y1=_n(top), x2=_n(WIDTH - 12), y2=_n(top), stroke="currentColor",
         stroke_opacity="0.2")
    _sub(group, "text", "Node size: reputation", x="16", y=_n(top + 18), font_size="12", font_weight="600",
         fill="currentColor")
    x = 30.0
    for reputation, label in ((0.0, "0"), (0.5, "0.5 (new)"), (1.0, "1")):
        r = node_radius(reputation)
        _sub(group, "circle", cx=_n(x + r), cy=_n(top + 60), r=_n(r), fill=_ACTIVE, fill_opacity="0.85")
        _sub(group, "text", label, x=_n(x + r), y=_n(top + 60 + r + 12 if r < 30 else top + 64), text_anchor="middle",
             font_size="11", fill="currentColor" if r < 30 else "#ffffff")
        x += 2 * r + 22
    _sub(group, "text", "Colour", x="330", y=_n(top + 18), font_size="12", font_weight="600", fill="currentColor")
    for i, (fill, label) in enumerate(((_ACTIVE, "active"), (_INACTIVE, "deactivated"))):
        _sub(group, "circle", cx="340", cy=_n(top + 42 + 24 * i), r="8", fill=fill, fill_opacity="0.85")
        _sub(group, "text", label, x="356", y=_n(top + 46 + 24 * i), font_size="11", fill="currentColor")
    _sub(group, "text", "Arrow width: credits paid (payer → payee)", x="500", y=_n(top + 18), font_size="12",
         font_weight="600", fill="currentColor")
    if heaviest <= 0:
        _sub(group, "text", "no payments between agents yet", x="500", y=_n(top + 46), font_size="11",
             fill="currentColor", fill_opacity="0.65")
        return
    for i, amount in enumerate((heaviest, heaviest // 2)):
        y = top + 42 + 26 * i
        _sub(group, "line", x1="500", y1=_n(y), x2="580", y2=_n(y), stroke=_EDGE, stroke_opacity="0.75",
             stroke_width=_n(edge_width(amount, heaviest)), stroke_linecap="round")
        _sub(group, "text", f"{format_amount(amount)} credits", x="594", y=_n(y + 4), font_size="11",
             fill="currentColor")


def render_svg(graph: ColonyGraph, *, standalone: bool = False) -> str:
    """The graph as an ``<svg>`` element (with an XML declaration and a background when ``standalone``)."""
    root = ET.Element("svg", {
        "xmlns": _SVG_NS, "viewBox": f"0 0 {_n(WIDTH)} {_n(HEIGHT)}", "width": _n(WIDTH), "height": _n(HEIGHT),
        "role": "img", "aria-labelledby": "cg-title cg-desc", "class": "colony-graph",
        "font-family": "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"})
    if standalone:
        root.set("color", "#1d1f21")
    names = {node.account: node.name for node in graph.nodes}
    edges = [e for e in graph.edges if e.credits > 0 and e.payer != e.payee and e.payer in names and e.payee in names]
    _sub(root, "title", f"Colony graph: {_plural(len(graph.nodes), 'agent')}, "
                        f"{_plural(len(edges), 'payment edge')}", id="cg-title")
    _sub(root, "desc", "Agents as circles sized by reputation; arrows from payer to payee as wide as the credits "
                       "paid (ledger transfers and captured escrow).", id="cg-desc")
    if standalone:
        _sub(root, "rect", x="0", y="0", width=_n(WIDTH), height=_n(HEIGHT), fill="#ffffff")
    at = layout(graph)
    radius = {node.account: node_radius(node.reputation) for node in graph.nodes}
    heaviest = max((e.credits for e in edges), default=0)
    edge_layer = _sub(root, "g", class_="cg-edges")
    for edge in sorted(edges, key=lambda e: (e.credits, e.payer, e.payee)):  # the heaviest drawn last, on top
        _draw_edge(edge_layer, edge, at, radius, edge_width(edge.credits, heaviest), names)
    node_layer = _sub(root, "g", class_="cg-nodes")
    for node in graph.nodes:
        _draw_node(node_layer, node, *at[node.account], radius[node.account])
    if not graph.nodes:
        _sub(root, "text", "No agents yet.", x=_n(WIDTH / 2), y=_n(GRAPH_H / 2), text_anchor="middle",
             font_size="14", fill="currentColor", fill_opacity="0.65")
    _legend(root, heaviest)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body if standalone else body
