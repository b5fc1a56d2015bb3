"""Sealed-bid commit–reveal procurement auctions: the lowest cost wins, settled from public events.

Why commit–reveal: a bid seen before the commit deadline can be undercut by one micro-credit;
a sealed commitment ``sha256(domain ‖ auction ‖ bidder ‖ amount ‖ salt)`` hides the amount, and
the reveal ``(amount, salt)`` after the deadline cannot be changed. Every field of the digest has
a fixed width (32-byte ids and keys, an 8-byte big-endian amount, a 32-byte salt), so two
different bids can never encode to the same bytes.

Why reverse Vickrey: the winner is paid the second-lowest revealed bid (the reserve when it is
alone), so bidding one's true cost is weakly dominant — shading cannot lower the price one is
paid, only lose auctions worth winning or win ones that lose money. ``first_price`` (paid one's
own bid) and ``random`` (a uniformly drawn valid bidder paid the reserve) exist for comparison.

The rules, applied by `settle_bids` (and by `settle` after every event is verified):

- a commit counts only when signed, for this auction, and effective no later than the commit
  deadline; a bidder's **first** such commit (earliest, then smallest event id) is the one that
  counts, later ones are refused ``duplicate_commit`` (a bidder cannot keep two options open);
- a reveal counts only after the commit deadline and no later than the reveal deadline, when it
  opens the bidder's counted commitment; amounts must be 1..MAX_AMOUNT and at most the reserve;
- the poster cannot bid in its own auction, nor can keys owned by the poster's owner when the
  caller knows the owners (``poster_bid``: a shill lowering the price it pays);
- a counted commitment that is never opened forfeits its bond (selective non-reveal costs);
- ties are broken by the earliest counted commit, then ``sha256(domain ‖ auction ‖ bidder)``:
  neither depends on the salt, so no bidder can steer a tie by choosing one.

An event's effective time is the later of its ``created_at`` (the signer's claim) and the time
the auctioneer received it when that is known (``received``): a backdated commit that arrived
during the reveal phase is late, and an arrival time can only delay an event, never admit a late
one. The award event publishes those arrival times, so `recheck` replays the same decision from
the public events alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from colony.identity.events import Event
from colony.identity.keys import SchnorrKey
from colony.ledger.amounts import MAX_AMOUNT
from colony.market.events import (
    MARKET_KINDS,
    Announcement,
    AuctionOpenError,
    AwardBody,
    CommitBody,
    MarketEventError,
    RevealBody,
    open_market,
    sign_market,
)

__all__ = [
    "Bid",
    "CoBidding",
    "Commitment",
    "Forfeit",
    "Opening",
    "Outcome",
    "Recheck",
    "Refusal",
    "announcement_event",
    "award_event",
    "bid_digest",
    "co_bidding",
    "commit_event",
    "read_announcement",
    "recheck",
    "reveal_event",
    "settle",
    "settle_bids",
    "tiebreak",
]

BID_DOMAIN = b"colony/market/bid/v1\x00"
TIE_DOMAIN = b"colony/market/tie/v1\x00"
RANDOM_DOMAIN = b"colony/market/random/v1\x00"


@dataclass(frozen=True)
class Commitment:
    """A sealed bid as read from its (verified) event; ``at`` is its effective time."""

    event_id: str
    bidder: str
    auction: str
    digest: str
    at: int
    bond_ref: str = ""


@dataclass(frozen=True)
class Opening:
    """A reveal as read from its (verified) event."""

    event_id: str
    bidder: str
    auction: str
    amount: int
    salt: str
    at: int


@dataclass(frozen=True)
class Bid:
    """A valid revealed bid, in ranking order inside an `Outcome`."""

    bidder: str
    amount: int
    commit_id: str
    reveal_id: str
    committed_at: int


@dataclass(frozen=True)
class Refusal:
    event_id: str
    bidder: str
    reason: str


@dataclass(frozen=True)
class Forfeit:
    """A counted commitment never opened: its bond is forfeited."""

    bidder: str
    commit_id: str
    bond: int
    bond_ref: str


@dataclass(frozen=True)
class Outcome:
    auction: str
    rule: str
    winner: str | None
    price: int | None
    ranked: tuple[Bid, ...]
    refused: tuple[Refusal, ...]
    forfeits: tuple[Forfeit, ...]


@dataclass(frozen=True)
class Recheck:
    """An audit of an award: ``ok`` when the public events reproduce it exactly."""

    ok: bool
    outcome: Outcome | None
    problems: tuple[str, ...]


def bid_digest(auction_id: str, bidder: str, amount: int, salt: str) -> str:
    """The commitment to ``amount``: fixed-width fields after a fixed domain, hex sha256."""
    if not 1 <= amount <= MAX_AMOUNT:
        raise ValueError(f"a bid is 1..{MAX_AMOUNT} micro-credits, not {amount}")
    parts = (bytes.fromhex(auction_id), bytes.fromhex(bidder), amount.to_bytes(8, "big"), bytes.fromhex(salt))
    if [len(p) for p in parts] != [32, 32, 8, 32]:
        raise ValueError("auction id, bidder key and salt must each be 32 bytes (64 hex characters)")
    return hashlib.sha256(BID_DOMAIN + b"".join(parts)).hexdigest()


def tiebreak(auction_id: str, bidder: str) -> str:
    """The last tie-breaker: fixed for a bidder once the auction exists, independent of any salt."""
    return hashlib.sha256(TIE_DOMAIN + bytes.fromhex(auction_id) + bytes.fromhex(bidder)).hexdigest()


# -- events --------------------------------------------------------------------------------------
def announcement_event(key: SchnorrKey, announcement: Announcement, *, created_at: int) -> Event:
    if key.public_hex != announcement.poster:
        raise ValueError("an announcement is signed by its poster")
    return sign_market(key, announcement, created_at=created_at)


def read_announcement(event: Event) -> Announcement:
    """The verified terms; refused when the signer is not the poster the terms name."""
    announcement = open_market(event, Announcement)
    if event.pubkey != announcement.poster:
        raise MarketEventError("not_poster", "an announcement must be signed by the poster it names")
    return announcement


def commit_event(key: SchnorrKey, announcement: Announcement, amount: int, salt: str, *, created_at: int,
                 bond_ref: str = "") -> Event:
    digest = bid_digest(announcement.auction_id, key.public_hex, amount, salt)
    return sign_market(key, CommitBody(auction=announcement.auction_id, digest=digest, bond_ref=bond_ref),
                       created_at=created_at)


def reveal_event(key: SchnorrKey, announcement: Announcement, amount: int, salt: str, *, created_at: int) -> Event:
    return sign_market(key, RevealBody(auction=announcement.auction_id, amount=amount, salt=salt),
                       created_at=created_at)


# -- settlement ----------------------------------------------------------------------------------
def settle(announcement: Announcement, events: Iterable[Event], *, now: int,
           received: Mapping[str, int] | None = None, owners: Mapping[str, str] | None = None) -> Outcome:
    """Verify every commit and reveal event, then apply `settle_bids`; refused events keep their reason."""
    received = received or {}
    commitments: list[Commitment] = []
    openings: list[Opening] = []
    refused: list[Refusal] = []
    for ev in events:
        at = max(ev.created_at, received.get(ev.id, 0))
        try:
            if ev.kind == MARKET_KINDS["commit"]:
                c = open_market(ev, CommitBody)
                commitments.append(Commitment(ev.id, ev.pubkey, c.auction, c.digest, at, c.bond_ref))
            elif ev.kind == MARKET_KINDS["reveal"]:
                r = open_market(ev, RevealBody)
                openings.append(Opening(ev.id, ev.pubkey, r.auction, r.amount, r.salt, at))
            else:
                refused.append(Refusal(ev.id, ev.pubkey, "not_a_bid"))
        except MarketEventError as exc:
            refused.append(Refusal(ev.id, ev.pubkey, exc.reason))
    return settle_bids(announcement, commitments, openings, now=now, owners=owners, refused=refused)


def _poster_owned(announcement: Announcement, bidder: str, owners: Mapping[str, str]) -> bool:
    if bidder == announcement.poster:
        return True
    owner = owners.get(bidder)
    return owner is not None and owner == owners.get(announcement.poster, announcement.poster)


def settle_bids(announcement: Announcement, commitments: Sequence[Commitment], openings: Sequence[Opening], *,
                now: int, owners: Mapping[str, str] | None = None, refused: Iterable[Refusal] = ()) -> Outcome:
    """The auction's decision from already-verified bids (`settle` is the entry point for events).

    Pure and deterministic: the inputs' order does not matter (they are sorted by effective time,
    then event id). Raises AuctionOpenError before the reveal deadline has passed.
    """
    if now <= announcement.reveal_deadline:
        raise AuctionOpenError(f"the auction takes reveals until {announcement.reveal_deadline}; settle after it")
    owners = owners or {}
    auction = announcement.auction_id
    out = list(refused)
    counted: dict[str, Commitment] = {}
    for c in sorted(commitments, key=lambda c: (c.at, c.event_id)):
        reason = ("other_auction" if c.auction != auction
                  else "future" if c.at > now
                  else "late_commit" if c.at > announcement.commit_deadline
                  else "poster_bid" if _poster_owned(announcement, c.bidder, owners)
                  else "duplicate_commit" if c.bidder in counted
                  else None)
        if reason is None:
            counted[c.bidder] = c
        else:
            out.append(Refusal(c.event_id, c.bidder, reason))
    opened: dict[str, Opening] = {}
    bids: list[Bid] = []
    for o in sorted(openings, key=lambda o: (o.at, o.event_id)):
        commit = counted.get(o.bidder)
        reason = ("other_auction" if o.auction != auction
                  else "future" if o.at > now
                  else "early_reveal" if o.at <= announcement.commit_deadline
                  else "late_reveal" if o.at > announcement.reveal_deadline
                  else "poster_bid" if _poster_owned(announcement, o.bidder, owners)
                  else "no_commitment" if commit is None
                  else "bad_amount" if not 1 <= o.amount <= MAX_AMOUNT
                  else "mismatch" if bid_digest(auction, o.bidder, o.amount, o.salt) != commit.digest
                  else "duplicate_reveal" if o.bidder in opened
                  else "above_reserve" if o.amount > announcement.reserve
                  else None)
        if commit is not None and reason in (None, "above_reserve"):
            opened[o.bidder] = o
        if reason is None:
            assert commit is not None
            bids.append(Bid(o.bidder, o.amount, commit.event_id, o.event_id, commit.at))
        else:
            out.append(Refusal(o.event_id, o.bidder, reason))
    ranked = tuple(sorted(bids, key=lambda b: (b.amount, b.committed_at, tiebreak(auction, b.bidder))))
    forfeits = tuple(Forfeit(c.bidder, c.event_id, announcement.bond, c.bond_ref)
                     for c in counted.values() if c.bidder not in opened)
    winner, price = _award(announcement, ranked)
    return Outcome(auction, announcement.rule, winner, price, ranked, tuple(out), forfeits)


def _award(announcement: Announcement, ranked: tuple[Bid, ...]) -> tuple[str | None, int | None]:
    if not ranked:
        return None, None
    if announcement.rule == "vickrey":
        return ranked[0].bidder, ranked[1].amount if len(ranked) > 1 else announcement.reserve
    if announcement.rule == "first_price":
        return ranked[0].bidder, ranked[0].amount
    # random: a baseline that ignores the amounts; the draw is fixed by the auction id alone.
    draw = int.from_bytes(hashlib.sha256(RANDOM_DOMAIN + bytes.fromhex(announcement.auction_id)).digest(), "big")
    pool = sorted(ranked, key=lambda b: tiebreak(announcement.auction_id, b.bidder))
    return pool[draw % len(pool)].bidder, announcement.reserve


# -- award and audit -----------------------------------------------------------------------------
def award_event(key: SchnorrKey, announcement: Announcement, outcome: Outcome, *, created_at: int,
                received: Mapping[str, int] | None = None) -> Event:
    """The poster's signed settlement, with the arrival times it relied on."""
    if key.public_hex != announcement.poster:
        raise ValueError("an award is signed by the auction's poster")
    if created_at <= announcement.reveal_deadline:
        raise AuctionOpenError("an award can only be made after the reveal deadline")
    body = AwardBody(auction=outcome.auction, winner=outcome.winner, price=outcome.price,
                     ranking=tuple((b.bidder, b.amount) for b in outcome.ranked),
                     forfeits=tuple(f.bidder for f in outcome.forfeits), received=dict(received or {}))
    return sign_market(key, body, created_at=created_at)


