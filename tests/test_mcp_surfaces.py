"""External MCP servers on the node's everyday surfaces: `colony up` (health shows them) and
`colony chat` (their tools join the turn), with the test server from tests/data over stdio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from colony.config import Settings
from colony.testing import NodeServer, Reply, ScriptedModelServer

SERVER = str(Path(__file__).parent / "data" / "mcp_test_server.py")


def servers_env(tmp_path: Path, *extra: dict[str, object]) -> str:
    geo = {"name": "geo", "command": sys.executable, "args": [SERVER],
           "env": {"MCP_TEST_LOG": str(tmp_path / "record.log")}}
    return json.dumps([geo, *extra])


def test_up_connects_configured_servers_and_health_shows_each(
    model: ScriptedModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = {"name": "gone", "command": str(tmp_path / "no-such-binary")}
    monkeypatch.setenv("COLONY_MCP_SERVERS", servers_env(tmp_path, dead))
    with NodeServer(Settings()) as node:
        deadline = time.monotonic() + 30
        while True:
            mcp = {s["name"]: s for s in httpx.get(f"{node.base_url}/api/v1/health").json()["checks"]["mcp"]}
            if (mcp["geo"]["state"] == "connected" and mcp["gone"]["state"] == "dead") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert mcp["geo"]["state"] == "connected", mcp
    assert "mcp__geo__lookup" in mcp["geo"]["tools"]
    assert mcp["gone"]["state"] == "dead" and mcp["gone"]["error"], mcp  # a broken server is named, not fatal


def test_health_lists_no_servers_when_none_are_configured(model: ScriptedModelServer) -> None:
    with NodeServer(Settings()) as node:
        assert httpx.get(f"{node.base_url}/api/v1/health").json()["checks"]["mcp"] == []


def test_chat_uses_an_external_tool(model: ScriptedModelServer, tmp_path: Path) -> None:
    model.set_script([
        Reply.tool_calls([("mcp__geo__lookup", {"country": "Kenya"})]),
        Reply.text("The capital of Kenya is Nairobi."),
    ])
    env = {**os.environ, "COLONY_MODEL_BASE_URL": model.base_url, "COLONY_MODEL_NAME": "scripted",
           "COLONY_MCP_SERVERS": servers_env(tmp_path), "COLONY_TOOL_POLICY": json.dumps({"mcp__geo__lookup": "allow"})}
    r = subprocess.run([sys.executable, "-m", "colony", "chat", "--json", "capital of Kenya?"],
                       capture_output=True, text=True, timeout=90, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    # The model saw the external tool offered, and its answer came back from the server process.
    offered = [t["function"]["name"] for t in model.requests[0]["tools"]]
    assert "mcp__geo__lookup" in offered
    tool_message = next(m for m in model.requests[1]["messages"] if m["role"] == "tool")
    assert "Nairobi" in tool_message["content"]
