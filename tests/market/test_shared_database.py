"""Many nodes, one database (issue 17): two nodes — two ``colony.db`` files with their own keys,
each with its default agent ``colony`` — share one PostgreSQL for the market, the ledger and
governance. Agent names are local to a node; the shared tables must tell the two ``colony`` agents
apart by their accounts (public keys): one's stake, locks, slashes and governed tool tiers are
never the other's, and a step on one never waits for a lock of the other. Every node's market
worker sees every auction: it takes the poster's steps (award, verification, settlement) only
for auctions one of its own agents posted, signs with that agent's key, and claims and runs only
the tasks awarded to its own agents' accounts — as that agent, though the other node has an
agent of the same name."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from gov_helpers import DAY, T0, ledger_of
from market_helpers import PARAMS, POSTER_FUNDS, STAKE, WALLET, Clock, World

from colony.config import Settings
from colony.identity import DEFAULT_AGENT, Keyring
from colony.ledger import MICRO
from colony.llm.messages import Message, SystemMessage
from colony.market import gov_service as gov
from colony.market import stakes
from colony.market.cost import CostModel
from colony.market.events import MARKET_KINDS
from colony.market.governance import GovernanceError, SetToolTier, proposal_event
from colony.market.profiles import AgentSpec, create_agent
from colony.market.service import AuctionError, Market
from colony.market.stakes import market_db
from colony.market.views import AuctionRequest
from colony.market.worker import market_pass, work_once
from colony.node import Node
from colony.store import open_database
from colony.store.pg.shared import close_shared
from colony.testing import AgentInfo, FunctionModel

NAME = DEFAULT_AGENT  # "colony": every node has one


@pytest.fixture
def nodes(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Keyring, Keyring]]:
    """Node A and node B: their own files and keys, one PostgreSQL; each ``colony`` funded with 100."""
    monkeypatch.setenv("COLONY_DATABASE_URL", pg_url)
    dbs = []
    keyrings = []
    for label in ("a", "b"):
        settings = Settings(home=tmp_path / label)
        db = open_database(settings.db_path)
        dbs.append(db)
        keyring = Keyring(db, settings)
        ledger_of(keyring).mint(keyring.agent(NAME).public_hex, 100 * MICRO, f"node {label} funding")
        keyrings.append(keyring)
    a, b = keyrings
    assert a.agent(NAME).public_hex != b.agent(NAME).public_hex  # one name, two agents
    try:
        yield a, b
    finally:
        close_shared()
        for db in dbs:
            db.close()


def _amounts(keyring: Keyring) -> tuple[int, int, int]:
    view = stakes.stake_view(keyring, NAME)
    return view.staked, view.locked, view.free


def test_one_nodes_stake_and_locks_are_not_the_others(nodes: tuple[Keyring, Keyring]) -> None:
    a, b = nodes
    stakes.deposit(a, NAME, 30 * MICRO)
    assert _amounts(a) == (30 * MICRO, 0, 30 * MICRO)
    assert _amounts(b) == (0, 0, 0)
    assert stakes.staked(b, NAME) == 0 and stakes.locked(b, NAME) == 0

    stakes.deposit(b, NAME, 10 * MICRO)
    stakes.lock(a, NAME, 25 * MICRO, ref="bid:a")
    assert _amounts(a) == (30 * MICRO, 25 * MICRO, 5 * MICRO)
    assert _amounts(b) == (10 * MICRO, 0, 10 * MICRO)
    # B's whole stake is free: A's lock does not hold it, and B cannot lock what is A's.
    assert stakes.lock(b, NAME, 10 * MICRO, ref="bid:b").free == 0
    with pytest.raises(stakes.StakeError) as short:
        stakes.lock(b, NAME, MICRO, ref="bid:b2")
    assert short.value.reason == "insufficient_stake"
    assert stakes.unlock(b, "bid:b")
    view = stakes.withdraw(b, NAME, 10 * MICRO)
    assert (view.staked, view.balance) == (0, 100 * MICRO)
    assert _amounts(a) == (30 * MICRO, 25 * MICRO, 5 * MICRO)

    # A keyed deposit is keyed per account: the same key on the other node is another deposit.
    stakes.deposit(a, NAME, MICRO, key="top-up")
    stakes.deposit(b, NAME, MICRO, key="top-up")
    assert stakes.staked(a, NAME) == 31 * MICRO and stakes.staked(b, NAME) == MICRO
    assert ledger_of(a).verify().ok


def test_a_step_on_one_node_never_waits_for_the_others_stake_lock(nodes: tuple[Keyring, Keyring]) -> None:
    a, b = nodes
    stakes.deposit(b, NAME, 10 * MICRO)
    ident = a.agent(NAME)
    held, release = threading.Event(), threading.Event()
    engine = market_db(a)

    def a_step_in_progress() -> None:
        def step() -> None:  # holds every lock that could name A's colony until told to finish
            engine.lock(stakes.stake_lock(ident.name), stakes.stake_lock(ident.public_hex))
            held.set()
            release.wait(15)

        engine.atomic(step)

    holder = threading.Thread(target=a_step_in_progress)
    holder.start()
    try:
        assert held.wait(10)
        done: list[int] = []
        locker = threading.Thread(target=lambda: done.append(stakes.lock(b, NAME, 4 * MICRO, ref="bid:b").locked))
        locker.start()
        locker.join(5)
        assert done == [4 * MICRO], "node B's stake step waited for a lock node A's step holds"
    finally:
        release.set()
        holder.join(20)
        locker.join(20)


def test_a_slash_on_one_node_leaves_the_others_stake_intact(nodes: tuple[Keyring, Keyring]) -> None:
    a, b = nodes
    stakes.deposit(a, NAME, 10 * MICRO)
    stakes.deposit(b, NAME, 30 * MICRO)
    assert stakes.slash(a, NAME, 40 * MICRO, reason="failed verification", ref="auction:a") == 10 * MICRO
    assert stakes.staked(a, NAME) == 0
    assert _amounts(b) == (30 * MICRO, 0, 30 * MICRO)
    assert ledger_of(b).balance(b.agent(NAME).public_hex).held == 30 * MICRO
    # The same reference is another offence for another account; a retry on A answers A's amount.
    assert stakes.slash(a, NAME, 5 * MICRO, reason="retry", ref="auction:a") == 10 * MICRO
    assert ledger_of(a).verify().ok


def test_a_tool_tier_voted_for_one_nodes_agent_does_not_apply_to_the_others(
        nodes: tuple[Keyring, Keyring]) -> None:
    a, b = nodes
    stakes.deposit(a, NAME, 10 * MICRO)
    proposal = gov.propose(a, SetToolTier(agent=NAME, tool="write_file", tier="allow"), now=T0)
    assert isinstance(proposal.action, SetToolTier) and proposal.action.account == a.agent(NAME).public_hex
    gov.vote(a, proposal.id, NAME, "yes", now=T0 + 1)
    # B's sweep sees the proposal but leaves it: the name it gives is A's to resolve.
    assert gov.execute_due(b, now=T0 + 2 * DAY) == []
    assert gov.get_proposal(b, proposal.id, now=T0 + 2 * DAY).status == "executable"
    [done] = gov.execute_due(a, now=T0 + 2 * DAY)
    assert done.outcome == "applied"

    node_a, node_b = Node(a.settings), Node(b.settings)
    try:
        assert node_a.executor.tier_for("write_file", NAME) == "allow"
        assert node_b.executor.tier_for("write_file", NAME) == b.settings.tier_for("write_file") == "ask"
    finally:
        node_a.db.close()
        node_b.db.close()


def test_a_proposal_signed_without_the_account_is_resolved_on_its_own_node(nodes: tuple[Keyring, Keyring]) -> None:
    a, b = nodes
    stakes.deposit(a, NAME, 10 * MICRO)
    stakes.deposit(b, NAME, 10 * MICRO)
    owner = a.node().schnorr_key
    params = gov.current_params(market_db(a))
    # As a client signed it before actions named the account: by name only.
    old = proposal_event(owner, SetToolTier(agent=NAME, tool="run_command", tier="auto"), created_at=T0,
                         params=params)
    assert '"account"' not in old.content
    recorded = gov.submit_proposal(a, old, now=T0)
    assert isinstance(recorded.action, SetToolTier) and recorded.action.account is None
    gov.vote(a, recorded.id, NAME, "yes", now=T0 + 1)
    gov.vote(b, recorded.id, NAME, "yes", now=T0 + 1)
    assert gov.execute_due(b, now=T0 + 2 * DAY) == []  # B's "colony" is not the one it meant
    [done] = gov.execute_due(a, now=T0 + 2 * DAY)
    assert done.outcome == "applied"
    assert gov.agent_tool_tier(market_db(a), a.db, NAME, "run_command") == "auto"
    assert gov.agent_tool_tier(market_db(b), b.db, NAME, "run_command") is None

    # A proposal naming A's "colony" with B's account is refused on A: the two must agree.
    wrong = SetToolTier(agent=NAME, account=b.agent(NAME).public_hex, tool="write_file", tier="allow")
    with pytest.raises(GovernanceError) as refused:
        gov.submit_proposal(a, proposal_event(owner, wrong, created_at=T0 + 5, params=params), now=T0 + 5)
    assert refused.value.reason == "invalid"


# -- the market on two nodes ---------------------------------------------------------------------
@pytest.fixture
async def markets(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[World, World]]:
    """Node A and node B on one PostgreSQL and one clock; each has ``colony`` (the poster, funded)
    and ``ada``, a Python programmer with the same costs on both — told apart only by persona and key."""
    monkeypatch.setenv("COLONY_DATABASE_URL", pg_url)
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    clock = Clock()
    worlds = []
    for label in ("a", "b"):
        node = Node(Settings(home=tmp_path / label))
        create_agent(node.keyring, AgentSpec(name="ada", persona=f"You are Ada of node {label}.", skills=["python"],
                                             cost=CostModel(overhead=1_000_000)))
        market = Market(node, clock=clock, params=PARAMS)
        market.ledger.mint(node.keyring.agent(NAME).public_hex, POSTER_FUNDS, f"node {label}: the poster's budget")
        market.ledger.mint(node.keyring.agent("ada").public_hex, WALLET + STAKE, f"node {label}: ada's wallet")
        stakes.deposit(node, "ada", STAKE)
        worlds.append(World(node, market, clock))
    a, b = worlds
    assert a.key("ada") != b.key("ada") and a.key(NAME) != b.key(NAME)
    try:
        yield a, b
    finally:
        for w in worlds:
            await w.node.aclose()
        close_shared()


def _post(world: World, goal: str) -> str:
    return world.market.post(AuctionRequest(goal=goal, skills=["python"], reserve=5_000_000, verification="approval",
                                            bond=100_000, commit_s=60, reveal_s=30))


def _signers(world: World, auction: str, kind: str) -> list[str]:
    return [e.pubkey for e, _ in world.market.events(auction) if e.kind == MARKET_KINDS[kind]]


class _Persona:
    """A model that answers every request and notes the persona (the system prompt) it was asked as."""

    def __init__(self) -> None:
        self.personas: list[str] = []

    def __call__(self, messages: list[Message], info: AgentInfo) -> str:
        system = next((m.content for m in messages if isinstance(m, SystemMessage)), "")
        self.personas.append(system.split("\n")[0])
        return "def digit_sum(n): return sum(int(c) for c in str(abs(n)))"


async def _bid_through(a: World, b: World, *auctions: str) -> None:
    """Both nodes' auction passes through the commit and reveal phases, to just past the reveal deadline."""
    row = a.market.row(auctions[0])
    for now in (row["commit_deadline"], row["commit_deadline"] + 1):
        a.clock.now = now
        for world in (a, b):
            report = await market_pass(world.node, market=world.market, work=False)
            assert report.errors == [] and report.awarded == []
    a.clock.now = row["reveal_deadline"] + 1


