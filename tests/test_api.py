"""The JSON API against a real node server on loopback, with the scripted model behind it."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from colony.config import Settings
from colony.store import open_database
from colony.store import sessions as st
from colony.testing import NodeServer, Reply, ScriptedModelServer


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Parse a text/event-stream body into [{id, event, data}] (data JSON-decoded)."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
            events.append(fields)
    return events


def read_stream(client: httpx.Client, method: str, url: str, **kw: Any) -> tuple[int, list[dict[str, Any]]]:
    with client.stream(method, url, **kw) as r:
        body = "".join(r.iter_text())
        return r.status_code, parse_sse(body) if r.status_code < 400 else [json.loads(body)]


def scripted(model: ScriptedModelServer, replies: list[Reply]) -> None:
    model.set_script(replies)


@pytest.fixture
def node(model: ScriptedModelServer) -> Iterator[NodeServer]:
    with NodeServer(Settings()) as n:
        deadline = time.monotonic() + 10
        while httpx.get(f"{n.base_url}/api/v1/health").json()["model"]["available"] is False:
            assert time.monotonic() < deadline, "the node never connected to the scripted model"
            time.sleep(0.05)
        yield n


@pytest.fixture
def client(node: NodeServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=node.base_url, headers=node.auth, timeout=30) as c:
        yield c


def test_health_is_open_and_truthful(node: NodeServer) -> None:
    r = httpx.get(f"{node.base_url}/api/v1/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy" and body["database"]["ok"] and body["database"]["schema_version"] >= 1
    [provider] = body["model"]["providers"]
    assert provider["model"] == "scripted" and provider["circuit"]["state"] == "closed"
    assert httpx.get(f"{node.base_url}/api/v1/ready").json() == {"ready": True}


@pytest.mark.parametrize("path", ["/api/v1/sessions", "/api/v1/audit", "/api/v1/approvals", "/metrics"])
def test_everything_else_requires_the_token(node: NodeServer, path: str) -> None:
    r = httpx.get(node.base_url + path)
    assert r.status_code == 401 and r.json()["code"] == "unauthorized" and "colony token" in r.json()["message"]
    wrong = httpx.get(node.base_url + path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_streamed_turn_with_tools(client: httpx.Client, model: ScriptedModelServer, workspace: Path) -> None:
    (workspace / "a.txt").write_text("alpha")
    scripted(model, [Reply.tool_calls([("read_file", {"path": "a.txt"})]), Reply.text("It says alpha.")])
    status, events = read_stream(client, "POST", "/api/v1/chat/stream", json={"prompt": "read a.txt"})
    assert status == 200
    kinds = [e["event"] for e in events]
    assert kinds[0] == "turn_started" and kinds[-1] == "turn_finished"
    assert "tool_call_started" in kinds and "tool_call_finished" in kinds and "text_delta" in kinds
    assert [int(e["id"]) for e in events] == list(range(len(events)))
    final = events[-1]["data"]
    assert final["status"] == "completed" and final["text"] == "It says alpha."
    assert "".join(e["data"]["text"] for e in events if e["event"] == "text_delta") == "It says alpha."
    sid = final["session_id"]
    msgs = client.get(f"/api/v1/sessions/{sid}/messages").json()["items"]
    assert [m["kind"] for m in msgs] == ["user", "assistant", "tool", "assistant"]
    audit = client.get("/api/v1/audit", params={"session_id": sid}).json()["items"]
    assert [(a["tool"], a["outcome"]) for a in audit] == [("read_file", "ok")]


def test_approval_through_the_api_and_replay_with_last_event_id(
    client: httpx.Client, model: ScriptedModelServer, workspace: Path
) -> None:
    scripted(model, [Reply.tool_calls([("write_file", {"path": "w.txt", "content": "hi"})]), Reply.text("written")])
    started = client.post("/api/v1/chat", json={"prompt": "write w.txt"})
    assert started.status_code == 202
    info = started.json()
    # Wait for the approval to be pending, then allow it.
    deadline = time.monotonic() + 10
    pending: list[dict[str, Any]] = []
    while not pending:
        assert time.monotonic() < deadline
        pending = client.get("/api/v1/approvals", params={"status": "pending"}).json()["items"]
        time.sleep(0.02)
    assert pending[0]["tool"] == "write_file" and pending[0]["arguments"]["path"] == "w.txt"
    decided = client.post(f"/api/v1/approvals/{pending[0]['id']}", json={"decision": "allow"})
    assert decided.status_code == 200 and decided.json()["status"] == "approved"
    again = client.post(f"/api/v1/approvals/{pending[0]['id']}", json={"decision": "deny"})
    assert again.status_code == 409 and again.json()["code"] == "not_pending"
    status, events = read_stream(client, "GET", info["events_url"])
    assert status == 200 and events[-1]["data"]["text"] == "written"
    approval = next(e for e in events if e["event"] == "approval_requested")
    assert approval["data"]["approval_id"] == pending[0]["id"]
    assert (workspace / "w.txt").read_text() == "hi"
    # Reconnecting with Last-Event-ID replays only what came after it.
    _, tail = read_stream(client, "GET", info["events_url"], headers={"Last-Event-ID": "2"})
    assert [int(e["id"]) for e in tail] == list(range(3, len(events)))


def test_unknown_approval_is_404(client: httpx.Client) -> None:
    r = client.post("/api/v1/approvals/apr_nope", json={"decision": "allow"})
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_cancel_a_running_turn(client: httpx.Client, model: ScriptedModelServer) -> None:
    scripted(model, [Reply.hang()])
    info = client.post("/api/v1/chat", json={"prompt": "take forever"}).json()
    deadline = time.monotonic() + 10
    while not model.requests:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    r = client.post(f"/api/v1/turns/{info['turn_id']}/cancel")
    assert r.status_code == 202
    _, events = read_stream(client, "GET", info["events_url"])
    assert events[-1]["data"]["status"] == "cancelled"
    assert client.get(f"/api/v1/turns/{info['turn_id']}").json()["status"] == "cancelled"
    late = client.post(f"/api/v1/turns/{info['turn_id']}/cancel")
    assert late.status_code == 409
    assert client.post("/api/v1/turns/turn_nope/cancel").status_code == 404


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "invalid_request"),
        ({"json": {"prompt": 5}}, 422, "invalid_request"),
        ({"json": {"prompt": ""}}, 422, "invalid_request"),
        ({"json": {}}, 422, "invalid_request"),
        ({"json": {"prompt": "x" * 300_000}}, 422, "invalid_request"),
        ({"content": b"x" * 3_000_000, "headers": {"content-type": "application/json"}}, 413, "too_large"),
    ],
)
def test_bad_chat_input_gets_a_json_error_and_stores_nothing(
    client: httpx.Client, kwargs: dict[str, Any], status: int, code: str
) -> None:
    r = client.post("/api/v1/chat", **kwargs)
    assert r.status_code == status and r.json()["code"] == code and r.json()["message"]
    assert client.get("/api/v1/sessions").json()["items"] == []


def test_unicode_and_injection_shaped_prompts(client: httpx.Client, model: ScriptedModelServer) -> None:
    prompt = "'; DROP TABLE sessions; -- <script>alert(1)</script> 🐝 \u202e"
    scripted(model, [Reply.text("fine")])
    status, events = read_stream(client, "POST", "/api/v1/chat/stream", json={"prompt": prompt})
    assert status == 200 and events[-1]["data"]["status"] == "completed"
    sid = events[-1]["data"]["session_id"]
    assert client.get(f"/api/v1/sessions/{sid}/messages").json()["items"][0]["content"] == prompt


def test_sessions_pagination_and_404(client: httpx.Client, model: ScriptedModelServer) -> None:
    scripted(model, [Reply.text(f"answer {i}") for i in range(3)])
    for i in range(3):
        read_stream(client, "POST", "/api/v1/chat/stream", json={"prompt": f"q{i}"})
    page = client.get("/api/v1/sessions", params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["next_offset"] == 2
    rest = client.get("/api/v1/sessions", params={"limit": 2, "offset": 2}).json()
    assert len(rest["items"]) == 1 and rest["next_offset"] is None
    assert client.get("/api/v1/sessions/ses_nope").status_code == 404
    assert client.get("/api/v1/sessions", params={"limit": "many"}).json()["code"] == "invalid_request"


def test_concurrent_chats_all_complete(client: httpx.Client, model: ScriptedModelServer, node: NodeServer) -> None:
    scripted(model, [Reply.text("ok", delay_s=0.05) for _ in range(8)])
    results: list[str] = []

    def one(i: int) -> None:
        with httpx.Client(base_url=node.base_url, headers=node.auth, timeout=30) as c:
            _, events = read_stream(c, "POST", "/api/v1/chat/stream", json={"prompt": f"hello {i}"})
            results.append(events[-1]["data"]["status"])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["completed"] * 8


def test_no_model_node_still_serves_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_MODEL_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("COLONY_MODEL_NAME", "m")
    monkeypatch.setenv("COLONY_MODEL_MAX_RETRIES", "0")
    with NodeServer(Settings()) as n, httpx.Client(base_url=n.base_url, headers=n.auth, timeout=30) as c:
        deadline = time.monotonic() + 10
        health = c.get("/api/v1/health").json()
        while not health["model"]["providers"] or health["model"]["error"] == "connecting to the model…":
            assert time.monotonic() < deadline
            time.sleep(0.05)
            health = c.get("/api/v1/health").json()
        assert health["status"] == "degraded" and health["model"]["available"] is False
        assert "127.0.0.1:9" in health["model"]["error"] and "COLONY_MODEL_BASE_URL" in health["model"]["error"]
        # A chat is still attempted (the endpoint may be back) and fails with a clear, typed error.
        status, events = read_stream(c, "POST", "/api/v1/chat/stream", json={"prompt": "hi"})
        final = events[-1]["data"]
        assert status == 200 and final["status"] == "failed" and final["error_code"] == "model_unavailable"
        assert "127.0.0.1:9" in final["error"]
        assert c.get("/api/v1/sessions").status_code == 200  # everything not needing a model works


def test_shutdown_cancels_running_turns_and_records_them(model: ScriptedModelServer) -> None:
    scripted(model, [Reply.hang()])
    n = NodeServer(Settings()).start()
    try:
        with httpx.Client(base_url=n.base_url, headers=n.auth, timeout=30) as c:
            deadline = time.monotonic() + 10
            while not httpx.get(f"{n.base_url}/api/v1/health").json()["model"]["available"]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            info = c.post("/api/v1/chat", json={"prompt": "slow"}).json()
            while not model.requests:
                assert time.monotonic() < deadline
                time.sleep(0.02)
    finally:
        n.stop()
    db = open_database(Path(os.environ["COLONY_HOME"]) / "colony.db")
    try:
        turn = st.get_turn(db, info["turn_id"])
        assert turn is not None and turn["status"] == "cancelled"
    finally:
        db.close()


def test_openapi_document_lists_the_api(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    for path in ("/api/v1/chat", "/api/v1/turns/{turn_id}/events", "/api/v1/approvals/{approval_id}", "/api/v1/audit"):
        assert path in doc["paths"]


def test_metrics_after_a_turn_carry_every_family(client: httpx.Client, model: ScriptedModelServer, workspace: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    (workspace / "m.txt").write_text("m")
    scripted(model, [Reply.tool_calls([("read_file", {"path": "m.txt"})]), Reply.text("done")])
    read_stream(client, "POST", "/api/v1/chat/stream", json={"prompt": "read m.txt"})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    for name in ("colony_http_requests", "colony_http_request_seconds", "colony_turns", "colony_turn_seconds",
                 "colony_model_request_seconds", "colony_model_tokens", "colony_tool_calls", "colony_approvals",
                 "colony_circuit_state", "colony_memory_items", "colony_sse_streams_active"):
        assert name in families, name
    tool_samples = {(s.labels["tool"], s.labels["outcome"]): s.value for s in families["colony_tool_calls"].samples}
    assert tool_samples[("read_file", "ok")] >= 1
    turns = {s.labels.get("status"): s.value for s in families["colony_turns"].samples if s.name == "colony_turns_total"}
    assert turns["completed"] >= 1
    routes = {s.labels["route"] for s in families["colony_http_requests"].samples}
    assert "/api/v1/chat/stream" in routes
    circuits = {(s.labels["scope"], s.labels["name"]) for s in families["colony_circuit_state"].samples}
    assert any(scope == "model" for scope, _ in circuits)
    assert r.headers.get("x-request-id")
