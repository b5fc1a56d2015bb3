"""`colony acp` fed malformed JSON-RPC by hand: every bad line gets the JSON-RPC error it calls for,
nothing crashes, nothing hangs, and a stray response can never approve a tool call."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from colony.testing import Reply, ScriptedModelServer

pytestmark = pytest.mark.timeout(120)
#: No line the agent owes us may take longer than this: a hang fails the test instead of blocking it.
READ_TIMEOUT_S = 20


class RawPeer:
    """An editor that writes bytes: no SDK between the test and the agent's stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen: list[dict[str, Any]] = []

    async def send(self, message: Any) -> None:
        line = message if isinstance(message, str) else json.dumps(message)
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def next(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), READ_TIMEOUT_S)
        assert line, "the agent closed stdout"
        message: dict[str, Any] = json.loads(line)
        self.seen.append(message)
        return message

    async def response(self, msg_id: Any) -> dict[str, Any]:
        """The response to ``msg_id``, skipping notifications sent meanwhile."""
        while True:
            message = await self.next()
            if "method" not in message and message.get("id") == msg_id:
                return message

    async def request_from_agent(self, method: str) -> dict[str, Any]:
        while True:
            message = await self.next()
            if message.get("method") == method and "id" in message:
                return message


@pytest.fixture
async def peer(monkeypatch: pytest.MonkeyPatch, model: ScriptedModelServer) -> AsyncIterator[RawPeer]:
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    monkeypatch.setenv("COLONY_APPROVAL_TIMEOUT_S", "1.5")
    env = {k: v for k, v in os.environ.items() if k.startswith("COLONY_")} | {"PATH": os.environ["PATH"]}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "colony", "acp", env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    raw = RawPeer(proc)
    try:
        yield raw
    finally:
        if proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _error(message: dict[str, Any]) -> tuple[Any, int]:
    return message["id"], message["error"]["code"]


async def test_malformed_messages_get_json_rpc_errors_and_the_agent_stays_up(peer: RawPeer, workspace: Path) -> None:
    await peer.send("this is not json")
    assert _error(await peer.next()) == (None, -32700)
    await peer.send('{"jsonrpc": "2.0", "id": 1, "method": "initialize"')  # cut off
    assert _error(await peer.next()) == (None, -32700)
    await peer.send([{"jsonrpc": "2.0", "id": 2, "method": "initialize"}])
    assert _error(await peer.next()) == (None, -32600)
    await peer.send("42")
    assert _error(await peer.next()) == (None, -32600)
    await peer.send({"jsonrpc": "1.0", "id": 3, "method": "initialize", "params": {"protocolVersion": 1}})
    assert _error(await peer.next()) == (3, -32600)
    await peer.send({"jsonrpc": "2.0", "id": 4, "method": 17})
    assert _error(await peer.next()) == (4, -32600)
    await peer.send({"jsonrpc": "2.0", "id": {"nested": True}, "method": "initialize"})
    assert _error(await peer.next()) == (None, -32600)
    await peer.send({"jsonrpc": "2.0", "id": 5})  # neither request nor response
    assert _error(await peer.next()) == (5, -32600)

    # nothing but initialize before initialize
    await peer.send({"jsonrpc": "2.0", "id": 60, "method": "session/new", "params": {"cwd": str(workspace), "mcpServers": []}})
    assert _error(await peer.response(60)) == (60, -32600)
    await peer.send({"jsonrpc": "2.0", "id": 61, "method": "initialize", "params": {"protocolVersion": 1}})
    assert "result" in await peer.response(61)

    await peer.send({"jsonrpc": "2.0", "id": 6, "method": "no/such/method", "params": {}})
    assert _error(await peer.response(6)) == (6, -32601)
    await peer.send({"jsonrpc": "2.0", "id": 7, "method": "session/new", "params": {"cwd": 5, "mcpServers": []}})
    assert _error(await peer.response(7)) == (7, -32602)
    await peer.send({"jsonrpc": "2.0", "id": 8, "method": "session/new",
                     "params": {"cwd": "relative/dir", "mcpServers": []}})
    assert _error(await peer.response(8)) == (8, -32602)
    await peer.send({"jsonrpc": "2.0", "id": 9, "method": "session/prompt",
                     "params": {"sessionId": "ses_unknown", "prompt": [{"type": "text", "text": "hi"}]}})
    assert _error(await peer.response(9)) == (9, -32602)
    await peer.send({"jsonrpc": "2.0", "id": 10, "method": "initialize", "params": ["positional"]})
    assert _error(await peer.response(10)) == (10, -32602)

    # Responses to requests the agent never sent, and notifications nobody handles: silence.
    await peer.send({"jsonrpc": "2.0", "id": 999, "result": {"outcome": {"outcome": "selected", "optionId": "x"}}})
    await peer.send({"jsonrpc": "2.0", "id": 998, "error": {"code": -1, "message": "?"}})
    await peer.send({"jsonrpc": "2.0", "method": "session/cancel", "params": {"sessionId": "ses_unknown"}})
    await peer.send({"jsonrpc": "2.0", "method": "no/such/notification"})

    # Still serving, and each answer matched to its request.
    await peer.send({"jsonrpc": "2.0", "id": 11, "method": "initialize", "params": {"protocolVersion": 1}})
    ok = await peer.next()
    assert ok["id"] == 11
    assert ok["result"]["agentInfo"]["name"] == "colony"
    assert len(peer.seen) == 16  # one answer per request-shaped line; none for the rest
    assert peer.proc.returncode is None


