"""Exactly once across processes: two market workers racing to award one auction write one award
and move the escrow and bonds once, and two racing to settle it pay the winner once; a worker killed (SIGKILL) in the middle of an award or of a
settlement leaves nothing of it, and the next worker does it whole — the winner paid exactly once.

The workers are real processes on the node's database (the suite's environment, inherited), each
with its own `Market` on a clock fixed past the reveal deadline. Every test runs on both engines
(`engine`): the node's SQLite file, where the file's write lock serialises the workers, and
PostgreSQL, where the auction's named lock does and a killed worker's dropped connection rolls
its transaction back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from market_helpers import (
    BIDS_AT_PRIOR,
    POSTER_FUNDS,
    STAKE,
    WALLET,
    World,
    build_world,
    finish_task,
    open_auction,
    sqlite_market_rows,
)

from colony.market.events import MARKET_KINDS

PRELUDE = """
import sys, time
from pathlib import Path
from colony.config import Settings
from colony.node import Node
from colony.market.service import Market
from colony.market.stake import MarketParams
node = Node(Settings())
market = Market(node, clock=lambda: float(sys.argv[2]), params=MarketParams(stake_free_bid=0))
auction, signal_file = sys.argv[1], Path(sys.argv[3])
"""

RACER = PRELUDE + """
from colony.market.verify_result import Verdict
node.keyring.node(), node.keyring.schnorr_key("colony"), node.keyring.schnorr_key("ada")  # keys unlocked first
while not signal_file.exists():  # start together
    time.sleep(0.001)
if sys.argv[4] == "award":
    print(market.award(auction))
else:
    print(market.settle(auction, Verdict(True, "approved"), signer=node.keyring.node().schnorr_key, decided_by="test"))
"""

#: Run one step and freeze inside its transaction, right after the ledger moved credits.
FROZEN = PRELUDE + """
from colony.ledger import Ledger
from colony.market.verify_result import Verdict
step = sys.argv[4]
original = Ledger.pay if step == "award" else Ledger.capture
def frozen(self, *args, **kwargs):
    result = original(self, *args, **kwargs)
    signal_file.write_text("moved")
    time.sleep(120)
    return result
if step == "award":
    Ledger.pay = frozen
    market.award(auction)
else:
    Ledger.capture = frozen
    market.settle(auction, Verdict(True, "approved"), signer=node.keyring.node().schnorr_key, decided_by="test")
