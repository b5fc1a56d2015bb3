"""The substrate wired into a node: every call predicted and scored, context injected, batches
judged, state surviving a restart, modules switchable -- and nothing at all when it is off."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from colony.agent.events import Notice
from colony.agent.loop import run_turn_collect
from colony.config import Settings
from colony.errors import ToolError
from colony.llm.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from colony.node import Node
from colony.testing import AgentInfo, FunctionModel
from colony.tools.approval import ApprovalRequest, Decision
from colony.tools.registry import ToolContext, ToolRegistry, tool


class NoArgs(BaseModel):
    text: str = ""


@tool()
async def probe(ctx: ToolContext, args: NoArgs) -> str:
    """Look at something."""
    return f"seen {args.text}"


@tool()
async def flaky(ctx: ToolContext, args: NoArgs) -> str:
    """Always fails."""
    raise ToolError("flaky", "flaky broke")


@tool(effect="write")
async def save(ctx: ToolContext, args: NoArgs) -> str:
    """Write something."""
    return "saved"


def _prompt(messages: list[Message]) -> str:
    return next(m.content for m in reversed(messages) if isinstance(m, UserMessage))


def _brain(messages: list[Message], info: AgentInfo) -> AssistantMessage | str:
    if isinstance(messages[-1], ToolResultMessage):
        return "done"
    prompt = _prompt(messages)
    if "batch" in prompt:
        return AssistantMessage(content="", tool_calls=[ToolCall(id=f"b{i}", name="flaky") for i in range(4)])
    if "fail" in prompt:
        return AssistantMessage(content="", tool_calls=[ToolCall(id="f1", name="flaky")])
    if "write" in prompt:
        return AssistantMessage(content="", tool_calls=[ToolCall(id="w1", name="save", arguments={"text": "x"})])
    return AssistantMessage(content="", tool_calls=[ToolCall(id="p1", name="probe", arguments={"text": "x"})])


MODEL = FunctionModel(_brain)
asked: list[str] = []


async def _approve(req: ApprovalRequest) -> Decision:
    asked.append(req.tool)
    return "approved"


def make_node(tmp_path: Path, **overrides: object) -> Node:
    base: dict[str, object] = {
        "home": tmp_path / "home", "memory_embedder": "none", "cognition_enabled": True,
        "tool_policy": {"probe": "allow", "flaky": "allow", "save": "allow"},
    }
    base.update(overrides)
    settings = Settings(**base)  # type: ignore[arg-type]
    return Node(settings, approver=_approve, registry=ToolRegistry([probe, flaky, save]))


async def turn(node: Node, prompt: str, seen: list[list[Message]] | None = None) -> tuple[str, list[object]]:
    def spy(messages: list[Message], info: AgentInfo) -> AssistantMessage | str:
        if seen is not None:
            seen.append(list(messages))
        return _brain(messages, info)

    agent = await node.agent(FunctionModel(spy))
    fin, events = await run_turn_collect(agent, node.deps, prompt)
    return fin.status, list(events)


async def test_each_call_is_predicted_scored_logged_and_context_injected(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    seen: list[list[Message]] = []
    status, _ = await turn(node, "please look at x", seen)
    assert status == "completed"
    system = seen[0][0]
    assert isinstance(system, SystemMessage) and "[Cognition] regime=" in system.content
    assert "neuromodulators: dopamine=" in system.content
    rows = node.db.query("SELECT tool, outcome, surprisal, expected_success FROM cognition_predictions")
    assert [(r["tool"], r["outcome"]) for r in rows] == [("probe", "ok")]
    assert rows[0]["expected_success"] == pytest.approx(0.5)  # Beta(1, 1): nothing known yet
    sub = node.cognition
    assert sub is not None
    snap = sub.status()
    assert snap["modules"]["surprise"]["predictions"] == 1
    assert snap["modules"]["beliefs"]["tools"]["probe"]["samples"] == 1
    assert snap["modules"]["sphere"]["updates"] == 1 and snap["modules"]["phi"]["phi_proxy"] is not None
    await node.aclose()


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    await turn(node, "please look at x")
    await turn(node, "delete the production cache; this will fail")
    before = node.cognition.status() if node.cognition else {}
    await node.aclose()
    again = make_node(tmp_path)
    assert again.cognition is not None
    after = again.cognition.status()
    assert set(after["restored"]) >= {"surprise", "beliefs", "blackboard", "neuromod", "precision", "sphere", "predictor"}
    for module in ("surprise", "beliefs", "neuromod", "sphere", "lessons"):
        assert after["modules"][module] == before["modules"][module], module
    assert after["modules"]["blackboard"]["entries"] == before["modules"]["blackboard"]["entries"] > 0
    assert after["modules"]["holographic"]["items"] == after["modules"]["blackboard"]["entries"]
    await again.aclose()


async def test_off_means_exactly_as_before(tmp_path: Path) -> None:
    node = make_node(tmp_path, cognition_enabled=False)
    seen: list[list[Message]] = []
    status, events = await turn(node, "please look at x", seen)
    assert status == "completed" and node.cognition is None and node.executor.observers == []
    system = seen[0][0]
    assert isinstance(system, SystemMessage) and "[Cognition]" not in system.content
    assert node.db.scalar("SELECT COUNT(*) FROM cognition_predictions") == 0
    assert node.db.scalar("SELECT COUNT(*) FROM cognition_state") == 0
    assert not any(isinstance(e, Notice) for e in events)
    await node.aclose()


async def test_speculative_batch_rolls_back_internal_state_but_keeps_records(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    sub = node.cognition
    assert sub is not None
    status, events = await turn(node, "run the batch")
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert any("Rolled back" in n and "4 of 4 calls failed" in n for n in notices)
    assert sub.last_batch is not None and sub.last_batch["resolution"] == "rollback"
    # Beliefs about flaky went back to the snapshot; the audit and prediction logs kept all four calls.
    assert sub.beliefs.tool("flaky").samples == 0
    assert len(node.records.list_tool_calls(tool="flaky")) == 4
    assert node.db.scalar("SELECT COUNT(*) FROM cognition_predictions WHERE tool = 'flaky'") == 4
    assert status == "completed"
    await node.aclose()


async def test_small_batches_commit(tmp_path: Path) -> None:
    node = make_node(tmp_path, cognition_speculative_min_calls=5)
    _, events = await turn(node, "run the batch")
    assert not any(isinstance(e, Notice) for e in events)
    assert node.cognition is not None and node.cognition.beliefs.tool("flaky").samples == 4
    await node.aclose()


async def test_conservative_regime_asks_before_write_tools(tmp_path: Path) -> None:
    asked.clear()
    node = make_node(tmp_path)
    sub = node.cognition
    assert sub is not None
    await turn(node, "write it")
    assert asked == []  # policy says allow and the regime is not conservative
    sub.surprise.ema = 0.9  # a very confused agent
    sub._reselect()
    assert sub.precision.regime == "conservative"
    seen: list[list[Message]] = []
    await turn(node, "write it", seen)
    assert asked == ["save"]
    system = seen[0][0]
    assert isinstance(system, SystemMessage) and "conservative mode" in system.content
    await node.aclose()


async def test_failures_teach_lessons_that_reach_the_next_similar_turn(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    await turn(node, "this will fail on flaky")
    assert node.db.scalar("SELECT COUNT(*) FROM cognition_lessons") == 1
    seen: list[list[Message]] = []
    await turn(node, "look at flaky output", seen)
    system = seen[0][0]
    assert isinstance(system, SystemMessage) and "lessons from earlier failures" in system.content
    assert "flaky" in system.content
    await node.aclose()


async def test_perception_risk_goes_to_the_blackboard_and_context(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    seen: list[list[Message]] = []
    await turn(node, "delete the production database now", seen)
    sub = node.cognition
    assert sub is not None
    assert any(e.source == "perception" and "delete" in e.content for e in sub.blackboard.entries.values())
    system = seen[0][0]
    assert isinstance(system, SystemMessage) and "[perception] Risk words" in system.content
    await node.aclose()


async def test_modules_switch_off_for_ablation(tmp_path: Path) -> None:
    node = make_node(tmp_path, cognition_disabled_modules=["lessons", "blackboard", "predictor"])
    await turn(node, "this will fail")
    sub = node.cognition
    assert sub is not None
    snap = sub.status()
    assert snap["disabled_modules"] == ["blackboard", "lessons", "predictor"]
    for name in ("lessons", "blackboard", "predictor"):
        assert snap["modules"][name] == {"enabled": False}
    assert snap["modules"]["surprise"]["predictions"] == 1
    assert node.db.scalar("SELECT COUNT(*) FROM cognition_lessons") == 0
    assert "blackboard" not in {r["module"] for r in node.db.query("SELECT module FROM cognition_state")}
    await node.aclose()


async def test_cli_status_is_truthful(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    await turn(node, "please look at x")
    expected = node.cognition.status() if node.cognition else {}
    await node.aclose()
    env = dict(os.environ, COLONY_HOME=str(tmp_path / "home"), COLONY_MEMORY_EMBEDDER="none",
               COLONY_COGNITION_ENABLED="true", COLUMNS="200")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "colony", "cognition", "status", *args], env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    done = await asyncio.to_thread(cli, "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["enabled"] is True and shown["regime"] == expected["regime"]
    for module in ("surprise", "beliefs", "neuromod", "sphere", "lessons", "precision"):
        assert shown["modules"][module] == expected["modules"][module], module
    assert shown["prediction_log"][0]["tool"] == "probe"
    table = await asyncio.to_thread(cli)
    assert table.returncode == 0 and "holographic" in table.stdout and "regime" in table.stdout


async def test_spent_energy_stops_offering_tools(tmp_path: Path) -> None:
    node = make_node(tmp_path, cognition_energy_tool_calls=2)
    offered: list[int] = []

    def greedy(messages: list[Message], info: AgentInfo) -> AssistantMessage | str:
        offered.append(len(info.tools))
        if not info.tools:
            return "out of energy, answering"
        n = sum(isinstance(m, ToolResultMessage) for m in messages)
        return AssistantMessage(content="", tool_calls=[ToolCall(id=f"g{n}", name="probe")])

    agent = await node.agent(FunctionModel(greedy))
    fin, _ = await run_turn_collect(agent, node.deps, "look around")
    assert fin.tool_calls == 2 and fin.text == "out of energy, answering"
    assert offered == [3, 3, 0]
    assert node.cognition is not None and node.cognition.status()["modules"]["precision"]["budget_critical"]
    await node.aclose()
