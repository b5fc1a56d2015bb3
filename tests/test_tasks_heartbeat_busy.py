"""A heartbeat the database could not take (busy) is retried, so the lease does not lapse under a live worker.

Before: `_heartbeat` stopped on anything but `LeaseLostError`, so one renewal refused for a busy
database ended the heartbeats for good; the lease then expired while the model was still answering,
and the worker's answer was refused at its next checkpoint (the task reaped and run again).

The database is made busy for real: another connection holds SQLite's write lock for longer than the
worker's connection waits for it (its busy timeout lowered to 50 ms), while the worker waits for the
model's (delayed) answer. The store, the node and the model server are real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from colony.config import Settings
from colony.node import Node
from colony.store import Database
from colony.tasks import SqliteTaskStore, TaskSpec
from colony.tasks.runner import run_task
from colony.testing import Reply, ScriptedModelServer

#: The lease (renewed every 2 s), how long the write lock is held, and the model's answer delay:
#: the lock covers a renewal and ends before the lease would expire; the answer comes after it would.
TTL_S, LOCK_S, ANSWER_DELAY_S = 6.0, 2.5, 7.0


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer([Reply.text("done", delay_s=ANSWER_DELAY_S)]) as s:
        monkeypatch.setenv("COLONY_MODEL_BASE_URL", s.base_url)
        monkeypatch.setenv("COLONY_MODEL_NAME", "scripted")
        monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
        yield s


@pytest.fixture
async def node(server: ScriptedModelServer) -> AsyncIterator[Node]:
    n = Node(Settings())
    yield n
    await n.aclose()


def _hold_write_lock(path: str, server: ScriptedModelServer, held: threading.Event) -> None:
    """Once the worker waits for the model, take the write lock on another connection for `LOCK_S`."""
    deadline = time.monotonic() + 30
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    other = Database(path)
    try:
        with other.tx():
            held.set()
            time.sleep(LOCK_S)
    finally:
        other.close()


async def test_a_renewal_refused_for_a_busy_database_is_retried_and_the_run_completes(
    node: Node, server: ScriptedModelServer,
) -> None:
    store = SqliteTaskStore(node.db)
    task = store.post(TaskSpec(goal="summarise the notes"))
    lease = store.claim("worker-a", TTL_S)
    assert lease is not None
    node.db.connection().set_busy_timeout(50)  # this thread's connection: the worker's, heartbeat included
    held = threading.Event()
    locker = threading.Thread(target=_hold_write_lock, args=(str(node.db.path), server, held), daemon=True)
    locker.start()

    run = await run_task(node, store, lease, await node.model(), ttl_s=TTL_S)
    locker.join(timeout=30)

    assert held.is_set()  # the database really was busy while the worker waited for the model
    assert run.outcome == "completed", run.detail
    after = store.get(task.id)
    assert (after.state, after.result, after.attempts) == ("completed", "done", 1)
    assert [e.actor for e in store.events(task.id) if e.actor == "reaper"] == []
    assert len(server.requests) == 1
