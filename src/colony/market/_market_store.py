"""SQL over the market's tables (migration 13: `colony.store.market_schema` on SQLite,
`colony.store.pg.market_schema` on PostgreSQL); nothing else here.

One text per statement for both engines (``?`` placeholders; `colony.store.engine`). Writes run
in the transaction the caller opened (``market.db.atomic``): the service composes an event, a
ledger move and a state change into one step, so these functions never commit on their own,
and the reads made inside a step see what it wrote. Reads and plain writes take any `Sql` (the
node's `Database` too); the two functions whose SQL or errors differ by engine take the `Engine`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from colony.errors import StoreError
from colony.identity.events import Event
from colony.market.events import MarketEventError
from colony.store import Row
from colony.store.engine import Engine, Sql

__all__ = [
    "AUCTION_COLUMNS",
    "all_feedback",
    "auction_by_escrow",
    "auction_events",
    "bids",
    "events_after",
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
#: The order events arrived in: SQLite's rowid, PostgreSQL's identity column (rows have no order there).
_ARRIVAL = {"sqlite": "rowid", "postgresql": "seq"}


def _decode(row: Row) -> Row:
    return {**row, "verify_spec": json.loads(row["verify_spec"])}


def _marks(values: list[Any]) -> str:
    return ",".join("?" * len(values))


# -- events -------------------------------------------------------------------------------------
#: Codes the schema's triggers put in their messages (``market: <code>: …``).
_TRIGGER_CODES = ("late_commit", "early_reveal", "late_reveal")


def insert_event(db: Engine, event: Event, auction: str, received_at: int) -> None:
    """Append a verified event. The database refuses a duplicate, a late one and a second award:
    `MarketEventError` with ``reason`` ``duplicate``, ``late_commit``, ``early_reveal``,
    ``late_reveal`` or ``refused`` (the step the caller runs is then rolled back whole)."""
    raw = event.model_dump_json()
    try:
        db.execute("INSERT INTO market_events(id, kind, auction, pubkey, created_at, received_at, raw) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (event.id, event.kind, auction, event.pubkey, event.created_at, received_at, raw))
    except StoreError as exc:
        refusal = db.refusal(exc)
        if refusal is None:  # not the market's rules: a conflict to retry, a lost connection
            raise
        text = str(exc.__cause__ or exc)
        reason = next((c for c in _TRIGGER_CODES if c in text), "duplicate" if refusal == "unique" else "refused")
        raise MarketEventError(reason, f"The market refused event {event.id[:12]}…: {text}") from exc


def auction_events(db: Engine, auction: str, kinds: Iterable[int] | None = None) -> list[tuple[Event, int]]:
    """The auction's events with their arrival times, in arrival order."""
    sql = "SELECT raw, received_at FROM market_events WHERE auction = ?"
    params: list[Any] = [auction]
    if kinds is not None:
        wanted = sorted(set(kinds))
        sql += f" AND kind IN ({_marks(wanted)})"
        params += wanted
    rows = db.query(f"{sql} ORDER BY {_ARRIVAL[db.dialect]}", params)
    return [(Event.model_validate_json(r["raw"]), int(r["received_at"])) for r in rows]


def events_after(db: Engine, kinds: Iterable[int], after: int, limit: int) -> list[tuple[int, Event]]:
    """Events of ``kinds`` that arrived after position ``after``, in arrival order, each with its position.

    The position (rowid, or ``seq`` on PostgreSQL) is a cursor a peer replicating the events resumes from.
    """
    wanted = sorted(set(kinds))
    pos = _ARRIVAL[db.dialect]
    rows = db.query(f"SELECT {pos} AS pos, raw FROM market_events WHERE kind IN ({_marks(wanted)}) AND {pos} > ? "
                    f"ORDER BY {pos} LIMIT ?", (*wanted, after, limit))
    return [(int(r["pos"]), Event.model_validate_json(r["raw"])) for r in rows]


# -- auctions -----------------------------------------------------------------------------------
def insert_auction(db: Sql, values: dict[str, Any]) -> None:
    now = time.time()
    db.execute(
        "INSERT INTO market_auctions(id, task_id, announcement, poster, poster_name, rule, reserve, bond, "
        "commit_deadline, reveal_deadline, verification, verify_spec, verifier, state, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)",
        (values["id"], values["task_id"], values["announcement"], values["poster"], values["poster_name"],
         values["rule"], values["reserve"], values["bond"], values["commit_deadline"], values["reveal_deadline"],
         values["verification"], json.dumps(values["verify_spec"], sort_keys=True), values["verifier"], now, now),
    )


def get_auction(db: Sql, auction: str) -> Row | None:
    row = db.one(f"SELECT {AUCTION_COLUMNS} FROM market_auctions WHERE id = ?", (auction,))
    return _decode(row) if row else None


