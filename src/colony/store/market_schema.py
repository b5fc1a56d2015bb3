"""Migration 13, market: auctions, their signed events, sealed bids, verification results, feedback.

The market's truth is its signed events (`colony.market.events`, kinds 7200-7205), stored as sent
in ``market_events``; ``market_auctions`` is the auction's state machine and a cache of what the
events decided (winner, price), plus the escrow hold that backs the price. Anyone can recompute
the award from the events (`colony.market.auction.recheck`); the row is never the proof.

Invariants the database holds, not the caller:

- amounts are integers (``STRICT``): reserve ≥ 1, bond ≥ 0, 1 ≤ price ≤ reserve;
- ``market_events`` is append-only (triggers refuse UPDATE and DELETE), one row per event id, and
  its columns are the raw event's own fields (a CHECK compares them), so an index column cannot
  say something the signed JSON does not;
- one announcement, one award and one verification per auction (partial UNIQUE indexes): two
  workers racing to award write one award, the second insert fails and its transaction rolls back;
- one commit and one reveal per bidder and auction; the arrival time decides: a commit that
  arrives after the commit deadline, a reveal outside (commit deadline, reveal deadline] or an
  award before the reveal deadline is refused by a trigger — the server's clock, not the signer's
  claim, is what counts (the award publishes these arrival times so `recheck` replays them);
- an auction moves only open → awarded | void and awarded → paid | refunded | cancelled (trigger);
  its terms never change, and winner, price and escrow hold are set once, together, at award;
- an auction's state matches the ledger: ``awarded`` needs its escrow held from the poster for
  exactly the price with the winner as payee, ``paid`` the escrow captured to the winner and a
  passing verdict, ``refunded`` the escrow released and a failing verdict, ``cancelled`` released;
- at most one live (open or awarded) auction per task;
- verification results and feedback rows are append-only; one rating per (payment, rater), and
  nobody rates itself.

Migration 13 also gives ``tasks`` an ``assignee``: the hosted agent a task was awarded to. The
autonomy loop's generic claim leaves assigned tasks alone; the market worker claims them and
runs them as their assignee (`colony.tasks.store.SqliteTaskStore.claim_assigned`).

``market_sealed_bids`` is private to the node that hosts the bidders: what each of its agents
committed to (amount, cost, predicted chance), so the reveal survives a restart. The salt is not
stored: it is derived from the bidder's own key (`colony.market.bidding.bid_salt`), so only the
key's holder can open the commitment. The API never serves this table before the reveal deadline.
"""

from __future__ import annotations

__all__ = ["MARKET_SCHEMA"]

