"""Work across nodes when a node is lost: result deadlines, awards given up, bids released — the rules.

(`remote_market` says the normal flow, `remote_bidding` a member's side.) Each rule is applied by one
node, by its own clock and its own database, and told to the others by a signed message; every
step is one transaction guarded by a state, so a retry or a message handled twice does nothing.

1. **The winner is lost mid-task** (its node killed, stopped or cut off). An award to a member's
   agent has a *result deadline*: the award's signed time + ``market_result_timeout_s`` (the
   poster's setting when the award notice went out; stored with the award, `note_award`, and sent
   in the notice). A result counts when the poster's node handles it while the award is live —
   handlers run when a message arrives, and a result still waiting for its handler holds the
   deadline off. Past the deadline the poster's market pass gives the award up (`give_up`,
   ``abandoned``), in one transaction: the escrow is released to the poster, the auction moves to
   ``cancelled``, the task goes back to ``posted`` and straight into a new auction with the same
   terms (reserve, bond, rule, verification, phase lengths), and a signed cancel notice (7334) is
   queued for every member. The agent that gave the award up may not bid in that re-auction
   (``409 abandoned``): another node's agent gets the task.

   *Paid exactly once*: money moves only from the escrow of an auction whose award is live. A given-up
   auction's escrow is released in the step that gives it up, its result is refused when it comes
   (kept as evidence in ``federation_market_stale_results``, never verified, never paid: the
   invoice path pays only an awarded auction's held escrow), and the re-auction has an escrow of
   its own that pays its own winner once (`colony.federation.remote_pay`).

   The winner's node, on the notice (`on_cancel`), cancels its task if it has not finished and
   frees the stake lock; its remote auction moves ``won → refunded`` (the poster has its escrow
   back) with the cause recorded. **A no-show is not slashed**: a slash must rest on evidence any
   node can check (a signed failing verdict, an equivocation proof), and a missed deadline is only
   the poster's clock, which cannot tell a crash from a partition — possibly its own. The no-show
   loses the price and the compute it spent. A winner's node back *before* the deadline resumes the
   task from its durable queue (the killed worker's lease expires, `colony.tasks`) and its result
   is taken as usual.

2. **The poster is lost** after bids were committed. A member's market pass (`lapse_orphans`)
   releases its bids' bonds and stake locks once the reveal deadline + ``market_award_grace_s`` has
   passed with no award notice; the remote auction moves ``open → closed``, recorded ``lapsed``. Its
   bidders are no longer bound: an award that arrives later naming one of them is refused
   (recorded, `refuse_late_award`) and a decline (7335) goes back, on which the poster gives the award
   up at once (rule 1, ``declined``) instead of at the deadline. A late award that names none of
   ours changes nothing here: the bonds are back already, and a forfeit it names is not taken (the
   poster was not there to take the reveal).

3. **A person cancels** an awarded auction whose winner is a member's agent (`Market.cancel`): the
   poster's node sends the cancel notice (``cancelled``, `send_cancels`); the winner's node cancels
   its task and frees the stake lock, as in rule 1. No re-auction: a person cancelled the task.

A node that has just (re)started counts no deadline and lapses nothing for `restart_grace_s`
(the loop's start grace: members' links may still be backing off from when it was down, with
results or awards for it queued). A node *stopped* (SIGSTOP) across a deadline has no such grace;
the worst it does is give up an award, or lapse an auction, whose message was still queued —
money stays where it was, the task is auctioned again, and nobody is paid twice.

Partitions need no rule here: messages wait in their sender's outbox (`colony.federation.outbox`)
and arrive once, in order; a payer's credits are spent only on its home ledger (the credits'
facilitator is that node's), so a cut-off node's agents cannot spend twice; replicas catch up by
their roots (`colony.federation.replicate`).

May import `colony.federation`, `colony.market`, `colony.identity`, `colony.store` and `colony.config`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Literal

from colony.federation import _store, membership, remote_store
from colony.federation.errors import FederationError
from colony.federation.inbox import MAX_HANDLER_ATTEMPTS
from colony.federation.loop import MAX_BACKOFF_BEATS, MAX_BACKOFF_S
from colony.federation.outbox import broadcast, send
from colony.federation.queen import LIVE_FACTOR
from colony.federation.remote_wire import (
    CANCEL_KIND,
    DECLINE_KIND,
    RESULT_KIND,
    AwardNotice,
    CancelNotice,
    DeclineNotice,
    ResultBody,
    notice_from_origin,
    parse,
)
from colony.identity.events import Event
from colony.market import stakes
from colony.market.events import MARKET_KINDS, AwardBody, open_market
from colony.market.service import AuctionError, Market, auction_lock, lock_ref
from colony.market.views import AuctionRequest
from colony.store import Row
from colony.tasks.machine import TERMINAL_STATES

if TYPE_CHECKING:
    from colony.config import Settings
    from colony.node import Node

__all__ = [
    "give_up",
    "give_up_overdue",
    "lapse_orphans",
    "note_award",
    "on_cancel",
    "on_decline",
    "refuse_late_award",
    "refuse_stale",
    "restart_grace_s",
    "send_cancels",
]

log = logging.getLogger("colony.federation")
ACTOR = "federation:market"
Ended = Literal["abandoned", "declined", "cancelled"]


def restart_grace_s(settings: Settings) -> float:
    """How long a node that has just started waits before it counts deadlines (the loop's start grace)."""
    beat = settings.federation_heartbeat_s
    return min(MAX_BACKOFF_S, MAX_BACKOFF_BEATS * beat) + LIVE_FACTOR * beat


def _settled(node: Node) -> bool:
    """True once this node has been up for its restart grace (always, when no loop recorded a start)."""
    started = _store.get_self(node.db)["started_at"]
    return not started or time.time() - float(started) >= restart_grace_s(node.settings)


# -- the poster's node: deadlines -------------------------------------------------------------------
def note_award(market: Market, row: Row, award: Event | None) -> int | None:
    """Record the result deadline of an award to a member's agent; returns it (None for a local winner).

    Called in the transaction that queues the award notice, so the deadline the notice tells is the
    one kept.
    """
    winner = row["winner"]
    if award is None or winner is None or market.is_local(winner):
        return None
    bidder = remote_store.bidder(market.node.db, row["id"], winner)
    if bidder is None:
        return None
    known = remote_store.award_row(market.node.db, row["id"])
    if known is not None:
        return int(known["result_deadline"])
    deadline = award.created_at + market.node.settings.market_result_timeout_s
    remote_store.insert_award(market.node.db, row["id"], winner, bidder["node"], deadline)
    return deadline


def _result_waiting(node: Node, sender: str) -> bool:
    """A result from ``sender`` accepted but not handled yet (its handler retried by the sweep)."""
    return any(r["sender"] == sender for r in _store.unhandled(node.db, [RESULT_KIND], MAX_HANDLER_ATTEMPTS))


def give_up_overdue(market: Market) -> list[str]:
    """Give up every award to a member's agent whose result deadline has passed with no result (rule 1)."""
    node = market.node
    awards = remote_store.live_awards(node.db)
    if not awards or not _settled(node):
        return []
    now = market.now()
    awarded = {r["id"]: r for r in market.posted(["awarded"])}
    out = []
    for award in awards:
        row = awarded.get(award["auction"])
        if row is None or now <= award["result_deadline"] or _result_waiting(node, award["node"]):
            continue
        if market.tasks.get(row["task_id"]).state != "assigned":
            continue  # its result came (the verdict decides), or a person moved the task
        again = give_up(market, award["auction"], "abandoned",
                        f"no result from the winner's node by the result deadline {award['result_deadline']}")
        if again is not None:
            out.append(f"gave up {award['auction'][:12]} (abandoned)" + (f", again as {again[:12]}" if again else ""))
    return out


def _again(market: Market, row: Row) -> AuctionRequest:
    """The request that auctions ``row``'s task again on the same terms (phase lengths included)."""
    [(announcement, _)] = [(e, t) for e, t in market.events(row["id"]) if e.kind == MARKET_KINDS["announcement"]]
    spec = {k: v for k, v in row["verify_spec"].items() if k in ("tests", "entry_point", "problem", "validator")}
    return AuctionRequest.model_validate({
        "task_id": row["task_id"], "reserve": row["reserve"], "verification": row["verification"],
        "poster": row["poster_name"], "bond": row["bond"], "rule": row["rule"],
        "commit_s": max(1, row["commit_deadline"] - announcement.created_at),
        "reveal_s": row["reveal_deadline"] - row["commit_deadline"], **spec})


def give_up(market: Market, auction: str, ended: Ended, detail: str) -> str | None:
    """Give up a live award to a member's agent and auction its task again, in one transaction.

    Returns the new auction's id ('' when the task could not be put up again: it stays ``posted``),
    or None when nothing was given up (given up before, or its result came meanwhile).
    """
    node = market.node
    award = remote_store.award_row(node.db, auction)
    if award is None or award["ended"] is not None:
        return None
    row = market.row(auction)
    poster = node.keyring.by_public_key(row["poster"])
    if poster is None:
        return None
    node.keyring.schnorr_key(poster.name)  # both unlocked (scrypt) before the write lock
    node.keyring.node().schnorr_key  # noqa: B018
    request = _again(market, row)

    def step() -> str | None:
        market.db.lock(auction_lock(auction))
        fresh = market.row(auction)
        if fresh["state"] != "awarded" or market.abandon(auction, f"{ended}: {detail}") != "cancelled":
            return None
        try:
            again = market.post(request)
        except AuctionError as exc:  # checked before anything is written: the task stays posted for a person
            log.warning("federation market: auction %s… given up, its task not auctioned again: %s", auction[:12],
                        exc)
            again = ""
        if not remote_store.end_award(node.db, auction, ended, detail, reauction=again or None):
            raise FederationError(f"the award of {auction[:16]}… was given up twice", reason="conflict")
        broadcast(node, CANCEL_KIND, CancelNotice(auction=auction, winner=row["winner"], reason=ended,
                                                  detail=detail[:500], reauction=again or None).model_dump_json())
        return again

    return market.db.atomic(step)


def send_cancels(market: Market) -> list[str]:
    """Tell the members about each award to a member's agent that a person cancelled (rule 3), once."""
    node = market.node
    live = {a["auction"]: a for a in remote_store.live_awards(node.db)}
    if not live:
        return []
    out = []
    for row in market.posted(["cancelled"]):
        award = live.get(row["id"])
        if award is None:
            continue
        node.keyring.node().schnorr_key  # noqa: B018 - unlock (scrypt) before the write lock
        detail = str(row["reason"] or "the task was cancelled")
        with node.db.tx():
            if not remote_store.end_award(node.db, row["id"], "cancelled", detail):
                continue
            broadcast(node, CANCEL_KIND, CancelNotice(auction=row["id"], winner=award["winner"], reason="cancelled",
                                                      detail=detail[:500]).model_dump_json())
        out.append(f"cancel of {row['id'][:12]} sent")
    return out


def refuse_stale(node: Node, row: Row, result: Event, body: ResultBody, sender: str) -> None:
    """Keep, as evidence, a winner's result for an award this node gave up; nothing else happens."""
    award = remote_store.award_row(node.db, row["id"])
    why = (f"the award was given up ({award['ended']}) before the result came" if award and award["ended"]
           else f"the auction is {row['state']}")
    if remote_store.record_stale(node.db, {"event": result.id, "auction": row["id"], "sender": sender,
                                           "winner": result.pubkey, "status": body.status, "reason": why}):
        log.warning("federation market: result for %s… from %s… refused: %s", row["id"][:12], sender[:12], why)


def on_decline(node: Node, message: Event) -> None:
    """Kind 7335: the winner's node refuses our award (it had released its bids): give the award up now."""
    db, sender = node.db, message.pubkey
    try:
        notice = parse(message, DECLINE_KIND, DeclineNotice)
    except FederationError as exc:
        membership.record(db, sender, "bad_signature", f"decline refused: {exc}")
        return
    award = remote_store.award_row(db, notice.auction)
    if award is None or award["winner"] != notice.winner or award["node"] != sender:
        membership.record(db, sender, "bad_signature", f"decline of {notice.auction[:16]}…, an award not made to "
                          "the sending node's agent")
        return
    give_up(Market(node), notice.auction, "declined", f"the winner's node refused the award: {notice.detail}")


# -- a member's node: lapses and notices ------------------------------------------------------------
def lapse_orphans(market: Market) -> list[str]:
    """Release our bids in remote auctions whose award has not come by the reveal deadline + grace (rule 2)."""
    node = market.node
    rows = remote_store.remote_rows(node.db, ["open"])
    if not rows or not _settled(node):
        return []
    now, grace = market.now(), node.settings.market_award_grace_s
    return [f"lapsed {row['id'][:12]}" for row in rows if now > row["reveal_deadline"] + grace and _lapse(market, row)]


def _lapse(market: Market, row: Row) -> bool:
    node, auction = market.node, row["id"]

    def step() -> bool:
        market.db.lock(auction_lock(auction))
        fresh = remote_store.get_remote(node.db, auction)
        if fresh is None or fresh["state"] != "open":
            return False
        for bid in remote_store.bid_rows(node.db, auction):
            if bid["bond"] is None:
                hold = market.hold(bid["bond_hold"])
                if hold is not None and hold.state == "held" and hold.payer == bid["bidder"]:
                    market.ledger.release(hold.id)
                remote_store.update_bid(node.db, auction, bid["bidder"], bond="released")
            if bid["stake_ref"]:
                stakes.unlock(node, bid["stake_ref"])
        remote_store.move_remote(node.db, auction, "open", "closed")
        remote_store.record_end(node.db, auction, "lapsed", f"no award by the reveal deadline "
                                f"{row['reveal_deadline']} + {node.settings.market_award_grace_s} s")
        return True

    return market.db.atomic(step)


def refuse_late_award(node: Node, row: Row, notice: AwardNotice) -> None:
    """An award for an auction that lapsed here: refused, and declined to the poster if it names one of ours."""
    end = remote_store.get_end(node.db, row["id"])
    if end is None or end["cause"] != "lapsed" or notice.award is None:
        return
    winner = open_market(notice.award, AwardBody).winner
    if winner is None or winner not in {b["bidder"] for b in remote_store.bid_rows(node.db, row["id"])}:
        return
    node.keyring.node().schnorr_key  # noqa: B018 - unlock (scrypt) before the write lock
    with node.db.tx():
        if not remote_store.refuse_award(node.db, row["id"]):
            return
        send(node, row["origin"], DECLINE_KIND, DeclineNotice(
            auction=row["id"], winner=winner, detail=f"the bids were released at {end['at']:.0f}: "
                                                     f"{end['detail']}"[:500]).model_dump_json())
    log.warning("federation market: award of %s… came after its bids were released here; declined", row["id"][:12])


def on_cancel(node: Node, message: Event) -> None:
    """Kind 7334: the poster gave up or cancelled our agent's award: cancel its task, free its stake lock."""
    db = node.db
    found = notice_from_origin(db, message, CANCEL_KIND, CancelNotice, "cancel notice")
    if found is None:
        return
    notice, row = found
    if row["state"] != "won" or row["winner"] != notice.winner:
        return  # not our award, or ended here before (lapsed, settled, a notice handled again)
    market = Market(node)

    def step() -> None:
        market.db.lock(auction_lock(row["id"]))
        fresh = remote_store.get_remote(db, row["id"])
        if fresh is None or fresh["state"] != "won":
            return
        task = market.tasks.get(fresh["task_id"])
        if task.state not in TERMINAL_STATES:
            market.tasks.cancel(task.id, actor=ACTOR, reason=f"the poster's node {notice.reason} the award: "
                                                             f"{notice.detail}"[:500])
        stakes.unlock(node, lock_ref(row["id"], row["winner"]))
        remote_store.move_remote(db, row["id"], "won", "refunded")
        remote_store.record_end(db, row["id"], notice.reason, notice.detail)

    market.db.atomic(step)
