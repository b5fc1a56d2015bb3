"""Migration 9 on PostgreSQL, the credit ledger: the same tables, columns and invariants as on SQLite.

The invariants live in the database here too (see `colony.store.ledger_schema`): integer
amounts > 0, balances and held totals >= 0, one entry per (account, seq) whose seq, ``prev``,
balance and signer follow from the account's head (a BEFORE INSERT trigger, which then moves
the head), append-only journal rows, nonce claims and treasury orders, one claim per (payer,
nonce), a hold that only moves held → captured | released, the held total and the supply kept
by triggers. Table and column names are SQLite's, so a row copier moves a ledger between the
engines as it is.

What differs, and why:

- amounts, balances, held totals, the supply, sequence numbers and the signed integer times are
  BIGINT: micro-credits are integers end to end, and SQLite's INTEGER is 64-bit too; the
  bookkeeping times (``recorded_at``, a hold's ``created_at``/``updated_at``) are DOUBLE
  PRECISION (SQLite's REAL), the tree's slots BYTEA (SQLite's BLOB);
- the hex ids that are ordered or range-scanned (accounts, the tree's prefixes, payers, nonces,
  hold and treasury ids) are ``COLLATE "C"``: they compare bytewise as on SQLite whatever the
  database's locale, so listings come back in the same order and a bucket's range scan
  (``account >= prefix AND account < prefix || 'g'``) means the same thing;
- ``UNIQUE (account, prev)`` on the entries: on SQLite one writer at a time cannot fork a chain;
  here the index makes a second entry that links to the same predecessor impossible even if the
  head locking were bypassed (the primary key already refuses a second entry at one seq);
- append-only is a trigger function that raises on UPDATE, DELETE **and TRUNCATE** (SQLite has
  no TRUNCATE), for entries, nonce claims and treasury orders; holds refuse DELETE and TRUNCATE;
- triggers are PL/pgSQL functions (``ledger_*``) instead of SQLite's trigger bodies; a refusal
  raises with the same message, which the store turns into a `LedgerError`;
- ``ledger_supply`` starts empty (SQLite seeds its one row at 0) and the first mint creates the
  row: a freshly migrated database holds no rows at all, which is what a copy into it checks.
  Reads treat a missing row as a supply of 0.

Migration 9 on SQLite has no foreign keys — nothing here refers to the identity tables of
migration 8, which stay in each node's SQLite keyring — so none is dropped. The market's tables
that refer to ``ledger_holds`` (migrations 13 and 14) live beside it, so their checks of a hold
run in the transaction that moves it.
"""

from __future__ import annotations

__all__ = ["LEDGER_SCHEMA"]

