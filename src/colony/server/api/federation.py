"""Federation over HTTP: node-to-node routes under ``/federation/v1``, the operator's under ``/api/v1/peers``.

    GET    /federation/v1/hello         this node's signed announcement (public: only public facts)
    POST   /federation/v1/join          a node asks to be accepted (NIP-98; trusted already, an invite, or
                                        an introduction by a direct member: `colony.federation.introduce`)
    POST   /federation/v1/announce      a member's heartbeat: its announcement (NIP-98, member)
    POST   /federation/v1/inbox         a member's next message (NIP-98, member; numbered, in order)
    GET    /federation/v1/ledger/*      this node's ledger and reputation for replicas (NIP-98, member;
                                        `colony.server.api.federation_ledger`, checked by `member_caller`)
    GET    /api/v1/peers                the member table: status, role, last seen, liveness, URL, replicas
    POST   /api/v1/peers                add a node by URL (and ask it to accept us)
    DELETE /api/v1/peers/{pubkey}       remove a member (its requests are refused from then on)
    GET    /api/v1/peers/status         this node's view: queen, term, live and dead, incidents, outbox,
                                        and the colony: replicas, proofs, federated averaging, Psi now and over time
    POST   /api/v1/peers/invites        a one-time invite token (shown once; stored as its hash)

Every ``/federation/v1`` route but ``hello`` requires NIP-98 (`colony.identity.nip98`); every one
but ``join`` also requires the signer to be a trusted member (the ledger routes' ``peer_check`` is
overridden with `member_caller` where the app registers them). A refusal is 401 (the header) or
403/409 (the sender or the message) with a JSON body, and a row in ``federation_incidents``
(`colony.federation.membership`). ``/api/v1/peers`` is the operator's: the bearer token, like
the rest of ``/api/v1``. The router's lifespan runs the federation loop while the node serves
(`colony.federation.loop`), unless ``COLONY_FEDERATION_ENABLED`` is off.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, NoReturn

import anyio
from fastapi import APIRouter, Depends, FastAPI, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.convertors import Convertor, register_url_convertor

from colony.errors import Nip98Error, StoreError
from colony.federation import membership
from colony.federation.announce import Announcer, own_url
from colony.federation.colony_state import ColonyPeersOut, ColonyStatusOut, colony_peers, colony_status
from colony.federation.errors import FederationError, PeerUnreachable, Refused
from colony.federation.inbox import receive_announcement, receive_message
from colony.federation.loop import Federation, start_in_process
from colony.federation.messages import RoleView
from colony.federation.peers import AddResult, PeerOut, add_peer, remove_peer
from colony.federation.roles import role_view
from colony.identity.events import Event
from colony.identity.nip98 import sqlite_replay_guard, verify_auth
from colony.server.api._deps import node
from colony.server.auth import require_auth
from colony.server.errors import APIError, ErrorOut
from colony.server.nip98 import NIP98_RESPONSES, request_url

__all__ = ["federation_router", "peers_router"]

log = logging.getLogger("colony.server")
HEX64 = r"^[0-9a-f]{64}$"
#: Printable ASCII only: a URL in another script would be refused by the HTTP client anyway.
URL = r"^https?://[A-Za-z0-9._~%:\[\]-]+(/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?$"


@asynccontextmanager
async def _running(app: FastAPI) -> AsyncIterator[None]:
    """The federation loop while the node serves (announcements, outbox, the queen rule)."""
    stop: Callable[[], Awaitable[None]] | None = None
    n = app.state.node
    if n.settings.federation_enabled:
        try:
            url = await asyncio.to_thread(own_url, n, getattr(app.state, "listen_url", None))
        except StoreError as exc:  # e.g. an app served again after its node was closed: serve, don't federate
            log.warning("federation not started: %s", exc)
        else:
            app.state.federation, stop = start_in_process(n, url)
    try:
        yield
    finally:
        if stop is not None:
            await stop()


federation_router = APIRouter(prefix="/federation/v1", tags=["federation"], lifespan=_running)
peers_router = APIRouter(prefix="/api/v1/peers", tags=["federation"], dependencies=[Depends(require_auth)])


def _err(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


_MEMBER_ERRORS: dict[int | str, dict[str, Any]] = {
    **NIP98_RESPONSES,
    403: _err("The signer is not a trusted member (`unknown_peer`), or the event is not the signer's or does not "
              "verify (`bad_signature`), is addressed to another node (`replay`), or is malformed (`invalid`)."),
    409: _err("A message number out of order: already used by another event (`replay`) or past the next one "
              "(`reorder`; `expected` is the next number), or an announcement dated in the future (`stale`)."),
}


# -- NIP-98 with incidents ------------------------------------------------------------------------
def _claimed_signer(header: str | None) -> str | None:
    """The pubkey a NIP-98 header claims (unverified), for the incident record."""
    try:
        raw = base64.b64decode((header or "").partition(" ")[2].strip(), validate=True)
        pubkey = json.loads(raw).get("pubkey")
    except (ValueError, AttributeError):
        return None
    return pubkey if isinstance(pubkey, str) and len(pubkey) == 64 else None


#: NIP-98 checks that come after the signature's: the claimed key really signed these headers.
_SIGNED_REASONS = {"stale", "url", "method", "payload", "replayed"}
_INCIDENT_OF: dict[str, membership.IncidentKind] = {"replayed": "replay", "stale": "stale",
                                                    "missing": "unknown_peer"}


async def nip98_caller(request: Request) -> Event:
    """The verified NIP-98 event of the request; 401 and an incident otherwise."""
    n = node(request)
    body = await request.body()
    header, url, method = request.headers.get("authorization"), request_url(request), request.method
    guard = sqlite_replay_guard(n.db)
    try:
        return await anyio.to_thread.run_sync(
            lambda: verify_auth(header, url=url, method=method, body=body, replay=guard))
    except Nip98Error as exc:
        signer = _claimed_signer(header)
        peer = signer if exc.reason in _SIGNED_REASONS else None
        detail = f"NIP-98 refused ({exc.reason}) on {request.url.path}" + (
            f"; the header claims {signer}" if signer and peer is None else "")
        kind = _INCIDENT_OF.get(exc.reason or "", "bad_signature")
        await anyio.to_thread.run_sync(lambda: membership.record(n.db, peer, kind, detail))
        raise APIError(401, "unauthorized", str(exc), reason=exc.reason) from exc


def _refused(exc: Refused) -> NoReturn:
    raise APIError(exc.status, exc.reason, str(exc), **exc.extra) from exc


async def member_caller(request: Request, caller: Annotated[Event, Depends(nip98_caller)]) -> Event:
    """A verified NIP-98 caller that is a trusted member; 403 and an incident otherwise."""
    try:
        await anyio.to_thread.run_sync(lambda: membership.require_member(node(request).db, caller.pubkey))
    except Refused as exc:
        _refused(exc)
    return caller


Caller = Annotated[Event, Depends(member_caller)]


# -- node to node -------------------------------------------------------------------------------
class JoinIn(BaseModel):
    """A node's request to be accepted: its signed announcement and, if it has one, an invite, or the
    introduction one of this node's members sent it naming this node (`colony.federation.introduce`)."""

    model_config = ConfigDict(extra="forbid")

    announcement: Event
    invite: str | None = Field(default=None, max_length=200)
    introduction: Event | None = None


