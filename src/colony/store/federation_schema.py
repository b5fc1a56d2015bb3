"""Migration 17, federation: the nodes this node trusts, invites, the per-peer outbox and inbox,
refused requests, and this node's own view (its URL and the queen it follows).

The tables are node-local (each node keeps its own view of the colony), so they live in the
node's SQLite file and never on PostgreSQL.

Invariants the database holds, not the caller:

- a member's key is 64 lowercase hex, its status ``joining`` (added here, its answer to our join
  not in yet: it may call us, we send it nothing), ``trusted`` or ``removed``, its origin
  ``operator`` (``colony peers add``), ``spawn`` (``colony spawn``) or ``invite`` (it joined with
  a token this node issued); ``joined`` is the order members were first added, unique;
  ``vouches_queen``/``vouched_at`` are the queen the member last said it heard from directly, and
  when (this node's clock: see `colony.federation.queen`);
- an invite is stored only as the sha256 of its token and is used at most once: once
  ``used_at`` is set the row never changes again;
- the outbox and the inbox are numbered per peer without gaps: a message to (or from) a peer
  gets sequence number ``last + 1`` or is refused; their events never change once written
  (only the delivery and handling columns move), and neither table loses a row;
- an incident's kind is one of the closed set the receiving side records;
- ``federation_self`` has exactly one row, and its term never goes down.
"""

from __future__ import annotations

__all__ = ["FEDERATION_SCHEMA"]

_HEX64 = "length({col}) = 64 AND {col} NOT GLOB '*[^0-9a-f]*'"

FEDERATION_SCHEMA = f"""
CREATE TABLE federation_nodes (
    pubkey TEXT PRIMARY KEY CHECK ({_HEX64.format(col="pubkey")}),
    url TEXT NOT NULL CHECK (url GLOB 'http://*' OR url GLOB 'https://*'),
    name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN ('joining', 'trusted', 'removed')),
    added_by TEXT NOT NULL CHECK (added_by IN ('operator', 'spawn', 'invite')),
    added_at REAL NOT NULL,
    joined INTEGER NOT NULL UNIQUE CHECK (joined >= 1),
    last_seen REAL,
    announced_at INTEGER,
    last_announcement TEXT,
    vouches_queen TEXT CHECK (vouches_queen IS NULL OR ({_HEX64.format(col="vouches_queen")})),
    vouched_at REAL
) STRICT, WITHOUT ROWID;

CREATE TABLE federation_invites (
    token_hash TEXT PRIMARY KEY CHECK ({_HEX64.format(col="token_hash")}),
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL CHECK (expires_at > created_at),
    used_at REAL,
    used_by TEXT CHECK (used_by IS NULL OR ({_HEX64.format(col="used_by")})),
    CHECK ((used_at IS NULL) = (used_by IS NULL))
) STRICT, WITHOUT ROWID;
CREATE TRIGGER federation_invites_once BEFORE UPDATE ON federation_invites
WHEN OLD.used_at IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'federation: an invite is used once'); END;

CREATE TABLE federation_outbox (
    peer TEXT NOT NULL CHECK ({_HEX64.format(col="peer")}),
    seq INTEGER NOT NULL CHECK (seq >= 1),
    event_id TEXT NOT NULL UNIQUE,
    kind INTEGER NOT NULL,
    event TEXT NOT NULL,
    created_at REAL NOT NULL,
    delivered_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (peer, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX federation_outbox_pending ON federation_outbox(peer, seq) WHERE delivered_at IS NULL;
CREATE TRIGGER federation_outbox_next BEFORE INSERT ON federation_outbox
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM federation_outbox WHERE peer = NEW.peer)
BEGIN SELECT RAISE(ABORT, 'federation: outbox sequence numbers go up by one per peer'); END;
CREATE TRIGGER federation_outbox_fixed BEFORE UPDATE OF peer, seq, event_id, kind, event ON federation_outbox
BEGIN SELECT RAISE(ABORT, 'federation: a queued event never changes'); END;
CREATE TRIGGER federation_outbox_kept BEFORE DELETE ON federation_outbox
BEGIN SELECT RAISE(ABORT, 'federation: the outbox keeps every event'); END;

CREATE TABLE federation_inbox (
    sender TEXT NOT NULL CHECK ({_HEX64.format(col="sender")}),
    seq INTEGER NOT NULL CHECK (seq >= 1),
    event_id TEXT NOT NULL UNIQUE,
    kind INTEGER NOT NULL,
    event TEXT NOT NULL,
    received_at REAL NOT NULL,
    handled_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    PRIMARY KEY (sender, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX federation_inbox_unhandled ON federation_inbox(received_at) WHERE handled_at IS NULL;
CREATE TRIGGER federation_inbox_next BEFORE INSERT ON federation_inbox
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM federation_inbox WHERE sender = NEW.sender)
BEGIN SELECT RAISE(ABORT, 'federation: inbox sequence numbers go up by one per sender'); END;
CREATE TRIGGER federation_inbox_fixed BEFORE UPDATE OF sender, seq, event_id, kind, event ON federation_inbox
BEGIN SELECT RAISE(ABORT, 'federation: a received event never changes'); END;
CREATE TRIGGER federation_inbox_kept BEFORE DELETE ON federation_inbox
BEGIN SELECT RAISE(ABORT, 'federation: the inbox keeps every event'); END;

CREATE TABLE federation_incidents (
    id INTEGER PRIMARY KEY,
    peer TEXT,
    kind TEXT NOT NULL CHECK (kind IN ('unknown_peer', 'bad_signature', 'replay', 'reorder', 'stale')),
    detail TEXT NOT NULL,
    at REAL NOT NULL,
    last_at REAL NOT NULL,
    count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1)
) STRICT;
CREATE INDEX federation_incidents_recent ON federation_incidents(peer, kind, last_at);

CREATE TABLE federation_self (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    url TEXT,
    pid INTEGER,
    started_at REAL,
    heartbeat_s REAL,
    queen TEXT CHECK (queen IS NULL OR ({_HEX64.format(col="queen")})),
    term INTEGER NOT NULL DEFAULT 0 CHECK (term >= 0),
    claim TEXT
) STRICT;
INSERT INTO federation_self(id) VALUES (1);
CREATE TRIGGER federation_self_term BEFORE UPDATE OF term ON federation_self
WHEN NEW.term < OLD.term
BEGIN SELECT RAISE(ABORT, 'federation: a term never goes down'); END;
"""
