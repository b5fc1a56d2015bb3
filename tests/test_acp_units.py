"""The ACP surface's pure parts: message checks, the fail-closed decision, prompt text, and the
mapping from loop events to session updates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from acp import text_block
from acp.schema import (
    AgentMessageChunk,
    AgentPlanUpdate,
    AgentThoughtChunk,
    AllowedOutcome,
    DeniedOutcome,
    EmbeddedResourceContentBlock,
    ImageContentBlock,
    RequestPermissionResponse,
    ResourceContentBlock,
    TextResourceContents,
    ToolCallProgress,
    ToolCallStart,
    UserMessageChunk,
)

import colony.acp
import colony.mcpx
from colony.acp.approver import decision_of
from colony.acp.prompt import prompt_text
from colony.acp.transport import check_message
from colony.acp.updates import TurnMapper, history_updates
from colony.agent.events import (
    AgentEvent,
    ApprovalRequested,
    Notice,
    TextDelta,
    ToolCallFinished,
    ToolCallRunning,
    ToolCallStarted,
    TurnFinished,
)
from colony.llm.messages import AssistantMessage, ToolCall, ToolResultMessage, UserMessage


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}, None),
        ({"jsonrpc": "2.0", "method": "session/cancel", "params": {"sessionId": "s"}}, None),
        ({"jsonrpc": "2.0", "id": "a", "result": None}, None),
        ({"jsonrpc": "2.0", "id": 3, "error": {"code": 1, "message": "x"}}, None),
        ([], (-32600, None)),
        ("text", (-32600, None)),
        ({"id": 1, "method": "x"}, (-32600, 1)),
        ({"jsonrpc": "2.0", "id": True, "method": "x"}, (-32600, None)),
        ({"jsonrpc": "2.0", "id": 2, "method": ""}, (-32600, 2)),
        ({"jsonrpc": "2.0", "id": 2, "method": "x", "params": "p"}, (-32600, 2)),
        ({"jsonrpc": "2.0", "id": 9}, (-32600, 9)),
    ],
)
def test_check_message(message: Any, expected: tuple[int, Any] | None) -> None:
    problem = check_message(message)
    assert (None if problem is None else (problem[0], problem[2])) == expected


@pytest.mark.parametrize(
    ("response", "decision"),
    [
        (RequestPermissionResponse(outcome=AllowedOutcome(outcome="selected", option_id="allow-once")), "approved"),
        (RequestPermissionResponse(outcome=AllowedOutcome(outcome="selected", option_id="reject-once")), "denied"),
        (RequestPermissionResponse(outcome=AllowedOutcome(outcome="selected", option_id="allow-always")), "denied"),
        (RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled")), "denied"),
        ({"outcome": {"outcome": "selected", "optionId": "allow-once"}}, "denied"),  # not validated
        (None, "denied"),
    ],
)
def test_only_the_offered_allow_option_approves(response: Any, decision: str) -> None:
    assert decision_of(response) == decision


def test_prompt_text_keeps_text_and_file_context_and_names_the_rest() -> None:
    blocks = [
        text_block("Fix the bug"),
        EmbeddedResourceContentBlock(type="resource", resource=TextResourceContents(uri="file:///w/a.py", text="x = 1")),
        ResourceContentBlock(type="resource_link", uri="file:///w/b.py", name="b.py"),
        ImageContentBlock(type="image", data="AAAA", mime_type="image/png"),
    ]
    assert prompt_text(blocks) == (
        'Fix the bug\n\n<context uri="file:///w/a.py">\nx = 1\n</context>\n\n[referenced: file:///w/b.py]\n\n'
        "[a image block was attached; Colony reads text only]"
    )


def test_turn_events_map_to_session_updates() -> None:
    mapper = TurnMapper(Path("/w"), lambda name: "write" if name == "write_file" else None)
    args = {"path": "a.txt", "content": "hi"}
    events: list[AgentEvent] = [
        TextDelta(text="Writing "),
        ToolCallStarted(call_id="c1", name="write_file", arguments=args),
        ApprovalRequested(approval_id="p", call_id="c1", tool="write_file", arguments=args, reason="r",
                          risk=[], timeout_s=1),
        ToolCallFinished(call_id="c1", name="write_file", outcome="denied", approval="denied",
                         latency_ms=1.0, content="Error (denied): no"),
        Notice(message="retrying"),
        TurnFinished(session_id="s", turn_id="t", status="completed", text="Writing done"),
    ]
    updates = [u for ev in events for u in mapper.feed(ev)]
    kinds = [type(u) for u in updates]
    assert kinds == [AgentMessageChunk, ToolCallStart, AgentPlanUpdate, ToolCallProgress,
                     AgentPlanUpdate, AgentThoughtChunk]  # the final text was streamed: not repeated
    start = updates[1]
    assert isinstance(start, ToolCallStart)
    assert (start.kind, start.title, start.locations[0].path if start.locations else None) == (
        "edit", "write_file: a.txt", "/w/a.txt")
    assert [u.status for u in updates if isinstance(u, ToolCallProgress)] == ["failed"]  # asked, then denied
    assert isinstance(start, ToolCallStart) and start.status == "pending"
    plan = updates[4]
    assert isinstance(plan, AgentPlanUpdate)
    assert [(e.content, e.status) for e in plan.entries] == [("write_file: a.txt", "completed")]


def test_a_call_moves_pending_running_done_and_a_cancelled_one_is_closed() -> None:
    mapper = TurnMapper(Path("/w"), lambda name: "read")
    started = [ToolCallStarted(call_id="c1", name="read_file", arguments={"path": "a"}),
               ToolCallRunning(call_id="c1", name="read_file"),
               ToolCallFinished(call_id="c1", name="read_file", outcome="ok", approval="allow", latency_ms=1,
                                content="x"),
               ToolCallStarted(call_id="c2", name="read_file", arguments={"path": "b"})]
    updates = [u for ev in started for u in mapper.feed(ev)]
    assert [(u.tool_call_id, u.status) for u in updates if isinstance(u, ToolCallStart | ToolCallProgress)] == [
        ("c1", "pending"), ("c1", "in_progress"), ("c1", "completed"), ("c2", "pending")]
    closing = mapper.close_open("cancelled before it finished")
    final = [u for u in closing if isinstance(u, ToolCallProgress)]
    assert [(u.tool_call_id, u.status) for u in final] == [("c2", "failed")]
    assert mapper.close_open("again") == []


def test_unstreamed_final_text_is_sent_once() -> None:
    mapper = TurnMapper(Path("/w"), lambda name: None)
    updates = mapper.feed(TurnFinished(session_id="s", turn_id="t", status="completed", text="All done"))
    assert [u.content.text for u in updates if isinstance(u, AgentMessageChunk)] == ["All done"]


def test_history_replays_the_conversation() -> None:
    call = ToolCall(id="c1", name="read_file", arguments={"path": "a.txt"})
    updates = history_updates([
        UserMessage(content="read a.txt"),
        AssistantMessage(content="", tool_calls=[call]),
        ToolResultMessage(tool_call_id="c1", name="read_file", content="hello"),
        AssistantMessage(content="It says hello."),
    ])
    assert [type(u) for u in updates] == [UserMessageChunk, ToolCallStart, ToolCallProgress, AgentMessageChunk]
    done = updates[2]
    assert isinstance(done, ToolCallProgress)
    assert done.status == "completed"


@pytest.mark.parametrize("module", [colony.acp, colony.mcpx])
def test_exported_names_exist(module: Any) -> None:
    assert all(hasattr(module, name) for name in module.__all__)
