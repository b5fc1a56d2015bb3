"""Reading the market for people: auction lists with countdowns, details with bids and events, reputation.

The views are computed from the stored rows and the signed events each time; the bids' outcomes
(won, lost, forfeited, refused and why) are `colony.market.auction.settle` run again over the
events, so what a person sees is what anyone rechecking the award would get. Bids stay hidden
until the reveal deadline has passed (`colony.market.views` says why).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from colony.errors import TaskNotFoundError
from colony.identity.keys import npub
from colony.market import _market_store as _store
from colony.market import _stake_store
from colony.market.auction import settle
from colony.market.events import MARKET_KINDS, AwardBody, open_market
from colony.market.views import (
    AuctionDetail,
    AuctionView,
    BidView,
    EventView,
    Phase,
    ReputationRow,
    VerificationView,
)
from colony.store import Row

if TYPE_CHECKING:
    from colony.identity import Keyring
    from colony.identity.events import Event
    from colony.market.service import Market
    from colony.store.engine import Engine

__all__ = ["agent_label", "agent_names", "auction_detail", "auction_view", "auctions", "reputation_events",
           "reputation_table"]

_KIND_NAMES = {v: k for k, v in MARKET_KINDS.items()}
_ACCOUNT = re.compile(r"[0-9a-f]{64}")


def agent_names(keyring: Keyring) -> dict[str, str]:
    """Account → this node's name, for each of its identities."""
    return {i.public_hex: i.name for i in keyring.all()}


def agent_label(account: str, names: Mapping[str, str]) -> str:
    """How a person reads an agent's account, e.g. a task's assignee: this node's name for it, or a
    short npub for an agent of another node sharing the database (its name there is local to that
    node, and may be one of ours). A value that is not an account — a name migration 20 found
    nothing to resolve to — is shown as it is."""
    if not _ACCOUNT.fullmatch(account):
        return account
    return names.get(account) or npub(account)[:16] + "…"


def _names(market: Market) -> dict[str, str]:
    return agent_names(market.node.keyring)


def _phase(row: Row, now: int) -> Phase:
    if row["state"] != "open":
        phase: Phase = row["state"]
        return phase
    if now <= row["commit_deadline"]:
        return "commit"
    return "reveal" if now <= row["reveal_deadline"] else "awarding"


def auction_view(market: Market, row: Row, *, now: int | None = None) -> AuctionView:
    now = market.now() if now is None else now
    terms = market.terms(row["id"])
    try:
        task_state: str = market.tasks.get(row["task_id"]).state
    except TaskNotFoundError:
        task_state = "unknown"
    hold = market.hold(row["escrow_hold"])
    commits = int(market.db.scalar("SELECT count(*) FROM market_events WHERE auction = ? AND kind = ?",
                                   (row["id"], MARKET_KINDS["commit"])) or 0)
    return AuctionView(
        id=row["id"], task_id=row["task_id"], task_state=task_state, goal=terms.goal, skills=list(terms.skills),
        state=row["state"], phase=_phase(row, now), rule=row["rule"], poster=row["poster"],
        poster_name=row["poster_name"], reserve=row["reserve"], bond=row["bond"],
        commit_deadline=row["commit_deadline"], reveal_deadline=row["reveal_deadline"],
        commit_in_s=row["commit_deadline"] - now if now <= row["commit_deadline"] else None,
        reveal_in_s=row["reveal_deadline"] - now if now <= row["reveal_deadline"] else None,
        verification=row["verification"], commits=commits, winner=row["winner"], winner_name=row["winner_name"],
        price=row["price"], escrow_hold=row["escrow_hold"], escrow_state=hold.state if hold else None,
        reason=row["reason"])


def auctions(market: Market, *, states: Sequence[str] | None = None, limit: int = 100) -> list[AuctionView]:
    now = market.now()
    return [auction_view(market, row, now=now) for row in _store.list_auctions(market.db, states=states, limit=limit)]


