"""End-to-end: the real `colony` CLI in a subprocess against the scripted model server on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from colony.store import open_database
from colony.store.sqlite_records import SqliteRecordStore
from colony.testing import Reply, ScriptedModelServer

COLONY = [sys.executable, "-m", "colony"]


def run_cli(
    args: list[str],
    server: ScriptedModelServer | None = None,
    stdin: str | None = None,
    timeout: float = 60,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ)
    if server is not None:
        environ.update(
            COLONY_MODEL_BASE_URL=server.base_url,
            COLONY_MODEL_NAME="scripted",
            COLONY_RETRY_BASE_DELAY_S="0.01",
        )
    environ.update(env)
    environ["COLUMNS"] = "200"
    return subprocess.run(
        [*COLONY, *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ,
    )


def db_path() -> Path:
    return Path(os.environ["COLONY_HOME"]) / "colony.db"


def test_help_lists_every_command() -> None:
    r = run_cli(["--help"])
    assert r.returncode == 0
    for command in ("chat", "doctor", "history", "up", "version"):
        assert command in r.stdout
    chat_help = run_cli(["chat", "--help"])
    assert "Examples" in chat_help.stdout and "--approve-all" in chat_help.stdout


def test_one_shot_multi_tool_turn_with_approvals_audit_and_episode(workspace: Path) -> None:
    (workspace / "notes.txt").write_text("first line\n")
    script = [
        Reply.tool_calls([("read_file", {"path": "notes.txt"}), ("list_dir", {"path": "."})]),
        Reply.tool_calls([("write_file", {"path": "out.txt", "content": "copied: first line\n"})]),
        Reply.tool_calls([("write_file", {"path": "denied.txt", "content": "nope"})]),
        Reply.text("Copied the note to out.txt; the second write was denied."),
    ]
    with ScriptedModelServer(script) as server:
        r = run_cli(["chat", "Copy notes.txt into out.txt"], server, stdin="y\nn\n")
        requests = server.requests
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("Copied the note to out.txt; the second write was denied.")
    assert "approval needed" in r.stderr
    assert (workspace / "out.txt").read_text() == "copied: first line\n"
    assert not (workspace / "denied.txt").exists()
    # The model saw the tool results, including the denial.
    last = requests[-1]["messages"]
    tool_msgs = [m for m in last if m["role"] == "tool"]
    assert "first line" in tool_msgs[0]["content"]
    assert "denied" in tool_msgs[-1]["content"]

    db = open_database(db_path())
    records = SqliteRecordStore(db)
    try:
        calls = list(reversed(records.list_tool_calls()))
        assert [(c["tool"], c["outcome"], c["approval"]) for c in calls] == [
            ("read_file", "ok", "allow"),
            ("list_dir", "ok", "allow"),
            ("write_file", "ok", "approved"),
            ("write_file", "denied", "denied"),
        ]
        assert sorted(a["status"] for a in records.list_approvals()) == ["approved", "denied"]
        [session] = records.list_sessions()
        [turn] = records.list_turns(session["id"])
        assert turn["status"] == "completed" and turn["tool_calls"] == 4 and turn["model_requests"] == 4
        [episode] = records.list_episodes()
        assert episode["outcome"] == "partial"
        assert db.scalar("SELECT COUNT(*) FROM llm_calls WHERE outcome = 'ok'") == 4
    finally:
        db.close()


def test_no_answer_on_stdin_means_deny(workspace: Path) -> None:
    script = [
        Reply.tool_calls([("write_file", {"path": "x.txt", "content": "x"})]),
        Reply.text("ok, not written"),
    ]
    with ScriptedModelServer(script) as server:
        r = run_cli(["chat", "write x"], server, stdin="")
    assert r.returncode == 0 and not (workspace / "x.txt").exists()
    assert "denied" in r.stderr


def test_json_output_is_one_event_per_line(workspace: Path) -> None:
    with ScriptedModelServer([Reply.text("hello there")]) as server:
        r = run_cli(["chat", "--json", "hi"], server)
    assert r.returncode == 0
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events[0]["kind"] == "turn_started" and events[-1]["kind"] == "turn_finished"
    assert events[-1]["text"] == "hello there" and events[-1]["status"] == "completed"


def test_text_tool_calls_and_thinking_from_a_small_model(workspace: Path) -> None:
    (workspace / "a.txt").write_text("AAA")
    script = [
        Reply.text(
            '<think>I should read it</think>\n```json\n{"name": "read_file", "arguments": {"path": "a.txt"},}\n```'
        ),
        Reply.text("<think>done</think>The file says AAA."),
    ]
    with ScriptedModelServer(script) as server:
        r = run_cli(["chat", "--no-stream", "what does a.txt say?"], server)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "The file says AAA."
    assert "Recovered 1 tool call" in r.stderr


def test_model_down_exits_3_with_a_fix(workspace: Path) -> None:
    r = run_cli(
        ["chat", "hi"],
        COLONY_MODEL_BASE_URL="http://127.0.0.1:9/v1",
        COLONY_MODEL_NAME="m",
        COLONY_MODEL_MAX_RETRIES="0",
    )
    assert r.returncode == 3
    assert "127.0.0.1:9" in r.stderr and "COLONY_MODEL_BASE_URL" in r.stderr
    assert "Traceback" not in r.stderr


def test_nothing_configured_exits_3_with_a_fix() -> None:
    r = run_cli(["chat", "hi"])
    assert r.returncode == 3 and "COLONY_MODEL_BASE_URL" in r.stderr


def test_server_errors_then_success_is_retried(workspace: Path) -> None:
    with ScriptedModelServer([Reply.error(500), Reply.error(503), Reply.text("recovered")]) as server:
        r = run_cli(["chat", "hi"], server)
    assert r.returncode == 0 and "recovered" in r.stdout
    db = open_database(db_path())
    try:
        assert db.scalar("SELECT COUNT(*) FROM llm_calls WHERE outcome = 'error'") == 2
    finally:
        db.close()


def test_doctor_reports_truthfully(workspace: Path) -> None:
    with ScriptedModelServer([]) as server:
        up = run_cli(["doctor", "--json"], server)
    assert up.returncode == 0, up.stdout
    report = json.loads(up.stdout)
    assert report["healthy"] is True
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    model_checks = {k: v for k, v in statuses.items() if k.startswith("model")}
    assert statuses["database"] == "ok" and list(model_checks.values()) == ["ok"]

    down = run_cli(["doctor"], COLONY_MODEL_BASE_URL="http://127.0.0.1:9/v1", COLONY_MODEL_NAME="m")
    assert down.returncode == 1
    assert "fail" in down.stdout and "127.0.0.1:9" in down.stdout


def test_history_shows_sessions_and_audit(workspace: Path) -> None:
    (workspace / "f.txt").write_text("x")
    with ScriptedModelServer(
        [Reply.tool_calls([("read_file", {"path": "f.txt"})]), Reply.text("read it")]
    ) as server:
        assert run_cli(["chat", "read f.txt"], server).returncode == 0
    r = run_cli(["history", "--json"])
    assert r.returncode == 0
    data: dict[str, Any] = json.loads(r.stdout)
    assert len(data["sessions"]) == 1 and data["tool_calls"][0]["tool"] == "read_file"
    sid = data["sessions"][0]["id"]
    shown = run_cli(["history", "--session", sid])
    assert shown.returncode == 0 and "read it" in shown.stdout and "read_file" in shown.stdout
    table = run_cli(["history"])
    assert table.returncode == 0 and "read_file" in table.stdout
    missing = run_cli(["history", "--session", "ses_nope"])
    assert missing.returncode == 1 and "colony history" in missing.stderr


def test_killed_mid_turn_keeps_session_and_audit_rows(workspace: Path) -> None:
    (workspace / "k.txt").write_text("k")
    script = [Reply.tool_calls([("read_file", {"path": "k.txt"})]), Reply.hang()]
    with ScriptedModelServer(script) as server:
        env = dict(os.environ, COLONY_MODEL_BASE_URL=server.base_url, COLONY_MODEL_NAME="scripted")
        proc = subprocess.Popen(
            [*COLONY, "chat", "read k.txt"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while len(server.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(server.requests) == 2  # the tool ran and the second model request is pending
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    db = open_database(db_path())  # opens cleanly and marks the orphaned turn
    records = SqliteRecordStore(db)
    try:
        assert db.scalar("PRAGMA quick_check") == "ok"
        [session] = records.list_sessions()
        [turn] = records.list_turns(session["id"])
        assert turn["status"] == "interrupted"
        assert [m.kind for m in records.load_messages(session["id"])] == ["user", "assistant", "tool"]
        assert [c["tool"] for c in records.list_tool_calls()] == ["read_file"]
    finally:
        db.close()


def test_bad_configuration_is_a_clear_error() -> None:
    r = run_cli(["chat", "hi"], COLONY_MAX_TOOL_CALLS_PER_TURN="lots")
    assert r.returncode == 3 and "max_tool_calls_per_turn" in r.stderr


@pytest.mark.parametrize("args", [["chat", "--session"], ["history", "--limit", "0"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert run_cli(args).returncode == 2


def test_repl_keeps_one_session_and_new_starts_another(workspace: Path) -> None:
    script = [Reply.text("first answer"), Reply.text("second answer"), Reply.text("third answer")]
    with ScriptedModelServer(script) as server:
        r = run_cli(["chat"], server, stdin="hello\nand again\n/new\nfresh start\n/exit\n")
        requests = server.requests
    assert r.returncode == 0, r.stderr
    assert "first answer" in r.stdout and "second answer" in r.stdout and "third answer" in r.stdout
    # The second request carried the first exchange; the one after /new did not.
    assert [m["content"] for m in requests[1]["messages"][1:]] == ["hello", "first answer", "and again"]
    assert [m["content"] for m in requests[2]["messages"][1:]] == ["fresh start"]
    db = open_database(db_path())
    try:
        assert len(SqliteRecordStore(db).list_sessions()) == 2
    finally:
        db.close()