async def test_a_node_takes_the_poster_steps_only_of_auctions_its_own_agents_posted(
        markets: tuple[World, World]) -> None:
    a, b = markets
    mine, theirs = _post(a, "Write digit_sum(n) for node A."), _post(b, "Write digit_sum(n) for node B.")
    await _bid_through(a, b, mine, theirs)
    # Each auction was bid on by its own node's ada only, and every bid was opened by its own key.
    assert _signers(a, mine, "commit") == _signers(a, mine, "reveal") == [a.key("ada")]
    assert _signers(a, theirs, "commit") == _signers(a, theirs, "reveal") == [b.key("ada")]

    assert b.market.due() == [theirs] and a.market.due() == [mine]
    with pytest.raises(AuctionError) as foreign:
        b.market.award(mine)
    assert foreign.value.reason == "conflict"
    report = await market_pass(b.node, market=b.market, work=False)  # B's pass awards B's auction, not A's
    assert report.errors == [] and report.awarded == [f"{theirs[:12]} awarded"]
    assert a.market.row(mine)["state"] == "open" and _signers(a, mine, "award") == []
    report = await market_pass(a.node, market=a.market, work=False)
    assert report.errors == [] and report.awarded == [f"{mine[:12]} awarded"]
    assert _signers(a, mine, "award") == [a.key(NAME)] and _signers(a, theirs, "award") == [b.key(NAME)]
    assert a.market.recheck(mine).ok and a.market.recheck(mine).winner == a.key("ada")
    assert a.market.row(mine)["winner"] == a.key("ada")

    # Verification and settlement are the poster's node's too: B neither decides nor settles A's.
    for world in (a, b):
        assert await work_once(world.market, model=FunctionModel(_Persona())) is not None
    assert b.market.awarded() == [theirs] and a.market.awarded() == [mine]
    with pytest.raises(AuctionError) as foreign:
        b.market.decide(mine, True, actor="b's owner")
    assert foreign.value.reason == "conflict"
    with pytest.raises(AuctionError):
        await b.market.verify(mine)
    assert a.market.row(mine)["state"] == "awarded"
    assert b.market.decide(theirs, True, actor="b's owner") == "paid"
    assert a.market.decide(mine, True, actor="a's owner") == "paid"
    assert _signers(a, mine, "feedback") == [a.key(NAME)] and _signers(a, theirs, "feedback") == [b.key(NAME)]
    assert _signers(a, mine, "verification") == [a.node.keyring.node().public_hex]
    price = a.market.row(mine)["price"]
    assert a.balance(NAME) == POSTER_FUNDS - price and b.balance("ada") == WALLET + b.market.row(theirs)["price"]