async def test_a_response_with_an_unknown_id_never_approves(
    peer: RawPeer, model: ScriptedModelServer, workspace: Path
) -> None:
    await peer.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 1}})
    await peer.response(1)
    await peer.send({"jsonrpc": "2.0", "id": 2, "method": "session/new",
                     "params": {"cwd": str(workspace), "mcpServers": []}})
    sid = (await peer.response(2))["result"]["sessionId"]
    model.set_script([
        Reply.tool_calls([("write_file", {"path": "x.txt", "content": "should not exist"})]),
        Reply.text("I could not write it."),
    ])
    await peer.send({"jsonrpc": "2.0", "id": 3, "method": "session/prompt",
                     "params": {"sessionId": sid, "prompt": [{"type": "text", "text": "write x.txt"}]}})
    ask = await peer.request_from_agent("session/request_permission")
    allow = {"outcome": {"outcome": "selected", "optionId": "allow-once"}}
    await peer.send({"jsonrpc": "2.0", "id": f"{ask['id']}-other", "result": allow})  # wrong id
    await peer.send({"jsonrpc": "2.0", "id": ask["id"] + 1000, "result": allow})  # wrong id
    done = await peer.response(3)
    assert done["result"]["stopReason"] == "end_turn"
    assert not (workspace / "x.txt").exists()
    failed = [m for m in peer.seen if m.get("method") == "session/update"
              and m["params"]["update"].get("status") == "failed"]
    assert "not approved (expired)" in failed[-1]["params"]["update"]["content"][0]["content"]["text"]
    # A late answer with the right id, after the deadline, changes nothing either.
    await peer.send({"jsonrpc": "2.0", "id": ask["id"], "result": allow})
    await peer.send({"jsonrpc": "2.0", "id": 4, "method": "session/list", "params": {}})
    assert [s["sessionId"] for s in (await peer.response(4))["result"]["sessions"]] == [sid]
    assert not (workspace / "x.txt").exists()

    # Prompts the agent cannot take are invalid params, not internal errors.
    for msg_id, text in ((5, ""), (6, "x" * 200_001)):
        await peer.send({"jsonrpc": "2.0", "id": msg_id, "method": "session/prompt",
                         "params": {"sessionId": sid, "prompt": [{"type": "text", "text": text}]}})
        assert _error(await peer.response(msg_id)) == (msg_id, -32602)
