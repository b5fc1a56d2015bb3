"""What each executed proposal changes — one agent's tool tier (seen by that agent's next turn and by
no other agent's), a route's price, an agent in or out of service, a market or governance
parameter — and an effect that cannot apply being settled once as failed. Stakes: ada 60 and bob
30 credits (total 90), so ada's yes alone passes a proposal. The executions run on both engines
(`engine`); on PostgreSQL the profile and price effects still land in the node's own file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gov_helpers import DAY, T0, node_keyring, staked_agents
from pydantic import BaseModel

from colony.agent import run_turn_collect
from colony.agent.events import ApprovalRequested, ToolCallFinished
from colony.config import Settings
from colony.errors import ColonyError
from colony.identity import Keyring
from colony.ledger import (
    MICRO,
    EquivocationProof,
    SqliteLedgerStore,
    export_lines,
    find_equivocations,
    read_lines,
)
from colony.ledger import Ledger as LedgerService
from colony.llm.messages import AssistantMessage, Message, ToolCall, ToolResultMessage
from colony.market import gov_service as gov
from colony.market import stakes
from colony.market.governance import Action, AdmitAgent, ExpelAgent, SetMarketParam, SetPrice, SetToolTier
from colony.market.profiles import AgentProfileError, get_agent, profile_for_turn
from colony.market.stakes import market_db
from colony.node import Node
from colony.payments.prices import list_prices
from colony.store import open_database
from colony.testing import AgentInfo, FunctionModel
from colony.tools.approval import ApprovalRequest, Decision
from colony.tools.registry import ToolContext, ToolRegistry, tool


def _pass(keyring: Keyring, action: Action, at: int) -> gov.ProposalView:
    """The owner proposes at ``at``, ada votes yes, and it executes when its timelock ends."""
    p = gov.propose(keyring, action, now=at)
    gov.vote(keyring, p.id, "ada", "yes", now=at + 1)
    [done] = gov.execute_due(keyring, now=at + 2 * DAY)
    assert done.proposal_id == p.id
    return gov.get_proposal(keyring, p.id, now=at + 2 * DAY)


@pytest.fixture
def keyring(engine: str) -> Iterator[Keyring]:
    with node_keyring() as kr:
        staked_agents(kr, {"ada": 60 * MICRO, "bob": 30 * MICRO}, funds=100 * MICRO)
        yield kr


def test_a_price_and_an_agents_service_are_set_by_proposals(keyring: Keyring) -> None:
    route = "POST /x402/agents/bob/prompt"
    assert _pass(keyring, SetPrice(route=route, credits=300_000, pay_to="bob"), T0).status == "executed"
    [price] = [p for p in list_prices(keyring.db) if p.route == route]
    assert (price.credits, price.evm_amount, price.pay_to) == (300_000, None, "bob")

    _pass(keyring, ExpelAgent(agent="bob"), T0 + 10)
    assert not get_agent(keyring, "bob").active
    with pytest.raises(AgentProfileError):
        profile_for_turn(keyring, "bob")
    _pass(keyring, AdmitAgent(agent="bob"), T0 + 20)
    assert get_agent(keyring, "bob").active and profile_for_turn(keyring, "bob").name == "bob"


def _proof_by(tmp_path: Path, keyring: Keyring, name: str) -> EquivocationProof:
    key = keyring.schnorr_key(name)
    feeds = []
    for label, amount in (("one", MICRO), ("two", 2 * MICRO)):
        db = open_database(tmp_path / f"{label}.db")
        store = SqliteLedgerStore(db)
        LedgerService(store, key).mint(keyring.agent("ada").public_hex, amount, label)
        feeds.append(read_lines(export_lines(store)).entries)
        db.close()
    [proof] = find_equivocations(feeds[0], feeds[1])
    return proof


def test_market_and_governance_parameters_are_set_within_bounds(keyring: Keyring, tmp_path: Path) -> None:
    assert gov.current_market_params(market_db(keyring)).slash_equivocation_bp == 10_000
    _pass(keyring, SetMarketParam(name="slash_equivocation_bp", value=2_500), T0)
    _pass(keyring, SetMarketParam(name="min_reputation", value=3_000), T0 + 10)
    params = gov.current_market_params(market_db(keyring))
    assert (params.slash_equivocation_bp, params.min_reputation) == (2_500, 0.3)
    # The slash for equivocation now takes a quarter: bob's 30 credits → 7.5.
    proof = _proof_by(tmp_path, keyring, "bob")
    assert stakes.slash_for_equivocation(keyring, proof) == 7_500_000
    assert stakes.staked(keyring, "bob") == 22_500_000

    # A shorter voting period applies to proposals made after it, not to one already running.
    running = gov.propose(keyring, SetToolTier(agent="ada", tool="save_note", tier="auto"), now=T0 + 20)
    _pass(keyring, SetMarketParam(name="voting_period_s", value=3_600), T0 + 30)
    later = gov.propose(keyring, SetToolTier(agent="ada", tool="save_note", tier="auto"), now=T0 + 40)
    assert (running.voting_ends, later.voting_ends) == (T0 + 20 + DAY, T0 + 40 + 3_600)
    assert later.executable_at == T0 + 40 + 3_600 + DAY
    overrides = market_db(keyring).query("SELECT name, value FROM gov_market_params ORDER BY name")
    assert overrides == [{"name": "min_reputation", "value": 3_000}, {"name": "slash_equivocation_bp", "value": 2_500},
                         {"name": "voting_period_s", "value": 3_600}]


def test_an_effect_that_cannot_apply_is_settled_once_as_failed(keyring: Keyring,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        gov._gov_store.set_tool_tier(market_db(keyring), keyring.agent("bob").public_hex, "bob", "save_note", "allow",
                                     str(args[2]), 0.0)
        raise ColonyError("the price table is locked by an operator")

    monkeypatch.setattr(gov, "_apply", broken)
    p = gov.propose(keyring, SetToolTier(agent="bob", tool="save_note", tier="allow"), now=T0)
    gov.vote(keyring, p.id, "ada", "yes", now=T0 + 1)
    [done] = gov.execute_due(keyring, now=T0 + 2 * DAY)
    assert (done.outcome, done.detail) == ("failed", "the price table is locked by an operator")
    assert gov.agent_tool_tier(market_db(keyring), keyring.db, "bob", "save_note") is None  # the half-done effect
    # was undone
    assert gov.execute_due(keyring, now=T0 + 3 * DAY) == []
    assert gov.get_proposal(keyring, p.id, now=T0 + 3 * DAY).status == "failed"


# -- the next turn ---------------------------------------------------------------------------------


class NoteArgs(BaseModel):
    name: str
    text: str = ""


@tool(effect="write")
async def save_note(ctx: ToolContext, args: NoteArgs) -> str:
    """Save a note into the workspace."""
    ctx.workspace.resolve(f"{args.name}.txt").write_text(args.text)
    return f"saved {args.name}"


def save_then_answer(messages: list[Message], info: AgentInfo) -> AssistantMessage | str:
    if isinstance(messages[-1], ToolResultMessage):
        return f"done: {messages[-1].content}"
    return AssistantMessage(tool_calls=[ToolCall(id="c1", name="save_note", arguments={"name": "n", "text": "x"})])


async def test_a_passed_tier_change_shows_in_that_agents_next_turn_only() -> None:
    asked: list[ApprovalRequest] = []

    async def person(request: ApprovalRequest) -> Decision:
        asked.append(request)
        return "approved"

    settings = Settings().model_copy(update={"tool_policy": {"save_note": "ask"}})
    node = Node(settings, approver=person, registry=ToolRegistry([save_note]))
    try:
        keyring = node.keyring
        staked_agents(keyring, {"scout": 10 * MICRO, "other": 0}, funds=20 * MICRO)

        async def turn(name: str) -> tuple[str, list[str]]:
            agent = await node.agent(FunctionModel(save_then_answer), name=name)
            finished, events = await run_turn_collect(agent, node.deps, "Save a note.")
            assert finished.status == "completed" and finished.text == "done: saved n"
            asks = [e.tool for e in events if isinstance(e, ApprovalRequested)]
            [call] = [e for e in events if isinstance(e, ToolCallFinished)]
            return call.approval, asks

        assert await turn("scout") == ("approved", ["save_note"])  # asks before governance
        p = gov.propose(node, SetToolTier(agent="scout", tool="save_note", tier="allow"), by="scout", now=T0)
        gov.vote(node, p.id, "scout", "yes", now=T0 + 1)
        assert [d.outcome for d in gov.execute_due(node, now=T0 + 2 * DAY)] == ["applied"]

        assert await turn("scout") == ("allow", [])  # its next turn runs the tool without asking
        assert await turn("other") == ("approved", ["save_note"])  # another agent still asks
        assert await turn("colony") == ("approved", ["save_note"])  # and so does the default agent
        assert [r.tool for r in asked] == ["save_note", "save_note", "save_note"]
        rows = node.db.query("SELECT s.agent, c.approval FROM tool_calls c JOIN sessions s ON s.id = c.session_id "
                             "ORDER BY c.id")
        assert [(r["agent"], r["approval"]) for r in rows] == [
            ("scout", "approved"), ("scout", "allow"), ("other", "approved"), ("colony", "approved")]
    finally:
        await node.aclose()


def test_a_tasks_calls_get_the_running_agents_governed_tier_except_its_pause_points() -> None:
    """The task runner's executor sees governance's per-agent tiers (a market task runs as its
    winner, so a tier a proposal gave that agent shows in its next task too), but a tool the task
    itself pauses on still asks whatever the agent's tier."""
    from colony.tasks.models import Task
    from colony.tasks.runner import governed_tiers

    table = {("scout", "save_note"): "allow", ("scout", "write_file"): "allow"}

    def tiers(agent: str, tool: str) -> str | None:
        return table.get((agent, tool))

    task = Task.model_construct(pause_tools=["write_file"])
    tier = governed_tiers(tiers, task)  # type: ignore[arg-type]
    assert tier is not None
    assert tier("scout", "save_note") == "allow"  # governed
    assert tier("scout", "write_file") is None  # the task's pause point: the node policy (ask) decides
    assert tier("other", "save_note") is None  # no tier of its own
    assert governed_tiers(None, task) is None
