"""Ledger sources: where a replica pulls a peer's ledger and reputation events from.

`LedgerSource` is the protocol `colony.federation.replication.sync` walks: the state root, the
children of one node of the state tree (what `colony.ledger.merkle.diff` asks), one account's
entries after a sequence number, every entry after a cursor (a first pull, page by page, instead
of walking a whole tree), and the market's reputation events after a cursor. Everything a source
answers is a `colony.federation.replica_wire` model, and untrusted: the replica recomputes every
id and signature.

Three sources:

- `StoreSource` over a node's own `LedgerStore` (and its market tables): what the HTTP routes
  serve, and what a test or a process on the same machine reads directly;
- `ReplicaSource` over this node's verified copy of an origin: a peer can pull an origin's ledger
  from any replica of it (the origin may be gone), and an origin that showed two histories to two
  replicas is caught when one replica pulls from the other;
- `HttpSource`, the routes of `colony.server.api.federation_ledger` over HTTP, every request
  NIP-98 signed by this node's key.

Each source counts its requests and the bytes of its answers (`Meter`); the in-process sources
count the JSON the HTTP routes would send, so both report the same cost.

The protocol is synchronous because `merkle.diff` walks with a plain callable; a caller in an
event loop runs a sync in a thread.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar
from urllib.parse import urlencode

import httpx
from pydantic import BaseModel, ValidationError

from colony.federation import _replica_store as rs
from colony.federation.replica_wire import (
    MAX_PAGE,
    ChildrenAnswer,
    EntryPage,
    ReputationItem,
    ReputationPage,
    RootInfo,
    SourceError,
)
from colony.identity.events import Event, sign_event
from colony.identity.keys import SchnorrKey
from colony.identity.nip98 import AUTH_KIND
from colony.ledger import merkle
from colony.ledger.records import Entry
from colony.ledger.store import LedgerStore
from colony.store import Database

__all__ = [
    "HttpSource",
    "LedgerSource",
    "Meter",
    "ReplicaSource",
    "StoreSource",
    "replica_tree",
    "tree_root",
]

M = TypeVar("M", bound=BaseModel)
#: ``(after position, limit) -> [(position, event)]``: the market's reputation events (`colony.market.queries`).
ReputationReader = Callable[[int, int], list[tuple[int, Event]]]


@dataclass
class Meter:
    """What a source cost so far: requests answered and bytes of answers."""

    requests: int = 0
    transferred: int = 0


class LedgerSource(Protocol):
    """A peer's ledger as a replica pulls it (see the module docstring)."""

    @property
    def meter(self) -> Meter:
        """Requests answered and bytes sent so far (a sync reports the difference)."""
        ...

    def root(self) -> RootInfo: ...
    def children(self, prefix: str) -> dict[str, str]: ...
    def entries(self, account: str, after_seq: int, limit: int) -> EntryPage: ...
    def scan(self, after_account: str, after_seq: int, limit: int) -> EntryPage: ...
    def reputation_events(self, after_cursor: int, limit: int) -> ReputationPage: ...


def _bounded(limit: int) -> int:
    return max(1, min(MAX_PAGE, limit))


def _page(entries: list[Entry], limit: int, cited: list[Event]) -> EntryPage:
    return EntryPage(entries=[e.event() for e in entries[:limit]], cited=cited, more=len(entries) > limit)


class _Metered:
    meter: Meter

    def _count(self, answer: M) -> M:
        self.meter.requests += 1
        self.meter.transferred += len(answer.model_dump_json().encode())
        return answer


class StoreSource(_Metered):
    """A node's own ledger (and, given ``reputation``, its market's reputation events) as a source."""

    def __init__(self, store: LedgerStore, reputation: ReputationReader | None = None) -> None:
        self.store, self.reputation = store, reputation
        self.meter = Meter()

    def root(self) -> RootInfo:
        with self.store.snapshot():
            return self._count(RootInfo(root=self.store.root(), entries=self.store.entry_count()))

    def children(self, prefix: str) -> dict[str, str]:
        return self.children_answer(prefix).children

    def children_answer(self, prefix: str) -> ChildrenAnswer:
        return self._count(ChildrenAnswer(prefix=prefix, children=self.store.tree_children(prefix)))

    def entries(self, account: str, after_seq: int, limit: int) -> EntryPage:
        limit = _bounded(limit)
        with self.store.snapshot():
            found = self.store.entries_after(account, after_seq, limit + 1)
            return self._count(_page(found, limit, self._cited(found[:limit])))

    def scan(self, after_account: str, after_seq: int, limit: int) -> EntryPage:
        limit = _bounded(limit)
        with self.store.snapshot():
            found = self.store.scan_after(after_account, after_seq, limit + 1)
            return self._count(_page(found, limit, self._cited(found[:limit])))

    def reputation_events(self, after_cursor: int, limit: int) -> ReputationPage:
        limit = _bounded(limit)
        found = self.reputation(after_cursor, limit + 1) if self.reputation is not None else []
        return self._count(ReputationPage(events=[ReputationItem(cursor=c, event=e) for c, e in found[:limit]],
                                          more=len(found) > limit))

    def _cited(self, entries: list[Entry]) -> list[Event]:
        transfers, mints = self.store.cited(entries)
        return [m.event() for m in mints] + [t.event() for t in transfers]


