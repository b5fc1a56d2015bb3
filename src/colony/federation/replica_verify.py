"""Verifying what a source sent for one account before any of it is stored.

Levels 0 and 1 are the ledger's own verifier (`colony.ledger.verify.verify_feed`) run over the
new entries and the events they cite: each entry's hash recomputed from its fields and its
signature checked, each cited authorisation's id and signature (by the payer; a treasury order
by the node), its validity window, and that the entry agrees with it (amount, parties, nonce).

Level 2, the chain, is checked here from the replica's head rather than from genesis: a sync pulls
only the entries after the head, and re-verifying an account's whole history on every sync would
make its cost grow with the history instead of with what changed. The rule is the verifier's
own (`verify._check_chain`): seq = previous + 1, ``prev`` = the previous entry's hash, one
signer — the origin, the only node that may sign the chains it homes —, each balance the previous
one moved by the amount, never negative. The verifier's pairing and supply checks (level 3) need
the counterparties' chains and the whole treasury, which a partial pull does not have; they are
what a full `colony.ledger.verify_feed` of the replica checks (`replication.verify_replica`).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from colony.federation._replica_store import Head
from colony.federation.replica_wire import EntryPage
from colony.identity.events import KINDS, Event
from colony.ledger.records import Entry, Problem, SignedMint, SignedTransfer
from colony.ledger.verify import Feed, verify_feed
from colony.ledger.wire import DELTA, GENESIS

__all__ = ["LOCAL_CODES", "chain_problems", "parse_page", "verify_batch"]

#: The codes of `verify_feed` that a partial pull can be judged on (levels 0 and 1).
LOCAL_CODES = frozenset({"entry_hash", "entry_signature", "unknown_authorisation", "bad_authorisation", "mismatch",
                         "outside_window"})


def _problem(account: str, seq: int, entry_id: str | None, code: str, message: str) -> Problem:
    return Problem(account=account, seq=seq, entry_id=entry_id, code=code, message=message)


def parse_page(page: EntryPage, account: str = "") -> tuple[list[Entry], dict[str, Event], list[Problem]]:
    """The page's entries (as sent, in order), its cited events by id, and why any event is unreadable."""
    entries: list[Entry] = []
    problems: list[Problem] = []
    for event in page.entries:
        try:
            entries.append(Entry.from_event(event))
        except (ValueError, ValidationError) as exc:
            problems.append(_problem(account, 0, event.id, "unreadable", f"event {event.id[:12]}… is not a ledger "
                                     f"entry: {str(exc).splitlines()[0]}"))
    return entries, {e.id: e for e in page.cited}, problems


def verify_batch(origin: str, account: str, head: Head | None, entries: list[Entry], events: Mapping[str, Event], *,
                 threads: int | None = None) -> tuple[list[Event], list[Problem]]:
    """Check ``entries`` (one account's, after ``head``) and the events they cite.

    Returns the cited events to keep beside the entries, and every problem found: the batch is
    stored only when that list is empty.
    """
    refs = sorted({e.body.ref for e in entries})
    problems: list[Problem] = []
    transfers: list[tuple[SignedTransfer, str | None, str | None]] = []
    mints: list[SignedMint] = []
    for ref in refs:
        event = events.get(ref)
        if event is None:
            continue  # the verifier reports the entries that cite it (unknown_authorisation)
        try:
            if event.kind == KINDS["transfer"]:
                transfers.append((SignedTransfer.from_event(event), None, None))
            elif event.kind == KINDS["treasury"]:
                mints.append(SignedMint.from_event(event))
            else:
                raise ValueError(f"kind {event.kind} is not an authorisation or a treasury order")
        except (ValueError, ValidationError) as exc:
            problems.append(_problem(account, 0, ref, "bad_authorisation", f"cited event {ref[:12]}… is unreadable: "
                                     f"{str(exc).splitlines()[0]}"))
    report = verify_feed(Feed(entries=entries, transfers=transfers, mints=mints), threads=threads)
    problems += [p for p in report.problems if p.code in LOCAL_CODES]
    problems += chain_problems(origin, account, head, entries)
    return [events[r] for r in refs if r in events], problems


def chain_problems(origin: str, account: str, head: Head | None, entries: list[Entry]) -> list[Problem]:
    """Level 2 from the replica's head: contiguous, linked, signed by the origin, balances that follow."""
    seq, prev, balance = head or (0, GENESIS, 0)
    out: list[Problem] = []
    for e in entries:
        b = e.body
        where = f"{account[:12]}… #{b.seq}"
        if b.account != account:
            out.append(_problem(account, b.seq, e.id, "wrong_account", f"{where}: the entry is for account "
                                f"{b.account[:12]}…, not the one asked for"))
        if e.signer != origin:
            out.append(_problem(account, b.seq, e.id, "wrong_signer", f"{where}: signed by {e.signer[:12]}…, not by "
                                f"the origin {origin[:12]}…, the only node that may sign its chains"))
        if b.seq != seq + 1:
            out.append(_problem(account, b.seq, e.id, "seq_gap", f"{where}: expected #{seq + 1} (entries missing or "
                                "renumbered)"))
        elif b.prev != prev:
            out.append(_problem(account, b.seq, e.id, "broken_link", f"{where}: prev is not the hash of #{seq}"))
        balance += DELTA.get(b.kind, 0) * b.amount
        if b.balance != balance:
            out.append(_problem(account, b.seq, e.id, "bad_balance", f"{where}: balance {b.balance} but the chain "
                                f"gives {balance}"))
            balance = b.balance
        if balance < 0:
            out.append(_problem(account, b.seq, e.id, "negative_balance", f"{where}: negative balance {balance}"))
        seq, prev = b.seq, e.id
    return out
