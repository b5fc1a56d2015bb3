"""`colony acp` end to end: the real command in a subprocess, driven by a client built on the
official SDK's client side, against the scripted model server.

One editor connection runs the whole story in order (each step depends on the state the last
one left): initialize → new session → prompts whose tool calls are answered allow, deny,
timeout, a malformed answer and a client error → a command run in the editor's terminal → a
file read through the editor → cancel mid-turn → set mode → list; then the process restarts
and the session is loaded (with an MCP server from the editor) and prompted again.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import acp
import pytest
from acp import RequestError
from acp.client.connection import ClientSideConnection
from acp.schema import (
    AgentMessageChunk,
    AgentPlanUpdate,
    AllowedOutcome,
    ClientCapabilities,
    CreateTerminalResponse,
    CurrentModeUpdate,
    EnvVariable,
    FileSystemCapabilities,
    McpServerStdio,
    ReadTextFileResponse,
    RequestPermissionResponse,
    TerminalExitStatus,
    TerminalOutputResponse,
    ToolCallProgress,
    ToolCallStart,
    UserMessageChunk,
    WaitForTerminalExitResponse,
)

from colony.config import Settings
from colony.store import open_database
from colony.store.sqlite_records import SqliteRecordStore
from colony.testing import Reply, ScriptedModelServer

pytestmark = pytest.mark.timeout(180)
MCP_SERVER = str(Path(__file__).parent / "data" / "mcp_test_server.py")


class EditorClient:
    """What an editor does: shows updates, answers permission prompts, owns files and terminals."""

    def __init__(self) -> None:
        self.updates: list[Any] = []
        self.answers: list[str] = []
        self.permission_requests: list[Any] = []
        self.fs_calls: list[tuple[str, str]] = []
        self.terminals: dict[str, asyncio.subprocess.Process] = {}
        self.terminal_calls: list[str] = []
        self.buffers: dict[str, str] = {}  # open editor buffers with unsaved changes

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self.updates.append(update)

    async def request_permission(self, session_id: str, tool_call: Any, options: list[Any], **kwargs: Any) -> Any:
        self.permission_requests.append(tool_call)
        answer = self.answers.pop(0)
        if answer == "allow":
            return RequestPermissionResponse(outcome=AllowedOutcome(outcome="selected", option_id="allow-once"))
        if answer == "deny":
            return RequestPermissionResponse(outcome=AllowedOutcome(outcome="selected", option_id="reject-once"))
        if answer == "malformed":
            return {"outcome": {"outcome": "selected"}}  # no optionId
        if answer == "error":
            raise RequestError(-32603, "the editor's permission dialog crashed")
        await asyncio.Event().wait()  # "silent": never answers
        raise AssertionError("unreachable")

    async def read_text_file(self, session_id: str, path: str, **kwargs: Any) -> ReadTextFileResponse:
        self.fs_calls.append(("read", path))
        on_disk = await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
        return ReadTextFileResponse(content=self.buffers.get(path) or on_disk)

    async def write_text_file(self, session_id: str, path: str, content: str, **kwargs: Any) -> None:
        self.fs_calls.append(("write", path))
        await asyncio.to_thread(Path(path).write_text, content, encoding="utf-8")
        self.buffers.pop(path, None)  # the editor saved its buffer

    async def create_terminal(self, session_id: str, command: str, args: list[str] | None = None,
                              cwd: str | None = None, **kwargs: Any) -> CreateTerminalResponse:
        proc = await asyncio.create_subprocess_exec(
            command, *(args or []), cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        tid = f"term-{len(self.terminals) + 1}"
        self.terminals[tid] = proc
        self.terminal_calls.append(f"create {command}")
        return CreateTerminalResponse(terminal_id=tid)

    async def wait_for_terminal_exit(self, session_id: str, terminal_id: str, **kwargs: Any) -> Any:
        code = await self.terminals[terminal_id].wait()
        self.terminal_calls.append("wait")
        return WaitForTerminalExitResponse(exit_code=code)

    async def terminal_output(self, session_id: str, terminal_id: str, **kwargs: Any) -> TerminalOutputResponse:
        proc = self.terminals[terminal_id]
        assert proc.stdout is not None
        data = await proc.stdout.read()
        self.terminal_calls.append("output")
        return TerminalOutputResponse(output=data.decode(), truncated=False,
                                      exit_status=TerminalExitStatus(exit_code=proc.returncode))

    async def kill_terminal(self, session_id: str, terminal_id: str, **kwargs: Any) -> None:
        self.terminals[terminal_id].kill()
        self.terminal_calls.append("kill")

    async def release_terminal(self, session_id: str, terminal_id: str, **kwargs: Any) -> None:
        self.terminal_calls.append("release")

    def of(self, kind: type) -> list[Any]:
        return [u for u in self.updates if isinstance(u, kind)]

    def text(self) -> str:
        return "".join(u.content.text for u in self.of(AgentMessageChunk))


@asynccontextmanager
async def colony_acp(client: EditorClient) -> AsyncIterator[ClientSideConnection]:
    env = {k: v for k, v in os.environ.items() if k.startswith("COLONY_")}
    async with acp.spawn_agent_process(cast(acp.Client, client), sys.executable, "-m", "colony", "acp", env=env) as (conn, proc):
        yield conn
    # The SDK gives an agent 2 s to exit after stdin closes, then SIGTERMs it (returncode -15):
    # the exit must be clean and quick (it took 0.85 s, and longer on a loaded machine, before
    # `colony acp` skipped the interpreter teardown).
    assert proc.returncode == 0


CAPS = ClientCapabilities(fs=FileSystemCapabilities(read_text_file=True, write_text_file=True), terminal=True)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, model: ScriptedModelServer) -> ScriptedModelServer:
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    monkeypatch.setenv("COLONY_APPROVAL_TIMEOUT_S", "1.5")
    monkeypatch.setenv("COLONY_MODEL_MAX_RETRIES", "0")
    return model


def _write(path: str, content: str) -> Reply:
    return Reply.tool_calls([("write_file", {"path": path, "content": content})])


async def test_an_editor_session_from_start_to_restart(env: ScriptedModelServer, workspace: Path) -> None:
    model = env
    editor = EditorClient()
    async with colony_acp(editor) as conn:
        init = await conn.initialize(protocol_version=acp.PROTOCOL_VERSION, client_capabilities=CAPS)
        assert init.agent_capabilities is not None
        assert init.agent_capabilities.load_session is True
        assert init.agent_info is not None
        assert init.agent_info.name == "colony"
        new = await conn.new_session(cwd=str(workspace), mcp_servers=[])
        sid = new.session_id
        assert new.modes is not None
        assert new.modes.current_mode_id == "ask"

        # allow: the write goes through the editor, and the turn streams its progress.
        model.set_script([_write("a.txt", "hello\n"), Reply.text("Wrote a.txt.")])
        editor.answers = ["allow"]
        done = await conn.prompt(session_id=sid, prompt=[acp.text_block("create a.txt")])
        assert done.stop_reason == "end_turn"
        assert (workspace / "a.txt").read_text() == "hello\n"
        assert ("write", str(workspace / "a.txt")) in editor.fs_calls
        start = editor.of(ToolCallStart)[0]
        assert (start.kind, start.status, start.title) == ("edit", "pending", "write_file: a.txt")
        assert start.locations[0].path == str(workspace / "a.txt")
        progress = editor.of(ToolCallProgress)
        assert [p.status for p in progress] == ["in_progress", "completed"]  # pending → in_progress → done
        assert all(p.title is None and p.locations is None and p.kind is None for p in progress)
        assert editor.permission_requests[0].kind == start.kind == "edit"
        assert [e.status for e in editor.of(AgentPlanUpdate)[-1].entries] == ["completed"]
        assert editor.text() == "Wrote a.txt."
        assert editor.permission_requests[0].tool_call_id == start.tool_call_id

        # deny, silence (timeout), a malformed answer and an editor error: all deny, nothing written.
        for answer, name in [("deny", "b"), ("silent", "c"), ("malformed", "d"), ("error", "e")]:
            editor.updates.clear()
            model.set_script([_write(f"{name}.txt", "no\n"), Reply.text(f"{name} not written.")])
            editor.answers = [answer]
            done = await conn.prompt(session_id=sid, prompt=[acp.text_block(f"create {name}.txt")])
            assert done.stop_reason == "end_turn"
            assert not (workspace / f"{name}.txt").exists(), answer
            assert editor.of(ToolCallProgress)[-1].status == "failed"
            assert "not approved" in editor.of(ToolCallProgress)[-1].content[0].content.text

        # A command runs in the editor's terminal (auto-approved: `echo` is a low-risk program).
        editor.updates.clear()
        model.set_script([Reply.tool_calls([("run_command", {"command": "echo from-terminal"})]), Reply.text("ok")])
        await conn.prompt(session_id=sid, prompt=[acp.text_block("say hi")])
        assert editor.terminal_calls == ["create " + editor.terminal_calls[0].split()[1], "wait", "output", "release"]
        assert editor.terminal_calls[0].endswith("/echo")
        assert "from-terminal" in editor.of(ToolCallProgress)[-1].content[0].content.text

        # A command past its deadline is killed in the editor's terminal, which is then released.
        editor.terminal_calls.clear()
        model.set_script([Reply.tool_calls([("run_command", {"command": "sleep 30", "timeout_s": 1})]),
                          Reply.text("too slow")])
        editor.answers = ["allow"]  # sleep is allowed but not auto-approved
        await conn.prompt(session_id=sid, prompt=[acp.text_block("wait a while")])
        steps = editor.terminal_calls
        assert steps.index("kill") < steps.index("output") < steps.index("release")
        assert "did not finish within 1s and was killed" in editor.of(ToolCallProgress)[-1].content[0].content.text

        # A read goes through the editor too (it sees the unsaved buffer).
        editor.buffers[str(workspace / "a.txt")] = "hello\n(unsaved edit)\n"
        model.set_script([Reply.tool_calls([("read_file", {"path": "a.txt"})]), Reply.text("read")])
        await conn.prompt(session_id=sid, prompt=[acp.text_block("read a.txt")])
        assert ("read", str(workspace / "a.txt")) in editor.fs_calls
        assert "(unsaved edit)" in editor.of(ToolCallProgress)[-1].content[0].content.text

        # A patch applies to what the editor has (the unsaved buffer) and is written through it.
        diff = "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n hello\n-(unsaved edit)\n+(saved edit)\n"
        model.set_script([Reply.tool_calls([("patch_file", {"path": "a.txt", "diff": diff})]), Reply.text("patched")])
        editor.answers = ["allow"]
        await conn.prompt(session_id=sid, prompt=[acp.text_block("fix a.txt")])
        assert editor.of(ToolCallProgress)[-1].status == "completed"
        assert (workspace / "a.txt").read_text() == "hello\n(saved edit)\n"
        assert editor.fs_calls[-2:] == [("write", str(workspace / "a.txt")), ("read", str(workspace / "a.txt"))]

        # cancel mid-turn: the model hangs, the editor cancels, the turn says so.
        model.set_script([Reply.hang()])
        requests_before = len(model.requests)
        running = asyncio.create_task(conn.prompt(session_id=sid, prompt=[acp.text_block("take your time")]))
        for _ in range(200):
            if len(model.requests) > requests_before:
                break
            await asyncio.sleep(0.05)
        await conn.cancel(session_id=sid)
        assert (await asyncio.wait_for(running, 20)).stop_reason == "cancelled"

        # cancel while the editor's permission dialog is open: the call gets its final update.
        editor.updates.clear()
        model.set_script([_write("f.txt", "no\n"), Reply.text("never")])
        editor.answers = ["silent"]
        asked = len(editor.permission_requests)
        running = asyncio.create_task(conn.prompt(session_id=sid, prompt=[acp.text_block("create f.txt")]))
        for _ in range(200):
            if len(editor.permission_requests) > asked:
                break
            await asyncio.sleep(0.05)
        await conn.cancel(session_id=sid)
        assert (await asyncio.wait_for(running, 20)).stop_reason == "cancelled"
        cancelled_call = editor.of(ToolCallStart)[-1].tool_call_id
        final = [p for p in editor.of(ToolCallProgress) if p.tool_call_id == cancelled_call]
        assert [p.status for p in final] == ["failed"] and not (workspace / "f.txt").exists()

        await conn.set_session_mode(session_id=sid, mode_id="read_only")
        assert editor.of(CurrentModeUpdate)[-1].current_mode_id == "read_only"
        listed = await conn.list_sessions(cwd=str(workspace))
        assert [s.session_id for s in listed.sessions] == [sid]

    # The editor and Colony restart; the session comes back with its history and mode.
    reopened = EditorClient()
    async with colony_acp(reopened) as conn:
        await conn.initialize(protocol_version=acp.PROTOCOL_VERSION, client_capabilities=CAPS)
        geo = McpServerStdio(name="geo", command=sys.executable, args=[MCP_SERVER],
                             env=[EnvVariable(name="MCP_TEST_LOG", value=str(workspace / "mcp.log"))])
        loaded = await conn.load_session(cwd=str(workspace), session_id=sid, mcp_servers=[geo])
        assert loaded is not None
        assert loaded.modes is not None
        assert loaded.modes.current_mode_id == "read_only"
        replayed = [u.content.text for u in reopened.of(UserMessageChunk)]
        assert replayed[:2] == ["create a.txt", "create b.txt"]
        assert "Wrote a.txt." in reopened.text()
        # the call cancelled mid-permission comes back closed, as failed, with the reason
        closed = [p for p in reopened.of(ToolCallProgress) if p.tool_call_id == cancelled_call]
        assert [p.status for p in closed] == ["failed"] and "cancelled" in closed[0].content[0].content.text
        assert reopened.of(ToolCallStart)[0].kind == "edit"
        # The editor's MCP server lends its read-only tool to this session; it asks (an external tool).
        model.set_script([Reply.tool_calls([("mcp__geo__lookup", {"country": "Japan"})]), Reply.text("Tokyo.")])
        reopened.answers = ["allow"]
        done = await conn.prompt(session_id=sid, prompt=[acp.text_block("capital of Japan?")])
        assert done.stop_reason == "end_turn"
        offered = {t["function"]["name"] for t in model.requests[-1].get("tools", [])}
        assert {"read_file", "mcp__geo__lookup"} <= offered
        assert not offered & {"write_file", "patch_file", "run_command", "http_get", "mcp__geo__record"}
        assert reopened.of(ToolCallProgress)[-1].content[0].content.text == "Tokyo"
        assert reopened.of(ToolCallStart)[-1].kind == "read"
        assert reopened.permission_requests[-1].kind == "read"  # the same kind in both places

    # Audited like every surface: the decisions and the calls are in the node's tables.
    db = open_database(Settings().db_path)
    records = SqliteRecordStore(db)
    try:
        decisions = [(a["tool"], a["status"], a["decided_by"]) for a in reversed(records.list_approvals())]
        assert decisions == [
            ("write_file", "approved", "surface"), ("write_file", "denied", "surface"),
            ("write_file", "expired", "timeout"), ("write_file", "denied", "surface"),
            ("write_file", "denied", "surface"), ("run_command", "approved", "surface"),
            ("patch_file", "approved", "surface"), ("write_file", "denied", "cancelled"),
            ("mcp__geo__lookup", "approved", "surface"),
        ]
        calls = [(c["tool"], c["outcome"]) for c in reversed(records.list_tool_calls(session_id=sid))]
        assert calls == [("write_file", "ok"), *[("write_file", "denied")] * 4, ("run_command", "ok"),
                         ("run_command", "timeout"), ("read_file", "ok"), ("patch_file", "ok"),
                         ("write_file", "cancelled"), ("mcp__geo__lookup", "ok")]
        statuses = [t["status"] for t in records.list_turns(sid)]
        assert statuses == ["completed"] * 9 + ["cancelled", "cancelled", "completed"]
    finally:
        db.close()
