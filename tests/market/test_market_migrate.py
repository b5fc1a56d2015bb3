"""`colony db migrate --to`: a node's market moves to PostgreSQL with its ledger and its tasks — an
auction in flight, the bids' events in arrival order, stake, a proposal — and the next step runs
there: the awarded task is claimed by its winner and the verdict pays it, exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from market_helpers import (
    BIDS_AT_PRIOR,
    PARAMS,
    POSTER_FUNDS,
    WALLET,
    World,
    build_world,
    finish_task,
    open_auction,
    run_phases,
)
from typer.testing import CliRunner

from colony.cli import app as cli_app
from colony.config import Settings
from colony.market import gov_service as gov
from colony.market.governance import SetMarketParam
from colony.market.service import Market
from colony.node import Node

MOVED = ("market_events", "market_auctions", "market_sealed_bids", "market_stake_holds", "market_stake_events",
         "market_stake_locks", "gov_proposals", "gov_snapshots", "gov_log", "ledger_holds", "tasks")


@pytest.fixture
def worlds(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[World]]:
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    opened: list[World] = []
    yield opened
    for w in opened:
        w.close()


def _counts(world: World) -> dict[str, int]:
    return {t: world.count(f"SELECT count(*) FROM {t}") for t in MOVED}


def test_an_awarded_auction_moves_to_postgresql_and_is_settled_there(
        worlds: list[World], pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    before = build_world()
    worlds.append(before)
    auction = open_auction(before)
    assert run_phases(before, auction) == "awarded"
    gov.propose(before.node, SetMarketParam(name="slash_failed_bp", value=6_000), by="ada", now=int(before.clock.now))
    counts, events = _counts(before), before.market.events(auction)
    assert all(counts.values()), counts
    before.close()
    worlds.remove(before)

    moved: Any = CliRunner().invoke(cli_app, ["db", "migrate", "--to", pg_url, "--json"], catch_exceptions=False)
    assert moved.exit_code == 0, moved.output

    monkeypatch.setenv("COLONY_DATABASE_URL", pg_url)
    node = Node(Settings())
    after = World(node, Market(node, clock=before.clock, params=PARAMS), before.clock)
    worlds.append(after)
    assert _counts(after) == counts
    assert after.market.events(auction) == events  # the arrival order survives the move
    assert after.market.row(auction)["state"] == "awarded"
    finish_task(after, auction, "done")  # the copied task keeps its assignee: the winner's worker claims it
    assert after.market.decide(auction, True, actor="alice") == "paid"
    price = BIDS_AT_PRIOR["bob"]
    assert after.balance("ada") == WALLET + price and after.balance("colony") == POSTER_FUNDS - price
    assert after.held("colony") == 0
    assert node.db.scalar("SELECT count(*) FROM market_verifications") == 0  # the new rows are on PostgreSQL
    assert after.count("SELECT count(*) FROM market_verifications") == 1
    assert after.market.ledger.verify().ok
