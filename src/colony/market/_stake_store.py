"""SQL over the stake tables of migration 14 (`colony.store.governance_schema`); nothing else here.

How much is staked is read by joining the stake records with the ledger's own hold states, so a
hold the ledger captured or released stops counting the moment it does.
"""

from __future__ import annotations

import json
from typing import Any

from colony.store import Database, Row

__all__ = [
    "event_by_ref",
    "get_lock",
    "insert_lock",
    "list_events",
    "locked",
    "open_holds",
    "record_event",
    "record_hold",
    "release_lock",
    "staked",
    "stakes_by_account",
]

_OPEN = ("FROM market_stake_holds s JOIN ledger_holds h ON h.id = s.hold_id "
         "WHERE h.state = 'held'")


def open_holds(db: Database, agent: str) -> list[tuple[str, int]]:
    """(hold id, amount) of the agent's stake holds still held, oldest first (ties by id)."""
    rows = db.tuples(f"SELECT h.id, h.amount {_OPEN} AND s.agent = ? ORDER BY h.created_at, h.id", (agent,))
    return [(str(r[0]), int(r[1])) for r in rows]


def staked(db: Database, agent: str) -> int:
    return int(db.scalar(f"SELECT coalesce(sum(h.amount), 0) {_OPEN} AND s.agent = ?", (agent,)) or 0)


def stakes_by_account(db: Database) -> dict[str, int]:
    """Every staking account's stake now (only accounts with some): a proposal's snapshot."""
    rows = db.tuples(f"SELECT s.account, sum(h.amount) {_OPEN} GROUP BY s.account HAVING sum(h.amount) > 0")
    return {str(r[0]): int(r[1]) for r in rows}


def record_hold(db: Database, hold_id: str, agent: str, account: str, origin: str, now: float) -> None:
    db.execute("INSERT INTO market_stake_holds(hold_id, agent, account, origin, created_at) VALUES (?, ?, ?, ?, ?)",
               (hold_id, agent, account, origin, now))


def event_by_ref(db: Database, op: str, ref: str) -> Row | None:
    row = db.one("SELECT agent, account, op, amount, ref, beneficiary, reason, staked_after FROM market_stake_events "
                 "WHERE op = ? AND ref = ?", (op, ref))
    return row


def record_event(db: Database, values: dict[str, Any]) -> None:
    db.execute(
        "INSERT INTO market_stake_events(agent, account, op, amount, ref, beneficiary, reason, holds, staked_after, "
        "actor, created_at) VALUES (:agent, :account, :op, :amount, :ref, :beneficiary, :reason, :holds, "
        ":staked_after, :actor, :created_at)",
        {**values, "holds": json.dumps(values["holds"])},
    )


def list_events(db: Database, agent: str, *, limit: int = 50) -> list[Row]:
    rows = db.query("SELECT id, op, amount, ref, beneficiary, reason, holds, staked_after, actor, created_at "
                    "FROM market_stake_events WHERE agent = ? ORDER BY id DESC LIMIT ?", (agent, limit))
    return [{**r, "holds": json.loads(r["holds"])} for r in rows]


def locked(db: Database, agent: str) -> int:
    return int(db.scalar("SELECT coalesce(sum(amount), 0) FROM market_stake_locks WHERE agent = ? "
                         "AND released_at IS NULL", (agent,)) or 0)


def get_lock(db: Database, ref: str) -> Row | None:
    return db.one("SELECT ref, agent, amount, created_at, released_at FROM market_stake_locks WHERE ref = ?", (ref,))


def insert_lock(db: Database, ref: str, agent: str, amount: int, now: float) -> None:
    db.execute("INSERT INTO market_stake_locks(ref, agent, amount, created_at) VALUES (?, ?, ?, ?)",
               (ref, agent, amount, now))


def release_lock(db: Database, ref: str, now: float) -> bool:
    """Release an open lock; False when it was released already (or never taken)."""
    with db.tx() as conn:
        conn.execute("UPDATE market_stake_locks SET released_at = ? WHERE ref = ? AND released_at IS NULL", (now, ref))
        return bool(conn.changes())
