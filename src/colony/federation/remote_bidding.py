"""Work across nodes, a member's side: its agents bid in other nodes' auctions and run what they win at home.

(`remote_market` is the poster's side and says the whole flow.) Here, on node B:

- `on_auction` (7330) keeps an auction a trusted member announced — only when its poster is an
  agent that member announced — in ``federation_remote_auctions``;
- `bid_remote` (every market pass): in the commit phase each eligible agent commits exactly as in
  a local auction (`colony.market.bidders.eligible` and `hold_bid`: the bond held and the stake
  locked on **this** ledger, the agent's home, in one step with the bid's row); the signed commit,
  and after the commit deadline the signed reveal, are POSTed to the poster's node and retried
  every pass until the phase's deadline (a refusal for lateness or a duplicate ends it);
- `on_award` (7331) rechecks the poster's signed award against the events it was decided from,
  then, in one step: each of our bidders' bonds is released, or captured to our treasury if it
  forfeited; losers' stake locks are released; if one of our agents won, a local task assigned
  to it is created with the auction's goal and the market worker runs it (`claim_assigned`);
- `send_results` (every pass) sends the winner's signed result of a finished task to the poster's
  node through the outbox (durable: nothing is lost while it is down);
- an award that comes after this node released its bids (`remote_faults`: the poster was silent
  past the reveal deadline + grace) is refused and declined; a cancel notice (7334) cancels a won
  task and frees its stake lock (`remote_faults.on_cancel`);
- `mark_paid` records the invoice paid (`remote_pay`), `on_verdict` (7333) releases the winner's
  stake lock on a pass and slashes it on a failure (beneficiary: the poster's account) —
  `colony.market.stake.settle_verification` decides how much, the slash is idempotent by its ref.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Literal

import httpx

from colony.federation import _store, membership, remote_faults, remote_store
from colony.federation.client import nip98_header
from colony.federation.errors import FederationError
from colony.federation.outbox import send
from colony.federation.remote_wire import (
    AUCTION_KIND,
    AWARD_KIND,
    MAX_RESULT_CHARS,
    RESULT_KIND,
    VERDICT_KIND,
    AuctionNotice,
    AwardNotice,
    ResultBody,
    ResultNotice,
    VerdictNotice,
    member_agents,
    notice_from_origin,
    parse,
    result_event,
)
from colony.identity.events import Event
from colony.identity.keys import SchnorrKey
from colony.ledger import TransferRefusedError
from colony.market import stakes
from colony.market.auction import commit_event, read_announcement, recheck, reveal_event
from colony.market.bidders import Decision, eligible, hold_bid, round_inputs
from colony.market.bidding import bid_salt
from colony.market.events import (
    MARKET_KINDS,
    Announcement,
    AwardBody,
    MarketEventError,
    VerificationBody,
    open_market,
)
from colony.market.service import Market, auction_lock, lock_ref
from colony.market.stake import settle_verification
from colony.store import Row
from colony.tasks.models import TaskSpec

if TYPE_CHECKING:
    from colony.node import Node

__all__ = ["bid_remote", "commit_remote", "mark_paid", "on_auction", "on_award", "on_verdict", "send_results"]

log = logging.getLogger("colony.federation")
EVENTS_PATH = "/federation/v1/market/events"
TIMEOUT_S = 5.0
ACTOR = "federation:market"
Sent = Literal["accepted", "final", "retry"]


def _terms(row: Row) -> Announcement:
    return read_announcement(Event.model_validate_json(row["announcement"]))


# -- 7330: an auction announced --------------------------------------------------------------------
def on_auction(node: Node, message: Event) -> None:
    """Keep an auction a member announced (idempotent; refused and recorded when it is not the member's)."""
    db, sender = node.db, message.pubkey
    try:
        notice = parse(message, AUCTION_KIND, AuctionNotice)
        terms = read_announcement(notice.announcement)
    except (FederationError, MarketEventError) as exc:
        membership.record(db, sender, "bad_signature", f"auction notice refused: {exc}")
        return
    if terms.poster not in member_agents(db, sender):
        membership.record(db, sender, "bad_signature", f"auction {terms.auction_id[:16]}… is posted by "
                          f"{terms.poster[:16]}…, not an agent the sending node announced")
        return
    remote_store.insert_remote(db, {
        "id": terms.auction_id, "origin": sender, "origin_url": notice.url, "poster": terms.poster,
        "announcement": notice.announcement.model_dump_json(), "commit_deadline": terms.commit_deadline,
        "reveal_deadline": terms.reveal_deadline})


# -- bidding -------------------------------------------------------------------------------------
def commit_remote(market: Market, auction: str, terms: Announcement, decision: Decision, key: SchnorrKey) -> bool:
    """Commit ``decision``'s bid in a remote auction: bond, stake lock and the bid's row in one step."""
    assert decision.amount is not None
    db, node_db, bidder, amount = market.db, market.node.db, decision.account, decision.amount

    def step() -> bool:
        db.lock(auction_lock(auction), stakes.stake_lock(bidder))
        if any(b["bidder"] == bidder for b in remote_store.bid_rows(node_db, auction)):
            return False
        bond_ref = hold_bid(market, auction, terms, decision, key)
        if bond_ref is None:
            return False
        event = commit_event(key, terms, amount, bid_salt(key, auction), created_at=market.now(), bond_ref=bond_ref)
        remote_store.insert_bid(node_db, {
            "auction": auction, "bidder": bidder, "bidder_name": decision.agent, "amount": amount,
            "cost": decision.cost, "chance_ppm": decision.chance_ppm, "bond_hold": bond_ref,
            "stake_ref": lock_ref(auction, bidder) if decision.stake_needed else None, "commit_event": event})
        return True

    return db.atomic(step)


def _commit_all(market: Market, rows: list[Row]) -> list[str]:
    inputs = round_inputs(market)
    made = []
    for row in rows:
        terms = _terms(row)
        done = {b["bidder"] for b in remote_store.bid_rows(market.node.db, row["id"])}
        for agent, decision in eligible(market, row["id"], terms, inputs, done | {terms.poster}):
            key = market.node.keyring.schnorr_key(agent.name)
            try:
                if commit_remote(market, row["id"], terms, decision, key):
                    made.append(f"{agent.name}→{row['id'][:12]} (remote)")
            except (MarketEventError, stakes.StakeError, TransferRefusedError) as exc:
                log.warning("remote commit of %s refused: %s", agent.name, exc)
    return made


def _reveal(market: Market, row: Row, bid: Row) -> Event | None:
    """Sign and keep the reveal of one of our bids (once; the salt comes from the bidder's key)."""
    ident = market.node.keyring.by_public_key(bid["bidder"])
    if ident is None:
        return None
    key = market.node.keyring.schnorr_key(ident.name)
    event = reveal_event(key, _terms(row), bid["amount"], bid_salt(key, row["id"]), created_at=market.now())
    with market.node.db.tx():
        fresh = next(b for b in remote_store.bid_rows(market.node.db, row["id"]) if b["bidder"] == bid["bidder"])
        if fresh["reveal_event"] is not None:
            return fresh["reveal_event"]  # type: ignore[no-any-return]  # parsed by bid_rows
        remote_store.update_bid(market.node.db, row["id"], bid["bidder"], reveal_event=event)
    return event


async def _post(key: SchnorrKey, base: str, event: Event) -> tuple[Sent, str]:
    """POST one signed bid event to the poster's node: accepted, finally refused, or to retry."""
    url = base.rstrip("/") + EVENTS_PATH
    body = json.dumps(event.model_dump(), separators=(",", ":")).encode()
    headers = {"content-type": "application/json", "authorization": nip98_header(key, url, "POST", body)}
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S, trust_env=False, follow_redirects=False) as client:
            response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return "retry", f"{type(exc).__name__}: {exc}"
    if response.status_code == 200:
        return "accepted", ""
    try:
        code = str(response.json().get("code") or response.status_code)
    except ValueError:
        code = str(response.status_code)
    # Too late, too early or a second bid is final; anything else (a heartbeat not yet seen, a restart) is retried.
    return ("final" if response.status_code in (404, 409) else "retry"), code


