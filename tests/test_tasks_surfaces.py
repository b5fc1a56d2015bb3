"""The task surfaces: `colony tasks …` and `colony autonomy`, the REST API under /api/v1/tasks,
the web board and timeline, and `colony up` running the autonomy loop in-process."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from colony.cli import app as cli_app
from colony.config import Settings
from colony.node import Node
from colony.server import create_app
from colony.server.turns import ApprovalBroker
from colony.store import open_database
from colony.tasks import SqliteTaskStore
from colony.testing import Reply, ScriptedModelServer

TOKEN = "tasks-api-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def answer_after_listing(body: dict[str, Any]) -> Reply:
    if not any(m["role"] == "tool" for m in body["messages"]):
        return Reply.tool_calls([("list_dir", {"path": "."})])
    return Reply.text("the workspace is listed")


def cli(*args: str) -> Any:
    result = CliRunner().invoke(cli_app, list(args), catch_exceptions=False)
    return result


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    monkeypatch.setenv("COLUMNS", "200")


def test_a_credit_budget_is_given_in_credits_and_kept_in_micro_credits(quiet: None) -> None:
    """`--credits 5` is five credits (the market's default reserve), not five micro-credits."""
    def budget(value: str) -> Any:
        return json.loads(cli("tasks", "add", "Priced work", "--credits", value, "--json").stdout)["budget"]["credits"]

    assert budget("5") == 5_000_000
    assert budget("0.25") == 250_000
    assert budget("1500u") == 1_500
    assert budget("0") == 0
    for bad in ("-1", "1.0000001", "five", "1e3"):
        assert cli("tasks", "add", "x", "--credits", bad).exit_code == 2, bad


def test_the_cli_posts_lists_shows_cancels_retries_and_approves(quiet: None) -> None:
    r = cli("tasks", "add", "Tidy the notes", "--priority", "4", "--pause-on", "write_file")
    assert r.exit_code == 0
    first = r.stdout.strip()
    assert re.fullmatch(r"task_[0-9a-f]{16}", first)
    second = json.loads(cli("tasks", "add", "After tidying", "--after", first, "--approve-first", "--json").stdout)
    assert second["depends_on"] == [first] and second["waiting_on"] == 1 and second["approval"] == "task"
    due = json.loads(cli("tasks", "add", "Due soon", "--deadline-in", "2h", "--json").stdout)
    assert 7190 < due["deadline"] - due["created_at"] < 7210
    assert "due: " in cli("tasks", "show", due["id"]).stdout
    assert cli("tasks", "cancel", due["id"]).exit_code == 0
    assert cli("tasks", "add", "x", "--deadline-in", "soon").exit_code == 2

    listed = json.loads(cli("tasks", "list", "--json").stdout)
    assert listed["counts"]["posted"] == 2 and listed["counts"]["cancelled"] == 1
    assert [t["id"] for t in listed["tasks"] if t["state"] == "posted"] == [first, second["id"]]
    assert "Tidy the notes" in cli("tasks", "list").stdout

    assert cli("tasks", "cancel", first, "--reason", "not today").exit_code == 0
    shown = cli("tasks", "show", first)
    assert "cancelled" in shown.stdout and "not today" in shown.stdout and "timeline" in shown.stdout
    assert cli("tasks", "retry", first).exit_code == 0
    events = json.loads(cli("tasks", "show", first, "--json").stdout)["events"]
    assert [e["to_state"] for e in events] == ["posted", "cancelled", "posted"]
    assert [e["actor"] for e in events] == ["cli", "cli", "cli"]

    refused = cli("tasks", "approve", first)
    assert refused.exit_code == 1 and "cannot go from posted" in refused.stderr
    missing = cli("tasks", "show", "task_0000000000000000")
    assert missing.exit_code == 1 and "No task task_0000000000000000" in missing.stderr
    bad = cli("tasks", "add", "x", "--after", "task_0000000000000000")
    assert bad.exit_code == 1


def test_autonomy_once_and_replay_from_the_cli(quiet: None, model: ScriptedModelServer) -> None:
    model.set_script(answer_after_listing)
    task_id = cli("tasks", "add", "List the workspace").stdout.strip()
    r = cli("autonomy", "--once")
    assert r.exit_code == 0 and f"{task_id}: completed" in r.stdout
    assert cli("autonomy", "--once").stderr.strip() == "no task is ready"
    replayed = cli("tasks", "replay", task_id)
    assert replayed.exit_code == 0 and "identical" in replayed.stdout
    report = json.loads(cli("tasks", "replay", task_id, "--json").stdout)
    assert report["identical"] and report["model_steps"] == 2 and report["tool_steps"] == 1


@pytest.fixture
def api(quiet: None) -> Iterator[tuple[TestClient, Node]]:
    broker = ApprovalBroker()
    node = Node(Settings(), approver=broker)
    app = create_app(node, broker, token=TOKEN, connect_model=False)
    with TestClient(app, base_url="http://127.0.0.1", headers=AUTH) as client:
        yield client, node


def test_the_rest_api_speaks_tasks_with_json_errors(api: tuple[TestClient, Node]) -> None:
    client, _ = api
    r = client.post("/api/v1/tasks", json={"goal": "Summarize the notes", "priority": 3, "skills": ["writing"]})
    assert r.status_code == 201
    task = r.json()
    assert task["state"] == "posted" and task["skills"] == ["writing"]
    child = client.post("/api/v1/tasks", json={"goal": "Part", "parent_id": task["id"],
                                               "depends_on": [task["id"]]}).json()
    listed = client.get("/api/v1/tasks", params={"state": "posted"}).json()
    assert listed["counts"]["posted"] == 2 and len(listed["tasks"]) == 2
    detail = client.get(f"/api/v1/tasks/{task['id']}").json()
    assert [e["to_state"] for e in detail["events"]] == ["posted"] and detail["events"][0]["actor"] == "api"

    assert client.post(f"/api/v1/tasks/{task['id']}/cancel", json={"reason": "dup"}).json()["state"] == "cancelled"
    assert client.post(f"/api/v1/tasks/{task['id']}/retry").json()["state"] == "posted"
    conflict = client.post(f"/api/v1/tasks/{task['id']}/approve", json={"approve": True})
    assert conflict.status_code == 409 and conflict.json()["code"] == "illegal_transition"
    missing = client.get("/api/v1/tasks/task_0000000000000000")
    assert missing.status_code == 404 and missing.json()["code"] == "task_not_found"
    assert client.post("/api/v1/tasks", json={"goal": "  "}).status_code == 422
    assert client.post("/api/v1/tasks", json={"goal": "x", "depends_on": ["task_nope"]}).status_code == 404
    not_run = client.post(f"/api/v1/tasks/{child['id']}/replay")
    assert not_run.status_code == 409 and "has no recorded steps" in not_run.json()["message"]
    assert client.get("/api/v1/tasks", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_the_web_board_and_timeline(api: tuple[TestClient, Node]) -> None:
    client, node = api
    store = SqliteTaskStore(node.db)
    from colony.tasks import TaskSpec

    task = store.post(TaskSpec(goal="<b>Bold</b> goal"), actor="web-test")
    client.cookies.clear()
    assert client.get("/tasks", headers={"Authorization": ""}, follow_redirects=False).status_code in (303, 307)
    login = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert login.status_code == 303
    board = client.get("/tasks")
    assert board.status_code == 200 and "Queued" in board.text and "Needs you" in board.text
    assert "&lt;b&gt;Bold&lt;/b&gt; goal" in board.text and "<b>Bold</b>" not in board.text
    assert f'href="/tasks/{task.id}"' in board.text and 'href="/tasks"' in board.text
    page = client.get(f"/tasks/{task.id}")
    assert page.status_code == 200 and 'id="timeline"' in page.text and "web-test" in page.text
    csrf = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text)
    assert csrf is not None
    assert client.post(f"/tasks/{task.id}/cancel", data={"csrf": "0" * 64}).status_code == 403
    done = client.post(f"/tasks/{task.id}/cancel", data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert done.status_code == 303 and store.get(task.id).state == "cancelled"
    refused = client.post(f"/tasks/{task.id}/approve", data={"csrf": csrf.group(1)})
    assert refused.status_code == 200 and "cannot go from cancelled" in refused.text
    assert client.get("/tasks/task_0000000000000000").status_code == 404


def test_the_board_posts_cancels_and_approves_tasks(api: tuple[TestClient, Node]) -> None:
    client, node = api
    client.headers.pop("Authorization")  # a browser: the login cookie and the forms' CSRF field
    assert client.post("/login", data={"token": TOKEN}, follow_redirects=False).status_code == 303
    board = client.get("/tasks").text
    csrf = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', board)
    assert csrf is not None and 'action="/tasks"' in board and 'name="goal"' in board
    token = csrf.group(1)
    store = SqliteTaskStore(node.db)

    # Post: one that a person approves first, one that just queues.
    assert client.post("/tasks", data={"goal": "Plan the release", "csrf": "0" * 64}).status_code == 403
    posted = client.post("/tasks", data={"goal": "Plan the release", "priority": "7", "approve_first": "yes",
                                         "csrf": token}, follow_redirects=False)
    assert posted.status_code == 303
    gated = store.get(posted.headers["location"].removeprefix("/tasks/"))
    assert (gated.goal, gated.priority, gated.approval, gated.state) == ("Plan the release", 7, "task", "posted")
    assert [e.actor for e in store.events(gated.id)] == ["web"]
    queued = client.post("/tasks", data={"goal": "Tidy the notes", "csrf": token}, follow_redirects=False)
    plain = store.get(queued.headers["location"].removeprefix("/tasks/"))
    for bad, why in (({"goal": "   "}, "not be blank"), ({"goal": "x", "priority": "high"}, "whole number"),
                     ({"goal": "x", "priority": "5000"}, "priority")):
        refused = client.post("/tasks", data={**bad, "csrf": token})
        assert refused.status_code == 422 and why in refused.text, why
        assert 'id="task-error"' in refused.text
    assert store.counts()["posted"] == 2

    # The board's rows carry the actions; each comes back to the board.
    board = client.get("/tasks").text
    row = board[board.index(f'data-task-id="{plain.id}"'):]
    assert f'action="/tasks/{plain.id}/cancel"' in row[:row.index("</li>")]
    done = client.post(f"/tasks/{plain.id}/cancel", data={"csrf": token, "back": "board"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/tasks"
    assert store.get(plain.id).state == "cancelled"
    assert [e.actor for e in store.events(plain.id)] == ["web", "web"]

    # A task waiting for a person shows Approve and Deny on the board, and approving starts it.
    from colony.tasks.hitl import pause_for_task

    lease = store.claim("worker-1", 60)
    assert lease is not None and lease.task_id == gated.id
    pause_for_task(store, lease, 60)
    assert store.get(gated.id).state == "awaiting_approval"
    board = client.get("/tasks").text
    row = board[board.index(f'data-task-id="{gated.id}"'):]
    row = row[:row.index("</li>")]
    assert f'action="/tasks/{gated.id}/approve"' in row and f'action="/tasks/{gated.id}/deny"' in row
    approved = client.post(f"/tasks/{gated.id}/approve", data={"csrf": token, "back": "board"}, follow_redirects=False)
    after = store.get(gated.id)
    assert approved.status_code == 303 and (after.state, after.approved) == ("posted", True)  # queued to run
    assert store.events(gated.id)[-1].actor == "web"


def test_colony_up_runs_the_autonomy_loop_in_process(quiet: None, model: ScriptedModelServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    model.set_script(answer_after_listing)
    monkeypatch.setenv("COLONY_AUTONOMY_ENABLED", "true")
    monkeypatch.setenv("COLONY_AUTONOMY_INTERVAL_S", "0.05")
    broker = ApprovalBroker()
    node = Node(Settings(), approver=broker)
    app = create_app(node, broker, token=TOKEN, connect_model=False)
    with TestClient(app, base_url="http://127.0.0.1", headers=AUTH) as client:
        task = client.post("/api/v1/tasks", json={"goal": "List the workspace"}).json()
        for _ in range(400):
            state = client.get(f"/api/v1/tasks/{task['id']}").json()["task"]["state"]
            if state == "completed":
                break
            time.sleep(0.025)
        assert state == "completed"
    db = open_database(Settings().db_path)
    row = db.one("SELECT state, tasks_done FROM autonomy_workers")
    db.close()
    assert row == {"state": "stopped", "tasks_done": 1}  # shut down gracefully with the app


def test_the_autonomy_daemon_stops_gracefully_on_sigterm(quiet: None, model: ScriptedModelServer) -> None:
    import os
    import signal
    import subprocess
    import sys

    model.set_script(answer_after_listing)
    task_id = cli("tasks", "add", "List the workspace").stdout.strip()
    env = {**os.environ, "COLONY_AUTONOMY_INTERVAL_S": "0.05"}
    proc = subprocess.Popen([sys.executable, "-m", "colony", "autonomy"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        db = open_database(Settings().db_path)
        store = SqliteTaskStore(db)
        for _ in range(600):
            if store.get(task_id).state == "completed":
                break
            time.sleep(0.05)
        assert store.get(task_id).state == "completed"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "stopped after 1 task(s)" in stderr
    row = db.one("SELECT state, tasks_done, pid FROM autonomy_workers")
    db.close()
    assert row == {"state": "stopped", "tasks_done": 1, "pid": proc.pid}


def test_autonomy_says_when_a_task_waits_for_approval_and_the_answer_lets_it_go_on(
    quiet: None, model: ScriptedModelServer, workspace: Path
) -> None:
    # Regression: `colony autonomy --once` used to sit silent until the approval timed out.
    import os
    import subprocess
    import sys

    model.set_script([Reply.tool_calls([("write_file", {"path": "hello.txt", "content": "hi"})]), Reply.text("done")])
    task_id = cli("tasks", "add", "Write hello.txt").stdout.strip()
    proc = subprocess.Popen([sys.executable, "-m", "colony", "autonomy", "--once"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "COLONY_APPROVAL_TIMEOUT_S": "60"})
    try:
        assert proc.stderr is not None
        line = ""
        for _ in range(50):  # blocks until the worker announces the pause (other lines may come first)
            line = proc.stderr.readline()
            if "waiting for approval" in line or not line:
                break
        assert f"{task_id} is waiting for approval" in line and "write_file" in line
        assert f"colony tasks approve {task_id}" in line
        assert cli("tasks", "approve", task_id).exit_code == 0
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert f"{task_id}: completed" in out
    assert (workspace / "hello.txt").read_text() == "hi"
