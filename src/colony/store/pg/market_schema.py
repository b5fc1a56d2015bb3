"""Migration 13 on PostgreSQL, market: auctions, their signed events, sealed bids, verdicts, feedback.

The same tables, columns and invariants as on SQLite (`colony.store.market_schema`, which says
what each holds and why), and the same ``tasks.assignee`` with an index for the market worker's
claim (`colony.tasks.pg_store.PgTaskStore.claim_assigned`). Table and column names are SQLite's,
so `colony.store.pg.copy` moves a node's market between the engines as it is.

The triggers that check an auction against the ledger (``market_auctions_backed`` reads
``ledger_holds``) work here because the ledger is in this same database (migration 9): an
auction can only be ``awarded`` with its escrow held, ``paid`` with it captured to the winner,
``refunded``/``cancelled`` with it released — checked inside the transaction that moves the
credits (`colony.market.service`).

What differs, and why:

- ``market_events.seq`` (an identity column) stands in for SQLite's rowid: the events are listed
  in arrival order, and PostgreSQL rows have no stable insertion order. The copier numbers it in
  SQLite's rowid order;
- amounts, deadlines and the signed integer times are BIGINT; the bookkeeping times
  (``created_at``/``updated_at`` of an auction, a verdict's ``at``) DOUBLE PRECISION (SQLite's
  REAL); flags (``passed``) stay INTEGER 0/1, so the same SQL reads them on both engines;
- JSON columns stay TEXT — a signed event is kept byte for byte as it was sent — and their checks
  cast to ``jsonb``: the raw event must contain its indexed fields (``@>``, which compares
  numbers by value, as SQLite's ``json_extract(…) IS …`` does), a verification spec must be an
  object. The ``market_bids`` view reads a reveal's amount the same way;
- hex ids and keys that are ordered or range-scanned are ``COLLATE "C"`` (bytewise, as on SQLite,
  whatever the database's locale): listings come back in the same order and an id prefix's range
  scan means the same thing;
- triggers are PL/pgSQL functions raising SQLite's messages (the codes ``late_commit``,
  ``early_reveal`` and ``late_reveal`` among them, which the market turns into its errors); the
  append-only and never-deleted guards also refuse TRUNCATE, which SQLite does not have;
- ``tasks_assigned`` indexes what the claim orders by (priority, then age) among the unleased
  awarded tasks, where SQLite's indexes ``not_before``: the claim here is one statement that
  takes the first such row ``FOR UPDATE SKIP LOCKED``.

``market_auctions.task_id`` references ``tasks`` as on SQLite: the task queue is on this server
too (migration 3). The agents' profiles (migration 12) are not ported: they belong to the node's
own keyring (`colony.store.pg.governance_schema` says why).
"""

from __future__ import annotations

__all__ = ["MARKET_SCHEMA"]

