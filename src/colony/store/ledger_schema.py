"""Migration 9, the credit ledger's tables: the invariants live here, in the database.

Why in SQL and not only in Python: a ledger must hold its invariants whoever writes — another
process, a second node version, a bug. SQLite enforces them at every write, under the single
write lock that ``BEGIN IMMEDIATE`` takes:

- amounts and balances are INTEGER (STRICT tables: a float or text is refused), amounts > 0,
  balances >= 0 (CHECK on every entry and on the balance cache);
- one entry per (account, seq) (PRIMARY KEY; an entry's hash covers its account and seq, so it
  is unique too, and no second index has to be written per entry); the insert trigger refuses an entry whose seq is
  not the head's + 1, whose ``prev`` is not the head's hash, whose balance does not follow from
  the previous balance and the amount, or whose signer is not the account's home node — and
  then moves the head;
- journal rows, transfer authorisations (the nonce claims) and treasury orders are append-only:
  triggers refuse UPDATE and DELETE;
- a payment nonce is claimed once per payer (PRIMARY KEY (payer, nonce)); no self-payment;
  validity windows of at most 300 s;
- a hold row only ever moves held → captured | released (trigger), and the held total follows.

The balance cache (`ledger_accounts`), the supply counter and the Merkle tree are caches:
`colony ledger verify` recomputes them all from the signed journal.
"""

from __future__ import annotations

__all__ = ["LEDGER_SCHEMA"]

