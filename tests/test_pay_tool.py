"""The ``pay`` tool in the agent loop: the model calls it, the node pays a real x402 server from the
agent's credits on the node's own ledger, and a payment above the threshold is put to a person
through the executor's approver — the same approval record, events and fail-closed rules as any
``ask`` tool — while the person's time does not count against the tool's timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from colony.agent.events import ApprovalRequested, ToolCallFinished
from colony.agent.loop import run_turn_collect
from colony.config import Settings
from colony.ledger import MICRO, Ledger, SqliteLedgerStore
from colony.llm.messages import AssistantMessage, Message, ToolCall, ToolResultMessage
from colony.node import Node
from colony.payments.journal import SqlitePaymentJournal
from colony.payments.policy import SpendPolicy
from colony.store import open_database
from colony.testing import AgentInfo, FunctionModel
from colony.tools.approval import ApprovalRequest, Decision
from pay_helpers import Seller, credits_option, selling

CHEAP, DEAR = 100_000, 500_000  # the default policy asks above 250,000 micro-credits


@dataclass
class Person:
    """The node's approver: records every request, waits ``delay`` seconds, answers ``decision``."""

    decision: Decision = "denied"
    delay: float = 0.0
    requests: list[ApprovalRequest] = field(default_factory=list)

    async def __call__(self, request: ApprovalRequest) -> Decision:
        self.requests.append(request)
        await asyncio.sleep(self.delay)
        return self.decision


@dataclass
class Shop:
    seller: Seller
    ledger: Ledger
    payee: str


@pytest.fixture
def shop(settings: Settings) -> Iterator[Shop]:
    """An x402 server over this node's own ledger (another connection to its database)."""
    node = Node(settings)
    node_key = node.keyring.node().schnorr_key
    agent = node.keyring.agent("colony").public_hex
    payee = node.keyring.create_agent("seller").public_hex
    ledger = Ledger(SqliteLedgerStore(node.db), node_key)
    ledger.mint(agent, 2 * MICRO, "test funds")
    seller_db = open_database(settings.db_path)
    seller_ledger = Ledger(SqliteLedgerStore(seller_db), node_key)
    routes = {"GET /report": [credits_option(ledger.node, payee, CHEAP)],
              "GET /premium": [credits_option(ledger.node, payee, DEAR)]}
    with selling(seller_ledger, routes) as seller:
        yield Shop(seller, ledger, payee)
    seller_db.close()
    asyncio.run(node.aclose())


def paying_model(url: str, seen: list[str]) -> FunctionModel:
    def model(messages: list[Message], info: AgentInfo) -> AssistantMessage | str:
        assert "pay" in {t.name for t in info.tools}
        if isinstance(messages[-1], ToolResultMessage):
            seen.append(messages[-1].content)
            return "Here is what I bought."
        return AssistantMessage(tool_calls=[ToolCall(id="p1", name="pay", arguments={"url": url})])

    return FunctionModel(model)


def node_for(person: Person, **overrides: Any) -> Node:
    # Only the default policy, told which host may be paid: its assets are this node's credits.
    settings = Settings(default_spend_policy=SpendPolicy(hosts=["127.0.0.1"]), **overrides)
    return Node(settings, approver=person)


async def test_the_agent_pays_through_the_tool_and_gets_the_body(shop: Shop) -> None:
    person = Person()
    node = node_for(person)
    agent_key = node.keyring.agent("colony").public_hex
    seen: list[str] = []
    try:
        fin, events = await run_turn_collect(await node.agent(paying_model(shop.seller.url("/report"), seen)),
                                             node.deps, "Buy me the report.")
        assert fin.status == "completed" and fin.text == "Here is what I bought."
        [content] = seen
        assert content.startswith(f"paid 0.1 credits to {shop.payee} (transaction ")
        assert "status: 200" in content and "the paid answer" in content
        assert shop.ledger.balance(agent_key).balance == 2 * MICRO - CHEAP
        assert shop.ledger.balance(shop.payee).balance == CHEAP
        [rec] = SqlitePaymentJournal(node.db).payments(direction="out")
        assert (rec.agent, rec.status, rec.amount, rec.asset) == ("colony", "settled", str(CHEAP), shop.ledger.node)
        assert rec.tx is not None and rec.tx in content
        [finished] = [e for e in events if isinstance(e, ToolCallFinished)]
        assert (finished.outcome, finished.approval) == ("ok", "allow")  # the tool is allowed; the policy governs
        assert person.requests == [] and not any(isinstance(e, ApprovalRequested) for e in events)
        [call] = node.records.list_tool_calls(limit=5)
        assert call["tool"] == "pay" and call["outcome"] == "ok"
    finally:
        await node.aclose()


