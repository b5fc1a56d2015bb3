"""Migration 19, governance by account: stake, locks and tool tiers keyed by the agent's public key.

Why: an agent's name is local to its node (each node's ``identities`` live in its own file, and
every node has a ``colony``), while the market's and governance's tables may be shared by many
nodes on one PostgreSQL. Keyed by name, two nodes' same-named agents shared one stake, one set of
locks and one set of tool tiers. The account (the 64-hex public key the ledger already uses) is
globally unique, so it is the key now; ``agent`` stays beside it as the name to show.

What changes (the tables of migration 14, `colony.store.governance_schema`):

- ``market_stake_locks`` gains ``account`` (NOT NULL, filled from ``identities`` by name) and a
  trigger tying it to the named agent's key, as the stake holds already had; its open-lock index
  is by account. The table is rebuilt (SQLite adds no NOT NULL column to filled rows).
- ``market_stake_events``: a keyed deposit or withdrawal is once per (account, op, key) — two
  agents may use the same key — while a slash stays once per reference for everyone (a
  reference names one offence of one offender): the table-wide ``UNIQUE (op, ref)`` becomes two
  partial unique indexes. Rebuilt (a table constraint cannot be dropped in SQLite), ids kept.
- ``gov_tool_tiers`` is keyed by (account, tool), with the name kept for display; rebuilt.
- the indexes by agent name of holds and events become indexes by account.

Every row is converted, none dropped: on SQLite every name is in ``identities`` (migration 14's
foreign keys), and `apply_governance_accounts` refuses to run, naming the rows, if one is not.
"""

from __future__ import annotations

import apsw

from colony.errors import StoreError

__all__ = ["GOVERNANCE_ACCOUNTS_SCHEMA", "apply_governance_accounts"]

_APPEND_ONLY = """
CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, 'governance: {table} is an audit record and never changes'); END;
CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, 'governance: {table} is an audit record and never changes'); END;
"""

