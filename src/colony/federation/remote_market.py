"""Work across nodes: a task posted on node A, bid for by agents on B and C, run by the winner at home, paid once.

The auction lives on the poster's node, A, under the market's own rules (`colony.market.service`):
only A awards, verifies and settles it. This module is A's side; `remote_bidding` is the members'.

1. **Announce** — every auction A's agents post is broadcast to the trusted members (kind 7330:
   the signed announcement and A's URL), once, while its commit phase lasts (setting
   ``market_federated``, on by default).
2. **Bids** — a member POSTs its agents' signed commits and reveals to
   ``/federation/v1/market/events`` (`accept_bid`): the bidder must be an agent the calling member
   announced (its card names that node), not one of A's, and stays tied to that node for the
   auction; A inserts the event through the market's normal path (`Market.take_bid`), where the
   arrival time decides and the database refuses late ones. A remote bidder's bond and stake are
   held on its **home** ledger: A's award leaves them alone.
3. **Award** — A's normal award; a remote winner is named through `remote_bidder` and its price
   held in escrow on A's ledger, payable to its account only; A's task is ``assigned`` to that
   account, which no worker on A claims. A then broadcasts the award (7331) with the events it was
   decided from; members recheck it and close their bidders' bonds and stake locks.
4. **Result** — the winner's node sends the winning agent's signed result (7332) through its outbox;
   `on_result` takes it only when signed by the winner and sent by the node it bid from, and moves
   A's task to completed (or failed) as the winner. A's normal verification pass then decides.
5. **Pay** — a passing verdict is recorded first (`Market.settle`); `pay_winners` then pays the
   winner's invoice on its node through x402, from the escrow (`remote_pay`), and `Market.close_paid`
   closes the auction once A's ledger shows the hold captured to the winner. A failing verdict
   refunds the poster on A at once. Either way A broadcasts the signed verification (7333) and the
   winner's node releases or slashes its stake.

When a node is lost — the winner mid-task, the poster before its award — or a person cancels an
awarded auction, `remote_faults` applies its rules: the result deadline, the award given up and
the task auctioned again (its old winner may not bid), a result for a given-up award refused and
kept, the cancel notice (7334) and the decline (7335).

Every handler is idempotent (a message may be handled again after a crash) and a message refused
for what it says — a forged signer, a result from someone other than the winner, an award not
signed by the poster — is recorded as an incident against the sending member and dropped, never
retried; a failure of this node (the database busy) raises, and the inbox retries it. Money moves
only by nonces fixed by the auction (`colony.market.service.escrow_nonce`).

Everything runs in the market worker's pass (`colony.market.worker.register_pass_step`, `step`)
and in the inbox's handlers, registered when this module is imported (the server's
`colony.server.api.federation_market` imports it).

May import `colony.federation`, `colony.market`, `colony.payments`, `colony.identity`,
`colony.store` and `colony.config`; surfaces import it, never the reverse.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from colony.errors import ColonyError
from colony.federation import _store, convict, membership, remote_bidding, remote_faults, remote_store
from colony.federation.announce import url_of
from colony.federation.errors import FederationError, Refused
from colony.federation.messages import register_handler
from colony.federation.outbox import broadcast
from colony.federation.remote_pay import pay_escrow
from colony.federation.remote_wire import (
    AUCTION_KIND,
    AWARD_KIND,
    CANCEL_KIND,
    DECLINE_KIND,
    RESULT_KIND,
    VERDICT_KIND,
    AuctionNotice,
    AwardNotice,
    ResultNotice,
    VerdictNotice,
    member_agents,
    parse,
    read_result,
)
from colony.identity.events import Event
from colony.market.backlog import register_backlog_source
from colony.market.events import MARKET_KINDS, CommitBody, MarketEventError, RevealBody, open_market
from colony.market.service import AuctionError, Market, escrow_nonce, register_remote_bidders
from colony.market.worker import register_pass_step
from colony.payments.journal import open_journal
from colony.store import Row
from colony.tasks.machine import TERMINAL_STATES

if TYPE_CHECKING:
    from colony.node import Node

__all__ = ["accept_bid", "announce_auctions", "on_result", "pay_winners", "remote_bidder", "send_outcomes", "step"]

log = logging.getLogger("colony.federation")


def remote_bidder(market: Market, auction: str, account: str) -> str | None:
    """The name under which ``account`` bid in ``auction`` from a member node (``name@node``), or None."""
    row = remote_store.bidder(market.node.db, auction, account)
    return f"{row['bidder_name']}@{row['node'][:12]}" if row else None


# -- 1. announce --------------------------------------------------------------------------------
def announce_auctions(market: Market) -> list[str]:
    """Broadcast each auction this node's agents posted, still in its commit phase, once."""
    node = market.node
    if not _store.list_members(node.db, "trusted"):
        return []
    done = remote_store.sent(node.db, "announcement")
    now = market.now()
    fresh = [r for r in market.posted(["open"]) if r["id"] not in done and now <= r["commit_deadline"]]
    out = []
    for row in fresh:
        [(event, _)] = [(e, at) for e, at in market.events(row["id"]) if e.kind == MARKET_KINDS["announcement"]]
        notice = AuctionNotice(announcement=event, url=url_of(node.settings, node.db))
        if _send_once(node, row["id"], "announcement", AUCTION_KIND, notice.model_dump_json()):
            out.append(f"announced {row['id'][:12]}")
    return out


