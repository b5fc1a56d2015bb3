"""SQL over the market's tables (migration 13, `colony.store.market_schema`); nothing else here.

Writes take the connection of a transaction the caller opened (``with db.tx() as conn``): the
service composes an event, a ledger move and a state change into one transaction, so these
functions never commit on their own. Reads take the `Database` (or a connection, inside a
transaction, where what was just written must be seen).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import apsw

from colony.identity.events import Event
from colony.market.events import MarketEventError
from colony.store import Database, Row

__all__ = [
    "AUCTION_COLUMNS",
    "all_feedback",
    "auction_events",
    "bids",
    "find_auctions",
    "get_auction",
    "insert_auction",
    "insert_event",
    "insert_feedback",
    "insert_sealed",
    "insert_verification",
    "list_auctions",
    "move_auction",
    "sealed_bids",
    "verification",
]

AUCTION_COLUMNS = ("id, task_id, announcement, poster, poster_name, rule, reserve, bond, commit_deadline, "
                   "reveal_deadline, verification, verify_spec, verifier, state, winner, winner_name, price, "
                   "escrow_hold, award_event, reason, created_at, updated_at")


def _decode(row: Row) -> Row:
    return {**row, "verify_spec": json.loads(row["verify_spec"])}


def _rows(conn: apsw.Connection, sql: str, params: Any = ()) -> list[Row]:
    return list(conn.execute(sql, params))


# -- events -------------------------------------------------------------------------------------
#: Codes the schema's triggers put in their messages (``market: <code>: …``).
_TRIGGER_CODES = ("late_commit", "early_reveal", "late_reveal")


def insert_event(conn: apsw.Connection, event: Event, auction: str, received_at: int) -> None:
    """Append a verified event. The database refuses a duplicate, a late one and a second award:
    `MarketEventError` with ``reason`` ``duplicate``, ``late_commit``, ``early_reveal``,
    ``late_reveal`` or ``refused`` (the transaction the caller holds is then rolled back whole)."""
    raw = event.model_dump_json()
    try:
        conn.execute("INSERT INTO market_events(id, kind, auction, pubkey, created_at, received_at, raw) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (event.id, event.kind, auction, event.pubkey, event.created_at, received_at, raw))
    except apsw.ConstraintError as exc:
        text = str(exc)
        reason = next((c for c in _TRIGGER_CODES if c in text), "duplicate" if "UNIQUE" in text else "refused")
        raise MarketEventError(reason, f"The market refused event {event.id[:12]}…: {text}") from exc


def auction_events(source: Database | apsw.Connection, auction: str,
                   kinds: Iterable[int] | None = None) -> list[tuple[Event, int]]:
    """The auction's events with their arrival times, in arrival order."""
    sql = "SELECT raw, received_at FROM market_events WHERE auction = ?"
    params: list[Any] = [auction]
    if kinds is not None:
        wanted = sorted(set(kinds))
        sql += f" AND kind IN ({','.join('?' * len(wanted))})"
        params += wanted
    sql += " ORDER BY rowid"
    rows = source.query(sql, params) if isinstance(source, Database) else _rows(source, sql, params)
    return [(Event.model_validate_json(r["raw"]), int(r["received_at"])) for r in rows]


# -- auctions -----------------------------------------------------------------------------------
def insert_auction(conn: apsw.Connection, values: dict[str, Any]) -> None:
    now = time.time()
    conn.execute(
        "INSERT INTO market_auctions(id, task_id, announcement, poster, poster_name, rule, reserve, bond, "
        "commit_deadline, reveal_deadline, verification, verify_spec, verifier, state, created_at, updated_at) "
        "VALUES (:id, :task_id, :announcement, :poster, :poster_name, :rule, :reserve, :bond, :commit_deadline, "
        ":reveal_deadline, :verification, :verify_spec, :verifier, 'open', :now, :now)",
        {**values, "verify_spec": json.dumps(values["verify_spec"], sort_keys=True), "now": now},
    )


def get_auction(source: Database | apsw.Connection, auction: str) -> Row | None:
    sql = f"SELECT {AUCTION_COLUMNS} FROM market_auctions WHERE id = ?"
    rows = source.query(sql, (auction,)) if isinstance(source, Database) else _rows(source, sql, (auction,))
    return _decode(rows[0]) if rows else None