class JoinOut(BaseModel):
    accepted: bool
    invited: bool
    announcement: Event


class AnnounceOut(BaseModel):
    """Whether the stored announcement changed, and the role this node follows (so a node that was
    away — an old queen back after a failover — learns the current term from its first heartbeat)."""

    updated: bool
    role: RoleView


class InboxOut(BaseModel):
    accepted: bool
    duplicate: bool = False
    seq: int


async def _hello(request: Request) -> Event:
    federation: Federation | None = getattr(request.app.state, "federation", None)
    if federation is not None:
        return await federation.announcement()
    n = node(request)
    url = await asyncio.to_thread(own_url, n, getattr(request.app.state, "listen_url", None))
    return await asyncio.to_thread(Announcer(n, url).build)


@federation_router.get("/hello", response_model=Event, summary="This node's signed announcement (public)")
async def hello(request: Request) -> Event:
    return await _hello(request)


@federation_router.post("/join", response_model=JoinOut, responses={
    **NIP98_RESPONSES,
    403: _err("Refused: the announcement is not the signer's or does not verify (`bad_signature`), or this node "
              "does not trust the key and the invite is missing, unknown, used or expired, or the introduction "
              "is refused (`unknown_peer`)."),
    409: _err("A node cannot join itself (`conflict`)."),
}, summary="Ask to be accepted as a member (NIP-98; already trusted, with an invite, or introduced)")
async def join(request: Request, body: JoinIn, caller: Annotated[Event, Depends(nip98_caller)]) -> JoinOut:
    n = node(request)
    me = (await asyncio.to_thread(n.keyring.node)).public_hex
    try:
        _, invited = await asyncio.to_thread(
            lambda: membership.accept_join(n.db, me, caller.pubkey, body.announcement, body.invite, body.introduction,
                                           allow_introductions=n.settings.federation_accept_introductions))
    except Refused as exc:
        _refused(exc)
    return JoinOut(accepted=True, invited=invited, announcement=await _hello(request))


