"""Work across nodes under faults, one rule at a time: two real nodes in process (own files, keys and
ledgers), the signed envelopes the outbox would deliver, and the market's clock moved past the deadlines.

Node a posts; node b hosts ada, who wins. The rules are `colony.federation.remote_faults`'s: an award whose
result does not come by its deadline is given up and the task auctioned again, a late result is refused
and kept, a member releases its bids when the award never comes and declines it when it comes late, and
a cancelled award stops the winner's task and frees its stake. The same faults with real processes
(kill -9, SIGSTOP) are in test_faults_processes.py and test_faults_partition.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from test_remote_market import STAKE, Clock, Pair, _award, pair  # noqa: F401 - pair: the fixture below uses it

from colony.federation import _store, remote_bidding, remote_faults, remote_market, remote_store
from colony.federation.errors import Refused
from colony.federation.remote_wire import (
    AWARD_KIND,
    CANCEL_KIND,
    DECLINE_KIND,
    RESULT_KIND,
    ResultBody,
    ResultNotice,
    result_event,
)
from colony.identity.events import Event
from colony.market import stakes
from colony.market.auction import commit_event
from colony.market.bidding import bid_salt
from colony.market.service import Market
from colony.node import Node


@pytest.fixture
def p(pair: Pair) -> Pair:  # noqa: F811 - test_remote_market's fixture, asked for by name
    return pair


def _queued(sender: Node, receiver: Node, kind: int) -> list[str]:
    """The contents of the messages of ``kind`` ``sender`` has queued for ``receiver``, in order."""
    events = [Event.model_validate_json(r["event"]) for r in _store.pending(sender.db, receiver.keyring.node().public_hex)]
    return [e.content for e in events if e.kind == kind]


def _won(p: Pair) -> tuple[str, int]:
    """ada wins on a and b applies the award; returns b's task id and the award's result deadline."""
    content = _award(p)
    remote_bidding.on_award(p.b, p.envelope(p.a, AWARD_KIND, content))
    row = remote_store.get_remote(p.b.db, p.auction)
    assert row is not None and row["state"] == "won"
    deadline = json.loads(content)["result_deadline"]
    award = next(e for e, _ in Market(p.a).events(p.auction) if e.kind == 7203)
    assert deadline == award.created_at + p.a.settings.market_result_timeout_s
    return str(row["task_id"]), int(deadline)


def _result(p: Pair, task_id: str) -> Event:
    body = ResultBody(auction=p.auction, task_id=task_id, status="completed", result="def f(): ...")
    return p.envelope(p.b, RESULT_KIND, ResultNotice(result=result_event(p.b.keyring.schnorr_key("ada"), body))
                      .model_dump_json())


def test_an_award_past_its_deadline_is_given_up_and_auctioned_again_and_its_late_result_refused(p: Pair) -> None:
    b_task, deadline = _won(p)
    at_deadline = Market(p.a, clock=Clock(deadline))
    row = at_deadline.row(p.auction)
    poster, price = row["poster"], row["price"]
    assert remote_faults.give_up_overdue(at_deadline) == []  # not past it yet
    assert at_deadline.ledger.balance(poster).held == price

    late = Market(p.a, clock=Clock(deadline + 1))
    [line] = remote_faults.give_up_overdue(late)
    assert remote_faults.give_up_overdue(late) == []  # given up once
    assert late.row(p.auction)["state"] == "cancelled"
    assert late.hold(row["escrow_hold"]).state == "released"  # type: ignore[union-attr]
    assert late.ledger.balance(poster).held == 0
    award = remote_store.award_row(p.a.db, p.auction)
    assert award is not None and award["ended"] == "abandoned" and award["reauction"][:12] in line
    # The same task, auctioned again on the same terms; the poster holds nothing for it yet.
    again = late.row(award["reauction"])
    task = late.tasks.get(again["task_id"])
    assert (again["task_id"], again["state"], task.state, task.assignee) == (row["task_id"], "open", "bidding", None)
    assert (again["reserve"], again["bond"], again["rule"], again["verification"]) == (
        row["reserve"], row["bond"], row["rule"], row["verification"])
    assert again["reveal_deadline"] - again["commit_deadline"] == row["reveal_deadline"] - row["commit_deadline"]

    # ada, who gave the award up, may not bid for the task again.
    ada = p.b.keyring.schnorr_key("ada")
    terms = late.terms(again["id"])
    bid = commit_event(ada, terms, 1000, bid_salt(ada, again["id"]), created_at=late.now())
    with pytest.raises(Refused) as refused:
        remote_market.accept_bid(p.a, p.b.keyring.node().public_hex, bid, market=late)
    assert (refused.value.status, refused.value.reason) == (409, "abandoned")

    # ada's result comes after all: refused and kept as evidence, twice handled, once kept; nothing moves.
    for _ in range(2):
        remote_market.on_result(p.a, _result(p, b_task))
    [stale] = remote_store.stale_results(p.a.db)
    assert (stale["auction"], stale["winner"], stale["status"]) == (p.auction, ada.public_hex, "completed")
    assert "abandoned" in stale["reason"]
    assert late.tasks.get(row["task_id"]).state == "bidding" and late.verification(p.auction) is None
    assert _store.list_incidents(p.a.db) == []  # a late result is no misbehaviour

    # b hears of it: its task stops, ada's stake lock is freed and nothing is slashed.
    [notice] = _queued(p.a, p.b, CANCEL_KIND)
    assert json.loads(notice)["reason"] == "abandoned" and json.loads(notice)["reauction"] == again["id"]
    for _ in range(2):
        remote_faults.on_cancel(p.b, p.envelope(p.a, CANCEL_KIND, notice))
    market_b = Market(p.b)
    assert market_b.tasks.get(b_task).state == "cancelled"
    assert stakes.locked(p.b, "ada") == 0 and stakes.staked(p.b, "ada") == STAKE
    assert remote_store.get_remote(p.b.db, p.auction)["state"] == "refunded"  # type: ignore[index]
    assert remote_store.get_end(p.b.db, p.auction)["cause"] == "abandoned"  # type: ignore[index]
    assert remote_bidding.send_results(market_b) == []  # nothing goes back for a cancelled award


def test_a_result_before_the_deadline_is_taken_and_the_award_is_kept(p: Pair) -> None:
    b_task, deadline = _won(p)
    remote_market.on_result(p.a, _result(p, b_task))
    late = Market(p.a, clock=Clock(deadline + 1))
    assert remote_faults.give_up_overdue(late) == []
    row = late.row(p.auction)
    assert row["state"] == "awarded" and late.tasks.get(row["task_id"]).state == "completed"
    assert remote_store.award_row(p.a.db, p.auction)["ended"] is None  # type: ignore[index]
    assert remote_store.stale_results(p.a.db) == []


def test_a_member_releases_its_bids_when_the_award_never_comes_and_declines_it_when_it_comes_late(p: Pair) -> None:
    content = _award(p)  # a awarded ada, but the notice does not reach b in time
    market_b = Market(p.b)
    [bid] = remote_store.bid_rows(p.b.db, p.auction)
    assert market_b.hold(bid["bond_hold"]).state == "held" and stakes.locked(p.b, "ada") > 0  # type: ignore[union-attr]
    grace = p.b.settings.market_award_grace_s
    assert remote_faults.lapse_orphans(Market(p.b, clock=Clock(p.terms.reveal_deadline + grace))) == []
    lapsing = Market(p.b, clock=Clock(p.terms.reveal_deadline + grace + 1))
    assert remote_faults.lapse_orphans(lapsing) == [f"lapsed {p.auction[:12]}"]
    assert remote_faults.lapse_orphans(lapsing) == []
    assert market_b.hold(bid["bond_hold"]).state == "released"  # type: ignore[union-attr]
    assert stakes.locked(p.b, "ada") == 0
    assert remote_store.get_remote(p.b.db, p.auction)["state"] == "closed"  # type: ignore[index]

    # The award comes after all: refused (no task on b), declined to a once.
    for _ in range(2):
        remote_bidding.on_award(p.b, p.envelope(p.a, AWARD_KIND, content))
    assert [t for t in market_b.tasks.list_tasks() if t.assignee is not None] == []
    assert remote_store.get_end(p.b.db, p.auction)["award_refused_at"] is not None  # type: ignore[index]
    [decline] = _queued(p.b, p.a, DECLINE_KIND)

    # A decline sent by a node the award was not made to is refused and recorded.
    remote_faults.on_decline(p.a, p.envelope(p.a, DECLINE_KIND, decline))
    assert [r["kind"] for r in _store.list_incidents(p.a.db)] == ["bad_signature"]
    market_a = Market(p.a)
    assert market_a.row(p.auction)["state"] == "awarded"
    # b's decline: a gives the award up at once, before the deadline, and auctions the task again.
    for _ in range(2):
        remote_faults.on_decline(p.a, p.envelope(p.b, DECLINE_KIND, decline))
    assert market_a.row(p.auction)["state"] == "cancelled"
    award = remote_store.award_row(p.a.db, p.auction)
    assert award is not None and award["ended"] == "declined" and award["reauction"] is not None
    assert market_a.row(award["reauction"])["state"] == "open"
    assert len(_queued(p.a, p.b, CANCEL_KIND)) == 1


def test_a_cancelled_award_stops_the_winners_task_and_frees_its_stake_without_a_re_auction(p: Pair) -> None:
    b_task, _ = _won(p)
    market_a = Market(p.a)
    row = market_a.row(p.auction)
    market_a.tasks.cancel(row["task_id"], actor="test", reason="not needed any more")
    assert asyncio.run(market_a.verify(p.auction)) == "cancelled"
    assert remote_faults.send_cancels(market_a) == [f"cancel of {p.auction[:12]} sent"]
    assert remote_faults.send_cancels(market_a) == []
    assert remote_store.award_row(p.a.db, p.auction)["reauction"] is None  # type: ignore[index]
    [notice] = _queued(p.a, p.b, CANCEL_KIND)

    # Sent by b itself (not the auction's node): refused and recorded, nothing moves.
    remote_faults.on_cancel(p.b, p.envelope(p.b, CANCEL_KIND, notice))
    assert [r["kind"] for r in _store.list_incidents(p.b.db)] == ["bad_signature"]
    assert Market(p.b).tasks.get(b_task).state == "assigned"
    for _ in range(2):
        remote_faults.on_cancel(p.b, p.envelope(p.a, CANCEL_KIND, notice))
    assert Market(p.b).tasks.get(b_task).state == "cancelled"
    assert stakes.locked(p.b, "ada") == 0 and stakes.staked(p.b, "ada") == STAKE
    assert remote_store.get_end(p.b.db, p.auction)["cause"] == "cancelled"  # type: ignore[index]