async def bid_remote(market: Market) -> list[str]:
    """One round in every remote auction: commit in the commit phase, reveal after it, and send both."""
    node = market.node
    rows = await asyncio.to_thread(remote_store.remote_rows, node.db, ["open"])
    if not rows:
        return []
    now = market.now()
    done = await asyncio.to_thread(_commit_all, market, [r for r in rows if now <= r["commit_deadline"]])
    key = (await asyncio.to_thread(node.keyring.node)).schnorr_key
    for row in rows:
        member = await asyncio.to_thread(_store.get_member, node.db, row["origin"])
        base = member["url"] if member is not None else row["origin_url"]
        for bid in await asyncio.to_thread(remote_store.bid_rows, node.db, row["id"]):
            if bid["refused"]:
                continue
            if bid["commit_sent_at"] is None and now <= row["commit_deadline"]:
                done += await _deliver(node, key, base, row, bid, "commit", bid["commit_event"])
            elif bid["commit_sent_at"] is not None and row["commit_deadline"] < now <= row["reveal_deadline"] \
                    and bid["reveal_sent_at"] is None:
                event = bid["reveal_event"] or await asyncio.to_thread(_reveal, market, row, bid)
                if event is not None:
                    done += await _deliver(node, key, base, row, bid, "reveal", event)
    return done


