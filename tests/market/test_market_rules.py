"""The market service against strategic and careless participants, and the invariants its database
holds: non-revealers forfeit their bond, late commits and reveals are refused (by the trigger, the
whole transaction with them), an auction nobody can win leaves the escrow untouched, a person's
verdict, a benchmark problem, a cancelled task, idempotent awards, and SQL that tries to rewrite
history. Amounts are hand-worked (`market_helpers`). Every test runs on both engines (`engine`):
the same refusals come from SQLite's triggers and from their PL/pgSQL ports."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from market_helpers import (
    BIDS_AT_PRIOR,
    GOOD_CODE,
    POSTER_FUNDS,
    STAKE,
    WALLET,
    World,
    build_world,
    finish_task,
    open_auction,
    run_phases,
)

from colony.errors import StoreError
from colony.market import _market_store, stakes
from colony.market.auction import Outcome, award_event, recheck, settle
from colony.market.bidders import bid_round, bidders, commit, decide, reveal
from colony.market.bidding import reservation_price
from colony.market.events import MARKET_KINDS, MarketEventError
from colony.market.profiles import AgentRecord
from colony.market.queries import auction_detail
from colony.market.service import AuctionError, Market
from colony.market.stake import MarketParams
from colony.market.views import AuctionRequest
from colony.tasks.models import TaskSpec

BOND = 100_000


@pytest.fixture
def world(engine: str) -> Iterator[World]:
    w = build_world()
    yield w
    w.close()


def test_a_bidder_that_does_not_reveal_forfeits_its_bond_to_the_treasury(world: World) -> None:
    market, clock = world.market, world.clock
    auction = open_auction(world)
    row = market.row(auction)
    clock.now = row["commit_deadline"]
    assert sorted(c.split("→")[0] for c in bid_round(market)[0]) == ["ada", "bob", "cy"]
    clock.now = row["commit_deadline"] + 1
    ada_sealed = next(s for s in _sealed(market, auction) if s["bidder_name"] == "ada")
    reveal(market, auction, market.terms(auction), ada_sealed)  # only ada reveals; bob and cy go silent
    clock.now = row["reveal_deadline"] + 1
    assert market.award(auction) == "awarded"

    treasury = stakes.treasury(world.node).public_hex
    row = market.row(auction)
    # ada alone revealed: she wins and, alone, is paid the reserve
    assert (row["winner_name"], row["price"]) == ("ada", 5_000_000)
    assert market.ledger.balance(treasury).balance == 2 * BOND
    for name in ("bob", "cy"):
        assert world.balance(name) == WALLET - BOND and world.held(name) == STAKE  # bond gone, stake kept
        assert stakes.locked(world.node, name) == 0  # the stake lock of a losing (silent) bid is released
    assert world.balance("ada") == WALLET and stakes.locked(world.node, "ada") == -(-BIDS_AT_PRIOR["ada"] // 4)
    assert world.balance("colony") == POSTER_FUNDS - 5_000_000 and world.held("colony") == 5_000_000
    detail = auction_detail(market, auction)
    bids = [(b.name, b.outcome) for b in detail.bids or []]
    assert bids[0] == ("ada", "won") and sorted(bids[1:]) == [("bob", "forfeited"), ("cy", "forfeited")]
    assert market.recheck(auction).ok
    assert market.ledger.verify().ok


def test_late_commits_and_out_of_phase_reveals_are_refused_and_move_nothing(world: World) -> None:
    market, clock, node = world.market, world.clock, world.node
    auction = open_auction(world)
    row = market.row(auction)
    terms = market.terms(auction)
    ada = next(a for a in _bidders(world) if a.name == "ada")
    decision = decide(ada, terms, reputation=0.5, step=1.0, free_stake=STAKE, params=market.params)
    key = node.keyring.schnorr_key("ada")

    clock.now = row["commit_deadline"] + 1
    with pytest.raises(MarketEventError) as refused:
        commit(market, auction, terms, decision, key)
    assert refused.value.reason == "late_commit"
    # the bond hold and the stake lock were in the refused transaction: nothing of them remains
    assert world.balance("ada") == WALLET and world.held("ada") == STAKE
    assert stakes.locked(node, "ada") == 0
    assert world.count("SELECT count(*) FROM market_events WHERE kind = ?", (MARKET_KINDS["commit"],)) == 0
    assert bid_round(market) == ([], [])  # the worker does not even try: the commit phase is over

    clock.now = row["commit_deadline"]  # in time
    assert commit(market, auction, terms, decision, key) is not None
    sealed = _sealed(market, auction)[0]
    with pytest.raises(MarketEventError) as early:
        reveal(market, auction, terms, sealed)  # still in the commit phase
    assert early.value.reason == "early_reveal"
    clock.now = row["reveal_deadline"] + 1
    with pytest.raises(MarketEventError) as late:
        reveal(market, auction, terms, sealed)
    assert late.value.reason == "late_reveal"


def test_an_auction_without_a_valid_bid_fails_its_task_and_holds_nothing(world: World) -> None:
    # Reserve 2,000,000: below every agent's price at the prior (ada's is 2,285,714), so nobody bids.
    auction = open_auction(world, reserve=2_000_000)
    assert run_phases(world, auction) == "void"
    row = world.market.row(auction)
    assert row["reason"] == "no valid bid" and row["escrow_hold"] is None and row["winner"] is None
    task = world.market.tasks.get(row["task_id"])
    assert task.state == "failed" and task.error == "auction: no valid bid"
    assert world.balance("colony") == POSTER_FUNDS and world.held("colony") == 0
    assert world.market.recheck(auction).ok  # the signed award says: no winner


def test_the_poster_must_cover_the_reserve_and_requests_must_make_sense(world: World) -> None:
    market = world.market
    before = market.tasks.counts()
    with pytest.raises(AuctionError) as unfunded:
        open_auction(world, reserve=POSTER_FUNDS + 1)
    assert unfunded.value.reason == "unfunded"
    assert market.tasks.counts() == before  # the new task was in the refused transaction
    cases = [({"verification": "tests"}, "invalid"),  # tests without tests and entry_point
             ({"verification": "approval", "problem": "colony/t1-digit-sum"}, "invalid"),
             ({"verification": "benchmark", "problem": "no/such-problem"}, "invalid"),
             ({"verification": "review", "validator": "nobody"}, "not_found"),
             ({"verification": "review", "validator": "colony"}, "invalid"),  # the poster judging its own
             ({"task_id": "task_nope"}, "invalid"),  # a goal and a task_id at once
             ({"poster": "ghost"}, "not_found")]
    for fields, reason in cases:
        with pytest.raises(AuctionError) as refused:
            open_auction(world, **fields)
        assert refused.value.reason == reason, fields
    posted = market.tasks.post(TaskSpec(goal="no budget"))
    with pytest.raises(AuctionError, match="no credit budget"):
        market.post(AuctionRequest(task_id=posted.id, verification="approval"))
    assert market.tasks.counts() == {**before, "posted": before["posted"] + 1}


def test_an_agent_bids_only_when_its_price_fits_and_its_stake_backs_it(world: World) -> None:
    params = world.market.params
    ada = next(a for a in _bidders(world) if a.name == "ada")
    terms = world.market.terms(open_auction(world))
    assert decide(ada, terms, reputation=0.5, step=1.0, free_stake=STAKE, params=params).amount == 2_285_714
    no_stake = decide(ada, terms, reputation=0.5, step=1.0, free_stake=571_428, params=params)
    assert no_stake.reason == "stake" and no_stake.stake_needed == 571_429  # ⌈2,285,714/4⌉
    assert decide(ada, terms, reputation=0.2, step=1.0, free_stake=STAKE, params=params).reason == "reputation"
    assert decide(ada, terms, reputation=0.5, step=0.1, free_stake=STAKE, params=params).reason == "above_reserve"
    # below the stake-free size nothing is slashed: the price is ⌈c/p⌉ exactly
    assert reservation_price(1_000_000, 500_000, MarketParams(), ceiling=10**9) == 2_000_000
    # a chance so low that the slash outgrows the pay: p − (1−p)·k ≤ 0 at p = 0.1 (0.1 − 0.9·0.125 < 0)
    assert reservation_price(10_000_000, 100_000, MarketParams(), ceiling=10**12) is None


def test_a_persons_verdict_settles_an_approval_auction(world: World) -> None:
    market = world.market
    auction = open_auction(world)
    assert run_phases(world, auction) == "awarded"
    with pytest.raises(AuctionError) as early:
        market.decide(auction, True, actor="alice")
    assert early.value.reason == "not_ready"
    finish_task(world, auction, "done")
    assert market.decide(auction, True, actor="alice", reason="looks right") == "paid"
    with pytest.raises(AuctionError) as again:  # a second verdict finds the auction settled
        market.decide(auction, False, actor="mallory")
    assert again.value.reason == "conflict" and market.row(auction)["state"] == "paid"
    verdict = auction_detail(market, auction).verification_result
    assert verdict is not None and verdict.passed and verdict.decided_by == "person:alice"
    assert world.balance("ada") == WALLET + BIDS_AT_PRIOR["bob"]


def test_a_benchmark_problem_verifies_the_result_in_the_sandbox(world: World) -> None:
    auction = open_auction(world, verification="benchmark", problem="colony/t1-digit-sum")
    assert run_phases(world, auction) == "awarded"
    finish_task(world, auction, f"Here is my solution:\n{GOOD_CODE}\n")
    assert asyncio.run(world.market.verify(auction)) == "paid"
    assert world.market.row(auction)["state"] == "paid"


def test_a_task_cancelled_after_the_award_gets_the_poster_its_money_back(world: World) -> None:
    market = world.market
    auction = open_auction(world)
    assert run_phases(world, auction) == "awarded"
    market.tasks.cancel(market.row(auction)["task_id"], actor="alice")
    assert asyncio.run(market.verify(auction)) == "cancelled"
    assert world.balance("colony") == POSTER_FUNDS and world.held("colony") == 0
    assert stakes.staked(world.node, "ada") == STAKE and stakes.locked(world.node, "ada") == 0  # no slash
    assert market.reputation(world.key("ada")) == 0.5  # no rating: nothing was verified


def test_awarding_twice_moves_credits_once(world: World) -> None:
    auction = open_auction(world)
    assert run_phases(world, auction) == "awarded"
    assert world.market.award(auction) == "awarded"
    assert world.count("SELECT count(*) FROM market_events WHERE kind = ?", (MARKET_KINDS["award"],)) == 1
    assert world.balance("colony") == POSTER_FUNDS - BIDS_AT_PRIOR["bob"]


def test_an_unsettled_escrow_backs_no_rating(world: World) -> None:
    market = world.market
    auction = open_auction(world)
    run_phases(world, auction)
    row = market.row(auction)
    # while the escrow is held, a rating that names it would not count
    assert not market.is_settled(row["escrow_hold"], row["poster"], row["winner"])
    assert not market.is_settled("f" * 64, row["poster"], row["winner"])


def test_the_database_refuses_to_rewrite_the_market(world: World) -> None:
    auction = open_auction(world)
    run_phases(world, auction)
    db = world.market.db  # straight SQL, past the service: the database itself refuses
    for sql, message in [
        ("UPDATE market_events SET raw = raw WHERE auction = ?", "append-only"),
        ("DELETE FROM market_events WHERE auction = ?", "append-only"),
        ("UPDATE market_auctions SET state = 'paid' WHERE id = ?", "must match its escrow hold and its verdict"),
        ("UPDATE market_auctions SET state = 'cancelled' WHERE id = ?", "must match its escrow"),
        ("UPDATE market_auctions SET price = reserve + 1 WHERE id = ?", r"only moves|must match|CHECK"),
        ("UPDATE market_auctions SET reserve = 1 WHERE id = ?", "only moves"),
        ("DELETE FROM market_auctions WHERE id = ?", "never deleted"),
    ]:
        with pytest.raises(StoreError, match=message):
            db.execute(sql, (auction,))
    award = next(e for e, _ in world.market.events(auction) if e.kind == MARKET_KINDS["award"])
    with pytest.raises(MarketEventError) as twice:
        db.atomic(lambda: _market_store.insert_event(db, award.model_copy(update={"id": "0" * 64}), auction,
                                                      2_000_000_000))
    assert twice.value.reason == "duplicate"  # one award per auction
    other = open_auction(world, goal="Another task.")
    with pytest.raises(StoreError, match=r"only moves|must match"):  # open cannot jump to refunded
        db.execute("UPDATE market_auctions SET state = 'refunded' WHERE id = ?", (other,))
    commit_event = next(e for e, _ in world.market.events(auction) if e.kind == MARKET_KINDS["commit"])
    with pytest.raises(StoreError, match="late_commit"):  # a commit arriving after the deadline
        db.execute("INSERT INTO market_events(id, kind, auction, pubkey, created_at, received_at, raw) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   ("1" * 64, commit_event.kind, other, commit_event.pubkey, commit_event.created_at, 2_000_000_000,
                    commit_event.model_copy(update={"id": "1" * 64}).model_dump_json()))
    with pytest.raises(StoreError, match=r"(?i)check constraint"):  # an indexed column the signed JSON contradicts
        db.execute("INSERT INTO market_events(id, kind, auction, pubkey, created_at, received_at, raw) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   ("2" * 64, commit_event.kind, other, "ab" * 32, commit_event.created_at, commit_event.created_at,
                    commit_event.model_copy(update={"id": "2" * 64}).model_dump_json()))


def test_recheck_catches_an_award_that_the_events_do_not_support(world: World) -> None:
    market = world.market
    auction = open_auction(world)
    run_phases(world, auction)
    events = [e for e, _ in market.events(auction)]
    assert recheck(events).ok
    terms = market.terms(auction)
    bids = [e for e in events if e.kind in (MARKET_KINDS["commit"], MARKET_KINDS["reveal"])]
    award = next(e for e in events if e.kind == MARKET_KINDS["award"])
    honest = settle(terms, bids, now=award.created_at)
    inflated = Outcome(**{**honest.__dict__, "price": terms.reserve})  # the poster's claim, paying the reserve
    forged = award_event(world.node.keyring.schnorr_key("colony"), terms, inflated, created_at=award.created_at)
    result = recheck([e for e in events if e.kind != MARKET_KINDS["award"]] + [forged])
    assert not result.ok and any(p.startswith("price") for p in result.problems)


def _bidders(world: World) -> list[AgentRecord]:
    return bidders(world.market)


def _sealed(market: Market, auction: str) -> list[dict[str, Any]]:
    return _market_store.sealed_bids(market.db, auction)
