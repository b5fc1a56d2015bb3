"""Task-local session scoping, in process: two editor sessions prompting at once each see their own
session from inside a tool, and nothing leaks outside a prompt. The SDK's client and agent
connections are joined by its in-memory transport pair; the model is a `FunctionModel`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import acp
import pytest
from acp._transport import memory_transport_pair
from acp.agent.connection import AgentSideConnection
from acp.client.connection import ClientSideConnection
from acp.schema import AgentMessageChunk
from pydantic import BaseModel

from colony.acp import AcpApprover, ColonyAcpAgent, current_acp_session_id
from colony.config import Settings
from colony.llm.messages import AssistantMessage, Message, ToolCall, ToolResultMessage
from colony.node import Node
from colony.testing import AgentInfo, FunctionModel
from colony.tools.builtin import builtin_registry
from colony.tools.registry import ToolContext, tool


class NoArgs(BaseModel):
    pass


@tool(name="whoami")
async def whoami(ctx: ToolContext, args: NoArgs) -> str:
    """Say which editor session this call runs in."""
    await asyncio.sleep(0.05)  # let the other session's prompt interleave
    return f"acp={current_acp_session_id()} turn-session={ctx.session_id}"


def _model(messages: list[Message], info: AgentInfo) -> AssistantMessage:
    results = [m for m in messages if isinstance(m, ToolResultMessage)]
    if not results:
        return AssistantMessage(tool_calls=[ToolCall(id="w1", name="whoami", arguments={})])
    return AssistantMessage(content=results[-1].content)


class Collector:
    def __init__(self) -> None:
        self.text: dict[str, str] = {}

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        if isinstance(update, AgentMessageChunk):
            self.text[session_id] = self.text.get(session_id, "") + update.content.text

    async def request_permission(self, **kwargs: Any) -> Any:
        raise AssertionError("whoami is allowed by policy; nothing should ask")


async def test_concurrent_sessions_each_see_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    monkeypatch.setenv("COLONY_TOOL_POLICY", json.dumps({"whoami": "allow"}))
    settings = Settings()
    registry = builtin_registry()
    registry.register(whoami)
    approver = AcpApprover()
    node = Node(settings, approver=approver, registry=registry)
    agent = ColonyAcpAgent(node, approver, model=FunctionModel(_model))
    agent_end, client_end = memory_transport_pair()
    collector = Collector()
    server = AgentSideConnection(agent, agent_end, listening=True)  # type: ignore[arg-type]
    client = ClientSideConnection(collector, client_end)  # type: ignore[arg-type]
    try:
        await client.initialize(protocol_version=acp.PROTOCOL_VERSION)
        cwd = str(settings.workspace)
        a = (await client.new_session(cwd=cwd, mcp_servers=[])).session_id
        b = (await client.new_session(cwd=cwd, mcp_servers=[])).session_id
        done = await asyncio.gather(
            client.prompt(session_id=a, prompt=[acp.text_block("who am I?")]),
            client.prompt(session_id=b, prompt=[acp.text_block("who am I?")]),
        )
        assert [d.stop_reason for d in done] == ["end_turn", "end_turn"]
        assert collector.text[a] == f"acp={a} turn-session={a}"
        assert collector.text[b] == f"acp={b} turn-session={b}"
        assert current_acp_session_id() is None  # outside a prompt
    finally:
        await client.close()
        await server.close()
        await agent.aclose()
        await node.aclose()