"""


@pytest.fixture
def world(engine: str) -> Iterator[World]:
    w = build_world()
    yield w
    w.close()


def _bid(world: World) -> str:
    """An approval auction with all three bids committed and revealed; the clock past its reveal deadline."""
    from colony.market.bidders import bid_round

    auction = open_auction(world)
    row = world.market.row(auction)
    world.clock.now = row["commit_deadline"]
    bid_round(world.market)
    world.clock.now = row["commit_deadline"] + 1
    bid_round(world.market)
    world.clock.now = row["reveal_deadline"] + 1
    return auction


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=os.environ.copy())


def test_two_workers_racing_award_once_and_move_credits_once(world: World, tmp_path: Path) -> None:
    auction = _bid(world)
    go = tmp_path / "go"
    racers = [_spawn(RACER, auction, str(world.clock.now), str(go), "award") for _ in range(2)]
    time.sleep(1.5)  # both processes up and waiting (imports take about a second)
    go.write_text("go")
    outputs = [p.communicate(timeout=60) for p in racers]
    assert [p.returncode for p in racers] == [0, 0], outputs
    assert sorted(o.strip() for o, _ in outputs) == ["awarded", "awarded"]  # the second found it awarded

    assert world.count("SELECT count(*) FROM market_events WHERE auction = ? AND kind = ?",
                       (auction, MARKET_KINDS["award"])) == 1
    price = BIDS_AT_PRIOR["bob"]
    assert world.balance("colony") == POSTER_FUNDS - price and world.held("colony") == price
    assert world.count("SELECT count(*) FROM ledger_holds WHERE payer = ? AND payee IS NOT NULL",
                       (world.key("colony"),)) == 1
    for name in ("ada", "bob", "cy"):
        assert world.balance(name) == WALLET and world.held(name) == STAKE  # each bond released once
    task_events = world.market.tasks.events(world.market.row(auction)["task_id"])
    assert [e.to_state for e in task_events].count("assigned") == 1
    assert world.market.ledger.verify().ok
    if world.node.settings.database_url is not None:
        assert sqlite_market_rows(world) == 0  # everything above was read from PostgreSQL


def test_two_workers_racing_a_settlement_pay_the_winner_once(world: World, tmp_path: Path) -> None:
    auction = _bid(world)
    assert world.market.award(auction) == "awarded"
    finish_task(world, auction, "done")
    go = tmp_path / "go"
    racers = [_spawn(RACER, auction, str(world.clock.now), str(go), "settle") for _ in range(2)]
    time.sleep(1.5)
    go.write_text("go")
    outputs = [p.communicate(timeout=60) for p in racers]
    assert [p.returncode for p in racers] == [0, 0], outputs
    assert sorted(o.strip() for o, _ in outputs) == ["paid", "paid"]  # the second found it paid

    for kind in ("verification", "feedback"):
        assert world.count("SELECT count(*) FROM market_events WHERE auction = ? AND kind = ?",
                           (auction, MARKET_KINDS[kind])) == 1
    price = BIDS_AT_PRIOR["bob"]
    assert world.balance("ada") == WALLET + price and world.held("ada") == STAKE
    assert world.balance("colony") == POSTER_FUNDS - price and world.held("colony") == 0
    assert world.count("SELECT count(*) FROM ledger_entries WHERE account = ? AND kind = 'credit' AND "
                       "counterparty = ?", (world.key("ada"), world.key("colony"))) == 1
    assert world.market.reputation(world.key("ada")) > 0.5  # one rating, backed by the captured escrow
    assert world.market.ledger.verify().ok


@pytest.mark.parametrize("step", ["award", "settle"])
def test_a_worker_killed_mid_step_leaves_nothing_and_the_next_pays_exactly_once(
        world: World, tmp_path: Path, step: str) -> None:
    market = world.market
    auction = _bid(world)
    if step == "settle":
        assert market.award(auction) == "awarded"
        finish_task(world, auction, "done")
    before = {name: (world.balance(name), world.held(name)) for name in ("colony", "ada", "bob", "cy")}
    moved = tmp_path / "moved"
    worker = _spawn(FROZEN, auction, str(world.clock.now), str(moved), step)
    deadline = time.monotonic() + 60
    while not moved.exists():
        assert worker.poll() is None, worker.communicate()
        assert time.monotonic() < deadline, "the worker never reached the ledger move"
        time.sleep(0.01)
    worker.send_signal(signal.SIGKILL)  # inside the transaction, after the credits moved in it
    worker.communicate(timeout=30)

    # nothing of the killed step remains: state, balances, events as before it
    expected = "open" if step == "award" else "awarded"
    assert market.row(auction)["state"] == expected
    assert {name: (world.balance(name), world.held(name)) for name in before} == before
    kind = MARKET_KINDS["award" if step == "award" else "verification"]
    assert world.count("SELECT count(*) FROM market_events WHERE auction = ? AND kind = ?", (auction, kind)) == 0

    # the next worker does it whole, once
    if step == "award":
        assert market.award(auction) == "awarded"
        finish_task(world, auction, "done")
    assert market.decide(auction, True, actor="alice") == "paid"
    price = BIDS_AT_PRIOR["bob"]
    assert world.balance("ada") == WALLET + price and world.balance("colony") == POSTER_FUNDS - price
    assert world.held("colony") == 0
    assert world.count("SELECT count(*) FROM ledger_entries WHERE account = ? AND kind = 'credit' AND "
                       "counterparty = ?", (world.key("ada"), world.key("colony"))) == 1
    assert market.ledger.verify().ok
