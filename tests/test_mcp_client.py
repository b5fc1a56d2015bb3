"""Colony consuming external MCP servers: a real stdio (and HTTP) server written with the SDK,
its tools in the agent loop against the scripted model, governed by the node's middleware,
pinned against rug pulls, and a dead or hung server handled by the breaker and shown in health."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from colony.agent.events import ToolCallFinished
from colony.agent.loop import run_turn_collect
from colony.cli import app
from colony.config import Settings
from colony.llm.messages import ToolCall
from colony.mcpx import McpHub, list_pin_events, list_pins, tool_name
from colony.node import Node
from colony.testing import Reply, ScriptedModelServer
from colony.tools.registry import ToolContext

SERVER = str(Path(__file__).parent / "data" / "mcp_test_server.py")


def _configure(monkeypatch: pytest.MonkeyPatch, log: Path, *, variant: str = "", timeout_s: float = 10.0) -> None:
    env = {"MCP_TEST_LOG": str(log), "MCP_TEST_VARIANT": variant}
    servers = [{"name": "geo", "command": sys.executable, "args": [SERVER], "env": env, "timeout_s": timeout_s}]
    monkeypatch.setenv("COLONY_MCP_SERVERS", json.dumps(servers))
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")


@pytest.fixture
async def hub_node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[tuple[Node, McpHub]]:
    _configure(monkeypatch, tmp_path / "record.log")
    monkeypatch.setenv("COLONY_TOOL_POLICY", json.dumps({"mcp__geo__lookup": "allow", "mcp__geo__hang": "allow",
                                                         "mcp__geo__crash": "allow"}))
    node = Node(Settings())
    hub = McpHub(node)
    await hub.start()
    yield node, hub
    await hub.aclose()
    await node.aclose()


async def _call(node: Node, name: str, arguments: dict[str, object]) -> tuple[str, str]:
    ctx = ToolContext(workspace=node.workspace, settings=node.settings, call_id=f"c-{name}")
    result = await node.executor.call(ToolCall(id=f"c-{name}", name=name, arguments=arguments), ctx)
    return result.outcome, result.content


async def test_agent_loop_calls_an_external_tool_through_the_middleware(
    model: ScriptedModelServer, hub_node: tuple[Node, McpHub], tmp_path: Path
) -> None:
    node, _ = hub_node
    model.set_script([
        Reply.tool_calls([("mcp__geo__lookup", {"country": "Japan"}), ("mcp__geo__record", {"line": "secret"})]),
        Reply.text("The capital of Japan is Tokyo."),
    ])
    agent = await node.agent()
    final, events = await run_turn_collect(agent, node.deps, "What is the capital of Japan?")

    assert final.status == "completed"
    assert final.text == "The capital of Japan is Tokyo."
    offered = {t["function"]["name"]: t["function"] for t in model.requests[0]["tools"]}
    assert offered["mcp__geo__lookup"]["parameters"]["required"] == ["country"]
    assert offered["mcp__geo__lookup"]["description"].startswith("[MCP server geo] Look up the capital")
    finished = {e.name: e for e in events if isinstance(e, ToolCallFinished)}
    assert (finished["mcp__geo__lookup"].outcome, finished["mcp__geo__lookup"].content) == ("ok", "Tokyo")
    # record is not in tool_policy, so it asks; the node has nobody to ask: denied, never run.
    assert finished["mcp__geo__record"].outcome == "denied"
    assert not (tmp_path / "record.log").exists()
    tool_results = [m for m in model.requests[1]["messages"] if m["role"] == "tool"]
    assert tool_results[0]["content"] == "Tokyo"
    audited = {r["tool"]: r for r in node.records.list_tool_calls(session_id=final.session_id)}
    assert audited["mcp__geo__lookup"]["outcome"] == "ok"
    assert audited["mcp__geo__record"]["outcome"] == "denied"


async def test_dead_server_opens_the_breaker_shows_in_health_and_reconnects(
    hub_node: tuple[Node, McpHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    node, hub = hub_node
    assert [h.state for h in hub.health()] == ["connected"]
    outcome, content = await _call(node, "mcp__geo__crash", {})
    assert outcome == "error"
    assert "MCP server geo failed on crash" in content
    health = hub.health()[0]
    assert health.state == "dead"
    assert health.error
    for _ in range(2):  # the breaker opens after three failures in a row (the default)
        await _call(node, "mcp__geo__crash", {})
    assert hub.health()[0].breakers["mcp__geo__crash"] == "open"
    outcome, content = await _call(node, "mcp__geo__crash", {})
    assert (outcome, "temporarily unavailable" in content) == ("unavailable", True)
    # Another tool of the same server reconnects on its next call.
    assert await _call(node, "mcp__geo__lookup", {"country": "Kenya"}) == ("ok", "Nairobi")
    assert hub.health()[0].state == "connected"


async def test_hung_server_call_is_bounded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _configure(monkeypatch, tmp_path / "log", timeout_s=1.0)
    monkeypatch.setenv("COLONY_TOOL_POLICY", json.dumps({"mcp__geo__hang": "allow"}))
    node = Node(Settings())
    hub = McpHub(node)
    await hub.start()
    try:
        started = time.monotonic()
        outcome, content = await _call(node, "mcp__geo__hang", {})
        assert time.monotonic() - started < 8
        assert outcome == "error"
        assert "failed on hang" in content
        assert hub.health()[0].state == "dead"
    finally:
        await hub.aclose()
        await node.aclose()


async def test_unreachable_server_does_not_stop_the_node(monkeypatch: pytest.MonkeyPatch) -> None:
    servers = [{"name": "ghost", "command": "/nonexistent/mcp-server", "connect_timeout_s": 5}]
    monkeypatch.setenv("COLONY_MCP_SERVERS", json.dumps(servers))
    node = Node(Settings())
    hub = McpHub(node)
    try:
        await hub.start()
        health = hub.health()[0]
        assert (health.name, health.state, health.tools) == ("ghost", "dead", [])
        assert health.error
        assert not [t for t in node.registry.names() if t.startswith("mcp__")]
    finally:
        await hub.aclose()
        await node.aclose()


async def test_changed_definition_disables_the_tool_until_approved(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def start(variant: str) -> tuple[Node, McpHub]:
        _configure(monkeypatch, tmp_path / "log", variant=variant)
        node = Node(Settings())
        hub = McpHub(node)
        await hub.start()
        return node, hub

    async def stop(node: Node, hub: McpHub) -> None:
        await hub.aclose()
        await node.aclose()

    node, hub = await start("")
    first = {p.tool: p for p in list_pins(node.db)}
    assert set(first) == {"lookup", "record", "hang", "crash"}
    assert {p.status for p in first.values()} == {"approved"}
    await stop(node, hub)

    node, hub = await start("changed")  # the server now asks the model to leak a key
    assert tool_name("geo", "lookup") not in node.registry
    assert tool_name("geo", "record") in node.registry
    assert hub.health()[0].disabled == ["lookup"]
    changed = {p.tool: p for p in list_pins(node.db)}["lookup"]
    assert changed.status == "changed"
    assert changed.hash == first["lookup"].hash
    assert changed.pending_hash and changed.pending_hash != changed.hash
    await stop(node, hub)

    runner = CliRunner()
    listed = runner.invoke(app, ["mcp", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert {r["tool"]: r["status"] for r in json.loads(listed.output)}["lookup"] == "changed"
    assert runner.invoke(app, ["mcp", "approve", "geo", "record"]).exit_code == 1  # nothing changed there
    approved = runner.invoke(app, ["mcp", "approve", "geo", "lookup"])
    assert approved.exit_code == 0, approved.output

    node, hub = await start("changed")
    try:
        assert tool_name("geo", "lookup") in node.registry
        assert hub.health()[0].disabled == []
        events = [(e.tool, e.event, e.actor.split(":")[0]) for e in reversed(list_pin_events(node.db))]
        assert [e for e in events if e[0] == "lookup"] == [
            ("lookup", "pinned", "first-use"), ("lookup", "changed", "server"), ("lookup", "approved", "cli"),
        ]
    finally:
        await stop(node, hub)


async def test_a_definition_changed_while_running_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    variant = tmp_path / "variant"
    env = {"MCP_TEST_LOG": str(tmp_path / "log"), "MCP_TEST_VARIANT_FILE": str(variant)}
    monkeypatch.setenv("COLONY_MCP_SERVERS", json.dumps([{"name": "geo", "command": sys.executable,
                                                          "args": [SERVER], "env": env}]))
    monkeypatch.setenv("COLONY_TOOL_POLICY", json.dumps({"mcp__geo__lookup": "allow", "mcp__geo__crash": "allow"}))
    node = Node(Settings())
    hub = McpHub(node)
    await hub.start()
    try:
        assert await _call(node, "mcp__geo__lookup", {"country": "France"}) == ("ok", "Paris")
        variant.write_text("changed")
        await _call(node, "mcp__geo__crash", {})  # the server restarts with its new description
        outcome, content = await _call(node, "mcp__geo__lookup", {"country": "France"})
        assert outcome == "denied"
        assert "changed since it was approved" in content
        assert hub.health()[0].disabled == ["lookup"]
        assert [e.event for e in list_pin_events(node.db) if e.tool == "lookup"] == ["changed", "pinned"]
    finally:
        await hub.aclose()
        await node.aclose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_server() -> Iterator[str]:
    """The test server on streamable HTTP, bound to 127.0.0.1; stopped by PID afterwards."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, SERVER, "--http", str(port)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_streamable_http_server(http_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_MCP_SERVERS", json.dumps([{"name": "web", "url": http_server}]))
    monkeypatch.setenv("COLONY_TOOL_POLICY", json.dumps({"mcp__web__lookup": "allow"}))
    node = Node(Settings())
    hub = McpHub(node)
    try:
        await hub.start()
        assert hub.health()[0].transport == "http"
        assert hub.health()[0].state == "connected"
        assert await _call(node, "mcp__web__lookup", {"country": "France"}) == ("ok", "Paris")
    finally:
        await hub.aclose()
        await node.aclose()


def test_colony_mcp_check_reports_health(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    servers = [
        {"name": "geo", "command": sys.executable, "args": [SERVER], "env": {"MCP_TEST_LOG": str(tmp_path / "l")}},
        {"name": "ghost", "command": "/nonexistent/mcp-server", "connect_timeout_s": 5},
    ]
    monkeypatch.setenv("COLONY_MCP_SERVERS", json.dumps(servers))
    result = CliRunner().invoke(app, ["mcp", "check", "--json"])
    assert result.exit_code == 1  # one server is down
    report = {h["name"]: h for h in json.loads(result.output)}
    assert report["geo"]["state"] == "connected"
    assert "mcp__geo__lookup" in report["geo"]["tools"]
    assert report["ghost"]["state"] == "dead"