def _one(events: Sequence[Event], kind: str) -> list[Event]:
    return [e for e in events if e.kind == MARKET_KINDS[kind]]


def recheck(events: Iterable[Event], *, owners: Mapping[str, str] | None = None) -> Recheck:
    """Recompute winner, price, ranking and forfeits from the public events and compare with the award.

    Needs exactly one announcement (signed by its poster) and one award for it (signed by the
    same poster, after the reveal deadline); everything else of kind commit or reveal is settled
    again, at the award's time and with the arrival times the award published.
    """
    evs = list(events)
    problems: list[str] = []
    announcements, awards = _one(evs, "announcement"), _one(evs, "award")
    if len(announcements) != 1 or len(awards) != 1:
        return Recheck(False, None, ("need exactly one announcement and one award",))
    try:
        terms = read_announcement(announcements[0])
        award = open_market(awards[0], AwardBody)
    except MarketEventError as exc:
        return Recheck(False, None, (f"{exc.reason}: {exc}",))
    if awards[0].pubkey != terms.poster:
        return Recheck(False, None, ("the award is not signed by the poster",))
    if award.auction != terms.auction_id:
        return Recheck(False, None, ("the award is for another auction",))
    if awards[0].created_at <= terms.reveal_deadline:
        return Recheck(False, None, ("the award was made before the reveal deadline",))
    bids = [e for e in evs if e.kind in (MARKET_KINDS["commit"], MARKET_KINDS["reveal"])]
    outcome = settle(terms, bids, now=awards[0].created_at, received=award.received, owners=owners)
    if award.winner != outcome.winner:
        problems.append(f"winner: award says {award.winner}, the events give {outcome.winner}")
    if award.price != outcome.price:
        problems.append(f"price: award says {award.price}, the events give {outcome.price}")
    if award.ranking != tuple((b.bidder, b.amount) for b in outcome.ranked):
        problems.append("ranking differs from the revealed bids")
    if sorted(award.forfeits) != sorted(f.bidder for f in outcome.forfeits):
        problems.append("forfeits differ from the unopened commitments")
    return Recheck(not problems, outcome, tuple(problems))