LEDGER_SCHEMA = r"""
CREATE FUNCTION ledger_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0];
END $$;

CREATE TABLE ledger_accounts (
    account TEXT COLLATE "C" PRIMARY KEY CHECK (length(account) = 64),
    home TEXT NOT NULL CHECK (length(home) = 64),
    seq BIGINT NOT NULL CHECK (seq >= 0),
    head TEXT NOT NULL CHECK (length(head) = 64),
    balance BIGINT NOT NULL CHECK (balance >= 0),
    held BIGINT NOT NULL DEFAULT 0 CHECK (held >= 0),
    leaf TEXT
);

CREATE TABLE ledger_entries (
    account TEXT COLLATE "C" NOT NULL CHECK (length(account) = 64),
    seq BIGINT NOT NULL CHECK (seq >= 1),
    prev TEXT NOT NULL CHECK (length(prev) = 64),
    kind TEXT NOT NULL CHECK (kind IN ('debit', 'credit', 'hold', 'capture', 'release', 'mint')),
    amount BIGINT NOT NULL CHECK (amount > 0),
    balance BIGINT NOT NULL CHECK (balance >= 0),
    counterparty TEXT CHECK (counterparty IS NULL OR (length(counterparty) = 64 AND counterparty <> account)),
    ref TEXT NOT NULL CHECK (length(ref) = 64),
    nonce TEXT NOT NULL CHECK (length(nonce) = 64),
    signer TEXT NOT NULL CHECK (length(signer) = 64),
    created_at BIGINT NOT NULL,
    id TEXT NOT NULL CHECK (length(id) = 64),
    sig TEXT NOT NULL CHECK (length(sig) = 128),
    PRIMARY KEY (account, seq),
    UNIQUE (account, prev)
);

CREATE FUNCTION ledger_entries_link() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cur ledger_accounts%ROWTYPE;
BEGIN
    SELECT * INTO cur FROM ledger_accounts WHERE account = NEW.account;
    IF NOT FOUND THEN
        cur.seq := 0;
        cur.balance := 0;
        cur.home := NEW.signer;
        cur.head := '0000000000000000000000000000000000000000000000000000000000000000';
    END IF;
    IF NEW.seq <> cur.seq + 1 THEN
        RAISE EXCEPTION 'ledger: an entry''s seq must be its account''s head + 1';
    ELSIF NEW.prev <> cur.head THEN
        RAISE EXCEPTION 'ledger: an entry''s prev must be the hash of its account''s head entry';
    ELSIF NEW.balance <> cur.balance + NEW.amount * (CASE NEW.kind WHEN 'debit' THEN -1 WHEN 'hold' THEN -1
                                                                    WHEN 'capture' THEN 0 ELSE 1 END) THEN
        RAISE EXCEPTION 'ledger: an entry''s balance must follow from the previous balance and its amount';
    ELSIF NEW.signer <> cur.home THEN
        RAISE EXCEPTION 'ledger: only an account''s home node may sign its chain';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_entries_link BEFORE INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_link();

CREATE FUNCTION ledger_entries_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_accounts(account, home, seq, head, balance)
    VALUES (NEW.account, NEW.signer, NEW.seq, NEW.id, NEW.balance)
    ON CONFLICT (account) DO UPDATE SET seq = excluded.seq, head = excluded.head, balance = excluded.balance;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_entries_head AFTER INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_head();

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('ledger: journal entries are append-only');
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse('ledger: journal entries are append-only');

CREATE TABLE ledger_transfers (
    payer TEXT COLLATE "C" NOT NULL CHECK (length(payer) = 64),
    nonce TEXT COLLATE "C" NOT NULL CHECK (length(nonce) = 64),
    id TEXT NOT NULL CHECK (length(id) = 64),
    op TEXT NOT NULL CHECK (op IN ('transfer', 'hold')),
    payee TEXT CHECK (payee IS NULL OR (length(payee) = 64 AND payee <> payer)),
    amount BIGINT NOT NULL CHECK (amount > 0),
    valid_after BIGINT NOT NULL,
    valid_before BIGINT NOT NULL,
    memo TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    sig TEXT NOT NULL CHECK (length(sig) = 128),
    status TEXT NOT NULL CHECK (status IN ('applied', 'refused')),
    reason TEXT,
    entries TEXT NOT NULL,
    payer_balance BIGINT NOT NULL,
    recorded_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (payer, nonce),
    CHECK (op = 'hold' OR payee IS NOT NULL),
    CHECK (valid_before > valid_after AND valid_before - valid_after <= 300),
    CHECK ((status = 'refused') = (reason IS NOT NULL)),
    CHECK ((status = 'refused') = (entries = ''))
);
CREATE TRIGGER ledger_transfers_no_update BEFORE UPDATE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('ledger: a claimed nonce and its result are never changed');
CREATE TRIGGER ledger_transfers_no_delete BEFORE DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('ledger: a claimed nonce is never released');
CREATE TRIGGER ledger_transfers_no_truncate BEFORE TRUNCATE ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse('ledger: a claimed nonce is never released');

CREATE TABLE ledger_holds (
    id TEXT COLLATE "C" PRIMARY KEY CHECK (length(id) = 64),
    payer TEXT COLLATE "C" NOT NULL CHECK (length(payer) = 64),
    nonce TEXT NOT NULL CHECK (length(nonce) = 64),
    payee TEXT,
    amount BIGINT NOT NULL CHECK (amount > 0),
    state TEXT NOT NULL CHECK (state IN ('held', 'captured', 'released')),
    captured_to TEXT CHECK (captured_to IS NULL OR captured_to <> payer),
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    CHECK ((state = 'captured') = (captured_to IS NOT NULL)),
    CHECK (payee IS NULL OR captured_to IS NULL OR captured_to = payee)
);
CREATE INDEX ledger_holds_payer ON ledger_holds(payer, state);

CREATE FUNCTION ledger_holds_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state <> 'held' THEN
        RAISE EXCEPTION 'ledger: a new hold starts held';
    END IF;
    UPDATE ledger_accounts SET held = held + NEW.amount WHERE account = NEW.payer;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_holds_insert AFTER INSERT ON ledger_holds
    FOR EACH ROW EXECUTE FUNCTION ledger_holds_insert();

CREATE FUNCTION ledger_holds_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (OLD.state = 'held' AND NEW.state IN ('captured', 'released') AND NEW.id = OLD.id
            AND NEW.payer = OLD.payer AND NEW.nonce = OLD.nonce AND NEW.payee IS NOT DISTINCT FROM OLD.payee
            AND NEW.amount = OLD.amount AND NEW.created_at = OLD.created_at) THEN
        RAISE EXCEPTION 'ledger: a hold only moves held -> captured or held -> released';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_holds_move BEFORE UPDATE ON ledger_holds
    FOR EACH ROW EXECUTE FUNCTION ledger_holds_move();

CREATE FUNCTION ledger_holds_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ledger_accounts SET held = held - OLD.amount WHERE account = OLD.payer;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_holds_closed AFTER UPDATE ON ledger_holds
    FOR EACH ROW EXECUTE FUNCTION ledger_holds_closed();

CREATE TRIGGER ledger_holds_no_delete BEFORE DELETE ON ledger_holds
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('ledger: holds are never deleted');
CREATE TRIGGER ledger_holds_no_truncate BEFORE TRUNCATE ON ledger_holds
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse('ledger: holds are never deleted');

CREATE TABLE ledger_treasury (
    id TEXT COLLATE "C" PRIMARY KEY CHECK (length(id) = 64),
    signer TEXT NOT NULL CHECK (length(signer) = 64),
    account TEXT NOT NULL CHECK (length(account) = 64),
    amount BIGINT NOT NULL CHECK (amount > 0),
    reason TEXT NOT NULL CHECK (length(trim(reason)) > 0),
    nonce TEXT NOT NULL UNIQUE CHECK (length(nonce) = 64),
    created_at BIGINT NOT NULL,
    sig TEXT NOT NULL CHECK (length(sig) = 128),
    actor TEXT NOT NULL,
    recorded_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE ledger_supply (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    minted BIGINT NOT NULL CHECK (minted >= 0)
);

CREATE FUNCTION ledger_treasury_supply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_supply(id, minted) VALUES (1, NEW.amount)
    ON CONFLICT (id) DO UPDATE SET minted = ledger_supply.minted + excluded.minted;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_treasury_supply AFTER INSERT ON ledger_treasury
    FOR EACH ROW EXECUTE FUNCTION ledger_treasury_supply();

CREATE TRIGGER ledger_treasury_no_change BEFORE UPDATE OR DELETE ON ledger_treasury
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('ledger: treasury orders are an audit record and never change');
CREATE TRIGGER ledger_treasury_no_truncate BEFORE TRUNCATE ON ledger_treasury
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse('ledger: treasury orders are an audit record and never change');

CREATE TABLE ledger_tree (
    depth INTEGER NOT NULL CHECK (depth >= 0),
    prefix TEXT COLLATE "C" NOT NULL CHECK (length(prefix) = depth),
    hash TEXT NOT NULL CHECK (length(hash) = 64),
    slots BYTEA CHECK (slots IS NULL OR length(slots) = 512),
    PRIMARY KEY (depth, prefix)
);
"""
