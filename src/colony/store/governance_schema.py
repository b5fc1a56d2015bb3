"""Migration 14, governance: stake, proposals, votes, vetoes, executions and what they changed.

Stake (`colony.market.stakes`) is credits the agent holds in escrow on the ledger, signed by its
own key. The ledger keeps the money; these tables only say which of its holds are stake
(``market_stake_holds``), what moved it (``market_stake_events``: deposits, withdrawals, slashes)
and what an open bid or award keeps from being withdrawn (``market_stake_locks``). How much an
agent has staked is always read from the ledger's hold states, never from a counter here.

Governance (`colony.market.gov_service`) keeps every signed event it accepted — proposals, votes,
the node owner's vetoes, the node's executions — and the stake each account had when a proposal
was made (``gov_snapshots``: the only weights its votes can carry). The per-agent tool tiers and
market parameters the executions set are the two tables that change (``gov_tool_tiers``,
``gov_market_params``); each row names the proposal that set it.

Invariants the database holds, not the caller:

- the audit trail is append-only: proposals, snapshots, votes, vetoes, executions, the governance
  log, stake holds and stake events refuse UPDATE and DELETE;
- one vote per voter per proposal (primary key), cast before the voting window closed (by the
  node's clock at recording), weighing exactly the voter's snapshot (0 without one), weights ≥ 0;
- one execution per proposal (primary key), never before the timelock ends, never after a veto;
  one veto per proposal, never after its execution;
- a stake hold is one of the staker's own open holds with no fixed payee (the ledger's
  ``ledger_holds``), recorded by the agent's name and account; a slash and a keyed deposit or
  withdrawal happen once per reference (``UNIQUE (op, ref)``);
- a lock is released once and never deleted;
- tiers are the approval tiers that exist (allow, ask, auto); every override names an executed
  proposal.
"""

from __future__ import annotations

__all__ = ["GOVERNANCE_SCHEMA"]

_APPEND_ONLY = """
CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, 'governance: {table} is an audit record and never changes'); END;
CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, 'governance: {table} is an audit record and never changes'); END;
"""

