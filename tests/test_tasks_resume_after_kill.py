"""A task whose lease is lost before its first model request stops there.

Found while chasing a reported stall of a task resumed after its worker was killed (the stall
itself did not reproduce outside federation; see the helper's report). What did reproduce: the
agent loop treats a failing memory recall or cognitive substrate as optional ("answer without
it"), and the taped recall and substrate write their checkpoints under the lease — so a lease
lost at that moment was swallowed as "recall failed", and the run went on to make a live model
request for a task another worker may already own (its answer could never be recorded).

The lease is made to expire right after the claim with the store's injectable clock; the store,
the node and the model server are real.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from colony.config import Settings
from colony.node import Node
from colony.tasks import SqliteTaskStore, TaskSpec
from colony.tasks.checkpoints import load_checkpoints
from colony.tasks.runner import run_task
from colony.testing import Reply, ScriptedModelServer


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer([Reply.text("done")]) as s:
        monkeypatch.setenv("COLONY_MODEL_BASE_URL", s.base_url)
        monkeypatch.setenv("COLONY_MODEL_NAME", "scripted")
        monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
        yield s


@pytest.fixture(params=["false", "true"], ids=["memory", "memory+cognition"])
async def node(request: Any, server: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Node]:
    monkeypatch.setenv("COLONY_COGNITION_ENABLED", request.param)
    n = Node(Settings())
    yield n
    await n.aclose()


async def test_a_lease_lost_at_the_recall_checkpoint_stops_the_run_before_any_model_request(
    node: Node, server: ScriptedModelServer,
) -> None:
    expired = False

    def clock() -> float:  # real time until the claim is made; then the lease is long gone
        return time.time() + (1000.0 if expired else 0.0)

    store = SqliteTaskStore(node.db, clock=clock)
    task = store.post(TaskSpec(goal="summarise the notes"))
    lease = store.claim("worker-a", 60)
    assert lease is not None and lease.task_id == task.id
    expired = True

    run = await run_task(node, store, lease, await node.model(), ttl_s=60)

    assert run.outcome == "lost" and "lease" in run.detail
    assert server.requests == []  # no model was paid for work whose result would be refused
    assert run.live_steps == 0
    assert load_checkpoints(store, task.id) == []  # nothing written under the lost lease
    turns = node.db.query("SELECT status, error, model_requests FROM turns")
    assert [(t["status"], t["model_requests"]) for t in turns] == [("failed", 0)]  # the turn is closed, not left running
    assert "lease" in turns[0]["error"]
    after = store.get(task.id)
    assert after.state == "executing" and after.result is None  # left for the reaper, untouched
