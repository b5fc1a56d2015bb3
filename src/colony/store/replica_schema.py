"""Migration 18, federation replicas: verified copies of peers' ledgers and reputation events, and
the equivocation proofs found or received.

A node keeps, per origin (the peer's node key, the only signer of the chains it homes), the
entries it pulled and verified, the authorisations and treasury orders they cite, and one head
per account. The replica is append-only like the ledger itself, and the database holds the same
chain invariants the origin's own ledger holds (`colony.store.ledger_schema`), so a bug in the
verifier still cannot store a gap, a broken link or a balance that does not follow:

- one entry per (origin, account, seq); an insert whose seq is not the head's + 1, whose
  ``prev`` is not the head's hash or whose balance does not follow from the previous balance and
  the amount is refused by a trigger, which then moves the head; balances are never negative;
- entries, cited events, reputation events and proofs are never updated or deleted (triggers);
  a proof's ``reported_at`` and ``slashed_at`` are set once, from NULL, and nothing else moves;
- a stored event's indexed columns are its raw JSON's own fields (a CHECK compares them);
- one proof per pair of events, whatever their order: its id is the sha256 of the two event ids
  sorted (the same key the market's equivocation slash uses as its reference).

``federation_origins`` is bookkeeping (the last roots compared, sync totals, the reputation
cursor, when the origin was convicted): a cache of what the replica tables say, never a proof.
"""

from __future__ import annotations

__all__ = ["REPLICA_SCHEMA"]

