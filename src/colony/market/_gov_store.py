"""SQL over the governance tables of migrations 14 and 19 (`colony.store.governance_schema`,
`colony.store.governance_accounts_schema`, and their PostgreSQL ports); nothing else here.

Tool tiers are keyed by the agent's account (public key), never its name: a name is local to its
node, and nodes sharing one PostgreSQL may each host an agent of the same name.

One SQL text for both engines (`colony.store.engine.Sql`: the node's `Database`, or the market's
engine). Writes join the caller's transaction when it holds one (``tx()`` nests on both), so a
proposal and its snapshot, or an execution and its effect, commit together.
"""

from __future__ import annotations

import json
from typing import Any

from colony.store import Row
from colony.store.engine import Sql

__all__ = [
    "append_log",
    "execution_of",
    "get_proposal",
    "insert_execution",
    "insert_proposal",
    "insert_veto",
    "insert_vote",
    "list_log",
    "list_tool_tiers",
    "param_overrides",
    "proposal_ids",
    "proposal_ids_by_prefix",
    "set_param",
    "set_tool_tier",
    "snapshot_weight",
    "tool_tier",
    "undecided_ids",
    "veto_of",
    "vote_of",
    "votes_of",
]

_PROPOSAL = ("id, proposer, proposer_name, action, created_at, voting_ends, executable_at, expires_at, quorum_bp, "
             "total_weight, event")
#: The columns of a recorded proposal, vote, veto and execution, in the order of their dicts' keys.
_PROPOSAL_ROW = ("id", "proposer", "proposer_name", "action_type", "action", "created_at", "voting_ends",
                 "executable_at", "expires_at", "quorum_bp", "total_weight", "event", "recorded_at")
_VOTE_ROW = ("proposal_id", "voter", "choice", "weight", "created_at", "event_id", "event", "recorded_at")
_VETO_ROW = ("proposal_id", "actor", "reason", "created_at", "event_id", "event", "recorded_at")
_EXECUTION_ROW = ("proposal_id", "outcome", "yes", "no", "abstain", "detail", "created_at", "event_id", "event",
                  "recorded_at")


def _marks(columns: tuple[str, ...]) -> str:
    return ", ".join("?" * len(columns))


def _insert(db: Sql, table: str, columns: tuple[str, ...], row: dict[str, Any]) -> None:
    db.execute(f"INSERT INTO {table}({', '.join(columns)}) VALUES ({_marks(columns)})", [row[k] for k in columns])


# -- what executions changed --------------------------------------------------------------------


def tool_tier(db: Sql, account: str, tool: str) -> str | None:
    """The tier governance gave the agent of ``account`` for ``tool``, or None (the node's policy applies)."""
    value = db.scalar("SELECT tier FROM gov_tool_tiers WHERE account = ? AND tool = ?", (account, tool))
    return None if value is None else str(value)


def set_tool_tier(db: Sql, account: str, agent: str, tool: str, tier: str, proposal_id: str, now: float) -> None:
    """Set the account's tier for ``tool``; ``agent`` is its name, kept to be shown."""
    db.execute("INSERT INTO gov_tool_tiers(account, agent, tool, tier, proposal_id, updated_at) "
               "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(account, tool) DO UPDATE SET tier = excluded.tier, "
               "proposal_id = excluded.proposal_id, updated_at = excluded.updated_at",
               (account, agent, tool, tier, proposal_id, now))


def list_tool_tiers(db: Sql) -> list[Row]:
    return db.query("SELECT account, agent, tool, tier, proposal_id, updated_at FROM gov_tool_tiers "
                    "ORDER BY account, tool")


def param_overrides(db: Sql) -> dict[str, int]:
    return {str(r["name"]): int(r["value"]) for r in db.query("SELECT name, value FROM gov_market_params")}


def set_param(db: Sql, name: str, value: int, proposal_id: str, now: float) -> None:
    db.execute("INSERT INTO gov_market_params(name, value, proposal_id, updated_at) VALUES (?, ?, ?, ?) "
               "ON CONFLICT(name) DO UPDATE SET value = excluded.value, proposal_id = excluded.proposal_id, "
               "updated_at = excluded.updated_at", (name, value, proposal_id, now))


# -- proposals ----------------------------------------------------------------------------------


def insert_proposal(db: Sql, row: dict[str, Any], snapshot: dict[str, int]) -> None:
    """The proposal and every staker's weight at this moment, in the caller's transaction."""
    with db.tx():
        _insert(db, "gov_proposals", _PROPOSAL_ROW, row)
        for account, weight in sorted(snapshot.items()):
            db.execute("INSERT INTO gov_snapshots(proposal_id, account, weight) VALUES (?, ?, ?)",
                       (row["id"], account, weight))