def _send_once(node: Node, auction: str, what: str, kind: int, content: str | Callable[[], str]) -> bool:
    """Broadcast a notice about ``auction`` and record it in one transaction; False when it went out before.

    ``content`` may be a function, called inside that transaction (what it records joins it)."""
    node.keyring.node().schnorr_key  # noqa: B018 - unlock (scrypt) before the write lock
    with node.db.tx():
        if not remote_store.mark_sent(node.db, auction, what):
            return False
        broadcast(node, kind, content if isinstance(content, str) else content())
    return True


# -- 2. bids ----------------------------------------------------------------------------------
def accept_bid(node: Node, caller: str, event: Event, *, market: Market | None = None) -> bool:
    """Take a member's bidder's commit or reveal; False when this very event was taken before.

    Raises `Refused`: 403 (the event does not verify, the bidder is not the caller's agent or bid
    from another node, or is this node's own, or its node is convicted of equivocation), 404 (no auction of this node's agents), 409 (too late,
    too early, or a second commit or reveal of the bidder).
    """
    db = node.db
    if event.kind not in (MARKET_KINDS["commit"], MARKET_KINDS["reveal"]):
        raise Refused(403, "invalid", f"Only commits (7201) and reveals (7202) are sent here, not kind {event.kind}.")
    try:
        auction = (open_market(event, CommitBody).auction if event.kind == MARKET_KINDS["commit"]
                   else open_market(event, RevealBody).auction)
    except MarketEventError as exc:
        raise membership.refuse(db, 403, caller, "bad_signature", f"A bid that does not verify: {exc}") from exc
    market = market or Market(node)
    try:
        row = market.row(auction)
    except AuctionError as exc:
        raise Refused(404, "not_found", f"No auction {auction[:16]}… on this node.") from exc
    if row["poster"] not in market.own_accounts():
        raise Refused(404, "not_found", f"Auction {auction[:16]}… was not posted by this node's agents; its poster's "
                                        "node takes its bids.")
    if market.is_local(event.pubkey):
        raise Refused(403, "invalid", "This node's own agents bid here directly, not through a member.")
    convicted = convict.refusal(db, event.pubkey)
    if convicted is not None:
        raise Refused(403, "equivocated", convicted)
    name = member_agents(db, caller).get(event.pubkey)
    if name is None:
        raise membership.refuse(db, 403, caller, "bad_signature", f"The bidder {event.pubkey[:16]}… is not an agent "
                                "your node announced.")
    given_up = remote_store.given_up_for(db, auction)
    if given_up is not None and given_up["winner"] == event.pubkey:
        raise Refused(409, "abandoned", f"The bidder {event.pubkey[:16]}… won this task's previous auction and did "
                                        "not deliver; another agent gets it.")
    known = remote_store.bidder(db, auction, event.pubkey)
    if known is not None and known["node"] != caller:
        raise membership.refuse(db, 403, caller, "bad_signature", f"The bidder {event.pubkey[:16]}… bid in this "
                                "auction from another node.")
    try:
        return market.take_bid(event, auction, lambda: remote_store.record_bidder(db, auction, event.pubkey, name,
                                                                                  caller))
    except MarketEventError as exc:
        raise Refused(409, str(exc.reason), str(exc)) from exc