REPLICA_SCHEMA = """
CREATE TABLE federation_origins (
    origin TEXT PRIMARY KEY CHECK (length(origin) = 64),
    last_remote_root TEXT CHECK (last_remote_root IS NULL OR length(last_remote_root) = 64),
    last_local_root TEXT CHECK (last_local_root IS NULL OR length(last_local_root) = 64),
    last_sync_at REAL,
    syncs INTEGER NOT NULL DEFAULT 0 CHECK (syncs >= 0),
    requests INTEGER NOT NULL DEFAULT 0 CHECK (requests >= 0),
    bytes INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    entries INTEGER NOT NULL DEFAULT 0 CHECK (entries >= 0),
    problems INTEGER NOT NULL DEFAULT 0 CHECK (problems >= 0),
    convicted_at REAL,
    reputation_cursor INTEGER NOT NULL DEFAULT 0 CHECK (reputation_cursor >= 0)
) STRICT;

CREATE TABLE federation_replica_heads (
    origin TEXT NOT NULL CHECK (length(origin) = 64),
    account TEXT NOT NULL CHECK (length(account) = 64),
    seq INTEGER NOT NULL CHECK (seq >= 1),
    head TEXT NOT NULL CHECK (length(head) = 64),
    balance INTEGER NOT NULL CHECK (balance >= 0),
    PRIMARY KEY (origin, account)
) STRICT, WITHOUT ROWID;

CREATE TABLE federation_replica_entries (
    origin TEXT NOT NULL CHECK (length(origin) = 64),
    account TEXT NOT NULL CHECK (length(account) = 64),
    seq INTEGER NOT NULL CHECK (seq >= 1),
    prev TEXT NOT NULL CHECK (length(prev) = 64),
    kind TEXT NOT NULL CHECK (kind IN ('debit', 'credit', 'hold', 'capture', 'release', 'mint')),
    amount INTEGER NOT NULL CHECK (amount > 0),
    balance INTEGER NOT NULL CHECK (balance >= 0),
    counterparty TEXT CHECK (counterparty IS NULL OR (length(counterparty) = 64 AND counterparty <> account)),
    ref TEXT NOT NULL CHECK (length(ref) = 64),
    nonce TEXT NOT NULL CHECK (length(nonce) = 64),
    created_at INTEGER NOT NULL,
    id TEXT NOT NULL CHECK (length(id) = 64),
    sig TEXT NOT NULL CHECK (length(sig) = 128),
    PRIMARY KEY (origin, account, seq)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER federation_replica_link BEFORE INSERT ON federation_replica_entries
BEGIN
    SELECT CASE
        WHEN NEW.seq <> head.seq + 1 THEN RAISE(ABORT, 'federation: a replicated entry''s seq must be the head''s + 1')
        WHEN NEW.prev <> head.hash THEN RAISE(ABORT, 'federation: a replicated entry''s prev must be its head''s hash')
        WHEN NEW.balance <> head.balance + NEW.amount * (CASE NEW.kind WHEN 'debit' THEN -1 WHEN 'hold' THEN -1
                                                                       WHEN 'capture' THEN 0 ELSE 1 END)
            THEN RAISE(ABORT, 'federation: a replicated entry''s balance must follow from the previous one')
    END
    FROM (SELECT coalesce(h.seq, 0) AS seq, coalesce(h.balance, 0) AS balance,
                 coalesce(h.head, '0000000000000000000000000000000000000000000000000000000000000000') AS hash
          FROM (SELECT 1) LEFT JOIN federation_replica_heads h
          ON h.origin = NEW.origin AND h.account = NEW.account) AS head;
END;

CREATE TRIGGER federation_replica_head AFTER INSERT ON federation_replica_entries
BEGIN
    INSERT INTO federation_replica_heads(origin, account, seq, head, balance)
    VALUES (NEW.origin, NEW.account, NEW.seq, NEW.id, NEW.balance)
    ON CONFLICT(origin, account) DO UPDATE SET seq = excluded.seq, head = excluded.head, balance = excluded.balance;
END;

CREATE TRIGGER federation_replica_entries_no_update BEFORE UPDATE ON federation_replica_entries
BEGIN SELECT RAISE(ABORT, 'federation: replicated entries are append-only'); END;
CREATE TRIGGER federation_replica_entries_no_delete BEFORE DELETE ON federation_replica_entries
BEGIN SELECT RAISE(ABORT, 'federation: replicated entries are append-only'); END;

CREATE TABLE federation_replica_events (
    origin TEXT NOT NULL CHECK (length(origin) = 64),
    id TEXT NOT NULL CHECK (length(id) = 64),
    kind INTEGER NOT NULL CHECK (kind IN (7100, 7102)),
    pubkey TEXT NOT NULL CHECK (length(pubkey) = 64),
    created_at INTEGER NOT NULL,
    raw TEXT NOT NULL CHECK (json_valid(raw) AND json_extract(raw, '$.id') IS id AND json_extract(raw, '$.kind') IS kind
                             AND json_extract(raw, '$.pubkey') IS pubkey
                             AND json_extract(raw, '$.created_at') IS created_at),
    PRIMARY KEY (origin, id)
) STRICT, WITHOUT ROWID;
CREATE TRIGGER federation_replica_events_no_update BEFORE UPDATE ON federation_replica_events
BEGIN SELECT RAISE(ABORT, 'federation: replicated events are append-only'); END;
CREATE TRIGGER federation_replica_events_no_delete BEFORE DELETE ON federation_replica_events
BEGIN SELECT RAISE(ABORT, 'federation: replicated events are append-only'); END;

CREATE TABLE federation_reputation (
    id TEXT PRIMARY KEY CHECK (length(id) = 64),
    origin TEXT NOT NULL CHECK (length(origin) = 64),
    origin_cursor INTEGER NOT NULL CHECK (origin_cursor >= 0),
    kind INTEGER NOT NULL CHECK (kind IN (7204, 7205)),
    pubkey TEXT NOT NULL CHECK (length(pubkey) = 64),
    subject TEXT NOT NULL CHECK (length(subject) = 64),
    created_at INTEGER NOT NULL,
    raw TEXT NOT NULL CHECK (json_valid(raw) AND json_extract(raw, '$.id') IS id AND json_extract(raw, '$.kind') IS kind
                             AND json_extract(raw, '$.pubkey') IS pubkey
                             AND json_extract(raw, '$.created_at') IS created_at),
    received_at REAL NOT NULL
) STRICT;
CREATE INDEX federation_reputation_subject ON federation_reputation(subject, kind);
CREATE TRIGGER federation_reputation_no_update BEFORE UPDATE ON federation_reputation
BEGIN SELECT RAISE(ABORT, 'federation: replicated reputation events are append-only'); END;
CREATE TRIGGER federation_reputation_no_delete BEFORE DELETE ON federation_reputation
BEGIN SELECT RAISE(ABORT, 'federation: replicated reputation events are append-only'); END;

CREATE TABLE federation_equivocations (
    id TEXT PRIMARY KEY CHECK (length(id) = 64),
    signer TEXT NOT NULL CHECK (length(signer) = 64),
    account TEXT NOT NULL CHECK (length(account) = 64),
    seq INTEGER NOT NULL CHECK (seq >= 1),
    first TEXT NOT NULL CHECK (json_valid(first) AND json_extract(first, '$.pubkey') IS signer),
    second TEXT NOT NULL CHECK (json_valid(second) AND json_extract(second, '$.pubkey') IS signer),
    found_by TEXT NOT NULL CHECK (found_by IN ('sync', 'import')),
    found_at REAL NOT NULL,
    reported_at REAL,
    slashed_at REAL,
    slashed INTEGER CHECK (slashed IS NULL OR slashed >= 0),
    CHECK ((slashed_at IS NULL) = (slashed IS NULL))
) STRICT, WITHOUT ROWID;
CREATE INDEX federation_equivocations_signer ON federation_equivocations(signer);
CREATE TRIGGER federation_equivocations_move BEFORE UPDATE ON federation_equivocations
WHEN NEW.id IS NOT OLD.id OR NEW.signer IS NOT OLD.signer OR NEW.account IS NOT OLD.account
     OR NEW.seq IS NOT OLD.seq OR NEW.first IS NOT OLD.first OR NEW.second IS NOT OLD.second
     OR NEW.found_by IS NOT OLD.found_by OR NEW.found_at IS NOT OLD.found_at
     OR (OLD.reported_at IS NOT NULL AND NEW.reported_at IS NOT OLD.reported_at)
     OR (OLD.slashed_at IS NOT NULL AND (NEW.slashed_at IS NOT OLD.slashed_at OR NEW.slashed IS NOT OLD.slashed))
BEGIN
    SELECT RAISE(ABORT, 'federation: a proof never changes; it is reported and slashed once');
END;
CREATE TRIGGER federation_equivocations_no_delete BEFORE DELETE ON federation_equivocations
BEGIN SELECT RAISE(ABORT, 'federation: equivocation proofs are kept'); END;
"""
