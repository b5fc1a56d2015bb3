"""SQL over the replica tables of migration 18 (`colony.store.replica_schema`); nothing else here.

The replica lives in the node's SQLite file. Appending one account's verified entries is one
``BEGIN IMMEDIATE`` transaction that first re-reads the account's head: if another sync of the same
origin moved it meanwhile, nothing is written (the entries were verified against a head that is no
longer the head). The schema's triggers refuse anything that does not chain, whatever the caller.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import apsw

from colony.identity.events import Event
from colony.ledger.records import Entry
from colony.ledger.wire import EntryBody
from colony.store import Database, Row

__all__ = [
    "Head",
    "append_account",
    "cited_events",
    "entries_after",
    "entry_at",
    "entry_count",
    "heads",
    "insert_proof",
    "insert_reputation",
    "mark_convicted",
    "mark_reported",
    "mark_slashed",
    "origin_row",
    "proof_row",
    "proofs",
    "record_sync",
    "reputation_after",
    "reputation_count",
    "scan_after",
]

#: An account's replica head: (seq, hash of the head entry, balance after it).
Head = tuple[int, str, int]

_COLUMNS = "account, seq, prev, kind, amount, balance, counterparty, ref, nonce, origin, created_at, id, sig"


def _entry(row: Sequence[Any]) -> Entry:
    return Entry(body=EntryBody(*row[:9]), signer=row[9], created_at=row[10], id=row[11], sig=row[12])


# -- reads --------------------------------------------------------------------------------------
def heads(db: Database, origin: str) -> dict[str, Head]:
    return {r[0]: (r[1], r[2], r[3]) for r in db.tuples(
        "SELECT account, seq, head, balance FROM federation_replica_heads WHERE origin = ?", (origin,))}


def entry_at(db: Database, origin: str, account: str, seq: int) -> Entry | None:
    rows = db.tuples(f"SELECT {_COLUMNS} FROM federation_replica_entries WHERE origin = ? AND account = ? AND seq = ?",
                     (origin, account, seq))
    return _entry(rows[0]) if rows else None


def entries_after(db: Database, origin: str, account: str, after_seq: int, limit: int) -> list[Entry]:
    return [_entry(r) for r in db.tuples(
        f"SELECT {_COLUMNS} FROM federation_replica_entries WHERE origin = ? AND account = ? AND seq > ? "
        "ORDER BY seq LIMIT ?", (origin, account, after_seq, limit))]


def scan_after(db: Database, origin: str, account: str, seq: int, limit: int) -> list[Entry]:
    return [_entry(r) for r in db.tuples(
        f"SELECT {_COLUMNS} FROM federation_replica_entries WHERE origin = ? AND (account > ? OR (account = ? AND "
        "seq > ?)) ORDER BY account, seq LIMIT ?", (origin, account, account, seq, limit))]


def entry_count(db: Database, origin: str) -> int:
    return int(db.scalar("SELECT count(*) FROM federation_replica_entries WHERE origin = ?", (origin,)) or 0)


def cited_events(db: Database, origin: str, ids: Iterable[str]) -> list[Event]:
    wanted = sorted(set(ids))
    out: list[Event] = []
    for i in range(0, len(wanted), 500):
        chunk = wanted[i:i + 500]
        out += [Event.model_validate_json(r[0]) for r in db.tuples(
            f"SELECT raw FROM federation_replica_events WHERE origin = ? AND id IN ({','.join('?' * len(chunk))}) "
            "ORDER BY kind DESC, id", (origin, *chunk))]
    return out


def origin_row(db: Database, origin: str) -> Row | None:
    return db.one("SELECT origin, last_remote_root, last_local_root, last_sync_at, syncs, requests, bytes, entries, "
                  "problems, convicted_at, reputation_cursor FROM federation_origins WHERE origin = ?", (origin,))


# -- writes -------------------------------------------------------------------------------------
def append_account(db: Database, origin: str, account: str, expected: int, entries: Sequence[Entry],
                   events: Sequence[Event]) -> bool:
    """Append verified entries (and the events they cite) if the head is still at seq ``expected``.

    False when another sync moved the head first (nothing written); a chain the triggers refuse
    raises `apsw.ConstraintError` and rolls everything back.
    """
    with db.tx() as conn:
        row = conn.execute("SELECT seq FROM federation_replica_heads WHERE origin = ? AND account = ?",
                           (origin, account)).fetchone()
        if (row["seq"] if row else 0) != expected:
            return False
        conn.executemany(
            "INSERT INTO federation_replica_events(origin, id, kind, pubkey, created_at, raw) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            [(origin, e.id, e.kind, e.pubkey, e.created_at, e.model_dump_json()) for e in events])
        conn.executemany(
            f"INSERT INTO federation_replica_entries({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(*e.body, origin, e.created_at, e.id, e.sig) for e in entries])
    return True


def _ensure_origin(conn: apsw.Connection, origin: str) -> None:
    conn.execute("INSERT INTO federation_origins(origin) VALUES (?) ON CONFLICT DO NOTHING", (origin,))


def record_sync(db: Database, origin: str, *, remote_root: str | None, local_root: str, requests: int,
                transferred: int, entries: int, problems: int, at: float) -> None:
    with db.tx() as conn:
        _ensure_origin(conn, origin)
        conn.execute(
            "UPDATE federation_origins SET last_remote_root = coalesce(?, last_remote_root), last_local_root = ?, "
            "last_sync_at = ?, syncs = syncs + 1, requests = requests + ?, bytes = bytes + ?, entries = entries + ?, "
            "problems = problems + ? WHERE origin = ?",
            (remote_root, local_root, at, requests, transferred, entries, problems, origin))


def mark_convicted(db: Database, origin: str, at: float) -> None:
    with db.tx() as conn:
        _ensure_origin(conn, origin)
        conn.execute("UPDATE federation_origins SET convicted_at = coalesce(convicted_at, ?) WHERE origin = ?",
                     (at, origin))


# -- equivocation proofs ------------------------------------------------------------------------
_PROOF_COLUMNS = "id, signer, account, seq, first, second, found_by, found_at, reported_at, slashed_at, slashed"


def insert_proof(db: Database, values: dict[str, Any]) -> bool:
    """Store a verified proof; False when the same pair of events (in either order) is already stored."""
    with db.tx() as conn:
        conn.execute(
            "INSERT INTO federation_equivocations(id, signer, account, seq, first, second, found_by, found_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (values["id"], values["signer"], values["account"], values["seq"], values["first"], values["second"],
             values["found_by"], values["found_at"]))
        return bool(conn.changes())


def proof_row(db: Database, proof_id: str) -> Row | None:
    return db.one(f"SELECT {_PROOF_COLUMNS} FROM federation_equivocations WHERE id = ?", (proof_id,))


def proofs(db: Database, *, signer: str | None = None, unreported: bool = False, unslashed: bool = False) -> list[Row]:
    where, params = ["1 = 1"], []
    if signer is not None:
        where.append("signer = ?")
        params.append(signer)
    if unreported:
        where.append("reported_at IS NULL")
    if unslashed:
        where.append("slashed_at IS NULL")
    return db.query(f"SELECT {_PROOF_COLUMNS} FROM federation_equivocations WHERE {' AND '.join(where)} "
                    "ORDER BY found_at, id", params)


def mark_reported(db: Database, ids: Iterable[str], at: float) -> int:
    with db.tx() as conn:
        n = 0
        for proof_id in ids:
            conn.execute("UPDATE federation_equivocations SET reported_at = ? WHERE id = ? AND reported_at IS NULL",
                         (at, proof_id))
            n += conn.changes()
        return n


def mark_slashed(db: Database, proof_id: str, amount: int, at: float) -> bool:
    with db.tx() as conn:
        conn.execute("UPDATE federation_equivocations SET slashed_at = ?, slashed = ? WHERE id = ? "
                     "AND slashed_at IS NULL", (at, amount, proof_id))
        return bool(conn.changes())


# -- reputation events --------------------------------------------------------------------------
def insert_reputation(db: Database, origin: str, rows: Sequence[tuple[int, Event, str]], cursor: int) -> int:
    """Store verified (origin cursor, event, subject) rows and move the origin's cursor; returns how many were new."""
    now = time.time()
    with db.tx() as conn:
        _ensure_origin(conn, origin)
        added = 0
        for at, event, subject in rows:
            conn.execute(
                "INSERT INTO federation_reputation(id, origin, origin_cursor, kind, pubkey, subject, created_at, raw, "
                "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (event.id, origin, at, event.kind, event.pubkey, subject, event.created_at, event.model_dump_json(),
                 now))
            added += conn.changes()
        conn.execute("UPDATE federation_origins SET reputation_cursor = max(reputation_cursor, ?) WHERE origin = ?",
                     (cursor, origin))
        return added


def reputation_after(db: Database, after: int, limit: int) -> list[tuple[int, Event]]:
    """Replicated reputation events in the order this node stored them (its rowid: a relay's cursor)."""
    return [(int(r[0]), Event.model_validate_json(r[1])) for r in db.tuples(
        "SELECT rowid, raw FROM federation_reputation WHERE rowid > ? ORDER BY rowid LIMIT ?", (after, limit))]


def reputation_count(db: Database, *, subject: str | None = None) -> int:
    if subject is None:
        return int(db.scalar("SELECT count(*) FROM federation_reputation") or 0)
    return int(db.scalar("SELECT count(*) FROM federation_reputation WHERE subject = ?", (subject,)) or 0)
