"""Migration 22, work across nodes under faults: result deadlines, awards given up, stale results, and a
member's auctions that ended without the award it waited for (`colony.federation.remote_faults`).

Node-local tables in the node's SQLite file, beside migration 21's. The truth of an auction stays its
signed events and the market's own state machine on the poster's node; these rows record the
decisions federation takes around it when a node is lost, so each is taken once:

- ``federation_market_awards`` (the poster's node): one row per award to a member's agent, with its
  result deadline; ``ended`` says how the award was given up (``abandoned``: no result by the
  deadline; ``declined``: the winner's node refused it; ``cancelled``: a person cancelled the task),
  and ``reauction`` the new auction of the same task. The deadline, winner and node never change;
  ``ended`` and ``reauction`` are set once (a trigger);
- ``federation_market_stale_results`` (the poster's node): results refused because the award they
  answer was given up — evidence, append-only, one row per result event;
- ``federation_remote_ends`` (a member's node): why a remote auction ended without the poster's
  normal outcome (``lapsed``: no award by the reveal deadline + grace, bids released here;
  ``abandoned``/``declined``/``cancelled``: the poster's signed notice), and when an award that
  arrived after a lapse was refused. Set once (a trigger).
"""

from __future__ import annotations

__all__ = ["REMOTE_FAULTS_SCHEMA"]

_HEX64 = "length({col}) = 64 AND {col} NOT GLOB '*[^0-9a-f]*'"

REMOTE_FAULTS_SCHEMA = f"""
CREATE TABLE federation_market_awards (
    auction TEXT PRIMARY KEY CHECK ({_HEX64.format(col="auction")}),
    winner TEXT NOT NULL CHECK ({_HEX64.format(col="winner")}),
    node TEXT NOT NULL CHECK ({_HEX64.format(col="node")}),
    result_deadline INTEGER NOT NULL CHECK (result_deadline >= 0),
    ended TEXT CHECK (ended IS NULL OR ended IN ('abandoned', 'declined', 'cancelled')),
    ended_at REAL,
    detail TEXT,
    reauction TEXT CHECK (reauction IS NULL OR ({_HEX64.format(col="reauction")})),
    CHECK ((ended IS NULL) = (ended_at IS NULL)),
    CHECK (reauction IS NULL OR ended IN ('abandoned', 'declined'))
) STRICT;
CREATE INDEX federation_market_awards_reauction ON federation_market_awards(reauction) WHERE reauction IS NOT NULL;

CREATE TRIGGER federation_market_awards_once BEFORE UPDATE ON federation_market_awards
WHEN NEW.auction IS NOT OLD.auction OR NEW.winner IS NOT OLD.winner OR NEW.node IS NOT OLD.node
     OR NEW.result_deadline IS NOT OLD.result_deadline
     OR (OLD.ended IS NOT NULL AND (NEW.ended IS NOT OLD.ended OR NEW.ended_at IS NOT OLD.ended_at))
     OR (OLD.reauction IS NOT NULL AND NEW.reauction IS NOT OLD.reauction)
BEGIN
    SELECT RAISE(ABORT, 'federation: an award''s deadline never changes; it is given up once and re-auctioned once');
END;

CREATE TABLE federation_market_stale_results (
    event TEXT PRIMARY KEY CHECK ({_HEX64.format(col="event")}),
    auction TEXT NOT NULL CHECK ({_HEX64.format(col="auction")}),
    sender TEXT NOT NULL CHECK ({_HEX64.format(col="sender")}),
    winner TEXT NOT NULL CHECK ({_HEX64.format(col="winner")}),
    status TEXT NOT NULL CHECK (status IN ('completed', 'failed')),
    reason TEXT NOT NULL,
    at REAL NOT NULL
) STRICT;
CREATE TRIGGER federation_market_stale_results_kept BEFORE UPDATE ON federation_market_stale_results
BEGIN SELECT RAISE(ABORT, 'federation: a refused result is evidence, never changed'); END;

CREATE TABLE federation_remote_ends (
    auction TEXT PRIMARY KEY REFERENCES federation_remote_auctions(id),
    cause TEXT NOT NULL CHECK (cause IN ('lapsed', 'abandoned', 'declined', 'cancelled')),
    at REAL NOT NULL,
    detail TEXT NOT NULL,
    award_refused_at REAL
) STRICT;
CREATE TRIGGER federation_remote_ends_once BEFORE UPDATE ON federation_remote_ends
WHEN NEW.auction IS NOT OLD.auction OR NEW.cause IS NOT OLD.cause OR NEW.at IS NOT OLD.at
     OR (OLD.award_refused_at IS NOT NULL AND NEW.award_refused_at IS NOT OLD.award_refused_at)
BEGIN
    SELECT RAISE(ABORT, 'federation: how a remote auction ended is recorded once');
END;
"""
