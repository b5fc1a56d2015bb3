"""The early-contributor bonus (RuVector §5.2) on verified work, when the operator turns it on —
a treasury mint in the settling step, on both engines (`engine`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from market_helpers import World, build_world, finish_task, open_auction, run_phases

from colony.ledger import MICRO
from colony.market.contribution import bonus
from colony.market.service import AuctionError
from colony.market.stake import MarketParams
from colony.market.verify_result import Verdict


def test_the_bonus_follows_the_seeds_curve() -> None:
    params = MarketParams()
    # 1 + 9·exp(−h / 1e6): 10× at genesis, 1 + 9/e at 1M CPU-hours, 1× far out.
    assert bonus(5 * MICRO, 0.0, params) == 45 * MICRO
    assert bonus(MICRO, 1_000_000.0, params) == 3_310_915  # 9/e = 3.310915 (rounded to the ppm)
    assert bonus(MICRO, 50_000_000.0, params) == 0


@pytest.fixture
def worlds(engine: str) -> Iterator[Callable[[], World]]:
    """Builds a node without a validator on the test's engine (after the test set its environment)."""
    built: list[World] = []

    def make() -> World:
        built.append(build_world(validator=False))
        return built[-1]

    yield make
    for w in built:
        w.close()


def test_a_verified_result_earns_the_bonus_once_and_the_ledger_still_verifies(
        worlds: Callable[[], World], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_MARKET_CONTRIBUTION", "1")
    world = worlds()
    supply = world.market.ledger.store.supply()
    auction = open_auction(world)
    assert run_phases(world, auction) == "awarded"
    row = world.market.row(auction)
    winner, price = row["winner_name"], row["price"]
    before = world.balance(winner)
    finish_task(world, auction, "def digit_sum(n): ...")
    assert world.market.decide(auction, True, actor="owner") == "paid"
    # No verified compute before this auction: the multiplier is 10×, the bonus nine times the price.
    assert world.balance(winner) == before + price + 9 * price
    assert world.market.ledger.store.supply() == supply + 9 * price
    with pytest.raises(AuctionError, match="only an awarded auction"):  # settled: no second verdict
        world.market.decide(auction, True, actor="owner")
    assert world.market.settle(auction, Verdict(True, "again"), signer=world.node.keyring.node().schnorr_key,
                               decided_by="test") == "paid"  # a racing settle finds it paid: nothing moves
    assert world.balance(winner) == before + 10 * price
    report = world.market.ledger.verify()
    assert report.ok, report


def test_without_the_setting_nothing_is_minted(worlds: Callable[[], World]) -> None:
    world = worlds()
    supply = world.market.ledger.store.supply()
    auction = open_auction(world)
    run_phases(world, auction)
    row = world.market.row(auction)
    before = world.balance(row["winner_name"])
    finish_task(world, auction, "done")
    assert world.market.decide(auction, True, actor="owner") == "paid"
    assert world.balance(row["winner_name"]) == before + row["price"]
    assert world.market.ledger.store.supply() == supply
