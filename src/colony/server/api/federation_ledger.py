"""The node's ledger and reputation evidence, served to peers that replicate them.

Read-only routes under ``/federation/v1/ledger``, the HTTP face of
`colony.federation.replica_sources.StoreSource` (the answers are its wire models, byte for byte):

- ``GET /root`` — the state root and the number of entries;
- ``GET /children?prefix=`` — one node of the state tree (what `colony.ledger.merkle.diff` asks);
- ``GET /entries?account=&after=&limit=`` — one account's entries after a seq, with the
  authorisations and treasury orders they cite;
- ``GET /scan?account=&after=&limit=`` — every entry after (account, seq): a replica's first pull;
- ``GET /reputation?after=&limit=`` — the market's signed verification and feedback events.

Every request must carry a NIP-98 header (`colony.server.nip98.require_nip98`); then `peer_check`
decides whether that key may pull. By default it accepts any valid signer — everything served is
signed data anyone could verify, and nothing here changes state — and the node's app
(`colony.server.app.create_app`) narrows it to the colony's trusted members by overriding the
dependency with `colony.server.api.federation.member_caller`: any other signer is refused 403 and
recorded as an incident, like on every other ``/federation/v1`` route.
Limits are bounded (`colony.federation.replica_wire.MAX_PAGE`); errors are JSON (`colony.server.errors`).

Routes are plain ``def``: SQLite reads run in the thread pool.
"""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from colony.federation.replica_sources import StoreSource
from colony.federation.replica_wire import (
    MAX_PAGE,
    PREFIX_PATTERN,
    ChildrenAnswer,
    EntryPage,
    ReputationPage,
    RootInfo,
)
from colony.identity.events import Event
from colony.ledger import open_ledger_store
from colony.market.queries import reputation_events
from colony.server.api._deps import node
from colony.server.errors import ErrorOut, errors
from colony.server.nip98 import NIP98_RESPONSES, require_nip98
from colony.store.engine import open_engine

__all__ = ["PeerCheck", "ledger_source", "peer_check", "router"]


async def peer_check(caller: Annotated[Event, Depends(require_nip98)]) -> Event:
    """Who may pull this node's ledger: any valid NIP-98 signer unless the app overrides this dependency."""
    return caller


PeerCheck = Annotated[Event, Depends(peer_check)]


def ledger_source(request: Request) -> StoreSource:
    """The node's ledger and market, as a replica's source."""
    n = node(request)
    return StoreSource(open_ledger_store(n.db, n.settings),
                       functools.partial(reputation_events, open_engine(n.db, n.settings)))


Source = Annotated[StoreSource, Depends(ledger_source)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"At most this many items (1 to {MAX_PAGE}).")]
After = Annotated[int, Query(ge=0, lt=2**62, description="Answer only what comes after this position.")]
Account = Annotated[str, Query(pattern=r"^[0-9a-f]{64}$", description="An account id (64 hex).")]

router = APIRouter(prefix="/federation/v1/ledger", tags=["federation"], responses={
    **NIP98_RESPONSES, **errors(422),
    403: {"model": ErrorOut, "description": "The signer may not pull this node's ledger: on a node, one that is not "
                                            "a trusted member of its colony (`unknown_peer`, recorded)."}})


def _json(answer: BaseModel) -> Response:
    """The wire model's own JSON, so a peer counts the same bytes as an in-process source."""
    return Response(content=answer.model_dump_json(), media_type="application/json")


@router.get("/root", response_model=RootInfo, summary="State root and entry count")
def root(caller: PeerCheck, source: Source) -> Response:
    return _json(source.root())


@router.get("/children", response_model=ChildrenAnswer, summary="One node of the state tree")
def children(caller: PeerCheck, source: Source,
             prefix: Annotated[str, Query(pattern=PREFIX_PATTERN, description="0 to 4 hex digits.")] = "") -> Response:
    return _json(source.children_answer(prefix))


@router.get("/entries", response_model=EntryPage, summary="One account's entries after a seq")
def entries(caller: PeerCheck, source: Source, account: Account, after: After = 0, limit: Limit = 500) -> Response:
    return _json(source.entries(account, after, limit))


@router.get("/scan", response_model=EntryPage, summary="Every entry after (account, seq)")
def scan(caller: PeerCheck, source: Source,
         account: Annotated[str, Query(pattern=r"^([0-9a-f]{64})?$", description="Start after this account.")] = "",
         after: After = 0, limit: Limit = 500) -> Response:
    return _json(source.scan(account, after, limit))


@router.get("/reputation", response_model=ReputationPage, summary="Signed verification and feedback events")
def reputation(caller: PeerCheck, source: Source, after: After = 0, limit: Limit = 500) -> Response:
    return _json(source.reputation_events(after, limit))
