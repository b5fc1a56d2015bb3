"""Shared set-up for the market service tests: a real node, hosted agents with wallets and stake,
a market on a clock the test moves, and a scripted model that answers as each agent.

Hand-worked numbers used across the tests (params: `PARAMS`, stake needed from the first
micro-credit; stake 25 %, slash 50 % of it, so the slash rate k = 0.125):

- a bid is the least ``b`` with ``p·b − c − (1−p)·σ(b) ≥ 0``, ``σ(b) = ⌊⌈b/4⌉/2⌋``;
- at p = 0.5 (everyone's prior, the predictor untrained): b ≈ c/(0.5 − 0.5·0.125) = c/0.4375:
  ada (c = 1,000,000) → 2,285,714: σ = ⌊571,429/2⌋ = 285,714 and 0.5·(2,285,714 − 285,714) = 1,000,000
  exactly, while 2,285,713 falls short by 0.5; bob (1,500,000) → 3,428,571 (σ = 428,571, gain 0);
  cy (2,000,000) → 4,571,428 (σ = 571,428, gain 0).
- ada at p = 0.6 (after one paid task): b ≈ 1,000,000/(0.6 − 0.4·0.125) = 1,818,181.8 → 1,818,182
  (σ = ⌊454,546/2⌋ = 227,273: 0.6·1,818,182 − 0.4·227,273 = 1,000,000.0; one less falls short).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from colony.config import Settings
from colony.ledger import MICRO
from colony.market import stakes
from colony.market.cost import CostModel
from colony.market.profiles import AgentSpec, create_agent
from colony.market.service import Market
from colony.market.stake import MarketParams
from colony.node import Node
from colony.store.pg.shared import close_for
from colony.testing import Reply

PARAMS = MarketParams(stake_free_bid=0)
COSTS = {"ada": 1_000_000, "bob": 1_500_000, "cy": 2_000_000}
BIDS_AT_PRIOR = {"ada": 2_285_714, "bob": 3_428_571, "cy": 4_571_428}
PERSONAS = {"ada": "You are Ada, a careful Python programmer.", "bob": "You are Bob, a quick Python programmer.",
            "cy": "You are Cy, a thorough Python programmer.", "vera": "You are Vera, a strict reviewer."}
DIGIT_SUM_TESTS = ("def check(candidate):\n    assert candidate(0) == 0\n    assert candidate(123) == 6\n"
                   "    assert candidate(-45) == 9\n")
GOOD_CODE = "```python\ndef digit_sum(n):\n    return sum(int(c) for c in str(abs(n)))\n```"
POSTER_FUNDS = 100 * MICRO
WALLET = 3 * MICRO
STAKE = 2 * MICRO
T0 = 1_800_000_000


class Clock:
    """The market's clock, moved by the test."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    node: Node
    market: Market
    clock: Clock

    def key(self, name: str) -> str:
        return self.node.keyring.agent(name).public_hex

    def balance(self, name: str) -> int:
        return self.market.ledger.balance(self.key(name)).balance

    def held(self, name: str) -> int:
        return self.market.ledger.balance(self.key(name)).held

    def count(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """A count over the market's or the ledger's tables, on whichever engine keeps them."""
        return int(self.market.db.scalar(sql, params))

    def close(self) -> None:
        """Close the node's file and (on PostgreSQL) this process's pool."""
        close_for(self.node.settings)
        self.node.db.close()


def sqlite_market_rows(world: World) -> int:
    """Rows in the node's SQLite file's market, governance, ledger and task tables (0 on PostgreSQL)."""
    tables = ("market_events", "market_auctions", "market_sealed_bids", "market_verifications", "market_feedback",
              "market_stake_holds", "market_stake_events", "market_stake_locks", "gov_proposals", "gov_log",
              "ledger_entries", "ledger_holds", "tasks", "task_events")
    return sum(int(world.node.db.scalar(f"SELECT count(*) FROM {t}")) for t in tables)


def persona_of(body: dict[str, Any]) -> str:
    system = str(body["messages"][0]["content"]) if body["messages"][0]["role"] == "system" else ""
    return next((name for name, persona in PERSONAS.items() if system.startswith(persona)), "colony")


def scripted(answers: dict[str, str]) -> Callable[[dict[str, Any]], Reply]:
    """Each agent answers with its entry in ``answers`` (looked up by the persona in the system prompt)."""
    def reply(body: dict[str, Any]) -> Reply:
        return Reply.text(answers.get(persona_of(body), "I am not part of this test."))
    return reply


def build_world(*, params: MarketParams = PARAMS, validator: bool = True, stake: bool = True) -> World:
    """A node with ada, bob and cy (Python programmers) and vera (a reviewer), funded and staked."""
    settings = Settings()
    node = Node(settings)
    keyring = node.keyring
    for name, cost in COSTS.items():
        create_agent(keyring, AgentSpec(name=name, persona=PERSONAS[name], skills=["python"],
                                        cost=CostModel(overhead=cost)))
    if validator:
        create_agent(keyring, AgentSpec(name="vera", persona=PERSONAS["vera"], skills=["review"],
                                        cost=CostModel(overhead=500_000)))
    clock = Clock()
    market = Market(node, clock=clock, params=params)
    market.ledger.mint(keyring.agent("colony").public_hex, POSTER_FUNDS, "test: the poster's budget")
    for name in COSTS:
        market.ledger.mint(keyring.agent(name).public_hex, WALLET + (STAKE if stake else 0), "test: wallet")
        if stake:
            stakes.deposit(node, name, STAKE)
    return World(node, market, clock)




def open_auction(world: World, **fields: Any) -> str:
    """Post an auction by colony with 60 s + 30 s phases; ``fields`` override the request."""
    from colony.market.views import AuctionRequest

    body: dict[str, Any] = {"goal": "Write digit_sum(n).", "skills": ["python"], "reserve": 5_000_000,
                            "verification": "approval", "bond": 100_000, "commit_s": 60, "reveal_s": 30, **fields}
    return world.market.post(AuctionRequest.model_validate(body))


def run_phases(world: World, auction: str, *, reveal: bool = True) -> str:
    """Commit (every eligible agent), reveal (if ``reveal``), then award; returns the auction's state."""
    from colony.market.bidders import bid_round

    row = world.market.row(auction)
    world.clock.now = row["commit_deadline"]
    bid_round(world.market)
    world.clock.now = row["commit_deadline"] + 1
    if reveal:
        bid_round(world.market)
    world.clock.now = row["reveal_deadline"] + 1
    return world.market.award(auction)


def finish_task(world: World, auction: str, result: str) -> None:
    """Run the awarded task's lease by hand (claim as its worker, complete with ``result``)."""
    store = world.market.tasks
    lease = store.claim_assigned("test-worker", 60)
    assert lease is not None and lease.task_id == world.market.row(auction)["task_id"]
    store.complete(lease, result)
