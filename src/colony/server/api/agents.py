"""The node's agents over HTTP: list, show, add, change, deactivate and reactivate them.

    GET    /api/v1/agents                  every agent (deactivated ones too) and the node's model tiers
    POST   /api/v1/agents                  a new agent: identity and profile together (201)
    GET    /api/v1/agents/{name}           one agent
    PATCH  /api/v1/agents/{name}           change what the body names; the rest stays
    DELETE /api/v1/agents/{name}           deactivate (idempotent); nothing is deleted
    POST   /api/v1/agents/{name}/activate  back in service, with the profile it had

The operator's, like the rest of /api/v1: bearer token (or the UI's cookie and CSRF header).
Bodies are strict (`AgentSpec`, `AgentPatch`: unknown fields, floats for prices and overlong
text are 422). An unknown model tier is a 404 ``unknown_tier`` whose body lists the node's tiers:
the body names a provider that does not exist, as a transfer to an unknown account is a 404.

Why a deactivated agent answers GET with 404 and PATCH with 409 (code ``deactivated`` both)
rather than 200: DELETE took it out of service, and a client that deleted a resource must not
find it still answering as if nothing happened. It is not gone from the node — the list shows it
with ``active: false``, its identity, wallet and history are kept (`colony.market.profiles` says
why) — and POST …/activate brings it back. (410 Gone would say the same, but clients, and
schemathesis' contract checks, read 410 as "this request can never succeed", which is untrue.)

Routes are plain ``def``: creating an agent runs scrypt (about a second per key), in the thread pool.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from colony.identity import Keyring
from colony.identity.store import NAME_PATTERN
from colony.market.profiles import (
    AgentPatch,
    AgentProfileError,
    AgentRecord,
    AgentSpec,
    activate_agent,
    create_agent,
    deactivate_agent,
    edit_agent,
    get_agent,
    list_agents,
    model_tiers,
)
from colony.server.api._deps import node
from colony.server.auth import require_auth
from colony.server.errors import APIError, ErrorOut, errors

__all__ = ["AgentsOut", "router"]

router = APIRouter(prefix="/api/v1/agents", tags=["agents"], dependencies=[Depends(require_auth)])
AgentName = Annotated[str, Path(pattern=NAME_PATTERN, description="The agent's name, e.g. scout.")]

_DEACTIVATED = ("the agent is deactivated (code `deactivated`; kept with its identity, wallet and history: "
                "POST /api/v1/agents/{name}/activate brings it back)")
_GET_404: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": f"No such agent, or {_DEACTIVATED}."}}
_UNKNOWN: dict[int | str, dict[str, Any]] = {404: {
    "model": ErrorOut,
    "description": "No such agent, or (code `unknown_tier`) no such model tier: the body's `tiers` lists the node's."}}
_PATCH_409: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": f"Not now: {_DEACTIVATED}."}}


class AgentsOut(BaseModel):
    agents: list[AgentRecord]
    tiers: list[str]


def _keyring(request: Request) -> Keyring:
    return node(request).keyring


def _refuse(exc: AgentProfileError) -> NoReturn:
    if exc.reason == "unknown_tier":
        raise APIError(404, "unknown_tier", str(exc), tiers=exc.tiers) from exc
    if exc.reason == "unknown":
        raise APIError(404, "not_found", str(exc)) from exc
    if exc.reason == "exists":
        raise APIError(409, "conflict", str(exc)) from exc
    if exc.reason == "inactive":
        raise APIError(409, "deactivated", _deactivated(exc.name or "")) from exc
    raise APIError(422, "invalid_request", str(exc)) from exc


def _deactivated(name: str) -> str:
    return (f"Agent {name!r} is deactivated; its identity, wallet and history are kept (GET /api/v1/agents lists "
            f"it). Reactivate it with POST /api/v1/agents/{name}/activate.")


@router.get("", response_model=AgentsOut, summary="The node's agents and its model tiers")
def agents(request: Request) -> AgentsOut:
    return AgentsOut(agents=list_agents(_keyring(request)), tiers=model_tiers(node(request).settings))


@router.post("", response_model=AgentRecord, status_code=201, responses={**_UNKNOWN, **errors(409)},
             summary="Add an agent: a new identity (keys, EVM account) and its profile, together")
def add(request: Request, body: AgentSpec) -> AgentRecord:
    try:
        return create_agent(_keyring(request), body)
    except AgentProfileError as exc:
        _refuse(exc)


@router.get("/{name}", response_model=AgentRecord, responses=_GET_404, summary="One agent")
def agent(request: Request, name: AgentName) -> AgentRecord:
    try:
        found = get_agent(_keyring(request), name)
    except AgentProfileError as exc:
        _refuse(exc)
    if not found.active:
        raise APIError(404, "deactivated", _deactivated(name))
    return found


@router.patch("/{name}", response_model=AgentRecord, responses={**_UNKNOWN, **_PATCH_409},
              summary="Change an agent's persona, tier, cost model, skills or description")
def change(request: Request, name: AgentName, body: AgentPatch) -> AgentRecord:
    try:
        return edit_agent(_keyring(request), name, body)
    except AgentProfileError as exc:
        _refuse(exc)


@router.delete("/{name}", response_model=AgentRecord, responses=errors(404),
               summary="Deactivate an agent (its identity, wallet and history are kept)")
def deactivate(request: Request, name: AgentName) -> AgentRecord:
    try:
        return deactivate_agent(_keyring(request), name)
    except AgentProfileError as exc:
        _refuse(exc)


@router.post("/{name}/activate", response_model=AgentRecord, responses=errors(404),
             summary="Put a deactivated agent back in service")
def activate(request: Request, name: AgentName) -> AgentRecord:
    try:
        return activate_agent(_keyring(request), name)
    except AgentProfileError as exc:
        _refuse(exc)
