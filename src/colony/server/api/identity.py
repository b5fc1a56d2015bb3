"""Identities over HTTP: the node's and its agents' public identities, agent cards, NIP-98 routes.

Who may call what, and why:

- ``GET /api/v1/identity`` and ``POST /api/v1/identity/agents`` (list, add an agent) and
  ``GET /api/v1/identity/peers`` are the operator's: bearer token, like the rest of the API.
- Agent cards are public (``/api/v1/identity/agents/{name}/card``, its signed form ``…/card/event``,
  and the default agent's at ``/.well-known/agent-registration.json`` — ERC-8004's well-known
  name): a card exists to be found, and it holds only public facts (names, public keys, the
  payment address, skills, endpoints). Nothing secret is reachable without the token.
- ``GET /api/v1/identity/whoami`` and ``POST /api/v1/identity/peers`` are node-to-node: NIP-98
  (`colony.server.nip98`). ``peers`` stores the caller's signed card, so a peer directory fills as
  nodes introduce themselves; the NIP-98 signer must be the card's own key.

Routes are plain ``def`` where they may unlock a key (scrypt, about a second the first time in a
process): they run in the thread pool, never on the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from colony.errors import IdentityError
from colony.identity import Event, Identity, Keyring, agent_card, card_event, npub
from colony.identity.peers import known_peers, record_peer
from colony.identity.store import (
    DEFAULT_AGENT,
    MAX_DESCRIPTION_CHARS,
    MAX_SKILL_CHARS,
    MAX_SKILLS,
    NAME_PATTERN,
)
from colony.market.profiles import card_facts
from colony.payments.prices import sales_of
from colony.server.api._deps import node
from colony.server.auth import require_auth
from colony.server.errors import APIError, ErrorOut, errors
from colony.server.nip98 import NIP98_RESPONSES, require_nip98

__all__ = ["AgentIn", "PeerIn", "router"]

router = APIRouter(tags=["identity"])
_AUTH = [Depends(require_auth)]
AgentName = Annotated[str, Path(pattern=NAME_PATTERN, description="The agent's name, e.g. colony.")]


class AgentIn(BaseModel):
    """A new agent on this node: its name, what it is good at, a line about it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="1-32 lowercase letters, digits, '-' or '_'.")
    skills: list[Annotated[str, Field(min_length=1, max_length=MAX_SKILL_CHARS, pattern=r"\S")]] = Field(
        default_factory=list, max_length=MAX_SKILLS)
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)


class PeerIn(BaseModel):
    """A peer's agent card as its signed NIP-01 event (``colony identity card NAME --event``)."""

    model_config = ConfigDict(extra="forbid")

    card_event: Event


def _keyring(request: Request) -> Keyring:
    return node(request).keyring


def _base_url(request: Request) -> str:
    return node(request).settings.public_url or str(request.base_url)


def _agent(request: Request, name: str) -> Identity:
    try:
        return _keyring(request).agent(name)
    except IdentityError as exc:
        raise APIError(404, "not_found", f"No agent named {name!r} on this node.") from exc


def _card(request: Request, name: str) -> dict[str, Any]:
    agent = _agent(request, name)
    selling, hire = sales_of(node(request).db, node(request).settings, agent.name, DEFAULT_AGENT)
    active, facts = card_facts(node(request).db, agent.name)  # its model tier and cost model, when configured
    return agent_card(agent, _keyring(request).node(), _base_url(request), x402_support=selling, hire_path=hire,
                      active=active, extension=facts)


@router.get("/api/v1/identity", dependencies=_AUTH, summary="The node's and its agents' public identities")
def identities(request: Request) -> dict[str, Any]:
    found = _keyring(request).all()
    return {"node": next(i.public() for i in found if i.role == "node"),
            "agents": [i.public() for i in found if i.role == "agent"]}


@router.post("/api/v1/identity/agents", dependencies=_AUTH, status_code=201, responses=errors(409),
             summary="Add an agent with its own Schnorr key and EVM account")
def add_agent(request: Request, body: AgentIn) -> dict[str, Any]:
    try:
        made = _keyring(request).create_agent(body.name, skills=body.skills, description=body.description)
    except IdentityError as exc:
        if exc.reason == "exists":
            raise APIError(409, "conflict", str(exc)) from exc
        raise APIError(422, "invalid_request", str(exc)) from exc
    return {"agent": made.public()}


@router.get("/api/v1/identity/agents/{name}/card", responses=errors(404),
            summary="An agent's card (ERC-8004 registration file; public)")
def card(request: Request, name: AgentName) -> dict[str, Any]:
    return _card(request, name)


@router.get("/api/v1/identity/agents/{name}/card/event", responses=errors(404),
            summary="An agent's card as a NIP-01 event signed by the agent (public)")
def signed_card(request: Request, name: AgentName) -> dict[str, Any]:
    return card_event(_agent(request, name), _card(request, name)).model_dump()


@router.get("/.well-known/agent-registration.json", summary="The default agent's card (public)")
def well_known_card(request: Request) -> dict[str, Any]:
    return _card(request, DEFAULT_AGENT)


@router.get("/api/v1/identity/whoami", responses=NIP98_RESPONSES,
            summary="The caller's public key, as proven by its NIP-98 header")
async def whoami(request: Request, caller: Annotated[Event, Depends(require_nip98)]) -> dict[str, Any]:
    names = {p["pubkey"]: p["name"] for p in known_peers(node(request).db)}
    return {"pubkey": caller.pubkey, "npub": npub(caller.pubkey), "peer": names.get(caller.pubkey)}


_NOT_ITS_OWN: dict[int | str, dict[str, Any]] = {403: {"model": ErrorOut, "description": "The NIP-98 signer is not the key that signed the card."}}


@router.post("/api/v1/identity/peers", status_code=201, responses={**NIP98_RESPONSES, **_NOT_ITS_OWN},
             summary="A peer introduces one of its agents with its signed card (NIP-98)")
def announce(request: Request, body: PeerIn, caller: Annotated[Event, Depends(require_nip98)]) -> dict[str, Any]:
    try:
        peer, changed = record_peer(node(request).db, body.card_event, introduced_by=caller.pubkey)
    except IdentityError as exc:
        if exc.reason == "forbidden":
            raise APIError(403, "forbidden", str(exc)) from exc
        raise APIError(422, "invalid_request", str(exc)) from exc
    return {"peer": peer, "updated": changed}


@router.get("/api/v1/identity/peers", dependencies=_AUTH, summary="Peers' agents that introduced themselves")
def peers(request: Request) -> dict[str, Any]:
    return {"peers": known_peers(node(request).db)}