# -- 3. award and verdict notices ---------------------------------------------------------------
def send_outcomes(market: Market) -> list[str]:
    """Broadcast the award of each announced auction once it is decided, and its verdict once settled."""
    node = market.node
    db = node.db
    announced = remote_store.sent(db, "announcement")
    verified = remote_store.sent(db, "verification")
    if not announced - verified:
        return []
    awarded = remote_store.sent(db, "award")
    out = []
    for auction in sorted(announced - verified):
        row = market.row(auction)
        if row["state"] == "open":
            continue
        events = market.events(auction)
        if auction not in awarded:
            award = next((e for e, _ in events if e.kind == MARKET_KINDS["award"]), None)
            bids = [e for e, _ in events if e.kind in (MARKET_KINDS["announcement"], MARKET_KINDS["commit"],
                                                       MARKET_KINDS["reveal"])]

            def content(row: Row = row, award: Event | None = award, bids: list[Event] = bids) -> str:
                deadline = remote_faults.note_award(market, row, award)
                return AwardNotice(auction=row["id"], award=award, events=bids, escrow=row["escrow_hold"],
                                   result_deadline=deadline).model_dump_json()

            if _send_once(node, auction, "award", AWARD_KIND, content):
                out.append(f"award of {auction[:12]} sent")
        verification = next((e for e, _ in events if e.kind == MARKET_KINDS["verification"]), None)
        if row["state"] in ("paid", "refunded") and verification is not None:
            verdict = VerdictNotice(auction=auction, verification=verification)
            if _send_once(node, auction, "verification", VERDICT_KIND, verdict.model_dump_json()):
                out.append(f"verdict of {auction[:12]} sent")
    return out


# -- 4. results ---------------------------------------------------------------------------------
def on_result(node: Node, message: Event) -> None:
    """A member's winner's signed result: A's task completes (or fails) with it, as the winner."""
    db, sender = node.db, message.pubkey
    try:
        inner = parse(message, RESULT_KIND, ResultNotice).result
        body = read_result(inner)
    except FederationError as exc:
        membership.record(db, sender, "bad_signature", f"result refused: {exc}")
        return
    market = Market(node)
    try:
        row = market.row(body.auction)
    except AuctionError:
        membership.record(db, sender, "bad_signature", f"result for an unknown auction {body.auction[:16]}…")
        return
    bidder = remote_store.bidder(db, body.auction, inner.pubkey)
    if row["poster"] not in market.own_accounts() or row["winner"] != inner.pubkey or bidder is None \
            or bidder["node"] != sender:
        membership.record(db, sender, "bad_signature", f"result for auction {body.auction[:16]}… not signed by its "
                          "winner, or not sent by the winner's node")
        return
    if row["state"] == "cancelled":
        remote_faults.refuse_stale(node, row, inner, body, sender)  # the award was given up: never paid
        return
    task = market.tasks.get(row["task_id"])
    if row["state"] != "awarded" or task.state in TERMINAL_STATES:
        return  # taken before (a message handled again), or the auction moved on without it
    actor = f"agent:{row['winner_name']}"
    if task.state == "assigned":
        market.tasks.transition(task.id, "executing", actor=actor, reason=f"run on node {sender[:12]}…",
                                data={"auction": body.auction, "remote_task": body.task_id}, expect=("assigned",))
    if body.status == "completed":
        market.tasks.transition(task.id, "completed", actor=actor, reason="the winner's signed result",
                                fields={"result": body.result, "error": None}, data={"result_event": inner.id},
                                expect=("executing",))
    else:
        market.tasks.transition(task.id, "failed", actor=actor, reason="the winner's node reports a failure",
                                fields={"error": body.result[:2000] or "failed on the winner's node"},
                                data={"result_event": inner.id}, expect=("executing",))


