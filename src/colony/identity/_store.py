"""SQL over the identity tables (migration 8, `colony.store.identity_schema`); nothing else here.

Rows go in and out as plain dicts. Keyfile columns hold Web3 Secret Storage JSON only (a CHECK
refuses anything else), so no function here ever sees a plaintext key.
"""

from __future__ import annotations

import json
from typing import Any

from colony.store import Database, Row

__all__ = [
    "claim_event_id",
    "get_identity",
    "get_node",
    "insert_identities",
    "list_identity_rows",
    "list_peers",
    "update_identity",
    "upsert_peer",
]

_PUBLIC = "name, role, public_hex, evm_address, evm_proof, description, skills, created_at"
_ALL = _PUBLIC + ", schnorr_keyfile, evm_keyfile"


def insert_identities(db: Database, rows: list[dict[str, Any]]) -> list[bool]:
    """Insert identities in one transaction; for each, False when its name (or the node role) was taken.

    ``ON CONFLICT DO NOTHING`` makes two processes creating the node's identities at once safe: the
    loser's freshly made keys are dropped and it reads the winner's.
    """
    inserted = []
    with db.tx() as conn:
        for row in rows:
            conn.execute(
                "INSERT INTO identities(name, role, public_hex, evm_address, schnorr_keyfile, evm_keyfile, "
                "evm_proof, description, skills) VALUES (:name, :role, :public_hex, :evm_address, "
                ":schnorr_keyfile, :evm_keyfile, :evm_proof, :description, :skills) ON CONFLICT DO NOTHING",
                {**row, "skills": json.dumps(list(row.get("skills", [])), ensure_ascii=False)},
            )
            inserted.append(bool(conn.changes()))
    return inserted


def update_identity(db: Database, name: str, *, skills: list[str], description: str) -> bool:
    """Set an identity's skills and description (its keys are fixed: a trigger refuses those); False if none."""
    with db.tx() as conn:
        conn.execute("UPDATE identities SET skills = ?, description = ? WHERE name = ?",
                     (json.dumps(skills, ensure_ascii=False), description, name))
        return bool(conn.changes())


def _decode(row: Row) -> Row:
    return {**row, "skills": json.loads(row["skills"])}


def get_identity(db: Database, name: str, *, with_keyfiles: bool = False) -> Row | None:
    row = db.one(f"SELECT {_ALL if with_keyfiles else _PUBLIC} FROM identities WHERE name = ?", (name,))
    return _decode(row) if row else None


def get_node(db: Database, *, with_keyfiles: bool = False) -> Row | None:
    row = db.one(f"SELECT {_ALL if with_keyfiles else _PUBLIC} FROM identities WHERE role = 'node'")
    return _decode(row) if row else None


def list_identity_rows(db: Database) -> list[Row]:
    """Every identity, the node first, then agents in the order they were made."""
    rows = db.query(f"SELECT {_PUBLIC} FROM identities ORDER BY role = 'agent', created_at, name")
    return [_decode(r) for r in rows]


def claim_event_id(db: Database, event_id: str, pubkey: str, expires_at: int, now: int) -> bool:
    """Record a NIP-98 event id as used; False when it was used before (a replay).

    Expired ids are purged in the same transaction: once an event is older than the time window
    the timestamp check refuses it anyway, so the table holds at most a window's worth of ids.
    """
    with db.tx() as conn:
        conn.execute("DELETE FROM nip98_seen WHERE expires_at < ?", (now,))
        conn.execute(
            "INSERT INTO nip98_seen(event_id, pubkey, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (event_id, pubkey, expires_at),
        )
        return bool(conn.changes())


def upsert_peer(db: Database, public_hex: str, name: str, card: dict[str, Any], event: dict[str, Any],
                card_created_at: int, now: float) -> bool:
    """Keep a peer's newest card (a replaceable event: an older one never overwrites a newer one).

    Returns True when the stored card changed.
    """
    with db.tx() as conn:
        conn.execute(
            "INSERT INTO identity_peers(public_hex, name, card, event, card_created_at, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(public_hex) DO UPDATE SET name = excluded.name, "
            "card = excluded.card, event = excluded.event, card_created_at = excluded.card_created_at, "
            "last_seen = excluded.last_seen WHERE excluded.card_created_at > identity_peers.card_created_at",
            (public_hex, name, json.dumps(card, ensure_ascii=False), json.dumps(event, ensure_ascii=False),
             card_created_at, now, now),
        )
        return bool(conn.changes())


def list_peers(db: Database) -> list[Row]:
    rows = db.query("SELECT public_hex, name, card, event, card_created_at, first_seen, last_seen "
                    "FROM identity_peers ORDER BY last_seen DESC")
    return [{**r, "card": json.loads(r["card"]), "event": json.loads(r["event"])} for r in rows]
