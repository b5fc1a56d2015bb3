"""The agent remembers across sessions: what one session stores, a later session's context holds."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from colony.agent.loop import run_turn_collect
from colony.config import Settings
from colony.llm.messages import AssistantMessage, Message, SystemMessage, ToolCall, ToolResultMessage
from colony.node import Node
from colony.testing import AgentInfo, FunctionModel


async def test_a_fact_stored_in_one_session_is_in_a_later_sessions_context() -> None:
    seen_system: list[str] = []

    def model(messages: list[Message], info: AgentInfo) -> AssistantMessage | str:
        assert isinstance(messages[0], SystemMessage)
        seen_system.append(messages[0].content)
        if isinstance(messages[-1], ToolResultMessage):
            return "Noted."
        if "remember" in messages[-1].content.lower():
            return AssistantMessage(tool_calls=[ToolCall(id="m1", name="memory_store", arguments={
                "content": "The user's staging database is called aurora-stage-3.", "user_stated": True})])
        return "answer"

    node = Node(Settings())
    try:
        agent = await node.agent(FunctionModel(model))
        first, _ = await run_turn_collect(agent, node.deps, "Please remember that staging runs on aurora-stage-3.")
        assert first.status == "completed" and first.tool_calls == 1
        later, _ = await run_turn_collect(agent, node.deps, "Which database is our staging on?")
        assert later.session_id != first.session_id  # a new session, no shared history
        assert "aurora-stage-3" in seen_system[-1] and "Relevant memory" in seen_system[-1]
        [stored] = [h.memory for h in node.memory.recall("staging database", k=10).hits if h.memory.memory_type == "fact"]
        assert stored.verified == "user_stated" and stored.source_id == first.session_id
        # Each turn is also remembered as an episode.
        episodes = [h.memory for h in node.memory.recall("remember staging aurora", k=10).hits
                    if h.memory.memory_type == "event"]
        assert episodes and episodes[0].source_kind == "episode"
        assert json.loads(node.records.get_turn(later.turn_id)["perception"])["task_type"] == "question"  # type: ignore[index]
    finally:
        await node.aclose()


async def test_memory_recall_tool_returns_matches_with_channels() -> None:
    node = Node(Settings())
    try:
        from colony.memory import MemoryIn

        node.memory.add(MemoryIn(content="Grace rotates the on-call schedule every Monday."))
        results: list[str] = []

        def model(messages: list[Message], info: AgentInfo) -> AssistantMessage | str:
            if isinstance(messages[-1], ToolResultMessage):
                results.append(messages[-1].content)
                return "done"
            return AssistantMessage(tool_calls=[ToolCall(id="r", name="memory_recall", arguments={"query": "on-call schedule"})])

        fin, _ = await run_turn_collect(await node.agent(FunctionModel(model)), node.deps, "who does on-call?")
        assert fin.status == "completed"
        items = json.loads(results[0])
        assert items[0]["content"].startswith("Grace rotates") and "keyword" in items[0]["found_by"]
    finally:
        await node.aclose()


async def test_the_first_turn_opens_and_recalls_memory_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the embedding model (~0.4 s) and a recall (~10-20 ms at 100K) ran on the event loop,
    stalling every other coroutine of the node (heartbeats, other sessions' streams)."""
    import colony.memory.service as service
    import colony.node as node_module

    loop_thread = threading.get_ident()
    threads: dict[str, int] = {}
    real_open, real_recall = node_module.open_memory, service.Memory.recall_for_context

    def open_memory(*args: Any, **kwargs: Any) -> Any:
        threads["open"] = threading.get_ident()
        return real_open(*args, **kwargs)

    def recall_for_context(self: Any, *args: Any, **kwargs: Any) -> list[str]:
        threads["recall"] = threading.get_ident()
        return real_recall(self, *args, **kwargs)

    monkeypatch.setattr(node_module, "open_memory", open_memory)
    monkeypatch.setattr(service.Memory, "recall_for_context", recall_for_context)
    node = Node(Settings())
    try:
        agent = await node.agent(FunctionModel(lambda messages, info: "hello"))
        result, _ = await run_turn_collect(agent, node.deps, "Say hello.")
        assert result.status == "completed"
        assert set(threads) == {"open", "recall"}
        assert threads["open"] != loop_thread and threads["recall"] != loop_thread
    finally:
        await node.aclose()
