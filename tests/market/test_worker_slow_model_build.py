"""A winner's task whose model takes longer to build than its lease still runs on its first attempt.

Before: `work_once` claimed the task, then built the model cascade (the first time in a process: it
may ask the endpoint which models it serves, or probe local servers), and only `run_task` started the
heartbeat. A build slower than the lease's TTL let the lease expire before the run began — in a
freshly restarted node resuming a task, exactly when the task has already lost one attempt to the kill.

The build is made slow for real: the model endpoint (on loopback) lists its models after a delay and
``COLONY_MODEL_NAME`` is unset, so the cascade must ask it; its chat requests go to the scripted server.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from colony.config import Settings
from colony.market.profiles import AgentSpec, create_agent
from colony.market.service import Market
from colony.market.worker import work_once
from colony.node import Node
from colony.tasks import TaskSpec
from colony.testing import Reply, ScriptedModelServer

#: The lease (renewed every half second) and how long the endpoint takes to list its models.
TTL_S, LISTING_DELAY_S = 1.5, 3.5


class _SlowListing(BaseHTTPRequestHandler):
    """Lists the models after `LISTING_DELAY_S`; passes chat requests on to the scripted server."""

    protocol_version = "HTTP/1.1"
    upstream = ""
    listing: threading.Event


    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self.listing.set()
        time.sleep(LISTING_DELAY_S)
        self._send(200, "application/json", json.dumps({"object": "list", "data": [
            {"id": "scripted", "object": "model", "created": 0, "owned_by": "test"}]}).encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        r = httpx.post(f"{self.upstream}{self.path.removeprefix('/v1')}", content=body,
                       headers={"content-type": "application/json"}, timeout=30)
        self._send(r.status_code, r.headers.get("content-type", "application/json"), r.content)

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def listing() -> threading.Event:
    """Set when the endpoint is asked for its models (the build has begun)."""
    return threading.Event()


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch, listing: threading.Event) -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer([Reply.text("done")]) as scripted:
        handler = type("Handler", (_SlowListing,), {"upstream": scripted.base_url, "listing": listing})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        thread.start()
        monkeypatch.setenv("COLONY_MODEL_BASE_URL", f"http://127.0.0.1:{httpd.server_address[1]}/v1")
        monkeypatch.setenv("COLONY_TASK_LEASE_TTL_S", str(TTL_S))
        monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
        try:
            yield scripted
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)


@pytest.fixture
async def node(endpoint: ScriptedModelServer) -> AsyncIterator[Node]:
    n = Node(Settings())
    yield n
    await n.aclose()


def _awarded_task(node: Node) -> tuple[Market, str]:
    """A task awarded to the node's agent ada, ready for the market worker to claim."""
    create_agent(node.keyring, AgentSpec(name="ada", persona="You are ada, a Python programmer."))
    ada = node.keyring.agent("ada").public_hex
    market = Market(node)
    task = market.tasks.post(TaskSpec(goal="Write digit_sum(n)."))
    market.tasks.transition(task.id, "assigned", actor="test", reason="won", fields={"assignee": ada},
                            expect=("posted",))
    return market, task.id


async def test_the_lease_is_heartbeated_while_the_model_is_built_and_the_task_runs_on_its_first_attempt(
    node: Node, endpoint: ScriptedModelServer,
) -> None:
    market, task_id = _awarded_task(node)

    started = time.monotonic()
    run = await work_once(market, worker="worker-a")

    assert time.monotonic() - started > LISTING_DELAY_S > TTL_S  # the build did outlast the lease's TTL
    assert run is not None and run.outcome == "completed", run
    after = market.tasks.get(task_id)
    assert (after.state, after.result, after.attempts) == ("completed", "done", 1)
    assert len(endpoint.requests) == 1


async def test_a_task_cancelled_while_its_model_is_built_is_dropped_before_any_model_request(
    node: Node, endpoint: ScriptedModelServer, listing: threading.Event,
) -> None:
    market, task_id = _awarded_task(node)

    def cancel_once_building() -> None:  # a person cancels the task from elsewhere (its own connection)
        if listing.wait(30):
            Market(node).tasks.cancel(task_id, reason="not needed any more")

    canceller = threading.Thread(target=cancel_once_building, daemon=True)
    canceller.start()
    run = await work_once(market, worker="worker-a")
    canceller.join(timeout=30)

    assert run is not None and run.outcome == "lost" and "lease" in run.detail, run
    assert market.tasks.get(task_id).state == "cancelled"
    assert endpoint.requests == []  # the heartbeat saw the lease gone and stopped the build: no model call