def _bids(market: Market, row: Row, names: dict[str, str], now: int) -> list[BidView] | None:
    if now <= row["reveal_deadline"]:
        return None
    events = _store.auction_events(market.db, row["id"])
    award = next((open_market(e, AwardBody) for e, _ in events if e.kind == MARKET_KINDS["award"]), None)
    award_at = next((e.created_at for e, _ in events if e.kind == MARKET_KINDS["award"]), None)
    bid_events = [(e, at) for e, at in events if e.kind in (MARKET_KINDS["commit"], MARKET_KINDS["reveal"])]
    received = award.received if award is not None else {e.id: at for e, at in bid_events}
    outcome = settle(market.terms(row["id"]), [e for e, _ in bid_events],
                     now=award_at if award_at is not None else max(now, row["reveal_deadline"] + 1), received=received)
    revealed = {b.bidder: b for b in outcome.ranked}
    forfeited = {f.bidder for f in outcome.forfeits}
    refused = {r.bidder: r.reason for r in outcome.refused}
    out = []
    for bid in _store.bids(market.db, row["id"]):
        bidder = bid["bidder"]
        kind: Literal["won", "lost", "forfeited", "refused"] = (
            "won" if bidder == outcome.winner else "lost" if bidder in revealed
            else "forfeited" if bidder in forfeited else "refused")
        out.append(BidView(bidder=bidder, name=names.get(bidder), committed_at=bid["committed_at"],
                           amount=bid["amount"], revealed_at=bid["revealed_at"], outcome=kind,
                           refusal=refused.get(bidder) if kind == "refused" else None))
    rank = {b.bidder: i for i, b in enumerate(outcome.ranked)}  # the auction's order first, then the rest
    return sorted(out, key=lambda b: (rank.get(b.bidder, len(rank)), b.committed_at, b.bidder))


def auction_detail(market: Market, auction: str) -> AuctionDetail:
    row = market.row(auction)
    now = market.now()
    names = _names(market)
    view = auction_view(market, row, now=now)
    result = _store.verification(market.db, auction)
    events = [EventView(kind=_KIND_NAMES.get(e.kind, str(e.kind)), received_at=at, event=e.model_dump())
              for e, at in market.events(auction)
              if now > row["reveal_deadline"] or e.kind != MARKET_KINDS["reveal"]]
    return AuctionDetail(
        **view.model_dump(), verify_spec=row["verify_spec"], verifier=row["verifier"],
        bids=_bids(market, row, names, now),
        verification_result=None if result is None else VerificationView(
            method=result["method"], passed=result["passed"], detail=result["detail"], slashed=result["slashed"],
            decided_by=result["decided_by"], event=result["event"]),
        events=events)


def reputation_table(market: Market) -> list[ReputationRow]:
    """Every agent of the node (and every rated key), best reputation first."""
    book = market.reputation_book()
    names = _names(market)
    staked = _stake_store.stakes_by_account(market.db)
    wins = {r["winner"]: (int(r["n"]), int(r["paid"] or 0)) for r in market.db.query(
        "SELECT winner, count(*) AS n, sum(CASE WHEN state = 'paid' THEN price END) AS paid FROM market_auctions "
        "WHERE winner IS NOT NULL GROUP BY winner")}
    accounts = {i.public_hex for i in market.node.keyring.all() if i.role == "agent"} | set(book.standings)
    rows = []
    for account in accounts:
        standing = book.standings.get(account)
        won, paid = wins.get(account, (0, 0))
        rows.append(ReputationRow(name=names.get(account), account=account, reputation=book.expectation(account),
                                  ratings=standing.count if standing else 0, r=standing.r if standing else 0.0,
                                  s=standing.s if standing else 0.0, staked=staked.get(account, 0), wins=won,
                                  paid=paid))
    return sorted(rows, key=lambda r: (-r.reputation, -r.ratings, r.name or "~", r.account))


def reputation_events(engine: Engine, after: int, limit: int) -> list[tuple[int, Event]]:
    """The signed verification (7204) and feedback (7205) events after arrival position ``after``, each
    with its position: what a peer replicating this node's reputation evidence pulls, page by page."""
    return _store.events_after(engine, (MARKET_KINDS["verification"], MARKET_KINDS["feedback"]), after, limit)