def auction_by_escrow(db: Sql, hold_id: str) -> Row | None:
    """The auction whose price the escrow hold ``hold_id`` backs, or None."""
    row = db.one(f"SELECT {AUCTION_COLUMNS} FROM market_auctions WHERE escrow_hold = ?", (hold_id,))
    return _decode(row) if row else None


def find_auctions(db: Sql, prefix: str) -> list[str]:
    """Ids starting with ``prefix`` (at most two: enough to tell unique from ambiguous)."""
    rows = db.query("SELECT id FROM market_auctions WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                    (prefix, prefix + "g"))
    return [r["id"] for r in rows]


def list_auctions(db: Sql, *, states: Iterable[str] | None = None, posters: Iterable[str] | None = None,
                  limit: int = 100) -> list[Row]:
    """Auctions, newest first, optionally only in ``states`` and only by ``posters`` (accounts)."""
    where: list[str] = []
    params: list[Any] = []
    for column, values in (("state", states), ("poster", posters)):
        if values is not None:
            wanted = sorted(set(values))
            where.append(f"{column} IN ({_marks(wanted)})" if wanted else "1 = 0")
            params += wanted
    rows = db.query(f"SELECT {AUCTION_COLUMNS} FROM market_auctions WHERE {' AND '.join(where) or '1 = 1'} "
                    "ORDER BY created_at DESC, id LIMIT ?", (*params, limit))
    return [_decode(r) for r in rows]


#: The columns `move_auction` may set besides the state: callers pass names, only these become SQL.
_MOVABLE = frozenset({"winner", "winner_name", "price", "escrow_hold", "award_event", "reason"})


def move_auction(db: Sql, auction: str, from_state: str, to_state: str, **fields: Any) -> bool:
    """Move an auction from ``from_state`` only (the guard two racing workers meet); False if it was not there."""
    unknown = set(fields) - _MOVABLE
    if unknown:
        raise ValueError(f"not a column an auction's move sets: {', '.join(sorted(unknown))}")
    cols = {"state": to_state, "updated_at": time.time(), **fields}
    moved = db.query(f"UPDATE market_auctions SET {', '.join(f'{k} = ?' for k in cols)} "
                     "WHERE id = ? AND state = ? RETURNING id", (*cols.values(), auction, from_state))
    return bool(moved)


# -- sealed bids (the node's own bidders) -------------------------------------------------------
def insert_sealed(db: Sql, values: dict[str, Any]) -> None:
    db.execute("INSERT INTO market_sealed_bids(auction, bidder, bidder_name, amount, cost, chance_ppm, commit_event) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)",
               (values["auction"], values["bidder"], values["bidder_name"], values["amount"], values["cost"],
                values["chance_ppm"], values["commit_event"]))


def sealed_bids(db: Sql, auction: str) -> list[Row]:
    return db.query(
        "SELECT s.auction, s.bidder, s.bidder_name, s.amount, s.cost, s.chance_ppm, s.commit_event, "
        "r.id AS reveal_event FROM market_sealed_bids s LEFT JOIN market_events r "
        "ON r.auction = s.auction AND r.pubkey = s.bidder AND r.kind = 7202 WHERE s.auction = ? ORDER BY s.bidder",
        (auction,))


def bids(db: Sql, auction: str) -> list[Row]:
    """Every commitment of the auction with its opening, if any (the ``market_bids`` view)."""
    return db.query("SELECT bidder, commit_event, committed_at, reveal_event, revealed_at, amount FROM market_bids "
                    "WHERE auction = ? ORDER BY committed_at, commit_event", (auction,))


# -- verification and feedback ------------------------------------------------------------------
def insert_verification(db: Sql, values: dict[str, Any]) -> None:
    db.execute("INSERT INTO market_verifications(auction, method, passed, detail, event, slashed, decided_by, at) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (values["auction"], values["method"], int(values["passed"]), values["detail"], values["event"],
                values["slashed"], values["decided_by"], values["at"]))


def verification(db: Sql, auction: str) -> Row | None:
    row = db.one("SELECT auction, method, passed, detail, event, slashed, decided_by, at FROM market_verifications "
                 "WHERE auction = ?", (auction,))
    return None if row is None else {**row, "passed": bool(row["passed"])}


def insert_feedback(db: Sql, values: dict[str, Any]) -> None:
    db.execute("INSERT INTO market_feedback(event, auction, rater, ratee, payment_ref, score, created_at) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)",
               (values["event"], values["auction"], values["rater"], values["ratee"], values["payment_ref"],
                values["score"], values["created_at"]))


def all_feedback(db: Sql) -> list[Event]:
    """Every stored feedback event (the raw signed JSON; the reputation book re-verifies it)."""
    rows = db.query("SELECT e.raw FROM market_feedback f JOIN market_events e ON e.id = f.event "
                    "ORDER BY e.created_at, e.id")
    return [Event.model_validate_json(r["raw"]) for r in rows]
