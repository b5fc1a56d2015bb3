"""Work across nodes, one handler at a time: two real nodes in process (their own files and keys), messages
signed as the federation sends them, and what each handler refuses, records and does exactly once.

Node a posts; node b hosts ada, who bids. The handlers are called with the signed envelopes the outbox
would deliver (the inbox's own checks — member, sequence, signature of the envelope — are tested in
tests/federation/test_refusals.py); here the content is what is forged or replayed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from colony.config import Settings
from colony.federation import _store, membership, remote_bidding, remote_market, remote_store
from colony.federation.announce import Announcer
from colony.federation.errors import Refused
from colony.federation.messages import message_event
from colony.federation.remote_wire import (
    AUCTION_KIND,
    AWARD_KIND,
    RESULT_KIND,
    VERDICT_KIND,
    AuctionNotice,
    ResultBody,
    ResultNotice,
    result_event,
)
from colony.identity.events import Event, sign_event
from colony.identity.keys import SchnorrKey
from colony.ledger import MICRO
from colony.market import stakes
from colony.market.auction import announcement_event, award_event, commit_event, settle
from colony.market.bidders import eligible, round_inputs
from colony.market.cost import CostModel
from colony.market.events import Announcement
from colony.market.profiles import AgentSpec, create_agent
from colony.market.service import Market
from colony.market.stake import settle_verification, verification_event
from colony.market.verify_result import Verdict
from colony.market.views import AuctionRequest
from colony.node import Node

STAKE = 5 * MICRO


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Pair:
    a: Node
    b: Node
    auction: str
    terms: Announcement
    seq: int = 0

    def envelope(self, sender: Node, kind: int, content: str) -> Event:
        """A message as the sender's outbox signs it (the seq only has to be well formed here)."""
        self.seq += 1
        receiver = (self.b if sender is self.a else self.a).keyring.node().public_hex
        return message_event(sender.keyring.node().schnorr_key, receiver, self.seq, kind, content)

    def incidents(self, node: Node) -> list[str]:
        return [r["kind"] for r in _store.list_incidents(node.db)]


def _node(root: Path, name: str) -> Node:
    return Node(Settings(home=root / name))


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    a, b = _node(tmp_path, "a"), _node(tmp_path, "b")
    create_agent(b.keyring, AgentSpec(name="ada", persona="You are Ada.", skills=["python"],
                                      cost=CostModel(overhead=3 * MICRO)))
    market_b = Market(b)
    ada = b.keyring.agent("ada").public_hex
    market_b.ledger.mint(ada, 3 * MICRO + STAKE, "test: wallet")
    stakes.deposit(b, "ada", STAKE)
    market_a = Market(a)
    market_a.ledger.mint(a.keyring.agent("colony").public_hex, 100 * MICRO, "test: the poster's budget")
    for me, other, url in ((a, b, "http://127.0.0.1:2"), (b, a, "http://127.0.0.1:1")):
        membership.trust(me.db, Announcer(other, url).build(), url, "operator")
    auction = market_a.post(AuctionRequest.model_validate({
        "goal": "Write digit_sum(n).", "skills": ["python"], "reserve": 20 * MICRO, "verification": "approval",
        "commit_s": 600, "reveal_s": 60}))
    yield Pair(a, b, auction, market_a.terms(auction))
    a.db.close()
    b.db.close()


def _announce(p: Pair) -> None:
    [(event, _)] = [(e, t) for e, t in Market(p.a).events(p.auction) if e.kind == 7200]
    remote_bidding.on_auction(p.b, p.envelope(p.a, AUCTION_KIND, AuctionNotice(announcement=event,
                                                                               url="http://127.0.0.1:1").model_dump_json()))


def _commit(p: Pair) -> Event:
    """ada commits on b (bond and stake at home) and the commit is taken by a."""
    _announce(p)
    market_b = Market(p.b)
    [(agent, decision)] = eligible(market_b, p.auction, p.terms, round_inputs(market_b), {p.terms.poster})
    assert remote_bidding.commit_remote(market_b, p.auction, p.terms, decision,
                                        p.b.keyring.schnorr_key(agent.name)) is True
    [bid] = remote_store.bid_rows(p.b.db, p.auction)
    event: Event = bid["commit_event"]
    assert remote_market.accept_bid(p.a, p.b.keyring.node().public_hex, event) is True
    return event


