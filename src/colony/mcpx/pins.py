"""Pinned definitions of external MCP tools: trust on first use, a change disables the tool.

A server can change a tool's description or schema after you started relying on it (a "rug
pull": the description now tells the model to send your files somewhere). On first sight the
node records a SHA-256 of the tool's name, description and input schema; whenever the server
lists a different definition later, the tool is disabled until a person approves the new one
(`colony mcp approve`). Each pin, change and approval is an audit row in ``mcp_pin_events``.
The SQL for these two tables lives here: this capability owns them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel

from colony.store import Database

__all__ = [
    "PinEvent",
    "PinRow",
    "PinStatus",
    "approve_pin",
    "check_pin",
    "definition_hash",
    "list_pin_events",
    "list_pins",
    "pin_status",
]

PinStatus = Literal["approved", "changed"]


class PinRow(BaseModel):
    server: str
    tool: str
    hash: str
    status: PinStatus
    pending_hash: str | None
    first_seen_at: str
    updated_at: str


class PinEvent(BaseModel):
    at: str
    server: str
    tool: str
    event: Literal["pinned", "changed", "approved"]
    old_hash: str | None
    new_hash: str
    actor: str


def canonical_definition(name: str, description: str | None, schema: dict[str, Any]) -> str:
    return json.dumps({"name": name, "description": description or "", "input_schema": schema},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def definition_hash(name: str, description: str | None, schema: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_definition(name, description, schema).encode("utf-8")).hexdigest()


def _event(conn: Any, server: str, tool: str, event: str, old: str | None, new: str, actor: str) -> None:
    conn.execute(
        "INSERT INTO mcp_pin_events(server, tool, event, old_hash, new_hash, actor) VALUES (?, ?, ?, ?, ?, ?)",
        (server, tool, event, old, new, actor),
    )


def check_pin(db: Database, server: str, tool: str, description: str | None, schema: dict[str, Any]) -> PinStatus:
    """Record or compare the listed definition; "approved" means the tool may be used."""
    digest = definition_hash(tool, description, schema)
    definition = canonical_definition(tool, description, schema)
    with db.tx() as conn:
        row = conn.execute(
            "SELECT hash, status, pending_hash FROM mcp_tool_pins WHERE server = ? AND tool = ?", (server, tool)
        ).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO mcp_tool_pins(server, tool, hash, definition, status) VALUES (?, ?, ?, ?, 'approved')",
                (server, tool, digest, definition),
            )
            _event(conn, server, tool, "pinned", None, digest, "first-use")
            return "approved"
        if row["hash"] == digest:
            if row["status"] != "approved":  # the server went back to the approved definition
                conn.execute(
                    """UPDATE mcp_tool_pins SET status = 'approved', pending_hash = NULL, pending_definition = NULL,
                       updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE server = ? AND tool = ?""",
                    (server, tool),
                )
            return "approved"
        if row["pending_hash"] != digest:  # a new change (not the one already reported)
            conn.execute(
                """UPDATE mcp_tool_pins SET status = 'changed', pending_hash = ?, pending_definition = ?,
                   updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE server = ? AND tool = ?""",
                (digest, definition, server, tool),
            )
            _event(conn, server, tool, "changed", row["hash"], digest, "server")
        return "changed"


def pin_status(db: Database, server: str, tool: str, digest: str) -> PinStatus:
    """Whether the definition with ``digest`` is the approved one (read at every call)."""
    row = db.one("SELECT hash, status FROM mcp_tool_pins WHERE server = ? AND tool = ?", (server, tool))
    return "approved" if row is not None and row["hash"] == digest and row["status"] == "approved" else "changed"


def approve_pin(db: Database, server: str, tool: str, *, actor: str) -> bool:
    """Accept a changed definition; False when there is nothing to approve."""
    with db.tx() as conn:
        row = conn.execute(
            "SELECT hash, pending_hash FROM mcp_tool_pins WHERE server = ? AND tool = ? AND status = 'changed'",
            (server, tool),
        ).fetchone()
        if row is None or row["pending_hash"] is None:
            return False
        conn.execute(
            """UPDATE mcp_tool_pins SET hash = pending_hash, definition = pending_definition, status = 'approved',
               pending_hash = NULL, pending_definition = NULL, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
               WHERE server = ? AND tool = ?""",
            (server, tool),
        )
        _event(conn, server, tool, "approved", row["hash"], row["pending_hash"], actor)
    return True


def list_pins(db: Database, *, server: str | None = None) -> list[PinRow]:
    where, params = ("WHERE server = ?", (server,)) if server else ("", ())
    rows = db.query(
        f"""SELECT server, tool, hash, status, pending_hash, first_seen_at, updated_at FROM mcp_tool_pins {where}
            ORDER BY server, tool""",
        params,
    )
    return [PinRow.model_validate(dict(r)) for r in rows]


def list_pin_events(db: Database, *, limit: int = 100) -> list[PinEvent]:
    rows = db.query(
        "SELECT at, server, tool, event, old_hash, new_hash, actor FROM mcp_pin_events ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [PinEvent.model_validate(dict(r)) for r in rows]
