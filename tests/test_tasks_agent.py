"""Tasks run by the autonomy loop through the real agent loop, against the scripted model server:
the queue worked end to end, replay, approvals, plans and budgets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from colony.config import Settings
from colony.node import Node
from colony.tasks import TaskSpec, state_from_events
from colony.tasks.autonomy import open_store, run_daemon, run_once
from colony.tasks.checkpoints import load_checkpoints
from colony.tasks.hitl import decide
from colony.tasks.models import Budget, PlanStep
from colony.tasks.replay import replay_task
from colony.testing import Reply, ScriptedModelServer
from colony.tools.builtin import BUILTIN_TOOLS
from colony.tools.registry import ToolRegistry


def _since_user(body: dict[str, Any]) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = body["messages"]
    last_user = max(i for i, m in enumerate(msgs) if m["role"] == "user")
    return msgs[last_user + 1:]


def _goal(body: dict[str, Any]) -> str:
    return str([m for m in body["messages"] if m["role"] == "user"][-1]["content"])


def write_then_read(body: dict[str, Any]) -> Reply:
    """Write a file named after the task, read it back, then answer with what it says."""
    goal = _goal(body)
    name = goal.split()[-1].strip(".") + ".txt"
    tools_done = [m for m in _since_user(body) if m["role"] == "tool"]
    if not tools_done:
        return Reply.tool_calls([("write_file", {"path": name, "content": f"made for: {goal}\n"})])
    if len(tools_done) == 1:
        return Reply.tool_calls([("read_file", {"path": name})])
    return Reply.text(f"done: {tools_done[-1]['content'].strip()[:80]}")


@pytest.fixture
async def node(model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    monkeypatch.setenv("COLONY_TOOL_POLICY", json.dumps({"write_file": "allow"}))
    monkeypatch.setenv("COLONY_TASK_LEASE_TTL_S", "5")
    n = Node(Settings())
    yield n
    await n.aclose()


async def test_the_autonomy_loop_works_a_queue_of_agent_tasks(node: Node, model: ScriptedModelServer) -> None:
    model.set_script(write_then_read)
    store = open_store(node)
    low = store.post(TaskSpec(goal="Write the file alpha", priority=1))
    high = store.post(TaskSpec(goal="Write the file beta", priority=5))
    after = store.post(TaskSpec(goal="Write the file gamma", priority=9, depends_on=[low.id]))
    stop = asyncio.Event()
    ran = await run_daemon(node, stop, worker="w1", max_tasks=3)
    assert ran == 3
    order = [e.task_id for t in (low, high, after) for e in store.events(t.id) if e.to_state == "assigned"]
    claimed = sorted(order, key=lambda tid: next(e.id for e in store.events(tid) if e.to_state == "assigned"))
    assert claimed == [high.id, low.id, after.id]  # priority, but gamma waited for alpha
    ws = node.settings.workspace
    for t, name in ((low, "alpha"), (high, "beta"), (after, "gamma")):
        final = store.get(t.id)
        assert final.state == "completed"
        assert final.result == f"done: made for: Write the file {name}"
        assert (ws / f"{name}.txt").read_text() == f"made for: Write the file {name}\n"
        events = store.events(t.id)
        assert [e.to_state for e in events] == ["posted", "assigned", "executing", "completed"]
        assert state_from_events(events) == "completed"
        steps = [(c.step, c.kind) for c in load_checkpoints(node.db, t.id)]
        assert sum(step.startswith("tools/") for step, _ in steps) == 1  # schemas stored once per task
        steps = [(step, kind) for step, kind in steps if not step.startswith("tools/")]
        assert steps == [("recall", "step"), ("m0", "model"), ("t0", "tool"), ("m1", "model"), ("t1", "tool"), ("m2", "model")]
        assert final.used_tool_calls == 2 and final.used_tokens > 0
    row = node.db.one("SELECT * FROM autonomy_workers WHERE worker = 'w1'")
    assert row is not None and row["state"] == "stopped" and row["tasks_done"] == 3
    assert await run_once(node, worker="w1") is None  # the queue is empty


async def test_replay_reproduces_the_recorded_decisions_byte_for_byte(
    node: Node, model: ScriptedModelServer
) -> None:
    model.set_script(write_then_read)
    store = open_store(node)
    task = store.post(TaskSpec(goal="Write the file delta", plan=[
        PlanStep(title="Write the file delta"), PlanStep(title="Check the file delta", depends_on=[0])]))
    run = await run_once(node, worker="w1")
    assert run is not None and run.outcome == "completed" and run.live_steps == 10
    recorded = [c for c in load_checkpoints(node.db, task.id) if c.kind == "model"]
    served_before = len(model.requests)
    (node.settings.workspace / "delta.txt").unlink()

    report = await replay_task(node, store, task.id)

    assert report.divergences == [], [d.detail for d in report.divergences]
    assert report.identical and report.turns == 2 and report.model_steps == 6 and report.tool_steps == 4
    as_bytes = [json.dumps(d, sort_keys=True).encode() for d in report.decisions]
    assert as_bytes == [json.dumps(c.body["response"], sort_keys=True).encode() for c in recorded]
    assert len(model.requests) == served_before  # no live model
    assert not (node.settings.workspace / "delta.txt").exists()  # no side effects
    # the audit says no model was called during the replay: no provider, no tokens
    replayed = node.db.query("SELECT provider, outcome, prompt_tokens, completion_tokens FROM llm_calls "
                             "WHERE turn_id IN (SELECT id FROM turns WHERE session_id IN "
                             "(SELECT id FROM sessions WHERE surface = 'replay'))")
    assert len(replayed) == 6
    assert {(r["provider"], r["outcome"], r["prompt_tokens"], r["completion_tokens"]) for r in replayed} == {
        ("replay", "replay", 0, 0)}


async def test_replay_names_where_a_changed_prompt_or_policy_diverges(
    node: Node, model: ScriptedModelServer
) -> None:
    model.set_script(write_then_read)
    store = open_store(node)
    task = store.post(TaskSpec(goal="Write the file eps"))
    await run_once(node, worker="w1")

    node.settings = node.settings.model_copy(update={"persona": "You are a different agent."})
    report = await replay_task(node, store, task.id)
    assert [(d.step, d.kind) for d in report.divergences][:1] == [("m0", "prompt")]
    assert "message 0 (system)" in report.divergences[0].detail

    node.settings = node.settings.model_copy(update={"persona": Settings().persona, "tool_policy": {}})
    report = await replay_task(node, store, task.id)
    assert [(d.step, d.kind) for d in report.divergences] == [("t0", "policy")]
    assert "write_file ran with approval 'allow' but its tier is now 'ask'" in report.divergences[0].detail

    node.settings = node.settings.model_copy(update={"tool_policy": {"write_file": "allow"}})
    node.registry = ToolRegistry([t for t in BUILTIN_TOOLS if t.name != "list_dir"])
    report = await replay_task(node, store, task.id)
    assert (report.divergences[0].step, report.divergences[0].kind) == ("m0", "tools")
    assert report.divergences[0].detail == "tool definitions differ: list_dir"


async def _wait_state(store: Any, task_id: str, state: str) -> None:
    for _ in range(500):
        if store.get(task_id).state == state:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task_id} never reached {state}: {store.get(task_id).state}")


async def test_a_paused_tool_waits_for_a_person_and_runs_when_approved(
    node: Node, model: ScriptedModelServer
) -> None:
    model.set_script(write_then_read)
    store = open_store(node)
    task = store.post(TaskSpec(goal="Write the file zeta", pause_tools=["write_file"], approval_timeout_s=20))
    running = asyncio.ensure_future(run_once(node, worker="w1"))
    await _wait_state(store, task.id, "awaiting_approval")
    waiting = store.get(task.id)
    assert waiting.awaiting is not None and waiting.awaiting["tool"] == "write_file"
    assert waiting.lease_owner == "w1"  # the worker keeps the task while a person decides
    decide(store, task.id, True, actor="alice")
    run = await running
    assert run is not None and run.outcome == "completed"
    assert (node.settings.workspace / "zeta.txt").exists()
    states = [e.to_state for e in store.events(task.id)]
    assert states == ["posted", "assigned", "executing", "awaiting_approval", "executing", "completed"]
    assert store.events(task.id)[4].actor == "alice"


@pytest.mark.parametrize(("default", "final"), [("deny", "completed"), ("fail", "failed")])
async def test_an_unanswered_tool_pause_follows_the_default(
    node: Node, model: ScriptedModelServer, default: str, final: str
) -> None:
    model.set_script(write_then_read)
    store = open_store(node)
    task = store.post(TaskSpec(goal="Write the file eta", pause_tools=["write_file"], approval_timeout_s=0.3,
                               approval_default=default))  # type: ignore[arg-type]
    run = await run_once(node, worker="w1")
    assert run is not None
    assert store.get(task.id).state == final
    assert not (node.settings.workspace / "eta.txt").exists()
    timeout_event = next(e for e in store.events(task.id) if e.actor == "timeout")
    assert timeout_event.data == {"decision": "expired"}


async def test_a_task_level_pause_holds_the_task_until_approved(node: Node, model: ScriptedModelServer) -> None:
    model.set_script(write_then_read)
    store = open_store(node)
    task = store.post(TaskSpec(goal="Write the file theta", approval="task"))
    run = await run_once(node, worker="w1")
    assert run is not None and run.outcome == "paused"
    paused = store.get(task.id)
    assert paused.state == "awaiting_approval" and paused.lease_owner is None and model.requests == []
    assert await run_once(node, worker="w1") is None  # nothing ready while it waits
    decide(store, task.id, True)
    run = await run_once(node, worker="w1")
    assert run is not None and run.outcome == "completed"

    denied = store.post(TaskSpec(goal="Write the file iota", approval="task", approval_timeout_s=0.05))
    await run_once(node, worker="w1")
    await asyncio.sleep(0.1)
    assert await run_once(node, worker="w1") is None
    assert store.get(denied.id).state == "cancelled"


async def test_a_task_over_its_token_budget_fails_without_retrying(node: Node, model: ScriptedModelServer) -> None:
    model.set_script(write_then_read)
    store = open_store(node)
    task = store.post(TaskSpec(goal="Write the file kappa", budget=Budget(tokens=1), max_attempts=3))
    run = await run_once(node, worker="w1")
    assert run is not None and run.outcome == "failed"
    final = store.get(task.id)
    assert final.state == "failed" and final.error is not None and final.error.startswith("budget_exhausted")
    assert len(model.requests) == 1  # the second request was refused before it was sent


async def test_a_failing_model_sends_the_task_to_retry_wait_with_backoff(
    node: Node, model: ScriptedModelServer
) -> None:
    model.set_script([Reply.error(400, "bad request")])
    store = open_store(node)
    task = store.post(TaskSpec(goal="Write the file lambda", max_attempts=2))
    run = await run_once(node, worker="w1")
    assert run is not None and run.outcome == "retry"
    waiting = store.get(task.id)
    assert waiting.state == "retry_wait" and waiting.not_before > waiting.updated_at
    assert await run_once(node, worker="w1") is None  # backing off


def test_node_fixture_paths(node: Node, tmp_path: Path) -> None:
    assert node.settings.home == tmp_path / "home"


async def test_the_daemon_curates_memory_on_its_schedule_and_stops_when_asked(
    node: Node, model: ScriptedModelServer
) -> None:
    model.set_script(write_then_read)
    node.settings = node.settings.model_copy(update={"memory_curate_interval_s": 0.001,
                                                     "autonomy_interval_s": 0.01})
    store = open_store(node)
    task = store.post(TaskSpec(goal="Write the file mu"))
    stop = asyncio.Event()
    daemon = asyncio.ensure_future(run_daemon(node, stop, worker="w2"))
    await _wait_state(store, task.id, "completed")
    for _ in range(200):
        row = node.db.one("SELECT curated_at, state FROM autonomy_workers WHERE worker = 'w2'")
        if row is not None and row["curated_at"] is not None:
            break
        await asyncio.sleep(0.01)
    stop.set()
    assert await daemon == 1
    row = node.db.one("SELECT curated_at, state, tasks_done, last_task FROM autonomy_workers WHERE worker = 'w2'")
    assert row is not None and row["curated_at"] is not None
    assert (row["state"], row["tasks_done"], row["last_task"]) == ("stopped", 1, task.id)