def _award(p: Pair) -> str:
    """ada commits and reveals; a awards past the reveal deadline; returns the award notice's content."""
    _commit(p)
    market_b = Market(p.b, clock=Clock(p.terms.commit_deadline + 1))
    [row] = remote_store.remote_rows(p.b.db, ["open"])
    [bid] = remote_store.bid_rows(p.b.db, p.auction)
    reveal = remote_bidding._reveal(market_b, row, bid)
    assert reveal is not None
    market_a = Market(p.a, clock=Clock(p.terms.commit_deadline + 1))
    assert remote_market.accept_bid(p.a, p.b.keyring.node().public_hex, reveal, market=market_a) is True
    later = Market(p.a, clock=Clock(p.terms.reveal_deadline + 1))
    assert later.award(p.auction) == "awarded"
    remote_store.mark_sent(p.a.db, p.auction, "announcement")
    assert remote_market.send_outcomes(later) == [f"award of {p.auction[:12]} sent"]
    [pending] = _store.pending(p.a.db, p.b.keyring.node().public_hex)
    return str(Event.model_validate_json(pending["event"]).content)


# -- 7330 ---------------------------------------------------------------------------------------------
def test_an_auction_notice_is_kept_once_and_one_not_posted_by_the_senders_agent_is_refused(pair: Pair) -> None:
    _announce(pair)
    _announce(pair)  # delivered again after a crash: kept once
    assert [r["id"] for r in remote_store.remote_rows(pair.b.db, ["open"])] == [pair.auction]

    mallory = SchnorrKey.generate()  # a poster a never announced
    forged = Announcement(**{**pair.terms.model_dump(), "poster": mallory.public_hex})
    notice = AuctionNotice(announcement=announcement_event(mallory, forged, created_at=1), url="http://127.0.0.1:1")
    remote_bidding.on_auction(pair.b, pair.envelope(pair.a, AUCTION_KIND, notice.model_dump_json()))
    assert remote_store.get_remote(pair.b.db, forged.auction_id) is None
    assert pair.incidents(pair.b) == ["bad_signature"]


# -- bids over HTTP ---------------------------------------------------------------------------------
def test_a_members_bid_is_taken_once_and_forged_foreign_or_late_bids_are_refused(pair: Pair) -> None:
    b_key = pair.b.keyring.node().public_hex
    event = _commit(pair)
    assert remote_market.accept_bid(pair.a, b_key, event) is False  # a retry: the same event, taken before
    assert remote_store.bidder(pair.a.db, pair.auction, event.pubkey)["node"] == b_key  # type: ignore[index]
    # The bond and the stake are held on b, the bidder's home; a holds nothing for it.
    assert Market(pair.b).ledger.balance(event.pubkey).held == pair.terms.bond + STAKE
    assert Market(pair.a).ledger_store.account(event.pubkey) is None

    mallory = SchnorrKey.generate()  # not an agent b announced
    stranger = commit_event(mallory, pair.terms, 1_000, "11" * 32, created_at=1)
    with pytest.raises(Refused) as refused:
        remote_market.accept_bid(pair.a, b_key, stranger)
    assert refused.value.status == 403 and refused.value.reason == "bad_signature"

    tampered = event.model_copy(update={"content": event.content.replace('"v":1', '"v":2')})
    with pytest.raises(Refused) as refused:
        remote_market.accept_bid(pair.a, b_key, tampered)
    assert refused.value.status == 403

    late = Market(pair.a, clock=Clock(pair.terms.commit_deadline + 1))
    key = pair.b.keyring.schnorr_key("ada")
    second = commit_event(key, pair.terms, 2_000, "22" * 32, created_at=pair.terms.commit_deadline)
    with pytest.raises(Refused) as refused:
        remote_market.accept_bid(pair.a, b_key, second, market=late)
    assert refused.value.status == 409 and refused.value.reason == "late_commit"
    assert pair.incidents(pair.a) == ["bad_signature", "bad_signature"]


# -- 7331 ---------------------------------------------------------------------------------------------
def test_an_award_not_signed_by_the_poster_is_refused_and_a_real_one_is_applied_once(pair: Pair) -> None:
    content = _award(pair)
    ada = pair.b.keyring.agent("ada").public_hex
    market_b = Market(pair.b)
    [bid] = remote_store.bid_rows(pair.b.db, pair.auction)
    assert market_b.hold(bid["bond_hold"]).state == "held"  # type: ignore[union-attr]

    notice = json.loads(content)
    terms = pair.terms
    # The same decision signed by another key (the node's, not the poster's): refused, nothing moves.
    outcome = settle(terms, [Event.model_validate(e) for e in notice["events"] if e["kind"] != 7200],
                     now=terms.reveal_deadline + 1)
    impostor = SchnorrKey.generate()
    wrong = award_event(impostor, Announcement(**{**terms.model_dump(), "poster": impostor.public_hex}),
                        outcome, created_at=terms.reveal_deadline + 1)
    remote_bidding.on_award(pair.b, pair.envelope(pair.a, AWARD_KIND, json.dumps({**notice,
                                                                                "award": wrong.model_dump()})))
    assert pair.incidents(pair.b) == ["bad_signature"]
    assert market_b.hold(bid["bond_hold"]).state == "held"  # type: ignore[union-attr]

    for _ in range(2):  # delivered twice: applied once
        remote_bidding.on_award(pair.b, pair.envelope(pair.a, AWARD_KIND, content))
    row = remote_store.get_remote(pair.b.db, pair.auction)
    assert row is not None and row["state"] == "won" and row["winner"] == ada
    assert market_b.hold(bid["bond_hold"]).state == "released"  # type: ignore[union-attr]
    tasks = [t for t in market_b.tasks.list_tasks() if t.assignee == ada]
    assert [(t.id, t.state, t.goal) for t in tasks] == [(row["task_id"], "assigned", terms.goal)]
    assert stakes.locked(pair.b, "ada") > 0  # the winner's stake stays locked until the verdict


