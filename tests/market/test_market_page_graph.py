"""The colony graph's drawing without a node: escaping of injection-shaped names and goals, the
sizes' formulas at their ends, the deterministic layout inside its box, and the small cases (no
agent, one, two, payments both ways)."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import Sequence

import pytest

from colony.ledger import MICRO
from colony.market.graph_view import ColonyGraph, GraphEdge, GraphNode
from colony.server.web.svg_graph import GRAPH_H, WIDTH, edge_width, layout, node_radius, render_svg

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = ['"><script>alert(1)</script>', "a&b 'single' \"double\"", "]]><!-- -->", "</svg><img src=x onerror=y>"]


def _node(i: int, name: str, reputation: float = 0.5, active: bool = True) -> GraphNode:
    return GraphNode(account=f"{i:064x}", name=name, reputation=reputation, active=active)


def _graph(n: int, edges: Sequence[tuple[int, int, int]] = ()) -> ColonyGraph:
    nodes = [_node(i, f"agent{i}", reputation=i / max(1, n - 1)) for i in range(n)]
    return ColonyGraph(nodes=nodes, edges=[GraphEdge(f"{a:064x}", f"{b:064x}", credits=c, payments=1)
                                           for a, b, c in edges])


def _groups(root: ET.Element, kind: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == kind]


@pytest.mark.parametrize("standalone", [False, True])
def test_injection_shaped_names_and_goals_stay_text(standalone: bool) -> None:
    nodes = [_node(i, name) for i, name in enumerate(HOSTILE)]
    goal = '</title><script>fetch("//evil")</script>'
    graph = ColonyGraph(nodes=nodes, edges=[GraphEdge(nodes[0].account, nodes[1].account, credits=MICRO, payments=1,
                                                      auctions=1, goals=[goal])])
    text = render_svg(graph, standalone=standalone)
    root = ET.fromstring(text)  # well-formed whatever the names
    assert "<script" not in text and "<img" not in text and "<!--" not in text
    shown = {g.get("data-agent"): next(t.text for t in g.iter(f"{SVG}text")) for g in _groups(root, "cg-node")}
    assert shown == {name: name for name in HOSTILE}
    [edge] = _groups(root, "cg-edge")
    assert (edge.get("data-payer"), edge.get("data-payee")) == (HOSTILE[0], HOSTILE[1])
    title = edge.find(f"{SVG}title")
    assert title is not None and title.text is not None and title.text.endswith(f"1 paid auction: {goal}")


def test_sizes_follow_their_formulas_and_clamp() -> None:
    assert [node_radius(r) for r in (-1.0, 0.0, 0.25, 0.5, 1.0, 2.0)] == [10, 10, 16, 22, 34, 34]
    assert [edge_width(c, 4 * MICRO) for c in (0, MICRO, 2 * MICRO, 4 * MICRO)] == [1.5, 4.125, 6.75, 12]
    assert edge_width(5, 0) == 1.5


def test_the_layout_is_deterministic_and_stays_inside_the_box() -> None:
    graph = _graph(7, [(0, 1, 5 * MICRO), (1, 2, MICRO), (3, 0, 2 * MICRO), (4, 5, 10)])
    first = layout(graph)
    assert first == layout(graph) and render_svg(graph) == render_svg(graph)
    for x, y in first.values():
        assert 34 < x < WIDTH - 34 and 34 < y < GRAPH_H - 34
    spots = sorted(first.values())
    assert all(a != b for a, b in itertools.pairwise(spots))  # no two agents on one spot
    # Agents that trade much are drawn closer than agents that never trade.
    def gap(a: int, b: int) -> float:
        (ax, ay), (bx, by) = first[f"{a:064x}"], first[f"{b:064x}"]
        return float(((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5)
    assert gap(0, 1) < gap(0, 6) and gap(0, 1) < gap(2, 5)


def test_small_graphs_none_one_two_and_payments_both_ways() -> None:
    empty = ET.fromstring(render_svg(ColonyGraph(nodes=[], edges=[])))
    assert next(t.text for t in empty.iter(f"{SVG}text")) == "No agents yet."
    [(x, y)] = layout(_graph(1)).values()
    assert x == WIDTH / 2 and y == pytest.approx(GRAPH_H / 2, abs=20)  # centred (labels below)
    (ax, ay), (bx, by) = layout(_graph(2)).values()
    assert ay == by and ax < bx  # side by side
    both = _graph(3, [(0, 1, MICRO), (1, 0, 3 * MICRO), (1, 1, MICRO), (0, 2, 0)])
    root = ET.fromstring(render_svg(both))
    edges = _groups(root, "cg-edge")
    assert len(edges) == 2  # no self-payment drawn, no empty edge
    paths = [e.find(f"{SVG}path").get("d") for e in edges]  # type: ignore[union-attr]
    assert paths[0] != paths[1]  # two arcs, one each way
    assert [e.get("data-credits") for e in edges] == [str(MICRO), str(3 * MICRO)]  # the heaviest on top