async def test_a_winners_task_is_run_only_by_the_node_hosting_the_winner_as_that_agent(
        markets: tuple[World, World]) -> None:
    a, b = markets
    auction = _post(a, "Write digit_sum(n).")
    await _bid_through(a, b, auction)
    assert a.market.award(auction) == "awarded"
    task_id = a.market.row(auction)["task_id"]
    task = a.market.tasks.get(task_id)
    assert (task.state, task.assignee) == ("assigned", a.key("ada"))  # the account, not the name both nodes use

    b_model, a_model = _Persona(), _Persona()
    assert await work_once(b.market, model=FunctionModel(b_model)) is None  # B's ada is not A's ada
    report = await market_pass(b.node, market=b.market, model=FunctionModel(b_model))
    assert report.errors == [] and report.ran is None and b_model.personas == []
    assert b.market.tasks.get(task_id).state == "assigned"

    run = await work_once(a.market, model=FunctionModel(a_model))
    assert run is not None and (run.task_id, run.outcome) == (task_id, "completed")
    assert a_model.personas and set(a_model.personas) == {"You are Ada of node a."}
    task = a.market.tasks.get(task_id)
    assert (task.state, task.assignee, task.lease_owner) == ("completed", a.key("ada"), None)
    assert b_model.personas == []
