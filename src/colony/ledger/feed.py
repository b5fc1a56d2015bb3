"""Feeds: the ledger as JSON lines of signed events, out of a store and back into the verifier.

An export is what a replica pulls (federation, later) and what `colony ledger verify --file`
checks: every line is one NIP-01 event — the treasury orders (kind 7102) and payer
authorisations (7100) the entries cite, then the entries (7101) in account and sequence order.
Nothing unsigned is exported, so a file can be checked by anyone with no access to the node.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from pydantic import ValidationError

from colony.identity.events import KINDS, Event
from colony.ledger.records import Entry, Problem, SignedMint, SignedTransfer
from colony.ledger.store import LedgerStore
from colony.ledger.verify import Caches, Feed

__all__ = ["export_lines", "read_all", "read_caches", "read_lines", "read_store"]


def read_all(store: LedgerStore) -> tuple[Feed, Caches]:
    """The journal and the caches, read in one snapshot (what `colony ledger verify` checks)."""
    with store.snapshot():
        return read_store(store), read_caches(store)


def read_store(store: LedgerStore) -> Feed:
    """Everything in a store, as the verifier takes it."""
    return Feed(entries=list(store.scan_entries()), transfers=store.transfers(), mints=store.mints())


def read_caches(store: LedgerStore) -> Caches:
    return Caches(accounts=store.accounts(), holds=store.holds(), supply=store.supply(), root=store.root(),
                  tree=store.tree_nodes())


def export_lines(store: LedgerStore, account: str | None = None) -> Iterator[str]:
    """JSON lines of events: the cited authorisations first, then the entries (one account or all)."""
    with store.snapshot():  # read everything at one moment, then write it out
        entries = store.entries(account, limit=None) if account else list(store.scan_entries())
        mints, transfers = store.mints(), store.transfers()
    if account:
        entries.reverse()  # oldest first, as in a full export
    cited = {e.body.ref for e in entries}
    for mint in mints:
        if mint.id in cited:
            yield _line(mint.event())
    for signed, _, _ in transfers:
        if signed.id in cited:
            yield _line(signed.event())
    for entry in entries:
        yield _line(entry.event())


def _line(event: Event) -> str:
    return json.dumps(event.model_dump(), separators=(",", ":"), ensure_ascii=False)


def read_lines(lines: Iterable[str]) -> Feed:
    """A feed from JSON lines; lines that are not ledger events become problems, not exceptions."""
    feed = Feed()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = Event.model_validate_json(line)
            if event.kind == KINDS["ledger_entry"]:
                feed.entries.append(Entry.from_event(event))
            elif event.kind == KINDS["transfer"]:
                feed.transfers.append((SignedTransfer.from_event(event), None, None))
            elif event.kind == KINDS["treasury"]:
                feed.mints.append(SignedMint.from_event(event))
            else:
                raise ValueError(f"kind {event.kind} is not a ledger event")
        except (ValidationError, ValueError) as exc:
            why = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            feed.unreadable.append(Problem(account="", seq=number, entry_id=None, code="unreadable",
                                           message=f"line {number}: {why}"))
    return feed
