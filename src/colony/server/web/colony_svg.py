"""The Colony page's two pictures, drawn on the server: the payment graph across nodes and Psi over time.

**The graph** (`render_colony_graph`) draws a `colony.federation.colony_graph.ColonyGraphOut` with the
Market page's machinery (`colony.server.web.svg_graph`: the deterministic force layout, the arrows,
the element helper): agents as circles coloured by their home node and sized by the credits they
moved (``√`` of paid + received, relative to the busiest), arrows from payer to payee as wide as the
credits paid. Agents of one node pull a little toward each other, so a node's agents sit together.

**Psi** (`render_psi_chart`) is a line over the stored series (`colony.federation.psi.PsiSeries`),
0 to 1 upward, time to the right; at most `CHART_POINTS` points are drawn (evenly thinned, the newest
always kept).

Same rules as `svg_graph`: no script, no style attribute, colours as presentation attributes, text
in ``currentColor``; built with ElementTree, which escapes every name a peer announced.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from colony.federation.colony_graph import AgentOut, ColonyGraphOut, GraphNodeOut
from colony.ledger import format_amount
from colony.server.web.svg_graph import (
    EDGE_COLOUR,
    GRAPH_H,
    HEIGHT,
    R_MIN,
    WIDTH,
    draw_arrow,
    edge_width,
    element,
    link_weights,
    num,
    place,
    plural,
)

__all__ = ["CHART_H", "CHART_POINTS", "CHART_W", "NODE_COLOURS", "R_TOP", "UNKNOWN_COLOUR", "agent_radius",
           "node_colour", "render_colony_graph", "render_psi_chart"]

#: One colour per node, in colony order (this node first); more nodes than colours reuse them.
NODE_COLOURS = ("#2f6f6a", "#3b6fb6", "#8e4fb0", "#c0504d", "#4f8f3a", "#d0597f", "#6b5b3e", "#2a8fbd")
UNKNOWN_COLOUR = "#9a9fa4"
#: The busiest agent's radius (the least busy is `svg_graph.R_MIN`).
R_TOP = 28.0
#: How much two agents of one node pull toward each other (a payment pulls up to 1).
_SAME_NODE_PULL = 0.35
#: Node names shown in the legend before "+N more"; longer names are cut there.
_LEGEND_NODES, _LEGEND_CHARS = 5, 22
_SVG_NS = "http://www.w3.org/2000/svg"
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"
#: The Psi chart's size in user units, its margins, and the most points its line has.
CHART_W, CHART_H, CHART_POINTS = 640.0, 180.0, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 40.0, 14.0, 12.0, 30.0
_PSI = "#2f6f6a"


def agent_radius(moved: int, busiest: int) -> float:
    """``R_MIN + (R_TOP − R_MIN) · √(moved / busiest)``; R_MIN when nothing moved."""
    if busiest <= 0 or moved <= 0:
        return R_MIN
    return R_MIN + (R_TOP - R_MIN) * math.sqrt(min(1.0, moved / busiest))


def node_colour(index: int | None) -> str:
    """The colour of the node at ``index`` in colony order; grey for an unknown home."""
    return UNKNOWN_COLOUR if index is None else NODE_COLOURS[index % len(NODE_COLOURS)]


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars - 1] + "…"


def _agent_title(agent: AgentOut, home: GraphNodeOut | None) -> str:
    where = f"agent of {home.name}" if home is not None else "home node unknown"
    return (f"{agent.name} — {where} · paid {format_amount(agent.paid)} credits · received "
            f"{format_amount(agent.received)} credits · {agent.npub}")


def _legend(root: ET.Element, graph: ColonyGraphOut, heaviest: int, unknown: bool) -> None:
    group = element(root, "g", class_="cg-legend")
    top = GRAPH_H + 4
    element(group, "line", x1="12", y1=num(top), x2=num(WIDTH - 12), y2=num(top), stroke="currentColor",
            stroke_opacity="0.2")
    element(group, "text", "Colour: home node", x="16", y=num(top + 18), font_size="12", font_weight="600",
            fill="currentColor")
    entries: list[tuple[str, str]] = [(node_colour(i), n.name + (" (this node)" if n.me else ""))
                                      for i, n in enumerate(graph.nodes)]
    if len(entries) > _LEGEND_NODES + 1:
        entries = [*entries[:_LEGEND_NODES], ("", f"+{len(entries) - _LEGEND_NODES} more")]
    if unknown:
        entries.append((UNKNOWN_COLOUR, "unknown"))
    for i, (fill, label) in enumerate(entries[:8]):
        x, y = 26.0 + 200 * (i // 4), top + 38 + 18 * (i % 4)
        if fill:
            element(group, "circle", cx=num(x), cy=num(y - 4), r="6", fill=fill, fill_opacity="0.85",
                    class_="cg-legend-node")
        element(group, "text", _cut(label, _LEGEND_CHARS), x=num(x + 12), y=num(y), font_size="11",
                fill="currentColor")
    element(group, "text", "Size: credits moved", x="410", y=num(top + 18), font_size="12", font_weight="600",
            fill="currentColor")
    for x, r, label in ((422.0, R_MIN, "least"), (470.0, R_TOP * 0.75, "most")):
        element(group, "circle", cx=num(x), cy=num(top + 58), r=num(r), fill=NODE_COLOURS[0], fill_opacity="0.5")
        element(group, "text", label, x=num(x), y=num(top + 94), text_anchor="middle", font_size="11",
                fill="currentColor")
    element(group, "text", "Arrow: credits paid (payer → payee)", x="590", y=num(top + 18), font_size="12",
            font_weight="600", fill="currentColor")
    if heaviest <= 0:
        element(group, "text", "no payments between accounts yet", x="590", y=num(top + 46), font_size="11",
                fill="currentColor", fill_opacity="0.65")
        return
    for i, amount in enumerate((heaviest, heaviest // 2)):
        y = top + 42 + 26 * i
        element(group, "line", x1="590", y1=num(y), x2="660", y2=num(y), stroke=EDGE_COLOUR, stroke_opacity="0.75",
                stroke_width=num(edge_width(amount, heaviest)), stroke_linecap="round")
        element(group, "text", f"{format_amount(amount)} credits", x="672", y=num(y + 4), font_size="11",
                fill="currentColor")


def _root(width: float, height: float, cls: str, labelled_by: str, standalone: bool) -> ET.Element:
    root = ET.Element("svg", {"xmlns": _SVG_NS, "viewBox": f"0 0 {num(width)} {num(height)}", "width": num(width),
                              "height": num(height), "role": "img", "aria-labelledby": labelled_by, "class": cls,
                              "font-family": _FONT})
    if standalone:
        root.set("color", "#1d1f21")
    return root


def _finish(root: ET.Element, standalone: bool) -> str:
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body if standalone else body


def render_colony_graph(graph: ColonyGraphOut, *, standalone: bool = False) -> str:
    """The graph as an ``<svg>`` element (with an XML declaration and a background when ``standalone``)."""
    root = _root(WIDTH, HEIGHT, "colony-graph colony-payments", "cp-title cp-desc", standalone)
    index = {n.pubkey: i for i, n in enumerate(graph.nodes)}
    homes = {n.pubkey: n for n in graph.nodes}
    agents = {a.account: a for a in graph.agents}
    edges = [e for e in graph.edges if e.credits > 0 and e.payer != e.payee and e.payer in agents and e.payee in agents]
    element(root, "title", f"Colony payments: {plural(len(graph.nodes), 'node')}, {plural(len(agents), 'agent')}, "
                           f"{plural(len(edges), 'payment edge')}", id="cp-title")
    element(root, "desc", "Agents as circles coloured by their home node and sized by the credits they moved; "
                          "arrows from payer to payee as wide as the credits paid, on every ledger this node "
                          "holds or replicates.", id="cp-desc")
    if standalone:
        element(root, "rect", x="0", y="0", width=num(WIDTH), height=num(HEIGHT), fill="#ffffff")
    accounts = list(agents)
    busiest = max((a.paid + a.received for a in graph.agents), default=0)
    radius = {a.account: agent_radius(a.paid + a.received, busiest) for a in graph.agents}
    weights = link_weights(accounts, ((e.payer, e.payee, e.credits) for e in edges))
    groups = np.array([index.get(agents[a].node or "", -1) for a in accounts])
    same = (groups[:, None] == groups[None, :]) & (groups[:, None] >= 0)
    np.fill_diagonal(same, False)
    at = place(accounts, [radius[a] for a in accounts], np.maximum(weights, _SAME_NODE_PULL * same))
    heaviest = max((e.credits for e in edges), default=0)
    names = {a: agents[a].name for a in accounts}
    edge_layer = element(root, "g", class_="cg-edges")
    for e in sorted(edges, key=lambda e: (e.credits, e.payer, e.payee)):  # the heaviest drawn last, on top
        title = (f"{names[e.payer]} → {names[e.payee]}: {format_amount(e.credits)} credits in "
                 f"{plural(e.payments, 'payment')}, on the ledger of "
                 + ", ".join(homes[o].name if o in homes else o[:12] for o in e.ledgers))
        draw_arrow(edge_layer, at[e.payer], at[e.payee], radius[e.payer], radius[e.payee],
                   edge_width(e.credits, heaviest), title=title, label=format_amount(e.credits),
                   attrs={"class": "cg-edge", "data-payer": names[e.payer], "data-payee": names[e.payee],
                          "data-credits": str(e.credits)})
    node_layer = element(root, "g", class_="cg-nodes")
    for a in graph.agents:
        x, y = at[a.account]
        r = radius[a.account]
        home = homes.get(a.node or "")
        group = element(node_layer, "g", class_="cg-node", data_agent=a.name, data_account=a.account,
                        data_node=home.name if home is not None else "")
        element(group, "title", _agent_title(a, home))
        element(group, "circle", cx=num(x), cy=num(y), r=num(r), fill=node_colour(index.get(a.node or "")),
                fill_opacity="0.85", stroke="currentColor", stroke_opacity="0.35", stroke_width="1")
        element(group, "text", _cut(a.name, 24), x=num(x), y=num(y + r + 14), text_anchor="middle", font_size="13",
                font_weight="600", fill="currentColor", class_="cg-label")
        element(group, "text", _cut(home.name, 20) if home is not None else "unknown node", x=num(x),
                y=num(y + r + 27), text_anchor="middle", font_size="11", fill="currentColor", fill_opacity="0.65")
    if not graph.agents:
        element(root, "text", "No agents yet.", x=num(WIDTH / 2), y=num(GRAPH_H / 2), text_anchor="middle",
                font_size="14", fill="currentColor", fill_opacity="0.65")
    _legend(root, graph, heaviest, any(a.node not in index for a in graph.agents))
    return _finish(root, standalone)


# -- Psi over time ------------------------------------------------------------------------------------
def _thin(samples: Sequence[dict[str, float | int]]) -> list[dict[str, float | int]]:
    if len(samples) <= CHART_POINTS:
        return list(samples)
    step = (len(samples) - 1) / (CHART_POINTS - 1)
    return [samples[round(i * step)] for i in range(CHART_POINTS)]


def _clock(at: float, span: float) -> str:
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%H:%M" if span < 86_400 else "%m-%d %H:%M")


def render_psi_chart(samples: Sequence[dict[str, float | int]]) -> str:
    """Psi over time from `PsiSeries.samples` (``at``, ``psi``, …), oldest first, as an ``<svg>`` element."""
    points = [s for s in _thin(samples) if math.isfinite(float(s["at"])) and math.isfinite(float(s["psi"]))]
    root = _root(CHART_W, CHART_H, "psi-chart", "psi-title", False)
    root.set("data-points", str(len(points)))
    element(root, "title", f"Psi over time: {plural(len(samples), 'reading')}", id="psi-title")
    x0, x1, y0, y1 = _LEFT, CHART_W - _RIGHT, CHART_H - _BOTTOM, _TOP
    for value in (0.0, 0.5, 1.0):
        y = y0 + (y1 - y0) * value
        element(root, "line", x1=num(x0), y1=num(y), x2=num(x1), y2=num(y), stroke="currentColor",
                stroke_opacity="0.3" if value == 0.0 else "0.12")
        element(root, "text", f"{value:g}", x=num(x0 - 6), y=num(y + 4), text_anchor="end", font_size="11",
                fill="currentColor", fill_opacity="0.65")
    if not points:
        element(root, "text", "No readings yet: Psi is recorded while this node has live members.",
                x=num((x0 + x1) / 2), y=num((y0 + y1) / 2), text_anchor="middle", font_size="13",
                fill="currentColor", fill_opacity="0.65")
        return _finish(root, False)
    first, last = float(points[0]["at"]), float(points[-1]["at"])
    span = last - first

    def xy(s: dict[str, float | int]) -> tuple[float, float]:
        t = 0.5 if span <= 0 else (float(s["at"]) - first) / span
        return x0 + (x1 - x0) * t, y0 + (y1 - y0) * min(1.0, max(0.0, float(s["psi"])))

    coords = [xy(s) for s in points]
    if len(coords) > 1:
        element(root, "polyline", points=" ".join(f"{num(x)},{num(y)}" for x, y in coords), fill="none",
                stroke=_PSI, stroke_width="2", stroke_linejoin="round", class_="psi-line")
    lx, ly = coords[-1]
    element(root, "circle", cx=num(lx), cy=num(ly), r="3.5", fill=_PSI, class_="psi-last")
    element(root, "text", _clock(first, span), x=num(x0), y=num(CHART_H - 10), font_size="11", fill="currentColor",
            fill_opacity="0.65")
    if span > 0:
        element(root, "text", _clock(last, span) + " UTC", x=num(x1), y=num(CHART_H - 10), text_anchor="end",
                font_size="11", fill="currentColor", fill_opacity="0.65")
    return _finish(root, False)