def replica_tree(db: Database, origin: str) -> dict[str, tuple[str, dict[str, str]]]:
    """The state tree over the replica's heads of ``origin``, recomputed from them (never stored).

    The same leaf hash as the origin's own tree (`colony.ledger.merkle.leaf_hash`), so equal heads
    give equal roots.
    """
    leaves = {account: merkle.leaf_hash(account, seq, head, balance)
              for account, (seq, head, balance) in rs.heads(db, origin).items()}
    return merkle.tree_of(leaves)


def tree_root(tree: dict[str, tuple[str, dict[str, str]]]) -> str:
    return tree.get("", (merkle.EMPTY_ROOT, {}))[0]


@dataclass
class ReplicaSource(_Metered):
    """This node's verified copy of ``origin`` as a source (a relay), and its replicated reputation events."""

    db: Database
    origin: str
    meter: Meter = field(default_factory=Meter)
    _tree: dict[str, tuple[str, dict[str, str]]] | None = field(default=None, repr=False)

    def root(self) -> RootInfo:
        self._tree = replica_tree(self.db, self.origin)  # a sync asks for the root first: the tree it walks
        return self._count(RootInfo(root=tree_root(self._tree), entries=rs.entry_count(self.db, self.origin)))

    def children(self, prefix: str) -> dict[str, str]:
        if self._tree is None:
            self._tree = replica_tree(self.db, self.origin)
        return self._count(ChildrenAnswer(prefix=prefix, children=self._tree.get(prefix, ("", {}))[1])).children

    def entries(self, account: str, after_seq: int, limit: int) -> EntryPage:
        limit = _bounded(limit)
        found = rs.entries_after(self.db, self.origin, account, after_seq, limit + 1)
        return self._count(_page(found, limit, self._cited(found[:limit])))

    def scan(self, after_account: str, after_seq: int, limit: int) -> EntryPage:
        limit = _bounded(limit)
        found = rs.scan_after(self.db, self.origin, after_account, after_seq, limit + 1)
        return self._count(_page(found, limit, self._cited(found[:limit])))

    def reputation_events(self, after_cursor: int, limit: int) -> ReputationPage:
        limit = _bounded(limit)
        found = rs.reputation_after(self.db, after_cursor, limit + 1)
        return self._count(ReputationPage(events=[ReputationItem(cursor=c, event=e) for c, e in found[:limit]],
                                          more=len(found) > limit))

    def _cited(self, entries: list[Entry]) -> list[Event]:
        return rs.cited_events(self.db, self.origin, {e.body.ref for e in entries})


def _nip98_get(key: SchnorrKey, url: str) -> str:
    """A NIP-98 header for one GET, with a random ``nonce`` tag.

    Why not `colony.identity.nip98.auth_header` as it is: a NIP-98 event's id depends only on the
    URL, the method and the second, and the server refuses an id it has seen; a replica asks the
    same question twice within a second (the root, at each sync), and without a body to tell the
    two requests apart the second would be refused as a replay. An extra tag is allowed by NIP-01,
    and `colony.identity.nip98.verify_auth` checks the others exactly as before.
    """
    event = sign_event(key, AUTH_KIND, "", [["u", url], ["method", "GET"], ["nonce", secrets.token_hex(16)]])
    return "Nostr " + base64.b64encode(event.model_dump_json().encode()).decode()


#: The routes' prefix (`colony.server.api.federation_ledger`).
ROUTES = "/federation/v1/ledger"


class HttpSource:
    """A peer's ledger routes over HTTP; every request carries a fresh NIP-98 header by ``node_key``."""

    def __init__(self, base_url: str, node_key: SchnorrKey, *, client: httpx.Client | None = None,
                 timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = node_key
        self.client = client or httpx.Client(timeout=timeout_s)
        self.meter = Meter()

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> HttpSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def root(self) -> RootInfo:
        return self._get("/root", {}, RootInfo)

    def children(self, prefix: str) -> dict[str, str]:
        answer = self._get("/children", {"prefix": prefix}, ChildrenAnswer)
        if answer.prefix != prefix:
            raise SourceError(f"{self.base_url} answered for prefix {answer.prefix!r}, not {prefix!r}",
                              reason="malformed")
        return answer.children

    def entries(self, account: str, after_seq: int, limit: int) -> EntryPage:
        return self._get("/entries", {"account": account, "after": after_seq, "limit": _bounded(limit)}, EntryPage)

    def scan(self, after_account: str, after_seq: int, limit: int) -> EntryPage:
        return self._get("/scan", {"account": after_account, "after": after_seq, "limit": _bounded(limit)},
                         EntryPage)

    def reputation_events(self, after_cursor: int, limit: int) -> ReputationPage:
        return self._get("/reputation", {"after": after_cursor, "limit": _bounded(limit)}, ReputationPage)

    def _get(self, path: str, params: dict[str, str | int], model: type[M]) -> M:
        query = urlencode(params)
        url = f"{self.base_url}{ROUTES}{path}" + (f"?{query}" if query else "")
        try:
            response = self.client.get(url, headers={"Authorization": _nip98_get(self.key, url)})
        except httpx.HTTPError as exc:
            raise SourceError(f"Could not reach {self.base_url}: {exc}. Is the peer up?") from exc
        self.meter.requests += 1
        self.meter.transferred += len(response.content)
        if response.status_code != 200:
            try:
                code = str(response.json().get("code", "http_error"))
            except ValueError:
                code = "http_error"
            raise SourceError(f"{url} answered {response.status_code} ({code})", status=response.status_code,
                              reason=code)
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise SourceError(f"{url} answered with a body that is not a {model.__name__}: "
                              f"{exc.errors()[0]['msg']}", status=200, reason="malformed") from exc