MARKET_SCHEMA = """
ALTER TABLE tasks ADD COLUMN assignee TEXT CHECK (assignee IS NULL OR length(assignee) BETWEEN 1 AND 32);
CREATE INDEX tasks_assigned ON tasks(not_before) WHERE assignee IS NOT NULL;

CREATE TABLE market_events (
    id TEXT PRIMARY KEY CHECK (length(id) = 64),
    kind INTEGER NOT NULL CHECK (kind BETWEEN 7200 AND 7205),
    auction TEXT NOT NULL CHECK (length(auction) = 64),
    pubkey TEXT NOT NULL CHECK (length(pubkey) = 64),
    created_at INTEGER NOT NULL CHECK (created_at >= 0),
    received_at INTEGER NOT NULL CHECK (received_at >= 0),
    raw TEXT NOT NULL CHECK (json_valid(raw) AND json_extract(raw, '$.id') IS id
                             AND json_extract(raw, '$.kind') IS kind AND json_extract(raw, '$.pubkey') IS pubkey
                             AND json_extract(raw, '$.created_at') IS created_at)
) STRICT;
CREATE INDEX market_events_auction ON market_events(auction, kind);
CREATE UNIQUE INDEX market_one_announcement ON market_events(auction) WHERE kind = 7200;
CREATE UNIQUE INDEX market_one_commit ON market_events(auction, pubkey) WHERE kind = 7201;
CREATE UNIQUE INDEX market_one_reveal ON market_events(auction, pubkey) WHERE kind = 7202;
CREATE UNIQUE INDEX market_one_award ON market_events(auction) WHERE kind = 7203;
CREATE UNIQUE INDEX market_one_verification ON market_events(auction) WHERE kind = 7204;
CREATE UNIQUE INDEX market_one_feedback ON market_events(auction, pubkey) WHERE kind = 7205;

CREATE TRIGGER market_events_no_update BEFORE UPDATE ON market_events
BEGIN SELECT RAISE(ABORT, 'market: events are append-only'); END;
CREATE TRIGGER market_events_no_delete BEFORE DELETE ON market_events
BEGIN SELECT RAISE(ABORT, 'market: events are append-only'); END;

CREATE TRIGGER market_events_timing BEFORE INSERT ON market_events WHEN NEW.kind <> 7200
BEGIN
    SELECT CASE
        WHEN a.id IS NULL THEN RAISE(ABORT, 'market: an event for an auction that was never announced')
        WHEN NEW.kind = 7201 AND NEW.received_at > a.commit_deadline
            THEN RAISE(ABORT, 'market: late_commit: the commit deadline has passed')
        WHEN NEW.kind = 7202 AND NEW.received_at <= a.commit_deadline
            THEN RAISE(ABORT, 'market: early_reveal: reveals open after the commit deadline')
        WHEN NEW.kind = 7202 AND NEW.received_at > a.reveal_deadline
            THEN RAISE(ABORT, 'market: late_reveal: the reveal deadline has passed')
        WHEN NEW.kind = 7203 AND (NEW.received_at <= a.reveal_deadline OR NEW.created_at <= a.reveal_deadline)
            THEN RAISE(ABORT, 'market: an award comes after the reveal deadline')
    END
    FROM (SELECT 1) LEFT JOIN market_auctions a ON a.id = NEW.auction;
END;

CREATE TABLE market_auctions (
    id TEXT PRIMARY KEY CHECK (length(id) = 64),
    task_id TEXT NOT NULL REFERENCES tasks(id),
    announcement TEXT NOT NULL UNIQUE REFERENCES market_events(id),
    poster TEXT NOT NULL CHECK (length(poster) = 64),
    poster_name TEXT NOT NULL,
    rule TEXT NOT NULL CHECK (rule IN ('vickrey', 'first_price', 'random')),
    reserve INTEGER NOT NULL CHECK (reserve >= 1),
    bond INTEGER NOT NULL CHECK (bond >= 0),
    commit_deadline INTEGER NOT NULL CHECK (commit_deadline >= 0),
    reveal_deadline INTEGER NOT NULL,
    verification TEXT NOT NULL CHECK (verification IN ('tests', 'benchmark', 'review', 'approval')),
    verify_spec TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(verify_spec) AND json_type(verify_spec) = 'object'),
    verifier TEXT NOT NULL CHECK (length(verifier) = 64),
    state TEXT NOT NULL DEFAULT 'open'
        CHECK (state IN ('open', 'awarded', 'paid', 'refunded', 'cancelled', 'void')),
    winner TEXT CHECK (winner IS NULL OR length(winner) = 64),
    winner_name TEXT,
    price INTEGER CHECK (price IS NULL OR price >= 1),
    escrow_hold TEXT CHECK (escrow_hold IS NULL OR length(escrow_hold) = 64),
    award_event TEXT REFERENCES market_events(id),
    reason TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    CHECK (reveal_deadline > commit_deadline),
    CHECK (price IS NULL OR price <= reserve),
    CHECK ((state IN ('awarded', 'paid', 'refunded', 'cancelled'))
           = (winner IS NOT NULL AND winner_name IS NOT NULL AND price IS NOT NULL AND escrow_hold IS NOT NULL
              AND award_event IS NOT NULL)),
    CHECK (state NOT IN ('open', 'void') OR (winner IS NULL AND price IS NULL AND escrow_hold IS NULL))
) STRICT;
CREATE INDEX market_auctions_state ON market_auctions(state, reveal_deadline);
CREATE UNIQUE INDEX market_auctions_live_task ON market_auctions(task_id) WHERE state IN ('open', 'awarded');

CREATE TRIGGER market_auctions_move BEFORE UPDATE ON market_auctions
WHEN NOT ((OLD.state = 'open' AND NEW.state IN ('awarded', 'void'))
          OR (OLD.state = 'awarded' AND NEW.state IN ('paid', 'refunded', 'cancelled')))
     OR NEW.id IS NOT OLD.id OR NEW.task_id IS NOT OLD.task_id OR NEW.announcement IS NOT OLD.announcement
     OR NEW.poster IS NOT OLD.poster OR NEW.poster_name IS NOT OLD.poster_name OR NEW.rule IS NOT OLD.rule
     OR NEW.reserve IS NOT OLD.reserve OR NEW.bond IS NOT OLD.bond
     OR NEW.commit_deadline IS NOT OLD.commit_deadline OR NEW.reveal_deadline IS NOT OLD.reveal_deadline
     OR NEW.verification IS NOT OLD.verification OR NEW.verify_spec IS NOT OLD.verify_spec
     OR NEW.verifier IS NOT OLD.verifier OR NEW.created_at IS NOT OLD.created_at
     OR (OLD.state <> 'open' AND (NEW.winner IS NOT OLD.winner OR NEW.winner_name IS NOT OLD.winner_name
                                  OR NEW.price IS NOT OLD.price OR NEW.escrow_hold IS NOT OLD.escrow_hold
                                  OR NEW.award_event IS NOT OLD.award_event))
BEGIN
    SELECT RAISE(ABORT, 'market: an auction only moves open -> awarded|void, awarded -> paid|refunded|cancelled');
END;
CREATE TRIGGER market_auctions_backed BEFORE UPDATE ON market_auctions
WHEN (NEW.state = 'awarded' AND NOT EXISTS (
          SELECT 1 FROM ledger_holds h WHERE h.id = NEW.escrow_hold AND h.state = 'held' AND h.payer = NEW.poster
          AND h.payee = NEW.winner AND h.amount = NEW.price))
  OR (NEW.state = 'paid' AND NOT EXISTS (
          SELECT 1 FROM ledger_holds h WHERE h.id = NEW.escrow_hold AND h.state = 'captured'
          AND h.captured_to = NEW.winner))
  OR (NEW.state IN ('refunded', 'cancelled') AND NOT EXISTS (
          SELECT 1 FROM ledger_holds h WHERE h.id = NEW.escrow_hold AND h.state = 'released'))
  OR (NEW.state IN ('paid', 'refunded') AND NOT EXISTS (
          SELECT 1 FROM market_verifications v WHERE v.auction = NEW.id AND v.passed = (NEW.state = 'paid')))
BEGIN
    SELECT RAISE(ABORT, 'market: an auction''s state must match its escrow hold and its verdict');
END;
CREATE TRIGGER market_auctions_kept BEFORE DELETE ON market_auctions
BEGIN SELECT RAISE(ABORT, 'market: auctions are never deleted'); END;

CREATE TABLE market_sealed_bids (
    auction TEXT NOT NULL REFERENCES market_auctions(id),
    bidder TEXT NOT NULL CHECK (length(bidder) = 64),
    bidder_name TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount >= 1),
    cost INTEGER NOT NULL CHECK (cost >= 0),
    chance_ppm INTEGER NOT NULL CHECK (chance_ppm BETWEEN 1 AND 1000000),
    commit_event TEXT NOT NULL UNIQUE REFERENCES market_events(id),
    PRIMARY KEY (auction, bidder)
) STRICT, WITHOUT ROWID;

CREATE TABLE market_verifications (
    auction TEXT PRIMARY KEY REFERENCES market_auctions(id),
    method TEXT NOT NULL CHECK (method IN ('tests', 'benchmark', 'review', 'approval')),
    passed INTEGER NOT NULL CHECK (passed IN (0, 1)),
    detail TEXT NOT NULL,
    event TEXT NOT NULL UNIQUE REFERENCES market_events(id),
    slashed INTEGER NOT NULL DEFAULT 0 CHECK (slashed >= 0),
    decided_by TEXT NOT NULL,
    at REAL NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TRIGGER market_verifications_no_update BEFORE UPDATE ON market_verifications
BEGIN SELECT RAISE(ABORT, 'market: a verification result is final'); END;
CREATE TRIGGER market_verifications_no_delete BEFORE DELETE ON market_verifications
BEGIN SELECT RAISE(ABORT, 'market: a verification result is final'); END;

CREATE TABLE market_feedback (
    event TEXT PRIMARY KEY REFERENCES market_events(id),
    auction TEXT NOT NULL REFERENCES market_auctions(id),
    rater TEXT NOT NULL CHECK (length(rater) = 64),
    ratee TEXT NOT NULL CHECK (length(ratee) = 64),
    payment_ref TEXT NOT NULL CHECK (length(payment_ref) BETWEEN 1 AND 128),
    score INTEGER NOT NULL CHECK (score BETWEEN 0 AND 100),
    created_at INTEGER NOT NULL,
    UNIQUE (payment_ref, rater),
    CHECK (rater <> ratee)
) STRICT, WITHOUT ROWID;
CREATE INDEX market_feedback_ratee ON market_feedback(ratee);
CREATE TRIGGER market_feedback_no_update BEFORE UPDATE ON market_feedback
BEGIN SELECT RAISE(ABORT, 'market: feedback is append-only'); END;
CREATE TRIGGER market_feedback_no_delete BEFORE DELETE ON market_feedback
BEGIN SELECT RAISE(ABORT, 'market: feedback is append-only'); END;

CREATE VIEW market_bids AS
SELECT c.auction AS auction, c.pubkey AS bidder, c.id AS commit_event, c.received_at AS committed_at,
       r.id AS reveal_event, r.received_at AS revealed_at,
       json_extract(json_extract(r.raw, '$.content'), '$.amount') AS amount
FROM market_events c
LEFT JOIN market_events r ON r.auction = c.auction AND r.pubkey = c.pubkey AND r.kind = 7202
WHERE c.kind = 7201;
"""
