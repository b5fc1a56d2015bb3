"""Many nodes, one database: 4 node processes drain 5,000 tasks from one PostgreSQL under SIGKILLs.

Each node is its own process with its own data directory (``COLONY_HOME``) and the same
``COLONY_DATABASE_URL``, running the autonomy daemon (`run_daemon`: reap, claim, run the agent
turn, complete; idle waits on LISTEN/NOTIFY) exactly as ``colony up`` runs it. The model is the
only stand-in: a `FunctionModel` answering each goal. While they work, the test SIGKILLs a random
node every fraction of a second and starts a new one in its place. At the end the append-only
event log must show every task completed exactly once and nothing lost or failed, and each
task's history must replay through the transition table to its final state.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import time
from collections import Counter
from multiprocessing.process import BaseProcess
from pathlib import Path

import pytest

from colony.config import Settings
from colony.llm.messages import Message
from colony.node import Node
from colony.store.pg import open_pg
from colony.tasks import TaskSpec, state_from_events
from colony.tasks.autonomy import open_store, run_daemon
from colony.tasks.models import TaskEvent
from colony.tasks.pg_store import PgTaskStore
from colony.testing import AgentInfo, FunctionModel

#: A forkserver gives clean, single-threaded children (see tests/test_tasks_reliability.py).
CTX = multiprocessing.get_context("forkserver")
CTX.set_forkserver_preload(["colony.tasks.autonomy", "colony.tasks.pg_store", "colony.tools.builtin", __name__])

TASKS = 5000
NODES = 4


def _answer(messages: list[Message], info: AgentInfo) -> str:
    goal = [m for m in messages if m.kind == "user"][-1].content
    return f"done: {goal}"


def _node(env: dict[str, str], name: str) -> None:
    """One node: the autonomy daemon until the queue holds nothing left to run."""
    os.environ.update(env)
    node = Node(Settings())
    stop = asyncio.Event()

    async def until_drained() -> None:
        store = open_store(node)
        while True:
            await asyncio.sleep(0.5)
            left = store.counts()
            if sum(left[s] for s in ("posted", "retry_wait", "assigned", "executing", "awaiting_approval")) == 0:
                stop.set()
                return

    async def main() -> None:
        watcher = asyncio.create_task(until_drained())
        try:
            await run_daemon(node, stop, worker=name, model=FunctionModel(_answer))
        finally:
            watcher.cancel()
            await node.aclose()

    asyncio.run(main())


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_four_nodes_drain_5000_tasks_under_sigkills_each_completed_once(pg_url: str, tmp_path: Path) -> None:
    pg = open_pg(pg_url)
    store = PgTaskStore(pg)
    tasks = store.post_many([TaskSpec(goal=f"job {i}", max_attempts=1000) for i in range(TASKS)])
    base = {
        "COLONY_DATABASE_URL": pg_url, "COLONY_AUTODETECT_LOCAL_MODELS": "false", "COLONY_MEMORY_EMBEDDER": "none",
        "COLONY_MEMORY_RECORD_EPISODES": "false", "COLONY_INSECURE_TEST_KDF": "true", "COLONY_LOG_LEVEL": "WARNING",
        "COLONY_TASK_LEASE_TTL_S": "2", "COLONY_TASK_BACKOFF_BASE_S": "0.05", "COLONY_TASK_BACKOFF_MAX_S": "0.5",
        "COLONY_AUTONOMY_INTERVAL_S": "1", "COLONY_WORKSPACE": str(tmp_path),
    }
    spawned = 0

    def start(i: int) -> BaseProcess:
        nonlocal spawned
        spawned += 1
        env = {**base, "COLONY_HOME": str(tmp_path / f"node{i}")}
        proc = CTX.Process(target=_node, args=(env, f"node{i}.{spawned}"), daemon=True)
        proc.start()
        return proc

    rng = random.Random(17)
    started = time.monotonic()
    nodes = [start(i) for i in range(NODES)]
    kills = 0
    try:
        while time.monotonic() - started < 400:
            time.sleep(rng.uniform(0.2, 1.2))
            left = store.counts()
            if left["completed"] >= TASKS * 0.9:
                break  # the last tenth drains without interference, so every kill's task is seen recovered
            victim = rng.randrange(NODES)
            nodes[victim].kill()
            nodes[victim].join()
            kills += 1
            nodes[victim] = start(victim)
        for proc in nodes:
            proc.join(max(1.0, 480 - (time.monotonic() - started)))
        assert [p.exitcode for p in nodes] == [0] * NODES, "a node did not finish the queue in time"
    finally:
        for proc in nodes:
            if proc.is_alive():
                proc.kill()
                proc.join()
    elapsed = time.monotonic() - started

    rows = pg.query("SELECT id, task_id, from_state, to_state, actor, reason, at, data FROM task_events ORDER BY id")
    history: dict[str, list[TaskEvent]] = {}
    for row in rows:
        history.setdefault(row["task_id"], []).append(TaskEvent(**{**row, "data": None}))
    completed = Counter(e.task_id for e in (ev for evs in history.values() for ev in evs) if e.to_state == "completed")
    assert set(history) == {t.id for t in tasks}  # none lost: every task has its history
    assert len(completed) == TASKS and set(completed.values()) == {1}  # each completed exactly once
    for t in tasks:
        assert state_from_events(history[t.id]) == "completed"
    final = store.counts()
    assert final["completed"] == TASKS and sum(final.values()) == TASKS
    results = {r["id"]: r["result"] for r in pg.query("SELECT id, result FROM tasks")}
    assert all(results[t.id] == f"done: {t.goal}" for t in tasks)
    claims = sum(e.to_state == "assigned" for evs in history.values() for e in evs)
    reaped = sum(e.actor == "reaper" for evs in history.values() for e in evs)
    finishers = Counter(e.actor.split(".")[0] for evs in history.values() for e in evs if e.to_state == "completed")
    assert kills >= 20 and reaped >= 1 and set(finishers) == {f"node{i}" for i in range(NODES)}
    print(f"pg nodes: {TASKS} tasks, {NODES} nodes, {kills} SIGKILLs, {spawned} node processes, "
          f"{claims - TASKS} re-claims ({reaped} reaped leases) in {elapsed:.1f}s; completions per node {dict(finishers)}")
    pg.close()
