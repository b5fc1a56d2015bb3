"""Migration 21, work across nodes: auctions other nodes announced, this node's bids in them, and the
poster's record of who bid from where and what it told its members.

The tables are node-local (each node keeps its own view of the colony's auctions), so they live in
the node's SQLite file, beside federation's (migration 17). The truth of an auction stays its
signed events on the poster's node (`colony.market`); these rows are what a node needs to take
part from afar: the terms it saw, the bond and stake it holds at home for each of its bids, the
task it runs when one of its agents won.

Invariants the database holds, not the caller:

- keys and ids are 64 lowercase hex; amounts are integers (``STRICT``), a bid 1 or more;
- a remote auction's terms (origin, poster, announcement, deadlines) never change, and its state
  only moves forward: ``open → closed | won``, ``won → paid | refunded`` (a trigger);
- a bid is one per (auction, bidder), its signed commit and reveal never change once written,
  and its bond is closed once: ``released`` or ``forfeited``, never both, never reopened;
- the poster's side records one row per (auction, bidder) that bid from another node, and at
  most one of each notice it sent about an auction.
"""

from __future__ import annotations

__all__ = ["REMOTE_MARKET_SCHEMA"]

_HEX64 = "length({col}) = 64 AND {col} NOT GLOB '*[^0-9a-f]*'"

REMOTE_MARKET_SCHEMA = f"""
CREATE TABLE federation_remote_auctions (
    id TEXT PRIMARY KEY CHECK ({_HEX64.format(col="id")}),
    origin TEXT NOT NULL CHECK ({_HEX64.format(col="origin")}),
    origin_url TEXT NOT NULL CHECK (origin_url GLOB 'http://*' OR origin_url GLOB 'https://*'),
    poster TEXT NOT NULL CHECK ({_HEX64.format(col="poster")}),
    announcement TEXT NOT NULL CHECK (json_valid(announcement)),
    commit_deadline INTEGER NOT NULL,
    reveal_deadline INTEGER NOT NULL CHECK (reveal_deadline > commit_deadline),
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed', 'won', 'paid', 'refunded')),
    winner TEXT CHECK (winner IS NULL OR ({_HEX64.format(col="winner")})),
    price INTEGER CHECK (price IS NULL OR price >= 1),
    escrow_hold TEXT CHECK (escrow_hold IS NULL OR ({_HEX64.format(col="escrow_hold")})),
    task_id TEXT,
    result_sent_at REAL,
    paid_tx TEXT,
    received_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    CHECK ((state IN ('won', 'paid', 'refunded')) = (task_id IS NOT NULL)),
    CHECK (state NOT IN ('won', 'paid', 'refunded') OR (winner IS NOT NULL AND price IS NOT NULL))
) STRICT;
CREATE INDEX federation_remote_auctions_state ON federation_remote_auctions(state, commit_deadline);

CREATE TRIGGER federation_remote_auctions_move BEFORE UPDATE ON federation_remote_auctions
WHEN NEW.id IS NOT OLD.id OR NEW.origin IS NOT OLD.origin OR NEW.poster IS NOT OLD.poster
     OR NEW.announcement IS NOT OLD.announcement OR NEW.commit_deadline IS NOT OLD.commit_deadline
     OR NEW.reveal_deadline IS NOT OLD.reveal_deadline
     OR (OLD.task_id IS NOT NULL AND NEW.task_id IS NOT OLD.task_id)
     OR (NEW.state IS NOT OLD.state AND NOT (
            (OLD.state = 'open' AND NEW.state IN ('closed', 'won'))
            OR (OLD.state = 'won' AND NEW.state IN ('paid', 'refunded'))))
BEGIN
    SELECT RAISE(ABORT, 'federation: a remote auction''s terms never change; it moves open -> closed|won, won -> paid|refunded');
END;

CREATE TABLE federation_remote_bids (
    auction TEXT NOT NULL REFERENCES federation_remote_auctions(id),
    bidder TEXT NOT NULL CHECK ({_HEX64.format(col="bidder")}),
    bidder_name TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount >= 1),
    cost INTEGER NOT NULL CHECK (cost >= 0),
    chance_ppm INTEGER NOT NULL CHECK (chance_ppm BETWEEN 0 AND 1000000),
    bond_hold TEXT NOT NULL DEFAULT '',
    stake_ref TEXT,
    commit_event TEXT NOT NULL CHECK (json_valid(commit_event)),
    commit_sent_at REAL,
    reveal_event TEXT CHECK (reveal_event IS NULL OR json_valid(reveal_event)),
    reveal_sent_at REAL,
    refused TEXT,
    bond TEXT CHECK (bond IS NULL OR bond IN ('released', 'forfeited')),
    PRIMARY KEY (auction, bidder)
) STRICT;

CREATE TRIGGER federation_remote_bids_kept BEFORE UPDATE ON federation_remote_bids
WHEN NEW.auction IS NOT OLD.auction OR NEW.bidder IS NOT OLD.bidder OR NEW.amount IS NOT OLD.amount
     OR NEW.commit_event IS NOT OLD.commit_event OR NEW.bond_hold IS NOT OLD.bond_hold
     OR (OLD.reveal_event IS NOT NULL AND NEW.reveal_event IS NOT OLD.reveal_event)
     OR (OLD.bond IS NOT NULL AND NEW.bond IS NOT OLD.bond)
BEGIN
    SELECT RAISE(ABORT, 'federation: a bid''s signed events never change and its bond is closed once');
END;

CREATE TABLE federation_market_bidders (
    auction TEXT NOT NULL CHECK ({_HEX64.format(col="auction")}),
    bidder TEXT NOT NULL CHECK ({_HEX64.format(col="bidder")}),
    bidder_name TEXT NOT NULL,
    node TEXT NOT NULL CHECK ({_HEX64.format(col="node")}),
    at REAL NOT NULL,
    PRIMARY KEY (auction, bidder)
) STRICT;

CREATE TABLE federation_market_sent (
    auction TEXT NOT NULL CHECK ({_HEX64.format(col="auction")}),
    what TEXT NOT NULL CHECK (what IN ('announcement', 'award', 'verification')),
    at REAL NOT NULL,
    PRIMARY KEY (auction, what)
) STRICT;
"""
