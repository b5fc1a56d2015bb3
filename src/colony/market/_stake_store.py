"""SQL over the stake tables of migrations 14 and 19 (`colony.store.governance_schema`,
`colony.store.governance_accounts_schema`, and their PostgreSQL ports); nothing else here.

Every read and write is keyed by the agent's account (its public key): a name is local to a node,
and nodes sharing one PostgreSQL may each have an agent of the same name. The name is written
beside the account for people, never read as a key.

How much is staked is read by joining the stake records with the ledger's own hold states, so a
hold the ledger captured or released stops counting the moment it does — on either engine, since
the ledger lives beside these tables. One SQL text for both engines (`colony.store.engine.Sql`);
writes join the caller's transaction.
"""

from __future__ import annotations

import json
from typing import Any

from colony.store import Row
from colony.store.engine import Sql

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


def open_holds(db: Sql, account: str) -> list[tuple[str, int]]:
    """(hold id, amount) of the account's stake holds still held, oldest first (ties by id)."""
    rows = db.query(f"SELECT h.id, h.amount {_OPEN} AND s.account = ? ORDER BY h.created_at, h.id", (account,))
    return [(str(r["id"]), int(r["amount"])) for r in rows]


def staked(db: Sql, account: str) -> int:
    return int(db.scalar(f"SELECT coalesce(sum(h.amount), 0) {_OPEN} AND s.account = ?", (account,)) or 0)


def stakes_by_account(db: Sql) -> dict[str, int]:
    """Every staking account's stake now (only accounts with some): a proposal's snapshot."""
    rows = db.query(f"SELECT s.account, sum(h.amount) AS total {_OPEN} GROUP BY s.account HAVING sum(h.amount) > 0")
    return {str(r["account"]): int(r["total"]) for r in rows}


def record_hold(db: Sql, hold_id: str, agent: str, account: str, origin: str, now: float) -> None:
    db.execute("INSERT INTO market_stake_holds(hold_id, agent, account, origin, created_at) VALUES (?, ?, ?, ?, ?)",
               (hold_id, agent, account, origin, now))


def event_by_ref(db: Sql, op: str, ref: str, *, account: str | None = None) -> Row | None:
    """The event recorded for ``ref``: a slash's reference is everyone's (one offence, one offender);
    a deposit's or withdrawal's key is its account's (``account``), as the unique indexes say."""
    cols = "agent, account, op, amount, ref, beneficiary, reason, staked_after"
    if account is None:
        return db.one(f"SELECT {cols} FROM market_stake_events WHERE op = ? AND ref = ?", (op, ref))
    return db.one(f"SELECT {cols} FROM market_stake_events WHERE account = ? AND op = ? AND ref = ?",
                  (account, op, ref))


def record_event(db: Sql, values: dict[str, Any]) -> None:
    db.execute(
        "INSERT INTO market_stake_events(agent, account, op, amount, ref, beneficiary, reason, holds, staked_after, "
        "actor, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (values["agent"], values["account"], values["op"], values["amount"], values["ref"], values["beneficiary"],
         values["reason"], json.dumps(values["holds"]), values["staked_after"], values["actor"],
         values["created_at"]),
    )


def list_events(db: Sql, account: str, *, limit: int = 50) -> list[Row]:
    rows = db.query("SELECT id, op, amount, ref, beneficiary, reason, holds, staked_after, actor, created_at "
                    "FROM market_stake_events WHERE account = ? ORDER BY id DESC LIMIT ?", (account, limit))
    return [{**r, "holds": json.loads(r["holds"])} for r in rows]


def locked(db: Sql, account: str) -> int:
    return int(db.scalar("SELECT coalesce(sum(amount), 0) FROM market_stake_locks WHERE account = ? "
                         "AND released_at IS NULL", (account,)) or 0)


def get_lock(db: Sql, ref: str) -> Row | None:
    return db.one("SELECT ref, agent, account, amount, created_at, released_at FROM market_stake_locks "
                  "WHERE ref = ?", (ref,))


def insert_lock(db: Sql, ref: str, agent: str, account: str, amount: int, now: float) -> None:
    db.execute("INSERT INTO market_stake_locks(ref, agent, account, amount, created_at) VALUES (?, ?, ?, ?, ?)",
               (ref, agent, account, amount, now))


def release_lock(db: Sql, ref: str, now: float) -> bool:
    """Release an open lock; False when it was released already (or never taken). One statement."""
    with db.tx():
        return bool(db.query("UPDATE market_stake_locks SET released_at = ? WHERE ref = ? AND released_at IS NULL "
                             "RETURNING ref", (now, ref)))