async def test_above_the_threshold_the_executors_approver_is_asked(shop: Shop) -> None:
    person = Person("denied")
    node = node_for(person)
    agent_key = node.keyring.agent("colony").public_hex
    seen: list[str] = []
    try:
        agent = await node.agent(paying_model(shop.seller.url("/premium"), seen))
        fin, events = await run_turn_collect(agent, node.deps, "Buy the premium report.")
        assert fin.status == "completed"
        [request] = person.requests
        assert request.tool == "pay" and request.call_id == "p1"
        assert "wants to pay 0.5 credits" in request.reason and "above the approval threshold of 250000" in request.reason
        assert (request.arguments["amount"], request.arguments["pay_to"]) == (str(DEAR), shop.payee)
        # The surface saw the request as an event, as for any ask-tier tool.
        [asked] = [e for e in events if isinstance(e, ApprovalRequested)]
        assert asked.approval_id == request.approval_id and asked.reason == request.reason
        assert seen[0].startswith("Error (denied): The payment was not approved (denied): ")
        assert shop.ledger.balance(agent_key).balance == 2 * MICRO and shop.seller.signed == []
        [stored] = node.records.list_approvals()
        assert (stored["tool"], stored["status"], stored["decided_by"]) == ("pay", "denied", "surface")
        [rec] = SqlitePaymentJournal(node.db).payments()
        assert (rec.status, rec.amount) == ("denied", str(DEAR))

        person.decision = "approved"
        seen.clear()
        fin, _ = await run_turn_collect(agent, node.deps, "Buy the premium report, I approve.")
        assert seen[0].startswith("paid 0.5 credits")
        assert shop.ledger.balance(agent_key).balance == 2 * MICRO - DEAR
        assert [r.status for r in SqlitePaymentJournal(node.db).payments()] == ["settled", "denied"]
    finally:
        await node.aclose()


async def test_the_persons_time_does_not_count_against_the_tool_timeout(shop: Shop) -> None:
    person = Person("approved", delay=1.5)
    node = node_for(person, tool_timeout_s=1.0)
    seen: list[str] = []
    try:
        await run_turn_collect(await node.agent(paying_model(shop.seller.url("/premium"), seen)), node.deps, "Buy it.")
        assert seen[0].startswith("paid 0.5 credits"), seen
    finally:
        await node.aclose()


async def test_an_unanswered_approval_expires_and_denies(shop: Shop) -> None:
    person = Person("approved", delay=30)
    node = node_for(person, approval_timeout_s=0.3)
    seen: list[str] = []
    try:
        await run_turn_collect(await node.agent(paying_model(shop.seller.url("/premium"), seen)), node.deps, "Buy it.")
        assert seen[0].startswith("Error (denied): The payment was not approved (expired): ")
        [rec] = SqlitePaymentJournal(node.db).payments()
        assert rec.status == "denied" and (rec.reason or "").startswith("not approved (expired)")
        assert node.records.list_approvals()[0]["status"] == "expired"
        assert shop.seller.signed == []
    finally:
        await node.aclose()


async def test_a_refusal_is_a_denial_the_breaker_ignores(shop: Shop) -> None:
    node = Node(Settings(), approver=Person())  # the default policy: nobody may be paid
    seen: list[str] = []
    try:
        agent = await node.agent(paying_model(shop.seller.url("/report"), seen))
        for _ in range(4):  # more than tool_circuit_failures: a refusal must not open the breaker
            await run_turn_collect(agent, node.deps, "Buy it.")
        assert all(s.startswith("Error (denied): The payment was refused by the spend policy") for s in seen), seen
        assert "neither the host '127.0.0.1' nor the payTo" in seen[0]
        assert node.executor.breaker("pay").state == "closed"
        assert [r.status for r in SqlitePaymentJournal(node.db).payments()] == ["refused"] * 4
        # A host outside http_allowed_hosts is refused before anything is sent.
        seen.clear()
        await run_turn_collect(await node.agent(paying_model("http://example.org/x", seen)), node.deps, "Buy it.")
        assert seen[0].startswith("Error (denied): Host 'example.org' is not in http_allowed_hosts")
        assert len(SqlitePaymentJournal(node.db).payments()) == 4
    finally:
        await node.aclose()