# -- 5. pay -----------------------------------------------------------------------------------
async def pay_winners(market: Market) -> list[str]:
    """Pay each remote winner whose verdict passed from its escrow (x402), then close the auction."""
    node = market.node
    out = []
    for row in await asyncio.to_thread(market.posted, ["awarded"]):
        auction, winner = row["id"], row["winner"]
        if market.is_local(winner):
            continue
        verdict = await asyncio.to_thread(market.verification, auction)
        if verdict is None or not verdict["passed"]:
            continue
        hold = await asyncio.to_thread(market.hold, row["escrow_hold"])
        if hold is not None and hold.state == "held" and not await _pay(node, row):
            continue
        state = await asyncio.to_thread(market.close_paid, auction)
        out.append(f"paid {auction[:12]} {state}")
    return out


async def _pay(node: Node, row: Row) -> bool:
    bidder = await asyncio.to_thread(remote_store.bidder, node.db, row["id"], row["winner"])
    member = None if bidder is None else await asyncio.to_thread(_store.get_member, node.db, bidder["node"])
    poster = node.keyring.by_public_key(row["poster"])
    if member is None or poster is None:
        return False
    poster_key = await asyncio.to_thread(node.keyring.schnorr_key, poster.name)
    node_ident = await asyncio.to_thread(node.keyring.node)
    settled = await pay_escrow(
        journal=open_journal(node.db, node.settings), node_key=node_ident.schnorr_key, poster_key=poster_key,
        poster_name=poster.name, base_url=member["url"], auction=row["id"], hold_id=row["escrow_hold"],
        nonce=escrow_nonce("escrow", row["id"]), winner=row["winner"], price=row["price"],
        asset=node_ident.public_hex)
    return settled is not None


# -- the pass ---------------------------------------------------------------------------------
async def step(market: Market) -> list[str]:
    """This node's share of work across nodes in one market pass: both sides, each part on its own."""
    if not market.node.settings.market_federated:
        return []
    parts: list[tuple[str, Callable[[], Awaitable[list[str]]]]] = [
        ("announce", lambda: asyncio.to_thread(announce_auctions, market)),
        ("bid", lambda: remote_bidding.bid_remote(market)),
        ("notices", lambda: asyncio.to_thread(send_outcomes, market)),
        ("pay", lambda: pay_winners(market)),
        ("results", lambda: asyncio.to_thread(remote_bidding.send_results, market)),
        ("give up", lambda: asyncio.to_thread(remote_faults.give_up_overdue, market)),
        ("convicted", lambda: asyncio.to_thread(convict.step, market)),
        ("cancels", lambda: asyncio.to_thread(remote_faults.send_cancels, market)),
        ("lapse", lambda: asyncio.to_thread(remote_faults.lapse_orphans, market)),
    ]
    done: list[str] = []
    for name, part in parts:
        try:
            done += await part()
        except ColonyError as exc:  # a peer down, the database busy: the next pass tries again
            log.warning("federation market %s: %s", name, exc)
        except Exception:  # a pass must outlive one bad part: the others still run, the next pass retries it
            log.exception("federation market %s failed", name)
    return done


register_handler(RESULT_KIND, on_result)
register_handler(AUCTION_KIND, remote_bidding.on_auction)
register_handler(AWARD_KIND, remote_bidding.on_award)
register_handler(VERDICT_KIND, remote_bidding.on_verdict)
register_handler(CANCEL_KIND, remote_faults.on_cancel)
register_handler(DECLINE_KIND, remote_faults.on_decline)
register_remote_bidders(remote_bidder)
register_pass_step("federation", step)
register_backlog_source("federation", lambda market, account: remote_store.plate(market.node.db, account))