def get_proposal(db: Sql, proposal_id: str) -> Row | None:
    row = db.one(f"SELECT {_PROPOSAL} FROM gov_proposals WHERE id = ?", (proposal_id,))
    return None if row is None else {**row, "action": json.loads(row["action"]), "event": json.loads(row["event"])}


def proposal_ids(db: Sql, *, limit: int | None) -> list[str]:
    """Newest first; all of them when ``limit`` is None."""
    sql = "SELECT id FROM gov_proposals ORDER BY created_at DESC, id"
    rows = db.query(sql) if limit is None else db.query(sql + " LIMIT ?", (limit,))
    return [str(r["id"]) for r in rows]


def proposal_ids_by_prefix(db: Sql, prefix: str) -> list[str]:
    return [str(r["id"]) for r in db.query("SELECT id FROM gov_proposals WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                                           (prefix, prefix + "g"))]


def undecided_ids(db: Sql, now: int) -> list[str]:
    """Proposals whose vote is over and that were neither executed nor vetoed nor past their grace,
    in the order they become executable (then by id): the ones an execution sweep looks at."""
    rows = db.query(
        "SELECT p.id FROM gov_proposals p WHERE p.voting_ends <= ? AND p.expires_at > ? "
        "AND NOT EXISTS (SELECT 1 FROM gov_executions e WHERE e.proposal_id = p.id) "
        "AND NOT EXISTS (SELECT 1 FROM gov_vetoes v WHERE v.proposal_id = p.id) "
        "ORDER BY p.executable_at, p.id", (now, now))
    return [str(r["id"]) for r in rows]


def snapshot_weight(db: Sql, proposal_id: str, account: str) -> int:
    value = db.scalar("SELECT weight FROM gov_snapshots WHERE proposal_id = ? AND account = ?", (proposal_id, account))
    return 0 if value is None else int(value)


# -- votes, vetoes, executions ------------------------------------------------------------------


def insert_vote(db: Sql, row: dict[str, Any]) -> None:
    _insert(db, "gov_votes", _VOTE_ROW, row)


def votes_of(db: Sql, proposal_id: str) -> list[Row]:
    rows = db.query("SELECT voter, choice, weight, created_at, event_id, event, recorded_at FROM gov_votes "
                    "WHERE proposal_id = ? ORDER BY recorded_at, voter", (proposal_id,))
    return [{**r, "event": json.loads(r["event"])} for r in rows]


def vote_of(db: Sql, proposal_id: str, voter: str) -> Row | None:
    return db.one("SELECT voter, choice, weight, event_id FROM gov_votes WHERE proposal_id = ? AND voter = ?",
                  (proposal_id, voter))


def insert_veto(db: Sql, row: dict[str, Any]) -> None:
    _insert(db, "gov_vetoes", _VETO_ROW, row)


def veto_of(db: Sql, proposal_id: str) -> Row | None:
    row = db.one("SELECT actor, reason, created_at, event_id, event FROM gov_vetoes WHERE proposal_id = ?",
                 (proposal_id,))
    return None if row is None else {**row, "event": json.loads(row["event"])}


def insert_execution(db: Sql, row: dict[str, Any]) -> None:
    _insert(db, "gov_executions", _EXECUTION_ROW, row)


def execution_of(db: Sql, proposal_id: str) -> Row | None:
    row = db.one("SELECT outcome, yes, no, abstain, detail, created_at, event_id, event FROM gov_executions "
                 "WHERE proposal_id = ?", (proposal_id,))
    return None if row is None else {**row, "event": json.loads(row["event"])}


# -- the governance log ---------------------------------------------------------------------------


def append_log(db: Sql, *, at: float, actor: str, action: str, proposal_id: str | None = None,
               agent: str | None = None, detail: dict[str, Any] | None = None) -> None:
    db.execute("INSERT INTO gov_log(at, actor, action, proposal_id, agent, detail) VALUES (?, ?, ?, ?, ?, ?)",
               (at, actor, action, proposal_id, agent, json.dumps(detail or {}, ensure_ascii=False, sort_keys=True)))


def list_log(db: Sql, *, proposal_id: str | None = None, limit: int = 100) -> list[Row]:
    if proposal_id is None:
        rows = db.query("SELECT id, at, actor, action, proposal_id, agent, detail FROM gov_log ORDER BY id DESC "
                        "LIMIT ?", (limit,))
    else:
        rows = db.query("SELECT id, at, actor, action, proposal_id, agent, detail FROM gov_log WHERE proposal_id = ? "
                        "ORDER BY id LIMIT ?", (proposal_id, limit))
    return [{**r, "detail": json.loads(r["detail"])} for r in rows]
