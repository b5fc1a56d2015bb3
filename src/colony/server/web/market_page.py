"""The web UI's Market page: open auctions counting down, results, reputation, proposals, the colony graph.

Same conventions as the other pages (`colony.server.web.pages`): server-rendered, login cookie
required, every form carries the CSRF token, strict CSP. What it shows comes from the market's
read functions (`colony.market.queries`, `colony.market.gov_views`), the same the API and the CLI
use; a task is put up for auction from the form through `Market.post`, with the same
`AuctionRequest` as ``POST /api/v1/market/auctions``, and a refusal is shown on the page with
what was typed.

The countdowns are ``<time data-deadline="unix seconds">`` elements that ``static/market.js``
ticks every second (the server's clock is in ``data-now``, so a browser whose clock is off still
counts right); without script they show the time left when the page was rendered. The colony
graph is server-drawn SVG (`colony.server.web.svg_graph`), embedded here and served alone at
``/market/graph.svg``.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from pydantic import ValidationError

from colony.ledger import format_amount, parse_amount
from colony.market.events import MarketError, Verification
from colony.market.gov_views import ProposalView, list_proposals
from colony.market.graph_view import colony_graph
from colony.market.profiles import list_agents
from colony.market.queries import auction_detail, auctions, reputation_table
from colony.market.service import AuctionError, Market
from colony.market.views import AuctionDetail, AuctionRequest
from colony.server.api._deps import node as node_of
from colony.server.auth import csrf_token, page_auth
from colony.server.errors import describe_error
from colony.server.web.pages import SECURITY_HEADERS, _render, _to_login, templates
from colony.server.web.svg_graph import render_svg
from colony.server.web.tasks_pages import unixtime

__all__ = ["METHODS", "OPEN_AUCTIONS", "PROPOSALS_SCANNED", "RESULTS", "countdown", "market_router"]

market_router = APIRouter(include_in_schema=False)

#: Open auctions listed, results (awarded and settled auctions) listed, proposals read for open ones.
OPEN_AUCTIONS = 100
RESULTS = 20
PROPOSALS_SCANNED = 200
_SETTLED = ["awarded", "paid", "refunded", "cancelled", "void"]
_OPEN_PROPOSALS = ("voting", "queued", "executable")
_SAYS = {"approval": "a person approves the result", "review": "a validator agent reviews it",
         "tests": "its tests run in the sandbox", "benchmark": "a coding benchmark problem"}
#: Each verification method and what it means, for the form (the market's closed set, in its order).
METHODS: dict[str, str] = {m: _SAYS[m] for m in get_args(Verification)}
#: The fields each method needs; the others are not sent (the market refuses fields a method does not use).
_METHOD_FIELDS = {"approval": (), "review": ("validator",), "tests": ("tests", "entry_point"),
                  "benchmark": ("problem",)}
_STATUS = {"not_found": 404, "invalid": 422}


def countdown(seconds: int | None) -> str:
    """Time left as the page's script writes it: ``1h 02m 03s``, ``4m 05s``, ``42s``; ``passed`` at 0."""
    if seconds is None or seconds <= 0:
        return "passed"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def isotime(stamp: int) -> str:
    """Unix seconds as the ISO 8601 UTC value of a ``<time datetime>`` attribute."""
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


templates.env.filters.setdefault("unixtime", unixtime)
templates.env.filters.setdefault("credits", format_amount)
templates.env.filters["countdown"] = countdown
templates.env.filters["isotime"] = isotime


def _proposal_row(p: ProposalView) -> dict[str, Any]:
    voted = p.yes + p.no + p.abstain
    return {"p": p, "voted": voted, "quorum": p.total_weight * p.quorum_bp // 10_000,
            "quorum_pct": f"{p.quorum_bp / 100:g}"}