MARKET_SCHEMA = r"""
ALTER TABLE tasks ADD COLUMN assignee TEXT CHECK (assignee IS NULL OR length(assignee) BETWEEN 1 AND 32);
CREATE INDEX tasks_assigned ON tasks(priority DESC, seq) WHERE assignee IS NOT NULL AND lease_token IS NULL;

CREATE FUNCTION market_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0];
END $$;

CREATE TABLE market_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id TEXT COLLATE "C" PRIMARY KEY CHECK (length(id) = 64),
    kind INTEGER NOT NULL CHECK (kind BETWEEN 7200 AND 7205),
    auction TEXT COLLATE "C" NOT NULL CHECK (length(auction) = 64),
    pubkey TEXT COLLATE "C" NOT NULL CHECK (length(pubkey) = 64),
    created_at BIGINT NOT NULL CHECK (created_at >= 0),
    received_at BIGINT NOT NULL CHECK (received_at >= 0),
    raw TEXT NOT NULL CHECK (raw::jsonb @> jsonb_build_object('id', id, 'kind', kind, 'pubkey', pubkey,
                                                               'created_at', created_at))
);
CREATE INDEX market_events_auction ON market_events(auction, kind);
CREATE UNIQUE INDEX market_one_announcement ON market_events(auction) WHERE kind = 7200;
CREATE UNIQUE INDEX market_one_commit ON market_events(auction, pubkey) WHERE kind = 7201;
CREATE UNIQUE INDEX market_one_reveal ON market_events(auction, pubkey) WHERE kind = 7202;
CREATE UNIQUE INDEX market_one_award ON market_events(auction) WHERE kind = 7203;
CREATE UNIQUE INDEX market_one_verification ON market_events(auction) WHERE kind = 7204;
CREATE UNIQUE INDEX market_one_feedback ON market_events(auction, pubkey) WHERE kind = 7205;
CREATE TRIGGER market_events_append_only BEFORE UPDATE OR DELETE ON market_events
    FOR EACH ROW EXECUTE FUNCTION market_refuse('market: events are append-only');
CREATE TRIGGER market_events_no_truncate BEFORE TRUNCATE ON market_events
    FOR EACH STATEMENT EXECUTE FUNCTION market_refuse('market: events are append-only');

CREATE TABLE market_auctions (
    id TEXT COLLATE "C" PRIMARY KEY CHECK (length(id) = 64),
    task_id TEXT NOT NULL REFERENCES tasks(id),
    announcement TEXT NOT NULL UNIQUE REFERENCES market_events(id),
    poster TEXT NOT NULL CHECK (length(poster) = 64),
    poster_name TEXT NOT NULL,
    rule TEXT NOT NULL CHECK (rule IN ('vickrey', 'first_price', 'random')),
    reserve BIGINT NOT NULL CHECK (reserve >= 1),
    bond BIGINT NOT NULL CHECK (bond >= 0),
    commit_deadline BIGINT NOT NULL CHECK (commit_deadline >= 0),
    reveal_deadline BIGINT NOT NULL,
    verification TEXT NOT NULL CHECK (verification IN ('tests', 'benchmark', 'review', 'approval')),
    verify_spec TEXT NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(verify_spec::jsonb) = 'object'),
    verifier TEXT NOT NULL CHECK (length(verifier) = 64),
    state TEXT NOT NULL DEFAULT 'open'
        CHECK (state IN ('open', 'awarded', 'paid', 'refunded', 'cancelled', 'void')),
    winner TEXT CHECK (winner IS NULL OR length(winner) = 64),
    winner_name TEXT,
    price BIGINT CHECK (price IS NULL OR price >= 1),
    escrow_hold TEXT CHECK (escrow_hold IS NULL OR length(escrow_hold) = 64),
    award_event TEXT REFERENCES market_events(id),
    reason TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    CHECK (reveal_deadline > commit_deadline),
    CHECK (price IS NULL OR price <= reserve),
    CHECK ((state IN ('awarded', 'paid', 'refunded', 'cancelled'))
           = (winner IS NOT NULL AND winner_name IS NOT NULL AND price IS NOT NULL AND escrow_hold IS NOT NULL
              AND award_event IS NOT NULL)),
    CHECK (state NOT IN ('open', 'void') OR (winner IS NULL AND price IS NULL AND escrow_hold IS NULL))
);
CREATE INDEX market_auctions_state ON market_auctions(state, reveal_deadline);
CREATE UNIQUE INDEX market_auctions_live_task ON market_auctions(task_id) WHERE state IN ('open', 'awarded');

CREATE FUNCTION market_events_timing() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    a market_auctions%ROWTYPE;
BEGIN
    SELECT * INTO a FROM market_auctions WHERE id = NEW.auction;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'market: an event for an auction that was never announced';
    ELSIF NEW.kind = 7201 AND NEW.received_at > a.commit_deadline THEN
        RAISE EXCEPTION 'market: late_commit: the commit deadline has passed';
    ELSIF NEW.kind = 7202 AND NEW.received_at <= a.commit_deadline THEN
        RAISE EXCEPTION 'market: early_reveal: reveals open after the commit deadline';
    ELSIF NEW.kind = 7202 AND NEW.received_at > a.reveal_deadline THEN
        RAISE EXCEPTION 'market: late_reveal: the reveal deadline has passed';
    ELSIF NEW.kind = 7203 AND (NEW.received_at <= a.reveal_deadline OR NEW.created_at <= a.reveal_deadline) THEN
        RAISE EXCEPTION 'market: an award comes after the reveal deadline';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER market_events_timing BEFORE INSERT ON market_events
    FOR EACH ROW WHEN (NEW.kind <> 7200) EXECUTE FUNCTION market_events_timing();

CREATE FUNCTION market_auctions_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ((OLD.state = 'open' AND NEW.state IN ('awarded', 'void'))
            OR (OLD.state = 'awarded' AND NEW.state IN ('paid', 'refunded', 'cancelled')))
       OR NEW.id IS DISTINCT FROM OLD.id OR NEW.task_id IS DISTINCT FROM OLD.task_id
       OR NEW.announcement IS DISTINCT FROM OLD.announcement OR NEW.poster IS DISTINCT FROM OLD.poster
       OR NEW.poster_name IS DISTINCT FROM OLD.poster_name OR NEW.rule IS DISTINCT FROM OLD.rule
       OR NEW.reserve IS DISTINCT FROM OLD.reserve OR NEW.bond IS DISTINCT FROM OLD.bond
       OR NEW.commit_deadline IS DISTINCT FROM OLD.commit_deadline
       OR NEW.reveal_deadline IS DISTINCT FROM OLD.reveal_deadline
       OR NEW.verification IS DISTINCT FROM OLD.verification OR NEW.verify_spec IS DISTINCT FROM OLD.verify_spec
       OR NEW.verifier IS DISTINCT FROM OLD.verifier OR NEW.created_at IS DISTINCT FROM OLD.created_at
       OR (OLD.state <> 'open' AND (NEW.winner IS DISTINCT FROM OLD.winner
                                    OR NEW.winner_name IS DISTINCT FROM OLD.winner_name
                                    OR NEW.price IS DISTINCT FROM OLD.price
                                    OR NEW.escrow_hold IS DISTINCT FROM OLD.escrow_hold
                                    OR NEW.award_event IS DISTINCT FROM OLD.award_event)) THEN
        RAISE EXCEPTION 'market: an auction only moves open -> awarded|void, awarded -> paid|refunded|cancelled';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER market_auctions_move BEFORE UPDATE ON market_auctions
    FOR EACH ROW EXECUTE FUNCTION market_auctions_move();

CREATE TABLE market_verifications (
    auction TEXT COLLATE "C" PRIMARY KEY REFERENCES market_auctions(id),
    method TEXT NOT NULL CHECK (method IN ('tests', 'benchmark', 'review', 'approval')),
    passed INTEGER NOT NULL CHECK (passed IN (0, 1)),
    detail TEXT NOT NULL,
    event TEXT NOT NULL UNIQUE REFERENCES market_events(id),
    slashed BIGINT NOT NULL DEFAULT 0 CHECK (slashed >= 0),
    decided_by TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE TRIGGER market_verifications_final BEFORE UPDATE OR DELETE ON market_verifications
    FOR EACH ROW EXECUTE FUNCTION market_refuse('market: a verification result is final');
CREATE TRIGGER market_verifications_no_truncate BEFORE TRUNCATE ON market_verifications
    FOR EACH STATEMENT EXECUTE FUNCTION market_refuse('market: a verification result is final');

CREATE FUNCTION market_auctions_backed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.state = 'awarded' AND NOT EXISTS (
            SELECT 1 FROM ledger_holds h WHERE h.id = NEW.escrow_hold AND h.state = 'held' AND h.payer = NEW.poster
            AND h.payee = NEW.winner AND h.amount = NEW.price))
       OR (NEW.state = 'paid' AND NOT EXISTS (
            SELECT 1 FROM ledger_holds h WHERE h.id = NEW.escrow_hold AND h.state = 'captured'
            AND h.captured_to = NEW.winner))
       OR (NEW.state IN ('refunded', 'cancelled') AND NOT EXISTS (
            SELECT 1 FROM ledger_holds h WHERE h.id = NEW.escrow_hold AND h.state = 'released'))
       OR (NEW.state IN ('paid', 'refunded') AND NOT EXISTS (
            SELECT 1 FROM market_verifications v WHERE v.auction = NEW.id
            AND v.passed = (NEW.state = 'paid')::integer)) THEN
        RAISE EXCEPTION 'market: an auction''s state must match its escrow hold and its verdict';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER market_auctions_backed BEFORE UPDATE ON market_auctions
    FOR EACH ROW EXECUTE FUNCTION market_auctions_backed();
CREATE TRIGGER market_auctions_kept BEFORE DELETE ON market_auctions
    FOR EACH ROW EXECUTE FUNCTION market_refuse('market: auctions are never deleted');
CREATE TRIGGER market_auctions_no_truncate BEFORE TRUNCATE ON market_auctions
    FOR EACH STATEMENT EXECUTE FUNCTION market_refuse('market: auctions are never deleted');

CREATE TABLE market_sealed_bids (
    auction TEXT COLLATE "C" NOT NULL REFERENCES market_auctions(id),
    bidder TEXT COLLATE "C" NOT NULL CHECK (length(bidder) = 64),
    bidder_name TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount >= 1),
    cost BIGINT NOT NULL CHECK (cost >= 0),
    chance_ppm INTEGER NOT NULL CHECK (chance_ppm BETWEEN 1 AND 1000000),
    commit_event TEXT NOT NULL UNIQUE REFERENCES market_events(id),
    PRIMARY KEY (auction, bidder)
);

CREATE TABLE market_feedback (
    event TEXT COLLATE "C" PRIMARY KEY REFERENCES market_events(id),
    auction TEXT NOT NULL REFERENCES market_auctions(id),
    rater TEXT NOT NULL CHECK (length(rater) = 64),
    ratee TEXT NOT NULL CHECK (length(ratee) = 64),
    payment_ref TEXT NOT NULL CHECK (length(payment_ref) BETWEEN 1 AND 128),
    score INTEGER NOT NULL CHECK (score BETWEEN 0 AND 100),
    created_at BIGINT NOT NULL,
    UNIQUE (payment_ref, rater),
    CHECK (rater <> ratee)
);
CREATE INDEX market_feedback_ratee ON market_feedback(ratee);
CREATE TRIGGER market_feedback_append_only BEFORE UPDATE OR DELETE ON market_feedback
    FOR EACH ROW EXECUTE FUNCTION market_refuse('market: feedback is append-only');
CREATE TRIGGER market_feedback_no_truncate BEFORE TRUNCATE ON market_feedback
    FOR EACH STATEMENT EXECUTE FUNCTION market_refuse('market: feedback is append-only');

CREATE VIEW market_bids AS
SELECT c.auction AS auction, c.pubkey AS bidder, c.id AS commit_event, c.received_at AS committed_at,
       r.id AS reveal_event, r.received_at AS revealed_at,
       ((r.raw::jsonb ->> 'content')::jsonb ->> 'amount')::bigint AS amount
FROM market_events c
LEFT JOIN market_events r ON r.auction = c.auction AND r.pubkey = c.pubkey AND r.kind = 7202
WHERE c.kind = 7201;
"""
