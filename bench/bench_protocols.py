"""ACP and MCP overheads: what the protocol surfaces add on top of the agent loop and the tools.

Run: .venv/bin/python bench/bench_protocols.py [--calls N] [--prompts N]

- MCP client: calling a tool of a stdio MCP server (tests/data/mcp_test_server.py) directly with
  the SDK, and the same call through Colony's middleware (pin check, breaker, rate limit,
  approval tier, audit row). The difference is Colony's governance cost per external call.
- ACP: one ``session/prompt`` round trip in process (SDK client and agent over the SDK's memory
  transport, a `FunctionModel` answering instantly): a text answer, and an answer after one
  ``read_file`` tool call with its streamed updates. Model time is excluded by construction.
- ``colony acp`` start-up: spawn the real command and wait for the ``initialize`` answer; and
  exit: close its stdin and wait for the process to end (an editor waits for that on close).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import acp
from acp._transport import memory_transport_pair
from acp.agent.connection import AgentSideConnection
from acp.client.connection import ClientSideConnection
from mcp import Client, StdioServerParameters

from _stats import table
from colony.acp import AcpApprover, ColonyAcpAgent
from colony.config import Settings
from colony.llm.messages import AssistantMessage, Message, ToolCall, ToolResultMessage
from colony.mcpx import McpHub
from colony.node import Node
from colony.testing import AgentInfo, FunctionModel
from colony.tools.registry import ToolContext

SERVER = str(Path(__file__).parent.parent / "tests" / "data" / "mcp_test_server.py")


def _settings(home: Path, **env: str) -> Settings:
    os.environ.update({"COLONY_HOME": str(home / "home"), "COLONY_WORKSPACE": str(home),
                       "COLONY_MEMORY_EMBEDDER": "none", "COLONY_AUTODETECT_LOCAL_MODELS": "false",
                       "COLONY_LOG_LEVEL": "WARNING", "COLONY_TOOL_RATE_LIMIT": "100000", **env})
    return Settings()


async def bench_mcp(home: Path, calls: int) -> None:
    direct: list[float] = []
    async with Client(StdioServerParameters(command=sys.executable, args=[SERVER])) as client:
        for _ in range(calls):
            t = time.perf_counter()
            await client.call_tool("lookup", {"country": "Japan"})
            direct.append((time.perf_counter() - t) * 1000)
    servers = [{"name": "geo", "command": sys.executable, "args": [SERVER]}]
    node = Node(_settings(home, COLONY_MCP_SERVERS=json.dumps(servers),
                          COLONY_TOOL_POLICY=json.dumps({"mcp__geo__lookup": "allow"})))
    hub = McpHub(node)
    await hub.start()
    governed: list[float] = []
    try:
        ctx = ToolContext(workspace=node.workspace, settings=node.settings)
        for i in range(calls):
            t = time.perf_counter()
            await node.executor.call(ToolCall(id=f"b{i}", name="mcp__geo__lookup", arguments={"country": "Japan"}), ctx)
            governed.append((time.perf_counter() - t) * 1000)
    finally:
        await hub.aclose()
        await node.aclose()
    table("MCP tool call (stdio server)", [("SDK client, direct", direct), ("through Colony's middleware", governed)])


def _answer(messages: list[Message], info: AgentInfo) -> AssistantMessage:
    last = messages[-1]
    if isinstance(last, ToolResultMessage):
        return AssistantMessage(content="It says hello.")
    if "read" in getattr(last, "content", ""):
        return AssistantMessage(tool_calls=[ToolCall(id="r1", name="read_file", arguments={"path": "a.txt"})])
    return AssistantMessage(content="Hello there.")


class Quiet:
    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        return None


async def bench_acp(home: Path, prompts: int) -> None:
    (home / "a.txt").write_text("hello\n")
    approver = AcpApprover()
    node = Node(_settings(home), approver=approver)
    agent = ColonyAcpAgent(node, approver, model=FunctionModel(_answer))
    agent_end, client_end = memory_transport_pair()
    server = AgentSideConnection(agent, agent_end)  # type: ignore[arg-type]
    client = ClientSideConnection(Quiet(), client_end)  # type: ignore[arg-type]
    rows: list[tuple[str, list[float]]] = []
    try:
        await client.initialize(protocol_version=acp.PROTOCOL_VERSION)
        sid = (await client.new_session(cwd=str(home), mcp_servers=[])).session_id
        for label, text in (("prompt → text answer", "hi"), ("prompt → read_file → answer", "read a.txt")):
            samples = []
            for _ in range(prompts):
                t = time.perf_counter()
                await client.prompt(session_id=sid, prompt=[acp.text_block(text)])
                samples.append((time.perf_counter() - t) * 1000)
            rows.append((label, samples))
    finally:
        await client.close()
        await server.close()
        await agent.aclose()
        await node.aclose()
    table("ACP session/prompt round trip, in process (model time excluded)", rows)


async def bench_startup(home: Path, runs: int) -> None:
    env = {k: v for k, v in os.environ.items() if k.startswith("COLONY_")}
    samples, exits = [], []
    for _ in range(runs):
        t = time.perf_counter()
        async with acp.spawn_agent_process(Quiet(), sys.executable, "-m", "colony", "acp", env=env,  # type: ignore[arg-type]
                                           transport_kwargs={"shutdown_timeout": 30.0}) as (conn, proc):
            await conn.initialize(protocol_version=acp.PROTOCOL_VERSION)
            samples.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
        exits.append((time.perf_counter() - t) * 1000)
        assert proc.returncode == 0, proc.returncode
    table("`colony acp` start and exit", [
        ("cold start: spawn → initialize answered", samples),
        ("exit: editor closes stdin → process gone", exits),
    ])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--prompts", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        await bench_mcp(Path(tmp), args.calls)
        await bench_acp(Path(tmp), args.prompts)
        await bench_startup(Path(tmp), 5)


if __name__ == "__main__":
    asyncio.run(main())