def _page(request: Request, *, error: str | None = None, form: dict[str, str] | None = None,
          posted: str | None = None, status: int = 200) -> Response:
    n = node_of(request)
    market = Market(n)
    now = market.now()
    results: list[AuctionDetail] = [auction_detail(market, a.id)
                                    for a in auctions(market, states=_SETTLED, limit=RESULTS)]
    proposals = [_proposal_row(p) for p in list_proposals(n.keyring, limit=PROPOSALS_SCANNED, now=now)
                 if p.status in _OPEN_PROPOSALS]
    just_posted = None
    if posted is not None:
        try:
            just_posted = market.row(posted)
        except AuctionError:
            just_posted = None
    agents = [a.name for a in list_agents(n.keyring) if a.active]
    reputation = reputation_table(market)
    return _render(request, "market.html", {
        "active": "market", "title": "Market", "now": now,
        "open": auctions(market, states=["open"], limit=OPEN_AUCTIONS), "results": results,
        "reputation": reputation, "proposals": proposals,
        # Built by ElementTree, which escapes every name and goal it writes (see svg_graph).
        "graph": Markup(render_svg(colony_graph(market, reputation))),
        "agents": agents, "methods": METHODS, "error": error, "form": form or {}, "posted": just_posted,
    }, status=status)


@market_router.get("/market")
def market_page(request: Request,
                posted: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None) -> Response:
    if not page_auth(request):
        return _to_login(request)
    return _page(request, posted=posted)


@market_router.get("/market/graph.svg")
def market_graph(request: Request) -> Response:
    """The colony graph alone, as an SVG picture with its own background."""
    if not page_auth(request):
        return _to_login(request)
    svg = render_svg(colony_graph(Market(node_of(request))), standalone=True)
    return Response(svg, media_type="image/svg+xml", headers=SECURITY_HEADERS)


def _stale(request: Request) -> Response:
    return _render(request, "error.html", {"title": "Not done", "message": "The form was stale; reload the "
                                           "page and try again."}, status=403)


@market_router.post("/market")
def post_auction(
    request: Request,
    goal: Annotated[str, Form(max_length=8000)] = "",
    skills: Annotated[str, Form(max_length=4000)] = "",
    budget: Annotated[str, Form(max_length=40)] = "",
    verification: Annotated[str, Form(max_length=20)] = "approval",
    validator: Annotated[str, Form(max_length=64)] = "",
    tests: Annotated[str, Form(max_length=64_000)] = "",
    entry_point: Annotated[str, Form(max_length=100)] = "",
    problem: Annotated[str, Form(max_length=200)] = "",
    poster: Annotated[str, Form(max_length=64)] = "colony",
    csrf: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """Put a new task up for auction from the form; a refused one is shown on the page with what was typed."""
    if not page_auth(request):
        return _to_login(request)
    if not hmac.compare_digest(csrf.encode(), csrf_token(request).encode()):
        return _stale(request)
    form = {"goal": goal, "skills": skills, "budget": budget, "verification": verification, "validator": validator,
            "tests": tests, "entry_point": entry_point, "problem": problem, "poster": poster}
    if not goal.strip():
        return _page(request, error="Not posted — goal: must not be blank.", form=form, status=422)
    if not budget.strip():
        return _page(request, error="Not posted — budget: give the most the poster pays, in credits (e.g. 5 or "
                                    "0.25).", form=form, status=422)
    try:
        reserve = parse_amount(budget)
    except ValueError as exc:
        return _page(request, error=f"Not posted — budget: {exc}.", form=form, status=422)
    body: dict[str, Any] = {"goal": goal.strip(), "skills": [s.strip() for s in skills.split(",") if s.strip()],
                            "reserve": reserve, "verification": verification, "poster": poster.strip()}
    for name in _METHOD_FIELDS.get(verification, ()):
        value = form[name] if name == "tests" else form[name].strip()
        if value.strip():
            body[name] = value
    try:
        req = AuctionRequest.model_validate(body)
    except ValidationError as exc:
        problem_text = ", ".join(f"{'.'.join(map(str, e['loc']))}: {describe_error(e)}" for e in exc.errors())
        return _page(request, error=f"Not posted — {problem_text}.", form=form, status=422)
    try:
        auction = Market(node_of(request)).post(req)
    except AuctionError as exc:
        return _page(request, error=f"Not posted — {exc}", form=form, status=_STATUS.get(exc.reason, 409))
    except MarketError as exc:
        return _page(request, error=f"Not posted — {exc}", form=form, status=422)
    return RedirectResponse(f"/market?posted={auction}", status_code=303)