# -- co-bidding audit ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CoBidding:
    """Two bidders seen together ``together`` times, with bids within the tolerance ``close`` times."""

    first: str
    second: str
    together: int
    close: int


def co_bidding(outcomes: Iterable[Outcome], *, tolerance_bp: int = 100, min_together: int = 10,
               min_close_bp: int = 5000) -> list[CoBidding]:
    """Pairs of bidders who meet often with suspiciously close bids: an audit signal, not a verdict.

    A bid ring's cover bids cluster (the same high amount, or just above the leader's), while
    independent costs rarely land within ``tolerance_bp`` basis points of each other again and
    again. Flagged: pairs seen in at least ``min_together`` auctions whose revealed bids were
    that close in at least ``min_close_bp`` basis points of them; most suspicious first.
    Integer arithmetic only, so the audit is the same on every machine.
    """
    together: dict[tuple[str, str], int] = {}
    close: dict[tuple[str, str], int] = {}
    for outcome in outcomes:
        bids = sorted(outcome.ranked, key=lambda b: b.bidder)
        for i, a in enumerate(bids):
            for b in bids[i + 1:]:
                pair = (a.bidder, b.bidder)
                together[pair] = together.get(pair, 0) + 1
                if abs(a.amount - b.amount) * 10_000 <= tolerance_bp * min(a.amount, b.amount):
                    close[pair] = close.get(pair, 0) + 1
    flagged = [CoBidding(a, b, n, close.get((a, b), 0)) for (a, b), n in together.items()
               if n >= min_together and close.get((a, b), 0) * 10_000 >= min_close_bp * n]
    return sorted(flagged, key=lambda p: (-p.close * 10_000 // p.together, -p.together, p.first, p.second))
