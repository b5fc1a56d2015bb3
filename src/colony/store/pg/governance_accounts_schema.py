"""Migration 19 on PostgreSQL, governance by account: stake, locks and tool tiers keyed by public key.

The same change as on SQLite (`colony.store.governance_accounts_schema`, which says why): locks
gain ``account``, keyed deposits and withdrawals are once per (account, op, key) while a slash
stays once per reference, tool tiers are keyed by (account, tool), and the indexes by name
become indexes by account.

What differs: the identities are not here (each node's keys stay in its own file), so an old
row's account is found from what its agent's name staked under — the stake holds and stake
events, which carry both. A name that staked under one account converts. A name that maps to
several accounts is exactly what issue 17's bug produced: nodes sharing this database whose
same-named agents shared one key in these tables, so nobody can say now whose a row was. Such
rows — and tiers of agents that never staked, whose name nothing here resolves — are **kept,
not dropped, under their name only, where nothing reads them**:

- a lock keeps ``account`` NULL. No account's ``locked`` counts it (a mixed lock could have
  held either agent's stake); its bid still releases it by its ``ref``. New locks always carry
  an account (a trigger refuses NULL);
- a tool tier moves to ``gov_tool_tiers_unresolved`` (same columns, keyed by name), which no
  code reads: the agent is back on its node's policy until a new proposal — which names the
  account — sets its tier again;
- one ``gov_log`` row (action ``unresolved_on_upgrade``) lists them, so the owner sees them in
  ``colony market log``.

Refusing to migrate was the other choice; it would stop every node of the colony over rows
whose meaning was already lost, and a tier of an agent that never staked (nothing mixed at
all) would have blocked a colony of one node. The migration runs in one transaction under the
migration lock (`colony.store.pg.migrations`), so no node sees the tables half converted.
"""

from __future__ import annotations

__all__ = ["GOVERNANCE_ACCOUNTS_SCHEMA"]

GOVERNANCE_ACCOUNTS_SCHEMA = r"""
CREATE TEMPORARY TABLE gov_v19_names ON COMMIT DROP AS
    SELECT agent, min(account) AS account, count(DISTINCT account) AS accounts
    FROM (SELECT agent, account FROM market_stake_holds UNION SELECT agent, account FROM market_stake_events) staked
    GROUP BY agent;

DROP INDEX market_stake_holds_agent;
CREATE INDEX market_stake_holds_account ON market_stake_holds(account);

DROP INDEX market_stake_events_agent;
CREATE INDEX market_stake_events_account ON market_stake_events(account, id);
ALTER TABLE market_stake_events DROP CONSTRAINT market_stake_events_op_ref_key;
CREATE UNIQUE INDEX market_stake_events_slash_ref ON market_stake_events(ref) WHERE op = 'slash';
CREATE UNIQUE INDEX market_stake_events_key ON market_stake_events(account, op, ref) WHERE op <> 'slash';

ALTER TABLE market_stake_locks ADD COLUMN account TEXT COLLATE "C" CHECK (account IS NULL OR length(account) = 64);
ALTER TABLE market_stake_locks DISABLE TRIGGER market_stake_locks_release;
UPDATE market_stake_locks l SET account = n.account FROM gov_v19_names n WHERE n.agent = l.agent AND n.accounts = 1;
ALTER TABLE market_stake_locks ENABLE TRIGGER market_stake_locks_release;
DROP INDEX market_stake_locks_open;
CREATE INDEX market_stake_locks_open ON market_stake_locks(account) WHERE released_at IS NULL;
CREATE OR REPLACE FUNCTION market_stake_locks_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (OLD.released_at IS NULL AND NEW.released_at IS NOT NULL AND NEW.ref = OLD.ref
            AND NEW.agent = OLD.agent AND NEW.account IS NOT DISTINCT FROM OLD.account
            AND NEW.amount = OLD.amount AND NEW.created_at = OLD.created_at) THEN
        RAISE EXCEPTION 'market: a stake lock is released once and otherwise never changes';
    END IF;
    RETURN NEW;
END $$;
CREATE FUNCTION market_stake_locks_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.account IS NULL THEN
        RAISE EXCEPTION 'market: a stake lock names its agent''s own account';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER market_stake_locks_account BEFORE INSERT ON market_stake_locks
    FOR EACH ROW EXECUTE FUNCTION market_stake_locks_account();

CREATE TABLE gov_tool_tiers_unresolved (
    agent TEXT COLLATE "C" NOT NULL,
    tool TEXT COLLATE "C" NOT NULL,
    tier TEXT NOT NULL,
    proposal_id TEXT NOT NULL REFERENCES gov_executions(proposal_id),
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (agent, tool)
);
INSERT INTO gov_tool_tiers_unresolved(agent, tool, tier, proposal_id, updated_at)
    SELECT agent, tool, tier, proposal_id, updated_at FROM gov_tool_tiers t
    WHERE NOT EXISTS (SELECT 1 FROM gov_v19_names n WHERE n.agent = t.agent AND n.accounts = 1);
DELETE FROM gov_tool_tiers t USING gov_tool_tiers_unresolved u WHERE u.agent = t.agent AND u.tool = t.tool;
ALTER TABLE gov_tool_tiers DROP CONSTRAINT gov_tool_tiers_pkey;
ALTER TABLE gov_tool_tiers ADD COLUMN account TEXT COLLATE "C" CHECK (length(account) = 64);
UPDATE gov_tool_tiers t SET account = n.account FROM gov_v19_names n WHERE n.agent = t.agent;
ALTER TABLE gov_tool_tiers ALTER COLUMN account SET NOT NULL;
ALTER TABLE gov_tool_tiers ADD PRIMARY KEY (account, tool);

INSERT INTO gov_log(at, actor, action, detail)
    SELECT extract(epoch FROM now()), 'migration 19', 'unresolved_on_upgrade', json_build_object(
        'why', 'these rows name an agent that staked under several accounts (nodes sharing this database) '
               'or under none, so their account is unknown; they are kept and apply to nobody',
        'locks', coalesce((SELECT json_agg(json_build_object('ref', ref, 'agent', agent, 'amount', amount,
                                                             'released', released_at IS NOT NULL) ORDER BY ref)
                           FROM market_stake_locks WHERE account IS NULL), '[]'::json),
        'tool_tiers', coalesce((SELECT json_agg(json_build_object('agent', agent, 'tool', tool, 'tier', tier)
                                                ORDER BY agent, tool) FROM gov_tool_tiers_unresolved), '[]'::json)
    )::text
    WHERE EXISTS (SELECT 1 FROM market_stake_locks WHERE account IS NULL)
       OR EXISTS (SELECT 1 FROM gov_tool_tiers_unresolved);
"""