@federation_router.post("/announce", response_model=AnnounceOut, responses=_MEMBER_ERRORS,
                        summary="A member's heartbeat: its signed announcement (NIP-98, member)")
def announce(request: Request, body: Event, caller: Caller) -> AnnounceOut:
    n = node(request)
    try:
        updated = receive_announcement(n, caller.pubkey, body)
    except Refused as exc:
        _refused(exc)
    return AnnounceOut(updated=updated, role=role_view(n.db))


@federation_router.post("/inbox", response_model=InboxOut, responses=_MEMBER_ERRORS,
                        summary="A member's next message (NIP-98, member; numbered per sender, in order)")
def inbox(request: Request, body: Event, caller: Caller) -> InboxOut:
    try:
        return InboxOut.model_validate(receive_message(node(request), caller.pubkey, body))
    except Refused as exc:
        _refused(exc)


# -- the operator's -----------------------------------------------------------------------------
class PeerIn(BaseModel):
    """A node to add: its URL, and optionally an invite it issued and the key it must have."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=URL, max_length=500, description="The node's base URL, e.g. http://127.0.0.1:8421.")
    invite: str | None = Field(default=None, min_length=1, max_length=200,
                               description="A token from `colony peers invite` on that node.")
    pubkey: str | None = Field(default=None, pattern=HEX64, description="Refuse the node unless it has this key.")


class InviteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_s: int = Field(default=membership.DEFAULT_INVITE_TTL_S, ge=60, le=30 * 86_400,
                       description="Seconds the invite stays valid.")


class InviteOut(BaseModel):
    token: str
    expires_at: float
    url: str


@peers_router.get("", response_model=ColonyPeersOut,
                  summary="The member table: status, role, last seen, liveness, URL, and each member's replica")
def list_peers(request: Request) -> ColonyPeersOut:
    federation: Federation | None = getattr(request.app.state, "federation", None)
    return colony_peers(node(request), federation.syncs if federation is not None else None)


@peers_router.get("/status", response_model=ColonyStatusOut,
                  summary="This node's view (queen, term, live and dead members, incidents, undelivered messages) "
                          "and the colony (replicas, equivocation proofs, federated averaging, Psi now and its series)")
def peers_status(request: Request) -> ColonyStatusOut:
    federation: Federation | None = getattr(request.app.state, "federation", None)
    if federation is None:
        return colony_status(node(request))
    return colony_status(node(request), federation.syncs, federation.series)


@peers_router.post("", response_model=AddResult, responses={
    403: _err("The node's hello does not verify, or it has another key than `pubkey` (`bad_signature`)."),
    404: _err("No Colony node answered at the URL (`unreachable`)."),
    409: _err("The URL is this node itself (`conflict`)."),
}, summary="Add a node by URL, and ask it to accept this node")
async def add(request: Request, body: PeerIn) -> AddResult:
    try:
        return await add_peer(node(request), body.url, invite=body.invite, expect=body.pubkey,
                              listen_url=getattr(request.app.state, "listen_url", None))
    except PeerUnreachable as exc:
        raise APIError(404, "unreachable", str(exc)) from exc
    except FederationError as exc:
        raise APIError(409 if exc.reason == "conflict" else 403, exc.reason, str(exc)) from exc


class _Hex64(Convertor[str]):
    """A path segment of 64 lowercase hex digits: ``/api/v1/peers/{pubkey}`` must not swallow
    ``/api/v1/peers/status`` (nor advertise DELETE there in ``Allow``)."""

    regex = "[0-9a-f]{64}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("hex64", _Hex64())


@peers_router.delete("/{pubkey:hex64}", response_model=PeerOut, responses={404: _err("No such member.")},
                     summary="Remove a member: its requests are refused and it is sent nothing from now on")
def delete(request: Request, pubkey: Annotated[str, Path(pattern=HEX64)]) -> PeerOut:
    try:
        return remove_peer(node(request), pubkey)
    except FederationError as exc:
        raise APIError(404, "not_found", str(exc)) from exc


@peers_router.post("/invites", response_model=InviteOut, status_code=201,
                   summary="A one-time invite token for another node (shown once; only its hash is kept)")
def invite(request: Request, body: InviteIn) -> InviteOut:
    n = node(request)
    made = membership.new_invite(n.db, body.ttl_s)
    return InviteOut(token=made.token, expires_at=made.expires_at,
                     url=own_url(n, getattr(request.app.state, "listen_url", None)))
