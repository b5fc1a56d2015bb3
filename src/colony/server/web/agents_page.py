"""The web UI's Agents page: the node's agents (key, skills, tier, cost model, wallet) and a form to add one.

Same conventions as the other pages (`colony.server.web.pages`): server-rendered, login cookie
required, every form carries the CSRF token. The form is validated by the same `AgentSpec` as
the API and the CLI and creates the agent with the same function (`colony.market.profiles`); a
refusal is shown on the page with what was typed. Each row can deactivate or reactivate its
agent — the page holds no logic of its own.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from colony.identity.store import NAME_PATTERN
from colony.ledger import format_amount
from colony.market.profiles import (
    MAX_PERSONA_CHARS,
    AgentProfileError,
    AgentSpec,
    activate_agent,
    create_agent,
    deactivate_agent,
    list_agents,
    model_tiers,
)
from colony.server.api._deps import node as node_of
from colony.server.auth import csrf_token, page_auth
from colony.server.errors import describe_error
from colony.server.web.pages import _not_found, _render, _to_login, templates

templates.env.filters.setdefault("credits", format_amount)

__all__ = ["agents_router"]

agents_router = APIRouter(include_in_schema=False)
AgentName = Annotated[str, PathParam(pattern=NAME_PATTERN)]
_PRICES = (("price_in", "input_per_1k"), ("price_out", "output_per_1k"), ("price_tool", "per_tool_call"),
           ("overhead", "overhead"))


def _page(request: Request, *, error: str | None = None, form: dict[str, str] | None = None,
          created: str | None = None, status: int = 200) -> Response:
    n = node_of(request)
    return _render(request, "agents.html", {
        "active": "agents", "title": "Agents", "agents": list_agents(n.keyring), "tiers": model_tiers(n.settings),
        "error": error, "form": form or {}, "created": created, "max_persona": MAX_PERSONA_CHARS,
    }, status=status)


@agents_router.get("/agents")
def agents_page(request: Request, created: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None) -> Response:
    if not page_auth(request):
        return _to_login(request)
    return _page(request, created=created)


def _stale(request: Request) -> Response:
    return _render(request, "error.html", {"title": "Not done", "message": "The form was stale; reload the "
                                           "page and try again."}, status=403)


def _whole(value: str, label: str) -> int:
    """A form's price: blank is 0; else a whole number ≥ 0 (ValueError says which field)."""
    text = value.strip()
    if not text:
        return 0
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{label} must be a whole number of micro-credits ≥ 0")
    return int(text)


def _tool_prices(value: str) -> dict[str, int]:
    """``"web_fetch=2000, read_file=5"`` → ``{"web_fetch": 2000, "read_file": 5}``."""
    found: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        tool, sep, price = item.partition("=")
        if not sep:
            raise ValueError(f"per-tool prices are written tool=N, e.g. web_fetch=2000 (not {item!r})")
        found[tool.strip()] = _whole(price, f"the price of {tool.strip()!r}")
    return found


@agents_router.post("/agents")
def add_agent(
    request: Request,
    name: Annotated[str, Form(max_length=64)] = "",
    persona: Annotated[str, Form(max_length=MAX_PERSONA_CHARS * 2)] = "",
    tier: Annotated[str, Form(max_length=64)] = "default",
    skills: Annotated[str, Form(max_length=4000)] = "",
    description: Annotated[str, Form(max_length=2000)] = "",
    price_in: Annotated[str, Form(max_length=20)] = "",
    price_out: Annotated[str, Form(max_length=20)] = "",
    price_tool: Annotated[str, Form(max_length=20)] = "",
    price_for: Annotated[str, Form(max_length=4000)] = "",
    overhead: Annotated[str, Form(max_length=20)] = "",
    csrf: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """Add an agent from the form; a refused one is shown on the page with what was typed."""
    if not page_auth(request):
        return _to_login(request)
    if not hmac.compare_digest(csrf.encode(), csrf_token(request).encode()):
        return _stale(request)
    form = {"name": name, "persona": persona, "tier": tier, "skills": skills, "description": description,
            "price_in": price_in, "price_out": price_out, "price_tool": price_tool, "price_for": price_for,
            "overhead": overhead}
    try:
        cost = {key: _whole(form[field], field.replace("_", " ")) for field, key in _PRICES}
        spec = AgentSpec.model_validate({
            "name": name.strip(), "persona": persona, "tier": tier, "description": description.strip(),
            "skills": [s.strip() for s in skills.split(",") if s.strip()],
            "cost": {**cost, "per_tool": _tool_prices(price_for)},
        })
    except ValidationError as exc:
        problem = ", ".join(f"{'.'.join(map(str, e['loc']))}: {describe_error(e)}" for e in exc.errors())
        return _page(request, error=f"Not added — {problem}.", form=form, status=422)
    except ValueError as exc:
        return _page(request, error=f"Not added — {exc}.", form=form, status=422)
    try:
        made = create_agent(node_of(request).keyring, spec)
    except AgentProfileError as exc:
        return _page(request, error=f"Not added — {exc}", form=form, status=409 if exc.reason == "exists" else 422)
    return RedirectResponse(f"/agents?created={made.name}", status_code=303)


@agents_router.post("/agents/{name}/{action}")
def agent_action(request: Request, name: AgentName, action: Literal["deactivate", "activate"],
                 csrf: Annotated[str, Form(max_length=256)] = "") -> Response:
    if not page_auth(request):
        return _to_login(request)
    if not hmac.compare_digest(csrf.encode(), csrf_token(request).encode()):
        return _stale(request)
    keyring = node_of(request).keyring
    try:
        (deactivate_agent if action == "deactivate" else activate_agent)(keyring, name)
    except AgentProfileError:
        return _not_found(request, f"No agent {name!r}.")
    return RedirectResponse("/agents", status_code=303)
