"""Migration 26, federation: members one trusted member introduced to this node, and by whom.

A colony grows as a mesh, not a star: when a node trusts a new member it introduces it to its other
direct members (`colony.federation.introduce`), and a node whose operator allows it trusts the
newcomer on that word. Such a member's origin is ``introduced`` and ``introduced_by`` is the key of
the member that introduced it; every other member has no introducer. The database holds that pair
together (``introduced`` if and only if there is an introducer), so a row can never claim a
delegation it does not name.

SQLite cannot widen a CHECK in place, so ``federation_nodes`` is rebuilt: a new table with the
wider constraint, every row copied (columns by name, in join order), the old one dropped and the
new one renamed. The table has no trigger or index of its own besides its keys, and no other table
refers to it, so nothing else needs re-creating.
"""

from __future__ import annotations

__all__ = ["INTRODUCED_SCHEMA"]

_HEX64 = "length({col}) = 64 AND {col} NOT GLOB '*[^0-9a-f]*'"

INTRODUCED_SCHEMA = f"""
CREATE TABLE federation_nodes_introduced (
    pubkey TEXT PRIMARY KEY CHECK ({_HEX64.format(col="pubkey")}),
    url TEXT NOT NULL CHECK (url GLOB 'http://*' OR url GLOB 'https://*'),
    name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN ('joining', 'trusted', 'removed')),
    added_by TEXT NOT NULL CHECK (added_by IN ('operator', 'spawn', 'invite', 'introduced')),
    added_at REAL NOT NULL,
    joined INTEGER NOT NULL UNIQUE CHECK (joined >= 1),
    last_seen REAL,
    announced_at INTEGER,
    last_announcement TEXT,
    vouches_queen TEXT CHECK (vouches_queen IS NULL OR ({_HEX64.format(col="vouches_queen")})),
    vouched_at REAL,
    removed_reason TEXT CHECK (removed_reason IS NULL OR removed_reason IN ('equivocated')),
    introduced_by TEXT CHECK (introduced_by IS NULL OR ({_HEX64.format(col="introduced_by")})),
    CHECK ((added_by = 'introduced') = (introduced_by IS NOT NULL)),
    CHECK (introduced_by IS NOT pubkey)
) STRICT, WITHOUT ROWID;
INSERT INTO federation_nodes_introduced(pubkey, url, name, status, added_by, added_at, joined, last_seen,
                                        announced_at, last_announcement, vouches_queen, vouched_at, removed_reason)
    SELECT pubkey, url, name, status, added_by, added_at, joined, last_seen, announced_at, last_announcement,
           vouches_queen, vouched_at, removed_reason
    FROM federation_nodes ORDER BY joined;
DROP TABLE federation_nodes;
ALTER TABLE federation_nodes_introduced RENAME TO federation_nodes;
"""
