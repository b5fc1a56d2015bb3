"""The agent loop, driven by an in-process FunctionModel: whole transcripts and stored rows."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from colony.agent.events import (
    ApprovalRequested,
    Notice,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from colony.agent.loop import Agent, PromptTooLargeError, RunDeps, override_model, run_turn, run_turn_collect
from colony.config import Settings
from colony.errors import ModelUnavailableError
from colony.llm.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from colony.store import Database, open_database
from colony.store.sqlite_records import SqliteRecordStore
from colony.testing import AgentInfo, FunctionModel
from colony.tools.approval import ApprovalRequest, Decision
from colony.tools.middleware import ToolExecutor
from colony.tools.registry import ToolContext, ToolRegistry, tool
from colony.tools.workspace import Workspace


class NoteArgs(BaseModel):
    name: str
    text: str = ""


@tool(effect="write")
async def save_note(ctx: ToolContext, args: NoteArgs) -> str:
    """Save a note into the workspace."""
    ctx.workspace.resolve(f"{args.name}.txt").write_text(args.text)
    return f"saved {args.name}"


@tool()
async def read_note(ctx: ToolContext, args: NoteArgs) -> str:
    """Read a note from the workspace."""
    path = ctx.workspace.resolve(f"{args.name}.txt")
    if not path.exists():
        from colony.errors import ToolError

        raise ToolError("read_note", f"no note {args.name}")
    return path.read_text()


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = open_database(tmp_path / "loop.db")
    yield d  # type: ignore[misc]
    d.close()


def deps_for(settings: Settings, db: Database, approver=None) -> RunDeps:  # type: ignore[no-untyped-def]
    s = settings.model_copy(update={"tool_policy": {"save_note": "ask", "read_note": "allow"}})

    async def yes(req: ApprovalRequest) -> Decision:
        return "approved"

    records = SqliteRecordStore(db)
    ex = ToolExecutor(ToolRegistry([save_note, read_note]), s, records, approver=approver or yes)
    return RunDeps(records=records, executor=ex, workspace=Workspace(s.workspace), settings=s)


def last_is_tool_result(messages: list[Message]) -> bool:
    return isinstance(messages[-1], ToolResultMessage)


def three_tool_model(messages: list[Message], info: AgentInfo) -> AssistantMessage | str:
    """Save two notes, read one back, then answer with what it read."""
    results = [m for m in messages if isinstance(m, ToolResultMessage)]
    if not results:
        return AssistantMessage(
            tool_calls=[
                ToolCall(id="c1", name="save_note", arguments={"name": "a", "text": "alpha"}),
                ToolCall(id="c2", name="save_note", arguments={"name": "b", "text": "beta"}),
            ]
        )
    if len(results) == 2:
        return AssistantMessage(tool_calls=[ToolCall(id="c3", name="read_note", arguments={"name": "a"})])
    return f"The note says {results[-1].content}."


async def test_multi_tool_turn_transcript_and_rows(settings: Settings, db: Database) -> None:
    deps = deps_for(settings, db)
    agent = Agent(model=FunctionModel(three_tool_model))
    fin, events = await run_turn_collect(agent, deps, "Save notes a and b, then read a back.")
    assert fin.status == "completed" and fin.text == "The note says alpha."
    assert fin.tool_calls == 3 and fin.model_requests == 3
    kinds = [e.kind for e in events]
    assert kinds[0] == "turn_started" and kinds[-1] == "turn_finished"
    started = [e.name for e in events if isinstance(e, ToolCallStarted)]
    assert started == ["save_note", "save_note", "read_note"]
    approvals = [e for e in events if isinstance(e, ApprovalRequested)]
    assert [a.tool for a in approvals] == ["save_note", "save_note"]
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert [(f.outcome, f.approval) for f in finished] == [
        ("ok", "approved"),
        ("ok", "approved"),
        ("ok", "allow"),
    ]
    # The whole transcript is stored in order.
    stored = SqliteRecordStore(db).load_messages(fin.session_id)
    assert [m.kind for m in stored] == ["user", "assistant", "tool", "tool", "assistant", "tool", "assistant"]
    assert stored[-1] == AssistantMessage(content="The note says alpha.")
    assert [r["tool"] for r in reversed(SqliteRecordStore(db).list_tool_calls())] == ["save_note", "save_note", "read_note"]
    turn = SqliteRecordStore(db).get_turn(fin.turn_id)
    assert turn is not None and turn["status"] == "completed" and turn["tool_calls"] == 3
    assert json.loads(turn["perception"])["task_type"] == "action"
    [ep] = SqliteRecordStore(db).list_episodes(session_id=fin.session_id)
    assert ep["outcome"] == "success" and len(json.loads(ep["done"])) == 3
    calls = SqliteRecordStore(db).list_llm_calls(turn_id=fin.turn_id)
    assert len(calls) == 3 and all(c["prompt_tokens"] > 0 for c in calls)
    assert (settings.workspace / "b.txt").read_text() == "beta"


async def test_context_has_persona_perception_and_history(settings: Settings, db: Database) -> None:
    seen: list[list[Message]] = []
    offered: list[set[str]] = []

    def model(messages: list[Message], info: AgentInfo) -> str:
        seen.append(list(messages))
        offered.append({t.name for t in info.tools})
        return "ok"

    deps = deps_for(settings, db)
    agent = Agent(model=FunctionModel(model), persona="You are a test persona.")
    fin, _ = await run_turn_collect(agent, deps, "first question?")
    await run_turn_collect(agent, deps, "Delete the prod database", session_id=fin.session_id)
    system = seen[1][0]
    assert isinstance(system, SystemMessage)
    assert "You are a test persona." in system.content and "[Perception]" in system.content
    assert "save_note" in system.content
    assert [m.content for m in seen[1][1:]] == ["first question?", "ok", "Delete the prod database"]
    assert offered[1] == {"save_note", "read_note"}
    assert "delete" in system.content and "prod" in system.content  # risk reached the model


async def test_denied_approval_is_fed_back_and_turn_continues(settings: Settings, db: Database) -> None:
    async def no(req: ApprovalRequest) -> Decision:
        return "denied"

    def model(messages: list[Message], info: AgentInfo) -> AssistantMessage | str:
        if last_is_tool_result(messages):
            assert isinstance(messages[-1], ToolResultMessage)
            return f"Could not save: {messages[-1].content[:40]}"
        return AssistantMessage(
            tool_calls=[ToolCall(id="x", name="save_note", arguments={"name": "n", "text": "t"})]
        )

    fin, _ = await run_turn_collect(
        Agent(model=FunctionModel(model)), deps_for(settings, db, no), "save a note"
    )
    assert fin.status == "completed" and fin.text.startswith("Could not save: Error (denied)")
    assert not (settings.workspace / "n.txt").exists()
    [ep] = SqliteRecordStore(db).list_episodes()
    assert ep["outcome"] == "partial"


async def test_narrated_tool_call_gets_exactly_one_corrective_retry(settings: Settings, db: Database) -> None:
    asked: list[int] = []

    def model(messages: list[Message], info: AgentInfo) -> str:
        asked.append(1)
        return "I will use the read_note tool to read the note named a."

    fin, events = await run_turn_collect(
        Agent(model=FunctionModel(model)), deps_for(settings, db), "read note a"
    )
    assert len(asked) == 2  # one retry, not a loop
    assert any(isinstance(e, Notice) and "described a tool call" in e.message for e in events)
    assert fin.status == "completed"


async def test_narration_then_real_call_works(settings: Settings, db: Database) -> None:
    def model(messages: list[Message], info: AgentInfo) -> AssistantMessage | str:
        if last_is_tool_result(messages):
            return "done"
        if isinstance(messages[-1], UserMessage) and "described a tool call" in messages[-1].content:
            return AssistantMessage(tool_calls=[ToolCall(id="r", name="read_note", arguments={"name": "zz"})])
        return "Let me call the read_note tool with name zz."

    fin, _ = await run_turn_collect(Agent(model=FunctionModel(model)), deps_for(settings, db), "read note zz")
    assert fin.status == "completed" and fin.tool_calls == 1


async def test_tool_budget_is_enforced(settings: Settings, db: Database) -> None:
    def model(messages: list[Message], info: AgentInfo) -> AssistantMessage | str:
        if not info.tools:
            return "out of budget, answering"
        return AssistantMessage(
            tool_calls=[
                ToolCall(id=f"r{len(messages)}-{i}", name="read_note", arguments={"name": "none"})
                for i in range(3)
            ]
        )

    agent = Agent(model=FunctionModel(model), max_tool_calls=4)
    fin, _ = await run_turn_collect(agent, deps_for(settings, db), "loop forever")
    assert fin.tool_calls == 4 and fin.text == "out of budget, answering"
    results = [m for m in SqliteRecordStore(db).load_messages(fin.session_id) if isinstance(m, ToolResultMessage)]
    assert sum("budget" in r.content for r in results) == 2


async def test_model_request_budget_stops_a_runaway_model(settings: Settings, db: Database) -> None:
    def model(messages: list[Message], info: AgentInfo) -> AssistantMessage:
        return AssistantMessage(
            tool_calls=[ToolCall(id=f"r{len(messages)}", name="read_note", arguments={"name": "x"})]
        )

    agent = Agent(model=FunctionModel(model), max_model_requests=3, max_tool_calls=100)
    fin, _ = await run_turn_collect(agent, deps_for(settings, db), "go")
    assert fin.status == "failed" and fin.error_code == "budget_exhausted" and fin.model_requests == 3


async def test_model_down_fails_the_turn_but_keeps_the_record(settings: Settings, db: Database) -> None:
    def model(messages: list[Message], info: AgentInfo) -> str:
        raise ModelUnavailableError("No model endpoint reachable at http://127.0.0.1:9/v1 — start Ollama")

    fin, _ = await run_turn_collect(Agent(model=FunctionModel(model)), deps_for(settings, db), "hello")
    assert (
        fin.status == "failed"
        and fin.error_code == "model_unavailable"
        and "start Ollama" in (fin.error or "")
    )
    turn = SqliteRecordStore(db).get_turn(fin.turn_id)
    assert turn is not None and turn["status"] == "failed"
    assert [m.kind for m in SqliteRecordStore(db).load_messages(fin.session_id)] == ["user"]
    assert SqliteRecordStore(db).list_episodes()[0]["outcome"] == "failure"


async def test_streaming_yields_text_deltas(settings: Settings, db: Database) -> None:
    def model(messages: list[Message], info: AgentInfo) -> str:
        return "streamed answer with several words in it"

    fin, events = await run_turn_collect(Agent(model=FunctionModel(model)), deps_for(settings, db), "hi")
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 1 and "".join(deltas) == fin.text


async def test_cancelling_a_running_turn_records_it(settings: Settings, db: Database) -> None:
    started = asyncio.Event()

    async def model(messages: list[Message], info: AgentInfo) -> str:
        started.set()
        await asyncio.sleep(30)
        return "too late"

    async def consume() -> None:
        async for _ in run_turn(
            Agent(model=FunctionModel(model)), deps_for(settings, db), "slow one", stream=False
        ):
            pass

    task = asyncio.ensure_future(consume())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [turn] = db.query("SELECT * FROM turns")
    assert turn["status"] == "cancelled"
    assert SqliteRecordStore(db).list_episodes()[0]["outcome"] == "cancelled"


async def test_huge_prompt_is_refused_before_anything_is_stored(settings: Settings, db: Database) -> None:
    agent = Agent(model=FunctionModel(lambda m, i: "x"))
    with pytest.raises(PromptTooLargeError, match="limit"):
        await run_turn_collect(agent, deps_for(settings, db), "x" * 1_000_000)
    assert db.scalar("SELECT COUNT(*) FROM turns") == 0


async def test_unicode_and_nul_prompts_round_trip(settings: Settings, db: Database) -> None:
    prompt = "résumé \x00 🐝 ‮rtl‬ 中文"
    fin, _ = await run_turn_collect(
        Agent(model=FunctionModel(lambda m, i: m[-1].content)), deps_for(settings, db), prompt
    )
    assert fin.text == prompt
    assert SqliteRecordStore(db).load_messages(fin.session_id)[0] == UserMessage(content=prompt)


async def test_override_model_replaces_the_agents_model(settings: Settings, db: Database) -> None:
    agent = Agent(model=FunctionModel(lambda m, i: "real"))
    with override_model(FunctionModel(lambda m, i: "override")):
        fin, _ = await run_turn_collect(agent, deps_for(settings, db), "which?")
    assert fin.text == "override"


async def test_history_is_trimmed_to_the_context_budget(settings: Settings, db: Database) -> None:
    seen: list[int] = []

    def model(messages: list[Message], info: AgentInfo) -> str:
        seen.append(sum(len(m.content) for m in messages))
        return "y" * 3000

    agent = Agent(model=FunctionModel(model), context_tokens=2048)
    deps = deps_for(settings, db)
    fin, _ = await run_turn_collect(agent, deps, "start")
    for _ in range(10):
        await run_turn_collect(agent, deps, "more " * 100, session_id=fin.session_id)
    assert max(seen) < 2048 * 4  # never more characters than the budget allows
    assert len(SqliteRecordStore(db).load_messages(fin.session_id)) == 22  # but everything is stored


async def test_perception_summary_can_be_left_out_of_the_context(settings: Settings, db: Database) -> None:
    systems: list[str] = []

    def model(messages: list[Message], info: AgentInfo) -> str:
        systems.append(messages[0].content)
        return "ok"

    agent = Agent(model=FunctionModel(model), perception_in_context=False)
    fin, _ = await run_turn_collect(agent, deps_for(settings, db), "Delete the prod database")
    assert "[Perception]" not in systems[0]
    turn = SqliteRecordStore(db).get_turn(fin.turn_id)
    assert turn is not None and "delete" in json.loads(turn["perception"])["risk_indicators"]
