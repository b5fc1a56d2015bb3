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

The parts any graph of payments needs are public and shared with the Colony page's graph across
nodes (`colony.server.web.colony_svg`): `place` (the layout for given radii and pulls), `link_weights`
(pulls from payments), `draw_arrow`, `element`, `num` and `plural`.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from colony.ledger import MICRO, format_amount
from colony.market.graph_view import ColonyGraph, GraphEdge, GraphNode

__all__ = ["EDGE_COLOUR", "GRAPH_H", "HEIGHT", "R_MAX", "R_MIN", "WIDTH", "W_MAX", "W_MIN", "draw_arrow", "edge_width",
           "element", "layout", "link_weights", "node_radius", "num", "place", "plural", "render_svg"]

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
#: The colour of payment arrows, here and on every graph that reuses `draw_arrow`.
EDGE_COLOUR = _EDGE
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
    accounts = [node.account for node in graph.nodes]
    weights = link_weights(accounts, ((e.payer, e.payee, e.credits) for e in graph.edges))
    return place(accounts, [node_radius(node.reputation) for node in graph.nodes], weights)


def place(accounts: Sequence[str], radii: Sequence[float],
          weights: NDArray[np.float64]) -> dict[str, tuple[float, float]]:
    """Centres (account → x, y) for circles of ``radii`` pulled together by symmetric ``weights`` in [0, 1].

    The shared half of every graph this UI draws (the Market page's, the Colony page's): the
    caller decides what sizes a circle and what pulls two together.
    """
    n = len(accounts)
    if n == 0:
        return {}
    angles = 2 * np.pi * np.arange(n) / n + (np.pi if n == 2 else -np.pi / 2)  # two side by side
    pos: NDArray[np.float64] = np.column_stack([np.cos(angles), np.sin(angles)])
    if n > 2:
        pos = _relax(pos, weights)
    xy = _separate(_fit(pos), np.asarray(radii, dtype=float))
    return {account: (round(float(xy[i, 0]), 1), round(float(xy[i, 1]), 1)) for i, account in enumerate(accounts)}


def link_weights(accounts: Sequence[str], links: Iterable[tuple[str, str, int]]) -> NDArray[np.float64]:
    """Symmetric attraction per pair from (payer, payee, credits): log(1 + credits) of both directions,
    the heaviest pair 1. Links to accounts not in ``accounts``, self-links and empty ones pull nothing."""
    index = {account: i for i, account in enumerate(accounts)}
    n = len(index)
    w = np.zeros((n, n))
    for payer, payee, credits in links:
        i, j = index.get(payer), index.get(payee)
        if i is None or j is None or i == j or credits <= 0:
            continue
        strength = math.log1p(credits / MICRO)
        w[i, j] += strength
        w[j, i] += strength
    top = w.max() if n else 0.0
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


