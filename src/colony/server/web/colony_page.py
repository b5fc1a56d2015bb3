"""The web UI's Colony page: the nodes, their health and roles, Psi over time, payments across nodes.

Same conventions as the other pages (`colony.server.web.pages`): server-rendered, login cookie
required, strict CSP, no script of its own. What it shows comes from the same read functions as
``GET /api/v1/peers/status`` (`colony.federation.colony_state.colony_status`: members, liveness,
queen and term, replicas and their last sync, Psi now and its series), each member's announced
health (`colony.federation.colony_health`) and the payment graph over this node's ledger and its
verified replicas (`colony.federation.colony_graph`, also at ``GET /api/v1/peers/graph``).

The live part of the page is one fragment, ``/colony/live``, that htmx re-fetches every
`REFRESH_S` seconds and swaps in place (``outerHTML``: the new fragment carries the trigger on).
Everything a peer announced (names, URLs, versions, card names) is hostile text: the templates
autoescape it, the pictures are built with ElementTree (`colony.server.web.colony_svg`), and a URL
is a link only when it is ``http(s)://``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from colony import __version__
from colony.federation.colony_graph import clean_name, colony_graph
from colony.federation.colony_health import HealthOut, member_health
from colony.federation.colony_state import ReplicaOut, colony_status
from colony.federation.peers import PeerOut
from colony.server.api._deps import node as node_of
from colony.server.auth import page_auth
from colony.server.web.colony_svg import node_colour, render_colony_graph, render_psi_chart
from colony.server.web.pages import SECURITY_HEADERS, _render, _to_login, templates
from colony.server.web.tasks_pages import unixtime

__all__ = ["AGENTS_LISTED", "AGENT_NAME_CHARS", "REFRESH_S", "MemberRow", "ago", "colony_router"]

colony_router = APIRouter(include_in_schema=False)

#: How often the page re-fetches its live fragment.
REFRESH_S = 10
#: A member's agents named in its row, and the characters of each name shown.
AGENTS_LISTED, AGENT_NAME_CHARS = 12, 32


def ago(seconds: float | None) -> str:
    """``12 s ago``, ``5 min ago``, ``3 h ago``, ``2 d ago``; ``never`` for None."""
    if seconds is None:
        return "never"
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} s ago"
    if s < 7_200:
        return f"{s // 60} min ago"
    return f"{s // 3_600} h ago" if s < 172_800 else f"{s // 86_400} d ago"


templates.env.filters.setdefault("unixtime", unixtime)
templates.env.filters["ago"] = ago


@dataclass(frozen=True)
class MemberRow:
    """One member as the page shows it: the table's row, its replica, its announced health, its colour."""

    peer: PeerOut
    replica: ReplicaOut | None
    health: HealthOut | None
    colour: str | None

    @property
    def linkable(self) -> bool:
        return self.peer.url.startswith(("http://", "https://"))

    @property
    def agents(self) -> str:
        """The agent names of the member's cards, cleaned and cut (a card's name has no length limit)."""
        names = [_cut(clean_name(a), AGENT_NAME_CHARS) for a in self.peer.agents[:AGENTS_LISTED]]
        more = len(self.peer.agents) - AGENTS_LISTED
        return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars - 1] + "…"


def _context(request: Request) -> dict[str, Any]:
    n = node_of(request)
    federation = getattr(request.app.state, "federation", None)
    status = (colony_status(n, federation.syncs, federation.series) if federation is not None
              else colony_status(n))
    health = member_health(n)
    replicas = {r.origin: r for r in status.colony.replicas}
    graph = colony_graph(n)
    colours = {g.pubkey: node_colour(i) for i, g in enumerate(graph.nodes)}
    members = [MemberRow(peer=p, replica=replicas.get(p.pubkey), health=health.get(p.pubkey),
                         colour=colours.get(p.pubkey)) for p in status.peers]
    own_agents = [i.name for i in n.keyring.all() if i.role == "agent"]
    return {
        "status": status, "members": members, "trusted": sum(m.peer.status == "trusted" for m in members),
        "own_agents": own_agents, "own_colour": colours.get(status.me.pubkey), "version": __version__,
        "psi": status.colony.psi.now, "readings": len(status.colony.psi.series),
        "psi_chart": Markup(render_psi_chart(status.colony.psi.series)),  # ElementTree-built: escaped
        "graph": graph, "graph_svg": Markup(render_colony_graph(graph)),  # ElementTree-built: escaped
        "now": time.time(), "refresh_s": REFRESH_S,
    }


@colony_router.get("/colony")
def colony_page(request: Request) -> Response:
    if not page_auth(request):
        return _to_login(request)
    return _render(request, "colony.html", {"active": "colony", "title": "Colony", **_context(request)})


@colony_router.get("/colony/live")
def colony_live(request: Request) -> Response:
    """The live part of the page alone, for htmx's polling (a plain GET gets it too)."""
    if not page_auth(request):
        return _to_login(request)
    return _render(request, "_colony_live.html", _context(request))


@colony_router.get("/colony/graph.svg")
def colony_graph_svg(request: Request) -> Response:
    """The payment graph alone, as an SVG picture with its own background."""
    if not page_auth(request):
        return _to_login(request)
    svg = render_colony_graph(colony_graph(node_of(request)), standalone=True)
    return Response(svg, media_type="image/svg+xml", headers=SECURITY_HEADERS)
