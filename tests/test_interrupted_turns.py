"""Conversations that survive interruption: no history a model API would refuse, ever.

A turn that ends abnormally (cancelled, failed, its process killed) must not leave an assistant
message whose tool calls have no results: every later request of that session would be refused
with a 400 by OpenAI and by the strict scripted server. These tests interrupt turns in each of
those ways and then continue the session against the strict server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colony.agent.loop import Agent, run_turn
from colony.config import Settings
from colony.llm.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolResultMessage,
    UserMessage,
    close_tool_calls,
)
from colony.llm.openai_model import to_wire_messages
from colony.node import Node
from colony.store import open_database
from colony.testing import Reply, ScriptedModelServer
from colony.testing._strict import validate_chat_request

# -- the repair on its own --------------------------------------------------------------------

ids = st.sampled_from(["a", "b", "c", "d"])
message = st.one_of(
    st.builds(UserMessage, content=st.text(max_size=5)),
    st.builds(lambda calls, text: AssistantMessage(content=text, tool_calls=[
        ToolCall(id=i, name="read_file") for i in dict.fromkeys(calls)]),
        st.lists(ids, max_size=3), st.text(max_size=5)),
    st.builds(lambda i: ToolResultMessage(tool_call_id=i, name="read_file", content="r"), ids),
)


@settings(max_examples=300, deadline=None)
@given(history=st.lists(message, max_size=12))
def test_any_history_becomes_one_the_api_accepts(history: list[Message]) -> None:
    repaired = close_tool_calls(history)
    body = {"model": "m", "messages": to_wire_messages([UserMessage(content="start"), *repaired,
                                                         UserMessage(content="next")])}
    validate_chat_request(body)
    assert close_tool_calls(repaired) == repaired  # idempotent: a good history is left alone


def test_well_formed_history_is_unchanged_and_gaps_say_why() -> None:
    call = ToolCall(id="c1", name="run_command")
    good: list[Message] = [UserMessage(content="x"), AssistantMessage(tool_calls=[call]),
                           ToolResultMessage(tool_call_id="c1", name="run_command", content="ok")]
    assert close_tool_calls(good) == good
    repaired = close_tool_calls([*good[:2], UserMessage(content="again")])
    assert isinstance(repaired[2], ToolResultMessage) and repaired[2].is_error
    assert "interrupted" in repaired[2].content and repaired[3] == UserMessage(content="again")


# -- interrupted in process: cancelled while a tool runs ----------------------------------------


async def test_cancelled_during_a_tool_closes_the_call_and_the_session_goes_on(
    model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLONY_TOOL_POLICY", '{"run_command": "allow"}')
    model.set_script([Reply.tool_calls([("run_command", {"command": "sleep 29.718"})]), Reply.text("continued")])
    node = Node(Settings())
    try:
        agent = Agent.from_settings(await node.model(), node.settings)
        session: list[str] = []

        async def consume() -> None:
            async for ev in run_turn(agent, node.deps, "sleep please"):
                if getattr(ev, "session_id", None) and not session:
                    session.append(ev.session_id)

        task = asyncio.ensure_future(consume())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _running("sleep 29.718"):  # noqa: ASYNC110 - polls /proc
            await asyncio.sleep(0.05)
        assert _running("sleep 29.718"), "the tool never started"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stored = node.records.load_messages(session[0])
        results = [m for m in stored if isinstance(m, ToolResultMessage)]
        assert len(results) == 1 and results[0].is_error and "cancelled" in results[0].content
        # the raw rows hold the closing result too, not only the repaired view
        raw = node.db.query("SELECT body FROM messages WHERE session_id = ? AND kind = 'tool'", (session[0],))
        assert len(raw) == 1
        events = [ev async for ev in run_turn(agent, node.deps, "go on", session_id=session[0])]
        assert events[-1].status == "completed" and events[-1].text == "continued"  # type: ignore[attr-defined]
        assert model.rejected == []
    finally:
        await node.aclose()


# -- interrupted by SIGKILL: a command running, an approval pending --------------------------------


def _running(marker: str) -> bool:
    for entry in list(os.scandir("/proc")):
        if entry.name.isdigit():
            try:
                cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ")
                state = Path(f"/proc/{entry.name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            except OSError:
                continue
            if marker.encode() in cmd and state != b"Z":
                return True
    return False


def _chat(server: ScriptedModelServer, workspace: Path, *args: str, **popen: Any) -> subprocess.Popen[str]:
    env = dict(os.environ, COLONY_MODEL_BASE_URL=server.base_url, COLONY_MODEL_NAME="scripted",
               COLONY_WORKSPACE=str(workspace))
    return subprocess.Popen([sys.executable, "-m", "colony", "chat", "--no-stream", *args], env=env, text=True,
                            **popen)


@pytest.mark.parametrize("shape", ["command running", "approval pending"])
def test_sigkill_mid_turn_then_the_session_continues(shape: str, workspace: Path, settings: Settings) -> None:
    if shape == "command running":
        first = Reply.tool_calls([("run_command", {"command": "sleep 31.7"})])
        args: tuple[str, ...] = ("--approve-all", "run a long command")
        ready = lambda: _running("sleep 31.7")  # noqa: E731
    else:
        first = Reply.tool_calls([("write_file", {"path": "out.txt", "content": "x"})])
        args = ("write a file",)

        def ready() -> bool:
            db = open_database(settings.db_path) if settings.db_path.exists() else None
            try:
                return db is not None and bool(db.query("SELECT 1 FROM approvals WHERE status = 'pending'"))
            finally:
                if db is not None:
                    db.close()

    with ScriptedModelServer([first, Reply.text("picked up where we left off")]) as server:
        proc = _chat(server, workspace, *args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not ready():
                time.sleep(0.05)
            assert ready(), f"the turn never reached: {shape}"
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stdin is not None
            proc.stdin.close()
        db = open_database(settings.db_path)  # the next open marks the turn interrupted
        try:
            (session,) = [r["id"] for r in db.query("SELECT id FROM sessions")]
            assert db.one("SELECT status FROM turns")["status"] == "interrupted"  # type: ignore[index]
            pending = db.query("SELECT status, decided_by FROM approvals")
            assert all(r["status"] != "pending" for r in pending)
            if shape == "approval pending":
                assert [(r["status"], r["decided_by"]) for r in pending] == [("expired", "process_stopped")]
        finally:
            db.close()
        again = _chat(server, workspace, "--session", session, "continue", stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        out, errs = again.communicate(timeout=60)
        assert again.returncode == 0, errs
        assert "picked up where we left off" in out
        assert server.rejected == []
        sent = server.requests[-1]["messages"]
        tool_msgs = [m for m in sent if m["role"] == "tool"]
        assert len(tool_msgs) == 1 and "interrupted" in tool_msgs[0]["content"]


def test_dead_autonomy_worker_is_not_shown_running(settings: Settings) -> None:
    from colony.tasks.autonomy import workers

    node = Node(settings)
    try:
        dead = subprocess.Popen(["true"])
        dead.wait()
        node.db.execute("INSERT INTO autonomy_workers(worker, pid, state, started_at, beat_at) "
                        "VALUES ('ghost', ?, 'running', ?, ?)", (dead.pid, time.time() - 10, time.time() - 10))
        node.db.execute("INSERT INTO autonomy_workers(worker, pid, state, started_at, beat_at) "
                        "VALUES ('hung', ?, 'running', ?, ?)", (os.getpid(), time.time() - 9999, time.time() - 9999))
        rows = {r["worker"]: r for r in workers(node)}
        assert rows["ghost"]["state"] == "stopped" and "killed or crashed" in str(rows["ghost"]["last_error"])
        assert rows["hung"]["state"] == "running" and rows["hung"]["stale"] is True
    finally:
        node.db.close()
