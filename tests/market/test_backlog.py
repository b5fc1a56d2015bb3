"""A busy agent prices its backlog: each won task not yet done adds `MarketParams.backlog_bp` (25 %
by default) of the task's cost to its next bid, so work that keeps arriving goes to an idle agent
once the cheapest is loaded, and back to the cheapest once it has caught up. On both engines.

Hand-worked (`market_helpers`: p = 0.5, the least b with 0.5·b − c − 0.5·⌊⌈b/4⌉/2⌋ ≥ 0; ada's
cost is 1,000,000 and bob's 1,500,000, whose bid is 3,428,571):

- at 30 % and two unfinished tasks ada's cost is 1,600,000: least bid 3,657,143 (σ = 457,143 and
  0.5·3,657,143 − 1,600,000 − 228,571.5 = 0; one less falls short by 0.5), above bob's;
- at 25 % and three, 1,750,000: least bid 4,000,000 (σ = 500,000, gain exactly 0).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from market_helpers import (
    BIDS_AT_PRIOR,
    COSTS,
    GOOD_CODE,
    World,
    build_world,
    finish_task,
    open_auction,
    run_phases,
)

from colony.ledger import MICRO
from colony.market import stakes
from colony.market.backlog import backlog
from colony.market.bidders import decide
from colony.market.governance import market_params
from colony.market.profiles import list_agents
from colony.market.stake import MarketParams


@pytest.fixture
def world(engine: str) -> Iterator[World]:
    w = build_world(params=MarketParams(stake_free_bid=0, backlog_bp=3_000))  # 30 %: no tie with bob on the way
    for name in ("ada", "bob"):  # stake enough that no bid here is refused for want of it
        w.market.ledger.mint(w.key(name), 20 * MICRO, "test: more stake")
        stakes.deposit(w.node, name, 20 * MICRO)
    yield w
    w.close()


def sealed(world: World, auction: str, name: str) -> int:
    return int(world.market.db.scalar("SELECT amount FROM market_sealed_bids WHERE auction = ? AND bidder = ?",
                                      (auction, world.key(name))))


def test_won_unfinished_work_raises_the_next_bid_until_an_idle_agent_wins(world: World) -> None:
    won = []
    for _ in range(2):
        auction = open_auction(world)
        assert run_phases(world, auction) == "awarded"
        assert world.market.row(auction)["winner"] == world.key("ada")
        won.append(auction)
    assert backlog(world.market, world.key("ada")) == 2 and backlog(world.market, world.key("bob")) == 0
    assert sealed(world, won[0], "ada") == BIDS_AT_PRIOR["ada"]  # nothing on her plate yet

    third = open_auction(world)
    assert run_phases(world, third) == "awarded"
    assert sealed(world, third, "ada") == 3_657_143 and sealed(world, third, "bob") == BIDS_AT_PRIOR["bob"]
    assert world.market.row(third)["winner"] == world.key("bob")
    assert backlog(world.market, world.key("bob")) == 1

    for auction in won:  # ada catches up: her tasks are done (awaiting the poster's verdict)
        finish_task(world, auction, GOOD_CODE)
    assert backlog(world.market, world.key("ada")) == 0
    fifth = open_auction(world)
    assert run_phases(world, fifth) == "awarded"
    assert sealed(world, fifth, "ada") == BIDS_AT_PRIOR["ada"]
    assert world.market.row(fifth)["winner"] == world.key("ada")


def test_the_premium_is_a_governed_parameter_and_zero_turns_it_off(world: World) -> None:
    ada = next(a for a in list_agents(world.node.keyring) if a.name == "ada")
    terms = world.market.terms(open_auction(world))
    params = MarketParams(stake_free_bid=0)

    def bid(p: MarketParams, load: int) -> int | None:
        return decide(ada, terms, reputation=0.5, step=1.0, free_stake=50 * MICRO, params=p, backlog=load).amount

    assert bid(params, 0) == BIDS_AT_PRIOR["ada"] and bid(params, 3) == 4_000_000
    off = market_params({"backlog_bp": 0}, params)
    assert bid(off, 3) == bid(off, 0) == BIDS_AT_PRIOR["ada"]
    doubled = market_params({"backlog_bp": 10_000}, params)  # +100 % per task: cost 2,000,000 at one
    assert bid(doubled, 1) == bid(params, 4) == BIDS_AT_PRIOR["cy"] and COSTS["cy"] == 2 * COSTS["ada"]
    with pytest.raises(ValueError, match="backlog"):
        decide(ada, terms, reputation=0.5, step=1.0, free_stake=0, params=params, backlog=-1)
    with pytest.raises(ValueError, match="backlog_bp"):
        MarketParams(backlog_bp=100_001)
