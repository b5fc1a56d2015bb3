"""SQL over ``agent_profiles`` (migration 12, `colony.store.agents_schema`); nothing else here.

Rows go in and out as plain dicts with the cost model's prices as separate integer columns and
the per-tool prices as a JSON object. Writes take an open transaction's connection when the
caller already holds one (`insert_profile` runs inside the identity's insert), else their own.
"""

from __future__ import annotations

import json
from typing import Any

from colony.store import Database, Row

__all__ = ["get_profile", "insert_profile", "list_profiles", "update_profile"]

_COLUMNS = ("name, persona, tier, price_input_per_1k, price_output_per_1k, price_per_tool_call, price_per_tool, "
            "overhead, active, created_at, updated_at")
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"


def _decode(row: Row) -> Row:
    return {**row, "price_per_tool": json.loads(row["price_per_tool"]), "active": bool(row["active"])}


def _params(values: dict[str, Any]) -> dict[str, Any]:
    return {**values, "price_per_tool": json.dumps(values["price_per_tool"], sort_keys=True, ensure_ascii=False),
            "active": int(values["active"])}


def get_profile(db: Database, name: str) -> Row | None:
    row = db.one(f"SELECT {_COLUMNS} FROM agent_profiles WHERE name = ?", (name,))
    return _decode(row) if row else None


def list_profiles(db: Database) -> dict[str, Row]:
    return {row["name"]: _decode(row) for row in db.query(f"SELECT {_COLUMNS} FROM agent_profiles")}


def insert_profile(db: Database, values: dict[str, Any]) -> bool:
    """Insert a profile; False when the agent already has one (``ON CONFLICT DO NOTHING``)."""
    with db.tx() as conn:
        conn.execute(
            "INSERT INTO agent_profiles(name, persona, tier, price_input_per_1k, price_output_per_1k, "
            "price_per_tool_call, price_per_tool, overhead, active) VALUES (:name, :persona, :tier, "
            ":price_input_per_1k, :price_output_per_1k, :price_per_tool_call, :price_per_tool, :overhead, :active) "
            "ON CONFLICT DO NOTHING",
            _params(values),
        )
        return bool(conn.changes())


def update_profile(db: Database, values: dict[str, Any]) -> bool:
    """Replace a profile's fields (not its creation time); False when it has none."""
    with db.tx() as conn:
        conn.execute(
            "UPDATE agent_profiles SET persona = :persona, tier = :tier, price_input_per_1k = :price_input_per_1k, "
            "price_output_per_1k = :price_output_per_1k, price_per_tool_call = :price_per_tool_call, "
            f"price_per_tool = :price_per_tool, overhead = :overhead, active = :active, updated_at = {_NOW} "
            "WHERE name = :name",
            _params(values),
        )
        return bool(conn.changes())