# -- 7332 ---------------------------------------------------------------------------------------------
def test_a_result_counts_only_signed_by_the_winner_and_once(pair: Pair) -> None:
    content = _award(pair)
    remote_bidding.on_award(pair.b, pair.envelope(pair.a, AWARD_KIND, content))
    row = remote_store.get_remote(pair.b.db, pair.auction)
    assert row is not None
    market_a = Market(pair.a)
    task_id = market_a.row(pair.auction)["task_id"]
    body = ResultBody(auction=pair.auction, task_id=row["task_id"], status="completed", result="def f(): ...")

    create_agent(pair.b.keyring, AgentSpec(name="bo", persona="You are Bo.", skills=["python"]))
    not_winner = result_event(pair.b.keyring.schnorr_key("bo"), body)
    remote_market.on_result(pair.a, pair.envelope(pair.b, RESULT_KIND,
                                                  ResultNotice(result=not_winner).model_dump_json()))
    assert market_a.tasks.get(task_id).state == "assigned" and pair.incidents(pair.a) == ["bad_signature"]

    signed = result_event(pair.b.keyring.schnorr_key("ada"), body)
    for _ in range(2):
        remote_market.on_result(pair.a, pair.envelope(pair.b, RESULT_KIND, ResultNotice(result=signed).model_dump_json()))
    task = market_a.tasks.get(task_id)
    assert (task.state, task.result) == ("completed", "def f(): ...")
    assert [e.to_state for e in market_a.tasks.events(task_id)].count("completed") == 1


# -- 7333 ---------------------------------------------------------------------------------------------
def test_a_failed_verdict_slashes_the_winner_at_home_once_and_a_forged_one_does_nothing(pair: Pair) -> None:
    content = _award(pair)
    remote_bidding.on_award(pair.b, pair.envelope(pair.a, AWARD_KIND, content))
    market_a = Market(pair.a)
    row_a = market_a.row(pair.auction)
    ada = row_a["winner"]
    staked = stakes.staked(pair.b, "ada")

    forged = verification_event(SchnorrKey.generate(), pair.auction, ada, False, "approval", created_at=1)
    remote_bidding.on_verdict(pair.b, pair.envelope(pair.a, VERDICT_KIND, json.dumps(
        {"auction": pair.auction, "verification": forged.model_dump()})))
    assert stakes.staked(pair.b, "ada") == staked and pair.incidents(pair.b) == ["bad_signature"]

    task_id = row_a["task_id"]
    market_a.tasks.transition(task_id, "executing", actor="test", reason="test")
    market_a.tasks.transition(task_id, "failed", actor="test", reason="test", fields={"error": "no"})
    assert market_a.settle(pair.auction, Verdict(False, "wrong"), signer=pair.a.keyring.node().schnorr_key,
                           decided_by="test") == "refunded"
    assert market_a.hold(row_a["escrow_hold"]).state == "released"  # type: ignore[union-attr]
    verification = next(e for e, _ in market_a.events(pair.auction) if e.kind == 7204)
    message = json.dumps({"auction": pair.auction, "verification": verification.model_dump()})
    for _ in range(2):
        remote_bidding.on_verdict(pair.b, pair.envelope(pair.a, VERDICT_KIND, message))
    slash = settle_verification(row_a["price"], False, Market(pair.b).params).slashed
    assert slash > 0 and stakes.staked(pair.b, "ada") == staked - slash
    assert Market(pair.b).ledger.balance(pair.terms.poster).balance == slash  # to the poster's account, on b
    assert stakes.locked(pair.b, "ada") == 0
    assert remote_store.get_remote(pair.b.db, pair.auction)["state"] == "refunded"  # type: ignore[index]


def test_a_message_of_the_wrong_kind_or_shape_is_recorded_and_dropped(pair: Pair) -> None:
    garbage = pair.envelope(pair.a, AWARD_KIND, '{"auction": "nope"}')
    remote_bidding.on_award(pair.b, garbage)
    remote_market.on_result(pair.a, pair.envelope(pair.b, RESULT_KIND, json.dumps(
        {"result": sign_event(SchnorrKey.generate(), RESULT_KIND, "{}", []).model_dump()})))
    assert pair.incidents(pair.b) == ["bad_signature"] and pair.incidents(pair.a) == ["bad_signature"]