_TABLES = """
CREATE TABLE market_stake_holds (
    hold_id TEXT PRIMARY KEY REFERENCES ledger_holds(id),
    agent TEXT NOT NULL REFERENCES identities(name),
    account TEXT NOT NULL CHECK (length(account) = 64),
    origin TEXT NOT NULL CHECK (origin IN ('deposit', 'remainder')),
    created_at REAL NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX market_stake_holds_agent ON market_stake_holds(agent);

CREATE TRIGGER market_stake_holds_own BEFORE INSERT ON market_stake_holds
WHEN NOT EXISTS (SELECT 1 FROM ledger_holds h WHERE h.id = NEW.hold_id AND h.payer = NEW.account
                 AND h.state = 'held' AND h.payee IS NULL)
  OR NEW.account IS NOT (SELECT public_hex FROM identities WHERE name = NEW.agent)
BEGIN
    SELECT RAISE(ABORT, 'market: a stake is an open hold, with no fixed payee, of the staker''s own account');
END;

CREATE TABLE market_stake_events (
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
    UNIQUE (op, ref),
    CHECK (op <> 'slash' OR (ref IS NOT NULL AND beneficiary IS NOT NULL AND beneficiary <> account)),
    CHECK (op = 'slash' OR amount > 0)
) STRICT;
CREATE INDEX market_stake_events_agent ON market_stake_events(agent, id);

CREATE TABLE market_stake_locks (
    ref TEXT PRIMARY KEY CHECK (length(ref) BETWEEN 1 AND 200),
    agent TEXT NOT NULL REFERENCES identities(name),
    amount INTEGER NOT NULL CHECK (amount > 0),
    created_at REAL NOT NULL,
    released_at REAL
) STRICT, WITHOUT ROWID;
CREATE INDEX market_stake_locks_open ON market_stake_locks(agent) WHERE released_at IS NULL;
CREATE TRIGGER market_stake_locks_release BEFORE UPDATE ON market_stake_locks
WHEN NOT (OLD.released_at IS NULL AND NEW.released_at IS NOT NULL AND NEW.ref = OLD.ref AND NEW.agent = OLD.agent
          AND NEW.amount = OLD.amount AND NEW.created_at = OLD.created_at)
BEGIN SELECT RAISE(ABORT, 'market: a stake lock is released once and otherwise never changes'); END;
CREATE TRIGGER market_stake_locks_no_delete BEFORE DELETE ON market_stake_locks
BEGIN SELECT RAISE(ABORT, 'market: stake locks are never deleted'); END;

CREATE TABLE gov_proposals (
    id TEXT PRIMARY KEY CHECK (length(id) = 64),
    proposer TEXT NOT NULL CHECK (length(proposer) = 64),
    proposer_name TEXT NOT NULL,
    action_type TEXT NOT NULL,
    action TEXT NOT NULL CHECK (json_valid(action) AND json_extract(action, '$.type') = action_type),
    created_at INTEGER NOT NULL,
    voting_ends INTEGER NOT NULL,
    executable_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    quorum_bp INTEGER NOT NULL CHECK (quorum_bp BETWEEN 1 AND 10000),
    total_weight INTEGER NOT NULL CHECK (total_weight >= 0),
    event TEXT NOT NULL CHECK (json_valid(event)),
    recorded_at REAL NOT NULL,
    CHECK (created_at < voting_ends AND voting_ends <= executable_at AND executable_at < expires_at)
) STRICT, WITHOUT ROWID;
CREATE INDEX gov_proposals_created ON gov_proposals(created_at);

CREATE TABLE gov_snapshots (
    proposal_id TEXT NOT NULL REFERENCES gov_proposals(id),
    account TEXT NOT NULL CHECK (length(account) = 64),
    weight INTEGER NOT NULL CHECK (weight > 0),
    PRIMARY KEY (proposal_id, account)
) STRICT, WITHOUT ROWID;

CREATE TABLE gov_votes (
    proposal_id TEXT NOT NULL REFERENCES gov_proposals(id),
    voter TEXT NOT NULL CHECK (length(voter) = 64),
    choice TEXT NOT NULL CHECK (choice IN ('yes', 'no', 'abstain')),
    weight INTEGER NOT NULL CHECK (weight >= 0),
    created_at INTEGER NOT NULL,
    event_id TEXT NOT NULL UNIQUE CHECK (length(event_id) = 64),
    event TEXT NOT NULL CHECK (json_valid(event)),
    recorded_at REAL NOT NULL,
    PRIMARY KEY (proposal_id, voter)
) STRICT, WITHOUT ROWID;
CREATE TRIGGER gov_votes_rules BEFORE INSERT ON gov_votes
BEGIN
    SELECT CASE
        WHEN NEW.recorded_at >= p.voting_ends THEN RAISE(ABORT, 'governance: the voting window has closed')
        WHEN NEW.weight <> coalesce((SELECT s.weight FROM gov_snapshots s WHERE s.proposal_id = NEW.proposal_id
                                     AND s.account = NEW.voter), 0)
            THEN RAISE(ABORT, 'governance: a vote weighs the voter''s stake at the proposal''s snapshot')
        WHEN EXISTS (SELECT 1 FROM gov_vetoes v WHERE v.proposal_id = NEW.proposal_id)
            THEN RAISE(ABORT, 'governance: the proposal was vetoed')
    END
    FROM gov_proposals p WHERE p.id = NEW.proposal_id;
END;

CREATE TABLE gov_vetoes (
    proposal_id TEXT PRIMARY KEY REFERENCES gov_proposals(id),
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    event_id TEXT NOT NULL UNIQUE CHECK (length(event_id) = 64),
    event TEXT NOT NULL CHECK (json_valid(event)),
    recorded_at REAL NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TRIGGER gov_vetoes_before_execution BEFORE INSERT ON gov_vetoes
WHEN EXISTS (SELECT 1 FROM gov_executions e WHERE e.proposal_id = NEW.proposal_id)
BEGIN SELECT RAISE(ABORT, 'governance: an executed proposal cannot be vetoed'); END;

CREATE TABLE gov_executions (
    proposal_id TEXT PRIMARY KEY REFERENCES gov_proposals(id),
    outcome TEXT NOT NULL CHECK (outcome IN ('applied', 'failed')),
    yes INTEGER NOT NULL CHECK (yes >= 0),
    no INTEGER NOT NULL CHECK (no >= 0),
    abstain INTEGER NOT NULL CHECK (abstain >= 0),
    detail TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    event_id TEXT NOT NULL UNIQUE CHECK (length(event_id) = 64),
    event TEXT NOT NULL CHECK (json_valid(event)),
    recorded_at REAL NOT NULL,
    CHECK (yes > no)
) STRICT, WITHOUT ROWID;
CREATE TRIGGER gov_executions_rules BEFORE INSERT ON gov_executions
BEGIN
    SELECT CASE
        WHEN NEW.recorded_at < p.executable_at THEN RAISE(ABORT, 'governance: the timelock has not ended')
        WHEN EXISTS (SELECT 1 FROM gov_vetoes v WHERE v.proposal_id = NEW.proposal_id)
            THEN RAISE(ABORT, 'governance: a vetoed proposal is never executed')
    END
    FROM gov_proposals p WHERE p.id = NEW.proposal_id;
END;

CREATE TABLE gov_tool_tiers (
    agent TEXT NOT NULL REFERENCES identities(name),
    tool TEXT NOT NULL CHECK (length(tool) BETWEEN 1 AND 128),
    tier TEXT NOT NULL CHECK (tier IN ('allow', 'ask', 'auto')),
    proposal_id TEXT NOT NULL REFERENCES gov_executions(proposal_id),
    updated_at REAL NOT NULL,
    PRIMARY KEY (agent, tool)
) STRICT, WITHOUT ROWID;

CREATE TABLE gov_market_params (
    name TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    value INTEGER NOT NULL,
    proposal_id TEXT NOT NULL REFERENCES gov_executions(proposal_id),
    updated_at REAL NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE gov_log (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    proposal_id TEXT,
    agent TEXT,
    detail TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail))
) STRICT;
CREATE INDEX gov_log_proposal ON gov_log(proposal_id, id);
"""

_AUDITED = ("market_stake_holds", "market_stake_events", "gov_proposals", "gov_snapshots", "gov_votes",
            "gov_vetoes", "gov_executions", "gov_log")

GOVERNANCE_SCHEMA = _TABLES + "".join(_APPEND_ONLY.format(table=t) for t in _AUDITED)
