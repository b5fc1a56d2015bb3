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
from colony.store.sqlite_records import SqliteRecordStore
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
        turn = SqliteRecordStore(db).get_turn(info["turn_id"])
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


# -- the API contract and the node's edges (issue 12) ----------------------------------------------------------


def test_a_negative_last_event_id_is_refused_and_never_replays_forever(
    client: httpx.Client, model: ScriptedModelServer
) -> None:
    # Regression: Last-Event-ID "-1000" made a finished turn's stream index its event list from the
    # end and replay it forever (a busy loop at 100% CPU that schemathesis found).
    scripted(model, [Reply.text("short")])
    info = client.post("/api/v1/chat", json={"prompt": "hi"}).json()
    status, events = read_stream(client, "GET", info["events_url"])
    assert status == 200 and events[-1]["event"] == "turn_finished"
    for bad in ("-1000", "-2", "x", "1.5"):
        r = client.get(info["events_url"], headers={"Last-Event-ID": bad}, timeout=5)
        assert r.status_code == 422 and r.json()["code"] == "invalid_request", bad
    _, again = read_stream(client, "GET", info["events_url"], headers={"Last-Event-ID": "-1"}, timeout=5)
    assert [e["id"] for e in again] == [e["id"] for e in events]


async def test_the_turn_manager_clamps_a_negative_position(settings: Settings) -> None:
    from colony.agent.events import Notice
    from colony.node import Node
    from colony.server.turns import TurnManager, _Turn

    node = Node(settings)
    try:
        manager = TurnManager(node)
        turn = _Turn(turn_id="turn_x", session_id="ses_x", events=[Notice(message=f"n{i}") for i in range(3)], done=True)
        manager._turns[turn.turn_id] = turn
        seen = []
        async for seq, _ in manager.subscribe("turn_x", after=-50):
            seen.append(seq)
            assert len(seen) < 10, "replayed forever"
        assert seen == [0, 1, 2]
    finally:
        await node.aclose()


def test_the_node_answers_only_to_its_own_host_names(node: NodeServer) -> None:
    # Regression (DNS rebinding): the node answered any Host, so a page whose domain resolved to
    # 127.0.0.1 could read /api/v1/health (database path, provider URLs) as its own origin.
    url = f"{node.base_url}/api/v1/health"
    for host in ("attacker.example", f"attacker.example:{node.port}", "127.0.0.1.nip.io", f"localhost:{node.port + 1}"):
        r = httpx.get(url, headers={"Host": host})
        assert r.status_code == 421, host
        assert r.json()["code"] == "unknown_host" and "COLONY_SERVER_ALLOWED_HOSTS" in r.json()["message"]
        assert "colony.db" not in r.text
    for host in (f"127.0.0.1:{node.port}", f"localhost:{node.port}", f"LOCALHOST:{node.port}"):
        assert httpx.get(url, headers={"Host": host}).status_code == 200, host


def test_api_answers_are_never_sniffed_nor_stored(client: httpx.Client) -> None:
    for path in ("/api/v1/health", "/api/v1/sessions", "/api/v1/sessions/ses_nope", "/openapi.json", "/metrics"):
        r = client.get(path)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["cache-control"] == "no-store", path
    too_big = client.post("/api/v1/chat", content=b"x" * 3_000_000, headers={"content-type": "application/json"})
    assert too_big.status_code == 413 and too_big.headers["cache-control"] == "no-store"


def test_a_wrong_method_is_405_with_an_allow_header(client: httpx.Client) -> None:
    # Regression: 28 operations answered 405 without Allow; a path served by two routes (GET and
    # DELETE of a memory) must name both.
    r = client.request("TRACE", "/api/v1/memory/1")
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET" and r.json()["code"] == "method_not_allowed"
    r = client.put("/api/v1/tasks")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    assert client.request("OPTIONS", "/api/v1/memory/recall").headers["allow"] == "GET"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"goal": "g", "budget": {"tokens": 2**64}}, "budget.tokens"),  # used to be a 500 (SQLite overflow)
        ({"goal": "g", "budget": {"tool_calls": 10**30}}, "budget.tool_calls"),
        ({"goal": "g", "budget": {"credits": False}}, "budget.credits"),  # a boolean is not money
        ({"goal": "g", "budget": {"credits": 1.5}}, "budget.credits"),  # credits are whole numbers
        ({"goal": "g", "budget": {"credits": "5"}}, "budget.credits"),
        ({"goal": "g", "priority": True}, "priority"),
        ({"goal": "g", "approval_timeout_s": 5e-324}, "approval_timeout_s"),
        ({"goal": "g", "deadline": 1e300}, "deadline"),
        ({"goal": "   "}, "not be blank"),
        ({"goal": "g", "plan": [{"title": "a", "depends_on": [0]}]}, "plan"),
    ],
)
def test_task_bodies_outside_the_schema_are_422(client: httpx.Client, body: dict[str, Any], where: str) -> None:
    r = client.post("/api/v1/tasks", json=body)
    assert r.status_code == 422 and r.json()["code"] == "invalid_request" and where in r.json()["message"], r.text
    assert client.get("/api/v1/tasks").json()["tasks"] == []


def test_credits_are_integers_end_to_end(client: httpx.Client) -> None:
    task = client.post("/api/v1/tasks", json={"goal": "g", "budget": {"credits": 5, "tokens": 2**53 - 1}}).json()
    assert task["budget"]["credits"] == 5 and isinstance(task["budget"]["credits"], int)
    again = client.get(f"/api/v1/tasks/{task['id']}").json()["task"]["budget"]
    assert again == {"tokens": 2**53 - 1, "tool_calls": None, "credits": 5} and isinstance(again["credits"], int)
    doc = client.get("/openapi.json").json()
    budget = doc["components"]["schemas"]["Budget"]["properties"]["credits"]["anyOf"][0]
    assert budget == {"type": "integer", "minimum": 0, "maximum": 2**53 - 1}


def test_every_error_is_declared_with_the_error_body(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")) and path != "/api/v1/ready":
                    schema = response["content"]["application/json"]["schema"]
                    # x402 defines its own bodies: the 402 and the facilitator API's 400.
                    protocol = {("402", "/x402/agents/{name}/prompt"): "PaymentRequiredOut",
                                ("400", "/x402/verify"): "InvalidRequestOut", ("400", "/x402/settle"): "InvalidRequestOut",
                                ("402", "/federation/v1/market/auctions/{auction}/invoice"): "PaymentRequiredOut",
                                ("400", "/federation/v1/market/x402/verify"): "InvalidRequestOut",
                                ("400", "/federation/v1/market/x402/settle"): "InvalidRequestOut"}
                    expected = protocol.get((status, path), "ErrorOut")
                    assert schema == {"$ref": f"#/components/schemas/{expected}"}, (method, path, status)
            assert "421" in op["responses"], (method, path)
            if op.get("security"):
                assert "401" in op["responses"], (method, path)
    chat = doc["paths"]["/api/v1/chat"]["post"]["responses"]
    assert {"400", "401", "413", "422", "503"} <= set(chat)
    recall = {p["name"]: p for p in doc["paths"]["/api/v1/memory/recall"]["get"]["parameters"]}
    assert recall["channels"]["schema"]["anyOf"][0]["items"]["enum"] == ["keyword", "semantic", "graph"]