def find_auctions(db: Database, prefix: str) -> list[str]:
    """Ids starting with ``prefix`` (at most two: enough to tell unique from ambiguous)."""
    rows = db.query("SELECT id FROM market_auctions WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                    (prefix, prefix + "g"))
    return [r["id"] for r in rows]


def list_auctions(db: Database, *, states: Iterable[str] | None = None, limit: int = 100) -> list[Row]:
    """Auctions, newest first, optionally only in ``states``."""
    where, params = "1", []
    if states is not None:
        where = "state IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(list(states)))
    rows = db.query(f"SELECT {AUCTION_COLUMNS} FROM market_auctions WHERE {where} "
                    "ORDER BY created_at DESC, id LIMIT ?", (*params, limit))
    return [_decode(r) for r in rows]


def move_auction(conn: apsw.Connection, auction: str, from_state: str, to_state: str, **fields: Any) -> bool:
    """Move an auction from ``from_state`` only (the guard two racing workers meet); False if it was not there."""
    cols = {"state": to_state, "updated_at": time.time(), **fields}
    conn.execute(f"UPDATE market_auctions SET {', '.join(f'{k} = :{k}' for k in cols)} "
                 "WHERE id = :_id AND state = :_from", {**cols, "_id": auction, "_from": from_state})
    return bool(conn.changes())


# -- sealed bids (the node's own bidders) -------------------------------------------------------
def insert_sealed(conn: apsw.Connection, values: dict[str, Any]) -> None:
    conn.execute("INSERT INTO market_sealed_bids(auction, bidder, bidder_name, amount, cost, chance_ppm, commit_event) "
                 "VALUES (:auction, :bidder, :bidder_name, :amount, :cost, :chance_ppm, :commit_event)", values)


def sealed_bids(source: Database | apsw.Connection, auction: str) -> list[Row]:
    sql = ("SELECT s.auction, s.bidder, s.bidder_name, s.amount, s.cost, s.chance_ppm, s.commit_event, "
           "r.id AS reveal_event FROM market_sealed_bids s LEFT JOIN market_events r "
           "ON r.auction = s.auction AND r.pubkey = s.bidder AND r.kind = 7202 WHERE s.auction = ? ORDER BY s.bidder")
    return source.query(sql, (auction,)) if isinstance(source, Database) else _rows(source, sql, (auction,))


def bids(db: Database, auction: str) -> list[Row]:
    """Every commitment of the auction with its opening, if any (the ``market_bids`` view)."""
    return db.query("SELECT bidder, commit_event, committed_at, reveal_event, revealed_at, amount FROM market_bids "
                    "WHERE auction = ? ORDER BY committed_at, commit_event", (auction,))


# -- verification and feedback ------------------------------------------------------------------
def insert_verification(conn: apsw.Connection, values: dict[str, Any]) -> None:
    conn.execute("INSERT INTO market_verifications(auction, method, passed, detail, event, slashed, decided_by, at) "
                 "VALUES (:auction, :method, :passed, :detail, :event, :slashed, :decided_by, :at)",
                 {**values, "passed": int(values["passed"])})


def verification(db: Database, auction: str) -> Row | None:
    row = db.one("SELECT auction, method, passed, detail, event, slashed, decided_by, at FROM market_verifications "
                 "WHERE auction = ?", (auction,))
    return None if row is None else {**row, "passed": bool(row["passed"])}


def insert_feedback(conn: apsw.Connection, values: dict[str, Any]) -> None:
    conn.execute("INSERT INTO market_feedback(event, auction, rater, ratee, payment_ref, score, created_at) "
                 "VALUES (:event, :auction, :rater, :ratee, :payment_ref, :score, :created_at)", values)


def all_feedback(db: Database) -> list[Event]:
    """Every stored feedback event (the raw signed JSON; the reputation book re-verifies it)."""
    rows = db.query("SELECT e.raw FROM market_feedback f JOIN market_events e ON e.id = f.event "
                    "ORDER BY e.created_at, e.id")
    return [Event.model_validate_json(r["raw"]) for r in rows]