async def _deliver(node: Node, key: SchnorrKey, base: str, row: Row, bid: Row, what: str, event: Event) -> list[str]:
    outcome, code = await _post(key, base, event)
    if outcome == "retry":
        log.info("remote %s of %s to %s… not delivered yet: %s", what, bid["bidder_name"], row["origin"][:12], code)
        return []
    field = {"commit_sent_at" if what == "commit" else "reveal_sent_at": time.time()} if outcome == "accepted" \
        else {"refused": f"{what}: {code}"[:200]}
    await asyncio.to_thread(remote_store.update_bid, node.db, row["id"], bid["bidder"], **field)
    return [f"{what} {bid['bidder_name']}→{row['id'][:12]} {outcome}"]


# -- 7331: the award -------------------------------------------------------------------------------
def on_award(node: Node, message: Event) -> None:
    """Close our bidders' bonds and stake locks by the poster's rechecked award; run the task if we won."""
    db, sender = node.db, message.pubkey
    found = notice_from_origin(db, message, AWARD_KIND, AwardNotice, "award notice")
    if found is None:
        return
    notice, row = found
    if row["state"] != "open":
        if row["state"] == "closed" and notice.award is not None and _award_problem(row, notice) is None:
            remote_faults.refuse_late_award(node, row, notice)  # our bids were released (the poster was silent)
        return  # closed before (a message handled again)
    winner, price, forfeits = None, None, set()
    if notice.award is not None:
        problem = _award_problem(row, notice)
        if problem is not None:
            membership.record(db, sender, "bad_signature", f"award of {notice.auction[:16]}… refused: {problem}")
            return
        body = open_market(notice.award, AwardBody)
        winner, price, forfeits = body.winner, body.price, set(body.forfeits)
    market = Market(node)
    stakes.treasury(node)  # created (scrypt) outside the write lock
    _close(market, row, notice, winner, price, forfeits)


def _award_problem(row: Row, notice: AwardNotice) -> str | None:
    """Why the award cannot be trusted (not the poster's, not this auction's, not what the events give)."""
    assert notice.award is not None
    if notice.award.pubkey != row["poster"]:
        return "it is not signed by the auction's poster"
    announcements = [e for e in notice.events if e.kind == MARKET_KINDS["announcement"]]
    if [e.id for e in announcements] != [Event.model_validate_json(row["announcement"]).id]:
        return "it is not decided from the announcement this node was sent"
    result = recheck([*notice.events, notice.award])
    return None if result.ok else "; ".join(result.problems) or "it does not recheck"


def _close(market: Market, row: Row, notice: AwardNotice, winner: str | None, price: int | None,
           forfeits: set[str]) -> None:
    node, auction = market.node, row["id"]
    bids = remote_store.bid_rows(node.db, auction)
    ours = {b["bidder"] for b in bids}
    treasury = stakes.treasury(node).public_hex
    terms = _terms(row)

    def step() -> None:
        market.db.lock(auction_lock(auction))
        fresh = remote_store.get_remote(node.db, auction)
        if fresh is None or fresh["state"] != "open":
            return
        for bid in remote_store.bid_rows(node.db, auction):
            if bid["bond"] is None:
                forfeited = bid["bidder"] in forfeits
                hold = market.hold(bid["bond_hold"])
                if hold is not None and hold.state == "held" and hold.payer == bid["bidder"]:
                    if forfeited:
                        market.ledger.capture(hold.id, treasury)
                    else:
                        market.ledger.release(hold.id)
                remote_store.update_bid(node.db, auction, bid["bidder"], bond="forfeited" if forfeited else "released")
            if bid["bidder"] != winner and bid["stake_ref"]:
                stakes.unlock(node, bid["stake_ref"])
        if winner is None or winner not in ours or price is None or notice.escrow is None:
            remote_store.move_remote(node.db, auction, "open", "closed", winner=winner, price=price)
            return
        task = market.tasks.post(TaskSpec(goal=terms.goal, skills=list(terms.skills)), actor=ACTOR)
        market.tasks.transition(task.id, "assigned", actor=ACTOR,
                                reason=f"won auction {auction[:12]}… of node {row['origin'][:12]}… at {price} "
                                       "micro-credits", fields={"assignee": winner},
                                data={"auction": auction, "origin": row["origin"], "price": price},
                                expect=("posted",))
        remote_store.move_remote(node.db, auction, "open", "won", winner=winner, price=price,
                                 escrow_hold=notice.escrow, task_id=task.id)

    market.db.atomic(step)


