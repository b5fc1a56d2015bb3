"""Shared set-up for the replication tests: home ledgers with many accounts, a source that lies in
chosen ways, entries forged with the origin's own key, and a node's ledger routes on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI

from colony.config import Settings
from colony.federation import _replica_store as rs
from colony.federation.replica_sources import Meter, StoreSource
from colony.federation.replica_wire import EntryPage, ReputationPage, RootInfo
from colony.identity import Event, SchnorrKey
from colony.identity.events import KINDS
from colony.ledger import MICRO, Ledger, open_ledger_store
from colony.ledger.records import Entry
from colony.ledger.wire import entry_event_id
from colony.market import stakes
from colony.market.cost import CostModel
from colony.market.profiles import AgentSpec, create_agent
from colony.market.service import Market
from colony.market.stake import MarketParams
from colony.node import Node
from colony.server.errors import install_error_handlers
from colony.server.run import free_port
from colony.store import Database
from ledger_helpers import Book

Tamper = Literal["amount", "signature", "gap", "link", "balance", "authorisation"]


def pay(book: Book, payer: int, payee: int, amount: int = 1_000) -> None:
    """``keys[payer]`` pays ``keys[payee]`` on the book's ledger."""
    book.ledger.pay(book.keys[payer], book.keys[payee].public_hex, amount)


def forge(key: SchnorrKey, entry: Entry, **changes: Any) -> Event:
    """``entry`` with ``changes`` to its body, validly signed by ``key`` (an origin lying with its own key)."""
    body = entry.body._replace(**changes)
    eid = entry_event_id(body, key.public_hex, entry.created_at, KINDS["ledger_entry"])
    return Entry(body=body, signer=key.public_hex, created_at=entry.created_at, id=eid,
                 sig=key.sign(bytes.fromhex(eid)).hex()).event()


@dataclass
class TamperedSource:
    """A `StoreSource` that alters what it serves about one account's entries after ``from_seq``, in one way.

    Altering an entry the replica already holds with the origin's own key would be the origin
    signing two histories — an equivocation, which the equivocation tests cover.
    """

    inner: StoreSource
    target: str
    how: Tamper
    origin_key: SchnorrKey
    from_seq: int = 0

    @property
    def meter(self) -> Meter:
        return self.inner.meter

    def root(self) -> RootInfo:
        return self.inner.root()

    def children(self, prefix: str) -> dict[str, str]:
        return self.inner.children(prefix)

    def entries(self, account: str, after_seq: int, limit: int) -> EntryPage:
        return self._alter(self.inner.entries(account, after_seq, limit))

    def scan(self, after_account: str, after_seq: int, limit: int) -> EntryPage:
        return self._alter(self.inner.scan(after_account, after_seq, limit))

    def reputation_events(self, after_cursor: int, limit: int) -> ReputationPage:
        return self.inner.reputation_events(after_cursor, limit)

    def _alter(self, page: EntryPage) -> EntryPage:
        mine = [i for i, e in enumerate(page.entries)
                if (b := Entry.from_event(e).body).account == self.target and b.seq > self.from_seq]
        if not mine:
            return page
        events, cited = list(page.entries), list(page.cited)
        first = Entry.from_event(events[mine[0]])
        if self.how == "amount":  # a field changed after signing: the hash no longer matches
            events[mine[0]] = events[mine[0]].model_copy(
                update={"content": first.body._replace(amount=first.body.amount + 1).content()})
        elif self.how == "signature":  # signed by someone else over the right id
            events[mine[0]] = events[mine[0]].model_copy(
                update={"sig": SchnorrKey.generate().sign(bytes.fromhex(first.id)).hex()})
        elif self.how == "gap":  # an entry left out
            del events[mine[0]]
        elif self.how == "link":  # the origin's own signature over an entry that points elsewhere
            events[mine[0]] = forge(self.origin_key, first, prev="ab" * 32)
        elif self.how == "balance":  # the origin's own signature over a balance that does not follow
            events[mine[0]] = forge(self.origin_key, first, balance=first.body.balance + 5)
        elif self.how == "authorisation":  # the payer's authorisation withheld
            cited = [c for c in cited if c.id != first.body.ref]
        return page.model_copy(update={"entries": events, "cited": cited})


def heads(db: Database, origin: str) -> dict[str, rs.Head]:
    return rs.heads(db, origin)


def replica_rows(db: Database, origin: str) -> int:
    return rs.entry_count(db, origin)


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """``app`` on a loopback port in a thread (uvicorn); yields its base URL."""
    install_error_handlers(app)
    port = free_port("127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="federation-ledger-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@dataclass
class MarketNode:
    """A real node whose market settled one auction (so it holds signed verification and feedback
    events) and whose ledger has ``accounts`` more funded accounts."""

    node: Node
    keys: list[SchnorrKey]

    @property
    def ledger(self) -> Ledger:
        return Ledger(open_ledger_store(self.node.db, self.node.settings), self.node.keyring.node().schnorr_key)

    def close(self) -> None:
        self.node.db.close()


def market_node(accounts: int) -> MarketNode:
    from colony.market.bidders import bid_round
    from colony.market.views import AuctionRequest

    node = Node(Settings())
    keyring = node.keyring
    for name, cost in (("ada", 1_000_000), ("bob", 1_500_000)):
        create_agent(keyring, AgentSpec(name=name, persona=f"You are {name}.", skills=["python"],
                                        cost=CostModel(overhead=cost)))
    clock = _MarketClock()
    market = Market(node, clock=clock, params=MarketParams(stake_free_bid=0))
    market.ledger.mint(keyring.agent("colony").public_hex, 100 * MICRO, "test: the poster's budget")
    for name in ("ada", "bob"):
        market.ledger.mint(keyring.agent(name).public_hex, 5 * MICRO, "test: wallet")
        stakes.deposit(node, name, 2 * MICRO)
    auction = market.post(AuctionRequest.model_validate(
        {"goal": "Write digit_sum(n).", "skills": ["python"], "reserve": 5_000_000, "verification": "approval",
         "bond": 100_000, "commit_s": 60, "reveal_s": 30}))
    row = market.row(auction)
    clock.now = row["commit_deadline"]
    bid_round(market)
    clock.now = row["commit_deadline"] + 1
    bid_round(market)
    clock.now = row["reveal_deadline"] + 1
    assert market.award(auction) == "awarded"
    lease = market.tasks.claim_assigned("test-worker", 60)
    assert lease is not None
    market.tasks.complete(lease, "def digit_sum(n): ...")
    assert market.decide(auction, True, actor="test") == "paid"
    keys = [SchnorrKey.generate() for _ in range(accounts)]
    ledger = Ledger(open_ledger_store(node.db, node.settings), keyring.node().schnorr_key)
    for key in keys:
        ledger.mint(key.public_hex, MICRO, "test funding")
    return MarketNode(node, keys)


class _MarketClock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now
