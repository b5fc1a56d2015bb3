"""The memory API under /api/v1/memory: the real app, the real memory (static embedder) and SQLite
files under tmp_path, through Starlette's TestClient."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from colony.config import Settings
from colony.memory import MemoryIn
from colony.node import Node
from colony.observability.metrics import render_latest
from colony.server import create_app
from colony.server.api.memory import install_memory_metrics
from colony.server.api.memory import router as memory_router
from colony.server.turns import ApprovalBroker

TOKEN = "memory-api-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
URL = "/api/v1/memory"


@contextmanager
def serve(settings: Settings) -> Iterator[tuple[TestClient, Node]]:
    broker = ApprovalBroker()
    node = Node(settings, approver=broker)
    app = create_app(node, broker, token=TOKEN, connect_model=False)
    with TestClient(app, base_url="http://127.0.0.1", headers=AUTH) as client:
        yield client, node


@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[TestClient, Node]]:
    with serve(settings) as pair:
        yield pair


@pytest.fixture
def client(api: tuple[TestClient, Node]) -> TestClient:
    return api[0]


def store(client: TestClient, content: str, **fields: object) -> int:
    r = client.post(URL, json={"content": content, **fields})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def assert_error(response: Any, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    for word in words:
        assert word in body["message"]


# -- storing and reading --------------------------------------------------------------------------


def test_store_then_get_returns_the_memory_with_its_fields(client: TestClient) -> None:
    r = client.post(URL, json={"content": "The staging database runs on db-2.internal.", "memory_type": "fact",
                               "confidence": 0.9, "verified": "user_stated", "expires_at": "2999-01-01T00:00:00Z"})
    assert r.status_code == 201
    assert r.json() == {"id": 1, "unembedded": False, "flagged": []}
    got = client.get(f"{URL}/1").json()
    assert got["content"] == "The staging database runs on db-2.internal."
    assert got["confidence"] == 0.9 and got["verified"] == "user_stated" and got["superseded_by"] is None
    assert got["expires_at"].startswith("2999-01-01")


def test_a_contradiction_is_reported_as_flagged(client: TestClient) -> None:
    first = store(client, "Alice works at Acme.")
    r = client.post(URL, json={"content": "Alice works at Globex."})
    assert r.json()["flagged"] == [first]
    assert client.get(f"{URL}/{first}").json()["needs_review"] is True


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"content": ""}, "body.content"),
        ({"content": "   \n\t"}, "must not be blank"),
        ({"content": "x" * 64_001}, "body.content"),
        ({"content": "ok", "confidence": 1.5}, "body.confidence"),
        ({"content": "ok", "memory_type": "rumour"}, "body.memory_type"),
        ({"content": "ok", "confidence": True}, "body.confidence"),  # a boolean is not a number
        ({"content": "ok", "expires_at": 0}, "RFC 3339"),  # the schema says a date-time string
        ({"content": "ok", "expires_at": "2030-01-01"}, "RFC 3339"),
        ({"content": "ok", "expires_at": "2030-01-01T00:00:00"}, "RFC 3339"),  # no offset
        ({}, "body.content"),
    ],
)
def test_bad_input_is_a_422_in_the_json_error_shape(client: TestClient, body: dict[str, object], where: str) -> None:
    assert_error(client.post(URL, json=body), 422, "invalid_request", where)
    assert client.get(f"{URL}/stats").json()["total"] == 0


def test_unknown_memory_is_404_everywhere(client: TestClient) -> None:
    assert_error(client.get(f"{URL}/41"), 404, "not_found", "No memory 41")
    assert_error(client.get(f"{URL}/41/history"), 404, "not_found")
    assert_error(client.post(f"{URL}/41/correct", json={"content": "x"}), 404, "not_found")
    assert_error(client.delete(f"{URL}/41"), 404, "not_found")
    assert_error(client.get(f"{URL}/0"), 422, "invalid_request")
    assert_error(client.get(f"{URL}/not-a-number"), 404, "not_found", "/openapi.json")  # no such resource


def test_every_memory_route_requires_auth_and_a_csrf_header_with_the_cookie(api: tuple[TestClient, Node]) -> None:
    client, _ = api
    bare = {"Authorization": ""}
    for method, path in [("GET", f"{URL}/recall?q=x"), ("GET", f"{URL}/stats"), ("GET", f"{URL}/1"),
                         ("POST", URL), ("DELETE", f"{URL}/1"), ("POST", f"{URL}/curate")]:
        r = client.request(method, path, headers=bare, json={"content": "x"})
        assert_error(r, 401, "unauthorized")
    assert client.post("/login", data={"token": TOKEN}, headers=bare, follow_redirects=False).status_code == 303
    r = client.post(URL, json={"content": "from the browser"}, headers=bare)
    assert_error(r, 403, "csrf_failed")


def test_routes_are_sync_so_embeddings_never_block_the_event_loop() -> None:
    routes = [r for r in memory_router.routes if isinstance(r, APIRoute)]
    assert len(routes) == 8
    assert not [r.path for r in routes if inspect.iscoroutinefunction(r.endpoint)]


# -- recall ------------------------------------------------------------------------------------------


def test_recall_explains_which_channels_found_each_hit(client: TestClient) -> None:
    ids = [store(client, t) for t in (
        "Ticket INC-48213 was closed after the cache fix.",
        "Deploy keys are rotated every ninety days.",
        "The billing service uses the ledger library.",
        "The ledger library depends on libfixed.",
    )]
    r = client.get(f"{URL}/recall", params={"q": "What does the billing service use?", "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == "What does the billing service use?"
    assert body["hits"][0]["memory"]["id"] == ids[2]
    channels = {c["channel"]: c["rank"] for c in body["hits"][0]["channels"]}
    assert set(channels) == {"keyword", "semantic", "graph"} and channels["keyword"] == 1
    assert "ledger library" in body["expanded_entities"]
    assert body["channels_down"] == {}
    assert {"keyword", "semantic", "graph", "total"} <= set(body["timings_ms"])
    assert len(body["hits"]) <= 3


@pytest.mark.parametrize("channels", [["keyword"], ["keyword", "graph"], ["graph", "keyword", "graph"]])
def test_recall_can_be_limited_to_some_channels(client: TestClient, channels: list[str]) -> None:
    store(client, "Ticket INC-48213 was closed after the cache fix.")
    r = client.get(f"{URL}/recall", params=[("q", "INC-48213"), *[("channels", c) for c in channels]])
    wanted = set(channels)
    # "embed" is the query embedding, shared by the semantic and graph channels.
    assert set(r.json()["timings_ms"]) - {"embed"} == wanted | {"total"}
    assert {c["channel"] for h in r.json()["hits"] for c in h["channels"]} <= wanted
    assert r.json()["hits"][0]["channels"][0]["channel"] == "keyword"


@pytest.mark.parametrize(
    ("params", "word"),
    [({"q": "   "}, "blank"), ({"q": ""}, "q"), ({"q": "x" * 2001}, "q"), ({"q": "x", "k": 0}, "k"),
     ({"q": "x", "k": 101}, "k"), ({"q": "x", "channels": "telepathy"}, "channels"),
     # One value per channel: the schema says so (an enum), so a comma-joined list is refused.
     ({"q": "x", "channels": "keyword,graph"}, "channels"), ({}, "q")],
)
def test_bad_recall_parameters_are_422(client: TestClient, params: dict[str, object], word: str) -> None:
    assert_error(client.get(f"{URL}/recall", params=params), 422, "invalid_request", word)  # type: ignore[arg-type]


def test_without_an_embedder_the_semantic_channel_reports_itself_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    with serve(Settings()) as (client, _):
        r = client.post(URL, json={"content": "Deploy keys are rotated every ninety days."})
        assert r.json()["unembedded"] is True
        body = client.get(f"{URL}/recall", params={"q": "deploy keys"}).json()
        assert "semantic" in body["channels_down"] and "COLONY_MEMORY_EMBEDDER" in body["channels_down"]["semantic"]
        assert body["hits"][0]["channels"][0]["channel"] == "keyword"
        memory = client.get("/api/v1/health").json()["checks"]["memory"]
        assert memory["status"] == "degraded" and memory["embedder"] is None
        assert "COLONY_MEMORY_EMBEDDER" in memory["error"] and memory["unembedded"] == 1
        stats = client.get(f"{URL}/stats").json()
        assert stats["embedder"] is None and stats["embedder_error"] and stats["unembedded"] == 1


# -- corrections, forgetting, upkeep ----------------------------------------------------------------------


def test_correct_supersedes_and_history_shows_the_chain(client: TestClient) -> None:
    old = store(client, "The office is in Leeds.")
    r = client.post(f"{URL}/{old}/correct", json={"content": "The office is in York.", "verified": "user_stated"})
    assert r.status_code == 201
    new = r.json()["id"]
    assert r.json() == {"id": new, "supersedes": old}
    chain = client.get(f"{URL}/{new}/history").json()["items"]
    assert [(m["id"], m["superseded_by"]) for m in chain] == [(old, new), (new, None)]
    assert client.get(f"{URL}/{old}/history").json()["items"] == chain
    again = client.post(f"{URL}/{old}/correct", json={"content": "The office is in Hull."})
    assert_error(again, 409, "already_corrected", f"corrected by {new}")
    assert again.json()["superseded_by"] == new
    hits = client.get(f"{URL}/recall", params={"q": "office"}).json()["hits"]
    assert [h["memory"]["id"] for h in hits] == [new]  # the superseded one is history, not recall
    assert_error(client.post(f"{URL}/{new}/correct", json={"content": " "}), 422, "invalid_request")


def test_delete_forgets_from_every_channel(client: TestClient) -> None:
    mid = store(client, "Ticket INC-48213 was closed after the cache fix.")
    r = client.delete(f"{URL}/{mid}")
    assert r.status_code == 204 and r.content == b""
    assert_error(client.delete(f"{URL}/{mid}"), 404, "not_found")
    assert_error(client.get(f"{URL}/{mid}"), 404, "not_found")
    assert client.get(f"{URL}/recall", params={"q": "INC-48213 cache fix"}).json()["hits"] == []
    stats = client.get(f"{URL}/stats").json()
    assert stats["total"] == 0 and stats["triples"] == 0


def test_stats_and_curate(api: tuple[TestClient, Node]) -> None:
    client, node = api
    store(client, "Lunch on Fridays is pizza.", memory_type="event")
    store(client, "Lunch on Fridays is pizza.", memory_type="event", verified="user_stated")
    store(client, "Alice prefers short answers.", memory_type="preference")
    node.memory.add(MemoryIn(content="The sale ended.", expires_at="2000-01-01T00:00:00Z"))  # type: ignore[arg-type]
    stats = client.get(f"{URL}/stats").json()
    assert stats["total"] == 4 and stats["active"] == 3 and stats["expired"] == 1
    assert stats["by_type"] == {"event": 2, "preference": 1}
    assert stats["embedder"] == "minilm-static-v1" and stats["embedder_error"] is None
    r = client.post(f"{URL}/curate")
    assert r.status_code == 200
    assert r.json()["expired"] == 1 and r.json()["duplicates_removed"] == 1
    survivors = client.get(f"{URL}/recall", params={"q": "pizza lunch"}).json()["hits"]
    pizza = [h["memory"]["verified"] for h in survivors if "pizza" in h["memory"]["content"]]
    assert pizza == ["user_stated"]  # the better-verified copy stays
    assert client.get(f"{URL}/stats").json()["total"] == 2


# -- health and metrics ------------------------------------------------------------------------------------


def test_health_reports_the_memory(client: TestClient) -> None:
    store(client, "The billing service uses the ledger library.")
    checks = client.get("/api/v1/health", headers={"Authorization": ""}).json()["checks"]
    assert checks["memory"] == {
        "status": "ok", "embedder": "minilm-static-v1", "error": None, "active": 1, "unembedded": 0,
        "detail": "minilm-static-v1 · 1 active · 0 without a vector", "checked_s_ago": 0.0,
    }
    assert "embedding_model" not in checks


def test_health_does_not_count_the_memory_on_every_request(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: every GET /api/v1/health counted the memory store (full scans, in a worker
    # thread): 1,542 req/s with p99 104 ms. Now the figures are cached and refreshed off the path.
    from colony.server.api import health

    calls: list[float] = []
    real = health.memory_health

    def counted(node: Node) -> dict[str, object]:
        calls.append(time.monotonic())
        return real(node)

    monkeypatch.setattr(health, "memory_health", counted)
    store(client, "One fact.")
    for _ in range(50):
        assert client.get("/api/v1/health").json()["checks"]["memory"]["active"] == 1
    assert len(calls) == 1


async def test_a_cached_check_refreshes_in_the_background_once_it_is_stale() -> None:
    from colony.server.api.health import CachedCheck

    now = [100.0]
    computed: list[int] = []
    gate = asyncio.Event()

    async def compute() -> dict[str, object]:
        computed.append(len(computed))
        if len(computed) > 1:
            await gate.wait()  # a slow refresh must not hold up the answers
        return {"n": len(computed)}

    check = CachedCheck(compute, ttl_s=5.0, clock=lambda: now[0])
    first = await asyncio.gather(check.get(), check.get())  # two first requests share one computation
    assert first == [({"n": 1}, 0.0), ({"n": 1}, 0.0)] and len(computed) == 1
    now[0] += 6.0
    assert await check.get() == ({"n": 1}, 6.0)  # stale: answered at once, one refresh started
    await asyncio.sleep(0)  # the refresh starts and waits on the gate
    assert await check.get() == ({"n": 1}, 6.0) and len(computed) == 2  # not a second refresh
    gate.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert await check.get() == ({"n": 2}, 0.0)
    await check.aclose()


def test_memory_metric_counts_active_memories(api: tuple[TestClient, Node]) -> None:
    client, node = api
    store(client, "One.")
    store(client, "Two.")
    uninstall = install_memory_metrics(node)
    try:
        assert b"colony_memory_items 2.0" in render_latest()[0]
    finally:
        uninstall()
    assert b"colony_memory_items 0.0" in render_latest()[0]
