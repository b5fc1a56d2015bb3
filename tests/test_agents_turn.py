"""A turn run as a named agent uses its profile: its persona opens the system prompt and its model
tier picks the provider of the cascade — through `Node.agent(name=…)`, `colony chat --agent` and a
paid prompt to ``/x402/agents/{name}/prompt``. The only thing replaced is the LLM: two scripted
OpenAI-compatible servers stand behind the node's real cascade (``local`` first, ``hosted`` second)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner
from x402 import x402Client
from x402.http.clients.httpx import x402HttpxClient

from colony.agent import run_turn_collect
from colony.cli import app
from colony.config import ProviderConfig, Settings
from colony.errors import ConfigError
from colony.identity import Keyring, SchnorrKey
from colony.ledger import MICRO, Ledger, SqliteLedgerStore
from colony.market.cost import CostModel
from colony.market.profiles import AgentProfileError, AgentSpec, create_agent, deactivate_agent
from colony.node import Node
from colony.payments.credits import CREDITS_NETWORK, CreditsClientScheme
from colony.payments.prices import agent_route, set_price
from colony.store import open_database
from colony.testing import NodeServer, Reply, ScriptedModelServer

SCOUT_PERSONA = "You are Scout. You find things in the workspace and answer in one line."


@dataclass
class Models:
    local: ScriptedModelServer
    hosted: ScriptedModelServer

    def system_prompts(self, server: ScriptedModelServer) -> list[str]:
        return [r["messages"][0]["content"] for r in server.requests if r["messages"][0]["role"] == "system"]


@pytest.fixture
def models(monkeypatch: pytest.MonkeyPatch) -> Iterator[Models]:
    with (ScriptedModelServer([Reply.text("local answer")], on_exhausted="repeat_last", model_name="small") as local,
          ScriptedModelServer([Reply.text("hosted answer")], on_exhausted="repeat_last", model_name="large") as hosted):
        providers = [{"name": "local", "base_url": local.base_url, "model": "small", "max_retries": 0},
                     {"name": "hosted", "base_url": hosted.base_url, "model": "large", "max_retries": 0}]
        monkeypatch.setenv("COLONY_PROVIDERS", json.dumps(providers))
        monkeypatch.setenv("COLONY_RETRY_BASE_DELAY_S", "0.01")
        yield Models(local, hosted)


def add_scout(settings: Settings, tier: str = "hosted") -> None:
    db = open_database(settings.db_path)
    try:
        create_agent(Keyring(db, settings), AgentSpec(name="scout", persona=SCOUT_PERSONA, tier=tier,
                                                      cost=CostModel(input_per_1k=5), skills=["search"]))
    finally:
        db.close()


async def test_a_named_agent_answers_with_its_persona_on_its_tier(models: Models) -> None:
    settings = Settings()
    add_scout(settings)
    node = Node(settings)
    try:
        scout = await node.agent(name="scout")
        assert scout.name == "scout" and scout.persona == SCOUT_PERSONA and scout.model.name == "hosted:large"
        finished, _ = await run_turn_collect(scout, node.deps, "Where is the config?")
        assert finished.status == "completed" and finished.text == "hosted answer"
        assert models.local.requests == []  # the tier pins the provider: the first one was never asked
        [prompt] = models.system_prompts(models.hosted)
        assert prompt.startswith(SCOUT_PERSONA) and Settings().persona not in prompt
        assert node.db.one("SELECT agent FROM sessions WHERE id = ?", (finished.session_id,)) == {"agent": "scout"}
        calls = node.db.query("SELECT provider, model, outcome FROM llm_calls WHERE turn_id = ?", (finished.turn_id,))
        assert calls == [{"provider": "hosted", "model": "large", "outcome": "ok"}]
        assert [(m.kind, m.content) for m in node.records.load_messages(finished.session_id)] == [
            ("user", "Where is the config?"), ("assistant", "hosted answer")]

        # The node's default agent is untouched: the settings' persona, the whole cascade (local first).
        default = await node.agent()
        finished, _ = await run_turn_collect(default, node.deps, "hello")
        assert finished.text == "local answer" and default.name == "colony"
        assert models.system_prompts(models.local)[0].startswith(Settings().persona)
        assert len(models.hosted.requests) == 1
    finally:
        await node.aclose()


async def test_a_pinned_tier_does_not_fall_over_but_the_default_tier_does(models: Models) -> None:
    settings = Settings()
    add_scout(settings, tier="local")
    models.local.set_script([Reply.error(500, "local is down")])
    node = Node(settings)
    try:
        finished, _ = await run_turn_collect(await node.agent(name="scout"), node.deps, "anything")
        assert finished.status == "failed" and finished.error_code == "model_unavailable"
        assert "local" in (finished.error or "") and models.hosted.requests == []  # no silent switch of tier
        # The same cascade, whole: the failing first provider is passed over for the second.
        finished, _ = await run_turn_collect(await node.agent(), node.deps, "anything")
        assert finished.status == "completed" and finished.text == "hosted answer"
        # One breaker per provider, shared by the pinned view and the cascade: both attempts counted.
        [local] = [h for h in (await node.model()).health() if h.name == "local"]
        assert local.circuit.consecutive_failures == 2
    finally:
        await node.aclose()


async def test_an_unknown_deactivated_or_unreachable_agent_takes_no_turn(
        models: Models, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    add_scout(settings, tier="hosted")
    node = Node(settings)
    try:
        with pytest.raises(AgentProfileError) as unknown:
            await node.agent(name="ghost")
        assert unknown.value.reason == "unknown"
        deactivate_agent(node.keyring, "scout")
        with pytest.raises(AgentProfileError) as inactive:
            await node.agent(name="scout")
        assert inactive.value.reason == "inactive"
    finally:
        await node.aclose()
    # The providers were reconfigured without the agent's tier: a clear error names what there is.
    add_writer = Settings()
    db = open_database(add_writer.db_path)
    try:
        create_agent(Keyring(db, add_writer), AgentSpec(name="writer", persona="You write.", tier="hosted"))
    finally:
        db.close()
    only_local = [ProviderConfig(name="local", base_url=models.local.base_url, model="small", max_retries=0)]
    node = Node(Settings().model_copy(update={"providers": only_local}))
    try:
        with pytest.raises(ConfigError) as missing:
            await node.agent(name="writer")
        assert "'hosted'" in str(missing.value) and "'local'" in str(missing.value)
        assert "colony agents edit NAME --tier default" in str(missing.value)
    finally:
        await node.aclose()
    assert models.local.requests == [] and models.hosted.requests == []


def test_colony_chat_runs_as_the_agent_named(models: Models) -> None:
    add_scout(Settings())
    result = CliRunner().invoke(app, ["chat", "--agent", "scout", "--no-stream", "Where is the config?"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "hosted answer" in result.stdout and models.local.requests == []
    assert models.system_prompts(models.hosted)[0].startswith(SCOUT_PERSONA)
    ghost = CliRunner().invoke(app, ["chat", "--agent", "ghost", "hi"], catch_exceptions=False)
    assert ghost.exit_code == 1 and "No agent named 'ghost'" in ghost.output
    assert len(models.hosted.requests) == 1 and models.local.requests == []


# -- a paid prompt ----------------------------------------------------------------------------------------


def _pay(base_url: str, payer: SchnorrKey, asset: str, path: str, prompt: str) -> httpx.Response:
    client = x402Client()
    client.register(CREDITS_NETWORK, CreditsClientScheme(payer))
    client.set_spend_controls({"allowed_assets": [{"network": CREDITS_NETWORK, "asset": asset,
                                                   "max_amount_per_payment": "1000000"}]})

    async def go() -> httpx.Response:
        async with x402HttpxClient(client, base_url=base_url, timeout=30) as c:
            return await c.post(path, json={"prompt": prompt})

    return asyncio.run(go())


def test_a_paid_prompt_is_answered_by_the_agent_with_its_persona_and_tier(models: Models) -> None:
    settings = Settings().model_copy(update={"x402_facilitator_secret": SecretStr("s3cret-for-tests")})
    add_scout(settings)
    db = open_database(settings.db_path)
    keyring = Keyring(db, settings)
    ledger = Ledger(SqliteLedgerStore(db), keyring.node().schnorr_key)
    payer = SchnorrKey.generate()
    ledger.mint(payer.public_hex, 2 * MICRO, "test funds")
    set_price(db, agent_route("scout"), credits=300_000, evm_amount=None, pay_to="scout")
    scout = keyring.agent("scout").public_hex
    try:
        with NodeServer(settings) as node:
            r = _pay(node.base_url, payer, ledger.node, "/x402/agents/scout/prompt", "Where is the config?")
            assert r.status_code == 200, r.text
            out: dict[str, Any] = r.json()
            assert out["agent"] == "scout" and out["text"] == "hosted answer" and out["amount"] == "300000"
            assert models.local.requests == []
            assert models.system_prompts(models.hosted)[0].startswith(SCOUT_PERSONA)
            assert ledger.balance(scout).balance == 300_000
            assert db.one("SELECT agent, surface FROM sessions WHERE id = ?", (out["session_id"],)) == {
                "agent": "scout", "surface": "x402"}
            # Deactivated: not for hire, and the payer is not charged for the refusal.
            deactivate_agent(keyring, "scout")
            refused = _pay(node.base_url, payer, ledger.node, "/x402/agents/scout/prompt", "again?")
            assert refused.status_code == 404 and refused.json()["code"] == "not_offered"
            assert ledger.balance(scout).balance == 300_000
            assert ledger.balance(payer.public_hex).balance == 2 * MICRO - 300_000
            assert len(models.hosted.requests) == 1
    finally:
        db.close()