LEDGER_SCHEMA = """
CREATE TABLE ledger_accounts (
    account TEXT PRIMARY KEY CHECK (length(account) = 64),
    home TEXT NOT NULL CHECK (length(home) = 64),
    seq INTEGER NOT NULL CHECK (seq >= 0),
    head TEXT NOT NULL CHECK (length(head) = 64),
    balance INTEGER NOT NULL CHECK (balance >= 0),
    held INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    leaf TEXT
) STRICT, WITHOUT ROWID;

CREATE TABLE ledger_entries (
    account TEXT NOT NULL CHECK (length(account) = 64),
    seq INTEGER NOT NULL CHECK (seq >= 1),
    prev TEXT NOT NULL CHECK (length(prev) = 64),
    kind TEXT NOT NULL CHECK (kind IN ('debit', 'credit', 'hold', 'capture', 'release', 'mint')),
    amount INTEGER NOT NULL CHECK (amount > 0),
    balance INTEGER NOT NULL CHECK (balance >= 0),
    counterparty TEXT CHECK (counterparty IS NULL OR (length(counterparty) = 64 AND counterparty <> account)),
    ref TEXT NOT NULL CHECK (length(ref) = 64),
    nonce TEXT NOT NULL CHECK (length(nonce) = 64),
    signer TEXT NOT NULL CHECK (length(signer) = 64),
    created_at INTEGER NOT NULL,
    id TEXT NOT NULL CHECK (length(id) = 64),
    sig TEXT NOT NULL CHECK (length(sig) = 128),
    PRIMARY KEY (account, seq)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER ledger_entries_link BEFORE INSERT ON ledger_entries
BEGIN
    SELECT CASE
        WHEN NEW.seq <> head.seq + 1 THEN RAISE(ABORT, 'ledger: an entry''s seq must be its account''s head + 1')
        WHEN NEW.prev <> head.hash THEN RAISE(ABORT, 'ledger: an entry''s prev must be the hash of its account''s head entry')
        WHEN NEW.balance <> head.balance + NEW.amount * (CASE NEW.kind WHEN 'debit' THEN -1 WHEN 'hold' THEN -1
                                                                       WHEN 'capture' THEN 0 ELSE 1 END)
            THEN RAISE(ABORT, 'ledger: an entry''s balance must follow from the previous balance and its amount')
        WHEN NEW.signer <> head.home THEN RAISE(ABORT, 'ledger: only an account''s home node may sign its chain')
    END
    FROM (SELECT coalesce(a.seq, 0) AS seq, coalesce(a.balance, 0) AS balance, coalesce(a.home, NEW.signer) AS home,
                 coalesce(a.head, '0000000000000000000000000000000000000000000000000000000000000000') AS hash
          FROM (SELECT 1) LEFT JOIN ledger_accounts a ON a.account = NEW.account) AS head;
END;

CREATE TRIGGER ledger_entries_head AFTER INSERT ON ledger_entries
BEGIN
    INSERT INTO ledger_accounts(account, home, seq, head, balance)
    VALUES (NEW.account, NEW.signer, NEW.seq, NEW.id, NEW.balance)
    ON CONFLICT(account) DO UPDATE SET seq = excluded.seq, head = excluded.head, balance = excluded.balance;
END;

CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger: journal entries are append-only');
END;

CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger: journal entries are append-only');
END;

CREATE TABLE ledger_transfers (
    payer TEXT NOT NULL CHECK (length(payer) = 64),
    nonce TEXT NOT NULL CHECK (length(nonce) = 64),
    id TEXT NOT NULL CHECK (length(id) = 64),
    op TEXT NOT NULL CHECK (op IN ('transfer', 'hold')),
    payee TEXT CHECK (payee IS NULL OR (length(payee) = 64 AND payee <> payer)),
    amount INTEGER NOT NULL CHECK (amount > 0),
    valid_after INTEGER NOT NULL,
    valid_before INTEGER NOT NULL,
    memo TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    sig TEXT NOT NULL CHECK (length(sig) = 128),
    status TEXT NOT NULL CHECK (status IN ('applied', 'refused')),
    reason TEXT,
    entries TEXT NOT NULL,
    payer_balance INTEGER NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (payer, nonce),
    CHECK (op = 'hold' OR payee IS NOT NULL),
    CHECK (valid_before > valid_after AND valid_before - valid_after <= 300),
    CHECK ((status = 'refused') = (reason IS NOT NULL)),
    CHECK ((status = 'refused') = (entries = ''))
) STRICT, WITHOUT ROWID;

CREATE TRIGGER ledger_transfers_no_update BEFORE UPDATE ON ledger_transfers
BEGIN
    SELECT RAISE(ABORT, 'ledger: a claimed nonce and its result are never changed');
END;

CREATE TRIGGER ledger_transfers_no_delete BEFORE DELETE ON ledger_transfers
BEGIN
    SELECT RAISE(ABORT, 'ledger: a claimed nonce is never released');
END;

CREATE TABLE ledger_holds (
    id TEXT PRIMARY KEY CHECK (length(id) = 64),
    payer TEXT NOT NULL CHECK (length(payer) = 64),
    nonce TEXT NOT NULL CHECK (length(nonce) = 64),
    payee TEXT,
    amount INTEGER NOT NULL CHECK (amount > 0),
    state TEXT NOT NULL CHECK (state IN ('held', 'captured', 'released')),
    captured_to TEXT CHECK (captured_to IS NULL OR captured_to <> payer),
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    CHECK ((state = 'captured') = (captured_to IS NOT NULL)),
    CHECK (payee IS NULL OR captured_to IS NULL OR captured_to = payee)
) STRICT, WITHOUT ROWID;
CREATE INDEX ledger_holds_payer ON ledger_holds(payer, state);

CREATE TRIGGER ledger_holds_insert AFTER INSERT ON ledger_holds
BEGIN
    SELECT RAISE(ABORT, 'ledger: a new hold starts held') WHERE NEW.state <> 'held';
    UPDATE ledger_accounts SET held = held + NEW.amount WHERE account = NEW.payer;
END;

CREATE TRIGGER ledger_holds_move BEFORE UPDATE ON ledger_holds
WHEN NOT (OLD.state = 'held' AND NEW.state IN ('captured', 'released') AND NEW.id = OLD.id
          AND NEW.payer = OLD.payer AND NEW.nonce = OLD.nonce AND NEW.payee IS OLD.payee AND NEW.amount = OLD.amount
          AND NEW.created_at = OLD.created_at)
BEGIN
    SELECT RAISE(ABORT, 'ledger: a hold only moves held -> captured or held -> released');
END;

CREATE TRIGGER ledger_holds_closed AFTER UPDATE ON ledger_holds
BEGIN
    UPDATE ledger_accounts SET held = held - OLD.amount WHERE account = OLD.payer;
END;

CREATE TRIGGER ledger_holds_no_delete BEFORE DELETE ON ledger_holds
BEGIN
    SELECT RAISE(ABORT, 'ledger: holds are never deleted');
END;

CREATE TABLE ledger_treasury (
    id TEXT PRIMARY KEY CHECK (length(id) = 64),
    signer TEXT NOT NULL CHECK (length(signer) = 64),
    account TEXT NOT NULL CHECK (length(account) = 64),
    amount INTEGER NOT NULL CHECK (amount > 0),
    reason TEXT NOT NULL CHECK (length(trim(reason)) > 0),
    nonce TEXT NOT NULL UNIQUE CHECK (length(nonce) = 64),
    created_at INTEGER NOT NULL,
    sig TEXT NOT NULL CHECK (length(sig) = 128),
    actor TEXT NOT NULL,
    recorded_at REAL NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE ledger_supply (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    minted INTEGER NOT NULL CHECK (minted >= 0)
) STRICT;
INSERT INTO ledger_supply(id, minted) VALUES (1, 0);

CREATE TRIGGER ledger_treasury_supply AFTER INSERT ON ledger_treasury
BEGIN
    UPDATE ledger_supply SET minted = minted + NEW.amount WHERE id = 1;
END;

CREATE TRIGGER ledger_treasury_no_update BEFORE UPDATE ON ledger_treasury
BEGIN
    SELECT RAISE(ABORT, 'ledger: treasury orders are an audit record and never change');
END;

CREATE TRIGGER ledger_treasury_no_delete BEFORE DELETE ON ledger_treasury
BEGIN
    SELECT RAISE(ABORT, 'ledger: treasury orders are an audit record and never change');
END;

CREATE TABLE ledger_tree (
    depth INTEGER NOT NULL CHECK (depth >= 0),
    prefix TEXT NOT NULL CHECK (length(prefix) = depth),
    hash TEXT NOT NULL CHECK (length(hash) = 64),
    slots BLOB CHECK (slots IS NULL OR length(slots) = 512),
    PRIMARY KEY (depth, prefix)
) STRICT, WITHOUT ROWID;
"""
