"""Colony's own MCP server driven by the SDK's client: in process, and `colony mcp serve` on stdio."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from colony.config import Settings
from colony.mcpx.server import build_mcp_server, wait_for_person
from colony.node import Node


@pytest.fixture
async def node(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Node]:
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    monkeypatch.setenv("COLONY_APPROVAL_TIMEOUT_S", "2")
    n = Node(Settings())
    n.executor.approver = wait_for_person(n)
    yield n
    await n.aclose()


def _text(result: object) -> str:
    return "\n".join(getattr(block, "text", "") for block in getattr(result, "content", []))


async def test_lists_read_only_tools_and_memory_but_no_writes(node: Node) -> None:
    async with Client(build_mcp_server(node)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert {"read_file", "list_dir", "search_files", "memory_recall", "memory_store", "task_create",
            "task_status"} <= set(tools)
    assert not {"write_file", "patch_file", "run_command", "http_get"} & set(tools)
    assert tools["read_file"].annotations is not None
    assert tools["read_file"].annotations.read_only_hint is True
    assert tools["memory_store"].annotations is not None
    assert tools["memory_store"].annotations.read_only_hint is False
    assert tools["read_file"].input_schema["required"] == ["path"]


async def test_calls_run_through_the_middleware_and_are_audited(node: Node) -> None:
    (node.workspace.root / "notes.md").write_text("the launch is on Tuesday\n", encoding="utf-8")
    async with Client(build_mcp_server(node)) as client:
        read = await client.call_tool("read_file", {"path": "notes.md"})
        escape = await client.call_tool("read_file", {"path": "../../etc/passwd"})
        bad_args = await client.call_tool("read_file", {"file": "notes.md"})
        with pytest.raises(MCPError) as unknown:  # a JSON-RPC error, as the MCP tools spec shows
            await client.call_tool("write_file", {"path": "x.txt", "content": "no"})
        stored = await client.call_tool("memory_store", {"content": "The launch moved to Thursday."})
        recalled = await client.call_tool("memory_recall", {"query": "launch Thursday"})
    assert (read.is_error, _text(read)) == (False, "the launch is on Tuesday\n")
    assert escape.is_error
    assert "outside the workspace" in _text(escape)
    assert bad_args.is_error
    assert "Invalid arguments for read_file" in _text(bad_args)
    assert unknown.value.code == -32602 and "Unknown tool: write_file" in unknown.value.message
    assert not (node.workspace.root / "x.txt").exists()
    assert not stored.is_error
    assert "Thursday" in _text(recalled)
    outcomes = [(r["tool"], r["outcome"]) for r in reversed(node.records.list_tool_calls())]
    assert outcomes == [
        ("read_file", "ok"), ("read_file", "refused_path"), ("read_file", "invalid_arguments"),
        ("memory_store", "ok"), ("memory_recall", "ok"),
    ]


async def test_a_write_that_asks_waits_for_a_person(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    node.settings.tool_policy["memory_store"] = "ask"

    async def approve_when_asked() -> None:
        for _ in range(200):  # a person opens the approvals page a moment later
            pending = node.records.list_approvals(status="pending")
            if pending:
                node.records.decide_approval(pending[0]["id"], "approved", "web")
                return
            await asyncio.sleep(0.05)

    async with Client(build_mcp_server(node)) as client:
        nobody = await client.call_tool("memory_store", {"content": "nobody approves this"})
        person = asyncio.create_task(approve_when_asked())
        approved = await client.call_tool("memory_store", {"content": "a person approved this"})
        await person
    assert nobody.is_error
    assert "not approved (expired)" in _text(nobody)
    assert not approved.is_error
    statuses = sorted(r["status"] for r in node.records.list_approvals())
    assert statuses == ["approved", "expired"]


async def test_colony_mcp_serve_over_stdio(tmp_path: Path) -> None:
    ws = Path(os.environ["COLONY_WORKSPACE"])
    (ws / "a.txt").write_text("alpha\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k.startswith("COLONY_")} | {"COLONY_MEMORY_EMBEDDER": "none"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "colony", "mcp", "serve"], env=env)
    async with Client(params) as client:
        assert client.server_info is not None
        assert client.server_info.name == "colony"
        listed = await client.call_tool("list_dir", {"path": "."})
    assert not listed.is_error
    assert "a.txt" in _text(listed)


async def test_another_agent_posts_a_task_and_follows_it(node: Node) -> None:
    async with Client(build_mcp_server(node)) as client:
        refused = await client.call_tool("task_create", {"goal": "Summarize notes.md"})  # asks; nobody answers
        node.settings.tool_policy["task_create"] = "allow"
        created = await client.call_tool("task_create", {"goal": "Summarize notes.md", "priority": 5})
        task_id = json.loads(_text(created))["task_id"]
        status = await client.call_tool("task_status", {"task_id": task_id})
        missing = await client.call_tool("task_status", {"task_id": "task_0000000000000000"})
    assert refused.is_error
    assert "not approved" in _text(refused)
    assert not created.is_error
    report = json.loads(_text(status))
    assert (report["goal"], report["state"]) == ("Summarize notes.md", "posted")
    assert report["events"][0]["actor"] == "mcp"
    assert missing.is_error
    assert [r["outcome"] for r in reversed(node.records.list_tool_calls())] == ["denied", "ok", "ok", "error"]