# -- results ---------------------------------------------------------------------------------------
def send_results(market: Market) -> list[str]:
    """Send each finished task a remote auction gave us back to the poster's node, signed by the winner.

    Once per award, restarts included: the signed result is queued in the outbox and the award
    marked sent in one transaction, so a task resumed after a kill is sent when it finishes and a
    node restarted after sending signs no second result (tests/federation/test_faults_resume.py).
    """
    node = market.node
    out = []
    for row in remote_store.remote_rows(node.db, ["won"]):
        if row["result_sent_at"] is not None:
            continue
        task = market.tasks.get(row["task_id"])
        if task.state not in ("completed", "failed", "cancelled"):
            continue
        winner = node.keyring.by_public_key(row["winner"])
        if winner is None:
            continue
        key = node.keyring.schnorr_key(winner.name)
        node.keyring.node().schnorr_key  # noqa: B018 - unlock (scrypt) before the write lock
        status: Literal["completed", "failed"] = "completed" if task.state == "completed" else "failed"
        text = task.result or "" if status == "completed" else task.error or f"the task was {task.state}"
        signed = result_event(key, ResultBody(auction=row["id"], task_id=task.id, status=status,
                                              result=text[:MAX_RESULT_CHARS]))
        with node.db.tx():
            fresh = remote_store.get_remote(node.db, row["id"])
            if fresh is None or fresh["result_sent_at"] is not None:
                continue
            send(node, row["origin"], RESULT_KIND, ResultNotice(result=signed).model_dump_json())
            remote_store.set_remote(node.db, row["id"], result_sent_at=time.time())
        out.append(f"result of {row['id'][:12]} sent ({status})")
    return out


# -- payment and verdict ---------------------------------------------------------------------------
def mark_paid(node: Node, auction: str, transaction: str) -> None:
    """The invoice was paid and settled on the poster's ledger: record it and free the winner's stake."""
    row = remote_store.get_remote(node.db, auction)
    if row is None:
        return
    remote_store.set_remote(node.db, auction, paid_tx=transaction)
    remote_store.move_remote(node.db, auction, "won", "paid")
    stakes.unlock(node, lock_ref(auction, row["winner"]))


def on_verdict(node: Node, message: Event) -> None:
    """The poster's node's signed verification of our winner: release its stake lock, or slash it."""
    db, sender = node.db, message.pubkey
    try:
        notice = parse(message, VERDICT_KIND, VerdictNotice)
        body = open_market(notice.verification, VerificationBody)
    except (FederationError, MarketEventError) as exc:
        membership.record(db, sender, "bad_signature", f"verdict refused: {exc}")
        return
    row = remote_store.get_remote(db, notice.auction)
    if row is None or row["state"] not in ("won", "paid"):
        return  # not ours to settle, or settled before (a message handled again)
    verifier = notice.verification.pubkey
    if row["origin"] != sender or body.auction != row["id"] or body.worker != row["winner"] \
            or (verifier != sender and verifier not in member_agents(db, sender)):
        membership.record(db, sender, "bad_signature", f"verdict on {notice.auction[:16]}… not by the auction's "
                          "node, or not about our winner")
        return
    winner = node.keyring.by_public_key(row["winner"])
    if not body.passed and row["state"] == "won" and winner is not None:
        market = Market(node)
        amount = settle_verification(row["price"], False, market.params).slashed
        if amount:
            stakes.slash(node, winner.name, amount, ref=f"market:{row['id']}", beneficiary=row["poster"],
                         reason=f"failed verification of auction {row['id'][:12]}… on node {sender[:12]}…: "
                                f"{body.detail}"[:500])
    stakes.unlock(node, lock_ref(row["id"], row["winner"]))
    if row["state"] == "won":
        remote_store.move_remote(db, row["id"], "won", "paid" if body.passed else "refunded")
