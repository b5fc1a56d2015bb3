"""Migration 12, agents: the profile of each agent a node hosts (``colony.market.profiles``).

An agent *is* its identity (``identities``, migration 8: name, keys, skills, description); the
profile adds what makes it a worker in the market: the persona its turns start from, the model
tier (which provider of the node's cascade it runs on: ``default`` for the whole cascade, else
a provider's name) and its cost model, in integer micro-credits — per 1,000 input tokens, per
1,000 output tokens, per tool call (with optional prices per tool name, a JSON object), and a
fixed overhead per task.

Invariants the database holds, not the caller:

- a profile belongs to an existing identity (foreign key on the name) — an agent without keys
  cannot be priced, paid or held to account;
- prices are integers ≥ 0 (``STRICT`` refuses a float or a string), the active flag is 0 or 1,
  the persona is not empty;
- rows are never deleted (a trigger refuses): removing an agent deactivates it, so the key its
  ledger account and signed history name stays tied to what it was.

Per-tool prices are checked value by value in Python (a CHECK cannot iterate a JSON object); the
CHECK here only insists on a JSON object.
"""

from __future__ import annotations

__all__ = ["AGENTS_SCHEMA"]

AGENTS_SCHEMA = """
CREATE TABLE agent_profiles (
    name TEXT PRIMARY KEY REFERENCES identities(name),
    persona TEXT NOT NULL CHECK (length(persona) >= 1),
    tier TEXT NOT NULL DEFAULT 'default' CHECK (length(tier) BETWEEN 1 AND 64),
    price_input_per_1k INTEGER NOT NULL DEFAULT 0 CHECK (price_input_per_1k >= 0),
    price_output_per_1k INTEGER NOT NULL DEFAULT 0 CHECK (price_output_per_1k >= 0),
    price_per_tool_call INTEGER NOT NULL DEFAULT 0 CHECK (price_per_tool_call >= 0),
    price_per_tool TEXT NOT NULL DEFAULT '{}'
        CHECK (json_valid(price_per_tool) AND json_type(price_per_tool) IS 'object'),
    overhead INTEGER NOT NULL DEFAULT 0 CHECK (overhead >= 0),
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
) STRICT, WITHOUT ROWID;
CREATE TRIGGER agent_profiles_kept BEFORE DELETE ON agent_profiles
BEGIN SELECT RAISE(ABORT, 'an agent profile is deactivated, never deleted'); END;
"""
