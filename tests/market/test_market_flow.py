"""The marketplace end to end on a real node: two tasks auctioned among three hosted agents, the
winner running each through the agent loop (scripted model), one result passing its sandboxed
tests and paid from escrow, the other failing a validator's review, refunded and slashed; the
signed events rechecked, the rows and balances asserted against hand-worked values
(`market_helpers` derives the bids). On both engines (`engine`): with ``COLONY_DATABASE_URL``
every row — auctions, events, escrow, stake, tasks — is on PostgreSQL and none in the node's file."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from market_helpers import (
    BIDS_AT_PRIOR,
    DIGIT_SUM_TESTS,
    GOOD_CODE,
    POSTER_FUNDS,
    STAKE,
    WALLET,
    World,
    build_world,
    scripted,
    sqlite_market_rows,
)

from colony.market import _market_store, stakes
from colony.market.events import MARKET_KINDS
from colony.market.queries import auction_detail, reputation_table
from colony.market.reputation import expectation
from colony.market.views import AuctionRequest
from colony.market.worker import market_pass
from colony.observability.metrics import registry, reset_metrics
from colony.tasks import state_from_events
from colony.testing import ScriptedModelServer

BOND = 100_000
GOAL = "Write a Python function digit_sum(n) returning the sum of the decimal digits of abs(n)."


@pytest.fixture
async def world(engine: str, model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    w = build_world()
    yield w
    await w.node.aclose()


async def test_two_tasks_auctioned_worked_verified_paid_and_refunded(world: World, model: ScriptedModelServer) -> None:
    node, market, clock = world.node, world.market, world.clock
    reset_metrics()
    model.set_script(scripted({"ada": GOOD_CODE, "bob": GOOD_CODE, "cy": GOOD_CODE}))
    treasury = stakes.treasury(node).public_hex

    # -- task 1: posted with a reserve, verified by tests in the sandbox ----------------------------
    first = market.post(AuctionRequest(goal=GOAL, skills=["python"], reserve=5_000_000, verification="tests",
                                       tests=DIGIT_SUM_TESTS, entry_point="digit_sum", bond=BOND, commit_s=60,
                                       reveal_s=30))
    row = market.row(first)
    task_id = row["task_id"]
    assert market.tasks.get(task_id).state == "bidding"
    assert (row["commit_deadline"], row["reveal_deadline"]) == (clock.now + 60, clock.now + 90)

    report = await market_pass(node, market=market)  # commit phase: ada, bob and cy commit (vera lacks python)
    assert sorted(c.split("→")[0] for c in report.commits) == ["ada", "bob", "cy"] and report.reveals == []
    for name in ("ada", "bob", "cy"):  # the bond is held from each wallet; the stake backing the bid is locked
        assert world.balance(name) == WALLET - BOND and world.held(name) == STAKE + BOND
        assert stakes.locked(node, name) == -(-BIDS_AT_PRIOR[name] // 4)
    assert auction_detail(market, first).bids is None  # sealed until the reveal deadline

    clock.now += 61
    report = await market_pass(node, market=market)
    assert sorted(r.split("→")[0] for r in report.reveals) == ["ada", "bob", "cy"]

    clock.now += 30  # past the reveal deadline: award, run the task as ada, verify, pay
    report = await market_pass(node, market=market)
    assert report.awarded == [f"{first[:12]} awarded"] and report.ran == task_id and report.run_outcome == "completed"
    assert report.verified == [f"{first[:12]} paid"]

    price = BIDS_AT_PRIOR["bob"]  # reverse Vickrey: ada's 2,285,714 wins, paid bob's 3,428,571
    row = market.row(first)
    assert (row["state"], row["winner_name"], row["price"]) == ("paid", "ada", price)
    assert market.hold(row["escrow_hold"]).state == "captured"  # type: ignore[union-attr]
    assert world.balance("colony") == POSTER_FUNDS - price and world.held("colony") == 0
    assert world.balance("ada") == WALLET + price and world.held("ada") == STAKE
    for name in ("bob", "cy"):
        assert world.balance(name) == WALLET and world.held(name) == STAKE  # bonds back
    for name in ("ada", "bob", "cy"):
        assert stakes.locked(node, name) == 0
    task = market.tasks.get(task_id)
    assert task.state == "completed" and task.assignee == world.key("ada") and task.result == GOOD_CODE
    events = market.tasks.events(task_id)
    assert [e.to_state for e in events] == ["posted", "bidding", "assigned", "executing", "completed"]
    assert state_from_events(events) == "completed"
    # the task ran through the agent loop as ada: her persona opened the system prompt
    [request] = [r for r in model.requests if "digit_sum" in str(r["messages"][-1]["content"])]
    assert str(request["messages"][0]["content"]).startswith("You are Ada")
    detail = auction_detail(market, first)
    assert [(b.name, b.amount, b.outcome) for b in detail.bids or []] == [  # in the auction's ranking
        ("ada", BIDS_AT_PRIOR["ada"], "won"), ("bob", BIDS_AT_PRIOR["bob"], "lost"),
        ("cy", BIDS_AT_PRIOR["cy"], "lost")]
    assert detail.verification_result is not None and detail.verification_result.passed
    assert [e.kind for e in detail.events] == ["announcement", "commit", "commit", "commit", "reveal", "reveal",
                                               "reveal", "award", "verification", "feedback"]
    check = market.recheck(first)
    assert check.ok and (check.winner, check.price) == (world.key("ada"), price)
    # one positive rating backed by the captured escrow; the rater (colony) weighs 0.5: r = 0.5, E = 1.5/2.5
    assert market.reputation(world.key("ada")) == pytest.approx(0.6)

    # -- task 2: a validator's review fails the result -----------------------------------------------
    model.set_script(scripted({"ada": "Here it is: digit_sum = len", "vera": "FAIL\nIt counts characters."}))
    second = market.post(AuctionRequest(goal="Explain how digit_sum handles negative numbers.", skills=["python"],
                                        reserve=20_000_000, verification="review", validator="vera", bond=BOND,
                                        commit_s=60, reveal_s=30))
    await market_pass(node, market=market)
    clock.now += 61
    await market_pass(node, market=market)
    clock.now += 30
    report = await market_pass(node, market=market)
    assert report.verified == [f"{second[:12]} refunded"]

    ada_bid = 1_818_182  # at p = 0.6 now (market_helpers): still the lowest; paid bob's 3,428,571 again
    detail = auction_detail(market, second)
    assert {(b.name, b.amount) for b in detail.bids or []} == {("ada", ada_bid), ("bob", BIDS_AT_PRIOR["bob"]),
                                                               ("cy", BIDS_AT_PRIOR["cy"])}
    row = market.row(second)
    assert (row["state"], row["winner_name"], row["price"]) == ("refunded", "ada", price)
    assert market.hold(row["escrow_hold"]).state == "released"  # type: ignore[union-attr]
    # the slash: 50 % of the stake the price needed, ⌈3,428,571/4⌉ = 857,143 → 428,571, to the treasury
    slash = 428_571
    assert detail.verification_result is not None and not detail.verification_result.passed
    assert detail.verification_result.slashed == slash and detail.verification_result.decided_by == "review"
    assert stakes.staked(node, "ada") == STAKE - slash
    assert market.ledger.balance(treasury).balance == slash
    assert world.balance("colony") == POSTER_FUNDS - price  # refunded: only the first task was paid for
    assert world.balance("ada") == WALLET + price  # the bond came back; the slash came out of the stake
    verification = [e for e, _ in market.events(second) if e.kind == MARKET_KINDS["verification"]]
    assert [e.pubkey for e in verification] == [world.key("vera")]  # the validator signed the verdict
    # r = 0.95·0.5 = 0.475, s = 0.5·1: E = 1.475/2.975, down from 0.6
    assert market.reputation(world.key("ada")) == pytest.approx(expectation(0.475, 0.5))
    assert market.recheck(second).ok
    table = {r.name: r for r in reputation_table(market)}
    assert table["ada"].ratings == 2 and table["ada"].wins == 2 and table["ada"].paid == price
    assert table["bob"].reputation == 0.5 and table["ada"].staked == STAKE - slash
    assert market.ledger.verify().ok
    assert len(_market_store.all_feedback(market.db)) == 2
    if node.settings.database_url is not None:
        assert sqlite_market_rows(world) == 0
        assert world.count("SELECT count(*) FROM market_auctions") == 2
        assert world.count("SELECT count(*) FROM market_stake_events WHERE op = 'slash'") == 1

    def sample(name: str, **labels: str) -> float | None:
        return registry().get_sample_value(name, labels)

    for event, count in (("posted", 2), ("awarded", 2), ("paid", 1), ("refunded", 1)):
        assert sample("colony_market_auctions_total", event=event) == count
    assert sample("colony_market_bids_total", phase="commit") == 6
    assert sample("colony_market_bids_total", phase="reveal") == 6
    assert sample("colony_market_escrow_micro_credits_total", outcome="held") == 2 * price
    assert sample("colony_market_escrow_micro_credits_total", outcome="captured") == price
    assert sample("colony_market_escrow_micro_credits_total", outcome="refunded") == price
    assert sample("colony_market_slashes_total") == 1 and sample("colony_market_slashed_micro_credits_total") == slash