def num(value: float) -> str:
    """A coordinate or size: two decimals at most, no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def element(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    """A child of ``parent``; ``font_size`` becomes ``font-size`` (a trailing ``_`` is dropped: ``class_``).

    ElementTree escapes ``text`` and every attribute value when the tree is written: names and goals
    that peers or users typed stay text.
    """
    made = ET.SubElement(parent, tag, {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()})
    if text is not None:
        made.text = text
    return made


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _node_title(node: GraphNode) -> str:
    parts = [f"{node.name} — reputation {node.reputation:.3f} from {plural(node.ratings, 'rating')}",
             f"staked {format_amount(node.staked)} credits", plural(node.wins, "win"),
             f"earned {format_amount(node.earned)} credits"]
    return " · ".join(parts) + ("" if node.active else " · deactivated")


def _edge_title(edge: GraphEdge, names: dict[str, str]) -> str:
    text = (f"{names[edge.payer]} → {names[edge.payee]}: {format_amount(edge.credits)} credits in "
            f"{plural(edge.payments, 'payment')}")
    if edge.auctions:
        text += f" · {plural(edge.auctions, 'paid auction')}: " + "; ".join(edge.goals)
    return text


def _draw_edge(parent: ET.Element, edge: GraphEdge, at: dict[str, tuple[float, float]],
               radius: dict[str, float], width: float, names: dict[str, str]) -> None:
    draw_arrow(parent, at[edge.payer], at[edge.payee], radius[edge.payer], radius[edge.payee], width,
               title=_edge_title(edge, names), label=format_amount(edge.credits),
               attrs={"class": "cg-edge", "data-payer": names[edge.payer], "data-payee": names[edge.payee],
                      "data-credits": str(edge.credits)})


def draw_arrow(parent: ET.Element, start: tuple[float, float], end: tuple[float, float], r_start: float,
               r_end: float, width: float, *, title: str, label: str, attrs: dict[str, str]) -> None:
    """An arc from the circle at ``start`` to the one at ``end`` with its head on the edge of the latter.

    ``attrs`` go on the arrow's ``<g>`` in their order; ``title`` is its tooltip, ``label`` the text at
    its middle. Both are escaped when the tree is written.
    """
    (px, py), (qx, qy) = start, end
    dx, dy = qx - px, qy - py
    length = math.hypot(dx, dy) or 1.0
    # Bend to the payer's left: a payment each way between two agents draws two arcs, not one line.
    cx, cy = (px + qx) / 2 - dy / length * 0.18 * length, (py + qy) / 2 + dx / length * 0.18 * length
    sx, sy = _toward(px, py, cx, cy, r_start)
    tip_x, tip_y = _toward(qx, qy, cx, cy, r_end)
    head, half = 6.0 + 1.0 * width, 3.0 + 0.75 * width
    ux, uy = _unit(cx - tip_x, cy - tip_y)
    bx, by = tip_x + ux * head, tip_y + uy * head
    group = ET.SubElement(parent, "g", attrs)
    element(group, "title", title)
    element(group, "path", d=f"M{num(sx)},{num(sy)} Q{num(cx)},{num(cy)} {num(bx)},{num(by)}", fill="none",
            stroke=_EDGE, stroke_width=num(width), stroke_opacity="0.75", stroke_linecap="round")
    element(group, "polygon", fill=_EDGE, fill_opacity="0.9", points=" ".join(
        f"{num(x)},{num(y)}" for x, y in ((tip_x, tip_y), (bx - uy * half, by + ux * half),
                                          (bx + uy * half, by - ux * half))))
    mx, my = 0.25 * px + 0.5 * cx + 0.25 * qx, 0.25 * py + 0.5 * cy + 0.25 * qy
    element(group, "text", label, x=num(mx), y=num(my - width / 2 - 3), text_anchor="middle",
            font_size="11", fill="currentColor", fill_opacity="0.8")


def _unit(dx: float, dy: float) -> tuple[float, float]:
    length = math.hypot(dx, dy) or 1.0
    return dx / length, dy / length


def _toward(x: float, y: float, tx: float, ty: float, distance: float) -> tuple[float, float]:
    ux, uy = _unit(tx - x, ty - y)
    return x + ux * distance, y + uy * distance


def _draw_node(parent: ET.Element, node: GraphNode, x: float, y: float, r: float) -> None:
    group = element(parent, "g", class_="cg-node", data_agent=node.name, data_reputation=f"{node.reputation:.4f}")
    element(group, "title", _node_title(node))
    element(group, "circle", cx=num(x), cy=num(y), r=num(r), fill=_ACTIVE if node.active else _INACTIVE,
         fill_opacity="0.85", stroke="currentColor", stroke_opacity="0.35", stroke_width="1")
    element(group, "text", node.name, x=num(x), y=num(y + r + 14), text_anchor="middle", font_size="13",
         font_weight="600", fill="currentColor", class_="cg-label")
    element(group, "text", f"{node.reputation:.2f}", x=num(x), y=num(y + r + 27), text_anchor="middle", font_size="11",
         fill="currentColor", fill_opacity="0.65")


def _legend(parent: ET.Element, heaviest: int) -> None:
    group = element(parent, "g", class_="cg-legend")
    top = GRAPH_H + 4
    element(group, "line", x1="12", y1=num(top), x2=num(WIDTH - 12), y2=num(top), stroke="currentColor",
         stroke_opacity="0.2")
    element(group, "text", "Node size: reputation", x="16", y=num(top + 18), font_size="12", font_weight="600",
         fill="currentColor")
    x = 30.0
    for reputation, label in ((0.0, "0"), (0.5, "0.5 (new)"), (1.0, "1")):
        r = node_radius(reputation)
        element(group, "circle", cx=num(x + r), cy=num(top + 60), r=num(r), fill=_ACTIVE, fill_opacity="0.85")
        element(group, "text", label, x=num(x + r), y=num(top + 60 + r + 12 if r < 30 else top + 64), text_anchor="middle",
             font_size="11", fill="currentColor" if r < 30 else "#ffffff")
        x += 2 * r + 22
    element(group, "text", "Colour", x="330", y=num(top + 18), font_size="12", font_weight="600", fill="currentColor")
    for i, (fill, label) in enumerate(((_ACTIVE, "active"), (_INACTIVE, "deactivated"))):
        element(group, "circle", cx="340", cy=num(top + 42 + 24 * i), r="8", fill=fill, fill_opacity="0.85")
        element(group, "text", label, x="356", y=num(top + 46 + 24 * i), font_size="11", fill="currentColor")
    element(group, "text", "Arrow width: credits paid (payer → payee)", x="500", y=num(top + 18), font_size="12",
         font_weight="600", fill="currentColor")
    if heaviest <= 0:
        element(group, "text", "no payments between agents yet", x="500", y=num(top + 46), font_size="11",
             fill="currentColor", fill_opacity="0.65")
        return
    for i, amount in enumerate((heaviest, heaviest // 2)):
        y = top + 42 + 26 * i
        element(group, "line", x1="500", y1=num(y), x2="580", y2=num(y), stroke=_EDGE, stroke_opacity="0.75",
             stroke_width=num(edge_width(amount, heaviest)), stroke_linecap="round")
        element(group, "text", f"{format_amount(amount)} credits", x="594", y=num(y + 4), font_size="11",
             fill="currentColor")


def render_svg(graph: ColonyGraph, *, standalone: bool = False) -> str:
    """The graph as an ``<svg>`` element (with an XML declaration and a background when ``standalone``)."""
    root = ET.Element("svg", {
        "xmlns": _SVG_NS, "viewBox": f"0 0 {num(WIDTH)} {num(HEIGHT)}", "width": num(WIDTH), "height": num(HEIGHT),
        "role": "img", "aria-labelledby": "cg-title cg-desc", "class": "colony-graph",
        "font-family": "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"})
    if standalone:
        root.set("color", "#1d1f21")
    names = {node.account: node.name for node in graph.nodes}
    edges = [e for e in graph.edges if e.credits > 0 and e.payer != e.payee and e.payer in names and e.payee in names]
    element(root, "title", f"Colony graph: {plural(len(graph.nodes), 'agent')}, "
                        f"{plural(len(edges), 'payment edge')}", id="cg-title")
    element(root, "desc", "Agents as circles sized by reputation; arrows from payer to payee as wide as the credits "
                       "paid (ledger transfers and captured escrow).", id="cg-desc")
    if standalone:
        element(root, "rect", x="0", y="0", width=num(WIDTH), height=num(HEIGHT), fill="#ffffff")
    at = layout(graph)
    radius = {node.account: node_radius(node.reputation) for node in graph.nodes}
    heaviest = max((e.credits for e in edges), default=0)
    edge_layer = element(root, "g", class_="cg-edges")
    for edge in sorted(edges, key=lambda e: (e.credits, e.payer, e.payee)):  # the heaviest drawn last, on top
        _draw_edge(edge_layer, edge, at, radius, edge_width(edge.credits, heaviest), names)
    node_layer = element(root, "g", class_="cg-nodes")
    for node in graph.nodes:
        _draw_node(node_layer, node, *at[node.account], radius[node.account])
    if not graph.nodes:
        element(root, "text", "No agents yet.", x=num(WIDTH / 2), y=num(GRAPH_H / 2), text_anchor="middle",
             font_size="14", fill="currentColor", fill_opacity="0.65")
    _legend(root, heaviest)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body if standalone else body