GOVERNANCE_ACCOUNTS_SCHEMA = """
DROP INDEX market_stake_holds_agent;
CREATE INDEX market_stake_holds_account ON market_stake_holds(account);

CREATE TABLE market_stake_locks_v19 (
    ref TEXT PRIMARY KEY CHECK (length(ref) BETWEEN 1 AND 200),
    agent TEXT NOT NULL REFERENCES identities(name),
    amount INTEGER NOT NULL CHECK (amount > 0),
    created_at REAL NOT NULL,
    released_at REAL,
    account TEXT NOT NULL CHECK (length(account) = 64)
) STRICT, WITHOUT ROWID;
INSERT INTO market_stake_locks_v19(ref, agent, amount, created_at, released_at, account)
    SELECT l.ref, l.agent, l.amount, l.created_at, l.released_at, i.public_hex
    FROM market_stake_locks l JOIN identities i ON i.name = l.agent;
DROP TABLE market_stake_locks;
ALTER TABLE market_stake_locks_v19 RENAME TO market_stake_locks;
CREATE INDEX market_stake_locks_open ON market_stake_locks(account) WHERE released_at IS NULL;
CREATE TRIGGER market_stake_locks_own BEFORE INSERT ON market_stake_locks
WHEN NEW.account IS NOT (SELECT public_hex FROM identities WHERE name = NEW.agent)
BEGIN SELECT RAISE(ABORT, 'market: a stake lock names its agent''s own account'); END;
CREATE TRIGGER market_stake_locks_release BEFORE UPDATE ON market_stake_locks
WHEN NOT (OLD.released_at IS NULL AND NEW.released_at IS NOT NULL AND NEW.ref = OLD.ref AND NEW.agent = OLD.agent
          AND NEW.account = OLD.account AND NEW.amount = OLD.amount AND NEW.created_at = OLD.created_at)
BEGIN SELECT RAISE(ABORT, 'market: a stake lock is released once and otherwise never changes'); END;
CREATE TRIGGER market_stake_locks_no_delete BEFORE DELETE ON market_stake_locks
BEGIN SELECT RAISE(ABORT, 'market: stake locks are never deleted'); END;

CREATE TABLE market_stake_events_v19 (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL REFERENCES identities(name),
    account TEXT NOT NULL CHECK (length(account) = 64),
    op TEXT NOT NULL CHECK (op IN ('deposit', 'withdraw', 'slash')),
    amount INTEGER NOT NULL CHECK (amount >= 0),
    ref TEXT CHECK (ref IS NULL OR length(ref) BETWEEN 1 AND 200),
    beneficiary TEXT CHECK (beneficiary IS NULL OR length(beneficiary) = 64),
    reason TEXT NOT NULL DEFAULT '',
    holds TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(holds) AND json_type(holds) IS 'array'),
    staked_after INTEGER NOT NULL CHECK (staked_after >= 0),
    actor TEXT NOT NULL,
    created_at REAL NOT NULL,
    CHECK (op <> 'slash' OR (ref IS NOT NULL AND beneficiary IS NOT NULL AND beneficiary <> account)),
    CHECK (op = 'slash' OR amount > 0)
) STRICT;
INSERT INTO market_stake_events_v19(id, agent, account, op, amount, ref, beneficiary, reason, holds, staked_after,
                                    actor, created_at)
    SELECT id, agent, account, op, amount, ref, beneficiary, reason, holds, staked_after, actor, created_at
    FROM market_stake_events ORDER BY id;
DROP TABLE market_stake_events;
ALTER TABLE market_stake_events_v19 RENAME TO market_stake_events;
CREATE INDEX market_stake_events_account ON market_stake_events(account, id);
CREATE UNIQUE INDEX market_stake_events_slash_ref ON market_stake_events(ref) WHERE op = 'slash';
CREATE UNIQUE INDEX market_stake_events_key ON market_stake_events(account, op, ref) WHERE op <> 'slash';

CREATE TABLE gov_tool_tiers_v19 (
    account TEXT NOT NULL CHECK (length(account) = 64),
    tool TEXT NOT NULL CHECK (length(tool) BETWEEN 1 AND 128),
    agent TEXT NOT NULL REFERENCES identities(name),
    tier TEXT NOT NULL CHECK (tier IN ('allow', 'ask', 'auto')),
    proposal_id TEXT NOT NULL REFERENCES gov_executions(proposal_id),
    updated_at REAL NOT NULL,
    PRIMARY KEY (account, tool)
) STRICT, WITHOUT ROWID;
INSERT INTO gov_tool_tiers_v19(account, tool, agent, tier, proposal_id, updated_at)
    SELECT i.public_hex, t.tool, t.agent, t.tier, t.proposal_id, t.updated_at
    FROM gov_tool_tiers t JOIN identities i ON i.name = t.agent;
DROP TABLE gov_tool_tiers;
ALTER TABLE gov_tool_tiers_v19 RENAME TO gov_tool_tiers;
CREATE TRIGGER gov_tool_tiers_own BEFORE INSERT ON gov_tool_tiers
WHEN NEW.account IS NOT (SELECT public_hex FROM identities WHERE name = NEW.agent)
BEGIN SELECT RAISE(ABORT, 'governance: a tool tier names its agent''s own account'); END;
CREATE TRIGGER gov_tool_tiers_same_agent BEFORE UPDATE ON gov_tool_tiers
WHEN NEW.account IS NOT OLD.account OR NEW.agent IS NOT OLD.agent
BEGIN SELECT RAISE(ABORT, 'governance: a tool tier keeps its agent'); END;
""" + _APPEND_ONLY.format(table="market_stake_events")

_UNNAMED = """
SELECT 'market_stake_locks' AS tbl, ref AS row_key, agent FROM market_stake_locks
    WHERE agent NOT IN (SELECT name FROM identities)
UNION ALL
SELECT 'gov_tool_tiers', tool, agent FROM gov_tool_tiers WHERE agent NOT IN (SELECT name FROM identities)
"""


def apply_governance_accounts(conn: apsw.Connection) -> None:
    """Migration 19 on SQLite: refuse (naming the rows) if a lock or tier names no local identity, else convert.

    Migration 14's foreign keys make such a row impossible unless they were switched off; the
    check is here so the conversion, which finds each account by name, can never drop a row.
    """
    unnamed = [f"{r['tbl']} {r['row_key']!r} (agent {r['agent']!r})" for r in conn.execute(_UNNAMED)]
    if unnamed:
        raise StoreError(f"Migration 19 cannot tell whose these rows are: no identity on this node has their agent's "
                         f"name: {', '.join(unnamed)}. Restore colony.db from a backup taken before they were "
                         "written (colony restore PATH), or remove them, then open the node again.")
    conn.execute(GOVERNANCE_ACCOUNTS_SCHEMA)
